// image-api: the interface server. Accepts fetch requests and puts each in
// the locking queue as a task carrying a trace id and this server's callback
// address; answers job status; receives images from workers at the
// callback, checks they are images, reads where they were taken (EXIF GPS),
// stores them under a directory named from that place with one uniform file
// name, and pushes them to browsers (Server-Sent Events and a web page).
// See README.md.
//
//   image-api --zk 127.0.0.1:2181 --images ./stored --secret-file key [--port 0]
//             [--trace-file trace.jsonl] [--root /image-worker]
//
// Prints `listening 127.0.0.1:PORT` once it serves; SIGTERM or SIGINT stops it.
#include "../common/http_guard.hpp"
#include "../common/process.hpp"
#include "../common/sse.hpp"
#include "common.hpp"
#include "page.hpp"
#include "request.hpp"

#include <CLI/CLI.hpp>
#include <httplib.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

namespace fs = std::filesystem;
using namespace image_worker;
using namespace std::chrono_literals;

namespace {

void reply(httplib::Response& res, int status, const std::string& code, const std::string& message, json extra = {}) {
  json j = extra.is_object() ? std::move(extra) : json::object();
  j["code"] = code;
  j["message"] = message;
  res.status = status;
  res.set_content(j.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}
void reply_error(httplib::Response& res, int status, const std::string& code, const std::string& message) {
  reply(res, status, code, message);
}

/// What a client sees of a job.
json job_view(const json& j) {
  json v = json::object();
  for (const char* k : {"jobId", "dataId", "network", "url", "state", "reason", "file", "place", "traceId", "attempts",
                        "created"})
    if (j.contains(k)) v[k] = j[k];
  return v;
}

/// The stored-image events, kept for /recent and for browsers that
/// reconnect (Last-Event-ID), and handed to every open /events stream.
class event_hub : public examples::sse_source {
public:
  static constexpr std::size_t keep = 200;

  void publish(json e) {
    {
      std::lock_guard lk(m_);
      e["seq"] = next_;
      events_.emplace_back(next_++, e.dump(-1, ' ', false, json::error_handler_t::replace));
      if (events_.size() > keep) events_.pop_front();
    }
    cv_.notify_all();
  }
  /// Events after `after` (waiting up to `bound` for one); empty when none.
  std::vector<std::pair<std::uint64_t, std::string>> after(std::uint64_t after, std::chrono::milliseconds bound) {
    std::unique_lock lk(m_);
    cv_.wait_for(lk, bound, [&] { return closing_ || next_ - 1 > after; });
    std::vector<std::pair<std::uint64_t, std::string>> out;
    for (auto& e : events_)
      if (e.first > after) out.push_back(e);
    return out;
  }
  std::uint64_t last() {
    std::lock_guard lk(m_);
    return next_ - 1;
  }
  json recent() {
    std::lock_guard lk(m_);
    json a = json::array();
    for (auto it = events_.rbegin(); it != events_.rend() && a.size() < 50; ++it) a.push_back(json::parse(it->second));
    return a;
  }

private:
  std::deque<std::pair<std::uint64_t, std::string>> events_;
  std::uint64_t next_ = 1;
};

inline constexpr int max_event_clients = 32;
inline constexpr std::size_t max_replay = 1000; ///< dead letters one POST /dead/replay takes
inline const std::string not_queued = "not queued: "; ///< the reason of a job whose task the queue refused

class api {
public:
  api(zkr::session& zk, zk_paths paths, fs::path images, std::string secret, std::string callback, stage_log& log,
      const zkr::queue_options& qo)
      : zk_(zk), paths_(std::move(paths)), images_(std::move(images)), secret_(std::move(secret)),
        callback_(std::move(callback)), log_(log), tasks_(zk, paths_.tasks(), qo), dead_(zk, paths_.dead(), qo) {}

  event_hub hub;

  // POST /jobs
  void submit(const httplib::Request& req, httplib::Response& res) {
    auto fr = parse_fetch_request(req.body);
    if (!fr) {
      const auto& e = fr.error();
      return reply(res, e.status, e.code, e.message, json{{"field", e.field}});
    }
    const auto& r = fr.value();
    auto known = zk_.exists(paths_.network(r.network));
    if (!known) return reply(res, 503, "unavailable", "ZooKeeper: " + known.error().message());
    if (!known.value())
      return reply(res, 400, "unknown_network", "\"network\": no store has ever registered the network " + r.network,
                   json{{"field", "network"}});

    const auto job = zkr::make_trace_id(), trace = zkr::make_trace_id();
    zkr::trace_scope scope(trace); // the record, the task and the queue event carry it
    const auto now = std::chrono::system_clock::now();
    json rec{{"jobId", job},   {"dataId", r.data_id},  {"network", r.network}, {"url", r.url},
             {"path", r.where.path}, {"state", queued}, {"reason", ""},        {"file", ""},
             {"place", ""},   {"traceId", trace},     {"attempts", 0},
             {"created", zkr::detail::utc_timestamp()},
             {"createdMs", std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count()}};
    // The record and its id index in one step: the same data id can never
    // get two jobs, however many requests race. No read first: a known data
    // id fails the step, so a new job (the usual case) costs no extra trip.
    zkr::multi_op tx;
    tx.create(paths_.job(r.data_id), rec.dump()).create(paths_.id(job), r.data_id);
    if (auto m = zk_.multi(tx); !m) {
      auto back = read_job(zk_, paths_, r.data_id);
      if (!back) return reply(res, 503, "unavailable", "job not created: " + m.error().message());
      // A lost reply may hide our own success: then the task is still ours to queue.
      if (back.value().job.value("jobId", "") != job) return existing(r, back.value().job, res);
    }
    ++created_;
    log_.write("api", trace, job, "accepted " + r.data_id + " for " + r.network);
    if (!queue_task(r, job, trace, res)) return;
    reply(res, 202, "queued", "job " + job + " queued",
          json{{"jobId", job}, {"dataId", r.data_id}, {"state", queued}, {"traceId", trace}});
  }

  // GET /jobs/<jobId>, GET /jobs?dataId=<id>
  void status(const std::string& job, const std::string& data_id_in, httplib::Response& res) {
    std::string data_id = data_id_in;
    if (job.empty() && data_id.empty()) return reply(res, 400, "bad_request", "\"dataId\" is empty");
    if (data_id.empty()) {
      if (!valid_job_id(job)) return reply(res, 400, "bad_request", "a job id is 16 hex digits (0-9 a-f)");
      auto n = zk_.get(paths_.id(job));
      if (!n && n.error() == zkr::zk_errc::no_node) return reply(res, 404, "unknown_job", "no job " + job);
      if (!n) return reply(res, 503, "unavailable", "ZooKeeper: " + n.error().message());
      data_id = n.value().data;
    } else if (!valid_data_id(data_id)) {
      return reply(res, 400, "bad_request", "\"dataId\" must be 1 to 64 of A-Z a-z 0-9 _ . - and not start with '.'");
    }
    auto jn = read_job(zk_, paths_, data_id);
    if (!jn && jn.error() == zkr::zk_errc::no_node)
      return reply(res, 404, "unknown_job", "no job for data id " + data_id);
    if (!jn) return reply(res, 503, "unavailable", jn.error().message());
    const auto& j = jn.value().job;
    reply(res, 200, "ok", "job " + j.value("jobId", "") + ": " + j.value("state", ""), job_view(j));
  }

  // POST /callback/<jobId>: a worker's image
  void callback(const std::string& job, const httplib::Request& req, httplib::Response& res) {
    if (!valid_job_id(job)) return reply(res, 400, "bad_request", "a job id is 16 hex digits (0-9 a-f)");
    if (!signature_ok(secret_, job, req.body, req.get_header_value("X-Signature")))
      return reply(res, 401, "bad_signature", "X-Signature is not the HMAC-SHA256 of this job's body");
    ++callbacks_;
    auto idx = zk_.get(paths_.id(job));
    if (!idx && idx.error() == zkr::zk_errc::no_node) return reply(res, 404, "unknown_job", "no job " + job);
    if (!idx) return reply(res, 503, "unavailable", idx.error().message());
    const auto data_id = idx.value().data;
    auto jn = read_job(zk_, paths_, data_id);
    if (!jn && jn.error() == zkr::zk_errc::no_node) return reply(res, 404, "unknown_job", "no job record for " + data_id);
    if (!jn) return reply(res, 503, "unavailable", jn.error().message());
    const json rec = jn.value().job;
    const auto trace = rec.value("traceId", req.get_header_value("X-Trace-Id"));
    zkr::trace_scope scope(trace);
    if (rec.value("state", "") == stored) // a second delivery: the same answer
      return reply(res, 200, "stored", "already stored",
                   json{{"file", rec.value("file", "")}, {"place", rec.value("place", "")}});

    const auto kind = sniff(req.body);
    if (kind == image_kind::none) {
      const auto why = "not an image: " + why_not_image(req.body);
      (void)update_job(zk_, paths_, data_id, [&](json& j) {
        if (finished(j)) return false;
        j["state"] = failed;
        j["reason"] = why;
        return true;
      }, jn.value());
      log_.write("callback", trace, job, why);
      return reply(res, 422, "not_an_image", why);
    }
    std::string gps_why;
    const auto fix = kind == image_kind::jpeg ? read_gps(req.body, &gps_why) : std::nullopt;
    const auto created = std::chrono::system_clock::time_point(std::chrono::milliseconds(rec.value("createdMs", 0LL)));
    fs::path file;
    try {
      file = storage_path(images_, fix, created, rec.value("network", ""), data_id, kind);
    } catch (const std::exception& e) {
      return reply(res, 500, "internal", std::string("no storage path: ") + e.what());
    }
    if (auto why = write_file(file, req.body); !why.empty()) return reply(res, 500, "write_failed", why);
    const auto rel = file.lexically_relative(images_).generic_string();
    const auto place = place_dir(fix);
    bool mine = false; // this delivery stored it (not a racing second one)
    auto u = update_job(zk_, paths_, data_id, [&](json& j) {
      mine = j.value("state", "") != stored;
      if (!mine) return false;
      j["state"] = stored;
      j["reason"] = "";
      j["file"] = rel;
      j["place"] = place;
      return true;
    }, jn.value()); // written over the version read above, or read again when another wrote since
    if (!u) return reply(res, 503, "unavailable", "stored, but the job not updated: " + u.error().message());
    if (!mine) return reply(res, 200, "stored", "already stored", json{{"file", rel}, {"place", place}});
    ++stored_;
    log_.write("callback", trace, job, "stored " + rel + (fix ? "" : " (no GPS: " + gps_why + ")"));
    hub.publish(json{{"jobId", job}, {"dataId", data_id}, {"network", rec.value("network", "")}, {"place", place},
                     {"file", rel}, {"url", "/images/" + rel}});
    reply(res, 200, "stored", "stored", json{{"file", rel}, {"place", place}});
  }

  // POST /dead/replay: the tasks of the dead letters there now go back in
  // the queue, each job that is `failed` becoming `queued` with its
  // deliveries reset (after the cause is mended). A letter whose job is not
  // failed (stored since: dropped; still in work: kept) or cannot be read is
  // not replayed.
  void replay(httplib::Response& res) {
    using item_t = zkr::locking_queue<std::string>::item;
    // Every letter present now is claimed first, so one call never takes a
    // letter a replayed task made again (nor one twice).
    std::vector<item_t> letters;
    for (std::size_t n = 0; n < max_replay; ++n) {
      auto l = dead_.try_take();
      if (!l) return reply(res, 503, "unavailable", "dead letters not read: " + l.error().message());
      if (!l.value()) break;
      letters.push_back(std::move(*l.value()));
    }
    json replayed = json::array(), kept = json::array(), dropped = json::array();
    std::set<std::string> seen;
    std::string trouble;
    for (auto& item : letters) {
      const auto d = json::parse(*item, nullptr, false);
      json task = d.is_object() && d.contains("task") && d["task"].is_object() ? d["task"] : json();
      const auto get = [&](const char* k) {
        return task.is_object() && task.contains(k) && task[k].is_string() ? task[k].get<std::string>() : "";
      };
      const auto job = get("jobId"), data_id = get("dataId");
      auto keep = [&](const std::string& why) {
        kept.push_back({{"letter", item.path()}, {"jobId", job}, {"why", why}}); // released when `letters` goes
      };
      if (!valid_job_id(job) || !valid_data_id(data_id)) {
        keep("no readable task");
        continue;
      }
      if (!seen.insert(job).second) { // a second letter of a job replayed in this call
        dropped.push_back(job);
        (void)item.ack();
        continue;
      }
      if (!trouble.empty()) {
        keep(trouble);
        continue;
      }
      // Only failed -> queued: a job a worker is still burying, or that went
      // on otherwise, is not queued a second time.
      auto u = update_job(zk_, paths_, data_id, [&](json& j) {
        if (j.value("state", "") != failed) return false;
        j["state"] = queued;
        j["reason"] = "";
        j["attempts"] = 0;
        return true;
      });
      if (!u) {
        if (u.error() == zkr::zk_errc::no_node || u.error() == zkr::errc::decode_failed) {
          keep("job record: " + u.error().message());
        } else {
          trouble = "ZooKeeper: " + u.error().message();
          keep(trouble);
        }
        continue;
      }
      const auto state = u.value().value("state", "");
      if (state == stored) { // stored by a later delivery: nothing to do
        dropped.push_back(job);
        (void)item.ack();
        continue;
      }
      if (state != queued) {
        keep("the job is " + state);
        continue;
      }
      task["callback"] = callback_; // this api's address now, not the one the task was made with
      const auto trace = u.value().value("traceId", "");
      zkr::trace_scope scope(trace);
      if (auto p = tasks_.put(task.dump()); !p) {
        trouble = "not queued: " + p.error().message();
        (void)update_job(zk_, paths_, data_id, [&](json& j) {
          if (j.value("state", "") != queued) return false;
          j["state"] = failed;
          j["reason"] = trouble;
          return true;
        });
        keep(trouble);
        continue;
      }
      log_.write("api", trace, job, "replayed from the dead letters");
      replayed.push_back(job);
      (void)item.ack();
    }
    reply(res, trouble.empty() ? 200 : 503, trouble.empty() ? "ok" : "unavailable",
          std::to_string(replayed.size()) + " replayed" + (trouble.empty() ? "" : "; stopped: " + trouble),
          json{{"replayed", replayed}, {"kept", kept}, {"dropped", dropped}});
  }

  // GET /images/<place>/<name>
  void image(const std::string& place, const std::string& name, httplib::Response& res) {
    auto ok_part = [](const std::string& s) {
      if (s.empty() || s.size() > 200 || s[0] == '.') return false; // also a half-written .tmp- file
      for (char c : s)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.' && c != '_') return false;
      return true;
    };
    if (!ok_part(place) || !ok_part(name)) return reply(res, 400, "bad_path", "not an image path");
    const auto file = images_ / place / name;
    std::ifstream in(file, std::ios::binary);
    if (!inside(images_, file) || !in) return reply(res, 404, "not_found", "no image " + place + "/" + name);
    std::ostringstream b;
    b << in.rdbuf();
    const auto body = b.str();
    res.set_content(body, sniff(body) == image_kind::png ? "image/png" : "image/jpeg");
  }

  json health() {
    return json{{"jobs_created", created_.load()}, {"callbacks", callbacks_.load()}, {"stored", stored_.load()},
                {"sse_clients", hub.clients.load()}};
  }

private:
  /// Answers with the job `j` a data id already has.
  /// A data id names one image: the same id for another address is refused.
  void existing(const fetch_request& r, const json& j, httplib::Response& res) {
    const auto job = j.value("jobId", "");
    for (auto [field, mine] : {std::pair<const char*, const std::string*>{"url", &r.url}, {"network", &r.network}})
      if (j.value(field, "") != *mine) {
        reply(res, 409, "conflict",
              "data id " + r.data_id + " already has job " + job + " with another \"" + field + "\": " +
                  j.value(field, ""),
              json{{"field", field}, {"jobId", job}});
        return;
      }
    if (j.value("state", "") == failed && j.value("reason", "").rfind(not_queued, 0) == 0)
      return requeue(r, j, res);
    reply(res, 200, "existing", "data id " + r.data_id + " already has job " + job,
          json{{"jobId", job}, {"dataId", r.data_id}, {"state", j.value("state", "")},
               {"traceId", j.value("traceId", "")}});
  }

  /// A job whose task could not be queued (ZooKeeper failed the put) is
  /// queued when its request comes again, so a retrying client loses nothing.
  void requeue(const fetch_request& r, const json& rec, httplib::Response& res) {
    const auto job = rec.value("jobId", ""), trace = rec.value("traceId", "");
    auto u = update_job(zk_, paths_, r.data_id, [&](json& j) {
      if (j.value("state", "") != failed || j.value("reason", "").rfind(not_queued, 0) != 0) return false;
      j["state"] = queued;
      j["reason"] = "";
      return true;
    });
    if (!u) return reply(res, 503, "unavailable", "job " + job + " not queued again: " + u.error().message());
    if (u.value().value("state", "") != queued) // someone else did it, or it went on
      return reply(res, 200, "existing", "data id " + r.data_id + " already has job " + job,
                   json{{"jobId", job}, {"dataId", r.data_id}, {"state", u.value().value("state", "")},
                        {"traceId", trace}});
    zkr::trace_scope scope(trace);
    if (!queue_task(r, job, trace, res)) return;
    reply(res, 202, "queued", "job " + job + " queued again",
          json{{"jobId", job}, {"dataId", r.data_id}, {"state", queued}, {"traceId", trace}});
  }

  /// Puts the job's task; on failure the job is failed "not queued: …" (a
  /// repeat of the request queues it) and the reply is written.
  bool queue_task(const fetch_request& r, const std::string& job, const std::string& trace, httplib::Response& res) {
    if (auto p = tasks_.put(make_task(job, r.data_id, r.network, r.where.path, callback_).dump()); !p) {
      const auto why = not_queued + p.error().message();
      (void)update_job(zk_, paths_, r.data_id, [&](json& j) {
        if (j.value("state", "") != queued) return false;
        j["state"] = failed;
        j["reason"] = why;
        return true;
      });
      reply(res, 503, "unavailable", why + " (send the request again)", json{{"jobId", job}});
      return false;
    }
    log_.write("api", trace, job, "queued");
    return true;
  }

  /// Writes through a temporary name and renames: a reader never sees half
  /// a file, and a repeated delivery replaces the file with the same bytes.
  static std::string write_file(const fs::path& file, const std::string& bytes) {
    std::error_code ec;
    fs::create_directories(file.parent_path(), ec);
    if (ec) return "cannot create " + file.parent_path().string() + ": " + ec.message();
    const auto tmp = file.parent_path() / (".tmp-" + file.filename().string() + "-" +
                                           std::to_string(std::hash<std::thread::id>{}(std::this_thread::get_id())));
    // On disk before the 200 (the worker acks after it): the file, then the
    // directory entry the rename made.
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return "cannot create " + tmp.string() + ": " + std::strerror(errno);
    bool ok = true;
    for (std::size_t done = 0; ok && done < bytes.size();) {
      const auto n = ::write(fd, bytes.data() + done, bytes.size() - done);
      if (n < 0 && errno == EINTR) continue;
      ok = n > 0;
      if (ok) done += static_cast<std::size_t>(n);
    }
    ok = ok && ::fsync(fd) == 0;
    ::close(fd);
    if (!ok) {
      fs::remove(tmp, ec);
      return "cannot write " + tmp.string();
    }
    fs::rename(tmp, file, ec);
    if (ec) {
      fs::remove(tmp, ec);
      return "cannot rename to " + file.string();
    }
    if (const int dfd = ::open(file.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
      ok = ::fsync(dfd) == 0;
      ::close(dfd);
      if (!ok) return "cannot sync " + file.parent_path().string();
    }
    return {};
  }

  zkr::session& zk_;
  zk_paths paths_;
  fs::path images_;
  std::string secret_, callback_;
  stage_log& log_;
  zkr::locking_queue<std::string> tasks_, dead_;
  std::atomic<long> created_{0}, callbacks_{0}, stored_{0};
};

} // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  CLI::App app{"image-api: fetch requests in, images out (examples/image-worker/README.md)"};
  std::string zk_connect, root = "/image-worker", images, secret_file, trace_file;
  int port = 0, session_ms = 10000;
  app.add_option("--zk", zk_connect, "ZooKeeper connect string")->required();
  app.add_option("--root", root, "the system's root znode");
  app.add_option("--images", images, "where stored images go (created if missing)")->required();
  app.add_option("--secret-file", secret_file, "the callback signing key (first line)")->required();
  app.add_option("--port", port, "HTTP port on 127.0.0.1 (0: any free)")->check(CLI::Range(0, 65535));
  app.add_option("--trace-file", trace_file, "append trace lines (JSON) here");
  app.add_option("--session-timeout-ms", session_ms, "ZooKeeper session timeout")->check(CLI::Range(1000, 600000));
  CLI11_PARSE(app, argc, argv);
  const sigset_t stop_signals = examples::block_stop_signals(); // before any thread starts
  std::string why;
  auto secret = read_secret(secret_file, why);
  if (!secret) {
    std::fprintf(stderr, "image-api: %s\n", why.c_str());
    return 2;
  }
  std::error_code ec;
  fs::create_directories(images, ec);
  if (ec || !fs::is_directory(images)) {
    std::fprintf(stderr, "image-api: --images %s: cannot create the directory\n", images.c_str());
    return 2;
  }
  const fs::path images_root = fs::canonical(images);
  stage_log log(trace_file);
  if (log.failed_to_open(trace_file)) {
    std::fprintf(stderr, "image-api: cannot open the trace file %s\n", trace_file.c_str());
    return 2;
  }
  auto tr = tracing(trace_file);
  if (!tr) {
    std::fprintf(stderr, "image-api: %s\n", tr.error().message().c_str());
    return 2;
  }
  auto zs = examples::connect_zk(zk_connect, std::chrono::milliseconds(session_ms));
  if (!zs) {
    std::fprintf(stderr, "image-api: cannot connect to ZooKeeper at %s: %s\n", zk_connect.c_str(),
                 zs.error().message().c_str());
    return 1;
  }
  zkr::session zk = zs.value().intercepted(tr.value().chain);
  const zk_paths paths{root};
  for (const auto& p : {paths.jobs(), paths.ids(), paths.networks(), paths.tasks(), paths.dead()})
    if (auto r = zk.ensure_path(p); !r) {
      std::fprintf(stderr, "image-api: %s: %s\n", p.c_str(), r.error().message().c_str());
      return 1;
    }

  httplib::Server http;
  // Event streams hold a thread each for as long as they are open.
  http.new_task_queue = [] { return new httplib::ThreadPool(max_event_clients + 16); };
  examples::guard_http(http, max_image_bytes, reply_error);
  const int bound = examples::bind_http(http, port);
  if (bound <= 0) {
    std::fprintf(stderr, "image-api: cannot listen on 127.0.0.1:%d\n", port);
    return 1;
  }
  api a(zk, paths, images_root, *secret, "http://127.0.0.1:" + std::to_string(bound) + "/callback", log,
        tr.value().queue);
  // The callback address needs the port: bound first, served once routed.
  http.Post("/jobs", [&](const httplib::Request& q, httplib::Response& r) { a.submit(q, r); });
  http.Get("/jobs", [&](const httplib::Request& q, httplib::Response& r) {
    if (!q.has_param("dataId")) return reply(r, 400, "bad_request", "GET /jobs/<jobId> or /jobs?dataId=<id>");
    a.status("", q.get_param_value("dataId"), r);
  });
  http.Get(R"(/jobs/([^/]+))", [&](const httplib::Request& q, httplib::Response& r) { a.status(q.matches[1], "", r); });
  http.Post(R"(/callback/([^/]+))",
            [&](const httplib::Request& q, httplib::Response& r) { a.callback(q.matches[1], q, r); });
  http.Get(R"(/images/([^/]+)/([^/]+))",
           [&](const httplib::Request& q, httplib::Response& r) { a.image(q.matches[1], q.matches[2], r); });
  http.Post("/dead/replay", [&](const httplib::Request&, httplib::Response& r) { a.replay(r); });
  // GET /events: one `event: stored` per image, from the one after
  // Last-Event-ID when a browser reconnects.
  const examples::sse_feed feed{[&a](std::uint64_t after, std::chrono::milliseconds bound) { return a.hub.after(after, bound); },
                                [&a] { return a.hub.closing(); }, &a.hub.clients, max_event_clients, "stored"};
  http.Get("/events", [&](const httplib::Request& q, httplib::Response& r) {
    examples::serve_sse(feed, a.hub.last(), q, r, reply_error);
  });
  http.Get("/recent", [&](const httplib::Request&, httplib::Response& r) {
    r.set_content(a.hub.recent().dump(), "application/json");
  });
  http.Get("/health", [&](const httplib::Request&, httplib::Response& r) {
    r.set_content(a.health().dump(), "application/json");
  });
  http.Get("/", [](const httplib::Request&, httplib::Response& r) { r.set_content(page_html, "text/html; charset=utf-8"); });

  std::thread serving;
  examples::serve_http(http, serving);
  std::printf("listening 127.0.0.1:%d\n", bound);
  std::printf("page http://127.0.0.1:%d/  images in %s\n", bound, images_root.c_str());
  const int sig = examples::wait_stop_signal(stop_signals);
  a.hub.close(); // event streams end, so stop() can join their threads
  http.stop();
  serving.join();
  std::printf("stopped on signal %d\n", sig);
  return 0;
}
