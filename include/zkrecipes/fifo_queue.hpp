// A distributed FIFO queue of persistent-sequential items, kept in buckets
// so that a million queued items cost no more per take than ten.
//
// Layout (docs/fifo_queue.md):
//   <path>/b-0000000000/i-0000000000 ... i-0000000999
//   <path>/b-0000000001/i-...
// Producers append to the highest bucket; the one whose item takes the
// bucket's last slot opens the next bucket. Consumers take from the lowest
// bucket and delete it once it is empty and a higher one exists.
#pragma once

#include "zkrecipes/codec.hpp"
#include "zkrecipes/detail/buckets.hpp"
#include "zkrecipes/detail/coro.hpp"
#include "zkrecipes/queue_options.hpp"
#include "zkrecipes/error.hpp"
#include "zkrecipes/path.hpp"
#include "zkrecipes/session.hpp"

#include <chrono>
#include <coroutine>
#include <cstdint>
#include <deque>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

namespace zkrecipes {

/// An item taken from a fifo_queue, with where it was and the trace id it
/// carried (docs/tracing.md).
template <class T> struct fifo_item {
  T value;
  std::string path;                    ///< the item's node (deleted by the take)
  std::optional<std::string> trace_id; ///< set by the producer's trace_scope; null when none
  /// The take's delete met a connection loss and a retry found the item
  /// already gone: our first delete or another consumer's removed it, so that
  /// consumer may have this item too (at-least-once; never none).
  bool maybe_duplicate = false;
};

namespace detail {

/// One delete, not retried by the session (a one-op multi): a retry that
/// finds the node gone must be told apart from a first answer.
inline pending<std::vector<op_result>> start_remove_once(session& s, const std::string& path) {
  multi_op tx;
  tx.remove(path);
  return start_multi(s, tx);
}

/// Whether a delete's outcome is unknown: it may or may not have applied.
inline bool delete_unknown(const result<std::vector<op_result>>& r) {
  return failed_with(r, zk_errc::connection_loss) || failed_with(r, zk_errc::operation_timeout) ||
         failed_with(r, zk_errc::session_expired) || failed_with(r, errc::closed) || failed_with(r, zk_errc::closing);
}

template <class Codec> struct fifo_core : take_waits, std::enable_shared_from_this<fifo_core<Codec>> {
  using value_type = typename Codec::value_type;
  session* s;
  std::string root;
  queue_options opts;
  bucket_appender appender;

  // Consumer state (dispatcher thread only).
  std::optional<std::uint64_t> bucket; // the lowest bucket, as last listed
  bool bucket_last = true;             // no higher bucket was listed
  std::deque<std::string> names;       // its items not yet tried, ascending
  std::map<std::string, pending<node>> prefetched;
  std::set<std::string> poison; // items that do not decode: left in place, skipped
  std::optional<error> deferred; // a decode error met after a batch had items: told by the next take

  watcher arm(const std::string& path) { return take_waits::arm(path, this->weak_from_this()); }

  fifo_core(session& ss, std::string p, queue_options o)
      : s(&ss), root(std::move(p)), opts(std::move(o)),
        appender{&ss, root, opts.bucket_capacity, opts.acl, {}, 0, {}, false, {}} {}

  std::string bucket_path() const { return join(root, bucket_name(*bucket)); }

  void read_ahead(std::size_t n) {
    std::size_t i = 0;
    for (auto& nm : names) {
      if (i++ >= n) break;
      if (!prefetched.count(nm)) prefetched.emplace(nm, start_get(*s, join(bucket_path(), nm)));
    }
  }
  void reset_bucket() {
    bucket.reset();
    names.clear();
    prefetched.clear();
  }
};

/// Takes up to `max` items (at least one unless it times out, is cancelled or fails).
template <class Codec>
task take_items(std::shared_ptr<fifo_core<Codec>> c, std::size_t max, std::chrono::steady_clock::time_point deadline,
                bool wait, unique_function<void(result<std::vector<fifo_item<typename Codec::value_type>>>)> done) {
  using value_type = typename Codec::value_type;
  using item_type = fifo_item<value_type>;
  const auto gen = c->cancel_gen;
  std::vector<item_type> got;
  std::optional<error> decode_error = std::exchange(c->deferred, std::nullopt);
  bool listed = false; // a fresh listing was read during this call
  session& s = *c->s;
  for (;;) {
    if (!got.empty()) break; // items already deleted are always delivered
    if (c->closed) {
      done(make_error(errc::closed, "queue take", c->root));
      co_return;
    }
    if (wait && listed && std::chrono::steady_clock::now() >= deadline) { // looked at least once
      done(make_error(errc::timed_out, "queue take", c->root));
      co_return;
    }
    if (c->cancel_gen != gen) {
      done(make_error(errc::cancelled, "queue take", c->root));
      co_return;
    }
    if (decode_error) {
      done(*decode_error);
      co_return;
    }
    if (!c->bucket) {
      listed = true;
      auto lst = co_await start_children(s, c->root);
      if (failed_with(lst, zk_errc::no_node)) {
        // Made here so that the waits below can watch it.
        auto e = co_await start_ensure_path(s, c->root, c->opts.acl);
        if (!e) {
          done(e.error());
          co_return;
        }
        continue;
      }
      if (!lst) {
        done(lst.error());
        co_return;
      }
      auto bs = lst ? sorted_buckets(lst.value().names) : std::vector<std::uint64_t>{};
      // The lowest bucket with an item this object can take (items that do
      // not decode are skipped, and keep their bucket alive).
      bool listing_failed = false;
      for (std::size_t i = 0; i < bs.size() && !c->bucket; ++i) {
        auto bp = join(c->root, bucket_name(bs[i]));
        auto il = co_await start_children(s, bp);
        if (failed_with(il, zk_errc::no_node)) continue;
        if (!il) {
          done(il.error());
          listing_failed = true;
          break;
        }
        auto items = sorted_sequential(il.value().names, item_prefix);
        std::deque<std::string> usable;
        for (auto& e : items)
          if (!c->poison.count(join(bp, e.name))) usable.push_back(e.name);
        const bool last = i + 1 == bs.size();
        if (!usable.empty() || last || items.empty()) {
          c->bucket = bs[i];
          c->bucket_last = last;
          c->names = std::move(usable);
        }
      }
      if (listing_failed) {
        c->reset_bucket();
        co_return;
      }
    }
    if (c->bucket && !c->names.empty()) {
      // Take a batch: reads are already in flight (read-ahead); each delete
      // is sent as soon as its item's data is in hand, so a lost reply can
      // never cost an item's data.
      std::size_t want = max - got.size();
      c->read_ahead(std::max(want, c->opts.prefetch + 1));
      std::vector<std::pair<std::string, pending<std::vector<op_result>>>> removes;
      std::vector<item_type> values;
      std::optional<error> stop;
      std::string bp = c->bucket_path();
      while (!c->names.empty() && removes.size() < want) {
        auto nm = c->names.front();
        c->names.pop_front();
        auto it = c->prefetched.find(nm);
        if (it == c->prefetched.end()) it = c->prefetched.emplace(nm, start_get(s, join(bp, nm))).first;
        auto p = it->second;
        c->prefetched.erase(it);
        auto g = co_await p;
        if (failed_with(g, zk_errc::no_node)) continue; // another consumer took it
        if (!g) {
          stop = g.error(); // deletes already sent are still seen through below
          break;
        }
        // The trace envelope first (a truncated one fails like a bad payload).
        auto env = unwrap_trace(g.value().data);
        auto v = env ? Codec::decode(env.value().payload) : result<value_type>(env.error());
        if (!v) {
          // Left in place for a person to inspect; never deleted unread.
          c->poison.insert(join(bp, nm));
          decode_error = make_error(errc::decode_failed, "queue take",
                                    join(bp, nm) + ": " + v.error().message());
          break;
        }
        removes.emplace_back(join(bp, nm), start_remove_once(s, join(bp, nm)));
        values.push_back(item_type{std::move(v).value(), join(bp, nm), std::move(env.value().trace_id)});
      }
      for (std::size_t i = 0; i < removes.size(); ++i) {
        auto r = co_await removes[i].second;
        // A delete whose outcome is unknown may have applied: it is sent
        // again until one answer is certain. A later success proves the
        // first did not apply: ours alone. A later no_node cannot tell our
        // first delete from another consumer's: the item is delivered (never
        // dropped) and marked maybe_duplicate. A first no_node is another
        // consumer's take.
        for (int attempt = 1; delete_unknown(r); ++attempt) {
          values[i].maybe_duplicate = true;
          if (failed_with(r, errc::closed)) break; // no answer will come: deliver
          (void)co_await sleep_for(s, std::chrono::milliseconds(std::min(1000, 20 * attempt)));
          r = co_await start_remove_once(s, removes[i].first);
          if (r) values[i].maybe_duplicate = false;
        }
        if (delete_unknown(r) || (failed_with(r, zk_errc::no_node) && values[i].maybe_duplicate))
          r = std::vector<op_result>{};
        if (r) {
          notify_queue(c->opts.interceptors, false, c->root, values[i].path, values[i].trace_id);
          got.push_back(std::move(values[i]));
        } else if (!failed_with(r, zk_errc::no_node) && !stop)
          stop = r.error(); // refused by the server (e.g. no_auth): not deleted, the item stays queued
      }
      if (got.empty() && stop) {
        c->reset_bucket();
        done(*stop);
        co_return;
      }
      continue;
    }
    if (c->bucket && !c->bucket_last) {
      // Empty and not the tail: remove it so that the folder stays short.
      auto r = co_await start_remove(s, c->bucket_path());
      if (!r && !failed_with(r, zk_errc::no_node) && !failed_with(r, zk_errc::not_empty)) {
        done(r.error());
        co_return;
      }
      c->reset_bucket();
      continue;
    }
    // Nothing to take in what this object listed before: look once more.
    if (!listed) {
      c->reset_bucket();
      continue;
    }
    if (!wait || std::chrono::steady_clock::now() >= deadline) {
      if (!wait) done(std::vector<item_type>{});
      else done(make_error(errc::timed_out, "queue take", c->root));
      co_return;
    }
    // Wait on a children watch of the tail bucket (new items) and of the
    // folder (a new bucket), read again with the watches set.
    wakeup w;
    c->waits.push_back(w); // before any read: a change or cancel from now on wakes it
    auto lr = start_children(s, c->root, c->arm(c->root));
    std::optional<pending<children_list>> lb;
    if (c->bucket) lb = start_children(s, c->bucket_path(), c->arm(c->bucket_path()));
    auto rr = co_await lr;
    bool changed = false;
    if (rr) {
      auto bs = sorted_buckets(rr.value().names);
      changed = bs.size() > 1 || (bs.size() == 1 && (!c->bucket || *c->bucket != bs.front()));
    } else if (!failed_with(rr, zk_errc::no_node)) {
      done(rr.error());
      co_return;
    }
    if (lb) {
      auto br = co_await *lb;
      if (!br) changed = true;
      else
        for (auto& e : sorted_sequential(br.value().names, item_prefix))
          if (!c->poison.count(join(c->bucket_path(), e.name))) changed = true;
    }
    if (!changed && !w.fired()) {
      auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      auto timer = fire_after(s, std::max(remaining, std::chrono::milliseconds(0)) + std::chrono::milliseconds(1), w);
      co_await w;
      s.cancel_timer(timer);
    }
    std::erase_if(c->waits, [&](const wakeup& x) { return x == w || x.fired(); });
    c->reset_bucket();
  }
  if (decode_error) c->deferred = decode_error; // the batch has items: tell the error next time
  done(std::move(got));
}

template <class Codec>
task peek_item(std::shared_ptr<fifo_core<Codec>> c, unique_function<void(result<std::optional<raw_item>>)> done) {
  session& s = *c->s;
  auto lst = co_await start_children(s, c->root);
  if (failed_with(lst, zk_errc::no_node)) {
    done(std::optional<raw_item>{});
    co_return;
  }
  if (!lst) {
    done(lst.error());
    co_return;
  }
  for (auto b : sorted_buckets(lst.value().names)) {
    auto bp = join(c->root, bucket_name(b));
    auto il = co_await start_children(s, bp);
    if (failed_with(il, zk_errc::no_node)) continue;
    if (!il) {
      done(il.error());
      co_return;
    }
    for (auto& e : sorted_sequential(il.value().names, item_prefix)) {
      auto g = co_await start_get(s, join(bp, e.name));
      if (failed_with(g, zk_errc::no_node)) continue;
      if (!g) {
        done(g.error());
        co_return;
      }
      done(std::optional<raw_item>(raw_item{join(bp, e.name), std::move(g.value().data)}));
      co_return;
    }
  }
  done(std::optional<raw_item>{});
}

} // namespace detail

/// A distributed FIFO queue of `T` values (encoded with `Codec`).
///
/// \code
/// zkrecipes::fifo_queue<std::string> q(s, "/jobs");
/// q.put("resize 42");
/// auto job = q.take(5s);   // the oldest item, or errc::timed_out
/// \endcode
///
/// Delivery: each item is delivered once. When a take's delete meets a
/// connection loss it is retried; if the node is then gone the item is
/// delivered, so under that fault an item can reach two consumers
/// (at-least-once), never none. For exactly-once processing with crash
/// recovery use locking_queue.
/// Order: items of one producer object come out in the order put. Across
/// producers, order is the servers' commit order, except that an item put
/// into a bucket after the next bucket opened (by a producer that had not yet
/// seen it) comes out before the newer bucket's items.
/// \note The session must outlive the queue. Methods are thread-safe.
template <class T, class Codec = codec_t<T>>
  requires payload_codec<Codec> && std::same_as<T, typename Codec::value_type>
class fifo_queue {
  using core = detail::fifo_core<Codec>;

public:
  using value_type = T;
  using item_type = fifo_item<T>;

  fifo_queue(session& s, std::string path, queue_options opts = {})
      : s_(&s), path_(std::move(path)), valid_(detail::check_queue_options(opts, path_, "fifo_queue")),
        c_(std::make_shared<core>(s, path_, std::move(opts))) {}
  fifo_queue(const fifo_queue&) = delete;
  fifo_queue& operator=(const fifo_queue&) = delete;
  /// Wakes waiting takes with errc::closed.
  ~fifo_queue() { close(); }

  const std::string& path() const noexcept { return path_; }

  /// Appends one item. Handler: `void(result<std::string>)` with the item's path.
  /// \note A put that fails with a connection loss may or may not have been
  ///       queued (creates are not retried, design §3).
  /// Inside a trace_scope the item carries its trace id to the consumer.
  template <class H> void async_put(const T& value, H&& h) {
    auto trace = detail::put_trace_id();
    auto d = encoded(std::span<const T>(&value, 1), trace);
    if (!d) return fail_later(std::forward<H>(h), d.error());
    s_->post([c = c_, d = std::move(d).value(), trace, h = std::forward<H>(h)]() mutable {
      detail::append_items(
          c, &c->appender, std::move(d),
          [c, trace, h = std::move(h)](result<std::vector<std::string>> r) mutable {
            if (!r) return h(result<std::string>(r.error()));
            detail::notify_queue(c->opts.interceptors, true, c->root, r.value().front(), trace);
            h(result<std::string>(std::move(r.value().front())));
          },
          trace);
    });
  }
  result<std::string> put(const T& value) {
    return detail::run_blocking<std::string>(*s_, "queue put", path_,
                                             [this, &value](auto done) { async_put(value, std::move(done)); });
  }

  /// Appends several items atomically (one multi: all or none), in order.
  /// Handler: `void(result<std::vector<std::string>>)`.
  template <class H> void async_put_all(const std::vector<T>& values, H&& h) {
    auto trace = detail::put_trace_id();
    auto d = encoded(values, trace);
    if (d && d.value().empty()) d = make_error(errc::invalid_argument, "queue put_all", path_ + ": no items");
    if (!d) return fail_later(std::forward<H>(h), d.error());
    s_->post([c = c_, d = std::move(d).value(), trace, h = std::forward<H>(h)]() mutable {
      detail::append_items(
          c, &c->appender, std::move(d),
          [c, trace, h = std::move(h)](result<std::vector<std::string>> r) mutable {
            if (r)
              for (auto& p : r.value()) detail::notify_queue(c->opts.interceptors, true, c->root, p, trace);
            h(std::move(r));
          },
          trace);
    });
  }
  result<std::vector<std::string>> put_all(const std::vector<T>& values) {
    return detail::run_blocking<std::vector<std::string>>(
        *s_, "queue put_all", path_, [this, &values](auto done) { async_put_all(values, std::move(done)); });
  }

  /// Takes the oldest item, waiting up to `timeout` for one.
  /// Handler: `void(result<T>)`; errc::timed_out, errc::cancelled (cancel()),
  /// errc::closed, errc::decode_failed (the item that does not decode is left
  /// in place, named in the error, and skipped by this object from then on).
  /// The handler runs with the item's trace id current (trace_scope).
  template <class H> void async_take(std::chrono::milliseconds timeout, H&& h) {
    start_take(1, timeout, true, [h = std::forward<H>(h)](result<std::vector<item_type>> r) mutable {
      if (!r) return h(result<T>(r.error()));
      trace_scope scope(r.value().front().trace_id);
      h(result<T>(std::move(r.value().front().value)));
    });
  }
  result<T> take(std::chrono::milliseconds timeout) {
    return detail::run_blocking<T>(*s_, "queue take", path_,
                                   [this, timeout](auto done) { async_take(timeout, std::move(done)); });
  }
  /// As async_take, with the item's path and trace id.
  /// Handler: `void(result<fifo_item<T>>)`, run with the item's trace id current.
  template <class H> void async_take_item(std::chrono::milliseconds timeout, H&& h) {
    start_take(1, timeout, true, [h = std::forward<H>(h)](result<std::vector<item_type>> r) mutable {
      if (!r) return h(result<item_type>(r.error()));
      trace_scope scope(r.value().front().trace_id);
      h(result<item_type>(std::move(r.value().front())));
    });
  }
  /// As take, with the item's path and trace id (to go on with the producer's
  /// trace: `zkrecipes::trace_scope scope(item->trace_id);`).
  result<item_type> take_item(std::chrono::milliseconds timeout) {
    return detail::run_blocking<item_type>(*s_, "queue take", path_,
                                           [this, timeout](auto done) { async_take_item(timeout, std::move(done)); });
  }
  /// Takes up to `max` items in order (pipelined), waiting up to `timeout`
  /// for the first. Handler: `void(result<std::vector<T>>)`.
  template <class H> void async_take_batch(std::size_t max, std::chrono::milliseconds timeout, H&& h) {
    start_take(max, timeout, true, [h = std::forward<H>(h)](result<std::vector<item_type>> r) mutable {
      if (!r) return h(result<std::vector<T>>(r.error()));
      std::vector<T> out;
      out.reserve(r.value().size());
      for (auto& i : r.value()) out.push_back(std::move(i.value));
      h(result<std::vector<T>>(std::move(out)));
    });
  }
  result<std::vector<T>> take_batch(std::size_t max, std::chrono::milliseconds timeout) {
    return detail::run_blocking<std::vector<T>>(
        *s_, "queue take_batch", path_,
        [this, max, timeout](auto done) { async_take_batch(max, timeout, std::move(done)); });
  }
  /// Takes the oldest item if there is one, without waiting.
  result<std::optional<T>> try_take() {
    return detail::run_blocking<std::optional<T>>(*s_, "queue try_take", path_, [this](auto done) {
      start_take(1, std::chrono::milliseconds(0), false,
                 [done = std::move(done)](result<std::vector<item_type>> r) mutable {
                   if (!r) done(r.error());
                   else if (r.value().empty()) done(std::optional<T>());
                   else done(std::optional<T>(std::move(r.value().front().value)));
                 });
    });
  }

  /// The oldest item without taking it (nullopt if the queue is empty).
  result<std::optional<T>> peek() {
    if (!valid_) return valid_.error();
    auto r = detail::run_blocking<std::optional<detail::raw_item>>(
        *s_, "queue peek", path_, [this](auto done) {
          s_->post([c = c_, done = std::move(done)]() mutable { detail::peek_item(c, std::move(done)); });
        });
    if (!r) return r.error();
    if (!r.value()) return std::optional<T>();
    auto env = detail::unwrap_trace(r.value()->data);
    if (!env) return make_error(errc::decode_failed, "queue peek", r.value()->path + ": " + env.error().message());
    auto v = Codec::decode(env.value().payload);
    if (!v) return make_error(errc::decode_failed, "queue peek", r.value()->path + ": " + v.error().message());
    return std::optional<T>(std::move(v).value());
  }
  /// Items queued: one listing of the folder plus one pipelined stat per bucket.
  result<std::size_t> size() {
    if (!valid_) return valid_.error();
    auto r = detail::run_blocking<std::pair<std::size_t, std::size_t>>(
        *s_, "queue size", path_, [this](auto done) {
          s_->post([c = c_, done = std::move(done)]() mutable {
            detail::count_items(c, c->s, c->root, false, std::move(done));
          });
        });
    if (!r) return r.error();
    return r.value().first;
  }

  /// Ends every take waiting now with errc::cancelled (takes already
  /// deleting an item still deliver it).
  void cancel() {
    s_->post([c = c_] { c->cancel(); });
  }
  /// Ends waiting takes with errc::closed; later takes fail with it (puts,
  /// peek and size still work).
  void close() {
    if (!c_) return;
    s_->post([c = c_] { c->close(); });
  }

private:
  result<std::vector<std::string>> encoded(std::span<const T> values, const std::optional<std::string>& trace) const {
    if (!valid_) return valid_.error();
    return detail::encode_all<Codec>(values, path_, trace);
  }
  template <class H> void fail_later(H&& h, error e) {
    s_->post([h = std::forward<H>(h), e = std::move(e)]() mutable { h(e); });
  }
  template <class H> void start_take(std::size_t max, std::chrono::milliseconds timeout, bool wait, H&& h) {
    if (!valid_) return fail_later(std::forward<H>(h), valid_.error());
    if (max == 0) return fail_later(std::forward<H>(h), make_error(errc::invalid_argument, "queue take", path_ + ": max is 0"));
    auto deadline = std::chrono::steady_clock::now() + std::max(timeout, std::chrono::milliseconds(0));
    s_->post([c = c_, max, deadline, wait, h = std::forward<H>(h)]() mutable {
      detail::take_items<Codec>(c, max, deadline, wait, std::move(h));
    });
  }

  session* s_;
  std::string path_;
  result<void> valid_;
  std::shared_ptr<core> c_;
};

} // namespace zkrecipes
