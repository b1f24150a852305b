// push-server: renders push messages from an in-memory cache of the message
// catalogue. See examples/push-template/README.md.
//
//   push-server --db sqlite:/tmp/push.db --zk 127.0.0.1:2181 [--port 0] [--id NAME]
//               [--zk-root /push-template] [--session-timeout-ms 4000] [--health-interval-ms 1000]
//
// Prints `listening 127.0.0.1:PORT` once it serves, is registered and has
// joined the election. SIGTERM or SIGINT stops it cleanly.
#include "catalogue.hpp"
#include "common.hpp"
#include "db.hpp"
#include "../common/http_guard.hpp"

#include <CLI/CLI.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace pt = push_template;
namespace zkr = zkrecipes;
using json = nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t max_body_bytes = 64 * 1024;

// ------------------------------------------------------------ four-letter words

struct fl_reply {
  bool ok = false;
  std::string text; ///< the reply, or why there is none
};

/// Sends a four-letter word to host:port and reads the reply to EOF, all
/// within `bound`. Numeric IPv4 or "localhost" only.
fl_reply four_letter(const std::string& host, int port, const char* word, std::chrono::milliseconds bound) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  const std::string h = host == "localhost" ? "127.0.0.1" : host;
  if (::inet_pton(AF_INET, h.c_str(), &a.sin_addr) != 1) return {false, "not probed: not a numeric IPv4 address"};
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return {false, std::string("socket: ") + std::strerror(errno)};
  struct closer {
    int fd;
    ~closer() { ::close(fd); }
  } c{fd};
  const auto deadline = std::chrono::steady_clock::now() + bound;
  auto left_ms = [&] {
    auto l = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    return static_cast<int>(l < 0 ? 0 : l);
  };
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    if (errno != EINPROGRESS) return {false, std::string("connect: ") + std::strerror(errno)};
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, left_ms()) <= 0) return {false, "connect: timed out"};
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return {false, std::string("connect: ") + std::strerror(err)};
  }
  if (::send(fd, word, 4, MSG_NOSIGNAL) != 4) return {false, std::string("send: ") + std::strerror(errno)};
  std::string reply;
  char buf[4096];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    const int r = ::poll(&p, 1, left_ms());
    if (r <= 0) return {false, "no reply within " + std::to_string(bound.count()) + " ms"};
    const auto n = ::recv(fd, buf, sizeof buf, 0);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return {false, std::string("recv: ") + std::strerror(errno)};
    }
    reply.append(buf, static_cast<std::size_t>(n));
    if (reply.size() > 64 * 1024) break;
  }
  return {true, reply};
}

/// host:port pairs of a connect string (a chroot suffix is dropped).
std::vector<std::pair<std::string, int>> ensemble_members(std::string connect) {
  if (auto slash = connect.find('/'); slash != std::string::npos) connect.resize(slash);
  std::vector<std::pair<std::string, int>> out;
  std::size_t pos = 0;
  while (pos <= connect.size()) {
    auto end = connect.find(',', pos);
    if (end == std::string::npos) end = connect.size();
    std::string hp = connect.substr(pos, end - pos);
    pos = end + 1;
    if (hp.empty()) continue;
    auto colon = hp.rfind(':');
    int port = 2181;
    if (colon != std::string::npos) {
      port = std::atoi(hp.c_str() + colon + 1);
      hp.resize(colon);
    }
    out.emplace_back(hp, port);
  }
  return out;
}

std::string srvr_field(const std::string& reply, const std::string& key) {
  auto p = reply.find(key + ": ");
  if (p == std::string::npos) return {};
  p += key.size() + 2;
  return reply.substr(p, reply.find('\n', p) - p);
}

/// The master's view of the ZooKeeper service: every member's ruok and srvr.
json probe_ensemble(const std::string& connect) {
  json members = json::array();
  int ok = 0;
  for (const auto& [host, port] : ensemble_members(connect)) {
    json m;
    m["address"] = host + ":" + std::to_string(port);
    auto r = four_letter(host, port, "ruok", 500ms);
    m["ruok"] = r.ok ? json(r.text) : json(nullptr);
    bool good = r.ok && r.text == "imok";
    if (r.ok) {
      auto s = four_letter(host, port, "srvr", 500ms);
      if (s.ok) {
        std::string mode = srvr_field(s.text, "Mode");
        m["mode"] = mode.empty() ? json(nullptr) : json(mode);
        m["zxid"] = srvr_field(s.text, "Zxid");
        m["latency"] = srvr_field(s.text, "Latency min/avg/max");
        // A member that answers but is not serving says so in srvr
        // ("This ZooKeeper instance is not currently serving requests").
        good = good && !mode.empty();
        if (mode.empty()) m["error"] = s.text.substr(0, 200);
      } else {
        good = false;
        m["error"] = "srvr: " + s.text;
      }
    } else {
      m["error"] = r.text;
    }
    m["ok"] = good;
    ok += good ? 1 : 0;
    members.push_back(std::move(m));
  }
  json h;
  h["members"] = members;
  h["members_ok"] = ok;
  h["members_total"] = members.size();
  h["quorum"] = ok * 2 > static_cast<int>(members.size());
  return h;
}

// ------------------------------------------------------------ the cache

struct server_state {
  std::string id;
  std::string db_url;
  pt::zk_paths paths;

  std::mutex m;
  std::condition_variable cv;
  std::shared_ptr<const pt::catalogue> cat; // swapped whole on reload
  // Notices are counted rather than compared by version: a config node
  // deleted and re-created starts again at version 0 and must still reload.
  std::uint64_t notices = 0;        // change notices taken (the first load counts as one)
  std::uint64_t notices_loaded = 0; // notices the cache answers
  std::int64_t notice_version = -1; // the version of the last notice (-1: none published)
  std::int64_t loaded_version = -1;
  bool loaded_once = false;
  std::string last_load_error;
  std::int64_t loaded_ms = 0;
  bool stopping = false;
  std::string master_health; // the health znode as last seen (JSON text)
  std::string session_state = "connecting";
  // Who is master, as the master loop last saw it: HTTP workers answer from
  // here and never wait on ZooKeeper themselves.
  std::string master_id;

  std::atomic<std::int64_t> load_failures{0}; // reloads that failed (retried every second)

  std::atomic<std::int64_t> db_loads{0}; // every catalogue read from the database
  std::atomic<std::int64_t> renders{0};
  std::atomic<std::int64_t> health_published{0};

  std::shared_ptr<const pt::catalogue> snapshot() {
    std::lock_guard lk(m);
    return cat;
  }

  void notice(std::int64_t v) {
    {
      std::lock_guard lk(m);
      ++notices;
      if (v >= 0) notice_version = v;
    }
    cv.notify_all();
  }

  /// The reload loop: loads whenever a newer notice than the cache's came.
  /// A failed load keeps the old cache and is retried after a second.
  void reload_loop() {
    std::unique_lock lk(m);
    for (;;) {
      cv.wait(lk, [&] { return stopping || notices > notices_loaded; });
      if (stopping) return;
      // Read after the notice: push-admin commits before it publishes, so
      // this load sees that commit (or a later one).
      const std::int64_t v = notice_version;
      const std::uint64_t answering = notices;
      lk.unlock();
      std::string err;
      std::shared_ptr<pt::catalogue> fresh;
      try {
        auto db = pt::open_database(db_url, false);
        fresh = std::make_shared<pt::catalogue>(pt::load_catalogue(*db));
        fresh->config_version = v;
        db_loads.fetch_add(1);
      } catch (const std::exception& e) {
        err = e.what();
      }
      lk.lock();
      if (fresh) {
        const auto n = fresh->categories.size();
        cat = std::move(fresh);
        loaded_version = v;
        notices_loaded = answering;
        loaded_once = true;
        loaded_ms = pt::now_ms();
        last_load_error.clear();
        std::printf("loaded config version %lld (%zu categories)\n", static_cast<long long>(v), n);
        cv.notify_all();
      } else {
        last_load_error = err;
        load_failures.fetch_add(1);
        std::fprintf(stderr, "push-server: reload for config version %lld failed, keeping version %lld: %s\n",
                     static_cast<long long>(v), static_cast<long long>(loaded_version), err.c_str());
        cv.wait_for(lk, 1s, [&] { return stopping; });
      }
    }
  }
};

/// JSON text of something that may hold outside bytes (a probe's reply, a
/// database row): invalid UTF-8 becomes U+FFFD instead of an exception.
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void reply_json(httplib::Response& res, int status, const json& j) {
  res.status = status;
  res.set_content(dump(j), "application/json");
}

void reply_error(httplib::Response& res, int status, const std::string& msg) {
  reply_json(res, status, json{{"error", msg}});
}

} // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0); // one line at a time: a test reads it as it comes

  std::string db_url, zk_connect, zk_root = "/push-template", id;
  int port = 0, session_timeout_ms = 4000, health_interval_ms = 1000;
  CLI::App app{"push-server: renders push messages from a cached catalogue"};
  app.add_option("--db", db_url, "sqlite:<file> or mysql://user[:password]@host[:port]/database")->required();
  app.add_option("--zk", zk_connect, "ZooKeeper connect string")->required();
  app.add_option("--zk-root", zk_root, "root znode of this system");
  app.add_option("--port", port, "HTTP port on 127.0.0.1 (0: a free one)")->check(CLI::Range(0, 65535));
  app.add_option("--id", id, "instance id (default push-<pid>)");
  app.add_option("--session-timeout-ms", session_timeout_ms)->check(CLI::Range(200, 60000));
  app.add_option("--health-interval-ms", health_interval_ms)->check(CLI::Range(50, 60000));
  CLI11_PARSE(app, argc, argv);
  if (id.empty()) id = "push-" + std::to_string(::getpid());
  if (!pt::valid_name(id)) return std::fprintf(stderr, "push-server: invalid --id %s\n", pt::quote_name(id).c_str()), 2;

  // Signals are taken by sigwait in main; block them before any thread starts
  // so every thread inherits the mask.
  const sigset_t stop_signals = examples::block_stop_signals();
  const pt::mysql_library mysql_lib; // before any thread: its init is not thread-safe

  server_state st;
  st.id = id;
  st.db_url = db_url;
  st.paths.root = zk_root;

  try {
    auto db = pt::open_database(db_url);
    const int was = pt::migrate(*db);
    if (was != pt::schema_version)
      std::printf("schema migrated from version %d to %d\n", was, pt::schema_version);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "push-server: database: %s\n", e.what());
    return 1;
  }

  auto s = pt::connect_zk(zk_connect, std::chrono::milliseconds(session_timeout_ms), 15s);
  if (!s) return std::fprintf(stderr, "push-server: connect %s: %s\n", zk_connect.c_str(), s.error().message().c_str()), 1;
  zkr::session& zk = s.value();
  zk.add_listener([&st](const zkr::session_event& e) {
    {
      std::lock_guard lk(st.m);
      st.session_state = zkr::to_string(e.state);
    }
    std::printf("session %s\n", zkr::to_string(e.state));
  });
  {
    std::lock_guard lk(st.m);
    st.session_state = zk.connected() ? "connected" : zkr::to_string(zk.state());
  }

  std::thread reloader;
  auto stop_reloader = [&] {
    {
      std::lock_guard lk(st.m);
      st.stopping = true;
    }
    st.cv.notify_all();
    if (reloader.joinable()) reloader.join();
  };

  // Change notices: the listener only records the version (it runs on the
  // dispatcher thread, which must not wait on a database).
  zkr::config<std::string>::subscriber notices(zk, st.paths.config());
  notices.add_listener([&st](const zkr::config_snapshot<std::string>& c) { st.notice(c.version); });
  if (auto r = notices.start(10s); !r) {
    std::fprintf(stderr, "push-server: subscribe %s: %s\n", st.paths.config().c_str(), r.error().message().c_str());
    stop_reloader();
    return 1;
  }
  // Started after the subscriber's first read, so the first load already
  // answers the newest notice (-1: none was ever published).
  reloader = std::thread([&st] { st.reload_loop(); });
  st.notice(-1); // the first load
  {
    std::unique_lock lk(st.m);
    if (!st.cv.wait_for(lk, 30s, [&] { return st.loaded_once; })) {
      std::fprintf(stderr, "push-server: the first load did not succeed within 30 s: %s\n", st.last_load_error.c_str());
      lk.unlock();
      stop_reloader();
      return 1;
    }
  }

  // The others watch the master's health reports.
  zkr::node_cache health_cache(zk, st.paths.health());
  health_cache.add_listener([&st](const zkr::cache_event& e) {
    std::lock_guard lk(st.m);
    st.master_health = e.data.data;
  });
  (void)health_cache.start(5s); // absent until a master writes it: that is fine

  // ---------------------------------------------------------------- HTTP
  httplib::Server http;
  // Bound first: the port goes into the registration and the candidate's payload.
  const int bound = port == 0 ? http.bind_to_any_port("127.0.0.1") : (http.bind_to_port("127.0.0.1", port) ? port : -1);
  if (bound <= 0) {
    std::fprintf(stderr, "push-server: cannot listen on 127.0.0.1:%d\n", port);
    stop_reloader();
    return 1;
  }
  zkr::latch_options lo;
  lo.id = id;
  lo.payload = "127.0.0.1:" + std::to_string(bound);
  zkr::leader_latch latch(zk, st.paths.election(), lo);

  // Refuse what must not be read: over-long, chunked or length-less bodies.
  examples::guard_http(http, max_body_bytes,
                       [](httplib::Response& res, int status, const std::string&, const std::string& message) {
                         reply_error(res, status, message);
                       });

  http.Post("/render", [&](const httplib::Request& req, httplib::Response& res) {
    pt::render_request rq;
    if (auto e = pt::parse_render_request(req.body, rq)) return reply_error(res, e->status, e->message);
    auto cat = st.snapshot(); // renders only from the cache, never from the database
    std::vector<pt::rendered> out;
    if (auto e = pt::render(*cat, rq, out)) {
      // A template that does not render is the catalogue's fault, the same on
      // every server: say so, so that a client does not fail over in vain.
      if (e->status >= 500) return reply_json(res, e->status, json{{"error", e->message}, {"template_error", true}});
      return reply_error(res, e->status, e->message);
    }
    st.renders.fetch_add(1);
    json msgs = json::object();
    json order = json::array();
    for (auto& r : out) {
      order.push_back(r.kind);
      msgs[r.kind] = r.text;
    }
    reply_json(res, 200, json{{"category", rq.category}, {"server", st.id}, {"config_version", cat->config_version},
                              {"targets", order}, {"messages", msgs}});
  });
  http.Get("/config-version", [&](const httplib::Request&, httplib::Response& res) {
    auto cat = st.snapshot();
    std::lock_guard lk(st.m);
    reply_json(res, 200, json{{"config_version", cat->config_version}, {"loaded_ms", st.loaded_ms},
                              {"notice_seen", st.notice_version}});
  });
  // has_leadership() reads local state only; the master's id comes from the
  // master loop (latch.leader() would be a ZooKeeper round trip on a worker).
  http.Get("/role", [&](const httplib::Request&, httplib::Response& res) {
    json j{{"id", st.id}, {"role", latch.has_leadership() ? "master" : "follower"}};
    std::lock_guard lk(st.m);
    j["master"] = st.master_id.empty() ? json(nullptr) : json(st.master_id);
    reply_json(res, 200, j);
  });
  http.Get("/health", [&](const httplib::Request&, httplib::Response& res) {
    auto cat = st.snapshot();
    json j{{"id", st.id},
           {"role", latch.has_leadership() ? "master" : "follower"},
           {"config_version", cat->config_version},
           {"categories", cat->categories.size()},
           {"db_loads", st.db_loads.load()},
           {"renders", st.renders.load()},
           {"load_failures", st.load_failures.load()},
           {"health_published", st.health_published.load()}};
    std::lock_guard lk(st.m);
    j["session"] = st.session_state;
    j["last_load_error"] = st.last_load_error.empty() ? json(nullptr) : json(st.last_load_error);
    json mh = json::parse(st.master_health, nullptr, false);
    if (mh.is_discarded() || st.master_health.empty()) {
      j["zookeeper"] = nullptr;
    } else {
      if (mh.contains("published_ms") && mh["published_ms"].is_number())
        mh["age_ms"] = pt::now_ms() - mh["published_ms"].get<std::int64_t>();
      j["zookeeper"] = mh;
    }
    reply_json(res, 200, j);
  });

  std::thread http_thread([&http] { http.listen_after_bind(); });

  // ---------------------------------------------------------------- registry and election
  zkr::registry_options ro;
  ro.base_path = st.paths.services();
  zkr::service_instance me;
  me.service = pt::service_name;
  me.id = id;
  me.address = "127.0.0.1";
  me.ports["http"] = static_cast<std::uint16_t>(bound);
  zkr::service_registration reg(zk, me, ro);
  int code = 0;
  if (auto r = reg.start(); !r) {
    std::fprintf(stderr, "push-server: register: %s\n", r.error().message().c_str());
    code = 1;
  }
  if (code == 0)
    if (auto r = latch.start(); !r) {
      std::fprintf(stderr, "push-server: join election: %s\n", r.error().message().c_str());
      code = 1;
    }

  // The master's work: probe the ensemble and publish what it found, while
  // it leads and its leadership is not in doubt. Every server also notes who
  // is master here, for GET /role.
  std::jthread master([&](std::stop_token stop) {
    std::mutex mm;
    std::condition_variable_any cv;
    auto pause = [&](std::chrono::milliseconds d, std::stop_token term = {}) {
      std::unique_lock lk(mm);
      cv.wait_for(lk, stop, d, [&] { return term.stop_requested(); });
    };
    auto note_master = [&](std::string m) {
      std::lock_guard lk(st.m);
      st.master_id = std::move(m);
    };
    std::int64_t seq = 0;
    while (!stop.stop_requested()) {
      // Nothing thrown here may end the process (an uncaught exception in a
      // thread terminates it): log it and go on.
      try {
        auto r = latch.await_leadership(stop, 500ms);
        if (!r) {
          if (r.error() == zkr::errc::cancelled || stop.stop_requested()) break;
          if (r.error() != zkr::errc::timed_out) pause(500ms);
          auto l = latch.leader(); // a follower: who leads now
          note_master(l ? l.value().id : std::string());
          continue;
        }
        note_master(st.id);
        const auto token = latch.fencing_token();
        std::printf("role master (fencing token %lld)\n", static_cast<long long>(token.value_or(-1)));
        std::stop_token term = latch.leadership_token();
        while (!stop.stop_requested() && !term.stop_requested() && latch.has_leadership()) {
          try {
            json h = probe_ensemble(zk_connect); // takes up to a second per member
            h["master"] = st.id;
            h["master_address"] = "127.0.0.1:" + std::to_string(bound);
            h["fencing_token"] = token.value_or(-1);
            h["seq"] = ++seq;
            h["published_ms"] = pt::now_ms();
            h["session"] = zkr::to_string(zk.state());
            const std::string text = dump(h); // a member's reply may be any bytes
            // Checked again right before the write: the probe took time and
            // the leadership may have gone meanwhile. This narrows the window
            // but does not close it (the write is not fenced): see README.
            if (term.stop_requested() || !latch.has_leadership()) break;
            auto w = zk.set(st.paths.health(), text);
            if (!w && w.error() == zkr::zk_errc::no_node) {
              if (auto e = zk.ensure_path(st.paths.health()); e) w = zk.set(st.paths.health(), text);
            }
            if (w) st.health_published.fetch_add(1);
            else std::fprintf(stderr, "push-server: publish health: %s\n", w.error().message().c_str());
          } catch (const std::exception& e) {
            std::fprintf(stderr, "push-server: health report failed: %s\n", e.what());
          }
          pause(std::chrono::milliseconds(health_interval_ms), term);
        }
        note_master({}); // not known until the next look
        std::printf("role follower\n");
      } catch (const std::exception& e) {
        std::fprintf(stderr, "push-server: master loop: %s\n", e.what());
        pause(500ms);
      }
    }
  });

  if (code == 0) {
    std::printf("listening 127.0.0.1:%d\n", bound);
    std::printf("stopping on signal %d\n", examples::wait_stop_signal(stop_signals));
  }

  // Leave in the order that keeps clients right: stop being found, stop
  // leading, then stop serving.
  (void)reg.stop();
  master.request_stop();
  master.join();
  (void)latch.close();
  http.stop();
  http_thread.join();
  stop_reloader();
  return code;
}
