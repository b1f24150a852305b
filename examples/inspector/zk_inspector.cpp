// zk-inspector: watches a subtree through the tree cache and serves a live
// page of it (Server-Sent Events): every znode with its kind, owner session
// and an escaped preview of its data, and the zkrecipes recipes recognised
// by their layouts — who holds a lock and who waits, who leads an election,
// semaphore leases, queue depth and the oldest item, barrier members,
// registered service instances. Read-only unless --allow-writes. See README.md.
//
//   zk-inspector --zk 127.0.0.1:2181 --path /app [--port 0] [--allow-writes]
//
// Prints `listening 127.0.0.1:PORT` once it serves; SIGTERM or SIGINT stops it.
#include "../common/http_guard.hpp"
#include "../common/process.hpp"
#include "../common/sse.hpp"
#include "page.hpp"
#include "recognise.hpp"

#include <CLI/CLI.hpp>
#include <httplib.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace zkr = zkrecipes;
using inspector::json;
using namespace std::chrono_literals;

namespace {

void reply(httplib::Response& res, int status, const std::string& code, const std::string& message) {
  res.status = status;
  res.set_content(json{{"code", code}, {"message", message}}.dump(-1, ' ', false, json::error_handler_t::replace),
                  "application/json");
}

long long now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// The current snapshot, rebuilt at most every 100 ms after a change, and
/// handed to every open event stream.
class publisher : public examples::sse_source {
public:
  publisher(zkr::tree_cache& cache, std::string root, std::size_t max_nodes)
      : cache_(cache), root_(std::move(root)), max_nodes_(max_nodes) {}

  /// Called on the cache's listener thread: only marks the change.
  void changed() {
    {
      std::lock_guard lk(m_);
      dirty_ = true;
    }
    cv_.notify_all();
  }
  /// The rebuilding loop, on its own thread until close().
  void run() {
    std::unique_lock lk(m_);
    while (!closing_) {
      cv_.wait_for(lk, 5s, [&] { return closing_ || dirty_; });
      if (closing_) break;
      if (!dirty_) continue;
      dirty_ = false;
      lk.unlock();
      std::this_thread::sleep_for(100ms); // coalesce a burst of changes into one snapshot
      const auto nodes = cache_.nodes();
      lk.lock();
      ++version_;
      text_ = inspector::snapshot(nodes, root_, version_, max_nodes_, now_ms()).dump(-1, ' ', false,
                                                                                   json::error_handler_t::replace);
      count_ = nodes.size();
      cv_.notify_all();
    }
  }
  /// The snapshot when it is newer than version `after` (waiting up to `bound`).
  std::vector<std::pair<std::uint64_t, std::string>> after(std::uint64_t after, std::chrono::milliseconds bound) {
    std::unique_lock lk(m_);
    cv_.wait_for(lk, bound, [&] { return closing_ || version_ > after; });
    if (version_ > after && !closing_) return {{version_, text_}};
    return {};
  }
  std::string current() {
    std::lock_guard lk(m_);
    return text_;
  }
  json health() {
    std::lock_guard lk(m_);
    return json{{"nodes", count_}, {"version", version_}, {"sse_clients", clients.load()}};
  }

private:
  zkr::tree_cache& cache_;
  std::string root_;
  std::size_t max_nodes_;
  bool dirty_ = true;
  std::uint64_t version_ = 0;
  std::size_t count_ = 0;
  std::string text_ = "{}";
};

inline constexpr int max_event_clients = 32;

bool inside(const std::string& root, const std::string& path) {
  return root == "/" ? path.size() > 1 : path.size() > root.size() && path.rfind(root + "/", 0) == 0;
}

} // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  CLI::App app{"zk-inspector: a live page of a ZooKeeper subtree and the recipes in it (examples/inspector/README.md)"};
  std::string zk_connect, root = "/";
  int port = 0, session_ms = 10000, max_depth = 16;
  std::size_t max_nodes = 5000;
  bool allow_writes = false;
  app.add_option("--zk", zk_connect, "ZooKeeper connect string")->required();
  app.add_option("--path", root, "the subtree to show");
  app.add_option("--port", port, "HTTP port on 127.0.0.1 (0: any free)")->check(CLI::Range(0, 65535));
  app.add_option("--max-nodes", max_nodes, "nodes shown at most (the rest is counted)")->check(CLI::Range(1, 1000000));
  app.add_option("--max-depth", max_depth, "levels below --path mirrored")->check(CLI::Range(1, 1000));
  app.add_flag("--allow-writes", allow_writes, "offer POST /delete (off: read-only)");
  app.add_option("--session-timeout-ms", session_ms, "ZooKeeper session timeout")->check(CLI::Range(1000, 600000));
  CLI11_PARSE(app, argc, argv);
  const sigset_t stop_signals = examples::block_stop_signals(); // before any thread starts
  if (auto v = zkr::validate_path(root, "--path"); !v) {
    std::fprintf(stderr, "zk-inspector: %s\n", v.error().message().c_str());
    return 2;
  }
  auto zs = examples::connect_zk(zk_connect, std::chrono::milliseconds(session_ms));
  if (!zs) {
    std::fprintf(stderr, "zk-inspector: cannot connect to ZooKeeper at %s: %s\n", zk_connect.c_str(),
                 zs.error().message().c_str());
    return 1;
  }
  zkr::session& zk = zs.value();
  zkr::tree_cache cache(zk, root, max_depth);
  publisher pub(cache, root, max_nodes);
  cache.add_listener([&pub](const zkr::cache_event&) { pub.changed(); });
  if (auto r = cache.start(); !r)
    std::fprintf(stderr, "zk-inspector: %s: %s (showing it once it can be read)\n", root.c_str(),
                 r.error().message().c_str());
  std::thread rebuilding([&pub] { pub.run(); });

  httplib::Server http;
  http.new_task_queue = [] { return new httplib::ThreadPool(max_event_clients + 8); };
  examples::guard_http(http, 4096, reply);
  http.Get("/", [](const httplib::Request&, httplib::Response& r) {
    r.set_content(inspector::page_html, "text/html; charset=utf-8");
  });
  http.Get("/snapshot", [&](const httplib::Request&, httplib::Response& r) {
    r.set_content(inspector::snapshot(cache.nodes(), root, pub.health().value("version", 0ULL), max_nodes, now_ms())
                      .dump(-1, ' ', false, json::error_handler_t::replace),
                  "application/json");
  });
  // GET /events: the current snapshot, then each new one.
  const examples::sse_feed feed{[&pub](std::uint64_t after, std::chrono::milliseconds bound) { return pub.after(after, bound); },
                                [&pub] { return pub.closing(); }, &pub.clients, max_event_clients, "snapshot"};
  http.Get("/events", [&](const httplib::Request& q, httplib::Response& r) { examples::serve_sse(feed, 0, q, r, reply); });
  http.Get("/health", [&](const httplib::Request&, httplib::Response& r) {
    r.set_content(pub.health().dump(), "application/json");
  });
  http.Post("/delete", [&](const httplib::Request& q, httplib::Response& r) {
    if (!allow_writes) return reply(r, 403, "read_only", "started without --allow-writes: nothing is ever written");
    const auto path = q.get_param_value("path");
    if (auto v = zkr::validate_path(path, "path"); !v) return reply(r, 400, "bad_path", v.error().message());
    if (!inside(root, path)) return reply(r, 400, "outside", path + " is not below " + root);
    auto d = zk.remove(path);
    if (d) return reply(r, 200, "deleted", path);
    if (d.error() == zkr::zk_errc::no_node) return reply(r, 404, "no_node", "no node " + path);
    if (d.error() == zkr::zk_errc::not_empty) return reply(r, 409, "not_empty", path + " has children");
    reply(r, 503, "unavailable", d.error().message());
  });
  std::thread serving;
  const int bound = examples::start_http(http, port, serving);
  if (bound <= 0) {
    std::fprintf(stderr, "zk-inspector: cannot listen on 127.0.0.1:%d\n", port);
    pub.close();
    rebuilding.join();
    return 1;
  }
  std::printf("listening 127.0.0.1:%d\n", bound);
  std::printf("page http://127.0.0.1:%d/ showing %s%s\n", bound, root.c_str(), allow_writes ? " (writes allowed)" : "");
  const int sig = examples::wait_stop_signal(stop_signals);
  pub.close(); // event streams end, so stop() can join their threads
  http.stop();
  serving.join();
  rebuilding.join();
  cache.close();
  std::printf("stopped on signal %d\n", sig);
  return 0;
}
