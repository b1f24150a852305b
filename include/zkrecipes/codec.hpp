// Payload codecs: how a recipe turns values into znode bytes and back.
#pragma once

#include "zkrecipes/error.hpp"

#include <concepts>
#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#if __has_include(<nlohmann/json.hpp>)
#include <nlohmann/json.hpp>
#define ZKRECIPES_HAS_JSON 1
#endif

namespace zkrecipes {

/// A codec: a type with `value_type`, `encode(const value_type&) -> result<std::string>`
/// and `decode(std::string_view) -> result<value_type>`. Decode must never
/// crash on bad input; it returns errc::decode_failed naming the problem.
template <class C>
concept payload_codec = requires(const typename C::value_type& v, std::string_view bytes) {
  typename C::value_type;
  { C::encode(v) } -> std::same_as<result<std::string>>;
  { C::decode(bytes) } -> std::same_as<result<typename C::value_type>>;
};

/// Bytes as text, unchanged.
struct string_codec {
  using value_type = std::string;
  static result<std::string> encode(const std::string& v) { return v; }
  static result<std::string> decode(std::string_view b) { return std::string(b); }
};

/// Raw bytes, unchanged.
struct bytes_codec {
  using value_type = std::vector<std::byte>;
  static result<std::string> encode(const value_type& v) {
    std::string out(v.size(), '\0');
    if (!v.empty()) std::memcpy(out.data(), v.data(), v.size());
    return out;
  }
  static result<value_type> decode(std::string_view b) {
    value_type out(b.size());
    if (!b.empty()) std::memcpy(out.data(), b.data(), b.size());
    return out;
  }
};

#ifdef ZKRECIPES_HAS_JSON
/// JSON through nlohmann-json: any T with to_json/from_json (or json itself).
template <class T> struct json_codec {
  using value_type = T;
  static result<std::string> encode(const T& v) {
    try {
      return nlohmann::json(v).dump();
    } catch (const std::exception& e) {
      return make_error(errc::encode_failed, "json encode", e.what());
    }
  }
  static result<T> decode(std::string_view b) {
    auto j = nlohmann::json::parse(b.begin(), b.end(), nullptr, false);
    if (j.is_discarded()) return make_error(errc::decode_failed, "json decode", "not valid JSON");
    try {
      return j.template get<T>();
    } catch (const std::exception& e) {
      return make_error(errc::decode_failed, "json decode", e.what());
    }
  }
};
#endif

/// The default codec for a value type: codec<T>::type.
template <class T> struct codec;
template <> struct codec<std::string> {
  using type = string_codec;
};
template <> struct codec<std::vector<std::byte>> {
  using type = bytes_codec;
};
#ifdef ZKRECIPES_HAS_JSON
template <> struct codec<nlohmann::json> {
  using type = json_codec<nlohmann::json>;
};
#endif
template <class T> using codec_t = typename codec<T>::type;

static_assert(payload_codec<string_codec>);
static_assert(payload_codec<bytes_codec>);

} // namespace zkrecipes
