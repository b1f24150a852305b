// A process that registers one service instance and stays until killed, for
// the registry tests (an instance whose process dies must leave discovery).
//
//   test_registrant <connect> <base path> <service> <instance id> <port>
#include <zkrecipes/service_registry.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: test_registrant <connect> <base path> <service> <instance id> <port>\n");
    return 2;
  }
  zkrecipes::session_options o;
  o.connect_string = argv[1];
  o.session_timeout = std::chrono::milliseconds(2000);
  auto s = zkrecipes::session::connect(o, std::chrono::seconds(20));
  if (!s) {
    std::fprintf(stderr, "test_registrant: %s\n", s.error().message().c_str());
    return 1;
  }
  zkrecipes::service_instance me;
  me.service = argv[3];
  me.id = argv[4];
  me.address = "127.0.0.1";
  me.ports["http"] = static_cast<std::uint16_t>(std::atoi(argv[5]));
  me.payload = "pid=" + std::to_string(::getpid());
  zkrecipes::registry_options ro;
  ro.base_path = argv[2];
  zkrecipes::service_registration reg(s.value(), me, ro);
  auto r = reg.start();
  if (!r) {
    std::fprintf(stderr, "test_registrant: %s\n", r.error().message().c_str());
    return 1;
  }
  std::printf("registered %s timeout=%lld\n", r.value().c_str(),
              static_cast<long long>(s.value().negotiated_timeout().count()));
  std::fflush(stdout);
  for (;;) ::pause(); // until the test kills us
}
