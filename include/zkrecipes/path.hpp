// Path helpers: validation with a reason, join, parent, name and the
// sequence suffix of sequential nodes.
#pragma once

#include "zkrecipes/detail/config.hpp"
#include "zkrecipes/error.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace zkrecipes {

namespace detail {

/// Why a path is invalid, or nullptr when it is valid. Follows ZooKeeper's
/// PathUtils.validatePath, on UTF-8 bytes.
inline const char* path_problem(std::string_view p) noexcept {
  if (p.empty()) return "path is empty";
  if (p.front() != '/') return "path must start with '/'";
  if (p.size() > ZKRECIPES_MAX_PATH) return "path is too long";
  if (p.size() == 1) return nullptr;
  if (p.back() == '/') return "path must not end with '/'";
  std::size_t start = 1;
  while (start <= p.size()) {
    std::size_t end = p.find('/', start);
    if (end == std::string_view::npos) end = p.size();
    std::string_view part = p.substr(start, end - start);
    if (part.empty()) return "path has an empty node name ('//')";
    if (part == "." || part == "..") return "path has a relative node name ('.' or '..')";
    start = end + 1;
  }
  for (std::size_t i = 0; i < p.size(); ++i) {
    auto c = static_cast<unsigned char>(p[i]);
    if (c == 0) return "path contains a null character";
    if (c < 0x20 || c == 0x7f) return "path contains a control character";
    // U+0080..U+009F (C1 controls) are C2 80..C2 9F in UTF-8.
    if (c == 0xc2 && i + 1 < p.size()) {
      auto d = static_cast<unsigned char>(p[i + 1]);
      if (d >= 0x80 && d <= 0x9f) return "path contains a control character";
    }
    // U+D800..U+F8FF and U+FFF0..U+FFFF are refused by ZooKeeper.
    if (c == 0xed && i + 1 < p.size() && static_cast<unsigned char>(p[i + 1]) >= 0xa0)
      return "path contains a surrogate code point";
    if (c >= 0xee && c <= 0xef && i + 2 < p.size()) {
      auto d = static_cast<unsigned char>(p[i + 1]);
      if (c == 0xee || (c == 0xef && d < 0xa4))
        return "path contains a private-use code point";
      if (c == 0xef && d == 0xbf && static_cast<unsigned char>(p[i + 2]) >= 0xb0)
        return "path contains a non-character code point";
    }
  }
  return nullptr;
}

} // namespace detail

/// Checks a path against ZooKeeper's rules.
///
/// \returns success, or errc::invalid_path with the path and the reason, e.g.
///          "validate a/b (path must start with '/'): invalid path".
inline result<void> validate_path(std::string_view path, const char* operation = "validate") {
  if (const char* why = detail::path_problem(path))
    return make_error(errc::invalid_path, operation, std::string(path) + " (" + why + ")");
  return outcome::success();
}

/// Checks one node name (no '/').
inline result<void> validate_name(std::string_view name, const char* operation = "validate") {
  if (name.empty()) return make_error(errc::invalid_path, operation, "(node name is empty)");
  if (name.find('/') != std::string_view::npos)
    return make_error(errc::invalid_path, operation,
                      std::string(name) + " (node name must not contain '/')");
  std::string p = "/";
  p += name;
  if (const char* why = detail::path_problem(p))
    return make_error(errc::invalid_path, operation, std::string(name) + " (" + why + ")");
  return outcome::success();
}

/// parent + "/" + name, without doubling the root's slash.
inline std::string join(std::string_view parent, std::string_view name) {
  std::string out(parent);
  if (out.empty() || out.back() != '/') out += '/';
  out += name;
  return out;
}

/// The parent of a path ("/" for "/a", "/" for "/").
inline std::string_view parent(std::string_view path) noexcept {
  auto i = path.rfind('/');
  if (i == std::string_view::npos || i == 0) return path.empty() ? path : path.substr(0, 1);
  return path.substr(0, i);
}

/// The last node name of a path ("" for "/").
inline std::string_view name(std::string_view path) noexcept {
  auto i = path.rfind('/');
  return i == std::string_view::npos ? path : path.substr(i + 1);
}

/// The sequence number a sequential create appended to a name or path.
///
/// ZooKeeper appends the parent's signed 32-bit counter as "%010d". The
/// number is read as a number, never compared as text.
/// \returns nullopt if the name does not end in a sequence suffix.
/// \note Past 2,147,483,647 creates under one parent the counter wraps to
///       negative values ("-2147483648"), which this returns as negative, so
///       ordering by sequence breaks there; recreate the parent long before.
inline std::optional<std::int64_t> sequence_of(std::string_view name_or_path) noexcept {
  if (name_or_path.size() < 10) return std::nullopt;
  std::string_view tail = name_or_path.substr(name_or_path.size() - 10);
  bool negative = tail.front() == '-';
  std::int64_t v = 0;
  for (std::size_t i = negative ? 1 : 0; i < tail.size(); ++i) {
    if (tail[i] < '0' || tail[i] > '9') return std::nullopt;
    v = v * 10 + (tail[i] - '0');
  }
  if (negative) return -v;
  // "-2147483648" ends in 2147483648, which no positive counter reaches.
  if (v > 2147483647) return -v;
  return v;
}

} // namespace zkrecipes
