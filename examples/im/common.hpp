// im: what the three programs share: where things live in ZooKeeper, and
// connecting. See examples/im/README.md.
//
//   <root>/services/im-server/...  one ephemeral-sequential node per server (service registry)
//   <root>/accounts/ids/<userId>   the account: {"userId","name"}          (persistent)
//   <root>/accounts/names/<name>   the name's owner: userId                 (persistent)
//   <root>/accounts/next           the user id generator
//   <root>/logins/<userId>         a route's pending login: {"token","server","name"}
//   <root>/routes/<userId>         the user's route (EPHEMERAL, the server's session):
//                                  {"userId","name","server","host","socket","http","token"}
#pragma once

#include "protocol.hpp"
#include "../common/process.hpp"

#include <zkrecipes/zkrecipes.hpp>

#include <chrono>
#include <cstdio>
#include <random>
#include <string>

namespace im {

namespace zkr = zkrecipes;

inline constexpr const char* service_name = "im-server";

struct zk_paths {
  std::string root;
  std::string services() const { return root + "/services"; }
  std::string accounts() const { return root + "/accounts"; }
  std::string account_id(const std::string& id) const { return root + "/accounts/ids/" + id; }
  std::string account_name(const std::string& n) const { return root + "/accounts/names/" + n; }
  std::string id_generator() const { return root + "/accounts/next"; }
  std::string logins() const { return root + "/logins"; }
  std::string login(const std::string& id) const { return root + "/logins/" + id; }
  std::string routes() const { return root + "/routes"; }
  std::string route(const std::string& id) const { return root + "/routes/" + id; }
};

using examples::connect_zk;

/// Random bits as hex, from the kernel (std::random_device reads /dev/urandom
/// here): a login token must not be guessable from earlier ones.
inline std::string random_hex(int bytes = 16) {
  thread_local std::random_device rd;
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < bytes; ++i) {
    const auto b = static_cast<unsigned>(rd() & 0xff);
    out += hex[b >> 4];
    out += hex[b & 15];
  }
  return out;
}

} // namespace im
