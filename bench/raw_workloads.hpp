// The raw ZooKeeper C client side of the failover, config, barrier, registry
// and memory workloads of `./run bench`. Like the raw lock and queue in
// zk_bench.cpp it is the ceiling: the fewest round trips any library on the C
// client could send. Requests that do not depend on each other go out back to
// back on the async API; completions and watches run on each handle's
// completion thread, never block there and signal through a mutex and a
// condition variable; the waiting side dies after 30 s.
//
// Each raw_<workload>(connect, root) runs the workload with library "c" and
// returns its JSON object (one line, no newline).
#pragma once

#include "bench_common.hpp"

#include <zookeeper/zookeeper.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace bench {

namespace raw_detail {

constexpr auto wait_bound = std::chrono::seconds(30);
constexpr int pending = 1; // no completion yet (ZooKeeper codes are 0 or negative)

/// Waits for pred under lk; dies when it does not hold within 30 s.
template <class Pred>
inline void wait_or_die(std::condition_variable& cv, std::unique_lock<std::mutex>& lk, Pred pred, const std::string& what) {
  if (!cv.wait_for(lk, wait_bound, pred)) die("raw " + what + ": not done within 30 s");
}

template <class T>
inline T* from(const void* p) {
  return static_cast<T*>(const_cast<void*>(p));
}

inline double ms_between(clock_type::time_point a, clock_type::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

inline std::string fixed(double v, const char* format = "%.3f") {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

inline std::vector<std::string> names_of(const String_vector* sv) {
  std::vector<std::string> out;
  if (sv)
    for (int i = 0; i < sv->count; ++i) out.emplace_back(sv->data[i]);
  return out;
}

inline std::string rc_text(const std::string& what, int rc) { return what + ": " + zerror(rc); }

// ---- failover ------------------------------------------------------------------
// Each candidate: an ephemeral sequential node and its listing sent back to
// back; the lowest leads, every other one holds an exists watch on its
// predecessor and lists again when it fires. All of it runs in the callbacks,
// so the new leader's "I am leader" stamp is taken on its completion thread.

struct election {
  std::mutex m;
  std::condition_variable cv;
  std::string dir;
  std::string error;
};

struct candidate {
  election* e = nullptr;
  std::unique_ptr<raw_client> c;
  zhandle_t* zh = nullptr; // stays valid while zookeeper_close runs (c is already null then)
  std::string mine;        // full path of the own node
  bool joined = false, leader = false, closed = false;
  clock_type::time_point led_at{};
};

inline void election_fail(election& e, const std::string& what) {
  if (e.error.empty()) e.error = what;
  e.cv.notify_all();
}

inline void election_list(candidate* k);

inline void election_created(int rc, const char* value, const void* data) {
  auto* k = from<candidate>(data);
  std::lock_guard lk(k->e->m);
  if (k->closed) return;
  if (rc != ZOK) return election_fail(*k->e, rc_text("failover: create", rc));
  k->mine = value;
}

inline void election_exists_done(int rc, const Stat*, const void* data) {
  auto* k = from<candidate>(data);
  {
    std::lock_guard lk(k->e->m);
    if (k->closed) return;
    if (rc == ZOK) { // watching the predecessor: joined
      k->joined = true;
      k->e->cv.notify_all();
      return;
    }
    if (rc != ZNONODE) return election_fail(*k->e, rc_text("failover: exists", rc));
  }
  election_list(k); // the predecessor went away meanwhile
}

inline void election_pred_watch(zhandle_t*, int type, int, const char*, void* ctx) {
  if (type == ZOO_SESSION_EVENT) return;
  auto* k = static_cast<candidate*>(ctx);
  {
    std::lock_guard lk(k->e->m);
    if (k->closed) return;
  }
  election_list(k);
}

inline void election_children_done(int rc, const String_vector* sv, const void* data) {
  const auto now = clock_type::now();
  auto* k = from<candidate>(data);
  std::string pred_path;
  {
    std::lock_guard lk(k->e->m);
    if (k->closed) return;
    if (rc != ZOK) return election_fail(*k->e, rc_text("failover: list", rc));
    if (k->mine.empty()) return election_fail(*k->e, "failover: listed before the own node was created");
    const std::string me = k->mine.substr(k->e->dir.size() + 1);
    std::string pred;
    bool found = false;
    for (auto& n : names_of(sv)) {
      if (n == me) found = true;
      else if (seq_of(n) < seq_of(me) && (pred.empty() || seq_of(n) > seq_of(pred))) pred = n;
    }
    if (!found) return election_fail(*k->e, "failover: own node missing from the listing");
    if (pred.empty()) { // lowest: the "I am leader" callback
      k->leader = k->joined = true;
      k->led_at = now;
      k->e->cv.notify_all();
      return;
    }
    pred_path = k->e->dir + "/" + pred;
  }
  int zrc = zoo_awexists(k->zh, pred_path.c_str(), &election_pred_watch, k, &election_exists_done, k);
  if (zrc != ZOK) {
    std::lock_guard lk(k->e->m);
    if (!k->closed) election_fail(*k->e, rc_text("failover: exists", zrc));
  }
}

inline void election_list(candidate* k) {
  int zrc = zoo_aget_children(k->zh, k->e->dir.c_str(), 0, &election_children_done, k);
  if (zrc != ZOK) {
    std::lock_guard lk(k->e->m);
    if (!k->closed) election_fail(*k->e, rc_text("failover: list", zrc));
  }
}

/// A new session joins the election: create and list sent back to back.
inline std::unique_ptr<candidate> election_join(election& e, const std::string& connect) {
  auto k = std::make_unique<candidate>();
  k->e = &e;
  k->c = std::make_unique<raw_client>(connect);
  k->zh = k->c->zh;
  const std::string prefix = e.dir + "/n-";
  if (int zrc = zoo_acreate(k->zh, prefix.c_str(), "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL_SEQUENTIAL, &election_created,
                            k.get());
      zrc != ZOK)
    die(rc_text("raw failover: create", zrc));
  election_list(k.get());
  return k;
}

// ---- config ----------------------------------------------------------------------
// Each subscriber: zoo_awget on the node; its watch fires, the next zoo_awget
// reads the new value and re-arms the watch in the same request.

struct config_hub {
  std::mutex m;
  std::condition_variable cv;
  std::string path, error;
  bool stopping = false;
  std::vector<int> seen_by;                     // per value index: subscribers that saw it
  std::vector<clock_type::time_point> latest;   // per value index: latest first-seen stamp
};

struct config_subscriber {
  config_hub* h = nullptr;
  std::unique_ptr<raw_client> c;
  zhandle_t* zh = nullptr;
  std::vector<char> seen;
};

inline void config_fail(config_hub& h, const std::string& what) {
  if (h.error.empty()) h.error = what;
  h.cv.notify_all();
}

inline void config_read(config_subscriber* s);

inline void config_data_done(int rc, const char* value, int len, const Stat*, const void* data) {
  const auto now = clock_type::now(); // the change callback: first sight of the value
  auto* s = from<config_subscriber>(data);
  auto& h = *s->h;
  std::lock_guard lk(h.m);
  if (h.stopping) return;
  if (rc != ZOK) return config_fail(h, rc_text("config: get", rc));
  if (!value || len < 2 || value[0] != 'v') return config_fail(h, "config: unexpected value");
  const int i = std::atoi(std::string(value + 1, std::size_t(len - 1)).c_str());
  if (i < 0 || std::size_t(i) >= s->seen.size()) return config_fail(h, "config: value out of range");
  if (s->seen[std::size_t(i)]) return;
  s->seen[std::size_t(i)] = 1;
  auto& l = h.latest[std::size_t(i)];
  if (h.seen_by[std::size_t(i)]++ == 0 || now > l) l = now;
  h.cv.notify_all();
}

inline void config_watch(zhandle_t*, int type, int, const char*, void* ctx) {
  auto* s = static_cast<config_subscriber*>(ctx);
  if (type == ZOO_SESSION_EVENT) return;
  if (type != ZOO_CHANGED_EVENT) {
    std::lock_guard lk(s->h->m);
    if (!s->h->stopping) config_fail(*s->h, "config: the node went away");
    return;
  }
  config_read(s);
}

inline void config_read(config_subscriber* s) {
  int zrc = zoo_awget(s->zh, s->h->path.c_str(), &config_watch, s, &config_data_done, s);
  if (zrc != ZOK) {
    std::lock_guard lk(s->h->m);
    if (!s->h->stopping) config_fail(*s->h, rc_text("config: get", zrc));
  }
}

// ---- barrier ---------------------------------------------------------------------
// Enter: create the round node (it may exist), exists watch on ready, create
// the own ephemeral node, list: one round trip. With 8 members in the list
// the member creates ready and goes on without waiting for it (its next
// requests follow it on the session); otherwise it waits for the watch.
// Leave: delete the own node and list (one round trip), then an exists watch
// on each member node still listed, all back to back; out when each is gone.
// Rounds never reuse a node, and no member node is created after ready, so
// the listed nodes only go away: no re-listing is needed.


struct barrier_member {
  std::mutex m; // guards the fields below; cv signals them
  std::condition_variable cv;
  std::unique_ptr<raw_client> c;
  zhandle_t* zh = nullptr;
  std::string base, own_name; // <root>/barrier, m<k>
  std::string bpath, ready_path, own_path, prefix;
  int node_rc = pending, exists_rc = pending, own_rc = pending, list_rc = pending, leave_rc = pending;
  int in_count = 0, remaining = 0;
  bool ready_seen = false;
  std::vector<std::string> others;
  std::string error;
  clock_type::time_point finished{};
};

inline void barrier_fail(barrier_member& b, const std::string& what) {
  if (b.error.empty()) b.error = what;
  b.cv.notify_all();
}

inline void barrier_node_done(int rc, const char*, const void* data) {
  auto* b = from<barrier_member>(data);
  std::lock_guard lk(b->m);
  b->node_rc = rc;
  if (rc != ZOK && rc != ZNODEEXISTS) barrier_fail(*b, rc_text("barrier: create round node", rc));
}
inline void barrier_ready_exists_done(int rc, const Stat*, const void* data) {
  auto* b = from<barrier_member>(data);
  std::lock_guard lk(b->m);
  b->exists_rc = rc;
  if (rc != ZOK && rc != ZNONODE) barrier_fail(*b, rc_text("barrier: exists ready", rc));
}
inline void barrier_ready_watch(zhandle_t*, int type, int, const char* path, void* ctx) {
  if (type != ZOO_CREATED_EVENT) return;
  auto* b = static_cast<barrier_member*>(ctx);
  std::lock_guard lk(b->m);
  if (path && b->ready_path == path) { // not a watch left from an earlier round
    b->ready_seen = true;
    b->cv.notify_all();
  }
}
inline void barrier_own_done(int rc, const char*, const void* data) {
  auto* b = from<barrier_member>(data);
  std::lock_guard lk(b->m);
  b->own_rc = rc;
  if (rc != ZOK) barrier_fail(*b, rc_text("barrier: create own node", rc));
}
inline void barrier_enter_list_done(int rc, const String_vector* sv, const void* data) {
  auto* b = from<barrier_member>(data);
  std::lock_guard lk(b->m);
  b->in_count = 0;
  for (auto& n : names_of(sv))
    if (n != "ready") ++b->in_count;
  b->list_rc = rc;
  if (rc != ZOK) barrier_fail(*b, rc_text("barrier: list", rc));
  b->cv.notify_all();
}
inline void barrier_ready_created(int rc, const char*, const void* data) {
  auto* b = from<barrier_member>(data);
  std::lock_guard lk(b->m);
  if (rc != ZOK && rc != ZNODEEXISTS) barrier_fail(*b, rc_text("barrier: create ready", rc));
}
inline void barrier_own_deleted(int rc, const void* data) {
  auto* b = from<barrier_member>(data);
  std::lock_guard lk(b->m);
  if (rc != ZOK) barrier_fail(*b, rc_text("barrier: delete own node", rc));
}
inline void barrier_leave_list_done(int rc, const String_vector* sv, const void* data) {
  auto* b = from<barrier_member>(data);
  std::lock_guard lk(b->m);
  b->others.clear();
  for (auto& n : names_of(sv))
    if (n != "ready" && n != b->own_name) b->others.push_back(n);
  b->leave_rc = rc;
  if (rc != ZOK) barrier_fail(*b, rc_text("barrier: list", rc));
  b->cv.notify_all();
}
inline void barrier_gone_exists_done(int rc, const Stat*, const void* data) {
  auto* b = from<barrier_member>(data);
  std::lock_guard lk(b->m);
  if (rc == ZNONODE) { // already out
    --b->remaining;
    b->cv.notify_all();
  } else if (rc != ZOK) {
    barrier_fail(*b, rc_text("barrier: exists member", rc));
  }
}
inline void barrier_gone_watch(zhandle_t*, int type, int, const char* path, void* ctx) {
  if (type != ZOO_DELETED_EVENT) return;
  auto* b = static_cast<barrier_member*>(ctx);
  std::lock_guard lk(b->m);
  if (path && std::strncmp(path, b->prefix.c_str(), b->prefix.size()) == 0) {
    --b->remaining;
    b->cv.notify_all();
  }
}

inline void barrier_check(int zrc, const char* what) {
  if (zrc != ZOK) die(rc_text(std::string("raw barrier: ") + what, zrc));
}

inline void barrier_enter(barrier_member& b, int round) {
  std::unique_lock lk(b.m);
  b.bpath = b.base + "/r" + std::to_string(round);
  b.prefix = b.bpath + "/";
  b.ready_path = b.prefix + "ready";
  b.own_path = b.prefix + b.own_name;
  b.node_rc = b.exists_rc = b.own_rc = b.list_rc = pending;
  b.ready_seen = false;
  lk.unlock();
  barrier_check(zoo_acreate(b.zh, b.bpath.c_str(), "", 0, &ZOO_OPEN_ACL_UNSAFE, 0, &barrier_node_done, &b), "create");
  barrier_check(zoo_awexists(b.zh, b.ready_path.c_str(), &barrier_ready_watch, &b, &barrier_ready_exists_done, &b), "exists");
  barrier_check(zoo_acreate(b.zh, b.own_path.c_str(), "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL, &barrier_own_done, &b),
                "create");
  barrier_check(zoo_aget_children(b.zh, b.bpath.c_str(), 0, &barrier_enter_list_done, &b), "list");
  lk.lock();
  wait_or_die(b.cv, lk, [&] { return !b.error.empty() || b.list_rc != pending; }, "barrier enter");
  if (!b.error.empty()) die("raw " + b.error);
  if (b.node_rc == pending || b.exists_rc == pending || b.own_rc == pending) die("raw barrier: completions out of order");
  if (b.exists_rc == ZOK) return; // ready already there
  if (b.in_count >= barrier_members) {
    lk.unlock();
    barrier_check(zoo_acreate(b.zh, b.ready_path.c_str(), "", 0, &ZOO_OPEN_ACL_UNSAFE, 0, &barrier_ready_created, &b),
                  "create ready");
    return; // all in; the create goes before anything this member sends next
  }
  wait_or_die(b.cv, lk, [&] { return !b.error.empty() || b.ready_seen; }, "barrier enter (ready)");
  if (!b.error.empty()) die("raw " + b.error);
}

inline void barrier_leave(barrier_member& b) {
  std::unique_lock lk(b.m);
  b.leave_rc = pending;
  lk.unlock();
  barrier_check(zoo_adelete(b.zh, b.own_path.c_str(), -1, &barrier_own_deleted, &b), "delete");
  barrier_check(zoo_aget_children(b.zh, b.bpath.c_str(), 0, &barrier_leave_list_done, &b), "list");
  lk.lock();
  wait_or_die(b.cv, lk, [&] { return !b.error.empty() || b.leave_rc != pending; }, "barrier leave");
  if (!b.error.empty()) die("raw " + b.error);
  if (b.others.empty()) return;
  b.remaining = int(b.others.size());
  auto others = b.others;
  lk.unlock();
  for (auto& n : others) {
    const std::string p = b.prefix + n;
    barrier_check(zoo_awexists(b.zh, p.c_str(), &barrier_gone_watch, &b, &barrier_gone_exists_done, &b), "exists");
  }
  lk.lock();
  wait_or_die(b.cv, lk, [&] { return !b.error.empty() || b.remaining <= 0; }, "barrier leave (members out)");
  if (!b.error.empty()) die("raw " + b.error);
}

// ---- registry --------------------------------------------------------------------
// Each cache: zoo_awget_children on the service node (the listing re-arms the
// watch), then a get of each child it has not seen, sent back to back.


struct registry_hub {
  std::mutex m;
  std::condition_variable cv;
  std::string dir, error;
  bool stopping = false;
  int primed = 0;                             // caches whose first listing arrived
  std::vector<int> listed_by;                 // per instance index: caches holding it
  std::vector<clock_type::time_point> latest; // per instance index: latest arrival
};

struct registry_cache;
struct registry_get {
  registry_cache* k;
  std::string name;
};

struct registry_cache {
  registry_hub* h = nullptr;
  std::unique_ptr<raw_client> c;
  zhandle_t* zh = nullptr;
  bool primed = false;
  std::set<std::string> known;                   // listed (get sent or done)
  std::map<std::string, std::string> instances;  // name -> payload
  std::deque<registry_get> gets;                 // contexts of the gets (stable addresses)
};

inline void registry_fail(registry_hub& h, const std::string& what) {
  if (h.error.empty()) h.error = what;
  h.cv.notify_all();
}

inline void registry_list(registry_cache* k);

inline void registry_data_done(int rc, const char* value, int len, const Stat*, const void* data) {
  const auto now = clock_type::now();
  auto* g = from<registry_get>(data);
  auto& h = *g->k->h;
  std::lock_guard lk(h.m);
  if (h.stopping) return;
  if (rc == ZNONODE) { // unregistered meanwhile
    g->k->known.erase(g->name);
    return;
  }
  if (rc != ZOK) return registry_fail(h, rc_text("registry: get", rc));
  g->k->instances[g->name] = value && len > 0 ? std::string(value, std::size_t(len)) : std::string();
  const int i = g->name.size() > 1 && g->name[0] == 'i' ? std::atoi(g->name.c_str() + 1) : -1;
  if (i <= 0 || std::size_t(i) >= h.listed_by.size()) return;
  auto& l = h.latest[std::size_t(i)];
  if (h.listed_by[std::size_t(i)]++ == 0 || now > l) l = now;
  h.cv.notify_all();
}

inline void registry_children_done(int rc, const String_vector* sv, const void* data) {
  auto* k = from<registry_cache>(data);
  auto& h = *k->h;
  std::vector<registry_get*> fresh;
  {
    std::lock_guard lk(h.m);
    if (h.stopping) return;
    if (rc != ZOK) return registry_fail(h, rc_text("registry: list", rc));
    auto names = names_of(sv);
    std::set<std::string> now_listed(names.begin(), names.end());
    for (auto it = k->known.begin(); it != k->known.end();) { // gone: out of the cache
      if (now_listed.count(*it)) {
        ++it;
      } else {
        k->instances.erase(*it);
        it = k->known.erase(it);
      }
    }
    for (auto& n : names)
      if (k->known.insert(n).second) fresh.push_back(&k->gets.emplace_back(registry_get{k, n}));
    if (!k->primed) {
      k->primed = true;
      ++h.primed;
      h.cv.notify_all();
    }
  }
  for (auto* g : fresh) {
    const std::string p = h.dir + "/" + g->name;
    if (int zrc = zoo_aget(k->zh, p.c_str(), 0, &registry_data_done, g); zrc != ZOK) {
      std::lock_guard lk(h.m);
      if (!h.stopping) registry_fail(h, rc_text("registry: get", zrc));
    }
  }
}

inline void registry_watch(zhandle_t*, int type, int, const char*, void* ctx) {
  if (type != ZOO_CHILD_EVENT) return;
  registry_list(static_cast<registry_cache*>(ctx));
}

inline void registry_list(registry_cache* k) {
  int zrc = zoo_awget_children(k->zh, k->h->dir.c_str(), &registry_watch, k, &registry_children_done, k);
  if (zrc != ZOK) {
    std::lock_guard lk(k->h->m);
    if (!k->h->stopping) registry_fail(*k->h, rc_text("registry: list", zrc));
  }
}


} // namespace raw_detail

// ---- the workloads ---------------------------------------------------------------

/// failover: 5 candidates; 20 times the leader's session is closed and the
/// time until another candidate's leader callback runs is the sample.
inline std::string raw_failover(const std::string& connect, const std::string& root) {
  using namespace raw_detail;
  constexpr int candidates = failover_candidates, repetitions = failover_repetitions;
  election e;
  e.dir = root + "/election";
  {
    raw_client setup(connect);
    raw_ensure(setup, e.dir);
  }
  std::vector<std::unique_ptr<candidate>> live, closed;
  auto settled = [&] {
    int joined = 0, leaders = 0;
    for (auto& k : live) {
      joined += k->joined;
      leaders += k->leader;
    }
    return joined == candidates && leaders == 1;
  };
  for (int i = 0; i < candidates; ++i) live.push_back(election_join(e, connect));
  {
    std::unique_lock lk(e.m);
    wait_or_die(e.cv, lk, [&] { return !e.error.empty() || settled(); }, "failover: first election");
    if (!e.error.empty()) die("raw " + e.error);
  }
  std::vector<double> samples;
  for (int rep = 0; rep < repetitions; ++rep) {
    std::size_t li = 0;
    {
      std::lock_guard lk(e.m);
      while (li < live.size() && !live[li]->leader) ++li;
      if (li == live.size()) die("raw failover: no leader");
    }
    candidate& old = *live[li];
    const auto t0 = clock_type::now();
    {
      std::lock_guard lk(e.m);
      old.closed = true; // its callbacks, if any still run during the close, do nothing
    }
    old.c.reset(); // zookeeper_close
    {
      std::unique_lock lk(e.m);
      candidate* next = nullptr;
      wait_or_die(e.cv, lk,
                  [&] {
                    if (!e.error.empty()) return true;
                    for (auto& k : live)
                      if (k.get() != &old && k->leader) next = k.get();
                    return next != nullptr;
                  },
                  "failover: new leader");
      if (!e.error.empty()) die("raw " + e.error);
      samples.push_back(ms_between(t0, next->led_at));
    }
    closed.push_back(std::move(live[li]));
    live[li] = election_join(e, connect); // rejoins at the back
    std::unique_lock lk(e.m);
    wait_or_die(e.cv, lk, [&] { return !e.error.empty() || settled(); }, "failover: rejoin");
    if (!e.error.empty()) die("raw " + e.error);
  }
  {
    std::lock_guard lk(e.m);
    for (auto& k : live) k->closed = true;
  }
  for (auto& k : live) k->c.reset();
  live.clear();
  closed.clear();

  double max_ms = 0;
  std::string list;
  for (double s : samples) {
    max_ms = std::max(max_ms, s);
    list += (list.empty() ? "" : ", ") + fixed(s);
  }
  return "{\"workload\": \"failover\", \"library\": \"c\", \"candidates\": " + std::to_string(candidates) +
         ", \"repetitions\": " + std::to_string(repetitions) + ", \"p50_ms\": " + fixed(percentile(samples, 0.5)) +
         ", \"max_ms\": " + fixed(max_ms) + ", \"samples_ms\": [" + list + "]}";
}

/// config: 16 subscribers watch one node; 200 sequential setData, each sample
/// the latest first-sight stamp of the new value minus the time of the write.
inline std::string raw_config(const std::string& connect, const std::string& root) {
  using namespace raw_detail;
  constexpr int subscribers = config_subscribers, changes = config_changes;
  config_hub h;
  h.path = root + "/config";
  h.seen_by.assign(changes + 1, 0);
  h.latest.assign(changes + 1, clock_type::time_point{});
  raw_client pub(connect);
  raw_ensure(pub, root);
  if (int rc = zoo_create(pub.zh, h.path.c_str(), "v0", 2, &ZOO_OPEN_ACL_UNSAFE, 0, nullptr, 0); rc != ZOK)
    die(rc_text("raw config: create " + h.path, rc));
  std::vector<std::unique_ptr<config_subscriber>> subs;
  for (int i = 0; i < subscribers; ++i) {
    auto s = std::make_unique<config_subscriber>();
    s->h = &h;
    s->c = std::make_unique<raw_client>(connect);
    s->zh = s->c->zh;
    s->seen.assign(changes + 1, 0);
    config_read(s.get());
    subs.push_back(std::move(s));
  }
  {
    std::unique_lock lk(h.m);
    wait_or_die(h.cv, lk, [&] { return !h.error.empty() || h.seen_by[0] == subscribers; }, "config: first read");
    if (!h.error.empty()) die("raw " + h.error);
  }
  std::vector<double> samples;
  for (int i = 1; i <= changes; ++i) {
    const std::string v = "v" + std::to_string(i);
    const auto t0 = clock_type::now();
    if (int rc = zoo_set(pub.zh, h.path.c_str(), v.data(), int(v.size()), -1); rc != ZOK)
      die(rc_text("raw config: set", rc));
    std::unique_lock lk(h.m);
    wait_or_die(h.cv, lk, [&] { return !h.error.empty() || h.seen_by[std::size_t(i)] == subscribers; },
                "config: change " + v);
    if (!h.error.empty()) die("raw " + h.error);
    samples.push_back(ms_between(t0, h.latest[std::size_t(i)]));
  }
  {
    std::lock_guard lk(h.m);
    h.stopping = true;
  }
  for (auto& s : subs) s->c.reset();
  subs.clear();
  return "{\"workload\": \"config\", \"library\": \"c\", \"subscribers\": " + std::to_string(subscribers) +
         ", \"changes\": " + std::to_string(changes) + ", \"p50_ms\": " + fixed(percentile(samples, 0.5)) +
         ", \"p99_ms\": " + fixed(percentile(samples, 0.99)) + "}";
}

/// barrier: 8 members, one thread and session each, 100 rounds of a double
/// barrier on a fresh node per round.
inline std::string raw_barrier(const std::string& connect, const std::string& root) {
  using namespace raw_detail;
  const std::string base = root + "/barrier";
  std::vector<std::unique_ptr<barrier_member>> members;
  for (int i = 0; i < barrier_members; ++i) {
    auto b = std::make_unique<barrier_member>();
    b->c = std::make_unique<raw_client>(connect);
    b->zh = b->c->zh;
    b->base = base;
    b->own_name = "m" + std::to_string(i);
    members.push_back(std::move(b));
  }
  raw_ensure(*members[0]->c, base);

  std::mutex gate_m;
  std::condition_variable gate_cv;
  bool go = false;
  std::vector<std::thread> threads;
  for (auto& bp : members) {
    threads.emplace_back([&, b = bp.get()] {
      {
        std::unique_lock lk(gate_m);
        gate_cv.wait(lk, [&] { return go; });
      }
      for (int r = 1; r <= barrier_rounds; ++r) {
        barrier_enter(*b, r);
        barrier_leave(*b);
      }
      b->finished = clock_type::now();
    });
  }
  const auto t0 = clock_type::now();
  {
    std::lock_guard lk(gate_m);
    go = true;
  }
  gate_cv.notify_all();
  for (auto& t : threads) t.join();
  auto t_end = t0;
  for (auto& b : members) t_end = std::max(t_end, b->finished);
  for (auto& b : members) b->c.reset();
  members.clear();
  const double rounds_per_s = barrier_rounds / (ms_between(t0, t_end) / 1000.0);
  return "{\"workload\": \"barrier\", \"library\": \"c\", \"members\": " + std::to_string(barrier_members) +
         ", \"rounds\": " + std::to_string(barrier_rounds) + ", \"rounds_per_s\": " + fixed(rounds_per_s, "%.1f") + "}";
}

/// registry: 1 registering session, 8 caches; 50 sequential registrations,
/// each sample the latest arrival in a cache minus the time of the create.
inline std::string raw_registry(const std::string& connect, const std::string& root) {
  using namespace raw_detail;
  registry_hub h;
  h.dir = root + "/services/bench";
  h.listed_by.assign(registry_registrations + 1, 0);
  h.latest.assign(registry_registrations + 1, clock_type::time_point{});
  raw_client reg(connect);
  raw_ensure(reg, h.dir);
  std::vector<std::unique_ptr<registry_cache>> caches;
  for (int i = 0; i < registry_caches; ++i) {
    auto k = std::make_unique<registry_cache>();
    k->h = &h;
    k->c = std::make_unique<raw_client>(connect);
    k->zh = k->c->zh;
    registry_list(k.get());
    caches.push_back(std::move(k));
  }
  {
    std::unique_lock lk(h.m);
    wait_or_die(h.cv, lk, [&] { return !h.error.empty() || h.primed == registry_caches; }, "registry: first listing");
    if (!h.error.empty()) die("raw " + h.error);
  }
  std::vector<double> samples;
  for (int i = 1; i <= registry_registrations; ++i) {
    const std::string id = "i" + std::to_string(i);
    const std::string payload =
        "{\"id\": \"" + id + "\", \"address\": \"127.0.0.1\", \"port\": " + std::to_string(10000 + i) + "}";
    const std::string path = h.dir + "/" + id;
    const auto t0 = clock_type::now();
    if (int rc = zoo_create(reg.zh, path.c_str(), payload.data(), int(payload.size()), &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL,
                            nullptr, 0);
        rc != ZOK)
      die(rc_text("raw registry: register " + id, rc));
    std::unique_lock lk(h.m);
    wait_or_die(h.cv, lk, [&] { return !h.error.empty() || h.listed_by[std::size_t(i)] == registry_caches; },
                "registry: " + id + " in every cache");
    if (!h.error.empty()) die("raw " + h.error);
    samples.push_back(ms_between(t0, h.latest[std::size_t(i)]));
  }
  {
    std::lock_guard lk(h.m);
    h.stopping = true;
  }
  for (auto& k : caches) k->c.reset();
  caches.clear();
  return "{\"workload\": \"registry\", \"library\": \"c\", \"caches\": " + std::to_string(registry_caches) +
         ", \"registrations\": " + std::to_string(registry_registrations) +
         ", \"p50_ms\": " + fixed(percentile(samples, 0.5)) + ", \"p99_ms\": " + fixed(percentile(samples, 0.99)) + "}";
}

/// memory: one connected raw session and one getData, then VmRSS. The C
/// client has no recipes, so nothing is held.
inline std::string raw_memory(const std::string& connect, const std::string& root) {
  using namespace raw_detail;
  raw_client c(connect);
  raw_ensure(c, root);
  char buf[64];
  int len = sizeof buf;
  Stat st{};
  if (int rc = zoo_get(c.zh, root.c_str(), 0, buf, &len, &st); rc != ZOK) die(rc_text("raw memory: get " + root, rc));
  const long rss = vm_rss_kib();
  return "{\"workload\": \"memory\", \"library\": \"c\", \"rss_kib\": " + std::to_string(rss) + ", \"holds\": []}";
}

} // namespace bench
