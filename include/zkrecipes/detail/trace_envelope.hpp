// The trace envelope of queue items: a trace id carried inside an item's
// bytes, so that a consumer in another process sees the producer's trace id.
//
//   "\x1f" "zkt" "\x1f" <trace id> "\x1f" <payload>
//
// A producer wraps a payload when it has a valid trace id, and ALWAYS wraps
// one that itself begins with the magic (then with an empty trace id), so
// that decoding is never ambiguous. Any other payload is stored unchanged:
// queues written without tracing keep their bytes.
#pragma once

#include "zkrecipes/error.hpp"
#include "zkrecipes/interceptor.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace zkrecipes::detail {

inline constexpr std::string_view trace_magic = "\x1fzkt\x1f";
inline constexpr char trace_end = '\x1f';

/// The bytes to store for `payload` carrying `trace_id` (a malformed trace
/// id is not carried).
inline std::string wrap_trace(std::string_view payload, const std::optional<std::string>& trace_id) {
  const bool carry = trace_id && valid_trace_id(*trace_id);
  if (!carry && payload.substr(0, trace_magic.size()) != trace_magic) return std::string(payload);
  std::string out;
  out.reserve(trace_magic.size() + (carry ? trace_id->size() : 0) + 1 + payload.size());
  out += trace_magic;
  if (carry) out += *trace_id;
  out += trace_end;
  out += payload;
  return out;
}

/// An item's bytes split into payload and trace id.
struct unwrapped_item {
  std::string_view payload;            ///< a view into the bytes given
  std::optional<std::string> trace_id; ///< null when none, or when malformed
};

/// Splits stored bytes. Bytes without the magic are all payload. A magic
/// with no end of the trace id within 64 characters is a truncated or
/// corrupt envelope: errc::decode_failed (never a crash).
inline result<unwrapped_item> unwrap_trace(std::string_view bytes) {
  if (bytes.substr(0, trace_magic.size()) != trace_magic) return unwrapped_item{bytes, std::nullopt};
  auto rest = bytes.substr(trace_magic.size());
  auto end = rest.substr(0, max_trace_id_size + 1).find(trace_end);
  if (end == std::string_view::npos)
    return make_error(errc::decode_failed, "trace envelope",
                      "the item starts with the trace envelope's magic but its trace id has no end (truncated)");
  unwrapped_item out{rest.substr(end + 1), std::nullopt};
  auto id = rest.substr(0, end);
  if (valid_trace_id(id)) out.trace_id = std::string(id); // malformed: nulled, the payload still flows
  return out;
}

} // namespace zkrecipes::detail
