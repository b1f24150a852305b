// node_cache, children_cache, tree_cache: initial snapshot, events, and
// convergence after a disconnection, a server restart and a session expiry.
#include "support.hpp"

#include <zkrecipes/testing/expire.hpp>
#include <zkrecipes/testing/tcp_proxy.hpp>

using namespace zkt;

namespace {

std::string event_text(const zkr::cache_event& e, const std::string& root) {
  auto p = e.path.substr(std::min(e.path.size(), root.size()));
  return std::string(zkr::to_string(e.change)) + ":" + (p.empty() ? "." : p) + "=" + e.data.data;
}

struct recorder {
  mailbox<std::string> events;
  std::string root;
  explicit recorder(std::string r) : root(std::move(r)) {}
  std::function<void(const zkr::cache_event&)> fn() {
    return [this](const zkr::cache_event& e) { events.push(event_text(e, root)); };
  }
};

} // namespace

TEST_CASE("node_cache: follows a node through create, updates and delete") {
  auto s = connect_shared();
  auto path = unique_root("node-cache") + "/flags";
  recorder rec(path); // before the cache: its listener writes here until the cache is gone
  zkr::node_cache nc(s, path);
  nc.add_listener(rec.fn());
  REQUIRE(nc.start());
  CHECK_FALSE(nc.current().has_value());
  CHECK(nc.start().error() == zkr::errc::already_started);

  auto w = connect_shared();
  REQUIRE(w.ensure_path(std::string(zkr::parent(path))));
  REQUIRE(w.create(path, "v1"));
  CHECK(rec.events.pop() == "added:.=v1");
  REQUIRE(w.set(path, "v2"));
  CHECK(rec.events.pop() == "updated:.=v2");
  REQUIRE(nc.current());
  CHECK(nc.current()->data == "v2");
  CHECK(nc.current()->stat.version == 1);
  REQUIRE(w.remove(path));
  CHECK(rec.events.pop() == "removed:.=v2");
  CHECK_FALSE(nc.current().has_value());
  REQUIRE(w.create(path, "v3"));
  CHECK(rec.events.pop() == "added:.=v3");
  CHECK(rec.events.size() == 0);
}

TEST_CASE("node_cache: rapid writes end on the last value, never going back") {
  auto s = connect_shared();
  auto path = unique_root("node-cache-rapid");
  auto w = connect_shared();
  REQUIRE(w.create(path, "0"));
  std::vector<int> seen;
  std::mutex m;
  zkr::node_cache nc(s, path);
  nc.add_listener([&](const zkr::cache_event& e) {
    std::lock_guard lk(m);
    seen.push_back(std::stoi(e.data.data));
  });
  REQUIRE(nc.start());
  for (int i = 1; i <= 200; ++i) w.async_set(path, std::to_string(i), zkr::any_version, [](auto) {});
  REQUIRE(w.sync(path));
  CHECK(nc.wait_until([&](auto& v) { return v.count(path) && v.at(path).data == "200"; }, 20s));
  // The view can show 200 before the listener has been told (a run on a
  // clean clone read 187 here): wait for the listener as well.
  CHECK(eventually([&] {
    std::lock_guard lk(m);
    return !seen.empty() && seen.back() == 200;
  }));
  std::lock_guard lk(m);
  REQUIRE_FALSE(seen.empty());
  CHECK(seen.back() == 200);
  CHECK(std::is_sorted(seen.begin(), seen.end()));
  CHECK(std::adjacent_find(seen.begin(), seen.end()) == seen.end()); // each version told once at most
}

TEST_CASE("children_cache: initial snapshot, then adds, updates and removes") {
  auto s = connect_shared();
  auto path = unique_root("children-cache");
  auto w = connect_shared();
  REQUIRE(w.ensure_path(path));
  REQUIRE(w.create(path + "/a", "1"));
  REQUIRE(w.create(path + "/b", "2"));
  REQUIRE(w.create(path + "/b/deep", "not mirrored"));
  recorder rec(path);
  zkr::children_cache cc(s, path);
  cc.add_listener(rec.fn());
  REQUIRE(cc.start());
  auto kids = cc.children();
  REQUIRE(kids.size() == 2);
  CHECK(kids["a"].data == "1");
  CHECK(kids["b"].data == "2");
  CHECK(rec.events.size() == 0); // the snapshot is not told as events

  REQUIRE(w.create(path + "/c", "3"));
  CHECK(rec.events.pop() == "added:/c=3");
  REQUIRE(w.set(path + "/a", "1b"));
  CHECK(rec.events.pop() == "updated:/a=1b");
  REQUIRE(w.remove_recursive(path + "/b"));
  CHECK(rec.events.pop() == "removed:/b=2");
  CHECK(cc.children().size() == 2);
  CHECK(cc.child("c")->data == "3");
  CHECK_FALSE(cc.child("b"));

  // The folder itself goes and comes back: children follow.
  REQUIRE(w.remove_recursive(path));
  std::set<std::string> removed{*rec.events.pop(), *rec.events.pop()};
  CHECK(removed == std::set<std::string>{"removed:/a=1b", "removed:/c=3"});
  REQUIRE(w.create(path, ""));
  REQUIRE(w.create(path + "/z", "26"));
  CHECK(rec.events.pop() == "added:/z=26");
}

TEST_CASE("children_cache: a child deleted and re-created while disconnected is seen as new (curator 911)") {
  auto& srv = shared_server();
  auto proxy = zkr::testing::tcp_proxy::start(srv.port()).value();
  auto s = connect(proxy.connect_string(), 8000ms);
  auto path = unique_root("children-cache-outage");
  auto w = connect_shared();
  REQUIRE(w.ensure_path(path));
  REQUIRE(w.create(path + "/x", "old"));
  REQUIRE(w.create(path + "/y", "same"));
  recorder rec(path);
  zkr::children_cache cc(s, path);
  cc.add_listener(rec.fn());
  REQUIRE(cc.start());
  auto old_czxid = cc.child("x")->stat.czxid;

  state_log log(s);
  proxy.refuse(true);
  proxy.cut();
  REQUIRE(log.wait_for(zkr::session_state::suspended));
  // Same name, same data version (0), different node; plus an add and a remove.
  REQUIRE(w.remove(path + "/x"));
  REQUIRE(w.create(path + "/x", "new"));
  REQUIRE(w.create(path + "/z", "added"));
  REQUIRE(w.remove(path + "/y"));
  proxy.refuse(false);
  REQUIRE(log.wait_for(zkr::session_state::reconnected));

  std::multiset<std::string> got;
  for (int i = 0; i < 4; ++i) {
    auto e = rec.events.pop(20s);
    REQUIRE(e);
    got.insert(*e);
  }
  CHECK(got == std::multiset<std::string>{"removed:/x=old", "added:/x=new", "added:/z=added", "removed:/y=same"});
  CHECK(cc.child("x")->stat.czxid != old_czxid);
  CHECK(cc.children().size() == 2);
}

TEST_CASE("tree_cache: mirrors a subtree; a removed subtree is told deepest first") {
  auto s = connect_shared();
  auto root = unique_root("tree-cache");
  auto w = connect_shared();
  REQUIRE(w.create(root, "r"));
  REQUIRE(w.create(root + "/a", "a"));
  REQUIRE(w.create(root + "/a/b", "b"));
  REQUIRE(w.create(root + "/a/b/c", "c"));
  recorder rec(root);
  zkr::tree_cache tc(s, root);
  tc.add_listener(rec.fn());
  REQUIRE(tc.start());
  CHECK(tc.nodes().size() == 4);
  CHECK(tc.get(root + "/a/b/c")->data == "c");
  CHECK(tc.children_of(root + "/a") == std::vector<std::string>{"b"});

  REQUIRE(w.create(root + "/a/b/c/d", "d"));
  CHECK(rec.events.pop() == "added:/a/b/c/d=d");
  REQUIRE(w.set(root + "/a/b", "b2"));
  CHECK(rec.events.pop() == "updated:/a/b=b2");
  REQUIRE(w.remove_recursive(root + "/a/b"));
  // Whether the parent's listing or a node's own watch tells first, a
  // subtree goes out deepest first and every node exactly once.
  std::vector<std::string> gone;
  for (int i = 0; i < 3; ++i) gone.push_back(rec.events.pop().value_or("none"));
  CHECK(gone == std::vector<std::string>{"removed:/a/b/c/d=d", "removed:/a/b/c=c", "removed:/a/b=b2"});
  CHECK(tc.nodes().size() == 2);
  CHECK(tc.children_of(root + "/a").empty());
}

TEST_CASE("tree_cache: max depth limits the mirror") {
  auto s = connect_shared();
  auto root = unique_root("tree-cache-depth");
  auto w = connect_shared();
  REQUIRE(w.ensure_path(root + "/a/b/c"));
  zkr::tree_cache tc(s, root, 1);
  REQUIRE(tc.start());
  auto all = tc.nodes();
  CHECK(all.size() == 2);
  CHECK(all.count(root + "/a") == 1);
  CHECK(all.count(root + "/a/b") == 0);
  zkr::tree_cache bad(s, root, -1);
  CHECK(bad.start().error() == zkr::errc::invalid_argument);
  zkr::tree_cache bad_path(s, "no-slash");
  CHECK(bad_path.start().error() == zkr::errc::invalid_path);
}

TEST_CASE("caches converge after a server restart") {
  auto srv = zkr::testing::server::start().value();
  auto s = connect(srv.connect_string(), 10000ms);
  auto root = unique_root("cache-restart");
  REQUIRE(s.ensure_path(root + "/k"));
  recorder rec(root);
  zkr::tree_cache tc(s, root);
  tc.add_listener(rec.fn());
  REQUIRE(tc.start());
  state_log log(s);
  REQUIRE(srv.restart());
  REQUIRE(log.wait_for(zkr::session_state::reconnected, 30s));
  auto w = connect(srv.connect_string());
  REQUIRE(w.create(root + "/k/after", "1"));
  REQUIRE(w.set(root + "/k", "changed"));
  std::set<std::string> got{rec.events.pop(20s).value_or("none"), rec.events.pop(20s).value_or("none")};
  CHECK(got == std::set<std::string>{"added:/k/after=1", "updated:/k=changed"});
}

TEST_CASE("caches rebuild after the session expires, including changes made meanwhile") {
  auto& srv = shared_server();
  auto s = connect(srv.connect_string(), 2000ms);
  auto root = unique_root("cache-expire");
  auto w = connect_shared();
  REQUIRE(w.ensure_path(root));
  REQUIRE(w.create(root + "/keep", "k"));
  REQUIRE(w.create(root + "/drop", "d"));
  recorder rec(root), nrec(root);
  zkr::children_cache cc(s, root);
  zkr::node_cache nc(s, root + "/keep");
  cc.add_listener(rec.fn());
  nc.add_listener(nrec.fn());
  REQUIRE(cc.start());
  REQUIRE(nc.start());
  state_log log(s);
  auto id = s.id();
  REQUIRE(zkr::testing::expire_session(srv.connect_string(), id.id, id.password));
  // Changes while the cache's session is gone and before its new one reads.
  REQUIRE(w.remove(root + "/drop"));
  REQUIRE(w.set(root + "/keep", "k2"));
  REQUIRE(w.create(root + "/new", "n"));
  REQUIRE(log.wait_for(zkr::session_state::lost));
  REQUIRE(log.wait_for(zkr::session_state::connected));
  std::multiset<std::string> got;
  for (int i = 0; i < 3; ++i) got.insert(rec.events.pop(20s).value_or("none"));
  CHECK(got == std::multiset<std::string>{"removed:/drop=d", "updated:/keep=k2", "added:/new=n"});
  CHECK(nrec.events.pop(20s) == "updated:/keep=k2");
  // And the mirror still follows changes on the new session.
  REQUIRE(w.set(root + "/keep", "k3"));
  CHECK(rec.events.pop() == "updated:/keep=k3");
  CHECK(nrec.events.pop() == "updated:/keep=k3");
}

TEST_CASE("caches: a listener that throws does not stop the mirror; close stops events") {
  auto s = connect_shared();
  auto path = unique_root("cache-throw");
  auto w = connect_shared();
  REQUIRE(w.ensure_path(path));
  recorder rec(path);
  zkr::children_cache cc(s, path);
  cc.add_listener([](const zkr::cache_event&) { throw std::runtime_error("listener failure"); });
  auto id = cc.add_listener(rec.fn());
  REQUIRE(cc.start());
  REQUIRE(w.create(path + "/a", "1"));
  CHECK(rec.events.pop() == "added:/a=1");
  REQUIRE(w.create(path + "/b", "2"));
  CHECK(rec.events.pop() == "added:/b=2");
  cc.remove_listener(id);
  REQUIRE(w.create(path + "/c", "3"));
  CHECK(cc.wait_until([&](auto& v) { return v.count(path + "/c") == 1; }, 10s));
  CHECK(rec.events.size() == 0);
  cc.close();
  // A second cache on the same session sees /d: by then a live cc would have too.
  zkr::children_cache witness(s, path);
  REQUIRE(witness.start());
  REQUIRE(w.create(path + "/d", "4"));
  CHECK(witness.wait_until([&](auto& v) { return v.count(path + "/d") == 1; }, 10s));
  CHECK_FALSE(cc.child("d"));
}
