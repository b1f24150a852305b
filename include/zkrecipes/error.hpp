// zkrecipes: errors as values.
//
// Two error enums, each with its own std::error_category:
//   zk_errc  keeps ZooKeeper's own numbers (ZNONODE is -101), so a code read
//            from the C client converts without a table;
//   errc     holds what zkrecipes itself reports (invalid_path, timed_out...).
// Both map to std::errc where one fits, so `e == std::errc::timed_out` works.
//
// result<T> is outcome::std_result<T, error>, where `error` carries the code
// plus the operation and path that failed ("create /app/lock: node exists").
// Calling .value() on a failed result throws std::system_error with that text.
#pragma once

#include <boost/outcome/std_result.hpp>
#include <boost/outcome/try.hpp>

#include <ostream>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

namespace zkrecipes {

namespace outcome = BOOST_OUTCOME_V2_NAMESPACE;

/// ZooKeeper's return codes, with the C client's numeric values.
enum class zk_errc : int {
  ok = 0,
  system_error = -1,
  runtime_inconsistency = -2,
  data_inconsistency = -3,
  /// The connection dropped before the reply arrived. A write may or may not
  /// have been applied: it is possible to see this and have the operation
  /// succeed.
  connection_loss = -4,
  marshalling_error = -5,
  unimplemented = -6,
  operation_timeout = -7,
  bad_arguments = -8,
  invalid_state = -9,
  new_config_no_quorum = -13,
  reconfig_in_progress = -14,
  ssl_connection_error = -15,
  api_error = -100,
  no_node = -101,
  no_auth = -102,
  bad_version = -103,
  no_children_for_ephemerals = -108,
  node_exists = -110,
  not_empty = -111,
  /// The server ended the session; its ephemeral nodes and watches are gone.
  /// The zkrecipes session opens a new ZooKeeper session by itself.
  session_expired = -112,
  invalid_callback = -113,
  invalid_acl = -114,
  auth_failed = -115,
  closing = -116,
  nothing = -117,
  session_moved = -118,
  not_readonly = -119,
  ephemeral_on_local_session = -120,
  no_watcher = -121,
  reconfig_disabled = -123,
  session_closed_require_sasl_auth = -124,
  throttled_op = -127,
};

/// Errors zkrecipes reports itself (never sent by a server).
enum class errc : int {
  invalid_path = 1,      ///< a path or node name breaks ZooKeeper's rules
  invalid_argument,      ///< another argument is out of range
  payload_too_large,     ///< data over ZKRECIPES_MAX_PAYLOAD (1 MiB - 4 KiB)
  timed_out,             ///< a bounded wait ran out
  closed,                ///< the session or recipe was closed
  lock_lost,             ///< a held lock or lease was lost (session expired)
  would_deadlock,        ///< a blocking call made on the session's dispatcher thread
  not_connected,         ///< no ZooKeeper handle could be opened
  decode_failed,         ///< a codec could not decode stored bytes
  encode_failed,         ///< a codec could not encode a value
  already_started,       ///< start() on a started object
  not_started,           ///< an operation that needs start() first
  harness_failed,        ///< the test harness could not start or drive a server
  cancelled,             ///< a wait was given up through its stop token
  not_held,              ///< release or unlock of something not held
  unavailable,           ///< no instance of a service is up
};

namespace detail {

class zk_category_impl final : public std::error_category {
public:
  const char* name() const noexcept override { return "zookeeper"; }

  std::string message(int c) const override {
    switch (static_cast<zk_errc>(c)) {
    case zk_errc::ok: return "ok";
    case zk_errc::system_error: return "system error";
    case zk_errc::runtime_inconsistency: return "runtime inconsistency";
    case zk_errc::data_inconsistency: return "data inconsistency";
    case zk_errc::connection_loss: return "connection loss";
    case zk_errc::marshalling_error: return "marshalling error";
    case zk_errc::unimplemented: return "unimplemented";
    case zk_errc::operation_timeout: return "operation timeout";
    case zk_errc::bad_arguments: return "bad arguments";
    case zk_errc::invalid_state: return "invalid handle state";
    case zk_errc::new_config_no_quorum: return "new config has no quorum";
    case zk_errc::reconfig_in_progress: return "reconfig in progress";
    case zk_errc::ssl_connection_error: return "ssl connection error";
    case zk_errc::api_error: return "api error";
    case zk_errc::no_node: return "no node";
    case zk_errc::no_auth: return "not authorised";
    case zk_errc::bad_version: return "bad version";
    case zk_errc::no_children_for_ephemerals: return "ephemeral nodes cannot have children";
    case zk_errc::node_exists: return "node exists";
    case zk_errc::not_empty: return "node has children";
    case zk_errc::session_expired: return "session expired";
    case zk_errc::invalid_callback: return "invalid callback";
    case zk_errc::invalid_acl: return "invalid acl";
    case zk_errc::auth_failed: return "authentication failed";
    case zk_errc::closing: return "zookeeper handle closing";
    case zk_errc::nothing: return "no server responses to process";
    case zk_errc::session_moved: return "session moved to another server";
    case zk_errc::not_readonly: return "write sent to a read-only server";
    case zk_errc::ephemeral_on_local_session: return "ephemeral node on a local session";
    case zk_errc::no_watcher: return "no such watcher";
    case zk_errc::reconfig_disabled: return "reconfig disabled";
    case zk_errc::session_closed_require_sasl_auth: return "session closed: server requires sasl auth";
    case zk_errc::throttled_op: return "operation throttled";
    }
    return "zookeeper error " + std::to_string(c);
  }

  std::error_condition default_error_condition(int c) const noexcept override {
    switch (static_cast<zk_errc>(c)) {
    case zk_errc::connection_loss: return std::errc::connection_aborted;
    case zk_errc::operation_timeout: return std::errc::timed_out;
    case zk_errc::bad_arguments: return std::errc::invalid_argument;
    case zk_errc::no_node: return std::errc::no_such_file_or_directory;
    case zk_errc::no_auth: return std::errc::permission_denied;
    case zk_errc::auth_failed: return std::errc::permission_denied;
    case zk_errc::node_exists: return std::errc::file_exists;
    case zk_errc::not_empty: return std::errc::directory_not_empty;
    case zk_errc::unimplemented: return std::errc::function_not_supported;
    default: return std::error_condition(c, *this);
    }
  }
};

class errc_category_impl final : public std::error_category {
public:
  const char* name() const noexcept override { return "zkrecipes"; }

  std::string message(int c) const override {
    switch (static_cast<errc>(c)) {
    case errc::invalid_path: return "invalid path";
    case errc::invalid_argument: return "invalid argument";
    case errc::payload_too_large: return "payload too large";
    case errc::timed_out: return "timed out";
    case errc::closed: return "closed";
    case errc::lock_lost: return "lock lost";
    case errc::would_deadlock: return "blocking call on the dispatcher thread would deadlock";
    case errc::not_connected: return "not connected";
    case errc::decode_failed: return "decode failed";
    case errc::encode_failed: return "encode failed";
    case errc::already_started: return "already started";
    case errc::not_started: return "not started";
    case errc::harness_failed: return "test harness failure";
    case errc::cancelled: return "cancelled";
    case errc::not_held: return "not held";
    case errc::unavailable: return "no instance available";
    }
    return "zkrecipes error " + std::to_string(c);
  }

  std::error_condition default_error_condition(int c) const noexcept override {
    switch (static_cast<errc>(c)) {
    case errc::invalid_path: return std::errc::invalid_argument;
    case errc::invalid_argument: return std::errc::invalid_argument;
    case errc::payload_too_large: return std::errc::message_size;
    case errc::timed_out: return std::errc::timed_out;
    case errc::cancelled: return std::errc::operation_canceled;
    case errc::closed: return std::errc::operation_canceled;
    case errc::would_deadlock: return std::errc::resource_deadlock_would_occur;
    case errc::not_connected: return std::errc::not_connected;
    default: return std::error_condition(c, *this);
    }
  }
};

} // namespace detail

/// The category of zk_errc codes (name "zookeeper").
inline const std::error_category& zk_category() noexcept {
  static const detail::zk_category_impl c;
  return c;
}

/// The category of errc codes (name "zkrecipes").
inline const std::error_category& errc_category() noexcept {
  static const detail::errc_category_impl c;
  return c;
}

inline std::error_code make_error_code(zk_errc e) noexcept {
  return {static_cast<int>(e), zk_category()};
}

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), errc_category()};
}

} // namespace zkrecipes

template <> struct std::is_error_code_enum<zkrecipes::zk_errc> : std::true_type {};
template <> struct std::is_error_code_enum<zkrecipes::errc> : std::true_type {};

namespace zkrecipes {

/// An error code with the operation and path that produced it.
///
/// Compares equal to error code enums and to std::errc conditions through its
/// code, so `r.error() == zk_errc::no_node` and
/// `r.error() == std::errc::timed_out` both read naturally.
class error {
public:
  error() = default;
  error(std::error_code code) : code_(code) {} // NOLINT: implicit on purpose
  error(zk_errc c) : code_(make_error_code(c)) {} // NOLINT
  error(errc c) : code_(make_error_code(c)) {}    // NOLINT

  /// \param code what went wrong
  /// \param operation a literal naming the call ("create", "get"...)
  /// \param path the path it was about, or any detail text; may be empty
  error(std::error_code code, const char* operation, std::string path)
      : code_(code), operation_(operation), path_(std::move(path)) {}

  const std::error_code& code() const noexcept { return code_; }
  const char* operation() const noexcept { return operation_; }
  const std::string& path() const noexcept { return path_; }

  /// "create /app/lock: node exists", or just the code's text without context.
  std::string message() const {
    std::string m;
    if (operation_ && *operation_) m += operation_;
    if (!path_.empty()) {
      if (!m.empty()) m += ' ';
      m += path_;
    }
    if (!m.empty()) m += ": ";
    m += code_.message();
    return m;
  }

  explicit operator bool() const noexcept { return static_cast<bool>(code_); }

  friend bool operator==(const error& a, const error& b) noexcept { return a.code_ == b.code_; }
  friend bool operator==(const error& a, const std::error_code& b) noexcept {
    return a.code_ == b;
  }
  friend bool operator==(const error& a, const std::error_condition& b) noexcept {
    return a.code_ == b;
  }
  template <class E>
    requires(std::is_error_code_enum_v<E> || std::is_error_condition_enum_v<E>)
  friend bool operator==(const error& a, E b) noexcept {
    if constexpr (std::is_error_code_enum_v<E>)
      return a.code_ == make_error_code(b);
    else
      return a.code_ == std::make_error_condition(b);
  }

  friend std::ostream& operator<<(std::ostream& os, const error& e) { return os << e.message(); }

private:
  std::error_code code_;
  const char* operation_ = nullptr;
  std::string path_;
};

/// Outcome hook: lets std_result<T, error> use the error_code policy.
inline std::error_code make_error_code(const error& e) noexcept { return e.code(); }

/// Outcome hook: `.value()` on a failed result throws std::system_error whose
/// what() names the operation and path.
[[noreturn]] inline void outcome_throw_as_system_error_with_payload(const error& e) {
  std::string ctx;
  if (e.operation() && *e.operation()) ctx += e.operation();
  if (!e.path().empty()) {
    if (!ctx.empty()) ctx += ' ';
    ctx += e.path();
  }
  throw std::system_error(e.code(), ctx);
}

/// The result of every fallible zkrecipes call.
template <class T> using result = outcome::std_result<T, error>;

/// Shorthand for building an error with context.
inline error make_error(std::error_code c, const char* operation, std::string path = {}) {
  return error(c, operation, std::move(path));
}
inline error make_error(zk_errc c, const char* operation, std::string path = {}) {
  return error(make_error_code(c), operation, std::move(path));
}
inline error make_error(errc c, const char* operation, std::string path = {}) {
  return error(make_error_code(c), operation, std::move(path));
}

/// True for a ZooKeeper connection loss (a write's outcome is unknown).
inline bool is_connection_loss(const std::error_code& c) noexcept {
  return c == make_error_code(zk_errc::connection_loss);
}
inline bool is_connection_loss(const error& e) noexcept { return is_connection_loss(e.code()); }

/// True when the ZooKeeper session behind the call expired.
inline bool is_session_expired(const std::error_code& c) noexcept {
  return c == make_error_code(zk_errc::session_expired);
}
inline bool is_session_expired(const error& e) noexcept { return is_session_expired(e.code()); }

/// Transient errors where retrying an idempotent operation may succeed.
inline bool is_retryable(const std::error_code& c) noexcept {
  return c == make_error_code(zk_errc::connection_loss) ||
         c == make_error_code(zk_errc::operation_timeout) ||
         c == make_error_code(zk_errc::session_moved) ||
         c == make_error_code(zk_errc::throttled_op);
}
inline bool is_retryable(const error& e) noexcept { return is_retryable(e.code()); }

/// Map a C client return code to an error with context (ok maps to no error).
inline error zk_error(int rc, const char* operation, std::string path = {}) {
  return error(make_error_code(static_cast<zk_errc>(rc)), operation, std::move(path));
}

} // namespace zkrecipes
