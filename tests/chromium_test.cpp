// The headless-Chromium helper (chromium.hpp) against a page served by the
// test itself: live DOM assertions without reload, exceptions, large
// WebSocket messages, screenshots, and a browser that leaves nothing behind.
// The tests that need Chromium skip (with a MESSAGE) when it is not
// installed; the WebSocket framing test uses a scripted server instead.
#include "chromium.hpp"

#include <doctest/doctest.h>

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace fs = std::filesystem;
namespace cr = zkt::chromium;
using json = nlohmann::json;
using namespace std::chrono_literals;

/// Serves `html` at / (404 elsewhere) on 127.0.0.1:ephemeral, one
/// Connection: close answer per connection, each on its own thread so an
/// idle preconnected socket cannot hold up the page.
class tiny_server {
public:
  explicit tiny_server(std::string html) : html_(std::move(html)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(fd_, 16) == 0);
    REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    port_ = ntohs(a.sin_port);
    loop_ = std::thread([this] { run(); });
  }
  tiny_server(const tiny_server&) = delete;
  tiny_server& operator=(const tiny_server&) = delete;
  ~tiny_server() {
    stop_ = true;
    loop_.join();
    for (auto& t : conns_) t.join();
    ::close(fd_);
  }
  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/"; }

private:
  void run() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue; // 50 ms: how soon stop_ is noticed
      const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c >= 0) conns_.emplace_back([this, c] { answer(c); });
    }
  }
  void answer(int c) {
    timeval tv{2, 0}; // bounds the answer's write
    ::setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    // The request's read: bounded, and cut short by stop_ (a preconnected
    // socket may never send one).
    const auto deadline = std::chrono::steady_clock::now() + 2s;
    std::string req;
    char buf[4096];
    while (!stop_ && req.find("\r\n\r\n") == std::string::npos && req.size() < 65536 &&
           std::chrono::steady_clock::now() < deadline) {
      pollfd p{c, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const auto n = ::recv(c, buf, sizeof buf, 0);
      if (n <= 0) break;
      req.append(buf, static_cast<std::size_t>(n));
    }
    if (req.find("\r\n\r\n") != std::string::npos) {
      const bool root = req.rfind("GET / ", 0) == 0;
      const std::string body = root ? html_ : "not found";
      const std::string out = std::string(root ? "HTTP/1.1 200 OK" : "HTTP/1.1 404 Not Found") +
                              "\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: " +
                              std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
      ::send(c, out.data(), out.size(), MSG_NOSIGNAL);
    }
    ::close(c);
  }

  std::string html_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread loop_;
  std::vector<std::thread> conns_; // touched by loop_ only until it is joined
};

/// A fresh temp dir, removed (recursively) on scope exit.
struct temp_dir {
  fs::path path;
  temp_dir() {
    std::string t = (fs::temp_directory_path() / "zkt-chromium-test-XXXXXX").string();
    REQUIRE(::mkdtemp(t.data()) != nullptr);
    path = t;
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

bool skip() {
  if (cr::available()) return false;
  MESSAGE("skipped: ", cr::binary, " is not installed");
  return true;
}

cr::browser launch() {
  std::string why;
  auto b = cr::browser::launch(&why);
  REQUIRE_MESSAGE(b.has_value(), why);
  return std::move(*b);
}

/// One browser for the tests that are not about its lifetime: a launch and
/// a stop cost a few seconds (the stop waits for init to reap the helpers).
/// Stopped at exit.
cr::browser& shared_browser() {
  static std::optional<cr::browser> b;
  if (!b) b = launch();
  return *b;
}

constexpr const char* late_page = R"(<!doctype html>
<html><head><meta charset="utf-8"><title>zkt chromium test</title></head>
<body><h1>Hello from the test</h1>
<script>
  // The element the test waits for, added well after the load event.
  window.addEventListener('load', () => setTimeout(() => {
    const p = document.createElement('p');
    p.id = 'late';
    p.textContent = 'late paragraph';
    document.body.appendChild(p);
  }, 300));
</script></body></html>)";

} // namespace

TEST_CASE("chromium: a served page, its live DOM and a screenshot") {
  if (skip()) return;
  tiny_server srv(late_page);
  auto& b = shared_browser();
  std::string why;
  auto p = b.open(srv.url(), &why);
  REQUIRE_MESSAGE(p.has_value(), why, "\n", b.log_tail());

  // A mark on this document: still there after the wait proves no reload.
  REQUIRE(p->evaluate("window.__mark = 42", &why) == json(42));
  std::string last;
  CHECK_MESSAGE(p->wait_for("document.getElementById('late') !== null", 10s, &last), "last value: ", last);
  CHECK(p->evaluate("window.__mark", &why) == json(42));
  CHECK(p->evaluate("document.getElementById('late').textContent", &why) == json("late paragraph"));
  CHECK(p->evaluate("document.title", &why) == json("zkt chromium test"));

  // Values: undefined is null, promises are awaited, objects come by value.
  CHECK(p->evaluate("undefined", &why) == json());
  CHECK(p->evaluate("new Promise(r => setTimeout(() => r('done'), 50))", &why) == json("done"));
  CHECK(p->evaluate("({a: [1, 'x'], b: null})", &why) == json{{"a", {1, "x"}}, {"b", nullptr}});

  // Messages beyond 64 KiB each way: 64-bit WebSocket lengths out and in.
  const std::string big_js = "'" + std::string(70000, 'y') + "'.length";
  CHECK(p->evaluate(big_js, &why) == json(70000));
  const auto big = p->evaluate("'z'.repeat(300000)", &why);
  REQUIRE_MESSAGE(big.has_value(), why);
  CHECK(big->get_ref<const std::string&>().size() == 300000);

  // A false predicate times out (about its bound) and reports its last value.
  CHECK_FALSE(p->wait_for("document.title === 'nope'", 300ms, &last));
  CHECK(last == "false");

  temp_dir out;
  const auto png = out.path / "page.png";
  REQUIRE_MESSAGE(p->screenshot(png, &why), why);
  std::ifstream in(png, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  REQUIRE(bytes.size() > 8);
  CHECK(bytes.substr(0, 8) == std::string("\x89PNG\r\n\x1a\n", 8));
}

TEST_CASE("chromium: exceptions and failed loads are reported") {
  if (skip()) return;
  auto& b = shared_browser();
  std::string why;
  auto p = b.open("about:blank", &why);
  REQUIRE_MESSAGE(p.has_value(), why);

  why.clear();
  CHECK_FALSE(p->evaluate("throw new Error('boom-42')", &why).has_value());
  CHECK_MESSAGE(why.find("boom-42") != std::string::npos, why);
  CHECK_MESSAGE(why.find("Error") != std::string::npos, why);

  why.clear();
  CHECK_FALSE(p->evaluate("Promise.reject(new TypeError('later-7'))", &why).has_value());
  CHECK_MESSAGE(why.find("TypeError: later-7") != std::string::npos, why);

  why.clear();
  CHECK_FALSE(p->evaluate("1 +", &why).has_value());
  CHECK_MESSAGE(why.find("SyntaxError") != std::string::npos, why);

  // The page still works after those.
  CHECK(p->evaluate("6 * 7", &why) == json(42));

  // An unknown command gives the protocol's error.
  why.clear();
  CHECK_FALSE(p->call("No.such", json::object(), &why).has_value());
  CHECK_MESSAGE(why.find("No.such") != std::string::npos, why);

  // Only loopback pages: nothing in a test reaches out.
  why.clear();
  CHECK_FALSE(b.open("http://127.0.0.1.example.com/", &why).has_value());
  CHECK_MESSAGE(why.find("not a loopback URL") != std::string::npos, why);

  // A port we just closed: the load fails with Chromium's net error.
  int closed_port = 0;
  {
    tiny_server gone("");
    closed_port = gone.port();
  }
  why.clear();
  CHECK_FALSE(b.open("http://127.0.0.1:" + std::to_string(closed_port) + "/", &why).has_value());
  CHECK_MESSAGE(why.find("net::ERR_") != std::string::npos, why);
}

TEST_CASE("chromium: a destroyed browser leaves no process and no temp dir") {
  if (skip()) return;
  pid_t pid = -1;
  fs::path dir;
  std::vector<cr::detail::process_ref> helpers;
  {
    auto b = launch();
    pid = b.pid();
    dir = b.dir();
    REQUIRE(pid > 0);
    CHECK(::kill(pid, 0) == 0);
    CHECK(fs::exists(dir / "profile" / "DevToolsActivePort"));
    // The browser and its helpers (zygotes, crash handlers, some of them not
    // our children) all name our dir on their command lines.
    helpers = cr::detail::processes_mentioning(dir.string());
    CHECK(helpers.size() > 1);
  }
  errno = 0;
  CHECK(::kill(pid, 0) == -1);
  CHECK(errno == ESRCH);
  CHECK_FALSE(fs::exists(dir));
  CHECK(cr::detail::processes_mentioning(dir.string()).empty());
  for (const auto& h : helpers) {
    const char st = cr::detail::process_state(h);
    CHECK_MESSAGE((st == 0 || st == 'Z'), "helper ", h.pid, " still runs (state ", st, ")");
    // An orphaned helper's zombie is init's to reap; the destructor waits 2 s for it.
    WARN_MESSAGE(st == 0, "helper ", h.pid, " is a zombie init has not reaped yet");
  }
}

namespace {

/// An unmasked server frame with the shortest length encoding.
std::string server_frame(unsigned char b0, const std::string& payload) {
  std::string f(1, static_cast<char>(b0));
  const auto n = payload.size();
  if (n < 126) {
    f += static_cast<char>(n);
  } else if (n <= 0xFFFF) {
    f += static_cast<char>(126);
    f += static_cast<char>(n >> 8);
    f += static_cast<char>(n & 0xFF);
  } else {
    f += static_cast<char>(127);
    for (int i = 7; i >= 0; --i) f += static_cast<char>((static_cast<std::uint64_t>(n) >> (8 * i)) & 0xFF);
  }
  return f + payload;
}

/// Reads exactly `n` bytes (the socket has a receive timeout); false on EOF/timeout.
bool read_exact(int fd, std::string& out, std::size_t n) {
  out.clear();
  char buf[4096];
  while (out.size() < n) {
    const auto r = ::recv(fd, buf, std::min(sizeof buf, n - out.size()), 0);
    if (r <= 0) return false;
    out.append(buf, static_cast<std::size_t>(r));
  }
  return true;
}

} // namespace

TEST_CASE("chromium: WebSocket framing against a scripted server") {
  // What Chromium never sends (fragments, pings, a frame cut by a timeout),
  // from a server that also records the client's frames. No browser needed.
  const int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(lfd >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  REQUIRE(::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(::listen(lfd, 1) == 0);
  REQUIRE(::getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  const int port = ntohs(a.sin_port);

  std::vector<std::string> seen; // client frames as "masked opcode payload"; read after join
  std::string server_error;
  std::thread srv([&] {
    pollfd p{lfd, POLLIN, 0};
    if (::poll(&p, 1, 5000) != 1) return void(server_error = "no connection");
    const int c = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) return void(server_error = "accept failed");
    timeval tv{5, 0};
    ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    const auto send = [c](const std::string& s) { return ::send(c, s.data(), s.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(s.size()); };
    std::string head, byte;
    while (head.find("\r\n\r\n") == std::string::npos && read_exact(c, byte, 1)) head += byte;
    const auto key = cr::detail::header(head, "Sec-WebSocket-Key").value_or("");
    const auto accept = cr::detail::base64_encode(cr::detail::sha1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"));
    send("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
         accept + "\r\n\r\n");
    // A ping, a text message in two fragments with a ping between them, a
    // 16-bit and a 64-bit length, and the first 4 bytes of a last frame.
    send(server_frame(0x89, "hb") + server_frame(0x01, "{\"part\":") + server_frame(0x89, "mid") +
         server_frame(0x80, "1}") + server_frame(0x81, std::string(300, 'a')) +
         server_frame(0x81, std::string(70000, 'b')) + std::string("\x81\x05he", 4));
    // Client frames (all small) until its text frame, the cue for the rest.
    for (std::string h, mask, payload; read_exact(c, h, 2);) {
      const auto op = static_cast<unsigned char>(h[0]) & 0x0F;
      const bool masked = (static_cast<unsigned char>(h[1]) & 0x80) != 0;
      if (!read_exact(c, mask, masked ? 4 : 0) || !read_exact(c, payload, static_cast<unsigned char>(h[1]) & 0x7F)) break;
      for (std::size_t i = 0; masked && i < payload.size(); ++i) payload[i] = static_cast<char>(payload[i] ^ mask[i % 4]);
      seen.push_back(std::string(masked ? "masked " : "plain ") + std::to_string(op) + " " + payload);
      if (op == 0x1) send("llo");
      if (op == 0x8) break;
    }
    ::close(c);
  });

  std::string why;
  auto ws = cr::detail::websocket::connect(port, "/devtools/page/x", 5s, &why);
  if (ws) {
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    CHECK(ws->receive(deadline, &why) == std::optional<std::string>("{\"part\":1}"));
    CHECK(ws->receive(deadline, &why) == std::optional<std::string>(std::string(300, 'a')));
    CHECK(ws->receive(deadline, &why) == std::optional<std::string>(std::string(70000, 'b')));
    // A receive timing out mid-frame keeps the bytes (and the connection).
    CHECK_FALSE(ws->receive(std::chrono::steady_clock::now() + 200ms, &why).has_value());
    CHECK(why == "receive timed out");
    CHECK(ws->usable());
    CHECK(ws->send_text("go", deadline, &why));
    CHECK(ws->receive(deadline, &why) == std::optional<std::string>("hello"));
    ws->close();
  }
  srv.join();
  ::close(lfd);
  REQUIRE_MESSAGE(ws.has_value(), why);
  CHECK(server_error == "");
  CHECK(seen == std::vector<std::string>{"masked 10 hb", "masked 10 mid", "masked 1 go", "masked 8 \x03\xE8"});
  // The RFC 6455 §1.3 example handshake.
  CHECK(cr::detail::base64_encode(cr::detail::sha1("dGhlIHNhbXBsZSBub25jZQ==258EAFA5-E914-47DA-95CA-C5AB0DC85B11")) ==
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  CHECK(cr::detail::base64_decode("aGVsbG8gd29ybGQ=") == std::optional<std::string>("hello world"));
  CHECK_FALSE(cr::detail::base64_decode("a$==").has_value());
}
