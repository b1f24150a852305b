#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <zkrecipes/session.hpp>

int main(int argc, char** argv) {
  // The C client stays quiet unless asked (ZKRECIPES_TEST_LOG=1..4).
  if (const char* lvl = std::getenv("ZKRECIPES_TEST_LOG"))
    zkrecipes::set_client_log(static_cast<zkrecipes::log_level>(std::atoi(lvl)));
  doctest::Context ctx;
  ctx.applyCommandLine(argc, argv);
  return ctx.run();
}
