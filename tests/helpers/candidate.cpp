// A process that joins a leader election and stays until SIGTERM, for the
// inspector tests (a leader whose process is SIGKILLed must be replaced).
//
//   test_candidate --zk <connect> --path <election path> --id <participant id>
//                  [--session-timeout-ms N]
//
// Prints `candidate ID` once it has joined and `leader ID` each time it
// becomes leader (flushed); on SIGTERM (or SIGINT) it leaves the election,
// closes its session and exits 0.
#include <zkrecipes/leader_latch.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <pthread.h>
#include <signal.h>

namespace {

int usage() {
  std::fprintf(stderr,
               "usage: test_candidate --zk <connect> --path <election path> --id <participant id> "
               "[--session-timeout-ms N]\n");
  return 2;
}

} // namespace

int main(int argc, char** argv) {
  std::string zk, path, id;
  long timeout_ms = 2000;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) return usage();
    const std::string v = argv[++i];
    if (a == "--zk")
      zk = v;
    else if (a == "--path")
      path = v;
    else if (a == "--id")
      id = v;
    else if (a == "--session-timeout-ms") {
      char* end = nullptr;
      timeout_ms = std::strtol(v.c_str(), &end, 10);
      if (end == v.c_str() || *end != '\0' || timeout_ms <= 0) return usage();
    } else
      return usage();
  }
  if (zk.empty() || path.empty() || id.empty()) return usage();

  // SIGTERM and SIGINT are blocked before any thread starts (the session's
  // threads inherit the mask) and taken by sigwait below.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  zkrecipes::session_options o;
  o.connect_string = zk;
  o.session_timeout = std::chrono::milliseconds(timeout_ms);
  auto s = zkrecipes::session::connect(o, std::chrono::seconds(20));
  if (!s) {
    std::fprintf(stderr, "test_candidate: %s\n", s.error().message().c_str());
    return 1;
  }
  zkrecipes::latch_options lo;
  lo.id = id;
  int sig = 0;
  {
    zkrecipes::leader_latch latch(s.value(), path, lo);
    // On the dispatcher: stdio is thread-safe, and each line is flushed at once.
    latch.add_listener([&id](zkrecipes::hold_event e) {
      if (e == zkrecipes::hold_event::acquired) {
        std::printf("leader %s\n", id.c_str());
        std::fflush(stdout);
      }
    });
    auto r = latch.start();
    if (!r) {
      std::fprintf(stderr, "test_candidate: %s\n", r.error().message().c_str());
      return 1;
    }
    std::printf("candidate %s\n", id.c_str());
    std::fflush(stdout);

    while (sigwait(&stop_signals, &sig) != 0) {
    }
    (void)latch.close();
  }
  (void)s.value().close();
  std::printf("stopped on signal %d\n", sig);
  return 0;
}
