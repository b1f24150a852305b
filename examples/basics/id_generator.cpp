// id_generator: unique, increasing ids for a naming service; no node stays.
// See docs/id_generator.md.
//
//   id_generator [connect-string]      (default: $ZK_CONNECT or 127.0.0.1:2181)
#include <zkrecipes/zkrecipes.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace zkr = zkrecipes;
using namespace std::chrono_literals;

static int fail(const char* what, const zkr::error& e) {
  std::fprintf(stderr, "id_generator: %s: %s\n", what, e.message().c_str());
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
  const std::string path = "/zkrecipes-id-generator-example";

  zkr::id_generator ids(zk, path);
  std::int64_t last = 0;
  bool increasing = true;
  for (int i = 0; i < 5; ++i) {
    auto id = ids.next(); // one round trip
    if (!id) return fail("next", id.error());
    std::printf("id %lld (sequence %lld)\n", static_cast<long long>(id.value().id),
                static_cast<long long>(id.value().sequence));
    increasing = increasing && id.value().id > last;
    last = id.value().id;
  }
  // The id nodes were removed as soon as they were made.
  auto left = zk.children(path);
  if (!left) return fail("children", left.error());
  std::printf("nodes left under %s: %zu\n", path.c_str(), left.value().names.size());

  if (auto r = zk.remove_recursive(path); !r) return fail("clean up", r.error());
  if (!increasing) return std::fprintf(stderr, "id_generator: failed\n"), 1;
  std::printf("removed %s\n", path.c_str());
  return 0;
}
