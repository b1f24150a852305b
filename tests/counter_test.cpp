// Shared value, shared counter and id generator against a real server.
#include "support.hpp"

#include <zkrecipes/id_generator.hpp>
#include <zkrecipes/shared_value.hpp>

#include <set>

using namespace zkt;

TEST_CASE("shared_value: get creates with the initial value; compare_and_set refuses a stale version") {
  auto s = connect_shared();
  auto path = unique_root("value") + "/mode";
  zkr::shared_value<std::string> v(s, path, "normal");
  auto cur = v.get();
  REQUIRE(cur);
  CHECK(cur.value().value == "normal");
  auto ver = v.compare_and_set(cur.value().version, "drain");
  REQUIRE(ver);
  CHECK(ver.value() == cur.value().version + 1);
  auto stale = v.compare_and_set(cur.value().version, "other");
  REQUIRE_FALSE(stale);
  CHECK(stale.error() == zkr::zk_errc::bad_version);
  CHECK(v.get().value().value == "drain");
  auto u = v.update([](const std::string& old) { return old + "!"; });
  REQUIRE(u);
  CHECK(u.value().value == "drain!");
  REQUIRE(v.set("x"));
  CHECK(v.get().value().value == "x");
}

TEST_CASE("shared_counter: 8 sessions x 500 increments sum exactly; bad data is named") {
  auto path = unique_root("counter") + "/n";
  constexpr int sessions = 8, per = 500;
  std::atomic<int> errors{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < sessions; ++i)
    ts.emplace_back([&] {
      auto s = connect_shared();
      zkr::shared_counter c(s, path);
      std::int64_t last = 0;
      for (int k = 0; k < per; ++k) {
        auto r = c.increment();
        if (!r || r.value() <= last) ++errors; // each caller sees its own increments grow
        if (r) last = r.value();
      }
    });
  for (auto& t : ts) t.join();
  CHECK(errors.load() == 0);
  auto s = connect_shared();
  zkr::shared_counter c(s, path);
  CHECK(c.get().value() == sessions * per);
  CHECK(c.compare_and_set(sessions * per, 7).value());
  CHECK_FALSE(c.compare_and_set(sessions * per, 9).value());
  CHECK(c.increment(-8).value() == -1);
  REQUIRE(s.set(path, "twelve"));
  auto bad = c.get();
  REQUIRE_FALSE(bad);
  CHECK(bad.error() == zkr::errc::decode_failed);
  CHECK(bad.error().message().find(path) != std::string::npos);
  REQUIRE(s.set(path, std::to_string(INT64_MAX)));
  CHECK(c.increment().error() == zkr::errc::invalid_argument);
}

TEST_CASE("id_generator: ids from 8 sessions are unique and increasing per caller; no node is left") {
  auto path = unique_root("ids") + "/orders";
  std::mutex m;
  std::set<std::int64_t> all;
  std::atomic<int> errors{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 8; ++i)
    ts.emplace_back([&] {
      auto s = connect_shared();
      zkr::id_generator g(s, path);
      std::int64_t last = 0;
      for (int k = 0; k < 100; ++k) {
        auto id = g.next();
        if (!id || id.value().id <= last) ++errors;
        if (!id) continue;
        last = id.value().id;
        std::lock_guard lk(m);
        if (!all.insert(id.value().id).second) ++errors;
      }
    });
  for (auto& t : ts) t.join();
  CHECK(errors.load() == 0);
  CHECK(all.size() == 800);
  auto s = connect_shared();
  REQUIRE(eventually([&] { return s.children(path).value().names.empty(); }));
  CHECK(zkr::id_generator(s, "x").next().error() == zkr::errc::invalid_path);
}
