// push-template: what the three programs share: where things live in
// ZooKeeper, and connecting.
//
//   <root>/config        the change notice (config recipe): its version is the config version
//   <root>/services/push-server/...   one ephemeral-sequential node per server (service registry)
//   <root>/election/...  the master election (leader latch)
//   <root>/health        the master's report on the ZooKeeper ensemble (JSON), rewritten periodically
#pragma once

#include <zkrecipes/zkrecipes.hpp>

#include <chrono>
#include <cstdio>
#include <string>

namespace push_template {

namespace zkr = zkrecipes;

inline constexpr const char* service_name = "push-server";

struct zk_paths {
  std::string root;
  std::string config() const { return root + "/config"; }
  std::string services() const { return root + "/services"; }
  std::string election() const { return root + "/election"; }
  std::string health() const { return root + "/health"; }
};

/// Connects, waiting up to `wait`; prints why on failure.
inline zkr::result<zkr::session> connect_zk(const std::string& connect, std::chrono::milliseconds session_timeout,
                                            std::chrono::milliseconds wait) {
  zkr::session_options o;
  o.connect_string = connect;
  o.session_timeout = session_timeout;
  o.operation_timeout = std::chrono::seconds(10);
  return zkr::session::connect(o, wait);
}

} // namespace push_template
