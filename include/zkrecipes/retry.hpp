// Bounded exponential back-off with jitter, for idempotent operations only.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>

namespace zkrecipes {

/// How an idempotent operation is retried after a transient error
/// (connection loss, operation timeout, session moved, throttling).
///
/// The delay before retry n (0-based) is drawn uniformly from
/// [d/2, d] with d = min(max_delay, base_delay * 2^n) ("equal jitter"), so
/// clients that failed together do not retry together.
/// \note The session retries reads, sync, remove, ensure_path and
///       remove_recursive; creates, sets and multis are not retried, since
///       after a connection loss they may have applied (use the protected
///       create for creates).
struct retry_policy {
  int max_retries = 3;
  std::chrono::milliseconds base_delay{50};
  std::chrono::milliseconds max_delay{2000};

  /// No retries at all.
  static retry_policy none() { return {0, std::chrono::milliseconds(0), std::chrono::milliseconds(0)}; }

  /// The delay before retry number `attempt` (0-based).
  template <class Rng> std::chrono::milliseconds delay(int attempt, Rng& rng) const {
    using ms = std::chrono::milliseconds;
    std::int64_t d = base_delay.count();
    for (int i = 0; i < attempt && d < max_delay.count(); ++i) d *= 2;
    d = std::min<std::int64_t>(d, max_delay.count());
    if (d <= 0) return ms(0);
    std::uniform_int_distribution<std::int64_t> dist(d / 2, d);
    return ms(dist(rng));
  }
};

} // namespace zkrecipes
