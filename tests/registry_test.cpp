// Service registry and discovery: registration life cycle, a killed process,
// session expiry (curator 685/702), selection strategies.
#include "support.hpp"

#include <zkrecipes/detail/process.hpp>
#include <zkrecipes/testing/expire.hpp>

#include <filesystem>
#include <set>

using namespace zkt;

namespace {

zkr::service_instance make_instance(const std::string& service, const std::string& id, std::uint16_t port,
                                    std::string payload = {}) {
  zkr::service_instance in;
  in.service = service;
  in.id = id;
  in.address = "127.0.0.1";
  in.ports["http"] = port;
  in.payload = std::move(payload);
  return in;
}

zkr::registry_options base(const std::string& root) {
  zkr::registry_options o;
  o.base_path = root;
  return o;
}

std::set<std::string> ids(const std::vector<zkr::service_instance>& l) {
  std::set<std::string> out;
  for (auto& i : l) out.insert(i.id);
  return out;
}

} // namespace

TEST_CASE("registry: the instance record round-trips and bad records are refused clearly") {
  auto in = make_instance("api", "a-1", 8080, std::string("bin\0ary\nbytes", 13));
  in.ports["grpc"] = 9090;
  auto bytes = zkr::detail::encode_instance(in);
  REQUIRE(bytes);
  auto back = zkr::detail::decode_instance(bytes.value());
  REQUIRE(back);
  CHECK(back.value().service == "api");
  CHECK(back.value().id == "a-1");
  CHECK(back.value().port("http") == 8080);
  CHECK(back.value().port("grpc") == 9090);
  CHECK(back.value().port("none") == 0);
  CHECK(back.value().payload == in.payload);

  for (std::string bad : {std::string(""), std::string("garbage"), std::string("zkrecipes-instance 1\nid=x\n"),
                          bytes.value().substr(0, bytes.value().size() - 1),
                          std::string("zkrecipes-instance 1\nservice=a\nid=b\naddress=c\nport.http=70000\npayload=0\n")}) {
    auto r = zkr::detail::decode_instance(bad);
    REQUIRE_FALSE(r);
    CHECK(r.error() == zkr::errc::decode_failed);
  }
  auto nl = make_instance("api", "a", 1);
  nl.address = "host\nx";
  CHECK(zkr::detail::encode_instance(nl).error() == zkr::errc::invalid_argument);
  CHECK(zkr::detail::encode_instance(make_instance("a/b", "x", 1)).error() == zkr::errc::invalid_path);
}

TEST_CASE("registry: register, update, unregister are seen by discovery with events") {
  auto root = unique_root("registry");
  auto s = connect_shared();
  auto d_s = connect_shared();
  zkr::service_discovery d(d_s, "api", base(root));
  mailbox<std::string> events;
  d.add_listener([&](const zkr::instance_event& e) {
    events.push(std::string(zkr::to_string(e.change)) + ":" + e.instance.id + "=" + e.instance.payload);
  });
  REQUIRE(d.start());
  CHECK(d.instances().empty());
  auto none = d.pick(zkr::selection::round_robin);
  REQUIRE_FALSE(none);
  CHECK(none.error() == zkr::errc::unavailable);
  CHECK(none.error().message().find("api: no instance is up") != std::string::npos);
  CHECK(d.pick_by_key("k").error() == zkr::errc::unavailable);

  zkr::service_registration reg(s, make_instance("api", "a-1", 8080, "load=1"), base(root));
  auto node = reg.start();
  REQUIRE(node);
  CHECK(node.value().starts_with(root + "/api/_c_"));
  CHECK(reg.start().error() == zkr::errc::already_started);
  CHECK(events.pop() == "up:a-1=load=1");
  auto got = d.pick(zkr::selection::round_robin);
  REQUIRE(got);
  CHECK(got.value().port("http") == 8080);
  CHECK(got.value().session_id == s.session_id());
  REQUIRE(reg.update_payload("load=2"));
  CHECK(events.pop() == "updated:a-1=load=2");
  REQUIRE(reg.stop());
  CHECK(events.pop() == "down:a-1=load=2");
  CHECK(reg.node_path().empty());
  CHECK(reg.update_payload("x").error() == zkr::errc::not_started);
  REQUIRE(reg.start());
  CHECK(events.pop() == "up:a-1=load=2");

  // A node that is not an instance record is skipped, not fatal.
  REQUIRE(s.create(root + "/api/junk", "not a record"));
  REQUIRE(s.sync(root + "/api"));
  zkr::service_registration other(s, make_instance("api", "b-2", 8081), base(root));
  REQUIRE(other.start());
  CHECK(events.pop() == "up:b-2=");
  CHECK(ids(d.instances()) == std::set<std::string>{"a-1", "b-2"});

  zkr::service_discovery bad(d_s, "no/slash", base(root));
  CHECK(bad.start().error() == zkr::errc::invalid_path);
}

TEST_CASE("registry: an instance whose process is SIGKILLed leaves discovery within the session timeout") {
#ifndef ZKRECIPES_TEST_REGISTRANT
  MESSAGE("test_registrant not built");
#else
  auto& srv = shared_server();
  auto root = unique_root("registry-kill");
  auto d_s = connect_shared();
  zkr::service_discovery d(d_s, "worker", base(root));
  REQUIRE(d.start());
  auto dir = zkr::detail::temp_dir::create("zkrecipes-registrant-");
  REQUIRE(dir);
  auto log = dir.value().path() / "registrant.out";
  auto child = zkr::detail::child_process::spawn(
      {ZKRECIPES_TEST_REGISTRANT, srv.connect_string(), root, "worker", "w-1", "7001"}, dir.value().path(), log);
  REQUIRE(child);
  REQUIRE_MESSAGE(d.wait_until([](auto& l) { return l.size() == 1; }, 20s), zkr::detail::tail_of_file(log, 20));
  CHECK(d.instances()[0].id == "w-1");
  CHECK(d.instances()[0].payload.starts_with("pid="));
  std::string out = zkr::detail::tail_of_file(log, 5);
  auto t = out.find("timeout=");
  REQUIRE(t != std::string::npos);
  const auto timeout = std::chrono::milliseconds(std::stoll(out.substr(t + 8)));
  const auto killed = std::chrono::steady_clock::now();
  child.value().kill_and_reap(); // SIGKILL: no goodbye to ZooKeeper
  // The server expires the session after its timeout, checked once per tick
  // (at most the timeout again, by ZooKeeper's bucketed expiry).
  CHECK(d.wait_until([](auto& l) { return l.empty(); }, timeout * 2 + 2s));
  MESSAGE("left discovery after " << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - killed).count()
                                  << " ms (session timeout " << timeout.count() << " ms)");
#endif
}

TEST_CASE("registry: after its session expires an instance is back, with the payload given meanwhile (curator 685)") {
  auto& srv = shared_server();
  auto root = unique_root("registry-expire");
  auto s = connect(srv.connect_string(), 2000ms);
  auto d_s = connect_shared();
  zkr::service_discovery d(d_s, "api", base(root));
  REQUIRE(d.start());
  zkr::service_registration reg(s, make_instance("api", "e-1", 9000, "before"), base(root));
  REQUIRE(reg.start());
  REQUIRE(d.wait_until([](auto& l) { return l.size() == 1; }, 10s));
  auto id = s.id();
  REQUIRE(zkr::testing::expire_session(srv.connect_string(), id.id, id.password));
  (void)reg.update_payload("after"); // may land before or after the re-registration: either way it must stick
  CHECK(d.wait_until(
      [&](auto& l) { return l.size() == 1 && l[0].session_id != id.id && l[0].payload == "after"; }, 20s));
  CHECK(reg.node_path().starts_with(root + "/api/_c_"));
  CHECK(d.instances()[0].session_id == s.session_id());
}

TEST_CASE("registry: an instance unregistered during an expiry is not registered again (curator 702)") {
  auto& srv = shared_server();
  auto root = unique_root("registry-unreg");
  auto s = connect(srv.connect_string(), 2000ms);
  auto d_s = connect_shared();
  zkr::service_discovery d(d_s, "api", base(root));
  REQUIRE(d.start());
  zkr::service_registration reg(s, make_instance("api", "u-1", 9001), base(root));
  REQUIRE(reg.start());
  REQUIRE(d.wait_until([](auto& l) { return l.size() == 1; }, 10s));
  state_log log(s);
  auto id = s.id();
  REQUIRE(zkr::testing::expire_session(srv.connect_string(), id.id, id.password));
  auto stopped = reg.stop();
  REQUIRE_MESSAGE(stopped, (stopped ? "" : stopped.error().message()));
  REQUIRE(log.wait_for(zkr::session_state::connected));
  // A create already on its way when stop() ran is removed by itself.
  CHECK(eventually([&] {
    auto c = s.children(root + "/api");
    return c && c.value().names.empty();
  }));
  REQUIRE(s.sync(root + "/api"));
  auto c = s.children(root + "/api");
  REQUIRE(c);
  CHECK(c.value().names.empty());
  CHECK(reg.node_path().empty());
  CHECK(d.wait_until([](auto& l) { return l.empty(); }, 10s));
}

TEST_CASE("discovery: round robin visits instances evenly; random and sticky choose live ones") {
  auto root = unique_root("registry-rr");
  std::vector<zkr::session> sessions;
  sessions.reserve(4);
  std::vector<std::unique_ptr<zkr::service_registration>> regs;
  for (int i = 0; i < 4; ++i) {
    sessions.push_back(connect_shared());
    regs.push_back(std::make_unique<zkr::service_registration>(
        sessions.back(), make_instance("rr", "i-" + std::to_string(i), std::uint16_t(7000 + i)), base(root)));
    REQUIRE(regs.back()->start());
  }
  auto d_s = connect_shared();
  zkr::service_discovery d(d_s, "rr", base(root));
  REQUIRE(d.start());
  REQUIRE(d.instances().size() == 4);
  std::map<std::string, int> count;
  for (int i = 0; i < 400; ++i) ++count[d.pick(zkr::selection::round_robin).value().id];
  CHECK(count.size() == 4);
  for (auto& [id, n] : count) CHECK(n == 100);
  std::map<std::string, int> rnd;
  for (int i = 0; i < 400; ++i) ++rnd[d.pick(zkr::selection::random).value().id];
  CHECK(rnd.size() == 4); // each of 4 missed 400 times: (3/4)^400, never

  auto first = d.pick(zkr::selection::sticky).value().id;
  for (int i = 0; i < 20; ++i) CHECK(d.pick(zkr::selection::sticky).value().id == first);
  auto idx = std::stoi(first.substr(2));
  REQUIRE(regs[std::size_t(idx)]->stop());
  REQUIRE(d.wait_until([](auto& l) { return l.size() == 3; }, 10s));
  auto second = d.pick(zkr::selection::sticky).value().id;
  CHECK(second != first);
  for (int i = 0; i < 20; ++i) CHECK(d.pick(zkr::selection::sticky).value().id == second);
}

TEST_CASE("discovery: consistent hash moves only the keys of an instance that left") {
  auto root = unique_root("registry-hash");
  auto s = connect_shared();
  std::vector<std::unique_ptr<zkr::service_registration>> regs;
  for (int i = 0; i < 5; ++i) {
    regs.push_back(std::make_unique<zkr::service_registration>(
        s, make_instance("kv", "node-" + std::to_string(i), std::uint16_t(6000 + i)), base(root)));
    REQUIRE(regs.back()->start());
  }
  auto d_s = connect_shared();
  zkr::service_discovery d(d_s, "kv", base(root));
  REQUIRE(d.start());
  REQUIRE(d.instances().size() == 5);
  std::map<std::string, std::string> before;
  std::map<std::string, int> load;
  for (int k = 0; k < 2000; ++k) {
    auto key = "user-" + std::to_string(k);
    before[key] = d.pick_by_key(key).value().id;
    ++load[before[key]];
  }
  CHECK(load.size() == 5);
  for (auto& [id, n] : load) CHECK(n > 150); // 400 each on average: no instance starved
  // The same key always lands on the same instance, also in another view.
  auto d2_s = connect_shared();
  zkr::service_discovery d2(d2_s, "kv", base(root));
  REQUIRE(d2.start());
  for (auto& [key, id] : before) CHECK(d2.pick_by_key(key).value().id == id);

  REQUIRE(regs[2]->stop());
  REQUIRE(d.wait_until([](auto& l) { return l.size() == 4; }, 10s));
  int moved = 0;
  for (auto& [key, id] : before) {
    auto now = d.pick_by_key(key).value().id;
    if (id == "node-2") {
      CHECK(now != "node-2");
      ++moved;
    } else {
      CHECK(now == id); // keys of the others stay put
    }
  }
  CHECK(moved == load["node-2"]);
}
