// zk_bench: the zkrecipes and raw ZooKeeper C client sides of `./run bench`
// (bench/run_bench.py runs it, and the Curator and kazoo peers, against one
// throwaway server and compares the figures).
//
//   zk_bench <workload> <library> <connect> <root>
//     workload: lock (uncontended, one session) | lock8 (8 sessions contending)
//               | queue (5,000 100-byte items: put all, take all, then both at once)
//               | failover | config | barrier | registry | memory (bench/README.md)
//     library:  zkrecipes | c (the raw C client side of the last five: raw_workloads.hpp)
// Prints one JSON object on stdout: {"workload":..., "library":..., figures...}.
// The raw C client side is the ceiling: the fewest round trips any library on
// it can send (create and children pipelined; the delete not waited for).
#include <zkrecipes/zkrecipes.hpp>

#include <zookeeper/zookeeper.h>

#include "bench_common.hpp"
#include "raw_workloads.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace zkr = zkrecipes;
using namespace bench;
using namespace std::chrono_literals;

namespace {

zkr::session open_session(const std::string& connect) {
  zkr::session_options o;
  o.connect_string = connect;
  auto s = zkr::session::connect(o, 15s);
  if (!s) die("connect " + connect + ": " + s.error().message());
  return std::move(s).value();
}

// ---- the raw C client: a lock with the fewest round trips ------------------

/// Per-acquisition state shared with the C completions.
struct raw_attempt {
  raw_client* c;
  std::string parent, mine;
  int create_rc = 1, children_rc = 1;
  std::vector<std::string> names;
  bool watch_fired = false;
  int exists_rc = 1;
};

void raw_create_done(int rc, const char* value, const void* data) {
  auto* a = const_cast<raw_attempt*>(static_cast<const raw_attempt*>(data));
  std::lock_guard lk(a->c->m);
  a->create_rc = rc;
  if (rc == ZOK) a->mine = value;
  a->c->cv.notify_all();
}
void raw_children_done(int rc, const String_vector* sv, const void* data) {
  auto* a = const_cast<raw_attempt*>(static_cast<const raw_attempt*>(data));
  std::lock_guard lk(a->c->m);
  a->children_rc = rc;
  a->names.clear();
  if (rc == ZOK)
    for (int i = 0; i < sv->count; ++i) a->names.emplace_back(sv->data[i]);
  a->c->cv.notify_all();
}
void raw_exists_done(int rc, const Stat*, const void* data) {
  auto* a = const_cast<raw_attempt*>(static_cast<const raw_attempt*>(data));
  std::lock_guard lk(a->c->m);
  a->exists_rc = rc;
  a->c->cv.notify_all();
}
void raw_watch(zhandle_t*, int, int, const char*, void* ctx) {
  auto* a = static_cast<raw_attempt*>(ctx);
  std::lock_guard lk(a->c->m);
  a->watch_fired = true;
  a->c->cv.notify_all();
}


/// Acquires: create and list pipelined (one round trip when free); when
/// taken, an exists watch on the predecessor, then list again.
void raw_lock(raw_client& c, raw_attempt& a) {
  std::unique_lock lk(c.m);
  a.create_rc = a.children_rc = 1;
  lk.unlock();
  std::string prefix = a.parent + "/lock-";
  zoo_acreate(c.zh, prefix.c_str(), "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL_SEQUENTIAL, &raw_create_done, &a);
  zoo_aget_children(c.zh, a.parent.c_str(), 0, &raw_children_done, &a);
  lk.lock();
  c.cv.wait(lk, [&] { return a.create_rc != 1 && a.children_rc != 1; });
  if (a.create_rc != ZOK || a.children_rc != ZOK) die("raw lock: create or list failed");
  const std::string me = a.mine.substr(a.parent.size() + 1);
  while (true) {
    std::string pred;
    for (auto& n : a.names)
      if (seq_of(n) < seq_of(me) && (pred.empty() || seq_of(n) > seq_of(pred))) pred = n;
    if (pred.empty()) return; // lowest: held
    a.watch_fired = false;
    a.exists_rc = 1;
    lk.unlock();
    zoo_awexists(c.zh, (a.parent + "/" + pred).c_str(), &raw_watch, &a, &raw_exists_done, &a);
    lk.lock();
    c.cv.wait(lk, [&] { return a.exists_rc != 1; });
    if (a.exists_rc == ZOK) c.cv.wait(lk, [&] { return a.watch_fired; });
    a.children_rc = 1;
    lk.unlock();
    zoo_aget_children(c.zh, a.parent.c_str(), 0, &raw_children_done, &a);
    lk.lock();
    c.cv.wait(lk, [&] { return a.children_rc != 1; });
    if (a.children_rc != ZOK) die("raw lock: list failed");
  }
}
void raw_unlock(raw_client& c, raw_attempt& a) {
  zoo_adelete(c.zh, a.mine.c_str(), -1, &raw_void_done, nullptr); // not waited for: the next create follows it
}


// ---- workloads ---------------------------------------------------------------

struct figures {
  double cycles_per_s = 0, p50_ms = 0, p99_ms = 0;
  int cycles = 0;
};

constexpr int uncontended_cycles = 3000;
constexpr int contended_sessions = 8;
constexpr int contended_cycles_each = 250;

figures lock_uncontended(const std::string& lib, const std::string& connect, const std::string& root) {
  std::vector<double> lat;
  lat.reserve(uncontended_cycles);
  figures f;
  const std::string path = root + "/lock";
  if (lib == "c") {
    raw_client c(connect);
    raw_ensure(c, path);
    raw_attempt a{&c, path, {}, 1, 1, {}, false, 1};
    auto t0 = clock_type::now();
    for (int i = 0; i < uncontended_cycles; ++i) {
      auto t = clock_type::now();
      raw_lock(c, a);
      lat.push_back(ms_since(t));
      raw_unlock(c, a);
    }
    f.cycles_per_s = uncontended_cycles / (ms_since(t0) / 1000.0);
  } else {
    auto s = open_session(connect);
    zkr::mutex m(s, path);
    auto t0 = clock_type::now();
    for (int i = 0; i < uncontended_cycles; ++i) {
      auto t = clock_type::now();
      if (auto r = m.lock(10s); !r) die(r.error().message());
      lat.push_back(ms_since(t));
      if (auto r = m.unlock(); !r) die(r.error().message());
    }
    f.cycles_per_s = uncontended_cycles / (ms_since(t0) / 1000.0);
  }
  f.cycles = uncontended_cycles;
  f.p50_ms = percentile(lat, 0.5);
  f.p99_ms = percentile(lat, 0.99);
  return f;
}

figures lock_contended(const std::string& lib, const std::string& connect, const std::string& root) {
  const std::string path = root + "/lock8";
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  std::mutex lat_m;
  std::vector<double> lat;
  auto t0 = clock_type::now();
  std::atomic<int> ready{0};
  for (int t = 0; t < contended_sessions; ++t) {
    threads.emplace_back([&] {
      std::vector<double> mine;
      if (lib == "c") {
        raw_client c(connect);
        raw_ensure(c, path);
        raw_attempt a{&c, path, {}, 1, 1, {}, false, 1};
        ++ready;
        while (!go) std::this_thread::yield();
        for (int i = 0; i < contended_cycles_each; ++i) {
          auto t = clock_type::now();
          raw_lock(c, a);
          mine.push_back(ms_since(t));
          raw_unlock(c, a);
        }
        zoo_async(c.zh, path.c_str(), &raw_string_done, nullptr); // flush the last delete before close
      } else {
        auto s = open_session(connect);
        zkr::mutex m(s, path);
        ++ready;
        while (!go) std::this_thread::yield();
        for (int i = 0; i < contended_cycles_each; ++i) {
          auto t = clock_type::now();
          if (auto r = m.lock(60s); !r) die(r.error().message());
          mine.push_back(ms_since(t));
          if (auto r = m.unlock(); !r) die(r.error().message());
        }
      }
      std::lock_guard lk(lat_m);
      lat.insert(lat.end(), mine.begin(), mine.end());
    });
  }
  while (ready < contended_sessions) std::this_thread::sleep_for(1ms);
  t0 = clock_type::now();
  go = true;
  for (auto& t : threads) t.join();
  figures f;
  f.cycles = contended_sessions * contended_cycles_each;
  f.cycles_per_s = f.cycles / (ms_since(t0) / 1000.0);
  f.p50_ms = percentile(lat, 0.5);
  f.p99_ms = percentile(lat, 0.99);
  return f;
}

// ---- FIFO queue -------------------------------------------------------------

constexpr int queue_items = 5000;

struct queue_figures {
  double put_per_s = 0, take_per_s = 0, e2e_per_s = 0;
};


void raw_create_count(int rc, const char*, const void* data) {
  static_cast<counter*>(const_cast<void*>(data))->add(rc == ZOK);
}
void raw_delete_count(int rc, const void* data) {
  static_cast<counter*>(const_cast<void*>(data))->add(rc == ZOK);
}
void raw_get_count(int rc, const char*, int, const Stat*, const void* data) {
  static_cast<counter*>(const_cast<void*>(data))->add(rc == ZOK);
}

/// The raw C client: creates pipelined (the server's limit); takes as one
/// listing, then a get and a delete per item, all pipelined.
double raw_put_all(raw_client& c, const std::string& path, const std::string& payload) {
  counter done;
  auto t0 = clock_type::now();
  const std::string prefix = path + "/i-";
  for (int i = 0; i < queue_items; ++i)
    zoo_acreate(c.zh, prefix.c_str(), payload.data(), int(payload.size()), &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT_SEQUENTIAL,
                &raw_create_count, &done);
  done.wait(queue_items);
  return queue_items / (ms_since(t0) / 1000.0);
}
double raw_take_all(raw_client& c, const std::string& path) {
  auto t0 = clock_type::now();
  int taken = 0;
  while (taken < queue_items) {
    String_vector sv{};
    if (zoo_get_children(c.zh, path.c_str(), 0, &sv) != ZOK) die("raw take: list failed");
    std::vector<std::string> names;
    for (int i = 0; i < sv.count; ++i) names.emplace_back(sv.data[i]);
    deallocate_String_vector(&sv);
    std::sort(names.begin(), names.end());
    counter done;
    for (auto& n : names) {
      auto full = path + "/" + n;
      zoo_aget(c.zh, full.c_str(), 0, &raw_get_count, &done);
      zoo_adelete(c.zh, full.c_str(), -1, &raw_delete_count, &done);
    }
    done.wait(int(names.size()) * 2);
    taken += int(names.size());
  }
  return queue_items / (ms_since(t0) / 1000.0);
}

queue_figures queue_workload(const std::string& lib, const std::string& connect, const std::string& root) {
  const std::string payload(100, 'x');
  queue_figures f;
  if (lib == "c") {
    raw_client c(connect);
    raw_ensure(c, root + "/q");
    f.put_per_s = raw_put_all(c, root + "/q", payload);
    f.take_per_s = raw_take_all(c, root + "/q");
    raw_client consumer(connect);
    auto t0 = clock_type::now();
    std::thread prod([&] { raw_put_all(c, root + "/q", payload); });
    raw_take_all(consumer, root + "/q");
    prod.join();
    f.e2e_per_s = queue_items / (ms_since(t0) / 1000.0);
    return f;
  }
  auto ps = open_session(connect);
  auto cs = open_session(connect);
  zkr::fifo_queue<std::string> producer(ps, root + "/q");
  zkr::fifo_queue<std::string> consumer(cs, root + "/q");
  auto put_all = [&] {
    counter done;
    auto t0 = clock_type::now();
    for (int i = 0; i < queue_items; ++i)
      producer.async_put(payload, [&done](zkr::result<std::string> r) { done.add(r.has_value()); });
    done.wait(queue_items);
    return queue_items / (ms_since(t0) / 1000.0);
  };
  auto take_all = [&] {
    auto t0 = clock_type::now();
    // Batches: the deletes of a batch go out together (take() waits for each).
    for (int got = 0; got < queue_items;) {
      auto r = consumer.take_batch(std::size_t(queue_items - got), 60s);
      if (!r) die("queue take: " + r.error().message());
      got += int(r.value().size());
    }
    return queue_items / (ms_since(t0) / 1000.0);
  };
  f.put_per_s = put_all();
  f.take_per_s = take_all();
  auto t0 = clock_type::now();
  std::thread prod([&] { put_all(); });
  take_all();
  prod.join();
  f.e2e_per_s = queue_items / (ms_since(t0) / 1000.0);
  return f;
}

// ---- failover, config, barrier, registry, memory (defined in bench/README.md) ---

constexpr auto wait_bound = 30s;

/// Arrival stamps: who saw which step first, and when the last of them did.
struct arrivals {
  std::mutex m;
  std::condition_variable cv;
  std::vector<std::vector<clock_type::time_point>> seen; // [step][observer]
  std::vector<int> count;
  arrivals(int steps, int observers)
      : seen(std::size_t(steps), std::vector<clock_type::time_point>(std::size_t(observers))), count(std::size_t(steps)) {}
  void stamp(int step, int observer) {
    auto now = clock_type::now();
    std::lock_guard lk(m);
    if (step < 0 || step >= int(seen.size())) return;
    auto& t = seen[std::size_t(step)][std::size_t(observer)];
    if (t != clock_type::time_point{}) return;
    t = now;
    ++count[std::size_t(step)];
    cv.notify_all();
  }
  /// Milliseconds from t0 until the last of `observers` saw `step`.
  double wait_all(int step, int observers, clock_type::time_point t0, const char* what) {
    std::unique_lock lk(m);
    if (!cv.wait_for(lk, wait_bound, [&] { return count[std::size_t(step)] >= observers; }))
      die(std::string(what) + ": step " + std::to_string(step) + " not seen by all in time");
    auto& v = seen[std::size_t(step)];
    return std::chrono::duration<double, std::milli>(*std::max_element(v.begin(), v.end()) - t0).count();
  }
};

std::string json_samples(const std::vector<double>& v) {
  std::string out = "[";
  for (std::size_t i = 0; i < v.size(); ++i) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%s%.3f", i ? ", " : "", v[i]);
    out += buf;
  }
  return out + "]";
}

std::string fmt(const char* f, auto... args) {
  char buf[512];
  std::snprintf(buf, sizeof buf, f, args...);
  return buf;
}


/// 5 candidates; the leader's session is closed, the next one's "acquired"
/// is stamped; the closed one rejoins at the back.
std::string zkr_failover(const std::string& connect, const std::string& root) {
  const std::string path = root + "/election";
  struct candidate {
    std::unique_ptr<zkr::session> s;
    std::unique_ptr<zkr::leader_latch> latch;
  };
  std::mutex m;
  std::condition_variable cv;
  int leader = -1;
  clock_type::time_point when;
  std::vector<candidate> cs(failover_candidates);
  auto join = [&](int i) {
    cs[std::size_t(i)].s = std::make_unique<zkr::session>(open_session(connect));
    zkr::latch_options o;
    o.id = "c" + std::to_string(i);
    cs[std::size_t(i)].latch = std::make_unique<zkr::leader_latch>(*cs[std::size_t(i)].s, path, o);
    cs[std::size_t(i)].latch->add_listener([&, i](zkr::hold_event e) {
      if (e != zkr::hold_event::acquired) return;
      auto now = clock_type::now();
      std::lock_guard lk(m);
      leader = i;
      when = now;
      cv.notify_all();
    });
    if (auto r = cs[std::size_t(i)].latch->start(); !r) die("latch start: " + r.error().message());
  };
  auto participants = [&](int i) {
    auto p = cs[std::size_t(i)].latch->participants();
    if (!p) die("participants: " + p.error().message());
    return int(p.value().size());
  };
  for (int i = 0; i < failover_candidates; ++i) join(i);
  {
    std::unique_lock lk(m);
    if (!cv.wait_for(lk, wait_bound, [&] { return leader >= 0; })) die("failover: no first leader");
  }
  std::vector<double> samples;
  for (int rep = 0; rep < failover_repetitions; ++rep) {
    int old;
    {
      std::lock_guard lk(m);
      old = leader;
      leader = -1;
    }
    auto t0 = clock_type::now();
    (void)cs[std::size_t(old)].s->close(); // the session goes; the server deletes its node
    {
      std::unique_lock lk(m);
      if (!cv.wait_for(lk, wait_bound, [&] { return leader >= 0 && leader != old; })) die("failover: no new leader");
      samples.push_back(std::chrono::duration<double, std::milli>(when - t0).count());
    }
    cs[std::size_t(old)].latch.reset();
    cs[std::size_t(old)].s.reset();
    join(old);
    auto until = clock_type::now() + wait_bound;
    while (participants(old) < failover_candidates)
      if (clock_type::now() > until) die("failover: rejoin not seen");
  }
  for (auto& c : cs) c.latch.reset();
  return fmt("{\"workload\": \"failover\", \"library\": \"zkrecipes\", \"candidates\": %d, \"repetitions\": %d, "
             "\"p50_ms\": %.3f, \"max_ms\": %.3f, \"samples_ms\": ",
             failover_candidates, failover_repetitions, percentile(samples, 0.5), percentile(samples, 1.0)) +
         json_samples(samples) + "}";
}


/// One publisher, 16 subscribers; the time until the last of them saw each change.
std::string zkr_config(const std::string& connect, const std::string& root) {
  using cfg = zkr::config<std::string>;
  const std::string path = root + "/config";
  auto ps = open_session(connect);
  cfg::publisher pub(ps, path);
  auto v = pub.publish("v0", zkr::config_absent);
  if (!v) die("config publish v0: " + v.error().message());
  arrivals seen(config_changes + 1, config_subscribers);
  std::vector<zkr::session> ss;
  ss.reserve(config_subscribers); // the subscribers keep references to these sessions
  std::vector<std::unique_ptr<cfg::subscriber>> subs;
  for (int i = 0; i < config_subscribers; ++i) {
    ss.push_back(open_session(connect));
    subs.push_back(std::make_unique<cfg::subscriber>(ss.back(), path));
    subs.back()->add_listener([&seen, i](const cfg::snapshot& snap) { seen.stamp(std::atoi(snap.value.c_str() + 1), i); });
    if (auto r = subs.back()->start(); !r) die("config subscriber start: " + r.error().message());
  }
  std::vector<double> samples;
  std::int32_t version = v.value();
  for (int i = 1; i <= config_changes; ++i) {
    auto t0 = clock_type::now();
    auto r = pub.publish("v" + std::to_string(i), version);
    if (!r) die("config publish: " + r.error().message());
    version = r.value();
    samples.push_back(seen.wait_all(i, config_subscribers, t0, "config"));
  }
  subs.clear();
  return fmt("{\"workload\": \"config\", \"library\": \"zkrecipes\", \"subscribers\": %d, \"changes\": %d, "
             "\"p50_ms\": %.3f, \"p99_ms\": %.3f}",
             config_subscribers, config_changes, percentile(samples, 0.5), percentile(samples, 0.99));
}


/// 8 members enter and leave a fresh double barrier each round.
std::string zkr_barrier(const std::string& connect, const std::string& root) {
  std::vector<zkr::session> ss;
  for (int i = 0; i < barrier_members; ++i) ss.push_back(open_session(connect));
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < barrier_members; ++i)
    threads.emplace_back([&, i] {
      while (!go) std::this_thread::yield();
      for (int r = 0; r < barrier_rounds; ++r) {
        zkr::double_barrier_options o;
        o.id = "m" + std::to_string(i);
        zkr::double_barrier b(ss[std::size_t(i)], root + "/barrier/r" + std::to_string(r), barrier_members, o);
        if (auto e = b.enter(wait_bound); !e) die("barrier enter: " + e.error().message());
        if (auto e = b.leave(wait_bound); !e) die("barrier leave: " + e.error().message());
      }
    });
  auto t0 = clock_type::now();
  go = true;
  for (auto& t : threads) t.join();
  const double s = ms_since(t0) / 1000.0;
  return fmt("{\"workload\": \"barrier\", \"library\": \"zkrecipes\", \"members\": %d, \"rounds\": %d, "
             "\"rounds_per_s\": %.1f}",
             barrier_members, barrier_rounds, barrier_rounds / s);
}


/// One registering session, 8 discovery caches; the time until the last cache saw each instance.
std::string zkr_registry(const std::string& connect, const std::string& root) {
  zkr::registry_options ro;
  ro.base_path = root + "/services";
  arrivals seen(registry_registrations, registry_caches);
  std::vector<zkr::session> ss;
  ss.reserve(registry_caches); // the caches keep references to these sessions
  std::vector<std::unique_ptr<zkr::service_discovery>> caches;
  for (int i = 0; i < registry_caches; ++i) {
    ss.push_back(open_session(connect));
    caches.push_back(std::make_unique<zkr::service_discovery>(ss.back(), "bench", ro));
    caches.back()->add_listener([&seen, i](const zkr::instance_event& e) {
      if (e.change == zkr::instance_change::up) seen.stamp(std::atoi(e.instance.id.c_str() + 1), i);
    });
    if (auto r = caches.back()->start(); !r) die("discovery start: " + r.error().message());
  }
  auto rs = open_session(connect);
  std::vector<std::unique_ptr<zkr::service_registration>> regs;
  std::vector<double> samples;
  for (int i = 0; i < registry_registrations; ++i) {
    zkr::service_instance in;
    in.service = "bench";
    in.id = "i" + std::to_string(i);
    in.address = "127.0.0.1";
    in.ports["http"] = std::uint16_t(10000 + i);
    auto t0 = clock_type::now();
    regs.push_back(std::make_unique<zkr::service_registration>(rs, in, ro));
    if (auto r = regs.back()->start(); !r) die("register: " + r.error().message());
    samples.push_back(seen.wait_all(i, registry_caches, t0, "registry"));
  }
  caches.clear();
  regs.clear();
  return fmt("{\"workload\": \"registry\", \"library\": \"zkrecipes\", \"caches\": %d, \"registrations\": %d, "
             "\"p50_ms\": %.3f, \"p99_ms\": %.3f}",
             registry_caches, registry_registrations, percentile(samples, 0.5), percentile(samples, 0.99));
}


/// One session holding one of each recipe.
std::string zkr_memory(const std::string& connect, const std::string& root) {
  auto s = open_session(connect);
  auto check = [](auto&& r, const char* what) {
    if (!r) die(std::string(what) + ": " + r.error().message());
    return std::move(r).value();
  };
  zkr::mutex mx(s, root + "/lock");
  check(mx.lock(wait_bound), "lock");
  zkr::read_write_lock rw(s, root + "/rwlock");
  check(rw.read_lock().lock(wait_bound), "read lock");
  zkr::semaphore sem(s, root + "/semaphore", 3);
  auto lease = check(sem.acquire(wait_bound), "semaphore");
  zkr::leader_latch latch(s, root + "/latch");
  check(latch.start(), "latch start");
  check(latch.await_leadership(wait_bound), "latch leadership");
  zkr::fifo_queue<std::string> q(s, root + "/queue");
  check(q.put(std::string(100, 'x')), "queue put");
  zkr::double_barrier barrier(s, root + "/barrier", 2);
  zkr::config<std::string>::publisher pub(s, root + "/config");
  check(pub.publish("v0", zkr::config_absent), "config publish");
  zkr::config<std::string>::subscriber sub(s, root + "/config");
  check(sub.start(), "config subscribe");
  zkr::registry_options ro;
  ro.base_path = root + "/services";
  zkr::service_instance in{"bench", "i0", "127.0.0.1", {{"http", 10000}}, {}, {}, 0, 0};
  zkr::service_registration reg(s, in, ro);
  check(reg.start(), "register");
  zkr::service_discovery disc(s, "bench", ro);
  check(disc.start(), "discovery");
  zkr::tree_cache tree(s, root);
  check(tree.start(), "tree cache");
  return fmt("{\"workload\": \"memory\", \"library\": \"zkrecipes\", \"rss_kib\": %ld, \"holds\": [\"lock\", "
             "\"rwlock\", \"semaphore\", \"latch\", \"queue\", \"barrier\", \"config\", \"registration\", "
             "\"discovery\", \"tree_cache\"]}",
             vm_rss_kib());
}

} // namespace

int main(int argc, char** argv) {
  using runner = std::string (*)(const std::string&, const std::string&);
  // workload -> {zkrecipes, raw C client}
  const std::map<std::string, std::pair<runner, runner>> more = {
      {"failover", {&zkr_failover, &raw_failover}}, {"config", {&zkr_config, &raw_config}},
      {"barrier", {&zkr_barrier, &raw_barrier}},    {"registry", {&zkr_registry, &raw_registry}},
      {"memory", {&zkr_memory, &raw_memory}},
  };
  if (argc != 5) {
    std::fprintf(stderr, "usage: zk_bench <lock|lock8|queue|failover|config|barrier|registry|memory> <zkrecipes|c> "
                         "<connect> <root>\n");
    return 2;
  }
  const std::string workload = argv[1], lib = argv[2], connect = argv[3], root = argv[4];
  if (lib != "zkrecipes" && lib != "c") die("unknown library " + lib + " (zkrecipes or c)");
  if (auto it = more.find(workload); it != more.end()) {
    auto line = (lib == "c" ? it->second.second : it->second.first)(connect, root);
    std::printf("%s\n", line.c_str());
    return 0;
  }
  if (workload == "queue") {
    auto q = queue_workload(lib, connect, root);
    std::printf("{\"workload\": \"queue\", \"library\": \"%s\", \"items\": %d, \"put_per_s\": %.1f, "
                "\"take_per_s\": %.1f, \"e2e_per_s\": %.1f}\n",
                lib.c_str(), queue_items, q.put_per_s, q.take_per_s, q.e2e_per_s);
    return 0;
  }
  figures f;
  if (workload == "lock") f = lock_uncontended(lib, connect, root);
  else if (workload == "lock8") f = lock_contended(lib, connect, root);
  else die("unknown workload " + workload);
  std::printf("{\"workload\": \"%s\", \"library\": \"%s\", \"cycles\": %d, \"cycles_per_s\": %.1f, "
              "\"p50_ms\": %.3f, \"p99_ms\": %.3f}\n",
              workload.c_str(), lib.c_str(), f.cycles, f.cycles_per_s, f.p50_ms, f.p99_ms);
  return 0;
}
