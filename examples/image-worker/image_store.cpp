// image-store: holds the images of one network environment. Serves the
// files of a folder over HTTP (GET /img/<relative path>) and registers in
// the service registry under its network tag, so workers find it. See
// README.md.
//
//   image-store --zk 127.0.0.1:2181 --network net-a --dir ./images [--port 0] [--id s1] [--root /image-worker]
//
// Prints `listening 127.0.0.1:PORT` once it serves; SIGTERM or SIGINT stops it.
#include "../common/http_guard.hpp"
#include "../common/process.hpp"
#include "common.hpp"

#include <CLI/CLI.hpp>
#include <httplib.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace fs = std::filesystem;
using namespace image_worker;

namespace {

void reply(httplib::Response& res, int status, const std::string& code, const std::string& message) {
  res.status = status;
  res.set_content(json{{"code", code}, {"message", message}}.dump(-1, ' ', false, json::error_handler_t::replace),
                  "application/json");
}

/// Why a requested path may not be served (empty: fine). Paths are relative
/// to the folder and may never climb out of it.
std::string path_problem(const std::string& rel) {
  if (rel.empty()) return "empty path";
  if (rel.size() > 1024) return "path over 1024 bytes";
  if (rel.find('\0') != std::string::npos || rel.find('\\') != std::string::npos) return "NUL or backslash in the path";
  for (const auto& part : fs::path(rel))
    if (part == "..") return "'..' in the path";
  return {};
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"image-store: serves one network's images and registers under its tag (examples/image-worker/README.md)"};
  std::string zk_connect, root = "/image-worker", network, dir, id = "store-" + std::to_string(::getpid());
  int port = 0, session_ms = 10000;
  app.add_option("--zk", zk_connect, "ZooKeeper connect string")->required();
  app.add_option("--root", root, "the system's root znode");
  app.add_option("--network", network, "the network tag this store serves")->required();
  app.add_option("--dir", dir, "the folder of images")->required()->check(CLI::ExistingDirectory);
  app.add_option("--id", id, "this store's instance id");
  app.add_option("--port", port, "HTTP port on 127.0.0.1 (0: any free)")->check(CLI::Range(0, 65535));
  app.add_option("--session-timeout-ms", session_ms, "ZooKeeper session timeout")->check(CLI::Range(1000, 600000));
  CLI11_PARSE(app, argc, argv);
  const sigset_t stop_signals = examples::block_stop_signals(); // before any thread starts
  if (!valid_network_tag(network)) {
    std::fprintf(stderr, "image-store: --network must be 1 to 32 of a-z 0-9 -, got '%s'\n", network.c_str());
    return 2;
  }
  if (auto v = zkr::validate_name(id, "--id"); !v) {
    std::fprintf(stderr, "image-store: %s\n", v.error().message().c_str());
    return 2;
  }
  const fs::path base = fs::canonical(dir);

  auto zs = examples::connect_zk(zk_connect, std::chrono::milliseconds(session_ms));
  if (!zs) {
    std::fprintf(stderr, "image-store: cannot connect to ZooKeeper at %s: %s\n", zk_connect.c_str(),
                 zs.error().message().c_str());
    return 1;
  }
  zkr::session& zk = zs.value();
  const zk_paths paths{root};

  std::atomic<long> served{0};
  httplib::Server http;
  examples::guard_http(http, 4096, reply);
  http.Get(R"(/img/(.+))", [&](const httplib::Request& req, httplib::Response& res) {
    const std::string rel = req.matches[1];
    if (auto why = path_problem(rel); !why.empty()) return reply(res, 400, "bad_path", why + ": " + rel);
    const fs::path file = base / rel;
    std::error_code ec;
    // The folder's own files only: no path, and no symlink, leads out of it.
    const auto real = fs::weakly_canonical(file, ec);
    if (ec || !inside(base, real) || !fs::is_regular_file(real, ec))
      return reply(res, 404, "not_found", "no image " + rel + " in this store");
    if (const auto size = fs::file_size(real, ec); ec)
      return reply(res, 500, "read_failed", "cannot read " + rel + ": " + ec.message());
    else if (size > max_image_bytes)
      return reply(res, 413, "too_large", rel + " is over " + std::to_string(max_image_bytes) + " bytes");
    std::ifstream in(real, std::ios::binary);
    std::ostringstream bytes;
    bytes << in.rdbuf();
    if (!in) return reply(res, 500, "read_failed", "cannot read " + rel);
    const auto body = bytes.str();
    const auto kind = sniff(body);
    res.set_content(body, kind == image_kind::jpeg  ? "image/jpeg"
                          : kind == image_kind::png ? "image/png"
                                                    : "application/octet-stream");
    ++served;
  });
  http.Get("/health", [&](const httplib::Request&, httplib::Response& res) {
    res.set_content(json{{"network", network}, {"id", id}, {"served", served.load()}}.dump(), "application/json");
  });
  std::thread serving;
  const int bound = examples::start_http(http, port, serving);
  if (bound <= 0) {
    std::fprintf(stderr, "image-store: cannot listen on 127.0.0.1:%d\n", port);
    return 1;
  }

  // The tag's node stays after its stores are gone: the api tells an
  // unknown tag from one whose stores are down for now.
  zkr::registry_options ro;
  ro.base_path = paths.networks();
  zkr::service_instance me;
  me.service = network;
  me.id = id;
  me.address = "127.0.0.1";
  me.ports["http"] = static_cast<std::uint16_t>(bound);
  zkr::service_registration reg(zk, me, ro);
  if (auto r = reg.start(); !r) {
    std::fprintf(stderr, "image-store: cannot register: %s\n", r.error().message().c_str());
    http.stop();
    serving.join();
    return 1;
  }
  std::printf("listening 127.0.0.1:%d\n", bound);
  std::printf("registered %s as %s, serving %s\n", reg.node_path().c_str(), network.c_str(), base.c_str());
  std::fflush(stdout);
  const int sig = examples::wait_stop_signal(stop_signals);
  (void)reg.stop();
  http.stop();
  serving.join();
  std::printf("stopped on signal %d\n", sig);
  return 0;
}
