// The session's own thread: runs completions, watch events, timers and user
// callbacks in order, so nothing of ours runs on the C client's threads.
#pragma once

#include "zkrecipes/detail/unique_function.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>

namespace zkrecipes::detail {

class dispatcher {
public:
  using clock = std::chrono::steady_clock;
  using task = unique_function<void()>;
  using timer_id = std::uint64_t;
  /// Called with the text of an exception that escaped a task.
  using error_sink = std::function<void(const char*)>;

  explicit dispatcher(error_sink sink = {}) : s_(std::make_shared<state>()) {
    s_->sink = std::move(sink);
    thread_ = std::thread([s = s_] { run(*s); });
    s_->id = thread_.get_id();
  }

  dispatcher(const dispatcher&) = delete;
  dispatcher& operator=(const dispatcher&) = delete;

  ~dispatcher() { stop(); }

  /// Queue a task; it runs after every task queued before it.
  void post(task t) {
    {
      std::lock_guard lk(s_->m);
      s_->queue.push_back(std::move(t));
    }
    s_->cv.notify_one();
  }

  /// Run a task once the delay has passed, unless cancelled first.
  timer_id post_after(clock::duration delay, task t) {
    timer_id id;
    {
      std::lock_guard lk(s_->m);
      id = ++s_->next_timer;
      auto key = std::make_pair(clock::now() + delay, id);
      s_->timers.emplace(key, std::move(t));
      s_->timer_keys.emplace(id, key.first);
    }
    s_->cv.notify_one();
    return id;
  }

  /// Cancel a timer; false if it already ran or was cancelled.
  bool cancel(timer_id id) {
    std::lock_guard lk(s_->m);
    auto it = s_->timer_keys.find(id);
    if (it == s_->timer_keys.end()) return false;
    s_->timers.erase(std::make_pair(it->second, id));
    s_->timer_keys.erase(it);
    return true;
  }

  bool running_in_this_thread() const noexcept { return std::this_thread::get_id() == s_->id; }

  /// Run what is queued, then pending timers at once, then end the thread. Safe to
  /// call from the dispatcher thread itself: the thread is then detached and
  /// ends after the current task.
  void stop() {
    if (!thread_.joinable()) return;
    {
      std::lock_guard lk(s_->m);
      s_->stopping = true;
    }
    s_->cv.notify_one();
    if (running_in_this_thread())
      thread_.detach();
    else
      thread_.join();
  }

private:
  struct state {
    std::mutex m;
    std::condition_variable cv;
    std::deque<task> queue;
    std::map<std::pair<clock::time_point, timer_id>, task> timers;
    std::unordered_map<timer_id, clock::time_point> timer_keys;
    timer_id next_timer = 0;
    bool stopping = false;
    std::thread::id id;
    error_sink sink;
  };

  static void run(state& s) {
    std::unique_lock lk(s.m);
    for (;;) {
      if (!s.queue.empty()) {
        task t = std::move(s.queue.front());
        s.queue.pop_front();
        lk.unlock();
        invoke(s, t);
        lk.lock();
        continue;
      }
      // Once stopping, pending timers run at once so that whatever waits on
      // them (a retry, a timeout) completes instead of being dropped.
      if (s.stopping && s.timers.empty()) return;
      if (!s.timers.empty()) {
        auto first = s.timers.begin();
        if (s.stopping || first->first.first <= clock::now()) {
          task t = std::move(first->second);
          s.timer_keys.erase(first->first.second);
          s.timers.erase(first);
          lk.unlock();
          invoke(s, t);
          lk.lock();
          continue;
        }
        s.cv.wait_until(lk, first->first.first);
      } else {
        s.cv.wait(lk);
      }
    }
  }

  static void invoke(state& s, task& t) noexcept {
    try {
      t();
    } catch (const std::exception& e) {
      report(s, e.what());
    } catch (...) {
      report(s, "unknown exception");
    }
  }

  static void report(state& s, const char* what) noexcept {
    try {
      if (s.sink)
        s.sink(what);
      else
        std::fprintf(stderr, "zkrecipes: exception escaped a callback: %s\n", what);
    } catch (...) {
    }
  }

  std::shared_ptr<state> s_;
  std::thread thread_;
};

} // namespace zkrecipes::detail
