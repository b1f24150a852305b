// hello: connect, create, watch, change, list, clean up.
//
//   hello [connect-string]      (default: $ZK_CONNECT or 127.0.0.1:2181)
#include <zkrecipes/zkrecipes.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <string>
#include <vector>

namespace zkr = zkrecipes;
using namespace std::chrono_literals;

int main(int argc, char** argv) {
  zkr::session_options opts;
  const char* env = std::getenv("ZK_CONNECT");
  opts.connect_string = argc > 1 ? argv[1] : env ? env : "127.0.0.1:2181";
  opts.session_timeout = 5s;

  auto s = zkr::session::connect(opts, 15s);
  if (!s) {
    std::fprintf(stderr, "hello: %s\n", s.error().message().c_str());
    return 1;
  }
  auto& zk = s.value();
  std::printf("connected to %s, session 0x%llx (timeout %lld ms)\n", opts.connect_string.c_str(),
              static_cast<unsigned long long>(zk.session_id()),
              static_cast<long long>(zk.negotiated_timeout().count()));
  zk.add_listener([](const zkr::session_event& e) {
    std::printf("  [state] %s\n", zkr::to_string(e.state));
  });

  // Everything lives under one root, made with its parents in one round trip.
  const std::string root = "/zkrecipes-hello";
  if (auto r = zk.ensure_path(root + "/members"); !r) {
    std::fprintf(stderr, "hello: %s\n", r.error().message().c_str());
    return 1;
  }

  auto created = zk.create(root + "/greeting", "hello, world", {zkr::create_mode::ephemeral});
  if (!created) {
    std::fprintf(stderr, "hello: %s\n", created.error().message().c_str());
    return 1;
  }
  std::printf("created %s (czxid %lld, ephemeral owner 0x%llx)\n", created.value().path.c_str(),
              static_cast<long long>(created.value().stat.czxid),
              static_cast<unsigned long long>(created.value().stat.ephemeral_owner));

  // A one-shot watch: it says only that something changed; we read again.
  std::promise<zkr::result<zkr::watch_event>> fired;
  auto got = zk.get(root + "/greeting", [&](zkr::result<zkr::watch_event> e) {
    fired.set_value(std::move(e));
  });
  std::printf("read \"%s\" at version %d, watching it\n", got.value().data.c_str(),
              got.value().stat.version);

  auto st = zk.set(root + "/greeting", "hello again", got.value().stat.version);
  std::printf("set it (compare-and-set on version %d) -> version %d\n", got.value().stat.version,
              st ? st.value().version : -1);

  auto ev = fired.get_future();
  if (ev.wait_for(10s) != std::future_status::ready) {
    std::fprintf(stderr, "hello: the watch did not fire\n");
    return 1;
  }
  auto e = ev.get();
  if (!e) {
    std::fprintf(stderr, "hello: watch: %s\n", e.error().message().c_str());
    return 1;
  }
  std::printf("watch fired: %s %s\n", zkr::to_string(e.value().type), e.value().path.c_str());
  std::printf("read again: \"%s\"\n", zk.get(root + "/greeting").value().data.c_str());

  // A stale version is refused, with an error naming the call and the path.
  if (auto stale = zk.set(root + "/greeting", "lost update", 0); !stale)
    std::printf("stale write refused: %s\n", stale.error().message().c_str());

  // Sequential members, read back and put in sequence order (ZooKeeper
  // lists children in no particular order).
  for (int i = 0; i < 3; ++i) {
    auto m = zk.create(root + "/members/m-", "member " + std::to_string(i),
                       {zkr::create_mode::ephemeral_sequential});
    if (!m) std::fprintf(stderr, "hello: %s\n", m.error().message().c_str());
  }
  auto kids = zk.children(root + "/members");
  if (!kids) std::fprintf(stderr, "hello: %s\n", kids.error().message().c_str()); // still cleans up below
  auto names = kids ? kids.value().names : std::vector<std::string>{};
  std::sort(names.begin(), names.end(), [](const std::string& a, const std::string& b) {
    return zkr::sequence_of(a).value_or(-1) < zkr::sequence_of(b).value_or(-1);
  });
  std::printf("members:");
  for (auto& n : names) std::printf(" %s(seq %lld)", n.c_str(), static_cast<long long>(zkr::sequence_of(n).value_or(-1)));
  std::printf("\n");

  if (auto r = zk.remove_recursive(root); !r) {
    std::fprintf(stderr, "hello: %s\n", r.error().message().c_str());
    return 1;
  }
  std::printf("removed %s; closing\n", root.c_str());
  return zk.close() ? 0 : 1;
}
