// locking_queue: a worker takes a task, "crashes" (its session closes
// without ack), and another worker gets the same task; priorities first.
// See docs/locking_queue.md.
//
//   locking_queue [connect-string]      (default: $ZK_CONNECT or 127.0.0.1:2181)
#include <zkrecipes/zkrecipes.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace zkr = zkrecipes;
using namespace std::chrono_literals;

static int fail(const char* what, const zkr::error& e) {
  std::fprintf(stderr, "locking_queue: %s: %s\n", what, e.message().c_str());
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
  const std::string path = "/zkrecipes-locking-queue-example";

  zkr::locking_queue<std::string> q(zk, path);
  if (auto r = q.put("resize photo 1"); !r) return fail("put", r.error());
  if (auto r = q.put("urgent: resize photo 2", 5); !r) return fail("put", r.error()); // priority 5 first

  {
    // Worker A on a session of its own takes the first task and dies.
    auto a = zkr::session::connect(opts, 15s);
    if (!a) return fail("connect", a.error());
    zkr::locking_queue<std::string> qa(a.value(), path);
    auto t = qa.take(5s);
    if (!t) return fail("take", t.error());
    std::printf("worker A took \"%s\" (priority %d) and crashes\n", t.value().value().c_str(), t.value().priority());
    if (auto r = a.value().close(); !r) return fail("close", r.error()); // its ephemeral claim goes with it
  }

  // Worker B gets the task back, since A never acked it.
  std::string first;
  for (int i = 0; i < 2; ++i) {
    auto t = q.take(10s);
    if (!t) return fail("take", t.error());
    std::printf("worker B took \"%s\"\n", t.value().value().c_str());
    if (i == 0) first = t.value().value();
    if (auto r = t.value().ack(); !r) return fail("ack", r.error()); // removed for good
  }
  auto left = q.size();
  if (!left) return fail("size", left.error());
  std::printf("items left: %zu\n", left.value());

  if (auto r = zk.remove_recursive(path); !r) return fail("clean up", r.error());
  if (first != "urgent: resize photo 2" || left.value() != 0) return std::fprintf(stderr, "locking_queue: failed\n"), 1;
  std::printf("removed %s\n", path.c_str());
  return 0;
}
