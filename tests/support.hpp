// Shared helpers of the test suite: one standalone server per test binary,
// unique roots, bounded waits.
#pragma once

#include <zkrecipes/detail/zk_api.hpp> // lost_replies: the completion seam
#include <zkrecipes/testing/server.hpp>
#include <zkrecipes/zkrecipes.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unistd.h>
#include <vector>

namespace zkt {

using namespace std::chrono_literals;
namespace zkr = zkrecipes;

/// The binary's shared standalone server, started on first use and stopped
/// at exit. Tests that stop, kill or expire the server start their own.
inline zkr::testing::server& shared_server() {
  static auto srv = [] {
    auto s = zkr::testing::server::start();
    if (!s) {
      std::fprintf(stderr, "cannot start the shared ZooKeeper: %s\n", s.error().message().c_str());
      std::abort();
    }
    return std::make_unique<zkr::testing::server>(std::move(s).value());
  }();
  return *srv;
}

/// A root path no other test (or earlier run) uses.
inline std::string unique_root(std::string_view label) {
  static std::atomic<int> n{0};
  return "/t" + std::to_string(::getpid()) + "-" + std::to_string(++n) + "-" + std::string(label);
}

inline zkr::session_options options_for(std::string connect,
                                        std::chrono::milliseconds timeout = 4000ms) {
  zkr::session_options o;
  o.connect_string = std::move(connect);
  o.session_timeout = timeout;
  o.operation_timeout = 20s;
  return o;
}

/// A connected session to `connect`, or a failed test.
inline zkr::session connect(std::string connect, std::chrono::milliseconds timeout = 4000ms) {
  auto s = zkr::session::connect(options_for(std::move(connect), timeout), 20s);
  REQUIRE_MESSAGE(s.has_value(), (s ? "" : s.error().message()));
  return std::move(s).value();
}

inline zkr::session connect_shared() { return connect(shared_server().connect_string()); }

/// Turns the replies of matching operations into a connection loss after
/// the server applied them, through the detail::zk_api seam (the one fault a
/// proxy cannot produce). Rules apply in order; removed on scope exit.
class lost_replies {
public:
  struct rule {
    std::string op;          ///< operation name as the session names it: "create", "get"...
    std::string path_prefix; ///< "" matches every path
    int times;               ///< how many replies to lose (0: only count them)
    int seen = 0;            ///< completions that matched, lost or not
  };
  explicit lost_replies(std::vector<rule> rules) {
    std::lock_guard lk(m());
    active() = std::move(rules);
    zkr::detail::zk_api::set_completion_hook(&hook);
  }
  ~lost_replies() {
    zkr::detail::zk_api::set_completion_hook(nullptr);
    std::lock_guard lk(m());
    active().clear();
  }
  lost_replies(const lost_replies&) = delete;
  lost_replies& operator=(const lost_replies&) = delete;

  /// Replies of `op` still to be lost.
  static int left(std::string_view op) {
    std::lock_guard lk(m());
    int n = 0;
    for (auto& r : active())
      if (r.op == op) n += r.times;
    return n;
  }

  /// Completions of `op` that matched a rule so far.
  static int seen(std::string_view op) {
    std::lock_guard lk(m());
    int n = 0;
    for (auto& r : active())
      if (r.op == op) n += r.seen;
    return n;
  }

private:
  static std::mutex& m() {
    static std::mutex mx;
    return mx;
  }
  static std::vector<rule>& active() {
    static std::vector<rule> rules;
    return rules;
  }
  static int hook(const char* op, const char* path, int rc) {
    std::lock_guard lk(m());
    for (auto& r : active()) {
      if (r.op == op && std::string_view(path).rfind(r.path_prefix, 0) == 0) {
        ++r.seen;
        if (r.times <= 0) continue;
        --r.times;
        return ZCONNECTIONLOSS;
      }
    }
    return rc;
  }
};

/// Values pushed from any thread (usually the dispatcher), popped with a bound.
template <class T> class mailbox {
public:
  void push(T v) {
    // Notified under the lock: once pop() has the value, its caller may
    // destroy the mailbox, and a notify after unlocking would touch it.
    std::lock_guard lk(m_);
    q_.push_back(std::move(v));
    cv_.notify_all();
  }
  std::optional<T> pop(std::chrono::milliseconds bound = 15s) {
    std::unique_lock lk(m_);
    if (!cv_.wait_for(lk, bound, [&] { return !q_.empty(); })) return std::nullopt;
    T v = std::move(q_.front());
    q_.pop_front();
    return v;
  }
  std::size_t size() const {
    std::lock_guard lk(m_);
    return q_.size();
  }

private:
  mutable std::mutex m_;
  std::condition_variable cv_;
  std::deque<T> q_;
};

/// Records a session's state events; stops listening when destroyed.
struct state_log {
  mailbox<zkr::session_event> events;
  zkr::session& session;
  zkr::listener_id id;
  explicit state_log(zkr::session& s)
      : session(s), id(s.add_listener([this](const zkr::session_event& e) { events.push(e); })) {}
  state_log(const state_log&) = delete;
  state_log& operator=(const state_log&) = delete;
  ~state_log() { session.remove_listener(id); }
  /// Pops events until one with state `want` arrives (bounded).
  std::optional<zkr::session_event> wait_for(zkr::session_state want,
                                             std::chrono::milliseconds bound = 20s) {
    auto deadline = std::chrono::steady_clock::now() + bound;
    while (std::chrono::steady_clock::now() < deadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      auto e = events.pop(left);
      if (!e) return std::nullopt;
      if (e->state == want) return e;
    }
    return std::nullopt;
  }
};

/// Waits (bounded) until pred() holds, checking every few ms. For conditions
/// with no event to wait on (state outside our process).
template <class Pred> bool eventually(Pred pred, std::chrono::milliseconds bound = 20s) {
  auto deadline = std::chrono::steady_clock::now() + bound;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

} // namespace zkt
