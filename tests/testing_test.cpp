// Tests of the test harness itself (zkrecipes/testing/): real JVMs, real
// sockets, and the raw ZooKeeper C client as the observer, so that no other
// zkrecipes code is needed to trust these results.
#include <zkrecipes/testing/ensemble.hpp>
#include <zkrecipes/testing/expire.hpp>
#include <zkrecipes/testing/server.hpp>
#include <zkrecipes/testing/tcp_proxy.hpp>

#include "support.hpp"

#include <doctest/doctest.h>
#include <zookeeper/zookeeper.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

namespace zt = zkrecipes::testing;
using namespace std::chrono_literals;
using ms = std::chrono::milliseconds;

/// Polls `pred` every 10 ms until it holds or `timeout` passes.
template <class Pred> bool eventually(Pred pred, ms timeout = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
}

/// True when no process has this pid (it was reaped, not a zombie).
bool process_gone(int pid) { return ::kill(pid, 0) == -1 && errno == ESRCH; }

void quiet_log(const char*) {}

/// A raw C client handle that records every session state its watcher sees.
class zk_client {
public:
  explicit zk_client(const std::string& hosts, int session_timeout_ms = 10000) {
    zh_ = zookeeper_init2(hosts.c_str(), &zk_client::watcher, session_timeout_ms, nullptr, this,
                          0, quiet_log);
    REQUIRE(zh_ != nullptr);
  }
  zk_client(const zk_client&) = delete;
  zk_client& operator=(const zk_client&) = delete;
  ~zk_client() { zookeeper_close(zh_); }

  zhandle_t* handle() const { return zh_; }

  std::size_t events() {
    std::lock_guard<std::mutex> lk(mu_);
    return states_.size();
  }

  /// Waits until the watcher has seen `state` at or after event number `from`.
  bool wait_state(int state, ms timeout, std::size_t from = 0) {
    std::unique_lock<std::mutex> lk(mu_);
    return cv_.wait_for(lk, timeout, [&] {
      for (std::size_t i = from; i < states_.size(); ++i)
        if (states_[i] == state) return true;
      return false;
    });
  }

  bool wait_connected(ms timeout = 10s) { return wait_state(ZOO_CONNECTED_STATE, timeout); }

private:
  static void watcher(zhandle_t*, int type, int state, const char*, void* ctx) {
    if (type != ZOO_SESSION_EVENT) return;
    auto* self = static_cast<zk_client*>(ctx);
    {
      std::lock_guard<std::mutex> lk(self->mu_);
      self->states_.push_back(state);
    }
    self->cv_.notify_all();
  }

  zhandle_t* zh_ = nullptr;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int> states_;
};

/// One asynchronous call's completion.
struct op {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  int rc = 0;
  std::string value;

  void finish(int r, std::string v = {}) {
    {
      std::lock_guard<std::mutex> lk(mu);
      done = true;
      rc = r;
      value = std::move(v);
    }
    cv.notify_all();
  }
  bool wait(ms timeout) {
    std::unique_lock<std::mutex> lk(mu);
    return cv.wait_for(lk, timeout, [&] { return done; });
  }
  bool is_done() {
    std::lock_guard<std::mutex> lk(mu);
    return done;
  }
};

using op_ptr = std::shared_ptr<op>;

/// The completion context: a heap copy of the shared_ptr, freed by the callback.
op_ptr* hold(const op_ptr& o) { return new op_ptr(o); }
op_ptr take(const void* data) {
  std::unique_ptr<op_ptr> h(static_cast<op_ptr*>(const_cast<void*>(data)));
  return *h;
}

op_ptr acreate(zk_client& c, const std::string& path, const std::string& data,
               int mode = ZOO_PERSISTENT, std::int64_t ttl = -1) {
  auto o = std::make_shared<op>();
  auto* ctx = hold(o);
  const auto done = [](int rc, const char*, const void* d) { take(d)->finish(rc); };
  const int rc = ttl > 0 ? zoo_acreate_ttl(c.handle(), path.c_str(), data.data(),
                                           static_cast<int>(data.size()), &ZOO_OPEN_ACL_UNSAFE,
                                           mode, ttl, done, ctx)
                         : zoo_acreate(c.handle(), path.c_str(), data.data(),
                                       static_cast<int>(data.size()), &ZOO_OPEN_ACL_UNSAFE, mode,
                                       done, ctx);
  if (rc != ZOK) {
    delete ctx;
    o->finish(rc);
  }
  return o;
}

op_ptr aget(zk_client& c, const std::string& path) {
  auto o = std::make_shared<op>();
  auto* ctx = hold(o);
  const int rc = zoo_aget(
      c.handle(), path.c_str(), 0,
      [](int rc, const char* v, int len, const Stat*, const void* d) {
        take(d)->finish(rc, v != nullptr && len > 0 ? std::string(v, static_cast<std::size_t>(len))
                                                    : std::string());
      },
      ctx);
  if (rc != ZOK) {
    delete ctx;
    o->finish(rc);
  }
  return o;
}

constexpr int no_reply = 1; // not a ZooKeeper code: the call did not complete in time

int create_sync(zk_client& c, const std::string& path, const std::string& data,
                int mode = ZOO_PERSISTENT, std::int64_t ttl = -1) {
  auto o = acreate(c, path, data, mode, ttl);
  return o->wait(10s) ? o->rc : no_reply;
}

/// The node's data, or the error code.
std::pair<int, std::string> get_sync(zk_client& c, const std::string& path) {
  auto o = aget(c, path);
  if (!o->wait(10s)) return {no_reply, {}};
  return {o->rc, o->value};
}

/// Creates through failover: retries connection loss; an "exists" after a
/// lost reply means an earlier attempt was applied.
bool create_eventually(zk_client& c, const std::string& path, const std::string& data) {
  bool lost = false;
  return eventually(
      [&] {
        const int rc = create_sync(c, path, data);
        if (rc == ZOK || (rc == ZNODEEXISTS && lost)) return true;
        lost = true;
        return false;
      },
      20s);
}

bool read_eventually(zk_client& c, const std::string& path, const std::string& expected) {
  return eventually([&] { return get_sync(c, path) == std::make_pair(int(ZOK), expected); }, 20s);
}

/// One server for the tests that do not stop, kill or restart it.
zt::server& shared_server() {
  static zt::server s = [] {
    zt::server_options o;
    o.extended_types = true;
    return zt::server::start(o).value();
  }();
  return s;
}

} // namespace

TEST_SUITE("testing") {

TEST_CASE("a server starts on a free loopback port and answers srvr with Mode: standalone") {
  auto& s = shared_server();
  CHECK(s.running());
  CHECK(s.pid() > 0);
  CHECK(s.port() != 0);
  CHECK(s.connect_string() == "127.0.0.1:" + std::to_string(s.port()));
  CHECK(std::filesystem::exists(s.directory() / "zoo.cfg"));
  auto r = s.four_letter("srvr");
  REQUIRE(r);
  CHECK(r.value().find("Mode: standalone") != std::string::npos);

  zk_client c(s.connect_string());
  REQUIRE(c.wait_connected());
  CHECK(create_sync(c, "/testing-start", "x") == ZOK);
}

TEST_CASE("extended_types lets a client create TTL nodes") {
  auto& s = shared_server();
  zk_client c(s.connect_string());
  REQUIRE(c.wait_connected());
  CHECK(create_sync(c, "/testing-ttl", "t", ZOO_PERSISTENT_WITH_TTL, 60000) == ZOK);
}

TEST_CASE("stop then restart keeps the data and the port") {
  zt::server_options o;
  o.extra_config = {{"maxSessionTimeout", "30000"}, {"globalOutstandingLimit", "500"}};
  auto s = zt::server::start(o).value();
  const auto port = s.port();
  const auto conf = s.four_letter("conf");
  REQUIRE(conf);
  CHECK(conf.value().find("maxSessionTimeout=30000") != std::string::npos);
  {
    std::ifstream cfg(s.directory() / "zoo.cfg");
    int lines = 0;
    for (std::string line; std::getline(cfg, line);)
      lines += line.rfind("maxSessionTimeout=", 0) == 0;
    CHECK(lines == 1); // an extra_config key replaces the harness's line
  }

  {
    zk_client c(s.connect_string());
    REQUIRE(c.wait_connected());
    REQUIRE(create_sync(c, "/kept", "v1") == ZOK);
  }
  const int pid = s.pid();
  REQUIRE(s.stop());
  CHECK_FALSE(s.running());
  CHECK(s.pid() == -1);
  CHECK(process_gone(pid));
  CHECK_FALSE(s.four_letter("srvr"));

  REQUIRE(s.restart());
  CHECK(s.running());
  CHECK(s.port() == port);
  zk_client c(s.connect_string());
  REQUIRE(c.wait_connected());
  CHECK(get_sync(c, "/kept") == std::make_pair(int(ZOK), std::string("v1")));
}

TEST_CASE("kill leaves no process behind, and restart serves again") {
  auto s = zt::server::start().value();
  const int pid = s.pid();
  REQUIRE(pid > 0);
  REQUIRE(s.kill());
  CHECK_FALSE(s.running());
  CHECK(s.pid() == -1);
  CHECK(process_gone(pid)); // reaped: not even a zombie
  CHECK(s.kill());          // a second kill is a no-op

  REQUIRE(s.restart());
  auto r = s.four_letter("srvr");
  REQUIRE(r);
  CHECK(r.value().find("Mode: standalone") != std::string::npos);
}

TEST_CASE("the destructor kills the server and removes its directory") {
  std::filesystem::path dir;
  int pid = -1;
  {
    auto started = zt::server::start();
    REQUIRE(started);
    zt::server s = std::move(started).value(); // the moved-from server owns nothing
    dir = s.directory();
    pid = s.pid();
    CHECK(std::filesystem::exists(dir / "server.log"));
    CHECK(s.running());
  }
  CHECK_FALSE(std::filesystem::exists(dir));
  CHECK(process_gone(pid));
}

TEST_CASE("a server that cannot start says why") {
  SUBCASE("java missing") {
    zt::server_options o;
    o.java = "/nonexistent/bin/java";
    auto r = zt::server::start(o);
    REQUIRE_FALSE(r);
    CHECK(r.error() == zkrecipes::errc::harness_failed);
    CHECK(r.error().message().find("java not found at /nonexistent/bin/java") != std::string::npos);
  }
  SUBCASE("the JVM exits: the log tail is quoted") {
    zt::server_options o;
    o.classpath = "/nonexistent/zookeeper.jar";
    o.start_timeout = 20s;
    auto r = zt::server::start(o);
    REQUIRE_FALSE(r);
    CHECK(r.error() == zkrecipes::errc::harness_failed);
    const auto text = r.error().message();
    CHECK(text.find("exited") != std::string::npos);
    CHECK(text.find("ZooKeeperServerMain") != std::string::npos); // java's own complaint
  }
}

TEST_CASE("an ensemble has one leader, survives losing it, and takes the member back as follower") {
  auto e = zt::ensemble::start().value();
  REQUIRE(e.size() == 3);
  CHECK(e.connect_string() == e.member_connect_string(0) + "," + e.member_connect_string(1) +
                                  "," + e.member_connect_string(2));

  int leaders = 0, followers = 0;
  for (std::size_t i = 0; i < e.size(); ++i) {
    auto r = e.four_letter(i, "srvr");
    REQUIRE(r);
    const auto& text = r.value();
    leaders += text.find("Mode: leader") != std::string::npos;
    followers += text.find("Mode: follower") != std::string::npos;
  }
  CHECK(leaders == 1);
  CHECK(followers == 2);

  const auto first = e.leader();
  REQUIRE(first);
  const std::size_t old_leader = first.value();

  zk_client c(e.connect_string());
  REQUIRE(c.wait_connected());
  REQUIRE(create_eventually(c, "/before", "a"));

  REQUIRE(e.kill(old_leader));
  CHECK_FALSE(e.running(old_leader));
  const auto second = e.leader();
  REQUIRE(second);
  CHECK(second.value() != old_leader);
  CHECK(create_eventually(c, "/after", "b"));
  CHECK(read_eventually(c, "/before", "a"));

  REQUIRE(e.restart(old_leader));
  CHECK(e.running(old_leader));
  auto r = e.four_letter(old_leader, "srvr");
  REQUIRE(r);
  CHECK(r.value().find("Mode: follower") != std::string::npos);
  CHECK(e.wait_serving());
  // The member came back with what was written while it was down.
  zk_client direct(e.member_connect_string(old_leader));
  REQUIRE(direct.wait_connected());
  CHECK(read_eventually(direct, "/after", "b"));
}

TEST_CASE("a proxy forwards a client's traffic both ways") {
  auto& s = shared_server();
  auto p = zt::tcp_proxy::start(s.port()).value();
  CHECK(p.connect_string() == "127.0.0.1:" + std::to_string(p.port()));
  {
    zk_client c(p.connect_string());
    REQUIRE(c.wait_connected());
    CHECK(p.connections() == 1);
    REQUIRE(create_sync(c, "/through-proxy", "hello") == ZOK);
    CHECK(get_sync(c, "/through-proxy") == std::make_pair(int(ZOK), std::string("hello")));
    CHECK(p.bytes_to_server() > 0);
    CHECK(p.bytes_to_client() > 0);

    // Larger than the socket buffers: partial reads and writes both ways.
    std::string big(600 * 1024, '\0');
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i * 7 % 26);
    REQUIRE(create_sync(c, "/through-proxy-big", big) == ZOK);
    const auto got = get_sync(c, "/through-proxy-big");
    CHECK(got.first == ZOK);
    CHECK(got.second == big);
    CHECK(p.bytes_to_server() > big.size());
    // Counted once the proxy's write returns, which may be after the client
    // already has the reply.
    CHECK(eventually([&] { return p.bytes_to_client() > big.size(); }));
  }
  CHECK(eventually([&] { return p.connections() == 0; }));
}

TEST_CASE("stall holds a request until pass releases it") {
  auto& s = shared_server();
  auto p = zt::tcp_proxy::start(s.port()).value();
  zk_client c(p.connect_string());
  REQUIRE(c.wait_connected());
  REQUIRE(create_sync(c, "/stalled", "held") == ZOK);

  p.stall();
  const auto up = p.bytes_to_server();
  auto o = aget(c, "/stalled");
  CHECK_FALSE(o->wait(500ms));
  CHECK(p.bytes_to_server() == up);
  CHECK(p.connections() == 1); // silence, not a disconnect

  p.pass();
  REQUIRE(o->wait(5s));
  CHECK(o->rc == ZOK);
  CHECK(o->value == "held");
}

TEST_CASE("stall_replies lets a write reach the server while its reply waits") {
  auto& s = shared_server();
  auto p = zt::tcp_proxy::start(s.port()).value();
  zk_client c(p.connect_string());
  zk_client direct(s.connect_string());
  REQUIRE(c.wait_connected());
  REQUIRE(direct.wait_connected());

  p.stall_replies();
  auto o = acreate(c, "/applied-unseen", "w");
  CHECK(eventually([&] { return get_sync(direct, "/applied-unseen").first == ZOK; }, 5s));
  CHECK_FALSE(o->is_done());

  p.pass();
  REQUIRE(o->wait(5s));
  CHECK(o->rc == ZOK);
}

TEST_CASE("stall_replies then cut: a write is applied but its client sees connection loss") {
  auto& s = shared_server();
  auto p = zt::tcp_proxy::start(s.port()).value();
  zk_client c(p.connect_string());
  zk_client direct(s.connect_string());
  REQUIRE(c.wait_connected());
  REQUIRE(direct.wait_connected());

  p.stall_replies();
  auto o = acreate(c, "/applied-reply-lost", "w");
  REQUIRE(eventually([&] { return get_sync(direct, "/applied-reply-lost").first == ZOK; }, 5s));
  p.cut();  // the held reply is dropped with the connection
  p.pass(); // so that the client can reconnect
  REQUIRE(o->wait(5s));
  CHECK(o->rc == ZCONNECTIONLOSS);
  CHECK(c.wait_connected(10s));
}

TEST_CASE("cut closes the connection: the client sees CONNECTING, then reconnects") {
  auto& s = shared_server();
  auto p = zt::tcp_proxy::start(s.port()).value();
  zk_client c(p.connect_string());
  REQUIRE(c.wait_connected());
  const auto before = c.events();

  p.cut(); // (the client may already be back: connections() is not checked here)
  REQUIRE(c.wait_state(ZOO_CONNECTING_STATE, 5s, before));
  // Any CONNECTED after `before` is the reconnect (the client was connected
  // until the cut); snapshotting the count now could miss a quick one.
  CHECK(c.wait_state(ZOO_CONNECTED_STATE, 10s, before));
  CHECK(p.connections() == 1);
}

TEST_CASE("refuse closes new connections at once until it is turned off") {
  auto& s = shared_server();
  auto p = zt::tcp_proxy::start(s.port()).value();
  p.refuse(true);
  zk_client c(p.connect_string());
  CHECK_FALSE(c.wait_connected(1s));
  CHECK(p.connections() == 0);
  CHECK(p.bytes_to_server() == 0);

  p.refuse(false);
  CHECK(c.wait_connected(10s));
  CHECK(p.connections() == 1);

  // refuse + cut: every connection is gone, and stays gone.
  p.refuse(true);
  p.cut();
  CHECK(p.connections() == 0);
  CHECK(c.wait_state(ZOO_CONNECTING_STATE, 5s));
  CHECK(p.connections() == 0);
}

// A zkrecipes session rather than the raw client here: what is observed is
// the session's own sending, and the proxy's records are the observer.
TEST_CASE("a proxy records requests and replies: a session pipelines two reads") {
  auto& srv = shared_server();
  auto p = zt::tcp_proxy::start(srv.port()).value();
  zkt::mailbox<std::string> done; // outlives the session, whose handlers push into it
  // A long session timeout: while replies are held the client hears nothing,
  // and gives up after 2/3 of it.
  auto s = zkt::connect(p.connect_string(), 20s);
  // Position of the first request of `type` in `r`, or r.size().
  const auto index_of = [](const std::vector<zt::tcp_proxy::request_record>& r, std::int32_t type) {
    return std::size_t(std::find_if(r.begin(), r.end(), [&](const auto& q) { return q.type == type; }) -
                       r.begin());
  };

  p.clear_records();
  CHECK(p.requests().empty());
  CHECK(p.replies_delivered() == 0);
  REQUIRE(s.exists("/"));
  // Recorded as written to the server, so before the reply could come back.
  const auto after_sync = p.requests();
  CHECK(index_of(after_sync, zt::zk_op::exists) < after_sync.size());
  // Counted once the proxy's write returns, maybe after the client has it.
  CHECK(zkt::eventually([&] { return p.replies_delivered() >= 1; }, 5s));

  p.stall_replies();
  p.clear_records(); // nothing reaches the client from here until pass()
  s.async_exists("/", [&](auto r) { done.push(r ? "exists" : r.error().message()); });
  s.async_children("/", [&](auto r) { done.push(r ? "children" : r.error().message()); });
  // Both requests reach the server with no reply in between: pipelined.
  std::vector<zt::tcp_proxy::request_record> reqs;
  REQUIRE(zkt::eventually(
      [&] {
        reqs = p.requests();
        return index_of(reqs, zt::zk_op::exists) < reqs.size() &&
               index_of(reqs, zt::zk_op::get_children2) < reqs.size();
      },
      5s));
  CHECK(p.replies_delivered() == 0);
  CHECK(done.size() == 0);
  const auto ex = index_of(reqs, zt::zk_op::exists);
  const auto ch = index_of(reqs, zt::zk_op::get_children2);
  CHECK(ex < ch); // sent in call order
  CHECK(reqs[ex].xid > 0); // numbered requests, told apart by xid
  CHECK(reqs[ch].xid > 0);
  CHECK(reqs[ex].xid != reqs[ch].xid);
  for (const auto& q : reqs) {
    if (q.type == zt::zk_op::ping) CHECK(q.xid == zt::zk_xid::ping);
  }

  p.pass();
  auto first = done.pop(10s);
  auto second = done.pop(10s);
  REQUIRE(first);
  REQUIRE(second);
  CHECK(*first == "exists"); // replies come back in request order
  CHECK(*second == "children");
  CHECK(zkt::eventually([&] { return p.replies_delivered() >= 2; }, 5s));
}

TEST_CASE("the proxy only forwards to loopback") {
  auto& s = shared_server();
  auto far = zt::tcp_proxy::start(s.port(), "10.1.2.3");
  REQUIRE_FALSE(far);
  CHECK(far.error() == zkrecipes::errc::harness_failed);
  CHECK_FALSE(zt::tcp_proxy::start(s.port(), "example.com"));
  CHECK(zt::tcp_proxy::start(s.port(), "localhost"));
}

TEST_CASE("expire_session expires the original handle's session") {
  auto& s = shared_server();
  // A short session timeout bounds expire_session's rare slow path (see its doc).
  zk_client c(s.connect_string(), 3000);
  REQUIRE(c.wait_connected());
  REQUIRE(create_sync(c, "/ephemeral-of-expired", "e", ZOO_EPHEMERAL) == ZOK);
  const clientid_t id = *zoo_client_id(c.handle());

  const auto r =
      zt::expire_session(s.connect_string(), id.client_id, std::string_view(id.passwd, 16));
  REQUIRE_MESSAGE(r, (r ? std::string() : r.error().message()));
  CHECK(c.wait_state(ZOO_EXPIRED_SESSION_STATE, 5s));

  zk_client other(s.connect_string());
  REQUIRE(other.wait_connected());
  CHECK(get_sync(other, "/ephemeral-of-expired").first == ZNONODE);
}

TEST_CASE("expire_session reports a session that is not live") {
  auto& s = shared_server();
  SUBCASE("unknown session") {
    const auto r = zt::expire_session(s.connect_string(), 0x7123456789abcdefLL,
                                      std::string(16, '\0'), 5s);
    REQUIRE_FALSE(r);
    CHECK(r.error() == zkrecipes::errc::harness_failed);
    CHECK(r.error().message().find("not live") != std::string::npos);
  }
  SUBCASE("password of the wrong size") {
    const auto r = zt::expire_session(s.connect_string(), 1, "short", 5s);
    REQUIRE_FALSE(r);
    CHECK(r.error().message().find("16 bytes") != std::string::npos);
  }
}

TEST_CASE("temp dirs of a crashed owner are swept, those of a live owner kept") {
  namespace fs = std::filesystem;
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) ::_exit(0);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child); // now a pid with no process
  auto root = zkrecipes::detail::temp_root();
  fs::path dead = root / "zkrecipes-sweeptest-dead", live = root / "zkrecipes-sweeptest-live";
  fs::create_directories(dead / "data");
  fs::create_directories(live);
  std::ofstream(dead / "owner.pid") << child << '\n';
  std::ofstream(live / "owner.pid") << ::getpid() << '\n';
  auto fresh = zkrecipes::detail::temp_dir::create("zkrecipes-sweeptest-");
  REQUIRE(fresh);
  CHECK_FALSE(fs::exists(dead));
  CHECK(fs::exists(live));
  CHECK(fs::exists(fresh.value().path() / "owner.pid"));
  fs::remove_all(live);
}

TEST_CASE("servers die with their owner process, even when it is SIGKILLed") {
  // zk-sandbox starts a server and runs `cat` on a pipe of ours (it ends
  // when we close the pipe, so nothing outlives the test); we kill the
  // sandbox hard.
  // As a subreaper we inherit the orphans and can reap them: no zombie stays.
  REQUIRE(::prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
  struct unreaper {
    ~unreaper() { ::prctl(PR_SET_CHILD_SUBREAPER, 0); }
  } reset_subreaper;
  int fds[2], in[2];
  REQUIRE(::pipe(fds) == 0);
  REQUIRE(::pipe(in) == 0);
  pid_t owner = ::fork();
  REQUIRE(owner >= 0);
  if (owner == 0) {
    ::dup2(fds[1], 2); // the sandbox prints its connect string on stderr
    ::dup2(in[0], 0);
    ::close(fds[0]);
    ::close(in[1]);
    const char* argv[] = {ZKRECIPES_TEST_SANDBOX, "--", "cat", nullptr};
    ::execv(argv[0], const_cast<char* const*>(argv));
    ::_exit(127);
  }
  ::close(fds[1]);
  ::close(in[0]);
  struct closer {
    int fd;
    ~closer() {
      if (fd >= 0) ::close(fd);
    }
  } stdin_of_cat{in[1]};
  std::string said;
  char buf[256];
  while (said.find("ZooKeeper at") == std::string::npos) {
    ssize_t n = ::read(fds[0], buf, sizeof buf); // bounded: the sandbox exits if the server fails
    if (n <= 0) break;
    said.append(buf, std::size_t(n));
  }
  ::close(fds[0]);
  REQUIRE_MESSAGE(said.find("ZooKeeper at") != std::string::npos, said);
  // The JVM is the sandbox's child whose command line names ZooKeeper; cat
  // the one whose command line starts with "cat".
  auto child_of = [](pid_t parent, const std::string& needle) -> pid_t {
    for (auto& e : std::filesystem::directory_iterator("/proc")) {
      auto name = e.path().filename().string();
      if (name.find_first_not_of("0123456789") != std::string::npos) continue;
      std::ifstream st(e.path() / "stat");
      std::string line;
      std::getline(st, line);
      auto close = line.rfind(')');
      if (close == std::string::npos) continue;
      std::istringstream rest(line.substr(close + 2));
      char state;
      long ppid;
      rest >> state >> ppid;
      if (ppid != parent) continue;
      std::ifstream cmd(e.path() / "cmdline");
      std::string args((std::istreambuf_iterator<char>(cmd)), {});
      if (needle == "cat" ? args.rfind("cat", 0) == 0 : args.find(needle) != std::string::npos)
        return std::stoi(name);
    }
    return -1;
  };
  pid_t jvm = child_of(owner, "org.apache.zookeeper.server");
  REQUIRE(jvm > 0);
  // The sandbox starts cat just after it prints the connect string: a kill
  // before that would leave no cat to reap (a run on a clean clone did).
  pid_t cat = -1;
  REQUIRE(eventually([&] { return (cat = child_of(owner, "cat")) > 0; }, 10s));
  REQUIRE(::kill(owner, SIGKILL) == 0);
  int status = 0;
  REQUIRE(::waitpid(owner, &status, 0) == owner);
  // Orphaned, the JVM is now our child: it must die without being asked.
  CHECK(eventually([jvm] { return ::waitpid(jvm, nullptr, WNOHANG) == jvm; }, 10s));
  ::close(stdin_of_cat.fd);
  stdin_of_cat.fd = -1;
  // cat ends on EOF; reap it too.
  CHECK(eventually([cat] { return ::waitpid(cat, nullptr, WNOHANG) == cat; }, 10s));
  // The killed owner could not remove its server's directory: sweep it.
  zkrecipes::detail::temp_dir::sweep_orphans("zkrecipes-server-");
  for (auto& e : std::filesystem::directory_iterator(zkrecipes::detail::temp_root())) {
    std::ifstream in(e.path() / "owner.pid");
    long pid = 0;
    if (e.path().filename().string().rfind("zkrecipes-server-", 0) == 0 && (in >> pid))
      CHECK_MESSAGE(pid != owner, e.path().string());
  }
}

} // TEST_SUITE
