// Leader latch and leader selector against a real server: one leader at a
// time, failover, in-doubt on a cut, lost and rejoin on expiry.
#include "support.hpp"

#include <zkrecipes/leader_latch.hpp>
#include <zkrecipes/leader_selector.hpp>
#include <zkrecipes/testing/expire.hpp>
#include <zkrecipes/testing/tcp_proxy.hpp>

#include <thread>

using namespace zkt;
namespace zkr = zkrecipes;

namespace {
int leaders(const std::vector<std::unique_ptr<zkr::leader_latch>>& ls) {
  int n = 0;
  for (auto& l : ls) n += l && l->has_leadership();
  return n;
}
} // namespace

TEST_CASE("leader_latch: one leader; closing it elects exactly the next one") {
  auto path = unique_root("latch") + "/election";
  std::vector<zkr::session> ss;
  std::vector<std::unique_ptr<zkr::leader_latch>> ls;
  for (int i = 0; i < 3; ++i) ss.push_back(connect_shared());
  for (int i = 0; i < 3; ++i) {
    zkr::latch_options o;
    o.id = "candidate-" + std::to_string(i);
    o.payload = "host-" + std::to_string(i) + ":80";
    ls.push_back(std::make_unique<zkr::leader_latch>(ss[i], path, o));
    REQUIRE(ls[i]->start());
    // Join one by one so the queue order is known.
    REQUIRE(eventually([&] { return ls[0]->participants().value().size() == std::size_t(i + 1); }));
  }
  REQUIRE(ls[0]->await_leadership(10s));
  CHECK(leaders(ls) == 1);
  CHECK(ls[1]->await_leadership(100ms).error() == zkr::errc::timed_out);
  auto all = ls[2]->participants().value();
  REQUIRE(all.size() == 3);
  CHECK(all[0].id == "candidate-0");
  CHECK(all[0].payload == "host-0:80");
  CHECK(all[0].leader);
  CHECK_FALSE(all[1].leader);
  CHECK(ls[1]->leader().value().id == "candidate-0");
  CHECK(ls[0]->start().error() == zkr::errc::already_started);
  auto t0 = *ls[0]->fencing_token();
  auto gone = ls[0]->leadership_token();
  REQUIRE(ls[0]->close());
  CHECK(eventually([&] { return gone.stop_requested(); }, 5s)); // the term's token stops
  REQUIRE(ls[1]->await_leadership(10s));
  CHECK(*ls[1]->fencing_token() > t0);
  CHECK(ls[2]->await_leadership(100ms).error() == zkr::errc::timed_out);
  int now = 0;
  for (int i = 1; i < 3; ++i) now += ls[i]->has_leadership();
  CHECK(now == 1);
  // Closing a follower does not change the leader.
  REQUIRE(ls[2]->close());
  CHECK(ls[1]->has_leadership());
  CHECK(ls[2]->close().error() == zkr::errc::not_started);
}

TEST_CASE("leader_latch: a cut leader is in doubt at once; after expiry it rejoins as a follower") {
  auto srv = zkr::testing::server::start().value();
  auto proxy = zkr::testing::tcp_proxy::start(srv.port()).value();
  auto a = connect(proxy.connect_string(), 2000ms);
  auto b = connect(srv.connect_string(), 2000ms);
  auto path = unique_root("latch-cut") + "/election";
  mailbox<zkr::hold_event> events;
  zkr::leader_latch la(a, path, {"a", "", {}}), lb(b, path, {"b", "", {}});
  la.add_listener([&](zkr::hold_event e) { events.push(e); });
  REQUIRE(la.start());
  REQUIRE(la.await_leadership(10s));
  CHECK(events.pop() == zkr::hold_event::acquired);
  REQUIRE(lb.start());
  REQUIRE(eventually([&] { return lb.participants().value().size() == 2; }));
  auto old = *la.fencing_token();
  // Cut and keep it cut: in doubt first, then lost when the session expires.
  proxy.refuse(true);
  proxy.cut();
  CHECK(events.pop() == zkr::hold_event::in_doubt);
  CHECK_FALSE(la.has_leadership());
  CHECK(events.pop(20s) == zkr::hold_event::lost);
  REQUIRE(lb.await_leadership(20s)); // the server expired a, so b leads
  CHECK(*lb.fencing_token() > old);
  // Never two leaders acting at once: a does not believe it leads.
  CHECK_FALSE(la.has_leadership());
  proxy.refuse(false);
  REQUIRE(a.wait_connected(20s));
  // a rejoined by itself, behind b.
  REQUIRE(eventually([&] { return lb.participants().value().size() == 2; }));
  auto ps = lb.participants().value();
  CHECK(ps[0].id == "b");
  CHECK(ps[1].id == "a");
  CHECK_FALSE(la.has_leadership());
  REQUIRE(lb.close());
  REQUIRE(la.await_leadership(10s));
  CHECK(*la.fencing_token() > *std::max_element(&old, &old + 1));
}

TEST_CASE("leader_latch: a short blip gives leadership back within the session") {
  auto& srv = shared_server();
  auto proxy = zkr::testing::tcp_proxy::start(srv.port()).value();
  auto a = connect(proxy.connect_string(), 6000ms);
  auto path = unique_root("latch-blip") + "/election";
  mailbox<zkr::hold_event> events;
  zkr::leader_latch la(a, path);
  la.add_listener([&](zkr::hold_event e) { events.push(e); });
  REQUIRE(la.start());
  CHECK(events.pop() == zkr::hold_event::acquired);
  auto token = *la.fencing_token();
  proxy.cut();
  CHECK(events.pop() == zkr::hold_event::in_doubt);
  CHECK(events.pop() == zkr::hold_event::restored);
  CHECK(la.has_leadership());
  CHECK(*la.fencing_token() == token); // the same term
}

TEST_CASE("leader_latch: expiry of a follower re-queues it without a second leader (CURATOR-696)") {
  auto srv = zkr::testing::server::start().value();
  auto path = unique_root("latch-expire") + "/election";
  std::vector<zkr::session> ss;
  std::vector<std::unique_ptr<zkr::leader_latch>> ls;
  for (int i = 0; i < 3; ++i) ss.push_back(connect(srv.connect_string(), 2000ms));
  for (int i = 0; i < 3; ++i) {
    ls.push_back(std::make_unique<zkr::leader_latch>(ss[i], path));
    REQUIRE(ls[i]->start());
    REQUIRE(eventually([&] { return ls[0]->participants().value().size() == std::size_t(i + 1); }));
  }
  REQUIRE(ls[0]->await_leadership(10s));
  // Expire the leader and a follower together; the third leads, then the
  // others come back behind it.
  for (int i : {0, 1}) {
    auto id = ss[i].id();
    REQUIRE(zkr::testing::expire_session(srv.connect_string(), id.id, id.password));
  }
  REQUIRE(ls[2]->await_leadership(20s));
  REQUIRE(eventually([&] { return ls[2]->participants().value().size() == 3; }));
  CHECK(leaders(ls) == 1);
  CHECK(ls[2]->has_leadership());
}

TEST_CASE("leader_selector: one term at a time; a closed leader hands over; requeue") {
  auto path = unique_root("selector") + "/election";
  std::atomic<int> running{0}, overlaps{0};
  mailbox<std::pair<int, std::int64_t>> terms; // (who, fencing token)
  std::vector<zkr::session> ss;
  std::vector<std::unique_ptr<zkr::leader_selector>> sel;
  for (int i = 0; i < 3; ++i) ss.push_back(connect_shared());
  for (int i = 0; i < 3; ++i) {
    sel.push_back(std::make_unique<zkr::leader_selector>(
        ss[i], path,
        [&, i](std::stop_token stop, const zkr::leadership& info) {
          if (running.fetch_add(1) != 0) ++overlaps;
          terms.push({i, info.fencing_token});
          std::mutex m;
          std::condition_variable_any cv;
          std::unique_lock lk(m);
          cv.wait(lk, stop, [] { return false; }); // lead until told to stop
          running.fetch_sub(1);
        }));
    REQUIRE(sel[i]->start());
  }
  auto first = terms.pop(10s);
  REQUIRE(first);
  CHECK(sel[first->first]->is_leader());
  REQUIRE(sel[first->first]->close()); // stops its task, leaves
  auto second = terms.pop(10s);
  REQUIRE(second);
  CHECK(second->first != first->first);
  CHECK(second->second > first->second);
  REQUIRE(sel[second->first]->close());
  auto third = terms.pop(10s);
  REQUIRE(third);
  CHECK(third->first != first->first);
  CHECK(third->first != second->first);
  for (auto& s : sel) (void)s->close();
  CHECK(overlaps == 0);

  // A task that returns gives up leadership; with requeue the candidates take turns.
  auto path2 = unique_root("selector-requeue") + "/election";
  std::atomic<int> done{0};
  std::vector<std::unique_ptr<zkr::leader_selector>> turns;
  for (int i = 0; i < 2; ++i) {
    turns.push_back(std::make_unique<zkr::leader_selector>(
        ss[i], path2, [&](std::stop_token, const zkr::leadership&) { ++done; }));
    REQUIRE(turns[i]->start());
  }
  CHECK(eventually([&] { return turns[0]->terms() >= 2 && turns[1]->terms() >= 2; }));
  for (auto& t : turns) REQUIRE(t->close());
}

TEST_CASE("leader_selector: a cut stops the running term (CURATOR-460, CURATOR-465)") {
  auto& srv = shared_server();
  auto proxy = zkr::testing::tcp_proxy::start(srv.port()).value();
  auto a = connect(proxy.connect_string(), 6000ms);
  auto path = unique_root("selector-cut") + "/election";
  mailbox<int> log;
  zkr::selector_options o;
  o.requeue = true;
  zkr::leader_selector sel(
      a, path,
      [&](std::stop_token stop, const zkr::leadership& info) {
        log.push(static_cast<int>(info.term));
        std::mutex m;
        std::condition_variable_any cv;
        std::unique_lock lk(m);
        cv.wait(lk, stop, [] { return false; });
        log.push(-static_cast<int>(info.term));
      },
      o);
  REQUIRE(sel.start());
  CHECK(log.pop() == 1);
  proxy.cut();
  CHECK(log.pop() == -1); // interrupted at once on suspension
  CHECK(log.pop() == 2);  // and leads again after reconnecting
  REQUIRE(sel.close());
  CHECK(log.pop() == -2);
}
