// docs/tutorial.md as a test, so that the tutorial cannot rot: every fenced
// block whose info string is `sh tutorial` is run, in order, and a
// `text expect` block that follows one lists lines its output must contain.
//
// The blocks of one `## ` section run as one bash script (`set -euo
// pipefail`), so a background process started in one block can be killed in
// a later one; a unique marker line printed after each block splits the
// output per block. Each section runs in a fresh temporary directory holding
// `build` (a symlink to the meson build root) and `examples` (to the source
// tree's examples/), the commands' working directory, as the repository root
// is the reader's; with ZK_CONNECT naming a ZooKeeper server this test starts,
// and TMPDIR inside that directory (so what the commands make with mktemp
// goes when the test ends, whatever happens).
//
// A section is one process group (child_process::spawn makes the shell its
// leader). It has a time bound, after which the whole group is SIGKILLed; a
// process of the group still alive when the shell has ended (a background
// process the section forgot to stop) fails the section and is SIGKILLed
// too. Only that group is ever signalled, by its id.
//
// tests/meson.build defines ZKRECIPES_SOURCE_ROOT and ZKRECIPES_BUILD_ROOT
// (string literals) when the example programs are built; without them the
// tutorial is not run. The other two test cases check the checker: the
// runner on a small made-up tutorial (a failing command, a missing line, a
// timeout, a forgotten process and an early exit must each fail it), and the
// parser on malformed blocks.
#include "support.hpp"

#include <zkrecipes/detail/process.hpp>
#include <zkrecipes/testing/server.hpp>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

namespace {

namespace fs = std::filesystem;
namespace zkd = zkrecipes::detail;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

// ---------------------------------------------------------------- the markdown

struct tutorial_block {
  int line = 0;                     ///< the opening fence's line (1-based)
  std::string code;                 ///< the commands, one per line
  std::vector<std::string> expect;  ///< each must appear in the block's output
};

struct tutorial_section {
  std::string title;
  int line = 0;
  std::vector<tutorial_block> blocks;
};

struct parsed_tutorial {
  std::vector<tutorial_section> sections; ///< those with commands, in order
  std::vector<std::string> problems;      ///< malformed blocks
};

std::string trim(std::string_view s) {
  const auto b = s.find_first_not_of(" \t\r");
  if (b == std::string_view::npos) return {};
  const auto e = s.find_last_not_of(" \t\r");
  return std::string(s.substr(b, e - b + 1));
}

/// Splits docs/tutorial.md into sections (`## ` headings) and their
/// `sh tutorial` blocks. Fences are runs of 3 or more backticks, closed by a
/// run at least as long; a `text expect` block belongs to the `sh tutorial`
/// block right before it (prose may come between, another block may not).
parsed_tutorial parse_tutorial(const std::string& text) {
  parsed_tutorial out;
  std::vector<tutorial_section> all;
  enum class kind { none, run, expect, other };
  bool in_section = false, in_fence = false;
  kind fence = kind::none, last = kind::none;
  std::size_t fence_len = 0, fence_indent = 0;
  int fence_line = 0, n = 0;
  std::string body;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    ++n;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const std::size_t indent = line.find_first_not_of(' ');
    const std::string_view rest = indent == std::string::npos ? std::string_view() : std::string_view(line).substr(indent);
    const std::size_t ticks = rest.find_first_not_of('`') == std::string_view::npos ? rest.size() : rest.find_first_not_of('`');
    if (in_fence) {
      if (ticks >= fence_len && trim(rest.substr(ticks)).empty()) {
        in_fence = false;
        const std::string where = "line " + std::to_string(fence_line);
        if (fence == kind::run) {
          if (!in_section) out.problems.push_back(where + ": a `sh tutorial` block outside any `## ` section");
          else all.back().blocks.push_back({fence_line, body, {}});
        } else if (fence == kind::expect) {
          if (!in_section || last != kind::run || all.back().blocks.empty() || !all.back().blocks.back().expect.empty()) {
            out.problems.push_back(where + ": a `text expect` block must follow a `sh tutorial` block of its section");
          } else {
            std::istringstream lines(body);
            for (std::string l; std::getline(lines, l);)
              if (auto t = trim(l); !t.empty()) all.back().blocks.back().expect.push_back(t);
            if (all.back().blocks.back().expect.empty()) out.problems.push_back(where + ": an empty `text expect` block");
          }
        }
        last = fence;
        continue;
      }
      // Lines keep their own indentation, less the fence's.
      std::size_t strip = 0;
      while (strip < fence_indent && strip < line.size() && line[strip] == ' ') ++strip;
      body += line.substr(strip);
      body += '\n';
      continue;
    }
    if (ticks >= 3) {
      const std::string info = trim(rest.substr(ticks));
      in_fence = true;
      fence_len = ticks;
      fence_indent = indent;
      fence_line = n;
      body.clear();
      fence = info == "sh tutorial" ? kind::run : info == "text expect" ? kind::expect : kind::other;
      if (fence == kind::other && (info.find("tutorial") != std::string::npos || info.find("expect") != std::string::npos))
        out.problems.push_back("line " + std::to_string(n) + ": info string \"" + info +
                               "\": did you mean `sh tutorial` or `text expect`?");
      continue;
    }
    if (line.rfind("## ", 0) == 0) {
      all.push_back({trim(std::string_view(line).substr(3)), n, {}});
      in_section = true;
      last = kind::none;
    } else if (line.rfind("# ", 0) == 0) {
      in_section = false;
    }
  }
  if (in_fence) out.problems.push_back("line " + std::to_string(fence_line) + ": a code block that is never closed");
  for (auto& s : all)
    if (!s.blocks.empty()) out.sections.push_back(std::move(s));
  return out;
}

// ---------------------------------------------------------------- process groups

/// Processes of group `pgid` that have not exited (zombies do not count: they
/// are dead, waiting for their parent or init to reap them).
std::vector<std::string> live_members(pid_t pgid) {
  std::vector<std::string> found;
  std::error_code ec;
  for (auto it = fs::directory_iterator("/proc", ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string stat = zkd::read_file(it->path() / "stat");
    const auto open = stat.find('('), close = stat.rfind(')');
    if (open == std::string::npos || close == std::string::npos || close < open) continue;
    std::istringstream fields(stat.substr(close + 1));
    char state = '?';
    long ppid = 0, group = 0;
    if (!(fields >> state >> ppid >> group)) continue;
    if (group != pgid || state == 'Z' || state == 'X') continue;
    found.push_back(name + " (" + stat.substr(open + 1, close - open - 1) + ")");
  }
  return found;
}

/// SIGKILLs group `pgid` and waits (bounded) until none of it is alive.
bool kill_group(pid_t pgid) {
  if (pgid <= 1) return true; // never -1 or init's group: nothing of ours
  ::kill(-pgid, SIGKILL);
  return zkt::eventually([&] { return live_members(pgid).empty(); }, 10s);
}

std::string random_hex() {
  std::random_device rd;
  std::uniform_int_distribution<unsigned long long> d;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", d(rd));
  return buf;
}

/// The last `max_lines` lines of `text` (at most `max_chars`), for messages.
std::string tail_lines(const std::string& text, std::size_t max_lines = 40, std::size_t max_chars = 4000) {
  const std::size_t last = text.find_last_not_of("\r\n");
  if (last == std::string::npos) return "(no output)";
  const std::size_t end = last + 1;
  std::size_t start = end, newlines = 0;
  while (start > 0 && !(text[start - 1] == '\n' && ++newlines == max_lines)) --start;
  std::string t = text.substr(start, end - start);
  if (t.size() > max_chars) t = "..." + t.substr(t.size() - max_chars);
  return t;
}

// ---------------------------------------------------------------- running a section

struct run_settings {
  fs::path build_root;  ///< `build` in the section's directory points here
  fs::path examples;    ///< `examples` points here (empty: no link)
  std::string zk_connect;
  std::chrono::milliseconds bound{180s};
};

struct section_result {
  std::vector<std::string> problems;
  long long ms = 0;
};

/// Runs one section's blocks as one bash script in `dir` (made here).
section_result run_section(const tutorial_section& sec, const fs::path& dir, const run_settings& rs) {
  section_result res;
  const auto fail = [&](std::string why) { res.problems.push_back("section \"" + sec.title + "\": " + std::move(why)); };
  std::error_code ec;
  fs::create_directories(dir / "tmp", ec);
  if (ec) return fail("cannot make " + dir.string() + ": " + ec.message()), res;
  fs::create_directory_symlink(rs.build_root, dir / "build", ec);
  if (!ec && !rs.examples.empty()) fs::create_directory_symlink(rs.examples, dir / "examples", ec);
  if (ec) return fail("cannot link the build and examples directories: " + ec.message()), res;

  // After each block, a line no command prints: the blocks' outputs lie between.
  const std::string nonce = random_hex();
  auto marker = [&](std::size_t i) { return "@@tutorial-" + nonce + "-block-" + std::to_string(i) + "-done@@"; };
  // The shell's pid is its group's id: kept in a file as well, in case the
  // shell has ended (and been reaped) before we ask the child for its pid.
  std::string script = "printf '%s\\n' \"$$\" >shell.pid\nset -euo pipefail\n";
  for (std::size_t i = 0; i < sec.blocks.size(); ++i)
    script += sec.blocks[i].code + "printf '\\n%s\\n' '" + marker(i) + "'\n";
  if (auto w = zkd::write_file(dir / "section.sh", script); !w) return fail(w.error().message()), res;

  const fs::path env = zkd::find_executable("env"), bash = zkd::find_executable("bash");
  if (env.empty() || bash.empty()) return fail("env(1) or bash not found on PATH"), res;
  const fs::path log = dir / "output.log";
  const auto t0 = clock_type::now();
  // env(1) execs bash in its place: the pid is the shell's, and its group's id.
  auto child = zkd::child_process::spawn({env.string(), "ZK_CONNECT=" + rs.zk_connect, "TMPDIR=" + (dir / "tmp").string(),
                                          bash.string(), "--noprofile", "--norc", (dir / "section.sh").string()},
                                         dir, log);
  if (!child) return fail(child.error().message()), res;
  pid_t group = child.value().pid();
  const bool ended = child.value().wait_for(rs.bound);
  if (group <= 1) group = static_cast<pid_t>(std::atol(zkd::read_file(dir / "shell.pid").c_str()));
  res.ms = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - t0).count();
  std::vector<std::string> left;
  if (!ended) {
    kill_group(group);
    child.value().kill_and_reap();
  } else if (group > 1) {
    left = live_members(group);
  }
  if (!left.empty() && !kill_group(group)) fail("processes of the section survive SIGKILL");

  const std::string output = zkd::read_file(log);
  std::size_t from = 0, failed = sec.blocks.size();
  for (std::size_t i = 0; i < sec.blocks.size(); ++i) {
    const auto& b = sec.blocks[i];
    const auto at = output.find("\n" + marker(i) + "\n", from);
    const std::string where = "the block at line " + std::to_string(b.line);
    if (at == std::string::npos) {
      failed = i;
      const std::string seen = output.substr(std::min(from, output.size()));
      if (!ended)
        fail(where + " ran over the section's bound of " + std::to_string(rs.bound.count() / 1000) +
             " s and was killed with its whole process group; its output:\n" + tail_lines(seen));
      else
        fail(where + " failed (" + (child.value().describe_status() == "exit status 0" ? std::string("the script ended early")
                                                                                         : child.value().describe_status()) +
             ")\n" + b.code + "its output:\n" + tail_lines(seen));
      break;
    }
    const std::string seen = output.substr(from, at - from);
    for (const auto& want : b.expect)
      if (seen.find(want) == std::string::npos)
        fail(where + ": its output has no \"" + want + "\"; its output:\n" + tail_lines(seen));
    from = at + marker(i).size() + 2;
  }
  if (ended && failed == sec.blocks.size() && child.value().describe_status() != "exit status 0")
    fail("the script ended with " + child.value().describe_status() + " after its last block");
  if (!left.empty()) {
    std::string list;
    for (const auto& p : left) list += " " + p;
    fail("processes still running when its shell ended (now SIGKILLed):" + list +
         ": a section must stop, by pid, every process it starts");
  }
  return res;
}

#ifdef ZKRECIPES_EXAMPLES
[[maybe_unused]] const std::vector<std::string> example_programs = {ZKRECIPES_EXAMPLES};
#else
[[maybe_unused]] const std::vector<std::string> example_programs;
#endif

/// Whether `code` runs `command` (not merely a longer name that starts with it).
[[maybe_unused]] bool runs(const std::string& code, const std::string& command) {
  for (auto at = code.find(command); at != std::string::npos; at = code.find(command, at + 1)) {
    const std::size_t end = at + command.size();
    const bool word_end = end == code.size() || !(std::isalnum(static_cast<unsigned char>(code[end])) || code[end] == '_' ||
                                                  code[end] == '-' || code[end] == '.');
    if (word_end) return true;
  }
  return false;
}

} // namespace

TEST_CASE("tutorial: every command in docs/tutorial.md runs and prints what the page says") {
#if !defined(ZKRECIPES_SOURCE_ROOT) || !defined(ZKRECIPES_BUILD_ROOT)
  MESSAGE("ZKRECIPES_SOURCE_ROOT or ZKRECIPES_BUILD_ROOT is undefined (the examples are not built): "
          "docs/tutorial.md is not run");
  return;
#else
  const fs::path source = ZKRECIPES_SOURCE_ROOT, build = ZKRECIPES_BUILD_ROOT;
  const fs::path page = source / "docs" / "tutorial.md";
  const std::string text = zkd::read_file(page);
  REQUIRE_MESSAGE(!text.empty(), "cannot read " << page.string());
  REQUIRE_MESSAGE(zkd::is_executable(build / "examples" / "zk-sandbox"),
                  (build / "examples" / "zk-sandbox").string() << " is not built: the tutorial needs every example program");

  const parsed_tutorial t = parse_tutorial(text);
  for (const auto& p : t.problems) CHECK_MESSAGE(false, "docs/tutorial.md " << p);
  REQUIRE(t.problems.empty());
  REQUIRE(t.sections.size() >= 5);

  // The page walks through every recipe's example and the three systems' demos.
  std::string all_code;
  std::size_t blocks = 0;
  for (const auto& s : t.sections)
    for (const auto& b : s.blocks) all_code += b.code, ++blocks;
  std::vector<std::string> must_run = {"build/examples/zk-sandbox", "build/examples/hello",
                                       "examples/push-template/demo.sh", "examples/im/demo.sh",
                                       "examples/image-worker/demo.sh"};
  for (const auto& p : example_programs) must_run.push_back("build/examples/" + fs::path(p).filename().string());
  for (const auto& c : must_run) CHECK_MESSAGE(runs(all_code, c), "docs/tutorial.md runs no `" << c << "`");

  auto server = zkrecipes::testing::server::start();
  REQUIRE_MESSAGE(server.has_value(), (server ? "" : server.error().message()));
  auto dir = zkd::temp_dir::create("zkrecipes-tutorial-");
  REQUIRE_MESSAGE(dir.has_value(), (dir ? "" : dir.error().message()));

  run_settings rs;
  rs.build_root = build;
  rs.examples = source / "examples";
  rs.zk_connect = server.value().connect_string();
  std::string timings;
  long long total = 0;
  for (std::size_t i = 0; i < t.sections.size(); ++i) {
    const auto& s = t.sections[i];
    INFO("docs/tutorial.md line " << s.line << ": ## " << s.title);
    const auto r = run_section(s, dir.value().path() / ("section-" + std::to_string(i + 1)), rs);
    for (const auto& p : r.problems) CHECK_MESSAGE(false, p);
    total += r.ms;
    timings += (timings.empty() ? "" : ", ") + std::to_string((r.ms + 500) / 1000) + " s";
  }
  MESSAGE("docs/tutorial.md: " << t.sections.size() << " sections, " << blocks << " command blocks, " << (total + 500) / 1000
                               << " s (" << timings << ")");
#endif
}

TEST_CASE("tutorial: the runner fails on a failing command, a missing line, a timeout and a forgotten process") {
  const std::string page = R"md(# made up

## passes
Prose, then:
```sh tutorial
echo "hello from $ZK_CONNECT"
mkdir "$TMPDIR/made-here"
```
```text expect
hello from 127.0.0.1:1
```
```sh tutorial
sleep 1 &
p=$!
kill $p; wait $p || true
echo second block
```
```text expect
second block
```

## a command fails
```sh tutorial
echo first
```
```sh tutorial
echo before
false
echo after
```

## a line is missing
```sh tutorial
echo something else
```
```text expect
this never appears
```

## a process is forgotten
```sh tutorial
sleep 300 &
echo started
```

## too slow
```sh tutorial
sleep 300
```

## an early exit
```sh tutorial
exit 0
```
```sh tutorial
echo never
```
)md";
  const parsed_tutorial t = parse_tutorial(page);
  REQUIRE(t.problems.empty());
  REQUIRE(t.sections.size() == 6);
  CHECK(t.sections[0].blocks.size() == 2);
  CHECK(t.sections[0].blocks[0].expect == std::vector<std::string>{"hello from 127.0.0.1:1"});
  CHECK(t.sections[0].blocks[0].line == 5);

  auto dir = zkd::temp_dir::create("zkrecipes-tutorial-self-");
  REQUIRE(dir.has_value());
  run_settings rs;
  rs.build_root = dir.value().path();
  rs.zk_connect = "127.0.0.1:1";
  rs.bound = 3s;
  std::vector<section_result> r;
  for (std::size_t i = 0; i < t.sections.size(); ++i)
    r.push_back(run_section(t.sections[i], dir.value().path() / ("s" + std::to_string(i)), rs));
  auto said = [&](std::size_t i, std::string_view what) {
    for (const auto& p : r[i].problems)
      if (p.find(what) != std::string::npos) return true;
    return false;
  };
  CHECK_MESSAGE(r[0].problems.empty(), (r[0].problems.empty() ? "" : r[0].problems.front()));
  CHECK(fs::is_directory(dir.value().path() / "s0" / "tmp" / "made-here")); // TMPDIR is the section's
  CHECK(said(1, "the block at line 26 failed (exit status 1)"));
  CHECK(said(1, "echo before"));
  CHECK(r[1].problems.size() == 1);
  CHECK(said(2, "has no \"this never appears\""));
  CHECK(said(3, "processes still running when its shell ended"));
  CHECK(said(4, "ran over the section's bound of 3 s"));
  CHECK(said(5, "the script ended early"));
  // Nothing of theirs is left: every section's group was emptied.
  for (std::size_t i = 0; i < r.size(); ++i) CHECK(r[i].ms < 10000);
}

TEST_CASE("tutorial: the parser refuses malformed blocks") {
  CHECK(parse_tutorial("## a\n```text expect\nx\n```\n").problems.size() == 1);            // nothing to expect of
  CHECK(parse_tutorial("```sh tutorial\necho\n```\n").problems.size() == 1);               // outside a section
  CHECK(parse_tutorial("## a\n```sh tutorial\necho\n").problems.size() == 1);              // never closed
  CHECK(parse_tutorial("## a\n```sh tutorial\necho\n```\n```sh\nx\n```\n```text expect\nx\n```\n").problems.size() == 1);
  CHECK(parse_tutorial("## a\n```sh  tutorial\necho\n```\n").problems.size() == 1);        // a typo
  const auto ok = parse_tutorial("## a\n````sh tutorial\n```\n````\n### b\n```sh\nnot run\n```\n## c\ntext\n");
  CHECK(ok.problems.empty());
  REQUIRE(ok.sections.size() == 1);
  CHECK(ok.sections[0].blocks.size() == 1);
  CHECK(ok.sections[0].blocks[0].code == "```\n");
}
