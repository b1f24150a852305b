// A barrier: while its node exists, wait() blocks; remove() lets every
// waiter through at once.
//
// Layout (docs/barrier.md): one persistent node, <path>.
#pragma once

#include "zkrecipes/detail/coro.hpp"
#include "zkrecipes/error.hpp"
#include "zkrecipes/path.hpp"
#include "zkrecipes/session.hpp"

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace zkrecipes {

namespace detail {

/// Waits until `path` does not exist: an exists watch, re-armed after every
/// wake-up (the node may come back between the event and the re-read).
inline task wait_gone(session* sp, std::shared_ptr<std::vector<wakeup>> waits, std::string path,
                      std::chrono::steady_clock::time_point deadline, unique_function<void(result<void>)> done) {
  session& s = *sp;
  for (;;) {
    wakeup w;
    waits->push_back(w);
    auto e = co_await start_exists(s, path, w.as_watcher());
    if (!e) {
      std::erase(*waits, w);
      done(e.error());
      co_return;
    }
    if (!e.value()) {
      std::erase(*waits, w);
      done(outcome::success());
      co_return;
    }
    auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (remaining.count() > 0) {
      auto timer = fire_after(s, remaining + std::chrono::milliseconds(1), w);
      co_await w;
      s.cancel_timer(timer);
    }
    bool cancelled = std::find(waits->begin(), waits->end(), w) == waits->end();
    std::erase(*waits, w);
    if (cancelled) {
      done(make_error(errc::cancelled, "barrier wait", path));
      co_return;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      // One last look: the barrier may have gone just as time ran out.
      auto last = co_await start_exists(s, path);
      if (last && !last.value()) done(outcome::success());
      else done(make_error(errc::timed_out, "barrier wait", path));
      co_return;
    }
  }
}

inline task raise_barrier(session* sp, std::string path, std::optional<acl_list> acl,
                          unique_function<void(result<void>)> done) {
  session& s = *sp;
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto c = co_await start_create(s, path, {}, create_options(create_mode::persistent, acl));
    if (c || failed_with(c, zk_errc::node_exists)) {
      done(outcome::success());
      co_return;
    }
    if (!failed_with(c, zk_errc::no_node)) {
      done(c.error());
      co_return;
    }
    if (auto e = co_await start_ensure_path(s, std::string(parent(path)), acl); !e) {
      done(e.error());
      co_return;
    }
  }
  done(make_error(errc::timed_out, "barrier set", path + ": its parent kept disappearing"));
}

} // namespace detail

/// A barrier: set() raises it, wait() blocks while it stands, remove() lets
/// everyone through.
///
/// \code
/// zkrecipes::barrier b(s, "/deploy/hold");
/// b.set();            // coordinator
/// b.wait(60s);        // workers: returns once the coordinator calls b.remove()
/// \endcode
/// \note The session must outlive the barrier. Thread-safe.
class barrier {
public:
  barrier(session& s, std::string path, std::optional<acl_list> acl = std::nullopt)
      : s_(&s), path_(std::move(path)), acl_(std::move(acl)), valid_(validate_path(path_, "barrier")),
        waits_(std::make_shared<std::vector<detail::wakeup>>()) {}
  barrier(const barrier&) = delete;
  barrier& operator=(const barrier&) = delete;
  ~barrier() { cancel(); }

  const std::string& path() const noexcept { return path_; }

  /// Raises the barrier (creates its node and missing parents). Raising a
  /// raised barrier is not an error. Handler: `void(result<void>)`.
  template <class H> void async_set(H&& h) {
    if (!valid_) return fail_later(std::forward<H>(h), valid_.error());
    s_->post([s = s_, p = path_, a = acl_, h = std::forward<H>(h)]() mutable {
      detail::raise_barrier(s, p, a, std::move(h));
    });
  }
  result<void> set() {
    return detail::run_blocking<void>(*s_, "barrier set", path_, [&](auto d) { async_set(std::move(d)); });
  }
  /// Lowers the barrier: every waiter returns. Removing a lowered barrier is
  /// not an error. Handler: `void(result<void>)`.
  template <class H> void async_remove(H&& h) {
    if (!valid_) return fail_later(std::forward<H>(h), valid_.error());
    s_->async_remove(path_, any_version, [h = std::forward<H>(h)](result<void> r) mutable {
      if (r || r.error() == zk_errc::no_node) h(result<void>(outcome::success()));
      else h(r);
    });
  }
  result<void> remove() {
    return detail::run_blocking<void>(*s_, "barrier remove", path_, [&](auto d) { async_remove(std::move(d)); });
  }
  /// True while the barrier stands.
  result<bool> is_set() {
    if (!valid_) return valid_.error();
    auto e = s_->exists(path_);
    if (!e) return e.error();
    return e.value().has_value();
  }

  /// Waits until the barrier is lowered (at once if it is not set).
  /// Handler: `void(result<void>)`; errc::timed_out, errc::cancelled.
  template <class H> void async_wait(std::chrono::milliseconds timeout, H&& h) {
    if (!valid_) return fail_later(std::forward<H>(h), valid_.error());
    auto deadline = std::chrono::steady_clock::now() + std::max(timeout, std::chrono::milliseconds(0));
    s_->post([s = s_, w = waits_, p = path_, deadline, h = std::forward<H>(h)]() mutable {
      detail::wait_gone(s, w, p, deadline, std::move(h));
    });
  }
  result<void> wait(std::chrono::milliseconds timeout) {
    return detail::run_blocking<void>(*s_, "barrier wait", path_,
                                      [&](auto done) { async_wait(timeout, std::move(done)); });
  }
  /// Ends every wait in progress with errc::cancelled.
  void cancel() {
    s_->post([w = waits_] {
      auto ws = std::move(*w);
      w->clear();
      for (auto& x : ws) x.fire();
    });
  }

private:
  template <class H> void fail_later(H&& h, error e) {
    s_->post([h = std::forward<H>(h), e = std::move(e)]() mutable { h(result<void>(e)); });
  }

  session* s_;
  std::string path_;
  std::optional<acl_list> acl_;
  result<void> valid_;
  std::shared_ptr<std::vector<detail::wakeup>> waits_;
};

} // namespace zkrecipes
