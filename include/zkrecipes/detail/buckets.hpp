// Bucket layout shared by the queues: items live in numbered bucket nodes
// (`b-0000000000`, `b-0000000001`...) so that no listing grows with the
// queue's depth (a flat folder's getChildren nears the 1 MB packet limit at
// about 50,000 items).
#pragma once

#include "zkrecipes/path.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace zkrecipes::detail {

inline constexpr std::string_view bucket_prefix = "b-";
inline constexpr std::string_view item_prefix = "i-";
inline constexpr std::string_view claim_prefix = "c-";

inline std::string bucket_name(std::uint64_t n) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "b-%010llu", static_cast<unsigned long long>(n));
  return buf;
}

/// The number of a bucket name, or nullopt for any other name.
inline std::optional<std::uint64_t> bucket_number(std::string_view name) noexcept {
  if (name.size() < 3 || name.substr(0, 2) != bucket_prefix) return std::nullopt;
  std::uint64_t v = 0;
  for (char ch : name.substr(2)) {
    if (ch < '0' || ch > '9' || v > (UINT64_MAX - 9) / 10) return std::nullopt;
    v = v * 10 + std::uint64_t(ch - '0');
  }
  return v;
}

/// Bucket numbers of a listing, ascending; other names are ignored.
inline std::vector<std::uint64_t> sorted_buckets(const std::vector<std::string>& names) {
  std::vector<std::uint64_t> out;
  for (auto& n : names)
    if (auto b = bucket_number(n)) out.push_back(*b);
  std::sort(out.begin(), out.end());
  return out;
}

struct item_entry {
  std::string name;
  std::int64_t seq;
};

/// Names starting with `prefix` and ending in a sequence suffix, by number.
inline std::vector<item_entry> sorted_sequential(const std::vector<std::string>& names, std::string_view prefix) {
  std::vector<item_entry> out;
  for (auto& n : names) {
    if (n.size() <= prefix.size() || std::string_view(n).substr(0, prefix.size()) != prefix) continue;
    if (auto s = sequence_of(n)) out.push_back({n, *s});
  }
  std::sort(out.begin(), out.end(), [](const item_entry& a, const item_entry& b) { return a.seq < b.seq; });
  return out;
}

/// The claim node name of an item ("i-0000000007" -> "c-0000000007").
inline std::string claim_name_of(std::string_view item_name) {
  return std::string(claim_prefix) + std::string(item_name.substr(item_prefix.size()));
}

} // namespace zkrecipes::detail
