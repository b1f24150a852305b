// zkrecipes::testing::tcp_proxy: a loopback TCP proxy that a test puts
// between a ZooKeeper client and a server to make the network misbehave.
//
// Point the client at proxy.connect_string() instead of the server's. Then:
//   pass()           forward both directions (the default);
//   stall()          hold every byte in both directions, sockets stay open: the
//                    client sees silence, as behind a dead router, and its own
//                    timeouts (2/3 of the session timeout for the C client)
//                    decide when it gives up;
//   stall_replies()  forward requests, hold replies: the server applies a write
//                    whose reply the client never sees (until pass());
//   cut()            close every open connection now, as a server crash or a
//                    reset would: the client reconnects at once;
//   refuse(true)     accept new connections and close them at once.
// Mode calls are synchronous: when one returns, the proxy thread applies it
// to every later byte (and cut() has closed every connection).
//
// The proxy also reads the ZooKeeper framing of what it delivers: requests()
// lists the (xid, type) of every request written to the server, and
// replies_delivered() counts the reply frames written to clients. A test can
// so prove that a client pipelines: stall_replies(), start two calls, and
// see both requests recorded while no reply has been delivered.
//
// One background thread multiplexes all connections with poll(); a wake-up
// eventfd carries mode changes, so it never spins. Held bytes are buffered
// (up to 1 MiB per direction and connection, then the proxy stops reading
// and TCP flow control holds the rest). The proxy only connects to loopback
// targets (127.0.0.0/8 or "localhost").
#pragma once

#include <zkrecipes/detail/socket.hpp>
#include <zkrecipes/error.hpp>

#include <atomic>
#include <cerrno>
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

namespace zkrecipes::detail {

/// One request header seen on its way to the server.
struct proxy_request_record {
  std::int32_t xid;
  std::int32_t type;
  friend bool operator==(const proxy_request_record&, const proxy_request_record&) = default;
};

/// Follows the ZooKeeper framing (a 4-byte big-endian length, then the body)
/// of one direction of one connection, fed the bytes in whatever chunks they
/// are delivered. Only the first `head_size` bytes of each body are kept
/// (the request or reply header); the rest is counted off, not buffered.
/// The first frame of a connection (connect request or response) has no
/// such header and is skipped.
class zk_frame_reader {
public:
  /// \param head_size 8 for requests (xid, type), 16 for replies (xid, zxid, err)
  explicit zk_frame_reader(std::size_t head_size) noexcept : head_size_(head_size) {}

  /// Reads `n` delivered bytes; calls `on_frame(head)` (head_size bytes) when
  /// a frame after the first ends. A frame shorter than a header is skipped.
  template <class F> void feed(const char* p, std::size_t n, F&& on_frame) {
    while (n > 0) {
      if (len_have_ < 4) {
        const std::size_t take = std::min<std::size_t>(n, 4 - len_have_);
        std::copy_n(p, take, len_ + len_have_);
        len_have_ += take;
        p += take;
        n -= take;
        if (len_have_ < 4) return;
        body_left_ = be32(len_);
        frame_size_ = body_left_;
        head_have_ = 0;
        if (body_left_ == 0) end_frame(on_frame);
        continue;
      }
      const std::size_t take = std::min<std::size_t>(n, body_left_);
      if (head_have_ < head_size_) {
        const std::size_t keep = std::min(take, head_size_ - head_have_);
        std::copy_n(p, keep, head_ + head_have_);
        head_have_ += keep;
      }
      body_left_ -= static_cast<std::uint32_t>(take);
      p += take;
      n -= take;
      if (body_left_ == 0) end_frame(on_frame);
    }
  }

  static std::uint32_t be32(const unsigned char* b) noexcept {
    return std::uint32_t(b[0]) << 24 | std::uint32_t(b[1]) << 16 | std::uint32_t(b[2]) << 8 |
           std::uint32_t(b[3]);
  }

  /// Body size of the frame being read (during on_frame: the frame just ended).
  std::uint32_t frame_size() const noexcept { return frame_size_; }

private:
  template <class F> void end_frame(F& on_frame) {
    len_have_ = 0;
    if (first_) {
      first_ = false;
      return;
    }
    if (head_have_ == head_size_) on_frame(static_cast<const unsigned char*>(head_));
  }

  std::size_t head_size_;
  bool first_ = true;
  unsigned char len_[4]{};
  std::size_t len_have_ = 0;
  std::uint32_t body_left_ = 0;
  std::uint32_t frame_size_ = 0;
  unsigned char head_[16]{};
  std::size_t head_have_ = 0;
};

/// What a tcp_proxy's thread shares with its control calls.
struct proxy_state {
  enum class mode : int { pass, stall, stall_replies };

  unique_fd listen_fd;
  unique_fd wake_fd; // eventfd
  in_addr target{};
  std::uint16_t target_port = 0;
  std::uint16_t port = 0;

  // Requested settings, guarded by mu; the thread copies them at the top of
  // each loop turn and acknowledges by raising `applied` to `requested`.
  std::mutex mu;
  std::condition_variable cv;
  mode requested_mode = mode::pass;
  bool refuse = false;
  bool stop = false;
  std::uint64_t cuts = 0;
  std::uint64_t requested = 0;
  std::uint64_t applied = 0;
  bool done = false;

  std::atomic<std::size_t> connections{0};
  std::atomic<std::uint64_t> to_server{0};
  std::atomic<std::uint64_t> to_client{0};

  // Frames delivered, guarded by records_mu (not mu: recording must not wait
  // for a control call that is itself waiting for the thread).
  mutable std::mutex records_mu;
  std::vector<proxy_request_record> requests;
  std::size_t replies = 0;
  std::size_t largest_reply = 0;

  void wake() noexcept {
    const std::uint64_t one = 1;
    [[maybe_unused]] auto r = ::write(wake_fd.get(), &one, sizeof one);
  }

  /// Applies `change` under the lock, wakes the thread and waits (up to 5 s)
  /// until it has taken the change into account.
  template <class F> void request(F&& change) {
    std::unique_lock<std::mutex> lk(mu);
    change();
    const std::uint64_t mine = ++requested;
    wake();
    cv.wait_for(lk, std::chrono::seconds(5), [&] { return applied >= mine || done; });
  }
};

/// One proxied connection: the client's socket, the target's, and the bytes
/// read from one side and not yet written to the other.
struct proxy_pair {
  unique_fd client;
  unique_fd server;
  bool connecting = true;
  bool client_eof = false;
  bool server_eof = false;
  std::string to_server; // read from the client
  std::string to_client; // read from the server
  zk_frame_reader requests{8};
  zk_frame_reader replies{16};
};

inline constexpr std::size_t proxy_buffer_cap = 1 << 20;

/// Reads what `fd` has into `buf` (up to the cap). False on a socket error.
inline bool proxy_read(int fd, std::string& buf, bool& eof) {
  char chunk[16384];
  while (buf.size() < proxy_buffer_cap) {
    const std::size_t want = std::min(sizeof chunk, proxy_buffer_cap - buf.size());
    const ssize_t n = ::recv(fd, chunk, want, 0);
    if (n > 0) {
      buf.append(chunk, static_cast<std::size_t>(n));
      continue;
    }
    if (n == 0) {
      eof = true;
      return true;
    }
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK;
  }
  return true;
}

/// Writes as much of `buf` as `fd` takes, counting it and passing what went
/// out to `sent(data, size)`. False on a socket error.
template <class Sent>
bool proxy_write(int fd, std::string& buf, std::atomic<std::uint64_t>& counter, Sent&& sent) {
  std::size_t done = 0;
  bool ok = true;
  while (done < buf.size()) {
    const ssize_t n = ::send(fd, buf.data() + done, buf.size() - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    ok = n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    break;
  }
  if (done > 0) sent(buf.data(), done);
  buf.erase(0, done);
  counter += done;
  return ok;
}

/// The proxy thread's body.
inline void proxy_run(proxy_state& st) {
  using mode = proxy_state::mode;
  std::vector<proxy_pair> pairs;
  std::uint64_t cuts_seen = 0;
  std::vector<pollfd> fds;
  for (;;) {
    mode m;
    bool refuse;
    {
      std::lock_guard<std::mutex> lk(st.mu);
      if (st.cuts != cuts_seen) {
        pairs.clear(); // closes both sockets of every pair; held bytes dropped
        cuts_seen = st.cuts;
      }
      st.connections = pairs.size();
      m = st.requested_mode;
      refuse = st.refuse;
      st.applied = st.requested;
      if (st.stop) {
        pairs.clear();
        st.connections = 0;
        st.done = true;
        st.cv.notify_all();
        return;
      }
    }
    st.cv.notify_all();
    const bool forward_up = m == mode::pass || m == mode::stall_replies;
    const bool forward_down = m == mode::pass;

    fds.clear();
    fds.push_back({st.wake_fd.get(), POLLIN, 0});
    fds.push_back({st.listen_fd.get(), POLLIN, 0});
    for (const auto& p : pairs) {
      short ce = 0, se = 0;
      if (p.connecting) {
        se = POLLOUT;
      } else {
        if (!p.client_eof && p.to_server.size() < proxy_buffer_cap) ce |= POLLIN;
        if (!p.server_eof && p.to_client.size() < proxy_buffer_cap) se |= POLLIN;
        if (forward_up && !p.to_server.empty()) se |= POLLOUT;
        if (forward_down && !p.to_client.empty()) ce |= POLLOUT;
      }
      fds.push_back({p.client.get(), ce, 0});
      fds.push_back({p.server.get(), se, 0});
    }
    // The timeout only bounds the wait; every change arrives through wake_fd.
    const int r = ::poll(fds.data(), fds.size(), 1000);
    if (r < 0 && errno != EINTR) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (r <= 0) continue;

    if (fds[0].revents != 0) {
      std::uint64_t v = 0;
      [[maybe_unused]] auto n = ::read(st.wake_fd.get(), &v, sizeof v);
    }

    std::vector<bool> drop(pairs.size(), false);
    for (std::size_t i = 0; i < pairs.size(); ++i) {
      auto& p = pairs[i];
      const pollfd& cf = fds[2 + 2 * i];
      const pollfd& sf = fds[3 + 2 * i];
      if (p.connecting) {
        if (sf.revents == 0 && cf.revents == 0) continue;
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(p.server.get(), SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0 || (sf.revents & (POLLERR | POLLHUP)) != 0 ||
            (cf.revents & (POLLERR | POLLHUP)) != 0) {
          drop[i] = true;
          continue;
        }
        if ((sf.revents & POLLOUT) != 0) {
          p.connecting = false;
          set_nodelay(p.server.get());
        }
        continue;
      }
      bool ok = true;
      // Read before write, so bytes arriving now can be forwarded next turn.
      if ((cf.revents & (POLLIN | POLLHUP | POLLERR)) != 0 && (cf.events & POLLIN) != 0)
        ok = ok && proxy_read(p.client.get(), p.to_server, p.client_eof);
      if ((sf.revents & (POLLIN | POLLHUP | POLLERR)) != 0 && (sf.events & POLLIN) != 0)
        ok = ok && proxy_read(p.server.get(), p.to_client, p.server_eof);
      // Frames are recorded as written, so held bytes are not counted yet.
      if (ok && (sf.revents & POLLOUT) != 0)
        ok = proxy_write(p.server.get(), p.to_server, st.to_server,
                         [&](const char* d, std::size_t n) {
                           p.requests.feed(d, n, [&](const unsigned char* h) {
                             const auto xid = static_cast<std::int32_t>(zk_frame_reader::be32(h));
                             const auto type = static_cast<std::int32_t>(zk_frame_reader::be32(h + 4));
                             std::lock_guard<std::mutex> lk(st.records_mu);
                             st.requests.push_back({xid, type});
                           });
                         });
      if (ok && (cf.revents & POLLOUT) != 0)
        ok = proxy_write(p.client.get(), p.to_client, st.to_client,
                         [&](const char* d, std::size_t n) {
                           p.replies.feed(d, n, [&](const unsigned char*) {
                             std::lock_guard<std::mutex> lk(st.records_mu);
                             ++st.replies;
                             st.largest_reply = std::max<std::size_t>(st.largest_reply, p.replies.frame_size());
                           });
                         });
      // An error or hang-up on a socket we are not reading would repeat forever.
      if (((cf.revents & (POLLERR | POLLHUP)) != 0 && (cf.events & POLLIN) == 0) ||
          ((sf.revents & (POLLERR | POLLHUP)) != 0 && (sf.events & POLLIN) == 0))
        ok = false;
      // EOF from either side closes the pair, once bytes already on their
      // way to the other side are delivered (unless that direction is held).
      if (p.client_eof && (p.to_server.empty() || !forward_up)) ok = false;
      if (p.server_eof && (p.to_client.empty() || !forward_down)) ok = false;
      if (!ok) drop[i] = true;
    }
    for (std::size_t i = pairs.size(); i-- > 0;)
      if (drop[i]) pairs.erase(pairs.begin() + static_cast<std::ptrdiff_t>(i));

    if ((fds[1].revents & POLLIN) != 0) {
      for (;;) {
        unique_fd c(::accept4(st.listen_fd.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (!c) {
          // Out of descriptors or the like: back off rather than spin on POLLIN.
          if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
          break;
        }
        if (refuse) continue; // closed at once
        set_nodelay(c.get());
        auto s = tcp_socket();
        if (!s) continue;
        unique_fd sfd = std::move(s).value();
        const sockaddr_in sa = make_sockaddr(st.target, st.target_port);
        const int rc = ::connect(sfd.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof sa);
        if (rc != 0 && errno != EINPROGRESS) continue; // target down: close the client
        proxy_pair p;
        p.client = std::move(c);
        p.server = std::move(sfd);
        p.connecting = rc != 0;
        if (!p.connecting) set_nodelay(p.server.get());
        pairs.push_back(std::move(p));
      }
    }
    st.connections = pairs.size();
  }
}

} // namespace zkrecipes::detail

namespace zkrecipes::testing {

/// ZooKeeper request types (ZooDefs.OpCode), as tcp_proxy::requests() reports them.
namespace zk_op {
inline constexpr std::int32_t create = 1;
inline constexpr std::int32_t remove = 2; // "delete"
inline constexpr std::int32_t exists = 3;
inline constexpr std::int32_t get_data = 4;
inline constexpr std::int32_t set_data = 5;
inline constexpr std::int32_t get_acl = 6;
inline constexpr std::int32_t set_acl = 7;
inline constexpr std::int32_t get_children = 8;
inline constexpr std::int32_t sync = 9;
inline constexpr std::int32_t ping = 11;
inline constexpr std::int32_t get_children2 = 12; // children with the parent's stat
inline constexpr std::int32_t check = 13;
inline constexpr std::int32_t multi = 14;
inline constexpr std::int32_t create2 = 15; // create returning the stat
inline constexpr std::int32_t create_container = 19;
inline constexpr std::int32_t create_ttl = 21;
inline constexpr std::int32_t auth = 100;
inline constexpr std::int32_t set_watches = 101;
inline constexpr std::int32_t close = -11;
} // namespace zk_op

/// Fixed xids of frames that answer no numbered request.
namespace zk_xid {
inline constexpr std::int32_t notification = -1; // a watch event, server to client
inline constexpr std::int32_t ping = -2;
} // namespace zk_xid

/// A TCP proxy on 127.0.0.1 in front of a loopback target, whose traffic a
/// test can pass, stall, cut or refuse.
///
/// Move-only. The destructor stops the thread and closes every socket. Mode
/// calls and counters are thread-safe; start, move and destruction are not.
class tcp_proxy {
public:
  /// Listens on a free loopback port and starts the proxy thread, in pass mode.
  /// Each accepted connection gets its own connection to the target.
  /// \param target_port the port to forward to (a server's port())
  /// \param target_host "localhost" or an IPv4 address in 127.0.0.0/8
  /// \returns errc::harness_failed when the host is not loopback, or the
  /// socket or thread cannot be created.
  static result<tcp_proxy> start(std::uint16_t target_port,
                                 std::string target_host = "127.0.0.1") {
    auto addr = detail::parse_loopback_host(target_host);
    if (!addr) return detail::harness_error("start proxy", addr.error().path());
    auto st = std::make_unique<detail::proxy_state>();
    st->target = addr.value();
    st->target_port = target_port;
    auto lfd = detail::listen_loopback();
    if (!lfd)
      return detail::harness_error("start proxy", "listen on 127.0.0.1", lfd.error().code());
    st->listen_fd = std::move(lfd).value();
    auto port = detail::local_port(st->listen_fd.get());
    if (!port)
      return detail::harness_error("start proxy", "read listening port", port.error().code());
    st->port = port.value();
    st->wake_fd.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!st->wake_fd)
      return detail::harness_error("start proxy", "eventfd",
                                   std::error_code(errno, std::generic_category()));
    tcp_proxy p;
    try {
      detail::proxy_state* raw = st.get();
      p.thread_ = std::thread([raw] { detail::proxy_run(*raw); });
    } catch (const std::system_error& e) {
      return detail::harness_error("start proxy", "start thread", e.code());
    }
    p.state_ = std::move(st);
    return p;
  }

  tcp_proxy(tcp_proxy&&) noexcept = default;
  tcp_proxy& operator=(tcp_proxy&& o) noexcept {
    if (this != &o) {
      shutdown();
      state_ = std::move(o.state_);
      thread_ = std::move(o.thread_);
    }
    return *this;
  }
  tcp_proxy(const tcp_proxy&) = delete;
  tcp_proxy& operator=(const tcp_proxy&) = delete;
  /// Stops the thread and closes the listening socket and every connection.
  ~tcp_proxy() { shutdown(); }

  /// The proxy's own port on 127.0.0.1.
  std::uint16_t port() const { return state_ ? state_->port : 0; }

  /// "127.0.0.1:PORT": give this to the client instead of the server's.
  std::string connect_string() const { return detail::loopback_endpoint(port()); }

  /// Forwards both directions (the default). Bytes held by a stall are
  /// released, in order.
  void pass() { set_mode(detail::proxy_state::mode::pass); }

  /// Holds bytes in both directions; connections stay open, so the client
  /// sees silence until its own timeout, or until pass().
  void stall() { set_mode(detail::proxy_state::mode::stall); }

  /// Forwards client to server but holds server to client: requests reach
  /// the server and are applied; their replies wait for pass().
  void stall_replies() { set_mode(detail::proxy_state::mode::stall_replies); }

  /// Closes every open connection now (held bytes are dropped). Later
  /// connections are accepted in the current mode. When this returns, the
  /// connections are closed.
  void cut() {
    if (state_) state_->request([&] { ++state_->cuts; });
  }

  /// While on, accepts new connections and closes them at once; open
  /// connections are left alone (cut() them too to force a reconnect).
  void refuse(bool on) {
    if (state_) state_->request([&] { state_->refuse = on; });
  }

  /// Client connections open now (including ones still connecting to the
  /// target).
  std::size_t connections() const { return state_ ? state_->connections.load() : 0; }

  /// Bytes forwarded client to server so far (held bytes not counted).
  std::uint64_t bytes_to_server() const { return state_ ? state_->to_server.load() : 0; }

  /// Bytes forwarded server to client so far (held bytes not counted).
  std::uint64_t bytes_to_client() const { return state_ ? state_->to_client.load() : 0; }

  /// A request header: its xid and type (a zk_op value).
  using request_record = detail::proxy_request_record;

  /// Every request written to the server since start or clear_records(), on
  /// all connections, in order: pings, set_watches and close included; the
  /// connect request of each connection excluded. A request is recorded once
  /// its last byte is written, so requests held by stall() are not.
  std::vector<request_record> requests() const {
    if (!state_) return {};
    std::lock_guard<std::mutex> lk(state_->records_mu);
    return state_->requests;
  }

  /// Reply frames written to clients since start or clear_records(): pings'
  /// replies (xid -2) and watch notifications (xid -1) included, connect
  /// responses excluded. Replies held by stall() or stall_replies() are not
  /// counted until pass() delivers them.
  std::size_t replies_delivered() const {
    if (!state_) return 0;
    std::lock_guard<std::mutex> lk(state_->records_mu);
    return state_->replies;
  }

  /// The largest reply frame (body bytes) written to clients since start or
  /// clear_records(): shows how near a recipe's replies come to the packet limit.
  std::size_t largest_reply() const {
    if (!state_) return 0;
    std::lock_guard<std::mutex> lk(state_->records_mu);
    return state_->largest_reply;
  }

  /// Forgets the recorded requests and replies. Frames already partly
  /// written are still recorded when they end.
  void clear_records() {
    if (!state_) return;
    std::lock_guard<std::mutex> lk(state_->records_mu);
    state_->requests.clear();
    state_->replies = 0;
    state_->largest_reply = 0;
  }

private:
  tcp_proxy() = default;

  void set_mode(detail::proxy_state::mode m) {
    if (state_) state_->request([&] { state_->requested_mode = m; });
  }

  void shutdown() noexcept {
    if (!state_) return;
    {
      std::lock_guard<std::mutex> lk(state_->mu);
      state_->stop = true;
      state_->wake();
    }
    if (thread_.joinable()) thread_.join();
    state_.reset();
  }

  std::unique_ptr<detail::proxy_state> state_;
  std::thread thread_;
};

} // namespace zkrecipes::testing
