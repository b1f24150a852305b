// leader_selector: three candidates take turns running a leadership task;
// each term ends when the task returns, and close() stops a running one.
// See docs/leader_selector.md.
//
//   leader_selector [connect-string]      (default: $ZK_CONNECT or 127.0.0.1:2181)
#include <zkrecipes/zkrecipes.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace zkr = zkrecipes;
using namespace std::chrono_literals;

int main(int argc, char** argv) {
  zkr::session_options opts;
  const char* env = std::getenv("ZK_CONNECT");
  opts.connect_string = argc > 1 ? argv[1] : env ? env : "127.0.0.1:2181";
  opts.session_timeout = 5s;
  const std::string path = "/zkrecipes-selector-example";

  std::atomic<int> leading{0}, terms{0}, overlaps{0};
  std::atomic<std::int64_t> last_token{0};
  std::vector<zkr::session> sessions;
  std::vector<std::unique_ptr<zkr::leader_selector>> selectors;
  for (int i = 1; i <= 3; ++i) {
    auto s = zkr::session::connect(opts, 15s);
    if (!s) return std::fprintf(stderr, "leader_selector: connect: %s\n", s.error().message().c_str()), 1;
    sessions.push_back(std::move(s).value());
  }
  for (int i = 1; i <= 3; ++i) {
    // Runs on the selector's own thread while this candidate leads.
    auto task = [&, i](std::stop_token stop, const zkr::leadership& l) {
      if (leading.fetch_add(1) != 0) ++overlaps;
      if (l.fencing_token <= last_token.exchange(l.fencing_token)) ++overlaps; // tokens must grow
      std::printf("candidate-%d leads: its term %llu, fencing token %lld\n", i,
                  static_cast<unsigned long long>(l.term), static_cast<long long>(l.fencing_token));
      // Work for a while, but give up at once if asked (in doubt, lost, close()).
      std::mutex mx;
      std::condition_variable_any cv;
      std::unique_lock lk(mx);
      const bool stopped = cv.wait_for(lk, stop, 150ms, [] { return false; }) || stop.stop_requested();
      std::printf("candidate-%d %s\n", i, stopped ? "was asked to stop" : "is done and hands over");
      leading.fetch_sub(1);
      ++terms;
    }; // returning ends the term; with requeue (the default) it queues again
    zkr::selector_options so;
    so.candidate.id = "candidate-" + std::to_string(i);
    selectors.push_back(std::make_unique<zkr::leader_selector>(sessions[i - 1], path, task, so));
    if (auto r = selectors.back()->start(); !r)
      return std::fprintf(stderr, "leader_selector: start: %s\n", r.error().message().c_str()), 1;
  }

  // Let leadership go round twice (bounded), and close while a term runs.
  for (int k = 0; k < 1500 && !(terms >= 6 && leading == 1); ++k) std::this_thread::sleep_for(10ms);
  std::printf("%d terms so far; closing every candidate\n", terms.load());
  for (auto& s : selectors)
    if (auto r = s->close(); !r) return std::fprintf(stderr, "leader_selector: close: %s\n", r.error().message().c_str()), 1;

  const bool ok = terms >= 6 && overlaps == 0;
  selectors.clear();
  if (auto r = sessions[0].remove_recursive(path); !r)
    return std::fprintf(stderr, "leader_selector: clean up: %s\n", r.error().message().c_str()), 1;
  if (!ok) return std::fprintf(stderr, "leader_selector: %d terms, %d overlaps\n", terms.load(), overlaps.load()), 1;
  std::printf("one leader at a time, tokens only grew; removed %s\n", path.c_str());
  return 0;
}
