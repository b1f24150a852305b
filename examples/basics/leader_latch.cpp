// leader_latch: three candidates, each with its own session, join an
// election; the leader leaves and the next in line takes over. See
// docs/leader_latch.md.
//
//   leader_latch [connect-string]      (default: $ZK_CONNECT or 127.0.0.1:2181)
#include <zkrecipes/zkrecipes.hpp>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace zkr = zkrecipes;
using namespace std::chrono_literals;

static int fail(const char* what, const zkr::error& e) {
  std::fprintf(stderr, "leader_latch: %s: %s\n", what, e.message().c_str());
  return 1;
}

static void print_leader(const zkr::leader_latch& any) {
  auto all = any.participants(); // one listing, then every candidate's data at once
  if (!all) return (void)fail("participants", all.error());
  for (auto& p : all.value())
    std::printf("  %-11s payload %-15s %s%s\n", p.id.c_str(), p.payload.c_str(), p.node.c_str(), p.leader ? "  <- leader" : "");
}

int main(int argc, char** argv) {
  zkr::session_options opts;
  const char* env = std::getenv("ZK_CONNECT");
  opts.connect_string = argc > 1 ? argv[1] : env ? env : "127.0.0.1:2181";
  opts.session_timeout = 5s;
  const std::string path = "/zkrecipes-latch-example";

  std::vector<zkr::session> sessions;
  std::vector<std::unique_ptr<zkr::leader_latch>> latches;
  for (int i = 1; i <= 3; ++i) {
    auto s = zkr::session::connect(opts, 15s);
    if (!s) return fail("connect", s.error());
    sessions.push_back(std::move(s).value());
  }
  for (int i = 1; i <= 3; ++i) {
    zkr::latch_options lo;
    lo.id = "candidate-" + std::to_string(i);
    lo.payload = "10.0.0." + std::to_string(i) + ":8080"; // e.g. where the leader serves
    auto& l = *latches.emplace_back(std::make_unique<zkr::leader_latch>(sessions[i - 1], path, lo));
    l.add_listener([id = lo.id](zkr::hold_event e) { std::printf("  [%s] %s\n", id.c_str(), zkr::to_string(e)); });
    if (auto r = l.start(); !r) return fail("start", r.error());
    // Start them one after another so the queue order is known.
    for (int k = 0; k < 500 && l.node_path().empty(); ++k) std::this_thread::sleep_for(10ms);
  }

  if (auto r = latches[0]->await_leadership(10s); !r) return fail("candidate-1 await_leadership", r.error());
  const auto first_token = *latches[0]->fencing_token();
  std::printf("candidate-1 leads, fencing token %lld; the candidates in queue order:\n", static_cast<long long>(first_token));
  print_leader(*latches[2]);

  std::printf("candidate-1 leaves\n");
  if (auto r = latches[0]->close(); !r) return fail("close", r.error());
  if (auto r = latches[1]->await_leadership(10s); !r) return fail("candidate-2 await_leadership", r.error());
  auto leader = latches[2]->leader();
  if (!leader) return fail("leader", leader.error());
  std::printf("new leader: %s at %s, fencing token %lld\n", leader.value().id.c_str(), leader.value().payload.c_str(),
              static_cast<long long>(*latches[1]->fencing_token()));
  print_leader(*latches[2]);

  const bool ok = leader.value().id == "candidate-2" && !latches[2]->has_leadership() &&
                  *latches[1]->fencing_token() > first_token;
  latches.clear(); // each latch closes (leaves) in its destructor
  if (auto r = sessions[0].remove_recursive(path); !r) return fail("clean up", r.error());
  if (!ok) return std::fprintf(stderr, "leader_latch: unexpected leader\n"), 1;
  std::printf("removed %s\n", path.c_str());
  return 0;
}
