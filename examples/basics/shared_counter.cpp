// shared_counter: four threads, each with its own session, add to one
// counter; the sum is exact. A shared_value shows compare-and-set.
// See docs/shared_value.md.
//
//   shared_counter [connect-string]      (default: $ZK_CONNECT or 127.0.0.1:2181)
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
  std::fprintf(stderr, "shared_counter: %s: %s\n", what, e.message().c_str());
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
  const std::string root = "/zkrecipes-shared-counter-example";

  std::atomic<int> failures{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&] {
      auto own = zkr::session::connect(opts, 15s);
      if (!own) return (void)++failures;
      zkr::shared_counter hits(own.value(), root + "/hits");
      for (int i = 0; i < 50; ++i)
        if (!hits.increment()) ++failures; // compare-and-set, retried on conflict
    });
  for (auto& t : ts) t.join();
  zkr::shared_counter hits(zk, root + "/hits");
  auto total = hits.get();
  if (!total) return fail("get", total.error());
  std::printf("4 sessions x 50 increments = %lld\n", static_cast<long long>(total.value()));

  zkr::shared_value<std::string> mode(zk, root + "/mode", "normal");
  auto cur = mode.get();
  if (!cur) return fail("get", cur.error());
  auto first = mode.compare_and_set(cur.value().version, "drain");
  auto second = mode.compare_and_set(cur.value().version, "other"); // same, now stale, version
  std::printf("compare_and_set at version %d: %s; again at the same version: %s\n", cur.value().version,
              first ? "written" : first.error().message().c_str(),
              second ? "written (wrong)" : second.error().message().c_str());

  if (auto r = zk.remove_recursive(root); !r) return fail("clean up", r.error());
  if (failures != 0 || total.value() != 200 || !first || second) return std::fprintf(stderr, "shared_counter: failed\n"), 1;
  std::printf("removed %s\n", root.c_str());
  return 0;
}
