// The image-worker system (examples/image-worker/) as real processes:
// image-store, image-api, image-worker and image-gen against the shared
// ZooKeeper server, driven over HTTP (http_client.hpp) and checked on disk
// (the images directory) and in ZooKeeper (the job records, the task and
// dead-letter queues, the service registry). tests/meson.build passes the
// programs' paths (ZKRECIPES_IMAGE_API, _IMAGE_WORKER_BIN, _IMAGE_STORE,
// _IMAGE_GEN) when they are built; otherwise each test says so and returns.
// The expected storage place and file name of every image come from the
// example's own pure code (image.hpp: place_dir, uniform_name) applied to
// what the test put into the image (test_images.hpp).
//
// Every wait is a bounded poll of something observable (a log line, an HTTP
// answer, a znode, a file); processes are signalled by pid only. Programs
// run with 4 s sessions, so a SIGKILL is noticed within seconds.
#ifdef ZKRECIPES_IMAGE_WORKER

#include "chromium.hpp"
#include "http_client.hpp"
#include "image.hpp"
#include "support.hpp"
#include "test_images.hpp"

#include <zkrecipes/detail/process.hpp>

#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
namespace zkd = zkrecipes::detail;
namespace iw = image_worker;
using json = nlohmann::json;
using namespace std::chrono_literals;
using zkt::eventually;
using zkt::http::contains;
using zkt::http::num;
using zkt::http::str;
using clock_type = std::chrono::steady_clock;
using sys_clock = std::chrono::system_clock;
using http_reply = zkt::http::reply;

#if defined(ZKRECIPES_IMAGE_API) && defined(ZKRECIPES_IMAGE_WORKER_BIN) && defined(ZKRECIPES_IMAGE_STORE) && \
    defined(ZKRECIPES_IMAGE_GEN)
constexpr bool programs_built = true;
const char* const api_program = ZKRECIPES_IMAGE_API;
const char* const worker_program = ZKRECIPES_IMAGE_WORKER_BIN;
const char* const store_program = ZKRECIPES_IMAGE_STORE;
const char* const gen_program = ZKRECIPES_IMAGE_GEN;
#else
constexpr bool programs_built = false;
const char* const api_program = "";
const char* const worker_program = "";
const char* const store_program = "";
const char* const gen_program = "";
#endif

/// True (after saying so) when the programs are not built.
bool skipped() {
  if (programs_built) return false;
  MESSAGE("the image-worker programs are not built (ZKRECIPES_IMAGE_API etc. undefined): skipped");
  return true;
}

long long ms_since(clock_type::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - t).count();
}

// ---------------------------------------------------------------- json and http

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

http_reply get(int port, const std::string& path) { return zkt::http::request(port, "GET", path); }

http_reply post_job(int port, const std::string& url, const std::string& network, const std::string& data_id) {
  return zkt::http::request(port, "POST", "/jobs", json{{"url", url}, {"network", network}, {"dataId", data_id}}.dump());
}

/// Lowercase hex of HMAC-SHA256(key, message), as X-Signature carries it.
std::string hmac_hex(const std::string& key, const std::string& message) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  const unsigned char* r = HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
                                reinterpret_cast<const unsigned char*>(message.data()), message.size(), out, &len);
  REQUIRE(r != nullptr);
  std::string hex;
  char b[3];
  for (unsigned i = 0; i < len; ++i) {
    std::snprintf(b, sizeof b, "%02x", out[i]);
    hex += b;
  }
  return hex;
}

/// POST /callback/<job_id> with these bytes, signed as given (no
/// X-Signature header when `signature` is empty).
http_reply callback(int port, const std::string& job_id, const std::string& body, const std::string& signature,
                    const std::string& trace = "0123456789abcdef0123456789abcdef") {
  std::string req = "POST /callback/" + job_id +
                    " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/octet-stream\r\n"
                    "Content-Length: " +
                    std::to_string(body.size()) + "\r\n";
  if (!signature.empty()) req += "X-Signature: " + signature + "\r\n";
  req += "X-Trace-Id: " + trace + "\r\n\r\n" + body;
  return zkt::http::raw(port, req);
}

// ---------------------------------------------------------------- files

void write_bytes(const fs::path& p, const std::string& bytes) {
  auto w = zkd::write_file(p, bytes);
  REQUIRE_MESSAGE(w.has_value(), p.string());
}

/// Relative paths of everything under `root` (directories end in '/').
std::set<std::string> tree(const fs::path& root) {
  std::set<std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    std::string rel = it->path().lexically_relative(root).generic_string();
    if (it->is_directory() && !it->is_symlink()) rel += '/';
    out.insert(rel);
  }
  return out;
}

std::string join(const std::set<std::string>& s, std::size_t max = 20) {
  std::string out;
  std::size_t n = 0;
  for (const auto& e : s) {
    if (n++ == max) return out + " ...";
    out += (out.empty() ? "" : ", ") + e;
  }
  return out.empty() ? "(none)" : out;
}

std::string image_ext(iw::image_kind k) { return k == iw::image_kind::png ? ".png" : ".jpg"; }

// ---------------------------------------------------------------- the system

struct proc {
  std::string name;
  zkd::child_process p;
  fs::path log;
  int port = -1; ///< the HTTP port (none for a worker)
  int pid = -1;
  bool gone = false; ///< killed or stopped by the test
  bool worker = false;
  std::string output() const { return zkd::read_file(log); }
};

/// A ZooKeeper root on the shared server, a temp dir (the secret file, the
/// images directory DIR = <tmp>/out/deep/images, the logs, the sources), and
/// the programs the test starts. At the end every program still running gets
/// SIGTERM and must stop cleanly (exit 0, "stopped"); the root is removed.
class iw_system {
public:
  iw_system() : zk_(zkt::shared_server().connect_string()), root_(zkt::unique_root("iw")) {
    auto d = zkd::temp_dir::create("zkrecipes-iw-test-");
    REQUIRE_MESSAGE(d.has_value(), (d ? "" : d.error().message()));
    dir_ = std::move(d).value();
    secret_file_ = dir_.path() / "secret";
    write_bytes(secret_file_, secret_ + "\n");
    images_ = dir_.path() / "out" / "deep" / "images";
    fs::create_directories(images_);
    zs_.emplace(zkt::connect(zk_));
  }
  iw_system(const iw_system&) = delete;
  iw_system& operator=(const iw_system&) = delete;
  ~iw_system() {
    // Workers first (they may be posting to the api), then the rest.
    for (bool workers : {true, false}) {
      for (auto& p : procs_)
        if (!p->gone && p->worker == workers) {
          p->p.send_signal(SIGTERM);
          p->p.send_signal(SIGCONT); // a SIGSTOPped one must see it
        }
      for (auto& p : procs_)
        if (!p->gone && p->worker == workers) finish(*p);
    }
    if (zs_) (void)zs_->remove_recursive(root_);
  }

  const fs::path& dir() const { return dir_.path(); }
  const fs::path& images() const { return images_; }
  const std::string& root() const { return root_; }
  const std::string& secret() const { return secret_; }
  zkrecipes::session& zk() { return *zs_; }

  proc& store(const std::string& id, const std::string& network, const fs::path& dir, int session_ms = 4000,
              std::vector<std::string> extra = {}) {
    std::vector<std::string> argv{store_program, "--network", network, "--dir", dir.string(), "--port", "0", "--id", id};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return start(id, std::move(argv), "listening 127.0.0.1:", session_ms);
  }
  proc& api(std::vector<std::string> extra = {}) {
    std::vector<std::string> argv{api_program, "--images", images_.string(), "--secret-file", secret_file_.string(),
                                  "--port", "0"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return start("api", std::move(argv), "listening 127.0.0.1:", 4000);
  }
  proc& worker(const std::string& id, std::vector<std::string> extra = {}) {
    std::vector<std::string> argv{worker_program, "--secret-file", secret_file_.string(), "--id", id};
    argv.insert(argv.end(), extra.begin(), extra.end());
    proc& p = start(id, std::move(argv), "ready ", 4000);
    p.worker = true;
    return p;
  }

  /// SIGKILL to that pid; it is not expected to exit cleanly.
  void kill(proc& p) {
    p.gone = true;
    p.p.kill_and_reap();
  }
  /// SIGTERM; it must exit 0 having printed "stopped".
  void stop(proc& p) {
    p.p.send_signal(SIGTERM);
    p.p.send_signal(SIGCONT);
    finish(p);
  }

  /// Waits (bounded) until `n` instances of `tag` are registered.
  bool registered(const std::string& tag, std::size_t n, std::chrono::milliseconds bound = 15s) {
    return eventually([&] { return instances(tag) == static_cast<long>(n); }, bound);
  }
  long instances(const std::string& tag) {
    auto c = zs_->children(root_ + "/networks/" + tag);
    return c.has_value() ? static_cast<long>(c.value().names.size()) : -1;
  }

  /// The item nodes (full paths) of the locking queue at `q`: the "i-"
  /// nodes under its lanes and buckets.
  std::vector<std::string> queue_items(const std::string& q) {
    std::vector<std::string> out;
    collect_items(q, 0, out);
    return out;
  }
  std::string data_of(const std::string& path) {
    auto n = zs_->get(path);
    return n.has_value() ? n.value().data : std::string();
  }

  std::string logs(std::size_t lines = 12) const {
    std::string out;
    for (auto& p : procs_) out += "--- " + p->name + ":\n" + zkd::tail_of_file(p->log, lines) + "\n";
    return out;
  }

private:
  void collect_items(const std::string& path, int depth, std::vector<std::string>& out) {
    auto c = zs_->children(path);
    if (!c.has_value()) return;
    for (const auto& name : c.value().names) {
      const std::string child = path + "/" + name;
      if (name.rfind("i-", 0) == 0)
        out.push_back(child);
      else if (depth < 3 && name.rfind("c-", 0) != 0)
        collect_items(child, depth + 1, out);
    }
  }

  proc& start(const std::string& name, std::vector<std::string> argv, const std::string& ready, int session_ms) {
    argv.insert(argv.end(), {"--zk", zk_, "--root", root_, "--session-timeout-ms", std::to_string(session_ms)});
    auto p = std::make_unique<proc>();
    p->name = name;
    p->log = dir_.path() / (name + ".log");
    auto c = zkd::child_process::spawn(argv, dir_.path(), p->log);
    REQUIRE_MESSAGE(c.has_value(), (c ? "" : c.error().message()));
    p->p = std::move(c).value();
    p->pid = p->p.pid();
    procs_.push_back(std::move(p));
    proc& q = *procs_.back();
    const bool up = eventually([&] { return !q.p.running() || contains(q.output(), ready); }, 20s);
    if (!(up && q.p.running())) {
      q.gone = true; // not stopped again at the end: this is the failure
      q.p.kill_and_reap();
    }
    REQUIRE_MESSAGE((up && q.p.running()), name << " did not start (" << q.p.describe_status()
                                                 << "): " << zkd::tail_of_file(q.log, 30));
    if (ready.rfind("listening", 0) == 0) {
      const std::string text = q.output();
      q.port = std::atoi(text.c_str() + text.find(ready) + ready.size());
      REQUIRE_MESSAGE(q.port > 0, text);
    }
    return q;
  }

  void finish(proc& p) {
    if (!p.p.wait_for(10s)) p.p.kill_and_reap();
    p.gone = true;
    const int st = p.p.last_status();
    CHECK_MESSAGE((st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0),
                  p.name << " did not stop cleanly (" << p.p.describe_status() << "):\n" << zkd::tail_of_file(p.log, 30));
    CHECK_MESSAGE(contains(p.output(), "stopped"), p.name << " did not print \"stopped\":\n" << zkd::tail_of_file(p.log, 10));
  }

  std::string zk_;
  std::string root_;
  zkd::temp_dir dir_;
  std::string secret_ = "test-secret-5f2a9c";
  fs::path secret_file_, images_;
  std::optional<zkrecipes::session> zs_;
  std::vector<std::unique_ptr<proc>> procs_;
};

// ---------------------------------------------------------------- jobs

/// One job the test submitted, and what must come of it.
struct job {
  std::string data_id, network, file; ///< file: the source's name in the store's folder
  std::string url;                    ///< as submitted
  std::string bytes;                  ///< the source image
  iw::image_kind kind = iw::image_kind::none;
  std::string place;                  ///< place_dir of what the test put in
  std::string job_id, trace_id;
  sys_clock::time_point before, after; ///< around the POST that created it
};

/// A source image: a JPEG with `fix` in its EXIF (none: no EXIF at all) or a
/// PNG; sets bytes, kind and the expected place, and checks the example's
/// own reader agrees on the place.
void make_image(job& j, const std::optional<iw::gps_fix>& fix, bool png, int variant) {
  const auto shade = static_cast<std::uint8_t>((variant * 37) % 256);
  if (png) {
    j.bytes = iw::make_png(6 + variant % 7, 5 + variant % 3, shade);
    j.kind = iw::image_kind::png;
    j.place = iw::place_dir(std::nullopt);
  } else {
    j.bytes = iw::make_jpeg(8 + variant % 9, 8 + variant % 4, fix, shade);
    j.kind = iw::image_kind::jpeg;
    j.place = iw::place_dir(fix);
    REQUIRE_MESSAGE(iw::place_dir(iw::read_gps(j.bytes)) == j.place, "the generated image does not read back: " << j.place);
  }
  REQUIRE(iw::sniff(j.bytes) == j.kind);
}

/// POST /jobs for j (url host:port as given: only its path may be used);
/// must be accepted as a new job.
void submit(int api_port, job& j, const std::string& host_port) {
  j.url = "http://" + host_port + "/img/" + j.file;
  j.before = sys_clock::now();
  const auto r = post_job(api_port, j.url, j.network, j.data_id);
  j.after = sys_clock::now();
  const json b = r.j();
  REQUIRE_MESSAGE((r.status == 202 && r.code() == "queued"), j.data_id << ": " << r);
  CHECK_MESSAGE(str(b, "dataId") == j.data_id, r);
  CHECK_MESSAGE(str(b, "state") == "queued", r);
  j.job_id = str(b, "jobId");
  j.trace_id = str(b, "traceId");
  REQUIRE_MESSAGE(!j.job_id.empty(), r);
  CHECK_MESSAGE(!j.trace_id.empty(), r);
}

/// Polls GET /jobs/<id> until every job is stored or failed (bounded):
/// jobId -> the last record read.
std::map<std::string, json> settle(int api_port, const std::vector<const job*>& jobs, std::chrono::milliseconds bound) {
  std::map<std::string, json> last;
  std::set<std::string> pending;
  for (auto* j : jobs) pending.insert(j->job_id);
  (void)eventually([&] {
    for (auto it = pending.begin(); it != pending.end();) {
      const auto r = get(api_port, "/jobs/" + *it);
      const json b = r.j();
      last[*it] = r.status == 200 ? b : json{{"http", r.status}, {"body", r.body}, {"error", r.error}};
      const std::string st = str(b, "state");
      if (r.status == 200 && (st == "stored" || st == "failed"))
        it = pending.erase(it);
      else
        ++it;
    }
    return pending.empty();
  }, bound);
  return last;
}

std::vector<const job*> ptrs(const std::vector<job>& js) {
  std::vector<const job*> out;
  for (auto& j : js) out.push_back(&j);
  return out;
}

/// Waits until all `jobs` are settled and REQUIREs each one stored.
std::map<std::string, json> all_stored(iw_system& sys, int api_port, const std::vector<const job*>& jobs,
                                       std::chrono::milliseconds bound) {
  const auto t0 = clock_type::now();
  auto recs = settle(api_port, jobs, bound);
  std::vector<std::string> bad;
  for (auto* j : jobs) {
    const json& r = recs[j->job_id];
    if (str(r, "state") != "stored") bad.push_back(j->data_id + " (" + j->job_id + "): " + r.dump());
  }
  if (!bad.empty()) {
    std::string first;
    for (std::size_t i = 0; i < bad.size() && i < 5; ++i) first += "\n  " + bad[i];
    FAIL(bad.size() << " of " << jobs.size() << " jobs not stored after " << ms_since(t0) << " ms:" << first << "\n"
                    << sys.logs());
  }
  return recs;
}

/// Checks that j (whose record is `rec`) is stored at exactly
/// DIR/<place>/<uniform name> with the source's bytes, the name's time being
/// the job's creation (between the POST's start and its answer). Returns
/// the file's path relative to DIR ("" when missing).
std::string check_stored(const fs::path& images, const job& j, const json& rec) {
  CAPTURE(j.data_id);
  CAPTURE(j.job_id);
  CHECK_MESSAGE(str(rec, "state") == "stored", rec.dump());
  CHECK_MESSAGE(str(rec, "jobId") == j.job_id, rec.dump());
  CHECK_MESSAGE(str(rec, "dataId") == j.data_id, rec.dump());
  CHECK_MESSAGE(str(rec, "network") == j.network, rec.dump());
  CHECK_MESSAGE(str(rec, "place") == j.place, rec.dump());
  using namespace std::chrono;
  std::string name;
  for (auto t = floor<seconds>(j.before); t <= j.after + 1s && name.empty(); t += 1s) {
    const std::string candidate = iw::uniform_name(t, j.network, j.data_id, j.kind);
    if (fs::is_regular_file(images / j.place / candidate)) name = candidate;
  }
  if (name.empty()) {
    // Where did it go? Any file naming this data id.
    std::set<std::string> seen;
    for (const auto& e : tree(images))
      if (contains(e, "_" + j.data_id + ".")) seen.insert(e);
    FAIL_CHECK("no file " << j.place << "/<YYYYMMDDTHHMMSSZ>_" << j.network << "_" << j.data_id << image_ext(j.kind)
                          << " with the job's creation time; files naming it: " << join(seen) << "; record "
                          << rec.dump());
    return {};
  }
  const std::string rel = j.place + "/" + name;
  CHECK_MESSAGE(zkd::read_file(images / rel) == j.bytes, rel << " differs from the source image");
  CHECK_MESSAGE(ends_with(str(rec, "file"), rel), "record file \"" << str(rec, "file") << "\", on disk " << rel);
  return rel;
}

/// The job record as image-api answers it, by job id.
json job_record(int api_port, const std::string& job_id) { return get(api_port, "/jobs/" + job_id).j(); }

/// A gps fix.
iw::gps_fix at(double lat, double lon, std::optional<double> alt = std::nullopt, std::string area = {}) {
  iw::gps_fix f;
  f.lat = lat;
  f.lon = lon;
  f.alt = alt;
  f.area = std::move(area);
  return f;
}

/// A store's GET /health "served" count (-1: no answer).
long long served(const proc& store) { return num(get(store.port, "/health").j(), "served"); }

/// A job id of the same form as `issued` (one digit or hex letter changed,
/// from the first one on) that is not among `all` (the ids issued): well
/// formed, never issued.
std::string never_issued(const std::string& issued, const std::set<std::string>& all) {
  for (std::size_t i = 0; i < issued.size(); ++i) {
    const char c = issued[i];
    std::string alts;
    if (c >= '0' && c <= '9') alts = "9876543210";
    else if (c >= 'a' && c <= 'f') alts = "fedcba";
    else if (c >= 'A' && c <= 'F') alts = "FEDCBA";
    else continue;
    for (char a : alts) {
      if (a == c) continue;
      std::string id = issued;
      id[i] = a;
      if (!all.count(id)) return id;
    }
  }
  return issued + "0";
}

} // namespace

// ====================================================================== tests

TEST_CASE("image-worker: 2 networks x 2 stores, 3 workers, 1 api: 200 jobs are all stored once, each at "
          "DIR/<place>/<uniform name> with the source's bytes; a repeated dataId is the same job") {
  if (skipped()) return;
  iw_system sys;
  const std::map<std::string, fs::path> src = {{"net-a", sys.dir() / "src-a"}, {"net-b", sys.dir() / "src-b"}};
  for (auto& [net, d] : src) fs::create_directories(d);

  // The places: GPS with area text, coordinates only, no EXIF, a PNG.
  struct place_case {
    std::optional<iw::gps_fix> fix;
    bool png = false;
  };
  const std::vector<place_case> places = {
      {at(37.7694, -122.4862, 60.0, "Golden Gate Park")},
      {at(35.6586, 139.7454)},
      {at(48.8584, 2.2945, std::nullopt, "Eiffel Tower, Paris")},
      {at(-33.8568, 151.2153, 5.0)},
      {std::nullopt},
      {at(-22.9519, -43.2105, 700.0, "Cristo Redentor (Rio)")},
      {at(64.1466, -21.9426)},
      {std::nullopt, true},
  };
  std::set<std::string> place_names;
  std::vector<job> jobs(200);
  for (int i = 0; i < 200; ++i) {
    job& j = jobs[static_cast<std::size_t>(i)];
    const int idx = i / 2;
    j.network = i % 2 ? "net-b" : "net-a";
    char id[32];
    std::snprintf(id, sizeof id, "photo-%c-%03d", j.network.back(), idx);
    j.data_id = id;
    const auto& pc = places[static_cast<std::size_t>(idx) % places.size()];
    make_image(j, pc.fix, pc.png, i);
    j.file = "img-" + j.data_id + image_ext(j.kind); // only in its own network's folder
    write_bytes(src.at(j.network) / j.file, j.bytes);
    place_names.insert(j.place);
  }
  REQUIRE(place_names.count("golden-gate-park") == 1);
  REQUIRE(place_names.count("n35.7-e139.7") == 1);
  REQUIRE(place_names.count("unknown-place") == 1);

  auto& a1 = sys.store("store-a1", "net-a", src.at("net-a"));
  auto& a2 = sys.store("store-a2", "net-a", src.at("net-a"));
  auto& b1 = sys.store("store-b1", "net-b", src.at("net-b"));
  auto& b2 = sys.store("store-b2", "net-b", src.at("net-b"));
  REQUIRE(sys.registered("net-a", 2));
  REQUIRE(sys.registered("net-b", 2));
  auto& api = sys.api();
  std::vector<proc*> workers{&sys.worker("w1"), &sys.worker("w2"), &sys.worker("w3")};

  // The url's host is never used: some name the other network's store
  // (which has no such file), some a closed port, some the right store.
  const auto t0 = clock_type::now();
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    job& j = jobs[i];
    const bool a = j.network == "net-a";
    const int own = (a ? a1 : b1).port, other = (a ? b2 : a2).port;
    const std::string host = (i / 2) % 3 == 0 ? "127.0.0.1:" + std::to_string(other)
                             : (i / 2) % 3 == 1 ? std::string("127.0.0.1:1")
                                                : "127.0.0.1:" + std::to_string(own);
    submit(api.port, j, host);
  }
  const auto submit_ms = ms_since(t0);
  std::set<std::string> ids;
  for (auto& j : jobs) ids.insert(j.job_id);
  CHECK(ids.size() == jobs.size());

  auto recs = all_stored(sys, api.port, ptrs(jobs), 90s);
  MESSAGE("200 jobs submitted in " << submit_ms << " ms, all stored " << ms_since(t0) << " ms after the first POST");

  // Each exactly where its place and the name scheme say, with its bytes.
  std::set<std::string> want;
  for (auto& j : jobs) {
    const std::string rel = check_stored(sys.images(), j, recs[j.job_id]);
    if (!rel.empty()) want.insert(rel);
  }
  CHECK(want.size() == jobs.size());
  std::set<std::string> expected_tree = want;
  for (auto& p : place_names) expected_tree.insert(p + "/");
  const auto got_tree = tree(sys.images());
  std::set<std::string> extra, missing;
  std::set_difference(got_tree.begin(), got_tree.end(), expected_tree.begin(), expected_tree.end(),
                      std::inserter(extra, extra.end()));
  std::set_difference(expected_tree.begin(), expected_tree.end(), got_tree.begin(), got_tree.end(),
                      std::inserter(missing, missing.end()));
  CHECK_MESSAGE(extra.empty(), "unexpected entries under DIR: " << join(extra));
  CHECK_MESSAGE(missing.empty(), "missing under DIR: " << join(missing));

  // The api serves a stored file at /images/<place>/<name>.
  for (std::size_t i : {std::size_t{0}, std::size_t{15}}) {
    const std::string rel = check_stored(sys.images(), jobs[i], recs[jobs[i].job_id]);
    const auto r = get(api.port, "/images/" + rel);
    CHECK_MESSAGE(r.status == 200, rel << ": " << r.status << " " << r.error);
    CHECK_MESSAGE(r.body == jobs[i].bytes, rel);
  }

  // Both stores of each network served (round robin), and together at least
  // one fetch per job of their network (more only on a retry).
  const long long sa1 = served(a1), sa2 = served(a2), sb1 = served(b1), sb2 = served(b2);
  MESSAGE("served: store-a1 " << sa1 << ", store-a2 " << sa2 << ", store-b1 " << sb1 << ", store-b2 " << sb2);
  CHECK(sa1 > 0);
  CHECK(sa2 > 0);
  CHECK(sb1 > 0);
  CHECK(sb2 > 0);
  CHECK(sa1 + sa2 >= 100);
  CHECK(sb1 + sb2 >= 100);
  const json h = get(api.port, "/health").j();
  CHECK_MESSAGE(num(h, "jobs_created") == 200, h.dump());
  CHECK_MESSAGE(num(h, "callbacks") >= 200, h.dump());
  CHECK_MESSAGE(num(h, "stored") >= 200, h.dump());

  // A repeated dataId: the same job, no second task. With the workers
  // stopped, any new task would stay in the queue.
  REQUIRE(eventually([&] { return sys.queue_items(sys.root() + "/tasks").empty(); }, 10s)); // all acked
  for (auto* w : workers) sys.stop(*w);
  for (std::size_t i : {std::size_t{0}, std::size_t{1}, std::size_t{14}}) {
    const job& j = jobs[i];
    const auto r = post_job(api.port, j.url, j.network, j.data_id); // the same request again
    const json b = r.j();
    CHECK_MESSAGE(r.status == 200, r);
    CHECK_MESSAGE(r.code() == "existing", r);
    CHECK_MESSAGE(str(b, "jobId") == j.job_id, r);
    CHECK_MESSAGE(str(b, "dataId") == j.data_id, r);
    CHECK_MESSAGE(str(b, "state") == "stored", r);
    CHECK_MESSAGE(str(b, "traceId") == j.trace_id, r);
    // The same dataId with another url: the spec says 200 "existing";
    // a 409 "conflict" naming the existing job is taken too. Never a new job.
    const auto other = post_job(api.port, "http://127.0.0.1:1/img/other.jpg", j.network, j.data_id);
    CHECK_MESSAGE(((other.status == 200 && other.code() == "existing") ||
                   (other.status == 409 && other.code() == "conflict")),
                  other);
    CHECK_MESSAGE(str(other.j(), "jobId") == j.job_id, other);
  }
  CHECK(num(get(api.port, "/health").j(), "jobs_created") == 200);
  const auto left = sys.queue_items(sys.root() + "/tasks");
  CHECK_MESSAGE(left.empty(), left.size() << " tasks queued by the repeated dataIds");
  // And GET /jobs?dataId= finds the job by its data id.
  const auto by_data = get(api.port, "/jobs?dataId=" + jobs[3].data_id);
  CHECK_MESSAGE((by_data.status == 200 && str(by_data.j(), "jobId") == jobs[3].job_id), by_data);
}

TEST_CASE("image-worker: a worker SIGKILLed mid-job: once its session expires another worker takes the job and "
          "stores it") {
  if (skipped()) return;
  iw_system sys;
  const fs::path src = sys.dir() / "src";
  fs::create_directories(src);
  job j;
  j.network = "net-a";
  j.data_id = "slow-1";
  make_image(j, at(37.7694, -122.4862, std::nullopt, "Golden Gate Park"), false, 3);
  j.file = "slow.jpg";
  write_bytes(src / j.file, j.bytes);

  // The store's session outlives its stop (it must stay registered).
  auto& store = sys.store("store-a1", "net-a", src, 30000);
  REQUIRE(sys.registered("net-a", 1));
  auto& api = sys.api();
  auto& w1 = sys.worker("w1", {"--fetch-timeout-ms", "60000"});

  // A stopped store accepts connections (the kernel's backlog) but never
  // answers: w1's fetch hangs.
  store.p.send_signal(SIGSTOP);
  struct resume {
    proc& p;
    ~resume() { p.p.send_signal(SIGCONT); }
  } resume_store{store};
  submit(api.port, j, "127.0.0.1:" + std::to_string(store.port));
  const bool fetching = eventually([&] { return str(job_record(api.port, j.job_id), "state") == "fetching"; }, 15s);
  REQUIRE_MESSAGE(fetching, job_record(api.port, j.job_id).dump() << "\n" << sys.logs());
  REQUIRE_MESSAGE(eventually([&] { return contains(w1.output(), "took " + j.job_id); }, 5s), sys.logs());

  sys.kill(w1);
  const auto killed = clock_type::now();
  store.p.send_signal(SIGCONT);
  auto& w2 = sys.worker("w2");
  auto recs = all_stored(sys, api.port, {&j}, 30s);
  const auto took = ms_since(killed);
  check_stored(sys.images(), j, recs[j.job_id]);
  // (The worker prints "stored" after its ack, which follows the api's answer.)
  CHECK_MESSAGE(eventually([&] { return contains(w2.output(), "took " + j.job_id); }, 5s), w2.output());
  CHECK_MESSAGE(eventually([&] { return contains(w2.output(), "stored " + j.job_id); }, 5s), w2.output());
  // The claim went with w1's session (4 s), not before.
  CHECK_MESSAGE(took >= 2500, "stored " << took << " ms after the SIGKILL: before w1's session could expire");
  MESSAGE("the job was stored " << took << " ms after its worker was SIGKILLed");
  // The store survived the dead worker's connection it found on waking.
  CHECK_MESSAGE(store.p.running(), store.p.describe_status() << "\n" << zkd::tail_of_file(store.log, 20));
  CHECK(served(store) >= 1);
  CHECK(eventually([&] { return sys.queue_items(sys.root() + "/tasks").empty(); }, 10s));
  CHECK(num(get(api.port, "/health").j(), "jobs_created") == 1);
}

TEST_CASE("image-worker: a store SIGKILLed: later jobs of its network are all stored through the other one; with "
          "no store left a job ends in a dead letter") {
  if (skipped()) return;
  iw_system sys;
  const fs::path src = sys.dir() / "src";
  fs::create_directories(src);
  std::vector<job> jobs(36);
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    job& j = jobs[i];
    j.network = "net-a";
    j.data_id = "k-" + std::to_string(i);
    make_image(j, i % 2 ? std::optional<iw::gps_fix>(at(51.5007, -0.1246, std::nullopt, "Westminster"))
                        : std::optional<iw::gps_fix>(at(40.6892, -74.0445)),
               i % 9 == 8, static_cast<int>(i));
    j.file = j.data_id + image_ext(j.kind);
    write_bytes(src / j.file, j.bytes);
  }
  auto& s1 = sys.store("store-a1", "net-a", src);
  auto& s2 = sys.store("store-a2", "net-a", src);
  REQUIRE(sys.registered("net-a", 2));
  auto& api = sys.api();
  sys.worker("w1");
  sys.worker("w2");
  const std::string host = "127.0.0.1:" + std::to_string(s2.port);
  auto batch = [&](std::size_t from, std::size_t to) {
    std::vector<const job*> out;
    for (std::size_t i = from; i < to; ++i) {
      submit(api.port, jobs[i], host);
      out.push_back(&jobs[i]);
    }
    return out;
  };
  auto check_batch = [&](const std::vector<const job*>& b) {
    auto recs = all_stored(sys, api.port, b, 40s);
    for (auto* j : b) check_stored(sys.images(), *j, recs[j->job_id]);
  };

  // Before: both stores serve.
  check_batch(batch(0, 8));
  CHECK(served(s1) > 0);
  CHECK(served(s2) > 0);

  // Right after the kill the dead store is still registered: its fetches
  // fail to connect and go to the other store in the same attempt.
  const long long before = served(s2);
  sys.kill(s1);
  const auto killed = clock_type::now();
  check_batch(batch(8, 24));
  const bool dropped = sys.registered("net-a", 1, 4000ms + 5s);
  CHECK_MESSAGE(dropped, sys.instances("net-a") << " instances of net-a registered " << ms_since(killed)
                                                << " ms after the SIGKILL");
  // And once it is gone from the registry.
  check_batch(batch(24, 36));
  const long long after = served(s2);
  CHECK_MESSAGE(after - before == 28, "store-a2 served " << after - before << " of the 28 jobs after the kill\n"
                                                         << sys.logs());
  CHECK(num(get(api.port, "/health").j(), "jobs_created") == 36);
  CHECK(sys.queue_items(sys.root() + "/dead").empty());
  std::set<std::string> places;
  for (auto& j : jobs) places.insert(j.place + "/");
  CHECK(places.size() == 3);
  CHECK_MESSAGE(tree(sys.images()).size() == jobs.size() + places.size(), join(tree(sys.images())));

  // No store of the tag left: the tag is still known (the api takes the
  // job), the worker's bounded rounds end in a dead letter.
  sys.kill(s2);
  REQUIRE_MESSAGE(sys.registered("net-a", 0, 4000ms + 5s), sys.instances("net-a") << " instances left");
  job orphan;
  orphan.network = "net-a";
  orphan.data_id = "k-orphan";
  orphan.file = jobs[0].file;
  submit(api.port, orphan, host);
  auto recs = settle(api.port, {&orphan}, 30s);
  CHECK_MESSAGE(str(recs[orphan.job_id], "state") == "failed", recs[orphan.job_id].dump() << "\n" << sys.logs());
  CHECK_MESSAGE(!str(recs[orphan.job_id], "reason").empty(), recs[orphan.job_id].dump());
  std::vector<std::string> dead;
  const bool buried = eventually([&] {
    dead = sys.queue_items(sys.root() + "/dead");
    return dead.size() == 1 && contains(sys.data_of(dead.front()), orphan.data_id);
  }, 5s);
  CHECK_MESSAGE(buried, dead.size() << " dead letters");
  CHECK_MESSAGE(tree(sys.images()).size() == jobs.size() + places.size(), join(tree(sys.images())));
}

TEST_CASE("image-worker: bad input: refused requests, forged and non-image callbacks, a store serving a non-image, "
          "hostile EXIF place text: nothing lands outside DIR") {
  if (skipped()) return;
  iw_system sys;
  const fs::path src = sys.dir() / "src";
  fs::create_directories(src);
  auto make = [&](const std::string& data_id, const std::string& file, const std::optional<iw::gps_fix>& fix,
                  int variant) {
    job j;
    j.network = "net-a";
    j.data_id = data_id;
    make_image(j, fix, false, variant);
    j.file = file;
    write_bytes(src / file, j.bytes);
    return j;
  };
  job j1 = make("cb-fail", "good1.jpg", at(48.8584, 2.2945, std::nullopt, "Paris"), 1);
  job j2 = make("cb-good", "good2.jpg", at(48.8584, 2.2945, std::nullopt, "Paris"), 2);
  static const char nul_area[] = "..\0/\0nul\0..\0byte\0\0";
  std::vector<job> hostile = {
      make("h-dotdot", "h1.jpg", at(10.01, 20.02, std::nullopt, "../../x"), 3),
      make("h-passwd", "h2.jpg", at(10.01, 20.02, std::nullopt, "/etc/passwd"), 4),
      make("h-nul", "h3.jpg", at(10.01, 20.02, std::nullopt, std::string(nul_area, sizeof nul_area - 1)), 5),
      make("h-dots", "h4.jpg", at(-10.04, -20.03, std::nullopt, "/../../.."), 6),
      make("h-long", "h5.jpg", at(10.01, 20.02, std::nullopt, std::string(600, 'A') + "/../" + std::string(600, 'b')), 7),
  };
  CHECK(hostile[0].place == "x");
  CHECK(hostile[1].place == "etc-passwd");
  CHECK(hostile[2].place == "nul-byte");
  CHECK(hostile[3].place == "s10.0-w20.0");
  CHECK(hostile[4].place.size() <= iw::max_slug);
  const std::string html = "<html><body>not an image</body></html>\n";
  write_bytes(src / "fake.jpg", html);

  auto& store = sys.store("store-a1", "net-a", src);
  REQUIRE(sys.registered("net-a", 1));
  auto& api = sys.api();
  const int port = api.port;
  const std::string store_host = "127.0.0.1:" + std::to_string(store.port);
  const std::string good_url = "http://" + store_host + "/img/good1.jpg";

  // ---- POST /jobs refusals (no worker runs yet).
  auto expect = [&](const http_reply& r, int status, const std::string& code, const std::string& field) {
    CHECK_MESSAGE(r.status == status, r);
    CHECK_MESSAGE(r.code() == code, r);
    if (!field.empty() || code == "bad_request") CHECK_MESSAGE(str(r.j(), "field") == field, r);
  };
  expect(post_job(port, good_url, "net-zz", "u-1"), 400, "unknown_network", "network");
  expect(zkt::http::request(port, "POST", "/jobs", "{\"url\":"), 400, "bad_request", "");
  expect(zkt::http::request(port, "POST", "/jobs", "[1,2,3]"), 400, "bad_request", "");
  expect(zkt::http::request(port, "POST", "/jobs", json{{"url", good_url}, {"network", "net-a"}}.dump()), 400,
         "bad_request", "dataId");
  expect(post_job(port, good_url, "net-a", "../etc"), 400, "bad_request", "dataId");
  expect(post_job(port, "ftp://" + store_host + "/img/good1.jpg", "net-a", "u-2"), 400, "bad_request", "url");
  expect(post_job(port, "file:///etc/passwd", "net-a", "u-3"), 400, "bad_request", "url");
  expect(post_job(port, good_url, "Net A", "u-4"), 400, "bad_request", "network");
  expect(zkt::http::request(port, "POST", "/jobs",
                            json{{"url", good_url}, {"network", "net-a"}, {"dataId", "u-5"}, {"pad", std::string(70000, 'p')}}
                                .dump()),
         413, "too_large", "");
  {
    const std::string body = json{{"url", good_url}, {"network", "net-a"}, {"dataId", "u-6"}}.dump();
    const auto r = zkt::http::raw(port, "POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                                        "Content-Type: application/json\r\n\r\n" + body, 5s);
    CHECK_MESSAGE(r.status == 411, r);
  }
  CHECK(num(get(port, "/health").j(), "jobs_created") == 0);
  CHECK(sys.queue_items(sys.root() + "/tasks").empty());

  // ---- GET /jobs/<id>: a job, a never-issued id, a malformed id.
  submit(port, j1, store_host);
  submit(port, j2, store_host);
  CHECK(str(job_record(port, j1.job_id), "state") == "queued");
  const std::string unknown_id = never_issued(j1.job_id, {j1.job_id, j2.job_id});
  {
    const auto r = get(port, "/jobs/" + unknown_id);
    CHECK_MESSAGE(r.status == 404, r);
    CHECK_MESSAGE(r.code() == "unknown_job", r);
    CHECK_MESSAGE(get(port, "/jobs/@@@!!").status == 400, get(port, "/jobs/@@@!!"));
  }

  // ---- callbacks: forged, unsigned, unknown job, non-image, then a good one twice.
  {
    const auto r = callback(port, j1.job_id, j1.bytes, hmac_hex("not-the-secret", j1.job_id + "\n" + j1.bytes));
    CHECK_MESSAGE(r.status == 401, r);
    CHECK_MESSAGE(r.code() == "bad_signature", r);
    // signed over another job's id
    const auto r2 = callback(port, j1.job_id, j1.bytes, hmac_hex(sys.secret(), j2.job_id + "\n" + j1.bytes));
    CHECK_MESSAGE(r2.status == 401, r2);
    const auto r3 = callback(port, j1.job_id, j1.bytes, "");
    CHECK_MESSAGE(r3.status == 401, r3);
    CHECK_MESSAGE(tree(sys.images()).empty(), join(tree(sys.images())));
    CHECK(str(job_record(port, j1.job_id), "state") == "queued");
  }
  {
    const auto r = callback(port, unknown_id, j1.bytes, hmac_hex(sys.secret(), unknown_id + "\n" + j1.bytes));
    CHECK_MESSAGE(r.status == 404, r);
    CHECK_MESSAGE(r.code() == "unknown_job", r);
  }
  {
    const auto r = callback(port, j1.job_id, html, hmac_hex(sys.secret(), j1.job_id + "\n" + html));
    CHECK_MESSAGE(r.status == 422, r);
    CHECK_MESSAGE(r.code() == "not_an_image", r);
    const std::string message = str(r.j(), "message");
    CHECK_MESSAGE(!message.empty(), r);
    const json rec = job_record(port, j1.job_id);
    CHECK_MESSAGE(str(rec, "state") == "failed", rec.dump());
    const std::string reason = str(rec, "reason");
    CHECK_MESSAGE((!reason.empty() && (contains(reason, message) || contains(message, reason))),
                  "reason \"" << reason << "\", callback message \"" << message << "\"");
    CHECK_MESSAGE(tree(sys.images()).empty(), join(tree(sys.images())));
  }
  std::string j2_rel;
  {
    const std::string sig = hmac_hex(sys.secret(), j2.job_id + "\n" + j2.bytes);
    const auto r = callback(port, j2.job_id, j2.bytes, sig);
    CHECK_MESSAGE(r.status == 200, r);
    CHECK_MESSAGE(r.code() == "stored", r);
    CHECK_MESSAGE(str(r.j(), "place") == j2.place, r);
    j2_rel = check_stored(sys.images(), j2, job_record(port, j2.job_id));
    CHECK_MESSAGE(ends_with(str(r.j(), "file"), j2_rel), r);
    const auto again = callback(port, j2.job_id, j2.bytes, sig);
    CHECK_MESSAGE(again.status == 200, again);
    CHECK_MESSAGE(str(again.j(), "file") == str(r.j(), "file"), again);
    CHECK_MESSAGE(tree(sys.images()) == (std::set<std::string>{j2.place + "/", j2_rel}), join(tree(sys.images())));
  }

  // ---- the store's own refusals.
  {
    const auto ok = get(store.port, "/img/good1.jpg");
    CHECK_MESSAGE(ok.status == 200, ok.status);
    CHECK(ok.body == j1.bytes);
    CHECK(ok.header("Content-Type") == "image/jpeg");
    const auto fake = get(store.port, "/img/fake.jpg");
    CHECK(fake.status == 200);
    CHECK(fake.header("Content-Type") == "application/octet-stream");
    const auto none = get(store.port, "/img/nope.jpg");
    CHECK_MESSAGE(none.status == 404, none);
    CHECK_MESSAGE(none.code() == "not_found", none);
    for (const std::string bad : {"/img/../secret", "/img/a/../../secret", "/img/a\\b.jpg"}) {
      const auto r = get(store.port, bad);
      CHECK_MESSAGE(r.status == 400, bad << ": " << r);
      CHECK(!contains(r.body, sys.secret()));
    }
    for (const std::string bad : {"/images/../secret", "/images/%2e%2e/secret", "/images/x/../../../secret"}) {
      const auto r = get(port, bad);
      CHECK_MESSAGE(r.status != 200, bad << ": " << r);
      CHECK(!contains(r.body, sys.secret()));
    }
  }

  // ---- with a worker: hostile place texts, a non-image at the store, a
  // missing file; the tasks of j1 (failed) and j2 (stored) are acked as they are.
  auto outside = [&] {
    std::set<std::string> out;
    for (const auto& e : tree(sys.dir()))
      if (e.rfind("out/deep/images/", 0) != 0 && !ends_with(e, ".log")) out.insert(e);
    return out;
  };
  const auto outside_before = outside();
  auto& w = sys.worker("w1", {"--attempts", "2"});
  for (auto& h : hostile) submit(port, h, store_host);
  job fake, missing;
  fake.network = missing.network = "net-a";
  fake.data_id = "bad-bytes";
  fake.file = "fake.jpg";
  missing.data_id = "no-file";
  missing.file = "missing.jpg";
  submit(port, fake, store_host);
  submit(port, missing, store_host);
  std::vector<const job*> all{&j1, &j2, &fake, &missing};
  for (auto& h : hostile) all.push_back(&h);
  auto recs = settle(port, all, 40s);

  std::set<std::string> want{j2.place + "/", j2_rel};
  for (auto& h : hostile) {
    const std::string rel = check_stored(sys.images(), h, recs[h.job_id]);
    want.insert(h.place + "/");
    if (!rel.empty()) want.insert(rel);
  }
  CHECK_MESSAGE(str(recs[j1.job_id], "state") == "failed", recs[j1.job_id].dump());
  CHECK_MESSAGE(str(recs[j2.job_id], "state") == "stored", recs[j2.job_id].dump());
  CHECK_MESSAGE(tree(sys.images()) == want, "under DIR: " << join(tree(sys.images())) << "\nwanted: " << join(want));
  CHECK_MESSAGE(outside() == outside_before, "outside DIR now: " << join(outside()) << "\nbefore: " << join(outside_before));

  for (const job* f : {&fake, &missing}) {
    const json& rec = recs[f->job_id];
    CAPTURE(f->data_id);
    CHECK_MESSAGE(str(rec, "state") == "failed", rec.dump() << "\n" << sys.logs());
    CHECK_MESSAGE(!str(rec, "reason").empty(), rec.dump());
    CHECK_MESSAGE(eventually([&] { return contains(w.output(), "dead " + f->job_id + ":"); }, 5s), w.output());
  }
  const std::string fake_reason = str(recs[fake.job_id], "reason");
  CHECK_MESSAGE((contains(fake_reason, "image") || contains(fake_reason, "JPEG") || contains(fake_reason, "422") ||
                 contains(fake_reason, "fake.jpg")),
                fake_reason);
  // The dead letters: the task and its reason.
  for (const job* f : {&fake, &missing}) {
    const bool found = eventually([&] {
      const auto dead = sys.queue_items(sys.root() + "/dead");
      return std::any_of(dead.begin(), dead.end(), [&](const std::string& p) {
        const std::string d = sys.data_of(p);
        return contains(d, f->data_id) && contains(d, "reason");
      });
    }, 5s);
    CHECK_MESSAGE(found, "no dead letter for " << f->data_id);
  }
  CHECK(eventually([&] { return sys.queue_items(sys.root() + "/tasks").empty(); }, 10s));

  // The api kept serving throughout.
  CHECK(get(port, "/health").status == 200);
  CHECK(api.p.running());
  CHECK(store.p.running());
}

TEST_CASE("image-worker: one trace id through api, queue (produce, consume), worker and callback; image-gen's "
          "images are stored by their place") {
  if (skipped()) return;
  iw_system sys;
  const fs::path src = sys.dir() / "src";
  fs::create_directories(src);

  // image-gen: JPEGs with EXIF GPS for a few places (area text or
  // coordinates only) and a PNG, one line per file: its name (and, if
  // printed, the place directory the api will use).
  const fs::path gen_log = sys.dir() / "gen.log";
  auto gen = zkd::child_process::spawn({gen_program, "--dir", src.string(), "--count", "6"}, sys.dir(), gen_log);
  REQUIRE(gen.has_value());
  REQUIRE_MESSAGE(gen.value().wait_for(20s), zkd::tail_of_file(gen_log));
  CHECK_MESSAGE((WIFEXITED(gen.value().last_status()) && WEXITSTATUS(gen.value().last_status()) == 0),
                gen.value().describe_status() << "\n" << zkd::tail_of_file(gen_log));
  std::vector<job> jobs;
  {
    std::istringstream lines(zkd::read_file(gen_log));
    for (std::string line; std::getline(lines, line);) {
      std::istringstream words(line);
      std::string name, place;
      words >> name >> place;
      if (name.empty() || !fs::is_regular_file(src / name)) continue;
      job j;
      j.network = "net-a";
      j.file = name;
      j.data_id = "gen-" + std::to_string(jobs.size());
      j.bytes = zkd::read_file(src / name);
      j.kind = iw::sniff(j.bytes);
      j.place = iw::place_dir(iw::read_gps(j.bytes));
      CHECK_MESSAGE(j.kind != iw::image_kind::none, line);
      if (!place.empty()) CHECK_MESSAGE(place == j.place, line);
      jobs.push_back(std::move(j));
    }
  }
  REQUIRE_MESSAGE(jobs.size() >= 6, zkd::read_file(gen_log));
  CHECK(std::count_if(jobs.begin(), jobs.end(), [](const job& j) { return j.kind == iw::image_kind::png; }) >= 1);
  CHECK(std::count_if(jobs.begin(), jobs.end(), [](const job& j) {
          return j.kind == iw::image_kind::jpeg && j.place != "unknown-place";
        }) >= 3);

  const fs::path trace = sys.dir() / "trace.jsonl";
  auto& store = sys.store("store-a1", "net-a", src);
  REQUIRE(sys.registered("net-a", 1));
  auto& api = sys.api({"--trace-file", trace.string()});
  auto& w = sys.worker("w1", {"--trace-file", trace.string()});
  for (auto& j : jobs) submit(api.port, j, "127.0.0.1:" + std::to_string(store.port));
  auto recs = all_stored(sys, api.port, ptrs(jobs), 30s);
  for (auto& j : jobs) check_stored(sys.images(), j, recs[j.job_id]);

  const job& j = jobs.front();
  CHECK_MESSAGE(contains(w.output(), "took " + j.job_id + " trace " + j.trace_id), w.output());
  CHECK(str(recs[j.job_id], "traceId") == j.trace_id);
  // The lines carrying this job's trace id, by kind and the pid that wrote them.
  struct seen_line {
    bool found = false;
    long long pid = -1;
    std::string ts;
  };
  std::map<std::string, seen_line> kinds;
  const std::vector<std::string> wanted = {"stage api", "queue produce", "queue consume", "stage worker",
                                           "stage callback"};
  auto scan = [&] {
    kinds.clear();
    std::istringstream lines(zkd::read_file(trace));
    for (std::string line; std::getline(lines, line);) {
      const json l = json::parse(line, nullptr, false);
      if (str(l, "trace_id") != j.trace_id) continue;
      std::string kind;
      if (str(l, "event") == "stage") kind = "stage " + str(l, "stage");
      else if (str(l, "event") == "queue") kind = "queue " + str(l, "role");
      else continue;
      auto& k = kinds[kind];
      if (!k.found) k = {true, num(l, "pid"), str(l, "ts")};
      if (str(l, "event") == "stage") CHECK_MESSAGE(str(l, "job") == j.job_id, line);
    }
    return std::all_of(wanted.begin(), wanted.end(), [&](const std::string& k) { return kinds[k].found; });
  };
  const bool all = eventually(scan, 10s);
  std::string summary;
  for (auto& [k, v] : kinds) summary += k + " (pid " + std::to_string(v.pid) + ") ";
  CHECK_MESSAGE(all, "trace " << j.trace_id << " seen in: " << summary << "\n"
                              << zkd::tail_of_file(trace, 30, 6000));
  if (all) {
    CHECK(kinds["stage api"].pid == api.pid);
    CHECK(kinds["queue produce"].pid == api.pid);
    CHECK(kinds["queue consume"].pid == w.pid);
    CHECK(kinds["stage worker"].pid == w.pid);
    CHECK(kinds["queue produce"].ts <= kinds["queue consume"].ts);
  }
}

TEST_CASE("image-worker: a data id sent again with another url is a conflict; a dead letter replayed after the cause "
          "is mended ends stored") {
  if (skipped()) return;
  iw_system sys;
  const fs::path src = sys.dir() / "net-a";
  fs::create_directories(src);
  sys.store("a1", "net-a", src);
  REQUIRE(sys.registered("net-a", 1));
  proc& api = sys.api();
  proc& w = sys.worker("w1", {"--attempts", "1"});

  // Not in the store yet: the job dies, with its reason.
  const std::string url = "http://127.0.0.1:1/img/late.jpg";
  const auto r = post_job(api.port, url, "net-a", "late-1");
  REQUIRE_MESSAGE(r.status == 202, r);
  const std::string id = str(r.j(), "jobId");
  json rec;
  REQUIRE_MESSAGE(eventually([&] { return str(rec = get(api.port, "/jobs/" + id).j(), "state") == "failed"; }, 20s),
                  rec.dump() << "\n" << sys.logs());
  CHECK_MESSAGE(contains(str(rec, "reason"), "no store of net-a has /img/late.jpg"), rec.dump());
  REQUIRE(eventually([&] { return sys.queue_items(sys.root() + "/dead").size() == 1; }, 10s));

  // The same data id: with another url a conflict naming it, with the same
  // request the existing job.
  const auto other = post_job(api.port, "http://127.0.0.1:1/img/other.jpg", "net-a", "late-1");
  CHECK_MESSAGE((other.status == 409 && other.code() == "conflict" && str(other.j(), "field") == "url" &&
                 str(other.j(), "jobId") == id),
                other);
  const auto other_net = post_job(api.port, url, "net-b", "late-1");
  CHECK_MESSAGE(other_net.status == 400, other_net); // net-b is not a known tag: refused before the data id
  const auto same = post_job(api.port, url, "net-a", "late-1");
  CHECK_MESSAGE((same.status == 200 && same.code() == "existing" && str(same.j(), "jobId") == id &&
                 str(same.j(), "state") == "failed"),
                same);

  // Mend the cause, replay: the same job is stored, the letter is gone.
  job j;
  make_image(j, at(52.5, 13.4, std::nullopt, "Tiergarten"), false, 3);
  write_bytes(src / "late.jpg", j.bytes);
  const auto rp = zkt::http::request(api.port, "POST", "/dead/replay", "{}");
  REQUIRE_MESSAGE(rp.status == 200, rp);
  CHECK_MESSAGE(rp.j().value("replayed", json::array()) == json::array({id}), rp);
  REQUIRE_MESSAGE(eventually([&] { return str(rec = get(api.port, "/jobs/" + id).j(), "state") == "stored"; }, 20s),
                  rec.dump() << "\n" << sys.logs());
  CHECK(str(rec, "place") == "tiergarten");
  CHECK(str(rec, "reason").empty());
  CHECK(sys.queue_items(sys.root() + "/dead").empty());
  CHECK(zkd::read_file(sys.images() / str(rec, "file")) == j.bytes);
  CHECK(eventually([&] { return contains(w.output(), "stored " + id); }, 10s));
  // Nothing left to replay.
  const auto again = zkt::http::request(api.port, "POST", "/dead/replay", "{}");
  CHECK_MESSAGE((again.status == 200 && again.j().value("replayed", json::array()).empty()), again);

  // A compressed body is refused before it is read: cpp-httplib would
  // inflate it with no limit (a few KiB of gzip can hold gigabytes).
  const std::string gz("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00", 20);
  for (const char* target : {"/jobs", "/callback/0000000000000000"}) {
    const auto z = zkt::http::raw(api.port, std::string("POST ") + target +
                                                " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                                                "Content-Encoding: gzip\r\nContent-Length: 20\r\n\r\n" + gz);
    CHECK_MESSAGE((z.status == 415 && z.code() == "unsupported_encoding" && contains(z.body, "gzip")), target << ": " << z);
  }
}

TEST_CASE("image-worker: the page, open in headless Chromium, shows a newly stored image without a reload") {
  if (skipped()) return;
  if (!zkt::chromium::available()) {
    MESSAGE("chromium is not installed (" << zkt::chromium::binary << "): skipped");
    return;
  }
  iw_system sys;
  const fs::path src = sys.dir() / "net-a";
  fs::create_directories(src);
  job j;
  make_image(j, at(37.7694, -122.4862, 54.0, "Golden Gate Park"), false, 1);
  write_bytes(src / "park.jpg", j.bytes);
  sys.store("a1", "net-a", src);
  REQUIRE(sys.registered("net-a", 1));
  proc& api = sys.api();
  sys.worker("w1");

  std::string why, last;
  auto browser = zkt::chromium::browser::launch(&why);
  REQUIRE_MESSAGE(browser.has_value(), why);
  auto page = browser->open("http://127.0.0.1:" + std::to_string(api.port) + "/", &why);
  REQUIRE_MESSAGE(page.has_value(), why << "\n" << browser->log_tail());
  // The event stream is open (the api counts it too) and nothing is shown yet.
  REQUIRE_MESSAGE(page->wait_for("document.body.dataset.live === 'yes'", 15s, &last), last);
  CHECK(eventually([&] { return num(get(api.port, "/health").j(), "sse_clients") == 1; }, 10s));
  CHECK(page->evaluate("document.querySelectorAll('figure.arrived').length") == json(0));
  // A mark on this document: a reload would lose it.
  REQUIRE(page->evaluate("window.zkrMark = 'before'; true") == json(true));

  j.data_id = "page-1";
  j.network = "net-a";
  j.file = "park.jpg";
  submit(api.port, j, "127.0.0.1:1");
  const std::string shown = "(() => { const f = document.querySelector('figure.arrived[data-job=\"" + j.job_id +
                            "\"]'); const i = f && f.querySelector('img');"
                            " return !!(i && i.complete && i.naturalWidth > 0); })()";
  CHECK_MESSAGE(page->wait_for(shown, 30s, &last),
                "the image did not appear: " << last << "\n" << sys.logs() << "\n" << browser->log_tail());
  CHECK(page->evaluate("window.zkrMark") == json("before")); // the same document: no reload
  const auto caption = page->evaluate("document.querySelector('figure.arrived figcaption').textContent");
  REQUIRE(caption.has_value());
  CHECK_MESSAGE(contains(caption->get<std::string>(), "golden-gate-park"), caption->dump());
  // make_image(…, variant 1) is 9 pixels wide: the bytes the browser decoded are the source's.
  CHECK(page->evaluate("document.querySelector('figure.arrived img').naturalWidth") == json(9));

  // The screenshot is kept beside the test binary's working directory as an
  // artefact of the run.
  const fs::path shot = fs::current_path() / "artefacts" / "image-worker-page.png";
  fs::create_directories(shot.parent_path());
  CHECK_MESSAGE(page->screenshot(shot, &why), why);
  CHECK(zkd::read_file(shot).rfind("\x89PNG", 0) == 0);
}

#endif // ZKRECIPES_IMAGE_WORKER
