// The engine behind node_cache, children_cache and tree_cache: a local
// mirror of a subtree kept current by one-shot watches.
//
// Every mirrored node has a data loop (get with a watch, again on every
// fire) and, above the depth limit, a children loop (children with a watch).
// Each read sets the next watch, so a change between a fire and the re-read
// is never lost (design §7); what a re-read finds is compared with the mirror
// by czxid (a node deleted and re-created, versions restarting at 0: apache/
// curator issue 911) and mzxid. Reads of one level are pipelined. A read that
// fails (connection loss, expiry) is retried with back-off once the session
// is back, which is the rebuild after reconnect and after session expiry.
#pragma once

#include "zkrecipes/detail/coro.hpp"
#include "zkrecipes/detail/listeners.hpp"
#include "zkrecipes/error.hpp"
#include "zkrecipes/node.hpp"
#include "zkrecipes/path.hpp"
#include "zkrecipes/session.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <chrono>
#include <cstdio>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace zkrecipes {

enum class cache_change { added, updated, removed };
inline const char* to_string(cache_change c) noexcept {
  switch (c) {
  case cache_change::added: return "added";
  case cache_change::updated: return "updated";
  case cache_change::removed: return "removed";
  }
  return "?";
}

/// One change of a cache: the node as now read (for removed: as last seen).
struct cache_event {
  cache_change change;
  std::string path; ///< full path of the node
  node data;
};

namespace detail {

struct cache_core : std::enable_shared_from_this<cache_core> {
  session* s = nullptr;
  std::string root;
  int max_depth = 0;       ///< levels below the root that are mirrored (0: the root only)
  bool root_data = true;   ///< whether the root itself is part of the mirror
  const char* kind = "cache";

  // Dispatcher thread only.
  struct entry {
    std::uint64_t gen = 0;
    int depth = 0;
    bool has_data = false;
    node data;
    std::set<std::string> kids;
    bool data_pending = false; ///< first data read not done yet (initial snapshot)
    bool kids_pending = false;
  };
  std::map<std::string, entry> entries;
  std::uint64_t next_gen = 0;
  bool started = false;
  bool closed = false;
  bool initialised = false;
  int outstanding = 0; ///< first reads not done yet
  std::vector<std::pair<std::uint64_t, std::function<void(const cache_event&)>>> listeners;
  std::vector<unique_function<void(result<void>)>> init_waiters;
  std::vector<wakeup> armed; ///< wake-ups to fire on close

  // Read from user threads.
  mutable std::mutex mx;
  std::map<std::string, node> view;
  std::uint64_t changes = 0; ///< events so far (for waits)
  std::optional<error> last_error; ///< the last lasting refusal (no_auth)
  bool initialised_view = false;
  std::condition_variable cv;

  bool alive(const std::string& p, std::uint64_t gen) const {
    if (closed) return false;
    auto it = entries.find(p);
    return it != entries.end() && it->second.gen == gen;
  }
  bool in_view(const std::string& p) const { return p != root || root_data; }

  void emit(cache_change ch, const std::string& p, const node& n) {
    {
      std::lock_guard lk(mx);
      if (ch == cache_change::removed) view.erase(p);
      else view[p] = n;
      ++changes;
    }
    cv.notify_all();
    if (!initialised) return; // the initial snapshot is not told piecemeal
    cache_event e{ch, p, n};
    call_listeners(listeners, e, kind, root);
  }

  void first_read_done(bool& flag) {
    if (!flag) return;
    flag = false;
    if (--outstanding == 0 && !initialised) {
      initialised = true;
      {
        std::lock_guard lk(mx);
        ++changes;
        initialised_view = true;
      }
      cv.notify_all();
      auto ws = std::move(init_waiters);
      init_waiters.clear();
      for (auto& h : ws) h(outcome::success());
    }
  }

  /// Drops `p` and everything below it, telling removals deepest first.
  void drop(const std::string& p) {
    std::vector<std::string> gone;
    auto it = entries.find(p);
    if (it == entries.end()) return;
    gone.push_back(p);
    const std::string prefix = p == "/" ? "/" : p + "/";
    for (auto j = entries.lower_bound(prefix); j != entries.end() && j->first.starts_with(prefix); ++j)
      gone.push_back(j->first);
    std::sort(gone.begin(), gone.end(), std::greater<>());
    for (auto& g : gone) {
      auto e = entries.find(g);
      first_read_done(e->second.data_pending);
      first_read_done(e->second.kids_pending);
      auto was = std::move(e->second);
      entries.erase(e);
      if (was.has_data && in_view(g)) emit(cache_change::removed, g, was.data);
    }
    if (p != root) {
      auto parent_it = entries.find(std::string(parent(p)));
      if (parent_it != entries.end()) parent_it->second.kids.erase(std::string(name(p)));
    }
  }

  /// Starts mirroring `p` (a new entry with its loops).
  void track(std::shared_ptr<cache_core> self, const std::string& p, int depth);

  /// The root is absent: resolves once it may exist (an exists watch fired,
  /// or it exists already), or after a back-off when the exists failed.
  pending<void> root_appears(const std::string& p, std::uint64_t gen, int& failures);

  /// After a failed read: a lasting refusal (no_auth) keeps `p` out of the
  /// mirror without holding up the snapshot, and waits for the node to
  /// change before reading again (never polling). Resolves to true when it
  /// handled the error (read again now), false for transient errors.
  pending<bool> refused(const std::string& p, std::uint64_t gen, const error& e, bool& pending_flag);

  wakeup arm() {
    wakeup w;
    // Fired ones are swept now and then, not on every call: O(1) amortised.
    if (armed.size() > 2 * entries.size() + 16) std::erase_if(armed, [](const wakeup& a) { return a.fired(); });
    armed.push_back(w);
    return w;
  }
};

inline std::chrono::milliseconds cache_backoff(int& failures) {
  return std::chrono::milliseconds(std::min(1000, 50 << std::min(failures++, 5)));
}

/// Keeps the data of `p` current.
inline task cache_data_loop(std::shared_ptr<cache_core> c, std::string p, std::uint64_t gen) {
  session& s = *c->s;
  int failures = 0;
  while (c->alive(p, gen)) {
    wakeup w = c->arm();
    auto r = co_await start_get(s, p, w.as_watcher());
    if (!c->alive(p, gen)) co_return;
    auto& e = c->entries[p];
    if (r) {
      failures = 0;
      auto& n = r.value();
      if (!e.has_data) {
        e.has_data = true;
        e.data = n;
        if (c->in_view(p)) c->emit(cache_change::added, p, n);
      } else if (e.data.stat.czxid != n.stat.czxid) {
        // Deleted and re-created while we did not look: a new node.
        auto old = std::exchange(e.data, n);
        if (c->in_view(p)) {
          c->emit(cache_change::removed, p, old);
          c->emit(cache_change::added, p, n);
        }
      } else if (n.stat.mzxid < e.data.stat.mzxid) {
        // Older than what we hold: a server behind the one we read before
        // (a new session after an expiry may land on one). Its watch fires
        // when it catches up.
      } else if (e.data.stat.mzxid != n.stat.mzxid || e.data.stat.version != n.stat.version) {
        e.data = n;
        if (c->in_view(p)) c->emit(cache_change::updated, p, n);
      } else {
        e.data = n; // children counts and the like may differ: no event
      }
      c->first_read_done(e.data_pending);
    } else if (failed_with(r, zk_errc::no_node)) {
      failures = 0;
      if (p != c->root) {
        c->drop(p); // the parent's children loop also notices; whoever is first tells
        co_return;
      }
      // The root is absent: nothing below it either. Wait for it to appear.
      if (e.has_data) {
        e.has_data = false;
        if (c->in_view(p)) c->emit(cache_change::removed, p, e.data);
      }
      c->first_read_done(e.data_pending);
      (void)co_await c->root_appears(p, gen, failures); // any error shows in the next read
      continue;
    } else if (failed_with(r, errc::closed)) {
      co_return;
    } else {
      if (co_await c->refused(p, gen, r.error(), e.data_pending)) continue;
      // Connection loss, expiry: read again once the session is back (the
      // watch, if any, has fired with the error already).
      (void)co_await sleep_for(s, cache_backoff(failures));
      continue;
    }
    co_await w;
  }
}

/// Keeps the child list of `p` current, tracking new children and dropping gone ones.
inline task cache_children_loop(std::shared_ptr<cache_core> c, std::string p, std::uint64_t gen) {
  session& s = *c->s;
  int failures = 0;
  while (c->alive(p, gen)) {
    wakeup w = c->arm();
    auto r = co_await start_children(s, p, w.as_watcher());
    if (!c->alive(p, gen)) co_return;
    auto* e = &c->entries[p];
    if (r) {
      failures = 0;
      std::set<std::string> now(r.value().names.begin(), r.value().names.end());
      std::vector<std::string> gone;
      for (auto& k : e->kids)
        if (!now.count(k)) gone.push_back(k);
      // New children first: dropping a gone one may settle the last pending
      // first read, and the snapshot must not be declared before these count.
      for (auto& k : now)
        if (!e->kids.count(k)) {
          e->kids.insert(k);
          c->track(c, join(p, k), e->depth + 1); // map insertions keep `e` valid
        }
      for (auto& k : gone) c->drop(join(p, k));
      e = &c->entries[p];
      c->first_read_done(e->kids_pending);
    } else if (failed_with(r, zk_errc::no_node)) {
      failures = 0;
      std::vector<std::string> gone(e->kids.begin(), e->kids.end());
      for (auto& k : gone) c->drop(join(p, k));
      if (p != c->root) {
        c->drop(p);
        co_return;
      }
      e = &c->entries[p];
      e->kids.clear();
      c->first_read_done(e->kids_pending);
      (void)co_await c->root_appears(p, gen, failures); // any error shows in the next read
      continue;
    } else if (failed_with(r, errc::closed)) {
      co_return;
    } else {
      if (co_await c->refused(p, gen, r.error(), e->kids_pending)) continue;
      (void)co_await sleep_for(s, cache_backoff(failures));
      continue;
    }
    co_await w;
  }
}

inline task cache_root_wait(std::shared_ptr<cache_core> c, std::string p, std::uint64_t gen, int* failures,
                            unique_function<void(result<void>)> done) {
  wakeup w = c->arm();
  auto ex = co_await start_exists(*c->s, p, w.as_watcher());
  if (ex && !ex.value() && c->alive(p, gen)) co_await w;
  else if (!ex && !failed_with(ex, errc::closed)) (void)co_await sleep_for(*c->s, cache_backoff(*failures));
  done(outcome::success());
}

inline pending<void> cache_core::root_appears(const std::string& p, std::uint64_t gen, int& failures) {
  pending<void> out;
  cache_root_wait(shared_from_this(), p, gen, &failures, out.handler());
  return out;
}

inline task cache_refused_wait(std::shared_ptr<cache_core> c, std::string p, std::uint64_t gen,
                               unique_function<void(result<bool>)> done) {
  wakeup w = c->arm();
  auto ex = co_await start_exists(*c->s, p, w.as_watcher());
  if (ex && c->alive(p, gen)) co_await w;
  done(true);
}

inline pending<bool> cache_core::refused(const std::string& p, std::uint64_t gen, const error& e, bool& pending_flag) {
  pending<bool> out;
  if (e != zk_errc::no_auth) {
    out.handler()(false);
    return out;
  }
  std::fprintf(stderr, "zkrecipes: %s %s: %s (left out of the mirror until it changes)\n", kind, root.c_str(),
               e.message().c_str());
  {
    std::lock_guard lk(mx);
    last_error = e;
  }
  first_read_done(pending_flag);
  cache_refused_wait(shared_from_this(), p, gen, out.handler());
  return out;
}

inline void cache_core::track(std::shared_ptr<cache_core> self, const std::string& p, int depth) {
  auto& e = entries[p];
  e = entry{};
  e.gen = ++next_gen;
  e.depth = depth;
  const bool want_data = p != root || root_data;
  const bool want_kids = depth < max_depth;
  if (!initialised) {
    e.data_pending = want_data;
    e.kids_pending = want_kids;
    outstanding += int(want_data) + int(want_kids);
  }
  // Both reads go out before either answer: one round trip per level.
  if (want_data) cache_data_loop(self, p, e.gen);
  if (want_kids) cache_children_loop(self, p, e.gen);
}

/// The user-facing part shared by the three caches.
class cache_base {
public:
  cache_base(const cache_base&) = delete;
  cache_base& operator=(const cache_base&) = delete;
  /// Stops the mirror; listeners are not called once this returns.
  ~cache_base() { close(); }

  const std::string& path() const noexcept { return c_->root; }

  /// Starts the mirror and waits (up to `timeout`) for the initial snapshot:
  /// every node below the root read once. Listeners hear only changes after it.
  /// \returns errc::timed_out (the mirror keeps trying), errc::already_started,
  ///          errc::invalid_path, errc::would_deadlock on the dispatcher thread.
  result<void> start(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    if (!valid_) return valid_.error();
    if (s_->on_dispatcher_thread()) return make_error(errc::would_deadlock, c_->kind, c_->root);
    auto p = std::make_shared<std::promise<result<void>>>();
    auto f = p->get_future();
    async_start([p](result<void> r) { p->set_value(std::move(r)); });
    if (f.wait_for(timeout) != std::future_status::ready)
      return make_error(errc::timed_out, c_->kind, c_->root + ": no initial snapshot yet (the mirror keeps trying)");
    return f.get();
  }
  /// Starts the mirror; `h(result<void>)` runs once the initial snapshot is in.
  template <class H> void async_start(H&& h) {
    if (!valid_) {
      s_->post([h = std::forward<H>(h), e = valid_.error()]() mutable { h(result<void>(e)); });
      return;
    }
    s_->post([c = c_, h = std::forward<H>(h)]() mutable {
      if (c->closed) return h(result<void>(make_error(errc::closed, c->kind, c->root)));
      if (c->started) return h(result<void>(make_error(errc::already_started, c->kind, c->root)));
      c->started = true;
      c->init_waiters.push_back(std::move(h));
      c->track(c, c->root, 0);
    });
  }
  /// The last lasting refusal met (e.g. no_auth on a node this session may
  /// not read; such nodes are left out of the mirror).
  std::optional<error> last_error() const {
    std::lock_guard lk(c_->mx);
    return c_->last_error;
  }
  /// True once the initial snapshot is in.
  bool initialised() const {
    std::lock_guard lk(c_->mx);
    return c_->initialised_view;
  }

  /// Adds a listener for changes after the initial snapshot (dispatcher thread, in order).
  listener_id add_listener(std::function<void(const cache_event&)> fn) {
    auto id = ++next_id_;
    s_->post([c = c_, id, fn = std::move(fn)]() mutable { c->listeners.emplace_back(id, std::move(fn)); });
    return id;
  }
  /// Once this returns the listener is not called again.
  void remove_listener(listener_id id) {
    run_on_dispatcher(*s_, [c = c_, id] { std::erase_if(c->listeners, [&](auto& l) { return l.first == id; }); });
  }

  /// Waits (up to `timeout`) until `pred(view)` holds for the mirrored nodes
  /// (full path → node). For user threads.
  template <class Pred> bool wait_until(Pred&& pred, std::chrono::milliseconds timeout) const {
    std::unique_lock lk(c_->mx);
    return c_->cv.wait_for(lk, timeout, [&] { return pred(std::as_const(c_->view)); });
  }

  /// Stops the mirror (also done by the destructor).
  void close() {
    if (!c_) return;
    run_on_dispatcher(*s_, [c = c_] {
      c->closed = true;
      c->listeners.clear();
      auto ws = std::move(c->init_waiters);
      c->init_waiters.clear();
      for (auto& h : ws) h(make_error(errc::closed, c->kind, c->root));
      auto armed = std::move(c->armed);
      for (auto& w : armed) w.fire();
    });
  }

protected:
  cache_base(session& s, std::string path, int max_depth, bool root_data, const char* kind)
      : s_(&s), c_(std::make_shared<cache_core>()) {
    c_->s = &s;
    c_->root = std::move(path);
    c_->max_depth = max_depth;
    c_->root_data = root_data;
    c_->kind = kind;
    valid_ = validate_path(c_->root, kind);
    if (max_depth < 0) valid_ = make_error(errc::invalid_argument, kind, c_->root + ": max depth below 0");
  }
  std::map<std::string, node> snapshot() const {
    std::lock_guard lk(c_->mx);
    return c_->view;
  }
  std::optional<node> find(const std::string& p) const {
    std::lock_guard lk(c_->mx);
    auto it = c_->view.find(p);
    if (it == c_->view.end()) return std::nullopt;
    return it->second;
  }

  session* s_;
  std::shared_ptr<cache_core> c_;
  result<void> valid_ = outcome::success();
  std::atomic<listener_id> next_id_{0};
};

} // namespace detail
} // namespace zkrecipes
