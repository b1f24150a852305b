// service_registry: three instances register; a client discovers them and
// picks one by round robin and by consistent hash; one instance goes away.
// See docs/service_discovery.md.
//
//   service_registry [connect-string]      (default: $ZK_CONNECT or 127.0.0.1:2181)
#include <zkrecipes/zkrecipes.hpp>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

namespace zkr = zkrecipes;
using namespace std::chrono_literals;

static int fail(const char* what, const zkr::error& e) {
  std::fprintf(stderr, "service_registry: %s: %s\n", what, e.message().c_str());
  return 1;
}

int main(int argc, char** argv) {
  zkr::session_options opts;
  const char* env = std::getenv("ZK_CONNECT");
  opts.connect_string = argc > 1 ? argv[1] : env ? env : "127.0.0.1:2181";
  auto s = zkr::session::connect(opts, 15s);
  auto client_s = zkr::session::connect(opts, 15s);
  if (!s || !client_s) return fail("connect", !s ? s.error() : client_s.error());
  zkr::registry_options ro;
  ro.base_path = "/zkrecipes-service_registry-example";

  zkr::service_discovery api(client_s.value(), "api", ro);
  api.add_listener([](const zkr::instance_event& e) {
    std::printf("discovery: %s is %s (%s:%u)\n", e.instance.id.c_str(), zkr::to_string(e.change),
                e.instance.address.c_str(), unsigned(e.instance.port("http")));
  });
  if (auto r = api.start(); !r) return fail("discover", r.error());
  if (auto none = api.pick(zkr::selection::round_robin); !none)
    std::printf("before any registration: %s\n", none.error().message().c_str());

  std::vector<std::unique_ptr<zkr::service_registration>> regs;
  for (int i = 0; i < 3; ++i) {
    zkr::service_instance me;
    me.service = "api";
    me.id = "api-" + std::to_string(i);
    me.address = "127.0.0.1";
    me.ports["http"] = static_cast<std::uint16_t>(8080 + i);
    regs.push_back(std::make_unique<zkr::service_registration>(s.value(), me, ro));
    if (auto r = regs.back()->start(); !r) return fail("register", r.error());
  }
  if (!api.wait_until([](auto& l) { return l.size() == 3; }, 10s))
    return std::fprintf(stderr, "service_registry: instances not seen\n"), 1;
  for (int i = 0; i < 4; ++i) std::printf("round robin -> %s\n", api.pick(zkr::selection::round_robin).value().id.c_str());
  auto owner = api.pick_by_key("user-42").value().id;
  std::printf("user-42 -> %s (consistent hash)\n", owner.c_str());

  if (auto r = regs[std::size_t(owner.back() - '0')]->stop(); !r) return fail("unregister", r.error()); // it goes away
  if (!api.wait_until([](auto& l) { return l.size() == 2; }, 10s))
    return std::fprintf(stderr, "service_registry: departure not seen\n"), 1;
  auto moved = api.pick_by_key("user-42").value().id;
  std::printf("user-42 -> %s after %s left\n", moved.c_str(), owner.c_str());
  regs.clear();
  if (auto r = s.value().remove_recursive(ro.base_path); !r) return fail("clean up", r.error());
  std::printf("removed %s\n", ro.base_path.c_str());
  return moved != owner ? 0 : 1;
}
