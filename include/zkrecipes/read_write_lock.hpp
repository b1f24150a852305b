// A cross-process read-write lock: readers share, a writer excludes
// everyone, and a waiting writer is not starved by readers arriving after
// it. Node names as Apache Curator's InterProcessReadWriteLock
// (`__READ__` / `__WRIT__`). See docs/read_write_lock.md.
#pragma once

#include "zkrecipes/mutex.hpp"

#include <string>
#include <string_view>

namespace zkrecipes {

namespace detail {
inline constexpr std::string_view read_marker = "__READ__";
inline constexpr std::string_view write_marker = "__WRIT__";

inline bool is_rw_node(std::string_view n) {
  return n.find(read_marker) != std::string_view::npos || n.find(write_marker) != std::string_view::npos;
}
inline bool is_write_node(std::string_view n) { return n.find(write_marker) != std::string_view::npos; }

/// A reader holds when no writer has a lower sequence number; it watches the
/// nearest such writer. Only lower numbers count: a later writer is not a
/// contender of ours (kazoo issue 649 made both wait forever).
inline rank_decision read_rank(const std::vector<contender_entry>& all, std::size_t me) {
  for (std::size_t i = me; i-- > 0;)
    if (is_write_node(all[i].name)) return {false, all[i].name};
  return {true, {}};
}
} // namespace detail

/// The shared half of a read_write_lock.
class read_lock : public detail::lock_base {
public:
  read_lock(session& s, std::string path, lock_options opts = {})
      : lock_base(s, std::move(path), std::string(detail::read_marker), std::move(opts), "read_lock.lock",
                  &detail::read_rank, &detail::is_rw_node) {}
};

/// The exclusive half of a read_write_lock: holds when first in line, readers included.
class write_lock : public detail::lock_base {
public:
  write_lock(session& s, std::string path, lock_options opts = {})
      : lock_base(s, std::move(path), std::string(detail::write_marker), std::move(opts), "write_lock.lock",
                  &detail::exclusive_rank, &detail::is_rw_node) {}
};

/// Both halves on one path. Each half is a separate contender: holding the
/// write half and then locking the read half waits (no downgrade).
class read_write_lock {
public:
  read_write_lock(session& s, std::string path, lock_options opts = {})
      : read_(s, path, opts), write_(s, path, opts) {}
  class read_lock& read_lock() { return read_; }
  class write_lock& write_lock() { return write_; }

private:
  class read_lock read_;
  class write_lock write_;
};

using read_guard = basic_lock_guard<read_lock>;
using write_guard = basic_lock_guard<write_lock>;

} // namespace zkrecipes
