// The IM system (examples/im/, mission §5) as real processes: im-server and
// im-route against the shared ZooKeeper server, users as in-process
// im::client objects (client.hpp), raw TCP connections speaking the frame
// protocol, and the im-client console program. tests/meson.build passes the
// programs' paths (ZKRECIPES_IM_SERVER, _ROUTE, _CLIENT) and the include path
// of examples/im when the examples are built; otherwise this file holds no
// tests.
//
// Every wait is a bounded poll of something observable (a log line, an HTTP
// answer, a received message, a znode, a socket's EOF); "nothing else
// arrived" is checked with a later marker message, never with a sleep.
// Processes are signalled by pid only.
#include "http_client.hpp"
#include "support.hpp"

#if defined(ZKRECIPES_IM_SERVER) && defined(ZKRECIPES_IM_ROUTE) && defined(ZKRECIPES_IM_CLIENT)

#include "client.hpp"
#include "protocol.hpp"

#include <zkrecipes/detail/process.hpp>

#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace fs = std::filesystem;
namespace zkd = zkrecipes::detail;
using json = nlohmann::json;
using namespace std::chrono_literals;
using zkt::eventually;
using clock_type = std::chrono::steady_clock;

long long ms_since(clock_type::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - t).count();
}

// ---------------------------------------------------------------- sockets

using http_reply = zkt::http::reply;
using zkt::http::connect_loopback;

http_reply post(int port, const std::string& path, const json& body) { return zkt::http::request(port, "POST", path, body.dump()); }

/// A raw frame connection to an im-server's socket port.
class wire {
public:
  explicit wire(int port) : fd_(connect_loopback(port)) { REQUIRE_MESSAGE(fd_ >= 0, "connect to " << port); }
  wire(const wire&) = delete;
  wire& operator=(const wire&) = delete;
  ~wire() { ::close(fd_); }

  void send(const std::string& bytes) {
    REQUIRE(::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size()));
  }
  void send(const im::Frame& f) { send(im::encode_frame(f)); }

  /// The next frame within `bound`; nothing when the peer closed (closed()),
  /// sent a non-frame (problem()) or the bound passed.
  std::optional<im::Frame> read(std::chrono::milliseconds bound = 5s) {
    const auto deadline = clock_type::now() + bound;
    for (;;) {
      auto step = decoder_.next();
      if (auto* f = std::get_if<im::Frame>(&step)) return *f;
      if (auto* b = std::get_if<im::frame_decoder::bad>(&step)) return problem_ = b->why, std::nullopt;
      if (closed_ || !fill(deadline)) return std::nullopt;
    }
  }

  /// Whether the peer closes the connection within `bound`; frames that come
  /// first are kept in `before`.
  bool closes_within(std::chrono::milliseconds bound) {
    const auto deadline = clock_type::now() + bound;
    while (!closed_) {
      if (auto f = read(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now())))
        before.push_back(*f);
      else if (!closed_)
        return false;
    }
    return true;
  }

  bool closed() const { return closed_; }
  const std::string& problem() const { return problem_; }
  std::vector<im::Frame> before;

private:
  bool fill(clock_type::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now()).count();
    pollfd p{fd_, POLLIN, 0};
    if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) <= 0) return false;
    char buf[4096];
    const auto n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) return closed_ = true, true; // EOF (or a reset: closed as well)
    decoder_.feed(std::string_view(buf, static_cast<std::size_t>(n)));
    return true;
  }
  int fd_;
  im::frame_decoder decoder_;
  bool closed_ = false;
  std::string problem_;
};

im::Frame frame(im::Frame::Type t, std::uint64_t request_id = 0) {
  im::Frame f;
  f.set_type(t);
  f.set_request_id(request_id);
  return f;
}

std::string be32(std::uint32_t n) {
  return {static_cast<char>(n >> 24), static_cast<char>(n >> 16), static_cast<char>(n >> 8), static_cast<char>(n)};
}

std::string describe(const std::optional<im::Frame>& f) { return f ? f->ShortDebugString() : std::string("(no frame)"); }

// ---------------------------------------------------------------- the system

struct proc {
  std::string id;
  zkd::child_process p;
  fs::path log;
  int port = -1; ///< the socket port of a server, the HTTP port of a route
  int http = -1; ///< a server's HTTP port
  bool killed = false;
};

/// A ZooKeeper root, N im-servers and M im-routes, stopped by pid at the end
/// (each must exit 0 unless the test killed it); the root is removed.
class im_cluster {
public:
  im_cluster(int servers, int routes, int heartbeat_ms = 1000)
      : zk_(zkt::shared_server().connect_string()), root_(zkt::unique_root("im")) {
    auto d = zkd::temp_dir::create("zkrecipes-im-test-");
    REQUIRE_MESSAGE(d.has_value(), (d ? "" : d.error().message()));
    dir_ = std::move(d).value();
    for (int i = 1; i <= servers; ++i)
      start(servers_, "s" + std::to_string(i),
            {ZKRECIPES_IM_SERVER, "--id", "s" + std::to_string(i), "--port", "0", "--http-port", "0",
             "--heartbeat-ms", std::to_string(heartbeat_ms)});
    for (int i = 1; i <= routes; ++i)
      start(routes_, "r" + std::to_string(i), {ZKRECIPES_IM_ROUTE, "--id", "r" + std::to_string(i), "--port", "0"});
    for (auto* group : {&servers_, &routes_})
      for (auto& p : *group) {
        const bool up = eventually(
            [&] { return !p->p.running() || zkd::read_file(p->log).find("listening 127.0.0.1:") != std::string::npos; },
            20s);
        REQUIRE_MESSAGE((up && p->p.running()), p->id << " did not start: " << zkd::tail_of_file(p->log, 30));
        const std::string text = zkd::read_file(p->log);
        const auto at = text.find("listening 127.0.0.1:");
        p->port = std::atoi(text.c_str() + at + 20);
        if (const auto h = text.find(" http 127.0.0.1:", at); h != std::string::npos) p->http = std::atoi(text.c_str() + h + 16);
        REQUIRE(p->port > 0);
        REQUIRE((group == &routes_ || p->http > 0));
      }
  }
  im_cluster(const im_cluster&) = delete;
  im_cluster& operator=(const im_cluster&) = delete;
  ~im_cluster() {
    // SIGTERM to every pid first, then wait for each (SIGKILL after 5 s).
    for (auto* group : {&routes_, &servers_})
      for (auto& p : *group) p->p.send_signal(SIGTERM);
    for (auto* group : {&routes_, &servers_})
      for (auto& p : *group) {
        if (p->killed) continue;
        if (!p->p.wait_for(5s)) p->p.kill_and_reap();
        const int st = p->p.last_status();
        CHECK_MESSAGE((st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0),
                      p->id << " did not stop cleanly (" << p->p.describe_status() << "):\n" << zkd::tail_of_file(p->log, 30));
      }
    if (auto s = zkrecipes::session::connect(zkt::options_for(zk_), 10s)) (void)s.value().remove_recursive(root_);
  }

  const fs::path& dir() const { return dir_.path(); }
  const std::string& root() const { return root_; }
  proc& server(std::size_t i) { return *servers_.at(i); }
  proc& route(std::size_t i) { return *routes_.at(i); }
  proc& server(const std::string& id) {
    for (auto& p : servers_)
      if (p->id == id) return *p;
    FAIL("no server " << id);
    return *servers_.front();
  }
  int route_port(std::size_t i = 0) const { return routes_.at(i)->port; }
  std::vector<std::string> routes() const {
    std::vector<std::string> out;
    for (auto& p : routes_) out.push_back("127.0.0.1:" + std::to_string(p->port));
    return out;
  }

  /// SIGKILL to that pid; the destructor then expects no clean exit.
  void kill(proc& p) {
    p.killed = true;
    p.p.kill_and_reap();
  }

  /// GET /online through the first live route: userId → server; nothing
  /// when there is no good answer.
  std::optional<std::map<std::string, std::string>> online() {
    for (auto& r : routes_) {
      if (r->killed) continue;
      const auto reply = zkt::http::request(r->port, "GET", "/online");
      const json users = reply.data().is_object() ? reply.data().value("users", json()) : json();
      if (reply.status != 200 || !users.is_array()) return std::nullopt;
      std::map<std::string, std::string> out;
      for (const auto& u : users) out[u.value("userId", "")] = u.value("server", "");
      return out;
    }
    return std::nullopt;
  }
  /// Waits (bounded) until every live route's /online is `want` (userId →
  /// server). Group messages go to the users in a route's live view of the
  /// route nodes, which follows a login by a few milliseconds.
  bool routes_list(const std::map<std::string, std::string>& want, std::chrono::milliseconds bound = 5s) {
    return eventually([&] {
      for (auto& r : routes_) {
        if (r->killed) continue;
        std::map<std::string, std::string> got;
        const auto reply = zkt::http::request(r->port, "GET", "/online");
        for (const auto& u : reply.data().is_object() ? reply.data().value("users", json::array()) : json::array())
          got[u.value("userId", "")] = u.value("server", "");
        if (got != want) return false;
      }
      return true;
    }, bound);
  }
  /// Whether /online answers and lists `id`.
  std::optional<bool> is_online(const std::string& id) {
    auto o = online();
    return o ? std::optional<bool>(o->count(id) == 1) : std::nullopt;
  }

  /// POST /register through route i (or the next live one): the new user's id.
  std::string register_user(const std::string& name, std::size_t i = 0) {
    while (routes_.at(i)->killed) i = (i + 1) % routes_.size();
    const auto r = post(route_port(i), "/register", {{"name", name}});
    REQUIRE_MESSAGE((r.status == 200 && r.code() == "ok"), "register " << name << ": " << r);
    return r.data().value("userId", "");
  }

  std::string logs() const {
    std::string out;
    for (auto* group : {&servers_, &routes_})
      for (auto& p : *group) out += "--- " + p->id + ":\n" + zkd::tail_of_file(p->log, 15) + "\n";
    return out;
  }

private:
  void start(std::vector<std::unique_ptr<proc>>& into, const std::string& id, std::vector<std::string> argv) {
    argv.insert(argv.end(), {"--zk", zk_, "--zk-root", root_, "--session-timeout-ms", "4000"});
    auto p = std::make_unique<proc>();
    p->id = id;
    p->log = dir_.path() / (id + ".log");
    auto c = zkd::child_process::spawn(argv, dir_.path(), p->log);
    REQUIRE_MESSAGE(c.has_value(), (c ? "" : c.error().message()));
    p->p = std::move(c).value();
    into.push_back(std::move(p));
  }

  std::string zk_;
  std::string root_;
  zkd::temp_dir dir_;
  std::vector<std::unique_ptr<proc>> servers_, routes_;
};

/// A user as an in-process im::client, counting what it receives by msg_id.
struct chat_user {
  std::string id, name;
  mutable std::mutex m;
  std::map<std::string, int> count; ///< msg_id → times on_message saw it
  std::map<std::string, im::message> got;
  std::unique_ptr<im::client> c;

  ~chat_user() { c.reset(); } // stopped before the inbox goes

  int seen(const std::string& msg_id) const {
    std::lock_guard lk(m);
    auto it = count.find(msg_id);
    return it == count.end() ? 0 : it->second;
  }
  std::size_t distinct() const {
    std::lock_guard lk(m);
    return count.size();
  }
  im::message message(const std::string& msg_id) const {
    std::lock_guard lk(m);
    auto it = got.find(msg_id);
    return it == got.end() ? im::message{} : it->second;
  }
};

/// Registers `n` users (name prefix-i, alternating routes) and starts a
/// client for each with every route of the cluster.
std::vector<std::unique_ptr<chat_user>> start_users(im_cluster& cl, int n, const std::string& prefix) {
  std::vector<std::unique_ptr<chat_user>> users;
  for (int i = 0; i < n; ++i) {
    auto u = std::make_unique<chat_user>();
    u->name = prefix + std::to_string(i);
    u->id = cl.register_user(u->name, static_cast<std::size_t>(i) % cl.routes().size());
    im::client_options o;
    o.routes = cl.routes();
    o.user_id = u->id;
    o.heartbeat = 1000ms;
    u->c = std::make_unique<im::client>(o);
    u->c->on_message = [p = u.get()](const im::message& msg) {
      std::lock_guard lk(p->m);
      ++p->count[msg.msg_id];
      p->got[msg.msg_id] = msg;
    };
    auto r = u->c->start();
    REQUIRE_MESSAGE(r.has_value(), u->name << ": " << r.error() << "\n" << cl.logs());
    users.push_back(std::move(u));
  }
  return users;
}

/// Waits (bounded) until every user in `who` has received msg_id.
bool all_received(const std::vector<chat_user*>& who, const std::string& msg_id, std::chrono::milliseconds bound = 10s) {
  return eventually([&] { return std::all_of(who.begin(), who.end(), [&](auto* u) { return u->seen(msg_id) > 0; }); },
                    bound);
}

/// userId → the server each user's client is on now.
std::map<std::string, std::string> where(const std::vector<chat_user*>& users) {
  std::map<std::string, std::string> out;
  for (auto* u : users) out[u->id] = u->c->server();
  return out;
}

std::vector<chat_user*> everyone(const std::vector<std::unique_ptr<chat_user>>& users) {
  std::vector<chat_user*> out;
  for (auto& u : users) out.push_back(u.get());
  return out;
}

/// A group message from `from`, and the wait until every one of `to` has it.
std::string group_reaching(chat_user& from, const std::vector<chat_user*>& to, const std::string& text, im_cluster& cl) {
  auto id = from.c->send_group(text);
  REQUIRE_MESSAGE(id.has_value(), from.name << ": " << id.error());
  REQUIRE_MESSAGE(all_received(to, id.value()), "\"" << text << "\" did not reach everyone\n" << cl.logs());
  return id.value();
}

/// Logs `name` in with raw frames: POST /login, then LOGIN on the server's
/// socket; the connection stays open (and silent) in `conn`.
struct raw_login {
  std::string id, token, server;
  std::unique_ptr<wire> conn;
};

raw_login login_raw(im_cluster& cl, const std::string& id) {
  raw_login out;
  out.id = id;
  const auto r = post(cl.route_port(), "/login", {{"userId", id}});
  REQUIRE_MESSAGE(r.status == 200, "login " << id << ": " << r);
  const json d = r.data();
  REQUIRE_MESSAGE((d.is_object() && d.value("server", json()).is_object()), r);
  out.token = d.value("token", "");
  out.server = d["server"].value("id", "");
  out.conn = std::make_unique<wire>(d["server"].value("socket", 0));
  auto login = frame(im::Frame::LOGIN, 1);
  login.set_user_id(id);
  login.set_token(out.token);
  out.conn->send(login);
  const auto ok = out.conn->read();
  REQUIRE_MESSAGE((ok && ok->type() == im::Frame::LOGIN_OK && ok->user_id() == id && ok->server() == out.server),
                  describe(ok) << "\n" << cl.logs());
  return out;
}

} // namespace

TEST_CASE("im: 3 servers, 2 routes, 10 clients: a group message reaches all 10 once, a private one only its target, "
          "a second login is refused") {
  im_cluster cl(3, 2);
  auto users = start_users(cl, 10, "user");
  const auto all = everyone(users);

  std::set<std::string> servers;
  for (auto& u : users) servers.insert(u->c->server());
  CHECK_MESSAGE(servers.size() > 1, "every client on one server");
  CHECK(servers.count("") == 0);

  // /online (at each route) lists the 10, each on the server its client is connected to.
  REQUIRE_MESSAGE(cl.routes_list(where(all)), json(cl.online().value_or(std::map<std::string, std::string>{})).dump());

  // A group message: everyone (the sender too) gets it, with its sender.
  const std::string g1 = group_reaching(*users[3], all, "hello everyone", cl);
  const auto m = users[8]->message(g1);
  CHECK(m.from == users[3]->id);
  CHECK(m.from_name == "user3");
  CHECK(m.text == "hello everyone");
  CHECK(m.group);
  // A later marker reaches everyone: by then a second copy of the first
  // would have come too.
  const std::string g2 = group_reaching(*users[5], all, "marker one", cl);
  for (auto* u : all) {
    CHECK_MESSAGE(u->seen(g1) == 1, u->name);
    CHECK_MESSAGE(u->distinct() == 2, u->name); // nothing else arrived
  }

  // A private message reaches its target only.
  auto p = users[0]->c->send_private(users[7]->id, "psst");
  REQUIRE_MESSAGE(p.has_value(), p.error());
  REQUIRE(all_received({users[7].get()}, p.value()));
  const auto pm = users[7]->message(p.value());
  CHECK(pm.from == users[0]->id);
  CHECK(pm.text == "psst");
  CHECK_FALSE(pm.group);
  const std::string g3 = group_reaching(*users[9], all, "marker two", cl);
  for (auto* u : all) {
    CHECK_MESSAGE(u->seen(p.value()) == (u == users[7].get() ? 1 : 0), u->name);
    CHECK_MESSAGE(u->seen(g2) == 1, u->name);
  }

  // A second login while the first is connected is refused.
  for (std::size_t r = 0; r < 2; ++r) {
    const auto again = post(cl.route_port(r), "/login", {{"userId", users[2]->id}});
    CHECK_MESSAGE(again.status == 409, again);
    CHECK_MESSAGE(again.code() == "already_logged_in", again);
    CHECK_FALSE(again.j().value("message", "").empty());
  }
  CHECK(users[2]->c->logins() == 1); // and the connected client is untouched
  const std::string g4 = group_reaching(*users[2], all, "still here", cl);
  for (auto* u : all) CHECK_MESSAGE((u->seen(g3) == 1 && u->seen(g4) == 1), u->name);
  // "Once" on the wire too: the client drops a second copy of an id before
  // the callback, and counts it.
  for (auto* u : all) CHECK_MESSAGE(u->c->duplicates() == 0, u->name);
}

TEST_CASE("im: a group message sent right after a login reaches the new user") {
  // The route lists the online users after a sync, not from its cache alone,
  // which trails a login: with the cache only most of these were missed.
  im_cluster cl(2, 2);
  auto users = start_users(cl, 1, "old");
  REQUIRE(cl.routes_list(where(everyone(users))));
  for (int i = 0; i < 8; ++i) {
    auto fresh = start_users(cl, 1, "new" + std::to_string(i) + "_");
    auto id = users[0]->c->send_group("right after " + std::to_string(i));
    REQUIRE_MESSAGE(id.has_value(), id.error());
    CHECK_MESSAGE(all_received({fresh[0].get()}, id.value(), 5s),
                  fresh[0]->id << " on " << fresh[0]->c->server() << " missed " << id.value() << "\n" << cl.logs());
  }
}

TEST_CASE("im: SIGKILL of an im-server: its users leave the online list within the session timeout, their clients "
          "reconnect by themselves and get later messages") {
  im_cluster cl(3, 2);
  auto users = start_users(cl, 6, "k");
  const std::string victim = users[0]->c->server();
  REQUIRE(!victim.empty());
  std::vector<chat_user*> moved, stayed;
  for (auto& u : users) (u->c->server() == victim ? moved : stayed).push_back(u.get());
  REQUIRE(cl.routes_list(where(everyone(users))));

  cl.kill(cl.server(victim));
  const auto killed = clock_type::now();
  // Its route nodes go with its session: no user is listed on it any more.
  auto on_victim = [&]() -> long {
    const auto online = cl.online();
    if (!online) return -1; // no answer
    return std::count_if(online->begin(), online->end(), [&](auto& kv) { return kv.second == victim; });
  };
  const bool gone = eventually([&] { return on_victim() == 0; }, 4000ms + 3s);
  const auto took = ms_since(killed);
  REQUIRE_MESSAGE(gone, on_victim() << " users still listed on " << victim << " " << took << " ms after the kill\n" << cl.logs());
  MESSAGE(moved.size() << " users of " << victim << " left /online " << took << " ms after SIGKILL");

  // Its clients log in again by themselves, on another server; the others
  // never noticed.
  for (auto* u : moved)
    CHECK_MESSAGE(eventually([&] { return u->c->logins() >= 2 && !u->c->server().empty() && u->c->server() != victim; }, 15s),
                  u->name << ": logins " << u->c->logins() << " server \"" << u->c->server() << "\"\n" << cl.logs());
  for (auto* u : stayed) CHECK_MESSAGE(u->c->logins() == 1, u->name);
  CHECK_MESSAGE(cl.routes_list(where(everyone(users))), json(cl.online().value_or(std::map<std::string, std::string>{})).dump());

  // A later group message, sent by a moved user, reaches all.
  const std::string g = group_reaching(*moved.front(), everyone(users), "after the kill", cl);
  for (auto& u : users) CHECK(u->seen(g) == 1);
}

TEST_CASE("im: a route killed mid-traffic: clients keep working through the other route") {
  im_cluster cl(2, 2);
  auto users = start_users(cl, 3, "t");
  const auto all = everyone(users);
  REQUIRE(cl.routes_list(where(all)));

  // The sender sends one message after another, each awaited at every
  // receiver, while the main thread kills route 1.
  struct sent {
    clock_type::time_point started;
    std::string msg_id, error;
  };
  std::mutex m;
  std::vector<sent> log;
  std::atomic<bool> kill_done{false};
  std::atomic<int> after_kill{0};
  std::thread sender([&] {
    for (int i = 0; i < 200 && after_kill < 15; ++i) {
      sent s{clock_type::now(), {}, {}};
      const bool later = kill_done;
      auto r = users[0]->c->send_group("m" + std::to_string(i));
      if (r.has_value()) {
        s.msg_id = r.value();
        (void)all_received(all, s.msg_id, 5s);
      } else {
        s.error = r.error();
      }
      if (later) ++after_kill;
      std::lock_guard lk(m);
      log.push_back(s);
    }
  });
  const bool started = eventually([&] {
    std::lock_guard lk(m);
    return log.size() >= 5;
  }, 20s);
  cl.kill(cl.route(0));
  const auto killed = clock_type::now();
  kill_done = true;
  sender.join();
  REQUIRE(started);
  REQUIRE(after_kill >= 15);

  int before = 0, later = 0;
  for (const auto& s : log) {
    if (s.started < killed) {
      // Sent before the kill, or in flight during it: must have worked if it said so.
      ++before;
      if (!s.msg_id.empty())
        for (auto* u : all) CHECK_MESSAGE(u->seen(s.msg_id) == 1, u->name << " " << s.msg_id);
      continue;
    }
    ++later;
    CHECK_MESSAGE(s.error.empty(), "a send after the kill failed: " << s.error << "\n" << cl.logs());
    if (!s.msg_id.empty())
      for (auto* u : all) CHECK_MESSAGE(u->seen(s.msg_id) == 1, u->name << " " << s.msg_id);
  }
  CHECK(before >= 5);
  CHECK(later >= 14);
  MESSAGE(before << " sends before the kill (or in flight), " << later << " after it");
  auto on = users[1]->c->online();
  REQUIRE_MESSAGE(on.has_value(), on.error());
  CHECK(on.value().size() == 3);

  // A new client whose first route is the dead one logs in through the other.
  std::vector<std::unique_ptr<chat_user>> late = start_users(cl, 1, "late");
  auto all4 = all;
  all4.push_back(late[0].get());
  REQUIRE(cl.routes_list(where(all4)));
  const std::string g = group_reaching(*late[0], all4, "from the late one", cl);
  for (auto* u : all) CHECK(u->c->logins() == 1); // the servers stayed: no reconnect
}

TEST_CASE("im: bad frames close only that connection with an error frame; the server stays up") {
  im_cluster cl(1, 1, 2000);
  auto users = start_users(cl, 1, "w");
  auto& watcher = *users[0];
  const int port = cl.server(0).port;
  REQUIRE(cl.routes_list(where({&watcher})));

  im::Frame good = frame(im::Frame::LOGIN, 5);
  good.set_user_id(watcher.id);
  good.set_token(std::string(40, 'x'));
  std::string good_body;
  good.SerializeToString(&good_body);

  im::Frame text = frame(im::Frame::TEXT, 3);
  text.set_text("hello");
  struct bad_case {
    const char* what;
    std::string bytes;
  };
  const std::vector<bad_case> cases = {
      {"length 0", be32(0) + "xx"},
      {"length over 65536", be32(65537)},
      {"bytes that are not a Frame", be32(16) + std::string(16, '\xff')},
      {"a length shorter than the frame that follows", be32(static_cast<std::uint32_t>(good_body.size() - 3)) + good_body},
      {"a frame of type UNKNOWN", be32(2) + std::string("\x10\x01", 2)},
      {"a frame of type 99", be32(2) + std::string("\x08\x63", 2)},
      {"a TEXT frame before LOGIN", im::encode_frame(text)},
  };
  for (const auto& c : cases) {
    CAPTURE(c.what);
    wire w(port);
    if (std::string(c.what).find("TEXT") != std::string::npos) { // PING is fine before login
      w.send(frame(im::Frame::PING, 77));
      const auto pong = w.read();
      CHECK_MESSAGE((pong && pong->type() == im::Frame::PONG && pong->request_id() == 77), describe(pong));
    }
    w.send(c.bytes);
    const auto e = w.read();
    CHECK_MESSAGE((e && e->type() == im::Frame::ERROR && e->code() == "bad_frame" && !e->message().empty()),
                  describe(e) << " " << w.problem() << (w.closed() ? " (closed)" : ""));
    CHECK_MESSAGE(w.closes_within(5s), "still open after the error frame");
    CHECK(w.before.empty());
  }
  // LOGIN with no pending login is refused with its own code.
  {
    wire w(port);
    w.send(good);
    const auto e = w.read();
    CHECK_MESSAGE((e && e->type() == im::Frame::ERROR && e->code() == "no_pending_login"), describe(e));
    CHECK(w.closes_within(5s));
  }

  // The server is up, the logged-in client kept its connection and still gets messages.
  REQUIRE(cl.server(0).p.running());
  const auto h = zkt::http::request(cl.server(0).http, "GET", "/health");
  CHECK_MESSAGE(h.status == 200, h);
  CHECK(h.j().value("id", "") == "s1");
  CHECK(watcher.c->logins() == 1);
  const std::string g = group_reaching(watcher, {&watcher}, "after the bad frames", cl);
  CHECK(watcher.seen(g) == 1);
}

TEST_CASE("im: a login token works once: two connections racing with it, one wins") {
  im_cluster cl(1, 1);
  const std::string id = cl.register_user("racer");
  for (int round = 0; round < 3; ++round) {
    // The last round's winner has gone: its route with it.
    REQUIRE(eventually([&] { return cl.is_online(id) == false; }, 5s));
    const auto r = post(cl.route_port(), "/login", {{"userId", id}});
    REQUIRE_MESSAGE(r.status == 200, r);
    const json d = r.data();
    const int port = d["server"].value("socket", 0);
    auto login = frame(im::Frame::LOGIN, 7);
    login.set_user_id(id);
    login.set_token(d.value("token", ""));
    wire a(port), b(port);
    const std::string bytes = im::encode_frame(login);
    a.send(bytes);
    b.send(bytes);
    const auto fa = a.read(), fb = b.read();
    REQUIRE_MESSAGE((fa && fb), describe(fa) << " / " << describe(fb) << "\n" << cl.logs());
    const int wins = (fa->type() == im::Frame::LOGIN_OK) + (fb->type() == im::Frame::LOGIN_OK);
    CHECK_MESSAGE(wins == 1, describe(fa) << " / " << describe(fb));
    const auto& lost = fa->type() == im::Frame::LOGIN_OK ? *fb : *fa;
    CHECK(lost.type() == im::Frame::ERROR);
    CHECK_MESSAGE((lost.code() == "bad_token" || lost.code() == "no_pending_login" || lost.code() == "already_logged_in"),
                  describe(lost));
    CHECK(lost.request_id() == 7); // a refusal answers the LOGIN
    // The loser's connection is closed; the winner's route is the only one.
    CHECK((fa->type() == im::Frame::LOGIN_OK ? b : a).closes_within(5s));
    CHECK(eventually([&] { return cl.is_online(id) == true; }, 5s));
    // The same token again, on a third connection: spent.
    wire c(port);
    c.send(bytes);
    const auto fc = c.read();
    REQUIRE(fc);
    CHECK_MESSAGE((fc->type() == im::Frame::ERROR && fc->code() != "bad_frame"), describe(fc));
    // Next round: the winner leaves, its route goes.
  }
}

TEST_CASE("im: a client silent for 3 heartbeat periods is dropped and its route removed") {
  im_cluster cl(1, 1, 1000);
  auto users = start_users(cl, 1, "alive"); // sends PINGs every 1000 ms: stays
  const std::string id = cl.register_user("silent");
  auto s = login_raw(cl, id);
  const auto logged_in = clock_type::now();
  auto zs = zkt::connect_shared();
  const std::string node = cl.root() + "/routes/" + id;
  CHECK(eventually([&] { return cl.is_online(id) == true; }, 5s));
  {
    auto e = zs.exists(node);
    REQUIRE(e.has_value());
    CHECK(e.value().has_value());
  }

  // Nothing sent: closed after 3 × 1000 ms (checked every period: before 4).
  const bool closed = s.conn->closes_within(4000ms + 3s);
  const auto took = ms_since(logged_in);
  CHECK_MESSAGE(closed, "still open " << took << " ms after LOGIN_OK\n" << cl.logs());
  // (From LOGIN_OK; the server counts from LOGIN, two round trips earlier.)
  CHECK_MESSAGE(took >= 1500, "closed after " << took << " ms, before 3 heartbeat periods");
  MESSAGE("the silent connection was closed " << took << " ms after LOGIN_OK");
  CHECK(eventually([&] { return cl.is_online(id) == false; }, 3s));
  CHECK(eventually([&] {
    auto e = zs.exists(node);
    return e.has_value() && !e.value().has_value();
  }, 3s));

  // The pinging client outlived it; the dropped user may log in again.
  CHECK(users[0]->c->logins() == 1);
  CHECK(cl.is_online(users[0]->id) == true);
  auto again = login_raw(cl, id);
  CHECK(again.server == "s1");
}

TEST_CASE("im: the route's errors name what is wrong") {
  im_cluster cl(1, 1, 10000); // a raw login stays connected without PINGs
  const int port = cl.route_port();
  const std::string ann = cl.register_user("ann");
  const std::string bob = cl.register_user("bob"); // never logs in
  auto a = login_raw(cl, ann);

  auto expect = [&](const http_reply& r, int status, const std::string& code, const std::string& named = {}) {
    const json j = r.j();
    CHECK_MESSAGE(r.status == status, r);
    CHECK_MESSAGE(r.code() == code, r);
    CHECK_MESSAGE((j.is_object() && j.contains("message") && j["message"].is_string() &&
                   !j["message"].get<std::string>().empty()),
                  r);
    CHECK_MESSAGE((j.is_object() && j.contains("requestId") && j["requestId"].is_number_integer()), r);
    if (!named.empty()) CHECK_MESSAGE(j.value("message", "").find(named) != std::string::npos, r);
  };
  expect(zkt::http::request(port, "POST", "/register", "{\"name\":"), 400, "bad_request");
  expect(zkt::http::request(port, "POST", "/register", "[1,2]"), 400, "bad_request");
  expect(post(port, "/register", json::object()), 400, "bad_request", "name");
  expect(post(port, "/register", {{"name", 7}}), 400, "bad_request", "name");
  expect(post(port, "/register", {{"name", "no spaces"}}), 400, "bad_request", "name");
  expect(post(port, "/group", {{"userId", ann}, {"text", "hi"}}), 400, "bad_request", "token");
  expect(post(port, "/private", {{"userId", ann}, {"token", a.token}, {"text", "hi"}}), 400, "bad_request", "to");
  expect(post(port, "/register", {{"name", std::string(70000, 'a')}}), 413, "too_large");
  expect(post(port, "/register", {{"name", "ann"}}), 409, "name_taken");
  const auto taken = im::register_user(cl.routes(), "ann"); // the client library passes the code on
  CHECK_MESSAGE((!taken.has_value() && taken.code() == "name_taken"), (taken ? "registered" : taken.error()));
  expect(post(port, "/login", {{"userId", "u999999"}}), 404, "no_such_user");
  expect(post(port, "/login", {{"userId", ann}}), 409, "already_logged_in");
  expect(post(port, "/group", {{"userId", ann}, {"token", "not-the-token"}, {"text", "hi"}}), 403, "bad_token");
  expect(post(port, "/private", {{"userId", ann}, {"token", a.token}, {"to", bob}, {"text", "hi"}}), 404, "offline");
  // And a right request still works: ann gets her own group message.
  REQUIRE(cl.routes_list({{ann, a.server}}));
  const auto ok = post(port, "/group", {{"userId", ann}, {"token", a.token}, {"text", "hi all"}});
  expect(ok, 200, "ok");
  const auto t = a.conn->read();
  CHECK_MESSAGE((t && t->type() == im::Frame::TEXT && t->text() == "hi all" && t->group() && t->from() == ann &&
                 t->msg_id() == ok.data().value("msgId", "")),
                describe(t));
}

TEST_CASE("im: the console client: :olu, a group line, a private line and :q") {
  im_cluster cl(2, 2);
  auto users = start_users(cl, 1, "bob");
  auto& bob = *users[0];
  const fs::path fifo = cl.dir() / "console.in";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  const int in = ::open(fifo.c_str(), O_RDWR | O_CLOEXEC); // neither side blocks on open
  REQUIRE(in >= 0);
  struct closer {
    int fd;
    ~closer() { ::close(fd); }
  } close_in{in};
  const auto routes = cl.routes();
  const fs::path log = cl.dir() / "console.log";
  auto spawned = zkd::child_process::spawn({ZKRECIPES_IM_CLIENT, "--route", routes[0], "--route", routes[1], "--register",
                                            "ann", "--heartbeat-ms", "1000", "--input", fifo.string()},
                                           cl.dir(), log);
  REQUIRE(spawned.has_value());
  auto& console = spawned.value();
  auto output = [&] { return zkd::read_file(log); };
  auto shows = [&](const std::string& line) {
    return eventually([&] { return output().find(line) != std::string::npos || !console.running(); }, 10s) &&
           output().find(line) != std::string::npos;
  };
  auto type = [&](const std::string& line) {
    const std::string l = line + "\n";
    REQUIRE(::write(in, l.data(), l.size()) == static_cast<ssize_t>(l.size()));
  };

  REQUIRE_MESSAGE(shows("registered u"), output());
  const std::string out = output();
  const std::string ann = out.substr(out.find("registered ") + 11, out.find(" (ann)") - out.find("registered ") - 11);
  const std::string logged_in = "logged in as " + ann + " (ann) on ";
  REQUIRE_MESSAGE(shows(logged_in + "s"), output());
  const std::string rest = output().substr(output().find(logged_in) + logged_in.size());
  const std::string ann_server = rest.substr(0, rest.find('\n'));
  REQUIRE_MESSAGE(cl.routes_list({{bob.id, bob.c->server()}, {ann, ann_server}}), output());
  type(":olu");
  const auto by_id = [](const std::string& a, const std::string& b) { return std::stoll(a.substr(1)) < std::stoll(b.substr(1)); };
  const bool bob_first = by_id(bob.id, ann);
  const std::string listing = "online: " + (bob_first ? bob.id + "(bob0) " + ann + "(ann)" : ann + "(ann) " + bob.id + "(bob0)");
  CHECK_MESSAGE(shows(listing), output());

  // A group line: bob gets it, and so does the console itself.
  type("hello all");
  CHECK_MESSAGE(shows("[group] ann(" + ann + "): hello all"), output());
  std::string got;
  CHECK(eventually([&] {
    std::lock_guard lk(bob.m);
    for (auto& [id, msg] : bob.got)
      if (msg.text == "hello all" && msg.from == ann && msg.group) got = id;
    return !got.empty();
  }, 10s));

  // A private line to bob, and one from bob.
  type(bob.id + ";;psst bob");
  CHECK(eventually([&] {
    std::lock_guard lk(bob.m);
    for (auto& [id, msg] : bob.got)
      if (msg.text == "psst bob" && msg.from == ann && msg.from_name == "ann" && !msg.group) return true;
    return false;
  }, 10s));
  auto p = bob.c->send_private(ann, "hi ann");
  REQUIRE_MESSAGE(p.has_value(), p.error());
  CHECK_MESSAGE(shows("[private] bob0(" + bob.id + "): hi ann"), output());

  // An error is named; the console goes on.
  type("u999999;;anyone there");
  CHECK_MESSAGE(shows("error: offline: "), output());
  const std::string g = group_reaching(bob, {&bob}, "from bob", cl);
  CHECK_MESSAGE(shows("[group] bob0(" + bob.id + "): from bob"), output());

  type(":q");
  REQUIRE_MESSAGE(console.wait_for(10s), "still running after :q\n" << output());
  const int st = console.last_status();
  CHECK_MESSAGE((WIFEXITED(st) && WEXITSTATUS(st) == 0), console.describe_status() << "\n" << output());
  CHECK(eventually([&] { return cl.is_online(ann) == false; }, 5s));
  CHECK(bob.c->logins() == 1);
}

#endif // ZKRECIPES_IM_SERVER && ZKRECIPES_IM_ROUTE && ZKRECIPES_IM_CLIENT
