// push-template: what the three programs share: where things live in
// ZooKeeper, and connecting.
//
//   <root>/config        the change notice (config recipe): its version is the config version
//   <root>/services/push-server/...   one ephemeral-sequential node per server (service registry)
//   <root>/election/...  the master election (leader latch)
//   <root>/health        the master's report on the ZooKeeper ensemble (JSON), rewritten periodically
#pragma once

#include "../common/process.hpp"

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

using examples::connect_zk;

} // namespace push_template
