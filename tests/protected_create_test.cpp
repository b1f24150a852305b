// Protected creates: no orphan after a lost reply, no adoption of a node
// that another session owns.
#include "support.hpp"

#include <zkrecipes/testing/tcp_proxy.hpp>

using namespace zkt;
using namespace zkrecipes;

namespace {

std::vector<std::string> names_with_id(session& s, const std::string& parent, std::string_view id) {
  std::vector<std::string> out;
  auto kids = s.children(parent);
  REQUIRE(kids);
  for (auto& n : kids.value().names)
    if (protected_id_of(n) == id) out.push_back(n);
  return out;
}

} // namespace

TEST_SUITE("protected create") {
  TEST_CASE("names carry a unique id that can be read back") {
    auto a = make_protected_id(), b = make_protected_id();
    CHECK(a.size() == 32);
    CHECK(a != b);
    auto n = protected_name(a, "lock-") + "0000000007";
    CHECK(protected_id_of(n) == a);
    CHECK(strip_protected(n) == "lock-0000000007");
    CHECK(sequence_of(n) == 7);
    CHECK_FALSE(protected_id_of("lock-0000000007"));
    CHECK_FALSE(protected_id_of("_c_nothex-lock"));
    CHECK(strip_protected("plain") == "plain");
  }

  TEST_CASE("an uncontended protected create makes one ephemeral sequential node") {
    auto s = connect_shared();
    auto root = unique_root("pc-plain");
    REQUIRE(s.create(root));
    auto r = protected_create(s, root, "lock-", "payload");
    REQUIRE(r);
    auto n = std::string(name(r.value().path));
    REQUIRE(protected_id_of(n));
    CHECK(strip_protected(n).substr(0, 5) == "lock-");
    CHECK(sequence_of(n));
    CHECK(r.value().stat.ephemeral_owner == s.session_id());
    CHECK(s.get(r.value().path).value().data == "payload");
  }

  TEST_CASE("a create whose reply is lost after it applied is adopted, not repeated") {
    auto s = connect_shared();
    auto root = unique_root("pc-lost-reply");
    REQUIRE(s.create(root));
    protected_options o;
    o.id = make_protected_id();
    {
      lost_replies fault({{"create", "", 1}});
      auto r = protected_create(s, root, "n-", "", o);
      REQUIRE_MESSAGE(r, (r ? "" : r.error().message()));
      CHECK(lost_replies::left("create") == 0);
      CHECK(r.value().stat.ephemeral_owner == s.session_id());
    }
    CHECK(names_with_id(s, root, o.id).size() == 1);
    CHECK(s.children(root).value().names.size() == 1);
  }

  TEST_CASE("a look-up that fails too is repeated, never followed by a second create") {
    auto s = connect_shared();
    auto root = unique_root("pc-lost-lookup");
    REQUIRE(s.create(root));
    protected_options o;
    o.id = make_protected_id();
    {
      // The create applies but its reply is lost; then the owner check's
      // exists loses more replies than the session's own retries cover.
      lost_replies fault({{"create", "", 1}, {"exists", "", s.options().retry.max_retries + 1}});
      auto r = protected_create(s, root, "n-", "", o);
      REQUIRE_MESSAGE(r, (r ? "" : r.error().message()));
      CHECK(lost_replies::left("exists") == 0);
    }
    CHECK(names_with_id(s, root, o.id).size() == 1);
  }

  TEST_CASE("a reply lost in a cut connection leaves exactly one node") {
    auto proxy = testing::tcp_proxy::start(shared_server().port());
    REQUIRE(proxy);
    auto s = connect(proxy.value().connect_string());
    auto watcher_session = connect_shared();
    auto root = unique_root("pc-cut");
    REQUIRE(s.create(root));

    // Let the request through, hold the reply, and cut once the node exists.
    mailbox<result<watch_event>> child;
    REQUIRE(watcher_session.children(root, [&](result<watch_event> e) { child.push(std::move(e)); }));
    proxy.value().stall_replies();
    protected_options o;
    o.id = make_protected_id();
    mailbox<result<created_node>> done;
    async_protected_create(s, root, "n-", "", o, [&](result<created_node> r) { done.push(std::move(r)); });
    REQUIRE(child.pop());
    CHECK(done.size() == 0); // the reply is still held
    proxy.value().cut();
    proxy.value().pass();

    auto r = done.pop(30s);
    REQUIRE(r);
    REQUIRE_MESSAGE(r->has_value(), (r->has_value() ? "" : r->error().message()));
    CHECK(r->value().stat.ephemeral_owner == s.session_id());
    auto mine = names_with_id(watcher_session, root, o.id);
    REQUIRE(mine.size() == 1);
    CHECK(join(root, mine[0]) == r->value().path);
  }

  TEST_CASE("a node with our id owned by another session is never adopted") {
    auto s = connect_shared();
    auto other = connect_shared();
    auto root = unique_root("pc-owner");
    REQUIRE(s.create(root));
    protected_options o;
    o.id = make_protected_id();
    // Another session's node carrying the same id, as an old session's node
    // would be listed for a moment after an expiry.
    auto foreign = protected_create(other, root, "n-", "", o);
    REQUIRE(foreign);
    {
      lost_replies fault({{"create", "", 1}});
      auto r = protected_create(s, root, "n-", "", o);
      REQUIRE(r);
      CHECK(r.value().path != foreign.value().path);
      CHECK(r.value().stat.ephemeral_owner == s.session_id());
    }
    CHECK(names_with_id(s, root, o.id).size() == 2);
  }

  TEST_CASE("bad arguments are refused before sending") {
    auto s = connect_shared();
    auto r = protected_create(s, "no-slash", "n-");
    REQUIRE(!r);
    CHECK(r.error() == errc::invalid_path);
    protected_options o;
    o.id = "not-hex";
    CHECK(protected_create(s, "/", "n-", "", o).error() == errc::invalid_argument);
    CHECK(protected_create(s, "/", "a/b").error() == errc::invalid_path);
    CHECK(protected_create(s, unique_root("missing-parent"), "n-").error() == zk_errc::no_node);
  }
}
