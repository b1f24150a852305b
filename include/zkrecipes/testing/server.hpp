// zkrecipes::testing::server: a real, standalone ZooKeeper server for tests.
//
// Starts the ZooKeeper jar in a child JVM on a free loopback port, in a fresh
// temporary directory (zoo.cfg, data/, server.log), and waits until the
// server answers `srvr` with "Mode: standalone". tickTime is 100 ms and
// minSessionTimeout two ticks, so a client asking for a 200 ms session sees
// it expire about a second after it loses its connection.
//
// Cleanup guarantees:
//   - the destructor SIGKILLs the JVM, reaps it and removes the directory;
//   - if the test process dies (even by SIGKILL or a crash) the JVM gets
//     SIGKILL from the kernel (PR_SET_PDEATHSIG). That signal follows the
//     *thread* that started the server: start servers from a thread that
//     outlives them (the main thread is always fine). A crash leaves the
//     temporary directory (with its owner.pid) behind until the next start,
//     which removes directories whose owner process is gone;
//   - only pids this object spawned are ever signalled; nothing is killed by
//     name.
//
// A server object is not thread-safe: drive it from one thread at a time.
// Linux only.
#pragma once

#include <zkrecipes/detail/process.hpp>
#include <zkrecipes/detail/socket.hpp>
#include <zkrecipes/error.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <initializer_list>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace zkrecipes::testing {

/// How to start a ZooKeeper server (or each member of an ensemble).
struct server_options {
  /// ZooKeeper's tickTime. minSessionTimeout is two ticks; ensembles derive
  /// initLimit and syncLimit from it (about 5 s and 2 s).
  std::chrono::milliseconds tick_time{100};
  /// Bound on waiting until the server serves (for an ensemble: all members).
  std::chrono::milliseconds start_timeout{60000};
  /// Enables extended node types (TTL nodes):
  /// -Dzookeeper.extendedTypesEnabled=true and extendedTypesEnabled=true.
  bool extended_types = false;
  /// The java launcher. Empty: $JAVA_HOME/bin/java, else /usr/bin/java, else
  /// `java` on PATH. A name without '/' is looked up on PATH.
  std::string java;
  /// The JVM class path. Empty: every *.jar in $ZOOKEEPER_HOME and
  /// $ZOOKEEPER_HOME/lib when ZOOKEEPER_HOME is set, else Debian's
  /// /usr/share/java/zookeeper.jar (its manifest pulls in its dependencies)
  /// plus /usr/share/java/slf4j-simple.jar when present, so the server's log
  /// lines reach server.log.
  std::string classpath;
  /// More zoo.cfg lines (key, value). A key the harness already writes
  /// (tickTime, maxSessionTimeout...) is replaced rather than repeated;
  /// dataDir, clientPort and clientPortAddress are always the harness's.
  std::vector<std::pair<std::string, std::string>> extra_config;
};

} // namespace zkrecipes::testing

namespace zkrecipes::detail {

/// What the harness tells the JVM, resolved once per start.
struct jvm_command {
  std::filesystem::path java;
  std::string classpath;
  bool extended_types = false;
};

/// Finds the java launcher named by (or defaulted for) `options.java`.
inline result<std::filesystem::path> resolve_java(const testing::server_options& options) {
  if (!options.java.empty()) {
    auto found = find_executable(options.java);
    if (found.empty()) return harness_error("start server", "java not found at " + options.java);
    return found;
  }
  std::string tried;
  if (const char* home = std::getenv("JAVA_HOME"); home != nullptr && *home != '\0') {
    const auto candidate = std::filesystem::path(home) / "bin" / "java";
    if (is_executable(candidate)) return candidate;
    tried += candidate.string() + ", ";
  }
  if (is_executable("/usr/bin/java")) return std::filesystem::path("/usr/bin/java");
  tried += "/usr/bin/java, ";
  auto on_path = find_executable("java");
  if (!on_path.empty()) return on_path;
  tried += "java on PATH";
  return harness_error("start server", "java not found (tried " + tried + ")");
}

/// Builds the class path named by (or defaulted for) `options.classpath`.
inline result<std::string> resolve_classpath(const testing::server_options& options) {
  if (!options.classpath.empty()) return options.classpath;
  if (const char* home = std::getenv("ZOOKEEPER_HOME"); home != nullptr && *home != '\0') {
    std::vector<std::string> jars;
    for (const auto& dir : {std::filesystem::path(home), std::filesystem::path(home) / "lib"}) {
      std::error_code ec;
      for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end;
           it.increment(ec))
        if (it->path().extension() == ".jar") jars.push_back(it->path().string());
    }
    if (jars.empty())
      return harness_error("start server",
                           std::string("no *.jar in ZOOKEEPER_HOME=") + home + " or its lib/");
    std::sort(jars.begin(), jars.end());
    std::string cp;
    for (const auto& j : jars) cp += (cp.empty() ? "" : ":") + j;
    return cp;
  }
  const std::filesystem::path jar = "/usr/share/java/zookeeper.jar";
  std::error_code ec;
  if (!std::filesystem::exists(jar, ec))
    return harness_error("start server", "ZooKeeper not found at " + jar.string() +
                                             " (install Debian's zookeeper package, or set "
                                             "ZOOKEEPER_HOME or server_options::classpath)");
  std::string cp = jar.string();
  // Without an SLF4J binding the server logs nothing, and a failed start
  // could not say why (nor could the harness spot a port already in use).
  const std::filesystem::path simple = "/usr/share/java/slf4j-simple.jar";
  if (std::filesystem::exists(simple, ec)) cp += ":" + simple.string();
  return cp;
}

/// Resolves java and the class path for `options`.
inline result<jvm_command> resolve_jvm(const testing::server_options& options) {
  BOOST_OUTCOME_TRY(java, resolve_java(options));
  BOOST_OUTCOME_TRY(cp, resolve_classpath(options));
  return jvm_command{java, cp, options.extended_types};
}

/// zoo.cfg text: `base` lines with `extra` applied (same key replaces, new
/// key appends), except that keys in `fixed` cannot be overridden.
inline std::string render_config(std::vector<std::pair<std::string, std::string>> base,
                                 const std::vector<std::pair<std::string, std::string>>& extra,
                                 const std::vector<std::string>& fixed) {
  for (const auto& kv : extra) {
    if (std::find(fixed.begin(), fixed.end(), kv.first) != fixed.end()) continue;
    auto it = std::find_if(base.begin(), base.end(),
                           [&](const auto& b) { return b.first == kv.first; });
    if (it != base.end())
      it->second = kv.second;
    else
      base.push_back(kv);
  }
  std::string text = "# written by zkrecipes::testing\n";
  for (const auto& [k, v] : base) text += k + "=" + v + "\n";
  return text;
}

/// The zoo.cfg lines every harness server gets.
inline std::vector<std::pair<std::string, std::string>>
base_config(const testing::server_options& options, const std::filesystem::path& data_dir,
            std::uint16_t client_port) {
  const auto tick = std::max<std::int64_t>(1, options.tick_time.count());
  std::vector<std::pair<std::string, std::string>> cfg = {
      {"tickTime", std::to_string(tick)},
      {"dataDir", data_dir.string()},
      {"clientPort", std::to_string(client_port)},
      {"clientPortAddress", "127.0.0.1"},
      {"minSessionTimeout", std::to_string(2 * tick)},
      {"maxSessionTimeout", std::to_string(std::max<std::int64_t>(60000, 20 * tick))},
      {"admin.enableServer", "false"},
      {"4lw.commands.whitelist", "*"},
      // Page-cache durability is enough: a killed JVM loses nothing, and
      // fsync per write would slow every test down.
      {"forceSync", "no"},
  };
  if (options.extended_types) cfg.emplace_back("extendedTypesEnabled", "true");
  return cfg;
}

/// One ZooKeeper JVM: its directory (zoo.cfg, data/, server.log), client
/// port, command line and process. The directory itself is owned elsewhere.
/// Move-only; destroying it SIGKILLs and reaps the JVM.
class zk_instance {
public:
  zk_instance() = default;

  /// Writes `config_text` to `dir`/zoo.cfg, creates `dir`/data (with `myid`
  /// when non-zero) and remembers how to launch `main_class`.
  static result<zk_instance> prepare(const std::filesystem::path& dir, std::uint16_t client_port,
                                     const std::string& config_text, const jvm_command& jvm,
                                     const char* main_class, int myid = 0) {
    std::error_code ec;
    std::filesystem::remove_all(dir / "data", ec); // a failed earlier attempt's state
    std::filesystem::create_directories(dir / "data", ec);
    if (ec) return harness_error("start server", "create " + (dir / "data").string(), ec);
    BOOST_OUTCOME_TRYV(write_file(dir / "zoo.cfg", config_text));
    if (myid != 0) {
      // TRYV expands to several statements: it needs the braces.
      BOOST_OUTCOME_TRYV(write_file(dir / "data" / "myid", std::to_string(myid) + "\n"));
    }
    zk_instance z;
    z.dir_ = dir;
    z.port_ = client_port;
    z.argv_ = {jvm.java.string(),
               "-Xmx256m",
               "-XX:+UseSerialGC",
               "-XX:TieredStopAtLevel=1",
               "-XX:-UsePerfData", // no /tmp/hsperfdata_* file left by a SIGKILL
               "-Djava.net.preferIPv4Stack=true",
               "-Dzookeeper.admin.enableServer=false"};
    if (jvm.extended_types) z.argv_.emplace_back("-Dzookeeper.extendedTypesEnabled=true");
    z.argv_.emplace_back("-cp");
    z.argv_.push_back(jvm.classpath);
    z.argv_.emplace_back(main_class);
    z.argv_.push_back((dir / "zoo.cfg").string());
    return z;
  }

  std::uint16_t port() const noexcept { return port_; }
  const std::filesystem::path& directory() const noexcept { return dir_; }
  std::filesystem::path log_path() const { return dir_ / "server.log"; }
  bool running() const noexcept { return child_.running(); }
  int pid() const noexcept { return child_.pid(); }

  /// Starts the JVM (which must not be running).
  result<void> launch() {
    std::error_code ec;
    log_offset_ = std::filesystem::file_size(log_path(), ec);
    if (ec) log_offset_ = 0; // no log yet
    auto c = child_process::spawn(argv_, dir_, log_path());
    if (!c) return harness_error("start server", "spawn " + argv_[0], c.error().code());
    child_ = std::move(c).value();
    return outcome::success();
  }

  /// Whether this launch's log says a port was taken.
  bool address_in_use() const {
    return read_file(log_path(), log_offset_).find("Address already in use") != std::string::npos;
  }

  /// The last lines of server.log, for error messages.
  std::string log_tail() const { return tail_of_file(log_path(), 20); }

  /// One srvr round trip: the reported mode ("" while not serving). Fails
  /// only when the JVM is not running.
  result<std::string> probe() const {
    if (!child_.running())
      return harness_error("start server", "ZooKeeper on " + loopback_endpoint(port_) +
                                               " exited (" + child_.describe_status() +
                                               "); last log lines:\n" + log_tail());
    auto r = four_letter(port_, "srvr", std::chrono::milliseconds(1000));
    if (!r) return std::string();
    return srvr_mode(r.value());
  }

  /// SIGTERM, up to 10 s for a clean exit, then SIGKILL; reaps.
  void stop() noexcept { child_.terminate(std::chrono::seconds(10)); }

  /// SIGKILL and reap.
  void kill() noexcept { child_.kill_and_reap(); }

private:
  std::filesystem::path dir_;
  std::uint16_t port_ = 0;
  std::vector<std::string> argv_;
  std::uintmax_t log_offset_ = 0;
  child_process child_;
};

/// Whether `mode` (from srvr) is one of `accepted`.
inline bool mode_in(const std::string& mode, std::initializer_list<std::string_view> accepted) {
  for (auto a : accepted)
    if (mode == a) return true;
  return false;
}

/// Polls `pred` every ~50 ms until it returns true or `deadline` passes.
template <class Pred>
bool poll_until(std::chrono::steady_clock::time_point deadline, Pred&& pred) {
  for (;;) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

} // namespace zkrecipes::detail

namespace zkrecipes::testing {

/// A standalone ZooKeeper server in a child JVM, on 127.0.0.1 and a free port.
///
/// Move-only. The destructor SIGKILLs the JVM if it runs, reaps it and
/// removes the temporary directory. stop() and kill() keep the directory, so
/// restart() brings the same data back on the same port.
class server {
public:
  /// Starts a server and waits until it answers srvr with "Mode: standalone".
  ///
  /// Picks a free loopback port, makes a directory under $TMPDIR (or /tmp)
  /// named zkrecipes-server-XXXXXX, writes zoo.cfg and starts the JVM with
  /// its stdout and stderr in server.log there. Takes about a second. If the
  /// port was taken meanwhile ("Address already in use" in the log) it
  /// retries with a new port, up to 3 times.
  /// \param options see server_options
  /// \returns errc::harness_failed when java or ZooKeeper cannot be found, the
  /// JVM exits early, or the server does not serve within
  /// options.start_timeout; the message quotes the log's last lines.
  static result<server> start(server_options options = {}) {
    BOOST_OUTCOME_TRY(jvm, detail::resolve_jvm(options));
    BOOST_OUTCOME_TRY(dir, detail::temp_dir::create("zkrecipes-server-"));
    server s;
    s.options_ = std::move(options);
    s.dir_ = std::move(dir);
    for (int attempt = 1;; ++attempt) {
      BOOST_OUTCOME_TRY(ports, detail::free_ports(1));
      auto base = detail::base_config(s.options_, s.dir_.path() / "data", ports[0]);
      const auto text = detail::render_config(std::move(base), s.options_.extra_config,
                                              {"dataDir", "clientPort", "clientPortAddress"});
      BOOST_OUTCOME_TRY(inst, detail::zk_instance::prepare(
                                  s.dir_.path(), ports[0], text, jvm,
                                  "org.apache.zookeeper.server.ZooKeeperServerMain"));
      s.instance_ = std::move(inst);
      auto r = s.launch_and_wait();
      if (r) return s;
      if (attempt >= 3 || !s.instance_.address_in_use()) return std::move(r).as_failure();
      s.instance_.kill();
    }
  }

  server(server&&) noexcept = default;
  server& operator=(server&& o) noexcept {
    if (this != &o) {
      instance_.kill(); // before the directory goes
      instance_ = std::move(o.instance_);
      dir_ = std::move(o.dir_);
      options_ = std::move(o.options_);
    }
    return *this;
  }
  server(const server&) = delete;
  server& operator=(const server&) = delete;
  /// SIGKILLs the JVM (if running), reaps it and removes the directory.
  ~server() { instance_.kill(); }

  /// "127.0.0.1:PORT", for zookeeper_init or a zkrecipes session.
  std::string connect_string() const { return detail::loopback_endpoint(port()); }

  /// The client port; it stays the same across stop() and restart().
  std::uint16_t port() const { return instance_.port(); }

  /// Stops the server: SIGTERM, up to 10 s for it to exit, then SIGKILL; the
  /// process is reaped. Keeps the data. A no-op when not running.
  result<void> stop() {
    instance_.stop();
    return outcome::success();
  }

  /// SIGKILLs the server and reaps it (a crash, as clients see it). Keeps the
  /// data. A no-op when not running.
  result<void> kill() {
    instance_.kill();
    return outcome::success();
  }

  /// Starts the server again on the same port and data directory and waits
  /// (up to start_timeout) until it serves. A running server is stopped first.
  /// \returns errc::harness_failed when it does not serve in time (for
  /// instance because another process took the port; no new port is tried,
  /// since clients know this one).
  result<void> restart() {
    instance_.stop();
    return launch_and_wait();
  }

  /// Whether the JVM is running (a JVM that exited by itself is reaped here).
  bool running() const { return instance_.running(); }

  /// The JVM's pid, or -1 when not running.
  int pid() const { return instance_.pid(); }

  /// The temporary directory: zoo.cfg, data/ and server.log.
  std::filesystem::path directory() const { return dir_.path(); }

  /// Sends a four-letter word ("srvr", "stat", "mntr", "cons"...) and returns
  /// the reply; bounded by 2 s.
  /// \returns errc::harness_failed when the server cannot be reached or does
  /// not reply in time.
  result<std::string> four_letter(std::string_view command) const {
    return detail::four_letter(port(), command, std::chrono::seconds(2));
  }

private:
  server() = default;

  result<void> launch_and_wait() {
    BOOST_OUTCOME_TRYV(instance_.launch());
    const auto deadline = std::chrono::steady_clock::now() + options_.start_timeout;
    result<void> outcome_of_wait = outcome::success();
    const bool serving = detail::poll_until(deadline, [&] {
      auto mode = instance_.probe();
      if (!mode) {
        outcome_of_wait = std::move(mode).as_failure();
        return true;
      }
      return detail::mode_in(mode.value(), {"standalone"});
    });
    if (!outcome_of_wait) return outcome_of_wait;
    if (serving) return outcome::success();
    const auto tail = instance_.log_tail();
    instance_.kill();
    return detail::harness_error("start server",
                                 "not serving on " + connect_string() + " after " +
                                     std::to_string(options_.start_timeout.count()) +
                                     " ms; last log lines:\n" + tail);
  }

  server_options options_;
  detail::temp_dir dir_;
  detail::zk_instance instance_;
};

} // namespace zkrecipes::testing
