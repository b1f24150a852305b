// The consumer service of docs/install.md, built four ways by
// tests/packaging_test.cpp: as a meson subproject, through pkg-config and a
// Makefile, through CMake's find_package, and with plain -I flags. It includes
// the umbrella header, connects, takes a lock and says so.
//
//   service CONNECT LOCK_PATH NAME
#include <zkrecipes/zkrecipes.hpp>

#include <cstdio>

namespace zkr = zkrecipes;
using namespace std::chrono_literals;

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: service CONNECT LOCK_PATH NAME\n");
    return 2;
  }
  const char* name = argv[3];
  zkr::session_options opts;
  opts.connect_string = argv[1];
  opts.session_timeout = 10s;
  auto s = zkr::session::connect(opts, 30s);
  if (!s) return std::fprintf(stderr, "%s: %s\n", name, s.error().message().c_str()), 1;

  std::printf("%s: zkrecipes %s (%d), waiting for %s\n", name, ZKRECIPES_VERSION_STRING, ZKRECIPES_VERSION, argv[2]);
  std::fflush(stdout);
  zkr::lock_options lo;
  lo.data = name; // shown to whoever reads the lock's nodes
  zkr::mutex m(s.value(), argv[2], lo);
  auto g = zkr::lock_guard::acquire(m, 60s);
  if (!g) return std::fprintf(stderr, "%s: %s\n", name, g.error().message().c_str()), 1;
  std::printf("%s: holds %s (fencing token %lld)\n", name, m.node_path().c_str(),
              static_cast<long long>(*g.value().fencing_token()));
  return 0; // the guard unlocks, then the session closes
}
