// push-client: finds push-servers through service discovery, asks one
// (round robin) to render a message and prints it per target kind. A server
// that fails at the connection level (or with a 5xx) is skipped for a few
// seconds and the request goes to the next. See examples/push-template/README.md.
//
//   push-client --zk CONNECT [--zk-root /push-template] --category NAME
//               [--target KIND]... [--param NAME=VALUE]... [--repeat N] [--interval-ms MS]
//
// Exit status: 0 every request answered; 2 a request was refused (4xx: the
// server's message is printed); 1 no server could answer, a template of the
// category does not render (500 "template_error": no other server is tried),
// or a reply was malformed.
#include "catalogue.hpp"
#include "common.hpp"

#include <CLI/CLI.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace pt = push_template;
namespace zkr = zkrecipes;
using json = nlohmann::json;
using namespace std::chrono_literals;

namespace {

struct outcome {
  int code = 1;       // the exit status this request earns
  std::string server; // who answered
};

/// What is wrong with a 200 reply to POST /render, or nullopt when it has the
/// shape printed below: {"config_version": integer, "targets": [string...],
/// "messages": {target: string}} with a message for every target.
std::optional<std::string> check_reply(const json& j) {
  if (j.is_discarded()) return "not JSON";
  if (!j.is_object()) return "not a JSON object";
  auto v = j.find("config_version");
  if (v == j.end() || !v->is_number_integer()) return "\"config_version\" missing or not an integer";
  auto t = j.find("targets");
  if (t == j.end() || !t->is_array()) return "\"targets\" missing or not an array";
  auto m = j.find("messages");
  if (m == j.end() || !m->is_object()) return "\"messages\" missing or not an object";
  for (const auto& k : *t) {
    if (!k.is_string()) return "\"targets\" holds a non-string";
    auto msg = m->find(k.get<std::string>());
    if (msg == m->end() || !msg->is_string())
      return "no message (string) for target " + pt::quote_name(k.get<std::string>());
  }
  return std::nullopt;
}

class failover_client {
public:
  explicit failover_client(zkr::service_discovery& d) : d_(d) {}

  outcome send(const std::string& body) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    std::string last_error = "no push-server is registered";
    while (std::chrono::steady_clock::now() < deadline) {
      auto inst = pick();
      if (!inst) {
        // None listed (or every one failed just now): wait for one to appear.
        (void)d_.wait_until([](const auto& l) { return !l.empty(); }, 500ms);
        std::this_thread::sleep_for(50ms);
        continue;
      }
      const auto& i = *inst;
      httplib::Client cli(i.address, i.port("http"));
      cli.set_connection_timeout(1s);
      cli.set_read_timeout(5s);
      cli.set_write_timeout(5s);
      auto res = cli.Post("/render", body, "application/json");
      if (!res) {
        last_error = i.id + " at " + i.address + ":" + std::to_string(i.port("http")) + ": " +
                     httplib::to_string(res.error());
        std::fprintf(stderr, "push-client: %s; trying another server\n", last_error.c_str());
        suspect(i.id);
        continue;
      }
      json j = json::parse(res->body, nullptr, false);
      if (res->status >= 500 && j.is_object() && j.value("template_error", false)) {
        // The catalogue's fault, the same on every server: no use trying others.
        std::fprintf(stderr, "push-client: %s: HTTP %d: template error: %s\n", i.id.c_str(), res->status,
                     pt::quote_name(j.value("error", std::string("?"))).c_str());
        return {1, i.id};
      }
      if (res->status >= 500) {
        last_error = i.id + ": HTTP " + std::to_string(res->status) + " " + res->body;
        std::fprintf(stderr, "push-client: %s; trying another server\n", last_error.c_str());
        suspect(i.id);
        continue;
      }
      if (res->status != 200) {
        std::string msg = j.is_object() && j.contains("error") ? j["error"].dump() : res->body;
        std::fprintf(stderr, "push-client: refused by %s: HTTP %d: %s\n", i.id.c_str(), res->status, msg.c_str());
        return {2, i.id};
      }
      if (auto bad = check_reply(j)) {
        std::fprintf(stderr, "push-client: %s sent a malformed render result: %s\n", i.id.c_str(), bad->c_str());
        return {1, i.id};
      }
      std::printf("served-by %s config-version %s\n", i.id.c_str(), j["config_version"].dump().c_str());
      for (const auto& k : j["targets"]) {
        const std::string& kind = k.get_ref<const std::string&>();
        std::printf("%s: %s\n", kind.c_str(), j["messages"][kind].get_ref<const std::string&>().c_str());
      }
      std::fflush(stdout);
      return {0, i.id};
    }
    std::fprintf(stderr, "push-client: no server answered within 10 s; last error: %s\n", last_error.c_str());
    return {1, {}};
  }

private:
  std::optional<zkr::service_instance> pick() {
    const auto now = std::chrono::steady_clock::now();
    const auto all = d_.instances();
    if (all.empty()) return std::nullopt;
    // Round robin over the instances not suspected; a killed server stays
    // listed until its session expires, so remember who just failed.
    for (std::size_t n = 0; n < all.size(); ++n) {
      auto r = d_.pick(zkr::selection::round_robin);
      if (!r) return std::nullopt;
      auto it = suspects_.find(r.value().id);
      if (it == suspects_.end() || it->second < now) return r.value();
    }
    suspects_.clear(); // all suspected: try them again rather than give up
    return std::nullopt;
  }
  void suspect(const std::string& id) { suspects_[id] = std::chrono::steady_clock::now() + 3s; }

  zkr::service_discovery& d_;
  std::map<std::string, std::chrono::steady_clock::time_point> suspects_;
};

} // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::string zk_connect, zk_root = "/push-template", category;
  std::vector<std::string> targets, params;
  int repeat = 1, interval_ms = 0;
  CLI::App app{"push-client: render a push message through any live push-server"};
  app.add_option("--zk", zk_connect, "ZooKeeper connect string")->required();
  app.add_option("--zk-root", zk_root, "root znode of this system");
  app.add_option("--category", category, "message category")->required();
  app.add_option("--target", targets, "template kind (repeatable; none: every kind the category has)");
  app.add_option("--param", params, "NAME=VALUE (repeatable)");
  app.add_option("--repeat", repeat, "send the request N times")->check(CLI::Range(1, 1000000));
  app.add_option("--interval-ms", interval_ms, "pause between repeats")->check(CLI::Range(0, 600000));
  CLI11_PARSE(app, argc, argv);

  json body{{"category", category}, {"targets", targets}, {"params", json::object()}};
  for (const auto& p : params) {
    auto eq = p.find('=');
    if (eq == std::string::npos || eq == 0) {
      std::fprintf(stderr, "push-client: --param %s: expected NAME=VALUE\n", pt::quote_name(p).c_str());
      return 2;
    }
    body["params"][p.substr(0, eq)] = p.substr(eq + 1);
  }
  const std::string text = body.dump(-1, ' ', false, json::error_handler_t::replace);

  auto s = pt::connect_zk(zk_connect, 10s, 15s);
  if (!s) return std::fprintf(stderr, "push-client: connect %s: %s\n", zk_connect.c_str(), s.error().message().c_str()), 1;
  zkr::registry_options ro;
  ro.base_path = pt::zk_paths{zk_root}.services();
  zkr::service_discovery servers(s.value(), pt::service_name, ro);
  if (auto r = servers.start(10s); !r)
    return std::fprintf(stderr, "push-client: discovery: %s\n", r.error().message().c_str()), 1;

  failover_client client(servers);
  int worst = 0;
  for (int i = 0; i < repeat; ++i) {
    auto o = client.send(text);
    if (o.code != 0) worst = o.code;
    if (o.code == 2) break; // the request itself is wrong: repeating will not help
    if (interval_ms > 0 && i + 1 < repeat) std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
  }
  return worst;
}
