// image-worker: the middle server. Takes fetch tasks from the locking queue,
// finds a store of the task's network through discovery (failing over to
// another store of the same tag), fetches the image with a timeout and
// bounded retries, posts it to the task's callback address, and acks the
// task only after the callback accepted it. A task that keeps failing goes to
// the dead-letter queue with its reason. See README.md.
//
//   image-worker --zk 127.0.0.1:2181 --secret-file key [--id w1] [--threads 2] [--attempts 3]
//                [--fetch-timeout-ms 2000] [--trace-file trace.jsonl] [--root /image-worker]
//
// Prints `ready <id>` once it takes tasks; SIGTERM or SIGINT stops it (a task
// in hand is given back to the queue, not lost).
#include "../common/process.hpp"
#include "common.hpp"
#include "request.hpp"

#include <CLI/CLI.hpp>
#include <httplib.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

using namespace image_worker;
using namespace std::chrono_literals;

namespace {

/// How one attempt to fetch and deliver ended.
struct outcome {
  enum kind { ok, retry, permanent } how = retry;
  std::string reason;
  bool callback_down = false; ///< the api did not answer: not the task's fault
};

struct options {
  std::string id;
  int attempts = 3;
  std::chrono::milliseconds fetch_timeout{2000};
};

class worker {
public:
  worker(zkr::session& zk, zk_paths paths, std::string secret, options o, stage_log& log, const zkr::queue_options& qo)
      : zk_(zk), paths_(std::move(paths)), secret_(std::move(secret)), o_(std::move(o)), log_(log),
        tasks_(zk, paths_.tasks(), qo), dead_(zk, paths_.dead(), qo) {}

  /// Takes and handles tasks until stop().
  void run() {
    while (!stopping_) {
      auto item = tasks_.take(1s);
      if (!item) {
        if (item.error() == zkr::errc::timed_out) continue;
        if (item.error() == zkr::errc::closed || item.error() == zkr::errc::cancelled) return;
        std::printf("take: %s\n", item.error().message().c_str());
        std::fflush(stdout);
        pause(500ms); // ZooKeeper away: do not spin
        continue;
      }
      try {
        handle(item.value());
      } catch (const std::exception& e) { // a task or record this code did not foresee: buried, never a crash
        std::printf("unexpected: %s\n", e.what());
        if (item.value().held()) bury(item.value(), json(), "", "", std::string("unexpected: ") + e.what());
      }
    }
  }
  void stop() {
    {
      std::lock_guard lk(m_);
      stopping_ = true;
    }
    cv_.notify_all();
    tasks_.close();
  }

private:
  using item_t = zkr::locking_queue<std::string>::item;

  void handle(item_t& item) {
    const auto& trace = item.trace_id();
    zkr::trace_scope scope(trace); // this thread's ZooKeeper calls carry it
    const auto task = json::parse(*item, nullptr, false);
    std::string why;
    const auto get = [&](const char* k) { return task.is_object() && task.contains(k) && task[k].is_string() ? task[k].get<std::string>() : std::string(); };
    const std::string job = get("jobId"), data_id = get("dataId"), network = get("network"), path = get("path"),
                      callback = get("callback");
    const auto cb = parse_http_url(callback, &why);
    if (!valid_job_id(job) || !valid_data_id(data_id) || !valid_network_tag(network) || path.empty() ||
        path[0] != '/' || !cb)
      return bury(item, task, job, data_id, "malformed task: " + item->substr(0, 200));
    if (cb->host != "127.0.0.1") // this example talks to loopback only
      return bury(item, task, job, data_id, "callback host " + cb->host + " is not 127.0.0.1");
    std::printf("took %s trace %s\n", job.c_str(), trace.value_or("-").c_str());
    std::fflush(stdout);
    log_.write("worker", trace, job, "taken by " + o_.id);

    // The job record says whether this task is still wanted (a task may be
    // delivered twice), and how often it was handed out already.
    auto rec = update_job(zk_, paths_, data_id, [&](json& j) {
      if (finished(j)) return false;
      j["state"] = fetching;
      j["attempts"] = j.value("attempts", 0) + 1;
      j["worker"] = o_.id;
      return true;
    });
    if (!rec) {
      if (rec.error() == zkr::zk_errc::no_node || rec.error() == zkr::errc::decode_failed)
        return bury(item, task, job, data_id, rec.error().message());
      std::printf("job %s: %s; given back\n", job.c_str(), rec.error().message().c_str());
      std::fflush(stdout);
      (void)item.release();
      return pause(500ms);
    }
    if (finished(rec.value())) {
      std::printf("skip %s: already %s\n", job.c_str(), rec.value().value("state", "").c_str());
      std::fflush(stdout);
      (void)item.ack();
      return;
    }
    if (rec.value().value("attempts", 0) > max_deliveries)
      return bury(item, task, job, data_id,
                  "handed out " + std::to_string(max_deliveries) + " times without finishing");

    outcome last;
    for (int round = 0; round < o_.attempts && !stopping_; ++round) {
      if (round > 0) pause(backoff(round));
      if (stopping_) break;
      last = attempt(job, network, path, *cb, trace);
      if (last.how != outcome::retry) break;
      std::printf("job %s round %d: %s\n", job.c_str(), round + 1, last.reason.c_str());
      std::fflush(stdout);
    }
    if (last.how == outcome::ok) {
      if (auto a = item.ack(); !a) {
        // The claim went with the session: another worker gets the task and
        // finds the job stored.
        std::printf("ack %s: %s\n", job.c_str(), a.error().message().c_str());
      }
      std::printf("stored %s\n", job.c_str());
      std::fflush(stdout);
      return;
    }
    if (last.how == outcome::retry && (stopping_ || last.callback_down)) {
      // Stopping, or the api is away: the task is not at fault, so it goes
      // back without using up one of its deliveries, to be tried again.
      (void)update_job(zk_, paths_, data_id, [&](json& j) {
        if (finished(j)) return false;
        j["state"] = queued;
        j["attempts"] = std::max(0, j.value("attempts", 0) - 1);
        return true;
      });
      (void)item.release();
      std::printf("gave back %s: %s\n", job.c_str(), stopping_ ? "stopping" : last.reason.c_str());
      std::fflush(stdout);
      if (!stopping_) pause(backoff(4)); // 1.6 s ±50 %: workers do not come back in step
      return;
    }
    if (last.how == outcome::retry)
      last.reason = "gave up after " + std::to_string(o_.attempts) + " rounds: " + last.reason;
    bury(item, task, job, data_id, last.reason);
  }

  /// One round: each store of the network in turn until one answers, then
  /// the callback.
  outcome attempt(const std::string& job, const std::string& network, const std::string& path, const http_url& cb,
                  const std::optional<std::string>& trace) {
    auto* v = view(network);
    if (!v) return {outcome::retry, "cannot watch the stores of " + network};
    auto stores = v->instances();
    std::erase_if(stores, [](const zkr::service_instance& s) { return s.address != "127.0.0.1"; }); // loopback only
    if (stores.empty()) return {outcome::retry, "no store of network " + network + " is up (on 127.0.0.1)"};
    const auto first = next_++;
    std::string bytes, problems;
    bool got = false;
    std::size_t not_found = 0;
    for (std::size_t i = 0; i < stores.size() && !got; ++i) {
      const auto& s = stores[(first + i) % stores.size()];
      const auto name = s.id + " (" + s.address + ":" + std::to_string(s.port("http")) + ")";
      httplib::Client c(s.address, s.port("http"));
      c.set_connection_timeout(o_.fetch_timeout);
      c.set_read_timeout(o_.fetch_timeout);
      c.set_write_timeout(o_.fetch_timeout);
      std::string body; // a content receiver leaves the response's body empty
      bool too_big = false;
      auto r = c.Get(path, httplib::Headers{}, [&](const char* data, std::size_t n) {
        if ((too_big = body.size() + n > max_image_bytes)) return false; // stop reading what would be refused anyway
        body.append(data, n);
        return true;
      });
      if (too_big) return {outcome::permanent, "store " + name + ": " + path + " is over " + std::to_string(max_image_bytes) + " bytes"};
      if (!r) {
        problems += "; " + name + ": " + httplib::to_string(r.error());
        continue; // fail over to the next store of the tag
      }
      if (r->status == 404) {
        ++not_found;
        problems += "; " + name + ": not found";
        continue;
      }
      if (r->status >= 500) {
        problems += "; " + name + ": HTTP " + std::to_string(r->status);
        continue;
      }
      if (r->status != 200)
        return {outcome::permanent, "store " + name + " refused " + path + ": HTTP " + std::to_string(r->status) + " " + body.substr(0, 200)};
      bytes = std::move(body);
      got = true;
    }
    if (!got) {
      if (not_found == stores.size()) return {outcome::permanent, "no store of " + network + " has " + path};
      return {outcome::retry, "no store answered" + problems};
    }
    log_.write("worker", trace, job, "fetched " + std::to_string(bytes.size()) + " bytes of " + path);

    httplib::Client c(cb.host, cb.port);
    c.set_connection_timeout(o_.fetch_timeout);
    c.set_read_timeout(10s); // the api writes a file and a znode
    c.set_write_timeout(o_.fetch_timeout);
    httplib::Headers h{{"X-Signature", sign(secret_, job, bytes)}, {"X-Worker", o_.id}};
    if (trace) h.emplace("X-Trace-Id", *trace);
    const auto target = cb.path + (cb.path.back() == '/' ? "" : "/") + job;
    auto r = c.Post(target, h, bytes, "application/octet-stream");
    if (!r)
      return {outcome::retry, "callback " + cb.host + ":" + std::to_string(cb.port) + ": " + httplib::to_string(r.error()),
              true};
    if (r->status == 200) return {outcome::ok, {}};
    const auto answer = json::parse(r->body, nullptr, false);
    const auto msg = answer.is_object() && answer.contains("message") && answer["message"].is_string()
                         ? answer["message"].get<std::string>()
                         : r->body.substr(0, 200);
    if (r->status >= 500 || r->status == 429) return {outcome::retry, "callback: HTTP " + std::to_string(r->status) + " " + msg};
    return {outcome::permanent, "callback refused the image: HTTP " + std::to_string(r->status) + " " + msg};
  }

  /// The dead-letter queue gets the task and its reason, the job its
  /// failure; then the task is acked. Each step before the ack is safe to
  /// repeat should this worker die in between.
  void bury(item_t& item, const json& task, const std::string& job, const std::string& data_id,
            const std::string& reason) {
    json letter{{"task", task.is_object() ? task : json(*item)}, {"reason", reason}, {"worker", o_.id},
                {"at", zkr::detail::utc_timestamp()}};
    if (auto p = dead_.put(letter.dump(-1, ' ', false, json::error_handler_t::replace)); !p) {
      std::printf("dead letter for %s not written (%s); given back\n", job.c_str(), p.error().message().c_str());
      std::fflush(stdout);
      (void)item.release();
      return pause(500ms);
    }
    if (valid_data_id(data_id)) {
      auto u = update_job(zk_, paths_, data_id, [&](json& j) {
        if (finished(j)) return false; // stored by an earlier delivery: keep it
        j["state"] = failed;
        j["reason"] = reason;
        return true;
      });
      if (!u && u.error() != zkr::zk_errc::no_node && u.error() != zkr::errc::decode_failed) {
        // Not acked: a job must not stay "fetching" with no task. The task
        // comes again (its letter is then written twice; a replay takes one).
        std::printf("job %s: failure not recorded (%s); given back\n", job.c_str(), u.error().message().c_str());
        std::fflush(stdout);
        (void)item.release();
        return pause(500ms);
      }
    }
    (void)item.ack();
    log_.write("worker", item.trace_id(), job, "dead: " + reason);
    std::printf("dead %s: %s\n", job.empty() ? "(no job id)" : job.c_str(), reason.c_str());
    std::fflush(stdout);
  }

  /// The live view of a network's stores, started on first use.
  zkr::service_discovery* view(const std::string& network) {
    std::lock_guard lk(views_m_);
    auto& v = views_[network];
    if (!v) {
      zkr::registry_options ro;
      ro.base_path = paths_.networks();
      auto d = std::make_unique<zkr::service_discovery>(zk_, network, ro);
      if (auto r = d->start(5s); !r) {
        std::printf("stores of %s: %s\n", network.c_str(), r.error().message().c_str());
        views_.erase(network);
        return nullptr;
      }
      v = std::move(d);
    }
    return v.get();
  }

  /// 200 ms × 2^round, ±50 %, at most 5 s.
  std::chrono::milliseconds backoff(int round) {
    thread_local std::mt19937 rng{std::random_device{}()};
    const double base = std::min(5000.0, 200.0 * double(1 << std::min(round, 10)));
    return std::chrono::milliseconds(static_cast<long>(std::uniform_real_distribution<>(0.5, 1.5)(rng) * base));
  }
  void pause(std::chrono::milliseconds d) {
    std::unique_lock lk(m_);
    cv_.wait_for(lk, d, [&] { return stopping_.load(); });
  }

  zkr::session& zk_;
  zk_paths paths_;
  std::string secret_;
  options o_;
  stage_log& log_;
  zkr::locking_queue<std::string> tasks_, dead_;
  std::mutex views_m_;
  std::map<std::string, std::unique_ptr<zkr::service_discovery>> views_;
  std::atomic<std::size_t> next_{0};
  std::atomic<bool> stopping_{false};
  std::mutex m_;
  std::condition_variable cv_;
};

} // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  CLI::App app{"image-worker: fetches queued images from their network's stores (examples/image-worker/README.md)"};
  std::string zk_connect, root = "/image-worker", secret_file, trace_file;
  options o;
  o.id = "w" + std::to_string(::getpid());
  int threads = 2, session_ms = 10000, timeout_ms = 2000;
  app.add_option("--zk", zk_connect, "ZooKeeper connect string")->required();
  app.add_option("--root", root, "the system's root znode");
  app.add_option("--secret-file", secret_file, "the callback signing key (first line)")->required();
  app.add_option("--id", o.id, "this worker's id (in logs and job records)");
  app.add_option("--threads", threads, "tasks handled at once")->check(CLI::Range(1, 64));
  app.add_option("--attempts", o.attempts, "rounds over the stores before a task is dead")->check(CLI::Range(1, 20));
  app.add_option("--fetch-timeout-ms", timeout_ms, "connect and read timeout per store")->check(CLI::Range(50, 600000));
  app.add_option("--trace-file", trace_file, "append trace lines (JSON) here");
  app.add_option("--session-timeout-ms", session_ms, "ZooKeeper session timeout")->check(CLI::Range(1000, 600000));
  CLI11_PARSE(app, argc, argv);
  o.fetch_timeout = std::chrono::milliseconds(timeout_ms);
  const sigset_t stop_signals = examples::block_stop_signals(); // before any thread starts
  std::string why;
  auto secret = read_secret(secret_file, why);
  if (!secret) {
    std::fprintf(stderr, "image-worker: %s\n", why.c_str());
    return 2;
  }
  stage_log log(trace_file);
  if (log.failed_to_open(trace_file)) {
    std::fprintf(stderr, "image-worker: cannot open the trace file %s\n", trace_file.c_str());
    return 2;
  }
  auto tr = tracing(trace_file);
  if (!tr) {
    std::fprintf(stderr, "image-worker: %s\n", tr.error().message().c_str());
    return 2;
  }
  auto zs = examples::connect_zk(zk_connect, std::chrono::milliseconds(session_ms));
  if (!zs) {
    std::fprintf(stderr, "image-worker: cannot connect to ZooKeeper at %s: %s\n", zk_connect.c_str(),
                 zs.error().message().c_str());
    return 1;
  }
  zkr::session zk = zs.value().intercepted(tr.value().chain);
  const zk_paths paths{root};
  worker w(zk, paths, *secret, o, log, tr.value().queue);
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i) pool.emplace_back([&w] { w.run(); });
  std::printf("ready %s\n", o.id.c_str());
  const int sig = examples::wait_stop_signal(stop_signals);
  w.stop();
  for (auto& t : pool) t.join();
  std::printf("stopped on signal %d\n", sig);
  return 0;
}
