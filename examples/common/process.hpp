// What the example systems' programs share about being a process: the stop
// signals, and connecting to ZooKeeper.
#pragma once

#include <zkrecipes/zkrecipes.hpp>

#include <chrono>
#include <csignal>
#include <string>

#include <pthread.h>

namespace examples {

/// Blocks SIGTERM and SIGINT (to be taken by wait_stop_signal) and ignores
/// SIGPIPE (a peer that went away must not end the process). Call before any
/// thread starts: threads inherit the mask, so none of them is interrupted.
inline sigset_t block_stop_signals() {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGTERM);
  sigaddset(&s, SIGINT);
  pthread_sigmask(SIG_BLOCK, &s, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  return s;
}

/// Waits for SIGTERM or SIGINT; returns which.
inline int wait_stop_signal(const sigset_t& s) {
  int sig = 0;
  sigwait(&s, &sig);
  return sig;
}

/// Opens a session and waits up to `wait` for it to connect.
inline zkrecipes::result<zkrecipes::session> connect_zk(const std::string& connect,
                                                        std::chrono::milliseconds session_timeout,
                                                        std::chrono::milliseconds wait = std::chrono::seconds(15)) {
  zkrecipes::session_options o;
  o.connect_string = connect;
  o.session_timeout = session_timeout;
  o.operation_timeout = std::chrono::seconds(10);
  return zkrecipes::session::connect(o, wait);
}

} // namespace examples
