// im-client: the console IM client. See examples/im/README.md.
//
//   im-client --route 127.0.0.1:PORT [--route ...] (--user ID | --register NAME)
//             [--heartbeat-ms 10000] [--input PATH]
//
// Lines: `:q` quits, `:olu` lists online users, `userId;;text` is a private
// message, any other line goes to the group. End of input quits too.
#include "client.hpp"
#include "protocol.hpp"

#include <CLI/CLI.hpp>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>
#include <string>

namespace {

std::mutex out_m;
void say(const std::string& line) {
  std::lock_guard<std::mutex> l(out_m);
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"im-client: the console client of the IM system (examples/im/README.md)"};
  std::vector<std::string> routes;
  std::string user, register_name, input;
  int heartbeat_ms = 10000;
  app.add_option("--route", routes, "a route's HOST:PORT (several: failed over in turn)")->required();
  auto* u = app.add_option("--user", user, "log in as this user id (u and digits)");
  auto* r = app.add_option("--register", register_name, "register this name first, then log in as it");
  u->excludes(r);
  app.add_option("--heartbeat-ms", heartbeat_ms, "PING after this long without sending")->check(CLI::Range(50, 3600000));
  app.add_option("--input", input, "read commands from this file or FIFO instead of stdin");
  CLI11_PARSE(app, argc, argv);
  std::signal(SIGPIPE, SIG_IGN);
  im::quiet_protobuf();

  if (!register_name.empty()) {
    auto reg = im::register_user(routes, register_name);
    if (!reg) {
      say("error: " + reg.error());
      return 1;
    }
    user = reg.value().first;
    say("registered " + user + " (" + reg.value().second + ")");
  }
  if (user.empty()) {
    say("error: bad_request: give --user ID or --register NAME");
    return 2;
  }
  if (!im::valid_user_id(user)) {
    say("error: bad_request: --user " + user + " is not a user id (u and digits)");
    return 2;
  }

  im::client_options o;
  o.routes = routes;
  o.user_id = user;
  o.heartbeat = std::chrono::milliseconds(heartbeat_ms);
  im::client c(o);
  c.on_message = [](const im::message& m) {
    say(std::string(m.group ? "[group] " : "[private] ") + m.from_name + "(" + m.from + "): " + m.text);
  };
  c.on_status = [](const std::string& s) { say(s); };
  if (auto s = c.start(); !s) {
    say("error: " + s.error());
    return 1;
  }

  std::ifstream file;
  if (!input.empty()) {
    file.open(input);
    if (!file) {
      say("error: bad_request: cannot open --input " + input);
      return 2;
    }
  }
  std::istream& in = input.empty() ? std::cin : file;
  std::string line;
  while (std::getline(in, line)) {
    const auto cmd = im::parse_console(line);
    if (cmd.kind == im::console_command::quit) break;
    if (cmd.kind == im::console_command::empty) continue;
    if (cmd.kind == im::console_command::online) {
      auto users = c.online();
      if (!users) {
        say("error: " + users.error());
        continue;
      }
      std::string out = "online:";
      for (auto& [id, name] : users.value()) out += " " + id + "(" + name + ")";
      say(out);
      continue;
    }
    auto sent = cmd.kind == im::console_command::private_text ? c.send_private(cmd.to, cmd.text) : c.send_group(cmd.text);
    if (!sent) say("error: " + sent.error());
  }
  c.stop();
  return 0;
}
