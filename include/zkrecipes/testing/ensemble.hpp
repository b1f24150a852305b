// zkrecipes::testing::ensemble: a ZooKeeper ensemble (3 members by default)
// of child JVMs on loopback, for tests of failover.
//
// Each member gets three free loopback ports (client, peer, election), a
// subdirectory member-N/ (zoo.cfg, data/myid, server.log) of one temporary
// directory, and runs QuorumPeerMain with tickTime 100 ms, initLimit about
// 5 s and syncLimit about 2 s. Members are numbered 0..size()-1 here; their
// ZooKeeper server ids (myid) are 1..size().
//
// Timings on a 2-core machine: start() about 3-5 s; after the leader is
// killed a new one is elected in about a second; restart(i) about 2 s.
//
// Cleanup guarantees are those of server: the destructor SIGKILLs and reaps
// every member and removes the directory; members die with the thread that
// started them (PR_SET_PDEATHSIG); only spawned pids are signalled.
// Not thread-safe: drive an ensemble from one thread at a time.
#pragma once

#include <zkrecipes/detail/process.hpp>
#include <zkrecipes/detail/socket.hpp>
#include <zkrecipes/error.hpp>
#include <zkrecipes/testing/server.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace zkrecipes::testing {

/// How to start an ensemble.
struct ensemble_options {
  /// Number of members (1 gives a standalone server run by QuorumPeerMain).
  std::size_t size = 3;
  /// Options every member shares; start_timeout bounds the whole start().
  server_options server;
};

/// A ZooKeeper ensemble of child JVMs on 127.0.0.1.
///
/// Move-only. The destructor SIGKILLs and reaps every member and removes the
/// temporary directory. stop(i)/kill(i) keep a member's data, so restart(i)
/// brings it back with its state, on the same ports.
class ensemble {
public:
  /// Starts every member and waits until each reports "Mode: leader" or
  /// "Mode: follower" (so a quorum serves and no member is still syncing).
  ///
  /// If any member reports a port already in use, all are killed and the
  /// start is retried with new ports, up to 3 times.
  /// \param options see ensemble_options
  /// \returns errc::harness_failed when size is 0, java or ZooKeeper cannot be
  /// found, a member exits, or the members do not serve within
  /// options.server.start_timeout; the message quotes the failing member's log.
  static result<ensemble> start(ensemble_options options = {}) {
    if (options.size == 0)
      return detail::harness_error("start ensemble", "size must be at least 1");
    BOOST_OUTCOME_TRY(jvm, detail::resolve_jvm(options.server));
    BOOST_OUTCOME_TRY(dir, detail::temp_dir::create("zkrecipes-ensemble-"));
    ensemble e;
    e.options_ = std::move(options);
    e.dir_ = std::move(dir);
    const std::size_t n = e.options_.size;
    const auto tick = std::max<std::int64_t>(1, e.options_.server.tick_time.count());
    for (int attempt = 1;; ++attempt) {
      BOOST_OUTCOME_TRY(ports, detail::free_ports(3 * n));
      e.members_.clear();
      for (std::size_t i = 0; i < n; ++i) {
        const auto member_dir = e.dir_.path() / ("member-" + std::to_string(i + 1));
        auto base = detail::base_config(e.options_.server, member_dir / "data", ports[3 * i]);
        base.emplace_back("initLimit", std::to_string(std::max<std::int64_t>(10, 5000 / tick)));
        base.emplace_back("syncLimit", std::to_string(std::max<std::int64_t>(5, 2000 / tick)));
        std::vector<std::string> fixed = {"dataDir", "clientPort", "clientPortAddress"};
        for (std::size_t j = 0; j < n; ++j) {
          const std::string key = "server." + std::to_string(j + 1);
          base.emplace_back(key, "127.0.0.1:" + std::to_string(ports[3 * j + 1]) + ":" +
                                     std::to_string(ports[3 * j + 2]));
          fixed.push_back(key);
        }
        const auto text =
            detail::render_config(std::move(base), e.options_.server.extra_config, fixed);
        BOOST_OUTCOME_TRY(inst, detail::zk_instance::prepare(
                                    member_dir, ports[3 * i], text, jvm,
                                    "org.apache.zookeeper.server.quorum.QuorumPeerMain",
                                    static_cast<int>(i + 1)));
        e.members_.push_back(std::move(inst));
      }
      result<void> r = outcome::success();
      for (auto& m : e.members_) {
        r = m.launch();
        if (!r) break;
      }
      if (r) r = e.wait_members(e.all_indices(), e.options_.server.start_timeout, "start ensemble");
      if (r) return e;
      bool in_use = false;
      for (const auto& m : e.members_) in_use = in_use || m.address_in_use();
      for (auto& m : e.members_) m.kill();
      if (attempt >= 3 || !in_use) return std::move(r).as_failure();
    }
  }

  ensemble(ensemble&&) noexcept = default;
  ensemble& operator=(ensemble&& o) noexcept {
    if (this != &o) {
      for (auto& m : members_) m.kill(); // before the directory goes
      members_ = std::move(o.members_);
      dir_ = std::move(o.dir_);
      options_ = std::move(o.options_);
    }
    return *this;
  }
  ensemble(const ensemble&) = delete;
  ensemble& operator=(const ensemble&) = delete;
  /// SIGKILLs and reaps every member and removes the directory.
  ~ensemble() {
    for (auto& m : members_) m.kill();
  }

  /// The number of members.
  std::size_t size() const { return members_.size(); }

  /// "127.0.0.1:p1,127.0.0.1:p2,...": every member, for a client that fails
  /// over between them.
  std::string connect_string() const {
    std::string s;
    for (std::size_t i = 0; i < members_.size(); ++i) {
      if (i != 0) s += ',';
      s += member_connect_string(i);
    }
    return s;
  }

  /// "127.0.0.1:PORT" of member `i` alone.
  std::string member_connect_string(std::size_t i) const {
    return detail::loopback_endpoint(client_port(i));
  }

  /// The client port of member `i` (stable across stop/restart).
  std::uint16_t client_port(std::size_t i) const { return members_.at(i).port(); }

  /// Stops member `i`: SIGTERM, up to 10 s, then SIGKILL; reaped; data kept.
  /// \returns errc::harness_failed when `i` is out of range.
  result<void> stop(std::size_t i) {
    BOOST_OUTCOME_TRYV(check_index(i, "stop member"));
    members_[i].stop();
    return outcome::success();
  }

  /// SIGKILLs member `i` and reaps it; data kept.
  /// \returns errc::harness_failed when `i` is out of range.
  result<void> kill(std::size_t i) {
    BOOST_OUTCOME_TRYV(check_index(i, "kill member"));
    members_[i].kill();
    return outcome::success();
  }

  /// Starts member `i` again (stopping it first if it runs) and waits, up to
  /// start_timeout, until it reports leader or follower.
  /// \returns errc::harness_failed when `i` is out of range, the member exits,
  /// or it does not serve in time (it needs a quorum to serve).
  result<void> restart(std::size_t i) {
    BOOST_OUTCOME_TRYV(check_index(i, "restart member"));
    members_[i].stop();
    BOOST_OUTCOME_TRYV(members_[i].launch());
    return wait_members({i}, options_.server.start_timeout, "restart member");
  }

  /// Whether member `i`'s JVM runs (false for an index out of range).
  bool running(std::size_t i) const { return i < members_.size() && members_[i].running(); }

  /// The pid of member `i`'s JVM, or -1 when it is not running.
  int pid(std::size_t i) const { return i < members_.size() ? members_[i].pid() : -1; }

  /// The temporary directory holding member-1/, member-2/...
  std::filesystem::path directory() const { return dir_.path(); }

  /// Sends a four-letter word to member `i`; bounded by 2 s.
  result<std::string> four_letter(std::size_t i, std::string_view command) const {
    BOOST_OUTCOME_TRYV(check_index(i, "four letter word"));
    return detail::four_letter(members_[i].port(), command, std::chrono::seconds(2));
  }

  /// The index of the member whose srvr says "Mode: leader" (or "standalone"
  /// for a one-member ensemble), polling every ~50 ms for up to `timeout`.
  /// \returns errc::harness_failed when no member leads in time; the message
  /// lists each member's mode.
  result<std::size_t> leader(std::chrono::milliseconds timeout = std::chrono::seconds(30)) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::size_t found = members_.size();
    std::vector<std::string> modes;
    detail::poll_until(deadline, [&] {
      modes = current_modes();
      for (std::size_t i = 0; i < modes.size(); ++i)
        if (modes[i] == "leader" || (members_.size() == 1 && modes[i] == "standalone")) {
          found = i;
          return true;
        }
      return false;
    });
    if (found < members_.size()) return found;
    return detail::harness_error("ensemble leader", "no member reports Mode: leader after " +
                                                        std::to_string(timeout.count()) +
                                                        " ms; " + describe(modes));
  }

  /// Waits until every running member reports leader or follower (standalone
  /// for one member), polling every ~50 ms for up to `timeout`.
  /// \returns errc::harness_failed when no member runs, a member does not
  /// serve in time (the message lists each member's mode), or none leads.
  result<void> wait_serving(std::chrono::milliseconds timeout = std::chrono::seconds(30)) const {
    std::vector<std::size_t> live;
    for (std::size_t i = 0; i < members_.size(); ++i)
      if (members_[i].running()) live.push_back(i);
    if (live.empty()) return detail::harness_error("ensemble wait serving", "no member is running");
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::vector<std::string> modes;
    const bool ok = detail::poll_until(deadline, [&] {
      modes = current_modes();
      for (auto i : live)
        if (!serving_mode(modes[i])) return false;
      return true;
    });
    if (ok) return outcome::success();
    return detail::harness_error("ensemble wait serving",
                                 "not every running member serves after " +
                                     std::to_string(timeout.count()) + " ms; " + describe(modes));
  }

private:
  ensemble() = default;

  std::vector<std::size_t> all_indices() const {
    std::vector<std::size_t> v(members_.size());
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = i;
    return v;
  }

  result<void> check_index(std::size_t i, const char* operation) const {
    if (i < members_.size()) return outcome::success();
    return detail::harness_error(operation, "member " + std::to_string(i) + " out of range (size " +
                                                std::to_string(members_.size()) + ")");
  }

  bool serving_mode(const std::string& mode) const {
    if (members_.size() == 1) return mode == "standalone";
    return mode == "leader" || mode == "follower" || mode == "observer";
  }

  /// Each member's srvr mode: "down" when not running, "" when not serving.
  std::vector<std::string> current_modes() const {
    std::vector<std::string> modes(members_.size());
    for (std::size_t i = 0; i < members_.size(); ++i) {
      if (!members_[i].running()) {
        modes[i] = "down";
        continue;
      }
      auto r = detail::four_letter(members_[i].port(), "srvr", std::chrono::milliseconds(1000));
      modes[i] = r ? detail::srvr_mode(r.value()) : std::string();
    }
    return modes;
  }

  static std::string describe(const std::vector<std::string>& modes) {
    std::string s = "modes:";
    for (std::size_t i = 0; i < modes.size(); ++i)
      s += " [" + std::to_string(i) + "] " + (modes[i].empty() ? "not serving" : modes[i]);
    return s;
  }

  /// Waits until the members `which` serve; a member exiting, or a port in
  /// use in any log, ends the wait with an error.
  result<void> wait_members(const std::vector<std::size_t>& which,
                            std::chrono::milliseconds timeout, const char* operation) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    result<void> failed = outcome::success();
    const bool ok = detail::poll_until(deadline, [&] {
      bool all = true;
      for (auto i : which) {
        auto mode = members_[i].probe();
        if (!mode) {
          failed = detail::harness_error(operation, "member " + std::to_string(i) + ": " +
                                                        mode.error().path());
          return true;
        }
        if (members_[i].address_in_use()) {
          failed = detail::harness_error(
              operation, "member " + std::to_string(i) + " on " + member_connect_string(i) +
                             ": a port is already in use; last log lines:\n" +
                             members_[i].log_tail());
          return true;
        }
        all = all && serving_mode(mode.value());
      }
      return all;
    });
    if (!failed) return failed;
    if (ok) return outcome::success();
    std::string text = "not serving after " + std::to_string(timeout.count()) + " ms;";
    for (auto i : which)
      text += "\nmember " + std::to_string(i) + " (" + member_connect_string(i) +
              ") last log lines:\n" + members_[i].log_tail();
    return detail::harness_error(operation, text);
  }

  ensemble_options options_;
  detail::temp_dir dir_;
  std::vector<detail::zk_instance> members_;
};

} // namespace zkrecipes::testing
