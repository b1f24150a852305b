// image-worker: the body of image-api's fetch request,
//   {"url": "http://127.0.0.1:8081/img/1.jpg", "network": "net-a", "dataId": "photo-1"}
// parsed and validated. Pure and I/O-free: image-api and the fuzz target
// share it. Whether the network tag is KNOWN (has a store in the registry) is
// the server's check, not this one's.
#pragma once

#include "image.hpp" // valid_network_tag, valid_data_id

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace image_worker {

inline constexpr std::size_t max_request_body = 64 * 1024; ///< bytes of one fetch request body
inline constexpr std::size_t max_url_path = 1024;         ///< bytes of a URL's path (with any query)
inline constexpr std::size_t max_host = 253;

/// An http URL split into its parts: http://HOST:PORT/PATH. The port is
/// always spelt out; the path (with any query) starts with '/'.
struct http_url {
  std::string scheme = "http";
  std::string host;
  std::uint16_t port = 0;
  std::string path;
};

/// A valid fetch request. `url` is the text as sent; `where` its parts.
struct fetch_request {
  std::string url;
  http_url where;
  std::string network;
  std::string data_id;
};

/// A refusal meant for the HTTP client: status 400 (code "bad_request") or
/// 413 (code "too_large"), the field at fault ("url", "network", "dataId";
/// empty for the body as a whole) and a message naming it.
struct request_error {
  int status = 400;
  std::string code = "bad_request";
  std::string field;
  std::string message;
};

/// Either a fetch_request or a request_error.
class fetch_result {
public:
  fetch_result(fetch_request r) : v_(std::move(r)) {}
  fetch_result(request_error e) : v_(std::move(e)) {}
  bool has_value() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }
  const fetch_request& value() const { return std::get<0>(v_); }
  fetch_request& value() { return std::get<0>(v_); }
  const request_error& error() const { return std::get<1>(v_); }

private:
  std::variant<fetch_request, request_error> v_;
};

namespace detail {

inline bool host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

/// A dotted quad, four decimal numbers 0..255 without leading zeros.
inline bool ipv4(std::string_view h) {
  int parts = 0;
  std::size_t i = 0;
  while (true) {
    std::size_t start = i;
    unsigned v = 0;
    while (i < h.size() && h[i] >= '0' && h[i] <= '9' && i - start < 3) v = v * 10 + static_cast<unsigned>(h[i++] - '0');
    const std::size_t len = i - start;
    if (len == 0 || v > 255 || (len > 1 && h[start] == '0')) return false;
    ++parts;
    if (i == h.size()) return parts == 4;
    if (h[i] != '.' || parts == 4) return false;
    ++i;
  }
}

/// A DNS name: labels of 1..63 of [A-Za-z0-9-], not starting or ending with
/// '-', separated by single dots, at most 253 bytes; or a dotted quad.
/// Names made only of digits and dots must be a valid dotted quad.
inline bool valid_host(std::string_view h) {
  if (h.empty() || h.size() > max_host) return false;
  bool all_numeric = true;
  for (char c : h)
    if (!((c >= '0' && c <= '9') || c == '.')) all_numeric = false;
  if (all_numeric) return ipv4(h);
  std::size_t start = 0;
  while (true) {
    std::size_t dot = h.find('.', start);
    std::string_view label = h.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
    for (char c : label)
      if (!host_char(c)) return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

} // namespace detail

/// Splits and checks "http://HOST:PORT/PATH": the scheme exactly "http"
/// (lowercase), a host name or dotted quad (no user info, no IPv6 literal),
/// a decimal port 1..65535 (no leading zeros), a path starting with '/' of at most 1024 bytes,
/// all printable ASCII (no whitespace, control or non-ASCII bytes). On
/// refusal, *why says what is wrong (without naming the field).
inline std::optional<http_url> parse_http_url(std::string_view u, std::string* why = nullptr) {
  auto refuse = [&](const char* r) -> std::optional<http_url> {
    if (why) *why = r;
    return std::nullopt;
  };
  constexpr std::string_view prefix = "http://";
  if (u.substr(0, prefix.size()) != prefix) {
    const auto colon = u.find(':');
    if (colon != std::string_view::npos && colon > 0 && u.substr(colon, 3) == "://")
      return refuse("has a scheme other than http (only http:// is fetched)");
    return refuse("does not start with http://");
  }
  std::string_view rest = u.substr(prefix.size());
  const auto slash = rest.find('/');
  if (slash == std::string_view::npos) return refuse("has no path (it must be http://HOST:PORT/PATH)");
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = rest.substr(slash);
  if (authority.find('@') != std::string_view::npos) return refuse("has user information (user@host), which is not allowed");
  if (!authority.empty() && authority.front() == '[') return refuse("has an IPv6 literal host, which is not supported");
  const auto colon = authority.rfind(':');
  if (colon == std::string_view::npos) return refuse("has no port (it must be http://HOST:PORT/PATH)");
  std::string_view host = authority.substr(0, colon), port = authority.substr(colon + 1);
  if (!detail::valid_host(host)) return refuse("has an invalid host");
  if (port.empty() || port.size() > 5 || port.front() == '0') return refuse("has an invalid port (1 to 65535)");
  unsigned long p = 0;
  for (char c : port) {
    if (c < '0' || c > '9') return refuse("has an invalid port (1 to 65535)");
    p = p * 10 + static_cast<unsigned long>(c - '0');
  }
  if (p == 0 || p > 65535) return refuse("has an invalid port (1 to 65535)");
  if (path.size() > max_url_path) return refuse("has a path over 1024 bytes");
  for (char c : path) {
    const auto b = static_cast<unsigned char>(c);
    if (b <= 0x20 || b >= 0x7F) return refuse("has whitespace, a control character or a non-ASCII byte in its path");
  }
  http_url out;
  out.host = std::string(host);
  out.port = static_cast<std::uint16_t>(p);
  out.path = std::string(path);
  return out;
}

namespace detail {

inline request_error bad(std::string field, std::string message) {
  return request_error{400, "bad_request", std::move(field), std::move(message)};
}

/// The string member `key` of object j, or the error naming it.
inline std::variant<std::string, request_error> string_field(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end()) return bad(key, std::string("\"") + key + "\" is missing");
  if (!it->is_string()) return bad(key, std::string("\"") + key + "\" is not a string");
  return it->get<std::string>();
}

} // namespace detail

/// Parses a fetch request body. Refusals: over 64 KiB → 413 too_large;
/// not JSON, not an object → 400 bad_request (field empty); a missing,
/// non-string or invalid "url", "network" or "dataId" → 400 bad_request
/// naming the field. Other members are ignored.
inline fetch_result parse_fetch_request(std::string_view body) {
  if (body.size() > max_request_body)
    return request_error{413, "too_large", "",
                         "the body has " + std::to_string(body.size()) + " bytes, over the limit of " +
                             std::to_string(max_request_body)};
  const auto j = nlohmann::json::parse(body.begin(), body.end(), nullptr, false);
  if (j.is_discarded()) return detail::bad("", "the body is not valid JSON");
  if (!j.is_object()) return detail::bad("", "the body is not a JSON object");

  fetch_request r;
  auto url = detail::string_field(j, "url");
  if (url.index() == 1) return std::get<1>(std::move(url));
  r.url = std::get<0>(std::move(url));
  std::string why;
  auto where = parse_http_url(r.url, &why);
  if (!where) return detail::bad("url", "\"url\" " + why);
  r.where = std::move(*where);

  auto net = detail::string_field(j, "network");
  if (net.index() == 1) return std::get<1>(std::move(net));
  r.network = std::get<0>(std::move(net));
  if (!valid_network_tag(r.network))
    return detail::bad("network", "\"network\" must be 1 to 32 of the characters a-z 0-9 -");

  auto id = detail::string_field(j, "dataId");
  if (id.index() == 1) return std::get<1>(std::move(id));
  r.data_id = std::get<0>(std::move(id));
  if (!valid_data_id(r.data_id))
    return detail::bad("dataId", "\"dataId\" must be 1 to 64 of the characters A-Z a-z 0-9 _ . - and not start with '.'");
  return r;
}

} // namespace image_worker
