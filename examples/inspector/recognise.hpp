// zk-inspector's pure part: from a mirrored subtree (path -> data and stat)
// to the snapshot the page shows — each node's kind, owner and an escaped
// preview of its data, and views of the zkrecipes recipes recognised by
// their znode layouts (docs/<recipe>.md). No I/O, so it is tested alone.
#pragma once

#include <zkrecipes/node.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace inspector {

using json = nlohmann::json;
using tree = std::map<std::string, zkrecipes::node>; ///< full path -> node, as tree_cache::nodes() gives it

inline constexpr std::size_t preview_bytes = 256;

/// Printable ASCII as is, a backslash doubled, every other byte as \xNN; at
/// most `max` bytes of data, then "…". The result is ASCII, so valid UTF-8
/// and safe as JSON text whatever the data held.
inline std::string preview(std::string_view data, std::size_t max = preview_bytes) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < data.size() && i < max; ++i) {
    const auto c = static_cast<unsigned char>(data[i]);
    if (c == '\\') {
      out += "\\\\";
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  if (data.size() > max) out += "\xe2\x80\xa6"; // …
  return out;
}

inline std::string last_name(const std::string& path) {
  const auto at = path.rfind('/');
  return at == std::string::npos ? path : path.substr(at + 1);
}

inline std::string parent_of(const std::string& path) {
  const auto at = path.rfind('/');
  return at == 0 || at == std::string::npos ? "/" : path.substr(0, at);
}

/// The 10-digit sequence suffix of a name, if it has one.
inline std::optional<long long> sequence_suffix(std::string_view name) {
  if (name.size() < 10) return std::nullopt;
  long long v = 0;
  for (char c : name.substr(name.size() - 10)) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

/// persistent, ephemeral, their -sequential forms, container or ttl. The
/// server keeps containers and TTL nodes apart in ephemeralOwner (ZooKeeper's
/// EphemeralType: 0x8000000000000000 for a container, top byte 0xff for TTL)
/// but hands clients 0 for both (DataNode.copyStat), so against ZooKeeper
/// 3.8 they show as persistent; the marks are read should a server send them.
inline std::string kind_of(const std::string& name, const zkrecipes::stat& st) {
  const auto owner = static_cast<std::uint64_t>(st.ephemeral_owner);
  if (owner == 0x8000000000000000ull) return "container";
  if ((owner >> 56) == 0xff) return "ttl";
  const std::string base = owner == 0 ? "persistent" : "ephemeral";
  return sequence_suffix(name) ? base + "-sequential" : base;
}

inline bool is_session_owner(std::int64_t owner) {
  const auto o = static_cast<std::uint64_t>(owner);
  return o != 0 && o != 0x8000000000000000ull && (o >> 56) != 0xff;
}

inline std::string hex_session(std::int64_t id) {
  char b[24];
  std::snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(id));
  return b;
}

// ---------------------------------------------------------------- recipes

namespace detail {

inline bool is_hex32(std::string_view s) {
  if (s.size() != 32) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

/// "_c_<32 hex>-<marker><10 digits>" (the protected create's names): the
/// sequence, when the name has that form with that marker ("lock-", "latch-",
/// "lease-", "__READ__", "__WRIT__").
inline std::optional<long long> protected_seq(std::string_view name, std::string_view marker) {
  if (name.size() != 3 + 32 + 1 + marker.size() + 10 || name.substr(0, 3) != "_c_" || !is_hex32(name.substr(3, 32)) ||
      name[35] != '-' || name.substr(36, marker.size()) != marker)
    return std::nullopt;
  return sequence_suffix(name);
}

/// "<prefix><10 digits>" (b-, i-, c-) or "p-NNN".
inline bool numbered(std::string_view name, std::string_view prefix, std::size_t digits) {
  if (name.size() != prefix.size() + digits || name.substr(0, prefix.size()) != prefix) return false;
  return std::all_of(name.begin() + static_cast<long>(prefix.size()), name.end(),
                     [](char c) { return c >= '0' && c <= '9'; });
}

/// The children of every mirrored node, by parent path, in name order.
inline std::map<std::string, std::vector<std::string>> children(const tree& t) {
  std::map<std::string, std::vector<std::string>> out;
  for (const auto& [path, n] : t)
    if (path != "/") out[parent_of(path)].push_back(last_name(path));
  return out;
}

inline std::string child_path(const std::string& parent, const std::string& name) {
  return parent == "/" ? "/" + name : parent + "/" + name;
}

struct contender {
  long long seq;
  std::string node;
  std::string data;
  std::string marker;
};

/// The children with one of `markers`, ordered by sequence.
inline std::vector<contender> contenders(const tree& t, const std::string& parent, const std::vector<std::string>& names,
                                         std::initializer_list<std::string_view> markers) {
  std::vector<contender> out;
  for (const auto& n : names)
    for (auto m : markers)
      if (auto seq = protected_seq(n, m)) {
        auto it = t.find(child_path(parent, n));
        out.push_back({*seq, n, it == t.end() ? std::string() : it->second.data, std::string(m)});
      }
  std::sort(out.begin(), out.end(), [](const contender& a, const contender& b) { return a.seq < b.seq; });
  return out;
}

inline json entry(const contender& c) { return json{{"node", c.node}, {"data", preview(c.data)}}; }

inline long long age_ms(const tree& t, const std::string& path, long long now_ms) {
  auto it = t.find(path);
  return it == t.end() ? 0 : std::max<long long>(0, now_ms - it->second.stat.ctime);
}

/// Items and claims in the buckets (b-… children) of `base`, and the oldest
/// item (the first of the lowest bucket) when none was found before.
struct queue_count {
  long long depth = 0, claims = 0;
  std::optional<std::string> oldest; ///< full path
};
inline void count_buckets(const std::map<std::string, std::vector<std::string>>& kids, const std::string& base,
                          queue_count& q) {
  auto bs = kids.find(base);
  if (bs == kids.end()) return;
  std::vector<std::string> buckets;
  for (const auto& b : bs->second)
    if (numbered(b, "b-", 10)) buckets.push_back(b);
  std::sort(buckets.begin(), buckets.end()); // fixed width: name order is number order
  for (const auto& b : buckets) {
    const auto bp = child_path(base, b);
    auto is = kids.find(bp);
    if (is == kids.end()) continue;
    std::vector<std::string> items;
    for (const auto& n : is->second) {
      if (numbered(n, "i-", 10)) items.push_back(n);
      if (numbered(n, "c-", 10)) ++q.claims;
    }
    std::sort(items.begin(), items.end());
    q.depth += static_cast<long long>(items.size());
    if (!q.oldest && !items.empty()) q.oldest = child_path(bp, items.front());
  }
}

inline std::string relative(const std::string& root, const std::string& path) {
  return path.size() > root.size() ? path.substr(root.size() + (root == "/" ? 0 : 1)) : std::string();
}

} // namespace detail

/// The recipes recognised in the tree, one view per recipe node, in path
/// order. `now_ms` (ms since the epoch) gives the oldest items' ages.
inline json recognise(const tree& t, long long now_ms) {
  using namespace detail;
  const auto kids = children(t);
  json views = json::array();
  for (const auto& [path, names] : kids) {
    // Locks, read-write locks, latches (and leader selectors): protected names.
    if (auto c = contenders(t, path, names, {"lock-"}); !c.empty()) {
      json w = json::array();
      for (std::size_t i = 1; i < c.size(); ++i) w.push_back(entry(c[i]));
      views.push_back({{"kind", "lock"}, {"path", path}, {"holder", entry(c[0])}, {"waiters", w}});
      continue;
    }
    if (auto c = contenders(t, path, names, {"__READ__", "__WRIT__"}); !c.empty()) {
      // Readers ahead of the first writer hold together; a writer holds alone when first.
      json holders = json::array(), waiters = json::array();
      bool blocked = false;
      for (std::size_t i = 0; i < c.size(); ++i) {
        const bool write = c[i].marker == "__WRIT__";
        auto e = entry(c[i]);
        e["mode"] = write ? "write" : "read";
        const bool holds = !blocked && (!write || i == 0);
        (holds ? holders : waiters).push_back(e);
        if (write || !holds) blocked = true;
      }
      views.push_back({{"kind", "read_write_lock"}, {"path", path}, {"holders", holders}, {"waiters", waiters}});
      continue;
    }
    if (auto c = contenders(t, path, names, {"latch-"}); !c.empty()) {
      auto id = [](const contender& x) { return preview(x.data.substr(0, x.data.find('\0'))); };
      json waiting = json::array();
      for (std::size_t i = 1; i < c.size(); ++i) waiting.push_back(id(c[i]));
      views.push_back({{"kind", "leader_latch"}, {"path", path}, {"leader", id(c[0])}, {"waiting", waiting}});
      continue;
    }
    if (last_name(path) == "leases") {
      if (auto c = contenders(t, path, names, {"lease-"}); !c.empty()) {
        json leases = json::array();
        for (auto& x : c) leases.push_back(entry(x));
        views.push_back({{"kind", "semaphore"}, {"path", parent_of(path)}, {"leases", leases}});
        continue;
      }
    }
    // Queues: lanes (locking queue) or buckets (FIFO queue).
    const bool lanes = std::any_of(names.begin(), names.end(), [](auto& n) { return numbered(n, "p-", 3); });
    const bool buckets = std::any_of(names.begin(), names.end(), [](auto& n) { return numbered(n, "b-", 10); });
    if (lanes) {
      queue_count q;
      std::vector<std::string> ls;
      for (const auto& n : names)
        if (numbered(n, "p-", 3)) ls.push_back(n);
      std::sort(ls.rbegin(), ls.rend()); // the highest lane is taken first
      for (const auto& l : ls) count_buckets(kids, child_path(path, l), q);
      views.push_back({{"kind", "locking_queue"}, {"path", path}, {"depth", q.depth}, {"in_flight", q.claims},
                       {"oldest", q.oldest ? json(relative(path, *q.oldest)) : json()},
                       {"oldest_age_ms", q.oldest ? age_ms(t, *q.oldest, now_ms) : 0}});
      continue;
    }
    if (buckets && !numbered(last_name(path), "p-", 3)) { // a lane is its locking queue's
      queue_count q;
      count_buckets(kids, path, q);
      views.push_back({{"kind", "fifo_queue"}, {"path", path}, {"depth", q.depth},
                       {"oldest", q.oldest ? json(relative(path, *q.oldest)) : json()},
                       {"oldest_age_ms", q.oldest ? age_ms(t, *q.oldest, now_ms) : 0}});
      continue;
    }
    // Service instances: records that say what they are.
    json instances = json::array();
    for (const auto& n : names) {
      auto it = t.find(child_path(path, n));
      if (it == t.end() || it->second.data.rfind("zkrecipes-instance 1\n", 0) != 0) continue;
      json in{{"node", n}, {"ports", json::object()}};
      std::string_view rest(it->second.data);
      rest.remove_prefix(rest.find('\n') + 1);
      while (!rest.empty()) {
        const auto nl = rest.find('\n');
        const auto line = rest.substr(0, nl);
        rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
        const auto eq = line.find('=');
        if (eq == std::string_view::npos) continue;
        const auto key = line.substr(0, eq), value = line.substr(eq + 1);
        if (key == "payload") break; // the payload's bytes follow
        if (key == "id" || key == "address") in[std::string(key)] = preview(value);
        if (key.starts_with("port.")) in["ports"][preview(key.substr(5))] = std::atoi(std::string(value).c_str());
      }
      instances.push_back(in);
    }
    if (!instances.empty()) {
      views.push_back({{"kind", "service"}, {"path", path}, {"service", preview(last_name(path))}, {"instances", instances}});
      continue;
    }
    // Ephemeral children: a double barrier (with its ready node) or a group.
    std::vector<std::string> members;
    bool ready = false, other = false;
    for (const auto& n : names) {
      auto it = t.find(child_path(path, n));
      if (it == t.end()) continue;
      if (n == "ready" && it->second.stat.ephemeral_owner == 0) ready = true;
      else if (is_session_owner(it->second.stat.ephemeral_owner) && !sequence_suffix(n)) members.push_back(n);
      else other = true;
    }
    if (members.empty() || other) continue;
    if (ready) {
      json m = json::array();
      for (auto& n : members) m.push_back(preview(n));
      views.push_back({{"kind", "double_barrier"}, {"path", path}, {"members", m}, {"ready", true}});
    } else {
      json m = json::array();
      for (auto& n : members) m.push_back({{"id", preview(n)}, {"data", preview(t.at(child_path(path, n)).data)}});
      views.push_back({{"kind", "group"}, {"path", path}, {"members", m}});
    }
  }
  return views;
}

/// The snapshot the page and /snapshot show: every node (up to max_nodes,
/// in path order) and the recognised recipes.
inline json snapshot(const tree& t, const std::string& root, std::uint64_t version, std::size_t max_nodes,
                     long long now_ms) {
  json nodes = json::array();
  // Counted from the mirror: a cached stat is as of the node's last data
  // read, and a new child alone does not read the parent's data again.
  const auto kids = detail::children(t);
  const auto depth_of = [&](const std::string& p) {
    if (p == root) return 0L;
    return static_cast<long>(std::count(p.begin() + static_cast<long>(root == "/" ? 0 : root.size()), p.end(), '/'));
  };
  for (const auto& [path, n] : t) {
    if (nodes.size() >= max_nodes) break;
    const auto name = path == "/" ? std::string("/") : last_name(path);
    nodes.push_back({{"path", preview(path)},
                     {"name", preview(name)},
                     {"depth", depth_of(path)},
                     {"kind", path == "/" ? std::string("persistent") : kind_of(name, n.stat)},
                     {"owner", is_session_owner(n.stat.ephemeral_owner) ? json(hex_session(n.stat.ephemeral_owner)) : json()},
                     {"data", preview(n.data)},
                     {"bytes", n.data.size()},
                     {"children", kids.count(path) ? kids.at(path).size() : std::size_t{0}},
                     {"version", n.stat.version},
                     {"ctime", n.stat.ctime}});
  }
  return json{{"root", preview(root)}, {"version", version}, {"truncated", t.size() > max_nodes},
              {"nodes", nodes}, {"views", recognise(t, now_ms)}};
}

} // namespace inspector
