// zk-inspector (examples/inspector/) as a real process against the shared
// ZooKeeper server: its JSON snapshot, its event stream, its refusal to write
// unless told to, and its page open in headless Chromium (chromium.hpp)
// following a lock handed over and a leader killed without a reload.
//
// tests/meson.build passes the programs' paths when they are built:
// ZKRECIPES_INSPECTOR (zk-inspector) and ZKRECIPES_TEST_CANDIDATE
// (tests/helpers/candidate.cpp: a leader_latch candidate that a test can
// SIGKILL). Without them every test says so and returns; without Chromium
// only the browser test does.
//
// Every wait is a bounded poll of something observable (a log line, an HTTP
// answer, the DOM); processes are signalled by pid only and must stop cleanly
// on SIGTERM. Each test works under its own unique root, removed at the end.
//
// The inspector's pure part (examples/inspector/recognise.hpp: previews,
// kinds, the recognised views) is also tested alone on hand-made trees.
#include "chromium.hpp"
#include "http_client.hpp"
#include "support.hpp"

#include <zkrecipes/detail/process.hpp>

// The inspector's pure part, tested alone (it is header-only).
#if __has_include("../examples/inspector/recognise.hpp")
#include "../examples/inspector/recognise.hpp"
#define ZKRT_HAVE_RECOGNISE 1
#endif

#include <nlohmann/json.hpp>

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stop_token>
#include <string>
#include <utility>
#include <vector>

namespace {

/// s has the shape of `pattern`: '#' a decimal digit, '%' a hex digit, any
/// other character itself. (No std::regex: GCC 12 warns inside it at -O1.)
bool shaped(const std::string& s, const std::string& pattern) {
  if (s.size() != pattern.size()) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i], p = pattern[i];
    const bool digit = c >= '0' && c <= '9';
    const bool hex = digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    if (p == '#' ? !digit : p == '%' ? !hex : c != p) return false;
  }
  return true;
}

namespace fs = std::filesystem;
namespace zkd = zkrecipes::detail;
namespace zkr = zkrecipes;
using json = nlohmann::json;
using namespace std::chrono_literals;
using zkt::eventually;
using zkt::http::contains;
using zkt::http::num;
using zkt::http::str;
using clock_type = std::chrono::steady_clock;

#if defined(ZKRECIPES_INSPECTOR) && defined(ZKRECIPES_TEST_CANDIDATE)
constexpr bool programs_built = true;
const char* const inspector_program = ZKRECIPES_INSPECTOR;
const char* const candidate_program = ZKRECIPES_TEST_CANDIDATE;
#else
constexpr bool programs_built = false;
const char* const inspector_program = "";
const char* const candidate_program = "";
#endif

/// True (after saying so) when the programs are not built.
bool skipped() {
  if (programs_built) return false;
  MESSAGE("zk-inspector or the candidate helper is not built (ZKRECIPES_INSPECTOR / ZKRECIPES_TEST_CANDIDATE "
          "undefined): skipped");
  return true;
}

long long ms_since(clock_type::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - t).count();
}

/// A JSON dump that never throws (a wrong answer may hold any bytes).
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

/// A JavaScript string literal holding `s` (ASCII in these tests).
std::string js(const std::string& s) { return dump(json(s)); }

/// j[key]; null when j is not an object or has no such member (never throws).
json at(const json& j, const char* key) {
  if (!j.is_object()) return json();
  auto it = j.find(key);
  return it != j.end() ? *it : json();
}

/// j[key] as a bool; nullopt when absent or not a bool.
std::optional<bool> flag(const json& j, const char* key) {
  const json v = at(j, key);
  return v.is_boolean() ? std::optional<bool>(v.get<bool>()) : std::nullopt;
}

/// Whether j has the member `key` and it is null.
bool null_member(const json& j, const char* key) { return j.is_object() && j.contains(key) && j[key].is_null(); }

/// j[key] when it is an array, else an empty array.
json arr(const json& j, const char* key) {
  if (!j.is_object()) return json::array();
  auto it = j.find(key);
  return it != j.end() && it->is_array() ? *it : json::array();
}

/// A session id as the snapshot shows an ephemeral owner: "0x" + lowercase hex.
std::string hex_session(std::int64_t id) {
  char b[32];
  std::snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(id));
  return b;
}

zkr::lock_options holding(std::string data) {
  zkr::lock_options o;
  o.data = std::move(data);
  return o;
}

// ---------------------------------------------------------------- snapshot

/// GET /snapshot parsed (discarded when not JSON or not answered 200).
json snapshot(int port) {
  const auto r = zkt::http::request(port, "GET", "/snapshot");
  if (r.status != 200) return json(json::value_t::discarded);
  return r.j();
}

/// The view of `kind` at `path` in a snapshot; null when there is none.
json view_of(const json& snap, const std::string& kind, const std::string& path) {
  for (const auto& v : arr(snap, "views"))
    if (str(v, "kind") == kind && str(v, "path") == path) return v;
  return json();
}

/// The node at `path` in a snapshot; null when absent.
json node_of(const json& snap, const std::string& path) {
  for (const auto& n : arr(snap, "nodes"))
    if (str(n, "path") == path) return n;
  return json();
}

/// Polls GET /snapshot until `pred` holds (bounded); the last snapshot read
/// either way.
std::pair<bool, json> wait_snapshot(int port, const std::function<bool(const json&)>& pred,
                                    std::chrono::milliseconds bound = 10s) {
  json last;
  const bool ok = eventually([&] {
    last = snapshot(port);
    return !last.is_discarded() && pred(last);
  }, bound);
  return {ok, last};
}

/// The "data" of the members of an array of objects, in order.
std::vector<std::string> datas(const json& a) {
  std::vector<std::string> out;
  for (const auto& e : a) out.push_back(str(e, "data"));
  return out;
}

// ---------------------------------------------------------------- event stream

/// GET /events on a connection of its own: the Server-Sent Events as they
/// come (chunked or not), each read bounded.
class sse_stream {
public:
  struct event {
    std::string name; ///< "message" when the event names none
    std::string data;
  };

  explicit sse_stream(int port) : fd_(zkt::http::connect_loopback(port, 5s)) {
    if (fd_ < 0) return;
    const std::string req = "GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n";
    if (::send(fd_, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) close();
  }
  sse_stream(const sse_stream&) = delete;
  sse_stream& operator=(const sse_stream&) = delete;
  ~sse_stream() { close(); }

  bool connected() const { return fd_ >= 0; }
  const std::string& head() const { return head_; }
  /// Events read so far (all of them, comments not counted).
  int events_seen() const { return seen_; }

  /// The next event (comments such as ": ping" skipped), or nullopt when
  /// none is complete within `bound`.
  std::optional<event> next(std::chrono::milliseconds bound) {
    const auto deadline = clock_type::now() + bound;
    for (;;) {
      if (auto e = take_event()) return e;
      if (fd_ < 0) return std::nullopt;
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now()).count();
      if (left <= 0) return std::nullopt;
      pollfd p{fd_, POLLIN, 0};
      const int r = ::poll(&p, 1, static_cast<int>(left));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return std::nullopt;
      char buf[16384];
      const auto n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        close();
        continue; // what is complete may still be taken
      }
      feed(std::string(buf, static_cast<std::size_t>(n)));
    }
  }

  /// The next `event: snapshot` parsed (other events skipped), or discarded.
  json next_snapshot(std::chrono::milliseconds bound) {
    const auto deadline = clock_type::now() + bound;
    while (clock_type::now() < deadline) {
      auto e = next(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now()));
      if (!e) break;
      if (e->name == "snapshot") return json::parse(e->data, nullptr, false);
    }
    return json(json::value_t::discarded);
  }

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

private:
  void feed(const std::string& bytes) {
    raw_ += bytes;
    if (!have_head_) {
      const auto end = raw_.find("\r\n\r\n");
      if (end == std::string::npos) return;
      head_ = raw_.substr(0, end + 2);
      raw_.erase(0, end + 4);
      have_head_ = true;
      chunked_ = contains(head_, "\r\nTransfer-Encoding: chunked") || contains(head_, "\r\ntransfer-encoding: chunked");
    }
    if (!chunked_) {
      text_ += raw_;
      raw_.clear();
      return;
    }
    for (;;) { // complete chunks only
      const auto nl = raw_.find("\r\n");
      if (nl == std::string::npos) return;
      const std::size_t len = std::strtoul(raw_.substr(0, nl).c_str(), nullptr, 16);
      if (raw_.size() < nl + 2 + len + 2) return;
      text_ += raw_.substr(nl + 2, len);
      raw_.erase(0, nl + 2 + len + 2);
      if (len == 0) return;
    }
  }

  std::optional<event> take_event() {
    for (;;) {
      std::size_t end = std::string::npos, sep = 0;
      for (const char* s : {"\r\n\r\n", "\n\n", "\r\r"}) {
        const auto at = text_.find(s);
        if (at != std::string::npos && at < end) {
          end = at;
          sep = std::char_traits<char>::length(s);
        }
      }
      if (end == std::string::npos) return std::nullopt;
      const std::string block = text_.substr(0, end);
      text_.erase(0, end + sep);
      event e;
      bool any = false;
      std::size_t at = 0;
      while (at <= block.size()) {
        auto nl = block.find('\n', at);
        if (nl == std::string::npos) nl = block.size();
        std::string line = block.substr(at, nl - at);
        at = nl + 1;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty() || line[0] == ':') continue;
        const auto colon = line.find(':');
        const std::string field = line.substr(0, colon);
        std::string value = colon == std::string::npos ? std::string() : line.substr(colon + 1);
        if (!value.empty() && value[0] == ' ') value.erase(0, 1);
        if (field == "event") {
          e.name = value;
          any = true;
        } else if (field == "data") {
          if (any && !e.data.empty()) e.data += '\n';
          e.data += value;
          any = true;
        }
      }
      if (!any) continue; // a comment (": ping") or an empty block
      if (e.name.empty()) e.name = "message";
      ++seen_;
      return e;
    }
  }

  int fd_ = -1;
  std::string raw_, head_, text_;
  bool have_head_ = false, chunked_ = false;
  int seen_ = 0;
};

// ---------------------------------------------------------------- processes

struct proc {
  std::string name;
  zkd::child_process p;
  fs::path log;
  int port = -1;
  bool gone = false; ///< killed or stopped by the test
  std::string output() const { return zkd::read_file(log); }
};

/// A unique root on the shared server, a temp dir for the logs, and the
/// programs a test starts. At the end every program still running gets
/// SIGTERM and must exit 0 having printed "stopped on signal"; the root (and
/// any other path registered with also_remove) is removed.
class insp_system {
public:
  explicit insp_system(const std::string& label)
      : zk_(zkt::shared_server().connect_string()), root_(zkt::unique_root(label)) {
    auto d = zkd::temp_dir::create("zkrecipes-inspector-test-");
    REQUIRE_MESSAGE(d.has_value(), (d ? "" : d.error().message()));
    dir_ = std::move(d).value();
    zs_.emplace(zkt::connect(zk_));
  }
  insp_system(const insp_system&) = delete;
  insp_system& operator=(const insp_system&) = delete;
  ~insp_system() {
    for (auto& p : procs_)
      if (!p->gone) p->p.send_signal(SIGTERM);
    for (auto& p : procs_)
      if (!p->gone) finish(*p);
    if (zs_) {
      (void)zs_->remove_recursive(root_);
      for (const auto& extra : extra_) (void)zs_->remove_recursive(extra);
    }
  }

  const std::string& root() const { return root_; }
  const std::string& connect_string() const { return zk_; }
  zkr::session& zk() { return *zs_; }
  void also_remove(std::string path) { extra_.push_back(std::move(path)); }

  /// zk-inspector watching `path`; returns once it listens.
  proc& inspector(const std::string& name, const std::string& path, std::vector<std::string> extra = {}) {
    std::vector<std::string> argv{inspector_program, "--zk", zk_, "--path", path, "--port", "0",
                                  "--session-timeout-ms", "4000"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    proc& p = start(name, std::move(argv), "listening 127.0.0.1:");
    const std::string text = p.output();
    p.port = std::atoi(text.c_str() + text.find("listening 127.0.0.1:") + 20);
    REQUIRE_MESSAGE(p.port > 0, text);
    return p;
  }

  /// A leader_latch candidate (2 s session) at `path`; returns once it joined.
  proc& candidate(const std::string& id, const std::string& path) {
    return start(id, {candidate_program, "--zk", zk_, "--path", path, "--id", id, "--session-timeout-ms", "2000"},
                 "candidate " + id);
  }

  /// SIGKILL to that pid; it is not expected to exit cleanly.
  void kill(proc& p) {
    p.gone = true;
    p.p.kill_and_reap();
  }
  /// SIGTERM (or `sig`); it must exit 0 having printed "stopped on signal <sig>".
  void stop(proc& p, int sig = SIGTERM) {
    p.p.send_signal(sig);
    finish(p);
    CHECK_MESSAGE(contains(p.output(), "stopped on signal " + std::to_string(sig)), zkd::tail_of_file(p.log, 5));
  }

  /// Runs a program that must fail at once: its exit status (-1 when it did
  /// not exit within 10 s) and what it printed.
  std::pair<int, std::string> run_failing(const std::string& name, const std::vector<std::string>& argv) {
    const fs::path log = dir_.path() / (name + ".log");
    auto c = zkd::child_process::spawn(argv, dir_.path(), log);
    REQUIRE_MESSAGE(c.has_value(), (c ? "" : c.error().message()));
    if (!c.value().wait_for(10s)) {
      c.value().kill_and_reap();
      return {-1, zkd::read_file(log)};
    }
    const int st = c.value().last_status();
    return {WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), zkd::read_file(log)};
  }

  std::string logs(std::size_t lines = 12) const {
    std::string out;
    for (auto& p : procs_) out += "--- " + p->name + ":\n" + zkd::tail_of_file(p->log, lines) + "\n";
    return out;
  }

private:
  proc& start(const std::string& name, std::vector<std::string> argv, const std::string& ready) {
    auto p = std::make_unique<proc>();
    p->name = name;
    p->log = dir_.path() / (name + ".log");
    auto c = zkd::child_process::spawn(argv, dir_.path(), p->log);
    REQUIRE_MESSAGE(c.has_value(), (c ? "" : c.error().message()));
    p->p = std::move(c).value();
    procs_.push_back(std::move(p));
    proc& q = *procs_.back();
    const bool up = eventually([&] { return !q.p.running() || contains(q.output(), ready); }, 20s);
    if (!(up && q.p.running())) {
      q.gone = true; // not stopped again at the end: this is the failure
      q.p.kill_and_reap();
    }
    REQUIRE_MESSAGE((up && q.p.running()), name << " did not start (" << q.p.describe_status()
                                                 << "): " << zkd::tail_of_file(q.log, 30));
    return q;
  }

  void finish(proc& p) {
    if (!p.p.wait_for(10s)) p.p.kill_and_reap();
    p.gone = true;
    const int st = p.p.last_status();
    CHECK_MESSAGE((st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0),
                  p.name << " did not stop cleanly (" << p.p.describe_status() << "):\n" << zkd::tail_of_file(p.log, 30));
    CHECK_MESSAGE(contains(p.output(), "stopped on signal"),
                  p.name << " did not print \"stopped on signal\":\n" << zkd::tail_of_file(p.log, 10));
  }

  std::string zk_;
  std::string root_;
  zkd::temp_dir dir_;
  std::optional<zkr::session> zs_;
  std::vector<std::unique_ptr<proc>> procs_;
  std::vector<std::string> extra_;
};

/// A blocking call run on a thread of its own with a stop token; the
/// destructor requests the stop and waits (bounded) for the call to end.
template <class T> class background {
public:
  template <class F>
  explicit background(F f)
      : fut_(std::async(std::launch::async, [f = std::move(f), t = stop_.get_token()]() mutable { return f(t); })) {}
  background(const background&) = delete;
  background& operator=(const background&) = delete;
  ~background() {
    stop_.request_stop();
    if (fut_.valid()) (void)fut_.wait_for(30s);
  }
  /// The result, when the call ended within `bound`.
  std::optional<T> get(std::chrono::milliseconds bound) {
    if (!fut_.valid() || fut_.wait_for(bound) != std::future_status::ready) return std::nullopt;
    return fut_.get();
  }

private:
  std::stop_source stop_;
  std::future<T> fut_;
};

// ---------------------------------------------------------------- the page

/// A JavaScript expression: what the page shows of the lock at `lock` and
/// the election at `election`, as an object (for predicates and messages).
std::string page_state(const std::string& lock, const std::string& election) {
  return "(() => {"
         " const view = (k, p) => [...document.querySelectorAll('#views section.view')]"
         "   .find(s => s.dataset.kind === k && s.dataset.path === p);"
         " const text = (r, sel) => { const e = r && r.querySelector(sel); return e ? e.textContent.trim() : null; };"
         " const lock = view('lock', " + js(lock) + "), latch = view('leader_latch', " + js(election) + ");"
         " return { live: document.body.dataset.live || null, version: document.body.dataset.version || null,"
         "   lock: !!lock, holder: text(lock, '.holder .data'),"
         "   waiters: lock ? [...lock.querySelectorAll('.waiters li')].map(li => text(li, '.data')) : null,"
         "   latch: !!latch, leader: text(latch, '.leader'),"
         "   waiting: latch ? [...latch.querySelectorAll('.waiting li')].map(li => li.textContent.trim()) : null };"
         "})()";
}

/// A predicate over page_state(): true when `cond` (JS over `s`) holds,
/// else the state itself (which wait_for reports as the last value).
std::string when(const std::string& state, const std::string& cond) {
  return "(() => { const s = " + state + "; return (" + cond + ") ? true : s; })()";
}

/// A JavaScript expression: the textContent of the `.data` span of the
/// tree's `li[data-path=P]` (exactly, not trimmed), null when not shown.
std::string tree_data(const std::string& path) {
  return "(() => { const li = [...document.querySelectorAll('#tree li')].find(l => l.dataset.path === " + js(path) +
         "); const d = li && li.querySelector('.data'); return d ? d.textContent : null; })()";
}

// ================================================================ tests

TEST_CASE("inspector: the page, open in headless Chromium, follows a lock handed over and a leader killed "
          "without a reload") {
  if (skipped()) return;
  if (!zkt::chromium::available()) {
    MESSAGE("chromium is not installed (" << zkt::chromium::binary << "): skipped");
    return;
  }
  const auto t_start = clock_type::now();
  insp_system sys("insp-page");
  const std::string lock_path = sys.root() + "/locks/job", election = sys.root() + "/election";
  REQUIRE(sys.zk().ensure_path(sys.root()));
  proc& insp = sys.inspector("inspector", sys.root());

  // Session A holds the lock, session B waits for it.
  auto sa = zkt::connect(sys.connect_string());
  auto sb = zkt::connect(sys.connect_string());
  zkr::mutex ma(sa, lock_path, holding("holder-A"));
  zkr::mutex mb(sb, lock_path, holding("holder-B"));
  REQUIRE(ma.lock(10s));
  background<zkr::result<void>> b_lock([&](std::stop_token st) { return mb.lock(st, 30s); });
  REQUIRE(eventually([&] {
    auto p = ma.participants();
    return p && p.value().size() == 2;
  }, 10s));

  // Two candidates: cand-1 leads, cand-2 waits.
  proc& c1 = sys.candidate("cand-1", election);
  REQUIRE_MESSAGE(eventually([&] { return contains(c1.output(), "leader cand-1"); }, 10s), sys.logs());
  proc& c2 = sys.candidate("cand-2", election);

  // The snapshot first (its JSON makes a clearer message than the DOM).
  const auto [seen, snap] = wait_snapshot(insp.port, [&](const json& s) {
    const json l = view_of(s, "lock", lock_path), e = view_of(s, "leader_latch", election);
    return str(at(l, "holder"), "data") == "holder-A" && datas(arr(l, "waiters")) == std::vector<std::string>{"holder-B"} &&
           str(e, "leader") == "cand-1" && arr(e, "waiting") == json::array({"cand-2"});
  });
  CHECK_MESSAGE(seen, dump(snap) << "\n" << sys.logs());
  {
    const json l = view_of(snap, "lock", lock_path);
    const std::string lock_node = "_c_" + std::string(32, '%') + "-lock-" + std::string(10, '#');
    CHECK_MESSAGE(shaped(str(at(l, "holder"), "node"), lock_node), dump(l));
    const json w = arr(l, "waiters");
    CHECK_MESSAGE((w.size() == 1 && shaped(str(w[0], "node"), lock_node)), dump(l));
  }

  std::string why, last;
  auto browser = zkt::chromium::browser::launch(&why);
  REQUIRE_MESSAGE(browser.has_value(), why);
  auto page = browser->open("http://127.0.0.1:" + std::to_string(insp.port) + "/", &why);
  REQUIRE_MESSAGE(page.has_value(), why << "\n" << browser->log_tail());
  REQUIRE_MESSAGE(page->wait_for("document.body.dataset.live === 'yes'", 15s, &last), last);
  CHECK(eventually([&] { return num(zkt::http::request(insp.port, "GET", "/health").j(), "sse_clients") >= 1; }, 10s));

  const std::string state = page_state(lock_path, election);
  CHECK_MESSAGE(page->wait_for(when(state, "s.holder === 'holder-A' && JSON.stringify(s.waiters) === '[\"holder-B\"]'"
                                           " && s.leader === 'cand-1' && s.waiting && s.waiting.length === 1"
                                           " && s.waiting[0].includes('cand-2')"),
                               15s, &last),
                "the lock and the election are not shown: " << last << "\n" << sys.logs());
  // A mark on this document: a reload would lose it.
  REQUIRE(page->evaluate("window.zkrMark = 'before'; true") == json(true));
  const auto version_before = page->evaluate("Number(document.body.dataset.version)");

  // A releases: B holds, nobody waits.
  REQUIRE(ma.unlock());
  const auto b_result = b_lock.get(15s);
  REQUIRE_MESSAGE((b_result.has_value() && b_result->has_value()), "B did not get the lock");
  CHECK_MESSAGE(page->wait_for(when(state, "s.holder === 'holder-B' && Array.isArray(s.waiters) && "
                                           "s.waiters.length === 0 && s.leader === 'cand-1'"),
                               10s, &last),
                "the next holder is not shown: " << last << "\n" << sys.logs());
  CHECK(page->evaluate("window.zkrMark") == json("before"));

  // cand-1 dies: once its 2 s session expires cand-2 leads.
  const auto killed_at = clock_type::now();
  sys.kill(c1);
  CHECK_MESSAGE(page->wait_for(when(state, "s.leader === 'cand-2' && Array.isArray(s.waiting) && s.waiting.length === 0"),
                               10s, &last),
                "the new leader is not shown: " << last << "\n" << sys.logs());
  MESSAGE("the page showed the new leader " << ms_since(killed_at) << " ms after the SIGKILL (session timeout 2000 ms)");
  CHECK_MESSAGE(eventually([&] { return contains(c2.output(), "leader cand-2"); }, 5s), sys.logs());
  CHECK(page->evaluate("window.zkrMark") == json("before")); // the same document: no reload
  CHECK(page->evaluate("document.body.dataset.live") == json("yes"));
  const auto version_after = page->evaluate("Number(document.body.dataset.version)");
  REQUIRE((version_before.has_value() && version_after.has_value()));
  CHECK_MESSAGE((version_before->is_number() && version_after->is_number() &&
                 version_after->get<double>() > version_before->get<double>()),
                dump(*version_before) << " -> " << dump(*version_after));

  const fs::path shot = fs::current_path() / "artefacts" / "inspector-page.png";
  fs::create_directories(shot.parent_path());
  CHECK_MESSAGE(page->screenshot(shot, &why), why);
  CHECK(zkd::read_file(shot).rfind("\x89PNG", 0) == 0);
  // Not a promise of the page: under a loaded machine B's own session may
  // have been cut meanwhile (its lock then lost), which is not the inspector's doing.
  if (auto u = mb.unlock(); !u) MESSAGE("B's unlock at the end: " << u.error().message());
  MESSAGE("inspector page test: " << ms_since(t_start) << " ms");
}

TEST_CASE("inspector: data holding <script>, markup in names and lock data, control and non-UTF-8 bytes is shown "
          "escaped, as text, in the snapshot and on the page") {
  if (skipped()) return;
  insp_system sys("insp-esc");
  auto& zk = sys.zk();
  const std::string esc = sys.root() + "/esc";
  REQUIRE(zk.ensure_path(esc));
  const std::string script = "<script>window.zkrPwned=1</script>";
  const std::string img = "<img src=x onerror=\"window.zkrPwned=2\">";
  const std::string bytes = "\xff\xfe ok\x01";
  const std::string ctl = "tab\there\nquote\"";
  const std::string hostile_name = esc + "/<img src=x onerror=window.zkrPwned=4>";
  REQUIRE(zk.create(esc + "/script", script));
  REQUIRE(zk.create(esc + "/img", img));
  REQUIRE(zk.create(esc + "/bytes", bytes));
  REQUIRE(zk.create(esc + "/ctl", ctl));
  REQUIRE(zk.create(esc + "/long", std::string(300, 'a')));
  REQUIRE(zk.create(esc + "/exact", std::string(256, 'b')));
  REQUIRE(zk.create(hostile_name, "named"));
  auto sl = zkt::connect(sys.connect_string());
  const std::string lock_data = "<img src=x onerror=\"window.zkrPwned=3\">";
  zkr::mutex hostile_lock(sl, sys.root() + "/hostile-lock", holding(lock_data));
  REQUIRE(hostile_lock.lock(10s));

  proc& insp = sys.inspector("inspector", sys.root());

  // The snapshot: valid JSON (nlohmann rejects invalid UTF-8), the previews
  // as the spec says: printable ASCII as is, other bytes \xNN, 256 bytes then "…".
  const auto [seen, snap] = wait_snapshot(insp.port, [&](const json& s) {
    return !node_of(s, hostile_name).is_null() && !view_of(s, "lock", sys.root() + "/hostile-lock").is_null();
  });
  REQUIRE_MESSAGE(seen, dump(snap) << "\n" << sys.logs());
  const auto raw = zkt::http::request(insp.port, "GET", "/snapshot");
  CHECK_MESSAGE(!json::parse(raw.body, nullptr, false).is_discarded(), raw.body.substr(0, 500));
  CHECK(str(node_of(snap, esc + "/script"), "data") == script);
  CHECK(num(node_of(snap, esc + "/script"), "bytes") == static_cast<long long>(script.size()));
  CHECK(str(node_of(snap, esc + "/img"), "data") == img);
  CHECK(str(node_of(snap, esc + "/bytes"), "data") == "\\xff\\xfe ok\\x01");
  CHECK(num(node_of(snap, esc + "/bytes"), "bytes") == 6);
  CHECK(str(node_of(snap, esc + "/ctl"), "data") == "tab\\x09here\\x0aquote\"");
  CHECK(str(node_of(snap, esc + "/long"), "data") == std::string(256, 'a') + "\u2026");
  CHECK(num(node_of(snap, esc + "/long"), "bytes") == 300);
  CHECK(str(node_of(snap, esc + "/exact"), "data") == std::string(256, 'b'));
  CHECK(str(node_of(snap, hostile_name), "name") == "<img src=x onerror=window.zkrPwned=4>");
  CHECK(str(at(view_of(snap, "lock", sys.root() + "/hostile-lock"), "holder"), "data") == lock_data);

  // The page itself carries no external resources.
  const auto index = zkt::http::request(insp.port, "GET", "/");
  CHECK(index.status == 200);
  CHECK_MESSAGE(contains(index.header("Content-Type"), "text/html"), index.head);
  for (const char* external : {"src=\"http", "src='http", "href=\"http", "href='http", "src=\"//", "href=\"//", "@import"})
    CHECK_MESSAGE(!contains(index.body, external), external);

  if (!zkt::chromium::available()) {
    MESSAGE("chromium is not installed (" << zkt::chromium::binary << "): the page part is skipped");
    return;
  }
  std::string why, last;
  auto browser = zkt::chromium::browser::launch(&why);
  REQUIRE_MESSAGE(browser.has_value(), why);
  auto page = browser->open("http://127.0.0.1:" + std::to_string(insp.port) + "/", &why);
  REQUIRE_MESSAGE(page.has_value(), why << "\n" << browser->log_tail());
  REQUIRE_MESSAGE(page->wait_for("document.body.dataset.live === 'yes'", 15s, &last), last);
  REQUIRE_MESSAGE(page->wait_for(tree_data(esc + "/script") + " !== null", 10s, &last), last);
  CHECK(page->evaluate(tree_data(esc + "/script")) == json(script));
  CHECK(page->evaluate(tree_data(esc + "/img")) == json(img));
  CHECK(page->evaluate(tree_data(esc + "/bytes")) == json("\\xff\\xfe ok\\x01"));
  CHECK(page->evaluate(tree_data(esc + "/ctl")) == json("tab\\x09here\\x0aquote\""));
  CHECK(page->evaluate(tree_data(hostile_name)) == json("named"));
  const std::string lock_text =
      "(() => { const v = [...document.querySelectorAll('#views section.view')].find(s => s.dataset.kind === 'lock'"
      " && s.dataset.path === " + js(sys.root() + "/hostile-lock") +
      "); const d = v && v.querySelector('.holder .data'); return d ? d.textContent : null; })()";
  CHECK_MESSAGE(page->wait_for(lock_text + " === " + js(lock_data), 10s, &last), last);

  // A hostile node made while the page is open comes through the event stream.
  const std::string late = "<img src=x onerror=\"window.zkrPwned=5\"><script>window.zkrPwned=6</script>";
  REQUIRE(zk.create(esc + "/late", late));
  CHECK_MESSAGE(page->wait_for(tree_data(esc + "/late") + " === " + js(late), 10s, &last), last);

  // Nothing ran, nothing became markup.
  CHECK(page->evaluate("typeof window.zkrPwned") == json("undefined"));
  CHECK(page->evaluate("document.querySelectorAll('#tree script, #views script').length") == json(0));
  CHECK(page->evaluate("document.querySelectorAll('#tree img, #views img').length") == json(0));
  CHECK(page->evaluate("document.body.dataset.live") == json("yes"));
  CHECK(hostile_lock.unlock());
}

TEST_CASE("inspector: read-only unless --allow-writes; with it, deletes only a leaf inside its subtree") {
  if (skipped()) return;
  insp_system sys("insp-rw");
  auto& zk = sys.zk();
  const std::string ro = sys.root() + "/ro";
  REQUIRE(zk.ensure_path(ro + "/parent/child"));
  REQUIRE(zk.create(ro + "/leaf", "x"));

  // Read-only: refused, and nothing at all is written (no zxid between two probes).
  proc& reader = sys.inspector("reader", sys.root());
  REQUIRE(wait_snapshot(reader.port, [&](const json& s) { return !node_of(s, ro + "/leaf").is_null(); }).first);
  // Another session's expiry (a txn) may fall between two probes: a few
  // attempts, one must see the zxids adjacent. A write by the inspector would
  // fall into every one.
  std::string zxids;
  bool untouched = false;
  for (int attempt = 0; attempt < 3 && !untouched; ++attempt) {
    const auto probe1 = zk.create(ro + "/probe-a" + std::to_string(attempt));
    REQUIRE(probe1);
    for (const std::string& path : {ro + "/leaf", ro + "/parent", ro + "/absent", std::string("/zookeeper")}) {
      const auto r = zkt::http::request(reader.port, "POST", "/delete?path=" + path);
      CHECK_MESSAGE((r.status == 403 && r.code() == "read_only"), path << ": " << r);
    }
    CHECK(zkt::http::request(reader.port, "GET", "/snapshot").status == 200);
    CHECK(zkt::http::request(reader.port, "GET", "/health").status == 200);
    CHECK(zkt::http::request(reader.port, "GET", "/").status == 200);
    const auto probe2 = zk.create(ro + "/probe-b" + std::to_string(attempt));
    REQUIRE(probe2);
    zxids += " " + std::to_string(probe1.value().stat.czxid) + "->" + std::to_string(probe2.value().stat.czxid);
    untouched = probe2.value().stat.czxid == probe1.value().stat.czxid + 1;
  }
  CHECK_MESSAGE(untouched, "something was written between the probes (czxids" << zxids << ")");
  CHECK(zk.exists(ro + "/leaf").value().has_value());
  CHECK(zk.exists(ro + "/parent").value().has_value());

  // Watching a path that does not exist yet creates nothing; it shows up once made.
  const std::string later = sys.root() + "/later";
  proc& waiting = sys.inspector("waiting", later);
  CHECK(zkt::http::request(waiting.port, "GET", "/snapshot").status == 200);
  CHECK_FALSE(zk.exists(later).value().has_value());
  REQUIRE(zk.ensure_path(later + "/child"));
  CHECK_MESSAGE(wait_snapshot(waiting.port, [&](const json& s) { return !node_of(s, later + "/child").is_null(); }).first,
                sys.logs());
  sys.stop(waiting);

  // --allow-writes.
  proc& writer = sys.inspector("writer", ro, {"--allow-writes"});
  REQUIRE(wait_snapshot(writer.port, [&](const json& s) { return !node_of(s, ro + "/leaf").is_null(); }).first);
  auto del = [&](const std::string& path) { return zkt::http::request(writer.port, "POST", "/delete?path=" + path); };
  {
    const auto r = del(ro + "/leaf");
    CHECK_MESSAGE(r.status == 200, r);
    CHECK_FALSE(zk.exists(ro + "/leaf").value().has_value());
    CHECK_MESSAGE(wait_snapshot(writer.port, [&](const json& s) { return node_of(s, ro + "/leaf").is_null(); }).first,
                  sys.logs());
  }
  {
    const auto r = del(ro + "/parent");
    CHECK_MESSAGE(r.status == 409, r);
    CHECK(zk.exists(ro + "/parent/child").value().has_value());
  }
  CHECK_MESSAGE(del(ro + "/absent").status == 404, del(ro + "/absent"));
  {
    // Outside: another root, a sibling whose name merely starts like ours,
    // the parent, and a path climbing out with "..".
    const std::string other = zkt::unique_root("insp-other");
    sys.also_remove(other);
    sys.also_remove(ro + "x");
    REQUIRE(zk.create(other, "o"));
    REQUIRE(zk.create(ro + "x", "sibling"));
    for (const std::string& path : {other, ro + "x", sys.root(), ro + "/../x", std::string("/zookeeper/quota")}) {
      const auto r = del(path);
      CHECK_MESSAGE(r.status == 400, path << ": " << r);
    }
    CHECK(zk.exists(other).value().has_value());
    CHECK(zk.exists(ro + "x").value().has_value());
    CHECK(zk.exists(sys.root()).value().has_value());
  }
}

TEST_CASE("inspector: the snapshot recognises locks, a read-write lock, a semaphore, an election, both queues, a "
          "double barrier, a group and a service, and the event stream follows") {
  if (skipped()) return;
  const auto t_start = clock_type::now();
  insp_system sys("insp-views");
  const std::string r = sys.root();
  REQUIRE(sys.zk().ensure_path(r));
  proc& insp = sys.inspector("inspector", r);

  // The event stream: a snapshot at once.
  sse_stream events(insp.port);
  REQUIRE(events.connected());
  const json first = events.next_snapshot(10s);
  REQUIRE_MESSAGE(!first.is_discarded(), events.head() << "\n" << sys.logs());
  CHECK_MESSAGE(contains(events.head(), "text/event-stream"), events.head());
  CHECK(str(first, "root") == r);
  CHECK(at(first, "nodes").is_array());
  CHECK(at(first, "views").is_array());
  CHECK(eventually([&] { return num(zkt::http::request(insp.port, "GET", "/health").j(), "sse_clients") == 1; }, 5s));
  const auto stream_from = clock_type::now();
  const int events_before = events.events_seen();

  auto s = zkt::connect(sys.connect_string());
  auto s2 = zkt::connect(sys.connect_string());

  zkr::mutex m(s, r + "/mutex", holding("held-by-me"));
  REQUIRE(m.lock(10s));

  zkr::read_lock r1(s, r + "/rw", holding("reader-1"));
  zkr::read_lock r2(s2, r + "/rw", holding("reader-2"));
  REQUIRE(r1.lock(10s));
  REQUIRE(r2.lock(10s));
  zkr::write_lock w(s, r + "/rw", holding("writer"));
  background<zkr::result<void>> w_wait([&](std::stop_token st) { return w.lock(st, 30s); });

  zkr::semaphore sem1(s, r + "/sem", 2, holding("lease-1"));
  zkr::semaphore sem2(s2, r + "/sem", 2, holding("lease-2"));
  auto l1 = sem1.acquire(10s);
  REQUIRE(l1);
  auto l2 = sem2.acquire(10s);
  REQUIRE(l2);

  zkr::latch_options lo1, lo2;
  lo1.id = "lat-1";
  lo1.payload = "payload-after-nul";
  lo2.id = "lat-2";
  zkr::leader_latch latch1(s, r + "/latch", lo1);
  REQUIRE(latch1.start());
  REQUIRE(latch1.await_leadership(10s));
  zkr::leader_latch latch2(s2, r + "/latch", lo2);
  REQUIRE(latch2.start());

  zkr::locking_queue<std::string> lq(s, r + "/lq");
  REQUIRE(lq.put_all({"a", "b", "c"}));
  auto taken = lq.take(10s);
  REQUIRE(taken);

  zkr::fifo_queue<std::string> fq(s, r + "/fq");
  REQUIRE(fq.put("x"));
  REQUIRE(fq.put("y"));

  zkr::double_barrier_options bo1, bo2;
  bo1.id = "b1";
  bo2.id = "b2";
  zkr::double_barrier bar1(s, r + "/barrier", 2, bo1);
  zkr::double_barrier bar2(s2, r + "/barrier", 2, bo2);
  {
    background<zkr::result<void>> enter2([&](std::stop_token) { return bar2.enter(10s); });
    REQUIRE(bar1.enter(10s));
    const auto e2 = enter2.get(10s);
    REQUIRE((e2.has_value() && e2->has_value()));
  }

  zkr::group_membership g1(s, r + "/group"), g2(s2, r + "/group");
  REQUIRE(g1.join("m1", "p1"));
  REQUIRE(g2.join("m2", "p2"));

  zkr::registry_options ro;
  ro.base_path = r + "/services";
  zkr::service_instance i1, i2;
  i1.service = i2.service = "web";
  i1.id = "web-1";
  i1.address = "127.0.0.1";
  i1.ports["http"] = 8080;
  i2.id = "web-2";
  i2.address = "127.0.0.2";
  i2.ports["http"] = 8081;
  i2.ports["admin"] = 9090;
  zkr::service_registration reg1(s, i1, ro), reg2(s2, i2, ro);
  REQUIRE(reg1.start());
  REQUIRE(reg2.start());

  auto all_seen = [&](const json& snap) {
    const json rw = view_of(snap, "read_write_lock", r + "/rw");
    return !view_of(snap, "lock", r + "/mutex").is_null() && arr(rw, "holders").size() == 2 &&
           arr(rw, "waiters").size() == 1 && arr(view_of(snap, "semaphore", r + "/sem"), "leases").size() == 2 &&
           arr(view_of(snap, "leader_latch", r + "/latch"), "waiting").size() == 1 &&
           num(view_of(snap, "locking_queue", r + "/lq"), "in_flight") == 1 &&
           num(view_of(snap, "fifo_queue", r + "/fq"), "depth") == 2 &&
           flag(view_of(snap, "double_barrier", r + "/barrier"), "ready") == true &&
           arr(view_of(snap, "group", r + "/group"), "members").size() == 2 &&
           arr(view_of(snap, "service", r + "/services/web"), "instances").size() == 2;
  };
  const auto [seen, snap] = wait_snapshot(insp.port, all_seen, 15s);
  CHECK_MESSAGE(seen, dump(at(snap, "views")) << "\n" << sys.logs());

  {
    const json v = view_of(snap, "lock", r + "/mutex");
    CHECK_MESSAGE(str(at(v, "holder"), "data") == "held-by-me", dump(v));
    CHECK_MESSAGE(contains(str(at(v, "holder"), "node"), "-lock-"), dump(v));
    CHECK_MESSAGE(arr(v, "waiters").empty(), dump(v));
  }
  {
    const json v = view_of(snap, "read_write_lock", r + "/rw");
    const json h = arr(v, "holders");
    std::multiset<std::string> hd;
    for (const auto& e : h) {
      hd.insert(str(e, "data"));
      CHECK_MESSAGE(str(e, "mode") == "read", dump(v));
    }
    CHECK_MESSAGE((hd == std::multiset<std::string>{"reader-1", "reader-2"}), dump(v));
    const json wv = arr(v, "waiters");
    CHECK_MESSAGE((wv.size() == 1 && str(wv[0], "data") == "writer"), dump(v));
    if (wv.size() == 1 && wv[0].is_object() && wv[0].contains("mode")) CHECK_MESSAGE(str(wv[0], "mode") == "write", dump(v));
  }
  {
    const json v = view_of(snap, "semaphore", r + "/sem");
    CHECK_MESSAGE((datas(arr(v, "leases")) == std::vector<std::string>{"lease-1", "lease-2"}), dump(v));
    for (const auto& l : arr(v, "leases")) CHECK_MESSAGE(contains(str(l, "node"), "-lease-"), dump(v));
  }
  {
    const json v = view_of(snap, "leader_latch", r + "/latch");
    CHECK_MESSAGE(str(v, "leader") == "lat-1", dump(v)); // the id: data up to the NUL
    CHECK_MESSAGE(arr(v, "waiting") == json::array({"lat-2"}), dump(v));
  }
  {
    const json v = view_of(snap, "locking_queue", r + "/lq");
    CHECK_MESSAGE(num(v, "depth") == 3, dump(v));
    CHECK_MESSAGE(num(v, "in_flight") == 1, dump(v));
    CHECK_MESSAGE(shaped(str(v, "oldest"), "p-###/b-" + std::string(10, '#') + "/i-" + std::string(10, '#')), dump(v));
    CHECK_MESSAGE((num(v, "oldest_age_ms") >= 0 && num(v, "oldest_age_ms") < 120000), dump(v));
  }
  {
    const json v = view_of(snap, "fifo_queue", r + "/fq");
    CHECK_MESSAGE(num(v, "depth") == 2, dump(v));
    CHECK_MESSAGE(shaped(str(v, "oldest"), "b-" + std::string(10, '#') + "/i-" + std::string(10, '#')), dump(v));
    CHECK_MESSAGE((num(v, "oldest_age_ms") >= 0 && num(v, "oldest_age_ms") < 120000), dump(v));
  }
  {
    const json v = view_of(snap, "double_barrier", r + "/barrier");
    CHECK_MESSAGE(arr(v, "members") == json::array({"b1", "b2"}), dump(v));
    CHECK_MESSAGE(flag(v, "ready") == true, dump(v));
    CHECK_MESSAGE(view_of(snap, "group", r + "/barrier").is_null(), "a barrier is not a group");
  }
  {
    const json v = view_of(snap, "group", r + "/group");
    std::set<std::pair<std::string, std::string>> members;
    for (const auto& e : arr(v, "members")) members.emplace(str(e, "id"), str(e, "data"));
    CHECK_MESSAGE((members == std::set<std::pair<std::string, std::string>>{{"m1", "p1"}, {"m2", "p2"}}), dump(v));
  }
  {
    const json v = view_of(snap, "service", r + "/services/web");
    CHECK_MESSAGE(str(v, "service") == "web", dump(v));
    std::map<std::string, json> by_id;
    for (const auto& e : arr(v, "instances")) by_id[str(e, "id")] = e;
    CHECK_MESSAGE(by_id.size() == 2, dump(v));
    CHECK_MESSAGE(str(by_id["web-1"], "address") == "127.0.0.1", dump(v));
    CHECK_MESSAGE(at(by_id["web-1"], "ports") == json({{"http", 8080}}), dump(v));
    CHECK_MESSAGE(str(by_id["web-2"], "address") == "127.0.0.2", dump(v));
    CHECK_MESSAGE(at(by_id["web-2"], "ports") == json({{"admin", 9090}, {"http", 8081}}), dump(v));
    CHECK_MESSAGE(view_of(snap, "group", r + "/services/web").is_null(), "a service is not a group");
  }

  // The event stream follows: a snapshot showing all of it arrives (each
  // change is published, at most ~10 per second).
  json latest;
  const auto stream_deadline = clock_type::now() + 10s;
  while (!(latest.is_object() && all_seen(latest)) && clock_type::now() < stream_deadline) {
    json e = events.next_snapshot(std::chrono::duration_cast<std::chrono::milliseconds>(stream_deadline - clock_type::now()));
    if (e.is_discarded()) break;
    CHECK_MESSAGE((!latest.is_object() || num(e, "version") > num(latest, "version")), "versions do not grow");
    latest = std::move(e);
  }
  CHECK_MESSAGE((latest.is_object() && all_seen(latest)), dump(at(latest, "views")));
  const double streamed_s = static_cast<double>(ms_since(stream_from)) / 1000.0;
  const int streamed = events.events_seen() - events_before;
  MESSAGE(streamed << " events in " << streamed_s << " s while the recipes were made");
  CHECK_MESSAGE(streamed <= static_cast<int>(12 * streamed_s) + 3, streamed << " events in " << streamed_s << " s");

  // /health agrees with the snapshot of the same version; the closed stream is counted out.
  {
    const json h1 = zkt::http::request(insp.port, "GET", "/health").j();
    const json sn = snapshot(insp.port);
    const json h2 = zkt::http::request(insp.port, "GET", "/health").j();
    CHECK_MESSAGE((num(h1, "nodes") >= 0 && num(h1, "version") >= 0), dump(h1));
    if (num(h1, "version") == num(h2, "version") && num(h1, "version") == num(sn, "version"))
      CHECK_MESSAGE(num(h1, "nodes") == static_cast<long long>(arr(sn, "nodes").size()), dump(h1));
  }
  events.close();
  CHECK(eventually([&] { return num(zkt::http::request(insp.port, "GET", "/health").j(), "sse_clients") == 0; }, 10s));

  // The write lock granted (the readers go): the view follows.
  l1.value().reset();
  l2.value().reset();
  REQUIRE(r1.unlock());
  REQUIRE(r2.unlock());
  const auto wr = w_wait.get(10s);
  REQUIRE((wr.has_value() && wr->has_value()));
  const auto [granted, snap2] = wait_snapshot(insp.port, [&](const json& sn) {
    const json v = view_of(sn, "read_write_lock", r + "/rw");
    const json h = arr(v, "holders");
    return h.size() == 1 && str(h[0], "mode") == "write" && str(h[0], "data") == "writer" && arr(v, "waiters").empty();
  });
  CHECK_MESSAGE(granted, dump(view_of(snap2, "read_write_lock", r + "/rw")));
  CHECK(w.unlock());
  REQUIRE(taken.value().release());
  CHECK(m.unlock());
  MESSAGE("inspector views test: " << ms_since(t_start) << " ms");
}

TEST_CASE("inspector: nodes: sorted, with kind (persistent, ephemeral with its owner, sequential, container), "
          "sizes, versions and times") {
  if (skipped()) return;
  insp_system sys("insp-kinds");
  auto& zk = sys.zk();
  const std::string k = sys.root() + "/kinds";
  REQUIRE(zk.ensure_path(k));
  proc& insp = sys.inspector("inspector", sys.root());

  const auto before = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count();
  auto owner = zkt::connect(sys.connect_string());
  REQUIRE(zk.create(k + "/plain", "hello"));
  REQUIRE(zk.set(k + "/plain", "hello!"));
  REQUIRE(owner.create(k + "/eph", "e", zkr::create_options(zkr::create_mode::ephemeral)));
  const auto seq = zk.create(k + "/seq-", "s", zkr::create_options(zkr::create_mode::persistent_sequential));
  REQUIRE(seq);
  const auto eseq = owner.create(k + "/eseq-", "", zkr::create_options(zkr::create_mode::ephemeral_sequential));
  REQUIRE(eseq);
  REQUIRE(zk.create(k + "/box", "", zkr::create_options(zkr::create_mode::container)));
  REQUIRE(zk.create(k + "/box/item", "i"));
  // ZooKeeper keeps a container's type in its ephemeralOwner
  // (0x8000000000000000) but DataNode.copyStat hands clients 0 for every
  // non-ephemeral type (containers, TTL nodes): through a stat a container
  // looks persistent. What the server tells decides what to expect.
  const auto box_stat = zk.exists(k + "/box");
  REQUIRE((box_stat && box_stat.value().has_value()));
  const bool server_marks_containers =
      static_cast<std::uint64_t>(box_stat.value()->ephemeral_owner) == 0x8000000000000000ULL;
  const auto after = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch()).count();

  const auto [seen, snap] = wait_snapshot(insp.port, [&](const json& s) {
    return num(node_of(s, k + "/plain"), "version") == 1 && !node_of(s, k + "/box/item").is_null() &&
           !node_of(s, eseq.value().path).is_null() && !node_of(s, seq.value().path).is_null() &&
           !node_of(s, k + "/eph").is_null();
  });
  REQUIRE_MESSAGE(seen, dump(snap) << "\n" << sys.logs());
  CHECK(str(snap, "root") == sys.root());
  CHECK(flag(snap, "truncated") == false);
  CHECK(num(snap, "version") >= 0);

  std::vector<std::string> paths;
  for (const auto& n : arr(snap, "nodes")) paths.push_back(str(n, "path"));
  CHECK_MESSAGE(std::is_sorted(paths.begin(), paths.end()), dump(json(paths)));

  {
    const json n = node_of(snap, k + "/plain");
    CHECK_MESSAGE(str(n, "name") == "plain", dump(n));
    CHECK_MESSAGE(num(n, "depth") == 2, dump(n));
    CHECK_MESSAGE(str(n, "kind") == "persistent", dump(n));
    CHECK_MESSAGE(null_member(n, "owner"), dump(n));
    CHECK_MESSAGE(str(n, "data") == "hello!", dump(n));
    CHECK_MESSAGE(num(n, "bytes") == 6, dump(n));
    CHECK_MESSAGE(num(n, "children") == 0, dump(n));
    CHECK_MESSAGE(num(n, "version") == 1, dump(n));
    CHECK_MESSAGE((num(n, "ctime") >= before - 5000 && num(n, "ctime") <= after + 5000), dump(n));
  }
  {
    const json n = node_of(snap, k + "/eph");
    CHECK_MESSAGE(str(n, "kind") == "ephemeral", dump(n));
    CHECK_MESSAGE(str(n, "owner") == hex_session(owner.session_id()), dump(n) << " vs " << hex_session(owner.session_id()));
  }
  {
    const json n = node_of(snap, seq.value().path);
    CHECK_MESSAGE(str(n, "kind") == "persistent-sequential", dump(n));
    CHECK_MESSAGE(null_member(n, "owner"), dump(n));
  }
  {
    const json n = node_of(snap, eseq.value().path);
    CHECK_MESSAGE(str(n, "kind") == "ephemeral-sequential", dump(n));
    CHECK_MESSAGE(str(n, "owner") == hex_session(owner.session_id()), dump(n));
  }
  {
    const json n = node_of(snap, k + "/box");
    if (server_marks_containers) {
      CHECK_MESSAGE(str(n, "kind") == "container", dump(n));
    } else {
      MESSAGE("this server reports ephemeralOwner 0 for a container: it can only be shown as persistent");
      CHECK_MESSAGE(str(n, "kind") == "persistent", dump(n));
    }
    CHECK_MESSAGE(null_member(n, "owner"), dump(n)); // a container's owner field is a marker, not a session
    CHECK_MESSAGE(num(n, "children") == 1, dump(n));
    CHECK_MESSAGE(num(node_of(snap, k + "/box/item"), "depth") == 3, dump(node_of(snap, k + "/box/item")));
  }
  {
    const json n = node_of(snap, k);
    CHECK_MESSAGE(num(n, "children") == 5, "children come after the node's data read: " << dump(n));
    CHECK_MESSAGE(num(n, "depth") == 1, dump(n));
  }

  // --max-nodes: the first nodes in path order, the rest counted as truncated.
  {
    proc& small = sys.inspector("small", sys.root(), {"--max-nodes", "3"});
    const auto [cut, s3] = wait_snapshot(small.port, [&](const json& s) { return flag(s, "truncated") == true; });
    CHECK_MESSAGE(cut, dump(s3));
    CHECK_MESSAGE(arr(s3, "nodes").size() == 3, dump(s3));
    std::vector<std::string> first3(paths.begin(), paths.begin() + std::min<std::size_t>(3, paths.size()));
    std::vector<std::string> shown;
    for (const auto& n : arr(s3, "nodes")) shown.push_back(str(n, "path"));
    CHECK_MESSAGE(shown == first3, dump(json(shown)));
    sys.stop(small, SIGINT);
  }

  // The ephemerals go with their session; the tree follows, in a new version.
  const long long version_before = num(snap, "version");
  REQUIRE(owner.close());
  const auto [gone, snap2] = wait_snapshot(insp.port, [&](const json& s) {
    return node_of(s, k + "/eph").is_null() && node_of(s, eseq.value().path).is_null();
  });
  CHECK_MESSAGE(gone, dump(snap2));
  CHECK_MESSAGE(wait_snapshot(insp.port, [&](const json& s) { return num(s, "version") > version_before; }).first,
                "the version stays " << version_before);
}

TEST_CASE("inspector: bad options are refused on stderr with a non-zero exit") {
  if (skipped()) return;
  insp_system sys("insp-opts");
  const std::string zk = sys.connect_string();
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"no-zk", {inspector_program, "--path", sys.root()}},
      {"relative-path", {inspector_program, "--zk", zk, "--path", "relative"}},
      {"trailing-slash", {inspector_program, "--zk", zk, "--path", sys.root() + "/"}},
      {"bad-port", {inspector_program, "--zk", zk, "--path", sys.root(), "--port", "70000"}},
      {"port-not-a-number", {inspector_program, "--zk", zk, "--path", sys.root(), "--port", "http"}},
      {"zero-max-nodes", {inspector_program, "--zk", zk, "--path", sys.root(), "--max-nodes", "0"}},
      {"unknown-option", {inspector_program, "--zk", zk, "--path", sys.root(), "--write"}},
  };
  for (const auto& [name, argv] : cases) {
    const auto [status, output] = sys.run_failing(name, argv);
    CHECK_MESSAGE((status > 0 && status < 128), name << ": exit " << status << ": " << output);
    CHECK_MESSAGE(!contains(output, "listening"), name << ": " << output);
  }
  CHECK_FALSE(sys.zk().exists(sys.root()).value().has_value()); // and nothing was created
}

// ---------------------------------------------------------------- recognise.hpp

#ifdef ZKRT_HAVE_RECOGNISE

constexpr std::int64_t a_session = 0x1000a2b3c4d0005LL;

/// A mirrored node for hand-made trees.
zkr::node mk(std::string data = {}, std::int64_t owner = 0, std::int64_t ctime = 1'000) {
  zkr::node n;
  n.data = std::move(data);
  n.stat.ephemeral_owner = owner;
  n.stat.ctime = ctime;
  n.stat.data_length = static_cast<std::int32_t>(n.data.size());
  return n;
}

/// "_c_<32 hex>-<marker><10 digits>", the protected names of the lock recipes.
std::string protected_name(char hex, const std::string& marker, int seq) {
  char digits[16];
  std::snprintf(digits, sizeof digits, "%010d", seq);
  return "_c_" + std::string(32, hex) + "-" + marker + digits;
}

TEST_CASE("inspector: recognise.hpp: preview escapes every byte but printable ASCII and cuts at 256 bytes") {
  CHECK(inspector::preview("") == "");
  CHECK(inspector::preview("<script>window.zkrPwned=1</script>") == "<script>window.zkrPwned=1</script>");
  CHECK(inspector::preview("\xff\xfe ok\x01") == "\\xff\\xfe ok\\x01");
  CHECK(inspector::preview(std::string("a\0b", 3)) == "a\\x00b");
  CHECK(inspector::preview("tab\there\nquote\"\x7f") == "tab\\x09here\\x0aquote\"\\x7f");
  CHECK(inspector::preview("\xc3\xa9") == "\\xc3\\xa9"); // UTF-8 too: bytes, not characters
  // A backslash is doubled (recognise.hpp), so "\xff" as text and the byte 0xff differ.
  CHECK(inspector::preview("\\xff") == "\\\\xff");
  CHECK(inspector::preview(std::string(256, 'b')) == std::string(256, 'b'));
  CHECK(inspector::preview(std::string(257, 'b')) == std::string(256, 'b') + "\u2026");
  std::string escaped;
  for (int i = 0; i < 256; ++i) escaped += "\\xff";
  CHECK(inspector::preview(std::string(300, '\xff')) == escaped + "\u2026"); // 256 bytes of data, not of text
  // Whatever the bytes, the result is valid JSON text.
  std::string all;
  for (int c = 0; c < 256; ++c) all.push_back(static_cast<char>(c));
  CHECK_NOTHROW((void)json(inspector::preview(all)).dump());
}

TEST_CASE("inspector: recognise.hpp: kinds from ephemeralOwner and the name; owners as hex") {
  zkr::stat st;
  CHECK(inspector::kind_of("a", st) == "persistent");
  CHECK(inspector::kind_of("a-0000000007", st) == "persistent-sequential");
  st.ephemeral_owner = a_session;
  CHECK(inspector::kind_of("a", st) == "ephemeral");
  CHECK(inspector::kind_of("a-0000000007", st) == "ephemeral-sequential");
  st.ephemeral_owner = static_cast<std::int64_t>(0x8000000000000000ULL);
  CHECK(inspector::kind_of("box", st) == "container");
  st.ephemeral_owner = static_cast<std::int64_t>(0xff00000000003a98ULL);
  CHECK(inspector::kind_of("t", st) == "ttl");
  CHECK(inspector::hex_session(a_session) == "0x1000a2b3c4d0005");
  CHECK(inspector::is_session_owner(a_session));
  CHECK_FALSE(inspector::is_session_owner(0));
  CHECK_FALSE(inspector::is_session_owner(static_cast<std::int64_t>(0x8000000000000000ULL)));
}

TEST_CASE("inspector: recognise.hpp: lock and election queues by sequence, not by name; ids up to the NUL; "
          "read-write lock holders") {
  inspector::tree t;
  t["/x"] = mk();
  t["/x/lock"] = mk();
  // Name order is the reverse of sequence order here (the protected ids differ).
  t["/x/lock/" + protected_name('f', "lock-", 1)] = mk("first", a_session);
  t["/x/lock/" + protected_name('a', "lock-", 2)] = mk("second", a_session);
  t["/x/lock/" + protected_name('0', "lock-", 3)] = mk("third", a_session);
  t["/x/election"] = mk();
  t["/x/election/" + protected_name('e', "latch-", 4)] = mk(std::string("lead\0payload", 12), a_session);
  t["/x/election/" + protected_name('1', "latch-", 5)] = mk("next", a_session);
  t["/x/rw"] = mk();
  t["/x/rw/" + protected_name('9', "__READ__", 1)] = mk("r1", a_session);
  t["/x/rw/" + protected_name('8', "__WRIT__", 2)] = mk("w2", a_session);
  t["/x/rw/" + protected_name('7', "__READ__", 3)] = mk("r3", a_session);
  t["/x/rw2"] = mk();
  t["/x/rw2/" + protected_name('9', "__WRIT__", 1)] = mk("w1", a_session);
  t["/x/rw2/" + protected_name('8', "__READ__", 2)] = mk("r2", a_session);

  const json views = inspector::recognise(t, 2'000);
  const json lock = view_of(json{{"views", views}}, "lock", "/x/lock");
  CHECK_MESSAGE(str(at(lock, "holder"), "data") == "first", dump(lock));
  CHECK_MESSAGE(str(at(lock, "holder"), "node") == protected_name('f', "lock-", 1), dump(lock));
  CHECK_MESSAGE((datas(arr(lock, "waiters")) == std::vector<std::string>{"second", "third"}), dump(lock));
  const json latch = view_of(json{{"views", views}}, "leader_latch", "/x/election");
  CHECK_MESSAGE(str(latch, "leader") == "lead", dump(latch));
  CHECK_MESSAGE(arr(latch, "waiting") == json::array({"next"}), dump(latch));
  const json rw = view_of(json{{"views", views}}, "read_write_lock", "/x/rw");
  CHECK_MESSAGE(datas(arr(rw, "holders")) == std::vector<std::string>{"r1"}, dump(rw));
  CHECK_MESSAGE((datas(arr(rw, "waiters")) == std::vector<std::string>{"w2", "r3"}), dump(rw));
  const json rw2 = view_of(json{{"views", views}}, "read_write_lock", "/x/rw2");
  CHECK_MESSAGE(datas(arr(rw2, "holders")) == std::vector<std::string>{"w1"}, dump(rw2));
  CHECK_MESSAGE(str(arr(rw2, "holders")[0], "mode") == "write", dump(rw2));
  CHECK_MESSAGE(datas(arr(rw2, "waiters")) == std::vector<std::string>{"r2"}, dump(rw2));
  CHECK_MESSAGE(views.size() == 4, dump(views));
}

TEST_CASE("inspector: recognise.hpp: queues (a lane is not a FIFO queue of its own), barrier, group, service, and "
          "nothing for mixed children") {
  inspector::tree t;
  t["/q"] = mk();
  t["/q/lq"] = mk();
  t["/q/lq/p-000"] = mk();
  t["/q/lq/p-000/b-0000000000"] = mk();
  t["/q/lq/p-000/b-0000000000/i-0000000000"] = mk("a", 0, 500);
  t["/q/lq/p-000/b-0000000000/c-0000000000"] = mk("claim", a_session);
  t["/q/lq/p-000/b-0000000000/i-0000000001"] = mk("b", 0, 600);
  t["/q/lq/p-005"] = mk();
  t["/q/lq/p-005/b-0000000000"] = mk();
  t["/q/lq/p-005/b-0000000000/i-0000000000"] = mk("urgent", 0, 700);
  t["/q/fq"] = mk();
  t["/q/fq/b-0000000001"] = mk();
  t["/q/fq/b-0000000001/i-0000001000"] = mk("y", 0, 900);
  t["/q/fq/b-0000000000"] = mk();
  t["/q/fq/b-0000000000/i-0000000999"] = mk("x", 0, 800);
  t["/q/bar"] = mk();
  t["/q/bar/m2"] = mk("", a_session);
  t["/q/bar/m1"] = mk("", a_session);
  t["/q/bar/ready"] = mk();
  t["/q/grp"] = mk();
  t["/q/grp/w1"] = mk("10.0.0.1", a_session);
  t["/q/grp/w2"] = mk("10.0.0.2", a_session + 1);
  t["/q/mixed"] = mk();
  t["/q/mixed/e"] = mk("", a_session);
  t["/q/mixed/p"] = mk();
  t["/q/svc"] = mk();
  t["/q/svc/web"] = mk();
  t["/q/svc/web/_c_" + std::string(32, 'a') + "-web-1-0000000003"] =
      mk("zkrecipes-instance 1\nservice=web\nid=web-1\naddress=127.0.0.1\nport.http=8080\npayload=3\nx=1", a_session);

  const json snap{{"views", inspector::recognise(t, 10'000)}};
  const json lq = view_of(snap, "locking_queue", "/q/lq");
  CHECK_MESSAGE(num(lq, "depth") == 3, dump(lq));
  CHECK_MESSAGE(num(lq, "in_flight") == 1, dump(lq));
  CHECK_MESSAGE(str(lq, "oldest") == "p-005/b-0000000000/i-0000000000", dump(lq)); // the highest lane is taken first
  CHECK_MESSAGE(num(lq, "oldest_age_ms") == 9'300, dump(lq));
  const json fq = view_of(snap, "fifo_queue", "/q/fq");
  CHECK_MESSAGE(num(fq, "depth") == 2, dump(fq));
  CHECK_MESSAGE(str(fq, "oldest") == "b-0000000000/i-0000000999", dump(fq));
  CHECK_MESSAGE(num(fq, "oldest_age_ms") == 9'200, dump(fq));
  for (const char* lane : {"/q/lq/p-000", "/q/lq/p-005"})
    CHECK_MESSAGE(view_of(snap, "fifo_queue", lane).is_null(), lane);
  const json bar = view_of(snap, "double_barrier", "/q/bar");
  CHECK_MESSAGE(at(bar, "members") == json::array({"m1", "m2"}), dump(bar));
  CHECK_MESSAGE(flag(bar, "ready") == true, dump(bar));
  const json grp = view_of(snap, "group", "/q/grp");
  CHECK_MESSAGE(at(grp, "members") == json::parse(R"([{"id":"w1","data":"10.0.0.1"},{"id":"w2","data":"10.0.0.2"}])"),
                dump(grp));
  const json svc = view_of(snap, "service", "/q/svc/web");
  CHECK_MESSAGE(str(svc, "service") == "web", dump(svc));
  CHECK_MESSAGE(arr(svc, "instances").size() == 1, dump(svc));
  const json in = arr(svc, "instances").empty() ? json() : arr(svc, "instances")[0];
  CHECK_MESSAGE(str(in, "id") == "web-1", dump(svc));
  CHECK_MESSAGE(str(in, "address") == "127.0.0.1", dump(svc));
  CHECK_MESSAGE(at(in, "ports") == json({{"http", 8080}}), dump(svc));
  CHECK_MESSAGE(!at(in, "ports").contains("x"), dump(svc)); // the payload's bytes are not fields
  for (const auto& v : at(snap, "views"))
    CHECK_MESSAGE(str(v, "path") != "/q/mixed", "mixed children are no recipe: " << dump(v));
  CHECK_MESSAGE(at(snap, "views").size() == 5, dump(snap));
}

TEST_CASE("inspector: recognise.hpp: the snapshot: nodes in path order with depth, kind, owner, preview and sizes; "
          "truncated past max_nodes") {
  inspector::tree t;
  t["/r"] = mk();
  t["/r/a"] = mk("\xff<b>", 0, 42);
  t["/r/a"].stat.version = 3;
  t["/r/a"].stat.num_children = 1;
  t["/r/a/e"] = mk("", a_session);
  t["/r/b-0000000001"] = mk();
  const json s = inspector::snapshot(t, "/r", 7, 5000, 0);
  CHECK(str(s, "root") == "/r");
  CHECK(num(s, "version") == 7);
  CHECK(flag(s, "truncated") == false);
  std::vector<std::string> paths;
  for (const auto& n : arr(s, "nodes")) paths.push_back(str(n, "path"));
  CHECK(paths == std::vector<std::string>{"/r", "/r/a", "/r/a/e", "/r/b-0000000001"});
  const json a = node_of(s, "/r/a");
  CHECK_MESSAGE((str(a, "name") == "a" && num(a, "depth") == 1 && str(a, "kind") == "persistent" &&
                 null_member(a, "owner") && str(a, "data") == "\\xff<b>" && num(a, "bytes") == 4 &&
                 num(a, "children") == 1 && num(a, "version") == 3 && num(a, "ctime") == 42),
                dump(a));
  const json e = node_of(s, "/r/a/e");
  CHECK_MESSAGE((num(e, "depth") == 2 && str(e, "kind") == "ephemeral" && str(e, "owner") == "0x1000a2b3c4d0005"), dump(e));
  CHECK_MESSAGE(str(node_of(s, "/r/b-0000000001"), "kind") == "persistent-sequential", dump(s));
  CHECK(num(node_of(s, "/r"), "depth") == 0);
  // The tree cache keeps each node's stat from its last data read (docs/caches.md):
  // num_children is stale once children come and go; the mirrored children count.
  CHECK_MESSAGE(num(node_of(s, "/r"), "children") == 2, dump(node_of(s, "/r")));

  const json cut = inspector::snapshot(t, "/r", 8, 2, 0);
  CHECK(flag(cut, "truncated") == true);
  CHECK(arr(cut, "nodes").size() == 2);
}
#endif

} // namespace
