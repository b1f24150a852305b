// A transaction: create, set, remove and check operations applied together
// or not at all (ZooKeeper's multi).
#pragma once

#include "zkrecipes/node.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace zkrecipes {

/// The kind of one operation inside a multi.
enum class op_kind { create, set, remove, check };

inline const char* to_string(op_kind k) noexcept {
  switch (k) {
  case op_kind::create: return "create";
  case op_kind::set: return "set";
  case op_kind::remove: return "remove";
  case op_kind::check: return "check";
  }
  return "?";
}

/// Builds the list of operations of a transaction.
///
/// \code
/// multi_op tx;
/// tx.check("/cfg", 4).set("/cfg", "v5").create("/cfg/history/v-", "v5",
///     {create_mode::persistent_sequential});
/// auto r = s.multi(tx);  // all applied, or none
/// \endcode
/// \note A TTL create cannot be part of a multi (the C client does not
///       implement it); such a multi is refused before sending.
class multi_op {
public:
  struct entry {
    op_kind kind;
    std::string path;
    std::string data;
    create_options create;
    std::int32_t version = any_version;
  };

  multi_op& create(std::string_view path, std::string_view data = {}, create_options opts = {}) {
    ops_.push_back({op_kind::create, std::string(path), std::string(data), std::move(opts), any_version});
    return *this;
  }
  multi_op& set(std::string_view path, std::string_view data, std::int32_t version = any_version) {
    ops_.push_back({op_kind::set, std::string(path), std::string(data), {}, version});
    return *this;
  }
  multi_op& remove(std::string_view path, std::int32_t version = any_version) {
    ops_.push_back({op_kind::remove, std::string(path), {}, {}, version});
    return *this;
  }
  /// Fails the whole transaction unless path's data version equals version.
  multi_op& check(std::string_view path, std::int32_t version) {
    ops_.push_back({op_kind::check, std::string(path), {}, {}, version});
    return *this;
  }

  const std::vector<entry>& entries() const noexcept { return ops_; }
  std::size_t size() const noexcept { return ops_.size(); }
  bool empty() const noexcept { return ops_.empty(); }

private:
  std::vector<entry> ops_;
};

/// The outcome of one operation of a successful multi.
struct op_result {
  op_kind kind;
  std::string path;                  ///< for create: the created path (with sequence suffix)
  std::optional<zkrecipes::stat> stat; ///< for set: the new stat
};

} // namespace zkrecipes
