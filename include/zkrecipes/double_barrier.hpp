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

/// A wake-up that also remembers whether it was the watched node's creation
/// (the proof a member needs to pass: a wake-up alone is not, curator 1290).
struct created_watch {
  wakeup w;
  std::shared_ptr<bool> created = std::make_shared<bool>(false);
  watcher as_watcher() const {
    return [w = w, created = created](result<watch_event> e) {
      if (e && e.value().type == event_type::created) *created = true;
      w.fire();
    };
  }
};

inline task enter_barrier(std::shared_ptr<double_barrier_core> c, std::chrono::steady_clock::time_point deadline,
                          unique_function<void(result<void>)> done) {
  session& s = *c->s;
  const auto gen = c->cancel_gen;
  const char* op = "double_barrier enter";
  // One round trip: the round's node (usually there already), a watch on
  // `ready` set before joining (so its creation cannot be missed), the
  // member's node, and the listing, all pipelined: the listing follows the
  // create, so it counts this member.
  created_watch rw;
  c->waits.push_back(rw.w);
  auto round = start_create(s, c->path, {}, create_options(create_mode::persistent, c->acl));
  auto ex = start_exists(s, c->ready(), rw.as_watcher());
  auto cr = start_create(s, c->me(), {}, create_options(create_mode::ephemeral, c->acl));
  auto ls = start_children(s, c->path);
  auto roundr = co_await round;
  auto exr = co_await ex;
  auto crr = co_await cr;
  auto lst = co_await ls;
  if (failed_with(roundr, zk_errc::no_node)) { // a missing ancestor: make the path, then join again
    if (auto e = co_await start_ensure_path(s, c->path, c->acl); !e) {
      std::erase(c->waits, rw.w);
      done(e.error());
      co_return;
    }
    exr = co_await start_exists(s, c->ready(), rw.as_watcher());
    crr = co_await start_create(s, c->me(), {}, create_options(create_mode::ephemeral, c->acl));
    lst = co_await start_children(s, c->path);
  }
  if (failed_with(crr, zk_errc::node_exists)) {
    auto g = co_await start_exists(s, c->me());
    if (!(g && g.value() && g.value()->ephemeral_owner == s.session_id())) {
      std::erase(c->waits, rw.w);
      done(make_error(errc::invalid_argument, op, c->me() + ": another member uses this id"));
      co_return;
    }
  } else if (!crr) {
    std::erase(c->waits, rw.w);
    (void)co_await start_remove(s, c->me()); // the create may have been applied: never count a member who failed
    done(crr.error());
    co_return;
  }
  for (;;) {
    // Only `ready` (read, or its creation seen) or a full count lets a member in.
    if ((exr && exr.value()) || *rw.created) break;
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
        else { // a member left meanwhile: read and count again
          auto ex2 = start_exists(s, c->ready());
          auto ls2 = start_children(s, c->path);
          exr = co_await ex2;
          lst = co_await ls2;
          continue;
        }
      }
    }
    // Not full: wait for `ready`. No children watch: the last member to join
    // sees the full count in its own listing and makes `ready`.
    if (!failure) {
      pending<void> step;
      wait_until(s, rw.w, deadline, [h = step.handler()]() mutable { h(outcome::success()); });
      (void)co_await step;
      std::erase(c->waits, rw.w);
      if (*rw.created) break;
    }
    bool cancelled = c->cancel_gen != gen;
    if (failure || cancelled || std::chrono::steady_clock::now() >= deadline) {
      std::erase(c->waits, rw.w);
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
    // Woken by something else (a session event): read `ready` and count again.
    rw = created_watch{};
    c->waits.push_back(rw.w);
    if (c->cancel_gen != gen) rw.w.fire(); // a cancel just before this wait
    auto ex2 = start_exists(s, c->ready(), rw.as_watcher());
    auto ls2 = start_children(s, c->path);
    exr = co_await ex2;
    lst = co_await ls2;
  }
  std::erase(c->waits, rw.w);
  done(outcome::success());
}

/// Members a leaving member watches at once; more are listed again after these go.
inline constexpr std::size_t leave_watch_batch = 32;

inline task leave_barrier(std::shared_ptr<double_barrier_core> c, std::chrono::steady_clock::time_point deadline,
                          unique_function<void(result<void>)> done) {
  session& s = *c->s;
  const auto gen = c->cancel_gen;
  const char* op = "double_barrier leave";
  // One round trip: the member's delete and the listing, pipelined (the
  // listing follows the delete, so the last one out sees no member).
  auto rm = start_remove(s, c->me());
  auto ls = start_children(s, c->path);
  auto rmr = co_await rm;
  auto lst = co_await ls;
  if (!rmr && !failed_with(rmr, zk_errc::no_node)) {
    done(rmr.error());
    co_return;
  }
  for (;;) {
    if (failed_with(lst, zk_errc::no_node)) break;
    if (!lst) {
      done(lst.error());
      co_return;
    }
    auto ms = c->members(lst.value().names);
    if (ms.empty()) {
      // The last one out takes `ready` away, so the path can be used again.
      auto r = co_await start_remove(s, c->ready());
      if (!r && !failed_with(r, zk_errc::no_node)) {
        done(r.error());
        co_return;
      }
      break;
    }
    // Watch the members still inside (pipelined); done when every one is
    // seen deleted, else list again.
    if (ms.size() > leave_watch_batch) ms.resize(leave_watch_batch);
    struct gone_count {
      wakeup w;
      std::size_t waiting = 0;
      bool all_deleted = true; // every watch that fired was a deletion
    };
    auto g = std::make_shared<gone_count>();
    g->waiting = ms.size();
    c->waits.push_back(g->w);
    if (c->cancel_gen != gen) g->w.fire(); // a cancel just before this wait
    std::vector<pending<std::optional<zkrecipes::stat>>> ex;
    for (auto& m : ms)
      ex.push_back(start_exists(s, join(c->path, m), [g](result<watch_event> e) {
        if (!(e && e.value().type == event_type::deleted)) g->all_deleted = false;
        if (g->waiting > 0 && --g->waiting == 0) g->w.fire();
      }));
    bool listed_all = c->members(lst.value().names).size() <= leave_watch_batch;
    for (auto& p : ex) {
      auto r = co_await p;
      if (r && r.value()) continue; // there: its watch tells when it goes
      if (!r) g->all_deleted = false; // no watch was set: list again
      if (--g->waiting == 0) g->w.fire(); // gone already (or unreadable): nothing to wait for
    }
    pending<void> step;
    wait_until(s, g->w, deadline, [h = step.handler()]() mutable { h(outcome::success()); });
    (void)co_await step;
    std::erase(c->waits, g->w);
    if (c->cancel_gen != gen) {
      done(make_error(errc::cancelled, op, c->path));
      co_return;
    }
    if (g->waiting == 0 && g->all_deleted && listed_all) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      done(make_error(errc::timed_out, op, c->path + ": members still inside"));
      co_return;
    }
    lst = co_await start_children(s, c->path);
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
  /// Leaves and waits until every member has left. This member's node is
  /// deleted first; on timeout others are still in: call leave() again to wait on.
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
