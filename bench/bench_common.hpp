// Shared by the C++ sides of `./run bench` (zk_bench.cpp and the raw C
// client workloads): timing helpers and a bare ZooKeeper C client handle.
#pragma once

#include <zookeeper/zookeeper.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <fstream>
#include <string>
#include <vector>

namespace bench {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

[[noreturn]] inline void die(const std::string& what) {
  std::fprintf(stderr, "zk_bench: %s\n", what.c_str());
  std::exit(1);
}

inline double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  auto i = static_cast<std::size_t>(p * double(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

inline double ms_since(clock_type::time_point t0) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
}

/// One raw handle; completions signal through a condition variable.
struct raw_client {
  zhandle_t* zh = nullptr;
  std::mutex m;
  std::condition_variable cv;
  bool connected = false;

  static void on_global(zhandle_t*, int type, int state, const char*, void* ctx) {
    auto* self = static_cast<raw_client*>(ctx);
    if (type == ZOO_SESSION_EVENT && state == ZOO_CONNECTED_STATE) {
      std::lock_guard lk(self->m);
      self->connected = true;
      self->cv.notify_all();
    }
  }
  explicit raw_client(const std::string& connect) {
    zoo_set_debug_level(static_cast<ZooLogLevel>(0));
    zh = zookeeper_init(connect.c_str(), &on_global, 10000, nullptr, this, 0);
    if (!zh) die("zookeeper_init failed");
    std::unique_lock lk(m);
    if (!cv.wait_for(lk, 15s, [&] { return connected; })) die("raw client: no connection");
  }
  ~raw_client() { zookeeper_close(zh); }
};

inline void raw_void_done(int, const void*) {}
inline void raw_string_done(int, const char*, const void*) {}

inline std::int64_t seq_of(const std::string& name) { return std::atoll(name.c_str() + name.size() - 10); }

/// Creates each missing node of an absolute path (errors ignored: the node exists).
inline void raw_ensure(raw_client& c, const std::string& path) {
  std::string cur;
  std::size_t pos = 1;
  while (pos <= path.size()) {
    auto next = path.find('/', pos);
    if (next == std::string::npos) next = path.size();
    cur = path.substr(0, next);
    zoo_create(c.zh, cur.c_str(), "", 0, &ZOO_OPEN_ACL_UNSAFE, 0, nullptr, 0);
    pos = next + 1;
  }
}

/// Counts completions; waits for a number of them.
struct counter {
  std::mutex m;
  std::condition_variable cv;
  int n = 0, failed = 0;
  void add(bool ok) {
    std::lock_guard lk(m);
    ++n;
    if (!ok) ++failed;
    cv.notify_all();
  }
  void wait(int want) {
    std::unique_lock lk(m);
    if (!cv.wait_for(lk, 120s, [&] { return n >= want; })) die("queue: completions missing");
    if (failed) die("queue: " + std::to_string(failed) + " operations failed");
  }
};

/// The sizes of the workloads both C++ sides run (bench/README.md).
constexpr int failover_candidates = 5, failover_repetitions = 20;
constexpr int config_subscribers = 16, config_changes = 200;
constexpr int barrier_members = 8, barrier_rounds = 100;
constexpr int registry_caches = 8, registry_registrations = 50;

/// VmRSS of this process, KiB.
inline long vm_rss_kib() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  die("memory: no VmRSS in /proc/self/status");
}

} // namespace bench
