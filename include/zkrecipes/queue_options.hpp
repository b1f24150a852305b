// Options shared by the queues (fifo_queue, locking_queue).
#pragma once

#include "zkrecipes/node.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>

namespace zkrecipes {

/// Options shared by the queues.
struct queue_options {
  /// Sequence numbers per bucket (10..100,000). A bucket's listing holds at
  /// most about this many names (16 bytes each), whatever the queue's depth.
  std::int32_t bucket_capacity = 1000;
  /// Items a consumer reads ahead of its takes (0..1000), so that a take
  /// usually costs one round trip. Each costs memory up to its data size.
  std::size_t prefetch = 16;
  /// ACL of the nodes the queue creates (unset: the session's default).
  std::optional<acl_list> acl;
};

} // namespace zkrecipes
