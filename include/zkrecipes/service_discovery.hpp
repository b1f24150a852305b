// Service discovery: a live cache of a service's registered instances, with
// change listeners and the usual ways of choosing one (round robin, random,
// sticky, consistent hash by key).
//
// Built on children_cache over <base>/<service> (docs/service_discovery.md).
#pragma once

#include "zkrecipes/children_cache.hpp"
#include "zkrecipes/detail/listeners.hpp"
#include "zkrecipes/error.hpp"
#include "zkrecipes/service_registry.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace zkrecipes {

/// How pick() chooses among live instances.
enum class selection {
  round_robin, ///< each in turn (by instance id order)
  random,      ///< uniformly at random
  sticky,      ///< the same instance while it stays up, then the next in turn
};

enum class instance_change { up, updated, down };
inline const char* to_string(instance_change c) noexcept {
  switch (c) {
  case instance_change::up: return "up";
  case instance_change::updated: return "updated";
  case instance_change::down: return "down";
  }
  return "?";
}

struct instance_event {
  instance_change change;
  service_instance instance;
};

namespace detail {

/// 64-bit FNV-1a, mixed (splitmix64's finaliser) so that near keys spread:
/// stable across processes and versions, unlike std::hash.
inline std::uint64_t stable_hash(std::string_view s) noexcept {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : s) h = (h ^ ch) * 1099511628211ull;
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h;
}

inline service_instance instance_from(const node& n, std::string_view node_name, const service_instance& parsed) {
  service_instance in = parsed;
  in.node = std::string(node_name);
  in.czxid = n.stat.czxid;
  in.session_id = n.stat.ephemeral_owner;
  return in;
}

} // namespace detail

/// A live view of one service's instances.
///
/// \code
/// zkrecipes::service_discovery d(s, "api");
/// d.start();
/// auto inst = d.pick(zkrecipes::selection::round_robin);   // errc::unavailable if none
/// auto mine = d.pick_by_key("user-42");                   // consistent hash
/// \endcode
/// \note An instance registered twice under one id (a process restarted
///       before its old session expired) is shown once: the newest node.
///       Records that do not decode are skipped and written to stderr.
///       Listeners run on the session's dispatcher thread. The session
///       must outlive the object.
class service_discovery {
public:
  /// \param virtual_nodes points per instance on the consistent-hash ring.
  service_discovery(session& s, std::string service, registry_options opts = {}, int virtual_nodes = 100)
      : s_(&s), service_(std::move(service)), st_(std::make_shared<state>()),
        cache_(s, join(opts.base_path, service_)) {
    st_->vnodes = std::max(1, virtual_nodes);
    if (auto v = validate_name(service_, "service discovery"); !v) valid_ = v.error();
    cache_.add_listener([st = st_, c = &cache_](const cache_event& e) { refresh(st, *c, &e); });
  }
  service_discovery(const service_discovery&) = delete;
  service_discovery& operator=(const service_discovery&) = delete;
  ~service_discovery() {
    cache_.close();
    detail::run_on_dispatcher(*s_, [st = st_] { st->listeners.clear(); });
  }

  const std::string& service() const noexcept { return service_; }

  /// Starts the live view and waits (up to `timeout`) for the first listing.
  /// zk_errc::no_auth when the service's node refuses this session and no
  /// instance could be read (the view keeps waiting for the ACL to change).
  result<void> start(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    if (!valid_) return valid_.error();
    if (s_->on_dispatcher_thread()) return make_error(errc::would_deadlock, "service discovery", service_);
    auto p = std::make_shared<std::promise<result<void>>>();
    auto f = p->get_future();
    cache_.async_start([st = st_, c = &cache_, p](result<void> r) {
      if (r) refresh(st, *c, nullptr);
      p->set_value(std::move(r));
    });
    if (f.wait_for(timeout) != std::future_status::ready)
      return make_error(errc::timed_out, "service discovery", service_ + ": no listing yet (keeps trying)");
    if (auto r = f.get(); !r) return r;
    // The cache leaves a node it may not read out of its mirror and goes on;
    // a view that was refused and sees nobody must say so, not look empty.
    if (auto e = cache_.last_error(); e && instances().empty()) return *e;
    return outcome::success();
  }

  /// The live instances, by id.
  std::vector<service_instance> instances() const {
    std::lock_guard lk(st_->mx);
    return st_->list;
  }

  /// One live instance chosen by `how`. errc::unavailable when none is up.
  result<service_instance> pick(selection how) {
    std::lock_guard lk(st_->mx);
    if (st_->list.empty()) return none();
    const auto& l = st_->list;
    switch (how) {
    case selection::round_robin: return l[st_->next++ % l.size()];
    case selection::random: {
      std::uniform_int_distribution<std::size_t> d(0, l.size() - 1);
      return l[d(st_->rng)];
    }
    case selection::sticky: {
      for (auto& in : l)
        if (in.id == st_->sticky) return in;
      const auto& in = l[st_->next++ % l.size()];
      st_->sticky = in.id;
      return in;
    }
    }
    return none();
  }
  /// The instance owning `key` on a consistent-hash ring: when an instance
  /// leaves, only its keys move (to the next points on the ring); the others stay.
  result<service_instance> pick_by_key(std::string_view key) const {
    std::lock_guard lk(st_->mx);
    if (st_->ring_stale) { // built on first use after the ids changed, not on every change
      st_->ring.clear();
      for (std::size_t i = 0; i < st_->list.size(); ++i)
        for (int v = 0; v < st_->vnodes; ++v)
          st_->ring.emplace_back(detail::stable_hash(st_->list[i].id + "#" + std::to_string(v)), i);
      std::sort(st_->ring.begin(), st_->ring.end());
      st_->ring_stale = false;
    }
    if (st_->ring.empty()) return none();
    auto h = detail::stable_hash(key);
    auto it = std::lower_bound(st_->ring.begin(), st_->ring.end(), std::pair<std::uint64_t, std::size_t>{h, 0});
    if (it == st_->ring.end()) it = st_->ring.begin();
    return st_->list[it->second];
  }

  /// Adds a listener for instances going up, updated and down after start().
  listener_id add_listener(std::function<void(const instance_event&)> fn) {
    auto id = ++next_id_;
    s_->post([st = st_, id, fn = std::move(fn)]() mutable { st->listeners.emplace_back(id, std::move(fn)); });
    return id;
  }
  /// Once this returns the listener is not called again.
  void remove_listener(listener_id id) {
    detail::run_on_dispatcher(*s_, [st = st_, id] { std::erase_if(st->listeners, [&](auto& l) { return l.first == id; }); });
  }

  /// Waits (up to `timeout`) until `pred(instances)` holds.
  template <class Pred> bool wait_until(Pred&& pred, std::chrono::milliseconds timeout) const {
    std::unique_lock lk(st_->mx);
    return st_->cv.wait_for(lk, timeout, [&] { return pred(std::as_const(st_->list)); });
  }

private:
  struct state {
    std::mutex mx;
    std::condition_variable cv;
    std::vector<service_instance> list;                    // by id
    std::vector<std::pair<std::uint64_t, std::size_t>> ring; // (point, index in list), sorted
    bool ring_stale = true;                                  // ring to be rebuilt from list
    std::size_t next = 0;
    std::string sticky;
    std::mt19937_64 rng{std::random_device{}()};
    int vnodes = 100;
    std::vector<std::pair<listener_id, std::function<void(const instance_event&)>>> listeners; // dispatcher
    std::map<std::string, service_instance> by_node; // dispatcher: decoded records by node name
    std::map<std::string, service_instance> by_id;   // dispatcher: what listeners were told
  };

  error none() const {
    return make_error(errc::unavailable, "service discovery", service_ + ": no instance is up");
  }

  // Dispatcher thread: applies one cache change (or, for the first listing,
  // all of them), then tells listeners what changed per instance id.
  static void refresh(const std::shared_ptr<state>& st, const children_cache& cache, const cache_event* e) {
    auto take = [&](const std::string& name, const node& n) {
      auto in = detail::decode_instance(n.data);
      if (!in) {
        st->by_node.erase(name);
        std::fprintf(stderr, "zkrecipes: service discovery %s: skipped %s: %s\n", cache.path().c_str(), name.c_str(),
                     in.error().message().c_str());
        return;
      }
      st->by_node[name] = detail::instance_from(n, name, in.value());
    };
    if (!e) {
      st->by_node.clear();
      for (auto& [name, n] : cache.children()) take(name, n);
    } else {
      const std::string name(zkrecipes::name(e->path));
      if (e->change == cache_change::removed) st->by_node.erase(name);
      else take(name, e->data);
    }
    // One per id: the newest registration (a restarted process may briefly
    // have two, until its old session expires).
    std::map<std::string, service_instance> by_id;
    for (auto& [name, in] : st->by_node) {
      auto [it, fresh] = by_id.emplace(in.id, in);
      if (!fresh && it->second.czxid < in.czxid) it->second = in;
    }
    std::vector<instance_event> events;
    bool ids_changed = by_id.size() != st->by_id.size();
    for (auto& [id, in] : st->by_id)
      if (!by_id.count(id)) events.push_back({instance_change::down, in}), ids_changed = true;
    for (auto& [id, in] : by_id) {
      auto it = st->by_id.find(id);
      if (it == st->by_id.end()) events.push_back({instance_change::up, in}), ids_changed = true;
      else if (it->second.czxid != in.czxid || it->second.payload != in.payload ||
               it->second.address != in.address || it->second.ports != in.ports)
        events.push_back({instance_change::updated, in});
    }
    std::vector<service_instance> list;
    list.reserve(by_id.size());
    for (auto& [id, in] : by_id) list.push_back(in);
    {
      std::lock_guard lk(st->mx);
      st->list = std::move(list);
      if (ids_changed || !e) st->ring_stale = true; // the ring depends only on the ids (and their order)
    }
    st->cv.notify_all();
    st->by_id = std::move(by_id);
    if (!e) return; // the first listing is the snapshot, not news
    for (auto& ev : events) detail::call_listeners(st->listeners, ev, "service discovery", ev.instance.service);
  }

  session* s_;
  std::string service_;
  std::shared_ptr<state> st_;
  children_cache cache_;
  result<void> valid_ = outcome::success();
  std::atomic<listener_id> next_id_{0};
};

} // namespace zkrecipes
