// libFuzzer target: the IM system's untrusted input (examples/im/protocol.hpp),
// that is the frame decoder im-server runs on every client's bytes, and the
// request bodies and console lines im-route and im-client parse.
//
// The first byte chooses what the rest is (a digit keeps seeds readable):
//   '1' POST /register body   '2' /login   '3' /group   '4' /private
//   '5' /logout               '6' a console line
//   anything else: a byte stream for im::frame_decoder; the byte after the
//   selector gives the chunk sizes the stream is fed in (0: all at once;
//   otherwise its two nibbles + 1, alternately).
//
// Properties: nothing throws or crashes. Frames: the chunked decoder gives the
// same frames, then the same end (need_more, or bad with the same reason), as
// one fed the whole stream at once; each frame has a known type, re-encodes
// with im::encode_frame to at most 4 + max_frame_bytes bytes, and decodes from
// that again to the same frame, leaving nothing buffered; after bad, next()
// keeps returning bad, even fed more. Bodies: a refusal is bad_request (or
// too_large, exactly when the body is over max_body_bytes) with a message; an
// accepted body holds only valid values, and the value rebuilt as JSON parses
// to the same value; /private accepted implies /group and /logout accepted.
// Console: the command put back together is the line.
#include "protocol.hpp"

#include <google/protobuf/stubs/logging.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace {

void no_log(google::protobuf::LogLevel, const char*, int, const std::string&) {}

const bool quiet = [] {
  google::protobuf::SetLogHandler(&no_log);
  return true;
}();

void check(bool ok) {
  if (!ok) std::abort();
}

// ------------------------------------------------------------------ frames

struct decoded {
  std::vector<std::string> frames; // each frame re-encoded
  bool failed = false;
  std::string why;
};

void check_frame(const im::Frame& f) {
  check(f.type() != im::Frame::UNKNOWN && im::Frame::Type_IsValid(f.type()));
  const std::string wire = im::encode_frame(f);
  check(wire.size() > 4 && wire.size() <= 4 + im::max_frame_bytes);
  im::frame_decoder d;
  d.feed(wire);
  auto s = d.next();
  check(std::holds_alternative<im::Frame>(s));
  const im::Frame& again = std::get<im::Frame>(s);
  check(im::encode_frame(again) == wire);
  check(again.type() == f.type() && again.request_id() == f.request_id() && again.user_id() == f.user_id() &&
        again.token() == f.token() && again.msg_id() == f.msg_id() && again.from() == f.from() &&
        again.from_name() == f.from_name() && again.text() == f.text() && again.group() == f.group() &&
        again.code() == f.code() && again.message() == f.message() && again.server() == f.server());
  check(d.buffered() == 0);
  check(std::holds_alternative<im::frame_decoder::need_more>(d.next()));
}

/// Drains `d`: appends the frames, returns true once it has failed.
bool drain(im::frame_decoder& d, decoded& out) {
  for (;;) {
    auto s = d.next();
    if (std::holds_alternative<im::frame_decoder::need_more>(s)) return false;
    if (auto* b = std::get_if<im::frame_decoder::bad>(&s)) {
      check(!b->why.empty());
      out.failed = true;
      out.why = b->why;
      return true;
    }
    const auto& f = std::get<im::Frame>(s);
    check_frame(f);
    out.frames.push_back(im::encode_frame(f));
  }
}

void fuzz_frames(std::string_view in) {
  unsigned chunking = 0;
  if (!in.empty()) {
    chunking = static_cast<unsigned char>(in.front());
    in.remove_prefix(1);
  }

  decoded whole;
  std::size_t left = 0;
  {
    im::frame_decoder d;
    d.feed(in);
    drain(d, whole);
    left = d.buffered();
    check(left <= in.size());
  }

  decoded chunked;
  im::frame_decoder d;
  std::size_t at = 0;
  bool first = true;
  while (!chunked.failed) {
    std::size_t n = in.size() - at;
    if (chunking != 0) {
      n = std::min<std::size_t>(n, first ? (chunking & 0x0f) + 1 : (chunking >> 4) + 1);
      first = !first;
    }
    d.feed(in.substr(at, n));
    at += n;
    drain(d, chunked);
    if (at == in.size()) break;
  }

  check(chunked.frames == whole.frames);
  check(chunked.failed == whole.failed);
  if (whole.failed) {
    check(chunked.why == whole.why);
    // Unusable once failed, whatever comes after.
    for (int i = 0; i < 3; ++i) {
      d.feed(in.substr(0, 16));
      check(std::holds_alternative<im::frame_decoder::bad>(d.next()));
    }
  } else {
    // Everything fed and nothing wrong: what is left is the same incomplete
    // frame (a partial length, or fewer bytes than the length announces).
    check(d.buffered() == left);
    const auto tail = in.substr(in.size() - left);
    if (tail.size() >= 4) {
      const auto* p = reinterpret_cast<const unsigned char*>(tail.data());
      const std::uint32_t n =
          (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
      check(n >= 1 && n <= im::max_frame_bytes && tail.size() - 4 < n);
    }
    check(std::holds_alternative<im::frame_decoder::need_more>(d.next()));
  }
}

// ------------------------------------------------------------------ bodies

template <class T> bool refused_well(const im::outcome<T>& r, std::string_view body) {
  if (r) return false;
  check(!r.message().empty());
  check(r.error() == r.code() + ": " + r.message());
  if (body.size() > im::max_body_bytes)
    check(r.code() == "too_large");
  else
    check(r.code() == "bad_request");
  return true;
}

void check_auth(const im::auth& a) {
  check(im::valid_user_id(a.user_id));
  check(!a.token.empty() && a.token.size() <= 64);
}

void check_text(const std::string& t) { check(!im::text_problem(t).has_value()); }

void fuzz_register(std::string_view body) {
  auto r = im::parse_register(body);
  if (refused_well(r, body)) return;
  check(body.size() <= im::max_body_bytes);
  check(im::valid_name(r.value().name));
  auto again = im::parse_register(nlohmann::json{{"name", r.value().name}}.dump());
  check(again && again.value().name == r.value().name);
}

void fuzz_login(std::string_view body) {
  auto r = im::parse_login(body);
  if (refused_well(r, body)) return;
  check(im::valid_user_id(r.value().user_id));
  auto again = im::parse_login(nlohmann::json{{"userId", r.value().user_id}}.dump());
  check(again && again.value().user_id == r.value().user_id);
}

void fuzz_logout(std::string_view body) {
  auto r = im::parse_logout(body);
  if (refused_well(r, body)) return;
  check_auth(r.value().who);
  const auto& w = r.value().who;
  auto again = im::parse_logout(nlohmann::json{{"userId", w.user_id}, {"token", w.token}}.dump());
  check(again && again.value().who.user_id == w.user_id && again.value().who.token == w.token);
}

void fuzz_group(std::string_view body) {
  auto r = im::parse_group(body);
  if (refused_well(r, body)) return;
  const auto& g = r.value();
  check_auth(g.who);
  check_text(g.text);
  auto again =
      im::parse_group(nlohmann::json{{"userId", g.who.user_id}, {"token", g.who.token}, {"text", g.text}}.dump());
  check(again && again.value().who.user_id == g.who.user_id && again.value().who.token == g.who.token &&
        again.value().text == g.text);
  check(im::parse_logout(body).has_value()); // the same auth fields
}

void fuzz_private(std::string_view body) {
  auto r = im::parse_private(body);
  if (refused_well(r, body)) return;
  const auto& p = r.value();
  check_auth(p.who);
  check(im::valid_user_id(p.to));
  check_text(p.text);
  auto again = im::parse_private(
      nlohmann::json{{"userId", p.who.user_id}, {"token", p.who.token}, {"to", p.to}, {"text", p.text}}.dump());
  check(again && again.value().who.user_id == p.who.user_id && again.value().who.token == p.who.token &&
        again.value().to == p.to && again.value().text == p.text);
  auto g = im::parse_group(body); // a private body is a group body with a "to"
  check(g && g.value().text == p.text && g.value().who.user_id == p.who.user_id);
  check(im::parse_logout(body).has_value());
}

void fuzz_console(std::string_view line) {
  const auto c = im::parse_console(line);
  std::string_view bare = line;
  while (!bare.empty() && (bare.back() == '\r' || bare.back() == '\n')) bare.remove_suffix(1);
  using k = im::console_command;
  switch (c.kind) {
  case k::empty: check(bare.empty()); break;
  case k::quit: check(bare == ":q"); break;
  case k::online: check(bare == ":olu"); break;
  case k::private_text:
    check(im::valid_user_id(c.to));
    check(c.to + ";;" + c.text == bare);
    break;
  case k::group_text:
    check(!bare.empty() && bare != ":q" && bare != ":olu");
    check(c.text == bare);
    if (auto sep = bare.find(";;"); sep != std::string_view::npos) check(!im::valid_user_id(bare.substr(0, sep)));
    break;
  default: check(false);
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  (void)quiet;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  const char which = in.empty() ? '0' : in.front();
  try {
    switch (which) {
    case '1': fuzz_register(in.substr(1)); break;
    case '2': fuzz_login(in.substr(1)); break;
    case '3': fuzz_group(in.substr(1)); break;
    case '4': fuzz_private(in.substr(1)); break;
    case '5': fuzz_logout(in.substr(1)); break;
    case '6': fuzz_console(in.substr(1)); break;
    default: fuzz_frames(in.empty() ? in : in.substr(1)); break;
    }
  } catch (...) {
    std::abort(); // nothing on these paths may throw
  }
  return 0;
}
