// The ordered-contender engine shared by the mutex, the read-write lock, the
// semaphore and the leader latch: a protected ephemeral-sequential node under
// a parent, ranked by its sequence suffix, waiting on a watch until a rule
// says it holds. Everything here runs on the session's dispatcher thread.
#pragma once

#include "zkrecipes/hold.hpp"
#include "zkrecipes/protected_create.hpp"
#include "zkrecipes/session.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace zkrecipes::detail {

/// One contender as listed under the parent.
struct contender_entry {
  std::string name;  ///< child name, protection prefix included
  std::int64_t seq;  ///< its sequence suffix, compared as a number
};

/// A rule's verdict for our place in the sorted list.
struct rank_decision {
  bool granted = false;
  std::string watch; ///< child to watch while waiting; empty: watch the children
};

/// What one acquisition obtained.
struct grant {
  std::string path;         ///< our node
  std::int64_t token = 0;   ///< its czxid: grows across sessions and holders
  std::int64_t seq = 0;     ///< its sequence number
};

struct contender_config {
  std::string parent;
  std::string name;  ///< e.g. "lock-": the child is _c_<id>-<name><seq>
  std::string data;
  std::optional<acl_list> acl;
  const char* op = "lock"; ///< operation named in errors
  /// Sorted contenders and our index → verdict.
  std::function<rank_decision(const std::vector<contender_entry>&, std::size_t)> rank;
  /// Which children take part (default: every name with a sequence suffix).
  std::function<bool(std::string_view)> takes_part;
};

/// Sorted contenders of a listing: those with a sequence suffix, by number.
inline std::vector<contender_entry> sort_contenders(const std::vector<std::string>& names,
                                                   const std::function<bool(std::string_view)>& takes_part = {}) {
  std::vector<contender_entry> out;
  out.reserve(names.size());
  for (const auto& n : names) {
    if (takes_part && !takes_part(n)) continue;
    if (auto s = sequence_of(n)) out.push_back({n, *s});
  }
  // Sequence numbers are unique per parent; the name breaks ties only after
  // the signed 32-bit counter wrapped (see docs/mutex.md).
  std::sort(out.begin(), out.end(), [](const contender_entry& a, const contender_entry& b) {
    return a.seq != b.seq ? a.seq < b.seq : a.name < b.name;
  });
  return out;
}

/// The engine. Owners talk to it from any thread; it works on the dispatcher.
class contender : public std::enable_shared_from_this<contender> {
public:
  /// Result of an acquisition: a grant, or nullopt when a try-once attempt
  /// found the place taken.
  using done_fn = unique_function<void(result<std::optional<grant>>)>;

  static std::shared_ptr<contender> make(session& s, contender_config cfg) {
    auto c = std::shared_ptr<contender>(new contender(s, std::move(cfg)));
    std::weak_ptr<contender> w = c;
    c->lid_ = s.add_listener([w](const session_event& e) {
      if (auto self = w.lock()) self->on_session(e);
    });
    return c;
  }

  contender(const contender&) = delete;
  contender& operator=(const contender&) = delete;
  ~contender() { s_->remove_listener(lid_); }

  // ---- from any thread ------------------------------------------------------

  /// Starts an acquisition. `timeout` <= 0 waits without bound; `try_once`
  /// gives up (removing its node) when the rule does not grant at once.
  void acquire(std::chrono::milliseconds timeout, bool try_once, done_fn done) {
    s_->post([self = shared_from_this(), timeout, try_once, done = std::move(done)]() mutable {
      self->start(timeout, try_once, std::move(done));
    });
  }

  /// Gives up a running acquisition with `why` (timed_out, cancelled...).
  void cancel(errc why) {
    s_->post([self = shared_from_this(), why] {
      if (self->phase_ == phase::acquiring) self->abandon(make_error(why, self->cfg_.op, self->cfg_.parent));
    });
  }

  /// The caller stopped waiting (its bound ran out): end the acquisition,
  /// and release a hold it may have obtained meanwhile, which nobody was told of.
  void give_up() {
    s_->post([self = shared_from_this(), a = attempt_snapshot()] {
      if (self->attempt_ != a) return;
      if (self->phase_ == phase::acquiring) return self->abandon(make_error(errc::timed_out, self->cfg_.op, self->cfg_.parent));
      if (self->phase_ == phase::held) {
        self->drop_node();
        self->set_phase(phase::idle);
        self->emit(hold_event::released);
      }
    });
  }

  /// Releases the hold (the delete is kept and retried, not waited for).
  /// `done` gets not_held when nothing was held.
  void release(unique_function<void(result<void>)> done) {
    s_->post([self = shared_from_this(), done = std::move(done)]() mutable {
      if (self->phase_ != phase::held) {
        if (done) done(make_error(errc::not_held, self->cfg_.op, self->cfg_.parent));
        return;
      }
      self->drop_node();
      self->set_phase(phase::idle);
      self->emit(hold_event::released);
      if (done) done(outcome::success());
    });
  }

  /// From a user thread: releases without a trip through the dispatcher.
  /// The hold reads as released at once; the release itself runs next on
  /// the dispatcher, before anything posted later (the next acquire).
  /// False when nothing is held.
  bool release_now() {
    {
      std::lock_guard lk(mx_);
      if (phase_pub_ != phase::held) return false;
      phase_pub_ = phase::idle;
      in_doubt_ = false;
    }
    release({});
    return true;
  }

  /// Leaves for good: cancels, releases, stops listening. Not waited for.
  void shutdown() {
    s_->post([self = shared_from_this()] {
      if (self->phase_ == phase::acquiring) self->abandon(make_error(errc::closed, self->cfg_.op, self->cfg_.parent));
      if (self->phase_ == phase::held) {
        self->drop_node();
        self->set_phase(phase::idle);
        self->emit(hold_event::released);
      }
      std::lock_guard lk(self->lmx_);
      self->listener_ = nullptr;
    });
  }

  /// Called on the dispatcher for every change of the hold.
  void on_event(std::function<void(hold_event)> f) {
    std::lock_guard lk(lmx_);
    listener_ = std::move(f);
  }

  bool held() const {
    std::lock_guard lk(mx_);
    return phase_pub_ == phase::held && !in_doubt_;
  }
  bool in_doubt() const {
    std::lock_guard lk(mx_);
    return phase_pub_ == phase::held && in_doubt_;
  }
  bool acquiring() const {
    std::lock_guard lk(mx_);
    return phase_pub_ == phase::acquiring;
  }
  std::optional<grant> current() const {
    std::lock_guard lk(mx_);
    if (phase_pub_ != phase::held) return std::nullopt;
    return grant_;
  }
  /// Our node while acquiring or holding ("" before it exists).
  std::string node_path() const {
    std::lock_guard lk(mx_);
    return node_;
  }
  /// Watch notifications that woke this contender (for tests and metrics).
  std::uint64_t wakeups() const { return wakeups_.load(); }
  session& owner_session() { return *s_; }
  const contender_config& config() const { return cfg_; }

private:
  enum class phase { idle, acquiring, held };

  std::uint64_t attempt_snapshot() const { return attempt_pub_.load(); }

  contender(session& s, contender_config cfg) : s_(session_access::borrow(s)), cfg_(std::move(cfg)) {}

  void set_phase(phase p) {
    phase_ = p;
    std::lock_guard lk(mx_);
    phase_pub_ = p;
    if (p != phase::held) in_doubt_ = false;
    if (p == phase::idle) node_.clear();
  }
  void set_node(std::string path) {
    std::lock_guard lk(mx_);
    node_ = std::move(path);
  }

  void emit(hold_event e) {
    std::function<void(hold_event)> f;
    {
      std::lock_guard lk(lmx_);
      f = listener_;
    }
    if (f) f(e);
  }

  void complete(result<std::optional<grant>> r) {
    if (timer_) s_->cancel_timer(std::exchange(timer_, 0));
    if (auto d = std::exchange(done_, nullptr)) d(std::move(r));
  }

  void start(std::chrono::milliseconds timeout, bool try_once, done_fn done) {
    if (phase_ != phase::idle) {
      done(make_error(phase_ == phase::held ? errc::would_deadlock : errc::already_started, cfg_.op,
                      cfg_.parent));
      return;
    }
    if (auto v = validate_path(cfg_.parent, cfg_.op); !v) return done(v.error());
    done_ = std::move(done);
    try_once_ = try_once;
    watch_children_ = false;
    parent_tries_ = 0;
    attempt_pub_ = ++attempt_;
    set_phase(phase::acquiring);
    if (timeout.count() > 0) {
      std::weak_ptr<contender> w = weak_from_this();
      timer_ = s_->post_after(timeout, [w, a = attempt_] {
        auto self = w.lock();
        if (!self || self->attempt_ != a || self->phase_ != phase::acquiring) return;
        self->timer_ = 0;
        self->abandon(make_error(errc::timed_out, self->cfg_.op, self->cfg_.parent));
      });
    }
    begin();
  }

  // Create and list in one round trip: the session sends both at once and the
  // server answers in order, so the listing already shows our node (design §4).
  void begin() {
    const auto g = ++gen_;
    id_ = make_protected_id();
    set_node("");
    std::string full = join(cfg_.parent, protected_name(id_, cfg_.name));
    s_->async_create(full, cfg_.data, create_options{create_mode::ephemeral_sequential, cfg_.acl, {}},
                     [self = shared_from_this(), g](result<created_node> r) { self->on_created(g, std::move(r)); });
    list(g);
  }

  void on_created(std::uint64_t g, result<created_node> r) {
    if (g != gen_) {
      // An abandoned attempt's node: remove it, so no orphan waits in line.
      if (r) remove_kept(r.value().path, s_->session_id());
      return;
    }
    if (r) return adopt(std::move(r).value());
    const error& e = r.error();
    if (e == zk_errc::no_node && parent_tries_++ < 3) {
      // The parent is missing: make it (a container, reaped when empty) and
      // begin again. The pipelined listing of this attempt is stale.
      const auto g2 = ++gen_;
      s_->async_ensure_path(cfg_.parent, create_mode::container, cfg_.acl, [self = shared_from_this(), g2](result<void> p) {
        if (g2 != self->gen_ || self->phase_ != phase::acquiring) return;
        if (!p) return self->fail_or_restart(g2, p.error());
        self->begin();
      });
      return;
    }
    if (is_retryable(e)) {
      // The create may have happened: find it by our id before creating again.
      ++gen_;
      const auto g2 = gen_;
      protected_options po;
      po.mode = create_mode::ephemeral_sequential;
      po.acl = cfg_.acl;
      po.id = id_;
      async_protected_recover(*s_, cfg_.parent, cfg_.name, cfg_.data, std::move(po), e,
                              [self = shared_from_this(), g2](result<created_node> c) {
                                if (g2 != self->gen_) {
                                  if (c) self->remove_kept(c.value().path, self->s_->session_id());
                                  return;
                                }
                                if (!c) return self->fail_or_restart(g2, c.error());
                                self->adopt(std::move(c).value());
                                self->list(g2);
                              });
      return;
    }
    fail_or_restart(g, e);
  }

  void adopt(created_node n) {
    grant_.path = n.path;
    grant_.token = n.stat.czxid;
    grant_.seq = sequence_of(n.path).value_or(0);
    owner_sid_ = s_->session_id();
    set_node(n.path);
  }

  // An error while acquiring. Expiry: our node died, queue again on the new
  // session. A transient error: look again later, keeping our place.
  // Anything else ends the acquisition.
  void fail_or_restart(std::uint64_t g, const error& e) {
    if (g != gen_ || phase_ != phase::acquiring) return;
    if (!is_session_expired(e) && !is_retryable(e)) return abandon(e);
    const bool keep = is_retryable(e) && !node_path().empty();
    const auto g2 = ++gen_;
    s_->post_after(s_->options().retry.delay(0, backoff_rng()), [w = weak_from_this(), g2, keep] {
      auto self = w.lock();
      if (!self || self->gen_ != g2 || self->phase_ != phase::acquiring) return;
      if (keep) return self->list(g2, self->watch_children_);
      if (!self->node_path().empty()) self->remove_kept(self->node_path(), self->owner_sid_);
      self->begin();
    });
  }

  void list(std::uint64_t g, bool with_watch = false) {
    auto handler = [self = shared_from_this(), g](result<children_list> r) { self->on_listed(g, std::move(r)); };
    if (with_watch)
      s_->async_children(cfg_.parent, wake(g), std::move(handler));
    else
      s_->async_children(cfg_.parent, std::move(handler));
  }

  watcher wake(std::uint64_t g) {
    return [w = weak_from_this(), g](result<watch_event> ev) {
      auto self = w.lock();
      if (!self || !ev || g != self->gen_ || self->phase_ != phase::acquiring) return;
      ++self->wakeups_;
      self->list(g, self->watch_children_);
    };
  }

  void on_listed(std::uint64_t g, result<children_list> r) {
    if (g != gen_ || phase_ != phase::acquiring) return;
    if (node_path().empty()) return; // the create failed: its handler decides
    if (!r) return fail_or_restart(g, r.error());
    auto all = sort_contenders(r.value().names, cfg_.takes_part);
    std::string mine(name(node_path()));
    auto it = std::find_if(all.begin(), all.end(), [&](const contender_entry& c) { return c.name == mine; });
    if (it == all.end()) {
      // Our node is gone (deleted by hand, or its session ended): join again.
      set_node("");
      return fail_or_restart(g, make_error(zk_errc::session_expired, cfg_.op, mine));
    }
    auto d = cfg_.rank(all, static_cast<std::size_t>(it - all.begin()));
    if (d.granted) {
      set_phase(phase::held);
      complete(std::optional<grant>(grant_));
      emit(hold_event::acquired);
      return;
    }
    if (try_once_) {
      drop_node();
      set_phase(phase::idle);
      complete(std::optional<grant>());
      return;
    }
    if (d.watch.empty()) {
      // Rules that wait on the whole list (semaphore): relist with a watch.
      if (!watch_children_) {
        watch_children_ = true;
        list(g, true);
      }
      return;
    }
    // Watch only the one we wait for: a release wakes one waiter, not all.
    // (A get, not an exists: an exists on a vanished node would leave a
    // creation watch behind.)
    s_->async_get(join(cfg_.parent, d.watch), wake(g), [self = shared_from_this(), g](result<node> n) {
      if (g != self->gen_ || self->phase_ != phase::acquiring || n) return;
      if (n.error() == zk_errc::no_node) return self->list(g); // already gone: look again
      self->fail_or_restart(g, n.error());
    });
  }

  void abandon(error why) {
    ++gen_;
    drop_node();
    set_phase(phase::idle);
    watch_children_ = false;
    complete(std::move(why));
  }

  void drop_node() {
    auto p = node_path();
    if (!p.empty()) remove_kept(p, owner_sid_);
    set_node("");
  }

  // A delete that is kept and retried until it succeeds, the node is gone or
  // its session is (design §3; Curator's CURATOR-678).
  void remove_kept(std::string path, std::int64_t sid, int attempt = 0) {
    s_->async_remove(path, any_version, [w = weak_from_this(), s = s_, path, sid, attempt](result<void> r) {
      if (r || r.error() == zk_errc::no_node || r.error() == errc::closed || is_session_expired(r.error())) return;
      if (s->session_id() != sid && s->session_id() != 0) return; // the node went with its session
      auto delay = s->options().retry.delay(attempt, backoff_rng());
      s->post_after(delay, [w, path, sid, attempt] {
        if (auto self = w.lock()) self->remove_kept(path, sid, attempt + 1);
      });
    });
  }

  void on_session(const session_event& e) {
    switch (e.state) {
    case session_state::suspended:
      if (phase_ == phase::held) {
        {
          std::lock_guard lk(mx_);
          in_doubt_ = true;
        }
        emit(hold_event::in_doubt);
      }
      break;
    case session_state::reconnected:
      if (phase_ == phase::held && in_doubt()) {
        // Same session: the node should still be ours. Check before saying so.
        const auto g = gen_;
        s_->async_exists(node_path(), [self = shared_from_this(), g](result<std::optional<zkrecipes::stat>> r) {
          if (g != self->gen_ || self->phase_ != phase::held) return;
          if (r && r.value() && r.value()->ephemeral_owner == self->owner_sid_) {
            {
              std::lock_guard lk(self->mx_);
              self->in_doubt_ = false;
            }
            self->emit(hold_event::restored);
          } else if (r || !is_retryable(r.error())) {
            self->lose_hold();
          }
        });
      } else if (phase_ == phase::acquiring && !node_path().empty()) {
        list(gen_, watch_children_); // a wake-up may have been missed while away
      }
      break;
    case session_state::lost:
      if (phase_ == phase::held) {
        lose_hold();
      } else if (phase_ == phase::acquiring) {
        // Our waiting node died with the session: queue again on the new one
        // (posted, so the new handle exists by then).
        const auto g = ++gen_;
        set_node("");
        s_->post([w = weak_from_this(), g] {
          if (auto self = w.lock(); self && self->gen_ == g && self->phase_ == phase::acquiring) self->begin();
        });
      }
      break;
    case session_state::closed:
      if (phase_ == phase::acquiring) abandon(make_error(errc::closed, cfg_.op, cfg_.parent));
      if (phase_ == phase::held) lose_hold();
      break;
    default: break;
    }
  }

  void lose_hold() {
    ++gen_;
    set_phase(phase::idle);
    emit(hold_event::lost);
  }

  std::shared_ptr<session> s_;
  contender_config cfg_;
  listener_id lid_ = 0;

  // Dispatcher-only state.
  phase phase_ = phase::idle;
  std::uint64_t gen_ = 0;     ///< bumped whenever earlier callbacks become stale
  std::uint64_t attempt_ = 0; ///< one per acquire()
  std::uint64_t timer_ = 0;
  std::string id_;
  bool try_once_ = false;
  bool watch_children_ = false;
  int parent_tries_ = 0;
  std::int64_t owner_sid_ = 0;
  grant grant_;
  done_fn done_;

  // Read from other threads.
  mutable std::mutex mx_;
  phase phase_pub_ = phase::idle;
  bool in_doubt_ = false;
  std::string node_;
  std::atomic<std::uint64_t> wakeups_{0};
  std::atomic<std::uint64_t> attempt_pub_{0};

  std::mutex lmx_;
  std::function<void(hold_event)> listener_;
};

/// Waits (off the dispatcher) for an async start; bounded by `bound`.
template <class T, class Start>
result<T> wait_for(session& s, const char* op, const std::string& path, std::chrono::milliseconds bound,
                   Start&& start) {
  if (s.on_dispatcher_thread()) return make_error(errc::would_deadlock, op, path);
  auto p = std::make_shared<std::promise<result<T>>>();
  auto f = p->get_future();
  start([p](result<T> r) { p->set_value(std::move(r)); });
  if (f.wait_for(bound) != std::future_status::ready) return make_error(errc::timed_out, op, path);
  return f.get();
}

} // namespace zkrecipes::detail
