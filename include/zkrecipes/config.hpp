// Configuration publish/subscribe: a publisher writes versions of a typed
// config with compare-and-set and keeps the last N for rollback; subscribers
// hold a live typed copy, hear every change and, started while ZooKeeper is
// unreachable, run on the last known config from a local file and say so.
//
// Layout (docs/config.md):
//   <path>                 the current config bytes; its data version is the config version
//   <path>/v-NNNNNNNNNN    a copy of version N (the last keep_versions kept)
#pragma once

#include "zkrecipes/codec.hpp"
#include "zkrecipes/detail/coro.hpp"
#include "zkrecipes/detail/listeners.hpp"
#include "zkrecipes/error.hpp"
#include "zkrecipes/multi.hpp"
#include "zkrecipes/node_cache.hpp"
#include "zkrecipes/path.hpp"
#include "zkrecipes/session.hpp"
#include "zkrecipes/shared_value.hpp" // versioned<T>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <limits>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

namespace zkrecipes {

/// `expected_version` for the first publish: the config must not exist yet.
inline constexpr std::int32_t config_absent = -1;

struct config_options {
  /// Versions kept under the config node for rollback (at least 1: the current one).
  std::size_t keep_versions = 10;
  /// ACL of the nodes the publisher creates (the session's default if none).
  std::optional<acl_list> acl;
  /// Subscriber: where the last config seen is kept, for a start while
  /// ZooKeeper is unreachable. Empty: no fallback file.
  std::string fallback_file;
};

/// Where a subscriber's current config came from.
enum class config_source { live, fallback_file };
inline const char* to_string(config_source s) noexcept {
  return s == config_source::live ? "live" : "fallback file";
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
/// A subscriber's config: the value, its version and where it came from.
template <class T> struct config_snapshot {
  T value;
  std::int32_t version = 0;
  std::int64_t czxid = 0; ///< of the config node (a re-created node restarts at version 0)
  config_source source = config_source::live;
};
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

namespace detail {

inline std::string config_version_name(std::int32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "v-%010d", v);
  return buf;
}

/// Writes one version: one multi (the CAS on the config node, the history
/// copy, the oldest copy pruned). Conflicts are told with the version found.
inline task config_publish(session* sp, std::string path, std::string bytes, std::int32_t expected,
                           config_options opts, unique_function<void(result<std::int32_t>)> done) {
  session& s = *sp;
  const std::int32_t next = expected + 1;
  const create_options copt(create_mode::persistent, opts.acl);
  bool prune = true;
  for (int attempt = 0; attempt < 4; ++attempt) {
    multi_op ops;
    if (expected == config_absent) ops.create(path, bytes, copt);
    else ops.set(path, bytes, expected);
    ops.create(join(path, config_version_name(next)), bytes, copt);
    const std::int64_t old = std::int64_t(next) - std::int64_t(opts.keep_versions);
    if (prune && old >= 0) ops.remove(join(path, config_version_name(std::int32_t(old))));
    auto r = co_await start_multi(s, ops);
    if (r) {
      done(next);
      co_return;
    }
    if (is_connection_loss(r.error()) || is_session_expired(r.error())) {
      // The multi may have been applied: settle it by reading (after a sync,
      // so the read sees what the leader committed), never by writing blindly
      // again. Ours if the node is at `next` with our bytes.
      (void)co_await start_sync(s, path);
      auto g = co_await start_get(s, path);
      if (g && g.value().stat.version == next && g.value().data == bytes) {
        done(next);
        co_return;
      }
      if ((g && g.value().stat.version == expected) || (failed_with(g, zk_errc::no_node) && expected == config_absent))
        continue; // not applied: send it again
      if (g || failed_with(g, zk_errc::no_node)) {
        done(make_error(zk_errc::bad_version, "config publish",
                        path + ": the reply was lost and the config is now " +
                            (g ? "at version " + std::to_string(g.value().stat.version) : std::string("gone")) +
                            ", not ours (another publisher wrote: read again and retry)"));
        co_return;
      }
      done(r.error()); // cannot tell: the outcome is unknown
      co_return;
    }
    auto ex = co_await start_exists(s, path);
    if (!ex) {
      done(r.error());
      co_return;
    }
    const auto& found = ex.value();
    if (failed_with(r, zk_errc::bad_version) || (failed_with(r, zk_errc::node_exists) && expected == config_absent)) {
      std::string at = found ? "version " + std::to_string(found->version) : "no config";
      done(make_error(zk_errc::bad_version, "config publish",
                      path + ": expected " +
                          (expected == config_absent ? std::string("no config") : "version " + std::to_string(expected)) +
                          ", found " + at + " (another publisher wrote first: read again and retry)"));
      co_return;
    }
    if (failed_with(r, zk_errc::no_node)) {
      if (expected == config_absent && !found) {
        if (auto e = co_await start_ensure_path(s, std::string(parent(path)), opts.acl); !e) {
          done(e.error());
          co_return;
        }
        continue;
      }
      if (expected != config_absent && !found) {
        done(make_error(zk_errc::no_node, "config publish",
                        path + ": no config to update (publish with config_absent to create it)"));
        co_return;
      }
      if (prune) { // the copy to prune is gone (pruned by hand, or keep_versions changed)
        prune = false;
        continue;
      }
    }
    if (failed_with(r, zk_errc::node_exists)) {
      done(make_error(zk_errc::node_exists, "config publish",
                      join(path, config_version_name(next)) +
                          ": a history copy of the next version already exists (the config node was re-created?)"));
      co_return;
    }
    done(r.error());
    co_return;
  }
  done(make_error(errc::timed_out, "config publish", path + ": gave up after 4 attempts"));
}

/// The fallback file: a header line, the path, "version czxid size", then the bytes.
inline result<void> write_config_file(const std::string& file, const std::string& path, std::int32_t version,
                                      std::int64_t czxid, const std::string& bytes) {
  // A temporary name of our own (several processes may share the file),
  // synced, then renamed over it, and the folder synced: a reader sees the
  // old file or the new one, also after a crash.
  static std::atomic<unsigned> counter{0};
  const std::string tmp = file + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(++counter);
  std::string text = "zkrecipes-config 1\n" + path + "\n" + std::to_string(version) + " " + std::to_string(czxid) +
                     " " + std::to_string(bytes.size()) + "\n" + bytes;
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return make_error(std::error_code(errno, std::system_category()), "config fallback write", tmp);
  std::size_t done = 0;
  while (done < text.size()) {
    auto n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += std::size_t(n);
  }
  const int err = done < text.size() ? errno : ::fsync(fd) != 0 ? errno : 0;
  ::close(fd);
  std::error_code ec;
  if (err == 0) std::filesystem::rename(tmp, file, ec);
  if (err != 0 || ec) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    return make_error(err != 0 ? std::error_code(err, std::system_category()) : ec, "config fallback write", file);
  }
  auto dir = std::filesystem::path(file).parent_path();
  if (const int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
    (void)::fsync(dfd); // makes the rename itself durable
    ::close(dfd);
  }
  return outcome::success();
}

struct config_file_content {
  std::int32_t version = 0;
  std::int64_t czxid = 0;
  std::string bytes;
};

inline result<config_file_content> read_config_file(const std::string& file, const std::string& path) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return make_error(errc::invalid_argument, "config fallback read", file + ": cannot open");
  std::string magic, stored_path, sizes;
  std::getline(in, magic);
  std::getline(in, stored_path);
  std::getline(in, sizes);
  if (magic != "zkrecipes-config 1")
    return make_error(errc::decode_failed, "config fallback read", file + ": not a zkrecipes config file");
  if (stored_path != path)
    return make_error(errc::decode_failed, "config fallback read",
                      file + ": holds the config of " + stored_path + ", not " + path);
  config_file_content c;
  unsigned long long size = 0;
  std::istringstream sz(sizes);
  if (!(sz >> c.version >> c.czxid >> size) || size > (64u << 20))
    return make_error(errc::decode_failed, "config fallback read", file + ": bad version/size line");
  c.bytes.resize(size);
  in.read(c.bytes.data(), std::streamsize(size));
  if (std::size_t(in.gcount()) != size || in.peek() != std::char_traits<char>::eof())
    return make_error(errc::decode_failed, "config fallback read", file + ": truncated or trailing bytes");
  return c;
}

} // namespace detail

/// The publishing side: writes new versions and rolls back.
///
/// \code
/// zkrecipes::config<std::string>::publisher pub(s, "/app/config");
/// auto v = pub.publish("{\"threads\": 8}", zkrecipes::config_absent); // version 0
/// pub.publish("{\"threads\": 16}", *v);                               // version 1, or bad_version
/// pub.rollback(0, 1);                                                 // version 2 = version 0's value
/// \endcode
template <class T, class Codec = codec_t<T>>
  requires payload_codec<Codec> && std::same_as<typename Codec::value_type, T>
class config_publisher {
public:
  config_publisher(session& s, std::string path, config_options opts = {})
      : s_(&s), path_(std::move(path)), opts_(std::move(opts)) {
    valid_ = validate_path(path_, "config");
    if (valid_ && opts_.keep_versions == 0)
      valid_ = make_error(errc::invalid_argument, "config", path_ + ": keep_versions must be at least 1");
  }
  const std::string& path() const noexcept { return path_; }

  /// Writes `value` as the version after `expected_version` (config_absent
  /// to create the config). Handler: `void(result<std::int32_t>)` with the new
  /// version. A conflict is zk_errc::bad_version naming the version found.
  template <class H> void async_publish(const T& value, std::int32_t expected_version, H&& h) {
    auto bytes = Codec::encode(value);
    if (!bytes) return fail(std::forward<H>(h), bytes.error());
    publish_bytes(std::move(bytes).value(), expected_version, std::forward<H>(h));
  }
  result<std::int32_t> publish(const T& value, std::int32_t expected_version) {
    return detail::run_blocking<std::int32_t>(*s_, "config publish", path_, [&](auto done) {
      async_publish(value, expected_version, std::move(done));
    });
  }

  /// The current config and its version (zk_errc::no_node when none).
  result<versioned<T>> read() {
    auto n = s_->get(path_);
    if (!n) return n.error();
    auto v = Codec::decode(n.value().data);
    if (!v) return make_error(errc::decode_failed, "config read", path_ + ": " + v.error().path());
    return versioned<T>{std::move(v).value(), n.value().stat.version};
  }

  /// The versions kept for rollback, oldest first.
  result<std::vector<std::int32_t>> versions() {
    if (!valid_) return valid_.error();
    auto c = s_->children(path_);
    if (!c) return c.error();
    std::vector<std::int32_t> out;
    for (auto& n : c.value().names) {
      if (!n.starts_with("v-") || n.size() != 12) continue;
      std::int32_t v = 0;
      auto [p, ec] = std::from_chars(n.data() + 2, n.data() + n.size(), v);
      if (ec == std::errc() && p == n.data() + n.size()) out.push_back(v);
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  /// The value of a kept version.
  result<T> at_version(std::int32_t version) {
    if (!valid_) return valid_.error();
    auto n = s_->get(join(path_, detail::config_version_name(version)));
    if (detail::failed_with(n, zk_errc::no_node))
      return make_error(zk_errc::no_node, "config version",
                        path_ + ": version " + std::to_string(version) + " is not kept (see versions())");
    if (!n) return n.error();
    auto v = Codec::decode(n.value().data);
    if (!v) return make_error(errc::decode_failed, "config version", path_ + ": " + v.error().path());
    return std::move(v).value();
  }
  /// Publishes the value of kept version `to` as the next version after
  /// `expected_version` (history only moves forward). Returns the new version.
  result<std::int32_t> rollback(std::int32_t to, std::int32_t expected_version) {
    if (!valid_) return valid_.error();
    auto n = s_->get(join(path_, detail::config_version_name(to)));
    if (detail::failed_with(n, zk_errc::no_node))
      return make_error(zk_errc::no_node, "config rollback",
                        path_ + ": version " + std::to_string(to) + " is not kept (see versions())");
    if (!n) return n.error();
    return detail::run_blocking<std::int32_t>(*s_, "config rollback", path_, [&](auto done) {
      publish_bytes(std::move(n.value().data), expected_version, std::move(done));
    });
  }

private:
  template <class H> void fail(H&& h, error e) {
    s_->post([h = std::forward<H>(h), e = std::move(e)]() mutable { h(result<std::int32_t>(std::move(e))); });
  }
  template <class H> void publish_bytes(std::string bytes, std::int32_t expected, H&& h) {
    if (!valid_) return fail(std::forward<H>(h), valid_.error());
    if (expected < config_absent || expected == std::numeric_limits<std::int32_t>::max())
      return fail(std::forward<H>(h), make_error(errc::invalid_argument, "config publish",
                                                 path_ + ": expected version out of range"));
    s_->post([s = s_, path = path_, bytes = std::move(bytes), expected, opts = opts_,
              h = std::forward<H>(h)]() mutable {
      detail::config_publish(s, std::move(path), std::move(bytes), expected, std::move(opts), std::move(h));
    });
  }

  session* s_;
  std::string path_;
  config_options opts_;
  result<void> valid_ = outcome::success();
};

/// The subscribing side: a live typed copy with listeners.
///
/// \code
/// zkrecipes::config_options o;
/// o.fallback_file = "/var/lib/app/config.last";
/// zkrecipes::config<std::string>::subscriber sub(s, "/app/config", o);
/// sub.add_listener([](const auto& c) { apply(c.value); });
/// auto from = sub.start(5s);   // live, or fallback_file when ZooKeeper is unreachable
/// auto cfg = sub.current();    // std::optional<config_snapshot<std::string>>
/// \endcode
/// \note Versions only move forward: a read older than the copy held is
///       ignored (a config node deleted and re-created starts again at 0 and is
///       taken: told by its czxid). A value that does not decode is skipped,
///       kept in last_error() and written to stderr; the copy stays. Listeners
///       run on the session's dispatcher thread. The session must outlive it.
template <class T, class Codec = codec_t<T>>
  requires payload_codec<Codec> && std::same_as<typename Codec::value_type, T>
class config_subscriber {
  struct state {
    std::string path;
    config_options opts;
    std::mutex mx;
    std::condition_variable cv;
    std::optional<config_snapshot<T>> current;
    std::optional<error> last_error;
    bool have_snapshot = false;
    std::vector<std::pair<listener_id, std::function<void(const config_snapshot<T>&)>>> listeners; // dispatcher
  };

public:
  config_subscriber(session& s, std::string path, config_options opts = {})
      : s_(&s), st_(std::make_shared<state>()), cache_(s, path) {
    st_->path = std::move(path);
    st_->opts = std::move(opts);
    cache_.add_listener([st = st_](const cache_event& e) {
      if (e.change != cache_change::removed) apply(st, e.data);
    });
  }
  config_subscriber(const config_subscriber&) = delete;
  config_subscriber& operator=(const config_subscriber&) = delete;
  ~config_subscriber() {
    cache_.close();
    detail::run_on_dispatcher(*s_, [st = st_] { st->listeners.clear(); });
  }

  const std::string& path() const noexcept { return st_->path; }

  /// Starts following the config and waits (up to `timeout`) for it to be
  /// read. If ZooKeeper cannot be reached in that time and a fallback file
  /// holds the last config seen, runs on that (source fallback_file, told on
  /// stderr) and keeps trying: the live config replaces it when it is read.
  /// \returns where current() comes from; errc::timed_out when neither
  ///          ZooKeeper nor a usable fallback file answered.
  result<config_source> start(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    if (s_->on_dispatcher_thread()) return make_error(errc::would_deadlock, "config start", st_->path);
    auto p = std::make_shared<std::promise<result<void>>>();
    auto f = p->get_future();
    cache_.async_start([st = st_, c = &cache_, p](result<void> r) {
      if (r) {
        {
          std::lock_guard lk(st->mx);
          st->have_snapshot = true;
        }
        if (auto n = c->current()) apply(st, *n);
        st->cv.notify_all();
      }
      p->set_value(std::move(r));
    });
    if (f.wait_for(timeout) == std::future_status::ready) {
      auto r = f.get();
      if (!r) return r.error();
      if (auto e = cache_.last_error(); e && !current()) return *e; // e.g. no_auth on the config node
      return config_source::live;
    }
    if (auto held = current()) return held->source; // the live config came in just now
    std::string why = st_->path + ": ZooKeeper did not answer within " + std::to_string(timeout.count()) + " ms";
    if (st_->opts.fallback_file.empty())
      return make_error(errc::timed_out, "config start", why + " and no fallback file is set");
    auto file = detail::read_config_file(st_->opts.fallback_file, st_->path);
    if (!file) return make_error(errc::timed_out, "config start", why + "; fallback: " + file.error().message());
    auto v = Codec::decode(file.value().bytes);
    if (!v)
      return make_error(errc::timed_out, "config start",
                        why + "; fallback " + st_->opts.fallback_file + " does not decode: " + v.error().message());
    {
      std::lock_guard lk(st_->mx);
      if (st_->current) return st_->current->source; // the live config came in meanwhile
      st_->current = config_snapshot<T>{std::move(v).value(), file.value().version, file.value().czxid,
                                        config_source::fallback_file};
    }
    std::fprintf(stderr, "zkrecipes: config %s: running on the last known config (version %d) from %s\n",
                 st_->path.c_str(), int(file.value().version), st_->opts.fallback_file.c_str());
    return config_source::fallback_file;
  }

  /// The config held now (nullopt before it was read, or if none exists).
  std::optional<config_snapshot<T>> current() const {
    std::lock_guard lk(st_->mx);
    return st_->current;
  }
  /// The last problem seen (a value that did not decode, a fallback file not written).
  std::optional<error> last_error() const {
    std::lock_guard lk(st_->mx);
    return st_->last_error;
  }

  /// Waits until the live config is at `version` or later.
  /// \returns errc::timed_out naming the version held.
  result<void> wait_for_version(std::int32_t version, std::chrono::milliseconds timeout) const {
    std::unique_lock lk(st_->mx);
    auto ok = [&] {
      return st_->current && st_->current->source == config_source::live && st_->current->version >= version;
    };
    if (st_->cv.wait_for(lk, timeout, ok)) return outcome::success();
    std::string held = st_->current ? "version " + std::to_string(st_->current->version) + " (" +
                                          to_string(st_->current->source) + ")"
                                    : std::string("nothing");
    return make_error(errc::timed_out, "config wait",
                      st_->path + ": version " + std::to_string(version) + " not seen; holding " + held);
  }

  /// Adds a listener for every new config taken (live), on the dispatcher thread.
  listener_id add_listener(std::function<void(const config_snapshot<T>&)> fn) {
    auto id = ++next_id_;
    s_->post([st = st_, id, fn = std::move(fn)]() mutable { st->listeners.emplace_back(id, std::move(fn)); });
    return id;
  }
  /// Once this returns the listener is not called again.
  void remove_listener(listener_id id) {
    detail::run_on_dispatcher(*s_, [st = st_, id] { std::erase_if(st->listeners, [&](auto& l) { return l.first == id; }); });
  }

private:
  // Dispatcher thread: takes a read of the config node if it moves forward.
  static void apply(const std::shared_ptr<state>& st, const node& n) {
    auto v = Codec::decode(n.data);
    if (!v) {
      auto e = make_error(errc::decode_failed, "config", st->path + " version " + std::to_string(n.stat.version) +
                                                             ": " + v.error().path() + " (kept the previous)");
      std::fprintf(stderr, "zkrecipes: %s\n", e.message().c_str());
      std::lock_guard lk(st->mx);
      st->last_error = e;
      return;
    }
    config_snapshot<T> snap{std::move(v).value(), n.stat.version, n.stat.czxid, config_source::live};
    {
      std::lock_guard lk(st->mx);
      auto& cur = st->current;
      if (cur && cur->source == config_source::live && cur->czxid == snap.czxid && cur->version >= snap.version)
        return; // never backwards
      cur = snap;
    }
    st->cv.notify_all();
    if (!st->opts.fallback_file.empty())
      if (auto w = detail::write_config_file(st->opts.fallback_file, st->path, n.stat.version, n.stat.czxid, n.data);
          !w) {
        std::fprintf(stderr, "zkrecipes: config %s: %s\n", st->path.c_str(), w.error().message().c_str());
        std::lock_guard lk(st->mx);
        st->last_error = w.error();
      }
    detail::call_listeners(st->listeners, snap, "config", st->path);
  }

  session* s_;
  std::shared_ptr<state> st_;
  node_cache cache_;
  std::atomic<listener_id> next_id_{0};
};

/// `config<T, Codec>::publisher` and `config<T, Codec>::subscriber`.
template <class T, class Codec = codec_t<T>> struct config {
  using publisher = config_publisher<T, Codec>;
  using subscriber = config_subscriber<T, Codec>;
  using snapshot = config_snapshot<T>;
};

} // namespace zkrecipes
