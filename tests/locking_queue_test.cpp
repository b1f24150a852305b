// Locking (at-least-once) queue against a real server: claims, ack,
// release, priorities, and consumers that die or expire while holding items.
#include "support.hpp"

#include <zkrecipes/locking_queue.hpp>
#include <zkrecipes/testing/expire.hpp>

#include <map>
#include <optional>
#include <set>

using namespace zkt;

TEST_CASE("locking_queue: ack removes, release gives the item back first, counts follow") {
  auto s = connect_shared();
  auto path = unique_root("lq-basic") + "/q";
  zkr::locking_queue<std::string> q(s, path);
  CHECK_FALSE(q.try_take().value().has_value());
  REQUIRE(q.put("a"));
  REQUIRE(q.put_all({"b", "c"}));
  CHECK(q.size().value() == 3);
  auto a = q.take(5s);
  REQUIRE(a);
  CHECK(a.value().value() == "a");
  auto b = q.take(5s);
  REQUIRE(b);
  CHECK(b.value().value() == "b");
  CHECK(q.in_flight().value() == 2);
  REQUIRE(a.value().release());
  CHECK_FALSE(a.value().held());
  CHECK(a.value().release().error() == zkr::errc::not_held);
  auto again = q.take(5s); // the released item keeps its place ahead of "c"
  REQUIRE(again);
  CHECK(again.value().value() == "a");
  REQUIRE(b.value().ack());
  REQUIRE(again.value().ack());
  CHECK(q.size().value() == 1);
  CHECK(q.in_flight().value() == 0);
  {
    auto c = q.take(5s);
    REQUIRE(c);
    CHECK(c.value().value() == "c");
  } // dropped without ack: released
  REQUIRE(eventually([&] { return q.in_flight().value() == 0; }));
  auto c2 = q.take(5s);
  REQUIRE(c2);
  CHECK(c2.value().value() == "c");
  REQUIRE(c2.value().ack());
  CHECK_FALSE(q.try_take().value().has_value());
  CHECK(q.size().value() == 0);
}

TEST_CASE("locking_queue: higher priority lanes first, FIFO within a lane; bad priority refused") {
  auto s = connect_shared();
  auto path = unique_root("lq-prio") + "/q";
  zkr::locking_queue<std::string> q(s, path);
  REQUIRE(q.put("low-1", 0));
  REQUIRE(q.put("high-1", 7));
  REQUIRE(q.put("mid-1", 3));
  REQUIRE(q.put("high-2", 7));
  REQUIRE(q.put("low-2", 0));
  std::vector<std::string> order;
  for (int i = 0; i < 5; ++i) {
    auto it = q.take(5s);
    REQUIRE(it);
    order.push_back(it.value().value());
    CHECK(it.value().priority() == (order.back().rfind("high", 0) == 0 ? 7 : order.back().rfind("mid", 0) == 0 ? 3 : 0));
    REQUIRE(it.value().ack());
  }
  CHECK(order == std::vector<std::string>{"high-1", "high-2", "mid-1", "low-1", "low-2"});
  auto bad = q.put("x", 1000);
  REQUIRE_FALSE(bad);
  CHECK(bad.error() == zkr::errc::invalid_argument);
  CHECK(bad.error().message().find("priority 1000") != std::string::npos);
}

TEST_CASE("locking_queue: a consumer whose session closes gives its item to a waiting consumer; acked items never return") {
  auto path = unique_root("lq-close") + "/q";
  auto s2 = connect_shared();
  zkr::locking_queue<std::string> waiter(s2, path);
  {
    auto s1 = connect_shared();
    zkr::locking_queue<std::string> q1(s1, path);
    REQUIRE(q1.put("done"));
    REQUIRE(q1.put("held"));
    auto d = q1.take(5s);
    REQUIRE(d);
    REQUIRE(d.value().ack());
    auto h = q1.take(5s);
    REQUIRE(h);
    CHECK(h.value().value() == "held");
    mailbox<zkr::result<zkr::queue_item<std::string>>> got;
    waiter.async_take(20s, [&](zkr::result<zkr::queue_item<std::string>> r) { got.push(std::move(r)); });
    CHECK_FALSE(got.pop(300ms).has_value()); // everything claimed: the waiter waits
    REQUIRE(s1.close());
    auto r = got.pop(20s);
    REQUIRE(r);
    REQUIRE(*r);
    CHECK(r.value().value().value() == "held");
    REQUIRE(r.value().value().ack());
    // The dead consumer's handle cannot ack any more.
    auto late = h.value().ack();
    REQUIRE_FALSE(late);
  }
  CHECK_FALSE(waiter.try_take().value().has_value()); // "done" never comes back
}

namespace {
/// "job" claimed by q1, then q1's session expired (its claim went with it);
/// q2 on the shared session is free to take the item.
struct expired_claim {
  explicit expired_claim(const char* name)
      : path(unique_root(name) + "/q"), s1(connect(shared_server().connect_string(), 2000ms)),
        s2(connect_shared()), q1(s1, path), q2(s2, path) {
    REQUIRE(q1.put("job"));
    auto h = q1.take(5s);
    REQUIRE(h);
    held.emplace(std::move(h).value());
    state_log log(s1);
    auto id = s1.id();
    REQUIRE(zkr::testing::expire_session(shared_server().connect_string(), id.id, id.password));
    REQUIRE(log.wait_for(zkr::session_state::lost));
  }
  std::string path;
  zkr::session s1, s2;
  zkr::locking_queue<std::string> q1, q2;
  std::optional<zkr::queue_item<std::string>> held;
};
} // namespace

TEST_CASE("locking_queue: a consumer whose session expires loses its claim to another; its ack says lock_lost") {
  expired_claim t("lq-expire");
  auto r = t.q2.take(20s);
  REQUIRE(r);
  CHECK(r.value().value() == "job");
  auto late = t.held->ack();
  REQUIRE_FALSE(late);
  CHECK(late.error() == zkr::errc::lock_lost);
  REQUIRE(r.value().ack());
  CHECK(t.q2.size().value() == 0);
}

TEST_CASE("locking_queue: two acks of one item never both succeed, even when the other consumer acks first") {
  // Found by ./run faults: the expired consumer saw the item gone and took
  // that as its own ack, although another consumer had claimed and acked it.
  expired_claim t("lq-double-ack");
  auto r = t.q2.take(20s);
  REQUIRE(r);
  REQUIRE(r.value().ack()); // the item is gone for good, acked by the second consumer
  auto late = t.held->ack();
  REQUIRE_FALSE(late);
  CHECK(late.error() == zkr::errc::lock_lost);
  CHECK(late.error().message().find("gone") != std::string::npos);
}

TEST_CASE("locking_queue: 4 consumers share 400 items across buckets, each acked exactly once") {
  auto path = unique_root("lq-many") + "/q";
  zkr::queue_options o;
  o.bucket_capacity = 50;
  {
    auto s = connect_shared();
    zkr::locking_queue<std::string> q(s, path, o);
    for (int i = 0; i < 400; i += 40) {
      std::vector<std::string> batch;
      for (int j = i; j < i + 40; ++j) batch.push_back(std::to_string(j));
      REQUIRE(q.put_all(batch));
    }
  }
  std::mutex m;
  std::map<std::string, int> acked;
  std::atomic<int> errors{0};
  std::vector<std::thread> ts;
  for (int c = 0; c < 4; ++c)
    ts.emplace_back([&] {
      auto s = connect_shared();
      zkr::locking_queue<std::string> q(s, path, o);
      for (;;) {
        auto it = q.take(1s);
        if (!it) {
          if (it.error() != zkr::errc::timed_out) ++errors;
          break;
        }
        if (!it.value().ack()) ++errors;
        std::lock_guard lk(m);
        ++acked[it.value().value()];
      }
    });
  for (auto& t : ts) t.join();
  CHECK(errors.load() == 0);
  CHECK(acked.size() == 400);
  int twice = 0;
  for (auto& [k, n] : acked) twice += n > 1;
  CHECK(twice == 0);
}

TEST_CASE("locking_queue: a claim whose reply is lost is adopted, not left orphaned") {
  auto s = connect_shared();
  auto path = unique_root("lq-lost-claim") + "/q";
  zkr::locking_queue<std::string> q(s, path);
  REQUIRE(q.put("job"));
  {
    lost_replies fault({{"multi", path, 1}}); // the claim multi is applied, its reply lost
    auto it = q.take(5s);
    REQUIRE(it);
    CHECK(it.value().value() == "job");
    CHECK(fault.seen("multi") >= 1);
    CHECK(q.in_flight().value() == 1); // one claim: ours
    REQUIRE(it.value().release());
  }
  CHECK(q.in_flight().value() == 0);
  auto again = q.take(5s);
  REQUIRE(again);
  REQUIRE(again.value().ack());
}

TEST_CASE("locking_queue: an ack whose reply is lost is settled by reading; the item never returns") {
  auto s = connect_shared();
  auto path = unique_root("lq-lost-ack") + "/q";
  zkr::locking_queue<std::string> q(s, path);
  REQUIRE(q.put("job"));
  REQUIRE(q.put("next"));
  auto it = q.take(5s);
  REQUIRE(it);
  {
    lost_replies fault({{"multi", path, 1}}); // the ack multi is applied, its reply lost
    REQUIRE(it.value().ack());
    CHECK(fault.seen("multi") == 1);
  }
  CHECK(q.size().value() == 1);
  auto n = q.take(5s);
  REQUIRE(n);
  CHECK(n.value().value() == "next");
  REQUIRE(n.value().ack());
  CHECK_FALSE(q.try_take().value().has_value());
}

TEST_CASE("locking_queue: a release whose reply is lost gives the item back once; another consumer's claim is left alone") {
  auto s = connect_shared();
  auto t = connect_shared();
  auto path = unique_root("lq-lost-release") + "/q";
  zkr::locking_queue<std::string> qa(s, path), qb(t, path);
  REQUIRE(qa.put("job"));
  auto a = qa.take(5s);
  REQUIRE(a);
  {
    lost_replies fault({{"multi", path, 1}});
    REQUIRE(a.value().release());
  }
  auto b = qb.take(5s);
  REQUIRE(b);
  CHECK(b.value().value() == "job");
  CHECK(qa.in_flight().value() == 1); // b's claim stands
  REQUIRE(b.value().ack());
  CHECK(qa.size().value() == 0);
}
