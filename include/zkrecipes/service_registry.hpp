// Service registry: an instance of a service registers itself as a protected
// ephemeral sequential node; it goes away with the process (its session),
// and comes back by itself after a session expiry, with its latest payload.
//
// Layout (docs/service_discovery.md):
//   <base>/<service>/_c_<guid>-<instance id>-NNNNNNNNNN   ephemeral, data = the instance record
#pragma once

#include "zkrecipes/detail/coro.hpp"
#include "zkrecipes/error.hpp"
#include "zkrecipes/path.hpp"
#include "zkrecipes/protected_create.hpp"
#include "zkrecipes/session.hpp"

#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace zkrecipes {

/// One instance of a service, as registered and as discovered.
struct service_instance {
  std::string service;  ///< e.g. "push-server"
  std::string id;       ///< unique within the service, e.g. "host-a-8080"
  std::string address;  ///< host or IP the instance listens on
  std::map<std::string, std::uint16_t> ports; ///< named ports, e.g. {"http", 8080}
  std::string payload;  ///< anything else (bytes)
  // Filled in by discovery:
  std::string node;            ///< the znode's name
  std::int64_t czxid = 0;      ///< tells a re-registered instance from the one before
  std::int64_t session_id = 0; ///< the owning session
  /// A named port, or 0.
  std::uint16_t port(std::string_view name) const {
    auto it = ports.find(std::string(name));
    return it == ports.end() ? 0 : it->second;
  }
};

/// Where a registry lives.
struct registry_options {
  std::string base_path = "/services";
  std::optional<acl_list> acl; ///< of the instance nodes (the session's default if none)
};

namespace detail {

inline bool registry_text_ok(std::string_view v) { return v.find('\n') == std::string_view::npos && v.find('\0') == std::string_view::npos; }

/// The instance record: "key=value" lines, then the payload's length and bytes.
inline result<std::string> encode_instance(const service_instance& in) {
  auto bad = [&](const char* what) {
    return make_error(errc::invalid_argument, "service instance", in.service + "/" + in.id + ": " + what);
  };
  if (auto v = validate_name(in.service, "service name"); !v) return v.error();
  if (auto v = validate_name(in.id, "instance id"); !v) return v.error();
  if (in.address.empty() || !registry_text_ok(in.address)) return bad("address empty or holding a line break");
  std::string out = "zkrecipes-instance 1\nservice=" + in.service + "\nid=" + in.id + "\naddress=" + in.address + "\n";
  for (auto& [name, port] : in.ports) {
    if (name.empty() || !registry_text_ok(name) || name.find('=') != std::string::npos)
      return bad("port name empty or holding '=' or a line break");
    out += "port." + name + "=" + std::to_string(port) + "\n";
  }
  out += "payload=" + std::to_string(in.payload.size()) + "\n";
  out += in.payload;
  return out;
}

inline result<service_instance> decode_instance(std::string_view b) {
  auto fail = [](std::string why) { return make_error(errc::decode_failed, "service instance", std::move(why)); };
  service_instance in;
  auto line = [&](std::string_view& rest) -> std::optional<std::string_view> {
    auto nl = rest.find('\n');
    if (nl == std::string_view::npos) return std::nullopt;
    auto l = rest.substr(0, nl);
    rest.remove_prefix(nl + 1);
    return l;
  };
  std::string_view rest = b;
  auto magic = line(rest);
  if (!magic || *magic != "zkrecipes-instance 1") return fail("not a zkrecipes instance record");
  while (true) {
    auto l = line(rest);
    if (!l) return fail("record ends before its payload line");
    auto eq = l->find('=');
    if (eq == std::string_view::npos) return fail("a line without '=': " + std::string(l->substr(0, 40)));
    auto key = l->substr(0, eq), val = l->substr(eq + 1);
    if (key == "service") in.service = val;
    else if (key == "id") in.id = val;
    else if (key == "address") in.address = val;
    else if (key.starts_with("port.")) {
      unsigned p = 0;
      auto [end, ec] = std::from_chars(val.data(), val.data() + val.size(), p);
      if (ec != std::errc() || end != val.data() + val.size() || p > 65535)
        return fail("bad port " + std::string(key.substr(5)) + "=" + std::string(val));
      in.ports[std::string(key.substr(5))] = std::uint16_t(p);
    } else if (key == "payload") {
      std::size_t n = 0;
      auto [end, ec] = std::from_chars(val.data(), val.data() + val.size(), n);
      if (ec != std::errc() || end != val.data() + val.size() || n != rest.size())
        return fail("payload length " + std::string(val) + " does not match the " + std::to_string(rest.size()) +
                    " bytes that follow");
      in.payload = rest;
      break;
    } // other keys: written by a newer version; ignored
  }
  if (in.service.empty() || in.id.empty() || in.address.empty()) return fail("service, id or address missing");
  // What registration would refuse to write is refused on reading too (a
  // record made by hand or by another program): found by fuzz/fuzz_records.cpp.
  if (auto v = validate_name(in.service, "service name"); !v) return fail("bad service name: " + v.error().message());
  if (auto v = validate_name(in.id, "instance id"); !v) return fail("bad instance id: " + v.error().message());
  if (!registry_text_ok(in.address)) return fail("the address holds a NUL byte");
  for (auto& [name, port] : in.ports)
    if (name.empty() || !registry_text_ok(name)) return fail("a port name empty or holding a NUL byte");
  return in;
}

struct registration_core {
  session* s = nullptr;
  registry_options opts;
  std::string parent;              ///< <base>/<service>
  // Dispatcher thread:
  service_instance instance;               ///< with the latest payload
  bool wanted = false;                     ///< registered (or to be, after an expiry)
  std::uint64_t generation = 0;            ///< moves on every start and stop: a create of an older one is undone
  std::string node;                        ///< full path of our node, when registered
  std::int64_t node_sid = 0;               ///< the session that owns it
  bool registering = false;
  bool closed = false;
};

/// Creates the instance node (protected: a lost reply is settled by finding
/// our node, never by a second one). Ensures the parent on no_node.
inline task register_instance(std::shared_ptr<registration_core> c, unique_function<void(result<std::string>)> done) {
  session& s = *c->s;
  const std::uint64_t gen = c->generation;
  auto current = [&] { return !c->closed && c->wanted && c->generation == gen; };
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (!current()) {
      done(make_error(errc::cancelled, "service register", c->parent + ": unregistered or closed meanwhile"));
      co_return;
    }
    auto bytes = encode_instance(c->instance);
    if (!bytes) {
      done(bytes.error());
      co_return;
    }
    protected_options po;
    po.mode = create_mode::ephemeral_sequential;
    po.acl = c->opts.acl;
    pending<created_node> p;
    async_protected_create(s, c->parent, c->instance.id + "-", bytes.value(), po, p.handler());
    auto r = co_await p;
    if (r) {
      if (!current()) { // stopped (and maybe started again) while the create was on its way
        remove_until_gone(s, r.value().path, r.value().stat.ephemeral_owner);
        done(make_error(errc::cancelled, "service register", r.value().path + ": unregistered meanwhile"));
        co_return;
      }
      c->node = r.value().path;
      c->node_sid = r.value().stat.ephemeral_owner;
      // A payload given while the create was on its way goes in now.
      if (auto now = encode_instance(c->instance); now && now.value() != bytes.value())
        c->s->async_set(c->node, now.value(), any_version, [path = c->node](result<zkrecipes::stat> w) {
          if (!w && !failed_with(w, errc::closed))
            std::fprintf(stderr, "zkrecipes: service %s: payload update failed: %s\n", path.c_str(),
                         w.error().message().c_str());
        });
      done(c->node);
      co_return;
    }
    if (failed_with(r, zk_errc::no_node)) {
      if (auto e = co_await start_ensure_path(s, c->parent, c->opts.acl); !e) {
        done(e.error());
        co_return;
      }
      continue;
    }
    done(r.error());
    co_return;
  }
  done(make_error(errc::timed_out, "service register", c->parent + ": the parent keeps vanishing"));
}

} // namespace detail

/// One registered instance. Registered by start(); unregistered by stop()
/// or the destructor; re-registered by itself after a session expiry.
///
/// \code
/// zkrecipes::service_instance me{.service = "api", .id = "a1", .address = "127.0.0.1",
///                                .ports = {{"http", 8080}}};
/// zkrecipes::service_registration reg(s, me);
/// reg.start();
/// reg.update_payload("load=0.3");
/// \endcode
/// \note After an expiry the old node is gone with the old session, so the
///       new one never meets node_exists; it carries the latest payload given
///       to update_payload(), and is not made at all once stop() was called
///       (apache/curator issues 685, 702). A failed re-registration is retried
///       every second and written to stderr. The session must outlive it.
class service_registration {
public:
  service_registration(session& s, service_instance instance, registry_options opts = {})
      : s_(&s), c_(std::make_shared<detail::registration_core>()) {
    c_->s = &s;
    c_->opts = std::move(opts);
    c_->instance = std::move(instance);
    valid_ = validate_path(c_->opts.base_path, "service registry");
    if (valid_) {
      auto e = detail::encode_instance(c_->instance);
      if (!e) valid_ = e.error();
    }
    c_->parent = valid_ ? join(c_->opts.base_path, c_->instance.service) : std::string();
    lid_ = s.add_listener([c = std::weak_ptr(c_)](const session_event& e) {
      auto core = c.lock();
      if (!core || !core->wanted || e.state != session_state::connected || core->node_sid == e.session_id) return;
      if (core->registering) return;
      reregister(core);
    });
  }
  service_registration(const service_registration&) = delete;
  service_registration& operator=(const service_registration&) = delete;
  ~service_registration() {
    s_->remove_listener(lid_);
    detail::run_on_dispatcher(*s_, [c = c_] {
      c->closed = true;
      c->wanted = false;
      if (!c->node.empty()) detail::remove_until_gone(*c->s, std::exchange(c->node, {}), c->node_sid);
    });
  }

  /// Registers the instance. Handler: `void(result<std::string>)` with the node path.
  template <class H> void async_start(H&& h) {
    if (!valid_) {
      s_->post([h = std::forward<H>(h), e = valid_.error()]() mutable { h(result<std::string>(e)); });
      return;
    }
    s_->post([c = c_, h = std::forward<H>(h)]() mutable {
      if (c->wanted)
        return h(result<std::string>(
            make_error(errc::already_started, "service register", join(c->parent, c->instance.id))));
      c->wanted = true;
      ++c->generation;
      c->registering = true;
      detail::register_instance(c, [c, gen = c->generation, h = std::move(h)](result<std::string> r) mutable {
        if (c->generation == gen) {
          c->registering = false;
          if (!r && r.error() != errc::cancelled) c->wanted = false; // not registered: start() may be tried again
        }
        h(std::move(r));
      });
    });
  }
  /// Blocking form; returns the node path.
  result<std::string> start() {
    return detail::run_blocking<std::string>(*s_, "service register", c_->parent, [&](auto done) {
      async_start(std::move(done));
    });
  }

  /// Replaces the payload: kept for re-registration, and written to the node.
  /// While a registration is on its way the new payload is written as soon as
  /// it lands. Handler: `void(result<void>)`; errc::not_started when not
  /// registered; a write error otherwise (the payload is kept all the same).
  template <class H> void async_update_payload(std::string payload, H&& h) {
    s_->post([c = c_, payload = std::move(payload), h = std::forward<H>(h)]() mutable {
      if (!c->wanted) return h(result<void>(make_error(errc::not_started, "service update", c->parent)));
      auto before = c->instance.payload;
      c->instance.payload = std::move(payload);
      auto bytes = detail::encode_instance(c->instance);
      if (!bytes) {
        c->instance.payload = std::move(before);
        return h(result<void>(bytes.error()));
      }
      if (c->node.empty() || c->registering) return h(result<void>(outcome::success())); // goes with the create
      c->s->async_set(c->node, bytes.value(), any_version, [h = std::move(h)](result<zkrecipes::stat> r) mutable {
        if (r) return h(result<void>(outcome::success()));
        h(result<void>(r.error()));
      });
    });
  }
  result<void> update_payload(std::string payload) {
    return detail::run_blocking<void>(*s_, "service update", c_->parent, [&](auto done) {
      async_update_payload(std::move(payload), std::move(done));
    });
  }

  /// Unregisters: removes the node, retrying through connection losses until
  /// it is gone (or its session is); not registered again after an expiry.
  /// Handler: `void(result<void>)`.
  template <class H> void async_stop(H&& h) {
    s_->post([c = c_, h = std::forward<H>(h)]() mutable {
      c->wanted = false;
      ++c->generation; // a create still on its way is undone when it lands
      c->registering = false;
      if (c->node.empty()) return h(result<void>(outcome::success()));
      detail::remove_until_gone(*c->s, std::exchange(c->node, {}), c->node_sid, std::move(h));
    });
  }
  result<void> stop() {
    return detail::run_blocking<void>(*s_, "service unregister", c_->parent, [&](auto done) {
      async_stop(std::move(done));
    });
  }

  /// The node path of the current registration (empty when not registered).
  std::string node_path() const {
    std::string out;
    detail::run_on_dispatcher(*s_, [&] { out = c_->node; });
    return out;
  }

private:
  static void reregister(std::shared_ptr<detail::registration_core> core) {
    core->registering = true;
    core->node.clear(); // the old session's node is gone with it
    detail::register_instance(core, [core, gen = core->generation](result<std::string> r) {
      if (core->generation != gen) return; // stopped or started again meanwhile
      core->registering = false;
      if (r || core->closed || !core->wanted || r.error() == errc::cancelled || r.error() == errc::closed) return;
      std::fprintf(stderr, "zkrecipes: service %s: re-registration failed (%s); trying again\n", core->parent.c_str(),
                   r.error().message().c_str());
      core->s->post_after(std::chrono::seconds(1), [core] {
        if (!core->closed && core->wanted && core->node.empty() && !core->registering) reregister(core);
      });
    });
  }

  session* s_;
  std::shared_ptr<detail::registration_core> c_;
  result<void> valid_ = outcome::success();
  listener_id lid_ = 0;
};

} // namespace zkrecipes
