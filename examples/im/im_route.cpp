// im-route: the stateless HTTP front of the IM system: accounts, logins,
// choosing an im-server, group and private chat, the online list. Run as
// many as you like; all state is in ZooKeeper. See examples/im/README.md.
//
//   im-route --zk 127.0.0.1:2181 [--zk-root /im] [--id r1] [--port 0] [--session-timeout-ms 4000]
//
// Prints `listening 127.0.0.1:PORT` once it serves. SIGTERM or SIGINT stops
// it (exit 0). Every reply is {"code","message","requestId","data"}.
#include "common.hpp"
#include "../common/http_guard.hpp"

#include <CLI/CLI.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

using json = nlohmann::json;
using namespace std::chrono_literals;
namespace zkr = zkrecipes;

namespace {

std::atomic<std::uint64_t> request_no{0};

void reply(httplib::Response& res, int status, const std::string& code, const std::string& message,
           json data = json::object()) {
  res.status = status;
  res.set_content(json{{"code", code}, {"message", message}, {"requestId", ++request_no}, {"data", std::move(data)}}.dump(),
                  "application/json");
}
void ok(httplib::Response& res, json data) { reply(res, 200, "ok", "ok", std::move(data)); }

int status_of(const std::string& code) {
  if (code == "bad_request") return 400;
  if (code == "too_large") return 413;
  if (code == "bad_token") return 403;
  if (code == "no_such_user" || code == "offline") return 404;
  if (code == "name_taken" || code == "already_logged_in") return 409;
  return 503;
}
template <class T> void refuse(httplib::Response& res, const im::outcome<T>& o) {
  reply(res, status_of(o.code()), o.code(), o.message());
}

/// Whether host:port accepts a TCP connection within `bound` (CIM checks the
/// chosen server before handing it out; so do we).
bool accepts(const std::string& host, int port, std::chrono::milliseconds bound) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  if (::inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host.c_str(), &a.sin_addr) != 1) return false;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  if (!ok && errno == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    int err = 0;
    socklen_t len = sizeof err;
    ok = ::poll(&p, 1, static_cast<int>(bound.count())) == 1 && ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 &&
         err == 0;
  }
  ::close(fd);
  return ok;
}

/// A user's route node, decoded.
struct route_info {
  std::string user, name, server, host, token;
  int socket = 0, http = 0;
  std::int32_t version = 0;
};

std::optional<route_info> decode_route(const std::string& user, const zkr::node& n) {
  auto j = json::parse(n.data, nullptr, false);
  if (!j.is_object()) return std::nullopt;
  route_info r;
  r.user = user;
  r.name = im::str(j, "name");
  r.server = im::str(j, "server");
  r.host = im::str(j, "host");
  r.token = im::str(j, "token");
  r.socket = static_cast<int>(im::num(j, "socket"));
  r.http = static_cast<int>(im::num(j, "http"));
  r.version = n.stat.version;
  if (r.server.empty() || r.host.empty() || r.http <= 0 || r.http > 65535) return std::nullopt;
  return r;
}

struct route_server {
  zkr::session& zk;
  im::zk_paths paths;
  std::string id;
  zkr::service_discovery& servers;
  zkr::children_cache& routes;
  zkr::id_generator& ids;
  std::atomic<std::uint64_t> msg_no{0};
  /// Where this route's round robin is; routes start at different places so
  /// that two of them do not send their first users to the same server.
  std::atomic<std::size_t> next_server{std::random_device{}() % 1024};

  /// The route of `user`, read (one round trip): a private message must go
  /// where the user is now, not where the cache last saw it.
  std::optional<route_info> route_of(const std::string& user) {
    auto n = zk.get(paths.route(user));
    if (!n) return std::nullopt;
    return decode_route(user, n.value());
  }

  /// Checks a token: against the live cache first (no round trip), and
  /// against the node itself when the cache has not seen this login yet.
  im::outcome<route_info> authenticate(const im::auth& who) {
    std::optional<route_info> r;
    if (auto n = routes.child(who.user_id)) r = decode_route(who.user_id, *n);
    if (!r || r->token != who.token) r = route_of(who.user_id);
    if (!r) return im::outcome<route_info>::failure("bad_token", who.user_id + " is not logged in");
    if (r->token != who.token) return im::outcome<route_info>::failure("bad_token", "the token is not " + who.user_id + "'s");
    return *r;
  }

  /// Every user online now. The list of names is read after a sync, so a
  /// login a server has confirmed is in it even when this route's cache has
  /// not heard of it yet; each node's data comes from the cache when it has
  /// it (a stale entry is corrected by the caller when its server says the
  /// user is absent) and is read otherwise.
  std::vector<route_info> online_now() {
    std::vector<route_info> out;
    auto cached = routes.children();
    (void)zk.sync(paths.routes());
    auto kids = zk.children(paths.routes());
    if (!kids) { // ZooKeeper unreachable: the cache is the best there is
      for (auto& [user, n] : cached)
        if (auto ri = decode_route(user, n)) out.push_back(*ri);
      return out;
    }
    for (auto& user : kids.value().names) {
      auto it = cached.find(user);
      std::optional<route_info> ri = it != cached.end() ? decode_route(user, it->second) : route_of(user);
      if (ri) out.push_back(*ri);
    }
    return out;
  }

  std::string new_msg_id() { return id + "-" + std::to_string(++msg_no) + "-" + im::random_hex(4); }

  /// Pushes a message to the users of one server; returns those it delivered
  /// to. One retry: a reply lost after delivery makes a duplicate, which the
  /// client drops by the message id.
  /// The users are sent in batches, so that a body stays far below the
  /// server's 64 KiB limit whatever the number of users.
  std::vector<std::string> push(const std::string& host, int port, const json& body) {
    std::vector<std::string> delivered;
    const auto& to = body["to"];
    for (std::size_t first = 0; first < to.size(); first += 1000) {
      json part = body;
      part["to"] = json(std::vector<json>(to.begin() + static_cast<std::ptrdiff_t>(first),
                                          to.begin() + static_cast<std::ptrdiff_t>(std::min(to.size(), first + 1000))));
      for (int attempt = 0; attempt < 2; ++attempt) {
        httplib::Client c(host, port);
        c.set_connection_timeout(1s);
        c.set_read_timeout(6s); // longer than the server's own 5 s bound
        auto r = c.Post("/push", part.dump(), "application/json");
        if (!r || r->status != 200) continue;
        auto j = json::parse(r->body, nullptr, false);
        if (auto it = j.is_object() ? j.find("delivered") : j.end(); it != j.end() && it->is_array())
          for (auto& u : *it)
            if (u.is_string()) delivered.push_back(u.get<std::string>());
        break;
      }
    }
    return delivered;
  }

  void do_register(const httplib::Request& req, httplib::Response& res) {
    auto r = im::parse_register(req.body);
    if (!r) return refuse(res, r);
    auto gen = ids.next();
    if (!gen) return reply(res, 503, "unavailable", "ZooKeeper: " + gen.error().message());
    const std::string user = "u" + std::to_string(gen.value().sequence + 1);
    zkr::multi_op tx;
    tx.create(paths.account_name(r.value().name), user);
    tx.create(paths.account_id(user), json{{"userId", user}, {"name", r.value().name}}.dump());
    if (auto m = zk.multi(tx); !m) {
      if (m.error() == zkr::zk_errc::node_exists) {
        // The name, or (the generator's node was re-created) the id.
        if (auto e = zk.exists(paths.account_name(r.value().name)); e && e.value())
          return reply(res, 409, "name_taken", "the name " + r.value().name + " is taken");
        return reply(res, 503, "unavailable", "the new user id " + user + " is already taken: the id generator was reset");
      }
      return reply(res, 503, "unavailable", "ZooKeeper: " + m.error().message());
    }
    ok(res, {{"userId", user}, {"name", r.value().name}});
  }

  void do_login(const httplib::Request& req, httplib::Response& res) {
    auto r = im::parse_login(req.body);
    if (!r) return refuse(res, r);
    const auto& user = r.value().user_id;
    auto acct = zk.get(paths.account_id(user));
    if (!acct) {
      if (acct.error() == zkr::zk_errc::no_node) return reply(res, 404, "no_such_user", "no account " + user);
      return reply(res, 503, "unavailable", "ZooKeeper: " + acct.error().message());
    }
    const auto name = im::str(json::parse(acct.value().data, nullptr, false), "name");
    // Read, not the cache: a refusal must be right. The server's transaction
    // settles a race between two logins that both pass here.
    if (auto held = zk.get(paths.route(user))) {
      auto ri = decode_route(user, held.value());
      return reply(res, 409, "already_logged_in",
                   user + " is already logged in" + (ri ? " on server " + ri->server : std::string()));
    }
    // Round robin over the live servers (the discovery view, kept live);
    // skip one that does not accept a connection (dead, not yet expired).
    const auto list = servers.instances();
    std::optional<zkr::service_instance> chosen;
    for (std::size_t i = 0; i < list.size() && !chosen; ++i) {
      const auto& p = list[next_server++ % list.size()];
      if (accepts(p.address, p.port("socket"), 500ms)) chosen = p;
    }
    if (!chosen) return reply(res, 503, "no_server", "no im-server is up");
    const std::string token = im::random_hex(16);
    const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch());
    const std::string pending =
        json{{"token", token}, {"server", chosen->id}, {"name", name}, {"at", static_cast<std::int64_t>(now_ms.count())}}.dump();
    auto c = zk.create(paths.login(user), pending);
    if (!c && c.error() == zkr::zk_errc::node_exists) {
      auto s = zk.set(paths.login(user), pending);
      if (!s) return reply(res, 503, "unavailable", "ZooKeeper: " + s.error().message());
    } else if (!c) {
      return reply(res, 503, "unavailable", "ZooKeeper: " + c.error().message());
    }
    ok(res, {{"userId", user},
             {"name", name},
             {"token", token},
             {"server",
              {{"id", chosen->id}, {"host", chosen->address}, {"socket", chosen->port("socket")}, {"http", chosen->port("http")}}}});
  }

  void do_group(const httplib::Request& req, httplib::Response& res) {
    auto r = im::parse_group(req.body);
    if (!r) return refuse(res, r);
    auto from = authenticate(r.value().who);
    if (!from) return refuse(res, from);
    // Every online user, grouped by the server each is on: one push per server.
    const auto online = online_now();
    std::map<std::pair<std::string, int>, std::vector<std::string>> by_server;
    for (auto& ri : online) by_server[{ri.host, ri.http}].push_back(ri.user);
    const std::string msg_id = new_msg_id();
    const json msg{{"msgId", msg_id}, {"from", from.value().user}, {"fromName", from.value().name}, {"text", r.value().text},
                   {"group", true}};
    std::size_t delivered = 0;
    std::vector<std::pair<std::string, std::pair<std::string, int>>> missed; // user, server tried
    for (auto& [addr, users] : by_server) {
      json body = msg;
      body["to"] = users;
      auto got = push(addr.first, addr.second, body);
      delivered += got.size();
      for (auto& u : users)
        if (std::find(got.begin(), got.end(), u) == got.end()) missed.push_back({u, addr});
    }
    // A user its server did not have may have moved (the cache was stale):
    // read where it is now and try there once.
    for (auto& [u, tried] : missed) {
      auto now = route_of(u);
      if (!now || std::make_pair(now->host, now->http) == tried) continue;
      json body = msg;
      body["to"] = {u};
      delivered += push(now->host, now->http, body).size();
    }
    const std::size_t recipients = online.size();
    ok(res, {{"msgId", msg_id}, {"recipients", recipients}, {"delivered", delivered}});
  }

  void do_private(const httplib::Request& req, httplib::Response& res) {
    auto r = im::parse_private(req.body);
    if (!r) return refuse(res, r);
    auto from = authenticate(r.value().who);
    if (!from) return refuse(res, from);
    const auto& to = r.value().to;
    auto target = route_of(to);
    if (!target) return reply(res, 404, "offline", to + " is not online");
    const std::string msg_id = new_msg_id();
    auto d = push(target->host, target->http,
                  {{"to", {to}}, {"msgId", msg_id}, {"from", from.value().user}, {"fromName", from.value().name},
                   {"text", r.value().text}, {"group", false}});
    if (d.empty()) return reply(res, 404, "offline", to + " is not connected to its server " + target->server);
    ok(res, {{"msgId", msg_id}, {"delivered", 1}});
  }

  void do_online(httplib::Response& res) {
    auto online = online_now();
    // By number: u2 before u10.
    std::sort(online.begin(), online.end(), [](const route_info& a, const route_info& b) {
      return std::make_pair(a.user.size(), a.user) < std::make_pair(b.user.size(), b.user);
    });
    json users = json::array();
    for (auto& ri : online) users.push_back({{"userId", ri.user}, {"name", ri.name}, {"server", ri.server}});
    ok(res, {{"users", users}});
  }

  void do_logout(const httplib::Request& req, httplib::Response& res) {
    auto r = im::parse_logout(req.body);
    if (!r) return refuse(res, r);
    auto who = authenticate(r.value().who);
    if (!who) return refuse(res, who);
    httplib::Client c(who.value().host, who.value().http);
    c.set_connection_timeout(1s);
    c.set_read_timeout(3s);
    c.set_read_timeout(6s); // longer than the server's own 5 s bound
    auto sr = c.Post("/logout", json{{"userId", who.value().user}}.dump(), "application/json");
    // The route node is not removed here: it belongs to the server's session
    // (a node read a moment ago may already be a newer login's). A dead
    // server's nodes go when its session expires.
    if (!sr || sr->status != 200)
      return reply(res, 503, "unavailable", "the server " + who.value().server + " of " + who.value().user + " does not answer");
    ok(res, json::object());
  }
};

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"im-route: accounts, logins and message routing for the IM system (examples/im/README.md)"};
  std::string zk_connect, root = "/im", id = "r" + std::to_string(::getpid());
  int port = 0, session_ms = 4000;
  app.add_option("--zk", zk_connect, "ZooKeeper connect string")->required();
  app.add_option("--zk-root", root, "the system's root znode");
  app.add_option("--id", id, "this route's id (in message ids)");
  app.add_option("--port", port, "HTTP port on 127.0.0.1 (0: any free)")->check(CLI::Range(0, 65535));
  app.add_option("--session-timeout-ms", session_ms, "ZooKeeper session timeout")->check(CLI::Range(1000, 600000));
  CLI11_PARSE(app, argc, argv);
  const sigset_t stop_signals = examples::block_stop_signals(); // before any thread starts
  if (auto v = zkr::validate_name(id, "--id"); !v) {
    std::fprintf(stderr, "im-route: %s\n", v.error().message().c_str());
    return 2;
  }

  auto zs = im::connect_zk(zk_connect, std::chrono::milliseconds(session_ms));
  if (!zs) {
    std::fprintf(stderr, "im-route: cannot connect to ZooKeeper at %s: %s\n", zk_connect.c_str(), zs.error().message().c_str());
    return 1;
  }
  zkr::session& zk = zs.value();
  const im::zk_paths paths{root};
  for (const auto& p : {paths.account_id(""), paths.account_name(""), paths.logins(), paths.routes()}) {
    const auto path = p.back() == '/' ? p.substr(0, p.size() - 1) : p;
    if (auto r = zk.ensure_path(path); !r) {
      std::fprintf(stderr, "im-route: %s: %s\n", path.c_str(), r.error().message().c_str());
      return 1;
    }
  }
  zkr::registry_options ro;
  ro.base_path = paths.services();
  zkr::service_discovery servers(zk, im::service_name, ro);
  zkr::children_cache routes(zk, paths.routes());
  zkr::id_generator ids(zk, paths.id_generator());
  for (auto r : {servers.start(), routes.start()})
    if (!r) {
      std::fprintf(stderr, "im-route: cannot start its views: %s\n", r.error().message().c_str());
      return 1;
    }
  route_server rs{zk, paths, id, servers, routes, ids};

  httplib::Server http;
  examples::guard_http(http, im::max_body_bytes,
                       [](httplib::Response& res, int status, const std::string& code, const std::string& message) {
                         reply(res, status, code, message);
                       });
  http.Post("/register", [&](const httplib::Request& q, httplib::Response& r) { rs.do_register(q, r); });
  http.Post("/login", [&](const httplib::Request& q, httplib::Response& r) { rs.do_login(q, r); });
  http.Post("/group", [&](const httplib::Request& q, httplib::Response& r) { rs.do_group(q, r); });
  http.Post("/private", [&](const httplib::Request& q, httplib::Response& r) { rs.do_private(q, r); });
  http.Post("/logout", [&](const httplib::Request& q, httplib::Response& r) { rs.do_logout(q, r); });
  http.Get("/online", [&](const httplib::Request&, httplib::Response& r) { rs.do_online(r); });
  const int bound = port == 0 ? http.bind_to_any_port("127.0.0.1") : (http.bind_to_port("127.0.0.1", port) ? port : -1);
  if (bound <= 0) {
    std::fprintf(stderr, "im-route: cannot listen on 127.0.0.1:%d\n", port);
    return 1;
  }
  std::thread serving([&http] { http.listen_after_bind(); });
  // stop() does nothing before listen has begun: wait for it (bounded).
  for (int i = 0; i < 500 && !http.is_running(); ++i) std::this_thread::sleep_for(10ms);
  std::printf("listening 127.0.0.1:%d\n", bound);
  std::fflush(stdout);
  const int sig = examples::wait_stop_signal(stop_signals);
  http.stop();
  serving.join();
  std::printf("stopped on signal %d\n", sig);
  return 0;
}
