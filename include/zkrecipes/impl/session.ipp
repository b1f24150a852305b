// Bodies of session.hpp; not a public header. Header-only (the default),
// session.hpp includes it and every function here is inline. With
// ZKRECIPES_SEPARATE_COMPILATION only zkrecipes/impl/src.hpp includes it, in
// the one translation unit that compiles the session for the whole program
// (docs/install.md).
#pragma once

#include "zkrecipes/session.hpp"
// GCC 12 at -O2 reports a false "may be used uninitialized" when a result<T>
// holding an error is moved through our handlers (it cannot tell which
// union member is live). The pragma covers the call sites inlined from here.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "zkrecipes/detail/zk_api.hpp"

#include <atomic>
#include <chrono>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <random>
#include <shared_mutex>
#include <thread>
#include <unordered_map>

namespace zkrecipes {
namespace detail {

// ---- the C client's log ----------------------------------------------------

struct log_config {
  std::mutex m;
  std::function<void(std::string_view)> sink;
  std::atomic<int> level{0};
  static log_config& get() {
    static log_config c;
    return c;
  }
};

ZKRECIPES_DECL int log_line_level(const char* msg) noexcept {
  if (std::strstr(msg, "ZOO_ERROR@")) return 1;
  if (std::strstr(msg, "ZOO_WARN@")) return 2;
  if (std::strstr(msg, "ZOO_INFO@")) return 3;
  return 4;
}

// The C callback has no user context, so the sink is process-wide.
ZKRECIPES_DECL void log_trampoline(const char* msg) {
  auto& c = log_config::get();
  int lvl = c.level.load(std::memory_order_relaxed);
  if (lvl == 0 || log_line_level(msg) > lvl) return;
  std::lock_guard lk(c.m);
  if (c.sink)
    c.sink(msg);
  else
    std::fprintf(stderr, "%s\n", msg);
}

/// An exception escaped a handler or listener: say so through the log sink
/// (stderr when none is set), whatever the log level.
ZKRECIPES_DECL void report_escaped(const char* what) {
  std::string line = std::string("zkrecipes: exception escaped a callback: ") + what;
  auto& c = log_config::get();
  std::lock_guard lk(c.m);
  if (c.sink)
    c.sink(line);
  else
    std::fprintf(stderr, "%s\n", line.c_str());
}

ZKRECIPES_DECL void apply_log_level() noexcept {
  int lvl = log_config::get().level.load();
  // The C client ignores level 0; it logs errors at least, which our
  // trampoline then drops.
  zoo_set_debug_level(static_cast<ZooLogLevel>(lvl < 1 ? 1 : lvl));
}

// ---- conversions -----------------------------------------------------------

ZKRECIPES_DECL zkrecipes::stat to_stat(const Stat* s) noexcept {
  zkrecipes::stat o;
  if (!s) return o;
  o.czxid = s->czxid;
  o.mzxid = s->mzxid;
  o.ctime = s->ctime;
  o.mtime = s->mtime;
  o.version = s->version;
  o.cversion = s->cversion;
  o.aversion = s->aversion;
  o.ephemeral_owner = s->ephemeralOwner;
  o.data_length = s->dataLength;
  o.num_children = s->numChildren;
  o.pzxid = s->pzxid;
  return o;
}

ZKRECIPES_DECL int to_c_mode(create_mode m) noexcept {
  switch (m) {
  case create_mode::persistent: return ZOO_PERSISTENT;
  case create_mode::ephemeral: return ZOO_EPHEMERAL;
  case create_mode::persistent_sequential: return ZOO_PERSISTENT_SEQUENTIAL;
  case create_mode::ephemeral_sequential: return ZOO_EPHEMERAL_SEQUENTIAL;
  case create_mode::container: return ZOO_CONTAINER;
  case create_mode::persistent_with_ttl: return ZOO_PERSISTENT_WITH_TTL;
  case create_mode::persistent_sequential_with_ttl: return ZOO_PERSISTENT_SEQUENTIAL_WITH_TTL;
  }
  return ZOO_PERSISTENT;
}

/// An ACL list laid out as the C client wants it; lives as long as a call needs it.
struct c_acl {
  explicit c_acl(const acl_list& list) : src(list), entries(list.size()) {
    for (std::size_t i = 0; i < src.size(); ++i) {
      entries[i].perms = src[i].perms;
      entries[i].id.scheme = src[i].scheme.data();
      entries[i].id.id = src[i].id.data();
    }
    vec.count = static_cast<int32_t>(entries.size());
    vec.data = entries.data();
  }
  c_acl(const c_acl&) = delete;
  c_acl& operator=(const c_acl&) = delete;
  acl_list src;
  std::vector<ACL> entries;
  ACL_vector vec{};
};

ZKRECIPES_DECL event_type to_event_type(int type) noexcept {
  if (type == ZOO_CREATED_EVENT) return event_type::created;
  if (type == ZOO_DELETED_EVENT) return event_type::deleted;
  if (type == ZOO_CHANGED_EVENT) return event_type::changed;
  return event_type::child;
}

// ---- operations in flight --------------------------------------------------

struct handle_ctx;

/// An operation or watch the C client owes us an answer for.
struct op_base {
  virtual ~op_base() = default;
  /// Deliver an error to the user (posted to the dispatcher).
  virtual void fail(error e) = 0;
  /// A registered watch, not a request awaiting its reply.
  virtual bool is_watch() const noexcept { return false; }
  handle_ctx* owner = nullptr;
  dispatcher* disp = nullptr;
  const char* name = "";
  std::string path;
};

template <class T> struct typed_op : op_base {
  unique_function<void(result<T>)> handler;
  void deliver(result<T> r) {
    disp->post([h = std::move(handler), r = std::move(r)]() mutable { h(std::move(r)); });
  }
  void fail(error e) override { deliver(result<T>(std::move(e))); }
};

/// The user's watcher, shared by the attempts of a retried read so it is
/// called exactly once whichever attempt sets the watch.
struct watch_slot {
  watcher fn;
  dispatcher* disp = nullptr;
  std::atomic<bool> done{false};
  void deliver(result<watch_event> r) {
    if (done.exchange(true)) return;
    disp->post([f = std::move(fn), r = std::move(r)]() mutable { f(std::move(r)); });
  }
};

struct watch_op final : op_base {
  std::shared_ptr<watch_slot> slot;
  void fail(error e) override { slot->deliver(result<watch_event>(std::move(e))); }
  bool is_watch() const noexcept override { return true; }
};

/// One C handle (one ZooKeeper session) and what it owes. The C client
/// answers each completion exactly once, before zookeeper_close returns, so a
/// completion may read its op's owner; a watch may fire after we failed it
/// (expiry, a dropped read), so watch pointers are looked up here before any
/// dereference and a late one is ignored.
struct handle_ctx {
  std::weak_ptr<session_core> core;
  dispatcher* disp = nullptr;
  std::uint64_t generation = 0;
  zhandle_t* zh = nullptr;
  bool ever_connected = false; // dispatcher thread only
  std::mutex m;
  std::unordered_map<const void*, std::unique_ptr<op_base>> pending;
  /// What a ZCLOSING from this handle means to the user.
  std::atomic<int> close_reason{0}; // 0 none, 1 closed, 2 expired

  op_base* add(std::unique_ptr<op_base> op) {
    op->owner = this;
    op_base* raw = op.get();
    std::lock_guard lk(m);
    pending.emplace(raw, std::move(op));
    return raw;
  }
  std::unique_ptr<op_base> take(const void* p) {
    std::lock_guard lk(m);
    auto it = pending.find(p);
    if (it == pending.end()) return nullptr;
    auto o = std::move(it->second);
    pending.erase(it);
    return o;
  }
  /// Requests sent and not yet answered.
  std::size_t requests_in_flight() {
    std::lock_guard lk(m);
    std::size_t n = 0;
    for (auto& [k, v] : pending) n += v->is_watch() ? 0 : 1;
    return n;
  }
  std::vector<std::unique_ptr<op_base>> take_all() {
    std::lock_guard lk(m);
    std::vector<std::unique_ptr<op_base>> out;
    for (auto& [k, v] : pending) out.push_back(std::move(v));
    pending.clear();
    return out;
  }
  error closing_error(const char* op, const std::string& path) const {
    return close_reason.load() == 2 ? make_error(zk_errc::session_expired, op, path)
                                    : make_error(errc::closed, op, path);
  }
  /// The error for a C return code, with ZCLOSING and ZINVALIDSTATE told apart.
  error make_err(int rc, const char* op, const std::string& path) const {
    if (rc == ZCLOSING || (rc == ZINVALIDSTATE && close_reason.load() != 0))
      return closing_error(op, path);
    if (rc == ZINVALIDSTATE) return make_error(zk_errc::session_expired, op, path);
    return zk_error(rc, op, path);
  }
};

// C trampolines. Each takes its op back from the handle (or returns if it was
// already failed), converts while the C buffers are valid, and posts.

template <class Op> std::unique_ptr<Op> reclaim(const void* data, int& rc) {
  auto* raw = static_cast<Op*>(const_cast<void*>(data));
  auto own = raw->owner->take(data);
  if (!own) return nullptr;
  rc = zk_api::filter(raw->name, raw->path.c_str(), rc);
  return std::unique_ptr<Op>(static_cast<Op*>(own.release()));
}

struct create_op final : typed_op<created_node> {};
ZKRECIPES_DECL void on_create_done(int rc, const char* value, const Stat* st, const void* data) {
  auto op = reclaim<create_op>(data, rc);
  if (!op) return;
  if (rc == ZOK)
    op->deliver(created_node{value ? value : "", to_stat(st)});
  else
    op->fail(op->owner->make_err(rc, op->name, op->path));
}

/// A read that may carry a watch: if the read fails the C client did not
/// register it, so we drop it here (the retry layer decides what the user sees).
template <class T> struct read_op : typed_op<T> {
  const void* watch = nullptr;
  void drop_watch() {
    if (watch) this->owner->take(watch);
  }
};

struct get_op final : read_op<node> {};
ZKRECIPES_DECL void on_get_done(int rc, const char* value, int len, const Stat* st, const void* data) {
  auto op = reclaim<get_op>(data, rc);
  if (!op) return;
  if (rc == ZOK) {
    op->deliver(node{std::string(value ? value : "", value && len > 0 ? std::size_t(len) : 0), to_stat(st)});
  } else {
    op->drop_watch();
    op->fail(op->owner->make_err(rc, op->name, op->path));
  }
}

struct exists_op final : read_op<std::optional<zkrecipes::stat>> {};
ZKRECIPES_DECL void on_exists_done(int rc, const Stat* st, const void* data) {
  auto op = reclaim<exists_op>(data, rc);
  if (!op) return;
  if (rc == ZOK)
    op->deliver(std::optional<zkrecipes::stat>(to_stat(st)));
  else if (rc == ZNONODE) // the watch is set (as an exists watch)
    op->deliver(std::optional<zkrecipes::stat>());
  else {
    op->drop_watch();
    op->fail(op->owner->make_err(rc, op->name, op->path));
  }
}

struct children_op final : read_op<children_list> {};
ZKRECIPES_DECL void on_children_done(int rc, const String_vector* sv, const Stat* st, const void* data) {
  auto op = reclaim<children_op>(data, rc);
  if (!op) return;
  if (rc == ZOK) {
    children_list out;
    out.stat = to_stat(st);
    if (sv) {
      out.names.reserve(std::size_t(sv->count));
      for (int32_t i = 0; i < sv->count; ++i) out.names.emplace_back(sv->data[i]);
    }
    op->deliver(std::move(out));
  } else {
    op->drop_watch();
    op->fail(op->owner->make_err(rc, op->name, op->path));
  }
}

struct stat_op final : typed_op<zkrecipes::stat> {};
ZKRECIPES_DECL void on_stat_done(int rc, const Stat* st, const void* data) {
  auto op = reclaim<stat_op>(data, rc);
  if (!op) return;
  if (rc == ZOK)
    op->deliver(to_stat(st));
  else
    op->fail(op->owner->make_err(rc, op->name, op->path));
}

struct void_op final : typed_op<void> {};
ZKRECIPES_DECL void on_void_done(int rc, const void* data) {
  auto op = reclaim<void_op>(data, rc);
  if (!op) return;
  if (rc == ZOK)
    op->deliver(outcome::success());
  else
    op->fail(op->owner->make_err(rc, op->name, op->path));
}
ZKRECIPES_DECL void on_sync_done(int rc, const char*, const void* data) { on_void_done(rc, data); }

struct multi_ctx final : typed_op<std::vector<op_result>> {
  std::vector<multi_op::entry> entries;
  std::vector<std::unique_ptr<c_acl>> acls;
  std::vector<zoo_op_t> ops;
  std::vector<zoo_op_result_t> results;
  std::vector<std::string> path_bufs;
  std::vector<Stat> stats;
};
ZKRECIPES_DECL void on_multi_done(int rc, const void* data) {
  auto op = reclaim<multi_ctx>(data, rc);
  if (!op) return;
  if (rc == ZOK) {
    std::vector<op_result> out;
    for (std::size_t i = 0; i < op->entries.size(); ++i) {
      auto& e = op->entries[i];
      op_result r{e.kind, e.path, std::nullopt};
      if (e.kind == op_kind::create && op->results[i].value)
        r.path = std::string(op->results[i].value);
      if (e.kind == op_kind::set) r.stat = to_stat(&op->stats[i]);
      out.push_back(std::move(r));
    }
    op->deliver(std::move(out));
    return;
  }
  // Name the first operation that failed for a reason of its own.
  for (std::size_t i = 0; i < op->entries.size() && rc != ZCONNECTIONLOSS && rc != ZCLOSING; ++i) {
    int e = op->results[i].err;
    if (e != ZOK && e != ZRUNTIMEINCONSISTENCY) {
      std::string where = "op " + std::to_string(i) + " (" + to_string(op->entries[i].kind) +
                          " " + op->entries[i].path + ")";
      op->fail(op->owner->make_err(e, "multi", where));
      return;
    }
  }
  op->fail(op->owner->make_err(rc, "multi", op->path));
}

ZKRECIPES_DECL void on_auth_done(int rc, const void* data) { on_void_done(rc, data); }

// Fired for a watch we set. Session events are ignored here: when one ends
// the session, lose() tells listeners `lost` first and then fails every
// watch still owed, as it closes the handle.
ZKRECIPES_DECL void on_watch(zhandle_t* zh, int type, int, const char* path, void* ctx) {
  auto* h = static_cast<handle_ctx*>(const_cast<void*>(zoo_get_context(zh)));
  if (!h || type == ZOO_SESSION_EVENT) return;
  auto own = h->take(ctx);
  if (!own) return;
  auto* w = static_cast<watch_op*>(own.get());
  if (type == ZOO_NOTWATCHING_EVENT)
    w->fail(make_error(zk_errc::no_watcher, "watch", w->path));
  else
    w->slot->deliver(watch_event{to_event_type(type), path ? path : w->path});
}

void on_session_event(zhandle_t* zh, int type, int state, const char* path, void* ctx);

// ---- the session's shared state ------------------------------------------

struct session_core : std::enable_shared_from_this<session_core> {
  explicit session_core(session_options o)
      : opts(std::move(o)), auth(opts.auth), disp(&report_escaped) {
    if (opts.operation_timeout.count() <= 0)
      opts.operation_timeout = opts.session_timeout * 2 + std::chrono::seconds(5);
    std::random_device rd;
    rng.seed((std::uint64_t(rd()) << 32) ^ rd());
  }

  ~session_core() {
    shutdown();
    disp.stop();
  }

  session_options opts;          // fixed after construction: readable without a lock
  std::vector<auth_info> auth;   // opts.auth plus add_auth calls; guarded by hmx
  dispatcher disp;

  mutable std::shared_mutex hmx;
  std::shared_ptr<handle_ctx> handle; // guarded by hmx
  std::atomic<std::uint64_t> generation{0};
  std::atomic<bool> closed{false};

  mutable std::mutex smx;
  mutable std::condition_variable scv;
  session_state st = session_state::connecting;
  client_id cid;
  std::chrono::milliseconds negotiated{0};

  struct listener_entry {
    listener_id id;
    std::shared_ptr<std::function<void(const session_event&)>> fn;
    std::shared_ptr<std::atomic<bool>> active;
  };
  std::mutex lmx;     // guards listeners
  std::mutex emit_mx; // held while listeners run, so removal can wait for them
  std::vector<listener_entry> listeners;
  listener_id next_listener = 0;

  dispatcher::timer_id suspend_timer = 0; // dispatcher thread only
  std::mt19937_64 rng;                     // dispatcher thread only

  /// Opens a new C handle (hmx held exclusively by the caller).
  result<void> open_handle_locked() {
    auto h = std::make_shared<handle_ctx>();
    h->core = weak_from_this();
    h->disp = &disp;
    h->generation = generation.fetch_add(1) + 1;
    apply_log_level();
    errno = 0;
    zhandle_t* zh = zookeeper_init2(opts.connect_string.c_str(), &on_session_event,
                                    static_cast<int>(opts.session_timeout.count()), nullptr,
                                    h.get(), 0, &log_trampoline);
    if (!zh) {
      int e = errno;
      return make_error(errc::not_connected, "open",
                        opts.connect_string + " (" + (e ? std::strerror(e) : "refused by the client") + ")");
    }
    h->zh = zh;
    for (auto& a : auth) {
      auto op = std::make_unique<void_op>();
      op->disp = &disp;
      op->name = "add_auth";
      op->path = a.scheme;
      op->handler = [](result<void>) {}; // failures show up as auth_failed state
      auto* raw = h->add(std::move(op));
      if (zoo_add_auth(zh, a.scheme.c_str(), a.credential.data(), int(a.credential.size()),
                       &on_auth_done, raw) != ZOK)
        h->take(raw);
    }
    handle = std::move(h);
    return outcome::success();
  }

  /// Closes the current C handle and fails what it still owes (hmx held exclusively).
  void close_handle_locked(int reason) {
    if (!handle || !handle->zh) return;
    auto h = handle;
    h->close_reason.store(reason);
    zookeeper_close(h->zh); // answers pending completions with ZCLOSING
    h->zh = nullptr;
    for (auto& op : h->take_all()) op->fail(h->closing_error(op->name, op->path));
  }

  void shutdown() {
    if (closed.exchange(true)) return;
    // From here no request is sent (submit sees `closed`). Those already
    // sent: let a connected server answer them first, briefly. The C client
    // frees neither the completions nor the watch registrations of requests
    // still unanswered when zookeeper_close runs (ZOOKEEPER-2894), so closing
    // right after a recipe's last read leaked them. The completions run on
    // the C client's thread, so waiting here (even on the dispatcher) blocks
    // nothing they need.
    drain_requests(std::chrono::milliseconds(500));
    {
      std::unique_lock lk(hmx);
      close_handle_locked(1);
    }
    set_state(session_state::closed, session_id_now());
  }

  void drain_requests(std::chrono::milliseconds bound) {
    std::shared_ptr<handle_ctx> h;
    {
      std::shared_lock lk(hmx);
      h = handle;
    }
    {
      std::lock_guard lk(smx);
      if (st != session_state::connected && st != session_state::reconnected) return; // nobody would answer
    }
    if (!h || !h->zh) return;
    const auto deadline = std::chrono::steady_clock::now() + bound;
    while (h->requests_in_flight() > 0 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }

  std::int64_t session_id_now() const {
    std::lock_guard lk(smx);
    return cid.id;
  }

  void set_state(session_state s, std::int64_t sid) {
    {
      std::lock_guard lk(smx);
      st = s;
    }
    scv.notify_all();
    // On the dispatcher, tell listeners now: `lost` then reaches them before
    // the failures of the watches and calls the dead session owed.
    if (disp.running_in_this_thread()) return emit({s, sid});
    disp.post([self = weak_from_this(), s, sid] {
      if (auto c = self.lock()) c->emit({s, sid});
    });
  }

  void emit(const session_event& e) {
    std::lock_guard elk(emit_mx);
    std::vector<listener_entry> ls;
    {
      std::lock_guard lk(lmx);
      ls = listeners;
    }
    for (auto& l : ls) {
      if (!l.active->load()) continue; // removed by an earlier listener of this event
      try {
        (*l.fn)(e);
      } catch (const std::exception& ex) {
        report_escaped(ex.what());
      } catch (...) {
        report_escaped("unknown exception");
      }
    }
  }

  // Runs on the dispatcher thread.
  void on_state(std::uint64_t gen, int state) {
    if (closed.load()) return;
    std::shared_ptr<handle_ctx> h;
    {
      std::shared_lock lk(hmx);
      h = handle;
    }
    if (!h || h->generation != gen || !h->zh) return;
    session_state cur;
    {
      std::lock_guard lk(smx);
      cur = st;
    }
    if (state == ZOO_CONNECTED_STATE) {
      if (suspend_timer) disp.cancel(std::exchange(suspend_timer, 0));
      const clientid_t* id = zoo_client_id(h->zh);
      {
        std::lock_guard lk(smx);
        cid.id = id->client_id;
        cid.password.assign(id->passwd, sizeof(id->passwd));
        negotiated = std::chrono::milliseconds(zoo_recv_timeout(h->zh));
      }
      session_state s = h->ever_connected ? session_state::reconnected : session_state::connected;
      h->ever_connected = true;
      set_state(s, id->client_id);
    } else if (state == ZOO_CONNECTING_STATE) {
      if (cur == session_state::connected || cur == session_state::reconnected) {
        set_state(session_state::suspended, session_id_now());
        if (opts.lose_after_suspended_timeout && h->ever_connected) {
          auto timeout = negotiated.count() > 0 ? negotiated : opts.session_timeout;
          suspend_timer = disp.post_after(timeout, [self = weak_from_this(), gen] {
            auto c = self.lock();
            if (!c || c->closed.load()) return;
            c->suspend_timer = 0;
            bool still;
            {
              std::lock_guard lk(c->smx);
              still = c->st == session_state::suspended;
            }
            if (still) c->lose(gen);
          });
        }
      }
    } else if (state == ZOO_EXPIRED_SESSION_STATE) {
      lose(gen);
    } else if (state == ZOO_AUTH_FAILED_STATE) {
      set_state(session_state::auth_failed, session_id_now()); // before the failures, as for lost
      std::unique_lock lk(hmx);
      close_handle_locked(2);
    }
  }

  // The session is gone: tell listeners, then start a new one.
  void lose(std::uint64_t gen) {
    if (closed.load() || generation.load() != gen) return;
    if (suspend_timer) disp.cancel(std::exchange(suspend_timer, 0));
    // Listeners hear `lost` before the failures of what the session owed.
    set_state(session_state::lost, session_id_now());
    {
      std::unique_lock lk(hmx);
      close_handle_locked(2);
    }
    if (!opts.reopen_on_expiry) return;
    std::unique_lock lk(hmx);
    if (closed.load()) return;
    if (auto r = open_handle_locked(); !r) {
      // Retry opening later; a connect string that worked once rarely fails now.
      disp.post_after(std::chrono::milliseconds(500), [self = weak_from_this()] {
        if (auto c = self.lock()) c->reopen();
      });
      return;
    }
    std::lock_guard slk(smx);
    st = session_state::connecting;
  }

  void reopen() {
    std::unique_lock lk(hmx);
    if (closed.load() || (handle && handle->zh)) return;
    if (!open_handle_locked())
      disp.post_after(std::chrono::milliseconds(500), [self = weak_from_this()] {
        if (auto c = self.lock()) c->reopen();
      });
  }

  /// Registers an op on the current handle and issues it; on an immediate
  /// error (or when closed) fails it through the dispatcher.
  template <class Issue> void submit(std::unique_ptr<op_base> op, Issue&& issue) {
    op->disp = &disp;
    std::shared_lock lk(hmx);
    if (closed.load()) {
      op->fail(make_error(errc::closed, op->name, op->path));
      return;
    }
    if (!handle || !handle->zh) {
      op->fail(make_error(zk_errc::session_expired, op->name, op->path));
      return;
    }
    auto* h = handle.get();
    const char* name = op->name;
    std::string path = op->path;
    op_base* raw = h->add(std::move(op));
    int rc = issue(h->zh, raw);
    if (rc != ZOK)
      if (auto own = h->take(raw)) own->fail(h->make_err(rc, name, path));
  }

  /// Creates a watch op for the current handle (returned unregistered).
  std::unique_ptr<watch_op> make_watch(const std::shared_ptr<watch_slot>& slot, std::string_view path) {
    auto w = std::make_unique<watch_op>();
    w->disp = &disp;
    w->name = "watch";
    w->path = std::string(path);
    w->slot = slot;
    return w;
  }

  /// Issues a read that may carry a watch: both ops go to the same handle.
  template <class Op, class Issue>
  void submit_read(std::unique_ptr<Op> op, std::shared_ptr<watch_slot> slot, Issue&& issue) {
    op->disp = &disp;
    std::shared_lock lk(hmx);
    if (closed.load() || !handle || !handle->zh) {
      error e = closed.load() ? make_error(errc::closed, op->name, op->path)
                              : make_error(zk_errc::session_expired, op->name, op->path);
      op->fail(e);
      return;
    }
    auto* h = handle.get();
    op_base* wraw = nullptr;
    if (slot) wraw = h->add(make_watch(slot, op->path));
    op->watch = wraw;
    const char* name = op->name;
    std::string path = op->path;
    op_base* raw = h->add(std::move(op));
    int rc = issue(h->zh, raw, wraw);
    if (rc != ZOK) {
      if (wraw) h->take(wraw);
      if (auto own = h->take(raw)) own->fail(h->make_err(rc, name, path));
    }
  }

  /// Runs `attempt(done)` and retries it after transient errors per the
  /// retry policy; `final` gets the last result. Continues on the dispatcher.
  template <class T>
  void with_retry(std::function<void(unique_function<void(result<T>)>)> attempt,
                  unique_function<void(result<T>)> final, int n = 0) {
    auto self = shared_from_this();
    auto att = attempt;
    att([self, attempt = std::move(attempt), final = std::move(final), n](result<T> r) mutable {
      if (!r && is_retryable(r.error()) && n < self->opts.retry.max_retries && !self->closed.load()) {
        auto delay = self->opts.retry.delay(n, self->rng);
        self->disp.post_after(delay, [self, attempt = std::move(attempt), final = std::move(final),
                                      n, e = r.error()]() mutable {
          if (self->closed.load()) return final(result<T>(make_error(errc::closed, e.operation(), e.path())));
          self->with_retry<T>(std::move(attempt), std::move(final), n + 1);
        });
        return;
      }
      final(std::move(r));
    });
  }
};

ZKRECIPES_DECL void on_session_event(zhandle_t*, int type, int state, const char*, void* ctx) {
  if (type != ZOO_SESSION_EVENT) return;
  auto* h = static_cast<handle_ctx*>(ctx);
  auto gen = h->generation;
  h->disp->post([weak = h->core, gen, state] {
    if (auto c = weak.lock()) c->on_state(gen, state);
  });
}

/// Posts an error to a handler (never inline, per the handler contract).
template <class T>
void post_error(dispatcher& d, unique_function<void(result<T>)> h, error e) {
  d.post([h = std::move(h), e = std::move(e)]() mutable { h(result<T>(std::move(e))); });
}

ZKRECIPES_DECL result<void> check_payload(std::string_view data, const char* op, std::string_view path) {
  if (data.size() > std::size_t(ZKRECIPES_MAX_PAYLOAD))
    return make_error(errc::payload_too_large, op,
                      std::string(path) + " (" + std::to_string(data.size()) + " bytes, limit " +
                          std::to_string(ZKRECIPES_MAX_PAYLOAD) + ")");
  return outcome::success();
}

ZKRECIPES_DECL result<void> check_create(std::string_view path, std::string_view data,
                                 const create_options& o, const char* op) {
  BOOST_OUTCOME_TRYV(validate_path(path, op));
  if (path == "/") return make_error(errc::invalid_path, op, "/ (the root always exists)");
  BOOST_OUTCOME_TRYV(check_payload(data, op, path));
  if (has_ttl(o.mode) && o.ttl.count() <= 0)
    return make_error(errc::invalid_argument, op, std::string(path) + " (a TTL mode needs ttl > 0)");
  if (!has_ttl(o.mode) && o.ttl.count() != 0)
    return make_error(errc::invalid_argument, op,
                      std::string(path) + " (ttl given for a mode without TTL)");
  if (o.acl && o.acl->empty())
    return make_error(errc::invalid_argument, op, std::string(path) + " (empty ACL list)");
  return outcome::success();
}

} // namespace detail

namespace detail {
ZKRECIPES_DECL std::uint64_t next_operation_id() noexcept {
  static std::atomic<std::uint64_t> n{0};
  return n.fetch_add(1, std::memory_order_relaxed) + 1;
}

/// Operations whose completion carries no zxid.
struct no_zxid {};

/// Runs the chain's before() on a new record of this operation and returns
/// the handler that fills the completion, runs after(), and then `h` with
/// the operation's trace id current (so work it starts carries it on).
template <class T, class Zxid>
unique_function<void(result<T>)> tap(std::shared_ptr<const interceptor_chain> chain, const char* kind,
                                     std::optional<std::string_view> path, std::optional<std::size_t> size,
                                     bool watch, std::int64_t sid, unique_function<void(result<T>)> h,
                                     Zxid zxid_of) {
  operation_record rec;
  rec.id = next_operation_id();
  rec.kind = kind;
  if (path) rec.path = std::string(*path);
  rec.size = size;
  rec.trace_id = current_trace_id();
  rec.watch = watch;
  rec.session_id = sid;
  chain->before(rec);
  const auto t0 = std::chrono::steady_clock::now(); // after before(): its cost is not the operation's
  return [chain = std::move(chain), rec = std::move(rec), t0, h = std::move(h), zxid_of](result<T> r) mutable {
    (void)zxid_of; // used only for operations with a zxid (clang warns otherwise)
    rec.latency = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0);
    if (r) {
      rec.result = std::error_code();
      if constexpr (!std::is_void_v<T> && !std::is_same_v<Zxid, no_zxid>) rec.zxid = zxid_of(r.value());
    } else {
      rec.result = r.error().code();
      rec.error = r.error().message();
    }
    chain->after(rec);
    trace_scope scope(rec.trace_id);
    h(std::move(r));
  };
}

/// Wraps a task so that it runs with the trace id current now (none: as is).
ZKRECIPES_DECL unique_function<void()> carry_trace(unique_function<void()> task) {
  auto id = current_trace_id();
  if (!id) return task;
  return [id = std::move(id), task = std::move(task)]() mutable {
    trace_scope scope(std::move(id));
    task();
  };
}
} // namespace detail

// ---- session: public members ------------------------------------------------

ZKRECIPES_DECL void set_client_log(log_level level, std::function<void(std::string_view)> sink) {
  auto& c = detail::log_config::get();
  {
    std::lock_guard lk(c.m);
    c.sink = std::move(sink);
  }
  c.level.store(static_cast<int>(level));
  detail::apply_log_level();
}

ZKRECIPES_DECL result<session> session::open(session_options options) {
  if (options.connect_string.empty())
    return make_error(errc::invalid_argument, "open", "(empty connect string)");
  if (options.session_timeout.count() <= 0)
    return make_error(errc::invalid_argument, "open", "(session_timeout must be positive)");
  auto core = std::make_shared<detail::session_core>(std::move(options));
  {
    std::unique_lock lk(core->hmx);
    BOOST_OUTCOME_TRYV(core->open_handle_locked());
  }
  return session(std::move(core));
}

ZKRECIPES_DECL result<session> session::connect(session_options options, std::chrono::milliseconds timeout) {
  BOOST_OUTCOME_TRY(s, open(std::move(options)));
  BOOST_OUTCOME_TRYV(s.wait_connected(timeout));
  return std::move(s);
}

ZKRECIPES_DECL void session::release() noexcept {
  if (!core_ || borrowed_) return;
  core_->shutdown();
  // Deliver what close() failed (and fire pending timers, so retries see
  // `closed`) before returning, so no handler runs after the session is gone
  // -- unless this runs on the dispatcher thread itself, which cannot wait
  // for itself: then the rest is delivered after the current handler returns.
  core_->disp.stop();
}

ZKRECIPES_DECL session::session(session&& other) noexcept
    : core_(std::move(other.core_)), borrowed_(std::exchange(other.borrowed_, false)),
      chain_(std::move(other.chain_)) {}

ZKRECIPES_DECL session& session::operator=(session&& other) noexcept {
  if (this != &other) {
    release();
    core_ = std::move(other.core_);
    borrowed_ = std::exchange(other.borrowed_, false);
    chain_ = std::move(other.chain_);
  }
  return *this;
}

ZKRECIPES_DECL session session::intercepted(std::shared_ptr<const interceptor_chain> chain) const {
  if (chain && chain->empty()) chain.reset(); // no interceptors: no cost at all
  return session(core_, true, std::move(chain));
}

ZKRECIPES_DECL session::~session() { release(); }

ZKRECIPES_DECL result<void> session::wait_connected(std::chrono::milliseconds timeout) const {
  if (core_->disp.running_in_this_thread())
    return make_error(errc::would_deadlock, "wait_connected", core_->opts.connect_string);
  std::unique_lock lk(core_->smx);
  bool ok = core_->scv.wait_for(lk, timeout, [&] {
    return core_->st == session_state::connected || core_->st == session_state::reconnected ||
           core_->closed.load() || core_->st == session_state::auth_failed;
  });
  if (core_->closed.load()) return make_error(errc::closed, "wait_connected", core_->opts.connect_string);
  if (core_->st == session_state::auth_failed)
    return make_error(zk_errc::auth_failed, "wait_connected", core_->opts.connect_string);
  if (!ok)
    return make_error(errc::timed_out, "wait_connected",
                      core_->opts.connect_string + " (" + std::to_string(timeout.count()) + " ms)");
  return outcome::success();
}

ZKRECIPES_DECL session_state session::state() const {
  std::lock_guard lk(core_->smx);
  return core_->st;
}

ZKRECIPES_DECL bool session::connected() const {
  auto s = state();
  return s == session_state::connected || s == session_state::reconnected;
}

ZKRECIPES_DECL std::int64_t session::session_id() const { return core_->session_id_now(); }

ZKRECIPES_DECL client_id session::id() const {
  std::lock_guard lk(core_->smx);
  return core_->cid;
}

ZKRECIPES_DECL std::chrono::milliseconds session::negotiated_timeout() const {
  std::lock_guard lk(core_->smx);
  return core_->negotiated;
}

ZKRECIPES_DECL const session_options& session::options() const { return core_->opts; }

ZKRECIPES_DECL listener_id session::add_listener(std::function<void(const session_event&)> listener) {
  std::lock_guard lk(core_->lmx);
  auto id = ++core_->next_listener;
  core_->listeners.push_back(
      {id, std::make_shared<std::function<void(const session_event&)>>(std::move(listener)),
       std::make_shared<std::atomic<bool>>(true)});
  return id;
}

ZKRECIPES_DECL void session::remove_listener(listener_id id) {
  // Off the dispatcher, wait for a running emit to finish: after this
  // returns the listener is never called again, so its captures may die.
  std::unique_lock<std::mutex> elk;
  if (!core_->disp.running_in_this_thread()) elk = std::unique_lock(core_->emit_mx);
  std::lock_guard lk(core_->lmx);
  std::erase_if(core_->listeners, [id](auto& l) {
    if (l.id != id) return false;
    l.active->store(false);
    return true;
  });
}

ZKRECIPES_DECL result<void> session::close() {
  if (core_->closed.load()) return make_error(errc::closed, "close", core_->opts.connect_string);
  core_->shutdown();
  return outcome::success();
}

ZKRECIPES_DECL void session::post(detail::unique_function<void()> task) {
  if (chain_) task = detail::carry_trace(std::move(task));
  core_->disp.post(std::move(task));
}

ZKRECIPES_DECL std::uint64_t session::post_after(std::chrono::milliseconds delay,
                                         detail::unique_function<void()> task) {
  if (chain_) task = detail::carry_trace(std::move(task));
  return core_->disp.post_after(delay, std::move(task));
}

ZKRECIPES_DECL bool session::cancel_timer(std::uint64_t id) { return core_->disp.cancel(id); }

ZKRECIPES_DECL bool session::on_dispatcher_thread() const { return core_->disp.running_in_this_thread(); }

template <class T, class Start>
result<T> session::blocking(const char* op, std::string_view path, Start&& start) {
  if (core_->disp.running_in_this_thread())
    return make_error(errc::would_deadlock, op, std::string(path));
  auto p = std::make_shared<std::promise<result<T>>>();
  auto f = p->get_future();
  start([p](result<T> r) { p->set_value(std::move(r)); });
  if (f.wait_for(core_->opts.operation_timeout) != std::future_status::ready)
    return make_error(errc::timed_out, op,
                      std::string(path) + " (" + std::to_string(core_->opts.operation_timeout.count()) + " ms)");
  return f.get();
}

// ---- operations -------------------------------------------------------------

ZKRECIPES_DECL void session::do_create(std::string_view path, std::string_view data, create_options opts,
                               detail::unique_function<void(result<created_node>)> h) {
  if (chain_)
    h = detail::tap<created_node>(chain_, "create", path, data.size(), false, core_->session_id_now(), std::move(h),
                                  [](const created_node& n) { return std::optional<std::int64_t>(n.stat.czxid); });
  if (auto v = detail::check_create(path, data, opts, "create"); !v)
    return detail::post_error<created_node>(core_->disp, std::move(h), v.error());
  auto op = std::make_unique<detail::create_op>();
  op->name = "create";
  op->path = std::string(path);
  op->handler = std::move(h);
  detail::c_acl acl(opts.acl ? *opts.acl : core_->opts.default_acl); // serialised by the call
  std::string d(data);
  core_->submit(std::move(op), [&](zhandle_t* zh, detail::op_base* raw) {
    int mode = detail::to_c_mode(opts.mode);
    if (has_ttl(opts.mode))
      return zoo_acreate2_ttl(zh, raw->path.c_str(), d.data(), int(d.size()), &acl.vec, mode,
                              opts.ttl.count(), &detail::on_create_done, raw);
    return zoo_acreate2(zh, raw->path.c_str(), d.data(), int(d.size()), &acl.vec, mode,
                        &detail::on_create_done, raw);
  });
}

ZKRECIPES_DECL result<created_node> session::create(std::string_view path, std::string_view data,
                                            create_options opts) {
  return blocking<created_node>("create", path, [&](auto done) {
    do_create(path, data, std::move(opts), std::move(done));
  });
}

namespace detail {
/// A watcher shared by the attempts of a retried read (null when none).
ZKRECIPES_DECL std::shared_ptr<watch_slot> make_slot(watcher w, dispatcher& d) {
  if (!w) return nullptr;
  auto s = std::make_shared<watch_slot>();
  s->fn = std::move(w);
  s->disp = &d;
  return s;
}

/// The final handler of a read with a watch: a failed read never set the
/// watch, so its watcher hears the same error (after the read's handler).
template <class T>
unique_function<void(result<T>)> finish_read(std::shared_ptr<watch_slot> slot,
                                             unique_function<void(result<T>)> h) {
  if (!slot) return h;
  return [slot, h = std::move(h)](result<T> r) mutable {
    std::optional<error> e;
    if (!r) e = r.error();
    h(std::move(r));
    if (e) slot->deliver(result<watch_event>(std::move(*e)));
  };
}
} // namespace detail

/// A read with retries and an optional watch: one attempt per try, each
/// registering a fresh watch op that shares the user's watcher.
template <class Op, class T, class Issue>
void session::do_read(const char* name, std::string_view path, watcher w,
                      detail::unique_function<void(result<T>)> h, Issue issue) {
  auto slot = detail::make_slot(std::move(w), core_->disp);
  if (auto v = validate_path(path, name); !v) {
    detail::post_error<T>(core_->disp, detail::finish_read<T>(slot, std::move(h)), v.error());
    return;
  }
  std::weak_ptr<detail::session_core> weak = core_;
  core_->with_retry<T>(
      [weak, name, p = std::string(path), slot, issue](detail::unique_function<void(result<T>)> done) {
        auto c = weak.lock();
        if (!c) return;
        auto op = std::make_unique<Op>();
        op->name = name;
        op->path = p;
        op->handler = std::move(done);
        c->submit_read(std::move(op), slot, issue);
      },
      detail::finish_read<T>(slot, std::move(h)));
}

ZKRECIPES_DECL void session::do_get(std::string_view path, watcher w,
                            detail::unique_function<void(result<node>)> h) {
  if (chain_)
    h = detail::tap<node>(chain_, "get", path, std::nullopt, bool(w), core_->session_id_now(), std::move(h),
                          [](const node& n) { return std::optional<std::int64_t>(n.stat.mzxid); });
  do_read<detail::get_op>("get", path, std::move(w), std::move(h),
                          [](zhandle_t* zh, detail::op_base* raw, detail::op_base* wop) {
                            return zoo_awget(zh, raw->path.c_str(), wop ? &detail::on_watch : nullptr,
                                             wop, &detail::on_get_done, raw);
                          });
}

ZKRECIPES_DECL result<node> session::get(std::string_view path, watcher w) {
  return blocking<node>("get", path, [&](auto done) { do_get(path, std::move(w), std::move(done)); });
}

ZKRECIPES_DECL void session::do_set(std::string_view path, std::string_view data, std::int32_t version,
                            detail::unique_function<void(result<zkrecipes::stat>)> h) {
  if (chain_)
    h = detail::tap<zkrecipes::stat>(chain_, "set", path, data.size(), false, core_->session_id_now(), std::move(h),
                                     [](const zkrecipes::stat& st) { return std::optional<std::int64_t>(st.mzxid); });
  if (auto v = validate_path(path, "set"); !v)
    return detail::post_error<zkrecipes::stat>(core_->disp, std::move(h), v.error());
  if (auto v = detail::check_payload(data, "set", path); !v)
    return detail::post_error<zkrecipes::stat>(core_->disp, std::move(h), v.error());
  auto op = std::make_unique<detail::stat_op>();
  op->name = "set";
  op->path = std::string(path);
  op->handler = std::move(h);
  core_->submit(std::move(op), [&](zhandle_t* zh, detail::op_base* raw) {
    return zoo_aset(zh, raw->path.c_str(), data.data(), int(data.size()), version,
                    &detail::on_stat_done, raw);
  });
}

ZKRECIPES_DECL result<zkrecipes::stat> session::set(std::string_view path, std::string_view data,
                                            std::int32_t version) {
  return blocking<zkrecipes::stat>("set", path,
                                   [&](auto done) { do_set(path, data, version, std::move(done)); });
}

ZKRECIPES_DECL void session::do_remove(std::string_view path, std::int32_t version,
                               detail::unique_function<void(result<void>)> h) {
  if (chain_)
    h = detail::tap<void>(chain_, "remove", path, std::nullopt, false, core_->session_id_now(), std::move(h),
                          detail::no_zxid{});
  if (auto v = validate_path(path, "remove"); !v)
    return detail::post_error<void>(core_->disp, std::move(h), v.error());
  if (path == "/") return detail::post_error<void>(core_->disp, std::move(h),
                                                  make_error(errc::invalid_path, "remove", "/ (the root cannot be removed)"));
  std::weak_ptr<detail::session_core> weak = core_;
  std::string p(path);
  // After a connection loss the first delete may have applied; a retry that
  // then finds no node has reached the goal.
  auto lost_once = std::make_shared<bool>(false);
  core_->with_retry<void>(
      [weak, p, version, lost_once](detail::unique_function<void(result<void>)> done) {
        auto c = weak.lock();
        if (!c) return;
        auto op = std::make_unique<detail::void_op>();
        op->name = "remove";
        op->path = p;
        op->handler = [lost_once, done = std::move(done)](result<void> r) mutable {
          if (!r && *lost_once && r.error() == zk_errc::no_node) r = outcome::success();
          if (!r && is_retryable(r.error())) *lost_once = true;
          done(std::move(r));
        };
        c->submit(std::move(op), [version](zhandle_t* zh, detail::op_base* raw) {
          return zoo_adelete(zh, raw->path.c_str(), version, &detail::on_void_done, raw);
        });
      },
      std::move(h));
}

ZKRECIPES_DECL result<void> session::remove(std::string_view path, std::int32_t version) {
  return blocking<void>("remove", path, [&](auto done) { do_remove(path, version, std::move(done)); });
}

ZKRECIPES_DECL void session::do_exists(std::string_view path, watcher w,
                               detail::unique_function<void(result<std::optional<zkrecipes::stat>>)> h) {
  if (chain_)
    h = detail::tap<std::optional<zkrecipes::stat>>(
        chain_, "exists", path, std::nullopt, bool(w), core_->session_id_now(), std::move(h),
        [](const std::optional<zkrecipes::stat>& st) {
          return st ? std::optional<std::int64_t>(st->mzxid) : std::optional<std::int64_t>();
        });
  do_read<detail::exists_op>("exists", path, std::move(w), std::move(h),
                             [](zhandle_t* zh, detail::op_base* raw, detail::op_base* wop) {
                               return zoo_awexists(zh, raw->path.c_str(), wop ? &detail::on_watch : nullptr,
                                                   wop, &detail::on_exists_done, raw);
                             });
}

ZKRECIPES_DECL result<std::optional<zkrecipes::stat>> session::exists(std::string_view path, watcher w) {
  return blocking<std::optional<zkrecipes::stat>>(
      "exists", path, [&](auto done) { do_exists(path, std::move(w), std::move(done)); });
}

ZKRECIPES_DECL void session::do_children(std::string_view path, watcher w,
                                 detail::unique_function<void(result<children_list>)> h) {
  if (chain_)
    h = detail::tap<children_list>(chain_, "children", path, std::nullopt, bool(w), core_->session_id_now(),
                                   std::move(h),
                                   [](const children_list& c) { return std::optional<std::int64_t>(c.stat.pzxid); });
  do_read<detail::children_op>("children", path, std::move(w), std::move(h),
                               [](zhandle_t* zh, detail::op_base* raw, detail::op_base* wop) {
                                 return zoo_awget_children2(zh, raw->path.c_str(),
                                                            wop ? &detail::on_watch : nullptr, wop,
                                                            &detail::on_children_done, raw);
                               });
}

ZKRECIPES_DECL result<children_list> session::children(std::string_view path, watcher w) {
  return blocking<children_list>("children", path,
                                 [&](auto done) { do_children(path, std::move(w), std::move(done)); });
}

ZKRECIPES_DECL void session::do_multi(const multi_op& ops,
                              detail::unique_function<void(result<std::vector<op_result>>)> h) {
  using T = std::vector<op_result>;
  if (chain_) {
    std::size_t bytes = 0;
    for (auto& e : ops.entries()) bytes += e.data.size();
    std::optional<std::string_view> first;
    if (!ops.empty()) first = ops.entries().front().path;
    h = detail::tap<T>(chain_, "multi", first, bytes, false, core_->session_id_now(), std::move(h), [](const T& rs) {
      std::optional<std::int64_t> z;
      for (auto& r : rs)
        if (r.stat && (!z || r.stat->mzxid > *z)) z = r.stat->mzxid;
      return z;
    });
  }
  if (ops.empty()) {
    core_->disp.post([h = std::move(h)]() mutable { h(T{}); });
    return;
  }
  std::size_t total = 0;
  for (std::size_t i = 0; i < ops.size(); ++i) {
    auto& e = ops.entries()[i];
    const char* opname = to_string(e.kind);
    std::string where = "op " + std::to_string(i) + " (" + opname + " " + e.path + ")";
    if (auto v = validate_path(e.path, "multi"); !v)
      return detail::post_error<T>(core_->disp, std::move(h),
                                   make_error(errc::invalid_path, "multi", where + ": " + v.error().path()));
    if (e.kind == op_kind::create) {
      if (auto v = detail::check_create(e.path, e.data, e.create, "multi"); !v)
        return detail::post_error<T>(core_->disp, std::move(h),
                                     make_error(v.error().code(), "multi", where + ": " + v.error().path()));
      if (has_ttl(e.create.mode))
        return detail::post_error<T>(core_->disp, std::move(h),
                                     make_error(errc::invalid_argument, "multi",
                                                where + ": a TTL create inside a multi is not implemented by the C client"));
    }
    // The whole transaction travels as one packet: data, paths and a
    // generous per-operation header allowance.
    total += e.data.size() + e.path.size() + 64;
  }
  if (total > std::size_t(ZKRECIPES_MAX_PAYLOAD))
    return detail::post_error<T>(core_->disp, std::move(h),
                                 make_error(errc::payload_too_large, "multi",
                                            std::to_string(total) + " bytes in all (data, paths, headers), limit " +
                                                std::to_string(ZKRECIPES_MAX_PAYLOAD)));
  auto op = std::make_unique<detail::multi_ctx>();
  op->name = "multi";
  op->path = ops.entries().front().path;
  op->handler = std::move(h);
  op->entries = ops.entries();
  std::size_t n = op->entries.size();
  op->ops.resize(n);
  op->results.resize(n);
  op->stats.resize(n);
  op->path_bufs.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    auto& e = op->entries[i];
    switch (e.kind) {
    case op_kind::create: {
      op->acls.push_back(std::make_unique<detail::c_acl>(e.create.acl ? *e.create.acl : core_->opts.default_acl));
      op->path_bufs[i].assign(e.path.size() + 64, '\0');
      zoo_create_op_init(&op->ops[i], e.path.c_str(), e.data.data(), int(e.data.size()),
                         &op->acls.back()->vec, detail::to_c_mode(e.create.mode), op->path_bufs[i].data(),
                         int(op->path_bufs[i].size()));
      break;
    }
    case op_kind::set:
      zoo_set_op_init(&op->ops[i], e.path.c_str(), e.data.data(), int(e.data.size()), e.version,
                      &op->stats[i]);
      break;
    case op_kind::remove: zoo_delete_op_init(&op->ops[i], e.path.c_str(), e.version); break;
    case op_kind::check: zoo_check_op_init(&op->ops[i], e.path.c_str(), e.version); break;
    }
  }
  core_->submit(std::move(op), [](zhandle_t* zh, detail::op_base* raw) {
    auto* m = static_cast<detail::multi_ctx*>(raw);
    return zoo_amulti(zh, int(m->ops.size()), m->ops.data(), m->results.data(), &detail::on_multi_done, raw);
  });
}

ZKRECIPES_DECL result<std::vector<op_result>> session::multi(const multi_op& ops) {
  return blocking<std::vector<op_result>>(
      "multi", ops.empty() ? std::string_view() : std::string_view(ops.entries().front().path),
      [&](auto done) { do_multi(ops, std::move(done)); });
}

ZKRECIPES_DECL void session::do_sync(std::string_view path, detail::unique_function<void(result<void>)> h) {
  if (chain_)
    h = detail::tap<void>(chain_, "sync", path, std::nullopt, false, core_->session_id_now(), std::move(h),
                          detail::no_zxid{});
  if (auto v = validate_path(path, "sync"); !v)
    return detail::post_error<void>(core_->disp, std::move(h), v.error());
  std::weak_ptr<detail::session_core> weak = core_;
  std::string p(path);
  core_->with_retry<void>(
      [weak, p](detail::unique_function<void(result<void>)> done) {
        auto c = weak.lock();
        if (!c) return;
        auto op = std::make_unique<detail::void_op>();
        op->name = "sync";
        op->path = p;
        op->handler = std::move(done);
        c->submit(std::move(op), [](zhandle_t* zh, detail::op_base* raw) {
          return zoo_async(zh, raw->path.c_str(), &detail::on_sync_done, raw);
        });
      },
      std::move(h));
}

ZKRECIPES_DECL result<void> session::sync(std::string_view path) {
  return blocking<void>("sync", path, [&](auto done) { do_sync(path, std::move(done)); });
}

ZKRECIPES_DECL void session::do_add_auth(std::string_view scheme, std::string_view credential,
                                 detail::unique_function<void(result<void>)> h) {
  if (chain_) // the credential is never shown, nor its size
    h = detail::tap<void>(chain_, "add_auth", std::nullopt, std::nullopt, false, core_->session_id_now(),
                          std::move(h), detail::no_zxid{});
  if (scheme.empty())
    return detail::post_error<void>(core_->disp, std::move(h),
                                    make_error(errc::invalid_argument, "add_auth", "(empty scheme)"));
  {
    // Kept for every later ZooKeeper session, like opts.auth.
    std::unique_lock lk(core_->hmx);
    core_->auth.push_back({std::string(scheme), std::string(credential)});
  }
  auto op = std::make_unique<detail::void_op>();
  op->name = "add_auth";
  op->path = std::string(scheme);
  op->handler = std::move(h);
  std::string cred(credential);
  core_->submit(std::move(op), [&](zhandle_t* zh, detail::op_base* raw) {
    return zoo_add_auth(zh, raw->path.c_str(), cred.data(), int(cred.size()), &detail::on_auth_done, raw);
  });
}

ZKRECIPES_DECL result<void> session::add_auth(std::string_view scheme, std::string_view credential) {
  return blocking<void>("add_auth", scheme,
                        [&](auto done) { do_add_auth(scheme, credential, std::move(done)); });
}

ZKRECIPES_DECL void session::do_ensure_path(std::string_view path, create_mode mode, std::optional<acl_list> acl,
                                    detail::unique_function<void(result<void>)> h) {
  if (chain_)
    h = detail::tap<void>(chain_, "ensure_path", path, std::nullopt, false, core_->session_id_now(), std::move(h),
                          detail::no_zxid{});
  if (auto v = validate_path(path, "ensure_path"); !v)
    return detail::post_error<void>(core_->disp, std::move(h), v.error());
  if (mode != create_mode::persistent && mode != create_mode::container)
    return detail::post_error<void>(core_->disp, std::move(h),
                                    make_error(errc::invalid_argument, "ensure_path",
                                               std::string(path) + " (mode must be persistent or container)"));
  if (path == "/") {
    core_->disp.post([h = std::move(h)]() mutable { h(outcome::success()); });
    return;
  }
  std::vector<std::string> prefixes;
  for (std::size_t i = 1; i <= path.size(); ++i)
    if (i == path.size() || path[i] == '/') prefixes.emplace_back(path.substr(0, i));
  // The server checks CREATE on the parent before existence, so an existing
  // path under a parent we may not create in fails with no_auth: look.
  auto self = detail::session_access::borrow_plain(*this);
  detail::unique_function<void(result<void>)> final =
      [self, p = std::string(path), h = std::move(h)](result<void> r) mutable {
        if (r || is_retryable(r.error()) || r.error() == errc::closed) return h(std::move(r));
        self->async_exists(p, [h = std::move(h), r = std::move(r)](result<std::optional<zkrecipes::stat>> e) mutable {
          if (e && e.value()) return h(outcome::success());
          h(std::move(r));
        });
      };
  std::weak_ptr<detail::session_core> weak = core_;
  core_->with_retry<void>(
      [weak, prefixes, mode, acl = std::move(acl)](detail::unique_function<void(result<void>)> done) {
        auto c = weak.lock();
        if (!c) return;
        // Pipelined: replies come in order, so the last one ends the round.
        struct round {
          std::optional<error> first;
          detail::unique_function<void(result<void>)> done;
        };
        auto st = std::make_shared<round>();
        st->done = std::move(done);
        detail::c_acl c_acl(acl ? *acl : c->opts.default_acl); // serialised by each call below

        for (std::size_t i = 0; i < prefixes.size(); ++i) {
          bool last = i + 1 == prefixes.size();
          auto op = std::make_unique<detail::create_op>();
          op->name = "ensure_path";
          op->path = prefixes[i];
          op->handler = [st, last](result<created_node> r) {
            if (!r && r.error() != zk_errc::node_exists && !st->first) st->first = r.error();
            if (!last) return;
            if (r || r.error() == zk_errc::node_exists) return st->done(outcome::success());
            st->done(result<void>(st->first ? *st->first : r.error()));
          };
          c->submit(std::move(op), [&](zhandle_t* zh, detail::op_base* raw) {
            return zoo_acreate2(zh, raw->path.c_str(), nullptr, -1, &c_acl.vec, detail::to_c_mode(mode),
                                &detail::on_create_done, raw);
          });
        }
      },
      std::move(final));
}

ZKRECIPES_DECL result<void> session::ensure_path(std::string_view path, create_mode mode, std::optional<acl_list> acl) {
  return blocking<void>("ensure_path", path,
                        [&](auto done) { do_ensure_path(path, mode, std::move(acl), std::move(done)); });
}

namespace detail {
/// Removes `path` and its subtree: list, remove the children's subtrees in
/// parallel, then the node; a node that gained children meanwhile is tried
/// again a few times.
struct remove_tree {
  using done_fn = unique_function<void(result<void>)>;
  static void run(std::shared_ptr<session> s, std::string path, int tries, done_fn done) {
    auto d = std::make_shared<done_fn>(std::move(done));
    s->async_children(path, [s, path, tries, d](result<children_list> r) {
      if (!r) {
        (*d)(r.error() == zk_errc::no_node ? result<void>(outcome::success()) : result<void>(r.error()));
        return;
      }
      auto finish = [s, path, tries, d] {
        s->async_remove(path, any_version, [s, path, tries, d](result<void> rr) {
          if (!rr && rr.error() == zk_errc::no_node) rr = outcome::success();
          if (!rr && rr.error() == zk_errc::not_empty && tries > 0)
            return run(s, path, tries - 1, std::move(*d));
          (*d)(std::move(rr));
        });
      };
      if (r.value().names.empty()) return finish();
      struct count {
        std::size_t left;
        std::optional<error> first;
      };
      auto cnt = std::make_shared<count>(count{r.value().names.size(), std::nullopt});
      for (auto& child : r.value().names) {
        run(s, join(path, child), tries, [cnt, finish, d](result<void> cr) {
          if (!cr && !cnt->first) cnt->first = cr.error();
          if (--cnt->left) return;
          if (cnt->first)
            (*d)(result<void>(*cnt->first));
          else
            finish();
        });
      }
    });
  }
};
} // namespace detail

ZKRECIPES_DECL void session::do_remove_recursive(std::string_view path,
                                         detail::unique_function<void(result<void>)> h) {
  if (chain_)
    h = detail::tap<void>(chain_, "remove_recursive", path, std::nullopt, false, core_->session_id_now(),
                          std::move(h), detail::no_zxid{});
  if (auto v = validate_path(path, "remove_recursive"); !v)
    return detail::post_error<void>(core_->disp, std::move(h), v.error());
  if (path == "/")
    return detail::post_error<void>(core_->disp, std::move(h),
                                    make_error(errc::invalid_path, "remove_recursive", "/ (the root cannot be removed)"));
  // A borrowed handle: the walk may outlive a move of *this.
  detail::remove_tree::run(detail::session_access::borrow_plain(*this), std::string(path), 5,
                          std::move(h));
}

ZKRECIPES_DECL result<void> session::remove_recursive(std::string_view path) {
  return blocking<void>("remove_recursive", path,
                        [&](auto done) { do_remove_recursive(path, std::move(done)); });
}

} // namespace zkrecipes

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
