// zk_faults: the fault-injection run behind `./run faults` (faults/README.md).
//
// A 3-node loopback ensemble; every client session talks to it through three
// tcp_proxy objects (one per member), so the run can cut or stall one
// session's connection without touching the others. Workers drive nine
// recipes, each with several sessions, while an injector thread cuts and
// stalls connections and the main thread SIGKILLs and restarts members (they
// die with the thread that started them, so it must be that one). The safety invariants
// are checked in-process as the workers act; the liveness ones (queues
// delivered, caches converged) once the faults stop.
//
//   zk_faults [--seed N] [--minutes M] [--verbose] [--ignore-doubt]
#include <zkrecipes/zkrecipes.hpp>
#include <zkrecipes/testing/ensemble.hpp>
#include <zkrecipes/testing/tcp_proxy.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <signal.h>
#include <unistd.h>

namespace zkr = zkrecipes;
namespace zt = zkrecipes::testing;
using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;
using ms = std::chrono::milliseconds;

namespace {

// ---- settings ---------------------------------------------------------------

// 4 s: an expiry takes a stall of ~5-6 s, and a holder hears of a silent
// connection after 2/3 of it, ~1.3 s before the server can expire it: room
// for a loaded 2-core machine to deliver in_doubt before another takes over.
constexpr ms session_timeout = 4000ms;
constexpr ms operation_timeout = 5000ms;
constexpr double default_minutes = 8.0;
constexpr std::uint64_t default_required_faults = 1000;
constexpr int sessions_per_recipe = 3;
constexpr int semaphore_max = 2;
constexpr ms converge_bound = 30s;

// ---- output and counters ---------------------------------------------------

enum recipe_id { r_mutex, r_rwlock, r_semaphore, r_latch, r_fifo, r_lqueue, r_dbarrier, r_config, r_registry, r_count };
const char* const recipe_names[r_count] = {"mutex",         "read_write_lock", "semaphore",
                                           "leader_latch",  "fifo_queue",      "locking_queue",
                                           "double_barrier", "config",         "service_registry"};

struct recipe_stats {
  std::atomic<std::uint64_t> ops{0}, errors{0}, checks{0}, violations{0};
  std::mutex m;
  std::map<std::string, std::uint64_t> error_kinds; // by error code text: what faults produce
};
recipe_stats g_stats[r_count];

enum fault_id { f_cut, f_stall, f_leader_kill, f_follower_kill, f_restart, f_count };
const char* const fault_names[f_count] = {"connection cuts", "stalls > session timeout", "leader kills",
                                          "follower kills", "member restarts"};
std::atomic<std::uint64_t> g_faults[f_count];

std::mutex g_out_mx;
const clk::time_point g_t0 = clk::now();
bool g_verbose = false;
// Checker self-test (--ignore-doubt): mutex holders act for seconds without
// looking at holds(); the run must then report mutex violations.
bool g_ignore_doubt = false;

double elapsed_s() { return std::chrono::duration<double>(clk::now() - g_t0).count(); }

void say(const std::string& s) {
  std::lock_guard lk(g_out_mx);
  std::printf("faults: [%6.1fs] %s\n", elapsed_s(), s.c_str());
  std::fflush(stdout);
}

void violation(recipe_id r, const std::string& what) {
  ++g_stats[r].violations;
  say(std::string("VIOLATION ") + recipe_names[r] + ": " + what);
}

void failed(recipe_id r, const zkr::error& e) {
  ++g_stats[r].errors;
  std::lock_guard lk(g_stats[r].m);
  ++g_stats[r].error_kinds[e.code().message()];
  if (g_verbose) say(std::string(recipe_names[r]) + ": " + e.message());
}

std::uint64_t total_checks() {
  std::uint64_t n = 0;
  for (auto& s : g_stats) n += s.checks;
  return n;
}
std::uint64_t total_violations() {
  std::uint64_t n = 0;
  for (auto& s : g_stats) n += s.violations;
  return n;
}
std::uint64_t total_faults() {
  std::uint64_t n = 0;
  for (auto& f : g_faults) n += f;
  return n;
}

// A global order of events across threads: "started after that returned" is
// decided by these numbers, never by clocks.
std::atomic<std::uint64_t> g_seq{0};
std::uint64_t next_seq() { return ++g_seq; }

// ---- watchdog ---------------------------------------------------------------

// Every worker beats before each bounded step; a beat older than its limit is
// a hang. Then nothing can be joined safely: the watchdog kills the members
// itself, removes their directory and exits.
struct heartbeat {
  std::string name;
  int limit_s = 90;
  std::atomic<std::int64_t> at_ms{0};
  std::atomic<const char*> doing{"starting"};
  std::atomic<bool> active{true};
  void beat(const char* what) {
    doing = what;
    at_ms = std::chrono::duration_cast<ms>(clk::now() - g_t0).count();
  }
};
std::mutex g_beats_mx;
std::vector<std::unique_ptr<heartbeat>> g_beats;
std::atomic<zt::ensemble*> g_ensemble{nullptr};

heartbeat* new_heartbeat(std::string name, int limit_s = 90) {
  auto h = std::make_unique<heartbeat>();
  h->name = std::move(name);
  h->limit_s = limit_s;
  h->beat("starting");
  std::lock_guard lk(g_beats_mx);
  g_beats.push_back(std::move(h));
  return g_beats.back().get();
}

[[noreturn]] void die(const std::string& why) {
  {
    std::lock_guard lk(g_out_mx);
    std::printf("faults: FATAL: %s\n", why.c_str());
    std::fflush(stdout);
  }
  // Only the members this program started, by pid; then their directory.
  if (auto* e = g_ensemble.load()) {
    for (std::size_t i = 0; i < e->size(); ++i)
      if (int pid = e->pid(i); pid > 0) ::kill(pid, SIGKILL);
    std::error_code ec;
    std::filesystem::remove_all(e->directory(), ec);
  }
  std::printf("faults: injected=%" PRIu64 " checks=%" PRIu64 " violations=%" PRIu64 "\n", total_faults(),
              total_checks(), total_violations());
  std::fflush(stdout);
  ::_exit(3);
}

// ---- random helpers ---------------------------------------------------------

int uniform(std::mt19937_64& rng, int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }
bool chance(std::mt19937_64& rng, double p) { return std::bernoulli_distribution(p)(rng); }
void nap(int ms_) { std::this_thread::sleep_for(ms(ms_)); }

// ---- clients: one session behind one proxy per member -----------------------

struct client {
  std::string name;
  std::vector<zt::tcp_proxy> proxies;
  std::optional<zkr::session> s;
  std::atomic<bool> stalled{false};
  std::atomic<std::uint64_t> lost{0};
  std::atomic<std::uint64_t> blips{0}; // suspended or lost events: evidence for ambiguous outcomes
  void stall() {
    for (auto& p : proxies) p.stall();
  }
  void pass() {
    for (auto& p : proxies) p.pass();
  }
  void cut() {
    for (auto& p : proxies) p.cut();
  }
};

std::unique_ptr<client> make_client(zt::ensemble& e, std::string name) {
  auto c = std::make_unique<client>();
  c->name = std::move(name);
  std::string cs;
  for (std::size_t i = 0; i < e.size(); ++i) {
    auto p = zt::tcp_proxy::start(e.client_port(i));
    if (!p) die("proxy for " + c->name + ": " + p.error().message());
    if (!cs.empty()) cs += ',';
    cs += p.value().connect_string();
    c->proxies.push_back(std::move(p).value());
  }
  zkr::session_options o;
  o.connect_string = cs;
  o.session_timeout = session_timeout;
  o.operation_timeout = operation_timeout;
  auto s = zkr::session::connect(o, 30s);
  if (!s) die("connect " + c->name + ": " + s.error().message());
  c->s.emplace(std::move(s).value());
  c->s->add_listener([cp = c.get()](const zkr::session_event& ev) {
    if (ev.state == zkr::session_state::lost) ++cp->lost;
    if (ev.state == zkr::session_state::lost || ev.state == zkr::session_state::suspended) ++cp->blips;
  });
  return c;
}

// "8", "1.5": minutes as a person writes them.
std::string minutes_text(double m) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", m);
  return buf;
}

// ---- the guarded resource of the locks --------------------------------------

// What a lock protects, modelled in-process: holders enter with their fencing
// token, work briefly and exit. Exclusive entries (mutex, leader, writer)
// overlap nothing; shared ones (reader, lease) overlap no exclusive one and
// at most `shared_cap` of their kind. Tokens: a new exclusive hold's is
// larger than every token that acted before; a token older than one that
// acted exclusively is stale, whether new or not.
class guarded {
public:
  guarded(recipe_id r, int shared_cap) : r_(r), shared_cap_(shared_cap) {}

  void enter(bool exclusive, std::int64_t token, bool new_hold, const std::string& who) {
    std::lock_guard lk(m_);
    ++g_stats[r_].checks;
    std::string bad;
    if (exclusive) {
      if (!inside_.empty()) bad = "exclusive holder " + who + " entered while " + describe() + " inside";
      else if (new_hold && token <= max_any_)
        bad = "new exclusive hold of " + who + " has fencing token " + std::to_string(token) +
              ", not above the largest earlier token " + std::to_string(max_any_);
      else if (token < max_any_)
        bad = "stale holder " + who + " (token " + std::to_string(token) + ") acted after token " +
              std::to_string(max_any_);
    } else {
      if (exclusive_inside_) bad = "shared holder " + who + " entered while " + describe() + " inside";
      else if (shared_ + 1 > shared_cap_)
        bad = "shared holder " + who + " entered as number " + std::to_string(shared_ + 1) + " of at most " +
              std::to_string(shared_cap_) + "; inside: " + describe();
      else if (token < max_exclusive_)
        bad = "stale shared holder " + who + " (token " + std::to_string(token) +
              ") acted after exclusive token " + std::to_string(max_exclusive_);
    }
    if (!bad.empty()) violation(r_, bad);
    inside_.emplace(token, who);
    if (exclusive) {
      exclusive_inside_ = true;
      max_exclusive_ = std::max(max_exclusive_, token);
    } else {
      ++shared_;
    }
    max_any_ = std::max(max_any_, token);
  }

  void exit(bool exclusive, std::int64_t token) {
    std::lock_guard lk(m_);
    if (auto it = inside_.find(token); it != inside_.end()) inside_.erase(it);
    if (exclusive) exclusive_inside_ = false;
    else --shared_;
  }

private:
  std::string describe() const {
    std::string s;
    for (auto& [t, w] : inside_) s += (s.empty() ? "" : ", ") + w + " (token " + std::to_string(t) + ")";
    return s.empty() ? "nobody" : s;
  }
  recipe_id r_;
  int shared_cap_;
  std::mutex m_;
  std::multimap<std::int64_t, std::string> inside_;
  bool exclusive_inside_ = false;
  int shared_ = 0;
  std::int64_t max_any_ = 0, max_exclusive_ = 0;
};

// One act on the resource: enter, 1-5 ms of work, exit.
void act(guarded& g, bool exclusive, std::int64_t token, bool new_hold, const std::string& who,
         std::mt19937_64& rng) {
  g.enter(exclusive, token, new_hold, who);
  nap(uniform(rng, 1, 5));
  g.exit(exclusive, token);
}

// ---- the queues' ledger -----------------------------------------------------

// Every item ever put, and what happened to it. "done" is the g_seq number at
// which an item was taken for good (fifo: the take returned it; locking
// queue: an ack succeeded): any delivery whose take started after it is a
// duplicate.
class ledger {
public:
  explicit ledger(recipe_id r) : r_(r) {}
  void put_started(const std::string& item) {
    std::lock_guard lk(m_);
    items_[item];
  }
  void put_result(const std::string& item, bool acked) {
    std::lock_guard lk(m_);
    auto& e = items_[item];
    (acked ? e.acked : e.ambiguous) = true;
  }
  // A delivery (fifo take, locking-queue claim) of a take that started at `start`.
  // `flagged`: the fifo take said maybe_duplicate (its delete's outcome was
  // unknown and a retry found the node gone): an at-least-once delivery the
  // library owned up to, counted, never a violation. Only unflagged
  // deliveries promise that nobody else has the item.
  void delivered(const std::string& item, std::uint64_t start, const std::string& who, bool is_final,
                 bool node_left = false, const std::string& how = {}, bool flagged = false) {
    const auto now = next_seq();
    std::lock_guard lk(m_);
    ++g_stats[r_].checks;
    auto it = items_.find(item);
    if (it == items_.end()) {
      violation(r_, who + " got item '" + item + "' that nobody put");
      return;
    }
    auto& e = it->second;
    ++e.deliveries;
    if (flagged) {
      ++flagged_;
      return;
    }
    if (e.done != 0 && e.done < start)
      violation(r_, who + " got item '" + item + "' again (delivery " + std::to_string(e.deliveries) +
                        "), after " + e.done_by + " took it for good; put " +
                        (e.acked ? "acknowledged" : e.ambiguous ? "failed (ambiguous)" : "unanswered") +
                        (e.done_node_left ? "; the node was still there after that take returned (its delete "
                                            "never applied)"
                                          : "") +
                        (e.done_how.empty() ? "" : "; that take: " + e.done_how) + (how.empty() ? "" : "; this one: " + how));
    if (is_final && e.done == 0) {
      e.done_node_left = node_left;
      e.done_how = how;
    }
    if (is_final) finish(e, now, who);
  }
  // A successful ack of the locking queue.
  void acked(const std::string& item, const std::string& who, const std::string& how = {}) {
    const auto now = next_seq();
    std::lock_guard lk(m_);
    ++g_stats[r_].checks;
    auto& e = items_[item];
    if (e.done != 0)
      violation(r_, who + " acked item '" + item + "' that " + e.done_by + " had acked already (both acks returned success)" +
                        (e.done_how.empty() ? "" : "; first ack: " + e.done_how) + (how.empty() ? "" : "; this ack: " + how));
    if (e.done == 0) e.done_how = how;
    finish(e, now, who);
  }
  // After the drain: every acknowledged put was delivered.
  void final_check(const char* taken_word) {
    std::lock_guard lk(m_);
    std::size_t missing = 0, acked = 0, ambiguous_seen = 0, ambiguous = 0, never_done = 0;
    for (auto& [item, e] : items_) {
      if (e.acked) {
        ++acked;
        ++g_stats[r_].checks;
        if (e.deliveries == 0) {
          if (++missing <= 10) violation(r_, "item '" + item + "' was put (acknowledged) but never delivered");
        } else if (e.done == 0) {
          ++never_done;
        }
      } else if (e.ambiguous) {
        ++ambiguous;
        if (e.deliveries > 0) ++ambiguous_seen;
      }
    }
    if (missing > 10) violation(r_, std::to_string(missing) + " acknowledged items never delivered in all");
    say(std::string(recipe_names[r_]) + ": " + std::to_string(items_.size()) + " puts, " + std::to_string(acked) +
        " acknowledged (" + std::to_string(missing) + " not delivered, " + std::to_string(never_done) + " delivered but never " +
        taken_word + "), " + std::to_string(ambiguous) + " failed puts of which " + std::to_string(ambiguous_seen) +
        " appeared" + (flagged_ ? ", " + std::to_string(flagged_) + " deliveries flagged maybe_duplicate" : std::string()));
  }

private:
  std::size_t flagged_ = 0;
  struct entry {
    bool acked = false, ambiguous = false;
    std::uint64_t deliveries = 0;
    std::uint64_t done = 0;
    std::string done_by;
    bool done_node_left = false; // the take that finished it returned while the node still existed
    std::string done_how;        // what that take's (or ack's) session went through
  };
  void finish(entry& e, std::uint64_t now, const std::string& who) {
    if (e.done == 0) {
      e.done = now;
      e.done_by = who;
    }
  }
  recipe_id r_;
  std::mutex m_;
  std::unordered_map<std::string, entry> items_;
};

// ---- workers ----------------------------------------------------------------

std::atomic<bool> g_run{true};      // workers loop while set
std::atomic<bool> g_produce{true};  // queue producers put while set

struct worker_set {
  std::vector<std::thread> threads;
  void spawn(std::string name, std::uint64_t seed, std::function<void(heartbeat&, std::mt19937_64&)> f) {
    auto* hb = new_heartbeat(name);
    threads.emplace_back([hb, seed, f = std::move(f)] {
      std::mt19937_64 rng(seed);
      f(*hb, rng);
      hb->active = false;
    });
  }
  void join() {
    for (auto& t : threads) t.join();
    threads.clear();
  }
};

const std::string root = "/faults";

// An exclusive lock or a shared one (read lock, lease): acquire with a
// bounded wait, act a few times while held and not in doubt, release.
template <class Lock>
void lock_loop(Lock& l, guarded& g, bool exclusive, recipe_id r, const std::string& who, heartbeat& hb,
               std::mt19937_64& rng) {
  while (g_run) {
    hb.beat("lock");
    auto got = l.lock(ms(uniform(rng, 500, 3000)));
    if (!got) {
      failed(r, got.error());
      nap(uniform(rng, 5, 50));
      continue;
    }
    ++g_stats[r].ops;
    bool first = true;
    if (g_ignore_doubt) { // the self-test: a holder that never asks whether it still holds
      const auto token = l.fencing_token();
      const auto until = clk::now() + ms(uniform(rng, 6000, 12000));
      while (token && g_run && clk::now() < until) {
        hb.beat("act blindly");
        act(g, exclusive, *token, first, who, rng);
        first = false;
        nap(uniform(rng, 20, 60));
      }
    }
    for (int n = g_ignore_doubt ? 0 : uniform(rng, 1, 4); n > 0 && g_run; --n) {
      if (!l.holds()) break;
      auto token = l.fencing_token();
      if (!token) break;
      act(g, exclusive, *token, first, who, rng);
      first = false;
      nap(uniform(rng, 0, 3));
    }
    (void)l.unlock();
    nap(uniform(rng, 0, 10));
  }
}

void semaphore_loop(zkr::session& s, guarded& g, const std::string& who, heartbeat& hb, std::mt19937_64& rng) {
  zkr::semaphore sem(s, root + "/semaphore", semaphore_max);
  while (g_run) {
    hb.beat("acquire lease");
    auto got = sem.acquire(ms(uniform(rng, 500, 3000)));
    if (!got) {
      failed(r_semaphore, got.error());
      nap(uniform(rng, 5, 50));
      continue;
    }
    ++g_stats[r_semaphore].ops;
    auto& lease = got.value();
    for (int n = uniform(rng, 1, 4); n > 0 && g_run; --n) {
      if (!lease.holds()) break;
      auto token = lease.fencing_token();
      if (!token) break;
      act(g, false, *token, false, who, rng);
      nap(uniform(rng, 0, 3));
    }
    lease.reset();
    nap(uniform(rng, 0, 10));
  }
}

void latch_loop(zkr::session& s, guarded& g, const std::string& who, heartbeat& hb, std::mt19937_64& rng) {
  zkr::latch_options lo;
  lo.id = who;
  zkr::leader_latch latch(s, root + "/latch", lo);
  if (auto r = latch.start(); !r) failed(r_latch, r.error());
  std::int64_t last_token = 0;
  while (g_run) {
    hb.beat("await leadership");
    auto led = latch.await_leadership(ms(uniform(rng, 200, 1000)));
    if (!led) {
      if (led.error() != zkr::errc::timed_out) failed(r_latch, led.error());
      if (led.error() == zkr::errc::not_started || led.error() == zkr::errc::closed) {
        (void)latch.close();
        (void)latch.start();
      }
      continue;
    }
    // A term: act while leading (and not in doubt), then sometimes resign
    // so that terms change without faults too.
    for (int n = uniform(rng, 5, 40); n > 0 && g_run; --n) {
      hb.beat("lead");
      if (!latch.has_leadership()) break;
      auto token = latch.fencing_token();
      if (!token) break;
      const bool new_term = *token != last_token;
      if (new_term) ++g_stats[r_latch].ops;
      act(g, true, *token, new_term, who, rng);
      last_token = *token;
      nap(uniform(rng, 1, 10));
    }
    if (g_run && latch.has_leadership() && chance(rng, 0.5)) {
      (void)latch.close();
      nap(uniform(rng, 0, 20));
      if (auto r = latch.start(); !r) failed(r_latch, r.error());
    }
  }
  (void)latch.close();
}

void fifo_producer(zkr::session& s, ledger& led, const std::string& who, heartbeat& hb, std::mt19937_64& rng) {
  zkr::fifo_queue<std::string> q(s, root + "/fifo");
  for (std::uint64_t n = 0; g_run && g_produce; ++n) {
    hb.beat("fifo put");
    const auto item = who + "-" + std::to_string(n);
    led.put_started(item);
    auto r = q.put(item);
    led.put_result(item, bool(r));
    if (r) ++g_stats[r_fifo].ops;
    else failed(r_fifo, r.error());
    nap(uniform(rng, 40, 100)); // slower than the consumers: the queue stays short
  }
}

// What a session went through between two points: the evidence printed with
// a duplicate (a connection loss makes a delete's or an ack's outcome unknown).
std::string session_story(client& c, std::uint64_t blips_before, std::int64_t sid_before) {
  const auto blips = c.blips.load() - blips_before;
  const auto sid = c.s->session_id();
  char buf[160];
  std::snprintf(buf, sizeof buf, "%s: %" PRIu64 " connection losses during it, session 0x%" PRIx64 "%s", c.name.c_str(),
                blips, std::uint64_t(sid_before), sid != sid_before ? " expired and was replaced meanwhile" : " kept");
  return buf;
}

void fifo_consumer(client& c, ledger& led, const std::string& who, heartbeat& hb, std::mt19937_64& rng) {
  auto& s = *c.s;
  zkr::fifo_queue<std::string> q(s, root + "/fifo");
  while (g_run) {
    hb.beat("fifo take");
    const auto start = next_seq();
    const auto blips0 = c.blips.load();
    const auto sid0 = s.session_id();
    auto r = q.take_item(ms(uniform(rng, 200, 1000)));
    if (r) {
      ++g_stats[r_fifo].ops;
      // Evidence for a duplicate: is the node still there after the take
      // returned it (its delete never applied)? Only a definite answer counts.
      hb.beat("fifo probe");
      auto ex = s.exists(r.value().path);
      led.delivered(r.value().value, start, who, true, ex && ex.value().has_value(), session_story(c, blips0, sid0),
                    r.value().maybe_duplicate);
    } else if (r.error() != zkr::errc::timed_out) {
      failed(r_fifo, r.error());
    }
    nap(uniform(rng, 0, 5));
  }
}

void lqueue_producer(zkr::session& s, ledger& led, const std::string& who, heartbeat& hb, std::mt19937_64& rng) {
  zkr::locking_queue<std::string> q(s, root + "/lqueue");
  for (std::uint64_t n = 0; g_run && g_produce; ++n) {
    hb.beat("lqueue put");
    const auto item = who + "-" + std::to_string(n);
    led.put_started(item);
    auto r = q.put(item, uniform(rng, 0, 2));
    led.put_result(item, bool(r));
    if (r) ++g_stats[r_lqueue].ops;
    else failed(r_lqueue, r.error());
    nap(uniform(rng, 40, 100)); // slower than the consumers: the queue stays short
  }
}

void lqueue_consumer(client& c, ledger& led, const std::string& who, heartbeat& hb, std::mt19937_64& rng) {
  auto& s = *c.s;
  zkr::locking_queue<std::string> q(s, root + "/lqueue");
  while (g_run) {
    hb.beat("lqueue take");
    const auto start = next_seq();
    const auto blips0 = c.blips.load();
    const auto sid0 = s.session_id();
    auto r = q.take(ms(uniform(rng, 200, 1000)));
    if (!r) {
      if (r.error() != zkr::errc::timed_out) failed(r_lqueue, r.error());
      continue;
    }
    ++g_stats[r_lqueue].ops;
    auto item = std::move(r).value();
    led.delivered(item.value(), start, who, false);
    nap(uniform(rng, 0, 5));
    hb.beat("lqueue settle");
    const int what = uniform(rng, 0, 19);
    if (what == 0) {
      if (auto rr = item.release(); !rr) failed(r_lqueue, rr.error());
    } else if (what == 1) {
      // Dropped unsettled: the destructor gives it back.
    } else {
      const auto value = item.value();
      if (auto a = item.ack(); a) led.acked(value, who, "from claim to ack " + session_story(c, blips0, sid0));
      else failed(r_lqueue, a.error());
    }
  }
}

// Rounds on their own paths (one path per round, as the recipe asks). A
// member records that it started entering round r before its first enter
// call; passing enter while another member has not started round r is a
// violation, whatever ZooKeeper showed.
struct barrier_book {
  std::mutex m;
  std::map<std::uint64_t, std::set<int>> started;
};

void dbarrier_loop(zkr::session& s, barrier_book& book, int me, heartbeat& hb, std::mt19937_64& rng) {
  for (std::uint64_t round = 0; g_run; ++round) {
    zkr::double_barrier_options o;
    o.id = "m" + std::to_string(me);
    zkr::double_barrier b(s, root + "/dbarrier/r-" + std::to_string(round), sessions_per_recipe, o);
    {
      std::lock_guard lk(book.m);
      book.started[round].insert(me);
    }
    bool in = false;
    while (g_run && !in) {
      hb.beat("barrier enter");
      auto r = b.enter(ms(uniform(rng, 1000, 3000)));
      if (r) in = true;
      else failed(r_dbarrier, r.error());
    }
    if (!in) break;
    {
      std::lock_guard lk(book.m);
      ++g_stats[r_dbarrier].checks;
      auto& who = book.started[round];
      if (int(who.size()) < sessions_per_recipe) {
        std::string list;
        for (int w : who) list += " m" + std::to_string(w);
        violation(r_dbarrier, "m" + std::to_string(me) + " passed enter of round " + std::to_string(round) +
                                  " while only" + list + " had started entering it");
      }
      book.started.erase(book.started.begin(), book.started.lower_bound(round > 8 ? round - 8 : 0));
    }
    ++g_stats[r_dbarrier].ops;
    nap(uniform(rng, 0, 10));
    // Leaving is bounded and retried a few times; a member that gives up
    // goes on (its node was deleted first, so the others still leave).
    for (int attempt = 0; attempt < 3 && g_run; ++attempt) {
      hb.beat("barrier leave");
      auto r = b.leave(ms(uniform(rng, 1000, 3000)));
      if (r) break;
      failed(r_dbarrier, r.error());
    }
  }
}

// The config publisher keeps the version it believes current; after an
// ambiguous failure it reads the config again.
struct config_state {
  std::mutex m;
  std::int32_t version = zkr::config_absent;
  std::string value;
};

void config_publisher_loop(zkr::session& s, config_state& st, heartbeat& hb, std::mt19937_64& rng) {
  zkr::config<std::string>::publisher pub(s, root + "/config");
  for (std::uint64_t n = 0; g_run; ++n) {
    hb.beat("config publish");
    std::int32_t expected;
    {
      std::lock_guard lk(st.m);
      expected = st.version;
    }
    const auto value = "v" + std::to_string(n);
    auto r = pub.publish(value, expected);
    if (r) {
      ++g_stats[r_config].ops;
      std::lock_guard lk(st.m);
      st.version = r.value();
      st.value = value;
    } else {
      failed(r_config, r.error());
      hb.beat("config read");
      if (auto cur = pub.read(); cur) {
        std::lock_guard lk(st.m);
        st.version = cur.value().version;
        st.value = cur.value().value;
      }
    }
    nap(uniform(rng, 30, 200));
  }
}

// Registrations come and go; each worker remembers what it asked for last.
void registry_loop(zkr::service_registration& reg, std::atomic<bool>& wanted, heartbeat& hb, std::mt19937_64& rng) {
  while (g_run) {
    nap(uniform(rng, 200, 1500));
    if (!g_run) break;
    if (!wanted) {
      hb.beat("register");
      auto r = reg.start();
      if (r) {
        ++g_stats[r_registry].ops;
        wanted = true;
      } else if (r.error() == zkr::errc::already_started) {
        wanted = true;
      } else {
        failed(r_registry, r.error());
      }
    } else if (chance(rng, 0.3)) {
      hb.beat("update payload");
      if (auto r = reg.update_payload("load=" + std::to_string(uniform(rng, 0, 100))); r) ++g_stats[r_registry].ops;
      else failed(r_registry, r.error());
    } else {
      hb.beat("unregister");
      auto r = reg.stop();
      wanted = false;
      if (r) ++g_stats[r_registry].ops;
      else failed(r_registry, r.error());
    }
  }
}

// ---- fault injection --------------------------------------------------------

struct fault_plan {
  clk::time_point end;
  double minutes;
};

// Cuts and stalls of single sessions, about three a second. A stalled session
// is released after longer than its timeout, so the server expires it.
void connection_faults(std::vector<client*> clients, std::vector<client*> stall_targets, fault_plan plan,
                       std::uint64_t seed, heartbeat& hb) {
  std::mt19937_64 rng(seed);
  std::exponential_distribution<double> gap(1.0 / 0.30); // mean 0.30 s between faults
  struct stall_until {
    client* c;
    clk::time_point until;
  };
  std::vector<stall_until> stalls;
  auto last_clear = clk::now();
  while (clk::now() < plan.end) {
    hb.beat("connection faults");
    const auto wake = clk::now() + std::chrono::duration_cast<clk::duration>(std::chrono::duration<double>(gap(rng)));
    while (clk::now() < wake) {
      const auto now = clk::now();
      for (auto it = stalls.begin(); it != stalls.end();)
        if (it->until <= now) {
          it->c->pass();
          it->c->stalled = false;
          it = stalls.erase(it);
        } else {
          ++it;
        }
      std::this_thread::sleep_for(std::min<clk::duration>(wake - now, 50ms));
    }
    const bool cut = chance(rng, 0.78);
    std::vector<client*> free;
    for (auto* cl : cut ? clients : stall_targets)
      if (!cl->stalled) free.push_back(cl);
    if (free.empty()) continue;
    auto* c = free[std::size_t(uniform(rng, 0, int(free.size()) - 1))];
    if (cut) {
      c->cut();
      ++g_faults[f_cut];
    } else {
      c->stalled = true;
      c->stall();
      const auto hold = session_timeout + session_timeout / 4 + ms(uniform(rng, 0, 1000));
      stalls.push_back({c, clk::now() + hold});
      ++g_faults[f_stall];
    }
    if (clk::now() - last_clear > 10s) { // the proxies' request records would grow all run
      for (auto* cl : clients)
        for (auto& p : cl->proxies) p.clear_records();
      last_clear = clk::now();
    }
  }
  for (auto& st : stalls) {
    st.c->pass();
    st.c->stalled = false;
  }
}

void progress() {
  say("injected=" + std::to_string(total_faults()) + " checks=" + std::to_string(total_checks()) +
      " violations=" + std::to_string(total_violations()));
}

// SIGKILL of the leader or of a follower, and the member's restart a few
// seconds later: one member down at most, so a quorum always serves. Run on
// the main thread: members die with the thread that started them
// (PR_SET_PDEATHSIG), so a restart from a thread that ends would kill them.
void member_faults(zt::ensemble& e, fault_plan plan, std::uint64_t seed, heartbeat& hb) {
  std::mt19937_64 rng(seed);
  auto last_progress = clk::now();
  auto sleep_until_or_end = [&](ms d) {
    const auto until = std::min(clk::now() + d, plan.end);
    while (clk::now() < until) {
      hb.beat("member faults: wait");
      std::this_thread::sleep_for(100ms);
      if (clk::now() - last_progress >= 30s) { // sparse progress lines
        progress();
        last_progress = clk::now();
      }
    }
  };
  while (clk::now() < plan.end) {
    sleep_until_or_end(ms(uniform(rng, 3000, 7000)));
    if (clk::now() >= plan.end) break;
    hb.beat("member faults: find leader");
    auto leader = e.leader(10s);
    if (!leader) {
      say("no leader found: " + leader.error().message());
      continue;
    }
    const bool kill_leader = chance(rng, 0.5);
    std::size_t victim = leader.value();
    if (!kill_leader) victim = (victim + std::size_t(uniform(rng, 1, int(e.size()) - 1))) % e.size();
    hb.beat("member faults: kill");
    if (auto r = e.kill(victim); !r) die("kill member: " + r.error().message());
    ++g_faults[kill_leader ? f_leader_kill : f_follower_kill];
    if (g_verbose) say(std::string("killed ") + (kill_leader ? "leader" : "follower") + " member " + std::to_string(victim));
    sleep_until_or_end(ms(uniform(rng, 2000, 5000)));
    hb.beat("member faults: restart");
    if (auto r = e.restart(victim); !r) die("restart member " + std::to_string(victim) + ": " + r.error().message());
    ++g_faults[f_restart];
  }
  progress();
}

// ---- the run ----------------------------------------------------------------

struct args {
  std::uint64_t seed = 0;
  bool seed_given = false;
  double minutes = default_minutes;
};

args parse(int argc, char** argv) {
  args a;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    auto need = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "zk_faults: %s needs a value\n", k.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (k == "--seed") {
      a.seed = std::stoull(need());
      a.seed_given = true;
    } else if (k == "--minutes") {
      a.minutes = std::stod(need());
      if (!(a.minutes > 0) || a.minutes > 12) {
        std::fprintf(stderr, "zk_faults: --minutes must be in (0, 12]\n");
        std::exit(2);
      }
    } else if (k == "--verbose") {
      g_verbose = true;
    } else if (k == "--ignore-doubt") {
      g_ignore_doubt = true;
    } else {
      std::fprintf(stderr, "usage: zk_faults [--seed N] [--minutes M] [--verbose] [--ignore-doubt]\n");
      std::exit(2);
    }
  }
  if (!a.seed_given)
    a.seed = std::uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count());
  return a;
}

void print_tables(const std::vector<std::unique_ptr<client>>& clients) {
  std::lock_guard lk(g_out_mx);
  std::printf("\n%-18s %10s %10s %10s %10s  %s\n", "recipe", "ops", "errors", "checks", "violations",
              "most frequent errors");
  for (int r = 0; r < r_count; ++r) {
    auto& s = g_stats[r];
    std::vector<std::pair<std::uint64_t, std::string>> kinds;
    {
      std::lock_guard klk(s.m);
      for (auto& [k, n] : s.error_kinds) kinds.emplace_back(n, k);
    }
    std::sort(kinds.rbegin(), kinds.rend());
    std::string top;
    for (std::size_t i = 0; i < kinds.size() && i < 3; ++i)
      top += (i ? "; " : "") + kinds[i].second + " x" + std::to_string(kinds[i].first);
    std::printf("%-18s %10" PRIu64 " %10" PRIu64 " %10" PRIu64 " %10" PRIu64 "  %s\n", recipe_names[r],
                s.ops.load(), s.errors.load(), s.checks.load(), s.violations.load(), top.c_str());
  }
  std::printf("\n%-26s %8s\n", "fault", "count");
  for (int f = 0; f < f_count; ++f) std::printf("%-26s %8" PRIu64 "\n", fault_names[f], g_faults[f].load());
  std::uint64_t lost = 0;
  for (auto& c : clients) lost += c->lost;
  std::printf("%-26s %8" PRIu64 "  (observed, not counted as injected)\n", "session expiries seen", lost);
  std::printf("\n");
  std::fflush(stdout);
}

} // namespace

int main(int argc, char** argv) {
  const args a = parse(argc, argv);
  // Scaled with the fault phase: 1,000 at the default 8 minutes.
  const auto required = std::uint64_t(std::ceil(double(default_required_faults) * a.minutes / default_minutes));
  {
    std::lock_guard lk(g_out_mx);
    std::printf("faults: seed=%" PRIu64 "\n", a.seed);
    std::fflush(stdout);
  }
  say("minutes=" + minutes_text(a.minutes) + " required faults=" + std::to_string(required) +
      " (replay with --seed " + std::to_string(a.seed) + ")");
  std::mt19937_64 master(a.seed);
  auto next_seed = [&] { return master(); };

  // The watchdog: any beat older than its limit, or the run as a whole past
  // its deadline, ends the program with the reason.
  std::atomic<bool> watchdog_on{true};
  const auto deadline = clk::now() + std::chrono::duration_cast<clk::duration>(
                                         std::chrono::duration<double>(a.minutes * 60 + 5 * 60));
  std::thread watchdog([&] {
    while (watchdog_on) {
      std::this_thread::sleep_for(500ms);
      const auto now_ms = std::chrono::duration_cast<ms>(clk::now() - g_t0).count();
      if (clk::now() > deadline) die("watchdog: the run is past its deadline (fault phase + 5 min)");
      std::lock_guard lk(g_beats_mx);
      for (auto& h : g_beats)
        if (h->active && now_ms - h->at_ms > h->limit_s * 1000)
          die("watchdog: " + h->name + " made no progress for " + std::to_string((now_ms - h->at_ms) / 1000) +
              " s while in '" + h->doing.load() + "'");
    }
  });
  auto* main_hb = new_heartbeat("main", 120);

  main_hb->beat("start ensemble");
  auto ens = zt::ensemble::start();
  if (!ens) die("start ensemble: " + ens.error().message());
  auto& e = ens.value();
  g_ensemble = &e;
  say("ensemble up: " + e.connect_string());

  main_hb->beat("connect clients");
  std::vector<std::unique_ptr<client>> clients;
  std::vector<std::vector<client*>> by_recipe(r_count);
  for (int r = 0; r < r_count; ++r)
    for (int k = 0; k < sessions_per_recipe; ++k) {
      clients.push_back(make_client(e, std::string(recipe_names[r]) + "#" + std::to_string(k)));
      by_recipe[r].push_back(clients.back().get());
    }
  // Config subscribers need sessions of their own: #0 publishes.
  std::vector<client*> subscriber_clients;
  for (int k = 0; k < sessions_per_recipe; ++k) {
    clients.push_back(make_client(e, "config-sub#" + std::to_string(k)));
    subscriber_clients.push_back(clients.back().get());
  }
  {
    auto& s0 = *by_recipe[r_mutex][0]->s;
    if (auto r = s0.ensure_path(root); !r) die("ensure " + root + ": " + r.error().message());
  }
  say(std::to_string(clients.size()) + " sessions connected, each through 3 proxies");

  guarded mutex_res(r_mutex, 0), rw_res(r_rwlock, 1 << 20), sem_res(r_semaphore, semaphore_max),
      latch_res(r_latch, 0);
  ledger fifo_ledger(r_fifo), lq_ledger(r_lqueue);
  barrier_book book;
  config_state cfg;

  // Objects that outlive their worker threads (checked after the faults).
  std::vector<std::unique_ptr<zkr::config<std::string>::subscriber>> subs;
  std::vector<std::int32_t> sub_last_version(subscriber_clients.size(), -1);
  std::mutex sub_mx;
  for (std::size_t k = 0; k < subscriber_clients.size(); ++k) {
    subs.push_back(std::make_unique<zkr::config<std::string>::subscriber>(*subscriber_clients[k]->s, root + "/config"));
    // Versions only move forward on one subscriber (the node is never re-created).
    subs.back()->add_listener([k, &sub_last_version, &sub_mx](const zkr::config<std::string>::snapshot& snap) {
      std::lock_guard lk(sub_mx);
      ++g_stats[r_config].checks;
      if (snap.version < sub_last_version[k])
        violation(r_config, "subscriber " + std::to_string(k) + " went back from version " +
                                std::to_string(sub_last_version[k]) + " to " + std::to_string(snap.version));
      sub_last_version[k] = std::max(sub_last_version[k], snap.version);
    });
  }
  std::vector<std::unique_ptr<zkr::service_registration>> regs;
  std::vector<std::unique_ptr<zkr::service_discovery>> discs;
  std::vector<std::unique_ptr<std::atomic<bool>>> wanted;
  for (int k = 0; k < sessions_per_recipe; ++k) {
    auto& s = *by_recipe[r_registry][std::size_t(k)]->s;
    zkr::service_instance in;
    in.service = "faultsvc";
    in.id = "i" + std::to_string(k);
    in.address = "127.0.0.1";
    in.ports = {{"p", std::uint16_t(9000 + k)}};
    zkr::registry_options ro;
    ro.base_path = root + "/services";
    regs.push_back(std::make_unique<zkr::service_registration>(s, in, ro));
    discs.push_back(std::make_unique<zkr::service_discovery>(s, "faultsvc", ro));
    wanted.push_back(std::make_unique<std::atomic<bool>>(false));
  }

  main_hb->beat("start workers");
  worker_set workers;
  auto lock_worker_name = [](recipe_id r, int k, int t) {
    return std::string(recipe_names[r]) + "#" + std::to_string(k) + "." + std::to_string(t);
  };
  for (int k = 0; k < sessions_per_recipe; ++k) {
    auto ck = std::size_t(k);
    // mutex: one contender per session
    workers.spawn(lock_worker_name(r_mutex, k, 0), next_seed(), [&, ck, k](heartbeat& hb, std::mt19937_64& rng) {
      zkr::mutex m(*by_recipe[r_mutex][ck]->s, root + "/mutex");
      lock_loop(m, mutex_res, true, r_mutex, lock_worker_name(r_mutex, k, 0), hb, rng);
    });
    // read-write lock: two contenders per session, each mostly reading or mostly writing
    for (int t = 0; t < 2; ++t)
      workers.spawn(lock_worker_name(r_rwlock, k, t), next_seed(), [&, ck, k, t](heartbeat& hb, std::mt19937_64& rng) {
        zkr::read_write_lock rw(*by_recipe[r_rwlock][ck]->s, root + "/rwlock");
        const auto who = lock_worker_name(r_rwlock, k, t);
        while (g_run) {
          const bool write = chance(rng, t == 0 ? 0.7 : 0.3);
          // One acquisition per turn, so a contender keeps changing sides.
          hb.beat(write ? "write lock" : "read lock");
          auto one = [&](auto& l) {
            auto got = l.lock(ms(uniform(rng, 500, 3000)));
            if (!got) {
              failed(r_rwlock, got.error());
              nap(uniform(rng, 5, 50));
              return;
            }
            ++g_stats[r_rwlock].ops;
            bool first = true;
            for (int n = uniform(rng, 1, 3); n > 0 && g_run; --n) {
              if (!l.holds()) break;
              auto token = l.fencing_token();
              if (!token) break;
              act(rw_res, write, *token, first, who + (write ? " (writer)" : " (reader)"), rng);
              first = false;
            }
            (void)l.unlock();
          };
          if (write) one(rw.write_lock());
          else one(rw.read_lock());
          nap(uniform(rng, 0, 10));
        }
      });
    // semaphore: two lease takers per session
    for (int t = 0; t < 2; ++t)
      workers.spawn(lock_worker_name(r_semaphore, k, t), next_seed(), [&, ck, k, t](heartbeat& hb, std::mt19937_64& rng) {
        semaphore_loop(*by_recipe[r_semaphore][ck]->s, sem_res, lock_worker_name(r_semaphore, k, t), hb, rng);
      });
    workers.spawn(lock_worker_name(r_latch, k, 0), next_seed(), [&, ck, k](heartbeat& hb, std::mt19937_64& rng) {
      latch_loop(*by_recipe[r_latch][ck]->s, latch_res, lock_worker_name(r_latch, k, 0), hb, rng);
    });
    workers.spawn("fifo-producer#" + std::to_string(k), next_seed(), [&, ck, k](heartbeat& hb, std::mt19937_64& rng) {
      fifo_producer(*by_recipe[r_fifo][ck]->s, fifo_ledger, "f" + std::to_string(k), hb, rng);
    });
    workers.spawn("fifo-consumer#" + std::to_string(k), next_seed(), [&, ck, k](heartbeat& hb, std::mt19937_64& rng) {
      fifo_consumer(*by_recipe[r_fifo][ck], fifo_ledger, "fifo-consumer#" + std::to_string(k), hb, rng);
    });
    workers.spawn("lqueue-producer#" + std::to_string(k), next_seed(), [&, ck, k](heartbeat& hb, std::mt19937_64& rng) {
      lqueue_producer(*by_recipe[r_lqueue][ck]->s, lq_ledger, "q" + std::to_string(k), hb, rng);
    });
    workers.spawn("lqueue-consumer#" + std::to_string(k), next_seed(), [&, ck, k](heartbeat& hb, std::mt19937_64& rng) {
      lqueue_consumer(*by_recipe[r_lqueue][ck], lq_ledger, "lqueue-consumer#" + std::to_string(k), hb, rng);
    });
    workers.spawn("dbarrier#" + std::to_string(k), next_seed(), [&, ck, k](heartbeat& hb, std::mt19937_64& rng) {
      dbarrier_loop(*by_recipe[r_dbarrier][ck]->s, book, k, hb, rng);
    });
    workers.spawn("registry#" + std::to_string(k), next_seed(), [&, ck](heartbeat& hb, std::mt19937_64& rng) {
      registry_loop(*regs[ck], *wanted[ck], hb, rng);
    });
  }
  workers.spawn("config-publisher", next_seed(), [&](heartbeat& hb, std::mt19937_64& rng) {
    config_publisher_loop(*by_recipe[r_config][0]->s, cfg, hb, rng);
  });
  // Subscribers and discovery caches start while the first faults may come.
  for (auto& s : subs)
    if (auto r = s->start(10s); !r) failed(r_config, r.error());
  for (auto& d : discs)
    if (auto r = d->start(10s); !r) failed(r_registry, r.error());

  // ---- the fault phase
  const fault_plan plan{clk::now() + std::chrono::duration_cast<clk::duration>(
                                         std::chrono::duration<double>(a.minutes * 60)),
                        a.minutes};
  say("fault phase: " + minutes_text(a.minutes) + " min, " + std::to_string(workers.threads.size()) + " workers");
  std::vector<client*> all_clients;
  for (auto& c : clients) all_clients.push_back(c.get());
  const auto conn_seed = next_seed(), member_seed = next_seed();
  auto* conn_hb = new_heartbeat("connection-faults", 30);
  std::thread conn_thread([&] {
    // The self-test aims its stalls at the mutex sessions, whose holders it makes blind.
    connection_faults(all_clients, g_ignore_doubt ? by_recipe[r_mutex] : all_clients, plan, conn_seed, *conn_hb);
    conn_hb->active = false;
  });
  member_faults(e, plan, member_seed, *main_hb);
  conn_thread.join();

  // ---- the ensemble whole again, every connection passing
  main_hb->beat("heal");
  for (std::size_t i = 0; i < e.size(); ++i)
    if (!e.running(i)) {
      if (auto r = e.restart(i); !r) die("final restart: " + r.error().message());
      ++g_faults[f_restart];
    }
  for (auto& c : clients) c->pass();
  if (auto r = e.wait_serving(60s); !r) die(r.error().message());
  // Producers stop first; the consumers empty the queues while the ensemble
  // is whole (bounded), then every worker stops.
  g_produce = false;
  say("faults stopped; ensemble whole; producers stopped, consumers draining");
  {
    auto& s = *by_recipe[r_mutex][0]->s;
    zkr::fifo_queue<std::string> fq(s, root + "/fifo");
    zkr::locking_queue<std::string> lq(s, root + "/lqueue");
    const auto until = clk::now() + 60s;
    while (clk::now() < until) {
      main_hb->beat("consumers drain");
      auto a1 = fq.size();
      auto a2 = lq.size();
      if (a1 && a2 && a1.value() == 0 && a2.value() == 0) break;
      nap(500);
    }
  }
  say("stopping the workers");
  g_run = false;
  main_hb->beat("join workers");
  workers.join();
  for (auto& c : clients) {
    main_hb->beat("reconnect");
    if (auto r = c->s->wait_connected(30s); !r) say(c->name + " not connected after 30 s: " + r.error().message());
  }

  // ---- config: a final publish, then every subscriber must reach it
  main_hb->beat("config converge");
  {
    zkr::config<std::string>::publisher pub(*by_recipe[r_config][0]->s, root + "/config");
    const std::string final_value = "final-" + std::to_string(a.seed);
    std::int32_t final_version = -1;
    const auto until = clk::now() + 30s;
    while (clk::now() < until) {
      auto cur = pub.read();
      const auto expected = cur ? cur.value().version : zkr::config_absent;
      if (auto r = pub.publish(final_value, expected); r) {
        final_version = r.value();
        break;
      }
      nap(200);
    }
    if (final_version < 0) die("config: the final publish did not succeed in 30 s");
    const auto bound = clk::now() + converge_bound;
    for (std::size_t k = 0; k < subs.size(); ++k) {
      ++g_stats[r_config].checks;
      bool ok = false;
      std::optional<zkr::config<std::string>::snapshot> c;
      while (!(ok = (c = subs[k]->current()) && c->value == final_value && c->version == final_version) &&
             clk::now() < bound)
        nap(50);
      if (!ok)
        violation(r_config, "subscriber " + std::to_string(k) + " did not converge in " +
                                std::to_string(converge_bound.count() / 1000) + " s to version " +
                                std::to_string(final_version) + " '" + final_value + "'; it holds " +
                                (c ? "version " + std::to_string(c->version) + " '" + c->value + "'" : "nothing"));
    }
    say("config: subscribers checked against version " + std::to_string(final_version));
  }

  // ---- registry: a fixed final set (i0 and i2 up, i1 down), then every cache must show it
  main_hb->beat("registry converge");
  {
    std::set<std::string> expected;
    for (std::size_t k = 0; k < regs.size(); ++k) {
      const bool up = k != 1;
      const auto until = clk::now() + 30s;
      bool done = false;
      while (!done && clk::now() < until) {
        if (up) {
          auto r = regs[k]->start();
          done = r || r.error() == zkr::errc::already_started;
        } else {
          done = bool(regs[k]->stop());
        }
        if (!done) nap(200);
      }
      if (!done) die("registry: could not bring i" + std::to_string(k) + " to its final state in 30 s");
      if (up) expected.insert("i" + std::to_string(k));
    }
    auto ids = [](const std::vector<zkr::service_instance>& v) {
      std::set<std::string> s;
      for (auto& i : v) s.insert(i.id);
      return s;
    };
    const auto bound = clk::now() + converge_bound;
    for (std::size_t k = 0; k < discs.size(); ++k) {
      ++g_stats[r_registry].checks;
      const auto left = std::chrono::duration_cast<ms>(bound - clk::now());
      const bool ok = discs[k]->wait_until([&](const std::vector<zkr::service_instance>& v) { return ids(v) == expected; },
                                           std::max(left, ms(1)));
      if (!ok) {
        std::string seen;
        for (auto& id : ids(discs[k]->instances())) seen += " " + id;
        violation(r_registry, "discovery cache " + std::to_string(k) + " did not converge in " +
                                  std::to_string(converge_bound.count() / 1000) + " s to {i0 i2}; it shows {" + seen + " }");
      }
    }
    say("registry: discovery caches checked against {i0 i2}");
  }

  // ---- close every worker session (claims and ephemerals go with them)
  main_hb->beat("close sessions");
  discs.clear();
  regs.clear();
  subs.clear();
  for (auto& c : clients) (void)c->s->close();

  // ---- drain the queues on a fresh session straight to the ensemble
  main_hb->beat("drain");
  {
    zkr::session_options o;
    o.connect_string = e.connect_string();
    o.session_timeout = 10s;
    auto ds = zkr::session::connect(o, 30s);
    if (!ds) die("drain session: " + ds.error().message());
    auto& s = ds.value();
    {
      zkr::fifo_queue<std::string> q(s, root + "/fifo");
      int empty_takes = 0;
      while (empty_takes < 2) {
        main_hb->beat("drain fifo");
        const auto start = next_seq();
        auto r = q.take_batch(200, 2s);
        if (r) {
          empty_takes = 0;
          for (auto& v : r.value()) fifo_ledger.delivered(v, start, "drain", true);
        } else {
          ++empty_takes;
          if (r.error() != zkr::errc::timed_out) failed(r_fifo, r.error());
        }
      }
      auto left = q.size();
      ++g_stats[r_fifo].checks;
      if (!left || left.value() != 0)
        violation(r_fifo, "after the drain the queue still reports " +
                              (left ? std::to_string(left.value()) + " items" : left.error().message()));
    }
    {
      zkr::locking_queue<std::string> q(s, root + "/lqueue");
      int empty_takes = 0;
      while (empty_takes < 2) {
        main_hb->beat("drain lqueue");
        const auto start = next_seq();
        auto r = q.take(2s);
        if (!r) {
          ++empty_takes;
          if (r.error() != zkr::errc::timed_out) failed(r_lqueue, r.error());
          continue;
        }
        empty_takes = 0;
        auto item = std::move(r).value();
        const auto value = item.value();
        lq_ledger.delivered(value, start, "drain", false);
        if (auto ack = item.ack(); ack) lq_ledger.acked(value, "drain");
        else failed(r_lqueue, ack.error());
      }
      auto left = q.size();
      ++g_stats[r_lqueue].checks;
      if (!left || left.value() != 0)
        violation(r_lqueue, "after the drain the queue still reports " +
                                (left ? std::to_string(left.value()) + " items" : left.error().message()));
    }
    fifo_ledger.final_check("taken");
    lq_ledger.final_check("acked");
    (void)s.close();
  }

  // ---- tables and the verdict
  main_hb->beat("report");
  print_tables(clients);
  clients.clear(); // sessions, then proxies
  g_ensemble = nullptr;
  main_hb->beat("stop ensemble");
  { auto gone = std::move(ens).value(); } // SIGKILLs and reaps every member, removes the directory
  watchdog_on = false;
  watchdog.join();

  const auto injected = total_faults(), checks = total_checks(), violations = total_violations();
  if (injected < required)
    say("too few faults: " + std::to_string(injected) + " injected, " + std::to_string(required) + " required");
  std::printf("faults: run took %.0f s\n", elapsed_s());
  std::printf("faults: injected=%" PRIu64 " checks=%" PRIu64 " violations=%" PRIu64 "\n", injected, checks,
              violations);
  return violations == 0 && injected >= required ? 0 : 1;
}
