// Leader election, latch style: every candidate queues a protected
// ephemeral-sequential node; the first leads, each other watches only its
// predecessor. Layout compatible with Apache Curator's LeaderLatch.
// See docs/leader_latch.md.
#pragma once

#include "zkrecipes/mutex.hpp"

#include <atomic>
#include <chrono>
#include <future>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

namespace zkrecipes {

/// Settings of a candidate.
struct latch_options {
  std::string id;              ///< participant id (stored in its node); empty: a random one
  std::string payload;         ///< optional bytes shown to others with the id
  std::optional<acl_list> acl; ///< ACL of the candidate's node
};

/// One candidate as seen by anyone.
struct participant {
  std::string id;
  std::string payload;
  std::string node;  ///< its node's name
  bool leader = false;
};

namespace detail {
// Node data: the id alone (what Curator's LeaderLatch stores), or the id, a
// NUL byte and the payload. Ids cannot contain NUL, so the split is exact.
inline std::string encode_candidate(const std::string& id, const std::string& payload) {
  if (payload.empty()) return id;
  std::string out = id;
  out.push_back('\0');
  out += payload;
  return out;
}
inline participant decode_candidate(std::string_view data, std::string node, bool leader) {
  participant p;
  auto nul = data.find('\0');
  p.id = std::string(data.substr(0, nul));
  if (nul != std::string_view::npos) p.payload = std::string(data.substr(nul + 1));
  p.node = std::move(node);
  p.leader = leader;
  return p;
}
} // namespace detail

/// A candidate in the election at `path`.
///
/// start() joins; the candidate then stays in the election until close(),
/// rejoining by itself on the new session after an expiry. Leadership is
/// dropped (has_leadership() false, listeners told in_doubt) as soon as the
/// connection is suspended, and given back (restored) only once the node is
/// seen still ours: never two leaders acting on a stale belief.
class leader_latch {
public:
  leader_latch(session& s, std::string path, latch_options opts = {})
      : s_(&s), path_(std::move(path)), id_(opts.id.empty() ? make_protected_id() : opts.id),
        shared_(std::make_shared<shared>()) {
    lock_options lo;
    lo.data = detail::encode_candidate(id_, opts.payload);
    lo.acl = std::move(opts.acl);
    bad_id_ = id_.find('\0') != std::string::npos;
    lock_ = std::make_unique<latch_lock>(s, path_, std::move(lo));
    // Internal listener: wake waiters; rejoin after the hold is lost.
    std::weak_ptr<shared> w = shared_;
    auto* l = lock_.get();
    lock_->add_listener([w, l](hold_event e) {
      auto sh = w.lock();
      if (!sh) return;
      {
        std::lock_guard lk(sh->mx);
        ++sh->changes;
      }
      sh->cv.notify_all();
      if (e == hold_event::lost && sh->started.load() && l->owner_session().state() != session_state::closed)
        l->join(w);
    });
  }
  ~leader_latch() { (void)close(); }
  leader_latch(const leader_latch&) = delete;
  leader_latch& operator=(const leader_latch&) = delete;

  /// Joins the election (returns at once; leadership comes later).
  /// errc::already_started when started; invalid_argument for an id with NUL.
  result<void> start() {
    if (bad_id_) return make_error(errc::invalid_argument, "leader_latch.start", path_ + " (id contains NUL)");
    if (shared_->started.exchange(true)) return make_error(errc::already_started, "leader_latch.start", path_);
    {
      std::lock_guard lk(shared_->mx);
      shared_->failure.reset();
    }
    lock_->join(shared_);
    return outcome::success();
  }

  /// Leaves the election (deletes our node; kept and retried). Listeners
  /// hear released if this candidate led. errc::not_started when not started.
  result<void> close() {
    if (!shared_->started.exchange(false)) return make_error(errc::not_started, "leader_latch.close", path_);
    lock_->leave();
    shared_->cv.notify_all();
    return outcome::success();
  }

  /// Leads, and the connection is not in doubt. False as soon as close() returns.
  bool has_leadership() const { return shared_->started.load() && lock_->holds(); }

  /// Waits until this candidate leads: success, errc::timed_out,
  /// errc::cancelled (stop requested), errc::not_started (closed meanwhile)
  /// or the error that stopped the candidacy (no_auth, the session closed...).
  result<void> await_leadership(std::chrono::milliseconds timeout) {
    return await_leadership(std::stop_token{}, timeout);
  }
  result<void> await_leadership(std::stop_token stop, std::chrono::milliseconds timeout) {
    if (s_->on_dispatcher_thread()) return make_error(errc::would_deadlock, "leader_latch.await", path_);
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::stop_callback cb(stop, [sh = shared_] {
      { std::lock_guard lk(sh->mx); }
      sh->cv.notify_all();
    });
    std::unique_lock lk(shared_->mx);
    for (;;) {
      if (!shared_->started.load()) return make_error(errc::not_started, "leader_latch.await", path_);
      if (has_leadership()) return outcome::success();
      if (shared_->failure) return *shared_->failure;
      if (stop.stop_requested()) return make_error(errc::cancelled, "leader_latch.await", path_);
      if (shared_->cv.wait_until(lk, deadline) == std::cv_status::timeout && !has_leadership())
        return make_error(errc::timed_out, "leader_latch.await", path_);
    }
  }

  /// Told acquired (gained), in_doubt, restored, lost and released, on the dispatcher.
  listener_id add_listener(std::function<void(hold_event)> f) { return lock_->add_listener(std::move(f)); }
  void remove_listener(listener_id id) { lock_->remove_listener(id); }

  /// czxid of our node while leading: every later leader's is larger.
  std::optional<std::int64_t> fencing_token() const { return lock_->fencing_token(); }
  /// Stopped when the current leadership is lost or given up.
  std::stop_token leadership_token() const { return lock_->hold_token(); }

  const std::string& id() const { return id_; }
  const std::string& path() const { return path_; }
  /// Our node while in the election ("" otherwise).
  std::string node_path() const { return lock_->node_path(); }

  /// Every candidate in queue order (leader first), with ids and payloads.
  /// One round trip for the list, one (pipelined) for all the data.
  result<std::vector<participant>> participants() const {
    auto names = lock_->participants();
    if (!names) return names.error();
    std::vector<std::future<result<node>>> reads;
    for (auto& n : names.value()) {
      auto p = std::make_shared<std::promise<result<node>>>();
      reads.push_back(p->get_future());
      s_->async_get(join(path_, n), [p](result<node> r) { p->set_value(std::move(r)); });
    }
    std::vector<participant> out;
    for (std::size_t i = 0; i < reads.size(); ++i) {
      if (reads[i].wait_for(s_->options().operation_timeout * 2) != std::future_status::ready)
        return make_error(errc::timed_out, "leader_latch.participants", path_);
      auto r = reads[i].get();
      if (!r) {
        if (r.error() == zk_errc::no_node) continue; // left meanwhile
        return r.error();
      }
      out.push_back(detail::decode_candidate(r.value().data, names.value()[i], out.empty()));
    }
    return out;
  }

  /// The current leader (the first candidate); zk_errc::no_node when there is none.
  result<participant> leader() const {
    auto all = participants();
    if (!all) return all.error();
    if (all.value().empty()) return make_error(zk_errc::no_node, "leader_latch.leader", path_);
    return all.value().front();
  }

private:
  struct shared {
    std::mutex mx;
    std::condition_variable cv;
    std::uint64_t changes = 0;
    std::atomic<bool> started{false};
    std::optional<error> failure;
  };
  struct latch_lock : detail::lock_base {
    latch_lock(session& s, std::string p, lock_options o)
        : lock_base(s, std::move(p), "latch-", std::move(o), "leader_latch", &detail::exclusive_rank) {}
    /// Queues (again). A failure that will not heal by itself (no_auth, a
    /// bad ACL, the session closed) is kept for await_leadership to report.
    void join(std::weak_ptr<shared> w) {
      engine_->acquire(std::chrono::milliseconds(0), false, [w](result<std::optional<detail::grant>> r) {
        if (r) return;
        if (auto sh = w.lock()) {
          {
            std::lock_guard lk(sh->mx);
            sh->failure = r.error();
          }
          sh->cv.notify_all();
        }
      });
    }
    void leave() {
      engine_->cancel(errc::closed);
      engine_->release({});
    }
    session& owner_session() { return engine_->owner_session(); }
  };

  session* s_;
  std::string path_;
  std::string id_;
  bool bad_id_ = false;
  std::shared_ptr<shared> shared_;
  std::unique_ptr<latch_lock> lock_;
};

} // namespace zkrecipes
