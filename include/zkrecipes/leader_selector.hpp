// Leader election, callback style: the user's take_leadership runs on a
// thread of its own while this candidate leads and is asked to stop (stop
// token) as soon as leadership is in doubt or lost. See docs/leader_selector.md.
#pragma once

#include "zkrecipes/leader_latch.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <stop_token>
#include <thread>

namespace zkrecipes {

/// What take_leadership is given for one term.
struct leadership {
  std::int64_t fencing_token = 0; ///< czxid of our node: larger for every later term
  std::uint64_t term = 0;         ///< 1 for this selector's first term, then 2...
};

struct selector_options {
  latch_options candidate;
  /// After take_leadership returns, queue again (at the back) for another
  /// term; otherwise the selector leaves the election.
  bool requeue = true;
};

/// Runs `take_leadership(stop, info)` whenever this candidate leads. `stop`
/// is requested when the connection is suspended (leadership in doubt), the
/// session expires, or close() is called; the function should return soon
/// after. Returning gives up leadership.
class leader_selector {
public:
  using task = std::function<void(std::stop_token, const leadership&)>;

  leader_selector(session& s, std::string path, task take_leadership, selector_options opts = {})
      : s_(&s), path_(std::move(path)), task_(std::move(take_leadership)), opts_(std::move(opts)),
        st_(std::make_shared<state>()) {}
  ~leader_selector() { (void)close(); }
  leader_selector(const leader_selector&) = delete;
  leader_selector& operator=(const leader_selector&) = delete;

  /// Joins the election; returns at once. errc::already_started when started.
  result<void> start() {
    if (!task_) return make_error(errc::invalid_argument, "leader_selector.start", path_ + " (no task)");
    std::lock_guard lk(mx_);
    if (thread_.joinable()) return make_error(errc::already_started, "leader_selector.start", path_);
    thread_ = std::jthread([this](std::stop_token stop) { run(stop); });
    return outcome::success();
  }

  /// Stops a running term, leaves the election and waits for the thread.
  /// Not from inside take_leadership (errc::would_deadlock).
  result<void> close() {
    std::lock_guard lk(mx_);
    if (!thread_.joinable()) return make_error(errc::not_started, "leader_selector.close", path_);
    if (std::this_thread::get_id() == thread_.get_id())
      return make_error(errc::would_deadlock, "leader_selector.close", path_);
    thread_.request_stop();
    {
      std::lock_guard slk(st_->mx);
      st_->term_stop.request_stop();
    }
    st_->cv.notify_all();
    thread_.join();
    return outcome::success();
  }

  /// In a term (take_leadership running and not asked to stop).
  bool is_leader() const { return st_->leading.load(); }
  /// Terms taken so far.
  std::uint64_t terms() const { return st_->terms.load(); }
  /// The last error that kept this candidate out of the election, if any.
  std::optional<error> last_error() const {
    std::lock_guard lk(st_->mx);
    return st_->failure;
  }

private:
  struct state {
    mutable std::mutex mx;
    std::condition_variable_any cv;
    std::stop_source term_stop;
    std::atomic<bool> leading{false};
    std::atomic<std::uint64_t> terms{0};
    std::optional<error> failure;
  };

  void run(std::stop_token stop) {
    while (!stop.stop_requested()) {
      leader_latch latch(*s_, path_, opts_.candidate);
      auto st = st_;
      {
        std::lock_guard lk(st->mx);
        st->term_stop = std::stop_source{};
      }
      // Any doubt ends the term: acting on a leadership that may be gone is
      // how two leaders happen (CURATOR-460).
      auto lid = latch.add_listener([st](hold_event e) {
        if (e == hold_event::in_doubt || e == hold_event::lost || e == hold_event::released) {
          st->leading = false; // asked to stop: no longer the leader
          std::lock_guard lk(st->mx);
          st->term_stop.request_stop();
        }
        st->cv.notify_all();
      });
      if (auto r = latch.start(); !r) {
        record(r.error());
        return;
      }
      result<void> won = make_error(errc::timed_out, "leader_selector", path_);
      while (!stop.stop_requested()) {
        won = latch.await_leadership(stop, std::chrono::milliseconds(1000));
        if (won || won.error() != errc::timed_out) break;
      }
      if (!won) {
        latch.remove_listener(lid);
        if (won.error() == errc::cancelled || stop.stop_requested()) return;
        record(won.error());
        // A lasting failure: try again later rather than spin.
        std::unique_lock lk(st->mx);
        st->cv.wait_for(lk, stop, std::chrono::seconds(1), [] { return false; });
        continue;
      }
      std::stop_token term;
      {
        std::lock_guard lk(st->mx);
        term = st->term_stop.get_token();
      }
      leadership info{latch.fencing_token().value_or(0), ++st->terms};
      // The term ends when the candidate stops leading or the selector closes.
      std::stop_callback on_close(stop, [st] {
        st->leading = false;
        std::lock_guard lk(st->mx);
        st->term_stop.request_stop();
      });
      if (!term.stop_requested() && latch.has_leadership()) {
        st->leading = true;
        if (term.stop_requested()) st->leading = false; // a doubt that came in between
        try {
          task_(term, info);
        } catch (...) {
          // A throwing task ends its term like a returning one.
        }
        st->leading = false;
      }
      latch.remove_listener(lid);
      (void)latch.close();
      if (!opts_.requeue) return;
    }
  }

  void record(const error& e) {
    std::lock_guard lk(st_->mx);
    st_->failure = e;
  }

  session* s_;
  std::string path_;
  task task_;
  selector_options opts_;
  std::shared_ptr<state> st_;
  std::mutex mx_;
  std::jthread thread_;
};

} // namespace zkrecipes
