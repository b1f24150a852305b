// The simplest lock (the ZooKeeper guide's first kind): whoever creates the
// one ephemeral node holds it. Try-once by nature; waiting means watching
// that node, which wakes every waiter. See docs/single_node_lock.md.
#pragma once

#include "zkrecipes/detail/contender.hpp"
#include "zkrecipes/detail/coro.hpp"
#include "zkrecipes/detail/hold_state.hpp"
#include "zkrecipes/hold.hpp"
#include "zkrecipes/mutex.hpp"
#include "zkrecipes/session.hpp"

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>

namespace zkrecipes {

namespace detail {
/// Dispatcher-side state of a single_node_lock.
class single_node_engine : public std::enable_shared_from_this<single_node_engine> {
public:
  static std::shared_ptr<single_node_engine> make(session& s, std::string path, lock_options o) {
    auto e = std::shared_ptr<single_node_engine>(new single_node_engine(s, std::move(path), std::move(o)));
    std::weak_ptr<single_node_engine> w = e;
    e->lid_ = s.add_listener([w](const session_event& ev) {
      if (auto self = w.lock()) self->on_session(ev);
    });
    return e;
  }
  ~single_node_engine() { s_->remove_listener(lid_); }

  // One attempt: create; on node_exists, ours only if our session owns it
  // (a create whose reply was lost); otherwise taken.
  void try_once(unique_function<void(result<bool>)> done) {
    s_->post([self = shared_from_this(), done = std::move(done)]() mutable {
      if (self->held_) return done(make_error(errc::would_deadlock, "single_node_lock.lock", self->path_));
      if (auto v = validate_path(self->path_, "single_node_lock.lock"); !v) return done(v.error());
      self->attempt(std::move(done), 0);
    });
  }

  // Waits on the node's deletion between attempts, up to the deadline.
  void wait_lock(std::chrono::steady_clock::time_point deadline, std::shared_ptr<std::atomic<bool>> cancelled,
                 unique_function<void(result<bool>)> done) {
    try_once([self = shared_from_this(), deadline, cancelled, done = std::move(done)](result<bool> r) mutable {
      if (!r || r.value()) return done(std::move(r));
      self->wait_gone(deadline, cancelled, std::move(done));
    });
  }

  /// Wakes a waiting lock() now (its stop was requested).
  void kick() {
    s_->post([self = shared_from_this()] {
      if (auto k = std::exchange(self->kick_, nullptr)) k();
    });
  }

  void release(unique_function<void(result<void>)> done) {
    s_->post([self = shared_from_this(), done = std::move(done)]() mutable {
      if (!self->held_) {
        if (done) done(make_error(errc::not_held, "single_node_lock.unlock", self->path_));
        return;
      }
      self->set_held(false);
      self->remove_kept(self->sid_, 0);
      self->state->on_event(hold_event::released);
      if (done) done(outcome::success());
    });
  }

  void shutdown() {
    s_->post([self = shared_from_this()] {
      if (self->held_) {
        self->set_held(false);
        self->remove_kept(self->sid_, 0);
        self->state->on_event(hold_event::released);
      }
    });
  }

  bool held() const {
    std::lock_guard lk(mx_);
    return held_pub_ && !doubt_;
  }
  bool in_doubt() const {
    std::lock_guard lk(mx_);
    return held_pub_ && doubt_;
  }
  std::optional<std::int64_t> token() const {
    std::lock_guard lk(mx_);
    if (!held_pub_) return std::nullopt;
    return token_;
  }
  session& owner_session() { return *s_; }
  const std::string& path() const { return path_; }

  std::shared_ptr<hold_state> state = std::make_shared<hold_state>();

private:
  single_node_engine(session& s, std::string path, lock_options o)
      : s_(session_access::borrow(s)), path_(std::move(path)), opts_(std::move(o)) {}

  void set_held(bool h, std::int64_t token = 0) {
    held_ = h;
    std::lock_guard lk(mx_);
    held_pub_ = h;
    doubt_ = false;
    if (h) token_ = token;
  }

  void attempt(unique_function<void(result<bool>)> done, int n) {
    s_->async_create(path_, opts_.data, create_options{create_mode::ephemeral, opts_.acl, {}},
                     [self = shared_from_this(), done = std::move(done), n](result<created_node> r) mutable {
                       if (r) return self->granted(r.value().stat, std::move(done));
                       const error& e = r.error();
                       if (e == zk_errc::no_node) {
                         // The parent is missing: make it, then try again.
                         auto parent = zkrecipes::parent(self->path_);
                         if (n >= 2 || parent.empty()) return done(e);
                         return self->s_->async_ensure_path(
                             parent, create_mode::persistent, self->opts_.acl, [self, done = std::move(done), n](result<void> p) mutable {
                               if (!p) return done(p.error());
                               self->attempt(std::move(done), n + 1);
                             });
                       }
                       // Taken, even by another object on this session: only a
                       // create whose reply was lost may find its own node.
                       if (e == zk_errc::node_exists) return done(false);
                       if (is_retryable(e)) return self->check_owner(std::move(done), n, e);
                       done(e);
                     });
  }

  // Our create's reply was lost: the node is ours only if the current
  // session owns it.
  void check_owner(unique_function<void(result<bool>)> done, int n, error cause) {
    s_->async_exists(path_, [self = shared_from_this(), done = std::move(done), n,
                             cause](result<std::optional<zkrecipes::stat>> r) mutable {
      if (!r) return done(r.error());
      if (!r.value()) {
        if (n >= 4) return done(cause);
        return self->attempt(std::move(done), n + 1); // gone meanwhile: try again
      }
      if (r.value()->ephemeral_owner == self->s_->session_id()) return self->granted(*r.value(), std::move(done));
      done(false);
    });
  }

  void granted(const zkrecipes::stat& st, unique_function<void(result<bool>)> done) {
    sid_ = s_->session_id();
    set_held(true, st.czxid);
    done(true);
    state->on_event(hold_event::acquired);
  }

  void wait_gone(std::chrono::steady_clock::time_point deadline, std::shared_ptr<std::atomic<bool>> cancelled,
                 unique_function<void(result<bool>)> done) {
    if (cancelled->load()) return done(make_error(errc::cancelled, "single_node_lock.lock", path_));
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return done(make_error(errc::timed_out, "single_node_lock.lock", path_));
    // One shared slot: whichever of the watch, the timer and the cancel comes first resumes.
    auto slot = std::make_shared<unique_function<void(result<bool>)>>(std::move(done));
    auto resume = [self = shared_from_this(), deadline, cancelled, slot]() {
      if (!*slot) return;
      auto d = std::move(*slot);
      *slot = nullptr;
      self->kick_ = nullptr; // (it holds a copy of this closure, and of self)
      self->wait_lock(deadline, cancelled, std::move(d));
    };
    auto timer = s_->post_after(left, resume);
    kick_ = [resume, s = s_, timer] {
      s->cancel_timer(timer);
      resume();
    };
    // A failed watch (the session expired) also resumes: the next attempt
    // runs on the new session instead of sleeping until the deadline.
    s_->async_exists(path_,
                     [resume, s = s_, timer](result<watch_event>) {
                       s->cancel_timer(timer);
                       resume();
                     },
                     [resume, s = s_, timer](result<std::optional<zkrecipes::stat>> r) {
                       if (r && r.value()) return; // wait for the watch
                       s->cancel_timer(timer);
                       resume();
                     });
  }

  void remove_kept(std::int64_t sid, int attempt) {
    s_->async_remove(path_, any_version, [w = weak_from_this(), s = s_, sid, attempt](result<void> r) {
      if (r || r.error() == zk_errc::no_node || r.error() == errc::closed || is_session_expired(r.error())) return;
      if (!detail::same_session(*s, sid)) return; // its session ended: the node went with it
      s->post_after(s->options().retry.delay(attempt, backoff_rng()), [w, sid, attempt] {
        if (auto self = w.lock()) self->remove_kept(sid, attempt + 1);
      });
    });
  }

  void on_session(const session_event& e) {
    if (!held_) return;
    if (e.state == session_state::suspended) {
      {
        std::lock_guard lk(mx_);
        doubt_ = true;
      }
      state->on_event(hold_event::in_doubt);
    } else if (e.state == session_state::reconnected && in_doubt()) {
      s_->async_exists(path_, [self = shared_from_this()](result<std::optional<zkrecipes::stat>> r) {
        if (!self->held_) return;
        if (r && r.value() && r.value()->ephemeral_owner == self->sid_) {
          {
            std::lock_guard lk(self->mx_);
            self->doubt_ = false;
          }
          self->state->on_event(hold_event::restored);
        } else if (r || !is_retryable(r.error())) {
          self->set_held(false);
          self->state->on_event(hold_event::lost);
        }
      });
    } else if (e.state == session_state::lost || e.state == session_state::closed) {
      set_held(false);
      state->on_event(hold_event::lost);
    }
  }

  std::shared_ptr<session> s_;
  std::string path_;
  lock_options opts_;
  listener_id lid_ = 0;
  bool held_ = false;
  std::int64_t sid_ = 0;
  mutable std::mutex mx_;
  bool held_pub_ = false, doubt_ = false;
  std::int64_t token_ = 0;
  std::function<void()> kick_; // dispatcher-only: resumes the current wait
};
} // namespace detail

/// A lock that is one ephemeral node at `path`: try_lock() creates it and
/// holds if the create succeeded. No queue and no fairness; lock(timeout)
/// watches the node and tries again when it goes, waking every waiter.
class single_node_lock {
public:
  single_node_lock(session& s, std::string path, lock_options opts = {})
      : e_(detail::single_node_engine::make(s, std::move(path), std::move(opts))) {}
  ~single_node_lock() {
    e_->state->clear(e_->owner_session().on_dispatcher_thread()); // no listener outlives us
    e_->shutdown();
  }
  single_node_lock(const single_node_lock&) = delete;
  single_node_lock& operator=(const single_node_lock&) = delete;

  /// One attempt, one round trip when free: true when this object now holds
  /// the lock, false when another session does.
  result<bool> try_lock() {
    return detail::wait_for<bool>(session_(), "single_node_lock.lock", e_->path(), 2 * op_timeout(),
                                  [&](auto done) { e_->try_once(std::move(done)); });
  }

  /// Tries, then waits for the node to go and tries again, up to `timeout`.
  result<void> lock(std::chrono::milliseconds timeout) { return lock(std::stop_token{}, timeout); }
  result<void> lock(std::stop_token stop, std::chrono::milliseconds timeout) {
    auto cancelled = std::make_shared<std::atomic<bool>>(false);
    if (stop.stop_requested()) return make_error(errc::cancelled, "single_node_lock.lock", e_->path());
    std::stop_callback cb(stop, [cancelled, e = e_] {
      cancelled->store(true);
      e->kick();
    });
    auto deadline = std::chrono::steady_clock::now() + timeout;
    auto r = detail::wait_for<bool>(session_(), "single_node_lock.lock", e_->path(), timeout + 2 * op_timeout(),
                                    [&](auto done) { e_->wait_lock(deadline, cancelled, std::move(done)); });
    if (!r) return r.error();
    return outcome::success();
  }

  /// Removes the node (kept and retried until it succeeds or the session ends).
  result<void> unlock() {
    if (session_().on_dispatcher_thread()) {
      e_->release({});
      return outcome::success();
    }
    return detail::wait_for<void>(session_(), "single_node_lock.unlock", e_->path(), op_timeout(),
                                  [&](auto done) { e_->release(std::move(done)); });
  }

  bool holds() const { return e_->held(); }
  bool in_doubt() const { return e_->in_doubt(); }
  /// czxid of the lock node while held.
  std::optional<std::int64_t> fencing_token() const { return e_->token(); }
  const std::string& path() const { return e_->path(); }
  std::stop_token hold_token() const { return e_->state->token(); }
  listener_id add_listener(std::function<void(hold_event)> f) { return e_->state->add(std::move(f)); }
  void remove_listener(listener_id id) { e_->state->remove(id, e_->owner_session().on_dispatcher_thread()); }

private:
  session& session_() const { return e_->owner_session(); }
  std::chrono::milliseconds op_timeout() const { return e_->owner_session().options().operation_timeout; }
  std::shared_ptr<detail::single_node_engine> e_;
};

using single_node_guard = basic_lock_guard<single_node_lock>;

} // namespace zkrecipes
