// libFuzzer target: push-server's request handling (examples/push-template/
// catalogue.hpp), that is the POST /render body parser, parameter validation
// and rendering with per-kind escaping; and, for inputs starting with '#',
// a template as push-admin would accept it.
//
// Properties: nothing throws or crashes; a request that parses and renders
// gives, in the HTML kinds, a parameter value with no markup character left,
// and in the plain text kinds the value exactly as sent (no entities); a
// refused request has a 4xx status and a message.
#include "../examples/push-template/catalogue.hpp"

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace pt = push_template;

namespace {

const pt::catalogue& fixture() {
  static const pt::catalogue c = [] {
    pt::catalogue cat;
    pt::category promo;
    promo.name = "promo";
    promo.params = {{"user", true, std::nullopt}, {"offer", false, std::string("10% off")}};
    // Each template shows the user's value between two markers, so the
    // rendered value can be cut out and checked.
    for (auto k : pt::template_kinds) promo.templates[std::string(k)] = "[{{user}}]({{{offer}}})";
    pt::compile_templates(promo); // as a server's load does: requests render the parsed templates
    cat.categories.emplace("promo", promo);
    return cat;
  }();
  return c;
}

void check_rendered(const pt::render_request& req, const std::vector<pt::rendered>& out) {
  const std::string user = req.params.at("user");
  auto offer_it = req.params.find("offer");
  const std::string offer = offer_it == req.params.end() ? "10% off" : offer_it->second;
  for (const auto& r : out) {
    const bool html = pt::escaping_for(r.kind) == pt::escaping::html;
    const std::string want_user = html ? pt::html_escape(user) : user;
    const std::string want_offer = html ? pt::html_escape(offer) : offer; // {{{ }}} is escaped too
    if (r.text != "[" + want_user + "](" + want_offer + ")") std::abort();
    if (html)
      for (char c : want_user + want_offer)
        if (c == '<' || c == '>' || c == '"' || c == '\'') std::abort();
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  try {
    if (!in.empty() && in.front() == '#') {
      // A template: it either parses and renders, or names its error.
      if (in.size() > 4096) return 0;
      const std::string text(in.substr(1));
      if (auto e = pt::check_template(text)) {
        if (e->empty()) std::abort();
        return 0;
      }
      std::string out;
      (void)pt::render_kind(text, "landing_page", {{"user", "<&>"}, {"offer", "x"}}, out);
      return 0;
    }
    pt::render_request req;
    if (auto e = pt::parse_render_request(in, req)) {
      if (e->status < 400 || e->status > 499 || e->message.empty()) std::abort();
      return 0;
    }
    if (!pt::valid_name(req.category)) std::abort();
    for (const auto& t : req.targets)
      if (!pt::is_template_kind(t)) std::abort();
    for (const auto& [k, v] : req.params)
      if (pt::check_value(k, v)) std::abort(); // accepted values are clean
    std::vector<pt::rendered> out;
    if (auto e = pt::render(fixture(), req, out)) {
      if (e->status < 400 || e->status > 499 || e->message.empty()) std::abort();
      if (req.category == "promo" && req.params.count("user") == 0 && e->status != 400) std::abort();
      return 0;
    }
    if (req.category != "promo" || out.empty()) std::abort();
    check_rendered(req, out);
  } catch (...) {
    std::abort(); // nothing on this path may throw
  }
  return 0;
}
