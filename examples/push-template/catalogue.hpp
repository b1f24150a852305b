// push-template: the message catalogue (categories, their parameters and
// templates), the render request's parser and validation, and rendering with
// kainjow::mustache. No I/O here: push-server, push-admin and the fuzz target
// share it.
#pragma once

#include <kainjow/mustache.hpp>
#include <nlohmann/json.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace push_template {

/// The template kinds of mission §2, by their wire names.
inline constexpr std::array<std::string_view, 6> template_kinds = {
    "message_centre", "notification_bar", "landing_page",
    "android_lock_screen", "ios_force_touch", "ios_small_picture_text"};

inline bool is_template_kind(std::string_view k) {
  for (auto t : template_kinds)
    if (t == k) return true;
  return false;
}

/// How parameter values are escaped for a kind. The message centre and the
/// landing page are shown as HTML; the others are plain text handed to a
/// push service, where an HTML entity would show as "&amp;".
enum class escaping { html, plain_text };

inline escaping escaping_for(std::string_view kind) {
  return kind == "message_centre" || kind == "landing_page" ? escaping::html : escaping::plain_text;
}

inline const char* to_string(escaping e) { return e == escaping::html ? "html" : "plain text"; }

/// Names of categories and parameters: 1-64 of [A-Za-z0-9_-]. No dot, which
/// mustache would read as a path into nested data.
inline bool valid_name(std::string_view n) {
  if (n.empty() || n.size() > 64) return false;
  for (char c : n) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

struct parameter {
  std::string name;
  bool required = false;
  std::optional<std::string> default_value; ///< only for optional parameters
};

struct category {
  std::string name;
  std::string description;
  std::vector<parameter> params;               ///< in declaration order
  std::map<std::string, std::string> templates; ///< kind -> mustache text
  /// kind -> the parsed template (compile_templates), or null when it does
  /// not parse. Shared by every request of this catalogue and never rendered
  /// in place: a render works on a copy (see render_kind).
  std::map<std::string, std::shared_ptr<const kainjow::mustache::mustache>> compiled;
};

/// Everything a server renders from: loaded whole from the database, swapped
/// whole on reload (readers keep the snapshot they took).
struct catalogue {
  std::map<std::string, category, std::less<>> categories;
  std::int64_t config_version = -1; ///< the change notice this load answered (-1: none yet)
};

/// An error meant for an HTTP client: a 4xx status and a message naming what
/// was wrong.
struct request_error {
  int status = 400;
  std::string message;
};

/// The body of POST /render:
/// `{"category": "promo", "targets": ["landing_page", ...], "params": {"user": "Ann"}}`.
/// `targets` may be left out or empty: every kind the category has a
/// template for.
struct render_request {
  std::string category;
  std::vector<std::string> targets;
  std::map<std::string, std::string> params;
};

/// Limits of a request, besides the body size the HTTP layer enforces.
inline constexpr std::size_t max_params = 64;
inline constexpr std::size_t max_value_bytes = 8 * 1024;

inline std::string quote_name(std::string_view s) {
  // Quote a name for an error message; JSON-escaped, so bytes from the
  // request cannot forge lines in a log.
  return nlohmann::json(std::string(s)).dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
}

/// Decodes one UTF-8 sequence at `i` (advancing it); nullopt for an invalid
/// one (truncated, overlong, a surrogate, beyond U+10FFFF).
inline std::optional<char32_t> decode_utf8(std::string_view s, std::size_t& i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) return ++i, char32_t(b0);
  std::size_t n;
  char32_t cp, min;
  if ((b0 & 0xE0) == 0xC0) n = 1, cp = b0 & 0x1F, min = 0x80;
  else if ((b0 & 0xF0) == 0xE0) n = 2, cp = b0 & 0x0F, min = 0x800;
  else if ((b0 & 0xF8) == 0xF0) n = 3, cp = b0 & 0x07, min = 0x10000;
  else return std::nullopt;
  if (s.size() - i <= n) return std::nullopt;
  for (std::size_t k = 1; k <= n; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) return std::nullopt;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return std::nullopt;
  i += n + 1;
  return cp;
}

/// Rejects a value that is not valid UTF-8, and control characters: C0
/// (U+0000-U+001F), DEL, C1 (U+0080-U+009F, e.g. NEL and CSI) and the line and
/// paragraph separators U+2028/U+2029. They have no place in a notification
/// and some (NUL, ESC, CSI, CR/LF, NEL, U+2028 in JavaScript) break the
/// channels downstream. Stripping would silently change the message;
/// refusing names the problem. The values come from JSON (already UTF-8)
/// or push-admin's command line (anything), so decode rather than trust.
inline std::optional<std::string> check_value(std::string_view name, std::string_view v) {
  if (v.size() > max_value_bytes)
    return "parameter " + quote_name(name) + " is longer than " + std::to_string(max_value_bytes) + " bytes";
  for (std::size_t i = 0; i < v.size();) {
    const std::size_t at = i;
    const auto cp = decode_utf8(v, i);
    if (!cp) return "parameter " + quote_name(name) + " is not valid UTF-8 (at byte " + std::to_string(at) + ")";
    const char* what = nullptr;
    if (*cp < 0x20 || (*cp >= 0x7f && *cp <= 0x9f)) what = "a control character";
    else if (*cp == 0x2028) what = "a line separator";
    else if (*cp == 0x2029) what = "a paragraph separator";
    if (what) {
      char hex[16];
      std::snprintf(hex, sizeof hex, "U+%04X", static_cast<unsigned>(*cp));
      return "parameter " + quote_name(name) + " contains " + what + " (" + hex + ")";
    }
  }
  return std::nullopt;
}

/// Parses a POST /render body. Never throws: malformed JSON, wrong types,
/// unknown target kinds or bad names give a 400 naming the problem.
inline std::optional<request_error> parse_render_request(std::string_view body, render_request& out) {
  nlohmann::json j = nlohmann::json::parse(body.begin(), body.end(), nullptr, false);
  if (j.is_discarded()) {
    // Parse again with exceptions only to get the position for the message.
    try {
      [[maybe_unused]] auto again = nlohmann::json::parse(body.begin(), body.end());
    } catch (const nlohmann::json::parse_error& e) {
      return request_error{400, std::string("malformed JSON: ") + e.what()};
    } catch (...) {
    }
    return request_error{400, "malformed JSON"};
  }
  if (!j.is_object()) return request_error{400, "the body must be a JSON object"};
  for (auto it = j.begin(); it != j.end(); ++it)
    if (it.key() != "category" && it.key() != "targets" && it.key() != "params")
      return request_error{400, "unknown field " + quote_name(it.key()) + " (expected category, targets, params)"};
  auto c = j.find("category");
  if (c == j.end()) return request_error{400, "missing field \"category\""};
  if (!c->is_string()) return request_error{400, "field \"category\" must be a string"};
  out.category = c->get<std::string>();
  if (!valid_name(out.category)) return request_error{400, "invalid category name " + quote_name(out.category)};
  out.targets.clear();
  if (auto t = j.find("targets"); t != j.end()) {
    if (!t->is_array()) return request_error{400, "field \"targets\" must be an array of template kinds"};
    for (const auto& k : *t) {
      if (!k.is_string()) return request_error{400, "field \"targets\" must hold strings"};
      auto kind = k.get<std::string>();
      if (!is_template_kind(kind)) return request_error{400, "unknown target kind " + quote_name(kind)};
      bool dup = false;
      for (const auto& seen : out.targets) dup = dup || seen == kind;
      if (!dup) out.targets.push_back(std::move(kind));
    }
  }
  out.params.clear();
  if (auto p = j.find("params"); p != j.end()) {
    if (!p->is_object()) return request_error{400, "field \"params\" must be an object"};
    if (p->size() > max_params)
      return request_error{400, "too many parameters (" + std::to_string(p->size()) + ", at most " +
                                    std::to_string(max_params) + ")"};
    for (auto it = p->begin(); it != p->end(); ++it) {
      std::string v;
      if (it->is_string()) v = it->get<std::string>();
      else if (it->is_number() || it->is_boolean()) v = it->dump();
      else
        return request_error{400, "parameter " + quote_name(it.key()) + " must be a string, number or boolean"};
      if (auto bad = check_value(it.key(), v)) return request_error{400, *bad};
      out.params.emplace(it.key(), std::move(v));
    }
  }
  return std::nullopt;
}

/// The values to render with: every declared parameter, the request's value
/// or its default. A missing required parameter or one the category does not
/// declare is refused (a typo would otherwise render silently as empty).
inline std::optional<request_error> resolve_parameters(const category& cat, const render_request& req,
                                                       std::map<std::string, std::string>& values) {
  values.clear();
  for (const auto& [name, v] : req.params) {
    bool declared = false;
    for (const auto& p : cat.params) declared = declared || p.name == name;
    if (!declared)
      return request_error{400, "unknown parameter " + quote_name(name) + " for category " + quote_name(cat.name)};
  }
  for (const auto& p : cat.params) {
    if (auto v = req.params.find(p.name); v != req.params.end()) values[p.name] = v->second;
    else if (p.required)
      return request_error{400, "missing required parameter " + quote_name(p.name) + " for category " + quote_name(cat.name)};
    else values[p.name] = p.default_value.value_or("");
  }
  return std::nullopt;
}

inline std::string html_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + s.size() / 8);
  for (char c : s) {
    switch (c) {
    case '&': out += "&amp;"; break;
    case '<': out += "&lt;"; break;
    case '>': out += "&gt;"; break;
    case '"': out += "&quot;"; break;
    case '\'': out += "&#39;"; break;
    default: out += c;
    }
  }
  return out;
}

/// A template's syntax error, or nullopt when it parses.
inline std::optional<std::string> check_template(const std::string& text) {
  kainjow::mustache::mustache m(text);
  if (!m.is_valid()) return m.error_message();
  return std::nullopt;
}

/// Parses every template once, when a catalogue is loaded, instead of once
/// per request.
inline void compile_templates(category& c) {
  c.compiled.clear();
  for (const auto& [kind, text] : c.templates) {
    auto m = std::make_shared<kainjow::mustache::mustache>(text);
    c.compiled[kind] = m->is_valid() ? std::move(m) : nullptr;
  }
}

/// Renders one kind from a parsed template. Values are escaped for the kind
/// *before* rendering and mustache's own escaping is switched off, so every
/// tag form ({{x}}, {{{x}}}, {{&x}}) gives the escaped value: a template
/// cannot opt a requester's text out of escaping.
///
/// Renders a copy: kainjow's render is not const (a failing partial records
/// its error in the object), so the shared parsed template must not be
/// rendered concurrently in place. Copying the parsed tree is cheaper than
/// parsing the text again.
inline std::optional<std::string> render_kind(const kainjow::mustache::mustache& compiled, std::string_view kind,
                                              const std::map<std::string, std::string>& values, std::string& out) {
  kainjow::mustache::mustache m(compiled);
  if (!m.is_valid()) return m.error_message();
  m.set_custom_escape([](const std::string& s) { return s; });
  kainjow::mustache::data d;
  const bool html = escaping_for(kind) == escaping::html;
  for (const auto& [k, v] : values) {
    // An empty value is false, so that {{#x}}...{{/x}} means "x was given";
    // kainjow would take an empty string as true.
    if (v.empty()) d.set(k, kainjow::mustache::data(false));
    else d.set(k, html ? html_escape(v) : v);
  }
  out = m.render(d);
  if (!m.is_valid()) return m.error_message();
  return std::nullopt;
}

/// The same from the template's text (parsed here).
inline std::optional<std::string> render_kind(const std::string& text, std::string_view kind,
                                              const std::map<std::string, std::string>& values,
                                              std::string& out) {
  return render_kind(kainjow::mustache::mustache(text), kind, values, out);
}

struct rendered {
  std::string kind;
  std::string text;
};

/// The whole request against a catalogue: 404 for an unknown category, 400
/// for the rest of what the request got wrong, 500 for a template that does
/// not render (the admin checks templates, so that means a bad database row).
inline std::optional<request_error> render(const catalogue& cat, const render_request& req,
                                           std::vector<rendered>& out) {
  out.clear();
  auto it = cat.categories.find(req.category);
  if (it == cat.categories.end()) return request_error{404, "unknown category " + quote_name(req.category)};
  const category& c = it->second;
  std::map<std::string, std::string> values;
  if (auto e = resolve_parameters(c, req, values)) return e;
  std::vector<std::string> kinds = req.targets;
  if (kinds.empty())
    for (auto k : template_kinds)
      if (c.templates.count(std::string(k))) kinds.emplace_back(k);
  if (kinds.empty()) return request_error{400, "category " + quote_name(c.name) + " has no templates"};
  for (const auto& k : kinds) {
    auto t = c.templates.find(k);
    if (t == c.templates.end())
      return request_error{400, "category " + quote_name(c.name) + " has no template for " + quote_name(k)};
    std::string text;
    std::optional<std::string> e;
    if (auto pc = c.compiled.find(k); pc != c.compiled.end())
      e = pc->second ? render_kind(*pc->second, k, values, text)
                     : std::optional<std::string>(check_template(t->second).value_or("does not parse"));
    else
      e = render_kind(t->second, k, values, text); // a catalogue built without compile_templates
    if (e)
      return request_error{500, "template " + quote_name(k) + " of " + quote_name(c.name) + " does not render: " + *e};
    out.push_back({k, std::move(text)});
  }
  return std::nullopt;
}

} // namespace push_template
