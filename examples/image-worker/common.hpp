// image-worker: what image-api, image-worker and image-store share — the
// znode layout, the job record, the task, the callback signature and the
// stage lines of the trace file. See README.md.
#pragma once

#include "image.hpp"

#include <zkrecipes/zkrecipes.hpp>

#include <nlohmann/json.hpp>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace image_worker {

using json = nlohmann::json;
namespace zkr = zkrecipes;

inline constexpr std::size_t max_image_bytes = 8 * 1024 * 1024; ///< fetched and accepted image size
inline constexpr int max_deliveries = 5; ///< a task handed out this often without finishing is dead

/// The system's znodes under one root.
struct zk_paths {
  std::string root = "/image-worker";
  std::string networks() const { return root + "/networks"; } ///< registry base: <networks>/<tag>/<store>
  std::string network(const std::string& tag) const { return networks() + "/" + tag; }
  std::string tasks() const { return root + "/tasks"; } ///< the locking queue of tasks
  std::string dead() const { return root + "/dead"; }   ///< dead letters (a locking queue too)
  std::string jobs() const { return root + "/jobs"; }
  std::string job(const std::string& data_id) const { return jobs() + "/" + data_id; }
  std::string ids() const { return root + "/ids"; } ///< job id -> data id
  std::string id(const std::string& job_id) const { return ids() + "/" + job_id; }
};

/// A job id: 16 lowercase hex digits.
inline bool valid_job_id(std::string_view s) {
  if (s.size() != 16) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

/// The job record's states.
inline constexpr const char* queued = "queued";
inline constexpr const char* fetching = "fetching";
inline constexpr const char* stored = "stored";
inline constexpr const char* failed = "failed";
inline bool finished(const json& job) {
  const auto s = job.value("state", "");
  return s == stored || s == failed;
}

/// A job record read from its znode, with the version a write must match.
struct job_node {
  json job;
  std::int32_t version = 0;
};

/// Reads `<jobs>/<dataId>`; nullopt with the error when missing or not a record.
inline zkr::result<job_node> read_job(zkr::session& zk, const zk_paths& p, const std::string& data_id) {
  auto n = zk.get(p.job(data_id));
  if (!n) return n.error();
  auto j = json::parse(n.value().data, nullptr, false);
  // The fields read with json::value() must have their types (it throws otherwise).
  bool ok = j.is_object() && j.contains("jobId");
  for (const char* k : {"jobId", "dataId", "network", "url", "path", "state", "reason", "file", "place", "traceId"})
    ok = ok && (!j.contains(k) || j[k].is_string());
  for (const char* k : {"attempts", "createdMs"}) ok = ok && (!j.contains(k) || j[k].is_number_integer());
  if (!ok) return zkr::make_error(zkr::errc::decode_failed, "job record", p.job(data_id) + ": not a job record");
  return job_node{std::move(j), n.value().stat.version};
}

/// Changes a job by `change` (which returns false to leave it as it is),
/// written only over the version it read; re-read and re-applied when
/// another process wrote in between. `known`, a read the caller already
/// made, saves the first read. Returns the record as it stands.
template <class F>
zkr::result<json> update_job(zkr::session& zk, const zk_paths& p, const std::string& data_id, F&& change,
                             std::optional<job_node> known = std::nullopt) {
  for (int attempt = 0;; ++attempt) {
    auto jn = attempt == 0 && known ? zkr::result<job_node>(std::move(*known)) : read_job(zk, p, data_id);
    if (!jn) return jn.error();
    json j = jn.value().job;
    if (!change(j)) return j;
    auto w = zk.set(p.job(data_id), j.dump(), jn.value().version);
    if (w) return j;
    if (w.error() != zkr::zk_errc::bad_version || attempt >= 20) return w.error();
  }
}

/// The task a queue item carries: all a worker needs, nothing it must look up.
inline json make_task(const std::string& job_id, const std::string& data_id, const std::string& network,
                      const std::string& path, const std::string& callback) {
  return json{{"jobId", job_id}, {"dataId", data_id}, {"network", network}, {"path", path}, {"callback", callback}};
}

// ---------------------------------------------------------------- signature

/// Lowercase hex of HMAC-SHA256(key, job_id "\n" body): the callback's
/// X-Signature, so a stranger cannot post images as a worker.
inline std::string sign(std::string_view key, std::string_view job_id, std::string_view body) {
  std::string msg;
  msg.reserve(job_id.size() + 1 + body.size());
  msg.append(job_id).append("\n").append(body);
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(msg.data()),
       msg.size(), out, &len);
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (unsigned i = 0; i < len; ++i) {
    s += hex[out[i] >> 4];
    s += hex[out[i] & 15];
  }
  return s;
}

/// Compares in constant time (the signature must not leak by timing).
inline bool signature_ok(std::string_view key, std::string_view job_id, std::string_view body,
                         std::string_view given) {
  const auto want = sign(key, job_id, body);
  return given.size() == want.size() && CRYPTO_memcmp(given.data(), want.data(), want.size()) == 0;
}

/// The secret: the first line of the file, at least 16 bytes.
inline std::optional<std::string> read_secret(const std::string& file, std::string& why) {
  std::ifstream in(file);
  std::string line;
  if (!in || !std::getline(in, line)) return why = "cannot read the secret file " + file, std::nullopt;
  if (line.size() < 16) return why = "the secret in " + file + " is shorter than 16 bytes", std::nullopt;
  return line;
}

// ---------------------------------------------------------------- trace stages

/// Appends the program's own stage lines to the shared trace file (the
/// library's trace interceptor writes the ZooKeeper and queue lines there):
///   {"ts":"...","pid":1,"event":"stage","stage":"worker","trace_id":"...","job":"...","detail":"..."}
/// One write(2) per line on an O_APPEND file, as the interceptor does, so
/// processes can share the file.
class stage_log {
public:
  stage_log() = default;
  explicit stage_log(const std::string& path) {
    if (!path.empty()) fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  }
  stage_log(const stage_log&) = delete;
  stage_log& operator=(const stage_log&) = delete;
  ~stage_log() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool failed_to_open(const std::string& path) const { return !path.empty() && fd_ < 0; }

  void write(const char* stage, const std::optional<std::string>& trace_id, const std::string& job,
             const std::string& detail) {
    if (fd_ < 0) return;
    nlohmann::ordered_json j{{"ts", zkr::detail::utc_timestamp()}, {"pid", long(::getpid())}, {"event", "stage"}, {"stage", stage},
           {"trace_id", trace_id ? nlohmann::ordered_json(*trace_id) : nlohmann::ordered_json()},
           {"job", job}, {"detail", detail}};
    auto line = j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    std::lock_guard lk(m_);
    for (std::size_t done = 0; done < line.size();) {
      const auto n = ::write(fd_, line.data() + done, line.size() - done);
      if (n <= 0) return; // a trace line is not worth failing a job for
      done += static_cast<std::size_t>(n);
    }
  }

private:
  int fd_ = -1;
  std::mutex m_;
};

/// The session with the trace interceptor when a trace file is given, and
/// the queue options that let it see queue items.
struct traced {
  std::shared_ptr<zkr::interceptor_chain> chain;
  zkr::queue_options queue;
};
inline zkr::result<traced> tracing(const std::string& trace_file) {
  traced t;
  auto chain = zkr::make_interceptor_chain(trace_file.empty() ? "" : "trace:" + trace_file);
  if (!chain) return chain.error();
  t.chain = chain.value();
  t.queue.interceptors = t.chain->queue_interceptors();
  return t;
}

} // namespace image_worker
