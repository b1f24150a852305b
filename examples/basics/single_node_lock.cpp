// single_node_lock: whoever creates the one ephemeral node holds the lock.
// Two sessions try; one waits for the node to go. See docs/single_node_lock.md.
//
//   single_node_lock [connect-string]      (default: $ZK_CONNECT or 127.0.0.1:2181)
#include <zkrecipes/zkrecipes.hpp>

#include <cstdio>
#include <cstdlib>
#include <future>
#include <string>
#include <thread>

namespace zkr = zkrecipes;
using namespace std::chrono_literals;

static int fail(const char* what, const zkr::error& e) {
  std::fprintf(stderr, "single_node_lock: %s: %s\n", what, e.message().c_str());
  return 1;
}

int main(int argc, char** argv) {
  zkr::session_options opts;
  const char* env = std::getenv("ZK_CONNECT");
  opts.connect_string = argc > 1 ? argv[1] : env ? env : "127.0.0.1:2181";
  opts.session_timeout = 5s;
  auto s1 = zkr::session::connect(opts, 15s);
  if (!s1) return fail("connect", s1.error());
  auto s2 = zkr::session::connect(opts, 15s);
  if (!s2) return fail("connect", s2.error());
  const std::string root = "/zkrecipes-single-node-lock-example";
  const std::string path = root + "/lock"; // the lock is this one node

  zkr::lock_options who;
  who.data = "first";
  zkr::single_node_lock first(s1.value(), path, who);
  who.data = "second";
  zkr::single_node_lock second(s2.value(), path, who);

  auto a = first.try_lock(); // one create
  if (!a) return fail("first try_lock", a.error());
  std::printf("first try_lock: %s, fencing token %lld\n", a.value() ? "held" : "taken",
              static_cast<long long>(first.fencing_token().value_or(-1)));
  auto b = second.try_lock(); // a create that meets node_exists, then an exists to see whose it is
  if (!b) return fail("second try_lock", b.error());
  std::printf("second try_lock while first holds: %s\n", b.value() ? "held (wrong)" : "false");
  auto t = second.lock(300ms);
  std::printf("second lock(300ms): %s\n", t ? "held (wrong)" : t.error().message().c_str());

  // Wait on another thread (blocking calls belong on user threads), then let go.
  auto waiter = std::async(std::launch::async, [&] { return second.lock(20s); });
  std::this_thread::sleep_for(200ms);
  std::printf("first unlocks\n");
  if (auto r = first.unlock(); !r) return fail("first unlock", r.error());
  if (waiter.wait_for(25s) != std::future_status::ready) return std::fprintf(stderr, "single_node_lock: stuck\n"), 1;
  if (auto r = waiter.get(); !r) return fail("second lock", r.error());
  auto node = s1.value().get(path);
  if (!node) return fail("get", node.error());
  std::printf("second holds it now: fencing token %lld, node data \"%s\"\n",
              static_cast<long long>(second.fencing_token().value_or(-1)), node.value().data.c_str());
  (void)second.unlock();

  if (auto r = s1.value().remove_recursive(root); !r) return fail("clean up", r.error());
  if (!a.value() || b.value() || t) return std::fprintf(stderr, "single_node_lock: failed\n"), 1;
  std::printf("removed %s\n", root.c_str());
  return 0;
}
