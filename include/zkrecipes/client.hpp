// The client concept: what recipes use of a session (design §6).
//
// `session` satisfies it, and so does a handle made by
// session::intercepted(chain) -- the same type, whose operations pass
// through an interceptor chain. A decorator of your own (a fake for unit
// tests, a rate limiter) can be checked against it with
// `static_assert(zkrecipes::client<my_client>)`.
#pragma once

#include "zkrecipes/detail/unique_function.hpp"
#include "zkrecipes/error.hpp"
#include "zkrecipes/multi.hpp"
#include "zkrecipes/node.hpp"
#include "zkrecipes/session.hpp"

#include <chrono>
#include <concepts>
#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>
#include <vector>

namespace zkrecipes {

namespace detail {
template <class T> using handler_of = unique_function<void(result<T>)>;
}

/// Asynchronous operations (each with a `void(result<T>)` handler), the
/// dispatcher (post, timers), state listeners and the session's identity.
template <class C>
concept client = std::move_constructible<C> &&
    requires(C& c, const C& cc, std::string_view path, std::string_view data, create_options opts,
             std::int32_t version, watcher w, const multi_op& ops, detail::unique_function<void()> task,
             std::chrono::milliseconds delay, std::uint64_t timer, std::function<void(const session_event&)> l,
             listener_id lid, detail::handler_of<created_node> hc, detail::handler_of<node> hg,
             detail::handler_of<zkrecipes::stat> hs, detail::handler_of<void> hv,
             detail::handler_of<std::optional<zkrecipes::stat>> he, detail::handler_of<children_list> hch,
             detail::handler_of<std::vector<op_result>> hm) {
      c.async_create(path, data, opts, std::move(hc));
      c.async_get(path, std::move(hg));
      c.async_get(path, std::move(w), std::move(hg));
      c.async_set(path, data, version, std::move(hs));
      c.async_remove(path, version, std::move(hv));
      c.async_exists(path, std::move(he));
      c.async_exists(path, std::move(w), std::move(he));
      c.async_children(path, std::move(hch));
      c.async_children(path, std::move(w), std::move(hch));
      c.async_multi(ops, std::move(hm));
      c.async_sync(path, std::move(hv));
      c.async_ensure_path(path, std::move(hv));
      c.async_remove_recursive(path, std::move(hv));
      c.post(std::move(task));
      { c.post_after(delay, std::move(task)) } -> std::same_as<std::uint64_t>;
      { c.cancel_timer(timer) } -> std::same_as<bool>;
      { c.add_listener(std::move(l)) } -> std::same_as<listener_id>;
      c.remove_listener(lid);
      { cc.session_id() } -> std::same_as<std::int64_t>;
      { cc.state() } -> std::same_as<session_state>;
      { cc.on_dispatcher_thread() } -> std::same_as<bool>;
      { cc.options() } -> std::convertible_to<const session_options&>;
    };

static_assert(client<session>, "session must satisfy the client concept");

} // namespace zkrecipes
