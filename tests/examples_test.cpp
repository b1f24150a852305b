// The recipes' example programs (examples/basics/) run against the shared
// test server: each must finish within a bound and exit 0. tests/meson.build
// passes their paths in ZKRECIPES_EXAMPLES when the zkrecipes_examples option
// is on; otherwise this test is skipped.
#include "support.hpp"

#include <zkrecipes/detail/process.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include <sys/wait.h>

namespace {

#ifdef ZKRECIPES_EXAMPLES
const std::vector<std::string> example_programs = {ZKRECIPES_EXAMPLES};
constexpr bool examples_built = true;
#else
const std::vector<std::string> example_programs;
constexpr bool examples_built = false;
#endif

} // namespace

TEST_CASE("examples: every recipe example runs against a real server and exits 0" *
          doctest::skip(!examples_built)) {
  using namespace zkt;
  namespace fs = std::filesystem;
  const std::string connect = shared_server().connect_string();
  // env(1) sets ZK_CONNECT and execs the example in its place: the pid we
  // hold is the example's, and only our environment stays untouched.
  const fs::path env = zkr::detail::find_executable("env");
  REQUIRE_MESSAGE(!env.empty(), "env(1) not found on PATH");
  auto dir = zkr::detail::temp_dir::create("zkrecipes-examples-");
  REQUIRE_MESSAGE(dir.has_value(), (dir ? "" : dir.error().message()));

  REQUIRE(example_programs.size() == 17);
  for (const auto& program : example_programs) {
    const std::string name = fs::path(program).filename().string();
    INFO("example " << name);
    const fs::path log = dir.value().path() / (name + ".out");
    auto child = zkr::detail::child_process::spawn({env.string(), "ZK_CONNECT=" + connect, program},
                                                   dir.value().path(), log);
    REQUIRE_MESSAGE(child.has_value(), (child ? "" : child.error().message()));
    const bool ended = child.value().wait_for(60s);
    if (!ended) child.value().kill_and_reap(); // SIGKILL to that pid only
    const int st = child.value().last_status();
    CHECK_MESSAGE((ended && st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0),
                  name << (ended ? " ended with " + child.value().describe_status() : " ran over 60 s and was killed")
                       << "; its output:\n"
                       << zkr::detail::tail_of_file(log, 40));
  }

  // Each example removes what it made (its root, /zkrecipes-<name>-example).
  auto s = connect_shared();
  auto top = s.children("/");
  REQUIRE(top.has_value());
  for (const auto& n : top.value().names) {
    const bool example_root = n.rfind("zkrecipes-", 0) == 0 && n.ends_with("-example");
    CHECK_MESSAGE(!example_root, "an example left /" << n << " behind");
  }
}
