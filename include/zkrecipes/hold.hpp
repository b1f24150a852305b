// What happens to a hold (a lock, a lease, a leadership) after it was granted.
#pragma once

namespace zkrecipes {

/// Events told to the listeners of a lock, lease or leadership.
enum class hold_event {
  acquired, ///< granted (leadership: gained)
  in_doubt, ///< the connection is suspended: the hold may be gone; stop acting on it
  restored, ///< reconnected within the session: the node is still ours, the hold is back
  lost,     ///< the session expired or was closed: the hold is gone
  released, ///< given up by its owner
};

inline const char* to_string(hold_event e) noexcept {
  switch (e) {
  case hold_event::acquired: return "acquired";
  case hold_event::in_doubt: return "in_doubt";
  case hold_event::restored: return "restored";
  case hold_event::lost: return "lost";
  case hold_event::released: return "released";
  }
  return "?";
}

} // namespace zkrecipes
