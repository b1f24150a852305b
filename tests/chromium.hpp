// Drives Debian's headless Chromium through the Chrome DevTools Protocol, for
// tests that open a page served by a test program, assert on its live DOM
// with JavaScript and save screenshots as artefacts.
//
// Dependency-free on purpose (POSIX sockets and nlohmann/json): a minimal
// HTTP client for the DevTools endpoints and a minimal RFC 6455 WebSocket
// client for the protocol itself. Only 127.0.0.1 is ever connected to. Every
// socket operation is bounded by a deadline (poll), expected failures come
// back as std::nullopt / false with a reason in `why`, never as exceptions.
//
//   std::string why;
//   auto b = zkt::chromium::browser::launch(&why);     // nullopt: see why
//   auto p = b->open("http://127.0.0.1:8080/", &why);  // loaded when it returns
//   p->wait_for("document.querySelector('#x') !== null", 5s);
//   auto v = p->evaluate("document.title", &why);       // json, or nullopt + why
//   p->screenshot(dir / "page.png");
//
// A page must not outlive its browser (it only closes its target, which
// fails harmlessly when the browser is gone).
#pragma once

#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

extern char** environ; // posix_spawn passes a modified copy to Chromium

namespace zkt::chromium {

/// Debian's wrapper script; it execs the real binary, so the pid stays ours.
inline constexpr const char* binary = "/usr/bin/chromium";
/// The default bound of one DevTools command (and of open/navigate).
inline constexpr std::chrono::milliseconds default_bound{10'000};

/// Whether Chromium is installed; tests skip (with a MESSAGE) when not.
inline bool available() {
  struct stat st{};
  return ::stat(binary, &st) == 0 && S_ISREG(st.st_mode) && ::access(binary, X_OK) == 0;
}

namespace detail {

using clock = std::chrono::steady_clock;
using json = nlohmann::json;

inline void set_why(std::string* why, std::string text) {
  if (why) *why = std::move(text);
}

inline std::string errno_text(const char* what, int e = errno) { return std::string(what) + ": " + std::strerror(e); }

/// Milliseconds until `deadline`, as poll() wants them (0 when past).
inline int ms_left(clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
  return static_cast<int>(std::clamp<long long>(left, 0, INT_MAX));
}

/// What is left until `deadline`, at least 1 ms (a bound of 0 would mean "already failed").
inline std::chrono::milliseconds remaining(clock::time_point deadline) {
  return std::max(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()),
                  std::chrono::milliseconds(1));
}

/// Serializes without throwing on invalid UTF-8 (a test's JS string may hold any bytes).
inline std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

/// Owns a file descriptor.
class fd_guard {
public:
  fd_guard() = default;
  explicit fd_guard(int fd) : fd_(fd) {}
  fd_guard(fd_guard&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  fd_guard& operator=(fd_guard&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  fd_guard(const fd_guard&) = delete;
  fd_guard& operator=(const fd_guard&) = delete;
  ~fd_guard() { reset(); }
  int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

private:
  int fd_ = -1;
};

/// A TCP connection to 127.0.0.1:port. SO_SNDTIMEO also bounds connect().
inline fd_guard connect_loopback(int port, std::chrono::milliseconds bound, std::string* why) {
  fd_guard fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return set_why(why, errno_text("socket")), fd_guard();
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(bound.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((bound.count() % 1000) * 1000);
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
    return set_why(why, errno_text(("connect 127.0.0.1:" + std::to_string(port)).c_str())), fd_guard();
  return fd;
}

/// Writes all of `data` before `deadline`.
inline bool send_all(int fd, std::string_view data, clock::time_point deadline, std::string* why) {
  while (!data.empty()) {
    pollfd p{fd, POLLOUT, 0};
    const int r = ::poll(&p, 1, ms_left(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return set_why(why, errno_text("poll")), false;
    if (r == 0) return set_why(why, "send timed out"), false;
    const auto n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    if (n < 0) return set_why(why, errno_text("send")), false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

/// Appends what arrives (at least one byte) to `buf` before `deadline`;
/// false on timeout, error or EOF.
inline bool recv_some(int fd, std::string& buf, clock::time_point deadline, std::string* why) {
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    const int r = ::poll(&p, 1, ms_left(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return set_why(why, errno_text("poll")), false;
    if (r == 0) return set_why(why, "receive timed out"), false;
    char chunk[65536];
    const auto n = ::recv(fd, chunk, sizeof chunk, MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    if (n < 0) return set_why(why, errno_text("recv")), false;
    if (n == 0) return set_why(why, "connection closed by Chromium"), false;
    buf.append(chunk, static_cast<std::size_t>(n));
    return true;
  }
}

inline constexpr std::string_view b64_alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

inline std::string base64_encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  for (std::size_t i = 0; i < in.size(); i += 3) {
    const std::size_t n = std::min<std::size_t>(3, in.size() - i);
    std::uint32_t v = 0;
    for (std::size_t k = 0; k < 3; ++k)
      v = (v << 8) | (k < n ? static_cast<unsigned char>(in[i + k]) : 0U);
    for (std::size_t k = 0; k < 4; ++k)
      out += k <= n ? b64_alphabet[(v >> (18 - 6 * k)) & 0x3F] : '=';
  }
  return out;
}

/// nullopt on a character outside the alphabet or bad padding.
inline std::optional<std::string> base64_decode(std::string_view in) {
  std::string out;
  out.reserve(in.size() / 4 * 3);
  std::uint32_t acc = 0;
  int bits = 0;
  std::size_t pad = 0;
  for (const char c : in) {
    if (c == '=') {
      ++pad;
      continue;
    }
    if (pad != 0) return std::nullopt; // data after padding
    const auto at = b64_alphabet.find(c);
    if (at == std::string_view::npos) return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(at);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  if (pad > 2 || (in.size() % 4) != 0) return std::nullopt;
  return out;
}

/// SHA-1, only to check the server's Sec-WebSocket-Accept (RFC 6455 §4.1).
inline std::string sha1(std::string_view s) {
  std::uint32_t h[5] = {0x67452301U, 0xEFCDAB89U, 0x98BADCFEU, 0x10325476U, 0xC3D2E1F0U};
  std::string m(s);
  const std::uint64_t bit_len = static_cast<std::uint64_t>(s.size()) * 8U;
  m += static_cast<char>(0x80);
  while (m.size() % 64 != 56) m += '\0';
  for (int i = 7; i >= 0; --i) m += static_cast<char>((bit_len >> (8 * i)) & 0xFFU);
  for (std::size_t off = 0; off < m.size(); off += 64) {
    std::uint32_t w[80];
    for (std::size_t i = 0; i < 16; ++i) {
      w[i] = 0;
      for (std::size_t k = 0; k < 4; ++k) w[i] = (w[i] << 8) | static_cast<unsigned char>(m[off + 4 * i + k]);
    }
    for (std::size_t i = 16; i < 80; ++i) w[i] = std::rotl(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    std::uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (std::size_t i = 0; i < 80; ++i) {
      std::uint32_t f, k;
      if (i < 20) f = (b & c) | (~b & d), k = 0x5A827999U;
      else if (i < 40) f = b ^ c ^ d, k = 0x6ED9EBA1U;
      else if (i < 60) f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDCU;
      else f = b ^ c ^ d, k = 0xCA62C1D6U;
      const std::uint32_t t = std::rotl(a, 5) + f + e + k + w[i];
      e = d;
      d = c;
      c = std::rotl(b, 30);
      b = a;
      a = t;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
  }
  std::string out;
  for (const auto v : h)
    for (int i = 3; i >= 0; --i) out += static_cast<char>((v >> (8 * i)) & 0xFFU);
  return out;
}

inline std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

/// A header's value from a response head (case-insensitive name); nullopt when absent.
inline std::optional<std::string> header(const std::string& head, const std::string& name) {
  const auto at = lower(head).find("\r\n" + lower(name) + ":");
  if (at == std::string::npos) return std::nullopt;
  auto from = at + name.size() + 3;
  const auto to = head.find("\r\n", from);
  while (from < to && (head[from] == ' ' || head[from] == '\t')) ++from;
  auto v = head.substr(from, to - from);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.pop_back();
  return v;
}

/// One request to the DevTools HTTP endpoint; the body of a 200 answer.
/// The answer is delimited by Content-Length (the endpoint may keep the
/// connection open despite Connection: close).
inline std::optional<std::string> http(int port, const std::string& method, const std::string& target,
                                       std::chrono::milliseconds bound, std::string* why) {
  const auto deadline = clock::now() + bound;
  const auto fail = [&](const std::string& what) {
    set_why(why, method + " " + target + ": " + what);
    return std::optional<std::string>();
  };
  std::string err;
  const fd_guard fd = connect_loopback(port, bound, &err);
  if (fd.get() < 0) return fail(err);
  const std::string req = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
                          "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
  if (!send_all(fd.get(), req, deadline, &err)) return fail(err);
  std::string in;
  std::size_t head_end;
  while ((head_end = in.find("\r\n\r\n")) == std::string::npos) {
    if (in.size() > 65536) return fail("oversized response head");
    if (!recv_some(fd.get(), in, deadline, &err)) return fail(err + (in.empty() ? "" : " after: " + in.substr(0, 200)));
  }
  const std::string head = in.substr(0, head_end + 2);
  std::string body = in.substr(head_end + 4);
  if (head.rfind("HTTP/1.", 0) != 0 || head.size() < 12) return fail("not an HTTP answer: " + head.substr(0, 100));
  const int status = std::atoi(head.c_str() + 9);
  if (auto te = header(head, "Transfer-Encoding"); te && lower(*te) != "identity") return fail("unsupported " + *te);
  if (const auto cl = header(head, "Content-Length")) {
    const auto len = std::strtoull(cl->c_str(), nullptr, 10);
    if (len > (64U << 20)) return fail("oversized body");
    while (body.size() < len)
      if (!recv_some(fd.get(), body, deadline, &err)) return fail(err);
    body.resize(static_cast<std::size_t>(len));
  } else {
    while (recv_some(fd.get(), body, deadline, &err)) {} // to EOF
    if (err != "connection closed by Chromium") return fail(err);
  }
  if (status != 200) return fail("status " + std::to_string(status) + ": " + body.substr(0, 300));
  return body;
}

/// A minimal RFC 6455 client: text messages out (masked, unfragmented),
/// complete messages in (fragments reassembled; pings answered; pongs ignored).
/// Bytes of a frame cut by a timeout stay buffered for the next receive.
class websocket {
public:
  websocket() = default;

  static std::optional<websocket> connect(int port, const std::string& path, std::chrono::milliseconds bound,
                                          std::string* why) {
    const auto deadline = clock::now() + bound;
    const auto fail = [&](const std::string& what) {
      set_why(why, "WebSocket " + path + ": " + what);
      return std::optional<websocket>();
    };
    websocket ws;
    std::string err;
    ws.fd_ = connect_loopback(port, bound, &err);
    if (ws.fd_.get() < 0) return fail(err);
    std::random_device rd;
    std::string nonce;
    for (int i = 0; i < 16; ++i) nonce += static_cast<char>(rd() & 0xFFU);
    const std::string key = base64_encode(nonce);
    ws.rng_.seed(rd());
    // No Origin header: Chromium rejects origins not in --remote-allow-origins.
    const std::string req = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
                            "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
                            "\r\nSec-WebSocket-Version: 13\r\n\r\n";
    if (!send_all(ws.fd_.get(), req, deadline, &err)) return fail(err);
    std::string in;
    std::size_t head_end;
    while ((head_end = in.find("\r\n\r\n")) == std::string::npos) {
      if (in.size() > 65536) return fail("oversized handshake answer");
      if (!recv_some(ws.fd_.get(), in, deadline, &err)) return fail(err + (in.empty() ? "" : ": " + in.substr(0, 200)));
    }
    const std::string head = in.substr(0, head_end + 2);
    if (head.rfind("HTTP/1.1 101", 0) != 0) return fail("handshake refused: " + head.substr(0, 200));
    const auto accept = header(head, "Sec-WebSocket-Accept");
    if (!accept || *accept != base64_encode(sha1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")))
      return fail("bad Sec-WebSocket-Accept");
    ws.rbuf_ = in.substr(head_end + 4); // a frame may follow the head at once
    return ws;
  }

  bool usable() const { return fd_.get() >= 0 && !broken_; }

  bool send_text(std::string_view payload, clock::time_point deadline, std::string* why) {
    return send_frame(0x1, payload, deadline, why);
  }

  /// The next complete text or binary message.
  std::optional<std::string> receive(clock::time_point deadline, std::string* why) {
    if (!usable()) return set_why(why, "WebSocket is closed"), std::nullopt;
    for (;;) {
      std::string err;
      const int got = take_frame(deadline, &err);
      if (got < 0) {
        set_why(why, err);
        if (got == -2) broken_ = true; // a protocol error or lost connection: no resync possible
        return std::nullopt;
      }
      const auto op = frame_op_;
      if (op == 0x8) { // close: echo it (best effort), then fail
        std::string code = frame_.substr(0, 2);
        send_frame(0x8, code, std::min(deadline, clock::now() + std::chrono::milliseconds(500)), nullptr);
        broken_ = true;
        const int c = frame_.size() >= 2 ? (static_cast<unsigned char>(frame_[0]) << 8) | static_cast<unsigned char>(frame_[1]) : 0;
        return set_why(why, "WebSocket closed by Chromium (code " + std::to_string(c) + ")"), std::nullopt;
      }
      if (op == 0x9) { // ping: answer pong with the same payload
        if (!send_frame(0xA, frame_, deadline, why)) return std::nullopt;
        continue;
      }
      if (op == 0xA) continue;
      if (op == 0x1 || op == 0x2) {
        if (in_message_) return protocol_error(why, "new message inside a fragmented one");
        message_ = std::move(frame_);
        in_message_ = true;
      } else if (op == 0x0) {
        if (!in_message_) return protocol_error(why, "continuation without a message");
        message_ += frame_;
      } else {
        return protocol_error(why, "unknown opcode " + std::to_string(op));
      }
      if (message_.size() > max_message) return protocol_error(why, "message too large");
      if (frame_fin_) {
        in_message_ = false;
        return std::exchange(message_, std::string());
      }
    }
  }

  /// Best-effort close frame, then the socket closes.
  void close() {
    if (usable()) send_frame(0x8, std::string("\x03\xE8", 2), clock::now() + std::chrono::milliseconds(200), nullptr);
    fd_.reset();
  }

private:
  static constexpr std::size_t max_message = 256U << 20;

  std::optional<std::string> protocol_error(std::string* why, const std::string& what) {
    broken_ = true;
    set_why(why, "WebSocket protocol error: " + what);
    return std::nullopt;
  }

  bool send_frame(unsigned opcode, std::string_view payload, clock::time_point deadline, std::string* why) {
    if (!usable()) return set_why(why, "WebSocket is closed"), false;
    std::string f;
    f.reserve(payload.size() + 14);
    f += static_cast<char>(0x80U | opcode); // FIN: we never fragment
    const std::uint64_t n = payload.size();
    if (n < 126) {
      f += static_cast<char>(0x80U | n); // 0x80: client frames are always masked
    } else if (n <= 0xFFFF) {
      f += static_cast<char>(0x80U | 126U);
      f += static_cast<char>((n >> 8) & 0xFFU);
      f += static_cast<char>(n & 0xFFU);
    } else {
      f += static_cast<char>(0x80U | 127U);
      for (int i = 7; i >= 0; --i) f += static_cast<char>((n >> (8 * i)) & 0xFFU);
    }
    const std::uint32_t key = static_cast<std::uint32_t>(rng_());
    char mask[4];
    for (int i = 0; i < 4; ++i) mask[i] = static_cast<char>((key >> (8 * i)) & 0xFFU);
    f.append(mask, 4);
    for (std::size_t i = 0; i < payload.size(); ++i) f += static_cast<char>(payload[i] ^ mask[i % 4]);
    if (!send_all(fd_.get(), f, deadline, why)) {
      broken_ = true; // a partly written frame desynchronizes the stream
      return false;
    }
    return true;
  }

  /// Parses one frame into frame_op_/frame_fin_/frame_, reading as needed.
  /// 0: a frame; -1: timeout (the buffer is kept); -2: broken.
  int take_frame(clock::time_point deadline, std::string* why) {
    for (;;) {
      if (rbuf_.size() >= 2) {
        const auto b0 = static_cast<unsigned char>(rbuf_[0]);
        const auto b1 = static_cast<unsigned char>(rbuf_[1]);
        if ((b0 & 0x70U) != 0) return set_why(why, "WebSocket protocol error: reserved bits set"), -2;
        const bool masked = (b1 & 0x80U) != 0;
        std::uint64_t len = b1 & 0x7FU;
        std::size_t hdr = 2;
        if (len == 126) hdr += 2;
        else if (len == 127) hdr += 8;
        if (masked) hdr += 4;
        if (rbuf_.size() >= hdr) {
          if (len == 126 || len == 127) {
            const std::size_t bytes = len == 126 ? 2 : 8;
            len = 0;
            for (std::size_t i = 0; i < bytes; ++i) len = (len << 8) | static_cast<unsigned char>(rbuf_[2 + i]);
          }
          if (len > max_message) return set_why(why, "WebSocket protocol error: frame too large"), -2;
          const unsigned op = b0 & 0x0FU;
          if (op >= 0x8 && (len > 125 || (b0 & 0x80U) == 0))
            return set_why(why, "WebSocket protocol error: bad control frame"), -2;
          if (rbuf_.size() >= hdr + len) {
            frame_op_ = op;
            frame_fin_ = (b0 & 0x80U) != 0;
            frame_ = rbuf_.substr(hdr, static_cast<std::size_t>(len));
            if (masked) // servers must not mask, but unmasking costs nothing
              for (std::size_t i = 0; i < frame_.size(); ++i) frame_[i] = static_cast<char>(frame_[i] ^ rbuf_[hdr - 4 + i % 4]);
            rbuf_.erase(0, hdr + static_cast<std::size_t>(len));
            return 0;
          }
        }
      }
      std::string err;
      if (!recv_some(fd_.get(), rbuf_, deadline, &err)) {
        set_why(why, err);
        return err == "receive timed out" ? -1 : -2;
      }
    }
  }

  fd_guard fd_;
  std::mt19937 rng_;
  std::string rbuf_;    // received bytes not yet parsed
  std::string frame_;   // payload of the last frame
  unsigned frame_op_ = 0;
  bool frame_fin_ = false;
  std::string message_; // fragments of a message so far
  bool in_message_ = false;
  bool broken_ = false;
};

/// Last `n` bytes of a (log) file, for failure messages.
inline std::string tail(const std::filesystem::path& p, std::size_t n = 1500) {
  std::ifstream in(p, std::ios::binary);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return s.size() > n ? "..." + s.substr(s.size() - n) : s;
}

/// One process, told apart from a later one reusing its pid by start time.
struct process_ref {
  pid_t pid = -1;
  unsigned long long start = 0; ///< field 22 of /proc/PID/stat
};

/// State letter of /proc/PID/stat ('R', 'S', 'Z'...) and start time; nullopt when gone.
inline std::optional<std::pair<char, unsigned long long>> read_stat(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string s;
  if (!std::getline(in, s)) return std::nullopt;
  const auto rparen = s.rfind(')'); // the command name may hold spaces and parentheses
  if (rparen == std::string::npos || rparen + 2 >= s.size()) return std::nullopt;
  std::vector<std::string> f; // f[0] is field 3 (state)
  std::string::size_type at = rparen + 2;
  while (at < s.size() && f.size() < 20) {
    const auto sp = s.find(' ', at);
    f.push_back(s.substr(at, sp - at));
    if (sp == std::string::npos) break;
    at = sp + 1;
  }
  if (f.size() < 20 || f[0].empty()) return std::nullopt;
  return std::make_pair(f[0][0], std::strtoull(f[19].c_str(), nullptr, 10));
}

/// That very process's state letter; 0 when it is gone (reaped).
inline char process_state(const process_ref& p) {
  const auto st = read_stat(p.pid);
  return st && st->second == p.start ? st->first : 0;
}

/// Live processes whose command line contains `token` (our unique temp dir):
/// Chromium's helpers (zygotes, renderers, crash handlers) are not all our
/// children (some are double-forked), so this is how we see them.
/// (A zombie's command line is empty: zombies are not listed.)
inline std::vector<process_ref> processes_mentioning(const std::string& token) {
  std::vector<process_ref> out;
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/proc", ec), end; !ec && it != end; it.increment(ec)) {
    const auto name = it->path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(it->path() / "cmdline", std::ios::binary);
    const std::string cmd((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (cmd.find(token) == std::string::npos) continue;
    const auto pid = static_cast<pid_t>(std::atoi(name.c_str()));
    if (const auto st = read_stat(pid)) out.push_back({pid, st->second});
  }
  return out;
}

/// Tests only ever browse to themselves: about:, data:, or 127.0.0.1.
inline bool loopback_url(std::string_view url) {
  for (const std::string_view ok : {"about:", "data:"})
    if (url.substr(0, ok.size()) == ok) return true;
  for (const std::string_view host : {"http://127.0.0.1", "https://127.0.0.1"})
    if (url.substr(0, host.size()) == host && (url.size() == host.size() || url[host.size()] == ':' ||
                                               url[host.size()] == '/'))
      return true;
  return false;
}

} // namespace detail

using json = nlohmann::json;

/// One tab, driven over its own WebSocket. Commands are sequential.
class page {
public:
  page(page&& o) noexcept
      : http_port_(o.http_port_), target_(std::exchange(o.target_, std::string())), ws_(std::move(o.ws_)),
        next_id_(o.next_id_) {}
  page& operator=(page&& o) noexcept {
    if (this != &o) {
      close();
      http_port_ = o.http_port_;
      target_ = std::exchange(o.target_, std::string());
      ws_ = std::move(o.ws_);
      next_id_ = o.next_id_;
    }
    return *this;
  }
  page(const page&) = delete;
  page& operator=(const page&) = delete;
  ~page() { close(); }

  const std::string& target_id() const { return target_; }

  /// Sends one CDP command and waits for its reply (matched by id; events and
  /// late replies of timed-out commands are skipped). The reply's `result`,
  /// or nullopt with the protocol error / transport failure in *why.
  std::optional<json> call(const std::string& method, const json& params = json::object(), std::string* why = nullptr,
                           std::chrono::milliseconds bound = default_bound) {
    const auto deadline = detail::clock::now() + bound;
    const long long id = ++next_id_;
    std::string err;
    if (!ws_.send_text(detail::dump(json{{"id", id}, {"method", method}, {"params", params}}), deadline, &err))
      return detail::set_why(why, method + ": " + err), std::nullopt;
    for (;;) {
      const auto text = ws_.receive(deadline, &err);
      if (!text) return detail::set_why(why, method + ": " + err), std::nullopt;
      const json reply = json::parse(*text, nullptr, false);
      if (!reply.is_object()) continue;
      const auto it = reply.find("id");
      if (it == reply.end() || !it->is_number_integer() || it->get<long long>() != id) continue;
      if (const auto e = reply.find("error"); e != reply.end()) {
        std::string msg = e->is_object() && e->contains("message") && (*e)["message"].is_string()
                              ? (*e)["message"].get<std::string>()
                              : detail::dump(*e);
        if (e->is_object() && e->contains("data")) msg += " (" + detail::dump((*e)["data"]) + ")";
        return detail::set_why(why, method + ": " + msg), std::nullopt;
      }
      const auto r = reply.find("result");
      return r != reply.end() ? *r : json::object();
    }
  }

  /// Runtime.evaluate (returnByValue, awaitPromise): the value, null json when
  /// undefined (or not serializable), the text form of NaN/Infinity/-0/bigints.
  /// A thrown exception or rejected promise gives nullopt and its text in *why.
  std::optional<json> evaluate(const std::string& js, std::string* why = nullptr,
                               std::chrono::milliseconds bound = default_bound) {
    const auto r = call("Runtime.evaluate", {{"expression", js}, {"returnByValue", true}, {"awaitPromise", true}},
                        why, bound);
    if (!r) return std::nullopt;
    if (const auto ex = r->find("exceptionDetails"); ex != r->end()) {
      std::string text = ex->is_object() && ex->contains("text") && (*ex)["text"].is_string()
                             ? (*ex)["text"].get<std::string>()
                             : "exception";
      if (const auto e = ex->find("exception"); e != ex->end() && e->is_object()) {
        if (e->contains("description") && (*e)["description"].is_string())
          text += ": " + (*e)["description"].get<std::string>();
        else if (e->contains("value"))
          text += ": " + detail::dump((*e)["value"]);
      }
      return detail::set_why(why, text), std::nullopt;
    }
    const auto res = r->find("result");
    if (res == r->end() || !res->is_object()) return detail::set_why(why, "no result: " + detail::dump(*r)), std::nullopt;
    if (const auto v = res->find("value"); v != res->end()) return *v;
    if (const auto u = res->find("unserializableValue"); u != res->end()) return *u;
    return json(); // undefined, or nothing returnByValue could carry
  }

  /// Evaluates `js_predicate` every 100 ms until it yields `true`, for about
  /// `bound` (at least once). *last: the last value (or exception) as text.
  bool wait_for(const std::string& js_predicate, std::chrono::milliseconds bound, std::string* last = nullptr) {
    using namespace std::chrono;
    const auto deadline = detail::clock::now() + bound;
    for (;;) {
      const auto left = duration_cast<milliseconds>(deadline - detail::clock::now());
      std::string err;
      const auto v = evaluate(js_predicate, &err, std::clamp<milliseconds>(left, milliseconds(500), default_bound));
      if (v && *v == true) {
        detail::set_why(last, "true");
        return true;
      }
      detail::set_why(last, v ? detail::dump(*v) : "failed: " + err);
      if (detail::clock::now() + milliseconds(100) > deadline) return false;
      std::this_thread::sleep_for(milliseconds(100)); // the polling period, not a wait for an event
    }
  }

  /// Makes this tab the visible one (open() does it for a new page); a tab
  /// behind another reports document.visibilityState "hidden".
  bool bring_to_front(std::string* why = nullptr, std::chrono::milliseconds bound = default_bound) {
    return call("Page.bringToFront", json::object(), why, bound).has_value();
  }

  /// Page.captureScreenshot as PNG into `png`.
  bool screenshot(const std::filesystem::path& png, std::string* why = nullptr) {
    const auto r = call("Page.captureScreenshot", {{"format", "png"}}, why);
    if (!r) return false;
    if (!r->contains("data") || !(*r)["data"].is_string()) return detail::set_why(why, "no screenshot data"), false;
    const auto bytes = detail::base64_decode((*r)["data"].get_ref<const std::string&>());
    if (!bytes) return detail::set_why(why, "screenshot data is not base64"), false;
    std::ofstream out(png, std::ios::binary | std::ios::trunc);
    out.write(bytes->data(), static_cast<std::streamsize>(bytes->size()));
    out.close();
    if (!out) return detail::set_why(why, "cannot write " + png.string()), false;
    return true;
  }

  /// Navigates and waits (within `bound`) until the new document has loaded.
  /// A network error (net::ERR_...) gives false with the error in *why.
  /// Only about:, data: and http(s)://127.0.0.1 URLs are accepted.
  bool navigate(const std::string& url, std::string* why = nullptr, std::chrono::milliseconds bound = default_bound) {
    if (!detail::loopback_url(url)) return detail::set_why(why, "not a loopback URL: " + url), false;
    const auto deadline = detail::clock::now() + bound;
    // Marks the current document: "loaded" must be about a document without the mark.
    if (!evaluate("document.__zktOld = true", why, bound)) return false;
    const auto r = call("Page.navigate", {{"url", url}}, why, detail::remaining(deadline));
    if (!r) return false;
    if (const auto e = r->find("errorText"); e != r->end() && e->is_string() && !e->get_ref<const std::string&>().empty())
      return detail::set_why(why, "navigate " + url + ": " + e->get<std::string>()), false;
    if (!r->contains("loaderId")) return true; // same-document navigation (a fragment): nothing to load
    std::string last;
    if (!wait_for("document.__zktOld !== true && document.readyState === 'complete'", detail::remaining(deadline),
                  &last))
      return detail::set_why(why, "navigate " + url + ": not loaded in time (" + last + ")"), false;
    return true;
  }

private:
  friend class browser;
  page(int http_port, std::string target, detail::websocket ws)
      : http_port_(http_port), target_(std::move(target)), ws_(std::move(ws)) {}

  void close() {
    ws_.close();
    if (!target_.empty()) // fails fast (refused) when the browser is already gone
      detail::http(http_port_, "PUT", "/json/close/" + target_, std::chrono::milliseconds(2000), nullptr);
    target_.clear();
  }

  int http_port_ = 0;
  std::string target_;
  detail::websocket ws_;
  long long next_id_ = 0;
};

/// A headless Chromium of our own: fresh profile in a temp dir, DevTools on
/// an ephemeral loopback port. The destructor stops that pid and removes the dir.
class browser {
public:
  /// Starts Chromium and waits (within `bound`) until DevTools listens.
  static std::optional<browser> launch(std::string* why = nullptr,
                                       std::chrono::milliseconds bound = std::chrono::seconds(30)) {
    namespace fs = std::filesystem;
    if (!available()) return detail::set_why(why, std::string(binary) + " is not installed"), std::nullopt;
    std::error_code ec;
    auto tmp = fs::temp_directory_path(ec);
    if (ec) tmp = "/tmp";
    std::string tmpl = (tmp / "zkt-chromium-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) return detail::set_why(why, detail::errno_text("mkdtemp")), std::nullopt;
    browser b; // from here on, every return cleans up through ~browser
    b.dir_ = tmpl;
    const auto profile = b.dir_ / "profile";
    const auto log = b.log_path();

    std::vector<std::string> args = {
        binary,
        "--headless=new",
        "--no-sandbox",            // root in a container: the setuid/namespace sandbox cannot start
        "--disable-gpu",
        "--disable-dev-shm-usage", // a container's /dev/shm is often tiny
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking", // no component updates or pings to the outside
        "--disable-extensions",
        "--disable-sync",
        "--mute-audio",
        "--hide-scrollbars",
        "--window-size=1024,768",  // a fixed size for comparable screenshots
        "--remote-debugging-port=0",
        "--user-data-dir=" + profile.string(),
        "about:blank",
    };
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    // XDG dirs in our temp dir: the crash handler's database (and caches)
    // would otherwise land in ~/.config/chromium, and this way every helper
    // process names our dir on its command line.
    std::vector<std::string> env;
    for (char** e = environ; e && *e; ++e)
      if (std::strncmp(*e, "XDG_CONFIG_HOME=", 16) != 0 && std::strncmp(*e, "XDG_CACHE_HOME=", 15) != 0) env.emplace_back(*e);
    env.push_back("XDG_CONFIG_HOME=" + (b.dir_ / "config").string());
    env.push_back("XDG_CACHE_HOME=" + (b.dir_ / "cache").string());
    std::vector<char*> envp;
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);

    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    // The test binary's signal mask and ignored SIGPIPE must not leak into Chromium.
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    sigaddset(&defaults, SIGTERM);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid = -1;
    const int rc = ::posix_spawn(&pid, binary, &fa, &attr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) return detail::set_why(why, detail::errno_text("posix_spawn", rc)), std::nullopt;
    b.pid_ = pid;

    // DevToolsActivePort ("PORT\n/devtools/browser/ID") is more robust than
    // parsing stderr; both lines present means it is completely written.
    const auto deadline = detail::clock::now() + bound;
    for (;;) {
      std::ifstream in(profile / "DevToolsActivePort");
      std::string port_line, path_line;
      if (in && std::getline(in, port_line) && std::getline(in, path_line) && !path_line.empty()) {
        const int port = std::atoi(port_line.c_str());
        if (port > 0 && port < 65536) {
          b.port_ = port;
          return b;
        }
      }
      int status = 0;
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        b.pid_ = -1;
        return detail::set_why(why, "chromium exited (status " + std::to_string(status) +
                                        ") before DevTools listened: " + detail::tail(log)),
               std::nullopt;
      }
      if (detail::clock::now() > deadline)
        return detail::set_why(why, "no DevToolsActivePort within " + std::to_string(bound.count()) +
                                        " ms: " + detail::tail(log)),
               std::nullopt;
      std::this_thread::sleep_for(std::chrono::milliseconds(25)); // no event to wait on but the file
    }
  }

  browser(browser&& o) noexcept
      : pid_(std::exchange(o.pid_, -1)), port_(std::exchange(o.port_, 0)), dir_(std::exchange(o.dir_, {})) {}
  browser& operator=(browser&& o) noexcept {
    if (this != &o) {
      stop();
      pid_ = std::exchange(o.pid_, -1);
      port_ = std::exchange(o.port_, 0);
      dir_ = std::exchange(o.dir_, {});
    }
    return *this;
  }
  browser(const browser&) = delete;
  browser& operator=(const browser&) = delete;
  ~browser() { stop(); }

  pid_t pid() const { return pid_; }
  /// The DevTools HTTP/WebSocket port on 127.0.0.1.
  int port() const { return port_; }
  /// The temp dir holding the profile, Chromium's log and its XDG dirs.
  const std::filesystem::path& dir() const { return dir_; }
  std::filesystem::path log_path() const { return dir_ / "chromium.log"; }
  /// The end of Chromium's stdout/stderr, for failure messages.
  std::string log_tail(std::size_t n = 1500) const { return detail::tail(log_path(), n); }

  /// A new tab showing `url` (about:, data: or http(s)://127.0.0.1), loaded
  /// (document.readyState complete) when it returns. The target is created blank (PUT /json/new, as Chromium 120+
  /// requires) and then navigated, so that network errors are reported.
  std::optional<page> open(const std::string& url, std::string* why = nullptr,
                           std::chrono::milliseconds bound = default_bound) {
    if (!detail::loopback_url(url)) return detail::set_why(why, "not a loopback URL: " + url), std::nullopt;
    const auto deadline = detail::clock::now() + bound;
    const auto body = detail::http(port_, "PUT", "/json/new?about:blank", bound, why);
    if (!body) return std::nullopt;
    const json t = json::parse(*body, nullptr, false);
    if (!t.is_object() || !t.contains("id") || !t["id"].is_string() || !t.contains("webSocketDebuggerUrl") ||
        !t["webSocketDebuggerUrl"].is_string())
      return detail::set_why(why, "unexpected /json/new answer: " + body->substr(0, 300)), std::nullopt;
    const std::string ws_url = t["webSocketDebuggerUrl"].get<std::string>();
    const std::string prefix = "ws://127.0.0.1:" + std::to_string(port_) + "/";
    if (ws_url.rfind(prefix, 0) != 0) // only ever our own loopback port
      return detail::set_why(why, "unexpected webSocketDebuggerUrl " + ws_url), std::nullopt;
    auto ws = detail::websocket::connect(port_, ws_url.substr(prefix.size() - 1), detail::remaining(deadline), why);
    if (!ws) {
      detail::http(port_, "PUT", "/json/close/" + t["id"].get<std::string>(), std::chrono::milliseconds(2000), nullptr);
      return std::nullopt;
    }
    page p(port_, t["id"].get<std::string>(), std::move(*ws));
    // A tab behind another is "hidden": its timers are throttled and
    // requestAnimationFrame stops. The newest page is the one in front.
    if (!p.bring_to_front(why, detail::remaining(deadline))) return std::nullopt;
    if (url != "about:blank" && !p.navigate(url, why, detail::remaining(deadline))) return std::nullopt;
    return p;
  }

private:
  browser() = default;

  void stop() noexcept {
    using namespace std::chrono;
    // Taken while the browser lives: the helpers to see gone afterwards.
    const auto helpers = dir_.empty() ? std::vector<detail::process_ref>() : detail::processes_mentioning(dir_.string());
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM); // a clean shutdown also ends the helper processes
      const auto deadline = detail::clock::now() + seconds(5);
      bool reaped = false;
      while (!reaped && detail::clock::now() < deadline) {
        int status = 0;
        const pid_t r = ::waitpid(pid_, &status, WNOHANG);
        reaped = r == pid_ || (r < 0 && errno == ECHILD);
        if (!reaped) std::this_thread::sleep_for(milliseconds(20));
      }
      if (!reaped) {
        ::kill(pid_, SIGKILL);
        int status = 0;
        while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {}
      }
      pid_ = -1;
    }
    if (!dir_.empty()) {
      // Helpers exit shortly after the browser, orphaned: their zombies are
      // init's to reap, which some container inits do only every second or
      // two. Wait for them (bounded: 5 s for live ones, 2.5 s for zombies) so
      // that nothing named chromium outlives us and nothing writes into the
      // dir while it is removed.
      const auto start = detail::clock::now();
      for (;;) {
        bool live = !detail::processes_mentioning(dir_.string()).empty(), zombie = false;
        for (const auto& h : helpers) {
          const char st = detail::process_state(h);
          live = live || (st != 0 && st != 'Z');
          zombie = zombie || st == 'Z';
        }
        const auto waited = detail::clock::now() - start;
        if (!live && (!zombie || waited > milliseconds(2500))) break;
        if (waited > seconds(5)) {
          // Last resort against a leak: these pids (checked by start time)
          // are helpers of this very browser, named by our unique dir.
          for (const auto& h : helpers)
            if (const char st = detail::process_state(h); st != 0 && st != 'Z') ::kill(h.pid, SIGKILL);
          break;
        }
        std::this_thread::sleep_for(milliseconds(20));
      }
      for (int attempt = 0; attempt < 5; ++attempt) {
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
        if (!ec) break;
        std::this_thread::sleep_for(milliseconds(50));
      }
      dir_.clear();
    }
    port_ = 0;
  }

  pid_t pid_ = -1;
  int port_ = 0;
  std::filesystem::path dir_;
};

} // namespace zkt::chromium
