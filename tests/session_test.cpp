// The session's operations against a real standalone ZooKeeper.
#include "support.hpp"

#include <zkrecipes/testing/tcp_proxy.hpp>

#include <set>
#include <thread>

using namespace zkt;
using namespace zkrecipes;

TEST_SUITE("session") {
  TEST_CASE("connects, reports connected and knows its session") {
    auto s = connect_shared();
    CHECK(s.connected());
    CHECK(s.state() == session_state::connected);
    CHECK(s.session_id() != 0);
    CHECK(s.id().password.size() == 16);
    CHECK(s.negotiated_timeout().count() > 0);
  }

  TEST_CASE("open refuses bad settings with a clear error") {
    auto o = options_for("");
    auto r = session::open(o);
    REQUIRE(!r);
    CHECK(r.error() == errc::invalid_argument);
    o = options_for(shared_server().connect_string());
    o.session_timeout = 0ms;
    CHECK(!session::open(o));
    o = options_for(shared_server().connect_string() + "/bad//chroot");
    r = session::open(o);
    REQUIRE(!r);
    CHECK(r.error() == errc::not_connected);
  }

  TEST_CASE("wait_connected times out when no server answers") {
    auto proxy = testing::tcp_proxy::start(shared_server().port());
    REQUIRE(proxy);
    proxy.value().refuse(true);
    auto s = session::open(options_for(proxy.value().connect_string()));
    REQUIRE(s);
    auto r = s.value().wait_connected(300ms);
    REQUIRE(!r);
    CHECK(r.error() == errc::timed_out);
  }

  TEST_CASE("create in every mode returns the actual path and stat") {
    auto s = connect_shared();
    auto root = unique_root("modes");
    REQUIRE(s.create(root));

    auto p = s.create(root + "/p", "data");
    REQUIRE(p);
    CHECK(p.value().path == root + "/p");
    CHECK(p.value().stat.ephemeral_owner == 0);
    CHECK(p.value().stat.data_length == 4);
    CHECK(p.value().stat.czxid > 0);

    auto e = s.create(root + "/e", "", {create_mode::ephemeral});
    REQUIRE(e);
    CHECK(e.value().stat.ephemeral_owner == s.session_id());

    auto ps1 = s.create(root + "/ps-", "", {create_mode::persistent_sequential});
    auto ps2 = s.create(root + "/ps-", "", {create_mode::persistent_sequential});
    REQUIRE(ps1);
    REQUIRE(ps2);
    REQUIRE(sequence_of(ps1.value().path));
    CHECK(*sequence_of(ps2.value().path) == *sequence_of(ps1.value().path) + 1);
    CHECK(ps1.value().path.size() == (root + "/ps-").size() + 10);

    auto es = s.create(root + "/es-", "", {create_mode::ephemeral_sequential});
    REQUIRE(es);
    CHECK(es.value().stat.ephemeral_owner == s.session_id());
    CHECK(sequence_of(es.value().path));

    auto c = s.create(root + "/c", "", {create_mode::container});
    REQUIRE(c);
    CHECK(s.create(root + "/c/child"));

    auto kids = s.children(root);
    REQUIRE(kids);
    CHECK(kids.value().names.size() == 6);
  }

  TEST_CASE("create errors say what and where") {
    auto s = connect_shared();
    auto root = unique_root("create-errors");
    REQUIRE(s.create(root));
    auto dup = s.create(root);
    REQUIRE(!dup);
    CHECK(dup.error() == zk_errc::node_exists);
    CHECK(dup.error().message() == "create " + root + ": node exists");

    auto orphan = s.create(root + "/missing/child");
    REQUIRE(!orphan);
    CHECK(orphan.error() == zk_errc::no_node);

    REQUIRE(s.create(root + "/eph", "", {create_mode::ephemeral}));
    auto under = s.create(root + "/eph/child");
    REQUIRE(!under);
    CHECK(under.error() == zk_errc::no_children_for_ephemerals);

    auto root_create = s.create("/");
    REQUIRE(!root_create);
    CHECK(root_create.error() == errc::invalid_path);
  }

  TEST_CASE("get, set and remove honour versions") {
    auto s = connect_shared();
    auto path = unique_root("versions");
    REQUIRE(s.create(path, "v0"));

    auto g = s.get(path);
    REQUIRE(g);
    CHECK(g.value().data == "v0");
    CHECK(g.value().stat.version == 0);

    auto st = s.set(path, "v1", 0);
    REQUIRE(st);
    CHECK(st.value().version == 1);

    auto stale = s.set(path, "v2", 0);
    REQUIRE(!stale);
    CHECK(stale.error() == zk_errc::bad_version);
    CHECK(s.get(path).value().data == "v1");

    REQUIRE(s.set(path, "v3", any_version));
    CHECK(s.get(path).value().stat.version == 2);

    auto bad_rm = s.remove(path, 1);
    REQUIRE(!bad_rm);
    CHECK(bad_rm.error() == zk_errc::bad_version);
    REQUIRE(s.remove(path, 2));

    auto gone = s.get(path);
    REQUIRE(!gone);
    CHECK(gone.error() == zk_errc::no_node);
    CHECK(gone.error().message() == "get " + path + ": no node");
    CHECK(s.set(path, "x").error() == zk_errc::no_node);
    CHECK(s.remove(path).error() == zk_errc::no_node);
  }

  TEST_CASE("get hands over the whole value, however large") {
    auto s = connect_shared();
    auto path = unique_root("large");
    std::string big(ZKRECIPES_MAX_PAYLOAD, 'z');
    big[12345] = '\0';
    REQUIRE(s.create(path, big));
    auto g = s.get(path);
    REQUIRE(g);
    CHECK(g.value().data == big);
  }

  TEST_CASE("remove refuses a node with children") {
    auto s = connect_shared();
    auto root = unique_root("not-empty");
    REQUIRE(s.create(root));
    REQUIRE(s.create(root + "/kid"));
    auto r = s.remove(root);
    REQUIRE(!r);
    CHECK(r.error() == zk_errc::not_empty);
  }

  TEST_CASE("exists tells absent from present") {
    auto s = connect_shared();
    auto path = unique_root("exists");
    auto none = s.exists(path);
    REQUIRE(none);
    CHECK_FALSE(none.value().has_value());
    REQUIRE(s.create(path, "abc"));
    auto some = s.exists(path);
    REQUIRE(some);
    REQUIRE(some.value().has_value());
    CHECK(some.value()->data_length == 3);
  }

  TEST_CASE("children lists names with the parent's stat") {
    auto s = connect_shared();
    auto root = unique_root("children");
    REQUIRE(s.create(root));
    for (auto n : {"a", "b", "c"}) REQUIRE(s.create(join(root, n)));
    auto c = s.children(root);
    REQUIRE(c);
    auto names = c.value().names;
    std::sort(names.begin(), names.end());
    CHECK(names == std::vector<std::string>{"a", "b", "c"});
    CHECK(c.value().stat.num_children == 3);
    CHECK(s.children(root + "/none").error() == zk_errc::no_node);
  }

  TEST_CASE("a data watch fires once, for the first change only") {
    auto s = connect_shared();
    auto path = unique_root("watch-once");
    REQUIRE(s.create(path, "a"));
    mailbox<result<watch_event>> fired;
    REQUIRE(s.get(path, [&](result<watch_event> e) { fired.push(std::move(e)); }));
    REQUIRE(s.set(path, "b"));
    auto e = fired.pop();
    REQUIRE(e);
    REQUIRE(e->has_value());
    CHECK(e->value().type == event_type::changed);
    CHECK(e->value().path == path);
    // A second change, then a read whose reply is ordered after any event
    // that change could send: nothing more may have arrived.
    REQUIRE(s.set(path, "c"));
    REQUIRE(s.get(path));
    CHECK(fired.size() == 0);
  }

  TEST_CASE("watches report deletes, creates and child changes") {
    auto s = connect_shared();
    auto root = unique_root("watch-kinds");
    mailbox<result<watch_event>> created, children, deleted;

    auto absent = s.exists(root, [&](result<watch_event> e) { created.push(std::move(e)); });
    REQUIRE(absent);
    CHECK_FALSE(absent.value().has_value());
    REQUIRE(s.create(root));
    auto c = created.pop();
    REQUIRE((c && c->has_value()));
    CHECK(c->value().type == event_type::created);

    REQUIRE(s.children(root, [&](result<watch_event> e) { children.push(std::move(e)); }));
    REQUIRE(s.create(root + "/x"));
    auto k = children.pop();
    REQUIRE((k && k->has_value()));
    CHECK(k->value().type == event_type::child);
    CHECK(k->value().path == root);

    REQUIRE(s.get(root + "/x", [&](result<watch_event> e) { deleted.push(std::move(e)); }));
    REQUIRE(s.remove(root + "/x"));
    auto d = deleted.pop();
    REQUIRE((d && d->has_value()));
    CHECK(d->value().type == event_type::deleted);
  }

  TEST_CASE("a watch on a failed read hears the read's error") {
    auto s = connect_shared();
    mailbox<result<watch_event>> fired;
    auto r = s.get(unique_root("nothing-here"), [&](result<watch_event> e) { fired.push(std::move(e)); });
    REQUIRE(!r);
    auto e = fired.pop();
    REQUIRE(e);
    REQUIRE(!e->has_value());
    CHECK(e->error() == zk_errc::no_node);
  }

  TEST_CASE("multi applies everything or nothing") {
    auto s = connect_shared();
    auto root = unique_root("multi");
    REQUIRE(s.create(root, "v0"));

    multi_op ok;
    ok.check(root, 0).set(root, "v1").create(root + "/seq-", "x", {create_mode::persistent_sequential}).create(root + "/tmp");
    ok.remove(root + "/tmp");
    auto r = s.multi(ok);
    REQUIRE(r);
    REQUIRE(r.value().size() == 5);
    CHECK(r.value()[1].stat->version == 1);
    CHECK(sequence_of(r.value()[2].path));
    CHECK(s.get(root).value().data == "v1");

    multi_op bad;
    bad.create(root + "/never").check(root, 0).set(root, "v2");
    auto f = s.multi(bad);
    REQUIRE(!f);
    CHECK(f.error() == zk_errc::bad_version);
    CHECK(f.error().message() == "multi op 1 (check " + root + "): bad version");
    CHECK_FALSE(s.exists(root + "/never").value().has_value());
    CHECK(s.get(root).value().data == "v1");

    CHECK(s.multi(multi_op{}).value().empty());
    multi_op ttl;
    ttl.create(root + "/t", "", {create_mode::persistent_with_ttl, {}, 1000ms});
    CHECK(s.multi(ttl).error() == errc::invalid_argument);
  }

  TEST_CASE("sync completes") {
    auto s = connect_shared();
    CHECK(s.sync("/"));
    CHECK(s.sync("bad").error() == errc::invalid_path);
  }

  TEST_CASE("ensure_path creates what is missing and tolerates what exists") {
    auto a = connect_shared();
    auto b = connect_shared();
    auto root = unique_root("ensure");
    auto deep = root + "/x/y/z";
    // Two sessions racing on the same path both succeed.
    mailbox<result<void>> done;
    a.async_ensure_path(deep, [&](result<void> r) { done.push(std::move(r)); });
    b.async_ensure_path(deep, [&](result<void> r) { done.push(std::move(r)); });
    for (int i = 0; i < 2; ++i) {
      auto r = done.pop();
      REQUIRE(r);
      CHECK_MESSAGE(r->has_value(), (r->has_value() ? "" : r->error().message()));
    }
    CHECK(a.exists(deep).value().has_value());
    CHECK(a.ensure_path(deep));
    CHECK(a.ensure_path("/"));
    CHECK(a.ensure_path(root + "/c", create_mode::container));
    b.async_ensure_path(root + "/c2", create_mode::container, [&](result<void> r) { done.push(std::move(r)); });
    auto c2 = done.pop();
    REQUIRE(c2);
    CHECK(c2->has_value());
    CHECK(a.ensure_path(root + "/e", create_mode::ephemeral).error() == errc::invalid_argument);
  }

  TEST_CASE("ensure_path succeeds on an existing path under a parent that refuses CREATE") {
    auto root = unique_root("ensure-acl");
    auto owner = connect_shared();
    REQUIRE(owner.add_auth("digest", "owner:pw"));
    acl_list read_only_for_others{{perms::read, "world", "anyone"}, {perms::all, "auth", ""}};
    REQUIRE(owner.create(root, "", {create_mode::persistent, read_only_for_others}));
    REQUIRE(owner.create(root + "/child"));
    auto guest = connect_shared();
    CHECK(guest.create(root + "/other").error() == zk_errc::no_auth);
    auto r = guest.ensure_path(root + "/child");
    CHECK_MESSAGE(r.has_value(), (r ? "" : r.error().message()));
    CHECK(guest.ensure_path(root + "/missing").error() == zk_errc::no_auth);
  }

  TEST_CASE("a throwing listener does not keep the others from hearing the event") {
    // Declared before the session: listeners may run until it is destroyed.
    mailbox<session_state> heard;
    mailbox<std::string> logged;
    set_client_log(log_level::quiet, [&](std::string_view l) { logged.push(std::string(l)); });
    auto s = connect_shared();
    s.add_listener([](const session_event& e) {
      if (e.state == session_state::closed) throw std::runtime_error("listener boom");
    });
    s.add_listener([&](const session_event& e) { heard.push(e.state); });
    REQUIRE(s.close());
    std::optional<session_state> last;
    while ((last = heard.pop()) && *last != session_state::closed) {
    }
    CHECK(last == session_state::closed);
    std::optional<std::string> l;
    while ((l = logged.pop()) && l->find("listener boom") == std::string::npos) {
    }
    set_client_log(log_level::quiet);
    CHECK(l.has_value());
  }

  TEST_CASE("remove_recursive removes a whole tree and accepts a missing one") {
    auto s = connect_shared();
    auto root = unique_root("rr");
    for (int i = 0; i < 5; ++i)
      for (int j = 0; j < 4; ++j) REQUIRE(s.ensure_path(root + "/" + std::to_string(i) + "/" + std::to_string(j) + "/leaf"));
    REQUIRE(s.remove_recursive(root));
    CHECK_FALSE(s.exists(root).value().has_value());
    CHECK(s.remove_recursive(root));
    CHECK(s.remove_recursive("/").error() == errc::invalid_path);
  }

  TEST_CASE("invalid paths and oversized payloads are refused before anything is sent") {
    auto proxy = testing::tcp_proxy::start(shared_server().port());
    REQUIRE(proxy);
    auto s = connect(proxy.value().connect_string());
    auto root = unique_root("refused");
    REQUIRE(s.create(root));
    REQUIRE(s.sync("/"));
    auto sent = proxy.value().bytes_to_server();

    auto bad = s.create("no-slash", "x");
    REQUIRE(!bad);
    CHECK(bad.error() == errc::invalid_path);
    CHECK(bad.error().message() == "create no-slash (path must start with '/'): invalid path");
    CHECK(s.get("/a//b").error() == errc::invalid_path);
    CHECK(s.children("/a/").error() == errc::invalid_path);
    CHECK(s.exists("").error() == errc::invalid_path);

    std::string huge(ZKRECIPES_MAX_PAYLOAD + 1, 'x');
    auto big = s.create(root + "/big", huge);
    REQUIRE(!big);
    CHECK(big.error() == errc::payload_too_large);
    CHECK(big.error().message().find(std::to_string(huge.size()) + " bytes") != std::string::npos);
    CHECK(s.set(root, huge).error() == errc::payload_too_large);
    multi_op tx;
    tx.set(root, huge);
    CHECK(s.multi(tx).error() == errc::payload_too_large);

    CHECK(proxy.value().bytes_to_server() == sent);
    // The largest payload accepted really is accepted by the server.
    CHECK(s.create(root + "/max", std::string(ZKRECIPES_MAX_PAYLOAD, 'y')));
  }

  TEST_CASE("TTL nodes need a ttl, and are created on a server that allows them") {
    auto s = connect_shared();
    auto root = unique_root("ttl");
    CHECK(s.create(root, "", {create_mode::persistent_with_ttl}).error() == errc::invalid_argument);
    CHECK(s.create(root, "", {create_mode::persistent, {}, 500ms}).error() == errc::invalid_argument);

    testing::server_options so;
    so.extended_types = true;
    auto ext = testing::server::start(so);
    REQUIRE(ext);
    auto t = connect(ext.value().connect_string());
    auto made = t.create("/ttl-", "x", {create_mode::persistent_sequential_with_ttl, {}, 60000ms});
    REQUIRE_MESSAGE(made, (made ? "" : made.error().message()));
    CHECK(sequence_of(made.value().path));
    CHECK(t.create("/ttl", "x", {create_mode::persistent_with_ttl, {}, 60000ms}));
  }

  TEST_CASE("a chroot isolates a session in its subtree") {
    auto admin = connect_shared();
    auto chroot = unique_root("chroot");
    REQUIRE(admin.create(chroot));
    auto jailed = connect(shared_server().connect_string() + chroot);
    auto made = jailed.create("/inside", "x");
    REQUIRE(made);
    CHECK(made.value().path == "/inside");
    CHECK(admin.exists(chroot + "/inside").value().has_value());
    auto top = jailed.children("/");
    REQUIRE(top);
    CHECK(top.value().names == std::vector<std::string>{"inside"});
    CHECK_FALSE(jailed.exists(chroot).value().has_value());
  }

  TEST_CASE("a digest ACL refuses another identity") {
    auto root = unique_root("acl");
    auto alice = connect_shared();
    REQUIRE(alice.add_auth("digest", "alice:secret"));
    REQUIRE(alice.create(root, "private", {create_mode::persistent, creator_all_acl()}));

    auto bob = connect_shared();
    REQUIRE(bob.add_auth("digest", "bob:other"));
    auto denied = bob.get(root);
    REQUIRE(!denied);
    CHECK(denied.error() == zk_errc::no_auth);
    CHECK(denied.error() == std::errc::permission_denied);
    CHECK(bob.set(root, "x").error() == zk_errc::no_auth);

    auto anonymous = connect_shared();
    CHECK(anonymous.get(root).error() == zk_errc::no_auth);

    auto alice2 = connect_shared();
    REQUIRE(alice2.add_auth("digest", "alice:secret"));
    auto ok = alice2.get(root);
    REQUIRE(ok);
    CHECK(ok.value().data == "private");

    auto o = options_for(shared_server().connect_string());
    o.auth = {{"digest", "alice:secret"}};
    auto configured = session::connect(o, 20s);
    REQUIRE(configured);
    CHECK(configured.value().get(root).value().data == "private");

    // The session's default ACL applies to creates that name none.
    o.default_acl = creator_all_acl();
    auto defaulted = session::connect(o, 20s);
    REQUIRE(defaulted);
    REQUIRE(defaulted.value().create(root + "-default", "x"));
    CHECK(bob.get(root + "-default").error() == zk_errc::no_auth);
    CHECK(alice2.get(root + "-default").value().data == "x");
  }

  TEST_CASE("handlers run exactly once, on the dispatcher thread, never on the caller's") {
    auto s = connect_shared();
    auto root = unique_root("contract");
    mailbox<std::pair<bool, std::thread::id>> calls;
    auto record = [&](auto) { calls.push({s.on_dispatcher_thread(), std::this_thread::get_id()}); };
    s.async_create(root, "", {}, record);  // success
    s.async_create("bad", "", {}, record); // refused before sending
    s.async_get(root + "/none", record);   // server error
    std::set<std::thread::id> threads;
    for (int i = 0; i < 3; ++i) {
      auto c = calls.pop();
      REQUIRE(c);
      CHECK(c->first);
      threads.insert(c->second);
    }
    CHECK(threads.size() == 1);
    CHECK(threads.count(std::this_thread::get_id()) == 0);
    REQUIRE(s.sync("/"));
    CHECK(calls.size() == 0); // exactly once each
  }

  TEST_CASE("a handler is never called from inside its initiating function") {
    // Initiated on the dispatcher thread, an inline call would show at once;
    // a queued one cannot run before the current task ends.
    auto s = connect_shared();
    auto root = unique_root("not-inline");
    mailbox<std::vector<bool>> seen;
    s.post([&] {
      auto ran = std::make_shared<std::vector<bool>>(3, false);
      std::vector<bool> during;
      s.async_create(root, "", {}, [ran](auto) { (*ran)[0] = true; });
      during.push_back((*ran)[0]);
      s.async_create("bad", "", {}, [ran](auto) { (*ran)[1] = true; });
      during.push_back((*ran)[1]);
      s.async_get(root + "/none", [ran](auto) { (*ran)[2] = true; });
      during.push_back((*ran)[2]);
      seen.push(during);
      s.post([ran, &seen] { seen.push(*ran); });
    });
    auto during = seen.pop();
    REQUIRE(during);
    CHECK(*during == std::vector<bool>{false, false, false});
    // The refused call's handler was queued before the marker task.
    auto after = seen.pop();
    REQUIRE(after);
    CHECK((*after)[1]);
  }

  TEST_CASE("a blocking call on the dispatcher thread refuses instead of deadlocking") {
    auto s = connect_shared();
    mailbox<result<node>> got;
    s.post([&] { got.push(s.get("/")); });
    auto r = got.pop();
    REQUIRE(r);
    REQUIRE(!r->has_value());
    CHECK(r->error() == errc::would_deadlock);
  }

  TEST_CASE("close completes pending handlers and watches with closed") {
    auto root = unique_root("close");
    auto s = connect_shared();
    REQUIRE(s.create(root));
    state_log log(s);
    mailbox<result<watch_event>> watch;
    REQUIRE(s.exists(root, [&](result<watch_event> e) { watch.push(std::move(e)); }));
    REQUIRE(s.close());

    auto w = watch.pop();
    REQUIRE(w);
    REQUIRE(!w->has_value());
    CHECK(w->error() == errc::closed);
    CHECK(log.wait_for(session_state::closed));
    CHECK(s.state() == session_state::closed);

    mailbox<result<node>> after;
    s.async_get(root, [&](result<node> r) { after.push(std::move(r)); });
    auto a = after.pop();
    REQUIRE(a);
    CHECK(a->error() == errc::closed);
    CHECK(s.close().error() == errc::closed);
  }

  TEST_CASE("close lets a connected server answer the requests already sent") {
    // Closing right after sending used to fail them with closed, and the C
    // client leaked their completions (ZOOKEEPER-2894, seen by LeakSanitizer).
    auto root = unique_root("close-drain");
    auto s = connect_shared();
    REQUIRE(s.create(root, "x"));
    mailbox<result<node>> got;
    for (int i = 0; i < 20; ++i) s.async_get(root, [&](result<node> r) { got.push(std::move(r)); });
    REQUIRE(s.close());
    for (int i = 0; i < 20; ++i) {
      auto r = got.pop();
      REQUIRE(r);
      REQUIRE_MESSAGE(r->has_value(), r->error().message());
      CHECK(r->value().data == "x");
    }
  }

  TEST_CASE("destroying a session completes what it still owed") {
    mailbox<result<children_list>> pending;
    mailbox<result<watch_event>> watch;
    auto root = unique_root("destroy");
    {
      auto s = connect_shared();
      REQUIRE(s.create(root));
      REQUIRE(s.children(root, [&](result<watch_event> e) { watch.push(std::move(e)); }));
      s.async_children(root, [&](result<children_list> r) { pending.push(std::move(r)); });
    }
    // Both were answered (or failed with closed) before the destructor returned.
    CHECK(pending.size() == 1);
    CHECK(watch.size() == 1);
    auto w = watch.pop(0ms);
    REQUIRE(w);
    CHECK(w->error() == errc::closed);
  }

  TEST_CASE("ephemeral nodes go when their session closes") {
    auto root = unique_root("ephemeral-close");
    auto a = connect_shared();
    auto b = connect_shared();
    REQUIRE(a.create(root));
    REQUIRE(a.create(root + "/e", "", {create_mode::ephemeral}));
    mailbox<result<watch_event>> gone;
    REQUIRE(b.exists(root + "/e", [&](result<watch_event> e) { gone.push(std::move(e)); }));
    REQUIRE(a.close());
    auto e = gone.pop();
    REQUIRE((e && e->has_value()));
    CHECK(e->value().type == event_type::deleted);
  }

  TEST_CASE("the C client's log goes to the chosen sink") {
    mailbox<std::string> lines;
    set_client_log(log_level::info, [&](std::string_view l) { lines.push(std::string(l)); });
    {
      auto s = connect_shared();
      CHECK(s.connected());
    }
    set_client_log(log_level::quiet);
    auto l = lines.pop(5s);
    REQUIRE(l);
    CHECK(l->find("ZOO_") != std::string::npos);
  }
}
