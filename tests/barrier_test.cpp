// Barrier and double barrier against a real server.
#include "support.hpp"

#include <zkrecipes/barrier.hpp>
#include <zkrecipes/double_barrier.hpp>

using namespace zkt;

TEST_CASE("barrier: waiters block while it is set and all pass when it is removed") {
  auto s = connect_shared();
  auto path = unique_root("barrier") + "/b";
  zkr::barrier b(s, path);
  CHECK(b.wait(100ms)); // not set: passes at once
  REQUIRE(b.set());
  REQUIRE(b.set()); // setting twice is fine
  CHECK(b.is_set().value());
  CHECK(b.wait(200ms).error() == zkr::errc::timed_out);
  std::vector<zkr::session> sessions;
  sessions.reserve(8); // recipes keep a pointer to their session: it must not move
  std::vector<std::unique_ptr<zkr::barrier>> bs;
  mailbox<bool> passed;
  for (int i = 0; i < 8; ++i) {
    sessions.push_back(connect_shared());
    bs.push_back(std::make_unique<zkr::barrier>(sessions.back(), path));
    bs.back()->async_wait(30s, [&](zkr::result<void> r) { passed.push(bool(r)); });
  }
  CHECK_FALSE(passed.pop(300ms).has_value());
  REQUIRE(b.remove());
  for (int i = 0; i < 8; ++i) CHECK(passed.pop() == true);
  CHECK_FALSE(b.is_set().value());
  REQUIRE(b.set());
  mailbox<zkr::result<void>> cancelled;
  b.async_wait(30s, [&](zkr::result<void> r) { cancelled.push(std::move(r)); });
  b.cancel();
  auto c = cancelled.pop();
  REQUIRE(c);
  CHECK(c->error() == zkr::errc::cancelled);
  CHECK(zkr::barrier(s, "bad//path").set().error() == zkr::errc::invalid_path);
}

TEST_CASE("double_barrier: 8 members enter together and leave together") {
  constexpr int n = 8;
  auto path = unique_root("dbarrier") + "/round";
  // arrived/departed only grow: a member that passes enter must see all n
  // arrived, one that passes leave must see all n departing.
  std::atomic<int> arrived{0}, departed{0}, early_enter{0}, early_leave{0}, errors{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < n; ++i)
    ts.emplace_back([&, i] {
      auto s = connect_shared();
      zkr::double_barrier b(s, path, n, {"m" + std::to_string(i), {}});
      std::this_thread::sleep_for(std::chrono::milliseconds(15 * i)); // members arrive at different times
      ++arrived;
      if (!b.enter(30s)) ++errors;
      if (arrived.load() < n) ++early_enter;
      std::this_thread::sleep_for(std::chrono::milliseconds(15 * (n - i))); // and leave at different times
      ++departed;
      if (!b.leave(30s)) ++errors;
      if (departed.load() < n) ++early_leave;
    });
  for (auto& t : ts) t.join();
  CHECK(errors.load() == 0);
  CHECK(early_enter.load() == 0);
  CHECK(early_leave.load() == 0);
  auto s = connect_shared();
  CHECK(s.children(path).value().names.empty()); // no member and no ready node left
}

TEST_CASE("double_barrier: a member that never arrives makes enter time out cleanly") {
  auto s = connect_shared();
  auto t = connect_shared();
  auto path = unique_root("dbarrier-timeout") + "/round";
  zkr::double_barrier a(s, path, 3, {"a", {}});
  zkr::double_barrier b(t, path, 3, {"b", {}});
  mailbox<zkr::result<void>> ra;
  a.async_enter(400ms, [&](zkr::result<void> r) { ra.push(std::move(r)); });
  auto rb = b.enter(400ms);
  REQUIRE_FALSE(rb);
  CHECK(rb.error() == zkr::errc::timed_out);
  CHECK(rb.error().message().find("3 members needed") != std::string::npos);
  auto r = ra.pop();
  REQUIRE(r);
  CHECK(r->error() == zkr::errc::timed_out);
  // Both removed their nodes: a later round of 3 is not miscounted.
  CHECK(s.children(path).value().names.empty());
  CHECK(zkr::double_barrier(s, path, 0).enter(1s).error() == zkr::errc::invalid_argument);
  CHECK(zkr::double_barrier(s, path, 2, {"ready", {}}).enter(1s).error() == zkr::errc::invalid_argument);
}

TEST_CASE("double_barrier: leave deletes the member's node at once and waits for the others") {
  auto s = connect_shared();
  auto t = connect_shared();
  auto path = unique_root("dbarrier-leave") + "/round";
  zkr::double_barrier a(s, path, 2, {"a", {}});
  zkr::double_barrier b(t, path, 2, {"b", {}});
  mailbox<zkr::result<void>> entered;
  a.async_enter(10s, [&](zkr::result<void> r) { entered.push(std::move(r)); });
  REQUIRE(b.enter(10s));
  auto ea = entered.pop();
  REQUIRE(ea);
  REQUIRE(*ea);
  // b stays inside: a's leave times out, with a's node already gone.
  auto la = a.leave(300ms);
  REQUIRE_FALSE(la);
  CHECK(la.error() == zkr::errc::timed_out);
  auto kids = s.children(path).value().names;
  std::sort(kids.begin(), kids.end());
  CHECK(kids == std::vector<std::string>{"b", "ready"});
  // a waits again; b's leave (the last one out) lets both through and clears `ready`.
  mailbox<zkr::result<void>> left;
  a.async_leave(10s, [&](zkr::result<void> r) { left.push(std::move(r)); });
  REQUIRE(b.leave(10s));
  auto l = left.pop();
  REQUIRE(l);
  CHECK(*l);
  CHECK(s.children(path).value().names.empty());
}
