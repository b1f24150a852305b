// caches: a node cache, a children cache and a tree cache follow changes
// another session makes. See docs/caches.md.
//
//   caches [connect-string]      (default: $ZK_CONNECT or 127.0.0.1:2181)
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
  std::fprintf(stderr, "caches: %s: %s\n", what, e.message().c_str());
  return 1;
}

int main(int argc, char** argv) {
  zkr::session_options opts;
  const char* env = std::getenv("ZK_CONNECT");
  opts.connect_string = argc > 1 ? argv[1] : env ? env : "127.0.0.1:2181";
  auto s = zkr::session::connect(opts, 15s);
  auto w = zkr::session::connect(opts, 15s);
  if (!s || !w) return fail("connect", !s ? s.error() : w.error());
  const std::string root = "/zkrecipes-caches-example";
  auto& writer = w.value();
  if (auto r = writer.ensure_path(root + "/services"); !r) return fail("ensure_path", r.error());

  std::mutex m;
  std::condition_variable cv;
  std::vector<std::string> seen;
  auto record = [&](const char* who) {
    return [&, who](const zkr::cache_event& e) {
      std::printf("%-8s %-7s %s = \"%s\"\n", who, zkr::to_string(e.change), e.path.c_str(), e.data.data.c_str());
      std::lock_guard lk(m);
      seen.push_back(std::string(who) + " " + zkr::to_string(e.change) + " " + e.path);
      cv.notify_all();
    };
  };
  auto wait_for = [&](std::size_t n) {
    std::unique_lock lk(m);
    return cv.wait_for(lk, 10s, [&] { return seen.size() >= n; });
  };
  {
    zkr::node_cache flag(s.value(), root + "/flag");          // one node (absent for now)
    zkr::children_cache services(s.value(), root + "/services"); // a folder's children
    zkr::tree_cache tree(s.value(), root);                     // everything below root
    flag.add_listener(record("node"));
    services.add_listener(record("children"));
    tree.add_listener(record("tree"));
    // Each start() returns once its first snapshot is in.
    if (auto r = flag.start(); !r) return fail("start", r.error());
    if (auto r = services.start(); !r) return fail("start", r.error());
    if (auto r = tree.start(); !r) return fail("start", r.error());

    if (auto r = writer.create(root + "/flag", "on"); !r) return fail("create", r.error());
    if (!wait_for(2)) return std::fprintf(stderr, "caches: the flag was not seen\n"), 1; // node + tree
    if (auto r = writer.create(root + "/services/api", "127.0.0.1:8080"); !r) return fail("create", r.error());
    if (!wait_for(4)) return std::fprintf(stderr, "caches: the service was not seen\n"), 1; // children + tree
    if (auto r = writer.set(root + "/flag", "off"); !r) return fail("set", r.error());
    if (!wait_for(6)) return std::fprintf(stderr, "caches: the update was not seen\n"), 1;
    std::printf("flag is \"%s\"; %zu service(s); %zu node(s) in the tree\n", flag.current()->data.c_str(),
                services.children().size(), tree.nodes().size());
    if (flag.current()->data != "off" || services.children().size() != 1 || tree.nodes().size() != 4)
      return std::fprintf(stderr, "caches: the mirrors disagree with ZooKeeper\n"), 1;
  }
  if (auto r = writer.remove_recursive(root); !r) return fail("clean up", r.error());
  std::printf("removed %s\n", root.c_str());
  return 0;
}
