// zkrecipes::testing::expire_session: end a live ZooKeeper session on demand,
// so a test can watch its code handle expiry without waiting for a timeout.
#pragma once

#include <zkrecipes/detail/socket.hpp>
#include <zkrecipes/error.hpp>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <poll.h>
#include <sys/socket.h>

namespace zkrecipes::detail {

/// "0x1a2b..." as ZooKeeper prints session ids.
inline std::string session_hex(std::int64_t id) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(id));
  return buf;
}

/// The loopback client ports named in a connect string ("127.0.0.1:p1,
/// localhost:p2/chroot"), in order; other hosts are skipped.
inline std::vector<std::uint16_t> loopback_ports(std::string_view connect_string) {
  std::vector<std::uint16_t> ports;
  std::string_view hosts = connect_string.substr(0, connect_string.find('/'));
  while (!hosts.empty()) {
    const auto comma = hosts.find(',');
    const std::string_view hp = hosts.substr(0, comma);
    hosts = comma == std::string_view::npos ? std::string_view() : hosts.substr(comma + 1);
    const auto colon = hp.rfind(':');
    if (colon == std::string_view::npos || !parse_loopback_host(hp.substr(0, colon))) continue;
    unsigned port = 0;
    bool ok = colon + 1 < hp.size();
    for (char ch : hp.substr(colon + 1)) {
      ok = ok && ch >= '0' && ch <= '9' && port <= 6553;
      if (ok) port = port * 10 + static_cast<unsigned>(ch - '0');
    }
    if (ok && port > 0 && port <= 65535) ports.push_back(static_cast<std::uint16_t>(port));
  }
  return ports;
}

/// Appends a big-endian integer (jute's encoding).
inline void put_be(std::string& out, std::uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

/// Reads a big-endian integer at `pos` (no bounds check: callers check size).
inline std::uint64_t get_be(const std::string& in, std::size_t pos, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<unsigned char>(in[pos + static_cast<std::size_t>(i)]);
  return v;
}

/// Sends all of `data`, or fails at `deadline`.
inline bool send_all(int fd, const std::string& data, std::chrono::steady_clock::time_point deadline) {
  std::size_t sent = 0;
  while (sent < data.size()) {
    const ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd, POLLOUT, 0};
      if (::poll(&p, 1, ms_until(deadline)) == 0) return false;
      continue;
    }
    return false;
  }
  return true;
}

/// Reads one length-prefixed frame; false on EOF, error, oversize or timeout.
inline bool read_frame(int fd, std::string& frame, std::string& pending,
                       std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    if (pending.size() >= 4) {
      const auto len = get_be(pending, 0, 4);
      if (len > (1u << 20)) return false;
      if (pending.size() >= 4 + len) {
        frame = pending.substr(4, len);
        pending.erase(0, 4 + len);
        return true;
      }
    }
    char buf[4096];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      pending.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n == 0) return false;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return false;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, ms_until(deadline)) == 0) return false;
  }
}

/// What one kill attempt against one server found.
enum class kill_outcome {
  closed,      ///< the session was live; the server confirmed closeSession
  not_live,    ///< the server answered the connect with "expired"
  unavailable, ///< no answer (refused, not serving, dropped): try another server
};

/// Connects to 127.0.0.1:`port` as session `id` and, in the same write,
/// sends closeSession, so the server applies the close right after the
/// reconnect, before the session's own client can reconnect in between.
inline kill_outcome kill_session_on(std::uint16_t port, std::int64_t id, std::string_view password,
                                    std::chrono::steady_clock::time_point deadline) {
  auto c = connect_tcp(loopback_addr(), port, deadline);
  if (!c) return kill_outcome::unavailable;
  const unique_fd fd = std::move(c).value();

  std::string connect; // ConnectRequest
  put_be(connect, 0, 4);                                       // protocolVersion
  put_be(connect, 0, 8);                                       // lastZxidSeen
  put_be(connect, 30000, 4);                                   // timeOut (ms)
  put_be(connect, static_cast<std::uint64_t>(id), 8);          // sessionId
  put_be(connect, password.size(), 4);                         // passwd length
  connect.append(password);                                    // passwd
  connect.push_back('\0');                                     // readOnly = false
  std::string close;                                           // RequestHeader
  constexpr std::uint32_t close_xid = 1;
  put_be(close, close_xid, 4);                                 // xid
  put_be(close, static_cast<std::uint32_t>(-11), 4);           // type = closeSession
  std::string wire;
  put_be(wire, connect.size(), 4);
  wire += connect;
  put_be(wire, close.size(), 4);
  wire += close;
  if (!send_all(fd.get(), wire, deadline)) return kill_outcome::unavailable;

  std::string pending, frame;
  // ConnectResponse: protocolVersion, timeOut, sessionId, passwd, [readOnly].
  if (!read_frame(fd.get(), frame, pending, deadline) || frame.size() < 16)
    return kill_outcome::unavailable;
  const auto negotiated = static_cast<std::int32_t>(get_be(frame, 4, 4));
  if (negotiated <= 0) return kill_outcome::not_live;
  // ReplyHeader: xid, zxid, err. Skip anything else (notifications use xid -1).
  while (read_frame(fd.get(), frame, pending, deadline)) {
    if (frame.size() < 16) continue;
    if (static_cast<std::uint32_t>(get_be(frame, 0, 4)) != close_xid) continue;
    return static_cast<std::int32_t>(get_be(frame, 12, 4)) == 0 ? kill_outcome::closed
                                                                 : kill_outcome::unavailable;
  }
  return kill_outcome::unavailable;
}

} // namespace zkrecipes::detail

namespace zkrecipes::testing {

/// Expires a live session at once, as Curator's KillSession does: connects
/// to the server with the same session id and 16-byte password, which takes
/// the session over, and closes it, which ends it on the server.
///
/// The session's own client loses its connection (the server hands the
/// session to the new one), reconnects, and is told the session expired: its
/// watcher gets ZOO_EXPIRED_SESSION_STATE, and its ephemeral nodes are gone.
/// The call then connects once more with the same credentials to confirm
/// that the server answers "expired" (and closes the session again should
/// the client have won it back meanwhile).
///
/// The connection speaks ZooKeeper's wire protocol itself rather than
/// through a second C handle, so that it can send the reconnect and the
/// closeSession in one write: with a C handle the client, reconnecting in
/// the gap between the two, is sometimes left on a connection to a session
/// that no longer exists, and hears "expired" only after 2/3 of its session
/// timeout.
/// \param connect_string the servers (only loopback ones are used:
/// "127.0.0.1:PORT,..."; a chroot suffix is ignored)
/// \param session_id from zoo_client_id(zh)->client_id
/// \param password the 16 bytes of zoo_client_id(zh)->passwd
/// \param timeout bound on the whole call
/// \returns errc::harness_failed when the password is not 16 bytes, the
/// connect string names no loopback server, the session is not live (already
/// expired or closed, or a wrong password), or no server answers in time.
inline result<void> expire_session(std::string_view connect_string, std::int64_t session_id,
                                   std::string_view password,
                                   std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  const std::string what = "session " + detail::session_hex(session_id);
  if (password.size() != 16)
    return detail::harness_error("expire session", what + ": password must be 16 bytes, got " +
                                                       std::to_string(password.size()));
  const auto ports = detail::loopback_ports(connect_string);
  if (ports.empty())
    return detail::harness_error("expire session", what + ": no loopback server in '" +
                                                       std::string(connect_string) + "'");
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool closed_once = false;
  for (;;) {
    bool answered = false;
    for (auto port : ports) {
      const auto found = detail::kill_session_on(port, session_id, password, deadline);
      if (found == detail::kill_outcome::unavailable) continue;
      answered = true;
      if (found == detail::kill_outcome::not_live) {
        if (closed_once) return outcome::success();
        return detail::harness_error(
            "expire session", what + " on " + detail::loopback_endpoint(port) +
                                  ": not live (already expired or closed, or wrong password)");
      }
      closed_once = true; // closed: the next round confirms
      break;
    }
    if (std::chrono::steady_clock::now() >= deadline)
      return detail::harness_error("expire session",
                                   what + " on " + std::string(connect_string) + ": " +
                                       (closed_once ? "closed, but not confirmed expired"
                                                    : "no server answered") +
                                       " within " + std::to_string(timeout.count()) + " ms");
    if (!answered) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

} // namespace zkrecipes::testing
