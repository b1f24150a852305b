// Shared helpers of the test suite: one standalone server per test binary,
// unique roots, bounded waits.
#pragma once

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
#include <unistd.h>

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

/// Values pushed from any thread (usually the dispatcher), popped with a bound.
template <class T> class mailbox {
public:
  void push(T v) {
    {
      std::lock_guard lk(m_);
      q_.push_back(std::move(v));
    }
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
