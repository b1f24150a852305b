// An at-least-once distributed queue: a take claims an item with an
// ephemeral node owned by the consumer's session; the item is removed only by
// ack(), and comes back by itself when the consumer releases it, dies or
// loses its session. Optional priority lanes.
//
// Layout (docs/locking_queue.md):
//   <path>/p-000/b-0000000000/i-0000000000   item (persistent-sequential)
//   <path>/p-000/b-0000000000/c-0000000000   its claim (ephemeral, data: the consumer's token)
//   <path>/p-005/...                          a higher-priority lane
// Claims sit next to their items so that one listing shows which are free.
#pragma once

#include "zkrecipes/codec.hpp"
#include "zkrecipes/detail/buckets.hpp"
#include "zkrecipes/detail/coro.hpp"
#include "zkrecipes/error.hpp"
#include "zkrecipes/path.hpp"
#include "zkrecipes/protected_create.hpp"
#include "zkrecipes/queue_options.hpp"
#include "zkrecipes/session.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

namespace zkrecipes {

/// Lowest and highest priority of a locking_queue lane.
inline constexpr int min_priority = 0;
inline constexpr int max_priority = 999;

namespace detail {

inline std::string lane_name(int priority) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "p-%03d", priority);
  return buf;
}
inline std::optional<int> lane_priority(std::string_view name) noexcept {
  if (name.size() != 5 || name.substr(0, 2) != "p-") return std::nullopt;
  int v = 0;
  for (char ch : name.substr(2)) {
    if (ch < '0' || ch > '9') return std::nullopt;
    v = v * 10 + (ch - '0');
  }
  return v;
}

/// What a claim needs to be acked or released, shared with its handle.
struct claim_state {
  session* s = nullptr;
  std::shared_ptr<void> keep; // the queue's core
  std::string item_path;
  std::string claim_path;
  std::int64_t sid = 0; // the session that owns the claim
  std::string token;    // the claim node's data, unique to this claim
  int priority = 0;
  bool done = false;    // acked or released (dispatcher thread)
};

/// Acks (removes item and claim together) or releases (removes the claim).
/// Both go through a multi, which the session never retries by itself: a
/// blind retry of a delete could remove a claim another consumer made after
/// ours went. After a connection loss the outcome is found by reading: the
/// item's absence proves an ack; a claim that is not ours (or none) proves a
/// release. Retried until known, or until the session that owns the claim is
/// gone (then the claim went with it).
inline task settle_claim(std::shared_ptr<claim_state> c, bool ack, unique_function<void(result<void>)> done) {
  session& s = *c->s;
  const char* op = ack ? "queue ack" : "queue release";
  if (c->done) {
    done(make_error(errc::not_held, op, c->item_path + ": already acked or released"));
    co_return;
  }
  bool remove_item = ack;
  for (int attempt = 0;; ++attempt) {
    if (!same_session(s, c->sid)) {
      c->done = true;
      if (!ack) {
        done(outcome::success()); // the claim was ephemeral: the item is queued again
        co_return;
      }
      // The claim went with its session. A gone item does not prove our ack:
      // once the claim expired another consumer may have claimed and acked
      // it, and two acks must never both succeed. So the outcome is unknown.
      auto e = co_await start_exists(s, c->item_path);
      if (e && !e.value())
        done(make_error(errc::lock_lost, op,
                        c->item_path + ": the session expired with the ack in flight; the item is gone (our ack may "
                                       "have applied, or another consumer's after our claim went)"));
      else done(make_error(errc::lock_lost, op, c->item_path + ": the claim went with its session; the item is queued again"));
      co_return;
    }
    if (attempt > 0) (void)co_await sleep_for(s, std::chrono::milliseconds(std::min(1000, 20 * attempt)));
    multi_op tx;
    tx.remove(c->claim_path);
    if (remove_item) tx.remove(c->item_path);
    auto m = co_await start_multi(s, tx);
    if (m) {
      c->done = true;
      done(outcome::success());
      co_return;
    }
    if (failed_with(m, zk_errc::session_expired) || failed_with(m, errc::closed) || failed_with(m, zk_errc::closing))
      continue; // the session is gone: settled at the top
    if (!failed_with(m, zk_errc::connection_loss) && !failed_with(m, zk_errc::no_node) &&
        !failed_with(m, zk_errc::operation_timeout)) {
      done(m.error());
      co_return;
    }
    // Find out what happened.
    auto item = co_await start_exists(s, c->item_path);
    auto claim = co_await start_get(s, c->claim_path);
    if (!item || (!claim && !failed_with(claim, zk_errc::no_node))) continue; // still disconnected: ask again
    // Only reads answered within the claim's session tell anything: a claim
    // missing on a newer session went with the old one (settled at the top).
    if (!same_session(s, c->sid)) continue;
    const bool ours = claim && claim.value().data == c->token && claim.value().stat.ephemeral_owner == c->sid;
    if (ours) {
      // Not applied: send it again (only the claim if the item was removed by hand).
      if (!item.value()) remove_item = false;
      continue;
    }
    c->done = true;
    if (ack && item.value()) {
      done(make_error(errc::lock_lost, op, c->item_path + ": the claim was removed by someone else"));
      co_return;
    }
    done(outcome::success()); // ack: item gone; release: our claim gone
    co_return;
  }
}

struct claimed_raw {
  std::shared_ptr<claim_state> claim;
  std::string data;
};

template <class Codec> struct locking_core : take_waits, std::enable_shared_from_this<locking_core<Codec>> {
  session* s;
  std::string root;
  queue_options opts;
  std::string token = make_protected_id(); // claim data prefix: which object claimed
  std::uint64_t claims = 0;                // makes each claim's data unique
  std::map<int, std::unique_ptr<bucket_appender>> appenders;
  std::set<std::string> poison;

  watcher arm(const std::string& path) { return take_waits::arm(path, this->weak_from_this()); }

  locking_core(session& ss, std::string p, queue_options o) : s(&ss), root(std::move(p)), opts(std::move(o)) {}

  bucket_appender* lane(int priority) {
    auto& a = appenders[priority];
    if (!a)
      a.reset(new bucket_appender{s, join(root, lane_name(priority)), opts.bucket_capacity, opts.acl, {}, 0, {},
                                  false, {}});
    return a.get();
  }
};

/// The outcome of trying to claim one item.
enum class claim_outcome { claimed, taken, failed };

template <class Codec>
task try_claim(std::shared_ptr<locking_core<Codec>> c, std::string bucket, std::string item, int priority,
               unique_function<void(claim_outcome, std::optional<claimed_raw>, std::optional<error>)> done) {
  session& s = *c->s;
  auto item_path = join(bucket, item);
  auto claim_path = join(bucket, claim_name_of(item));
  auto token = c->token + "-" + std::to_string(++c->claims);
  multi_op tx;
  // check(-1) fails with no_node once the item was acked: no claim is left on nothing.
  tx.check(item_path, any_version).create(claim_path, token, create_options(create_mode::ephemeral, c->opts.acl));
  auto m = start_multi(s, tx);
  auto g = start_get(s, item_path); // pipelined: answers in the same round trip
  auto mr = co_await m;
  auto gr = co_await g;
  if (failed_with(mr, zk_errc::connection_loss) || failed_with(mr, zk_errc::operation_timeout)) {
    // Ambiguous: the claim is ours only if it holds our token and belongs to
    // our session. Asked until answered, so no claim of ours is left unheld.
    const auto sid = s.session_id();
    auto cr = co_await start_get(s, claim_path);
    for (int i = 0; !cr && !failed_with(cr, zk_errc::no_node) && same_session(s, sid); ++i) {
      (void)co_await sleep_for(s, std::chrono::milliseconds(std::min(1000, 50 * (i + 1))));
      cr = co_await start_get(s, claim_path);
    }
    if (cr && cr.value().data == token && cr.value().stat.ephemeral_owner == s.session_id()) mr = std::vector<op_result>{};
    else if (cr || failed_with(cr, zk_errc::no_node)) {
      done(claim_outcome::taken, std::nullopt, std::nullopt);
      co_return;
    } else {
      done(claim_outcome::failed, std::nullopt, cr.error());
      co_return;
    }
    if (!gr) gr = co_await start_get(s, item_path);
  }
  if (!mr) {
    if (failed_with(mr, zk_errc::node_exists) || failed_with(mr, zk_errc::no_node))
      done(claim_outcome::taken, std::nullopt, std::nullopt);
    else done(claim_outcome::failed, std::nullopt, mr.error());
    co_return;
  }
  auto st = std::make_shared<claim_state>();
  st->s = &s;
  st->keep = c;
  st->item_path = item_path;
  st->claim_path = claim_path;
  st->sid = s.session_id();
  st->token = token;
  st->priority = priority;
  if (!gr) {
    // We hold the claim but could not read the item: give it back.
    settle_claim(st, false, [](result<void>) {});
    done(claim_outcome::failed, std::nullopt, gr.error());
    co_return;
  }
  done(claim_outcome::claimed, claimed_raw{st, std::move(gr.value().data)}, std::nullopt);
}

/// Finds and claims the lowest free item of the highest lane. With a
/// wake-up, every listing read also sets a children watch that fires it.
template <class Codec>
task scan_and_claim(std::shared_ptr<locking_core<Codec>> c, std::optional<wakeup> w,
                    unique_function<void(result<std::optional<claimed_raw>>)> done) {
  session& s = *c->s;
  auto watch = [&](const std::string& path) -> watcher { return w ? c->arm(path) : watcher{}; };
  auto lr = co_await start_children(s, c->root, watch(c->root));
  if (failed_with(lr, zk_errc::no_node)) {
    // Made here so that a wait can watch it.
    auto e = co_await start_ensure_path(s, c->root, c->opts.acl);
    if (!e) {
      done(e.error());
      co_return;
    }
    if (w) lr = co_await start_children(s, c->root, watch(c->root));
    else {
      done(std::optional<claimed_raw>{});
      co_return;
    }
  }
  if (!lr) {
    done(lr.error());
    co_return;
  }
  std::vector<int> lanes;
  for (auto& n : lr.value().names)
    if (auto p = lane_priority(n)) lanes.push_back(*p);
  std::sort(lanes.rbegin(), lanes.rend()); // highest priority first
  std::vector<pending<children_list>> lane_lists;
  for (int p : lanes) {
    auto lp = join(c->root, lane_name(p));
    lane_lists.push_back(start_children(s, lp, watch(lp)));
  }
  for (std::size_t li = 0; li < lanes.size(); ++li) {
    auto bl = co_await lane_lists[li];
    if (failed_with(bl, zk_errc::no_node)) continue;
    if (!bl) {
      done(bl.error());
      co_return;
    }
    auto lane_path = join(c->root, lane_name(lanes[li]));
    auto bs = sorted_buckets(bl.value().names);
    for (std::size_t bi = 0; bi < bs.size(); ++bi) {
      auto bp = join(lane_path, bucket_name(bs[bi]));
      auto il = co_await start_children(s, bp, watch(bp));
      if (failed_with(il, zk_errc::no_node)) continue;
      if (!il) {
        done(il.error());
        co_return;
      }
      std::set<std::string> claims;
      for (auto& n : il.value().names)
        if (n.rfind(claim_prefix, 0) == 0) claims.insert(n);
      auto items = sorted_sequential(il.value().names, item_prefix);
      if (items.empty() && claims.empty() && bi + 1 < bs.size()) {
        // Empty and not the lane's tail: remove it so the lane stays short
        // (not_empty or no_node: someone else was quicker; both fine).
        s.async_remove(bp, any_version, [](result<void>) {});
        continue;
      }
      for (auto& it : items) {
        if (claims.count(claim_name_of(it.name)) || c->poison.count(join(bp, it.name))) continue;
        claim_outcome oc{};
        std::optional<claimed_raw> got;
        std::optional<error> err;
        pending<void> step;
        try_claim<Codec>(c, bp, it.name, lanes[li],
                         [&, h = step.handler()](claim_outcome o, std::optional<claimed_raw> g,
                                                  std::optional<error> e) mutable {
                           oc = o;
                           got = std::move(g);
                           err = std::move(e);
                           h(outcome::success());
                         });
        (void)co_await step;
        if (oc == claim_outcome::claimed) {
          done(std::move(got));
          co_return;
        }
        if (oc == claim_outcome::failed) {
          done(*err);
          co_return;
        }
      }
    }
  }
  done(std::optional<claimed_raw>{});
}

template <class Codec>
task take_claim(std::shared_ptr<locking_core<Codec>> c, std::chrono::steady_clock::time_point deadline, bool wait,
                unique_function<void(result<std::optional<claimed_raw>>)> done) {
  session& s = *c->s;
  const auto gen = c->cancel_gen;
  for (bool watched = false;;) {
    if (c->closed) {
      done(make_error(errc::closed, "queue take", c->root));
      co_return;
    }
    if (c->cancel_gen != gen) {
      done(make_error(errc::cancelled, "queue take", c->root));
      co_return;
    }
    std::optional<wakeup> w;
    if (watched) {
      // Registered before any read, so a change or cancel from now on wakes it.
      w.emplace();
      c->waits.push_back(*w);
    }
    // Built in place: moving an empty optional in draws a false
    // -Wmaybe-uninitialized from GCC 12 at -O1 (the sanitizer builds).
    result<std::optional<claimed_raw>> r{outcome::in_place_type<std::optional<claimed_raw>>};
    pending<void> step;
    scan_and_claim<Codec>(c, w, [&, h = step.handler()](result<std::optional<claimed_raw>> x) mutable {
      r = std::move(x);
      h(outcome::success());
    });
    (void)co_await step;
    if (!r || r.value()) {
      if (w) std::erase(c->waits, *w);
      done(std::move(r));
      co_return;
    }
    if (!wait) {
      done(std::move(r));
      co_return;
    }
    if (w) {
      // Nothing free, and every listing read has a watch: wait for a change.
      auto remaining =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (remaining.count() > 0) {
        auto timer = fire_after(s, remaining + std::chrono::milliseconds(1), *w);
        co_await *w;
        s.cancel_timer(timer);
      }
      std::erase(c->waits, *w);
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      done(make_error(errc::timed_out, "queue take", c->root));
      co_return;
    }
    watched = true; // scan again, this time setting watches
  }
}

template <class Codec>
task count_lanes(std::shared_ptr<locking_core<Codec>> c, unique_function<void(result<std::pair<std::size_t, std::size_t>>)> done) {
  session& s = *c->s;
  auto lr = co_await start_children(s, c->root);
  if (failed_with(lr, zk_errc::no_node)) {
    done(std::pair<std::size_t, std::size_t>{0, 0});
    co_return;
  }
  if (!lr) {
    done(lr.error());
    co_return;
  }
  std::size_t items = 0, claims = 0;
  for (auto& n : lr.value().names) {
    if (!lane_priority(n)) continue;
    result<std::pair<std::size_t, std::size_t>> r = std::pair<std::size_t, std::size_t>{};
    pending<void> step;
    count_items(c, c->s, join(c->root, n), true, [&, h = step.handler()](auto x) mutable {
      r = std::move(x);
      h(outcome::success());
    });
    (void)co_await step;
    if (!r) {
      done(r.error());
      co_return;
    }
    items += r.value().first;
    claims += r.value().second;
  }
  done(std::pair<std::size_t, std::size_t>{items, claims});
}

} // namespace detail

/// An item claimed from a locking_queue. Move-only. ack() removes it for
/// good; release() (or destruction without ack) gives it back at its place.
template <class T> class queue_item {
public:
  queue_item() = default;
  queue_item(T value, std::shared_ptr<detail::claim_state> claim, std::optional<std::string> trace_id = std::nullopt)
      : value_(std::move(value)), path_(claim->item_path), priority_(claim->priority),
        trace_id_(std::move(trace_id)), claim_(std::move(claim)) {}
  queue_item(queue_item&&) noexcept = default;
  queue_item& operator=(queue_item&& o) noexcept {
    if (this != &o) {
      abandon();
      value_ = std::move(o.value_);
      path_ = std::move(o.path_);
      priority_ = o.priority_;
      trace_id_ = std::move(o.trace_id_);
      claim_ = std::move(o.claim_);
    }
    return *this;
  }
  /// Releases an item neither acked nor released (not waited for).
  ~queue_item() { abandon(); }

  const T& value() const noexcept { return value_; }
  T& value() noexcept { return value_; }
  const T& operator*() const noexcept { return value_; }
  const T* operator->() const noexcept { return &value_; }
  /// The item's node path.
  const std::string& path() const noexcept { return path_; }
  int priority() const noexcept { return priority_; }
  /// The trace id the producer's trace_scope put into the item (null when
  /// none). Go on with it: `zkrecipes::trace_scope scope(item.trace_id());`.
  const std::optional<std::string>& trace_id() const noexcept { return trace_id_; }
  /// True until ack() or release() is called (each settles the claim for
  /// good: retried through connection losses until its outcome is known).
  bool held() const noexcept { return claim_ != nullptr; }

  /// Removes the item and its claim in one multi. Handler: `void(result<void>)`;
  /// errc::lock_lost if the claim went with an expired session (the item is
  /// then queued again and may be handed to another consumer).
  template <class H> void async_ack(H&& h) { settle(true, std::forward<H>(h)); }
  result<void> ack() { return blocking(true); }
  /// Gives the item back: the next take gets it first (it keeps its place).
  template <class H> void async_release(H&& h) { settle(false, std::forward<H>(h)); }
  result<void> release() { return blocking(false); }

private:
  template <class H> void settle(bool ack, H&& h) {
    if (!claim_) {
      h(result<void>(make_error(errc::not_held, ack ? "queue ack" : "queue release", "no claimed item")));
      return;
    }
    auto c = std::move(claim_);
    c->s->post([c, ack, h = std::forward<H>(h)]() mutable { detail::settle_claim(c, ack, std::move(h)); });
  }
  result<void> blocking(bool ack) {
    if (!claim_) return make_error(errc::not_held, ack ? "queue ack" : "queue release", "no claimed item");
    auto path = claim_->item_path;
    auto* s = claim_->s;
    return detail::run_blocking<void>(*s, ack ? "queue ack" : "queue release", path,
                                      [this, ack](auto done) { settle(ack, std::move(done)); });
  }
  void abandon() {
    if (claim_) settle(false, [](result<void>) {});
  }

  T value_{};
  std::string path_;
  int priority_ = 0;
  std::optional<std::string> trace_id_;
  std::shared_ptr<detail::claim_state> claim_;
};

/// An at-least-once queue of `T` values: take() claims the oldest free item
/// of the highest priority; ack() removes it, release() gives it back; a
/// consumer that dies or loses its session gives back what it held.
///
/// \code
/// zkrecipes::locking_queue<std::string> q(s, "/tasks");
/// q.put("fetch 17", 5);                 // priority 5 (0..999, higher first)
/// auto item = q.take(5s);
/// if (item && process(**item)) item->ack();   // else ~queue_item releases it
/// \endcode
/// \note The session must outlive the queue and its items. Thread-safe.
template <class T, class Codec = codec_t<T>>
  requires payload_codec<Codec> && std::same_as<T, typename Codec::value_type>
class locking_queue {
  using core = detail::locking_core<Codec>;

public:
  using value_type = T;
  using item = queue_item<T>;

  locking_queue(session& s, std::string path, queue_options opts = {})
      : s_(&s), path_(std::move(path)), valid_(detail::check_queue_options(opts, path_, "locking_queue")),
        c_(std::make_shared<core>(s, path_, std::move(opts))) {}
  locking_queue(const locking_queue&) = delete;
  locking_queue& operator=(const locking_queue&) = delete;
  ~locking_queue() { close(); }

  const std::string& path() const noexcept { return path_; }

  /// Appends an item to the lane of `priority` (0..999, higher taken first).
  /// Handler: `void(result<std::string>)` with the item's path.
  template <class H> void async_put(const T& value, int priority, H&& h) {
    async_put_all(std::vector<T>{value}, priority, [h = std::forward<H>(h)](result<std::vector<std::string>> r) mutable {
      if (!r) h(result<std::string>(r.error()));
      else h(result<std::string>(std::move(r.value().front())));
    });
  }
  result<std::string> put(const T& value, int priority = 0) {
    return detail::run_blocking<std::string>(*s_, "queue put", path_, [&](auto done) {
      async_put(value, priority, std::move(done));
    });
  }
  /// Appends several items to one lane atomically (one multi), in order.
  /// Inside a trace_scope the items carry its trace id to their consumers.
  template <class H> void async_put_all(const std::vector<T>& values, int priority, H&& h) {
    auto trace = detail::put_trace_id();
    auto d = encoded(values, priority, trace);
    if (!d) {
      s_->post([h = std::forward<H>(h), e = d.error()]() mutable { h(result<std::vector<std::string>>(e)); });
      return;
    }
    s_->post([c = c_, d = std::move(d).value(), priority, trace, h = std::forward<H>(h)]() mutable {
      detail::append_items(
          c, c->lane(priority), std::move(d),
          [c, priority, trace, h = std::move(h)](result<std::vector<std::string>> r) mutable {
            if (r)
              for (auto& p : r.value())
                detail::notify_queue(c->opts.interceptors, true, c->root, p, trace, priority);
            h(std::move(r));
          },
          trace);
    });
  }
  result<std::vector<std::string>> put_all(const std::vector<T>& values, int priority = 0) {
    return detail::run_blocking<std::vector<std::string>>(*s_, "queue put_all", path_, [&](auto done) {
      async_put_all(values, priority, std::move(done));
    });
  }

  /// Claims the oldest free item of the highest priority, waiting up to
  /// `timeout`. Handler: `void(result<queue_item<T>>)`; errc::timed_out,
  /// errc::cancelled, errc::closed, errc::decode_failed (the item that does
  /// not decode is given back, named in the error and skipped by this object).
  /// The handler runs with the item's trace id current (trace_scope).
  template <class H> void async_take(std::chrono::milliseconds timeout, H&& h) {
    start(timeout, true, [h = std::forward<H>(h)](result<std::optional<item>> r) mutable {
      if (!r) return h(result<item>(r.error()));
      trace_scope scope(r.value()->trace_id());
      h(result<item>(std::move(*r.value())));
    });
  }
  result<item> take(std::chrono::milliseconds timeout) {
    return detail::run_blocking<item>(*s_, "queue take", path_, [&](auto done) { async_take(timeout, std::move(done)); });
  }
  /// Claims an item if one is free now (nullopt otherwise).
  result<std::optional<item>> try_take() {
    return detail::run_blocking<std::optional<item>>(*s_, "queue try_take", path_, [&](auto done) {
      start(std::chrono::milliseconds(0), false, std::move(done));
    });
  }

  /// Items not yet acked, claimed ones included.
  result<std::size_t> size() {
    auto r = counts();
    if (!r) return r.error();
    return r.value().first;
  }
  /// Items claimed and not yet acked or released.
  result<std::size_t> in_flight() {
    auto r = counts();
    if (!r) return r.error();
    return r.value().second;
  }

  /// Ends every take waiting now with errc::cancelled.
  void cancel() {
    s_->post([c = c_] { c->cancel(); });
  }
  /// Ends waiting takes with errc::closed. Items already taken stay claimed
  /// until acked, released or their session ends.
  void close() {
    s_->post([c = c_] { c->close(); });
  }

private:
  result<std::vector<std::string>> encoded(const std::vector<T>& values, int priority,
                                          const std::optional<std::string>& trace) const {
    if (!valid_) return valid_.error();
    if (priority < min_priority || priority > max_priority)
      return make_error(errc::invalid_argument, "queue put",
                        path_ + ": priority " + std::to_string(priority) + " is outside 0..999");
    if (values.empty()) return make_error(errc::invalid_argument, "queue put_all", path_ + ": no items");
    return detail::encode_all<Codec>(std::span<const T>(values), path_, trace);
  }
  template <class H> void start(std::chrono::milliseconds timeout, bool wait, H&& h) {
    if (!valid_) {
      s_->post([h = std::forward<H>(h), e = valid_.error()]() mutable { h(result<std::optional<item>>(e)); });
      return;
    }
    auto deadline = std::chrono::steady_clock::now() + std::max(timeout, std::chrono::milliseconds(0));
    s_->post([c = c_, deadline, wait, h = std::forward<H>(h)]() mutable {
      detail::take_claim<Codec>(c, deadline, wait,
                                [c, h = std::move(h)](result<std::optional<detail::claimed_raw>> r) mutable {
                                  deliver(c, std::move(r), std::move(h));
                                });
    });
  }
  template <class H>
  static void deliver(std::shared_ptr<core> c, result<std::optional<detail::claimed_raw>> r, H&& h) {
    if (!r) return h(result<std::optional<item>>(r.error()));
    if (!r.value()) return h(result<std::optional<item>>(std::optional<item>()));
    auto& raw = *r.value();
    // The trace envelope first (a truncated one fails like a bad payload).
    auto env = detail::unwrap_trace(raw.data);
    auto v = env ? Codec::decode(env.value().payload) : result<T>(env.error());
    if (!v) {
      // Given back untouched for a person to inspect; this object skips it.
      c->poison.insert(raw.claim->item_path);
      auto path = raw.claim->item_path;
      detail::settle_claim(raw.claim, false, [](result<void>) {});
      return h(result<std::optional<item>>(make_error(errc::decode_failed, "queue take", path + ": " + v.error().message())));
    }
    auto trace = std::move(env.value().trace_id);
    detail::notify_queue(c->opts.interceptors, false, c->root, raw.claim->item_path, trace, raw.claim->priority);
    h(result<std::optional<item>>(std::optional<item>(item(std::move(v).value(), raw.claim, std::move(trace)))));
  }
  result<std::pair<std::size_t, std::size_t>> counts() {
    if (!valid_) return valid_.error();
    return detail::run_blocking<std::pair<std::size_t, std::size_t>>(*s_, "queue size", path_, [this](auto done) {
      s_->post([c = c_, done = std::move(done)]() mutable { detail::count_lanes<Codec>(c, std::move(done)); });
    });
  }

  session* s_;
  std::string path_;
  result<void> valid_;
  std::shared_ptr<core> c_;
};

} // namespace zkrecipes
