// Packaging (docs/install.md): `meson install` into a temporary prefix, then
// the consumer service of tests/consumers/ built the four ways a user brings
// zkrecipes in (a meson subproject through a wrap naming this checkout,
// pkg-config with a Makefile, CMake's find_package, plain -I flags) and run
// against the shared server, where it must wait for a lock the test holds and
// then take it.
//
// Everything is built in a temporary directory (a copy of tests/consumers),
// so the checkout is never written to. Each step is one shell command with a
// bound; on a timeout its whole process group is killed.
#include "support.hpp"

#include <zkrecipes/detail/process.hpp>

#include <signal.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#ifndef ZKRECIPES_CHECKOUT
#error "tests/meson.build defines ZKRECIPES_CHECKOUT and ZKRECIPES_PROJECT_VERSION"
#endif

using namespace zkt;
namespace fs = std::filesystem;
namespace zkd = zkrecipes::detail;

namespace {

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

/// Single-quoted for sh.
std::string q(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}
std::string q(const fs::path& p) { return q(p.string()); }

struct shell_run {
  bool ok = false;     ///< exited with status 0 within the bound
  std::string account; ///< the command, how it ended and its output's tail, for messages
};

/// Runs `script` with /bin/sh in `dir`, bounded by `bound`; output goes to `log`.
shell_run sh(const std::string& script, const fs::path& dir, const fs::path& log, std::chrono::seconds bound) {
  shell_run r;
  auto child = zkd::child_process::spawn({"/bin/sh", "-c", script}, dir, log);
  if (!child) return {false, script + ": " + child.error().message()};
  const pid_t group = child.value().pid(); // the child leads its own process group
  const bool finished = child.value().wait_for(bound);
  if (!finished && group > 1) {
    // SIGTERM first: ninja (under meson compile) runs each job in a group of
    // its own and ends them when told; then whatever is left of the group.
    ::kill(-group, SIGTERM);
    (void)child.value().wait_for(std::chrono::seconds(5));
    ::kill(-group, SIGKILL);
  }
  child.value().kill_and_reap();
  r.ok = finished && child.value().describe_status() == "exit status 0";
  std::string out = zkd::read_file(log);
  if (out.size() > 6000) out = "..." + out.substr(out.size() - 6000);
  r.account = "$ " + script + "\n" + (finished ? child.value().describe_status() : "timed out after " +
              std::to_string(bound.count()) + " s") + "\n" + out;
  return r;
}

/// `meson install` of this checkout into a temporary prefix and a copy of
/// tests/consumers beside it: made once, removed at exit.
struct installation {
  zkd::temp_dir dir;
  fs::path prefix, consumers;
  shell_run install;
};

installation& installed() {
  static std::unique_ptr<installation> inst = [] {
    auto i = std::make_unique<installation>();
    auto d = zkd::temp_dir::create("zkrecipes-packaging-");
    REQUIRE_MESSAGE(d.has_value(), (d ? "" : d.error().message()));
    i->dir = std::move(d).value();
    i->prefix = i->dir.path() / "prefix";
    i->consumers = i->dir.path() / "consumers";
    const fs::path checkout = ZKRECIPES_CHECKOUT;
    // Links copied as links: a subprojects/zkrecipes link to the checkout is
    // not followed. Outputs of a build made in place would look up to date.
    fs::copy(checkout / "tests" / "consumers", i->consumers,
             fs::copy_options::recursive | fs::copy_options::copy_symlinks);
    for (const char* kind : {"meson", "pkg-config", "cmake", "plain"})
      for (const char* made : {"build", "service", "subprojects"}) fs::remove_all(i->consumers / kind / made);
    // Only the library: no examples, tests or their dependencies.
    i->install = sh("meson setup " + q(i->dir.path() / "build") + " " + q(checkout) + " --prefix " + q(i->prefix) +
                        " -Dzkrecipes_examples=false -Dzkrecipes_tests=false && meson install -C " +
                        q(i->dir.path() / "build"),
                    i->dir.path(), i->dir.path() / "install.log", std::chrono::seconds(300));
    return i;
  }();
  REQUIRE_MESSAGE(inst->install.ok, inst->install.account);
  return *inst;
}

/// Runs a built consumer: it must queue behind the lock the test holds, then
/// take it once released, and say which zkrecipes it was built with.
void run_consumer(const fs::path& exe, const std::string& name) {
  REQUIRE_MESSAGE(fs::exists(exe), (exe.string() + " was not built"));
  auto s = connect_shared();
  const std::string lock = unique_root("consumer-" + name) + "/lock";
  zkr::mutex held(s, lock);
  REQUIRE(held.lock(10s));
  const fs::path log = installed().dir.path() / (name + ".run.log");
  auto child = zkd::child_process::spawn({exe.string(), shared_server().connect_string(), lock, name},
                                         installed().dir.path(), log);
  REQUIRE_MESSAGE(child.has_value(), (child ? "" : child.error().message()));
  // Its lock node appears behind ours while we hold.
  const bool queued = eventually([&] {
    auto c = s.children(lock);
    return c && c.value().names.size() == 2;
  }, 30s);
  CHECK_MESSAGE(queued, zkd::read_file(log));
  CHECK_MESSAGE(child.value().running(), zkd::read_file(log));
  REQUIRE(held.unlock());
  const bool exited = child.value().wait_for(60s);
  const std::string out = zkd::read_file(log);
  REQUIRE_MESSAGE(exited, out);
  CHECK_MESSAGE(child.value().describe_status() == "exit status 0", out);
  CHECK_MESSAGE(out.find(name + ": zkrecipes " ZKRECIPES_VERSION_STRING) != std::string::npos, out);
  CHECK_MESSAGE(out.find(name + ": holds " + lock + "/") != std::string::npos, out);
}

/// The wrap of the meson consumer: a git wrap naming this checkout. It clones
/// the checked-out commit (HEAD); when the checkout is not a git work tree
/// (or git refuses it), a commit of its library files in the temporary
/// directory stands in, and the test says so.
std::string wrap_url(const fs::path& work) {
  const fs::path checkout = ZKRECIPES_CHECKOUT;
  auto probe = sh("git -C " + q(checkout) + " rev-parse --verify -q HEAD", work, work / "git-probe.log",
                  std::chrono::seconds(30));
  if (probe.ok) {
    auto dirty = sh("test -z \"$(git -C " + q(checkout) + " status --porcelain -- include meson.build meson_options.txt)\"",
                    work, work / "git-dirty.log", std::chrono::seconds(30));
    if (!dirty.ok)
      MESSAGE(("the meson subproject consumer builds the committed HEAD of " + checkout.string() +
               ": uncommitted changes under include/ or to meson.build are not in it"));
    return checkout.string();
  }
  MESSAGE((checkout.string() + " is not a git work tree git can read; the wrap names a commit of its library files instead"));
  const fs::path snap = work / "zkrecipes-snapshot";
  auto made = sh("mkdir -p " + q(snap) + " && cp -R " + q(checkout / "include") + " " + q(checkout / "meson.build") +
                     " " + q(checkout / "meson_options.txt") + " " + q(checkout / "cmake") + " " + q(snap) +
                     " && cd " + q(snap) + " && git init -q && git add -A && git -c user.name=zkrecipes-tests" +
                     " -c user.email=tests@zkrecipes.invalid commit -q -m snapshot",
                 work, work / "git-snapshot.log", std::chrono::seconds(60));
  REQUIRE_MESSAGE(made.ok, made.account);
  return snap.string();
}

constexpr auto build_bound = std::chrono::seconds(600);

} // namespace

TEST_CASE("packaging: the version header agrees with meson's project version") {
  CHECK(std::string(ZKRECIPES_VERSION_STRING) == ZKRECIPES_PROJECT_VERSION);
  CHECK(std::string(zkr::library_version.text) == ZKRECIPES_PROJECT_VERSION);
  const std::string v = std::to_string(ZKRECIPES_VERSION_MAJOR) + "." + std::to_string(ZKRECIPES_VERSION_MINOR) +
                        "." + std::to_string(ZKRECIPES_VERSION_PATCH);
  CHECK(v == ZKRECIPES_PROJECT_VERSION);
  static_assert(ZKRECIPES_VERSION ==
                ZKRECIPES_VERSION_MAJOR * 10000 + ZKRECIPES_VERSION_MINOR * 100 + ZKRECIPES_VERSION_PATCH);
  static_assert(zkr::library_version.major == ZKRECIPES_VERSION_MAJOR);
}

TEST_CASE("packaging: meson install puts every header, zkrecipes.pc and the CMake package under the prefix") {
  auto& inst = installed();
  const fs::path checkout = ZKRECIPES_CHECKOUT;
  int headers = 0;
  for (const auto& e : fs::recursive_directory_iterator(checkout / "include")) {
    if (!e.is_regular_file()) continue;
    const auto rel = fs::relative(e.path(), checkout / "include");
    CHECK_MESSAGE(fs::exists(inst.prefix / "include" / rel), (rel.string() + " is not installed"));
    ++headers;
  }
  CHECK(headers > 40);
  CHECK(fs::exists(inst.prefix / "include/zkrecipes/version.hpp"));
  CHECK(fs::exists(inst.prefix / "share/cmake/zkrecipes/zkrecipesConfig.cmake"));
  CHECK(fs::exists(inst.prefix / "share/cmake/zkrecipes/zkrecipesConfigVersion.cmake"));

  const fs::path work = inst.dir.path();
  const std::string pc = "PKG_CONFIG_PATH=" + q(inst.prefix / "share/pkgconfig") + " pkg-config ";
  auto ver = sh(pc + "--modversion zkrecipes", work, work / "pc-version.log", std::chrono::seconds(30));
  REQUIRE_MESSAGE(ver.ok, ver.account);
  CHECK(zkd::read_file(work / "pc-version.log") == std::string(ZKRECIPES_PROJECT_VERSION) + "\n");
  auto flags = sh(pc + "--cflags --libs zkrecipes", work, work / "pc-flags.log", std::chrono::seconds(30));
  REQUIRE_MESSAGE(flags.ok, flags.account);
  const std::string f = zkd::read_file(work / "pc-flags.log");
  CHECK_MESSAGE(f.find("-I" + (inst.prefix / "include").string()) != std::string::npos, f);
  CHECK_MESSAGE(f.find("-DTHREADED") != std::string::npos, f);
  CHECK_MESSAGE(f.find("-std=c++20") != std::string::npos, f);
  CHECK_MESSAGE(f.find("-lzookeeper_mt") != std::string::npos, f);

  // The CMake package: version matching, and what the target carries.
  const fs::path probe = work / "cmake-probe";
  fs::create_directories(probe);
  std::ofstream(probe / "CMakeLists.txt") << R"(cmake_minimum_required(VERSION 3.16)
project(probe LANGUAGES CXX)
find_package(zkrecipes 0.999 QUIET)
message(STATUS "probe: 0.999 found=${zkrecipes_FOUND}")
find_package(zkrecipes 1.0 QUIET)
message(STATUS "probe: 1.0 found=${zkrecipes_FOUND}")
find_package(zkrecipes 0 QUIET)
message(STATUS "probe: 0 found=${zkrecipes_FOUND}")
find_package(zkrecipes 0.0.1...<)" ZKRECIPES_VERSION_STRING R"( QUIET)
message(STATUS "probe: below found=${zkrecipes_FOUND}")
find_package(zkrecipes 0.0.1...)" ZKRECIPES_VERSION_STRING R"( QUIET)
message(STATUS "probe: range found=${zkrecipes_FOUND}")
find_package(zkrecipes )" ZKRECIPES_VERSION_STRING R"( EXACT REQUIRED)
message(STATUS "probe: exact found=${zkrecipes_FOUND} version=${zkrecipes_VERSION}")
get_target_property(defs zkrecipes::zkrecipes INTERFACE_COMPILE_DEFINITIONS)
get_target_property(features zkrecipes::zkrecipes INTERFACE_COMPILE_FEATURES)
get_target_property(libs zkrecipes::zkrecipes INTERFACE_LINK_LIBRARIES)
get_target_property(incs zkrecipes::zkrecipes INTERFACE_INCLUDE_DIRECTORIES)
message(STATUS "probe: defs=${defs}")
message(STATUS "probe: features=${features}")
message(STATUS "probe: libs=${libs}")
message(STATUS "probe: incs=${incs}")
)";
  auto cm = sh("cmake -S . -B build -DCMAKE_PREFIX_PATH=" + q(inst.prefix), probe, work / "cmake-probe.log",
               std::chrono::seconds(120));
  REQUIRE_MESSAGE(cm.ok, cm.account);
  const std::string out = zkd::read_file(work / "cmake-probe.log");
  CHECK_MESSAGE(out.find("probe: 0.999 found=0") != std::string::npos, out);
  CHECK_MESSAGE(out.find("probe: 1.0 found=0") != std::string::npos, out);
  CHECK_MESSAGE(out.find("probe: 0 found=0") != std::string::npos, out);
  CHECK_MESSAGE(out.find("probe: below found=0") != std::string::npos, out);
  CHECK_MESSAGE(out.find("probe: range found=1") != std::string::npos, out);
  CHECK_MESSAGE(out.find("probe: exact found=1 version=" ZKRECIPES_VERSION_STRING) != std::string::npos, out);
  CHECK_MESSAGE(out.find("probe: defs=THREADED") != std::string::npos, out);
  CHECK_MESSAGE(out.find("probe: features=cxx_std_20") != std::string::npos, out);
  CHECK_MESSAGE(out.find("libzookeeper_mt") != std::string::npos, out);
  CHECK_MESSAGE(out.find("Boost::headers;Threads::Threads") != std::string::npos, out);
  CHECK_MESSAGE(out.find("probe: incs=" + (inst.prefix / "include").string() + ";") != std::string::npos, out);
}

TEST_CASE("packaging: a meson project with zkrecipes as a subproject (a wrap naming the checkout) takes a lock") {
  auto& inst = installed();
  const fs::path work = inst.dir.path(), project = inst.consumers / "meson";
  fs::create_directories(project / "subprojects");
  std::ofstream(project / "subprojects" / "zkrecipes.wrap") << "[wrap-git]\n"
                                                              << "url = " << wrap_url(work) << "\n"
                                                              << "revision = head\n\n"
                                                              << "[provide]\n"
                                                              << "dependency_names = zkrecipes\n";
  // --force-fallback-for: the subproject even where an install is found.
  auto b = sh("meson setup build --force-fallback-for=zkrecipes && meson compile -C build -v", project,
              work / "meson-consumer.log", build_bound);
  REQUIRE_MESSAGE(b.ok, b.account);
  CHECK(fs::exists(project / "subprojects/zkrecipes/include/zkrecipes/zkrecipes.hpp"));
  const std::string out = zkd::read_file(work / "meson-consumer.log");
  CHECK_MESSAGE(contains(out, "Subproject zkrecipes finished"), b.account);
  CHECK_MESSAGE(contains(out, "-I../subprojects/zkrecipes/include"), b.account); // the clone's headers, not an install's
  run_consumer(project / "build/service", "meson-subproject");
}

TEST_CASE("packaging: a Makefile with flags from pkg-config takes a lock") {
  auto& inst = installed();
  const fs::path project = inst.consumers / "pkg-config";
  // In the environment: make 4.3's $(shell) does not see command-line variables.
  auto b = sh("PKG_CONFIG_PATH=" + q(inst.prefix / "share/pkgconfig") + " make", project,
              inst.dir.path() / "pkg-config-consumer.log", build_bound);
  REQUIRE_MESSAGE(b.ok, b.account);
  // make echoes the compile: the flags came from this install's zkrecipes.pc.
  CHECK_MESSAGE(contains(zkd::read_file(inst.dir.path() / "pkg-config-consumer.log"),
                         "-I" + (inst.prefix / "include").string()), b.account);
  run_consumer(project / "service", "pkg-config");
}

TEST_CASE("packaging: a CMake project with find_package(zkrecipes) takes a lock") {
  auto& inst = installed();
  const fs::path project = inst.consumers / "cmake";
  auto b = sh("cmake -S . -B build -DCMAKE_PREFIX_PATH=" + q(inst.prefix) + " && cmake --build build -v", project,
              inst.dir.path() / "cmake-consumer.log", build_bound);
  REQUIRE_MESSAGE(b.ok, b.account);
  // The compile line shows the include directory of this install's package
  // (as a system one: CMake's default for an imported target).
  const std::string out = zkd::read_file(inst.dir.path() / "cmake-consumer.log");
  const std::string inc = (inst.prefix / "include").string();
  CHECK_MESSAGE((contains(out, "-isystem " + inc) || contains(out, "-I" + inc)), b.account);
  run_consumer(project / "build/service", "cmake");
}

TEST_CASE("packaging: plain -I flags take a lock") {
  auto& inst = installed();
  const fs::path project = inst.consumers / "plain";
  auto b = sh("./build.sh " + q(inst.prefix / "include"), project, inst.dir.path() / "plain-consumer.log",
              build_bound);
  REQUIRE_MESSAGE(b.ok, b.account);
  run_consumer(project / "service", "plain");
}
