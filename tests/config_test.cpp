// config<T, Codec>: compare-and-set publishing, history and rollback, many
// subscribers under rapid change, the fallback file, bad values.
#include "support.hpp"

#include <zkrecipes/testing/tcp_proxy.hpp>

#include <filesystem>
#include <fstream>

using namespace zkt;

namespace {

struct temp_file {
  std::string path;
  explicit temp_file(std::string_view label)
      : path((std::filesystem::temp_directory_path() /
              ("zkrecipes-cfg-" + std::to_string(::getpid()) + "-" + std::string(label)))
                 .string()) {
    std::filesystem::remove(path);
  }
  ~temp_file() {
    std::filesystem::remove(path);
  }
};

// Decodes only digits: anything else is a bad value.
struct number_codec {
  using value_type = int;
  static zkr::result<std::string> encode(const int& v) { return std::to_string(v); }
  static zkr::result<int> decode(std::string_view b) {
    if (b.empty() || b.size() > 9 || b.find_first_not_of("0123456789") != std::string_view::npos)
      return zkr::make_error(zkr::errc::decode_failed, "number decode", "not a number: " + std::string(b));
    return std::stoi(std::string(b));
  }
};

} // namespace

TEST_CASE("config: publish is compare-and-set; conflicts name the version found") {
  auto s = connect_shared();
  auto path = unique_root("config-cas") + "/app/config";
  zkr::config<std::string>::publisher pub(s, path);
  auto v0 = pub.publish("a", zkr::config_absent);
  REQUIRE(v0);
  CHECK(v0.value() == 0);
  auto again = pub.publish("x", zkr::config_absent);
  REQUIRE_FALSE(again);
  CHECK(again.error() == zkr::zk_errc::bad_version);
  CHECK(again.error().message().find("found version 0") != std::string::npos);
  auto v1 = pub.publish("b", 0);
  REQUIRE(v1);
  CHECK(v1.value() == 1);
  auto stale = pub.publish("c", 0);
  REQUIRE_FALSE(stale);
  CHECK(stale.error() == zkr::zk_errc::bad_version);
  CHECK(stale.error().message().find("expected version 0, found version 1") != std::string::npos);
  auto cur = pub.read();
  REQUIRE(cur);
  CHECK(cur.value().value == "b");
  CHECK(cur.value().version == 1);

  zkr::config<std::string>::publisher missing(s, unique_root("config-missing"));
  auto m = missing.publish("x", 3);
  REQUIRE_FALSE(m);
  CHECK(m.error() == zkr::zk_errc::no_node);
  CHECK(m.error().message().find("config_absent") != std::string::npos);
  zkr::config<std::string>::publisher bad(s, "relative/path");
  CHECK(bad.publish("x", zkr::config_absent).error() == zkr::errc::invalid_path);
  zkr::config_options none;
  none.keep_versions = 0;
  zkr::config<std::string>::publisher zero(s, path, none);
  CHECK(zero.publish("x", 1).error() == zkr::errc::invalid_argument);
}

TEST_CASE("config: the last N versions are kept and a rollback publishes an old value as a new version") {
  auto s = connect_shared();
  auto path = unique_root("config-history");
  zkr::config_options o;
  o.keep_versions = 3;
  zkr::config<int, number_codec>::publisher pub(s, path, o);
  std::int32_t v = zkr::config_absent;
  for (int i = 0; i < 6; ++i) v = pub.publish(100 + i, v).value();
  CHECK(v == 5);
  CHECK(pub.versions().value() == std::vector<std::int32_t>{3, 4, 5});
  CHECK(pub.at_version(3).value() == 103);
  auto gone = pub.at_version(1);
  REQUIRE_FALSE(gone);
  CHECK(gone.error().message().find("not kept") != std::string::npos);
  auto rb = pub.rollback(3, 5);
  REQUIRE(rb);
  CHECK(rb.value() == 6);
  CHECK(pub.read().value().value == 103);
  CHECK(pub.versions().value() == std::vector<std::int32_t>{4, 5, 6});
  CHECK(pub.rollback(4, 5).error() == zkr::zk_errc::bad_version);
  // A history copy pruned by hand does not block the next publish.
  REQUIRE(s.remove(path + "/v-0000000004"));
  CHECK(pub.publish(200, 6).value() == 7);
}

TEST_CASE("config: 16 subscribers on their own sessions follow 200 rapid versions to the last, never backwards") {
  auto pub_s = connect_shared();
  auto path = unique_root("config-many");
  zkr::config<int, number_codec>::publisher pub(pub_s, path);
  REQUIRE(pub.publish(0, zkr::config_absent));
  constexpr int subscribers = 16;
  std::vector<zkr::session> sessions;
  sessions.reserve(subscribers); // recipes keep a pointer to their session
  std::vector<std::vector<std::int32_t>> seen(subscribers); // before subs: their listeners write here
  std::mutex m;
  std::vector<std::unique_ptr<zkr::config<int, number_codec>::subscriber>> subs;
  for (int i = 0; i < subscribers; ++i) {
    sessions.push_back(connect_shared());
    subs.push_back(std::make_unique<zkr::config<int, number_codec>::subscriber>(sessions.back(), path));
    subs.back()->add_listener([&, i](const zkr::config_snapshot<int>& c) {
      std::lock_guard lk(m);
      seen[i].push_back(c.version);
      CHECK(c.value == c.version); // the value written as each version
    });
    REQUIRE(subs.back()->start().value() == zkr::config_source::live);
  }
  std::int32_t v = 0;
  for (int i = 1; i <= 200; ++i) v = pub.publish(i, v).value();
  REQUIRE(v == 200);
  for (int i = 0; i < subscribers; ++i) {
    INFO("subscriber " << i);
    CHECK(subs[i]->wait_for_version(200, 30s));
    CHECK(subs[i]->current()->value == 200);
  }
  // current() moves before listeners run: wait for the last call too.
  CHECK(eventually([&] {
    std::lock_guard lk(m);
    return std::all_of(seen.begin(), seen.end(), [](auto& v) { return !v.empty() && v.back() == 200; });
  }));
  std::lock_guard lk(m);
  for (int i = 0; i < subscribers; ++i) {
    INFO("subscriber " << i);
    REQUIRE_FALSE(seen[i].empty());
    CHECK(seen[i].back() == 200);
    CHECK(std::adjacent_find(seen[i].begin(), seen[i].end(), std::greater_equal<>()) == seen[i].end());
  }
}

TEST_CASE("config: a subscriber started while ZooKeeper is unreachable runs on the fallback file and says so") {
  auto& srv = shared_server();
  auto path = unique_root("config-fallback");
  temp_file file("fallback");
  zkr::config_options o;
  o.fallback_file = file.path;
  auto pub_s = connect_shared();
  zkr::config<std::string>::publisher pub(pub_s, path);
  REQUIRE(pub.publish("one", zkr::config_absent));
  REQUIRE(pub.publish("two", 0));
  {
    auto s = connect_shared();
    zkr::config<std::string>::subscriber sub(s, path, o);
    REQUIRE(sub.start().value() == zkr::config_source::live);
    CHECK(sub.current()->value == "two");
    REQUIRE(std::filesystem::exists(file.path));
  }
  // ZooKeeper unreachable: a proxy that refuses every connection.
  auto proxy = zkr::testing::tcp_proxy::start(srv.port()).value();
  proxy.refuse(true);
  auto s = zkr::session::open(options_for(proxy.connect_string())).value();
  mailbox<std::string> live; // before sub: its listener writes here
  zkr::config<std::string>::subscriber sub(s, path, o);
  sub.add_listener([&](const zkr::config_snapshot<std::string>& c) { live.push(c.value); });
  auto from = sub.start(1500ms);
  REQUIRE(from);
  CHECK(from.value() == zkr::config_source::fallback_file);
  REQUIRE(sub.current());
  CHECK(sub.current()->value == "two");
  CHECK(sub.current()->version == 1);
  CHECK(sub.current()->source == zkr::config_source::fallback_file);
  auto w = sub.wait_for_version(1, 200ms); // a fallback copy is not the live version
  REQUIRE_FALSE(w);
  CHECK(w.error().message().find("fallback file") != std::string::npos);
  // Meanwhile a new version is published; once ZooKeeper is reachable the live one takes over.
  REQUIRE(pub.publish("three", 1));
  proxy.refuse(false);
  CHECK(sub.wait_for_version(2, 20s));
  CHECK(sub.current()->value == "three");
  CHECK(sub.current()->source == zkr::config_source::live);
  CHECK(live.pop() == "three");
}

TEST_CASE("config: a bad fallback file and no ZooKeeper give a clear error") {
  auto& srv = shared_server();
  auto path = unique_root("config-badfile");
  temp_file file("bad");
  zkr::config_options o;
  o.fallback_file = file.path;
  auto proxy = zkr::testing::tcp_proxy::start(srv.port()).value();
  proxy.refuse(true);
  auto s = zkr::session::open(options_for(proxy.connect_string())).value();
  {
    zkr::config<std::string>::subscriber sub(s, path, o);
    auto r = sub.start(300ms);
    REQUIRE_FALSE(r);
    CHECK(r.error() == zkr::errc::timed_out);
    CHECK(r.error().message().find("cannot open") != std::string::npos);
  }
  {
    std::ofstream(file.path) << "zkrecipes-config 1\n/other\n1 2 3\nabc";
    zkr::config<std::string>::subscriber sub(s, path, o);
    auto r = sub.start(300ms);
    REQUIRE_FALSE(r);
    CHECK(r.error().message().find("holds the config of /other") != std::string::npos);
  }
  {
    std::ofstream(file.path) << "zkrecipes-config 1\n" << path << "\n1 2 30\nabc";
    zkr::config<std::string>::subscriber sub(s, path, o);
    auto r = sub.start(300ms);
    REQUIRE_FALSE(r);
    CHECK(r.error().message().find("truncated") != std::string::npos);
  }
  zkr::config<std::string>::subscriber no_file(s, path);
  auto r = no_file.start(300ms);
  REQUIRE_FALSE(r);
  CHECK(r.error().message().find("no fallback file") != std::string::npos);
}

TEST_CASE("config: a value that does not decode is skipped and reported; the copy stays") {
  auto s = connect_shared();
  auto path = unique_root("config-decode");
  zkr::config<int, number_codec>::publisher pub(s, path);
  REQUIRE(pub.publish(7, zkr::config_absent));
  auto sub_s = connect_shared();
  zkr::config<int, number_codec>::subscriber sub(sub_s, path);
  REQUIRE(sub.start());
  CHECK(sub.current()->value == 7);
  REQUIRE(s.set(path, "not a number", 0)); // written around the publisher
  CHECK(eventually([&] { return sub.last_error().has_value(); }));
  CHECK(sub.last_error()->message().find("not a number") != std::string::npos);
  CHECK(sub.current()->value == 7);
  CHECK(pub.publish(8, 1).value() == 2);
  CHECK(sub.wait_for_version(2, 10s));
  CHECK(sub.current()->value == 8);
}

TEST_CASE("config: a publish whose reply is lost is settled by reading, not written twice") {
  auto s = connect_shared();
  auto path = unique_root("config-lost");
  zkr::config<std::string>::publisher pub(s, path);
  REQUIRE(pub.publish("v0", zkr::config_absent));
  {
    lost_replies lose({{"multi", "", 1}});
    auto v = pub.publish("v1", 0);
    REQUIRE_MESSAGE(v, (v ? "" : v.error().message()));
    CHECK(v.value() == 1);
    CHECK(lost_replies::left("multi") == 0); // the reply was really lost
  }
  auto cur = pub.read();
  REQUIRE(cur);
  CHECK(cur.value().version == 1); // applied once
  CHECK(cur.value().value == "v1");
  CHECK(pub.versions().value() == std::vector<std::int32_t>{0, 1});
}

TEST_CASE("config: listeners removed by another listener are not called again") {
  auto s = connect_shared();
  auto path = unique_root("config-listeners");
  zkr::config<std::string>::publisher pub(s, path);
  REQUIRE(pub.publish("a", zkr::config_absent));
  auto sub_s = connect_shared();
  std::atomic<int> second_calls{0};
  zkr::listener_id second = 0;
  mailbox<std::string> first_heard;
  zkr::config<std::string>::subscriber sub(sub_s, path);
  sub.add_listener([&](const zkr::config_snapshot<std::string>& c) {
    if (c.value == "b") sub.remove_listener(second); // from inside a listener: on the dispatcher
    first_heard.push(c.value);
  });
  second = sub.add_listener([&](const zkr::config_snapshot<std::string>&) { ++second_calls; });
  REQUIRE(sub.start());
  CHECK(first_heard.pop() == "a");
  REQUIRE(pub.publish("b", 0));
  CHECK(first_heard.pop() == "b");
  REQUIRE(pub.publish("c", 1));
  CHECK(first_heard.pop() == "c");
  CHECK(second_calls.load() == 1); // "a" only
}
