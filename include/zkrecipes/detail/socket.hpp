// zkrecipes internals: loopback TCP helpers for the test harness
// (zkrecipes/testing/): an owning descriptor, free-port finding, bounded
// connects and a four-letter-word client. Linux only, IPv4 loopback only.
#pragma once

#include <zkrecipes/error.hpp>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace zkrecipes::detail {

/// A harness_failed error: `operation` must be a string literal; `what`
/// names the object, `cause` (when set) says why.
inline error harness_error(const char* operation, std::string what, std::error_code cause = {}) {
  if (cause) what += ": " + cause.message();
  return make_error(errc::harness_failed, operation, std::move(what));
}

/// An owned file descriptor, closed on destruction. Move-only; -1 is empty.
class unique_fd {
public:
  unique_fd() = default;
  explicit unique_fd(int fd) noexcept : fd_(fd) {}
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  unique_fd(unique_fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  unique_fd& operator=(unique_fd&& o) noexcept {
    if (this != &o) reset(std::exchange(o.fd_, -1));
    return *this;
  }
  ~unique_fd() { reset(); }

  int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  int release() noexcept { return std::exchange(fd_, -1); }
  void reset(int fd = -1) noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

private:
  int fd_ = -1;
};

/// "127.0.0.1:PORT".
inline std::string loopback_endpoint(std::uint16_t port) {
  return "127.0.0.1:" + std::to_string(port);
}

/// An IPv4 socket address for `addr` (network order) and `port` (host order).
inline sockaddr_in make_sockaddr(in_addr addr, std::uint16_t port) noexcept {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr = addr;
  sa.sin_port = htons(port);
  return sa;
}

/// 127.0.0.1 in network order.
inline in_addr loopback_addr() noexcept {
  in_addr a{};
  a.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

/// Parses a loopback host: "localhost" or an IPv4 address in 127.0.0.0/8.
/// Anything else is refused, so the harness never talks to another machine.
inline result<in_addr> parse_loopback_host(std::string_view host) {
  if (host == "localhost") return loopback_addr();
  in_addr a{};
  const std::string h(host);
  if (::inet_pton(AF_INET, h.c_str(), &a) != 1)
    return make_error(std::make_error_code(std::errc::invalid_argument), "loopback host",
                      "'" + h + "' is not localhost or an IPv4 address in 127.0.0.0/8");
  if ((ntohl(a.s_addr) >> 24) != 127)
    return make_error(std::make_error_code(std::errc::invalid_argument), "loopback host",
                      "'" + h + "' is not a loopback address (only 127.0.0.0/8 is allowed)");
  return a;
}

/// Sets O_NONBLOCK on `fd`.
inline bool set_nonblocking(int fd) noexcept {
  const int flags = ::fcntl(fd, F_GETFL, 0);
  return flags >= 0 && ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
}

/// Disables Nagle's algorithm so small ZooKeeper packets are not delayed.
inline void set_nodelay(int fd) noexcept {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/// A new non-blocking, close-on-exec IPv4 TCP socket.
inline result<unique_fd> tcp_socket() {
  unique_fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return make_error(std::error_code(errno, std::generic_category()), "socket");
  return fd;
}

/// The local port a socket is bound to.
inline result<std::uint16_t> local_port(int fd) {
  sockaddr_in sa{};
  socklen_t len = sizeof sa;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) != 0)
    return make_error(std::error_code(errno, std::generic_category()), "getsockname");
  return ntohs(sa.sin_port);
}

/// A listening, non-blocking socket on 127.0.0.1 and a kernel-chosen port.
inline result<unique_fd> listen_loopback(int backlog = 64) {
  BOOST_OUTCOME_TRY(fd, tcp_socket());
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  const sockaddr_in sa = make_sockaddr(loopback_addr(), 0);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0)
    return make_error(std::error_code(errno, std::generic_category()), "bind", "127.0.0.1:0");
  if (::listen(fd.get(), backlog) != 0)
    return make_error(std::error_code(errno, std::generic_category()), "listen", "127.0.0.1");
  return std::move(fd);
}

/// `n` distinct loopback ports that were free a moment ago: each is bound to
/// 127.0.0.1:0 (all at once, so they differ), read back and released.
///
/// \note Another process may take a port before the caller binds it; callers
/// retry with fresh ports when that happens.
inline result<std::vector<std::uint16_t>> free_ports(std::size_t n) {
  std::vector<unique_fd> held;
  std::vector<std::uint16_t> ports;
  for (std::size_t i = 0; i < n; ++i) {
    BOOST_OUTCOME_TRY(fd, tcp_socket());
    const sockaddr_in sa = make_sockaddr(loopback_addr(), 0);
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0)
      return make_error(std::error_code(errno, std::generic_category()), "find free port",
                        "bind 127.0.0.1:0");
    BOOST_OUTCOME_TRY(port, local_port(fd.get()));
    ports.push_back(port);
    held.push_back(std::move(fd));
  }
  return ports;
}

/// Milliseconds left until `deadline` (0 when past), for poll().
inline int ms_until(std::chrono::steady_clock::time_point deadline) noexcept {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  if (left.count() <= 0) return 0;
  return left.count() > 1000000 ? 1000000 : static_cast<int>(left.count());
}

/// Connects a non-blocking socket to `addr:port`, waiting until `deadline`.
inline result<unique_fd> connect_tcp(in_addr addr, std::uint16_t port,
                                     std::chrono::steady_clock::time_point deadline) {
  BOOST_OUTCOME_TRY(fd, tcp_socket());
  const sockaddr_in sa = make_sockaddr(addr, port);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0)
    return std::move(fd);
  if (errno != EINPROGRESS)
    return make_error(std::error_code(errno, std::generic_category()), "connect");
  pollfd p{fd.get(), POLLOUT, 0};
  for (;;) {
    const int r = ::poll(&p, 1, ms_until(deadline));
    if (r > 0) break;
    if (r == 0) return make_error(std::make_error_code(std::errc::timed_out), "connect");
    if (errno != EINTR)
      return make_error(std::error_code(errno, std::generic_category()), "connect");
  }
  int err = 0;
  socklen_t len = sizeof err;
  ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) return make_error(std::error_code(err, std::generic_category()), "connect");
  return std::move(fd);
}

/// Sends a ZooKeeper four-letter word ("srvr", "ruok", "mntr"...) to
/// 127.0.0.1:`port` and returns the whole reply (the server closes the
/// connection after it). Bounded by `timeout` overall.
inline result<std::string> four_letter(std::uint16_t port, std::string_view command,
                                       std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const std::string where = std::string(command) + " on " + loopback_endpoint(port);
  const auto fail = [&](std::error_code cause) {
    return harness_error("four letter word", where, cause);
  };
  const auto timed_out = [&] {
    return harness_error("four letter word",
                         where + ": no complete reply after " + std::to_string(timeout.count()) +
                             " ms");
  };
  auto c = connect_tcp(loopback_addr(), port, deadline);
  if (!c) {
    if (c.error() == std::errc::timed_out) return timed_out();
    return fail(c.error().code());
  }
  unique_fd fd = std::move(c).value();
  std::size_t sent = 0;
  while (sent < command.size()) {
    const ssize_t n = ::send(fd.get(), command.data() + sent, command.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd.get(), POLLOUT, 0};
      if (::poll(&p, 1, ms_until(deadline)) == 0) return timed_out();
      continue;
    }
    return fail(std::error_code(errno, std::generic_category()));
  }
  std::string reply;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    if (n > 0) {
      reply.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n == 0) return reply;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      pollfd p{fd.get(), POLLIN, 0};
      if (::poll(&p, 1, ms_until(deadline)) == 0) return timed_out();
      continue;
    }
    // A reset after a complete reply still counts as the reply.
    if (!reply.empty() && errno == ECONNRESET) return reply;
    return fail(std::error_code(errno, std::generic_category()));
  }
}

/// The value of the "Mode: " line of a srvr reply ("standalone", "leader",
/// "follower", "observer"), or empty when there is none (for instance "This
/// ZooKeeper instance is not currently serving requests").
inline std::string srvr_mode(std::string_view reply) {
  constexpr std::string_view key = "Mode: ";
  const auto pos = reply.find(key);
  if (pos == std::string_view::npos) return {};
  auto end = reply.find_first_of("\r\n", pos);
  if (end == std::string_view::npos) end = reply.size();
  return std::string(reply.substr(pos + key.size(), end - pos - key.size()));
}

} // namespace zkrecipes::detail
