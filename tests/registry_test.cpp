// Service registry and discovery: registration life cycle, a killed process,
// session expiry (curator 685/702), selection strategies.
#include "support.hpp"

#include <zkrecipes/detail/process.hpp>
#include <zkrecipes/testing/expire.hpp>
#include <zkrecipes/testing/tcp_proxy.hpp>

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
                          std::string("zkrecipes-instance 1\nservice=a\nid=b\naddress=c\nport.http=70000\npayload=0\n"),
                          // What encode_instance refuses to write is refused on reading (fuzz_records' finding):
                          std::string("zkrecipes-instance 1\nservice=api\nid=\x8f\x1f\naddress=c\npayload=0\n"),
                          std::string("zkrecipes-instance 1\nservice=a/b\nid=x\naddress=c\npayload=0\n"),
                          std::string("zkrecipes-instance 1\nservice=a\nid=x\naddress=c\nport.=80\npayload=0\n"),
                          std::string("zkrecipes-instance 1\nservice=a\nid=x\naddress=c\0d\npayload=0\n", 58)}) {
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
  mailbox<std::string> events; // before d: d's listener writes to it until d is gone
  zkr::service_discovery d(d_s, "api", base(root));
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
  // Its line comes after its create, which discovery may see first.
  std::string out;
  CHECK(eventually([&] {
    out = zkr::detail::tail_of_file(log, 5);
    return out.find("timeout=") != std::string::npos;
  }));
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
  mailbox<std::string> updated;
  zkr::service_registration reg(s, make_instance("api", "e-1", 9000, "before"), base(root));
  REQUIRE(reg.start());
  REQUIRE(d.wait_until([](auto& l) { return l.size() == 1; }, 10s));
  auto id = s.id();
  // Runs right after the registration's own listener has sent the new
  // create (same dispatcher turn): the update lands while it is on its way.
  auto lid = s.add_listener([&](const zkr::session_event& e) {
    if (e.state != zkr::session_state::connected || e.session_id == id.id) return;
    reg.async_update_payload("after", [&](zkr::result<void> r) { updated.push(r ? "ok" : r.error().message()); });
  });
  REQUIRE(zkr::testing::expire_session(srv.connect_string(), id.id, id.password));
  CHECK(updated.pop(20s) == "ok");
  CHECK(d.wait_until(
      [&](auto& l) { return l.size() == 1 && l[0].session_id != id.id && l[0].payload == "after"; }, 20s));
  CHECK(reg.node_path().starts_with(root + "/api/_c_"));
  CHECK(d.instances()[0].session_id == s.session_id());
  s.remove_listener(lid);
}

TEST_CASE("registry: an instance unregistered during an expiry is not registered again (curator 702)") {
  auto& srv = shared_server();
  auto root = unique_root("registry-unreg");
  auto s = connect(srv.connect_string(), 2000ms);
  auto d_s = connect_shared();
  zkr::service_discovery d(d_s, "api", base(root));
  REQUIRE(d.start());
  mailbox<std::string> stopped;
  zkr::service_registration reg(s, make_instance("api", "u-1", 9001), base(root));
  REQUIRE(reg.start());
  REQUIRE(d.wait_until([](auto& l) { return l.size() == 1; }, 10s));
  auto id = s.id();
  // stop() while the re-registration's create is on its way.
  auto lid = s.add_listener([&](const zkr::session_event& e) {
    if (e.state != zkr::session_state::connected || e.session_id == id.id) return;
    reg.async_stop([&](zkr::result<void> r) { stopped.push(r ? "ok" : r.error().message()); });
  });
  REQUIRE(zkr::testing::expire_session(srv.connect_string(), id.id, id.password));
  CHECK(stopped.pop(20s) == "ok");
  // The create that landed after stop() is removed by itself.
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
  s.remove_listener(lid);
}

TEST_CASE("registry: stop() while disconnected removes the node once the connection is back (curator 1193)") {
  auto& srv = shared_server();
  auto proxy = zkr::testing::tcp_proxy::start(srv.port()).value();
  auto s = connect(proxy.connect_string(), 10000ms);
  auto root = unique_root("registry-stop-cut");
  zkr::service_registration reg(s, make_instance("api", "c-1", 9002), base(root));
  auto node = reg.start();
  REQUIRE(node);
  state_log log(s);
  proxy.refuse(true);
  proxy.cut();
  REQUIRE(log.wait_for(zkr::session_state::suspended));
  mailbox<std::string> stopped;
  reg.async_stop([&](zkr::result<void> r) { stopped.push(r ? "ok" : r.error().message()); });
  // The delete fails while the connection is down, past the session's own
  // retries; it is kept, not given up on (nor reported done).
  CHECK_FALSE(stopped.pop(4s));
  auto w = connect_shared();
  CHECK(w.exists(node.value()).value().has_value());
  proxy.refuse(false);
  REQUIRE(log.wait_for(zkr::session_state::reconnected));
  CHECK(stopped.pop(20s) == "ok");
  CHECK_FALSE(w.exists(node.value()).value().has_value());
}

TEST_CASE("registry: stop() ends once the session is lost when the server is gone for good") {
  // Found by the tutorial: push-server ignored SIGTERM after its server went,
  // because stop() kept retrying its delete on a session that never connects.
  // Declared first, so they outlive the sessions whose handlers push into them.
  mailbox<std::string> stopped;
  mailbox<bool> gone;
  auto& srv = shared_server();
  auto proxy = zkr::testing::tcp_proxy::start(srv.port()).value();
  auto s = connect(proxy.connect_string(), 2000ms);
  auto root = unique_root("registry-stop-gone");
  zkr::service_registration reg(s, make_instance("api", "g-1", 9003), base(root));
  auto node = reg.start();
  REQUIRE(node);
  state_log log(s);
  proxy.refuse(true); // the server never answers again
  proxy.cut();
  REQUIRE(log.wait_for(zkr::session_state::suspended));
  // The state when stop ends: never while merely suspended, when the session
  // may still be alive and hold the node (as in curator 1193).
  reg.async_stop([&](zkr::result<void> r) {
    stopped.push(std::string(r ? "ok" : r.error().message()) + " " + zkr::to_string(s.state()));
  });
  REQUIRE(log.wait_for(zkr::session_state::lost, 20s));
  // Done once the session is lost, though its successor never connects.
  auto how = stopped.pop(10s);
  REQUIRE(how);
  CHECK(*how != "ok suspended");
  CHECK(how->rfind("ok ", 0) == 0);
  CHECK(reg.node_path().empty());
  // The node went with its session: the server expires it (about 2 s).
  auto w = connect_shared();
  w.async_exists(node.value(), [&](zkr::result<zkr::watch_event>) { gone.push(true); },
                 [&](zkr::result<std::optional<zkr::stat>> r) {
                   if (!r || !r.value()) gone.push(true);
                 });
  CHECK(gone.pop(20s).has_value());
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

TEST_CASE("registry: start, stop and start again while the first create is in flight leave one node") {
  auto& srv = shared_server();
  auto proxy = zkr::testing::tcp_proxy::start(srv.port()).value();
  auto s = connect(proxy.connect_string(), 8000ms);
  auto root = unique_root("registry-race");
  REQUIRE(s.ensure_path(root + "/api"));
  zkr::service_registration reg(s, make_instance("api", "r-1", 9100), base(root));
  mailbox<std::string> results;
  auto note = [&](zkr::result<std::string> r) { results.push(r ? "ok" : r.error().message()); };
  proxy.stall_replies(); // the server applies the creates; their replies wait
  reg.async_start(note);
  REQUIRE(reg.stop()); // nothing registered yet: returns at once
  reg.async_start(note);
  proxy.pass();
  auto first = results.pop(), second = results.pop();
  REQUIRE(first);
  REQUIRE(second);
  CHECK(first->find("cancelled") != std::string::npos);
  CHECK(*second == "ok");
  CHECK(eventually([&] {
    auto c = s.children(root + "/api");
    return c && c.value().names.size() == 1;
  }));
  REQUIRE(s.sync(root + "/api"));
  auto c = s.children(root + "/api");
  REQUIRE(c);
  REQUIRE(c.value().names.size() == 1);
  CHECK(reg.node_path() == root + "/api/" + c.value().names[0]);
}
