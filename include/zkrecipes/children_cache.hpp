// Children cache: a local mirror of a folder's children with their data,
// kept current by watches, with change listeners.
//
// Layout and behaviour: docs/caches.md.
#pragma once

#include "zkrecipes/detail/cache_core.hpp"

namespace zkrecipes {

/// Mirrors the children of one znode (not the znode's own data, nor grandchildren).
///
/// \code
/// zkrecipes::children_cache cc(s, "/services/api");
/// cc.add_listener([](const zkrecipes::cache_event& e) { ... });
/// cc.start();
/// for (auto& [name, n] : cc.children()) ...
/// \endcode
/// \note A missing folder is an empty one; the cache starts mirroring when it
///       appears. A child deleted and re-created (even while disconnected)
///       is told as removed then added (compared by czxid). The session must
///       outlive the cache.
class children_cache : public detail::cache_base {
public:
  children_cache(session& s, std::string path) : cache_base(s, std::move(path), 1, false, "children cache") {}

  /// The children as last read: name → node.
  std::map<std::string, node> children() const {
    std::map<std::string, node> out;
    for (auto& [p, n] : snapshot()) out.emplace(std::string(name(p)), n);
    return out;
  }
  /// One child by name, if present.
  std::optional<node> child(std::string_view child_name) const { return find(join(c_->root, child_name)); }
};

} // namespace zkrecipes
