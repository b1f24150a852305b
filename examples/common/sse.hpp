// Server-Sent Events over cpp-httplib for the example systems' live pages
// (image-api's arrivals, zk-inspector's tree): one stream per browser, each
// holding a server thread while it is open, so their number is capped.
#pragma once

#include "http_guard.hpp" // error_writer

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace examples {

/// The part a live page's event source shares with the others: the lock and
/// condition its streams wait on, and the flag that ends them all.
class sse_source {
public:
  /// Wakes and ends every stream, so the server's stop() can join their threads.
  void close() {
    {
      std::lock_guard lk(m_);
      closing_ = true;
    }
    cv_.notify_all();
  }
  bool closing() {
    std::lock_guard lk(m_);
    return closing_;
  }
  std::atomic<int> clients{0}; ///< open streams (sse_feed::clients)

protected:
  std::mutex m_;
  std::condition_variable cv_;
  bool closing_ = false; ///< under m_
};

/// What a stream sends: events numbered upwards (the SSE id), their data
/// one line of JSON.
struct sse_feed {
  /// The events after `after`, waiting up to `bound` for one; empty if none.
  std::function<std::vector<std::pair<std::uint64_t, std::string>>(std::uint64_t after, std::chrono::milliseconds bound)>
      after;
  /// True once the server is stopping: the streams end, so stop() can join
  /// their threads.
  std::function<bool()> closing;
  std::atomic<int>* clients = nullptr; ///< open streams, counted here
  int max_clients = 32;
  const char* event = "message";       ///< the SSE event name
};

/// Answers with a stream of the feed's events after `from` (a browser that
/// reconnects sends Last-Event-ID: it resumes after that one when it is not
/// newer than `from`); a comment after 2 s of quiet finds peers that went
/// away (a write fails the second time after a peer closed: every open
/// stream holds a thread, so a dead one must go soon) and keeps proxies from
/// closing the stream. 503 "busy" past max_clients.
inline void serve_sse(const sse_feed& feed, std::uint64_t from, const httplib::Request& req, httplib::Response& res,
                      const error_writer& write_error) {
  if (feed.clients->fetch_add(1) >= feed.max_clients) {
    feed.clients->fetch_sub(1);
    return write_error(res, 503, "busy", "too many event streams (" + std::to_string(feed.max_clients) + ")");
  }
  if (const auto last = req.get_header_value("Last-Event-ID"); !last.empty()) {
    char* end = nullptr;
    const auto v = std::strtoull(last.c_str(), &end, 10);
    if (end && *end == '\0' && v <= from) from = v;
  }
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [feed, from, quiet = std::chrono::steady_clock::now()](std::size_t, httplib::DataSink& sink) mutable {
        if (feed.closing()) {
          sink.done();
          return true;
        }
        std::string out;
        for (auto& [id, data] : feed.after(from, std::chrono::seconds(1))) {
          out += "id: " + std::to_string(id) + "\nevent: " + feed.event + "\ndata: " + data + "\n\n";
          from = id;
        }
        if (out.empty() && std::chrono::steady_clock::now() - quiet >= std::chrono::seconds(2)) out = ": ping\n\n";
        if (out.empty()) return true;
        quiet = std::chrono::steady_clock::now();
        return sink.write(out.data(), out.size());
      },
      [clients = feed.clients](bool) { clients->fetch_sub(1); });
}

} // namespace examples
