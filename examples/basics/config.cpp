// config: a publisher writes versions of a configuration with
// compare-and-set; a subscriber follows them and keeps a fallback file.
// See docs/config.md.
//
//   config [connect-string]      (default: $ZK_CONNECT or 127.0.0.1:2181)
#include <zkrecipes/zkrecipes.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <unistd.h>

namespace zkr = zkrecipes;
using namespace std::chrono_literals;

static int fail(const char* what, const zkr::error& e) {
  std::fprintf(stderr, "config: %s: %s\n", what, e.message().c_str());
  return 1;
}

int main(int argc, char** argv) {
  zkr::session_options opts;
  const char* env = std::getenv("ZK_CONNECT");
  opts.connect_string = argc > 1 ? argv[1] : env ? env : "127.0.0.1:2181";
  auto s = zkr::session::connect(opts, 15s);
  auto sub_s = zkr::session::connect(opts, 15s);
  if (!s || !sub_s) return fail("connect", !s ? s.error() : sub_s.error());
  const std::string root = "/zkrecipes-config-example";
  const std::string path = root + "/app";
  const std::string file =
      (std::filesystem::temp_directory_path() / ("zkrecipes-config-example-" + std::to_string(::getpid()))).string();

  zkr::config_options o;
  o.keep_versions = 3;
  o.fallback_file = file;
  zkr::config<std::string>::publisher pub(s.value(), path, o);
  auto v = pub.publish("threads=8", zkr::config_absent);
  if (!v) return fail("publish", v.error());
  int code = 0;
  {
    zkr::config<std::string>::subscriber sub(sub_s.value(), path, o);
    sub.add_listener([](const zkr::config_snapshot<std::string>& c) {
      std::printf("subscriber: version %d: %s\n", int(c.version), c.value.c_str());
    });
    auto from = sub.start();
    if (!from) return fail("subscribe", from.error());
    std::printf("subscriber started on the %s config: %s\n", zkr::to_string(from.value()), sub.current()->value.c_str());

    for (const char* next : {"threads=16", "threads=32"}) {
      v = pub.publish(next, v.value());
      if (!v) return fail("publish", v.error());
    }
    auto stale = pub.publish("threads=1", 0); // written against an old version: refused
    std::printf("stale publish: %s\n", stale ? "accepted?!" : stale.error().message().c_str());
    if (stale) code = 1;
    auto rb = pub.rollback(0, v.value());       // version 0's value again, as version 3
    if (!rb) return fail("rollback", rb.error());
    if (auto w = sub.wait_for_version(rb.value(), 10s); !w) return fail("wait", w.error());
    auto kept = pub.versions();
    if (!kept) return fail("versions", kept.error());
    std::printf("now version %d: %s; kept versions:", int(sub.current()->version), sub.current()->value.c_str());
    for (auto k : kept.value()) std::printf(" %d", int(k));
    std::printf("\n");
    if (sub.current()->value != "threads=8" || kept.value().size() != 3) code = 1;
  }
  std::printf("fallback file %s holds the last config seen\n", file.c_str());
  std::filesystem::remove(file);
  if (auto r = s.value().remove_recursive(root); !r) return fail("clean up", r.error());
  std::printf("removed %s\n", root.c_str());
  return code;
}
