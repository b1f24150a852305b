// zkrecipes::testing::expire_session: end a live ZooKeeper session on demand,
// so a test can watch its code handle expiry without waiting for a timeout.
#pragma once

#include <zkrecipes/detail/socket.hpp>
#include <zkrecipes/error.hpp>

#include <zookeeper/zookeeper.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

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

/// The second handle's view of its own session.
struct expire_watch {
  std::mutex mu;
  std::condition_variable cv;
  int state = 0; // last ZOO_*_STATE seen, 0 until the first event
};

inline void expire_watcher(zhandle_t*, int type, int state, const char*, void* ctx) {
  if (type != ZOO_SESSION_EVENT || ctx == nullptr) return;
  auto* w = static_cast<expire_watch*>(ctx);
  {
    std::lock_guard<std::mutex> lk(w->mu);
    w->state = state;
  }
  w->cv.notify_all();
}

/// Drops the second handle's log lines: its connects and "session expired"
/// messages are the harness at work, not news for the test's reader.
inline void expire_quiet_log(const char*) {}

/// Opens a C handle as session `id`, waits (until `deadline`) for it to
/// connect or be told the session expired, then closes it; closing a
/// connected handle sends closeSession. Returns the last ZOO_*_STATE seen
/// (0 when none), or -1 when no handle could be made.
inline int take_over_and_close(const std::string& hosts, const clientid_t& id,
                               std::chrono::steady_clock::time_point deadline) {
  expire_watch w;
  zhandle_t* zh = zookeeper_init2(hosts.c_str(), expire_watcher, 30000, &id, &w, 0,
                                  expire_quiet_log);
  if (zh == nullptr) return -1;
  int state = 0;
  {
    std::unique_lock<std::mutex> lk(w.mu);
    w.cv.wait_until(lk, deadline, [&] {
      return w.state == ZOO_CONNECTED_STATE || w.state == ZOO_EXPIRED_SESSION_STATE ||
             w.state == ZOO_AUTH_FAILED_STATE;
    });
    state = w.state;
  }
  // zookeeper_close joins the handle's threads: `w` is not used after it.
  zookeeper_close(zh);
  return state;
}

/// Whether a server at `ports` still lists a connection of session
/// `sid_hex` ("0x...") in its `cons` output (false when cons is unavailable).
inline bool session_has_connection(const std::vector<std::uint16_t>& ports,
                                   const std::string& sid_hex) {
  const std::string key = "sid=" + sid_hex;
  for (auto port : ports) {
    auto r = four_letter(port, "cons", std::chrono::milliseconds(1000));
    if (!r) continue;
    const std::string& text = r.value();
    for (auto pos = text.find(key); pos != std::string::npos; pos = text.find(key, pos + 1)) {
      const auto end = pos + key.size();
      const char next = end < text.size() ? text[end] : ',';
      if (!((next >= '0' && next <= '9') || (next >= 'a' && next <= 'f'))) return true;
    }
  }
  return false;
}

} // namespace zkrecipes::detail

namespace zkrecipes::testing {

/// Expires a live session the way Curator's KillSession does: opens a second
/// C handle with the same session id and 16-byte password, waits until it is
/// connected (the server hands it the session and drops the original
/// connection), and closes it, which ends the session on the server.
///
/// The session's own client reconnects and is told the session expired: its
/// watcher gets ZOO_EXPIRED_SESSION_STATE, and its ephemeral nodes are gone.
/// To be sure, the call opens handles with the same credentials until the
/// server answers "expired" (closing any that still connects: the original
/// client may have won the session back before the close).
///
/// Then it waits until no server in `connect_string` lists a connection of
/// the session (`cons`). This covers a ZooKeeper race: when the original
/// client reconnects while the server processes the takeover, the server
/// can keep the client's new connection open after the session is gone, and
/// the client hears "expired" only after 2/3 of its session timeout, when
/// its pings go unanswered. Usually the call returns within tens of
/// milliseconds; in that race (a few percent of calls) it returns when the
/// client has been dropped, so keep session timeouts short in tests.
/// \param connect_string where the session lives ("127.0.0.1:PORT", or an
/// ensemble's list); the `cons` check uses its loopback servers only
/// \param session_id from zoo_client_id(zh)->client_id
/// \param password the 16 bytes of zoo_client_id(zh)->passwd
/// \param timeout bound on the whole call
/// \returns errc::harness_failed when the password is not 16 bytes, the
/// session is not live (already expired or closed, or a wrong password), no
/// handle can be made, or the expiry is not confirmed within `timeout`.
/// \note Blocks the calling thread; do not call it from a ZooKeeper
/// completion or watcher thread.
inline result<void> expire_session(std::string_view connect_string, std::int64_t session_id,
                                   std::string_view password,
                                   std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  const std::string sid = detail::session_hex(session_id);
  const std::string what = "session " + sid;
  clientid_t id{};
  if (password.size() != sizeof id.passwd)
    return detail::harness_error("expire session", what + ": password must be 16 bytes, got " +
                                                       std::to_string(password.size()));
  id.client_id = session_id;
  std::memcpy(id.passwd, password.data(), sizeof id.passwd);
  const std::string hosts(connect_string);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const auto late = [&](const char* stage) {
    return detail::harness_error("expire session", what + " on " + hosts + ": " + stage +
                                                       " within " +
                                                       std::to_string(timeout.count()) + " ms");
  };

  for (int round = 0;; ++round) {
    const int state = detail::take_over_and_close(hosts, id, deadline);
    if (state == -1)
      return detail::harness_error("expire session", what + ": zookeeper_init(" + hosts + ")",
                                   std::error_code(errno, std::generic_category()));
    if (state == ZOO_EXPIRED_SESSION_STATE) {
      if (round > 0) break;
      return detail::harness_error(
          "expire session",
          what + " on " + hosts + ": not live (already expired or closed, or wrong password)");
    }
    if (state == ZOO_AUTH_FAILED_STATE)
      return detail::harness_error("expire session", what + " on " + hosts + ": auth failed");
    if (state != ZOO_CONNECTED_STATE)
      return late(round == 0 ? "not connected" : "not confirmed expired");
    // Connected and closed: the next round confirms.
  }

  const auto ports = detail::loopback_ports(connect_string);
  for (;;) {
    if (!detail::session_has_connection(ports, sid)) return outcome::success();
    if (std::chrono::steady_clock::now() >= deadline)
      return late("expired, but a server still holds a connection of it (its client will hear "
                  "\"expired\" after 2/3 of its session timeout), not dropped");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

} // namespace zkrecipes::testing
