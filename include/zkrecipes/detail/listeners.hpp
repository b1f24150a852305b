// Calling a recipe's listeners on the dispatcher thread.
#pragma once

#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace zkrecipes::detail {

/// Calls each listener in order with `event`. A listener removed (or the
/// list cleared) by an earlier one in the same round is not called; one that
/// throws is reported on stderr and the others still run.
template <class Id, class Event>
void call_listeners(const std::vector<std::pair<Id, std::function<void(const Event&)>>>& listeners,
                    const Event& event, const char* kind, const std::string& path) {
  std::vector<Id> ids;
  ids.reserve(listeners.size());
  for (auto& l : listeners) ids.push_back(l.first);
  for (auto id : ids) {
    std::function<void(const Event&)> fn; // a copy: the listener may remove itself
    for (auto& l : listeners)
      if (l.first == id) fn = l.second;
    if (!fn) continue;
    try {
      fn(event);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "zkrecipes: %s %s: a listener threw: %s\n", kind, path.c_str(), e.what());
    } catch (...) {
      std::fprintf(stderr, "zkrecipes: %s %s: a listener threw\n", kind, path.c_str());
    }
  }
}

} // namespace zkrecipes::detail
