// im::client: an IM user's connection, for the console client and for
// programs (the tests): logs in through a route, holds the connection to the
// chosen im-server, heartbeats, acknowledges and de-duplicates messages, and
// when the connection dies logs in again through any route that answers.
// See examples/im/README.md.
#pragma once

#include "protocol.hpp"

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <unordered_set>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace im {

struct client_options {
  std::vector<std::string> routes; ///< "127.0.0.1:PORT" of each route, tried in turn
  std::string user_id;
  std::chrono::milliseconds heartbeat{10000}; ///< PING after this long without sending
  int max_login_tries = 40;                   ///< per reconnection
  std::chrono::milliseconds max_backoff{2000};
};

struct message {
  std::string msg_id, from, from_name, text;
  bool group = false;
};

namespace detail {

/// A route's reply: data on "ok", else the route's code and message.
inline outcome<nlohmann::json> route_call(const std::vector<std::string>& routes, std::size_t& preferred,
                                          const std::string& method, const std::string& path,
                                          const nlohmann::json& body = {}) {
  if (routes.empty()) return outcome<nlohmann::json>::failure("no_route", "no route given");
  std::string tried;
  for (std::size_t i = 0; i < routes.size(); ++i) {
    const std::size_t k = (preferred + i) % routes.size();
    const auto& r = routes[k];
    const auto colon = r.rfind(':');
    if (colon == std::string::npos) return outcome<nlohmann::json>::failure("bad_route", "route " + r + " is not HOST:PORT");
    httplib::Client c(r.substr(0, colon), std::atoi(r.c_str() + colon + 1));
    c.set_connection_timeout(std::chrono::seconds(1));
    c.set_read_timeout(std::chrono::seconds(5));
    auto res = method == "GET" ? c.Get(path.c_str()) : c.Post(path.c_str(), body.dump(), "application/json");
    if (!res) { // this route is down: the next one
      tried += (tried.empty() ? "" : ", ") + r + " (" + httplib::to_string(res.error()) + ")";
      continue;
    }
    preferred = k;
    auto j = nlohmann::json::parse(res->body, nullptr, false);
    if (str(j, "code").empty())
      return outcome<nlohmann::json>::failure("bad_reply", "route " + r + " answered " + std::to_string(res->status) +
                                                               " without a JSON code");
    if (str(j, "code") != "ok") return outcome<nlohmann::json>::failure(str(j, "code"), str(j, "message"));
    return obj(j, "data");
  }
  return outcome<nlohmann::json>::failure("no_route", "no route answered: " + tried);
}

/// A connected TCP socket to host:port, or -1 (why says why).
inline int connect_tcp(const std::string& host, int port, std::chrono::milliseconds bound, std::string& why) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  if (::inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host.c_str(), &a.sin_addr) != 1)
    return why = "not an IPv4 address: " + host, -1;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return why = std::strerror(errno), -1;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    pollfd p{fd, POLLOUT, 0};
    int err = errno;
    socklen_t len = sizeof err;
    if (err != EINPROGRESS || ::poll(&p, 1, static_cast<int>(bound.count())) != 1 ||
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
      why = "connect to " + host + ":" + std::to_string(port) + ": " + (err ? std::strerror(err) : "timed out");
      ::close(fd);
      return -1;
    }
  }
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

/// Writes all of `bytes` (the socket is non-blocking: waits, bounded).
inline bool send_all(int fd, const std::string& bytes, std::chrono::milliseconds bound = std::chrono::seconds(5)) {
  std::size_t sent = 0;
  const auto deadline = std::chrono::steady_clock::now() + bound;
  while (sent < bytes.size()) {
    const auto n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      pollfd p{fd, POLLOUT, 0};
      if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) != 1) return false;
      continue;
    }
    return false;
  }
  return true;
}

} // namespace detail

/// Registers an account through the routes: (userId, name).
inline outcome<std::pair<std::string, std::string>> register_user(const std::vector<std::string>& routes,
                                                                  const std::string& name) {
  std::size_t preferred = 0;
  auto r = detail::route_call(routes, preferred, "POST", "/register", {{"name", name}});
  if (!r) return outcome<std::pair<std::string, std::string>>::failure(r.code(), r.message());
  if (!valid_user_id(str(r.value(), "userId")))
    return outcome<std::pair<std::string, std::string>>::failure("bad_reply", "the route's reply holds no user id");
  return std::make_pair(str(r.value(), "userId"), str(r.value(), "name"));
}

class client {
public:
  explicit client(client_options o) : o_(std::move(o)) {
    if (::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) wake_[0] = wake_[1] = -1;
  }
  client(const client&) = delete;
  client& operator=(const client&) = delete;
  ~client() {
    stop();
    for (int fd : wake_)
      if (fd >= 0) ::close(fd);
  }

  /// Called on the client's thread for each new message (never twice for one id).
  std::function<void(const message&)> on_message;
  /// "logged in as ...", "reconnecting: ...", "error: ...": on the client's
  /// thread, except the first "logged in" (on the thread calling start()).
  std::function<void(const std::string&)> on_status;

  /// Logs in through a route and connects to the chosen server (one try: an
  /// "already_logged_in" here is the caller's to handle).
  outcome<none> start() {
    if (thread_.joinable()) return outcome<none>::failure("already_started", "start() was called before");
    auto r = login_and_connect();
    if (!r) return r;
    thread_ = std::thread([this] { run(); });
    return none{};
  }

  /// A group message to every online user (this one too); its message id.
  outcome<std::string> send_group(std::string text) {
    auto r = call("POST", "/group", {{"userId", o_.user_id}, {"token", token()}, {"text", std::move(text)}});
    if (!r) return outcome<std::string>::failure(r.code(), r.message());
    return str(r.value(), "msgId");
  }

  outcome<std::string> send_private(std::string to, std::string text) {
    auto r = call("POST", "/private", {{"userId", o_.user_id}, {"token", token()}, {"to", std::move(to)}, {"text", std::move(text)}});
    if (!r) return outcome<std::string>::failure(r.code(), r.message());
    return str(r.value(), "msgId");
  }

  /// (userId, name) of every online user.
  outcome<std::vector<std::pair<std::string, std::string>>> online() {
    using R = outcome<std::vector<std::pair<std::string, std::string>>>;
    auto r = call("GET", "/online");
    if (!r) return R::failure(r.code(), r.message());
    std::vector<std::pair<std::string, std::string>> out;
    if (auto it = r.value().find("users"); it != r.value().end() && it->is_array())
      for (auto& u : *it) out.emplace_back(str(u, "userId"), str(u, "name"));
    return out;
  }

  /// Logs out (best effort) and closes; the destructor does it too.
  void stop() {
    if (stopping_.exchange(true)) return;
    if (!token().empty()) (void)call("POST", "/logout", {{"userId", o_.user_id}, {"token", token()}});
    if (wake_[1] >= 0) (void)!::write(wake_[1], "x", 1);
    if (thread_.joinable()) thread_.join();
    std::lock_guard<std::mutex> l(m_);
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  std::string server() const {
    std::lock_guard<std::mutex> l(m_);
    return fd_ >= 0 ? server_ : std::string();
  }
  std::string name() const {
    std::lock_guard<std::mutex> l(m_);
    return name_;
  }
  int logins() const { return logins_.load(); }
  /// Messages that arrived again (same id) and were dropped.
  int duplicates() const { return duplicates_.load(); }
  /// False once reconnecting gave up (max_login_tries) or stop() was called.
  bool alive() const { return !dead_.load() && !stopping_.load(); }

private:
  std::string token() const {
    std::lock_guard<std::mutex> l(m_);
    return token_;
  }
  outcome<nlohmann::json> call(const std::string& method, const std::string& path, const nlohmann::json& body = {}) {
    std::lock_guard<std::mutex> l(route_m_);
    return detail::route_call(o_.routes, preferred_route_, method, path, body);
  }
  void status(const std::string& s) {
    if (on_status) on_status(s);
  }

  /// /login through a route, connect to the server it chose, LOGIN, LOGIN_OK.
  outcome<none> login_and_connect() {
    auto r = call("POST", "/login", {{"userId", o_.user_id}});
    if (!r) return outcome<none>::failure(r.code(), r.message());
    const auto& d = r.value();
    const auto srv = obj(d, "server");
    const std::string host = str(srv, "host"), server_id = str(srv, "id"), tok = str(d, "token");
    const auto port = num(srv, "socket");
    if (tok.empty() || port <= 0 || port > 65535)
      return outcome<none>::failure("bad_reply", "the route's login reply holds no token or server address");
    std::string why;
    const int fd = detail::connect_tcp(host, static_cast<int>(port), std::chrono::seconds(2), why);
    if (fd < 0) return outcome<none>::failure("connect_failed", why);
    Frame login;
    login.set_type(Frame::LOGIN);
    login.set_request_id(++request_id_);
    login.set_user_id(o_.user_id);
    login.set_token(tok);
    if (!detail::send_all(fd, encode_frame(login))) {
      ::close(fd);
      return outcome<none>::failure("connect_failed", "could not send LOGIN to " + server_id);
    }
    // The server's answer, bounded; a TEXT cannot come before LOGIN_OK.
    frame_decoder dec;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    for (;;) {
      auto step = dec.next();
      if (auto* f = std::get_if<Frame>(&step)) {
        if (f->type() == Frame::LOGIN_OK) break;
        ::close(fd);
        if (f->type() == Frame::ERROR) return outcome<none>::failure(f->code(), f->message());
        return outcome<none>::failure("bad_reply", "the server answered LOGIN with a " + Frame::Type_Name(f->type()));
      }
      if (auto* b = std::get_if<frame_decoder::bad>(&step)) {
        ::close(fd);
        return outcome<none>::failure("bad_reply", "the server's answer to LOGIN: " + b->why);
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      pollfd p{fd, POLLIN, 0};
      char buf[4096];
      const auto n = left.count() > 0 && ::poll(&p, 1, static_cast<int>(left.count())) == 1 ? ::recv(fd, buf, sizeof buf, 0) : -1;
      if (n <= 0) {
        ::close(fd);
        return outcome<none>::failure("connect_failed", "no answer to LOGIN from " + server_id);
      }
      dec.feed({buf, static_cast<std::size_t>(n)});
    }
    {
      std::lock_guard<std::mutex> l(m_);
      if (fd_ >= 0) ::close(fd_);
      fd_ = fd;
      dec_ = std::move(dec); // bytes after LOGIN_OK are the first messages
      token_ = tok;
      server_ = server_id;
      name_ = str(d, "name");
    }
    ++logins_;
    last_rx_ = last_tx_ = std::chrono::steady_clock::now();
    status("logged in as " + o_.user_id + " (" + name_ + ") on " + server_id);
    return none{};
  }

  /// After the connection died: log in again, with jittered exponential back-off.
  bool reconnect(const std::string& why) {
    {
      std::lock_guard<std::mutex> l(m_);
      if (fd_ >= 0) ::close(fd_);
      fd_ = -1;
      token_.clear();
    }
    status("reconnecting: " + why);
    std::mt19937 rng{std::random_device{}()};
    auto backoff = std::chrono::milliseconds(100);
    for (int attempt = 1; attempt <= o_.max_login_tries && !stopping_; ++attempt) {
      auto r = login_and_connect();
      if (r) return true;
      // already_logged_in: our old route is still there until the dead
      // server's session expires; any other failure may pass as well.
      std::uniform_int_distribution<long> jitter(backoff.count() / 2, backoff.count());
      if (wait_wake(std::chrono::milliseconds(jitter(rng)))) return false;
      backoff = std::min(o_.max_backoff, backoff * 2);
      if (attempt == o_.max_login_tries) status("error: " + r.error() + " (gave up after " + std::to_string(attempt) + " tries)");
    }
    return false;
  }

  /// Sleeps up to d; true when woken by stop().
  bool wait_wake(std::chrono::milliseconds d) {
    pollfd p{wake_[0], POLLIN, 0};
    return ::poll(&p, 1, static_cast<int>(d.count())) == 1;
  }

  void send_frame(const Frame& f) {
    int fd;
    {
      std::lock_guard<std::mutex> l(m_);
      fd = fd_;
    }
    if (fd >= 0 && detail::send_all(fd, encode_frame(f))) last_tx_ = std::chrono::steady_clock::now();
  }

  void deliver(const Frame& f) {
    Frame ack;
    ack.set_type(Frame::ACK);
    ack.set_msg_id(f.msg_id());
    send_frame(ack);
    if (!seen_.insert(f.msg_id()).second) { // a duplicate (a route's retry)
      ++duplicates_;
      return;
    }
    seen_order_.push_back(f.msg_id());
    if (seen_order_.size() > 10000) {
      seen_.erase(seen_order_.front());
      seen_order_.pop_front();
    }
    if (on_message) on_message(message{f.msg_id(), f.from(), f.from_name(), f.text(), f.group()});
  }

  /// Handles the frames decoded so far; false (and why) when the stream broke.
  bool drain(std::string& why) {
    for (;;) {
      auto step = dec_.next();
      if (std::holds_alternative<frame_decoder::need_more>(step)) return true;
      if (auto* b = std::get_if<frame_decoder::bad>(&step)) {
        why = "a bad frame from the server: " + b->why;
        return false;
      }
      auto& f = std::get<Frame>(step);
      if (f.type() == Frame::TEXT) deliver(f);
      // After our own logout the server's goodbye is no news.
      else if (f.type() == Frame::ERROR && !stopping_) status("error: " + f.code() + ": " + f.message());
    }
  }

  void run() {
    char buf[16384];
    while (!stopping_) {
      // Frames that came with LOGIN_OK (a message pushed at once) are
      // handled now, not after the next read.
      if (std::string why; !drain(why)) {
        if (!reconnect(why)) break;
        continue;
      }
      int fd;
      {
        std::lock_guard<std::mutex> l(m_);
        fd = fd_;
      }
      const auto now = std::chrono::steady_clock::now();
      if (now - last_rx_ > 3 * o_.heartbeat) {
        if (!reconnect("the server was silent for 3 heartbeat periods")) break;
        continue;
      }
      if (now - last_tx_ >= o_.heartbeat) {
        Frame ping;
        ping.set_type(Frame::PING);
        ping.set_request_id(++request_id_);
        send_frame(ping);
      }
      const auto until_ping = o_.heartbeat - std::chrono::duration_cast<std::chrono::milliseconds>(
                                                 std::chrono::steady_clock::now() - last_tx_);
      pollfd p[2] = {{fd, POLLIN, 0}, {wake_[0], POLLIN, 0}};
      const int n = ::poll(p, 2, static_cast<int>(std::max<long>(1, until_ping.count())));
      if (n < 0 && errno != EINTR) break;
      if (p[1].revents) break; // stop()
      if (n <= 0 || !(p[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const auto got = ::recv(fd, buf, sizeof buf, 0);
      if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      std::string why = got == 0 ? "the server closed the connection" : "recv: " + std::string(std::strerror(errno));
      if (got > 0) {
        last_rx_ = std::chrono::steady_clock::now();
        dec_.feed({buf, static_cast<std::size_t>(got)});
        if (drain(why)) continue;
      }
      if (stopping_) break;
      if (!reconnect(why)) break;
    }
    if (!stopping_) dead_ = true;
  }

  client_options o_;
  mutable std::mutex m_; ///< fd_, token_, server_, name_
  std::mutex route_m_;   ///< preferred_route_
  int fd_ = -1;
  std::string token_, server_, name_;
  std::size_t preferred_route_ = 0;
  frame_decoder dec_;
  int wake_[2] = {-1, -1};
  std::thread thread_;
  std::atomic<bool> stopping_{false}, dead_{false};
  std::atomic<int> logins_{0};
  std::atomic<int> duplicates_{0};
  std::atomic<std::uint64_t> request_id_{0};
  std::chrono::steady_clock::time_point last_rx_{}, last_tx_{};
  std::unordered_set<std::string> seen_; ///< message ids delivered (client thread only)
  std::deque<std::string> seen_order_;
};

} // namespace im
