// The ordered lock against a real server: exclusion, fencing, no herd,
// timeouts that leave nothing behind, in-doubt and lost holds.
#include "support.hpp"

#include <zkrecipes/mutex.hpp>
#include <zkrecipes/testing/expire.hpp>
#include <zkrecipes/testing/tcp_proxy.hpp>

#include <thread>

using namespace zkt;
namespace zkr = zkrecipes;

TEST_CASE("mutex: uncontended lock, fencing token, unlock removes the node") {
  auto s = connect_shared();
  auto root = unique_root("mutex-basic");
  zkr::mutex m(s, root + "/lock");
  CHECK_FALSE(m.holds());
  CHECK(m.unlock().error() == zkr::errc::not_held);
  REQUIRE(m.lock(5s));
  CHECK(m.holds());
  auto node = m.node_path();
  CHECK(node.find("/_c_") != std::string::npos);
  CHECK(node.find("-lock-") != std::string::npos);
  auto st = s.exists(node).value();
  REQUIRE(st);
  CHECK(m.fencing_token() == st->czxid);
  CHECK(st->ephemeral_owner == s.session_id());
  CHECK(m.lock(1s).error() == zkr::errc::would_deadlock); // not reentrant: the object holds it
  REQUIRE(m.unlock());
  CHECK_FALSE(m.holds());
  CHECK_FALSE(m.fencing_token());
  CHECK(eventually([&] { return !s.exists(node).value(); }));
  // The token of a later hold is larger.
  auto first = st->czxid;
  REQUIRE(m.lock(5s));
  CHECK(*m.fencing_token() > first);
  REQUIRE(m.unlock());
}

TEST_CASE("mutex: try_lock is one attempt and leaves no node when taken") {
  auto s1 = connect_shared();
  auto s2 = connect_shared();
  auto path = unique_root("mutex-try") + "/lock";
  zkr::mutex a(s1, path), b(s2, path);
  REQUIRE(a.try_lock().value());
  CHECK_FALSE(b.try_lock().value());
  CHECK(eventually([&] { return a.participants().value().size() == 1; }));
  REQUIRE(a.unlock());
  // The delete is not waited for: another session may get to the server first.
  REQUIRE(eventually([&] { return a.participants().value().empty(); }));
  CHECK(b.try_lock().value());
  REQUIRE(b.unlock());
}

TEST_CASE("mutex: a waiter that times out leaves no node behind") {
  auto s1 = connect_shared();
  auto s2 = connect_shared();
  auto path = unique_root("mutex-timeout") + "/lock";
  zkr::mutex a(s1, path), b(s2, path);
  REQUIRE(a.lock(5s));
  auto r = b.lock(300ms);
  REQUIRE_FALSE(r);
  CHECK(r.error() == zkr::errc::timed_out);
  CHECK_FALSE(b.holds());
  CHECK(eventually([&] { return a.participants().value().size() == 1; }));
  // A cancelled waiter leaves nothing either.
  std::stop_source stop;
  std::thread t([&] { std::this_thread::sleep_for(100ms); stop.request_stop(); });
  auto c = b.lock(stop.get_token(), 10s);
  t.join();
  REQUIRE_FALSE(c);
  CHECK(c.error() == zkr::errc::cancelled);
  CHECK(eventually([&] { return a.participants().value().size() == 1; }));
  // A stop requested before the call, and a zero timeout: one answer, at once.
  std::stop_source early;
  early.request_stop();
  CHECK(b.lock(early.get_token(), 10s).error() == zkr::errc::cancelled);
  CHECK(b.lock(0ms).error() == zkr::errc::timed_out);
  CHECK(eventually([&] { return a.participants().value().size() == 1; }));
  REQUIRE(a.unlock());
  REQUIRE(b.lock(5s)); // and the lock still works for it
  REQUIRE(b.unlock());
  CHECK(b.lock(0ms)); // free: a zero timeout takes it
  REQUIRE(b.unlock());
}

TEST_CASE("mutex: 8 sessions x 200 acquisitions never overlap and tokens only grow") {
  auto path = unique_root("mutex-excl") + "/lock";
  constexpr int sessions = 8, rounds = 200;
  std::mutex log_mx;
  std::vector<std::pair<int, std::int64_t>> log; // (+/- holder, token)
  std::atomic<int> inside{0}, overlaps{0}, failures{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < sessions; ++i) {
    threads.emplace_back([&, i] {
      auto sr = zkr::session::connect(options_for(shared_server().connect_string()), 20s);
      if (!sr) { ++failures; return; }
      auto s = std::move(sr).value();
      zkr::mutex m(s, path);
      for (int k = 0; k < rounds; ++k) {
        if (!m.lock(30s)) { ++failures; return; }
        auto tok = m.fencing_token().value_or(-1);
        if (inside.fetch_add(1) != 0) ++overlaps;
        { std::lock_guard lk(log_mx); log.push_back({i + 1, tok}); }
        { std::lock_guard lk(log_mx); log.push_back({-(i + 1), tok}); }
        inside.fetch_sub(1);
        if (!m.unlock()) { ++failures; return; }
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(failures == 0);
  CHECK(overlaps == 0);
  REQUIRE(log.size() == std::size_t(2 * sessions * rounds));
  std::int64_t last = 0;
  for (std::size_t i = 0; i < log.size(); i += 2) {
    CHECK(log[i].first == -log[i + 1].first); // enter then its own exit
    CHECK(log[i].second > last);              // tokens only grow
    last = log[i].second;
  }
}

TEST_CASE("mutex: one release wakes exactly one of 20 waiters") {
  auto path = unique_root("mutex-herd") + "/lock";
  auto s0 = connect_shared();
  zkr::mutex holder(s0, path);
  REQUIRE(holder.lock(5s));
  constexpr int n = 20;
  std::vector<zkr::session> ss;
  std::vector<std::unique_ptr<zkr::mutex>> ms;
  mailbox<int> got;
  for (int i = 0; i < n; ++i) ss.push_back(connect_shared());
  for (int i = 0; i < n; ++i) {
    ms.push_back(std::make_unique<zkr::mutex>(ss[i], path));
    ms[i]->async_lock(60s, [&got, i](zkr::result<void> r) { got.push(r ? i : -1 - i); });
    // Queue them one by one so the order is known.
    REQUIRE(eventually([&] { return holder.participants().value().size() == std::size_t(i + 2); }));
  }
  std::uint64_t before = 0;
  for (auto& m : ms) before += m->wakeups();
  CHECK(before == 0);
  REQUIRE(holder.unlock());
  auto first = got.pop(10s);
  REQUIRE(first);
  CHECK(*first == 0); // the next in line
  std::uint64_t after = 0;
  for (auto& m : ms) after += m->wakeups();
  CHECK(after == 1);
  CHECK(ms[0]->wakeups() == 1);
  // Each release hands on in order.
  for (int i = 0; i < n - 1; ++i) {
    REQUIRE(ms[i]->unlock());
    auto next = got.pop(10s);
    REQUIRE(next);
    CHECK(*next == i + 1);
  }
  REQUIRE(ms[n - 1]->unlock());
  std::uint64_t total = 0;
  for (auto& m : ms) total += m->wakeups();
  CHECK(total == std::uint64_t(n));
}

TEST_CASE("mutex: listener and hold token; a holder's expiry is told as lost and the next waiter gets in") {
  auto srv = zkr::testing::server::start().value();
  auto a = connect(srv.connect_string(), 2000ms);
  auto b = connect(srv.connect_string(), 2000ms);
  auto path = unique_root("mutex-expire") + "/lock";
  mailbox<zkr::hold_event> events;
  zkr::mutex ma(a, path), mb(b, path);
  auto lid = ma.add_listener([&](zkr::hold_event e) { events.push(e); });
  REQUIRE(ma.lock(5s));
  CHECK(events.pop() == zkr::hold_event::acquired);
  auto token = ma.hold_token();
  auto old = *ma.fencing_token();
  CHECK_FALSE(token.stop_requested());
  mailbox<bool> bgot;
  mb.async_lock(30s, [&](zkr::result<void> r) { bgot.push(bool(r)); });
  REQUIRE(eventually([&] { return mb.participants().value().size() == 2; }));
  auto id = a.id();
  REQUIRE(zkr::testing::expire_session(srv.connect_string(), id.id, id.password));
  std::optional<zkr::hold_event> e;
  do { e = events.pop(20s); } while (e && *e != zkr::hold_event::lost);
  REQUIRE(e);
  CHECK_FALSE(ma.holds());
  CHECK(token.stop_requested());
  CHECK(bgot.pop(20s) == true);
  CHECK(*mb.fencing_token() > old);
  // The object whose hold was lost can queue again on the new session.
  REQUIRE(a.wait_connected(20s));
  CHECK(ma.lock(300ms).error() == zkr::errc::timed_out);
  REQUIRE(mb.unlock());
  REQUIRE(ma.lock(10s));
  REQUIRE(ma.unlock());
  ma.remove_listener(lid);
}

TEST_CASE("mutex: a cut connection makes the hold in doubt, then restored within the session") {
  auto& srv = shared_server();
  auto proxy = zkr::testing::tcp_proxy::start(srv.port()).value();
  auto s = connect(proxy.connect_string(), 4000ms);
  auto path = unique_root("mutex-doubt") + "/lock";
  mailbox<zkr::hold_event> events;
  zkr::mutex m(s, path);
  m.add_listener([&](zkr::hold_event e) { events.push(e); });
  REQUIRE(m.lock(5s));
  CHECK(events.pop() == zkr::hold_event::acquired);
  proxy.refuse(true);
  proxy.cut();
  CHECK(events.pop() == zkr::hold_event::in_doubt);
  CHECK_FALSE(m.holds());
  CHECK(m.in_doubt());
  proxy.refuse(false);
  CHECK(events.pop() == zkr::hold_event::restored);
  CHECK(m.holds());
  REQUIRE(m.unlock());
  CHECK(events.pop() == zkr::hold_event::released);
}

TEST_CASE("mutex: a release sent while disconnected is kept and retried (CURATOR-678)") {
  auto& srv = shared_server();
  auto proxy = zkr::testing::tcp_proxy::start(srv.port()).value();
  auto s = connect(proxy.connect_string(), 6000ms);
  state_log states(s);
  auto path = unique_root("mutex-release") + "/lock";
  zkr::mutex m(s, path);
  REQUIRE(m.lock(5s));
  auto node = m.node_path();
  auto sid = s.session_id();
  proxy.refuse(true);
  proxy.cut();
  REQUIRE(states.wait_for(zkr::session_state::suspended));
  lost_replies count({{"remove", node, 0}}); // loses nothing, counts attempts
  REQUIRE(m.unlock()); // returns at once; the delete cannot reach the server yet
  CHECK_FALSE(m.holds());
  auto observer = connect_shared();
  CHECK(observer.exists(node).value()); // still there
  // Stay away until more deletes failed than the session's own retries send.
  auto budget = 1 + s.options().retry.max_retries;
  REQUIRE(eventually([&] { return lost_replies::seen("remove") > budget + 1; }, 15s));
  CHECK(observer.exists(node).value());
  proxy.refuse(false);
  REQUIRE(states.wait_for(zkr::session_state::reconnected));
  CHECK(eventually([&] { return !observer.exists(node).value(); }, 10s));
  CHECK(s.session_id() == sid); // gone because it was deleted, not because the session ended
  zkr::mutex other(observer, path);
  REQUIRE(other.lock(5s)); // nothing stuck in front of it
  REQUIRE(other.unlock());
}

TEST_CASE("mutex: a create whose reply was lost adopts its node instead of leaving an orphan") {
  auto s = connect_shared();
  auto path = unique_root("mutex-adopt") + "/lock";
  REQUIRE(s.ensure_path(path));
  zkr::mutex m(s, path);
  {
    lost_replies fault({{"create", path + "/", 1}});
    REQUIRE(m.lock(10s));
  }
  CHECK(m.participants().value().size() == 1);
  REQUIRE(m.unlock());
  CHECK(eventually([&] { return m.participants().value().empty(); }));
}

namespace {
// Requests the proxy forwarded, pings left out.
std::vector<std::int32_t> sent_ops(const zkr::testing::tcp_proxy& p) {
  std::vector<std::int32_t> out;
  for (auto& r : p.requests())
    if (r.type != zkr::testing::zk_op::ping) out.push_back(r.type);
  return out;
}
} // namespace

TEST_CASE("mutex: an uncontended acquire is one round trip; unlock waits for none (design §4)") {
  namespace op = zkr::testing::zk_op;
  auto& srv = shared_server();
  auto proxy = zkr::testing::tcp_proxy::start(srv.port()).value();
  auto s = connect(proxy.connect_string());
  auto path = unique_root("mutex-rt") + "/lock";
  REQUIRE(s.ensure_path(path));
  zkr::mutex m(s, path);
  mailbox<bool> got;

  // Hold every reply back: whatever reaches the server now was sent
  // without waiting for an answer.
  proxy.clear_records();
  proxy.stall_replies();
  m.async_lock(20s, [&](zkr::result<void> r) { got.push(bool(r)); });
  REQUIRE(eventually([&] { return sent_ops(proxy).size() >= 2; }, 10s));
  CHECK(sent_ops(proxy) == std::vector<std::int32_t>{op::create2, op::get_children2});
  CHECK(got.size() == 0);
  proxy.pass();
  REQUIRE(got.pop(10s) == true);
  CHECK(sent_ops(proxy).size() == 2); // nothing else was needed

  // unlock() returns before the delete's reply; the next acquire on the
  // same session goes out behind it, again without waiting.
  proxy.clear_records();
  proxy.stall_replies();
  REQUIRE(m.unlock());
  m.async_lock(20s, [&](zkr::result<void> r) { got.push(bool(r)); });
  REQUIRE(eventually([&] { return sent_ops(proxy).size() >= 3; }, 10s));
  CHECK(sent_ops(proxy) == std::vector<std::int32_t>{op::remove, op::create2, op::get_children2});
  CHECK(got.size() == 0);
  proxy.pass();
  REQUIRE(got.pop(10s) == true);
  REQUIRE(m.unlock());
}
