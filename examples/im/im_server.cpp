// im-server: holds the clients' long-lived TCP connections and delivers the
// messages routes push to it. See examples/im/README.md.
//
//   im-server --zk 127.0.0.1:2181 --id s1 [--zk-root /im] [--port 0] [--http-port 0]
//             [--advertise 127.0.0.1] [--heartbeat-ms 10000] [--session-timeout-ms 4000]
//
// Prints `listening 127.0.0.1:SOCKET http 127.0.0.1:HTTP` once it accepts
// connections and is registered. SIGTERM or SIGINT stops it (exit 0).
//
// Threads: one Asio thread owns every connection and the user map; ZooKeeper
// calls (a login, a route's removal) run on a small pool so that a slow round
// trip never stalls the other connections; HTTP requests come on httplib's
// threads and hand their work to the Asio thread.
#include "common.hpp"
#include "../common/http_guard.hpp"

#include <boost/asio.hpp>
#include <CLI/CLI.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <array>
#include <arpa/inet.h>
#include <csignal>
#include <atomic>
#include <cstdio>
#include <deque>
#include <future>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using json = nlohmann::json;
using namespace std::chrono_literals;
namespace zkr = zkrecipes;

namespace {

/// Bytes queued to one client beyond this: it is not reading; drop it
/// rather than let its backlog grow without bound.
constexpr std::size_t max_queued_bytes = 1024 * 1024;
/// A pending login older than this is refused (its token has gone stale).
constexpr auto pending_login_ttl = std::chrono::seconds(60);

using im::str;

struct server;

class connection : public std::enable_shared_from_this<connection> {
public:
  connection(server& s, tcp::socket sock);
  void start();
  void send(const im::Frame& f);
  /// Sends a last ERROR frame (answering request `rid`), then closes.
  void fail(const std::string& code, const std::string& message, std::uint64_t rid = 0);
  void close(const std::string& why);
  const std::string& user() const { return user_; }
  std::uint64_t generation() const { return generation_; }
  std::string peer() const { return peer_; }

private:
  void read();
  void on_frame(im::Frame f);
  void on_login(const im::Frame& f);
  void write_next();
  void arm_idle();

  server& s_;
  tcp::socket sock_;
  asio::steady_timer idle_;
  im::frame_decoder dec_;
  std::array<char, 8192> buf_{};
  std::deque<std::string> out_;
  std::size_t out_bytes_ = 0;
  bool writing_ = false;
  bool closing_ = false; ///< no more frames in; close once the queue is written
  bool closed_ = false;
  bool logging_in_ = false;
  std::uint64_t generation_ = 0; ///< the server's session generation at login
  std::string user_;
  std::string token_;
  std::string peer_;
  std::chrono::steady_clock::time_point last_rx_, started_;
};

struct server {
  asio::io_context io;
  tcp::acceptor acceptor{io};
  asio::thread_pool zk_pool{2};
  zkr::session* zk = nullptr;
  im::zk_paths paths;
  std::string id, advertise;
  int socket_port = 0, http_port = 0;
  std::chrono::milliseconds heartbeat{10000};
  std::set<std::shared_ptr<connection>> conns;             // Asio thread only
  std::map<std::string, std::shared_ptr<connection>> users; // Asio thread only
  std::atomic<std::uint64_t> sent{0}, acked{0};
  std::atomic<bool> stopping{false};
  /// Moves on when the ZooKeeper session is lost: route nodes made before
  /// are gone, and a login that straddles the loss cannot be trusted.
  std::atomic<std::uint64_t> generation{0};
  std::size_t max_connections = 10000;
  std::chrono::milliseconds session_timeout{4000};

  void accept() {
    acceptor.async_accept([this](boost::system::error_code ec, tcp::socket sock) {
      if (ec) {
        if (ec == asio::error::operation_aborted) return;
        // Out of descriptors (EMFILE) fails again at once: wait a little
        // rather than spin.
        std::fprintf(stderr, "accept: %s\n", ec.message().c_str());
        auto t = std::make_shared<asio::steady_timer>(io, 100ms);
        t->async_wait([this, t](boost::system::error_code e) {
          if (!e) accept();
        });
        return;
      }
      if (conns.size() >= max_connections) { // refuse, politely, and go on
        boost::system::error_code ignore;
        const auto refusal = im::encode_frame(im::error_frame("busy", "the server has " + std::to_string(conns.size()) + " connections, its limit"));
        asio::write(sock, asio::buffer(refusal), ignore);
        sock.close(ignore);
        accept();
        return;
      }
      auto c = std::make_shared<connection>(*this, std::move(sock));
      conns.insert(c);
      c->start();
      accept();
    });
  }

  /// Runs `fn` on the Asio thread and waits (bounded) for its value.
  template <class F> std::optional<std::invoke_result_t<F>> on_io(F fn) {
    if (stopping) return std::nullopt;
    auto p = std::make_shared<std::promise<std::invoke_result_t<F>>>();
    auto f = p->get_future();
    asio::post(io, [p, fn = std::move(fn)]() mutable { p->set_value(fn()); });
    if (f.wait_for(5s) != std::future_status::ready) return std::nullopt;
    return f.get();
  }

  /// Removes the route node of one connection: only while this session owns
  /// it and it holds that connection's token, so a newer login of the same
  /// user (here or on another server) is never touched. Transient errors are
  /// retried for up to a session timeout; after that the session is gone and
  /// the node with it.
  void remove_route(const std::string& user, const std::string& token) {
    asio::post(zk_pool, [this, user, token] {
      const auto deadline = std::chrono::steady_clock::now() + session_timeout + 2s;
      auto pause = 100ms;
      for (;;) {
        auto n = zk->get(paths.route(user));
        if (n) {
          if (n.value().stat.ephemeral_owner != zk->session_id() || str(json::parse(n.value().data, nullptr, false), "token") != token)
            return;
          auto r = zk->remove(paths.route(user), n.value().stat.version);
          if (r || r.error() == zkr::zk_errc::no_node) return;
        } else if (n.error() == zkr::zk_errc::no_node) {
          return;
        }
        if (stopping || std::chrono::steady_clock::now() + pause > deadline) {
          std::fprintf(stderr, "route of %s: not removed (ZooKeeper unreachable); it goes with the session\n", user.c_str());
          return;
        }
        std::this_thread::sleep_for(pause);
        pause = std::min<std::chrono::milliseconds>(pause * 2, 1s);
      }
    });
  }

  /// Consumes the pending login the route wrote and creates the route node,
  /// in one transaction: a token works once, and a second client of the
  /// same user finds the route taken.
  im::outcome<im::none> login(const std::string& user, const std::string& token) {
    using R = im::outcome<im::none>;
    auto n = zk->get(paths.login(user));
    if (!n) {
      if (n.error() == zkr::zk_errc::no_node)
        return R::failure("no_pending_login", "no pending login for " + user + ": log in through a route first");
      return R::failure("unavailable", "ZooKeeper: " + n.error().message());
    }
    auto j = json::parse(n.value().data, nullptr, false);
    if (str(j, "token").empty() || str(j, "server").empty())
      return R::failure("bad_token", "the pending login of " + user + " is unreadable");
    if (str(j, "token") != token) return R::failure("bad_token", "the token does not match the login of " + user);
    if (str(j, "server") != id) return R::failure("wrong_server", "this login is for server " + str(j, "server") + ", not " + id);
    const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch());
    if (!j.contains("at") || !j["at"].is_number_integer() ||
        now_ms - std::chrono::milliseconds(j["at"].get<std::int64_t>()) > pending_login_ttl)
      return R::failure("bad_token", "the login of " + user + " is over " + std::to_string(pending_login_ttl.count()) +
                                         " s old: log in through a route again");
    const json route{{"userId", user},      {"name", str(j, "name")}, {"server", id}, {"host", advertise},
                     {"socket", socket_port}, {"http", http_port},     {"token", token}};
    zkr::multi_op tx;
    tx.remove(paths.login(user), n.value().stat.version);
    tx.create(paths.route(user), route.dump(), {zkr::create_mode::ephemeral});
    auto r = zk->multi(tx);
    if (r) return im::none{};
    if (r.error() == zkr::zk_errc::node_exists)
      return R::failure("already_logged_in", user + " is already logged in (one running client per user)");
    if (r.error() == zkr::zk_errc::bad_version || r.error() == zkr::zk_errc::no_node)
      return R::failure("bad_token", "the login of " + user + " changed meanwhile (another login?)");
    // A multi is not retried, and a connection loss leaves it unknown whether
    // it was applied: look. Ours (this session, this token): it was.
    if (auto back = zk->get(paths.route(user));
        back && back.value().stat.ephemeral_owner == zk->session_id() &&
        str(json::parse(back.value().data, nullptr, false), "token") == token)
      return im::none{};
    return R::failure("unavailable", "ZooKeeper: " + r.error().message());
  }
};

connection::connection(server& s, tcp::socket sock) : s_(s), sock_(std::move(sock)), idle_(s.io) {
  boost::system::error_code ec;
  auto ep = sock_.remote_endpoint(ec);
  peer_ = ec ? std::string("?") : ep.address().to_string() + ":" + std::to_string(ep.port());
  sock_.set_option(tcp::no_delay(true), ec);
}

void connection::start() {
  last_rx_ = started_ = std::chrono::steady_clock::now();
  arm_idle();
  read();
}

void connection::arm_idle() {
  idle_.expires_after(s_.heartbeat);
  idle_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (ec || self->closed_) return;
    const auto now = std::chrono::steady_clock::now();
    if (now - self->last_rx_ > 3 * self->s_.heartbeat) {
      self->close("silent for 3 heartbeat periods");
      return;
    }
    // A connection that never logs in holds a descriptor for nothing.
    if (self->user_.empty() && !self->logging_in_ && now - self->started_ > 2 * self->s_.heartbeat) {
      self->fail("login_timeout", "no LOGIN within 2 heartbeat periods");
      return;
    }
    self->arm_idle();
  });
}

void connection::read() {
  sock_.async_read_some(asio::buffer(buf_), [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
    if (self->closed_ || self->closing_) return;
    if (ec) {
      self->close(ec == asio::error::eof ? "the client closed" : ec.message());
      return;
    }
    self->last_rx_ = std::chrono::steady_clock::now();
    self->dec_.feed({self->buf_.data(), n});
    for (;;) {
      auto step = self->dec_.next();
      if (std::holds_alternative<im::frame_decoder::need_more>(step)) break;
      if (auto* bad = std::get_if<im::frame_decoder::bad>(&step)) {
        self->fail("bad_frame", bad->why);
        return;
      }
      self->on_frame(std::move(std::get<im::Frame>(step)));
      if (self->closing_ || self->closed_) return;
    }
    self->read();
  });
}

void connection::on_frame(im::Frame f) {
  switch (f.type()) {
  case im::Frame::PING: {
    im::Frame pong;
    pong.set_type(im::Frame::PONG);
    pong.set_request_id(f.request_id());
    send(pong);
    return;
  }
  case im::Frame::LOGIN:
    if (!user_.empty() || logging_in_) return fail("bad_frame", "a second LOGIN on one connection");
    return on_login(f);
  case im::Frame::ACK:
    if (user_.empty()) return fail("bad_frame", "an ACK before LOGIN");
    ++s_.acked;
    return;
  default:
    return fail("bad_frame", std::string("a ") + im::Frame::Type_Name(f.type()) + " frame from a client" +
                                 (user_.empty() ? " before LOGIN" : ""));
  }
}

void connection::on_login(const im::Frame& f) {
  if (!im::valid_user_id(f.user_id())) return fail("bad_frame", "LOGIN without a valid user_id");
  if (f.token().empty() || f.token().size() > 64) return fail("bad_frame", "LOGIN without a valid token");
  logging_in_ = true;
  const std::uint64_t gen = s_.generation.load();
  asio::post(s_.zk_pool, [self = shared_from_this(), user = f.user_id(), token = f.token(), rid = f.request_id(), gen] {
    auto r = self->s_.login(user, token);
    // The session was lost meanwhile: the node may have gone with it (or
    // been made by the new session after the kick): start over.
    if (r && self->s_.generation.load() != gen) {
      self->s_.remove_route(user, token);
      r = im::outcome<im::none>::failure("session_lost", "the server lost its ZooKeeper session during the login: log in again");
    } else if (!r && r.code() == "unavailable") {
      self->s_.remove_route(user, token); // in case the transaction was applied after all
    }
    asio::post(self->s_.io, [self, user, token, rid, gen, r = std::move(r)] {
      self->logging_in_ = false;
      if (r && self->s_.generation.load() != gen) {
        self->s_.remove_route(user, token);
        self->fail("session_lost", "the server lost its ZooKeeper session during the login: log in again", rid);
        return;
      }
      if (!r) {
        self->fail(r.code(), r.message(), rid);
        return;
      }
      if (self->closed_ || self->closing_) { // the client left while we logged it in
        self->s_.remove_route(user, token);
        return;
      }
      self->user_ = user;
      self->token_ = token;
      self->generation_ = gen;
      self->s_.users[user] = self;
      std::printf("login %s from %s\n", user.c_str(), self->peer_.c_str());
      std::fflush(stdout);
      im::Frame ok;
      ok.set_type(im::Frame::LOGIN_OK);
      ok.set_request_id(rid);
      ok.set_user_id(user);
      ok.set_server(self->s_.id);
      self->send(ok);
    });
  });
}

void connection::send(const im::Frame& f) {
  if (closed_) return;
  auto bytes = im::encode_frame(f);
  if (out_bytes_ + bytes.size() > max_queued_bytes) {
    close("over " + std::to_string(max_queued_bytes) + " bytes queued: the client is not reading");
    return;
  }
  out_bytes_ += bytes.size();
  out_.push_back(std::move(bytes));
  if (!writing_) write_next();
}

void connection::write_next() {
  if (out_.empty()) {
    writing_ = false;
    if (closing_) close("after an error frame");
    return;
  }
  writing_ = true;
  asio::async_write(sock_, asio::buffer(out_.front()), [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
    if (self->closed_) return;
    if (ec) {
      self->close("write: " + ec.message());
      return;
    }
    self->out_bytes_ -= self->out_.front().size();
    self->out_.pop_front();
    self->write_next();
  });
}

void connection::fail(const std::string& code, const std::string& message, std::uint64_t rid) {
  if (closed_ || closing_) return;
  std::printf("closing %s%s: %s: %s\n", peer_.c_str(), user_.empty() ? "" : (" (" + user_ + ")").c_str(), code.c_str(),
              message.c_str());
  std::fflush(stdout);
  send(im::error_frame(code, message, rid));
  closing_ = true;
  if (!writing_) close("after an error frame");
}

void connection::close(const std::string& why) {
  if (closed_) return;
  closed_ = true;
  boost::system::error_code ec;
  idle_.cancel();
  sock_.shutdown(tcp::socket::shutdown_both, ec);
  sock_.close(ec);
  auto self = shared_from_this();
  s_.conns.erase(self);
  if (!user_.empty()) {
    if (auto it = s_.users.find(user_); it != s_.users.end() && it->second == self) s_.users.erase(it);
    std::printf("logout %s: %s\n", user_.c_str(), why.c_str());
    std::fflush(stdout);
    if (!s_.stopping) s_.remove_route(user_, token_);
  }
}

bool valid_push(const json& j, std::string& why) {
  if (!j.is_object()) return why = "the body is not a JSON object", false;
  if (!j.contains("to") || !j["to"].is_array() || j["to"].size() > 100000) return why = "\"to\" is not an array of user ids", false;
  for (auto& u : j["to"])
    if (!u.is_string() || !im::valid_user_id(u.get<std::string>())) return why = "\"to\" holds something not a user id", false;
  for (const char* k : {"msgId", "from", "fromName", "text"})
    if (!j.contains(k) || !j[k].is_string()) return why = std::string("\"") + k + "\" is missing or not a string", false;
  if (j.contains("group") && !j["group"].is_boolean()) return why = "\"group\" is not a boolean", false;
  if (auto p = im::text_problem(j["text"].get<std::string>())) return why = *p, false;
  if (j["msgId"].get<std::string>().empty() || j["msgId"].get<std::string>().size() > 128) return why = "\"msgId\" is empty or too long", false;
  return true;
}

void reply(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(), "application/json");
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"im-server: holds client connections and delivers messages (examples/im/README.md)"};
  std::string zk_connect, root = "/im", id, advertise = "127.0.0.1";
  int port = 0, http_port = 0, heartbeat_ms = 10000, session_ms = 4000, max_connections = 10000;
  app.add_option("--zk", zk_connect, "ZooKeeper connect string")->required();
  app.add_option("--zk-root", root, "the system's root znode");
  app.add_option("--id", id, "this server's instance id (unique)")->required();
  app.add_option("--port", port, "client socket port on 127.0.0.1 (0: any free)")->check(CLI::Range(0, 65535));
  app.add_option("--http-port", http_port, "internal HTTP port on 127.0.0.1 (0: any free)")->check(CLI::Range(0, 65535));
  app.add_option("--advertise", advertise, "the address clients and routes are told to use");
  app.add_option("--heartbeat-ms", heartbeat_ms, "a client silent for 3 periods is dropped")->check(CLI::Range(50, 3600000));
  app.add_option("--session-timeout-ms", session_ms, "ZooKeeper session timeout")->check(CLI::Range(1000, 600000));
  app.add_option("--max-connections", max_connections, "client connections beyond this are refused")->check(CLI::Range(1, 1000000));
  CLI11_PARSE(app, argc, argv);
  if (auto v = zkr::validate_name(id, "--id"); !v) {
    std::fprintf(stderr, "im-server: %s\n", v.error().message().c_str());
    return 2;
  }
  if (in_addr a{}; ::inet_pton(AF_INET, advertise.c_str(), &a) != 1) {
    std::fprintf(stderr, "im-server: --advertise must be an IPv4 address (clients and routes connect to it), got '%s'\n",
                 advertise.c_str());
    return 2;
  }
  im::quiet_protobuf();
  std::signal(SIGPIPE, SIG_IGN); // httplib writes to sockets a route may have closed

  // Before the session: its listener posts to s.io, which must outlive it.
  server s;
  auto zs = im::connect_zk(zk_connect, std::chrono::milliseconds(session_ms));
  if (!zs) {
    std::fprintf(stderr, "im-server: cannot connect to ZooKeeper at %s: %s\n", zk_connect.c_str(), zs.error().message().c_str());
    return 1;
  }
  zkr::session& zk = zs.value();

  s.zk = &zk;
  s.paths = im::zk_paths{root};
  s.id = id;
  s.advertise = advertise;
  s.heartbeat = std::chrono::milliseconds(heartbeat_ms);
  s.session_timeout = std::chrono::milliseconds(session_ms);
  s.max_connections = static_cast<std::size_t>(max_connections);
  for (const auto& p : {s.paths.routes(), s.paths.logins()})
    if (auto r = zk.ensure_path(p); !r) {
      std::fprintf(stderr, "im-server: %s: %s\n", p.c_str(), r.error().message().c_str());
      return 1;
    }

  // A lost session took every route node with it: the clients must log in
  // again (they do so by themselves), so end their connections.
  zk.add_listener([&s](const zkr::session_event& e) {
    std::printf("session %s\n", zkr::to_string(e.state));
    std::fflush(stdout);
    if (e.state != zkr::session_state::lost) return;
    const auto gen = ++s.generation;
    asio::post(s.io, [&s, gen] {
      auto users = s.users;
      for (auto& [u, c] : users)
        if (c->generation() < gen) c->fail("session_lost", "the server lost its ZooKeeper session: log in again");
    });
  });

  boost::system::error_code ec;
  const tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port));
  s.acceptor.open(ep.protocol(), ec);
  if (!ec) s.acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) s.acceptor.bind(ep, ec);
  if (!ec) s.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    std::fprintf(stderr, "im-server: cannot listen on 127.0.0.1:%d: %s\n", port, ec.message().c_str());
    return 1;
  }
  s.socket_port = s.acceptor.local_endpoint().port();

  httplib::Server http;
  examples::guard_http(http, im::max_body_bytes,
                       [](httplib::Response& res, int status, const std::string& code, const std::string& message) {
                         reply(res, status, {{"code", code}, {"error", message}});
                       });
  http.Post("/push", [&s](const httplib::Request& req, httplib::Response& res) {
    auto j = json::parse(req.body, nullptr, false);
    std::string why;
    if (j.is_discarded() || !valid_push(j, why))
      return reply(res, 400, {{"error", j.is_discarded() ? "the body is not valid JSON" : why}});
    im::Frame f;
    f.set_type(im::Frame::TEXT);
    f.set_msg_id(j["msgId"].get<std::string>());
    f.set_from(j["from"].get<std::string>());
    f.set_from_name(j["fromName"].get<std::string>());
    f.set_text(j["text"].get<std::string>());
    f.set_group(j.value("group", false));
    auto to = j["to"].get<std::vector<std::string>>();
    auto out = s.on_io([&s, f, to] {
      json delivered = json::array(), absent = json::array();
      for (auto& u : to) {
        auto it = s.users.find(u);
        if (it == s.users.end()) {
          absent.push_back(u);
          continue;
        }
        it->second->send(f);
        ++s.sent;
        delivered.push_back(u);
      }
      return json{{"delivered", delivered}, {"absent", absent}};
    });
    if (!out) return reply(res, 503, {{"error", "the server is too busy to deliver"}});
    reply(res, 200, *out);
  });
  http.Post("/logout", [&s](const httplib::Request& req, httplib::Response& res) {
    auto j = json::parse(req.body, nullptr, false);
    if (!j.is_object() || !j.value("userId", json()).is_string())
      return reply(res, 400, {{"error", "expected {\"userId\": ...}"}});
    auto u = j["userId"].get<std::string>();
    auto out = s.on_io([&s, u] {
      auto it = s.users.find(u);
      if (it == s.users.end()) return false;
      it->second->fail("logged_out", "logged out through a route");
      return true;
    });
    if (!out) return reply(res, 503, {{"error", "the server is too busy"}});
    reply(res, 200, {{"closed", *out}});
  });
  http.Get("/health", [&s, &zk](const httplib::Request&, httplib::Response& res) {
    auto counts = s.on_io([&s] { return std::make_pair(s.conns.size(), s.users.size()); });
    if (!counts) return reply(res, 503, {{"error", "the server is too busy"}});
    reply(res, 200,
          {{"id", s.id}, {"connections", counts->first}, {"users", counts->second}, {"sent", s.sent.load()},
           {"acked", s.acked.load()}, {"session", zkr::to_string(zk.state())}});
  });
  http.Get("/users", [&s](const httplib::Request&, httplib::Response& res) {
    auto users = s.on_io([&s] {
      json a = json::array();
      for (auto& [u, c] : s.users) a.push_back(u);
      return a;
    });
    if (!users) return reply(res, 503, {{"error", "the server is too busy"}});
    reply(res, 200, {{"users", *users}});
  });
  s.http_port = http_port == 0 ? http.bind_to_any_port("127.0.0.1") : (http.bind_to_port("127.0.0.1", http_port) ? http_port : -1);
  if (s.http_port <= 0) {
    std::fprintf(stderr, "im-server: cannot listen for HTTP on 127.0.0.1:%d\n", http_port);
    return 1;
  }
  std::thread http_thread([&http] { http.listen_after_bind(); });
  // stop() does nothing before listen has begun: wait for it (bounded).
  for (int i = 0; i < 500 && !http.is_running(); ++i) std::this_thread::sleep_for(10ms);

  zkr::registry_options ro;
  ro.base_path = s.paths.services();
  zkr::service_instance me;
  me.service = im::service_name;
  me.id = id;
  me.address = advertise;
  me.ports = {{"socket", static_cast<std::uint16_t>(s.socket_port)}, {"http", static_cast<std::uint16_t>(s.http_port)}};
  zkr::service_registration reg(zk, me, ro);
  if (auto r = reg.start(); !r) {
    std::fprintf(stderr, "im-server: cannot register: %s\n", r.error().message().c_str());
    http.stop();
    http_thread.join();
    return 1;
  }

  asio::signal_set signals(s.io, SIGINT, SIGTERM);
  signals.async_wait([&](boost::system::error_code, int) {
    s.stopping = true;
    s.acceptor.close();
    auto conns = s.conns;
    for (auto& c : conns) c->close("the server is stopping");
    s.io.stop();
  });
  s.accept();
  std::printf("listening 127.0.0.1:%d http 127.0.0.1:%d\n", s.socket_port, s.http_port);
  std::fflush(stdout);
  s.io.run();

  // HTTP handlers still in flight wait on the Asio thread: keep running it
  // (bounded) until httplib has returned.
  (void)reg.stop();
  http.stop();
  auto http_done = std::async(std::launch::async, [&http_thread] { http_thread.join(); });
  while (http_done.wait_for(0s) != std::future_status::ready) {
    s.io.restart();
    s.io.run_for(20ms);
  }
  s.zk_pool.join();
  std::printf("stopped\n");
  return 0;
}
