// A shared value and a shared counter: one znode read and written with
// compare-and-set on its data version.
//
// Layout (docs/shared_value.md): one persistent node, <path>, holding the
// encoded value (the counter: a decimal number).
#pragma once

#include "zkrecipes/codec.hpp"
#include "zkrecipes/detail/coro.hpp"
#include "zkrecipes/error.hpp"
#include "zkrecipes/path.hpp"
#include "zkrecipes/retry.hpp"
#include "zkrecipes/session.hpp"

#include <charconv>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>

namespace zkrecipes {

// GCC 12 reports a false "may be used uninitialized" when a result holding
// an error is moved (see node.hpp); it is attributed to these members.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
/// A value with the data version it was read at (the compare-and-set key).
template <class T> struct versioned {
  T value;
  std::int32_t version = 0;
};
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

namespace detail {

/// Reads `path`, creating it with `initial` first if it is missing.
inline task read_or_create(session* sp, std::string path, std::string initial, std::optional<acl_list> acl,
                           unique_function<void(result<node>)> done) {
  session& s = *sp;
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto g = co_await start_get(s, path);
    if (!failed_with(g, zk_errc::no_node)) {
      done(std::move(g));
      co_return;
    }
    auto c = co_await start_create(s, path, initial, create_options(create_mode::persistent, acl));
    if (failed_with(c, zk_errc::no_node)) {
      auto e = co_await start_ensure_path(s, std::string(parent(path)), acl);
      if (!e) {
        done(e.error());
        co_return;
      }
    } else if (!c && !failed_with(c, zk_errc::node_exists)) {
      done(c.error());
      co_return;
    }
  }
  done(make_error(errc::timed_out, "shared_value get", path + ": created and removed again repeatedly"));
}

/// get -> f -> set(version); on bad_version read again, with jittered back-off.
inline task update_loop(session* sp, std::string path, std::string initial, std::optional<acl_list> acl,
                        std::function<result<std::string>(std::string_view)> f, int max_attempts,
                        unique_function<void(result<versioned<std::string>>)> done) {
  session& s = *sp;
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  retry_policy backoff{max_attempts, std::chrono::milliseconds(2), std::chrono::milliseconds(100)};
  for (int attempt = 0; attempt < max_attempts; ++attempt) {
    result<node> cur = node{};
    pending<void> step;
    read_or_create(sp, path, initial, acl, [&, h = step.handler()](result<node> r) mutable {
      cur = std::move(r);
      h(outcome::success());
    });
    (void)co_await step;
    if (!cur) {
      done(cur.error());
      co_return;
    }
    auto next = f(cur.value().data);
    if (!next) {
      done(next.error());
      co_return;
    }
    auto st = co_await start_set(s, path, next.value(), cur.value().stat.version);
    if (st) {
      done(versioned<std::string>{std::move(next).value(), st.value().version});
      co_return;
    }
    if (!failed_with(st, zk_errc::bad_version) && !failed_with(st, zk_errc::no_node)) {
      done(st.error());
      co_return;
    }
    (void)co_await sleep_for(s, backoff.delay(attempt, rng));
  }
  done(make_error(errc::timed_out, "shared_value update",
                  path + ": lost the compare-and-set " + std::to_string(max_attempts) + " times"));
}

/// set(version); an unconditional set on a missing node creates it.
inline task write_value(session* sp, std::string path, std::string data, std::int32_t version,
                        std::optional<acl_list> acl, unique_function<void(result<std::int32_t>)> done) {
  session& s = *sp;
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto st = co_await start_set(s, path, data, version);
    if (st) {
      done(st.value().version);
      co_return;
    }
    if (!failed_with(st, zk_errc::no_node) || version != any_version) {
      done(st.error());
      co_return;
    }
    auto c = co_await start_create(s, path, data, create_options(create_mode::persistent, acl));
    if (c) {
      done(std::int32_t(0));
      co_return;
    }
    if (failed_with(c, zk_errc::no_node)) {
      if (auto e = co_await start_ensure_path(s, std::string(parent(path)), acl); !e) {
        done(e.error());
        co_return;
      }
    } else if (!failed_with(c, zk_errc::node_exists)) {
      done(c.error());
      co_return;
    }
  }
  done(make_error(errc::timed_out, "shared_value set", path + ": created and removed again repeatedly"));
}

} // namespace detail

/// A `T` shared through one znode: get, set, compare_and_set and update
/// (read-modify-write retried on conflict).
///
/// \code
/// zkrecipes::shared_value<std::string> v(s, "/cfg/mode", "normal");
/// auto cur = v.get();                                  // {value, version}
/// auto r = v.compare_and_set(cur->version, "drain");   // zk_errc::bad_version if someone else wrote first
/// \endcode
/// The node is created with `initial` on first use.
/// \note The session must outlive the object. Thread-safe.
template <class T, class Codec = codec_t<T>>
  requires payload_codec<Codec> && std::same_as<T, typename Codec::value_type>
class shared_value {
public:
  shared_value(session& s, std::string path, T initial, std::optional<acl_list> acl = std::nullopt)
      : s_(&s), path_(std::move(path)), acl_(std::move(acl)), valid_(validate_path(path_, "shared_value")) {
    if (valid_) {
      auto e = Codec::encode(initial);
      if (e) initial_ = std::move(e).value();
      else valid_ = make_error(errc::encode_failed, "shared_value", path_ + ": initial value: " + e.error().message());
    }
  }

  const std::string& path() const noexcept { return path_; }

  /// The value and its version (creating the node with the initial value
  /// if missing). Handler: `void(result<versioned<T>>)`.
  template <class H> void async_get(H&& h) {
    if (!valid_) return fail_later<versioned<T>>(std::forward<H>(h), valid_.error());
    s_->post([s = s_, p = path_, i = initial_, a = acl_, h = std::forward<H>(h)]() mutable {
      detail::read_or_create(s, p, i, a, [p, h = std::move(h)](result<node> n) mutable {
        if (!n) return h(result<versioned<T>>(n.error()));
        auto v = decode(p, n.value().data, "shared_value get");
        if (!v) return h(result<versioned<T>>(v.error()));
        h(result<versioned<T>>(versioned<T>{std::move(v).value(), n.value().stat.version}));
      });
    });
  }
  result<versioned<T>> get() {
    return detail::run_blocking<versioned<T>>(*s_, "shared_value get", path_, [&](auto d) { async_get(std::move(d)); });
  }

  /// Writes unconditionally (creating the node if missing). Handler:
  /// `void(result<std::int32_t>)` with the new version.
  template <class H> void async_set(const T& value, H&& h) { write(value, any_version, std::forward<H>(h)); }
  result<std::int32_t> set(const T& value) {
    return detail::run_blocking<std::int32_t>(*s_, "shared_value set", path_,
                                              [&](auto d) { async_set(value, std::move(d)); });
  }
  /// Writes only if the stored version is still `expected_version`;
  /// zk_errc::bad_version if another write came first. Returns the new version.
  template <class H> void async_compare_and_set(std::int32_t expected_version, const T& value, H&& h) {
    write(value, expected_version, std::forward<H>(h));
  }
  result<std::int32_t> compare_and_set(std::int32_t expected_version, const T& value) {
    return detail::run_blocking<std::int32_t>(*s_, "shared_value compare_and_set", path_, [&](auto d) {
      async_compare_and_set(expected_version, value, std::move(d));
    });
  }

  /// Read-modify-write: `f(current) -> next`, retried on conflict (up to
  /// max_attempts, with jittered back-off). `f` runs on the dispatcher
  /// thread, possibly several times. Handler: `void(result<versioned<T>>)`
  /// with what was written.
  template <class F, class H> void async_update(F f, H&& h, int max_attempts = 100) {
    if (!valid_) return fail_later<versioned<T>>(std::forward<H>(h), valid_.error());
    std::function<result<std::string>(std::string_view)> step =
        [f = std::move(f)](std::string_view cur) mutable -> result<std::string> {
      auto v = Codec::decode(cur);
      if (!v) return make_error(errc::decode_failed, "shared_value update", v.error().message());
      return Codec::encode(f(std::as_const(v.value())));
    };
    s_->post([s = s_, p = path_, i = initial_, a = acl_, st = std::move(step), max_attempts,
              h = std::forward<H>(h)]() mutable {
      detail::update_loop(s, p, i, a, std::move(st), max_attempts,
                          [p, h = std::move(h)](result<versioned<std::string>> r) mutable {
                            if (!r) return h(result<versioned<T>>(r.error()));
                            auto v = decode(p, r.value().value, "shared_value update");
                            if (!v) return h(result<versioned<T>>(v.error()));
                            h(result<versioned<T>>(versioned<T>{std::move(v).value(), r.value().version}));
                          });
    });
  }
  template <class F> result<versioned<T>> update(F&& f, int max_attempts = 100) {
    return detail::run_blocking<versioned<T>>(*s_, "shared_value update", path_, [&](auto d) {
      async_update([&f](const T& cur) { return f(cur); }, std::move(d), max_attempts);
    });
  }

private:
  static result<T> decode(const std::string& path, std::string_view data, const char* op) {
    auto v = Codec::decode(data);
    if (!v) return make_error(errc::decode_failed, op, path + ": " + v.error().message());
    return v;
  }
  template <class R, class H> void fail_later(H&& h, error e) {
    s_->post([h = std::forward<H>(h), e = std::move(e)]() mutable { h(result<R>(e)); });
  }
  template <class H> void write(const T& value, std::int32_t version, H&& h) {
    if (!valid_) return fail_later<std::int32_t>(std::forward<H>(h), valid_.error());
    auto e = Codec::encode(value);
    if (!e) return fail_later<std::int32_t>(std::forward<H>(h), make_error(errc::encode_failed, "shared_value set", path_ + ": " + e.error().message()));
    s_->post([s = s_, p = path_, a = acl_, d = std::move(e).value(), version, h = std::forward<H>(h)]() mutable {
      detail::write_value(s, p, std::move(d), version, a, std::move(h));
    });
  }

  session* s_;
  std::string path_;
  std::optional<acl_list> acl_;
  result<void> valid_;
  std::string initial_;
};

/// A 64-bit signed counter in decimal text.
struct counter_codec {
  using value_type = std::int64_t;
  static result<std::string> encode(const std::int64_t& v) { return std::to_string(v); }
  static result<std::int64_t> decode(std::string_view b) {
    std::int64_t v = 0;
    auto [p, ec] = std::from_chars(b.data(), b.data() + b.size(), v);
    if (b.empty() || ec != std::errc() || p != b.data() + b.size())
      return make_error(errc::decode_failed, "counter decode", "not a decimal 64-bit integer");
    return v;
  }
};

/// A shared 64-bit counter: increment() is a compare-and-set loop, so
/// concurrent increments from any number of sessions sum exactly.
///
/// \code
/// zkrecipes::shared_counter hits(s, "/stats/hits");
/// auto n = hits.increment();   // the value after this increment
/// \endcode
class shared_counter {
public:
  shared_counter(session& s, std::string path, std::int64_t initial = 0, std::optional<acl_list> acl = std::nullopt)
      : session_(&s), v_(s, std::move(path), initial, std::move(acl)) {}

  const std::string& path() const noexcept { return v_.path(); }
  /// Handler: `void(result<std::int64_t>)` with the new value.
  template <class H> void async_increment(std::int64_t delta, H&& h) {
    auto overflow = std::make_shared<bool>(false);
    v_.async_update(
        [delta, overflow](std::int64_t cur) {
          std::int64_t out;
          if (__builtin_add_overflow(cur, delta, &out)) {
            *overflow = true;
            return cur;
          }
          *overflow = false;
          return out;
        },
        [p = path(), overflow, h = std::forward<H>(h)](result<versioned<std::int64_t>> r) mutable {
          if (!r) return h(result<std::int64_t>(r.error()));
          if (*overflow)
            return h(result<std::int64_t>(
                make_error(errc::invalid_argument, "counter increment", p + ": the sum overflows 64 bits")));
          h(result<std::int64_t>(r.value().value));
        });
  }
  /// Handler: `void(result<versioned<std::int64_t>>)`.
  template <class H> void async_get(H&& h) { v_.async_get(std::forward<H>(h)); }
  result<std::int64_t> get() {
    auto r = v_.get();
    if (!r) return r.error();
    return r.value().value;
  }
  result<void> set(std::int64_t value) {
    auto r = v_.set(value);
    if (!r) return r.error();
    return outcome::success();
  }
  /// Adds `delta` (may be negative); returns the new value. errc::invalid_argument on overflow.
  result<std::int64_t> increment(std::int64_t delta = 1) {
    return detail::run_blocking<std::int64_t>(*session_, "counter increment", path(),
                                              [&](auto d) { async_increment(delta, std::move(d)); });
  }
  /// Sets `value` only if the counter still holds `expected`; false if it did not.
  result<bool> compare_and_set(std::int64_t expected, std::int64_t value) {
    auto cur = v_.get();
    if (!cur) return cur.error();
    if (cur.value().value != expected) return false;
    auto r = v_.compare_and_set(cur.value().version, value);
    if (r) return true;
    if (r.error() == zk_errc::bad_version) return false;
    return r.error();
  }

private:
  session* session_;
  shared_value<std::int64_t, counter_codec> v_;
};

} // namespace zkrecipes
