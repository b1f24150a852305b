// Tree cache: a local mirror of a whole subtree (data and structure), kept
// current by watches, with change listeners.
//
// Layout and behaviour: docs/caches.md.
#pragma once

#include "zkrecipes/detail/cache_core.hpp"

#include <climits>

namespace zkrecipes {

/// Mirrors a znode and everything below it, up to `max_depth` levels below.
///
/// \code
/// zkrecipes::tree_cache tc(s, "/app");
/// tc.start();
/// auto n = tc.get("/app/db/primary");
/// auto names = tc.children_of("/app/db");
/// \endcode
/// \note Each mirrored node costs two watches (data, children) on the
///       server. Events for a removed subtree come deepest first. The session
///       must outlive the cache.
class tree_cache : public detail::cache_base {
public:
  tree_cache(session& s, std::string path, int max_depth = INT_MAX / 2)
      : cache_base(s, std::move(path), max_depth, true, "tree cache") {}

  /// A mirrored node by full path.
  std::optional<node> get(const std::string& full_path) const { return find(full_path); }
  /// The names of a mirrored node's children, sorted.
  std::vector<std::string> children_of(const std::string& full_path) const {
    std::vector<std::string> out;
    const std::string prefix = full_path == "/" ? "/" : full_path + "/";
    for (auto& [p, n] : snapshot())
      if (p.size() > prefix.size() && p.starts_with(prefix) && p.find('/', prefix.size()) == std::string::npos)
        out.emplace_back(p.substr(prefix.size()));
    return out;
  }
  /// Every mirrored node: full path → node.
  std::map<std::string, node> nodes() const { return snapshot(); }
};

} // namespace zkrecipes
