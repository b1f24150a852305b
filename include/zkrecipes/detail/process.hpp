// zkrecipes internals: child processes and temporary directories for the test
// harness (zkrecipes/testing/). Linux only.
//
// A child started here dies with the parent even if the parent crashes: the
// child asks for PR_SET_PDEATHSIG(SIGKILL) before exec. The kernel delivers
// that signal when the *thread* that forked exits, not the process, so start
// servers from a thread that outlives them (the main thread, or the thread of
// a test fixture that stays alive).
#pragma once

#include <zkrecipes/error.hpp>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ; // NOLINT: POSIX global, not declared by every libc header

namespace zkrecipes::detail {

/// errno as a std::error_code.
inline std::error_code last_errno() noexcept { return {errno, std::generic_category()}; }

/// The directory for temporary files: $TMPDIR when set and non-empty, else /tmp.
inline std::filesystem::path temp_root() {
  const char* t = std::getenv("TMPDIR");
  if (t != nullptr && *t != '\0') return t;
  return "/tmp";
}

/// A directory made with mkdtemp and removed (recursively) on destruction.
/// Move-only; an empty path means "owns nothing".
class temp_dir {
public:
  temp_dir() = default;
  explicit temp_dir(std::filesystem::path p) : path_(std::move(p)) {}
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  temp_dir(temp_dir&& o) noexcept : path_(std::exchange(o.path_, {})) {}
  temp_dir& operator=(temp_dir&& o) noexcept {
    if (this != &o) {
      remove();
      path_ = std::exchange(o.path_, {});
    }
    return *this;
  }
  ~temp_dir() { remove(); }

  /// Creates `<temp_root()>/<prefix>XXXXXX` holding an `owner.pid` file, after
  /// removing directories of the same prefix whose owner process is gone (a
  /// test binary that crashed cannot run its destructors; its servers die by
  /// the parent-death signal, its directories are swept here).
  static result<temp_dir> create(const std::string& prefix) {
    sweep_orphans(prefix);
    std::string tmpl = (temp_root() / (prefix + "XXXXXX")).string();
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (::mkdtemp(buf.data()) == nullptr)
      return make_error(last_errno(), "create temp dir", tmpl);
    temp_dir d(std::filesystem::path(buf.data()));
    std::ofstream(d.path() / "owner.pid") << ::getpid() << '\n';
    return d;
  }

  /// Removes `<temp_root()>/<prefix>*` directories whose owner.pid names a
  /// process that no longer exists. Directories without one are left alone.
  static void sweep_orphans(const std::string& prefix) noexcept {
    std::error_code ec;
    for (auto it = std::filesystem::directory_iterator(temp_root(), ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
      auto name = it->path().filename().string();
      if (name.rfind(prefix, 0) != 0) continue;
      std::ifstream in(it->path() / "owner.pid");
      long pid = 0;
      if (!(in >> pid) || pid <= 0) continue;
      if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;
      std::error_code rm;
      std::filesystem::remove_all(it->path(), rm);
    }
  }

  const std::filesystem::path& path() const noexcept { return path_; }

  /// Removes the directory now (errors ignored: it is best effort cleanup).
  void remove() noexcept {
    if (path_.empty()) return;
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
    path_.clear();
  }

private:
  std::filesystem::path path_;
};

/// Writes `text` to `path`, replacing it.
inline result<void> write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) return make_error(last_errno(), "write file", path.string());
  f << text;
  f.flush();
  if (!f) return make_error(last_errno(), "write file", path.string());
  return outcome::success();
}

/// Reads `path` from byte `offset` to its end; empty when it cannot be read.
inline std::string read_file(const std::filesystem::path& path, std::uintmax_t offset = 0) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return {};
  if (offset != 0) f.seekg(static_cast<std::streamoff>(offset));
  if (!f) return {};
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

/// The last `max_lines` lines of a text file (at most `max_chars`), for error
/// messages that quote a log.
inline std::string tail_of_file(const std::filesystem::path& path, std::size_t max_lines = 15,
                                std::size_t max_chars = 3000) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  constexpr std::uintmax_t window = 64 * 1024; // enough for the last lines
  std::string text = read_file(path, !ec && size > window ? size - window : 0);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  std::size_t start = text.size();
  for (std::size_t lines = 0; lines < max_lines && start > 0; ++lines) {
    const std::size_t nl = text.rfind('\n', start - 1);
    start = nl == std::string::npos ? 0 : nl;
  }
  std::string tail = text.substr(start);
  if (!tail.empty() && tail.front() == '\n') tail.erase(0, 1);
  if (tail.size() > max_chars) tail = "..." + tail.substr(tail.size() - max_chars);
  if (tail.empty()) return "(log empty)";
  return tail;
}

/// Whether `name` is an executable regular file.
inline bool is_executable(const std::filesystem::path& name) {
  struct ::stat st {};
  return ::stat(name.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(name.c_str(), X_OK) == 0;
}

/// Looks `name` up on $PATH (or returns it when it contains a '/');
/// empty when not found.
inline std::filesystem::path find_executable(const std::string& name) {
  if (name.empty()) return {};
  if (name.find('/') != std::string::npos) return is_executable(name) ? name : std::string();
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  std::size_t pos = 0;
  while (pos <= dirs.size()) {
    std::size_t end = dirs.find(':', pos);
    if (end == std::string::npos) end = dirs.size();
    std::string dir = dirs.substr(pos, end - pos);
    if (dir.empty()) dir = ".";
    std::filesystem::path candidate = std::filesystem::path(dir) / name;
    if (is_executable(candidate)) return candidate;
    pos = end + 1;
  }
  return {};
}

/// Writes a small decimal number with write(2) only (async-signal-safe).
inline void write_int_signal_safe(int fd, int v) noexcept {
  char buf[16];
  int n = 0;
  unsigned u = v < 0 ? static_cast<unsigned>(-static_cast<long long>(v)) : static_cast<unsigned>(v);
  do {
    buf[sizeof buf - 1 - static_cast<std::size_t>(n)] = static_cast<char>('0' + u % 10);
    u /= 10;
    ++n;
  } while (u != 0 && n < 15);
  if (v < 0) {
    buf[sizeof buf - 1 - static_cast<std::size_t>(n)] = '-';
    ++n;
  }
  [[maybe_unused]] auto r = ::write(fd, buf + sizeof buf - n, static_cast<std::size_t>(n));
}

/// A spawned child process that this object owns.
///
/// Move-only; pid -1 means "owns none". The destructor SIGKILLs a child that is
/// still running and reaps it, so no zombie and no stray process remain. Only
/// the pid this object spawned is ever signalled.
class child_process {
public:
  child_process() = default;
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;
  child_process(child_process&& o) noexcept
      : pid_(std::exchange(o.pid_, -1)), status_(o.status_) {}
  child_process& operator=(child_process&& o) noexcept {
    if (this != &o) {
      kill_and_reap();
      pid_ = std::exchange(o.pid_, -1);
      status_ = o.status_;
    }
    return *this;
  }
  ~child_process() { kill_and_reap(); }

  /// Starts `argv[0]` (a path, not looked up) with `argv`, in `work_dir`, with
  /// stdin from /dev/null and stdout and stderr appended to `log_path`.
  ///
  /// The child: sets PR_SET_PDEATHSIG(SIGKILL) (it follows the forking
  /// thread), exits if the parent already died, moves to its own process
  /// group, restores default signal handling, closes every inherited
  /// descriptor above 2 and execs. Everything it needs is prepared before
  /// fork(), so only async-signal-safe calls run in the child.
  static result<child_process> spawn(const std::vector<std::string>& argv,
                                     const std::filesystem::path& work_dir,
                                     const std::filesystem::path& log_path) {
    if (argv.empty()) return make_error(std::make_error_code(std::errc::invalid_argument), "spawn");
    std::vector<char*> args;
    args.reserve(argv.size() + 1);
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    char** envp = environ;
    const std::string dir = work_dir.string();

    const int log_fd =
        ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) return make_error(last_errno(), "spawn: open log", log_path.string());
    const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null_fd < 0) {
      ::close(log_fd);
      return make_error(last_errno(), "spawn: open", "/dev/null");
    }
    // Upper bound for the fallback descriptor sweep when close_range is absent.
    struct rlimit rl {};
    int max_fd = 4096;
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
      max_fd = rl.rlim_cur < 65536 ? static_cast<int>(rl.rlim_cur) : 65536;
    sigset_t empty_set;
    sigemptyset(&empty_set);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    const pid_t parent = ::getpid();

    const pid_t pid = ::fork();
    if (pid < 0) {
      const auto ec = last_errno();
      ::close(log_fd);
      ::close(null_fd);
      return make_error(ec, "spawn: fork", argv[0]);
    }
    if (pid == 0) {
      // Child: async-signal-safe calls only from here to exec.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(1);
      ::setpgid(0, 0);
      for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE, SIGCHLD, SIGUSR1, SIGUSR2})
        ::sigaction(sig, &dfl, nullptr);
      ::sigprocmask(SIG_SETMASK, &empty_set, nullptr);
      if (::dup2(null_fd, 0) < 0 || ::dup2(log_fd, 1) < 0 || ::dup2(log_fd, 2) < 0) ::_exit(126);
      bool closed = false;
#ifdef SYS_close_range
      closed = ::syscall(SYS_close_range, 3U, ~0U, 0U) == 0;
#endif
      if (!closed)
        for (int fd = 3; fd < max_fd; ++fd) ::close(fd);
      if (::chdir(dir.c_str()) != 0) ::_exit(126);
      ::execve(args[0], args.data(), envp);
      const int err = errno;
      static const char msg[] = "zkrecipes: execve failed, errno ";
      [[maybe_unused]] auto r = ::write(2, msg, sizeof msg - 1);
      write_int_signal_safe(2, err);
      [[maybe_unused]] auto r2 = ::write(2, "\n", 1);
      ::_exit(127);
    }
    ::close(log_fd);
    ::close(null_fd);
    child_process c;
    c.pid_ = pid;
    return c;
  }

  /// The child's pid while it runs, else -1. Reaps a child that exited.
  int pid() const noexcept { return running() ? pid_ : -1; }

  /// Whether the child is still running (reaps it if it has exited).
  bool running() const noexcept {
    if (pid_ < 0) return false;
    try_reap();
    return pid_ >= 0;
  }

  /// The raw wait status of the last reaped child (see waitpid(2)), or -1.
  int last_status() const noexcept { return status_; }

  /// A readable account of last_status(): "exit status 1", "signal 9".
  std::string describe_status() const {
    if (status_ == -1) return "unknown status";
    if (WIFEXITED(status_)) return "exit status " + std::to_string(WEXITSTATUS(status_));
    if (WIFSIGNALED(status_)) return "signal " + std::to_string(WTERMSIG(status_));
    return "status " + std::to_string(status_);
  }

  /// Sends `sig` to the child (only to its pid). No-op when not running.
  void send_signal(int sig) const noexcept {
    if (running()) ::kill(pid_, sig);
  }

  /// Waits until the child exits or `timeout` passes; true when it exited
  /// (and was reaped).
  bool wait_for(std::chrono::milliseconds timeout) const noexcept {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    auto step = std::chrono::milliseconds(1);
    while (running()) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(step);
      if (step < std::chrono::milliseconds(20)) step *= 2;
    }
    return true;
  }

  /// SIGTERM, wait up to `grace`, then SIGKILL and reap.
  void terminate(std::chrono::milliseconds grace) noexcept {
    if (!running()) return;
    ::kill(pid_, SIGTERM);
    if (wait_for(grace)) return;
    kill_and_reap();
  }

  /// SIGKILL and reap (bounded: gives up after 10 s, which only a process
  /// stuck in the kernel could cause).
  void kill_and_reap() noexcept {
    if (!running()) return;
    ::kill(pid_, SIGKILL);
    if (!wait_for(std::chrono::seconds(10))) pid_ = -1; // cannot reap; forget it
  }

private:
  void try_reap() const noexcept {
    int st = 0;
    pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      status_ = st;
      pid_ = -1;
    } else if (r < 0 && errno == ECHILD) {
      // Reaped elsewhere (for instance SIGCHLD set to SIG_IGN): it is gone.
      pid_ = -1;
    }
  }

  mutable pid_t pid_ = -1;
  mutable int status_ = -1;
};

} // namespace zkrecipes::detail
