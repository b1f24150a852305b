// lock: three workers, each with its own session (as three processes would
// have), take turns on one zkrecipes::mutex; a guarded resource checks their
// fencing tokens. See docs/mutex.md.
//
//   lock [connect-string]      (default: $ZK_CONNECT or 127.0.0.1:2181)
#include <zkrecipes/zkrecipes.hpp>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace zkr = zkrecipes;
using namespace std::chrono_literals;

// What the lock protects. It remembers the largest fencing token it has seen
// and refuses older ones: a holder whose session expired cannot write late.
struct guarded_resource {
  std::mutex mx;
  std::int64_t highest = 0;
  bool write(std::int64_t token) {
    std::lock_guard lk(mx);
    if (token < highest) return false;
    highest = token;
    return true;
  }
};

// One worker: its own session (as another process would have), three holds.
static bool work(const zkr::session_options& opts, const std::string& path, int w, guarded_resource& resource,
                 std::atomic<int>& inside, std::atomic<std::int64_t>& first_token) {
  auto s = zkr::session::connect(opts, 15s);
  if (!s) return std::fprintf(stderr, "lock: worker %d: %s\n", w, s.error().message().c_str()), false;
  zkr::lock_options lo;
  lo.data = "worker " + std::to_string(w); // shown to whoever reads the lock's nodes
  zkr::mutex m(s.value(), path, lo);
  for (int round = 1; round <= 3; ++round) {
    auto g = zkr::lock_guard::acquire(m, 20s); // a bounded wait; the guard unlocks
    if (!g) return std::fprintf(stderr, "lock: worker %d: %s\n", w, g.error().message().c_str()), false;
    const std::int64_t token = *g.value().fencing_token();
    std::int64_t none = 0;
    first_token.compare_exchange_strong(none, token);
    const bool alone = inside.fetch_add(1) == 0;
    const bool accepted = resource.write(token);
    std::printf("worker %d holds the lock (round %d): %s, fencing token %lld%s\n", w, round,
                m.node_path().c_str(), static_cast<long long>(token), accepted ? "" : " REFUSED");
    std::this_thread::sleep_for(20ms);
    inside.fetch_sub(1);
    if (!alone || !accepted) return false;
  } // each guard unlocks at the end of its round: the delete is sent, not waited for
  return true;
}

int main(int argc, char** argv) {
  zkr::session_options opts;
  const char* env = std::getenv("ZK_CONNECT");
  opts.connect_string = argc > 1 ? argv[1] : env ? env : "127.0.0.1:2181";
  opts.session_timeout = 5s;
  const std::string path = "/zkrecipes-lock-example";

  guarded_resource resource;
  std::atomic<int> inside{0}, failures{0};
  std::atomic<std::int64_t> first_token{0};
  std::vector<std::thread> workers;
  for (int w = 1; w <= 3; ++w)
    workers.emplace_back([&, w] {
      if (!work(opts, path, w, resource, inside, first_token)) ++failures;
    });
  for (auto& t : workers) t.join();

  // A holder that lost its session and comes back late is refused.
  std::printf("a late write with the first holder's token %lld is %s\n", static_cast<long long>(first_token.load()),
              resource.write(first_token.load()) ? "ACCEPTED (wrong)" : "refused");

  auto s = zkr::session::connect(opts, 15s);
  if (!s) return std::fprintf(stderr, "lock: %s\n", s.error().message().c_str()), 1;
  if (auto r = s.value().remove_recursive(path); !r)
    return std::fprintf(stderr, "lock: %s\n", r.error().message().c_str()), 1;
  if (failures != 0) return std::fprintf(stderr, "lock: %d failure(s)\n", failures.load()), 1;
  std::printf("9 holds, one at a time, tokens only grew; removed %s\n", path.c_str());
  return 0;
}
