// Minimal C++20 coroutines over the session's asynchronous operations, so a
// recipe's multi-step logic reads top to bottom and still never blocks the
// dispatcher thread (design §1).
//
// Rules: a `task` coroutine is started on the dispatcher thread and only ever
// resumed there (session handlers, watchers and timers all run there).
// Operations start when `start_*` is called, so several can be in flight
// before the first `co_await` (pipelining, design §4).
#pragma once

#include "zkrecipes/error.hpp"
#include "zkrecipes/multi.hpp"
#include "zkrecipes/node.hpp"
#include "zkrecipes/session.hpp"

#include <algorithm>
#include <chrono>
#include <coroutine>
#include <cstdio>
#include <exception>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace zkrecipes::detail {

/// A detached coroutine: runs at once, frees itself when it returns.
struct task {
  struct promise_type {
    task get_return_object() noexcept { return {}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    // A user handler that throws ends its task, as the dispatcher does for
    // callbacks: reported, not fatal.
    void unhandled_exception() noexcept {
      try {
        throw;
      } catch (const std::exception& e) {
        std::fprintf(stderr, "zkrecipes: a handler threw: %s\n", e.what());
      } catch (...) {
        std::fprintf(stderr, "zkrecipes: a handler threw\n");
      }
    }
  };
};

/// The result of an operation already started; `co_await` it once.
template <class T> class pending {
  struct state {
    std::optional<result<T>> value;
    std::coroutine_handle<> waiter;
  };
  std::shared_ptr<state> st_ = std::make_shared<state>();

public:
  /// The completion handler to pass to the session's async_* call.
  auto handler() const {
    return [st = st_](result<T> r) {
      st->value.emplace(std::move(r));
      if (auto w = std::exchange(st->waiter, {})) w.resume();
    };
  }
  bool ready() const noexcept { return st_->value.has_value(); }
  bool await_ready() const noexcept { return ready(); }
  void await_suspend(std::coroutine_handle<> h) noexcept { st_->waiter = h; }
  result<T> await_resume() { return std::move(*st_->value); }
};

/// A one-shot wake-up shared by watches, a timer and a cancel: the first
/// `fire()` resumes the waiter (or makes the next wait return at once).
class wakeup {
  struct state {
    bool fired = false;
    std::coroutine_handle<> waiter;
  };
  std::shared_ptr<state> st_ = std::make_shared<state>();

public:
  void fire() const {
    if (st_->fired) return;
    st_->fired = true;
    if (auto w = std::exchange(st_->waiter, {})) w.resume();
  }
  bool fired() const noexcept { return st_->fired; }
  friend bool operator==(const wakeup& a, const wakeup& b) noexcept { return a.st_ == b.st_; }
  /// A session watcher that fires this wake-up whatever the event (or error).
  watcher as_watcher() const {
    return [w = *this](result<watch_event>) { w.fire(); };
  }
  bool await_ready() const noexcept { return st_->fired; }
  void await_suspend(std::coroutine_handle<> h) noexcept { st_->waiter = h; }
  void await_resume() const noexcept {}
};

// ---- operations, started at once ------------------------------------------
inline pending<node> start_get(session& s, const std::string& path, watcher w = {}) {
  pending<node> p;
  if (w)
    s.async_get(path, std::move(w), p.handler());
  else
    s.async_get(path, p.handler());
  return p;
}
inline pending<void> start_remove(session& s, const std::string& path, std::int32_t version = any_version) {
  pending<void> p;
  s.async_remove(path, version, p.handler());
  return p;
}
inline pending<created_node> start_create(session& s, const std::string& path, std::string_view data,
                                          create_options opts) {
  pending<created_node> p;
  s.async_create(path, data, std::move(opts), p.handler());
  return p;
}
inline pending<zkrecipes::stat> start_set(session& s, const std::string& path, std::string_view data,
                                          std::int32_t version) {
  pending<zkrecipes::stat> p;
  s.async_set(path, data, version, p.handler());
  return p;
}
inline pending<children_list> start_children(session& s, const std::string& path, watcher w = {}) {
  pending<children_list> p;
  if (w)
    s.async_children(path, std::move(w), p.handler());
  else
    s.async_children(path, p.handler());
  return p;
}
inline pending<std::optional<zkrecipes::stat>> start_exists(session& s, const std::string& path, watcher w = {}) {
  pending<std::optional<zkrecipes::stat>> p;
  if (w)
    s.async_exists(path, std::move(w), p.handler());
  else
    s.async_exists(path, p.handler());
  return p;
}
inline pending<std::vector<op_result>> start_multi(session& s, const multi_op& ops) {
  pending<std::vector<op_result>> p;
  s.async_multi(ops, p.handler());
  return p;
}
inline pending<void> start_sync(session& s, const std::string& path) {
  pending<void> p;
  s.async_sync(path, p.handler());
  return p;
}
/// Parents a recipe makes get the recipe's ACL (unset: the session's default).
inline pending<void> start_ensure_path(session& s, const std::string& path,
                                       std::optional<acl_list> acl = std::nullopt) {
  pending<void> p;
  s.async_ensure_path(path, create_mode::persistent, std::move(acl), p.handler());
  return p;
}

/// Removes `path`, an ephemeral node of ZooKeeper session `sid`, retrying
/// transient errors until it is gone, its session has ended (`lost`: at the
/// latest one session timeout after the server went away) or the session is
/// closed: a delete is never forgotten after one failed try (apache/curator
/// issue 1193). `done` (optional) hears success or a lasting error.
task remove_until_gone(session& s, std::string path, std::int64_t sid, unique_function<void(result<void>)> done = {});

/// Fires `w` after `delay` on the dispatcher; returns the timer id (0 for no timer).
inline std::uint64_t fire_after(session& s, std::chrono::milliseconds delay, const wakeup& w) {
  return s.post_after(delay, [w] { w.fire(); });
}

/// Awaitable pause on the dispatcher (for back-off between retries).
inline pending<void> sleep_for(session& s, std::chrono::milliseconds delay) {
  pending<void> p;
  s.post_after(delay, [h = p.handler()]() mutable { h(result<void>(outcome::success())); });
  return p;
}

/// True when an operation sent now goes to the ZooKeeper session `sid`
/// (dispatcher thread only: a new handle is opened only there, after `lost`).
inline bool same_session(const session& s, std::int64_t sid) {
  if (sid == 0 || s.session_id() != sid) return false;
  auto st = s.state();
  return st == session_state::connected || st == session_state::reconnected || st == session_state::suspended;
}

/// The code of a failed result, for quick tests against zk_errc.
template <class T, class E> bool failed_with(const result<T>& r, E c) {
  return !r && r.error() == c;
}

/// Runs `fn` on the dispatcher and waits for it (inline when already there),
/// so that a listener removed this way is never called afterwards.
template <class F> void run_on_dispatcher(session& s, F&& fn) {
  if (s.on_dispatcher_thread()) return fn();
  auto p = std::make_shared<std::promise<void>>();
  auto f = p->get_future();
  s.post([p, fn = std::forward<F>(fn)]() mutable {
    fn();
    p->set_value();
  });
  f.wait();
}

/// Blocks a user thread on a task's completion. The task always completes
/// (operations fail when the session closes), at the latest one round of
/// replies after its own deadline.
template <class T, class Start> result<T> run_blocking(session& s, const char* op, const std::string& path, Start&& start) {
  if (s.on_dispatcher_thread()) return make_error(errc::would_deadlock, op, path);
  auto p = std::make_shared<std::promise<result<T>>>();
  auto f = p->get_future();
  start([p](result<T> r) { p->set_value(std::move(r)); });
  return f.get();
}

inline task remove_until_gone(session& s, std::string path, std::int64_t sid, unique_function<void(result<void>)> done) {
  for (int attempt = 0;; ++attempt) {
    auto r = co_await start_remove(s, path);
    // Once `sid` is no longer the session operations go to (lost, maybe with
    // a new one connecting that may never connect), the node ends with it:
    // waiting for a delete then could last as long as the server is away.
    const bool gone = r || failed_with(r, zk_errc::no_node) || is_session_expired(r.error()) ||
                      (!failed_with(r, errc::closed) && !same_session(s, sid));
    if (gone || failed_with(r, errc::closed) || !is_retryable(r.error())) {
      if (done) done(gone ? result<void>(outcome::success()) : std::move(r));
      co_return;
    }
    (void)co_await sleep_for(s, std::chrono::milliseconds(std::min(1000, 50 << std::min(attempt, 5))));
  }
}

} // namespace zkrecipes::detail
