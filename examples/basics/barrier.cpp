// barrier: three workers wait at a barrier until the coordinator lowers it.
// See docs/barrier.md.
//
//   barrier [connect-string]      (default: $ZK_CONNECT or 127.0.0.1:2181)
#include <zkrecipes/zkrecipes.hpp>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace zkr = zkrecipes;
using namespace std::chrono_literals;

static int fail(const char* what, const zkr::error& e) {
  std::fprintf(stderr, "barrier: %s: %s\n", what, e.message().c_str());
  return 1;
}

int main(int argc, char** argv) {
  zkr::session_options opts;
  const char* env = std::getenv("ZK_CONNECT");
  opts.connect_string = argc > 1 ? argv[1] : env ? env : "127.0.0.1:2181";
  opts.session_timeout = 5s;
  auto s = zkr::session::connect(opts, 15s);
  if (!s) return fail("connect", s.error());
  auto& zk = s.value();
  const std::string root = "/zkrecipes-barrier-example";
  const std::string path = root + "/start";

  zkr::barrier coordinator(zk, path);
  if (auto r = coordinator.set(); !r) return fail("set", r.error());
  std::atomic<bool> lowered{false};
  std::atomic<int> early{0}, passed{0};
  std::vector<std::thread> workers;
  for (int w = 1; w <= 3; ++w)
    workers.emplace_back([&, w] {
      zkr::barrier b(zk, path);
      auto r = b.wait(20s); // an exists watch, no polling
      if (!r) return (void)fail("wait", r.error());
      if (!lowered) ++early;
      ++passed;
      std::printf("worker %d passed the barrier\n", w);
    });
  std::this_thread::sleep_for(300ms); // let the workers reach the barrier
  std::printf("coordinator lowers the barrier\n");
  lowered = true;
  if (auto r = coordinator.remove(); !r) return fail("remove", r.error());
  for (auto& t : workers) t.join();

  if (auto r = zk.remove_recursive(root); !r) return fail("clean up", r.error());
  if (early != 0 || passed != 3) return std::fprintf(stderr, "barrier: failed\n"), 1;
  std::printf("removed %s\n", root.c_str());
  return 0;
}
