// Interceptors: a chain that stands between recipes and the session, and
// trace ids that follow one request across operations and processes.
//
// A session handle made with session::intercepted(chain) sends every
// operation through the chain: each interceptor sees the operation before it
// is sent (kind, path, size, trace id) and after it completes (result, zxid,
// latency). Every recipe takes a session&, so a recipe given the intercepted
// handle has all its operations seen, unchanged (design §6).
//
// Rules (docs/interceptors.md):
//   - interceptors run in list order, before and after, on one record that
//     each passes on to the next;
//   - a malformed field (a path ZooKeeper would refuse, a trace id that is
//     not 1..64 of [A-Za-z0-9._-]) is set to null, never fails the record;
//   - an interceptor that throws is isolated: the next one still runs and
//     the operation goes on; the error is appended to the record's
//     interceptor_errors (seen on the completion path) and sent to the
//     chain's error sink;
//   - the list comes from configuration (make_interceptor_chain("trace:/x,counter"));
//     an empty list means none, and costs one null check per operation.
//
// Queues (fifo_queue, locking_queue) take queue_interceptors too: they see
// the queue path, the item key, its sequence number and the trace id the
// item carries.
//
// This header does not depend on session.hpp (session.hpp includes it).
#pragma once

#include "zkrecipes/error.hpp"
#include "zkrecipes/path.hpp"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

namespace zkrecipes {

// ---- trace ids ----------------------------------------------------------------

/// The longest trace id carried (in records and inside queue items).
inline constexpr std::size_t max_trace_id_size = 64;

/// True for 1..64 characters of [A-Za-z0-9._-]: what a trace id may be.
inline bool valid_trace_id(std::string_view id) noexcept {
  if (id.empty() || id.size() > max_trace_id_size) return false;
  for (char ch : id) {
    const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                    ch == '.' || ch == '_' || ch == '-';
    if (!ok) return false;
  }
  return true;
}

namespace detail {
inline std::optional<std::string>& trace_slot() noexcept {
  thread_local std::optional<std::string> current;
  return current;
}
} // namespace detail

/// The trace id of the innermost trace_scope active on this thread (as
/// given: records and queue items drop it when it is malformed).
inline std::optional<std::string> current_trace_id() { return detail::trace_slot(); }

/// A new random trace id: 16 hex digits.
inline std::string make_trace_id() {
  thread_local std::mt19937_64 rng = [] {
    std::random_device rd;
    return std::mt19937_64((std::uint64_t(rd()) << 32) ^ rd());
  }();
  static constexpr char hex[] = "0123456789abcdef";
  std::uint64_t v = rng();
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, v >>= 4) out[std::size_t(i)] = hex[v & 0xf];
  return out;
}

/// Sets this thread's trace id until the scope ends (then restores the one
/// before). Operations started meanwhile on an intercepted session carry it,
/// and so do their completion handlers and tasks posted from there; queue
/// items put meanwhile carry it to their consumers. nullopt clears it.
class trace_scope {
public:
  explicit trace_scope(std::optional<std::string> id) : saved_(std::exchange(detail::trace_slot(), std::move(id))) {}
  explicit trace_scope(std::string id) : trace_scope(std::optional<std::string>(std::move(id))) {}
  explicit trace_scope(std::string_view id) : trace_scope(std::optional<std::string>(std::string(id))) {}
  explicit trace_scope(const char* id) : trace_scope(std::string_view(id)) {}
  ~trace_scope() { detail::trace_slot() = std::move(saved_); }
  trace_scope(const trace_scope&) = delete;
  trace_scope& operator=(const trace_scope&) = delete;

private:
  std::optional<std::string> saved_;
};

// ---- records ------------------------------------------------------------------

/// What an interceptor sees of one session operation. Fields before the
/// completion ones are set before the operation is sent; `result` stays
/// nullopt until it completes.
struct operation_record {
  std::uint64_t id = 0;               ///< unique within this process
  std::string kind;                   ///< "create", "get", "set", "remove", "exists", "children", "multi", "sync", "add_auth", "ensure_path", "remove_recursive"
  std::optional<std::string> path;    ///< null when not a valid ZooKeeper path (multi: its first operation's path)
  std::optional<std::size_t> size;    ///< payload bytes sent (create, set, multi: all its data)
  std::optional<std::string> trace_id; ///< the current trace id, null when none or malformed
  bool watch = false;                 ///< the read sets a watch
  std::int64_t session_id = 0;        ///< the ZooKeeper session when it was sent (0 before the first connect)
  // Completion:
  std::optional<std::error_code> result; ///< nullopt before completion; a zero code on success
  std::optional<std::string> error;      ///< the error's message on failure ("get /a: no node")
  std::optional<std::int64_t> zxid;      ///< create: czxid; set, get, exists: mzxid; children: pzxid; multi: largest mzxid of its sets; otherwise null
  std::optional<std::chrono::microseconds> latency; ///< from sending to completion (interceptors' own time excluded)
  std::vector<std::string> interceptor_errors;      ///< "<name>: <what>" of each interceptor that threw

  bool completed() const noexcept { return result.has_value(); }
  bool ok() const noexcept { return result && !*result; }
};

/// What a queue interceptor sees of one item put or taken.
struct queue_record {
  std::string role;                    ///< "produce" (created) or "consume" (taken / claimed)
  std::string queue_path;              ///< the queue's node
  std::string item_key;                ///< the item's node under the queue: "b-0000000000/i-0000000007" (locking queue: "p-005/b-.../i-...")
  std::optional<std::uint64_t> bucket; ///< the bucket number
  std::optional<std::int64_t> sequence; ///< the item's sequence number in its bucket (its offset there)
  std::optional<int> priority;         ///< the lane (locking queue only)
  std::optional<std::string> trace_id; ///< carried inside the item; null when none or malformed
  std::vector<std::string> interceptor_errors; ///< "<name>: <what>" of each queue interceptor that threw
};

/// Sets malformed fields to null (never fails).
inline void sanitize(operation_record& r) noexcept {
  if (r.path && detail::path_problem(*r.path)) r.path.reset();
  if (r.trace_id && !valid_trace_id(*r.trace_id)) r.trace_id.reset();
}
inline void sanitize(queue_record& r) noexcept {
  if (r.trace_id && !valid_trace_id(*r.trace_id)) r.trace_id.reset();
}

// ---- interceptors ---------------------------------------------------------------

/// Sees session operations. Both calls run on the thread that starts the
/// operation (before) and on the session's dispatcher thread (after): keep
/// them short and never block in them.
class interceptor {
public:
  virtual ~interceptor() = default;
  /// Names the interceptor in error reports.
  virtual std::string_view name() const { return "interceptor"; }
  /// Before the operation is sent. May change the record (the next
  /// interceptor sees the change; malformed fields are nulled again).
  virtual void before(operation_record&) {}
  /// After it completed, before its completion handler runs.
  virtual void after(operation_record&) {}
};

/// Sees queue items (queue_options::interceptors). Called on the session's
/// dispatcher thread: keep it short and never block in it.
class queue_interceptor {
public:
  virtual ~queue_interceptor() = default;
  virtual std::string_view name() const { return "queue_interceptor"; }
  /// After an item was created, before the put's handler runs.
  virtual void on_produce(queue_record&) {}
  /// After an item was taken (fifo: deleted; locking: claimed), before the take's handler runs.
  virtual void on_consume(queue_record&) {}
};

/// Receives the "<name>: <what>" of each interceptor that threw.
using interceptor_error_sink = std::function<void(std::string_view)>;

namespace detail {
/// Runs one interceptor call; a throw is noted on the record and sent to the sink.
template <class Record, class Named, class Call>
void isolated(Record& r, const Named& who, const interceptor_error_sink& sink, Call&& call) noexcept {
  const char* what = nullptr;
  std::string text;
  try {
    call();
    return;
  } catch (const std::exception& e) {
    try {
      text = e.what();
    } catch (...) {
    }
    what = text.c_str();
  } catch (...) {
    what = "unknown exception";
  }
  try {
    std::string name;
    try {
      name = std::string(who.name());
    } catch (...) {
      name = "interceptor";
    }
    std::string msg = name + ": " + what;
    if (sink) {
      try {
        sink(msg);
      } catch (...) {
      }
    }
    r.interceptor_errors.push_back(std::move(msg));
  } catch (...) {
    // Out of memory while reporting: the chain still goes on.
  }
}
} // namespace detail

/// Interceptors run in list order, each call isolated (see the top of this
/// header). Build it, then share it (const) with session::intercepted.
class interceptor_chain {
public:
  interceptor_chain() = default;
  explicit interceptor_chain(std::vector<std::shared_ptr<interceptor>> list, interceptor_error_sink sink = {})
      : sink_(std::move(sink)) {
    for (auto& i : list)
      if (i) list_.push_back(std::move(i));
  }

  /// Appends an interceptor (null is ignored). Only before the chain is shared.
  interceptor_chain& add(std::shared_ptr<interceptor> i) {
    if (i) list_.push_back(std::move(i));
    return *this;
  }
  /// Where interceptor errors also go (besides the record). Only before the chain is shared.
  interceptor_chain& set_error_sink(interceptor_error_sink sink) {
    sink_ = std::move(sink);
    return *this;
  }

  bool empty() const noexcept { return list_.empty(); }
  std::size_t size() const noexcept { return list_.size(); }
  const std::vector<std::shared_ptr<interceptor>>& interceptors() const noexcept { return list_; }

  /// Every interceptor's before(), in list order.
  void before(operation_record& r) const noexcept {
    for (auto& i : list_) {
      sanitize(r);
      detail::isolated(r, *i, sink_, [&] { i->before(r); });
    }
    sanitize(r);
  }
  /// Every interceptor's after(), in list order.
  void after(operation_record& r) const noexcept {
    for (auto& i : list_) {
      sanitize(r);
      detail::isolated(r, *i, sink_, [&] { i->after(r); });
    }
    sanitize(r);
  }

  /// The interceptors that also see queues (e.g. trace_writer), for
  /// queue_options::interceptors: one configuration for both.
  std::vector<std::shared_ptr<queue_interceptor>> queue_interceptors() const {
    std::vector<std::shared_ptr<queue_interceptor>> out;
    for (auto& i : list_)
      if (auto q = std::dynamic_pointer_cast<queue_interceptor>(i)) out.push_back(std::move(q));
    return out;
  }

private:
  std::vector<std::shared_ptr<interceptor>> list_;
  interceptor_error_sink sink_;
};

namespace detail {
/// Runs queue interceptors in list order, each isolated.
inline void run_queue_interceptors(const std::vector<std::shared_ptr<queue_interceptor>>& list, queue_record& r,
                                   bool produce) noexcept {
  static const interceptor_error_sink none;
  for (auto& i : list) {
    if (!i) continue;
    sanitize(r);
    detail::isolated(r, *i, none, [&] {
      if (produce)
        i->on_produce(r);
      else
        i->on_consume(r);
    });
  }
}

// ---- JSON lines -------------------------------------------------------------------

/// Length of the valid UTF-8 sequence at s[i], or 0 when the bytes there are
/// not one (overlong, surrogate, above U+10FFFF, truncated).
inline std::size_t utf8_sequence(std::string_view s, std::size_t i) noexcept {
  auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  std::size_t n;
  std::uint32_t cp;
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) n = 2, cp = c & 0x1f;
  else if (c >= 0xe0 && c <= 0xef) n = 3, cp = c & 0x0f;
  else if (c >= 0xf0 && c <= 0xf4) n = 4, cp = c & 0x07;
  else return 0;
  if (i + n > s.size()) return 0;
  for (std::size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (b(i + k) & 0x3f);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return n;
}

/// Appends `s` as a JSON string: quotes, backslashes and control characters
/// escaped; bytes that are not UTF-8 replaced by U+FFFD.
inline void append_json_string(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  out += '"';
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += char(c);
      ++i;
    } else if (c < 0x20 || c == 0x7f) {
      switch (c) {
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        out += "\\u00";
        out += hex[c >> 4];
        out += hex[c & 0xf];
      }
      ++i;
    } else if (std::size_t n = utf8_sequence(s, i)) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out += "\\ufffd";
      ++i;
    }
  }
  out += '"';
}

inline void append_json_field(std::string& out, std::string_view key) {
  if (out.size() > 1) out += ',';
  append_json_string(out, key);
  out += ':';
}
inline void json_string_field(std::string& out, std::string_view key, const std::optional<std::string>& v) {
  append_json_field(out, key);
  if (v)
    append_json_string(out, *v);
  else
    out += "null";
}
template <class N> void json_number_field(std::string& out, std::string_view key, const std::optional<N>& v) {
  append_json_field(out, key);
  out += v ? std::to_string(*v) : std::string("null");
}
inline void json_errors_field(std::string& out, const std::vector<std::string>& errors) {
  append_json_field(out, "errors");
  out += '[';
  for (std::size_t i = 0; i < errors.size(); ++i) {
    if (i) out += ',';
    append_json_string(out, errors[i]);
  }
  out += ']';
}

/// UTC wall-clock time with microseconds: "2025-01-31T12:00:00.123456Z".
inline std::string utc_timestamp() {
  auto now = std::chrono::system_clock::now();
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(us / 1000000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, int(us % 1000000));
  return buf;
}
} // namespace detail

// ---- built-in interceptors --------------------------------------------------------

/// Writes one JSON object per line for every completed operation and every
/// queue item put or taken (docs/tracing.md):
///
///   {"ts":"...","pid":4242,"event":"op","id":7,"kind":"create","path":"/q/b-0000000000/i-",
///    "size":12,"trace_id":"4f3c...","watch":false,"session":"0x1000...","result":"ok",
///    "error":null,"zxid":4294967302,"latency_us":812,"errors":[]}
///   {"ts":"...","pid":4242,"event":"queue","role":"produce","queue":"/q",
///    "key":"b-0000000000/i-0000000000","bucket":0,"sequence":0,"priority":null,
///    "trace_id":"4f3c...","errors":[]}
///
/// Thread-safe; each line goes out in one write(2) on a file opened for
/// appending, so several processes can share one trace file.
class trace_writer final : public interceptor, public queue_interceptor {
public:
  /// Receives each line (without its newline).
  using line_sink = std::function<void(std::string_view)>;

  /// Appends to the file at `path` (created if missing); "-" or "" writes
  /// to standard error. Errors: the open's errno, naming the path.
  static result<std::shared_ptr<trace_writer>> open(std::string_view path) {
    if (path.empty() || path == "-") return std::shared_ptr<trace_writer>(new trace_writer(STDERR_FILENO, false));
    std::string p(path);
    int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return make_error(std::error_code(errno, std::generic_category()), "trace_writer", p);
    return std::shared_ptr<trace_writer>(new trace_writer(fd, true));
  }
  /// Hands each line to `sink` instead of a file.
  explicit trace_writer(line_sink sink) : sink_(std::move(sink)) {}
  ~trace_writer() override {
    if (own_fd_) ::close(fd_);
  }
  trace_writer(const trace_writer&) = delete;
  trace_writer& operator=(const trace_writer&) = delete;

  std::string_view name() const override { return "trace"; }
  void after(operation_record& r) override { write_line(format(r)); }
  void on_produce(queue_record& r) override { write_line(format(r)); }
  void on_consume(queue_record& r) override { write_line(format(r)); }

  /// The line written for an operation.
  static std::string format(const operation_record& r) {
    std::string o = "{";
    head(o, "op");
    detail::json_number_field(o, "id", std::optional<std::uint64_t>(r.id));
    detail::json_string_field(o, "kind", std::optional<std::string>(r.kind));
    detail::json_string_field(o, "path", r.path);
    detail::json_number_field(o, "size", r.size);
    detail::json_string_field(o, "trace_id", r.trace_id);
    detail::append_json_field(o, "watch");
    o += r.watch ? "true" : "false";
    char sid[32];
    std::snprintf(sid, sizeof sid, "0x%llx", static_cast<unsigned long long>(r.session_id));
    detail::json_string_field(o, "session", std::optional<std::string>(sid));
    std::optional<std::string> res;
    if (r.result) res = *r.result ? r.result->message() : std::string("ok");
    detail::json_string_field(o, "result", res);
    detail::json_string_field(o, "error", r.error);
    detail::json_number_field(o, "zxid", r.zxid);
    std::optional<std::int64_t> lat;
    if (r.latency) lat = r.latency->count();
    detail::json_number_field(o, "latency_us", lat);
    detail::json_errors_field(o, r.interceptor_errors);
    o += '}';
    return o;
  }
  /// The line written for a queue item.
  static std::string format(const queue_record& r) {
    std::string o = "{";
    head(o, "queue");
    detail::json_string_field(o, "role", std::optional<std::string>(r.role));
    detail::json_string_field(o, "queue", std::optional<std::string>(r.queue_path));
    detail::json_string_field(o, "key", std::optional<std::string>(r.item_key));
    detail::json_number_field(o, "bucket", r.bucket);
    detail::json_number_field(o, "sequence", r.sequence);
    detail::json_number_field(o, "priority", r.priority);
    detail::json_string_field(o, "trace_id", r.trace_id);
    detail::json_errors_field(o, r.interceptor_errors);
    o += '}';
    return o;
  }

private:
  trace_writer(int fd, bool own) : fd_(fd), own_fd_(own) {}

  static void head(std::string& o, const char* event) {
    detail::json_string_field(o, "ts", std::optional<std::string>(detail::utc_timestamp()));
    detail::json_number_field(o, "pid", std::optional<long>(long(::getpid())));
    detail::json_string_field(o, "event", std::optional<std::string>(event));
  }

  void write_line(std::string line) {
    std::lock_guard lk(m_);
    if (sink_) return sink_(line);
    line += '\n';
    std::size_t done = 0;
    while (done < line.size()) {
      ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) throw std::system_error(errno, std::generic_category(), "trace write");
      done += std::size_t(n);
    }
  }

  std::mutex m_;
  int fd_ = -1;
  bool own_fd_ = false;
  line_sink sink_;
};

/// Counts operations and queue items (name "counter"): the cheapest useful
/// interceptor, and a model for metrics.
class counting_interceptor final : public interceptor, public queue_interceptor {
public:
  std::string_view name() const override { return "counter"; }
  void before(operation_record&) override { started_.fetch_add(1, std::memory_order_relaxed); }
  void after(operation_record& r) override {
    completed_.fetch_add(1, std::memory_order_relaxed);
    if (!r.ok()) failed_.fetch_add(1, std::memory_order_relaxed);
  }
  void on_produce(queue_record&) override { produced_.fetch_add(1, std::memory_order_relaxed); }
  void on_consume(queue_record&) override { consumed_.fetch_add(1, std::memory_order_relaxed); }

  std::uint64_t started() const noexcept { return started_.load(); }
  std::uint64_t completed() const noexcept { return completed_.load(); }
  std::uint64_t failed() const noexcept { return failed_.load(); }
  std::uint64_t produced() const noexcept { return produced_.load(); }
  std::uint64_t consumed() const noexcept { return consumed_.load(); }

private:
  std::atomic<std::uint64_t> started_{0}, completed_{0}, failed_{0}, produced_{0}, consumed_{0};
};

// ---- configuration ------------------------------------------------------------------

/// Makes an interceptor from the argument after "name:" in a spec ("" when none).
using interceptor_factory = std::function<result<std::shared_ptr<interceptor>>(std::string_view arg)>;

/// Interceptor names and their factories.
class interceptor_registry {
public:
  /// Adds (or replaces) a name.
  interceptor_registry& add(std::string name, interceptor_factory f) {
    factories_[std::move(name)] = std::move(f);
    return *this;
  }
  const interceptor_factory* find(std::string_view name) const {
    auto it = factories_.find(std::string(name));
    return it == factories_.end() ? nullptr : &it->second;
  }
  /// The names, sorted.
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (auto& [n, f] : factories_) out.push_back(n);
    return out;
  }
  /// A registry with the built-ins: "trace[:file]" (trace_writer; no file or
  /// "-": standard error) and "counter" (counting_interceptor).
  static interceptor_registry with_builtins() {
    interceptor_registry r;
    r.add("trace", [](std::string_view arg) -> result<std::shared_ptr<interceptor>> {
      auto w = trace_writer::open(arg);
      if (!w) return w.error();
      return std::shared_ptr<interceptor>(std::move(w).value());
    });
    r.add("counter", [](std::string_view arg) -> result<std::shared_ptr<interceptor>> {
      if (!arg.empty())
        return make_error(errc::invalid_argument, "make_interceptor_chain",
                          "counter takes no argument (got '" + std::string(arg) + "')");
      return std::shared_ptr<interceptor>(std::make_shared<counting_interceptor>());
    });
    return r;
  }

private:
  std::map<std::string, interceptor_factory, std::less<>> factories_;
};

/// The built-ins (see interceptor_registry::with_builtins). To add names of
/// your own, copy it: `auto r = interceptor_registry::with_builtins(); r.add(...)`.
inline const interceptor_registry& default_registry() {
  static const interceptor_registry r = interceptor_registry::with_builtins();
  return r;
}

/// Builds a chain from a comma-separated list of `name[:argument]` in the
/// order given, e.g. "trace:/var/log/zk.jsonl,counter". Spaces around items
/// are ignored; an empty spec gives an empty chain (no interceptors).
/// Errors: errc::invalid_argument naming an unknown name (and the known
/// ones); a factory's own error (e.g. a trace file that cannot be opened).
inline result<std::shared_ptr<interceptor_chain>> make_interceptor_chain(
    std::string_view spec, const interceptor_registry& registry = default_registry()) {
  auto trim = [](std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
  };
  auto chain = std::make_shared<interceptor_chain>();
  std::string_view rest = spec;
  while (!rest.empty()) {
    auto comma = rest.find(',');
    auto item = trim(rest.substr(0, comma));
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    if (item.empty()) continue;
    auto colon = item.find(':');
    auto name = trim(item.substr(0, colon));
    auto arg = colon == std::string_view::npos ? std::string_view() : trim(item.substr(colon + 1));
    const interceptor_factory* f = registry.find(name);
    if (!f) {
      std::string known;
      for (auto& n : registry.names()) known += (known.empty() ? "" : ", ") + n;
      return make_error(errc::invalid_argument, "make_interceptor_chain",
                        "unknown interceptor '" + std::string(name) + "' in \"" + std::string(spec) +
                            "\" (known: " + (known.empty() ? "none" : known) + ")");
    }
    auto made = (*f)(arg);
    if (!made) return made.error();
    if (!made.value())
      return make_error(errc::invalid_argument, "make_interceptor_chain",
                        "the factory of '" + std::string(name) + "' made no interceptor");
    chain->add(std::move(made).value());
  }
  return chain;
}

} // namespace zkrecipes
