// Globally unique, increasing 64-bit ids for a naming service, from
// sequential nodes that are removed at once (nothing piles up).
//
// Layout (docs/id_generator.md): <path>/id-<seq>, ephemeral-sequential,
// each alive for one round trip.
#pragma once

#include "zkrecipes/detail/coro.hpp"
#include "zkrecipes/error.hpp"
#include "zkrecipes/path.hpp"
#include "zkrecipes/session.hpp"

#include <cstdint>
#include <optional>
#include <string>

namespace zkrecipes {

/// One generated id.
struct generated_id {
  /// The zxid of the create: unique across the ensemble and increasing in
  /// commit order (64 bits, so it never wraps in practice). Use this.
  std::int64_t id = 0;
  /// The node's sequence number under the generator's path (the parent's
  /// signed 32-bit counter: it wraps after 2,147,483,647 ids).
  std::int64_t sequence = 0;
};

namespace detail {

inline task next_id(session* sp, std::string path, std::optional<acl_list> acl,
                    unique_function<void(result<generated_id>)> done) {
  session& s = *sp;
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto c = co_await start_create(s, join(path, "id-"), {}, create_options(create_mode::ephemeral_sequential, acl));
    if (c) {
      // Removed without waiting; it is ephemeral, so even a lost delete
      // leaves nothing once the session ends.
      s.async_remove(c.value().path, any_version, [](result<void>) {});
      done(generated_id{c.value().stat.czxid, sequence_of(c.value().path).value_or(0)});
      co_return;
    }
    if (!failed_with(c, zk_errc::no_node)) {
      done(c.error());
      co_return;
    }
    auto e = co_await start_ensure_path(s, path, acl);
    if (!e) {
      done(e.error());
      co_return;
    }
  }
  done(make_error(errc::timed_out, "id_generator next", path + ": its node kept disappearing"));
}

} // namespace detail

/// Hands out unique ids: one round trip each.
///
/// \code
/// zkrecipes::id_generator ids(s, "/naming/orders");
/// auto id = ids.next();   // id->id: unique, larger than every id handed out before it
/// \endcode
/// \note The session must outlive the generator. Thread-safe.
class id_generator {
public:
  id_generator(session& s, std::string path, std::optional<acl_list> acl = std::nullopt)
      : s_(&s), path_(std::move(path)), acl_(std::move(acl)), valid_(validate_path(path_, "id_generator")) {}

  const std::string& path() const noexcept { return path_; }

  /// Handler: `void(result<generated_id>)`.
  template <class H> void async_next(H&& h) {
    if (!valid_) {
      s_->post([h = std::forward<H>(h), e = valid_.error()]() mutable { h(result<generated_id>(e)); });
      return;
    }
    s_->post([s = s_, p = path_, a = acl_, h = std::forward<H>(h)]() mutable {
      detail::next_id(s, p, a, std::move(h));
    });
  }
  result<generated_id> next() {
    return detail::run_blocking<generated_id>(*s_, "id_generator next", path_,
                                              [&](auto done) { async_next(std::move(done)); });
  }

private:
  session* s_;
  std::string path_;
  std::optional<acl_list> acl_;
  result<void> valid_;
};

} // namespace zkrecipes
