// semaphore: five workers share two leases; never more than two work at once.
// See docs/semaphore.md.
//
//   semaphore [connect-string]      (default: $ZK_CONNECT or 127.0.0.1:2181)
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
  std::fprintf(stderr, "semaphore: %s: %s\n", what, e.message().c_str());
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
  const std::string path = "/zkrecipes-semaphore-example";
  zkr::semaphore sem(zk, path, 2); // every user of this path must say 2

  // try_acquire: one attempt, a lease or nothing.
  auto a = sem.try_acquire(), b = sem.try_acquire(), c = sem.try_acquire();
  if (!a || !b || !c) return fail("try_acquire", !a ? a.error() : !b ? b.error() : c.error());
  std::printf("try_acquire three times with 2 leases: %s %s %s\n", a.value() ? "lease" : "none",
              b.value() ? "lease" : "none", c.value() ? "lease (wrong)" : "none");
  a.value().reset(); // returning a lease: the delete is sent, not waited for
  b.value().reset();

  std::atomic<int> working{0}, most{0}, failures{0};
  std::vector<std::thread> workers;
  for (int w = 1; w <= 5; ++w) {
    workers.emplace_back([&, w] {
      // Blocking calls from several threads on one session are fine; each
      // acquire is its own contender.
      auto l = sem.acquire(20s);
      if (!l) {
        fail("acquire", l.error());
        ++failures;
        return;
      }
      const int now = working.fetch_add(1) + 1;
      for (int m = most.load(); now > m && !most.compare_exchange_weak(m, now);) {
      }
      std::printf("worker %d got a lease (%d working): %s, fencing token %lld\n", w, now,
                  l.value().node_path().c_str(), static_cast<long long>(*l.value().fencing_token()));
      std::this_thread::sleep_for(100ms);
      working.fetch_sub(1);
    }); // the lease goes back when `l` is destroyed
  }
  for (auto& t : workers) t.join();
  std::printf("at most %d worked at once\n", most.load());

  if (auto r = zk.remove_recursive(path); !r) return fail("clean up", r.error());
  if (failures != 0 || most > 2 || c.value()) return std::fprintf(stderr, "semaphore: failed\n"), 1;
  std::printf("removed %s\n", path.c_str());
  return 0;
}
