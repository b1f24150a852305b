// The session under faults: cut and stalled connections, expiry, lost
// replies, a killed ensemble member. Real servers, a real TCP proxy.
#include "support.hpp"

#include <zkrecipes/testing/ensemble.hpp>
#include <zkrecipes/testing/expire.hpp>
#include <zkrecipes/testing/tcp_proxy.hpp>

using namespace zkt;
using namespace zkrecipes;


TEST_SUITE("session faults") {
  TEST_CASE("a cut connection gives suspended, then reconnected with the same session and its watches") {
    auto proxy = testing::tcp_proxy::start(shared_server().port());
    REQUIRE(proxy);
    auto s = connect(proxy.value().connect_string());
    auto other = connect_shared();
    state_log log(s);
    auto root = unique_root("cut");
    REQUIRE(s.create(root, "a"));
    mailbox<result<watch_event>> fired;
    REQUIRE(s.get(root, [&](result<watch_event> e) { fired.push(std::move(e)); }));
    auto sid = s.session_id();

    proxy.value().cut();
    auto suspended = log.wait_for(session_state::suspended);
    REQUIRE(suspended);
    CHECK(suspended->session_id == sid);
    auto back = log.wait_for(session_state::reconnected);
    REQUIRE(back);
    CHECK(back->session_id == sid);
    CHECK(s.session_id() == sid);

    // The watch set before the cut was re-registered and still fires once.
    REQUIRE(other.set(root, "b"));
    auto e = fired.pop();
    REQUIRE((e && e->has_value()));
    CHECK(e->value().type == event_type::changed);
  }

  TEST_CASE("expiry gives lost, then a working new session without the old ephemerals") {
    mailbox<std::string> order; // before the session: its last events may come at destruction
    auto s = connect_shared();
    auto observer = connect_shared();
    state_log log(s);
    s.add_listener([&](const session_event& e) {
      if (e.state == session_state::lost) order.push("lost");
    });
    auto root = unique_root("expiry");
    REQUIRE(s.create(root));
    REQUIRE(s.create(root + "/mine", "", {create_mode::ephemeral}));
    mailbox<result<watch_event>> watch;
    REQUIRE(s.exists(root + "/other", [&](result<watch_event> e) {
      order.push("watch");
      watch.push(std::move(e));
    }));
    auto old = s.id();

    REQUIRE(testing::expire_session(shared_server().connect_string(), old.id, old.password));
    auto lost = log.wait_for(session_state::lost);
    REQUIRE(lost);
    CHECK(lost->session_id == old.id);
    auto w = watch.pop();
    REQUIRE(w);
    REQUIRE(!w->has_value());
    CHECK(w->error() == zk_errc::session_expired);
    // Listeners hear `lost` before the watches the session owed fail.
    CHECK(order.pop() == "lost");
    CHECK(order.pop() == "watch");

    auto fresh = log.wait_for(session_state::connected);
    REQUIRE(fresh);
    CHECK(fresh->session_id != old.id);
    CHECK(s.session_id() == fresh->session_id);
    CHECK_FALSE(observer.exists(root + "/mine").value().has_value());
    auto again = s.create(root + "/mine", "", {create_mode::ephemeral});
    REQUIRE(again);
    CHECK(again.value().stat.ephemeral_owner == fresh->session_id);
  }

  TEST_CASE("a stall longer than the session timeout is declared lost, then a new session opens") {
    auto proxy = testing::tcp_proxy::start(shared_server().port());
    REQUIRE(proxy);
    auto s = connect(proxy.value().connect_string(), 1000ms);
    state_log log(s);
    auto sid = s.session_id();
    proxy.value().stall();
    REQUIRE(log.wait_for(session_state::suspended));
    // No word from the server can arrive: the session is lost by the clock.
    auto lost = log.wait_for(session_state::lost);
    REQUIRE(lost);
    CHECK(lost->session_id == sid);
    proxy.value().pass();
    auto fresh = log.wait_for(session_state::connected);
    REQUIRE(fresh);
    CHECK(fresh->session_id != sid);
    CHECK(s.sync("/"));
  }

  TEST_CASE("reads are retried after a connection loss") {
    auto s = connect_shared();
    auto path = unique_root("retry-read");
    REQUIRE(s.create(path, "data"));
    lost_replies fault({{"get", path, 2}});
    auto g = s.get(path);
    REQUIRE(g);
    CHECK(g.value().data == "data");
    CHECK(lost_replies::left("get") == 0);
  }

  TEST_CASE("a retried remove whose first attempt applied reports success") {
    auto s = connect_shared();
    auto path = unique_root("retry-remove");
    REQUIRE(s.create(path));
    lost_replies fault({{"remove", path, 1}});
    auto r = s.remove(path);
    CHECK_MESSAGE(r.has_value(), (r ? "" : r.error().message()));
    CHECK(lost_replies::left("remove") == 0);
    CHECK_FALSE(s.exists(path).value().has_value());
  }

  TEST_CASE("creates are not retried: a lost reply surfaces as connection loss") {
    auto s = connect_shared();
    auto path = unique_root("no-retry-create");
    lost_replies fault({{"create", path, 1}});
    auto r = s.create(path);
    REQUIRE(!r);
    CHECK(is_connection_loss(r.error()));
    // It did apply: that is why it must not be blindly retried.
    CHECK(s.exists(path).value().has_value());
  }

  TEST_CASE("retries give up after the policy's bound") {
    auto o = options_for(shared_server().connect_string());
    o.retry = retry_policy{2, 1ms, 2ms};
    auto s = session::connect(o, 20s);
    REQUIRE(s);
    auto path = unique_root("retry-bound");
    REQUIRE(s.value().create(path));
    lost_replies fault({{"get", path, 10}});
    auto g = s.value().get(path);
    REQUIRE(!g);
    CHECK(is_connection_loss(g.error()));
    CHECK(lost_replies::left("get") == 7);
  }

  TEST_CASE("the ensemble keeps serving a client when one member is killed") {
    auto ens = testing::ensemble::start();
    REQUIRE_MESSAGE(ens, (ens ? "" : ens.error().message()));
    auto& e = ens.value();
    auto s = connect(e.connect_string(), 4000ms);
    REQUIRE(s.create("/before", "1"));
    auto leader = e.leader();
    REQUIRE(leader);
    REQUIRE(e.kill(leader.value()));
    // A new leader is elected among the two left; the client fails over.
    auto after = e.leader();
    REQUIRE(after);
    CHECK(after.value() != leader.value());
    bool wrote = eventually([&] {
      auto r = s.create("/after", "2");
      return r.has_value() || r.error() == zk_errc::node_exists;
    }, 30s);
    CHECK(wrote);
    CHECK(s.get("/before").value().data == "1");
    REQUIRE(e.restart(leader.value()));
    CHECK(e.wait_serving());
  }
}
