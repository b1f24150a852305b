// A double barrier: enter() returns once `count` members are in; leave()
// returns once every member has left (ZooKeeper's recipe).
//
// Layout (docs/double_barrier.md):
//   <path>/<member id>   ephemeral, one per member inside
//   <path>/ready         persistent, made by the member that completes the count,
//                        removed by the last member to leave
#pragma once

#include "zkrecipes/detail/coro.hpp"
#include "zkrecipes/error.hpp"
#include "zkrecipes/path.hpp"
#include "zkrecipes/protected_create.hpp"
#include "zkrecipes/session.hpp"

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace zkrecipes {

struct double_barrier_options {
  /// This member's node name (unique among members); empty: a random id.
  std::string id;
  std::optional<acl_list> acl;
};

namespace detail {

inline constexpr std::string_view ready_name = "ready";

struct double_barrier_core {
  session* s;
  std::string path;
  int count;
  std::string id;
  std::optional<acl_list> acl;
  std::vector<wakeup> waits;
  std::uint64_t cancel_gen = 0;

  std::string me() const { return join(path, id); }
  std::string ready() const { return join(path, ready_name); }
  std::vector<std::string> members(const std::vector<std::string>& names) const {
    std::vector<std::string> out;
    for (auto& n : names)
      if (n != ready_name) out.push_back(n);
    std::sort(out.begin(), out.end());
    return out;
  }
};

/// Waits for `w` until the deadline; false when time ran out or the wait was cancelled.
inline task wait_until(session& s, wakeup w, std::chrono::steady_clock::time_point deadline,
                       unique_function<void()> then) {
  auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  if (remaining.count() > 0) {
    auto timer = fire_after(s, remaining + std::chrono::milliseconds(1), w);
    co_await w;
    s.cancel_timer(timer);
  }
  then();
}

inline task enter_barrier(std::shared_ptr<double_barrier_core> c, std::chrono::steady_clock::time_point deadline,
                          unique_function<void(result<void>)> done) {
  session& s = *c->s;
  const auto gen = c->cancel_gen;
  const char* op = "double_barrier enter";
  if (auto e = co_await start_ensure_path(s, c->path); !e) {
    done(e.error());
    co_return;
  }
  // Watch `ready` before joining, so that its creation cannot be missed.
  wakeup w;
  c->waits.push_back(w);
  auto ex = start_exists(s, c->ready(), w.as_watcher());
  auto cr = start_create(s, c->me(), {}, create_options(create_mode::ephemeral, c->acl));
  auto exr = co_await ex;
  auto crr = co_await cr;
  if (failed_with(crr, zk_errc::node_exists)) {
    auto g = co_await start_exists(s, c->me());
    if (!(g && g.value() && g.value()->ephemeral_owner == s.session_id())) {
      std::erase(c->waits, w);
      done(make_error(errc::invalid_argument, op, c->me() + ": another member uses this id"));
      co_return;
    }
  } else if (!crr) {
    std::erase(c->waits, w);
    (void)co_await start_remove(s, c->me()); // the create may have been applied: never count a member who failed
    done(crr.error());
    co_return;
  }
  for (;;) {
    // Re-check after every wake-up: only `ready` or a full count lets a member in.
    if (exr && exr.value()) break;
    auto lst = co_await start_children(s, c->path, w.as_watcher()); // members arriving wake us too
    std::optional<error> failure;
    if (!lst) failure = lst.error();
    else {
      auto ms = c->members(lst.value().names);
      if (int(ms.size()) >= c->count) {
        // `ready` is made only while every counted member is still there, so
        // one that gave up and left cannot be counted.
        multi_op tx;
        for (auto& m : ms) tx.check(join(c->path, m), any_version);
        tx.create(c->ready(), {}, create_options(create_mode::persistent, c->acl));
        auto r = co_await start_multi(s, tx);
        if (r || failed_with(r, zk_errc::node_exists)) break;
        if (!failed_with(r, zk_errc::no_node)) failure = r.error();
        else {
          exr = co_await start_exists(s, c->ready());
          continue; // a member left meanwhile: count again
        }
      }
    }
    if (!failure) {
      pending<void> step;
      wait_until(s, w, deadline, [h = step.handler()]() mutable { h(outcome::success()); });
      (void)co_await step;
      std::erase(c->waits, w);
    }
    bool cancelled = c->cancel_gen != gen;
    if (failure || cancelled || std::chrono::steady_clock::now() >= deadline) {
      std::erase(c->waits, w);
      // Leave no node behind: a member that gave up must not count.
      (void)co_await start_remove(s, c->me());
      // Unless `ready` exists now: it was made while this member was counted
      // (the multi above checks every counted member), so it is in after all
      // (the others passed counting it), whatever made it give up.
      auto again = co_await start_exists(s, c->ready());
      if (again && again.value()) {
        auto back = co_await start_create(s, c->me(), {}, create_options(create_mode::ephemeral, c->acl));
        if (back || failed_with(back, zk_errc::node_exists)) break;
      }
      done(failure ? *failure
                   : make_error(cancelled ? errc::cancelled : errc::timed_out, op,
                                c->path + ": " + std::to_string(c->count) + " members needed"));
      co_return;
    }
    w = wakeup{};
    c->waits.push_back(w);
    if (c->cancel_gen != gen) w.fire(); // a cancel just before this wait
    exr = co_await start_exists(s, c->ready(), w.as_watcher());
  }
  std::erase(c->waits, w);
  done(outcome::success());
}

inline task leave_barrier(std::shared_ptr<double_barrier_core> c, std::chrono::steady_clock::time_point deadline,
                          unique_function<void(result<void>)> done) {
  session& s = *c->s;
  const auto gen = c->cancel_gen;
  const char* op = "double_barrier leave";
  for (;;) {
    auto lst = co_await start_children(s, c->path);
    if (failed_with(lst, zk_errc::no_node)) break;
    if (!lst) {
      done(lst.error());
      co_return;
    }
    auto ms = c->members(lst.value().names);
    bool in = std::find(ms.begin(), ms.end(), c->id) != ms.end();
    if (ms.empty()) break;
    std::string watch_path;
    if (ms.size() == 1 && in) {
      // The last one out also takes `ready` away, so the path can be used again.
      multi_op tx;
      tx.remove(c->me()).remove(c->ready());
      auto m = co_await start_multi(s, tx);
      if (!m) {
        (void)co_await start_remove(s, c->me());
        (void)co_await start_remove(s, c->ready()); // a stale `ready` would let the next round through
      }
      break;
    }
    if (in && ms.front() == c->id) {
      watch_path = join(c->path, ms.back()); // lowest waits for the highest to go
    } else {
      if (in) {
        auto r = co_await start_remove(s, c->me());
        if (!r && !failed_with(r, zk_errc::no_node)) {
          done(r.error());
          co_return;
        }
      }
      watch_path = join(c->path, ms.front()); // the others wait for the lowest
    }
    wakeup w;
    c->waits.push_back(w);
    if (c->cancel_gen != gen) w.fire(); // a cancel just before this wait
    auto e = co_await start_exists(s, watch_path, w.as_watcher());
    if (e && e.value()) {
      pending<void> step;
      wait_until(s, w, deadline, [h = step.handler()]() mutable { h(outcome::success()); });
      (void)co_await step;
    }
    std::erase(c->waits, w);
    if (c->cancel_gen != gen) {
      done(make_error(errc::cancelled, op, c->path));
      co_return;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      done(make_error(errc::timed_out, op, c->path + ": members still inside"));
      co_return;
    }
  }
  done(outcome::success());
}

} // namespace detail

/// A double barrier of `count` members.
///
/// \code
/// zkrecipes::double_barrier b(s, "/round/7", 8);
/// b.enter(60s);   // returns when 8 members are in
/// compute();
/// b.leave(60s);   // returns when all 8 have left
/// \endcode
/// \note Use a path for one round at a time: a member entering before the
///       last one of the previous round left passes at once. The session
///       must outlive the barrier. Thread-safe.
class double_barrier {
public:
  double_barrier(session& s, std::string path, int count, double_barrier_options opts = {})
      : s_(&s), c_(std::make_shared<detail::double_barrier_core>()) {
    c_->s = &s;
    c_->path = std::move(path);
    c_->count = count;
    c_->id = opts.id.empty() ? make_protected_id() : std::move(opts.id);
    c_->acl = std::move(opts.acl);
    if (auto v = validate_path(c_->path, "double_barrier"); !v) valid_ = v.error();
    else if (auto n = validate_name(c_->id, "double_barrier"); !n) valid_ = n.error();
    else if (c_->id == detail::ready_name)
      valid_ = make_error(errc::invalid_argument, "double_barrier", c_->path + ": the id \"ready\" is reserved");
    else if (count < 1)
      valid_ = make_error(errc::invalid_argument, "double_barrier", c_->path + ": count must be at least 1");
  }
  double_barrier(const double_barrier&) = delete;
  double_barrier& operator=(const double_barrier&) = delete;
  ~double_barrier() { cancel(); }

  const std::string& path() const noexcept { return c_->path; }
  const std::string& id() const noexcept { return c_->id; }

  /// Joins and waits until `count` members are in. On timeout or cancel the
  /// member's node is removed again (it does not count).
  /// Handler: `void(result<void>)`.
  template <class H> void async_enter(std::chrono::milliseconds timeout, H&& h) {
    start(timeout, std::forward<H>(h), &detail::enter_barrier);
  }
  result<void> enter(std::chrono::milliseconds timeout) {
    return detail::run_blocking<void>(*s_, "double_barrier enter", c_->path,
                                      [&](auto done) { async_enter(timeout, std::move(done)); });
  }
  /// Leaves and waits until every member has left. On timeout this member
  /// may still be in (the lowest leaves last): call leave() again.
  template <class H> void async_leave(std::chrono::milliseconds timeout, H&& h) {
    start(timeout, std::forward<H>(h), &detail::leave_barrier);
  }
  result<void> leave(std::chrono::milliseconds timeout) {
    return detail::run_blocking<void>(*s_, "double_barrier leave", c_->path,
                                      [&](auto done) { async_leave(timeout, std::move(done)); });
  }
  /// Ends the enter or leave in progress with errc::cancelled.
  void cancel() {
    s_->post([c = c_] {
      ++c->cancel_gen;
      auto ws = std::move(c->waits);
      c->waits.clear();
      for (auto& w : ws) w.fire();
    });
  }

private:
  template <class H, class F> void start(std::chrono::milliseconds timeout, H&& h, F f) {
    if (!valid_) {
      s_->post([h = std::forward<H>(h), e = valid_.error()]() mutable { h(result<void>(e)); });
      return;
    }
    auto deadline = std::chrono::steady_clock::now() + std::max(timeout, std::chrono::milliseconds(0));
    s_->post([c = c_, deadline, f, h = std::forward<H>(h)]() mutable { f(c, deadline, std::move(h)); });
  }

  session* s_;
  std::shared_ptr<detail::double_barrier_core> c_;
  result<void> valid_ = outcome::success();
};

} // namespace zkrecipes
