// zkrecipes: the session — one ZooKeeper session, one dispatcher thread.
//
// Threading (design §1): the C client runs an I/O thread and a completion
// thread. zkrecipes never runs recipe logic or user code on them: every
// completion, watch event and state change is handed to the session's own
// dispatcher thread and runs there, in order. Blocking calls are for user
// threads; made on the dispatcher thread they return errc::would_deadlock
// instead of hanging.
//
// States (delivered to listeners in order, on the dispatcher thread):
//   connected    a new ZooKeeper session is established (first, and after lost)
//   suspended    the connection dropped; the session may still be alive, so
//                whatever it holds (locks, leadership) is in doubt
//   reconnected  the same session is back; watches were re-registered
//   lost         the session expired (told by the server, or suspended for
//                longer than the negotiated session timeout): its ephemeral
//                nodes and watches are gone. A new session is opened by itself.
//   closed       close() was called (or the session was destroyed)
//   auth_failed  the server refused the credentials; the session stays dead
//
// The handler contract of every async_* function: the handler is called
// exactly once; never from inside the initiating function; on the dispatcher
// thread; and on close() every pending handler and watch completes with
// errc::closed.
#pragma once

#include "zkrecipes/detail/config.hpp"
#include "zkrecipes/detail/dispatcher.hpp"
#include "zkrecipes/detail/unique_function.hpp"
#include "zkrecipes/error.hpp"
#include "zkrecipes/interceptor.hpp"
#include "zkrecipes/multi.hpp"
#include "zkrecipes/node.hpp"
#include "zkrecipes/path.hpp"
#include "zkrecipes/retry.hpp"

#include <chrono>
#include <concepts>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace zkrecipes {

/// The connection states a session reports to its listeners.
enum class session_state { connecting, connected, suspended, reconnected, lost, closed, auth_failed };

inline const char* to_string(session_state s) noexcept {
  switch (s) {
  case session_state::connecting: return "connecting";
  case session_state::connected: return "connected";
  case session_state::suspended: return "suspended";
  case session_state::reconnected: return "reconnected";
  case session_state::lost: return "lost";
  case session_state::closed: return "closed";
  case session_state::auth_failed: return "auth_failed";
  }
  return "?";
}

/// One state change.
struct session_event {
  session_state state;
  std::int64_t session_id; ///< the ZooKeeper session it concerns (the old one for lost)
};

/// Verbosity of the ZooKeeper C client's own log.
enum class log_level { quiet = 0, error = 1, warn = 2, info = 3, debug = 4 };

/// Route the C client's log: lines at `level` or more severe go to `sink`
/// (stderr when empty). Quiet by default.
/// \note The C client's log level is process-wide, so this setting is too.
void set_client_log(log_level level, std::function<void(std::string_view)> sink = {});

/// Credentials sent with add_auth when a ZooKeeper session opens.
struct auth_info {
  std::string scheme;     ///< e.g. "digest"
  std::string credential; ///< e.g. "user:password"
};

/// Settings of a session.
struct session_options {
  /// "host:port[,host:port...][/chroot]". With a chroot every path is
  /// relative to it, and the chroot node must exist.
  std::string connect_string = "127.0.0.1:2181";
  /// Requested session timeout; the server may negotiate it into its bounds.
  std::chrono::milliseconds session_timeout{10000};
  /// Bound on each blocking call. Zero: twice the session timeout plus 5 s.
  std::chrono::milliseconds operation_timeout{0};
  /// Sent (in order) on every new ZooKeeper session.
  std::vector<auth_info> auth;
  /// ACL of creates that name none.
  acl_list default_acl = open_acl_unsafe();
  /// Retries of idempotent operations (get, exists, children, sync, remove,
  /// ensure_path, remove_recursive) after transient errors.
  retry_policy retry{};
  /// After expiry, open a new ZooKeeper session (otherwise calls fail with session_expired).
  bool reopen_on_expiry = true;
  /// Declare the session lost when it stays suspended for the whole negotiated
  /// session timeout: by then the server has expired it, even if the client
  /// cannot hear so (a partition). Safety over liveness (design §5).
  bool lose_after_suspended_timeout = true;
};

/// A session's id and password, as ZooKeeper's clientid_t.
struct client_id {
  std::int64_t id = 0;
  std::string password; ///< 16 opaque bytes
};

/// A one-shot watch callback: `void(result<watch_event>)`. Called exactly
/// once: with the event, or with an error when the watch could not be set
/// (the read failed), the session expired or was closed.
using watcher = detail::unique_function<void(result<watch_event>)>;

using listener_id = std::uint64_t;

namespace detail {
struct session_core;
struct session_access;
}

/// Completion handler for a `result<T>`.
template <class H, class T>
concept handler_for = std::invocable<std::decay_t<H>&, result<T>> && std::move_constructible<std::decay_t<H>>;

/// One ZooKeeper session with its own dispatcher thread.
///
/// Move-only. A moved-from session may only be destroyed or assigned to.
/// The destructor closes the session (pending handlers get errc::closed).
class session {
public:
  /// Starts connecting and returns at once.
  /// \returns errc::invalid_argument for an empty connect string or a
  ///          non-positive timeout; errc::not_connected if the C client
  ///          refuses the connect string (e.g. a bad chroot).
  static result<session> open(session_options options);

  /// open() and wait_connected(timeout).
  static result<session> connect(session_options options, std::chrono::milliseconds timeout);

  session(session&& other) noexcept;
  session& operator=(session&& other) noexcept;
  session(const session&) = delete;
  session& operator=(const session&) = delete;
  ~session();

  /// Waits until connected (or reconnected).
  /// \returns errc::timed_out, errc::closed, or errc::would_deadlock on the dispatcher thread.
  result<void> wait_connected(std::chrono::milliseconds timeout) const;

  session_state state() const;
  /// True while connected or reconnected.
  bool connected() const;
  /// The current ZooKeeper session's id (0 before the first connect; after
  /// `lost`, still the old id until the next `connected`).
  std::int64_t session_id() const;
  /// Id and password of the current ZooKeeper session (for testing::expire_session).
  client_id id() const;
  /// The session timeout the server agreed to (0 before the first connect).
  std::chrono::milliseconds negotiated_timeout() const;
  const session_options& options() const;

  /// Adds a state listener, called on the dispatcher thread for every state
  /// change delivered after this call, in order.
  /// \note Events are delivered through the dispatcher, so a listener added
  ///       right after connect() may still hear that first `connected`. A
  ///       listener that throws is reported to the log sink; the others still run.
  listener_id add_listener(std::function<void(const session_event&)> listener);
  /// Removes a listener. Once this returns the listener is not called again
  /// (off the dispatcher it waits for a listener call in progress; do not
  /// hold a lock that a listener takes). Safe to call from a listener.
  void remove_listener(listener_id id);

  /// Closes the ZooKeeper session (its ephemeral nodes go at once). Pending
  /// handlers and watches complete with errc::closed; later calls fail with it.
  /// \returns errc::closed if already closed.
  result<void> close();

  /// Runs `task` on the dispatcher thread, after everything queued before it.
  void post(detail::unique_function<void()> task);
  /// Runs `task` on the dispatcher thread after `delay`; returns an id for cancel_timer.
  /// \note When the session is destroyed, timers still pending run at once
  ///       (so that whatever waits on them completes); check for `closed`.
  std::uint64_t post_after(std::chrono::milliseconds delay, detail::unique_function<void()> task);
  /// False if the timer already ran or was cancelled.
  bool cancel_timer(std::uint64_t id);
  /// True on the dispatcher thread (where handlers run).
  bool on_dispatcher_thread() const;

  /// A handle to this session whose operations pass through `chain`
  /// (docs/interceptors.md). Give it to recipes in place of the session:
  /// every operation they send is seen. It shares the session (closing it
  /// closes the session) but does not close it when destroyed; keep the
  /// session alive while it is used. A null or empty chain gives a plain
  /// handle; the chain replaces any chain of this handle.
  /// On such a handle post() and post_after() carry the current trace id
  /// to the task, and completion handlers run with their operation's.
  session intercepted(std::shared_ptr<const interceptor_chain> chain) const;
  /// The chain this handle's operations pass through (null when none).
  const std::shared_ptr<const interceptor_chain>& interceptors() const noexcept { return chain_; }

  // ---- operations -------------------------------------------------------
  // Each has an async form taking a `void(result<T>)` handler and a blocking
  // form for user threads, bounded by options().operation_timeout.

  /// Creates a node. Handler: `void(result<created_node>)`.
  /// Errors: invalid_path, payload_too_large, invalid_argument (ttl) before
  /// sending; node_exists, no_node (no parent), no_children_for_ephemerals,
  /// no_auth, invalid_acl, connection_loss (may have applied: not retried).
  /// Watches fired: created on the path, child on the parent.
  template <class Handler>
    requires handler_for<Handler, created_node>
  void async_create(std::string_view path, std::string_view data, create_options opts, Handler&& h) {
    do_create(path, data, std::move(opts), std::forward<Handler>(h));
  }
  result<created_node> create(std::string_view path, std::string_view data = {},
                              create_options opts = {});

  /// Reads data and stat. Handler: `void(result<node>)`. Errors: no_node,
  /// no_auth. With a watcher: fires on changed or deleted.
  template <class Handler>
    requires handler_for<Handler, node>
  void async_get(std::string_view path, Handler&& h) {
    do_get(path, watcher{}, std::forward<Handler>(h));
  }
  template <class Handler>
    requires handler_for<Handler, node>
  void async_get(std::string_view path, watcher w, Handler&& h) {
    do_get(path, std::move(w), std::forward<Handler>(h));
  }
  result<node> get(std::string_view path, watcher w = {});

  /// Writes data if the version matches (any_version: always).
  /// Handler: `void(result<stat>)`. Errors: no_node, bad_version,
  /// payload_too_large. Not retried after connection loss.
  /// Watches fired: changed on the path.
  template <class Handler>
    requires handler_for<Handler, stat>
  void async_set(std::string_view path, std::string_view data, std::int32_t version, Handler&& h) {
    do_set(path, data, version, std::forward<Handler>(h));
  }
  result<zkrecipes::stat> set(std::string_view path, std::string_view data,
                              std::int32_t version = any_version);

  /// Removes a node if the version matches. Handler: `void(result<void>)`.
  /// Errors: no_node, bad_version, not_empty. Retried after connection loss;
  /// a retry that finds the node gone reports success.
  /// \note With any_version, a retry after a lost reply removes a node another
  ///       client re-created meanwhile; pass the version to rule that out.
  /// Watches fired: deleted on the path, child on the parent.
  template <class Handler>
    requires handler_for<Handler, void>
  void async_remove(std::string_view path, std::int32_t version, Handler&& h) {
    do_remove(path, version, std::forward<Handler>(h));
  }
  result<void> remove(std::string_view path, std::int32_t version = any_version);

  /// The node's stat, or nullopt if it does not exist.
  /// Handler: `void(result<std::optional<stat>>)`. With a watcher: fires on
  /// created (if absent), or changed/deleted (if present).
  template <class Handler>
    requires handler_for<Handler, std::optional<zkrecipes::stat>>
  void async_exists(std::string_view path, Handler&& h) {
    do_exists(path, watcher{}, std::forward<Handler>(h));
  }
  template <class Handler>
    requires handler_for<Handler, std::optional<zkrecipes::stat>>
  void async_exists(std::string_view path, watcher w, Handler&& h) {
    do_exists(path, std::move(w), std::forward<Handler>(h));
  }
  result<std::optional<zkrecipes::stat>> exists(std::string_view path, watcher w = {});

  /// The node's children (names, unsorted) and its stat.
  /// Handler: `void(result<children_list>)`. Errors: no_node. With a
  /// watcher: fires on child (a child created or removed) or deleted.
  template <class Handler>
    requires handler_for<Handler, children_list>
  void async_children(std::string_view path, Handler&& h) {
    do_children(path, watcher{}, std::forward<Handler>(h));
  }
  template <class Handler>
    requires handler_for<Handler, children_list>
  void async_children(std::string_view path, watcher w, Handler&& h) {
    do_children(path, std::move(w), std::forward<Handler>(h));
  }
  result<children_list> children(std::string_view path, watcher w = {});

  /// Applies all operations or none. Handler: `void(result<std::vector<op_result>>)`.
  /// On failure the error names the first failing operation, e.g.
  /// "multi op 1 (check /cfg): bad version". Not retried.
  template <class Handler>
    requires handler_for<Handler, std::vector<op_result>>
  void async_multi(const multi_op& ops, Handler&& h) {
    do_multi(ops, std::forward<Handler>(h));
  }
  result<std::vector<op_result>> multi(const multi_op& ops);

  /// Waits until the server this session talks to has caught up with the
  /// leader (a read after sync sees every write committed before it).
  /// Handler: `void(result<void>)`.
  template <class Handler>
    requires handler_for<Handler, void>
  void async_sync(std::string_view path, Handler&& h) {
    do_sync(path, std::forward<Handler>(h));
  }
  result<void> sync(std::string_view path);

  /// Adds credentials to the session (kept and sent again on every new
  /// ZooKeeper session). Handler: `void(result<void>)`.
  template <class Handler>
    requires handler_for<Handler, void>
  void async_add_auth(std::string_view scheme, std::string_view credential, Handler&& h) {
    do_add_auth(scheme, credential, std::forward<Handler>(h));
  }
  result<void> add_auth(std::string_view scheme, std::string_view credential);

  /// Creates every missing node of a path as persistent (or `mode`, which
  /// must be persistent or container), tolerating nodes that exist or are
  /// created concurrently. The creates are pipelined: one round trip. When
  /// the last create fails for a lasting reason (e.g. no_auth because a
  /// parent refuses CREATE), one exists call decides: a path that exists is
  /// success. Nodes it creates get `acl` (unset: the session's default);
  /// nodes that exist keep theirs.
  /// Handler: `void(result<void>)`.
  template <class Handler>
    requires handler_for<Handler, void>
  void async_ensure_path(std::string_view path, Handler&& h) {
    do_ensure_path(path, create_mode::persistent, std::nullopt, std::forward<Handler>(h));
  }
  template <class Handler>
    requires handler_for<Handler, void>
  void async_ensure_path(std::string_view path, create_mode mode, Handler&& h) {
    do_ensure_path(path, mode, std::nullopt, std::forward<Handler>(h));
  }
  template <class Handler>
    requires handler_for<Handler, void>
  void async_ensure_path(std::string_view path, create_mode mode, std::optional<acl_list> acl, Handler&& h) {
    do_ensure_path(path, mode, std::move(acl), std::forward<Handler>(h));
  }
  result<void> ensure_path(std::string_view path, create_mode mode = create_mode::persistent,
                           std::optional<acl_list> acl = std::nullopt);

  /// Removes a node and everything below it, tolerating nodes removed
  /// concurrently; a missing node is success. Children are listed and
  /// removed level by level, pipelined. Handler: `void(result<void>)`.
  template <class Handler>
    requires handler_for<Handler, void>
  void async_remove_recursive(std::string_view path, Handler&& h) {
    do_remove_recursive(path, std::forward<Handler>(h));
  }
  result<void> remove_recursive(std::string_view path);

private:
  friend struct detail::session_access;
  explicit session(std::shared_ptr<detail::session_core> core, bool borrowed = false,
                   std::shared_ptr<const interceptor_chain> chain = {})
      : core_(std::move(core)), borrowed_(borrowed), chain_(std::move(chain)) {}
  void release() noexcept;

  void do_create(std::string_view, std::string_view, create_options,
                 detail::unique_function<void(result<created_node>)>);
  template <class Op, class T, class Issue>
  void do_read(const char* name, std::string_view path, watcher w,
               detail::unique_function<void(result<T>)> h, Issue issue);
  void do_get(std::string_view, watcher, detail::unique_function<void(result<node>)>);
  void do_set(std::string_view, std::string_view, std::int32_t,
              detail::unique_function<void(result<zkrecipes::stat>)>);
  void do_remove(std::string_view, std::int32_t, detail::unique_function<void(result<void>)>);
  void do_exists(std::string_view, watcher,
                 detail::unique_function<void(result<std::optional<zkrecipes::stat>>)>);
  void do_children(std::string_view, watcher, detail::unique_function<void(result<children_list>)>);
  void do_multi(const multi_op&, detail::unique_function<void(result<std::vector<op_result>>)>);
  void do_sync(std::string_view, detail::unique_function<void(result<void>)>);
  void do_add_auth(std::string_view, std::string_view, detail::unique_function<void(result<void>)>);
  void do_ensure_path(std::string_view, create_mode, std::optional<acl_list>,
                      detail::unique_function<void(result<void>)>);
  void do_remove_recursive(std::string_view, detail::unique_function<void(result<void>)>);

  /// Runs an async operation and waits for it, bounded by operation_timeout.
  template <class T, class Start> result<T> blocking(const char* op, std::string_view path, Start&& start);

  std::shared_ptr<detail::session_core> core_;
  bool borrowed_ = false; ///< a handle used inside the library: does not close on destruction
  std::shared_ptr<const interceptor_chain> chain_; ///< null: operations go straight to the core
};

namespace detail {
/// For library internals that continue an operation across callbacks: a
/// handle to the same session that stays valid if the user's session object
/// is moved, and does not close the session when dropped.
struct session_access {
  /// Keeps the handle's interceptor chain: a recipe's later operations are seen too.
  static std::shared_ptr<session> borrow(const session& s) {
    return std::shared_ptr<session>(new session(s.core_, true, s.chain_));
  }
  /// Without the chain: the inner steps of one intercepted operation
  /// (ensure_path, remove_recursive) are not seen a second time.
  static std::shared_ptr<session> borrow_plain(const session& s) {
    return std::shared_ptr<session>(new session(s.core_, true));
  }
};
} // namespace detail

} // namespace zkrecipes

#if !defined(ZKRECIPES_SEPARATE_COMPILATION)
#include "zkrecipes/impl/session.ipp"
#endif
