// tracing: one request followed across two processes. This program starts a
// copy of itself as the producer: it puts a job into a FIFO queue inside a
// trace_scope. This process takes the job, goes on under the job's trace id,
// and then prints every line of the shared trace log that carries that id:
// the producer's create and queue event, the consumer's take and its
// follow-up write. See docs/tracing.md and docs/interceptors.md.
//
//   tracing [connect-string]          (default: $ZK_CONNECT or 127.0.0.1:2181)
//   tracing --produce <connect-string> <queue-path> <trace-id> <trace-file>
//                                     (the producer half; also used by the tests)
#include <zkrecipes/zkrecipes.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ; // NOLINT: POSIX global

namespace zkr = zkrecipes;
using namespace std::chrono_literals;

static int fail(const char* what, const zkr::error& e) {
  std::fprintf(stderr, "tracing: %s: %s\n", what, e.message().c_str());
  return 1;
}

static zkr::result<zkr::session> connect(const std::string& connect_string) {
  zkr::session_options opts;
  opts.connect_string = connect_string;
  opts.session_timeout = 5s;
  return zkr::session::connect(opts, 15s);
}

// The producer: every operation and the queue event go to the trace file.
static int produce(const std::string& connect_string, const std::string& queue, const std::string& trace_id,
                   const std::string& trace_file) {
  auto s = connect(connect_string);
  if (!s) return fail("connect", s.error());
  // The interceptor list comes from configuration: a spec string.
  auto chain = zkr::make_interceptor_chain("trace:" + trace_file);
  if (!chain) return fail("interceptors", chain.error());
  zkr::session traced = s.value().intercepted(chain.value());
  zkr::queue_options qo;
  qo.interceptors = chain.value()->queue_interceptors(); // the trace writer sees queue items too
  zkr::fifo_queue<std::string> jobs(traced, queue, qo);

  zkr::trace_scope scope(trace_id); // the item carries it to whoever takes it
  auto p = jobs.put("resize image 42");
  if (!p) return fail("put", p.error());
  std::printf("producer %d: put %s with trace id %s\n", int(::getpid()), p.value().c_str(), trace_id.c_str());
  return 0;
}

// Starts this program again as the producer and waits (bounded) for it.
static bool run_producer(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  if (posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv.data(), environ) != 0) return false;
  int status = 0;
  for (auto deadline = std::chrono::steady_clock::now() + 30s; std::chrono::steady_clock::now() < deadline;) {
    if (::waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) && WEXITSTATUS(status) == 0;
    std::this_thread::sleep_for(20ms);
  }
  ::kill(pid, SIGKILL); // that pid only
  ::waitpid(pid, &status, 0);
  return false;
}

int main(int argc, char** argv) {
  if (argc == 6 && std::string(argv[1]) == "--produce") return produce(argv[2], argv[3], argv[4], argv[5]);
  const char* env = std::getenv("ZK_CONNECT");
  const std::string connect_string = argc > 1 ? argv[1] : env ? env : "127.0.0.1:2181";
  const std::string root = "/zkrecipes-tracing-example";
  const std::string queue = root + "/jobs";
  const std::string trace_file =
      (std::filesystem::temp_directory_path() / ("zkrecipes-tracing-" + std::to_string(::getpid()) + ".jsonl")).string();

  auto s = connect(connect_string);
  if (!s) return fail("connect", s.error());
  auto& zk = s.value();
  if (auto r = zk.ensure_path(root); !r) return fail("ensure_path", r.error());

  // 1. The producer, in another process, with a trace id made here.
  const std::string trace_id = zkr::make_trace_id();
  const bool produced = run_producer({argv[0], "--produce", connect_string, queue, trace_id, trace_file});
  if (!produced) std::fprintf(stderr, "tracing: the producer failed\n");

  // 2. The consumer: the same trace writer (one file; lines are appended whole).
  int rc = 0;
  {
    auto chain = zkr::make_interceptor_chain("trace:" + trace_file + ",counter");
    if (!chain) return fail("interceptors", chain.error());
    zkr::session traced = zk.intercepted(chain.value());
    zkr::queue_options qo;
    qo.interceptors = chain.value()->queue_interceptors();
    zkr::fifo_queue<std::string> jobs(traced, queue, qo);
    auto job = jobs.take_item(produced ? 15s : 1s);
    if (!job) {
      rc = fail("take", job.error());
    } else {
      std::printf("consumer %d: took \"%s\" from %s, trace id %s\n", int(::getpid()), job.value().value.c_str(),
                  job.value().path.c_str(), job.value().trace_id.value_or("(none)").c_str());
      // Go on under the producer's trace id: this write is part of the same request.
      zkr::trace_scope scope(job.value().trace_id);
      if (auto r = traced.set(root, "done: " + job.value().value); !r) rc = fail("set", r.error());
      if (job.value().trace_id != trace_id) rc = 1;
    }
  }

  // 3. Follow the request: every line of the log that carries its trace id.
  std::printf("\nlines of %s with trace id %s:\n", trace_file.c_str(), trace_id.c_str());
  std::ifstream in(trace_file);
  int lines = 0, produce_lines = 0, consume_lines = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.find("\"trace_id\":\"" + trace_id + "\"") == std::string::npos) continue;
    std::printf("  %s\n", line.c_str());
    ++lines;
    if (line.find("\"role\":\"produce\"") != std::string::npos) ++produce_lines;
    if (line.find("\"role\":\"consume\"") != std::string::npos) ++consume_lines;
  }
  std::printf("%d lines: the producer's put and the consumer's take and write\n", lines);

  std::filesystem::remove(trace_file);
  if (auto r = zk.remove_recursive(root); !r) return fail("clean up", r.error());
  std::printf("removed %s\n", root.c_str());
  if (rc != 0 || !produced || produce_lines != 1 || consume_lines != 1)
    return std::fprintf(stderr, "tracing: failed\n"), 1;
  return 0;
}
