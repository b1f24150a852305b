// Bucket layout shared by the queues: items live in numbered bucket nodes
// (`b-0000000000`, `b-0000000001`...) so that no listing grows with the
// queue's depth (a flat folder's getChildren nears the 1 MB packet limit at
// about 50,000 items).
#pragma once

#include "zkrecipes/detail/coro.hpp"
#include "zkrecipes/detail/trace_envelope.hpp"
#include "zkrecipes/error.hpp"
#include "zkrecipes/interceptor.hpp"
#include "zkrecipes/path.hpp"
#include "zkrecipes/queue_options.hpp"
#include "zkrecipes/session.hpp"

#include <algorithm>
#include <coroutine>
#include <future>
#include <memory>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace zkrecipes::detail {

inline constexpr std::string_view bucket_prefix = "b-";
inline constexpr std::string_view item_prefix = "i-";
inline constexpr std::string_view claim_prefix = "c-";

inline std::string bucket_name(std::uint64_t n) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "b-%010llu", static_cast<unsigned long long>(n));
  return buf;
}

/// The number of a bucket name, or nullopt for any other name.
inline std::optional<std::uint64_t> bucket_number(std::string_view name) noexcept {
  if (name.size() < 3 || name.substr(0, 2) != bucket_prefix) return std::nullopt;
  std::uint64_t v = 0;
  for (char ch : name.substr(2)) {
    if (ch < '0' || ch > '9' || v > (UINT64_MAX - 9) / 10) return std::nullopt;
    v = v * 10 + std::uint64_t(ch - '0');
  }
  return v;
}

/// Bucket numbers of a listing, ascending; other names are ignored.
inline std::vector<std::uint64_t> sorted_buckets(const std::vector<std::string>& names) {
  std::vector<std::uint64_t> out;
  for (auto& n : names)
    if (auto b = bucket_number(n)) out.push_back(*b);
  std::sort(out.begin(), out.end());
  return out;
}

struct item_entry {
  std::string name;
  std::int64_t seq;
};

/// Names starting with `prefix` and ending in a sequence suffix, by number.
inline std::vector<item_entry> sorted_sequential(const std::vector<std::string>& names, std::string_view prefix) {
  std::vector<item_entry> out;
  for (auto& n : names) {
    if (n.size() <= prefix.size() || std::string_view(n).substr(0, prefix.size()) != prefix) continue;
    if (auto s = sequence_of(n)) out.push_back({n, *s});
  }
  std::sort(out.begin(), out.end(), [](const item_entry& a, const item_entry& b) { return a.seq < b.seq; });
  return out;
}

/// The claim node name of an item ("i-0000000007" -> "c-0000000007").
inline std::string claim_name_of(std::string_view item_name) {
  return std::string(claim_prefix) + std::string(item_name.substr(item_prefix.size()));
}

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
        auto e = co_await start_ensure_path(*a->s, a->folder, a->acl);
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
/// The item's create carries `trace` (when the session is intercepted).
inline task append_items(std::shared_ptr<void> keep, bucket_appender* a, std::vector<std::string> items,
                         unique_function<void(result<std::vector<std::string>>)> done,
                         std::optional<std::string> trace = std::nullopt) {
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
    // Set only while the operation is started: a scope must not span a co_await.
    std::optional<trace_scope> scope;
    if (trace) scope.emplace(trace);
    if (items.size() == 1) {
      auto pc = start_create(*a->s, prefix, items[0], a->mode(create_mode::persistent_sequential));
      scope.reset();
      auto c = co_await pc;
      if (c) paths.push_back(c.value().path);
      else res = c.error();
    } else {
      multi_op tx;
      for (auto& d : items) tx.create(prefix, d, a->mode(create_mode::persistent_sequential));
      auto pm = start_multi(*a->s, tx);
      scope.reset();
      auto m = co_await pm;
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

/// What the queues' waiting takes share: the waits to wake, the paths with
/// a children watch set, and the cancel and close flags (dispatcher thread).
struct take_waits {
  std::vector<wakeup> waits;
  std::set<std::string> armed; // paths with a children watch set and not yet fired
  std::uint64_t cancel_gen = 0;
  bool closed = false;

  void fire_waits() {
    auto ws = std::move(waits);
    waits.clear();
    for (auto& w : ws) w.fire();
  }
  void cancel() {
    ++cancel_gen;
    fire_waits();
  }
  void close() {
    closed = true;
    fire_waits();
  }
  /// A children watch on `path` unless one is already set: one per path per
  /// object, whatever the number of waits, so idle takes pile none up. Its
  /// firing wakes every wait. `self` is this object, owned by a shared_ptr.
  watcher arm(const std::string& path, std::weak_ptr<take_waits> self) {
    if (!armed.insert(path).second) return {};
    return [self = std::move(self), path](result<watch_event>) {
      if (auto t = self.lock()) {
        t->armed.erase(path);
        t->fire_waits();
      }
    };
  }
};

/// Encodes every value with Codec, naming the queue on failure, and wraps
/// each in the trace envelope when it carries `trace` (or must be wrapped).
template <class Codec>
result<std::vector<std::string>> encode_all(std::span<const typename Codec::value_type> values, const std::string& path,
                                            const std::optional<std::string>& trace = std::nullopt) {
  std::vector<std::string> out;
  out.reserve(values.size());
  for (auto& v : values) {
    auto e = Codec::encode(v);
    if (!e) return make_error(errc::encode_failed, "queue put", path + ": " + e.error().message());
    auto& bytes = e.value();
    if (trace || std::string_view(bytes).substr(0, trace_magic.size()) == trace_magic)
      out.push_back(wrap_trace(bytes, trace));
    else
      out.push_back(std::move(bytes));
  }
  return out;
}

/// The current trace id if it is valid (what a put carries).
inline std::optional<std::string> put_trace_id() {
  auto id = current_trace_id();
  if (id && !valid_trace_id(*id)) id.reset();
  return id;
}

/// Tells queue interceptors of one item (nothing to do when there are none).
inline void notify_queue(const std::vector<std::shared_ptr<queue_interceptor>>& list, bool produce,
                         const std::string& root, std::string_view item_path, const std::optional<std::string>& trace,
                         std::optional<int> priority = std::nullopt) {
  if (list.empty()) return;
  queue_record r;
  r.role = produce ? "produce" : "consume";
  r.queue_path = root;
  std::string_view key = item_path;
  if (key.size() > root.size() && key.substr(0, root.size()) == root && key[root.size()] == '/')
    key.remove_prefix(root.size() + 1);
  r.item_key = std::string(key);
  r.bucket = bucket_number(name(parent(item_path)));
  r.sequence = sequence_of(item_path);
  r.priority = priority;
  r.trace_id = trace;
  run_queue_interceptors(list, r, produce);
}

/// One item handed to a consumer: its path and stored bytes.
struct raw_item {
  std::string path;
  std::string data;
};

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

} // namespace zkrecipes::detail
