// An ordered, fair, cross-process lock (ZooKeeper's lock recipe) with
// fencing tokens. Layout compatible with Apache Curator's InterProcessMutex.
// See docs/mutex.md.
#pragma once

#include "zkrecipes/detail/contender.hpp"
#include "zkrecipes/detail/hold_state.hpp"
#include "zkrecipes/hold.hpp"
#include "zkrecipes/session.hpp"

#include <chrono>
#include <functional>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

namespace zkrecipes {

/// Settings of a lock.
struct lock_options {
  std::string data;            ///< stored in our lock node (who holds it, for people reading the tree)
  std::optional<acl_list> acl; ///< ACL of our lock node; unset: the session's default
};

namespace detail {
/// A lock's engine plus the state its callbacks share. Used by mutex and
/// the read-write lock's two halves.
class lock_base {
public:
  lock_base(session& s, std::string path, std::string node_name, lock_options opts, const char* op,
            std::function<rank_decision(const std::vector<contender_entry>&, std::size_t)> rank,
            std::function<bool(std::string_view)> takes_part = {})
      : path_(std::move(path)), state_(std::make_shared<hold_state>()) {
    contender_config cfg;
    cfg.parent = path_;
    cfg.name = std::move(node_name);
    cfg.data = std::move(opts.data);
    cfg.acl = std::move(opts.acl);
    cfg.op = op;
    cfg.rank = std::move(rank);
    cfg.takes_part = std::move(takes_part);
    engine_ = contender::make(s, std::move(cfg));
    engine_->on_event([st = state_](hold_event e) { st->on_event(e); });
  }
  ~lock_base() {
    // Listeners may capture what dies with us: none is called after this.
    state_->clear(engine_->owner_session().on_dispatcher_thread());
    engine_->shutdown();
  }
  lock_base(const lock_base&) = delete;
  lock_base& operator=(const lock_base&) = delete;

  /// Handler: `void(result<void>)`. `timeout` <= 0 waits without bound.
  template <class Handler>
    requires handler_for<Handler, void>
  void async_lock(std::chrono::milliseconds timeout, Handler&& h) {
    engine_->acquire(timeout, false, [h = std::forward<Handler>(h)](result<std::optional<grant>> r) mutable {
      if (!r) return h(result<void>(r.error()));
      h(result<void>(outcome::success()));
    });
  }

  /// Handler: `void(result<bool>)`: true when acquired, false when taken.
  template <class Handler>
    requires handler_for<Handler, bool>
  void async_try_lock(Handler&& h) {
    engine_->acquire(std::chrono::milliseconds(0), true,
                     [h = std::forward<Handler>(h)](result<std::optional<grant>> r) mutable {
                       if (!r) return h(result<bool>(r.error()));
                       h(result<bool>(r.value().has_value()));
                     });
  }

  /// Waits up to `timeout` for the lock. A wait that times out (or is
  /// cancelled) leaves no node behind. A timeout <= 0 makes one attempt
  /// (errc::timed_out when taken).
  result<void> lock(std::chrono::milliseconds timeout) { return lock(std::stop_token{}, timeout); }

  /// As lock(timeout), also given up (errc::cancelled) when `stop` is requested.
  result<void> lock(std::stop_token stop, std::chrono::milliseconds timeout) {
    const char* op = engine_->config().op;
    if (stop.stop_requested()) return make_error(errc::cancelled, op, path_);
    if (timeout.count() <= 0) {
      auto once = try_lock();
      if (!once) return once.error();
      if (!once.value()) return make_error(errc::timed_out, op, path_);
      return outcome::success();
    }
    auto& s = engine_->owner_session();
    // Registered once the acquisition is queued, so a stop that comes
    // first still finds something to cancel.
    std::optional<std::stop_callback<std::function<void()>>> cb;
    auto r = wait_for<void>(s, op, path_, bound(timeout), [&](auto done) {
      async_lock(timeout, std::move(done));
      cb.emplace(stop, std::function<void()>([e = engine_] { e->cancel(errc::cancelled); }));
    });
    if (!r && r.error() == errc::timed_out) engine_->give_up();
    return r;
  }

  /// One attempt: true when acquired; false when another holds or waits
  /// ahead (our node is removed again). One round trip.
  result<bool> try_lock() {
    auto& s = engine_->owner_session();
    auto r = wait_for<bool>(s, engine_->config().op, path_, bound(std::chrono::milliseconds(0)),
                            [&](auto done) { async_try_lock(std::move(done)); });
    if (!r && r.error() == errc::timed_out) engine_->give_up();
    return r;
  }

  /// Releases the lock. The delete is sent, kept and retried until it
  /// succeeds or the session ends; unlock does not wait for its reply.
  /// errc::not_held when this object holds nothing.
  result<void> unlock() {
    // No trip through the dispatcher either: it runs the release before any
    // later acquire of this object, and the hold reads as released now.
    if (!engine_->release_now()) return make_error(errc::not_held, engine_->config().op, path_);
    return outcome::success();
  }

  /// Held, and the connection is not in doubt.
  bool holds() const { return engine_->held(); }
  /// Held, but the connection is suspended: do not act on the hold until restored.
  bool in_doubt() const { return engine_->in_doubt(); }
  /// The czxid of our lock node while held: larger for every later holder,
  /// so a guarded resource can refuse a stale one.
  std::optional<std::int64_t> fencing_token() const {
    if (auto g = engine_->current()) return g->token;
    return std::nullopt;
  }
  /// Our lock node while waiting or holding ("" otherwise).
  std::string node_path() const { return engine_->node_path(); }
  /// The lock's path (the parent of the contenders' nodes).
  const std::string& path() const { return path_; }
  /// Stopped when the current hold is lost or released.
  std::stop_token hold_token() const { return state_->token(); }

  /// Told of acquired, in_doubt, restored, lost and released, on the dispatcher.
  listener_id add_listener(std::function<void(hold_event)> f) { return state_->add(std::move(f)); }
  /// After it returns the listener is never called again.
  void remove_listener(listener_id id) {
    state_->remove(id, engine_->owner_session().on_dispatcher_thread());
  }

  /// Contenders' node names in queue order (holders first). One round trip.
  result<std::vector<std::string>> participants() const {
    auto r = engine_->owner_session().children(path_);
    if (!r) {
      if (r.error() == zk_errc::no_node) return std::vector<std::string>{};
      return r.error();
    }
    std::vector<std::string> out;
    for (auto& c : sort_contenders(r.value().names, engine_->config().takes_part)) out.push_back(std::move(c.name));
    return out;
  }

  /// Watch notifications that woke this object while it waited.
  std::uint64_t wakeups() const { return engine_->wakeups(); }

protected:
  std::chrono::milliseconds bound(std::chrono::milliseconds timeout) const {
    auto op = engine_->owner_session().options().operation_timeout;
    return timeout.count() <= 0 ? 2 * op : timeout + 2 * op;
  }

  std::string path_;
  std::shared_ptr<hold_state> state_;
  std::shared_ptr<contender> engine_;
};

/// Rank rule of an exclusive lock: the first contender holds; each waiter
/// watches the one just ahead of it.
inline rank_decision exclusive_rank(const std::vector<contender_entry>& all, std::size_t me) {
  if (me == 0) return {true, {}};
  return {false, all[me - 1].name};
}
} // namespace detail

/// A fair, ordered cross-process lock. Waiters queue by sequence number and
/// each watches only its predecessor, so a release wakes one waiter.
///
/// Not reentrant: the hold belongs to this object, not to a thread (any
/// thread may unlock it). lock() on an object that already holds fails with
/// errc::would_deadlock; two objects on the same path contend normally, even
/// on one session.
///
/// Node layout `<path>/_c_<32 hex>-lock-<10 digits>` — the one Apache
/// Curator's InterProcessMutex uses, ordered by the same sequence suffix, so
/// both libraries can share one lock.
class mutex : public detail::lock_base {
public:
  mutex(session& s, std::string path, lock_options opts = {})
      : lock_base(s, std::move(path), "lock-", std::move(opts), "mutex.lock", &detail::exclusive_rank) {}
};

/// RAII ownership of a held lock (mutex, read or write lock, single-node lock):
/// unlocks on destruction.
template <class Lock>
class basic_lock_guard {
public:
  /// Waits up to `timeout` for `l` and returns the guard of the hold.
  static result<basic_lock_guard> acquire(Lock& l, std::chrono::milliseconds timeout) {
    auto r = l.lock(timeout);
    if (!r) return r.error();
    return basic_lock_guard(l);
  }
  /// Adopts a hold `l` already has.
  explicit basic_lock_guard(Lock& l, std::adopt_lock_t = std::adopt_lock) : l_(&l) {}
  basic_lock_guard(basic_lock_guard&& o) noexcept : l_(std::exchange(o.l_, nullptr)) {}
  basic_lock_guard& operator=(basic_lock_guard&& o) noexcept {
    if (this != &o) {
      reset();
      l_ = std::exchange(o.l_, nullptr);
    }
    return *this;
  }
  ~basic_lock_guard() { reset(); }

  /// Unlocks now (the guard then owns nothing).
  void reset() {
    if (auto* l = std::exchange(l_, nullptr)) (void)l->unlock();
  }
  Lock* lock() const { return l_; }
  bool holds() const { return l_ && l_->holds(); }
  std::optional<std::int64_t> fencing_token() const {
    return l_ ? l_->fencing_token() : std::nullopt;
  }

private:
  Lock* l_;
};

using lock_guard = basic_lock_guard<mutex>;

} // namespace zkrecipes
