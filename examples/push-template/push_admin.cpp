// push-admin: the configuration server of push-template. Edits categories,
// parameters and templates in the database; after each commit it publishes a
// change notice (a new config version) through the config recipe, and every
// push-server reloads. See examples/push-template/README.md.
//
//   push-admin --db URL --zk CONNECT [--zk-root /push-template] COMMAND ...
//     init                                     create or migrate the schema
//     category add NAME [--description TEXT]
//     category describe NAME TEXT
//     category remove NAME
//     param set CATEGORY NAME (--required | --optional [--default VALUE])
//     param remove CATEGORY NAME
//     template set CATEGORY KIND (TEXT | --file PATH)
//     template remove CATEGORY KIND
//     list                                     the catalogue as JSON
//     publish                                  a change notice without an edit
#include "catalogue.hpp"
#include "common.hpp"
#include "db.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>

namespace pt = push_template;
namespace zkr = zkrecipes;
using json = nlohmann::json;
using namespace std::chrono_literals;

namespace {

/// Publishes a change notice: compare-and-set on the config's version, read
/// again and retried when another admin published first.
zkr::result<std::int32_t> publish_notice(zkr::session& zk, const std::string& path, const std::string& change) {
  zkr::config<std::string>::publisher pub(zk, path);
  const std::string value =
      json{{"change", change}, {"at_ms", pt::now_ms()}}.dump(-1, ' ', false, json::error_handler_t::replace);
  zkr::error last = zkr::make_error(zkr::errc::timed_out, "publish", path);
  for (int attempt = 0; attempt < 5; ++attempt) {
    std::int32_t expected = zkr::config_absent;
    if (auto cur = pub.read()) expected = cur.value().version;
    else if (cur.error() != zkr::zk_errc::no_node) return cur.error();
    auto v = pub.publish(value, expected);
    if (v) return v;
    last = v.error();
    if (v.error() != zkr::zk_errc::bad_version && v.error() != zkr::zk_errc::node_exists) return last;
  }
  return last;
}

std::string read_text_file(const std::string& path) {
  // An ifstream opens a directory without complaint and then reads nothing:
  // that would store an empty template. Refuse anything but a file.
  std::error_code ec;
  const auto st = std::filesystem::status(path, ec);
  if (ec) throw std::runtime_error("--file " + pt::quote_name(path) + ": " + ec.message());
  if (std::filesystem::is_directory(st)) throw std::runtime_error("--file " + pt::quote_name(path) + " is a directory");
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("--file " + pt::quote_name(path) + ": cannot open");
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) throw std::runtime_error("--file " + pt::quote_name(path) + ": read error");
  return text;
}

json catalogue_json(const pt::catalogue& c) {
  json out = json::object();
  for (const auto& [name, cat] : c.categories) {
    json params = json::array();
    for (const auto& p : cat.params)
      params.push_back({{"name", p.name}, {"required", p.required},
                        {"default", p.default_value ? json(*p.default_value) : json(nullptr)}});
    out[name] = {{"description", cat.description}, {"params", params}, {"templates", cat.templates}};
  }
  return out;
}

} // namespace

int main(int argc, char** argv) {
  std::string db_url, zk_connect, zk_root = "/push-template";
  CLI::App app{"push-admin: edit the push-template catalogue and notify the servers"};
  app.add_option("--db", db_url, "sqlite:<file> or mysql://user[:password]@host[:port]/database")->required();
  app.add_option("--zk", zk_connect, "ZooKeeper connect string (without it no change notice is sent)");
  app.add_option("--zk-root", zk_root, "root znode of this system");
  app.require_subcommand(1);

  std::string cat_name, description, param_name, kind, text, file;
  std::optional<std::string> default_value;
  bool required = false, optional = false;

  auto* init = app.add_subcommand("init", "create or migrate the schema");
  auto* list = app.add_subcommand("list", "print the catalogue as JSON");
  auto* publish = app.add_subcommand("publish", "publish a change notice without an edit");

  auto* category = app.add_subcommand("category", "add, describe or remove a category")->require_subcommand(1);
  auto* cat_add = category->add_subcommand("add", "add a category");
  cat_add->add_option("name", cat_name)->required();
  cat_add->add_option("--description", description);
  auto* cat_describe = category->add_subcommand("describe", "change a category's description");
  cat_describe->add_option("name", cat_name)->required();
  cat_describe->add_option("description", description)->required();
  auto* cat_remove = category->add_subcommand("remove", "remove a category with its parameters and templates");
  cat_remove->add_option("name", cat_name)->required();

  auto* param = app.add_subcommand("param", "set or remove a parameter")->require_subcommand(1);
  auto* param_set = param->add_subcommand("set", "add or change a parameter");
  param_set->add_option("category", cat_name)->required();
  param_set->add_option("name", param_name)->required();
  auto* req_flag = param_set->add_flag("--required", required, "a request must give it");
  auto* opt_flag = param_set->add_flag("--optional", optional, "a request may leave it out");
  req_flag->excludes(opt_flag);
  param_set->add_option("--default", default_value, "value of an optional parameter left out")->excludes(req_flag);
  auto* param_remove = param->add_subcommand("remove", "remove a parameter");
  param_remove->add_option("category", cat_name)->required();
  param_remove->add_option("name", param_name)->required();

  auto* tmpl = app.add_subcommand("template", "set or remove a template")->require_subcommand(1);
  auto* tmpl_set = tmpl->add_subcommand("set", "set the template of one kind (mustache)");
  tmpl_set->add_option("category", cat_name)->required();
  tmpl_set->add_option("kind", kind)->required();
  auto* text_opt = tmpl_set->add_option("text", text, "the template");
  tmpl_set->add_option("--file", file, "read the template from a file")->excludes(text_opt);
  auto* tmpl_remove = tmpl->add_subcommand("remove", "remove the template of one kind");
  tmpl_remove->add_option("category", cat_name)->required();
  tmpl_remove->add_option("kind", kind)->required();

  CLI11_PARSE(app, argc, argv);
  if (param_set->parsed() && !required && !optional) {
    std::fprintf(stderr, "push-admin: param set: say --required or --optional\n");
    return 2;
  }
  if (tmpl_set->parsed() && file.empty() && text_opt->count() == 0) {
    std::fprintf(stderr, "push-admin: template set: give the template text or --file PATH\n");
    return 2;
  }

  const pt::mysql_library mysql_lib; // before any thread: its init is not thread-safe
  std::string change; // what the notice says; empty: nothing was committed
  try {
    auto db = pt::open_database(db_url);
    const int was = pt::migrate(*db);
    if (was != pt::schema_version) std::printf("schema migrated from version %d to %d\n", was, pt::schema_version);
    if (init->parsed()) {
      change = "init";
    } else if (list->parsed()) {
      std::printf("%s\n", catalogue_json(pt::load_catalogue(*db)).dump(2, ' ', false, json::error_handler_t::replace).c_str());
      return 0;
    } else if (publish->parsed()) {
      change = "publish";
    } else if (cat_add->parsed()) {
      pt::add_category(*db, cat_name, description);
      change = "category add " + cat_name;
    } else if (cat_describe->parsed()) {
      pt::describe_category(*db, cat_name, description);
      change = "category describe " + cat_name;
    } else if (cat_remove->parsed()) {
      pt::remove_category(*db, cat_name);
      change = "category remove " + cat_name;
    } else if (param_set->parsed()) {
      pt::set_parameter(*db, cat_name, param_name, required, default_value);
      change = "param set " + cat_name + " " + param_name;
    } else if (param_remove->parsed()) {
      pt::remove_parameter(*db, cat_name, param_name);
      change = "param remove " + cat_name + " " + param_name;
    } else if (tmpl_set->parsed()) {
      pt::set_template(*db, cat_name, kind, file.empty() ? text : read_text_file(file));
      change = "template set " + cat_name + " " + kind;
    } else if (tmpl_remove->parsed()) {
      pt::remove_template(*db, cat_name, kind);
      change = "template remove " + cat_name + " " + kind;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "push-admin: %s\n", e.what());
    return 1;
  }
  std::printf("committed: %s\n", change.c_str());

  if (zk_connect.empty()) {
    std::fprintf(stderr, "push-admin: no --zk: the servers were not notified\n");
    return 0;
  }
  auto s = pt::connect_zk(zk_connect, 10s, 15s);
  if (!s) {
    std::fprintf(stderr, "push-admin: committed, but cannot notify: connect %s: %s (run `push-admin publish` later)\n",
                 zk_connect.c_str(), s.error().message().c_str());
    return 3;
  }
  auto v = publish_notice(s.value(), pt::zk_paths{zk_root}.config(), change);
  if (!v) {
    std::fprintf(stderr, "push-admin: committed, but the notice failed: %s (run `push-admin publish` later)\n",
                 v.error().message().c_str());
    return 3;
  }
  std::printf("published config version %d\n", int(v.value()));
  return 0;
}
