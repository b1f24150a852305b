// State a recipe object shares with its engine's callbacks: the user's
// listeners and the stop source of the current hold. Shared, so callbacks
// running on the dispatcher never outlive what they touch.
#pragma once

#include "zkrecipes/hold.hpp"
#include "zkrecipes/session.hpp"

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <stop_token>
#include <vector>

namespace zkrecipes::detail {

struct hold_state {
  struct entry {
    listener_id id;
    std::shared_ptr<std::function<void(hold_event)>> fn;
  };
  std::mutex mx;
  std::mutex emit_mx; // held while listeners run, so removal can wait for them
  std::vector<entry> listeners;
  listener_id next = 0;
  std::stop_source stop{std::nostopstate};

  listener_id add(std::function<void(hold_event)> f) {
    std::lock_guard lk(mx);
    listeners.push_back({++next, std::make_shared<std::function<void(hold_event)>>(std::move(f))});
    return next;
  }

  /// After this returns (off the dispatcher) the listener is not called again.
  void remove(listener_id id, bool on_dispatcher) {
    std::unique_lock<std::mutex> elk;
    if (!on_dispatcher) elk = std::unique_lock(emit_mx);
    std::lock_guard lk(mx);
    std::erase_if(listeners, [id](const entry& e) { return e.id == id; });
  }

  /// Drops every listener; as remove(), none is called after this returns.
  void clear(bool on_dispatcher) {
    std::unique_lock<std::mutex> elk;
    if (!on_dispatcher) elk = std::unique_lock(emit_mx);
    std::lock_guard lk(mx);
    listeners.clear();
  }

  /// A new hold gets a fresh stop token; losing or releasing it stops it.
  void on_event(hold_event e) {
    {
      std::lock_guard lk(mx);
      if (e == hold_event::acquired) stop = std::stop_source{};
    }
    if (e == hold_event::lost || e == hold_event::released) {
      std::stop_source s;
      {
        std::lock_guard lk(mx);
        s = stop;
      }
      s.request_stop();
    }
    std::lock_guard elk(emit_mx);
    std::vector<entry> copy;
    {
      std::lock_guard lk(mx);
      copy = listeners;
    }
    for (auto& l : copy) {
      bool live;
      {
        std::lock_guard lk(mx);
        live = std::any_of(listeners.begin(), listeners.end(), [&](const entry& x) { return x.id == l.id; });
      }
      if (live) (*l.fn)(e);
    }
  }

  std::stop_token token() {
    std::lock_guard lk(mx);
    return stop.get_token();
  }
};

} // namespace zkrecipes::detail
