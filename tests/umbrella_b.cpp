// With umbrella_a.cpp: two TUs including everything, linked into one binary,
// so a non-inline definition in a header fails the link.
#include <zkrecipes/zkrecipes.hpp>
#include <zkrecipes/testing/ensemble.hpp>
#include <zkrecipes/testing/expire.hpp>
#include <zkrecipes/testing/server.hpp>
#include <zkrecipes/testing/tcp_proxy.hpp>

int zkrecipes_umbrella_b() { return static_cast<int>(zkrecipes::errc::closed); }
