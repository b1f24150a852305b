// A move-only function wrapper (std::move_only_function is C++23).
#pragma once

#include <functional>
#include <memory>
#include <type_traits>
#include <utility>

namespace zkrecipes::detail {

template <class Signature> class unique_function;

template <class R, class... Args> class unique_function<R(Args...)> {
  struct base {
    virtual ~base() = default;
    virtual R call(Args&&... args) = 0;
  };
  template <class F> struct impl final : base {
    explicit impl(F&& f) : fn(std::move(f)) {}
    R call(Args&&... args) override { return std::invoke(fn, std::forward<Args>(args)...); }
    F fn;
  };

public:
  unique_function() = default;
  unique_function(std::nullptr_t) noexcept {} // NOLINT

  template <class F>
    requires(!std::is_same_v<std::remove_cvref_t<F>, unique_function> &&
             std::is_invocable_r_v<R, std::decay_t<F>&, Args...>)
  unique_function(F&& f) // NOLINT: implicit like std::function
      : fn_(std::make_unique<impl<std::decay_t<F>>>(std::decay_t<F>(std::forward<F>(f)))) {}

  unique_function(unique_function&&) noexcept = default;
  unique_function& operator=(unique_function&&) noexcept = default;
  unique_function(const unique_function&) = delete;
  unique_function& operator=(const unique_function&) = delete;

  R operator()(Args... args) { return fn_->call(std::forward<Args>(args)...); }
  explicit operator bool() const noexcept { return static_cast<bool>(fn_); }

private:
  std::unique_ptr<base> fn_;
};

} // namespace zkrecipes::detail
