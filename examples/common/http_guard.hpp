// The example systems' HTTP servers (cpp-httplib 0.11) refuse what they must
// not read: a body over the limit, a chunked or compressed body, a body
// without a length.
// Errors reach the caller through one function so each system keeps its own
// error body.
#pragma once

#include <httplib.h>

#include <chrono>
#include <exception>
#include <functional>
#include <string>
#include <thread>

namespace examples {

/// Writes an error reply: status, a short code ("too_large", "not_found"...)
/// and a message naming what was wrong.
using error_writer = std::function<void(httplib::Response&, int status, const std::string& code, const std::string& message)>;

inline void guard_http(httplib::Server& http, std::size_t max_body_bytes, error_writer write_error) {
  http.set_payload_max_length(max_body_bytes);
  http.set_read_timeout(std::chrono::seconds(5));
  // One request per connection: after a refusal the unread body must not be
  // parsed as the next request, and cpp-httplib 0.11 keeps a connection open
  // whatever the handler says.
  http.set_keep_alive_max_count(1);
  // cpp-httplib 0.11 checks the payload limit only against a Content-Length:
  // a chunked body, or one sent without a length and ended by closing, is
  // read into memory whole. So a request must say its length; this runs
  // before any of the body is read.
  http.set_pre_routing_handler([max_body_bytes, write_error](const httplib::Request& req, httplib::Response& res) {
    const bool has_body_method = req.method == "POST" || req.method == "PUT" || req.method == "PATCH" ||
                                 req.method == "DELETE" || req.method == "PRI";
    std::string why;
    // cpp-httplib (built with zlib and brotli) inflates a compressed body with
    // no limit: the length limit would bound only the compressed bytes.
    if (const auto enc = req.get_header_value("Content-Encoding"); !enc.empty() && enc != "identity") {
      write_error(res, 415, "unsupported_encoding",
                  "Content-Encoding " + enc.substr(0, 40) + " is not accepted: send the body uncompressed");
      return httplib::Server::HandlerResponse::Handled;
    }
    if (req.has_header("Transfer-Encoding"))
      why = "Transfer-Encoding is not accepted: send the body with a Content-Length (at most " +
            std::to_string(max_body_bytes) + " bytes)";
    else if (has_body_method && !req.has_header("Content-Length"))
      why = "Content-Length required (a body of at most " + std::to_string(max_body_bytes) + " bytes)";
    if (why.empty()) return httplib::Server::HandlerResponse::Unhandled;
    write_error(res, 411, "length_required", why);
    return httplib::Server::HandlerResponse::Handled;
  });
  http.set_error_handler([max_body_bytes, write_error](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 413)
      write_error(res, 413, "too_large", "request body over " + std::to_string(max_body_bytes) + " bytes");
    else if (res.status == 404)
      write_error(res, 404, "not_found", "no such endpoint: " + req.method + " " + req.path);
    else
      write_error(res, res.status, "http_error", "HTTP " + std::to_string(res.status));
  });
  http.set_exception_handler([write_error](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    write_error(res, 500, "internal", "internal error: " + what);
  });
}

/// Binds `http` to 127.0.0.1:port (0: any free port). Returns the port, or
/// -1 when it cannot bind.
inline int bind_http(httplib::Server& http, int port) {
  return port == 0 ? http.bind_to_any_port("127.0.0.1") : (http.bind_to_port("127.0.0.1", port) ? port : -1);
}

/// Serves a bound `http` on `serving` and waits (bounded) until it listens:
/// stop() does nothing before that.
inline void serve_http(httplib::Server& http, std::thread& serving) {
  serving = std::thread([&http] { http.listen_after_bind(); });
  for (int i = 0; i < 500 && !http.is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
}

/// Both: returns the port, or -1 (and serves nothing) when it cannot bind.
inline int start_http(httplib::Server& http, int port, std::thread& serving) {
  const int bound = bind_http(http, port);
  if (bound > 0) serve_http(http, serving);
  return bound;
}

} // namespace examples
