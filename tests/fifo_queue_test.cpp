// FIFO queue against a real server: order, buckets, many producers and
// consumers, depth, waits and bad input.
#include "support.hpp"

#include <zkrecipes/fifo_queue.hpp>
#include <zkrecipes/shared_value.hpp>
#include <zkrecipes/testing/tcp_proxy.hpp>

#include <map>
#include <set>

using namespace zkt;

TEST_CASE("fifo_queue: items come out in the order put; try_take, peek and size") {
  auto s = connect_shared();
  auto path = unique_root("fifo-basic") + "/q";
  zkr::fifo_queue<std::string> q(s, path);
  auto empty = q.try_take();
  REQUIRE(empty);
  CHECK_FALSE(empty.value().has_value());
  CHECK(q.size().value() == 0);
  REQUIRE(q.put("a"));
  REQUIRE(q.put_all({"b", "c", "d"}));
  CHECK(q.size().value() == 4);
  CHECK(q.peek().value() == std::optional<std::string>("a"));
  CHECK(q.take(5s).value() == "a");
  CHECK(q.try_take().value() == std::optional<std::string>("b"));
  auto rest = q.take_batch(10, 5s);
  REQUIRE(rest);
  CHECK(rest.value() == std::vector<std::string>{"c", "d"});
  CHECK(q.size().value() == 0);
}

TEST_CASE("fifo_queue: a take waits on a watch for the next put and times out cleanly") {
  auto s = connect_shared();
  auto p = connect_shared();
  auto path = unique_root("fifo-wait") + "/q";
  zkr::fifo_queue<std::string> consumer(s, path);
  zkr::fifo_queue<std::string> producer(p, path);
  auto t0 = std::chrono::steady_clock::now();
  auto none = consumer.take(300ms);
  REQUIRE_FALSE(none);
  CHECK(none.error() == zkr::errc::timed_out);
  CHECK(std::chrono::steady_clock::now() - t0 >= 300ms);

  mailbox<zkr::result<std::string>> got;
  consumer.async_take(20s, [&](zkr::result<std::string> r) { got.push(std::move(r)); });
  CHECK_FALSE(got.pop(200ms).has_value()); // nothing queued: still waiting
  REQUIRE(producer.put("late"));
  auto r = got.pop();
  REQUIRE(r);
  CHECK(r->value() == "late");
}

TEST_CASE("fifo_queue: cancel ends a waiting take; bad options and undecodable items are named") {
  auto s = connect_shared();
  auto path = unique_root("fifo-cancel") + "/q";
  zkr::fifo_queue<std::string> q(s, path);
  mailbox<zkr::result<std::string>> got;
  q.async_take(20s, [&](zkr::result<std::string> r) { got.push(std::move(r)); });
  CHECK_FALSE(got.pop(100ms).has_value());
  q.cancel();
  auto r = got.pop();
  REQUIRE(r);
  REQUIRE_FALSE(*r);
  CHECK(r->error() == zkr::errc::cancelled);

  zkr::queue_options bad;
  bad.bucket_capacity = 1;
  zkr::fifo_queue<std::string> q2(s, path, bad);
  auto e = q2.put("x");
  REQUIRE_FALSE(e);
  CHECK(e.error() == zkr::errc::invalid_argument);
  CHECK(e.error().message().find("bucket_capacity") != std::string::npos);
  zkr::fifo_queue<std::string> q3(s, "no-slash");
  CHECK(q3.put("x").error() == zkr::errc::invalid_path);

#ifdef ZKRECIPES_HAS_JSON
  // Bytes that are not JSON: the take names the item, leaves it, and the
  // queue keeps flowing past it.
  zkr::fifo_queue<std::string> raw(s, path + "j");
  zkr::fifo_queue<nlohmann::json, zkr::json_codec<nlohmann::json>> js(s, path + "j");
  REQUIRE(raw.put("{not json"));
  REQUIRE(js.put(nlohmann::json{{"n", 1}}));
  auto bad_take = js.take(5s);
  REQUIRE_FALSE(bad_take);
  CHECK(bad_take.error() == zkr::errc::decode_failed);
  CHECK(bad_take.error().message().find("/i-") != std::string::npos);
  auto good = js.take(5s);
  REQUIRE(good);
  CHECK(good.value()["n"] == 1);
  CHECK(raw.try_take().value() == std::optional<std::string>("{not json")); // still there
#endif
}

TEST_CASE("fifo_queue: items spread over buckets, emptied buckets are removed, order holds across them") {
  auto s = connect_shared();
  auto path = unique_root("fifo-buckets") + "/q";
  zkr::queue_options o;
  o.bucket_capacity = 10;
  zkr::fifo_queue<std::string> q(s, path, o);
  for (int i = 0; i < 95; ++i) REQUIRE(q.put(std::to_string(i)));
  auto buckets = s.children(path).value().names;
  CHECK(buckets.size() >= 10);
  for (auto& b : buckets) CHECK(s.children(path + "/" + b).value().names.size() <= 10);
  CHECK(q.size().value() == 95);
  for (int i = 0; i < 95; ++i) {
    auto v = q.take(5s);
    REQUIRE(v);
    CHECK(v.value() == std::to_string(i));
  }
  CHECK(q.try_take().value() == std::nullopt);
  CHECK(s.children(path).value().names.size() == 1); // only the tail bucket is left
}

TEST_CASE("fifo_queue: 4 producers x 4 consumers x 2,500 items, each delivered once, producer order kept") {
  constexpr int producers = 4, consumers = 4, per = 2500;
  auto path = unique_root("fifo-mpmc") + "/q";
  std::vector<std::thread> threads;
  std::mutex m;
  std::map<std::string, int> seen;  // item -> times delivered
  std::atomic<int> total{0};
  std::atomic<bool> order_ok{true};
  std::atomic<int> errors{0};
  for (int c = 0; c < consumers; ++c)
    threads.emplace_back([&] {
      auto s = connect_shared();
      zkr::fifo_queue<std::string> q(s, path);
      std::map<int, int> last; // producer -> last index this consumer saw
      const auto give_up = std::chrono::steady_clock::now() + 240s; // a lost item fails the test, not hangs it
      while (total.load() < producers * per && std::chrono::steady_clock::now() < give_up) {
        auto batch = q.take_batch(50, 500ms);
        if (!batch) {
          if (batch.error() != zkr::errc::timed_out) ++errors;
          continue;
        }
        std::lock_guard lk(m);
        for (auto& v : batch.value()) {
          auto sep = v.find(':');
          int prod = std::stoi(v.substr(0, sep)), idx = std::stoi(v.substr(sep + 1));
          if (last.count(prod) && last[prod] >= idx) order_ok = false;
          last[prod] = idx;
          ++seen[v];
          ++total;
        }
      }
    });
  for (int p = 0; p < producers; ++p)
    threads.emplace_back([&, p] {
      auto s = connect_shared();
      zkr::fifo_queue<std::string> q(s, path);
      mailbox<bool> acks;
      for (int i = 0; i < per; ++i)
        q.async_put(std::to_string(p) + ":" + std::to_string(i),
                    [&](zkr::result<std::string> r) { acks.push(r.has_value()); });
      for (int i = 0; i < per; ++i) {
        auto a = acks.pop(60s);
        if (!a || !*a) ++errors;
      }
    });
  for (auto& t : threads) t.join();
  CHECK(errors.load() == 0);
  CHECK(order_ok.load());
  CHECK(seen.size() == std::size_t(producers * per));
  int twice = 0;
  for (auto& [k, n] : seen) twice += n > 1;
  CHECK(twice == 0);
}

TEST_CASE("fifo_queue: 100,000 items put pipelined and taken in order, no reply near the packet limit") {
  auto& srv = shared_server();
  auto proxy = zkr::testing::tcp_proxy::start(srv.port()).value();
  auto s = connect(proxy.connect_string());
  auto path = unique_root("fifo-deep") + "/q";
  zkr::fifo_queue<std::string> q(s, path);
  constexpr int n = 100000;
  std::atomic<int> acked{0}, failed{0};
  std::mutex m;
  std::condition_variable cv;
  for (int i = 0; i < n; ++i)
    q.async_put(std::to_string(i), [&](zkr::result<std::string> r) {
      std::lock_guard lk(m);
      (r ? acked : failed)++;
      if (acked + failed == n) cv.notify_all();
    });
  {
    std::unique_lock lk(m);
    REQUIRE(cv.wait_for(lk, 240s, [&] { return acked + failed == n; }));
  }
  REQUIRE(failed.load() == 0);
  CHECK(q.size().value() == std::size_t(n));
  int next = 0;
  bool in_order = true;
  while (next < n) {
    auto b = q.take_batch(2000, 10s);
    REQUIRE(b);
    for (auto& v : b.value()) in_order = in_order && v == std::to_string(next++);
  }
  CHECK(in_order);
  CHECK(q.try_take().value() == std::nullopt);
  // A flat folder of 100,000 items would answer a listing with about 1.6 MB.
  MESSAGE("largest reply: " << proxy.largest_reply() << " bytes");
  CHECK(proxy.largest_reply() < 64 * 1024);
  REQUIRE(s.remove_recursive(path.substr(0, path.rfind('/'))));
}

TEST_CASE("fifo_queue: a take whose delete reply is lost still delivers the item (at-least-once, never none)") {
  auto s = connect_shared();
  auto path = unique_root("fifo-lost-delete") + "/q";
  zkr::fifo_queue<std::string> q(s, path);
  REQUIRE(q.put("only"));
  {
    // The delete (a one-op multi, never retried by the session) is applied
    // and its reply lost; the retry finds the item gone.
    lost_replies fault({{"multi", path, 1}});
    auto v = q.take_item(5s);
    REQUIRE(v);
    CHECK(v.value().value == "only");
    CHECK(v.value().maybe_duplicate); // gone by our delete or another's: flagged
    CHECK(fault.seen("multi") >= 2);
  }
  CHECK(q.size().value() == 0);
  CHECK_FALSE(q.try_take().value().has_value());
  // An uneventful take is certain.
  REQUIRE(q.put("next"));
  auto n = q.take_item(5s);
  REQUIRE(n);
  CHECK(n.value().value == "next");
  CHECK_FALSE(n.value().maybe_duplicate);
}

TEST_CASE("fifo_queue: an undecodable item in an older bucket does not stall takes of newer buckets") {
  auto s = connect_shared();
  auto path = unique_root("fifo-poison") + "/q";
  zkr::queue_options o;
  o.bucket_capacity = 10;
  zkr::fifo_queue<std::string> raw(s, path, o);
  REQUIRE(raw.put("not a number"));
  for (int i = 0; i < 25; ++i) REQUIRE(raw.put(std::to_string(i)));
  zkr::fifo_queue<std::int64_t, zkr::counter_codec> nums(s, path, o);
  auto first = nums.take(5s);
  REQUIRE_FALSE(first);
  CHECK(first.error() == zkr::errc::decode_failed);
  for (int i = 0; i < 25; ++i) {
    auto v = nums.take(5s);
    REQUIRE(v);
    CHECK(v.value() == i);
  }
  CHECK(nums.take(200ms).error() == zkr::errc::timed_out);
  CHECK(raw.try_take().value() == std::optional<std::string>("not a number")); // left in place
}
