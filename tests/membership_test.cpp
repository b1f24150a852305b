// Group membership against a real server.
#include "support.hpp"

#include <zkrecipes/group_membership.hpp>
#include <zkrecipes/testing/expire.hpp>

using namespace zkt;

namespace {
std::string event_text(const zkr::membership_event& e) {
  return std::string(zkr::to_string(e.change)) + ":" + e.member.id;
}
} // namespace

TEST_CASE("group_membership: joins and leaves arrive in order; a closed member disappears from every list") {
  auto& srv = shared_server();
  auto path = unique_root("group") + "/workers";
  auto watcher_s = connect_shared();
  mailbox<std::string> events; // outlives the view, whose listener pushes into it
  zkr::group_membership view(watcher_s, path);
  view.add_listener([&](const zkr::membership_event& e) { events.push(event_text(e)); });
  REQUIRE(view.watch());
  CHECK(view.members().empty());

  auto a = connect(srv.connect_string(), 2000ms);
  auto b = connect_shared();
  zkr::group_membership ga(a, path), gb(b, path);
  REQUIRE(ga.join("a", "10.0.0.1:80"));
  CHECK(events.pop() == "joined:a");
  REQUIRE(gb.join("b", "10.0.0.2:80"));
  CHECK(events.pop() == "joined:b");
  REQUIRE(gb.watch());
  auto ms = gb.members();
  REQUIRE(ms.size() == 2);
  CHECK(ms[0].id == "a");
  CHECK(ms[0].payload == "10.0.0.1:80");
  CHECK(ms[0].session_id == a.session_id());

  REQUIRE(a.close());
  CHECK(events.pop() == "left:a");
  REQUIRE(eventually([&] { return gb.members().size() == 1; }, 4000ms));
  REQUIRE(gb.leave());
  CHECK(events.pop() == "left:b");
  CHECK(view.members().empty());
  CHECK(gb.join("bad/id").error() == zkr::errc::invalid_path);

  // Removing the whole group: the view reports the member gone and never
  // makes the group's node again by itself.
  REQUIRE(gb.join("b", "again"));
  CHECK(events.pop() == "joined:b");
  REQUIRE(watcher_s.remove_recursive(path));
  CHECK(events.pop() == "left:b");
  CHECK_FALSE(watcher_s.exists(path).value().has_value());
}

TEST_CASE("group_membership: a member whose session expires joins again by itself") {
  auto& srv = shared_server();
  auto path = unique_root("group-expire") + "/workers";
  auto watcher_s = connect_shared();
  mailbox<std::string> events; // outlives the view, whose listener pushes into it
  zkr::group_membership view(watcher_s, path);
  view.add_listener([&](const zkr::membership_event& e) { events.push(event_text(e)); });
  REQUIRE(view.watch());
  auto a = connect(srv.connect_string(), 2000ms);
  zkr::group_membership ga(a, path);
  REQUIRE(ga.join("a", "payload"));
  CHECK(events.pop() == "joined:a");
  auto id = a.id();
  REQUIRE(zkr::testing::expire_session(srv.connect_string(), id.id, id.password));
  CHECK(events.pop(20s) == "left:a");
  CHECK(events.pop(20s) == "joined:a");
  auto ms = view.members();
  REQUIRE(ms.size() == 1);
  CHECK(ms[0].session_id == a.session_id());
  CHECK(ms[0].session_id != id.id);
}
