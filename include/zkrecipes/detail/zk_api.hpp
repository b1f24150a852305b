// The one seam around the ZooKeeper C client.
//
// Every completion's return code passes through filter() before zkrecipes
// looks at it, so a test can replace ZOK by ZCONNECTIONLOSS *after* the server
// applied a write: the one fault a TCP proxy cannot produce (the reply is
// lost although the request was acted on).
#pragma once

#ifndef THREADED
#define THREADED 1
#endif
#include <zookeeper/zookeeper.h>

#include <atomic>

namespace zkrecipes::detail::zk_api {

/// Receives the operation name ("create", "get"...), the path and the code the
/// server returned; returns the code zkrecipes should see.
using completion_hook = int (*)(const char* operation, const char* path, int rc);

inline std::atomic<completion_hook>& hook() noexcept {
  static std::atomic<completion_hook> h{nullptr};
  return h;
}

/// Install (or with nullptr remove) the hook. For tests only.
inline void set_completion_hook(completion_hook h) noexcept {
  hook().store(h, std::memory_order_release);
}

inline int filter(const char* operation, const char* path, int rc) noexcept {
  auto h = hook().load(std::memory_order_acquire);
  return h ? h(operation, path, rc) : rc;
}

} // namespace zkrecipes::detail::zk_api
