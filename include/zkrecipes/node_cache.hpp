// Node cache: a local mirror of one znode's data and stat, kept current by
// watches, with change listeners. Works for a node that does not exist yet.
//
// Layout and behaviour: docs/caches.md.
#pragma once

#include "zkrecipes/detail/cache_core.hpp"

namespace zkrecipes {

/// Mirrors one znode.
///
/// \code
/// zkrecipes::node_cache nc(s, "/app/flags");
/// nc.add_listener([](const zkrecipes::cache_event& e) { ... });
/// nc.start();                 // waits for the first read
/// if (auto n = nc.current()) use(n->data);
/// \endcode
/// \note Listeners run on the session's dispatcher thread, in order: added
///       when the node appears, updated on each data change seen, removed
///       when it goes. Fast successive writes may be seen as one update (the
///       last). The session must outlive the cache.
class node_cache : public detail::cache_base {
public:
  node_cache(session& s, std::string path) : cache_base(s, std::move(path), 0, true, "node cache") {}

  /// The node as last read, or nullopt if it does not exist (or before start()).
  std::optional<node> current() const { return find(c_->root); }
};

} // namespace zkrecipes
