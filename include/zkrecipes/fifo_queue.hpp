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

/// Options shared by the queues.
struct queue_options {
  /// Sequence numbers per bucket (10..100,000). A bucket's listing holds at
  /// most about this many names (16 bytes each), whatever the queue's depth.
  std::int32_t bucket_capacity = 1000;
  /// Items a consumer reads ahead of its takes (0..1000), so that a take
  /// usually costs one round trip. Each costs memory up to its data size.
  std::size_t prefetch = 16;
  /// ACL of the nodes the queue creates (unset: the session's default).
  std::optional<acl_list> acl;
};

namespace detail {

inline result<void> check_queue_options(const queue_options& o, const std::string& path, const char* op) {
  if (auto v = validate_path(path, op); !v) return v.error();
  if (path == "/") return make_error(errc::invalid_path, op, "/ (a queue needs its own node)");
  if (o.bucket_capacity < 10 || o.bucket_capacity > 100000)
    return make_error(errc::invalid_argument, op,
                      path + ": bucket_capacity " + std::to_string(o.bucket_capacity) + " is outside 10..100000");
  if (o.prefetch > 1000)
    return make_error(errc::invalid_argument, op, path + ": prefetch " + std::to_string(o.prefetch) + " is over 1000");
  return outcome::success();
}

/// Producer half shared by both queues: finds the highest bucket of a
/// folder once, appends to it, opens the next bucket when one fills.
struct bucket_appender {
  session* s;
  std::string folder;
  std::int32_t capacity;
  std::optional<acl_list> acl;

  std::optional<std::uint64_t> tail;
  std::int64_t next_seq = 0; // lower bound of the tail's next sequence number
  std::optional<error> tail_error;
  bool discovering = false;
  std::vector<std::coroutine_handle<>> tail_waiters;

  create_options mode(create_mode m) const { return create_options(m, acl); }
  std::string bucket_path(std::uint64_t b) const { return join(folder, bucket_name(b)); }

  struct tail_awaiter {
    bucket_appender* a;
    bool await_ready() const noexcept { return a->tail.has_value(); }
    void await_suspend(std::coroutine_handle<> h) {
      a->tail_waiters.push_back(h);
      if (!a->discovering) {
        a->discovering = true;
        discover(a);
      }
    }
    result<std::uint64_t> await_resume() {
      if (a->tail) return *a->tail;
      return *a->tail_error;
    }
  };
  /// The bucket to append to (one listing the first time, shared by every put waiting on it).
  tail_awaiter current_tail() { return {this}; }

  // The appender lives inside a core kept alive by the caller's task.
  static task discover(bucket_appender* a) {
    a->tail_error.reset();
    std::optional<std::uint64_t> found;
    std::optional<error> err;
    for (int attempt = 0; attempt < 5 && !found && !err; ++attempt) {
      auto lst = co_await start_children(*a->s, a->folder);
      if (failed_with(lst, zk_errc::no_node)) {
        auto e = co_await start_ensure_path(*a->s, a->folder);
        if (!e) err = e.error();
        continue;
      }
      if (!lst) {
        err = lst.error();
        break;
      }
      auto bs = sorted_buckets(lst.value().names);
      if (!bs.empty()) {
        // The bucket's cversion is its next sequence number.
        auto st = co_await start_exists(*a->s, a->bucket_path(bs.back()));
        if (!st) {
          err = st.error();
          break;
        }
        if (!st.value()) continue; // removed meanwhile: list again
        found = bs.back();
        a->next_seq = st.value()->cversion;
        break;
      }
      auto c = co_await start_create(*a->s, a->bucket_path(0), {}, a->mode(create_mode::persistent));
      if (c || failed_with(c, zk_errc::node_exists)) {
        found = 0;
        a->next_seq = 0;
      }
      else if (!failed_with(c, zk_errc::no_node)) err = c.error();
    }
    if (!found && !err) err = make_error(errc::timed_out, "queue put", a->folder + ": no bucket could be found or made");
    a->tail = found;
    a->tail_error = err;
    a->discovering = false;
    auto ws = std::move(a->tail_waiters);
    a->tail_waiters.clear();
    // A failed discovery leaves tail unset, so the next put tries again.
    // Nothing touches `a` after this: the last waiter may free it.
    for (auto h : ws) h.resume();
  }

  /// Called before `n` items are sent to the tail `bucket`: once the slots
  /// this producer knows of are used up, it opens the next bucket, so that
  /// pipelined puts fill buckets in turn instead of piling into one. Puts
  /// sent later on this session are ordered after the bucket's create.
  void reserve(std::uint64_t bucket, std::size_t n) {
    if (!tail || *tail != bucket) return;
    next_seq += std::int64_t(n);
    if (next_seq >= capacity) open_next(bucket);
  }
  /// Called with every created item path: another producer's items count too.
  void note_created(std::uint64_t bucket, std::string_view item_path) {
    auto seq = sequence_of(item_path).value_or(0);
    if (!tail || *tail != bucket) return;
    next_seq = std::max(next_seq, seq + 1);
    if (next_seq >= capacity) open_next(bucket);
  }
  void open_next(std::uint64_t bucket) {
    tail = bucket + 1;
    next_seq = 0;
    s->async_create(bucket_path(bucket + 1), {}, mode(create_mode::persistent), [](result<created_node>) {
      // node_exists: another producer opened it. Any other failure shows up
      // as no_node on the next put, which finds the tail again.
    });
  }
  /// A put met no_node: its bucket was emptied and removed (or never made).
  void forget_tail(std::uint64_t bucket) {
    if (tail && *tail == bucket) tail.reset();
  }
};

/// Appends one encoded item (or several in one multi) to a bucketed folder.
inline task append_items(std::shared_ptr<void> keep, bucket_appender* a, std::vector<std::string> items,
                         unique_function<void(result<std::vector<std::string>>)> done) {
  (void)keep;
  for (int attempt = 0;; ++attempt) {
    auto t = co_await a->current_tail();
    if (!t) {
      done(t.error());
      co_return;
    }
    auto b = t.value();
    auto prefix = join(a->bucket_path(b), item_prefix);
    a->reserve(b, items.size());
    std::vector<std::string> paths;
    result<void> res = outcome::success();
    if (items.size() == 1) {
      auto c = co_await start_create(*a->s, prefix, items[0], a->mode(create_mode::persistent_sequential));
      if (c) paths.push_back(c.value().path);
      else res = c.error();
    } else {
      multi_op tx;
      for (auto& d : items) tx.create(prefix, d, a->mode(create_mode::persistent_sequential));
      auto m = co_await start_multi(*a->s, tx);
      if (m)
        for (auto& r : m.value()) paths.push_back(r.path);
      else res = m.error();
    }
    if (res) {
      a->note_created(b, paths.back());
      done(std::move(paths));
      co_return;
    }
    // no_node: the bucket was emptied and removed by consumers; nothing was
    // created, so finding the tail again and retrying is safe.
    if (res.error() == zk_errc::no_node && attempt < 8) {
      a->forget_tail(b);
      continue;
    }
    done(res.error());
    co_return;
  }
}

/// One item handed to a consumer: its path and stored bytes.
struct raw_item {
  std::string path;
  std::string data;
};

template <class Codec> struct fifo_core : std::enable_shared_from_this<fifo_core<Codec>> {
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
  std::vector<wakeup> waits;
  std::uint64_t cancel_gen = 0;
  bool closed = false;

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
  void fire_waits() {
    auto ws = std::move(waits);
    waits.clear();
    for (auto& w : ws) w.fire();
  }
};

/// Takes up to `max` items (at least one unless it times out, is cancelled or fails).
template <class Codec>
task take_items(std::shared_ptr<fifo_core<Codec>> c, std::size_t max, std::chrono::steady_clock::time_point deadline,
                bool wait, unique_function<void(result<std::vector<typename Codec::value_type>>)> done) {
  using value_type = typename Codec::value_type;
  const auto gen = c->cancel_gen;
  std::vector<value_type> got;
  std::optional<error> decode_error;
  session& s = *c->s;
  for (;;) {
    if (c->closed) {
      done(make_error(errc::closed, "queue take", c->root));
      co_return;
    }
    if (!got.empty()) break;
    if (c->cancel_gen != gen) {
      done(make_error(errc::cancelled, "queue take", c->root));
      co_return;
    }
    if (decode_error) {
      done(*decode_error);
      co_return;
    }
    if (!c->bucket) {
      auto lst = co_await start_children(s, c->root);
      if (failed_with(lst, zk_errc::no_node)) {
        // Made here so that the waits below can watch it.
        auto e = co_await start_ensure_path(s, c->root);
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
      if (!bs.empty() && !c->bucket) {
        c->bucket = bs.front();
        c->bucket_last = bs.size() == 1;
        auto il = co_await start_children(s, c->bucket_path());
        if (failed_with(il, zk_errc::no_node)) {
          c->reset_bucket();
          continue;
        }
        if (!il) {
          c->reset_bucket();
          done(il.error());
          co_return;
        }
        for (auto& e : sorted_sequential(il.value().names, item_prefix))
          if (!c->poison.count(e.name)) c->names.push_back(e.name);
      }
    }
    if (c->bucket && !c->names.empty()) {
      // Take a batch: reads are already in flight (read-ahead); each delete
      // is sent as soon as its item's data is in hand, so a lost reply can
      // never cost an item's data.
      std::size_t want = max - got.size();
      c->read_ahead(std::max(want, c->opts.prefetch + 1));
      std::vector<std::pair<std::string, pending<void>>> removes;
      std::vector<value_type> values;
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
        auto v = Codec::decode(g.value().data);
        if (!v) {
          // Left in place for a person to inspect; never deleted unread.
          c->poison.insert(nm);
          decode_error = make_error(errc::decode_failed, "queue take",
                                    join(bp, nm) + ": " + v.error().message());
          break;
        }
        removes.emplace_back(join(bp, nm), start_remove(s, join(bp, nm)));
        values.push_back(std::move(v).value());
      }
      for (std::size_t i = 0; i < removes.size(); ++i) {
        auto r = co_await removes[i].second;
        if (failed_with(r, zk_errc::connection_loss)) {
          // Ambiguous: retry once; if the node is gone now, the first delete
          // may have been ours, so the item is delivered (at-least-once).
          auto again = co_await start_remove(s, removes[i].first);
          if (again || failed_with(again, zk_errc::no_node)) r = outcome::success();
          else r = again;
        }
        if (r) got.push_back(std::move(values[i]));
        else if (!failed_with(r, zk_errc::no_node) && !stop)
          stop = r.error(); // not deleted: the item stays queued
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
    // Nothing to take.
    if (!wait || std::chrono::steady_clock::now() >= deadline) {
      if (!wait) done(std::vector<value_type>{});
      else done(make_error(errc::timed_out, "queue take", c->root));
      co_return;
    }
    // Wait on a children watch of the tail bucket (new items) and of the
    // folder (a new bucket), read again with the watches set.
    wakeup w;
    c->waits.push_back(w);
    auto lr = start_children(s, c->root, w.as_watcher());
    std::optional<pending<children_list>> lb;
    if (c->bucket) lb = start_children(s, c->bucket_path(), w.as_watcher());
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
          if (!c->poison.count(e.name)) changed = true;
    }
    if (!changed) {
      auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      auto timer = fire_after(s, std::max(remaining, std::chrono::milliseconds(0)) + std::chrono::milliseconds(1), w);
      co_await w;
      s.cancel_timer(timer);
    }
    std::erase_if(c->waits, [&](const wakeup& x) { return x == w || x.fired(); });
    c->reset_bucket();
  }
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

/// Counts items under a bucketed folder: one listing, then the buckets'
/// stats pipelined. `only_items` lists each bucket instead, counting i- names
/// (and c- claims into *claimed) when claims share the bucket.
inline task count_items(std::shared_ptr<void> keep, session* sp, std::string folder, bool only_items,
                        unique_function<void(result<std::pair<std::size_t, std::size_t>>)> done) {
  (void)keep;
  session& s = *sp;
  auto lst = co_await start_children(s, folder);
  if (failed_with(lst, zk_errc::no_node)) {
    done(std::pair<std::size_t, std::size_t>{0, 0});
    co_return;
  }
  if (!lst) {
    done(lst.error());
    co_return;
  }
  std::size_t items = 0, claims = 0;
  auto bs = sorted_buckets(lst.value().names);
  if (!only_items) {
    std::vector<pending<std::optional<zkrecipes::stat>>> ps;
    for (auto b : bs) ps.push_back(start_exists(s, join(folder, bucket_name(b))));
    for (auto& p : ps) {
      auto r = co_await p;
      if (!r) {
        done(r.error());
        co_return;
      }
      if (r.value()) items += std::size_t(r.value()->num_children);
    }
  } else {
    std::vector<pending<children_list>> ps;
    for (auto b : bs) ps.push_back(start_children(s, join(folder, bucket_name(b))));
    for (auto& p : ps) {
      auto r = co_await p;
      if (failed_with(r, zk_errc::no_node)) continue;
      if (!r) {
        done(r.error());
        co_return;
      }
      items += sorted_sequential(r.value().names, item_prefix).size();
      for (auto& n : r.value().names)
        if (n.rfind(claim_prefix, 0) == 0) ++claims;
    }
  }
  done(std::pair<std::size_t, std::size_t>{items, claims});
}

/// Blocks a user thread on a task's completion. The task always completes
/// (operations fail when the session closes), at the latest one round of
/// replies after its own deadline.
template <class T, class Start> result<T> run_blocking(session& s, const char* op, const std::string& path, Start&& start) {
  if (s.on_dispatcher_thread()) return make_error(errc::would_deadlock, op, path);
  auto p = std::make_shared<std::promise<result<T>>>();
  auto f = p->get_future();
  start([p](result<T> r) { p->set_value(std::move(r)); });
  return f.get();
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
  template <class H> void async_put(const T& value, H&& h) {
    auto d = encoded(std::span<const T>(&value, 1));
    if (!d) return fail_later(std::forward<H>(h), d.error());
    s_->post([c = c_, d = std::move(d).value(), h = std::forward<H>(h)]() mutable {
      detail::append_items(c, &c->appender, std::move(d),
                           [h = std::move(h)](result<std::vector<std::string>> r) mutable {
                             if (!r) h(result<std::string>(r.error()));
                             else h(result<std::string>(std::move(r.value().front())));
                           });
    });
  }
  result<std::string> put(const T& value) {
    return detail::run_blocking<std::string>(*s_, "queue put", path_,
                                             [this, &value](auto done) { async_put(value, std::move(done)); });
  }

  /// Appends several items atomically (one multi: all or none), in order.
  /// Handler: `void(result<std::vector<std::string>>)`.
  template <class H> void async_put_all(const std::vector<T>& values, H&& h) {
    auto d = encoded(values);
    if (d && d.value().empty()) d = make_error(errc::invalid_argument, "queue put_all", path_ + ": no items");
    if (!d) return fail_later(std::forward<H>(h), d.error());
    s_->post([c = c_, d = std::move(d).value(), h = std::forward<H>(h)]() mutable {
      detail::append_items(c, &c->appender, std::move(d), std::move(h));
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
  template <class H> void async_take(std::chrono::milliseconds timeout, H&& h) {
    start_take(1, timeout, true, [h = std::forward<H>(h)](result<std::vector<T>> r) mutable {
      if (!r) h(result<T>(r.error()));
      else h(result<T>(std::move(r.value().front())));
    });
  }
  result<T> take(std::chrono::milliseconds timeout) {
    return detail::run_blocking<T>(*s_, "queue take", path_,
                                   [this, timeout](auto done) { async_take(timeout, std::move(done)); });
  }
  /// Takes up to `max` items in order (pipelined), waiting up to `timeout`
  /// for the first. Handler: `void(result<std::vector<T>>)`.
  template <class H> void async_take_batch(std::size_t max, std::chrono::milliseconds timeout, H&& h) {
    start_take(max, timeout, true, std::forward<H>(h));
  }
  result<std::vector<T>> take_batch(std::size_t max, std::chrono::milliseconds timeout) {
    return detail::run_blocking<std::vector<T>>(
        *s_, "queue take_batch", path_,
        [this, max, timeout](auto done) { async_take_batch(max, timeout, std::move(done)); });
  }
  /// Takes the oldest item if there is one, without waiting.
  result<std::optional<T>> try_take() {
    return detail::run_blocking<std::optional<T>>(*s_, "queue try_take", path_, [this](auto done) {
      start_take(1, std::chrono::milliseconds(0), false, [done = std::move(done)](result<std::vector<T>> r) mutable {
        if (!r) done(r.error());
        else if (r.value().empty()) done(std::optional<T>());
        else done(std::optional<T>(std::move(r.value().front())));
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
    auto v = Codec::decode(r.value()->data);
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
    s_->post([c = c_] {
      ++c->cancel_gen;
      c->fire_waits();
    });
  }
  /// Ends waiting takes with errc::closed; later calls fail with it.
  void close() {
    if (!c_) return;
    s_->post([c = c_] {
      c->closed = true;
      c->fire_waits();
    });
  }

private:
  result<std::vector<std::string>> encoded(std::span<const T> values) const {
    if (!valid_) return valid_.error();
    std::vector<std::string> out;
    out.reserve(values.size());
    for (auto& v : values) {
      auto e = Codec::encode(v);
      if (!e) return make_error(errc::encode_failed, "queue put", path_ + ": " + e.error().message());
      out.push_back(std::move(e).value());
    }
    return out;
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
