// Read-write lock, semaphore and single-node lock against a real server.
#include "support.hpp"

#include <zkrecipes/read_write_lock.hpp>
#include <zkrecipes/semaphore.hpp>
#include <zkrecipes/single_node_lock.hpp>
#include <zkrecipes/testing/expire.hpp>

#include <thread>

using namespace zkt;
namespace zkr = zkrecipes;

TEST_CASE("read_write_lock: readers share, a writer is alone") {
  auto path = unique_root("rw-share") + "/rw";
  auto s1 = connect_shared();
  auto s2 = connect_shared();
  auto s3 = connect_shared();
  zkr::read_write_lock a(s1, path), b(s2, path), c(s3, path);
  REQUIRE(a.read_lock().lock(5s));
  REQUIRE(b.read_lock().lock(5s)); // both read at once
  CHECK(a.read_lock().holds());
  CHECK(b.read_lock().holds());
  CHECK_FALSE(c.write_lock().try_lock().value()); // readers hold
  REQUIRE(a.read_lock().unlock());
  REQUIRE(b.read_lock().unlock());
  REQUIRE(c.write_lock().lock(5s));
  CHECK_FALSE(a.read_lock().try_lock().value());  // the writer is alone
  CHECK_FALSE(b.write_lock().try_lock().value());
  REQUIRE(c.write_lock().unlock());
  // unlock() does not wait for its delete, and another session's request
  // may reach the server first: wait for the node to go.
  REQUIRE(eventually([&] { return a.read_lock().participants().value().empty(); }));
  CHECK(a.read_lock().try_lock().value());
  REQUIRE(a.read_lock().unlock());
}

TEST_CASE("read_write_lock: a waiting writer gets in while readers keep arriving") {
  auto path = unique_root("rw-starve") + "/rw";
  auto s1 = connect_shared();
  auto s2 = connect_shared();
  zkr::read_write_lock first(s1, path), writer(s2, path);
  REQUIRE(first.read_lock().lock(5s));
  mailbox<bool> wgot;
  writer.write_lock().async_lock(30s, [&](zkr::result<void> r) { wgot.push(bool(r)); });
  REQUIRE(eventually([&] { return first.read_lock().participants().value().size() == 2; }));
  // A stream of readers arriving after the writer: none gets past it.
  std::vector<zkr::session> readers;
  for (int i = 0; i < 10; ++i) {
    readers.push_back(connect_shared());
    zkr::read_lock r(readers.back(), path);
    CHECK_FALSE(r.try_lock().value());
  }
  CHECK(wgot.size() == 0);
  REQUIRE(first.read_lock().unlock());
  CHECK(wgot.pop(10s) == true);
  CHECK(writer.write_lock().holds());
  REQUIRE(writer.write_lock().unlock());
}

TEST_CASE("read_write_lock: a reader ignores writers queued after it (kazoo 649)") {
  auto path = unique_root("rw-later") + "/rw";
  auto s1 = connect_shared();
  auto s2 = connect_shared();
  auto s3 = connect_shared();
  zkr::write_lock w1(s1, path), w2(s3, path);
  zkr::read_lock r(s2, path);
  REQUIRE(w1.lock(5s));
  mailbox<int> got;
  r.async_lock(30s, [&](zkr::result<void> x) { got.push(x ? 1 : -1); });
  REQUIRE(eventually([&] { return r.participants().value().size() == 2; }));
  w2.async_lock(30s, [&](zkr::result<void> x) { got.push(x ? 2 : -2); });
  REQUIRE(eventually([&] { return r.participants().value().size() == 3; }));
  REQUIRE(w1.unlock());
  CHECK(got.pop(10s) == 1); // the reader, not blocked by the later writer
  CHECK(got.size() == 0);
  REQUIRE(r.unlock());
  CHECK(got.pop(10s) == 2);
  REQUIRE(w2.unlock());
}

TEST_CASE("read_write_lock: 4 readers and 2 writers never break the rules") {
  auto path = unique_root("rw-mix") + "/rw";
  std::atomic<int> readers{0}, writers{0}, violations{0}, failures{0}, max_readers{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 6; ++i) {
    ts.emplace_back([&, i] {
      auto sr = zkr::session::connect(options_for(shared_server().connect_string()), 20s);
      if (!sr) { ++failures; return; }
      auto s = std::move(sr).value();
      zkr::read_write_lock rw(s, path);
      for (int k = 0; k < 40; ++k) {
        if (i < 4) {
          if (!rw.read_lock().lock(30s)) { ++failures; return; }
          int n = ++readers;
          if (writers.load() != 0) ++violations;
          for (int m = max_readers.load(); n > m && !max_readers.compare_exchange_weak(m, n);) {}
          std::this_thread::yield();
          --readers;
          if (!rw.read_lock().unlock()) ++failures;
        } else {
          if (!rw.write_lock().lock(30s)) { ++failures; return; }
          if (++writers != 1 || readers.load() != 0) ++violations;
          std::this_thread::yield();
          --writers;
          if (!rw.write_lock().unlock()) ++failures;
        }
      }
    });
  }
  for (auto& t : ts) t.join();
  CHECK(failures == 0);
  CHECK(violations == 0);
}

TEST_CASE("semaphore: never more than N holders; leases return by RAII") {
  auto path = unique_root("sem") + "/sem";
  constexpr int max = 3;
  std::atomic<int> holders{0}, peak{0}, over{0}, failures{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 8; ++i) {
    ts.emplace_back([&] {
      auto sr = zkr::session::connect(options_for(shared_server().connect_string()), 20s);
      if (!sr) { ++failures; return; }
      auto s = std::move(sr).value();
      zkr::semaphore sem(s, path, max);
      for (int k = 0; k < 30; ++k) {
        auto l = sem.acquire(30s);
        if (!l) { ++failures; return; }
        int n = ++holders;
        if (n > max) ++over;
        for (int m = peak.load(); n > m && !peak.compare_exchange_weak(m, n);) {}
        std::this_thread::yield();
        --holders;
      } // each lease returned by its destructor
    });
  }
  for (auto& t : ts) t.join();
  CHECK(failures == 0);
  CHECK(over == 0);
  CHECK(peak.load() <= max);
  auto s = connect_shared();
  zkr::semaphore sem(s, path, max);
  CHECK(eventually([&] { return sem.participants().value().empty(); }));
}

TEST_CASE("semaphore: try_acquire when full returns at once and leaves no node (kazoo 429)") {
  auto path = unique_root("sem-try") + "/sem";
  auto s1 = connect_shared();
  auto s2 = connect_shared();
  zkr::semaphore a(s1, path, 2), b(s2, path, 2);
  auto l1 = a.acquire(5s);
  auto l2 = a.try_acquire();
  REQUIRE(l1);
  REQUIRE(l2);
  REQUIRE(l2.value());
  CHECK(l1.value().holds());
  CHECK(*l2.value()->fencing_token() > *l1.value().fencing_token());
  auto none = b.try_acquire();
  REQUIRE(none);
  CHECK_FALSE(none.value());
  CHECK(eventually([&] { return b.participants().value().size() == 2; }));
  auto timed = b.acquire(200ms);
  REQUIRE_FALSE(timed);
  CHECK(timed.error() == zkr::errc::timed_out);
  CHECK(eventually([&] { return b.participants().value().size() == 2; }));
  mailbox<bool> waiting;
  std::thread t([&] {
    auto l = b.acquire(20s);
    waiting.push(bool(l));
  });
  REQUIRE(eventually([&] { return b.participants().value().size() == 3; }));
  l1.value().reset(); // returning one lease lets the waiter in
  CHECK(waiting.pop(10s) == true);
  t.join();
  CHECK(zkr::semaphore(s1, path, 0).acquire(1s).error() == zkr::errc::invalid_argument);
}

TEST_CASE("semaphore: a lost create reply does not orphan a lease node (CURATOR-335)") {
  auto s = connect_shared();
  auto path = unique_root("sem-orphan") + "/sem";
  REQUIRE(s.ensure_path(path + "/leases"));
  zkr::semaphore sem(s, path, 1);
  {
    lost_replies fault({{"create", path + "/leases/", 1}});
    auto l = sem.acquire(10s);
    REQUIRE(l);
    CHECK(sem.participants().value().size() == 1);
  }
  CHECK(eventually([&] { return sem.participants().value().empty(); }));
  auto again = sem.acquire(5s); // nothing left to block the single lease
  CHECK(again);
}

TEST_CASE("single_node_lock: try once, wait, adopt after a lost reply, lost on expiry") {
  auto srv = zkr::testing::server::start().value();
  auto a = connect(srv.connect_string(), 2000ms);
  auto b = connect(srv.connect_string(), 2000ms);
  auto path = unique_root("single") + "/lock";
  mailbox<zkr::hold_event> events; // outlives la, whose listener pushes into it
  zkr::single_node_lock la(a, path), lb(b, path);
  REQUIRE(la.try_lock().value());
  CHECK(la.holds());
  zkr::single_node_lock same_session(a, path);
  CHECK_FALSE(same_session.try_lock().value()); // another object on our session is still excluded
  std::stop_source stopper_src;
  std::thread stopper([&] {
    std::this_thread::sleep_for(100ms);
    stopper_src.request_stop();
  });
  auto t0 = std::chrono::steady_clock::now();
  CHECK(same_session.lock(stopper_src.get_token(), 20s).error() == zkr::errc::cancelled);
  stopper.join();
  CHECK(std::chrono::steady_clock::now() - t0 < 10s); // woken by the stop, not by the deadline
  CHECK(la.fencing_token() == a.exists(path).value()->czxid);
  CHECK_FALSE(lb.try_lock().value());
  CHECK(lb.lock(200ms).error() == zkr::errc::timed_out);
  mailbox<bool> got;
  std::thread t([&] { got.push(bool(lb.lock(20s))); });
  REQUIRE(eventually([&] { return a.exists(path).value().has_value(); }));
  REQUIRE(la.unlock());
  CHECK(got.pop(10s) == true);
  t.join();
  CHECK(lb.holds());
  REQUIRE(lb.unlock());
  REQUIRE(eventually([&] { return !a.exists(path).value(); }));
  {
    lost_replies fault({{"create", path, 1}});
    REQUIRE(la.try_lock().value()); // our own node, found by its owner
  }
  la.add_listener([&](zkr::hold_event e) { events.push(e); });
  auto stop = la.hold_token();
  auto id = a.id();
  REQUIRE(zkr::testing::expire_session(srv.connect_string(), id.id, id.password));
  std::optional<zkr::hold_event> e;
  do { e = events.pop(20s); } while (e && *e != zkr::hold_event::lost);
  REQUIRE(e);
  CHECK(stop.stop_requested());
  CHECK_FALSE(la.holds());
  CHECK(lb.lock(20s)); // the expired owner's node is gone
  CHECK(lb.unlock());
}
