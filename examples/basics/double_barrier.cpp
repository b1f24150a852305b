// double_barrier: four members start a round together and finish it
// together. See docs/double_barrier.md.
//
//   double_barrier [connect-string]      (default: $ZK_CONNECT or 127.0.0.1:2181)
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
  std::fprintf(stderr, "double_barrier: %s: %s\n", what, e.message().c_str());
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
  const std::string root = "/zkrecipes-double-barrier-example";
  constexpr int members = 4;

  std::atomic<int> arrived{0}, departing{0}, wrong{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < members; ++i)
    ts.emplace_back([&, i] {
      zkr::double_barrier b(zk, root + "/round-1", members, {"member-" + std::to_string(i), {}});
      std::this_thread::sleep_for(std::chrono::milliseconds(50 * i)); // they arrive one by one
      ++arrived;
      if (auto r = b.enter(20s); !r) return (void)(fail("enter", r.error()), ++wrong);
      if (arrived.load() != members) ++wrong;
      std::printf("member %d entered with all %d in\n", i, members);
      std::this_thread::sleep_for(std::chrono::milliseconds(50 * (members - i))); // work of different lengths
      ++departing;
      if (auto r = b.leave(20s); !r) return (void)(fail("leave", r.error()), ++wrong);
      if (departing.load() != members) ++wrong;
      std::printf("member %d left after all had finished\n", i);
    });
  for (auto& t : ts) t.join();

  // One that waits for a member who never comes gives up cleanly.
  zkr::double_barrier lonely(zk, root + "/round-2", 2, {"alone", {}});
  auto r = lonely.enter(300ms);
  std::printf("enter with 1 of 2 members: %s\n", r ? "entered (wrong)" : r.error().message().c_str());

  if (auto c = zk.remove_recursive(root); !c) return fail("clean up", c.error());
  if (wrong != 0 || r) return std::fprintf(stderr, "double_barrier: failed\n"), 1;
  std::printf("removed %s\n", root.c_str());
  return 0;
}
