// Options shared by the queues (fifo_queue, locking_queue).
#pragma once

#include "zkrecipes/interceptor.hpp"
#include "zkrecipes/node.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

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
  /// Called in list order after each item is created (on_produce) and taken
  /// (on_consume), with the queue path, the item key, its sequence number and
  /// the trace id it carries; one that throws does not stop delivery
  /// (docs/interceptors.md). interceptor_chain::queue_interceptors() gives
  /// those of a configured chain. Empty: none, at no cost.
  std::vector<std::shared_ptr<queue_interceptor>> interceptors;
};

} // namespace zkrecipes
