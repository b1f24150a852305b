// Plain values exchanged with ZooKeeper: stat, create modes, ACLs, nodes,
// watch events.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace zkrecipes {

/// "Any version": set/remove/check without a compare-and-set.
inline constexpr std::int32_t any_version = -1;

/// A znode's metadata, as ZooKeeper's Stat.
struct stat {
  std::int64_t czxid = 0;          ///< zxid of the create (a ready fencing token)
  std::int64_t mzxid = 0;          ///< zxid of the last data change
  std::int64_t ctime = 0;          ///< creation time, ms since the epoch
  std::int64_t mtime = 0;          ///< last modification time, ms since the epoch
  std::int32_t version = 0;        ///< data version (restarts at 0 on re-create: compare czxid)
  std::int32_t cversion = 0;       ///< children version
  std::int32_t aversion = 0;       ///< ACL version
  std::int64_t ephemeral_owner = 0; ///< owning session id, 0 if not ephemeral
  std::int32_t data_length = 0;
  std::int32_t num_children = 0;
  std::int64_t pzxid = 0;          ///< zxid of the last children change
  friend bool operator==(const stat&, const stat&) = default;
};

/// How a node is created.
enum class create_mode {
  persistent,
  ephemeral,             ///< removed when the creating session ends; no children
  persistent_sequential, ///< a 10-digit counter kept by the parent is appended
  ephemeral_sequential,
  container,             ///< the server removes it some time after its last child goes
  persistent_with_ttl,   ///< removed after ttl without change once childless (server needs extended types)
  persistent_sequential_with_ttl,
};

/// True for the modes whose name gets a sequence suffix.
constexpr bool is_sequential(create_mode m) noexcept {
  return m == create_mode::persistent_sequential || m == create_mode::ephemeral_sequential ||
         m == create_mode::persistent_sequential_with_ttl;
}
constexpr bool is_ephemeral(create_mode m) noexcept {
  return m == create_mode::ephemeral || m == create_mode::ephemeral_sequential;
}
constexpr bool has_ttl(create_mode m) noexcept {
  return m == create_mode::persistent_with_ttl || m == create_mode::persistent_sequential_with_ttl;
}

/// ACL permission bits (ZooKeeper's ZOO_PERM_*).
namespace perms {
inline constexpr int read = 1;
inline constexpr int write = 2;
inline constexpr int create = 4;
inline constexpr int remove = 8; ///< ZooKeeper's DELETE
inline constexpr int admin = 16;
inline constexpr int all = 31;
} // namespace perms

/// One ACL entry: permissions granted to an identity of a scheme.
struct acl {
  int perms = perms::all;
  std::string scheme; ///< "world", "auth", "digest", "ip", "sasl", "x509"
  std::string id;     ///< "anyone" for world; "user:base64(sha1)" for digest
  friend bool operator==(const acl&, const acl&) = default;
};
using acl_list = std::vector<acl>;

/// Everyone may do everything (ZooKeeper's OPEN_ACL_UNSAFE).
inline acl_list open_acl_unsafe() { return {{perms::all, "world", "anyone"}}; }
/// Everyone may read (READ_ACL_UNSAFE).
inline acl_list read_acl_unsafe() { return {{perms::read, "world", "anyone"}}; }
/// Only the identities the creating session authenticated as (CREATOR_ALL_ACL).
/// The session must have called add_auth first, or the create fails with invalid_acl.
inline acl_list creator_all_acl() { return {{perms::all, "auth", ""}}; }
/// The creating session's identities may do everything; everyone may read
/// (readers such as config subscribers or discovery need no credentials).
inline acl_list creator_all_world_read_acl() { return {{perms::all, "auth", ""}, {perms::read, "world", "anyone"}}; }

/// Options of a create: `{create_mode::ephemeral}`, `{mode, acl}`, `{mode, {}, ttl}`.
struct create_options {
  create_options() = default;
  create_options(create_mode m, std::optional<acl_list> a = std::nullopt, // NOLINT: implicit
                 std::chrono::milliseconds t = std::chrono::milliseconds(0))
      : mode(m), acl(std::move(a)), ttl(t) {}

  create_mode mode = create_mode::persistent;
  std::optional<acl_list> acl;        ///< unset: the session's default ACL
  std::chrono::milliseconds ttl{0};   ///< only for the *_with_ttl modes; must be > 0 there
};

// GCC 12 reports a false "may be used uninitialized" for these structs when
// a result<> holding an error is moved (it cannot see which union member is
// live); the diagnostic is attributed to the member declarations here.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

/// A node's data and stat, as read by get.
struct node {
  std::string data;
  zkrecipes::stat stat;
};

/// What a create made: the actual path (with the sequence suffix, without any chroot) and stat.
struct created_node {
  std::string path;
  zkrecipes::stat stat;
};

/// A node's children (names, not paths) and the parent's stat.
struct children_list {
  std::vector<std::string> names;
  zkrecipes::stat stat;
};

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

/// What fired a watch. The event says only that something changed: read again.
enum class event_type { created, deleted, changed, child };

struct watch_event {
  event_type type;
  std::string path;
};

inline const char* to_string(event_type t) noexcept {
  switch (t) {
  case event_type::created: return "created";
  case event_type::deleted: return "deleted";
  case event_type::changed: return "changed";
  case event_type::child: return "child";
  }
  return "?";
}

} // namespace zkrecipes
