// fifo_queue: two producers and two consumers share a queue; every item is
// taken once, each producer's items in the order put. See docs/fifo_queue.md.
//
//   fifo_queue [connect-string]      (default: $ZK_CONNECT or 127.0.0.1:2181)
#include <zkrecipes/zkrecipes.hpp>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace zkr = zkrecipes;
using namespace std::chrono_literals;

static int fail(const char* what, const zkr::error& e) {
  std::fprintf(stderr, "fifo_queue: %s: %s\n", what, e.message().c_str());
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
  const std::string path = "/zkrecipes-fifo-queue-example";
  zkr::queue_options qo;
  qo.bucket_capacity = 50; // small buckets, so that this short run crosses several

  zkr::fifo_queue<std::string> q(zk, path, qo);
  if (auto r = q.put("hello"); !r) return fail("put", r.error());
  if (auto r = q.put_all({"one", "two", "three"}); !r) return fail("put_all", r.error()); // one multi
  auto size = q.size();
  if (!size) return fail("size", size.error());
  std::printf("size after 4 puts: %zu\n", size.value());
  for (int i = 0; i < 4; ++i) {
    auto v = q.take(5s);
    if (!v) return fail("take", v.error());
    std::printf("took %s\n", v.value().c_str());
  }
  auto none = q.take(200ms);
  std::printf("take on an empty queue: %s\n", none ? "an item (wrong)" : none.error().message().c_str());

  // Two producers and two consumers, each with a queue object of its own.
  constexpr int per_producer = 200;
  std::mutex m;
  std::set<std::string> seen;
  std::atomic<int> taken{0}, failures{0};
  std::vector<std::thread> ts;
  for (int c = 0; c < 2; ++c)
    ts.emplace_back([&, c] {
      zkr::fifo_queue<std::string> cq(zk, path, qo);
      while (taken.load() < 2 * per_producer) {
        auto batch = cq.take_batch(20, 500ms); // pipelined reads and deletes
        if (!batch) continue;                  // timed out: look again
        std::lock_guard lk(m);
        for (auto& v : batch.value())
          if (!seen.insert(v).second) ++failures; // twice: must not happen
        taken += int(batch.value().size());
      }
      std::printf("consumer %d done\n", c);
    });
  for (int p = 0; p < 2; ++p)
    ts.emplace_back([&, p] {
      zkr::fifo_queue<std::string> pq(zk, path, qo);
      for (int i = 0; i < per_producer; ++i) {
        std::string item = "p"; // appended, not "p" + ...: GCC 12 -O2 warns falsely (-Wrestrict) on that
        item += std::to_string(p);
        item += '-';
        item += std::to_string(i);
        if (!pq.put(item)) ++failures;
      }
    });
  for (auto& t : ts) t.join();
  std::printf("%d items taken once each by two consumers\n", taken.load());

  if (auto r = zk.remove_recursive(path); !r) return fail("clean up", r.error());
  if (failures != 0 || none || int(seen.size()) != 2 * per_producer) return std::fprintf(stderr, "fifo_queue: failed\n"), 1;
  std::printf("removed %s\n", path.c_str());
  return 0;
}
