// Interoperability with Apache Curator: zkrecipes::mutex and Curator's
// InterProcessMutex on one path exclude each other and queue together;
// zkrecipes::leader_latch and Curator's LeaderLatch on one path elect one
// leader between them.
//
// The Curator side is tests/interop/CuratorLock.java, run in a child JVM
// (see that file for its modes). tests/interop/meson.build compiles it when
// javac and Debian's Curator jars (libcurator-recipes-java) are there at
// configure time; otherwise the test compiles it itself into its temporary
// directory, and fails saying what is missing when it cannot.
// ZKRECIPES_SKIP_INTEROP=1 skips these tests (nothing else does).
#include "support.hpp"

#include <zkrecipes/detail/process.hpp>
#include <zkrecipes/leader_latch.hpp>
#include <zkrecipes/mutex.hpp>
#include <zkrecipes/testing/server.hpp>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef ZKRECIPES_INTEROP_SOURCE
#error "tests/interop/meson.build defines ZKRECIPES_INTEROP_SOURCE and ZKRECIPES_INTEROP_CLASSPATH"
#endif

namespace {

namespace zkr = zkrecipes;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr const char* install_hint =
    "install Debian 12's libcurator-recipes-java and default-jdk-headless (./run test does), "
    "or set ZKRECIPES_SKIP_INTEROP=1 to skip the Curator interop tests";

bool skip_requested() {
  const char* v = std::getenv("ZKRECIPES_SKIP_INTEROP");
  return v != nullptr && std::string_view(v) == "1";
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(s);
  while (std::getline(in, cur, sep)) out.push_back(cur);
  return out;
}

/// Finds javac: $JAVA_HOME/bin/javac, /usr/bin/javac, then PATH.
fs::path find_javac() {
  if (const char* home = std::getenv("JAVA_HOME"); home != nullptr && *home != '\0') {
    auto c = fs::path(home) / "bin" / "javac";
    if (zkr::detail::is_executable(c)) return c;
  }
  if (zkr::detail::is_executable("/usr/bin/javac")) return "/usr/bin/javac";
  return zkr::detail::find_executable("javac");
}

/// The java launcher and class path that run CuratorLock.
struct curator_env {
  fs::path java;
  std::string classpath; // class directory + jars
};

/// Classes compiled at run time (only when the build did not compile them),
/// in a directory removed at exit.
struct runtime_classes {
  zkr::detail::temp_dir dir;
  std::string error; // why compiling failed; empty on success
};

/// Locates (or compiles) CuratorLock; returns an error message, or "" and
/// fills `env`.
std::string prepare(curator_env& env) {
  std::string missing;
  const std::string jars = ZKRECIPES_INTEROP_CLASSPATH;
  for (const auto& j : split(jars, ':'))
    if (!fs::is_regular_file(j)) missing += " " + j;
  if (!missing.empty()) return "Curator interop: jars missing:" + missing + "; " + install_hint;

  auto java = zkr::detail::resolve_java(zkr::testing::server_options{});
  if (!java) return "Curator interop: " + java.error().message() + "; " + install_hint;
  env.java = java.value();

  std::string classes;
#ifdef ZKRECIPES_INTEROP_CLASSES
  if (fs::is_regular_file(fs::path(ZKRECIPES_INTEROP_CLASSES) / "CuratorLock.class"))
    classes = ZKRECIPES_INTEROP_CLASSES;
#endif
  if (classes.empty()) {
    // Not built (no javac or jars at configure time): compile it once per run.
    static runtime_classes rt = [&] {
      runtime_classes r;
      auto javac = find_javac();
      if (javac.empty()) {
        r.error = "Curator interop: javac not found ($JAVA_HOME/bin, /usr/bin, PATH)";
        return r;
      }
      auto d = zkr::detail::temp_dir::create("zkrecipes-interop-classes-");
      if (!d) {
        r.error = "Curator interop: " + d.error().message();
        return r;
      }
      r.dir = std::move(d).value();
      const auto log = r.dir.path() / "javac.log";
      auto c = zkr::detail::child_process::spawn(
          {javac.string(), "-Xlint:all,-path", "-d", r.dir.path().string(), "-cp", jars,
           ZKRECIPES_INTEROP_SOURCE},
          r.dir.path(), log);
      if (!c) {
        r.error = "Curator interop: cannot start javac: " + c.error().message();
      } else if (!c.value().wait_for(120s)) {
        r.error = "Curator interop: javac did not finish in 120 s";
      } else if (c.value().last_status() != 0) {
        r.error = "Curator interop: javac failed (" + c.value().describe_status() +
                  "):\n" + zkr::detail::tail_of_file(log);
      }
      return r;
    }();
    if (!rt.error.empty()) return rt.error + "; " + install_hint;
    classes = rt.dir.path().string();
  }
  env.classpath = classes + ":" + jars;
  return {};
}

/// One CuratorLock JVM. Its stdout and stderr go to `<dir>/<name>.out`. The
/// destructor SIGKILLs it (by pid) and reaps it if it still runs.
class curator_process {
public:
  static curator_process start(const curator_env& env, const fs::path& dir, const std::string& name,
                               std::vector<std::string> args) {
    curator_process p;
    p.out_ = dir / (name + ".out");
    std::vector<std::string> argv = {env.java.string(),
                                     "-Xmx128m",
                                     "-XX:+UseSerialGC",
                                     "-XX:TieredStopAtLevel=1",
                                     "-XX:-UsePerfData",
                                     "-Djava.net.preferIPv4Stack=true",
                                     "-cp",
                                     env.classpath,
                                     "CuratorLock"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto c = zkr::detail::child_process::spawn(argv, dir, p.out_);
    REQUIRE_MESSAGE(c.has_value(), "cannot start the Curator JVM: " << (c ? "" : c.error().message()));
    p.child_ = std::move(c).value();
    return p;
  }

  /// Its output so far (stdout and stderr).
  std::string output() const { return zkr::detail::read_file(out_); }

  /// The rest of the line after the first line starting with `prefix`, or
  /// nullopt.
  std::optional<std::string> line(std::string_view prefix) const {
    for (const auto& l : split(output(), '\n'))
      if (l.rfind(prefix, 0) == 0) return l.substr(prefix.size());
    return std::nullopt;
  }

  /// Waits (bounded) until a line starts with `prefix`; stops early when the
  /// JVM exits without printing it.
  std::optional<std::string> wait_line(std::string_view prefix, std::chrono::milliseconds bound) const {
    std::optional<std::string> found;
    zkt::eventually(
        [&] {
          const bool ran = child_.running(); // sample before reading the output
          found = line(prefix);
          return found.has_value() || !ran;
        },
        bound);
    return found;
  }

  /// True when some line is exactly `text`.
  bool has_line(std::string_view text) const {
    for (const auto& l : split(output(), '\n'))
      if (l == text) return true;
    return false;
  }

  /// Waits (bounded) until some line is exactly `text`; stops early when the
  /// JVM exits without printing it.
  bool wait_exact(std::string_view text, std::chrono::milliseconds bound) const {
    bool found = false;
    zkt::eventually(
        [&] {
          const bool ran = child_.running(); // sample before reading the output
          found = has_line(text);
          return found || !ran;
        },
        bound);
    return found;
  }

  /// Waits up to `bound` for the JVM to end; true when it did.
  bool wait_exit(std::chrono::milliseconds bound) const { return child_.wait_for(bound); }

  /// Exit status once ended, else -1.
  int exit_code() const {
    const int st = child_.last_status();
    if (child_.running() || st == -1 || !WIFEXITED(st)) return -1;
    return WEXITSTATUS(st);
  }

  /// For failure messages: how it ended and what it printed.
  std::string describe() const {
    return std::string(child_.running() ? "still running" : child_.describe_status()) +
           "; output:\n" + zkr::detail::tail_of_file(out_, 30);
  }

private:
  fs::path out_;
  zkr::detail::child_process child_;
};

std::string base_name(const std::string& p) { return p.substr(p.rfind('/') + 1); }

// _c_<uuid>-<kind>-<seq>: Curator's protected sequential node (kind "lock"
// for InterProcessMutex, "latch" for LeaderLatch).
bool is_curator_node(const std::string& n, const std::string& kind = "lock") {
  const std::regex re("_c_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-" + kind + "-[0-9]{10}");
  return std::regex_match(n, re);
}
// _c_<32 hex>-<kind>-<seq>: ours.
bool is_zkrecipes_node(const std::string& n, const std::string& kind = "lock") {
  const std::regex re("_c_[0-9a-f]{32}-" + kind + "-[0-9]{10}");
  return std::regex_match(n, re);
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return "[" + s + "]";
}

std::vector<std::string> participants_of(const zkr::mutex& m) {
  auto r = m.participants();
  REQUIRE_MESSAGE(r.has_value(), (r ? "" : r.error().message()));
  return r.value();
}

std::vector<zkr::participant> participants_of(const zkr::leader_latch& l) {
  auto r = l.participants();
  REQUIRE_MESSAGE(r.has_value(), (r ? "" : r.error().message()));
  return r.value();
}

/// "[java* (node), cpp (node)]": ids in queue order, * marks the leader.
std::string joined(const std::vector<zkr::participant>& v) {
  std::vector<std::string> parts;
  for (const auto& p : v) parts.push_back(p.id + (p.leader ? "*" : "") + " (" + p.node + ")");
  return joined(parts);
}

std::vector<std::string> ids_of(const std::vector<zkr::participant>& v) {
  std::vector<std::string> out;
  for (const auto& p : v) out.push_back(p.id);
  return out;
}

/// Appends `line` to `fd` with one write(2) (the fd has O_APPEND): lines of
/// concurrent writers never interleave inside a line.
bool append_line(int fd, const std::string& line) {
  return ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
}

/// Checks a holders log: "<label> enter" and "<label> exit" lines strictly
/// alternate, each exit by the label of the enter before it, and each label
/// entered the expected number of times. Returns "" or what is wrong; counts
/// the hand-offs between the Curator label and the others in `handoffs`.
std::string check_log(const std::string& text, const std::map<std::string, int>& expected,
                      const std::string& curator_label, int& handoffs) {
  std::map<std::string, int> enters;
  std::string holder, last_holder;
  handoffs = 0;
  int n = 0;
  for (const auto& l : split(text, '\n')) {
    ++n;
    auto where = [&] { return "log line " + std::to_string(n) + " \"" + l + "\": "; };
    const auto sp = l.find(' ');
    if (sp == std::string::npos) return where() + "malformed";
    const std::string label = l.substr(0, sp), what = l.substr(sp + 1);
    if (what == "enter") {
      if (!holder.empty()) return where() + "entered while " + holder + " holds the lock";
      holder = label;
      ++enters[label];
      if (!last_holder.empty() && (label == curator_label) != (last_holder == curator_label)) ++handoffs;
    } else if (what == "exit") {
      if (holder != label)
        return where() + "exit without a matching enter (holder: " + (holder.empty() ? "none" : holder) + ")";
      last_holder = holder;
      holder.clear();
    } else {
      return where() + "malformed";
    }
  }
  if (!holder.empty()) return "the log ends while " + holder + " holds the lock";
  for (const auto& [label, count] : expected)
    if (enters[label] != count)
      return label + " entered " + std::to_string(enters[label]) + " times, expected " + std::to_string(count);
  if (enters.size() != expected.size()) return "the log has labels nobody expected";
  return {};
}

/// What one C++ worker thread saw.
struct worker_report {
  int done = 0;
  std::string error;
};

} // namespace

TEST_CASE("interop: zkrecipes mutex and Curator InterProcessMutex never hold the same lock at once") {
  if (skip_requested()) {
    MESSAGE("skipped: ZKRECIPES_SKIP_INTEROP=1");
    return;
  }
  curator_env env;
  const std::string err = prepare(env);
  REQUIRE_MESSAGE(err.empty(), err);
  auto dir = zkr::detail::temp_dir::create("zkrecipes-interop-");
  REQUIRE_MESSAGE(dir.has_value(), (dir ? "" : dir.error().message()));
  const fs::path tmp = dir.value().path();

  constexpr int java_iterations = 150;
  constexpr int cpp_iterations = 100;
  constexpr int cpp_threads = 2;
  const std::string cs = zkt::shared_server().connect_string();
  const std::string path = zkt::unique_root("interop-mutex") + "/lock";
  const fs::path log = tmp / "holders.log";

  const int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  REQUIRE_MESSAGE(log_fd >= 0, "open " << log << ": " << std::strerror(errno));
  struct fd_closer {
    int fd;
    ~fd_closer() { ::close(fd); }
  } close_log{log_fd};

  // Sessions and mutexes are made here (REQUIRE belongs to this thread);
  // the workers only lock, log and unlock.
  std::vector<zkr::session> sessions;
  sessions.reserve(cpp_threads);
  std::vector<std::unique_ptr<zkr::mutex>> mutexes;
  for (int i = 0; i < cpp_threads; ++i) {
    sessions.push_back(zkt::connect(cs));
    mutexes.push_back(std::make_unique<zkr::mutex>(sessions.back(), path));
  }

  const auto started = std::chrono::steady_clock::now();
  auto java = curator_process::start(env, tmp, "loop",
                                     {"loop", cs, path, std::to_string(java_iterations), log.string(), "curator"});
  // Start the C++ side once the JVM is connected, so both really contend.
  REQUIRE_MESSAGE(java.wait_line("ready", 30s), "the Curator JVM did not connect: " << java.describe());

  std::vector<worker_report> reports(cpp_threads);
  {
    std::vector<std::jthread> workers;
    for (int t = 0; t < cpp_threads; ++t) {
      workers.emplace_back([&, t] {
        auto& m = *mutexes[static_cast<std::size_t>(t)];
        auto& rep = reports[static_cast<std::size_t>(t)];
        const std::string label = "cpp" + std::to_string(t + 1);
        std::minstd_rand rng(static_cast<unsigned>(t + 1));
        std::int64_t last_token = 0;
        for (int i = 0; i < cpp_iterations; ++i) {
          auto r = m.lock(15s);
          if (!r) {
            rep.error = label + " lock, iteration " + std::to_string(i) + ": " + r.error().message();
            return;
          }
          const auto token = m.fencing_token();
          bool ok = append_line(log_fd, label + " enter\n");
          std::this_thread::sleep_for(std::chrono::milliseconds(1 + rng() % 3));
          ok = append_line(log_fd, label + " exit\n") && ok;
          auto u = m.unlock();
          if (!ok) rep.error = label + ": write to the log failed";
          else if (!token || *token <= last_token)
            rep.error = label + ": fencing token did not grow, iteration " + std::to_string(i);
          else if (!u)
            rep.error = label + " unlock, iteration " + std::to_string(i) + ": " + u.error().message();
          if (!rep.error.empty()) return;
          last_token = *token;
          rep.done = i + 1;
        }
      });
    }
  } // joins: each lock() is bounded, so is this

  for (const auto& rep : reports) CHECK_MESSAGE(rep.error.empty(), rep.error);
  REQUIRE_MESSAGE(java.wait_exit(30s), "the Curator JVM did not finish: " << java.describe());
  CHECK_MESSAGE(java.exit_code() == 0, "the Curator JVM failed: " << java.describe());
  CHECK_MESSAGE(java.line("done"), java.describe());
  const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);

  std::map<std::string, int> expected = {{"curator", java_iterations}};
  for (int t = 0; t < cpp_threads; ++t) expected["cpp" + std::to_string(t + 1)] = cpp_iterations;
  INFO("contended run: " << elapsed.count() << " ms");
  int handoffs = 0;
  const std::string text = zkr::detail::read_file(log);
  const std::string verdict = check_log(text, expected, "curator", handoffs);
  CHECK_MESSAGE(verdict.empty(), verdict);
  // Both sides queued on one lock: with a fair queue the lock passes between
  // Curator and zkrecipes over and over (not once, after one side finished).
  CHECK_MESSAGE(handoffs >= 20, "only " << handoffs << " hand-offs between Curator and zkrecipes");
  // The queue is empty again: every node was removed on release.
  CHECK(zkt::eventually([&] { return participants_of(*mutexes[0]).empty(); }, 10s));
}

TEST_CASE("interop: while Curator holds the lock, zkrecipes waits behind it") {
  if (skip_requested()) {
    MESSAGE("skipped: ZKRECIPES_SKIP_INTEROP=1");
    return;
  }
  curator_env env;
  const std::string err = prepare(env);
  REQUIRE_MESSAGE(err.empty(), err);
  auto dir = zkr::detail::temp_dir::create("zkrecipes-interop-");
  REQUIRE_MESSAGE(dir.has_value(), (dir ? "" : dir.error().message()));
  const fs::path tmp = dir.value().path();

  const std::string cs = zkt::shared_server().connect_string();
  const std::string path = zkt::unique_root("interop-curator-holds") + "/lock";
  const fs::path release = tmp / "release";

  auto java = curator_process::start(env, tmp, "hold", {"hold", cs, path, "15000", release.string()});
  auto held = java.wait_line("held ", 30s);
  REQUIRE_MESSAGE(held, "Curator did not take the lock: " << java.describe());
  const std::string curator_node = *held;
  CHECK_MESSAGE(is_curator_node(curator_node), curator_node);

  auto s = zkt::connect(cs);
  zkr::mutex m(s, path);
  // A bounded wait runs out: Curator's hold excludes us...
  auto r = m.lock(200ms);
  REQUIRE_FALSE(r.has_value());
  CHECK_MESSAGE(r.error() == std::errc::timed_out, r.error().message());
  CHECK_FALSE(m.holds());
  CHECK_FALSE(m.fencing_token().has_value());
  // ...and leaves no node behind.
  CHECK(zkt::eventually([&] { return participants_of(m) == std::vector<std::string>{curator_node}; }, 5s));

  // A waiting zkrecipes contender queues after Curator's node.
  auto s2 = zkt::connect(cs);
  zkt::mailbox<std::string> lock_outcome; // before w: w's handler may still run while w is destroyed
  zkr::mutex w(s2, path);
  w.async_lock(15s, [&lock_outcome](zkr::result<void> res) { lock_outcome.push(res ? "" : res.error().message()); });
  std::vector<std::string> parts;
  CHECK_MESSAGE(zkt::eventually([&] { return (parts = participants_of(w)).size() == 2; }, 10s), joined(parts));
  REQUIRE(parts.size() == 2);
  CHECK_MESSAGE(parts[0] == curator_node, joined(parts));
  CHECK_MESSAGE(is_zkrecipes_node(parts[1]), joined(parts));
  CHECK_MESSAGE(parts[1] == base_name(w.node_path()), joined(parts) << " vs " << w.node_path());
  CHECK_FALSE(lock_outcome.pop(300ms).has_value()); // still waiting
  CHECK_FALSE(w.holds());

  // Curator releases: the waiter gets the lock.
  zkr::detail::write_file(release, "").value();
  auto got = lock_outcome.pop(15s);
  REQUIRE_MESSAGE(got, "zkrecipes did not get the lock Curator released");
  CHECK_MESSAGE(got->empty(), *got);
  CHECK(w.holds());
  CHECK(w.fencing_token().has_value());
  REQUIRE_MESSAGE(java.wait_exit(20s), java.describe());
  CHECK_MESSAGE(java.exit_code() == 0, java.describe());
  CHECK_MESSAGE(java.line("released"), java.describe());
  CHECK(w.unlock().has_value());
}

TEST_CASE("interop: while zkrecipes holds the lock, Curator waits behind it") {
  if (skip_requested()) {
    MESSAGE("skipped: ZKRECIPES_SKIP_INTEROP=1");
    return;
  }
  curator_env env;
  const std::string err = prepare(env);
  REQUIRE_MESSAGE(err.empty(), err);
  auto dir = zkr::detail::temp_dir::create("zkrecipes-interop-");
  REQUIRE_MESSAGE(dir.has_value(), (dir ? "" : dir.error().message()));
  const fs::path tmp = dir.value().path();

  const std::string cs = zkt::shared_server().connect_string();
  const std::string path = zkt::unique_root("interop-zkrecipes-holds") + "/lock";

  auto s = zkt::connect(cs);
  zkr::mutex m(s, path);
  auto r = m.lock(5s);
  REQUIRE_MESSAGE(r.has_value(), (r ? "" : r.error().message()));
  const std::string ours = base_name(m.node_path());
  CHECK_MESSAGE(is_zkrecipes_node(ours), ours);

  // Curator's bounded acquire runs out, and removes its node.
  {
    auto java = curator_process::start(env, tmp, "timeout", {"hold", cs, path, "300", (tmp / "unused").string()});
    REQUIRE_MESSAGE(java.wait_exit(30s), java.describe());
    CHECK_MESSAGE(java.exit_code() == 3, java.describe());
    CHECK_MESSAGE(java.line("timeout"), java.describe());
    std::vector<std::string> parts;
    CHECK_MESSAGE(zkt::eventually([&] { return (parts = participants_of(m)) == std::vector<std::string>{ours}; }, 5s),
                  joined(parts));
  }

  // A waiting Curator contender queues after our node.
  const fs::path release = tmp / "release";
  auto java = curator_process::start(env, tmp, "hold", {"hold", cs, path, "15000", release.string()});
  std::vector<std::string> parts;
  CHECK_MESSAGE(zkt::eventually([&] { return (parts = participants_of(m)).size() == 2; }, 30s),
                joined(parts) << "; " << java.describe());
  REQUIRE(parts.size() == 2);
  CHECK_MESSAGE(parts[0] == ours, joined(parts));
  CHECK_MESSAGE(is_curator_node(parts[1]), joined(parts));
  std::this_thread::sleep_for(300ms);
  CHECK_MESSAGE(!java.line("held "), "Curator took a lock zkrecipes holds: " << java.describe());
  CHECK(m.holds());

  // We release: Curator gets the lock, and now we wait in vain.
  REQUIRE(m.unlock().has_value());
  auto held = java.wait_line("held ", 15s);
  REQUIRE_MESSAGE(held, "Curator did not get the lock zkrecipes released: " << java.describe());
  CHECK_MESSAGE(*held == parts[1], *held << " vs " << joined(parts));
  auto again = m.lock(200ms);
  CHECK_FALSE(again.has_value());
  if (!again) CHECK_MESSAGE(again.error() == std::errc::timed_out, again.error().message());

  zkr::detail::write_file(release, "").value();
  REQUIRE_MESSAGE(java.wait_exit(20s), java.describe());
  CHECK_MESSAGE(java.exit_code() == 0, java.describe());
  // Released for good: we can take it again.
  auto last = m.lock(5s);
  CHECK_MESSAGE(last.has_value(), (last ? "" : last.error().message()));
  if (last) CHECK(m.unlock().has_value());
}

TEST_CASE("interop: zkrecipes leader_latch and Curator LeaderLatch elect one leader") {
  if (skip_requested()) {
    MESSAGE("skipped: ZKRECIPES_SKIP_INTEROP=1");
    return;
  }
  curator_env env;
  const std::string err = prepare(env);
  REQUIRE_MESSAGE(err.empty(), err);
  auto dir = zkr::detail::temp_dir::create("zkrecipes-interop-");
  REQUIRE_MESSAGE(dir.has_value(), (dir ? "" : dir.error().message()));
  const fs::path tmp = dir.value().path();

  const std::string cs = zkt::shared_server().connect_string();
  const std::string path = zkt::unique_root("interop-latch") + "/election";
  const fs::path release1 = tmp / "release1", release2 = tmp / "release2";

  // Curator joins first and leads.
  auto java = curator_process::start(env, tmp, "latch1", {"latch", cs, path, "java", release1.string()});
  auto java_node = java.wait_line("joined ", 30s);
  REQUIRE_MESSAGE(java_node, "Curator's LeaderLatch did not join: " << java.describe());
  CHECK_MESSAGE(is_curator_node(*java_node, "latch"), *java_node);
  REQUIRE_MESSAGE(java.wait_exact("has true", 10s), "Curator did not lead alone: " << java.describe());

  // zkrecipes joins second: it follows, and both agree Curator leads.
  auto s = zkt::connect(cs);
  zkr::latch_options lo;
  lo.id = "cpp";
  zkr::leader_latch l(s, path, lo);
  REQUIRE(l.start().has_value());
  auto r = l.await_leadership(300ms);
  REQUIRE_FALSE(r.has_value());
  CHECK_MESSAGE(r.error() == zkr::errc::timed_out, r.error().message());
  CHECK_FALSE(l.has_leadership());
  std::vector<zkr::participant> parts;
  CHECK_MESSAGE(zkt::eventually([&] { return (parts = participants_of(l)).size() == 2; }, 10s), joined(parts));
  REQUIRE_MESSAGE(parts.size() == 2, joined(parts));
  CHECK_MESSAGE((ids_of(parts) == std::vector<std::string>{"java", "cpp"}), joined(parts));
  CHECK_MESSAGE(parts[0].leader, joined(parts));
  CHECK_MESSAGE(!parts[1].leader, joined(parts));
  CHECK_MESSAGE(parts[0].node == *java_node, joined(parts));
  CHECK_MESSAGE(is_zkrecipes_node(parts[1].node, "latch"), joined(parts));
  CHECK_MESSAGE(parts[1].node == base_name(l.node_path()), joined(parts) << " vs " << l.node_path());
  auto lead = l.leader();
  REQUIRE_MESSAGE(lead.has_value(), (lead ? "" : lead.error().message()));
  CHECK(lead.value().id == "java");
  // Curator sees zkrecipes' candidate behind it and keeps leading.
  CHECK_MESSAGE(java.wait_exact("leader java", 10s), java.describe());
  std::this_thread::sleep_for(200ms); // a few of its 20 ms polls after our node appeared
  CHECK_MESSAGE(!java.has_line("has false"), "Curator lost leadership to a follower: " << java.describe());
  CHECK_MESSAGE(!java.has_line("leader cpp"), "Curator saw zkrecipes lead too early: " << java.describe());
  CHECK_FALSE(l.has_leadership());

  // Curator leaves: zkrecipes leads.
  zkr::detail::write_file(release1, "").value();
  auto got = l.await_leadership(10s);
  CHECK_MESSAGE(got.has_value(), "zkrecipes did not take over from Curator: " << (got ? "" : got.error().message()));
  CHECK(l.has_leadership());
  REQUIRE_MESSAGE(java.wait_exit(20s), java.describe());
  CHECK_MESSAGE(java.exit_code() == 0, java.describe());
  CHECK_MESSAGE(java.has_line("closed"), java.describe());
  CHECK_MESSAGE(zkt::eventually([&] { return ids_of(parts = participants_of(l)) == std::vector<std::string>{"cpp"}; }, 10s),
                joined(parts));

  // A second Curator candidate joins: it follows zkrecipes.
  auto java2 = curator_process::start(env, tmp, "latch2", {"latch", cs, path, "java2", release2.string()});
  auto java2_node = java2.wait_line("joined ", 30s);
  REQUIRE_MESSAGE(java2_node, "the second LeaderLatch did not join: " << java2.describe());
  CHECK_MESSAGE(is_curator_node(*java2_node, "latch"), *java2_node);
  CHECK_MESSAGE(java2.wait_exact("leader cpp", 10s), "Curator did not see zkrecipes lead: " << java2.describe());
  CHECK_MESSAGE(java2.wait_exact("has false", 10s), java2.describe());
  CHECK_MESSAGE(zkt::eventually([&] { return (parts = participants_of(l)).size() == 2; }, 10s), joined(parts));
  REQUIRE_MESSAGE(parts.size() == 2, joined(parts));
  CHECK_MESSAGE((ids_of(parts) == std::vector<std::string>{"cpp", "java2"}), joined(parts));
  CHECK_MESSAGE(parts[0].leader, joined(parts));
  CHECK_MESSAGE(!parts[1].leader, joined(parts));
  CHECK_MESSAGE(parts[0].node == base_name(l.node_path()), joined(parts) << " vs " << l.node_path());
  CHECK_MESSAGE(parts[1].node == *java2_node, joined(parts));
  std::this_thread::sleep_for(200ms);
  CHECK_MESSAGE(!java2.has_line("has true"), "Curator led while zkrecipes leads: " << java2.describe());
  CHECK(l.has_leadership());

  // zkrecipes leaves: the second Curator candidate leads.
  REQUIRE(l.close().has_value());
  // close() posts the release to the dispatcher: has_leadership() turns
  // false right after, not necessarily before close() returns.
  CHECK(zkt::eventually([&] { return !l.has_leadership(); }, 5s));
  CHECK_MESSAGE(java2.wait_exact("has true", 10s), "Curator did not take over from zkrecipes: " << java2.describe());
  CHECK_MESSAGE(java2.wait_exact("leader java2", 10s), java2.describe());
  CHECK_MESSAGE(
      zkt::eventually([&] { return ids_of(parts = participants_of(l)) == std::vector<std::string>{"java2"}; }, 10s),
      joined(parts));

  zkr::detail::write_file(release2, "").value();
  REQUIRE_MESSAGE(java2.wait_exit(20s), java2.describe());
  CHECK_MESSAGE(java2.exit_code() == 0, java2.describe());
  CHECK_MESSAGE(java2.has_line("closed"), java2.describe());
  // Everybody left: the election is empty.
  CHECK_MESSAGE(zkt::eventually([&] { return (parts = participants_of(l)).empty(); }, 10s), joined(parts));
}
