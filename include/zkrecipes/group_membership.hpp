// Group membership (cluster management): members join with an ephemeral
// node; every watcher keeps the live member list and hears joins and leaves.
//
// Layout (docs/group_membership.md): <path>/<member id>, ephemeral, data = payload.
#pragma once

#include "zkrecipes/detail/coro.hpp"
#include "zkrecipes/error.hpp"
#include "zkrecipes/path.hpp"
#include "zkrecipes/session.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <atomic>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace zkrecipes {

/// One member as last read.
struct group_member {
  std::string id;
  std::string payload;
  std::int64_t czxid = 0;         ///< tells a re-joined member from the one before
  std::int64_t session_id = 0;    ///< the member's session (ephemeral owner)
  friend bool operator==(const group_member&, const group_member&) = default;
};

enum class membership_change { joined, left };
inline const char* to_string(membership_change c) noexcept {
  return c == membership_change::joined ? "joined" : "left";
}

struct membership_event {
  membership_change change;
  group_member member;
};

namespace detail {

struct membership_core {
  session* s;
  std::string path;
  std::optional<acl_list> acl;

  // Own membership (dispatcher thread).
  std::optional<std::string> my_id;
  std::string my_payload;
  std::int64_t my_sid = 0;
  bool rejoining = false;

  // The view.
  mutable std::mutex mx; // guards members (read from user threads)
  std::map<std::string, group_member> members;
  bool watching = false;
  bool closed = false;
  bool initialised = false;
  std::vector<std::pair<std::uint64_t, std::function<void(const membership_event&)>>> listeners; // dispatcher
  std::uint64_t next_listener = 0;
  std::vector<unique_function<void(result<void>)>> init_waiters;
  wakeup current;
};

/// Lists the group with a watch, reads every member (pipelined), diffs by
/// czxid against the last view and tells listeners; again on every change.
inline task watch_group(std::shared_ptr<membership_core> c) {
  session& s = *c->s;
  int failures = 0;
  while (!c->closed) {
    wakeup w;
    c->current = w;
    auto lst = co_await start_children(s, c->path, w.as_watcher());
    std::map<std::string, group_member> now;
    if (failed_with(lst, zk_errc::no_node)) {
      // No group node (yet, or removed): nobody is a member. Wait for it to
      // be made with an exists watch; never create it here.
      w = wakeup{};
      c->current = w;
      auto ex = co_await start_exists(s, c->path, w.as_watcher());
      if (ex && ex.value()) continue; // made meanwhile: list it
      if (!ex) {
        (void)co_await sleep_for(s, std::chrono::milliseconds(std::min(1000, 50 << std::min(failures++, 4))));
        continue;
      }
    } else if (!lst) {
      if (failed_with(lst, errc::closed)) break;
      if (failed_with(lst, zk_errc::no_auth)) {
        // Refused by the group's ACL: tell whoever waits for a first view
        // now (it would never come), and look again slowly.
        auto ws = std::move(c->init_waiters);
        c->init_waiters.clear();
        for (auto& h : ws) h(lst.error());
      }
      // Suspended or expired: try again once the session is back.
      (void)co_await sleep_for(s, std::chrono::milliseconds(std::min(1000, 50 << std::min(failures++, 4))));
      continue;
    } else {
      failures = 0;
      std::vector<std::pair<std::string, pending<node>>> reads;
      for (auto& n : lst.value().names) reads.emplace_back(n, start_get(s, join(c->path, n)));
      bool retry = false;
      for (auto& [n, p] : reads) {
        auto g = co_await p;
        if (failed_with(g, zk_errc::no_node)) continue; // left meanwhile
        if (!g) {
          retry = true;
          continue;
        }
        now[n] = group_member{n, g.value().data, g.value().stat.czxid, g.value().stat.ephemeral_owner};
      }
      if (retry) {
        // A member we cannot read (e.g. its ACL refuses us): wait for the
        // watch or a while, never spin.
        auto timer = fire_after(s, std::chrono::milliseconds(500), w);
        co_await w;
        s.cancel_timer(timer);
        continue;
      }
    }
    std::vector<membership_event> events;
    std::vector<group_member> left, joined;
    for (auto& [id, m] : c->members) {
      auto it = now.find(id);
      if (it == now.end() || it->second.czxid != m.czxid) left.push_back(m);
    }
    for (auto& [id, m] : now) {
      auto it = c->members.find(id);
      if (it == c->members.end() || it->second.czxid != m.czxid) joined.push_back(m);
    }
    std::sort(joined.begin(), joined.end(), [](auto& a, auto& b) { return a.czxid < b.czxid; });
    std::sort(left.begin(), left.end(), [](auto& a, auto& b) { return a.czxid < b.czxid; });
    for (auto& m : left) events.push_back({membership_change::left, m});
    for (auto& m : joined) events.push_back({membership_change::joined, m});
    {
      std::lock_guard lk(c->mx);
      c->members = std::move(now);
      c->initialised = true;
    }
    auto ls = c->listeners; // a listener may add or remove listeners
    for (auto& e : events)
      for (auto& [id, fn] : ls) {
        try {
          fn(e);
        } catch (const std::exception& ex) { // a listener's failure must not stop the view
          std::fprintf(stderr, "zkrecipes: group %s: a listener threw: %s\n", c->path.c_str(), ex.what());
        } catch (...) {
          std::fprintf(stderr, "zkrecipes: group %s: a listener threw\n", c->path.c_str());
        }
      }
    auto ws = std::move(c->init_waiters);
    c->init_waiters.clear();
    for (auto& h : ws) h(outcome::success());
    co_await w;
  }
  auto ws = std::move(c->init_waiters);
  c->init_waiters.clear();
  for (auto& h : ws) h(make_error(errc::closed, "group watch", c->path));
}

/// Creates this member's node; after an expiry the old session's node may
/// still be there for a moment, so it waits (bounded) for it to go.
inline task join_group(std::shared_ptr<membership_core> c, unique_function<void(result<void>)> done) {
  session& s = *c->s;
  const std::string id = *c->my_id;
  const std::string me = join(c->path, id);
  for (int attempt = 0; attempt < 50; ++attempt) {
    if (c->closed || c->my_id != id) {
      done(make_error(errc::cancelled, "group join", me + ": left or closed meanwhile"));
      co_return;
    }
    auto cr = co_await start_create(s, me, c->my_payload, create_options(create_mode::ephemeral, c->acl));
    if (cr) {
      if (c->closed || c->my_id != id) { // left while the create was on its way
        s.async_remove(me, any_version, [](result<void>) {});
        done(make_error(errc::cancelled, "group join", me + ": left or closed meanwhile"));
        co_return;
      }
      c->my_sid = s.session_id();
      done(outcome::success());
      co_return;
    }
    if (failed_with(cr, zk_errc::no_node)) {
      if (auto e = co_await start_ensure_path(s, c->path, c->acl); !e) {
        done(e.error());
        co_return;
      }
      continue;
    }
    if (!failed_with(cr, zk_errc::node_exists)) {
      done(cr.error());
      co_return;
    }
    wakeup w;
    auto ex = co_await start_exists(s, me, w.as_watcher());
    if (ex && ex.value() && ex.value()->ephemeral_owner == s.session_id()) {
      c->my_sid = s.session_id(); // already ours (a reply lost before)
      done(outcome::success());
      co_return;
    }
    if (ex && ex.value() && ex.value()->ephemeral_owner != 0) {
      // Another session's node: ours from before an expiry, or another member with this id.
      auto timer = fire_after(s, std::chrono::milliseconds(200), w);
      co_await w;
      s.cancel_timer(timer);
      continue;
    }
    if (ex && ex.value()) {
      done(make_error(errc::invalid_argument, "group join", me + ": a persistent node has this name"));
      co_return;
    }
  }
  done(make_error(errc::timed_out, "group join", me + ": the id stays taken by another session"));
}

} // namespace detail

/// A group: join() makes this process a member; watch() keeps a live list
/// of all members with join and leave events.
///
/// \code
/// zkrecipes::group_membership g(s, "/cluster/workers");
/// g.add_listener([](const zkrecipes::membership_event& e) { ... });
/// g.watch();                         // waits for the first listing
/// g.join("worker-3", "10.0.0.3:80"); // re-created by itself after a session expiry
/// auto all = g.members();
/// \endcode
/// \note Listeners run on the session's dispatcher thread, in order: left
///       before joined within one change, each by creation order. A payload
///       is as read when its member was last seen joining. The session must
///       outlive the object.
class group_membership {
public:
  group_membership(session& s, std::string path, std::optional<acl_list> acl = std::nullopt)
      : s_(&s), c_(std::make_shared<detail::membership_core>()) {
    c_->s = &s;
    c_->path = std::move(path);
    c_->acl = std::move(acl);
    valid_ = validate_path(c_->path, "group_membership");
    // After an expiry the member node went with the old session: join again.
    lid_ = s.add_listener([c = std::weak_ptr(c_)](const session_event& e) {
      auto core = c.lock();
      if (!core || !core->my_id || e.state != session_state::connected || core->my_sid == e.session_id) return;
      if (core->rejoining) return;
      core->rejoining = true;
      rejoin(core);
    });
  }
  group_membership(const group_membership&) = delete;
  group_membership& operator=(const group_membership&) = delete;
  /// Leaves the group (not waited for) and stops the view; listeners are
  /// not called once this returns.
  ~group_membership() {
    s_->remove_listener(lid_);
    detail::run_on_dispatcher(*s_, [c = c_] {
      c->closed = true;
      c->listeners.clear();
      if (c->my_id) c->s->async_remove(zkrecipes::join(c->path, *std::exchange(c->my_id, std::nullopt)), any_version,
                                       [](result<void>) {});
      c->current.fire();
    });
  }

  const std::string& path() const noexcept { return c_->path; }

  /// Joins as `id` with `payload` (an ephemeral node, made again after
  /// expiry). Handler: `void(result<void>)`.
  template <class H> void async_join(std::string id, std::string payload, H&& h) {
    auto v = valid_ ? validate_name(id, "group join") : valid_;
    if (!v) {
      s_->post([h = std::forward<H>(h), e = v.error()]() mutable { h(result<void>(e)); });
      return;
    }
    s_->post([c = c_, id = std::move(id), payload = std::move(payload), h = std::forward<H>(h)]() mutable {
      if (c->my_id && *c->my_id != id)
        return h(result<void>(
            make_error(errc::already_started, "group join", join_path(c, id) + ": already a member as " + *c->my_id)));
      c->my_id = id;
      c->my_payload = std::move(payload);
      detail::join_group(c, std::move(h));
    });
  }
  result<void> join(std::string id, std::string payload = {}) {
    return detail::run_blocking<void>(*s_, "group join", c_->path, [&](auto done) {
      async_join(std::move(id), std::move(payload), std::move(done));
    });
  }
  /// Leaves the group (removes the node). Leaving when not a member is not
  /// an error. Handler: `void(result<void>)`.
  template <class H> void async_leave(H&& h) {
    s_->post([c = c_, h = std::forward<H>(h)]() mutable {
      if (!c->my_id) return h(result<void>(outcome::success()));
      auto me = join_path(c, *c->my_id);
      c->my_id.reset();
      c->s->async_remove(me, any_version, [h = std::move(h)](result<void> r) mutable {
        if (r || r.error() == zk_errc::no_node) h(result<void>(outcome::success()));
        else h(r);
      });
    });
  }
  result<void> leave() {
    return detail::run_blocking<void>(*s_, "group leave", c_->path, [&](auto done) { async_leave(std::move(done)); });
  }

  /// Starts the live view and waits (up to `timeout`) for the first listing.
  /// zk_errc::no_auth when the group's ACL refuses this session (the view
  /// keeps looking, slowly, in case the ACL changes).
  result<void> watch(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    if (!valid_) return valid_.error();
    auto p = std::make_shared<std::promise<result<void>>>();
    auto f = p->get_future();
    if (s_->on_dispatcher_thread()) return make_error(errc::would_deadlock, "group watch", c_->path);
    s_->post([c = c_, p] {
      bool ready;
      {
        std::lock_guard lk(c->mx);
        ready = c->initialised;
      }
      if (ready) return p->set_value(outcome::success());
      c->init_waiters.push_back([p](result<void> r) { p->set_value(std::move(r)); });
      if (!c->watching) {
        c->watching = true;
        detail::watch_group(c);
      }
    });
    if (f.wait_for(timeout) != std::future_status::ready) return make_error(errc::timed_out, "group watch", c_->path);
    return f.get();
  }
  /// The members as last seen (empty before watch()), by id.
  std::vector<group_member> members() const {
    std::lock_guard lk(c_->mx);
    std::vector<group_member> out;
    for (auto& [id, m] : c_->members) out.push_back(m);
    return out;
  }
  /// Adds a listener for joins and leaves seen after this call.
  listener_id add_listener(std::function<void(const membership_event&)> fn) {
    auto id = ++next_id_;
    s_->post([c = c_, id, fn = std::move(fn)]() mutable { c->listeners.emplace_back(id, std::move(fn)); });
    return id;
  }
  /// Once this returns the listener is not called again.
  void remove_listener(listener_id id) {
    detail::run_on_dispatcher(*s_, [c = c_, id] { std::erase_if(c->listeners, [&](auto& l) { return l.first == id; }); });
  }

private:
  // Joins again until it works (or the member left / the object closed),
  // backing off; a failure is written to stderr, never dropped silently.
  static void rejoin(std::shared_ptr<detail::membership_core> core) {
    detail::join_group(core, [core](result<void> r) {
      if (r || core->closed || !core->my_id || r.error() == errc::cancelled || r.error() == errc::closed) {
        core->rejoining = false;
        return;
      }
      std::fprintf(stderr, "zkrecipes: group %s: re-join failed (%s); trying again\n", core->path.c_str(),
                   r.error().message().c_str());
      core->s->post_after(std::chrono::seconds(1), [core] { rejoin(core); });
    });
  }

  static std::string join_path(const std::shared_ptr<detail::membership_core>& c, const std::string& id) {
    return zkrecipes::join(c->path, id);
  }

  session* s_;
  std::shared_ptr<detail::membership_core> c_;
  result<void> valid_ = outcome::success();
  listener_id lid_ = 0;
  std::atomic<listener_id> next_id_{0};
};

} // namespace zkrecipes
