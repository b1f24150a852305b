// read_write_lock: two readers share the lock, a writer waits for them, and a
// reader arriving after the waiting writer queues behind it. See
// docs/read_write_lock.md.
//
//   read_write_lock [connect-string]      (default: $ZK_CONNECT or 127.0.0.1:2181)
#include <zkrecipes/zkrecipes.hpp>

#include <cstdio>
#include <cstdlib>
#include <future>
#include <string>
#include <thread>

namespace zkr = zkrecipes;
using namespace std::chrono_literals;

static int fail(const char* what, const zkr::error& e) {
  std::fprintf(stderr, "read_write_lock: %s: %s\n", what, e.message().c_str());
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
  const std::string path = "/zkrecipes-rwlock-example";

  // Each object is its own contender, as if each were in another process.
  zkr::read_lock reader_a(zk, path), reader_b(zk, path), late_reader(zk, path);
  zkr::write_lock writer(zk, path);

  if (auto r = reader_a.lock(10s); !r) return fail("reader a", r.error());
  if (auto r = reader_b.lock(10s); !r) return fail("reader b", r.error());
  std::printf("readers a and b hold the lock together: %d %d\n", reader_a.holds(), reader_b.holds());

  auto w = writer.try_lock();
  if (!w) return fail("writer try_lock", w.error());
  std::printf("writer try_lock while readers hold: %s\n", w.value() ? "taken (wrong)" : "false");

  // The writer queues (asynchronously) and waits for both readers.
  std::promise<zkr::result<void>> wrote;
  writer.async_lock(20s, [&](zkr::result<void> r) { wrote.set_value(std::move(r)); });
  for (int i = 0; i < 500 && writer.node_path().empty(); ++i) std::this_thread::sleep_for(10ms);
  std::printf("writer waits as %s\n", writer.node_path().c_str());

  // A reader that comes after the waiting writer does not overtake it.
  auto late = late_reader.try_lock();
  if (!late) return fail("late reader try_lock", late.error());
  std::printf("a later reader's try_lock while the writer waits: %s\n", late.value() ? "taken (wrong)" : "false");

  (void)reader_a.unlock();
  (void)reader_b.unlock(); // the last reader out lets the writer in
  auto f = wrote.get_future();
  if (f.wait_for(20s) != std::future_status::ready) return std::fprintf(stderr, "read_write_lock: writer stuck\n"), 1;
  if (auto r = f.get(); !r) return fail("writer", r.error());
  std::printf("writer holds the lock alone, fencing token %lld\n", static_cast<long long>(*writer.fencing_token()));

  (void)writer.unlock();
  if (auto r = late_reader.lock(10s); !r) return fail("late reader", r.error());
  std::printf("after the writer, the later reader gets in: %d\n", late_reader.holds());
  (void)late_reader.unlock();

  if (auto r = zk.remove_recursive(path); !r) return fail("clean up", r.error());
  if (w.value() || late.value()) return std::fprintf(stderr, "read_write_lock: the rules were broken\n"), 1;
  std::printf("removed %s\n", path.c_str());
  return 0;
}
