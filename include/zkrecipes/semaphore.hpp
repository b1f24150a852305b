// A counting semaphore across processes: at most N leases are held at once.
// Leases are RAII objects, fair in arrival order. See docs/semaphore.md.
#pragma once

#include "zkrecipes/mutex.hpp"

#include <chrono>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>

namespace zkrecipes {

class semaphore;

/// One held lease. Move-only; returned to the semaphore on destruction.
class lease {
public:
  lease(lease&&) noexcept = default;
  lease& operator=(lease&& o) noexcept {
    if (this != &o) {
      reset();
      l_ = std::move(o.l_);
    }
    return *this;
  }
  ~lease() { reset(); }

  /// Returns the lease now (the delete is kept and retried, not waited for).
  void reset() {
    if (l_) (void)l_->unlock();
    l_.reset();
  }
  /// Held, and the connection is not in doubt.
  bool holds() const { return l_ && l_->holds(); }
  bool in_doubt() const { return l_ && l_->in_doubt(); }
  /// czxid of the lease node: grows with every later lease.
  std::optional<std::int64_t> fencing_token() const { return l_ ? l_->fencing_token() : std::nullopt; }
  std::string node_path() const { return l_ ? l_->node_path() : std::string(); }
  /// Stopped when the lease is lost (session expiry) or returned.
  std::stop_token hold_token() const { return l_ ? l_->hold_token() : std::stop_token(); }
  /// Told of in_doubt, restored, lost and released on the dispatcher.
  /// 0 (and nothing registered) on a moved-from or returned lease.
  listener_id add_listener(std::function<void(hold_event)> f) { return l_ ? l_->add_listener(std::move(f)) : 0; }
  void remove_listener(listener_id id) {
    if (l_) l_->remove_listener(id);
  }

private:
  friend class semaphore;
  explicit lease(std::unique_ptr<detail::lock_base> l) : l_(std::move(l)) {}
  std::unique_ptr<detail::lock_base> l_;
};

/// At most `max_leases` holders at once over all processes sharing `path`.
/// Every client must use the same `max_leases` for the same path.
///
/// Layout `<path>/leases/_c_<32 hex>-lease-<10 digits>`: the lease nodes are
/// queued by sequence number and the first `max_leases` hold. Waiters watch
/// the list of leases (any release may free a place).
class semaphore {
public:
  semaphore(session& s, std::string path, int max_leases, lock_options opts = {})
      : s_(&s), path_(std::move(path)), max_(max_leases), opts_(std::move(opts)) {}

  /// Waits up to `timeout` for a lease; a wait that ends unsuccessfully
  /// leaves no node behind. errc::invalid_argument when max_leases < 1.
  result<lease> acquire(std::chrono::milliseconds timeout) { return acquire(std::stop_token{}, timeout); }

  /// As acquire(timeout), also given up (errc::cancelled) when `stop` is requested.
  result<lease> acquire(std::stop_token stop, std::chrono::milliseconds timeout) {
    if (max_ < 1) return make_error(errc::invalid_argument, "semaphore.acquire", path_ + " (max_leases < 1)");
    auto l = make();
    auto r = l->lock(std::move(stop), timeout);
    if (!r) return r.error();
    return lease(std::move(l));
  }

  /// One attempt: a lease, or nullopt when all are taken. One round trip.
  result<std::optional<lease>> try_acquire() {
    if (max_ < 1) return make_error(errc::invalid_argument, "semaphore.acquire", path_ + " (max_leases < 1)");
    auto l = make();
    auto r = l->try_lock();
    if (!r) return r.error();
    if (!r.value()) return std::optional<lease>();
    return std::optional<lease>(lease(std::move(l)));
  }

  /// Lease nodes in queue order (holders first). One round trip.
  result<std::vector<std::string>> participants() const {
    auto r = s_->children(leases_path());
    if (!r) {
      if (r.error() == zk_errc::no_node) return std::vector<std::string>{};
      return r.error();
    }
    std::vector<std::string> out;
    for (auto& c : detail::sort_contenders(r.value().names)) out.push_back(std::move(c.name));
    return out;
  }

  int max_leases() const { return max_; }
  const std::string& path() const { return path_; }

private:
  struct lease_lock : detail::lock_base {
    lease_lock(session& s, std::string p, lock_options o, int max)
        : lock_base(s, std::move(p), "lease-", std::move(o), "semaphore.acquire",
                    [max](const std::vector<detail::contender_entry>&, std::size_t me) {
                      // Held while fewer than `max` leases are ahead; otherwise wait on the list.
                      return detail::rank_decision{me < static_cast<std::size_t>(max), {}};
                    }) {}
  };
  std::string leases_path() const { return join(path_, "leases"); }
  std::unique_ptr<detail::lock_base> make() {
    return std::make_unique<lease_lock>(*s_, leases_path(), opts_, max_);
  }

  session* s_;
  std::string path_;
  int max_;
  lock_options opts_;
};

} // namespace zkrecipes
