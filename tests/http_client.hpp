// A raw HTTP/1.1 client for the example systems' process tests: plain
// sockets to 127.0.0.1 so a test can send malformed requests no HTTP library
// would produce, and read exactly what a server answered. Every socket call
// is bounded.
#pragma once

#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ostream>
#include <string>

namespace zkt::http {

/// A loopback TCP connection with send and receive bounded by `bound`; -1
/// when nothing accepts.
inline int connect_loopback(int port, std::chrono::milliseconds bound = std::chrono::seconds(5)) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(bound.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((bound.count() % 1000) * 1000);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    const int e = errno;
    ::close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

struct reply {
  int status = 0;    ///< 0: no answer (see error)
  std::string head;  ///< status line and headers
  std::string body;
  std::string error;
  std::string after; ///< bytes after the first answer (another answer on the same connection)
  nlohmann::json j() const { return nlohmann::json::parse(body, nullptr, false); }
  /// `data` of a `{code, message, data}` envelope; null when absent.
  nlohmann::json data() const {
    auto v = j();
    return v.is_object() && v.contains("data") ? v["data"] : nlohmann::json();
  }
  /// `code` of such an envelope; empty when absent.
  std::string code() const {
    auto v = j();
    return v.is_object() && v.contains("code") && v["code"].is_string() ? v["code"].get<std::string>() : "";
  }
  /// A header's value (case-sensitive name), empty when absent.
  std::string header(const std::string& name) const {
    const auto at = head.find("\r\n" + name + ": ");
    if (at == std::string::npos) return {};
    const auto from = at + name.size() + 4;
    return head.substr(from, head.find("\r\n", from) - from);
  }
};

/// j[key] as a string; "" when j is not an object or the member is not a string.
inline std::string str(const nlohmann::json& j, const char* key) {
  if (!j.is_object()) return {};
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

/// j[key] as an integer; -1 when absent or not a number.
inline long long num(const nlohmann::json& j, const char* key) {
  if (!j.is_object()) return -1;
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<long long>() : -1;
}

inline bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

inline std::ostream& operator<<(std::ostream& o, const reply& r) { return o << r.status << " " << r.body << r.error; }

/// Sends `request` (raw bytes) and parses the first answer (its body by
/// Content-Length when there is one), reading to EOF.
inline reply raw(int port, const std::string& request, std::chrono::milliseconds bound = std::chrono::seconds(10)) {
  reply r;
  const int fd = connect_loopback(port, bound);
  if (fd < 0) return r.error = "connect: " + std::string(std::strerror(errno)), r;
  struct closer {
    int fd;
    ~closer() { ::close(fd); }
  } c{fd};
  for (std::size_t sent = 0; sent < request.size();) {
    const auto n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break; // the server may answer (413, 411) before reading it all
    sent += static_cast<std::size_t>(n);
  }
  std::string in;
  char buf[8192];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) in.append(buf, static_cast<std::size_t>(n));
  if (in.rfind("HTTP/1.1 ", 0) != 0 || in.size() < 12) return r.error = "no HTTP answer: " + in.substr(0, 100), r;
  r.status = std::atoi(in.c_str() + 9);
  const auto hdr_end = in.find("\r\n\r\n");
  if (hdr_end == std::string::npos) return r;
  r.head = in.substr(0, hdr_end + 2);
  r.body = in.substr(hdr_end + 4);
  if (const auto cl = r.head.find("\r\nContent-Length: "); cl != std::string::npos) {
    const auto len = std::min<std::size_t>(r.body.size(), std::strtoul(r.head.c_str() + cl + 18, nullptr, 10));
    r.after = r.body.substr(len);
    r.body.resize(len);
  }
  return r;
}

/// One request with Connection: close; a POST body is sent as `content_type`.
inline reply request(int port, const std::string& method, const std::string& path, const std::string& body = {},
                     std::chrono::milliseconds bound = std::chrono::seconds(10),
                     const std::string& content_type = "application/json") {
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  if (method == "POST" || method == "PUT")
    req += "Content-Type: " + content_type + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  req += "\r\n" + body;
  return raw(port, req, bound);
}

} // namespace zkt::http
