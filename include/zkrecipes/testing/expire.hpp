// zkrecipes::testing::expire_session: end a live ZooKeeper session on demand,
// so a test can watch its code handle expiry without waiting for a timeout.
#pragma once

#include <zkrecipes/error.hpp>

#include <zookeeper/zookeeper.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>

namespace zkrecipes::detail {

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

/// "0x1a2b..." for messages.
inline std::string session_hex(std::int64_t id) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(id));
  return buf;
}

} // namespace zkrecipes::detail

namespace zkrecipes::testing {

/// Expires a live session the way Curator's KillSession does: opens a second
/// C handle with the same session id and 16-byte password, waits until it is
/// connected, and closes it, which ends the session on the server.
///
/// The original handle loses its connection (the server hands the session to
/// the second handle), reconnects, and is told the session expired: its
/// watcher gets ZOO_EXPIRED_SESSION_STATE, and its ephemeral nodes are gone.
/// To be sure the close took effect (the original may win the session back
/// before it is processed), the call reconnects with the same credentials
/// until the server answers "expired", closing each handle that still
/// connects.
/// \param connect_string where the session lives ("127.0.0.1:2181", or an
/// ensemble's list)
/// \param session_id from zoo_client_id(zh)->client_id
/// \param password the 16 bytes of zoo_client_id(zh)->passwd
/// \param timeout bound on the whole call
/// \returns errc::harness_failed when the password is not 16 bytes, the
/// session is already gone or the password is wrong (the first handle is
/// told "expired"), no handle can be created, or the session is not
/// confirmed expired within `timeout`.
/// \note Blocks the calling thread; do not call it from a ZooKeeper
/// completion or watcher thread.
inline result<void> expire_session(std::string_view connect_string, std::int64_t session_id,
                                   std::string_view password,
                                   std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  const std::string what = "session " + detail::session_hex(session_id);
  clientid_t id{};
  if (password.size() != sizeof id.passwd)
    return make_error(errc::harness_failed, "expire session",
                      what + ": password must be " + std::to_string(sizeof id.passwd) +
                          " bytes, got " + std::to_string(password.size()));
  id.client_id = session_id;
  std::memcpy(id.passwd, password.data(), sizeof id.passwd);
  const std::string hosts(connect_string);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  // The session timeout the second handle asks for; the server clamps it.
  const int recv_timeout = static_cast<int>(std::min<long long>(timeout.count(), 30000));

  for (int round = 0;; ++round) {
    detail::expire_watch w;
    zhandle_t* zh = zookeeper_init2(hosts.c_str(), detail::expire_watcher, recv_timeout, &id, &w,
                                    0, detail::expire_quiet_log);
    if (zh == nullptr)
      return make_error(errc::harness_failed, "expire session",
                        what + ": zookeeper_init(" + hosts + ") failed: " + std::strerror(errno));
    int state = 0;
    {
      std::unique_lock<std::mutex> lk(w.mu);
      w.cv.wait_until(lk, deadline, [&] {
        return w.state == ZOO_CONNECTED_STATE || w.state == ZOO_EXPIRED_SESSION_STATE ||
               w.state == ZOO_AUTH_FAILED_STATE;
      });
      state = w.state;
    }
    // Closing a connected handle sends closeSession; zookeeper_close joins the
    // handle's threads, so `w` is not used after it returns.
    zookeeper_close(zh);
    if (state == ZOO_EXPIRED_SESSION_STATE) {
      if (round > 0) return outcome::success();
      return make_error(errc::harness_failed, "expire session",
                        what + " on " + hosts +
                            ": not live (already expired or closed, or wrong password)");
    }
    if (state != ZOO_CONNECTED_STATE)
      return make_error(errc::harness_failed, "expire session",
                        what + " on " + hosts + ": " +
                            (state == ZOO_AUTH_FAILED_STATE ? std::string("authentication failed")
                                                            : "not confirmed expired within " +
                                                                  std::to_string(timeout.count()) +
                                                                  " ms"));
  }
}

} // namespace zkrecipes::testing
