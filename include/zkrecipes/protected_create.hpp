// Protected create: a sequential (usually ephemeral) create that survives a
// connection loss without leaving an orphan node.
//
// After ZCONNECTIONLOSS a create may or may not have happened. Retrying
// blindly can leave a second node that nobody owns in the recipe's eyes but
// that the session keeps alive (an ephemeral-sequential orphan blocks a lock
// until the session ends). So the node name carries an id unique to this
// create, "_c_<32 hex>-<name>"; after a connection loss we list the parent
// and adopt the node carrying our id, instead of creating another.
//
// Adoption is allowed only when the node's ephemeral owner is the session's
// *current* ZooKeeper session: after an expiry the old session's node can
// still be listed for a moment, and adopting it would grant a lock twice
// (apache/curator issue 1121, CURATOR-604).
//
// Round trips: 1 when nothing goes wrong; after a connection loss, one
// children listing and one exists per candidate, then the create again if
// no node of ours is found.
#pragma once

#include "zkrecipes/error.hpp"
#include "zkrecipes/node.hpp"
#include "zkrecipes/path.hpp"
#include "zkrecipes/session.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace zkrecipes {

/// Options of a protected create.
struct protected_options {
  create_mode mode = create_mode::ephemeral_sequential;
  std::optional<acl_list> acl;
  std::chrono::milliseconds ttl{0}; ///< for the *_with_ttl modes only
  /// Bound on creates, and separately on look-ups after an ambiguous error
  /// (each look-up is one children listing plus one exists per candidate).
  int max_attempts = 5;
  /// The 32-hex-digit id to mark the node with; empty for a fresh random one.
  /// Tests set it to stage a node of another session carrying the same id.
  /// Reusing the id of a node you still own creates a second node (in a
  /// sequential mode; otherwise the create fails with node_exists).
  std::string id;
};

/// The prefix that marks a protected node name.
inline constexpr std::string_view protected_marker = "_c_";

/// A fresh id for one protected create (32 hex characters).
inline std::string make_protected_id() {
  thread_local std::mt19937_64 rng{[] {
    std::random_device rd;
    return (std::uint64_t(rd()) << 32) ^ rd();
  }()};
  static constexpr char hex[] = "0123456789abcdef";
  std::string id(32, '0');
  for (int half = 0; half < 2; ++half) {
    std::uint64_t v = rng();
    for (int i = 0; i < 16; ++i) id[std::size_t(half * 16 + i)] = hex[(v >> (i * 4)) & 15];
  }
  return id;
}

/// "_c_<id>-<name>": the node name a protected create asks for (the server
/// appends the sequence number for sequential modes).
inline std::string protected_name(std::string_view id, std::string_view name) {
  std::string out(protected_marker);
  out += id;
  out += '-';
  out += name;
  return out;
}

/// The id of a protected node name, or nullopt if it is not one.
inline std::optional<std::string_view> protected_id_of(std::string_view node_name) noexcept {
  if (node_name.substr(0, protected_marker.size()) != protected_marker) return std::nullopt;
  auto rest = node_name.substr(protected_marker.size());
  if (rest.size() < 33 || rest[32] != '-') return std::nullopt;
  for (char c : rest.substr(0, 32))
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return std::nullopt;
  return rest.substr(0, 32);
}

/// The name without its protection marker ("lock-0000000003" for
/// "_c_<id>-lock-0000000003"); other names are returned unchanged.
inline std::string_view strip_protected(std::string_view node_name) noexcept {
  if (!protected_id_of(node_name)) return node_name;
  return node_name.substr(protected_marker.size() + 33);
}

namespace detail {

inline std::mt19937_64& backoff_rng() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return rng;
}

struct protected_create_op : std::enable_shared_from_this<protected_create_op> {
  std::shared_ptr<session> s;
  std::string parent, id, full, data;
  protected_options opts;
  int creates = 0, lookups = 0;
  unique_function<void(result<created_node>)> done;

  static bool ambiguous(const error& e) { return is_retryable(e) || is_session_expired(e); }

  void create() {
    ++creates;
    s->async_create(full, data, create_options{opts.mode, opts.acl, opts.ttl},
                    [self = shared_from_this()](result<created_node> r) {
                      if (r || !ambiguous(r.error())) return self->done(std::move(r));
                      self->find(r.error());
                    });
  }

  // The create's reply was lost (or its session ended): look for our node.
  // A look-up that itself fails ambiguously is repeated, never followed by
  // a create: creating while our node may exist is what makes orphans.
  void find(error cause) {
    ++lookups;
    s->async_children(parent, [self = shared_from_this(), cause](result<children_list> r) {
      if (!r) return self->lookup_failed(r.error(), cause);
      std::vector<std::string> mine;
      for (auto& n : r.value().names)
        if (auto pid = protected_id_of(n); pid && *pid == self->id) mine.push_back(join(self->parent, n));
      // Oldest first, so the outcome does not depend on the server's listing order.
      std::sort(mine.begin(), mine.end(), [](const std::string& a, const std::string& b) {
        return sequence_of(a).value_or(0) < sequence_of(b).value_or(0);
      });
      self->check_owners(std::move(mine), 0, cause);
    });
  }

  // Adopt the first candidate owned by the current session; a candidate of
  // another (earlier) session is left alone: it goes with that session.
  void check_owners(std::vector<std::string> paths, std::size_t i, error cause) {
    if (i >= paths.size()) return again(cause);
    std::string path = paths[i];
    s->async_exists(path, [self = shared_from_this(), paths = std::move(paths), i, cause,
                           path](result<std::optional<stat>> r) mutable {
      if (!r) return self->lookup_failed(r.error(), cause);
      if (r.value()) {
        const stat& st = *r.value();
        if (!is_ephemeral(self->opts.mode) || st.ephemeral_owner == self->s->session_id())
          return self->done(created_node{path, st});
      }
      self->check_owners(std::move(paths), i + 1, cause);
    });
  }

  void lookup_failed(const error& e, error cause) {
    if (!ambiguous(e) || lookups >= opts.max_attempts) return done(result<created_node>(e));
    retry_later(lookups, [self = shared_from_this(), cause] { self->find(cause); });
  }

  void again(error cause) {
    if (creates >= opts.max_attempts) return done(result<created_node>(cause));
    retry_later(creates, [self = shared_from_this()] { self->create(); });
  }

  template <class F> void retry_later(int attempt, F f) {
    s->post_after(s->options().retry.delay(attempt - 1, backoff_rng()), std::move(f));
  }
};

} // namespace detail

/// Creates "<parent>/_c_<id>-<name>" (plus the sequence suffix), adopting
/// the node after a connection loss rather than creating a second one.
///
/// Handler: `void(result<created_node>)`, with the handler contract of the
/// session. Errors: those of create (no_node if the parent is missing); the
/// last connection loss if max_attempts creates or look-ups all failed.
/// \note Closing the session completes the handler with errc::closed.
template <class Handler>
  requires handler_for<Handler, created_node>
void async_protected_create(session& s, std::string_view parent, std::string_view name,
                            std::string_view data, protected_options opts, Handler&& handler) {
  auto op = std::make_shared<detail::protected_create_op>();
  op->s = detail::session_access::borrow(s);
  op->parent = std::string(parent);
  op->id = opts.id.empty() ? make_protected_id() : opts.id;
  op->full = join(parent, protected_name(op->id, name));
  op->data = std::string(data);
  op->opts = std::move(opts);
  if (op->opts.max_attempts < 1) op->opts.max_attempts = 1;
  op->done = std::forward<Handler>(handler);
  auto v = validate_path(parent, "protected_create");
  if (v && !protected_id_of(protected_name(op->id, "x")))
    v = make_error(errc::invalid_argument, "protected_create", op->id + " (id must be 32 hex digits)");
  if (v) v = validate_name(protected_name(op->id, name), "protected_create");
  if (!v) {
    s.post([op, e = v.error()]() mutable { op->done(result<created_node>(std::move(e))); });
    return;
  }
  op->create();
}

namespace detail {
/// Recovery half of a protected create whose reply was lost elsewhere (a
/// recipe that pipelined its own create): looks for the node by `opts.id`
/// first and creates it only when no node of the current session carries it.
template <class Handler>
void async_protected_recover(session& s, std::string_view parent, std::string_view name,
                             std::string_view data, protected_options opts, error cause,
                             Handler&& handler) {
  auto op = std::make_shared<protected_create_op>();
  op->s = session_access::borrow(s);
  op->parent = std::string(parent);
  op->id = opts.id;
  op->full = join(parent, protected_name(op->id, name));
  op->data = std::string(data);
  op->opts = std::move(opts);
  if (op->opts.max_attempts < 1) op->opts.max_attempts = 1;
  op->creates = 1; // the caller's create counts as the first
  op->done = std::forward<Handler>(handler);
  op->find(std::move(cause));
}
} // namespace detail

/// Blocking form of async_protected_create. The wait is bounded by
/// operation_timeout x (2 x max_attempts + 1); on errc::timed_out the
/// operation may still be running (and may still create the node).
inline result<created_node> protected_create(session& s, std::string_view parent, std::string_view name,
                                             std::string_view data = {}, protected_options opts = {}) {
  if (s.on_dispatcher_thread())
    return make_error(errc::would_deadlock, "protected_create", std::string(parent));
  auto bound = s.options().operation_timeout * (2 * (opts.max_attempts < 1 ? 1 : opts.max_attempts) + 1);
  auto p = std::make_shared<std::promise<result<created_node>>>();
  auto f = p->get_future();
  async_protected_create(s, parent, name, data, std::move(opts),
                         [p](result<created_node> r) { p->set_value(std::move(r)); });
  if (f.wait_for(bound) != std::future_status::ready)
    return make_error(errc::timed_out, "protected_create", std::string(parent));
  return f.get();
}

} // namespace zkrecipes
