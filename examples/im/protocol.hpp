// im: the wire and the route's request bodies, as pure functions (no I/O) so
// that the server, the client, the route, the tests and the fuzz target share
// one decoder. See examples/im/README.md.
#pragma once

#include "im.pb.h"

#include <google/protobuf/stubs/logging.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace im {

/// A value or a message naming what went wrong ("code: message").
template <class T> class outcome {
public:
  outcome(T v) : v_(std::move(v)) {}
  static outcome failure(std::string code, std::string message) {
    outcome o;
    o.v_ = err{std::move(code), std::move(message)};
    return o;
  }
  bool has_value() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }
  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  const std::string& code() const { return std::get<1>(v_).code; }
  const std::string& message() const { return std::get<1>(v_).message; }
  std::string error() const { return has_value() ? std::string() : code() + ": " + message(); }

private:
  struct err {
    std::string code, message;
  };
  outcome() = default;
  std::variant<T, err> v_;
};

struct none {};

inline constexpr std::size_t max_frame_bytes = 64 * 1024; ///< one frame's protobuf bytes
inline constexpr std::size_t max_body_bytes = 64 * 1024;  ///< one HTTP body at the route and server
inline constexpr std::size_t max_text_bytes = 8 * 1024;   ///< one chat message
inline constexpr std::size_t max_name_bytes = 32;

// ------------------------------------------------------------------ frames

/// Protobuf logs a refused parse (invalid UTF-8 in a string field) to stderr;
/// the decoder already reports it to the peer.
inline void quiet_protobuf() {
  google::protobuf::SetLogHandler([](google::protobuf::LogLevel level, const char*, int, const std::string& m) {
    if (level == google::protobuf::LOGLEVEL_FATAL)
      std::fprintf(stderr, "protobuf: %s\n", m.c_str());
  });
}

/// Length prefix (4 bytes, big-endian) and the serialized frame.
inline std::string encode_frame(const Frame& f) {
  std::string body;
  f.SerializeToString(&body);
  const auto n = static_cast<std::uint32_t>(body.size());
  std::string out;
  out.reserve(4 + body.size());
  out.push_back(static_cast<char>(n >> 24));
  out.push_back(static_cast<char>(n >> 16));
  out.push_back(static_cast<char>(n >> 8));
  out.push_back(static_cast<char>(n));
  out += body;
  return out;
}

/// Splits a byte stream into frames. Feed what arrives, then call next()
/// until it needs more. After an error the stream is unusable: the peer sent
/// something that is not a frame, and where the next one starts is unknown.
class frame_decoder {
public:
  struct need_more {};
  struct bad {
    std::string why;
  };
  using step = std::variant<need_more, Frame, bad>;

  void feed(std::string_view bytes) { buf_.append(bytes.data(), bytes.size()); }

  step next() {
    if (failed_) return bad{"the stream already failed"};
    if (buf_.size() - pos_ < 4) return compact(), need_more{};
    const auto* p = reinterpret_cast<const unsigned char*>(buf_.data() + pos_);
    const std::uint32_t n = (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
    if (n == 0) return fail("a frame of length 0");
    if (n > max_frame_bytes)
      return fail("a frame of " + std::to_string(n) + " bytes, over the limit of " + std::to_string(max_frame_bytes));
    if (buf_.size() - pos_ - 4 < n) return compact(), need_more{};
    Frame f;
    const bool parsed = f.ParseFromArray(buf_.data() + pos_ + 4, static_cast<int>(n));
    pos_ += 4 + n;
    if (!parsed) return fail("the " + std::to_string(n) + " bytes of a frame are not an im.Frame message");
    if (f.type() == Frame::UNKNOWN || !Frame::Type_IsValid(f.type()))
      return fail("a frame without a known type (" + std::to_string(static_cast<int>(f.type())) + ")");
    return f;
  }

  std::size_t buffered() const noexcept { return buf_.size() - pos_; }

private:
  bad fail(std::string why) {
    failed_ = true;
    return bad{std::move(why)};
  }
  void compact() {
    if (pos_ > 0) {
      buf_.erase(0, pos_);
      pos_ = 0;
    }
  }
  std::string buf_;
  std::size_t pos_ = 0;
  bool failed_ = false;
};

inline Frame error_frame(std::string code, std::string message, std::uint64_t request_id = 0) {
  Frame f;
  f.set_type(Frame::ERROR);
  f.set_request_id(request_id);
  f.set_code(std::move(code));
  f.set_message(std::move(message));
  return f;
}

// ------------------------------------------------------------------ values

/// User ids are handed out by the route: "u" and a decimal number.
inline bool valid_user_id(std::string_view id) {
  if (id.size() < 2 || id.size() > 21 || id[0] != 'u') return false;
  for (char c : id.substr(1))
    if (c < '0' || c > '9') return false;
  return true;
}

inline bool valid_name(std::string_view n) {
  if (n.empty() || n.size() > max_name_bytes) return false;
  for (char c : n)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
      return false;
  return true;
}

/// Why a chat text cannot be sent, or nothing. The JSON parser has already
/// refused invalid UTF-8; control characters are refused here because the
/// console client prints texts to a terminal.
inline std::optional<std::string> text_problem(std::string_view t) {
  if (t.empty()) return "\"text\" is empty";
  if (t.size() > max_text_bytes)
    return "\"text\" has " + std::to_string(t.size()) + " bytes, over the limit of " + std::to_string(max_text_bytes);
  for (unsigned char c : t)
    if ((c < 0x20 && c != '\t') || c == 0x7f) return "\"text\" holds a control character";
  return std::nullopt;
}

// ------------------------------------------------------------------ JSON read back

/// The string field `key` of a JSON object, or "": for JSON this program did
/// not write (a peer's reply, a znode), where a wrong type must not throw.
inline std::string str(const nlohmann::json& j, const char* key) {
  if (!j.is_object()) return {};
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

/// The integer field `key`, or `otherwise`.
inline std::int64_t num(const nlohmann::json& j, const char* key, std::int64_t otherwise = 0) {
  if (!j.is_object()) return otherwise;
  auto it = j.find(key);
  return it != j.end() && it->is_number_integer() ? it->get<std::int64_t>() : otherwise;
}

/// The object field `key`, or an empty object.
inline nlohmann::json obj(const nlohmann::json& j, const char* key) {
  if (!j.is_object()) return nlohmann::json::object();
  auto it = j.find(key);
  return it != j.end() && it->is_object() ? *it : nlohmann::json::object();
}

// ------------------------------------------------------------------ route bodies

struct register_req {
  std::string name;
};
struct login_req {
  std::string user_id;
};
struct auth {
  std::string user_id, token;
};
struct group_req {
  auth who;
  std::string text;
};
struct private_req {
  auth who;
  std::string to, text;
};
struct logout_req {
  auth who;
};

namespace detail {

inline outcome<nlohmann::json> object_of(std::string_view body) {
  if (body.size() > max_body_bytes)
    return outcome<nlohmann::json>::failure("too_large", "the body has " + std::to_string(body.size()) +
                                                             " bytes, over the limit of " + std::to_string(max_body_bytes));
  auto j = nlohmann::json::parse(body.begin(), body.end(), nullptr, false);
  if (j.is_discarded()) return outcome<nlohmann::json>::failure("bad_request", "the body is not valid JSON");
  if (!j.is_object()) return outcome<nlohmann::json>::failure("bad_request", "the body is not a JSON object");
  return j;
}

/// The string field `key`, or why not.
inline std::variant<std::string, std::string> field(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end()) return std::variant<std::string, std::string>(std::in_place_index<1>, std::string("\"") + key + "\" is missing");
  if (!it->is_string())
    return std::variant<std::string, std::string>(std::in_place_index<1>, std::string("\"") + key + "\" is not a string");
  return std::variant<std::string, std::string>(std::in_place_index<0>, it->get<std::string>());
}

template <class T> outcome<T> bad(std::string why) { return outcome<T>::failure("bad_request", std::move(why)); }

template <class T> outcome<T> user_field(const nlohmann::json& j, const char* key, std::string& out) {
  auto f = field(j, key);
  if (f.index() == 1) return bad<T>(std::get<1>(f));
  out = std::get<0>(f);
  if (!valid_user_id(out)) return bad<T>(std::string("\"") + key + "\" is not a user id (u and digits)");
  return outcome<T>(T{});
}

template <class T> outcome<T> auth_fields(const nlohmann::json& j, auth& a) {
  if (auto r = user_field<T>(j, "userId", a.user_id); !r) return r;
  auto t = field(j, "token");
  if (t.index() == 1) return bad<T>(std::get<1>(t));
  a.token = std::get<0>(t);
  if (a.token.empty() || a.token.size() > 64) return bad<T>("\"token\" is empty or too long");
  return outcome<T>(T{});
}

} // namespace detail

inline outcome<register_req> parse_register(std::string_view body) {
  auto j = detail::object_of(body);
  if (!j) return outcome<register_req>::failure(j.code(), j.message());
  auto f = detail::field(j.value(), "name");
  if (f.index() == 1) return detail::bad<register_req>(std::get<1>(f));
  if (!valid_name(std::get<0>(f)))
    return detail::bad<register_req>("\"name\" must be 1 to 32 of the characters A-Z a-z 0-9 _ . -");
  return register_req{std::get<0>(f)};
}

inline outcome<login_req> parse_login(std::string_view body) {
  auto j = detail::object_of(body);
  if (!j) return outcome<login_req>::failure(j.code(), j.message());
  login_req r;
  if (auto u = detail::user_field<login_req>(j.value(), "userId", r.user_id); !u) return u;
  return r;
}

inline outcome<group_req> parse_group(std::string_view body) {
  auto j = detail::object_of(body);
  if (!j) return outcome<group_req>::failure(j.code(), j.message());
  group_req r;
  if (auto a = detail::auth_fields<group_req>(j.value(), r.who); !a) return a;
  auto t = detail::field(j.value(), "text");
  if (t.index() == 1) return detail::bad<group_req>(std::get<1>(t));
  r.text = std::get<0>(t);
  if (auto p = text_problem(r.text)) return detail::bad<group_req>(*p);
  return r;
}

inline outcome<private_req> parse_private(std::string_view body) {
  auto j = detail::object_of(body);
  if (!j) return outcome<private_req>::failure(j.code(), j.message());
  private_req r;
  if (auto a = detail::auth_fields<private_req>(j.value(), r.who); !a) return a;
  if (auto u = detail::user_field<private_req>(j.value(), "to", r.to); !u) return u;
  auto t = detail::field(j.value(), "text");
  if (t.index() == 1) return detail::bad<private_req>(std::get<1>(t));
  r.text = std::get<0>(t);
  if (auto p = text_problem(r.text)) return detail::bad<private_req>(*p);
  return r;
}

inline outcome<logout_req> parse_logout(std::string_view body) {
  auto j = detail::object_of(body);
  if (!j) return outcome<logout_req>::failure(j.code(), j.message());
  logout_req r;
  if (auto a = detail::auth_fields<logout_req>(j.value(), r.who); !a) return a;
  return r;
}

/// A console line: `:q`, `:olu`, `userId;;text` or a group text.
struct console_command {
  enum kind_t { quit, online, private_text, group_text, empty } kind = empty;
  std::string to, text;
};

inline console_command parse_console(std::string_view line) {
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.remove_suffix(1);
  console_command c;
  if (line.empty()) return c;
  if (line == ":q") return c.kind = console_command::quit, c;
  if (line == ":olu") return c.kind = console_command::online, c;
  if (auto sep = line.find(";;"); sep != std::string_view::npos && valid_user_id(line.substr(0, sep))) {
    c.kind = console_command::private_text;
    c.to = std::string(line.substr(0, sep));
    c.text = std::string(line.substr(sep + 2));
    return c;
  }
  c.kind = console_command::group_text;
  c.text = std::string(line);
  return c;
}

} // namespace im
