// group_membership: a coordinator watches workers join and leave (one of
// them by closing its session, as a crash would). See docs/group_membership.md.
//
//   group_membership [connect-string]      (default: $ZK_CONNECT or 127.0.0.1:2181)
#include <zkrecipes/zkrecipes.hpp>

#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

namespace zkr = zkrecipes;
using namespace std::chrono_literals;

static int fail(const char* what, const zkr::error& e) {
  std::fprintf(stderr, "group_membership: %s: %s\n", what, e.message().c_str());
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
  const std::string path = "/zkrecipes-group-example/workers";

  std::mutex m;
  std::condition_variable cv;
  std::vector<std::string> seen;
  zkr::group_membership coordinator(zk, path);
  coordinator.add_listener([&](const zkr::membership_event& e) {
    std::printf("%s %s (%s)\n", e.member.id.c_str(), zkr::to_string(e.change), e.member.payload.c_str());
    std::lock_guard lk(m);
    seen.push_back(std::string(zkr::to_string(e.change)) + ":" + e.member.id);
    cv.notify_all();
  });
  if (auto r = coordinator.watch(); !r) return fail("watch", r.error());
  auto wait_for = [&](std::size_t n) {
    std::unique_lock lk(m);
    return cv.wait_for(lk, 10s, [&] { return seen.size() >= n; });
  };

  auto w1 = zkr::session::connect(opts, 15s);
  auto w2 = zkr::session::connect(opts, 15s);
  if (!w1 || !w2) return fail("connect", !w1 ? w1.error() : w2.error());
  {
    zkr::group_membership g1(w1.value(), path), g2(w2.value(), path);
    if (auto r = g1.join("worker-1", "127.0.0.1:8081"); !r) return fail("join", r.error());
    if (!wait_for(1)) return std::fprintf(stderr, "group_membership: no join seen\n"), 1;
    if (auto r = g2.join("worker-2", "127.0.0.1:8082"); !r) return fail("join", r.error());
    if (!wait_for(2)) return std::fprintf(stderr, "group_membership: no join seen\n"), 1;
    std::printf("members now: %zu\n", coordinator.members().size());
    if (auto r = w1.value().close(); !r) return fail("close", r.error()); // worker-1 "crashes"
    if (!wait_for(3)) return std::fprintf(stderr, "group_membership: no leave seen\n"), 1;
    if (auto r = g2.leave(); !r) return fail("leave", r.error()); // worker-2 leaves in good order
    if (!wait_for(4)) return std::fprintf(stderr, "group_membership: no leave seen\n"), 1;
  }
  std::vector<std::string> want{"joined:worker-1", "joined:worker-2", "left:worker-1", "left:worker-2"};
  bool ok;
  {
    std::lock_guard lk(m);
    ok = seen == want;
  }
  if (auto r = zk.remove_recursive("/zkrecipes-group-example"); !r) return fail("clean up", r.error());
  if (!ok) return std::fprintf(stderr, "group_membership: events out of order\n"), 1;
  std::printf("removed /zkrecipes-group-example\n");
  return 0;
}
