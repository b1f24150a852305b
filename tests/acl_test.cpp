// ACLs on every recipe against a real server: two sessions with the same
// digest work together, the nodes the recipe made (parents included) carry
// the digest ACL, and sessions without it (none, or another digest) are
// refused with no_auth instead of hanging. docs/security.md cites these.
#include "support.hpp"

#include <zkrecipes/testing/server.hpp>
#include <zookeeper/zookeeper.h>

#include <condition_variable>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using namespace zkt;

namespace {

constexpr const char* app = "app:secret";
constexpr const char* eve = "eve:guess";

/// A session as `credential` (nullptr: none). Short operation timeout, so a
/// recipe that failed to report an error shows as a slow test, not a stuck one.
zkr::session open_as(const char* credential, std::optional<zkr::acl_list> default_acl = std::nullopt) {
  auto o = options_for(shared_server().connect_string());
  o.operation_timeout = 5s;
  if (credential) o.auth.push_back({"digest", credential});
  if (default_acl) o.default_acl = std::move(*default_acl);
  auto s = zkr::session::connect(std::move(o), 20s);
  REQUIRE_MESSAGE(s.has_value(), (s ? "" : s.error().message()));
  return std::move(s).value();
}

/// The holder `from` unlocks and `to` (same digest) gets the lock in turn.
template <class Lock> void hand_over(Lock& from, Lock& to) {
  REQUIRE(from.unlock());
  REQUIRE(to.lock(5s));
  CHECK(to.holds());
  REQUIRE(to.unlock());
}

/// A plain C-client handle: reads ACLs and tries raw writes, with no recipe
/// (and no zkrecipes session) in between.
class raw_zk {
public:
  explicit raw_zk(const char* credential = nullptr) {
    zh_ = zookeeper_init(shared_server().connect_string().c_str(), &raw_zk::on_state, 10000, nullptr, this, 0);
    REQUIRE(zh_ != nullptr);
    {
      std::unique_lock lk(m_);
      REQUIRE(cv_.wait_for(lk, 20s, [&] { return connected_; }));
    }
    if (credential) {
      REQUIRE(zoo_add_auth(zh_, "digest", credential, static_cast<int>(std::strlen(credential)), &raw_zk::on_auth,
                           this) == ZOK);
      std::unique_lock lk(m_);
      REQUIRE(cv_.wait_for(lk, 20s, [&] { return auth_rc_.has_value(); }));
      REQUIRE(*auth_rc_ == ZOK);
    }
  }
  ~raw_zk() { zookeeper_close(zh_); }
  raw_zk(const raw_zk&) = delete;
  raw_zk& operator=(const raw_zk&) = delete;

  int remove(const std::string& p) { return zoo_delete(zh_, p.c_str(), -1); }
  int set(const std::string& p, const std::string& d) {
    return zoo_set(zh_, p.c_str(), d.data(), static_cast<int>(d.size()), -1);
  }
  int create(const std::string& p) {
    return zoo_create(zh_, p.c_str(), "x", 1, &ZOO_OPEN_ACL_UNSAFE, 0, nullptr, 0);
  }
  int get(const std::string& p) {
    char buf[256];
    int len = sizeof buf;
    return zoo_get(zh_, p.c_str(), 0, buf, &len, nullptr);
  }
  bool exists(const std::string& p) { return zoo_exists(zh_, p.c_str(), 0, nullptr) == ZOK; }
  int children(const std::string& p, std::vector<std::string>* out = nullptr) {
    String_vector v{};
    int rc = zoo_get_children(zh_, p.c_str(), 0, &v);
    if (rc == ZOK) {
      for (int i = 0; i < v.count; ++i)
        if (out) out->push_back(v.data[i]);
      deallocate_String_vector(&v);
    }
    return rc;
  }
  std::pair<int, zkr::acl_list> acl(const std::string& p) {
    ACL_vector v{};
    Stat st{};
    int rc = zoo_get_acl(zh_, p.c_str(), &v, &st);
    zkr::acl_list out;
    if (rc == ZOK) {
      for (int i = 0; i < v.count; ++i) out.push_back({v.data[i].perms, v.data[i].id.scheme, v.data[i].id.id});
      deallocate_ACL_vector(&v);
    }
    return {rc, out};
  }

private:
  static void on_state(zhandle_t*, int type, int state, const char*, void* ctx) {
    auto* self = static_cast<raw_zk*>(ctx);
    if (type != ZOO_SESSION_EVENT || state != ZOO_CONNECTED_STATE) return;
    std::lock_guard lk(self->m_);
    self->connected_ = true;
    self->cv_.notify_all();
  }
  static void on_auth(int rc, const void* ctx) {
    auto* self = static_cast<raw_zk*>(const_cast<void*>(ctx));
    std::lock_guard lk(self->m_);
    self->auth_rc_ = rc;
    self->cv_.notify_all();
  }
  zhandle_t* zh_ = nullptr;
  std::mutex m_;
  std::condition_variable cv_;
  bool connected_ = false;
  std::optional<int> auth_rc_;
};

/// The nodes carry exactly app's digest with all permissions (`world_read`:
/// plus world:anyone read), never world:anyone write.
void check_app_acl(raw_zk& z, const std::vector<std::string>& paths, bool world_read = false) {
  for (auto& p : paths) {
    INFO("node: " << p);
    auto [rc, acl] = z.acl(p);
    REQUIRE(rc == ZOK);
    REQUIRE(acl.size() == (world_read ? 2u : 1u));
    CHECK(acl[0].scheme == "digest");
    // "app:" and base64(sha1("app:secret")): the hash, never the password.
    CHECK(acl[0].id.rfind("app:", 0) == 0);
    CHECK(acl[0].id.size() == 4 + 28);
    CHECK(acl[0].perms == zkr::perms::all);
    if (world_read) {
      CHECK(acl[1].scheme == "world");
      CHECK(acl[1].id == "anyone");
      CHECK(acl[1].perms == zkr::perms::read);
    }
  }
}

/// Every ancestor of `p` below "/", from the top, and `p` itself.
std::vector<std::string> with_ancestors(const std::string& p) {
  std::vector<std::string> out;
  for (std::size_t i = p.find('/', 1); i != std::string::npos; i = p.find('/', i + 1)) out.push_back(p.substr(0, i));
  out.push_back(p);
  return out;
}

/// A raw session refused on `p`: it cannot delete, overwrite, or create a child there.
void check_raw_refused(raw_zk& z, const std::string& p, bool can_read = false) {
  INFO("node: " << p);
  CHECK(z.remove(p) == ZNOAUTH);
  CHECK(z.set(p, "forged") == ZNOAUTH);
  CHECK(z.create(zkr::join(p, "intruder")) == ZNOAUTH);
  CHECK(z.get(p) == (can_read ? ZOK : ZNOAUTH));
}

bool is_no_auth(const zkr::error& e) { return e == zkr::zk_errc::no_auth; }

zkr::lock_options lock_acl(zkr::acl_list a = zkr::creator_all_acl()) {
  zkr::lock_options o;
  o.acl = std::move(a);
  return o;
}

zkr::queue_options queue_acl(zkr::acl_list a = zkr::creator_all_acl()) {
  zkr::queue_options o;
  o.acl = std::move(a);
  return o;
}

/// Runs `f` and fails the test if it took longer than `bound`: a refusal must
/// come back as an error, not after a long retry loop.
template <class F> auto within(std::chrono::milliseconds bound, F&& f) {
  auto t0 = std::chrono::steady_clock::now();
  auto r = f();
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  CHECK_MESSAGE(took <= bound, "took " << took.count() << " ms");
  return r;
}

} // namespace

// ---- locks -----------------------------------------------------------------

TEST_CASE("acl mutex: same digest hands the lock over; parents carry the ACL; strangers refused") {
  auto a = open_as(app), b = open_as(app), nobody = open_as(nullptr), evil = open_as(eve);
  raw_zk admin(app), raw_nobody, raw_eve(eve);
  auto path = unique_root("acl-mutex") + "/locks/m";
  zkr::mutex ma(a, path, lock_acl()), mb(b, path, lock_acl());
  REQUIRE(ma.lock(5s));
  const auto holder = ma.node_path();
  auto nodes = with_ancestors(path);
  nodes.push_back(holder);
  check_app_acl(admin, nodes);

  CHECK(mb.try_lock().value() == false);

  // No credentials: a plain lock is refused by the parent (no_auth); asking
  // for creator_all_acl without any identity is an invalid ACL.
  zkr::mutex plain(nobody, path), creator(nobody, path, lock_acl()), evil_lock(evil, path, lock_acl());
  auto r1 = within(2s, [&] { return plain.lock(500ms); });
  REQUIRE_FALSE(r1);
  CHECK_MESSAGE(is_no_auth(r1.error()), r1.error().message());
  auto r2 = within(2s, [&] { return creator.lock(500ms); });
  REQUIRE_FALSE(r2);
  CHECK_MESSAGE(r2.error() == zkr::zk_errc::invalid_acl, r2.error().message());
  auto r3 = within(2s, [&] { return evil_lock.lock(500ms); });
  REQUIRE_FALSE(r3);
  CHECK_MESSAGE(is_no_auth(r3.error()), r3.error().message());
  CHECK_FALSE(within(2s, [&] { return plain.participants(); }));

  // Nobody can delete the holder's node (DELETE is checked on the parent) or
  // jump the queue with a raw create.
  for (auto* z : {&raw_nobody, &raw_eve}) {
    check_raw_refused(*z, holder);
    check_raw_refused(*z, path);
  }
  CHECK(ma.holds());
  CHECK(admin.exists(holder));

  hand_over(ma, mb);
}

TEST_CASE("acl read_write_lock: readers share, a writer follows; both halves' nodes carry the ACL") {
  auto a = open_as(app), b = open_as(app), nobody = open_as(nullptr), evil = open_as(eve);
  raw_zk admin(app), raw_nobody, raw_eve(eve);
  auto path = unique_root("acl-rw") + "/rw";
  zkr::read_write_lock la(a, path, lock_acl()), lb(b, path, lock_acl());
  REQUIRE(la.read_lock().lock(5s));
  REQUIRE(lb.read_lock().lock(5s)); // shared
  auto reader = la.read_lock().node_path();
  auto nodes = with_ancestors(path);
  nodes.push_back(reader);
  nodes.push_back(lb.read_lock().node_path());
  check_app_acl(admin, nodes);

  for (auto* s : {&nobody, &evil}) {
    zkr::read_write_lock stranger(*s, path);
    auto r = within(2s, [&] { return stranger.read_lock().lock(500ms); });
    REQUIRE_FALSE(r);
    CHECK_MESSAGE(is_no_auth(r.error()), r.error().message());
    auto w = within(2s, [&] { return stranger.write_lock().lock(500ms); });
    REQUIRE_FALSE(w);
    CHECK_MESSAGE(is_no_auth(w.error()), w.error().message());
  }
  for (auto* z : {&raw_nobody, &raw_eve}) check_raw_refused(*z, reader);
  CHECK(la.read_lock().holds());

  REQUIRE(la.read_lock().unlock());
  REQUIRE(lb.read_lock().unlock());
  REQUIRE(lb.write_lock().lock(5s));
  check_app_acl(admin, {lb.write_lock().node_path()});
  for (auto* z : {&raw_nobody, &raw_eve}) check_raw_refused(*z, lb.write_lock().node_path());
  CHECK(lb.write_lock().holds());
  REQUIRE(lb.write_lock().unlock());
}

TEST_CASE("acl semaphore: the lease passes between same-digest sessions; strangers get no lease") {
  auto a = open_as(app), b = open_as(app), nobody = open_as(nullptr), evil = open_as(eve);
  raw_zk admin(app), raw_nobody, raw_eve(eve);
  auto path = unique_root("acl-sem") + "/sem";
  zkr::semaphore sa(a, path, 1, lock_acl()), sb(b, path, 1, lock_acl());
  auto la = sa.acquire(5s);
  REQUIRE(la);
  auto lease_node = la.value().node_path();
  auto nodes = with_ancestors(zkr::join(path, "leases"));
  nodes.push_back(lease_node);
  check_app_acl(admin, nodes);
  CHECK_FALSE(sb.try_acquire().value().has_value());

  for (auto* s : {&nobody, &evil}) {
    zkr::semaphore stranger(*s, path, 1);
    auto r = within(2s, [&] { return stranger.acquire(500ms); });
    REQUIRE_FALSE(r);
    CHECK_MESSAGE(is_no_auth(r.error()), r.error().message());
  }
  for (auto* z : {&raw_nobody, &raw_eve}) check_raw_refused(*z, lease_node);
  CHECK(la.value().holds());

  la.value().reset();
  auto lb = sb.acquire(5s);
  REQUIRE(lb);
  CHECK(lb.value().holds());
}

TEST_CASE("acl single_node_lock: one digest takes turns; the node and its parent carry the ACL") {
  auto a = open_as(app), b = open_as(app), nobody = open_as(nullptr), evil = open_as(eve);
  raw_zk admin(app), raw_nobody, raw_eve(eve);
  auto path = unique_root("acl-snl") + "/jobs/lock";
  zkr::single_node_lock la(a, path, lock_acl()), lb(b, path, lock_acl());
  REQUIRE(la.try_lock().value());
  check_app_acl(admin, with_ancestors(path));
  CHECK_FALSE(lb.try_lock().value());

  for (auto* s : {&nobody, &evil}) {
    zkr::single_node_lock stranger(*s, path);
    auto r = within(2s, [&] { return stranger.lock(500ms); });
    REQUIRE_FALSE(r);
    CHECK_MESSAGE(is_no_auth(r.error()), r.error().message());
  }
  for (auto* z : {&raw_nobody, &raw_eve}) check_raw_refused(*z, path);
  CHECK(la.holds());

  hand_over(la, lb);
}

// ---- election ----------------------------------------------------------------

TEST_CASE("acl leader_latch: leadership passes between same-digest candidates; strangers cannot join") {
  auto a = open_as(app), b = open_as(app), nobody = open_as(nullptr), evil = open_as(eve);
  raw_zk admin(app), raw_nobody, raw_eve(eve);
  auto path = unique_root("acl-latch") + "/election";
  zkr::latch_options o;
  o.acl = zkr::creator_all_acl();
  zkr::leader_latch la(a, path, o), lb(b, path, o);
  REQUIRE(la.start());
  REQUIRE(la.await_leadership(5s));
  REQUIRE(lb.start());
  REQUIRE(eventually([&] { return !lb.node_path().empty(); }, 5s));
  auto leader_node = la.node_path();
  auto nodes = with_ancestors(path);
  nodes.push_back(leader_node);
  nodes.push_back(lb.node_path());
  check_app_acl(admin, nodes);

  for (auto* s : {&nobody, &evil}) {
    zkr::leader_latch stranger(*s, path);
    REQUIRE(stranger.start());
    auto r = within(2s, [&] { return stranger.await_leadership(1500ms); });
    REQUIRE_FALSE(r);
    CHECK_MESSAGE(is_no_auth(r.error()), r.error().message());
    CHECK_FALSE(stranger.participants());
  }
  for (auto* z : {&raw_nobody, &raw_eve}) check_raw_refused(*z, leader_node);
  CHECK(la.has_leadership());

  REQUIRE(la.close());
  REQUIRE(lb.await_leadership(5s));
}

TEST_CASE("acl leader_selector: terms pass between same-digest selectors; a stranger's reports no_auth") {
  auto a = open_as(app), b = open_as(app), nobody = open_as(nullptr);
  raw_zk admin(app), raw_nobody;
  auto path = unique_root("acl-selector") + "/election";
  zkr::selector_options o;
  o.candidate.acl = zkr::creator_all_acl();
  o.requeue = false;
  mailbox<std::string> terms;
  auto task_of = [&](std::string who) {
    return [&terms, who](std::stop_token stop, const zkr::leadership&) {
      terms.push(who);
      while (!stop.stop_requested()) std::this_thread::sleep_for(5ms);
    };
  };
  zkr::leader_selector sa(a, path, task_of("a"), o);
  REQUIRE(sa.start());
  REQUIRE(terms.pop(5s) == std::optional<std::string>("a"));
  zkr::leader_selector sb(b, path, task_of("b"), o);
  REQUIRE(sb.start());
  std::vector<std::string> kids;
  REQUIRE(eventually([&] {
    kids.clear();
    return admin.children(path, &kids) == ZOK && kids.size() == 2;
  }, 5s));
  auto nodes = with_ancestors(path);
  for (auto& k : kids) nodes.push_back(zkr::join(path, k));
  check_app_acl(admin, nodes);
  for (auto& k : kids) check_raw_refused(raw_nobody, zkr::join(path, k));

  zkr::selector_options plain;
  plain.requeue = false;
  zkr::leader_selector stranger(nobody, path, task_of("stranger"), plain);
  REQUIRE(stranger.start());
  CHECK(eventually([&] { return stranger.last_error().has_value(); }, 3s));
  if (auto e = stranger.last_error()) CHECK_MESSAGE(is_no_auth(*e), e->message());
  CHECK_FALSE(stranger.is_leader());
  CHECK(within(2500ms, [&] { return stranger.close(); })); // its retry loop ends promptly
  CHECK(sa.is_leader());

  REQUIRE(sa.close());
  CHECK(terms.pop(5s) == std::optional<std::string>("b"));
  REQUIRE(sb.close());
}

// ---- queues ------------------------------------------------------------------

TEST_CASE("acl fifo_queue: an item put by one is taken by the other; strangers cannot put, take or delete") {
  auto a = open_as(app), b = open_as(app), nobody = open_as(nullptr), evil = open_as(eve);
  raw_zk admin(app), raw_nobody, raw_eve(eve);
  auto path = unique_root("acl-fifo") + "/q";
  zkr::fifo_queue<std::string> qa(a, path, queue_acl()), qb(b, path, queue_acl());
  auto item = qa.put("job-1");
  REQUIRE(item);
  auto nodes = with_ancestors(item.value()); // root, queue, bucket, item
  check_app_acl(admin, nodes);

  for (auto* s : {&nobody, &evil}) {
    zkr::fifo_queue<std::string> stranger(*s, path);
    auto p = within(2s, [&] { return stranger.put("forged"); });
    REQUIRE_FALSE(p);
    CHECK_MESSAGE(is_no_auth(p.error()), p.error().message());
    auto t = within(2s, [&] { return stranger.take(500ms); });
    REQUIRE_FALSE(t);
    CHECK_MESSAGE(is_no_auth(t.error()), t.error().message());
    auto tt = within(2s, [&] { return stranger.try_take(); });
    REQUIRE_FALSE(tt);
    CHECK_MESSAGE(is_no_auth(tt.error()), tt.error().message());
    auto pk = within(2s, [&] { return stranger.peek(); });
    REQUIRE_FALSE(pk);
    CHECK_MESSAGE(is_no_auth(pk.error()), pk.error().message());
  }
  for (auto* z : {&raw_nobody, &raw_eve}) {
    check_raw_refused(*z, item.value());
    check_raw_refused(*z, std::string(zkr::parent(item.value()))); // no forged item in the bucket
  }
  CHECK(admin.exists(item.value()));

  CHECK(qb.take(5s).value() == "job-1");
  CHECK(qb.size().value() == 0);
}

TEST_CASE("acl locking_queue: claimed by one digest session, acked; claims and items refuse strangers") {
  auto a = open_as(app), b = open_as(app), nobody = open_as(nullptr), evil = open_as(eve);
  raw_zk admin(app), raw_nobody, raw_eve(eve);
  auto path = unique_root("acl-lq") + "/q";
  zkr::locking_queue<std::string> qa(a, path, queue_acl()), qb(b, path, queue_acl());
  auto put = qa.put("job-1", 3);
  REQUIRE(put);
  auto got = qb.take(5s);
  REQUIRE(got);
  CHECK(got.value().value() == "job-1");
  const auto item = got.value().path();
  auto claim = item;
  claim[claim.rfind("/i-") + 1] = 'c'; // the claim sits next to its item
  REQUIRE(admin.exists(claim));
  auto nodes = with_ancestors(item); // root, queue, lane, bucket, item
  nodes.push_back(claim);
  check_app_acl(admin, nodes);

  for (auto* s : {&nobody, &evil}) {
    zkr::locking_queue<std::string> stranger(*s, path);
    auto p = within(2s, [&] { return stranger.put("forged", 3); });
    REQUIRE_FALSE(p);
    CHECK_MESSAGE(is_no_auth(p.error()), p.error().message());
    auto t = within(2s, [&] { return stranger.take(500ms); });
    REQUIRE_FALSE(t);
    CHECK_MESSAGE(is_no_auth(t.error()), t.error().message());
  }
  for (auto* z : {&raw_nobody, &raw_eve}) {
    check_raw_refused(*z, item);
    check_raw_refused(*z, claim);
  }
  CHECK(got.value().held());
  CHECK(admin.exists(claim));

  REQUIRE(got.value().ack());
  CHECK_FALSE(admin.exists(item));
}

// ---- barriers ----------------------------------------------------------------

TEST_CASE("acl barrier: raised by one, lowered by the other; a stranger cannot lower or raise it") {
  auto a = open_as(app), b = open_as(app), nobody = open_as(nullptr), evil = open_as(eve);
  raw_zk admin(app), raw_nobody, raw_eve(eve);
  auto path = unique_root("acl-barrier") + "/gates/g";
  zkr::barrier ba(a, path, zkr::creator_all_acl()), bb(b, path, zkr::creator_all_acl());
  REQUIRE(ba.set());
  check_app_acl(admin, with_ancestors(path));

  for (auto* s : {&nobody, &evil}) {
    zkr::barrier stranger(*s, path);
    auto r = within(2s, [&] { return stranger.remove(); });
    REQUIRE_FALSE(r);
    CHECK_MESSAGE(is_no_auth(r.error()), r.error().message());
    // exists needs no permission in ZooKeeper: a stranger still sees the
    // barrier up and waits on it (bounded here).
    CHECK(stranger.is_set().value());
    CHECK(within(2s, [&] { return stranger.wait(200ms); }).error() == zkr::errc::timed_out);
    // Nor can it raise a barrier of its own under the protected parent.
    zkr::barrier other(*s, std::string(zkr::parent(path)) + "/other");
    auto o = within(2s, [&] { return other.set(); });
    REQUIRE_FALSE(o);
    CHECK_MESSAGE(is_no_auth(o.error()), o.error().message());
  }
  for (auto* z : {&raw_nobody, &raw_eve}) check_raw_refused(*z, path);
  CHECK(admin.exists(path));

  mailbox<zkr::result<void>> passed;
  ba.async_wait(5s, [&](zkr::result<void> r) { passed.push(std::move(r)); });
  REQUIRE(bb.remove());
  auto p = passed.pop(5s);
  REQUIRE(p);
  CHECK(*p);
}

TEST_CASE("acl double_barrier: two digest members enter and leave; a stranger cannot enter or evict") {
  auto a = open_as(app), b = open_as(app), nobody = open_as(nullptr), evil = open_as(eve);
  raw_zk admin(app), raw_nobody, raw_eve(eve);
  auto path = unique_root("acl-dbarrier") + "/round";
  zkr::double_barrier da(a, path, 2, {"a", zkr::creator_all_acl()}), db(b, path, 2, {"b", zkr::creator_all_acl()});
  std::thread ta([&] { CHECK(da.enter(10s)); });
  REQUIRE(eventually([&] { return admin.exists(zkr::join(path, "a")); }, 5s));

  for (auto* s : {&nobody, &evil}) {
    zkr::double_barrier stranger(*s, path, 2, {"intruder", {}});
    auto r = within(2s, [&] { return stranger.enter(500ms); });
    REQUIRE_FALSE(r);
    CHECK_MESSAGE(is_no_auth(r.error()), r.error().message());
  }
  CHECK_FALSE(admin.exists(zkr::join(path, "ready"))); // the stranger did not count

  REQUIRE(db.enter(10s));
  ta.join();
  auto nodes = with_ancestors(path);
  for (auto n : {"a", "b", "ready"}) nodes.push_back(zkr::join(path, n));
  check_app_acl(admin, nodes);
  for (auto* z : {&raw_nobody, &raw_eve}) {
    check_raw_refused(*z, zkr::join(path, "a"));
    check_raw_refused(*z, zkr::join(path, "ready"));
  }

  std::thread tl([&] { CHECK(da.leave(10s)); });
  CHECK(db.leave(10s));
  tl.join();
}

// ---- shared data -------------------------------------------------------------

TEST_CASE("acl shared_value: one digest reads and compare-and-sets; strangers neither read nor write") {
  auto a = open_as(app), b = open_as(app), nobody = open_as(nullptr), evil = open_as(eve);
  raw_zk admin(app), raw_nobody, raw_eve(eve);
  auto path = unique_root("acl-value") + "/cfg/v";
  zkr::shared_value<std::string> va(a, path, "initial", zkr::creator_all_acl());
  zkr::shared_value<std::string> vb(b, path, "initial", zkr::creator_all_acl());
  auto v0 = va.set("one");
  REQUIRE(v0);
  check_app_acl(admin, with_ancestors(path));
  auto seen = vb.get();
  REQUIRE(seen);
  CHECK(seen.value().value == "one");
  REQUIRE(vb.compare_and_set(seen.value().version, "two"));

  for (auto* s : {&nobody, &evil}) {
    zkr::shared_value<std::string> stranger(*s, path, "x");
    auto g = within(2s, [&] { return stranger.get(); });
    REQUIRE_FALSE(g);
    CHECK_MESSAGE(is_no_auth(g.error()), g.error().message());
    auto w = within(2s, [&] { return stranger.set("forged"); });
    REQUIRE_FALSE(w);
    CHECK_MESSAGE(is_no_auth(w.error()), w.error().message());
  }
  for (auto* z : {&raw_nobody, &raw_eve}) check_raw_refused(*z, path);
  CHECK(va.get().value().value == "two");
}

TEST_CASE("acl shared_value with world read: a stranger reads but cannot write") {
  auto a = open_as(app), nobody = open_as(nullptr);
  raw_zk admin(app), raw_nobody;
  auto path = unique_root("acl-value-wr") + "/v";
  zkr::shared_value<std::string> va(a, path, "initial", zkr::creator_all_world_read_acl());
  REQUIRE(va.set("public"));
  check_app_acl(admin, with_ancestors(path), true);
  zkr::shared_value<std::string> reader(nobody, path, "x");
  CHECK(within(2s, [&] { return reader.get(); }).value().value == "public");
  auto w = within(2s, [&] { return reader.set("forged"); });
  REQUIRE_FALSE(w);
  CHECK_MESSAGE(is_no_auth(w.error()), w.error().message());
  check_raw_refused(raw_nobody, path, true);
  CHECK(va.get().value().value == "public");
}

TEST_CASE("acl shared_counter: two digest sessions count together; strangers cannot count or read") {
  auto a = open_as(app), b = open_as(app), nobody = open_as(nullptr), evil = open_as(eve);
  raw_zk admin(app), raw_nobody, raw_eve(eve);
  auto path = unique_root("acl-counter") + "/hits";
  zkr::shared_counter ca(a, path, 0, zkr::creator_all_acl()), cb(b, path, 0, zkr::creator_all_acl());
  CHECK(ca.increment().value() == 1);
  CHECK(cb.increment(2).value() == 3);
  check_app_acl(admin, with_ancestors(path));
  for (auto* s : {&nobody, &evil}) {
    zkr::shared_counter stranger(*s, path);
    auto i = within(2s, [&] { return stranger.increment(); });
    REQUIRE_FALSE(i);
    CHECK_MESSAGE(is_no_auth(i.error()), i.error().message());
    auto g = within(2s, [&] { return stranger.get(); });
    REQUIRE_FALSE(g);
    CHECK_MESSAGE(is_no_auth(g.error()), g.error().message());
  }
  for (auto* z : {&raw_nobody, &raw_eve}) check_raw_refused(*z, path);
  CHECK(ca.get().value() == 3);
}

TEST_CASE("acl id_generator: ids from both digest sessions grow; strangers get none") {
  auto a = open_as(app), b = open_as(app), nobody = open_as(nullptr), evil = open_as(eve);
  raw_zk admin(app), raw_nobody, raw_eve(eve);
  auto path = unique_root("acl-ids") + "/orders";
  zkr::id_generator ga(a, path, zkr::creator_all_acl()), gb(b, path, zkr::creator_all_acl());
  auto i1 = ga.next();
  REQUIRE(i1);
  auto i2 = gb.next();
  REQUIRE(i2);
  CHECK(i2.value().id > i1.value().id);
  check_app_acl(admin, with_ancestors(path));
  for (auto* s : {&nobody, &evil}) {
    zkr::id_generator stranger(*s, path);
    auto r = within(2s, [&] { return stranger.next(); });
    REQUIRE_FALSE(r);
    CHECK_MESSAGE(is_no_auth(r.error()), r.error().message());
  }
  for (auto* z : {&raw_nobody, &raw_eve}) check_raw_refused(*z, path);
}

TEST_CASE("acl group_membership: digest members see each other; strangers cannot join, list or evict") {
  auto a = open_as(app), b = open_as(app), nobody = open_as(nullptr), evil = open_as(eve);
  raw_zk admin(app), raw_nobody, raw_eve(eve);
  auto path = unique_root("acl-group") + "/workers";
  zkr::group_membership ga(a, path, zkr::creator_all_acl()), gb(b, path, zkr::creator_all_acl());
  REQUIRE(ga.join("a", "10.0.0.1"));
  REQUIRE(gb.join("b", "10.0.0.2"));
  REQUIRE(gb.watch(5s));
  CHECK(eventually([&] { return gb.members().size() == 2; }, 5s));
  auto nodes = with_ancestors(path);
  nodes.push_back(zkr::join(path, "a"));
  nodes.push_back(zkr::join(path, "b"));
  check_app_acl(admin, nodes);

  for (auto* s : {&nobody, &evil}) {
    zkr::group_membership stranger(*s, path);
    auto j = within(2s, [&] { return stranger.join("intruder"); });
    REQUIRE_FALSE(j);
    CHECK_MESSAGE(is_no_auth(j.error()), j.error().message());
  }
  for (auto* z : {&raw_nobody, &raw_eve}) check_raw_refused(*z, zkr::join(path, "a"));
  CHECK(gb.members().size() == 2);
}

TEST_CASE("acl group_membership: a stranger's watch of a protected group reports no_auth, not a timeout") {
  auto a = open_as(app), nobody = open_as(nullptr);
  auto path = unique_root("acl-group-watch") + "/workers";
  zkr::group_membership ga(a, path, zkr::creator_all_acl());
  REQUIRE(ga.join("a"));
  zkr::group_membership stranger(nobody, path);
  auto w = within(2500ms, [&] { return stranger.watch(2s); });
  REQUIRE_FALSE(w);
  CHECK_MESSAGE(is_no_auth(w.error()), w.error().message());
  CHECK(stranger.members().empty());
}

// ---- config, discovery, caches -------------------------------------------------

TEST_CASE("acl config: digest publishers take turns; a world-read subscriber without credentials follows") {
  auto a = open_as(app), b = open_as(app), nobody = open_as(nullptr), evil = open_as(eve);
  raw_zk admin(app), raw_nobody, raw_eve(eve);
  auto path = unique_root("acl-config") + "/app/cfg";
  zkr::config_options o;
  o.acl = zkr::creator_all_world_read_acl();
  zkr::config_publisher<std::string> pa(a, path, o), pb(b, path, o);
  auto v0 = pa.publish("v0", zkr::config_absent);
  REQUIRE(v0);
  auto nodes = with_ancestors(path);
  nodes.push_back(zkr::join(path, "v-0000000000"));
  check_app_acl(admin, nodes, true);

  zkr::config_subscriber<std::string> sub(nobody, path);
  CHECK(within(3s, [&] { return sub.start(2s); }).value() == zkr::config_source::live);
  REQUIRE(sub.current());
  CHECK(sub.current()->value == "v0");

  REQUIRE(pb.publish("v1", v0.value()));
  CHECK(sub.wait_for_version(v0.value() + 1, 5s));
  CHECK(sub.current()->value == "v1");

  for (auto* s : {&nobody, &evil}) {
    zkr::config_publisher<std::string> forger(*s, path);
    auto f = within(2s, [&] { return forger.publish("forged", v0.value() + 1); });
    REQUIRE_FALSE(f);
    CHECK_MESSAGE(is_no_auth(f.error()), f.error().message());
    auto rb = within(2s, [&] { return forger.rollback(v0.value(), v0.value() + 1); });
    REQUIRE_FALSE(rb);
    CHECK_MESSAGE(is_no_auth(rb.error()), rb.error().message());
  }
  for (auto* z : {&raw_nobody, &raw_eve}) {
    check_raw_refused(*z, path, true);
    check_raw_refused(*z, zkr::join(path, "v-0000000001"), true);
  }
  CHECK(pa.read().value().value == "v1");
  CHECK(sub.current()->value == "v1");
}

TEST_CASE("acl config: a subscriber without credentials is refused with no_auth under creator_all_acl") {
  auto a = open_as(app), nobody = open_as(nullptr);
  auto path = unique_root("acl-config-private") + "/cfg";
  zkr::config_options o;
  o.acl = zkr::creator_all_acl();
  zkr::config_publisher<std::string> pa(a, path, o);
  REQUIRE(pa.publish("secret", zkr::config_absent));
  zkr::config_subscriber<std::string> sub(nobody, path);
  auto r = within(3s, [&] { return sub.start(2s); });
  REQUIRE_FALSE(r);
  CHECK_MESSAGE(is_no_auth(r.error()), r.error().message());
  CHECK_FALSE(sub.current());
}

TEST_CASE("acl service registry: digest instances are discovered without credentials; fakes are refused") {
  auto a = open_as(app), b = open_as(app), nobody = open_as(nullptr), evil = open_as(eve);
  raw_zk admin(app), raw_nobody, raw_eve(eve);
  zkr::registry_options o;
  o.base_path = unique_root("acl-services") + "/services";
  o.acl = zkr::creator_all_world_read_acl();
  zkr::service_registration ra(a, {"api", "host-a", "10.0.0.1", {{"http", 8080}}, {}, {}, 0, 0}, o);
  zkr::service_registration rb(b, {"api", "host-b", "10.0.0.2", {{"http", 8080}}, {}, {}, 0, 0}, o);
  auto na = ra.start();
  REQUIRE(na);
  REQUIRE(rb.start());
  auto nodes = with_ancestors(na.value());
  nodes.push_back(rb.node_path());
  check_app_acl(admin, nodes, true);

  zkr::service_discovery d(nobody, "api", o);
  REQUIRE(within(3s, [&] { return d.start(2s); }));
  CHECK(eventually([&] { return d.instances().size() == 2; }, 5s));

  for (auto* s : {&nobody, &evil}) {
    zkr::registry_options plain = o;
    plain.acl.reset();
    zkr::service_registration fake(*s, {"api", "fake", "6.6.6.6", {{"http", 80}}, {}, {}, 0, 0}, plain);
    auto r = within(2s, [&] { return fake.start(); });
    REQUIRE_FALSE(r);
    CHECK_MESSAGE(is_no_auth(r.error()), r.error().message());
  }
  for (auto* z : {&raw_nobody, &raw_eve}) {
    check_raw_refused(*z, na.value(), true);
    check_raw_refused(*z, std::string(zkr::parent(na.value())), true);
  }
  CHECK(d.instances().size() == 2);
  for (auto& i : d.instances()) CHECK(i.id != "fake");
}

TEST_CASE("acl service discovery without credentials under creator_all_acl: no instances, the refusal named") {
  auto a = open_as(app), nobody = open_as(nullptr);
  zkr::registry_options o;
  o.base_path = unique_root("acl-services-private") + "/services";
  o.acl = zkr::creator_all_acl();
  zkr::service_registration ra(a, {"api", "host-a", "10.0.0.1", {{"http", 8080}}, {}, {}, 0, 0}, o);
  REQUIRE(ra.start());
  zkr::service_discovery d(nobody, "api", o);
  auto r = within(3s, [&] { return d.start(2s); });
  // The refusal must surface as an error, not as "no instance is up".
  REQUIRE_FALSE(r);
  CHECK_MESSAGE(is_no_auth(r.error()), r.error().message());
  CHECK(d.instances().empty());
}

TEST_CASE("acl caches: node and children caches read world-read nodes without credentials, refused otherwise") {
  auto a = open_as(app), nobody = open_as(nullptr);
  auto root = unique_root("acl-caches");
  REQUIRE(a.create(root, "", {zkr::create_mode::persistent, zkr::creator_all_world_read_acl()}));
  REQUIRE(a.create(root + "/open", "hello", {zkr::create_mode::persistent, zkr::creator_all_world_read_acl()}));
  REQUIRE(a.create(root + "/open/c", "child", {zkr::create_mode::persistent, zkr::creator_all_world_read_acl()}));
  REQUIRE(a.create(root + "/closed", "secret", {zkr::create_mode::persistent, zkr::creator_all_acl()}));
  REQUIRE(a.create(root + "/closed/c", "secret", {zkr::create_mode::persistent, zkr::creator_all_acl()}));

  zkr::node_cache open_node(nobody, root + "/open");
  REQUIRE(within(3s, [&] { return open_node.start(2s); }));
  REQUIRE(open_node.current());
  CHECK(open_node.current()->data == "hello");
  CHECK_FALSE(open_node.last_error());
  zkr::children_cache open_kids(nobody, root + "/open");
  REQUIRE(within(3s, [&] { return open_kids.start(2s); }));
  CHECK(open_kids.children().size() == 1);

  zkr::node_cache closed_node(nobody, root + "/closed");
  auto rn = within(3s, [&] { return closed_node.start(2s); });
  CHECK_FALSE(closed_node.current());
  REQUIRE(closed_node.last_error());
  CHECK_MESSAGE(is_no_auth(*closed_node.last_error()), closed_node.last_error()->message());
  (void)rn; // start itself completes: the refused node is left out of the mirror
  zkr::children_cache closed_kids(nobody, root + "/closed");
  (void)within(3s, [&] { return closed_kids.start(2s); });
  CHECK(closed_kids.children().empty());
  REQUIRE(closed_kids.last_error());
  CHECK_MESSAGE(is_no_auth(*closed_kids.last_error()), closed_kids.last_error()->message());
}

// ---- session default ACL, pre-existing parents -----------------------------------

TEST_CASE("acl session default_acl = creator_all_acl protects recipes that name no ACL") {
  auto a = open_as(app, zkr::creator_all_acl()), b = open_as(app, zkr::creator_all_acl());
  auto nobody = open_as(nullptr), evil = open_as(eve);
  raw_zk admin(app), raw_nobody, raw_eve(eve);
  auto root = unique_root("acl-default");

  zkr::mutex ma(a, root + "/locks/m"), mb(b, root + "/locks/m");
  REQUIRE(ma.lock(5s));
  auto nodes = with_ancestors(root + "/locks/m");
  nodes.push_back(ma.node_path());
  check_app_acl(admin, nodes);
  zkr::mutex stranger_lock(evil, root + "/locks/m");
  auto rl = within(2s, [&] { return stranger_lock.lock(500ms); });
  REQUIRE_FALSE(rl);
  CHECK_MESSAGE(is_no_auth(rl.error()), rl.error().message());
  check_raw_refused(raw_nobody, ma.node_path());
  REQUIRE(ma.unlock());
  REQUIRE(mb.lock(5s));
  REQUIRE(mb.unlock());

  zkr::fifo_queue<std::string> qa(a, root + "/q"), qb(b, root + "/q");
  auto item = qa.put("job");
  REQUIRE(item);
  check_app_acl(admin, with_ancestors(item.value()));
  zkr::fifo_queue<std::string> stranger_q(nobody, root + "/q");
  auto t = within(2s, [&] { return stranger_q.take(300ms); });
  REQUIRE_FALSE(t);
  CHECK_MESSAGE(is_no_auth(t.error()), t.error().message());
  check_raw_refused(raw_eve, item.value());
  CHECK(qb.take(5s).value() == "job");
}

TEST_CASE("acl limits: a parent that already existed keeps its open ACL; a same-digest peer may do anything") {
  auto a = open_as(app), nobody = open_as(nullptr);
  raw_zk admin(app), raw_nobody, raw_peer(app);
  auto path = unique_root("acl-limits") + "/m";
  REQUIRE(nobody.ensure_path(path)); // made open by someone else first
  zkr::mutex ma(a, path, lock_acl());
  REQUIRE(ma.lock(5s));
  auto [rc, acl] = admin.acl(path);
  REQUIRE(rc == ZOK);
  CHECK(acl == zkr::open_acl_unsafe()); // not changed by the recipe
  check_app_acl(admin, {ma.node_path()});
  // DELETE is checked on the parent: under an open parent anyone may delete
  // the holder's node, ACL or not.
  CHECK(raw_nobody.set(ma.node_path(), "x") == ZNOAUTH);
  CHECK(raw_nobody.remove(ma.node_path()) == ZOK);

  // Under a protected parent, any session with the same digest is the owner too.
  auto path2 = unique_root("acl-limits-peer") + "/m";
  zkr::mutex mb(a, path2, lock_acl());
  REQUIRE(mb.lock(5s));
  CHECK(raw_peer.remove(mb.node_path()) == ZOK);
}
