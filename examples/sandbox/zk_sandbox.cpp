// zk-sandbox: run a command against a throwaway local ZooKeeper.
//
//   zk-sandbox [--ensemble] -- command [args...]
//
// Starts a standalone server (or a 3-node ensemble) from Debian's package on
// free loopback ports, runs the command with ZK_CONNECT set to its connect
// string, then stops the servers and removes their files. Exits with the
// command's status.
#include <zkrecipes/testing/ensemble.hpp>
#include <zkrecipes/testing/server.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace zkt = zkrecipes::testing;

static int run(char** argv, const std::string& connect) {
  setenv("ZK_CONNECT", connect.c_str(), 1);
  pid_t pid = fork();
  if (pid < 0) return 127;
  if (pid == 0) {
    execvp(argv[0], argv);
    std::fprintf(stderr, "zk-sandbox: cannot run %s: %s\n", argv[0], std::strerror(errno));
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int main(int argc, char** argv) {
  bool ensemble = false;
  int i = 1;
  for (; i < argc && std::strcmp(argv[i], "--") != 0; ++i)
    if (std::strcmp(argv[i], "--ensemble") == 0) ensemble = true;
  if (i + 1 >= argc) {
    std::fprintf(stderr, "usage: zk-sandbox [--ensemble] -- command [args...]\n");
    return 2;
  }
  char** cmd = argv + i + 1;
  if (ensemble) {
    auto e = zkt::ensemble::start();
    if (!e) {
      std::fprintf(stderr, "zk-sandbox: %s\n", e.error().message().c_str());
      return 1;
    }
    std::fprintf(stderr, "zk-sandbox: 3-node ensemble at %s\n", e.value().connect_string().c_str());
    return run(cmd, e.value().connect_string());
  }
  auto s = zkt::server::start();
  if (!s) {
    std::fprintf(stderr, "zk-sandbox: %s\n", s.error().message().c_str());
    return 1;
  }
  std::fprintf(stderr, "zk-sandbox: ZooKeeper at %s\n", s.value().connect_string().c_str());
  return run(cmd, s.value().connect_string());
}
