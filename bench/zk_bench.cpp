// zk_bench: the zkrecipes and raw ZooKeeper C client sides of `./run bench`
// (bench/run_bench.py runs it, and the Curator and kazoo peers, against one
// throwaway server and compares the figures).
//
//   zk_bench <workload> <library> <connect> <root>
//     workload: lock (uncontended, one session) | lock8 (8 sessions contending)
//               | queue (5,000 100-byte items: put all, take all, then both at once)
//     library:  zkrecipes | c
// Prints one JSON object on stdout: {"workload":..., "library":..., figures...}.
// The raw C client side is the ceiling: the fewest round trips any library on
// it can send (create and children pipelined; the delete not waited for).
#include <zkrecipes/zkrecipes.hpp>

#include <zookeeper/zookeeper.h>

#include "bench_common.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
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
    for (int i = 0; i < queue_items; ++i)
      if (auto r = consumer.take(60s); !r) die("queue take: " + r.error().message());
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

} // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: zk_bench <lock|lock8|queue> <zkrecipes|c> <connect> <root>\n");
    return 2;
  }
  const std::string workload = argv[1], lib = argv[2], connect = argv[3], root = argv[4];
  if (lib != "zkrecipes" && lib != "c") die("unknown library " + lib + " (zkrecipes or c)");
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
  else die("unknown workload " + workload + " (lock, lock8 or queue)");
  std::printf("{\"workload\": \"%s\", \"library\": \"%s\", \"cycles\": %d, \"cycles_per_s\": %.1f, "
              "\"p50_ms\": %.3f, \"p99_ms\": %.3f}\n",
              workload.c_str(), lib.c_str(), f.cycles, f.cycles_per_s, f.p50_ms, f.p99_ms);
  return 0;
}
