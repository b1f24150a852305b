// Interceptors and tracing against a real server: order, nulling of bad
// fields, isolation of throwing interceptors, configuration, recipes over an
// intercepted handle, the trace writer's JSON lines, the trace envelope of
// queue items, and one trace id followed across two processes.
#include "support.hpp"

#include <zkrecipes/client.hpp>
#include <zkrecipes/detail/process.hpp>
#include <zkrecipes/detail/trace_envelope.hpp>
#include <zkrecipes/fifo_queue.hpp>
#include <zkrecipes/interceptor.hpp>
#include <zkrecipes/locking_queue.hpp>
#include <zkrecipes/mutex.hpp>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <variant>
#include <vector>

#include <sys/wait.h>

using namespace zkt;

namespace {

static_assert(zkr::client<zkr::session>);

// ---- recording interceptors ---------------------------------------------------

/// Every interceptor call, in the order made, with a copy of the record.
struct call_log {
  std::mutex m;
  std::vector<std::string> calls;
  std::vector<zkr::operation_record> records;
  void add(std::string call, const zkr::operation_record& r) {
    std::lock_guard lk(m);
    calls.push_back(std::move(call));
    records.push_back(r);
  }
  void note(std::string call) {
    std::lock_guard lk(m);
    calls.push_back(std::move(call));
    records.emplace_back();
  }
  std::vector<std::string> calls_copy() {
    std::lock_guard lk(m);
    return calls;
  }
  /// The record that `call` saw, for the last operation of `kind`.
  std::optional<zkr::operation_record> seen(const std::string& call, const std::string& kind) {
    std::lock_guard lk(m);
    for (std::size_t i = calls.size(); i-- > 0;)
      if (calls[i] == call && records[i].kind == kind) return records[i];
    return std::nullopt;
  }
  std::vector<zkr::operation_record> all(const std::string& call) {
    std::lock_guard lk(m);
    std::vector<zkr::operation_record> out;
    for (std::size_t i = 0; i < calls.size(); ++i)
      if (calls[i] == call) out.push_back(records[i]);
    return out;
  }
  void clear() {
    std::lock_guard lk(m);
    calls.clear();
    records.clear();
  }
};

class recorder : public zkr::interceptor {
public:
  recorder(std::string name, std::shared_ptr<call_log> log) : name_(std::move(name)), log_(std::move(log)) {}
  std::string_view name() const override { return name_; }
  void before(zkr::operation_record& r) override { log_->add(name_ + ".before", r); }
  void after(zkr::operation_record& r) override { log_->add(name_ + ".after", r); }

protected:
  std::string name_;
  std::shared_ptr<call_log> log_;
};

/// Changes the record in before(): the next interceptor must see the change
/// (or null, when the change is malformed).
class rewriter final : public recorder {
public:
  rewriter(std::string name, std::shared_ptr<call_log> log, std::optional<std::string> path,
           std::optional<std::string> trace)
      : recorder(std::move(name), std::move(log)), path_(std::move(path)), trace_(std::move(trace)) {}
  void before(zkr::operation_record& r) override {
    recorder::before(r);
    if (path_) r.path = *path_;
    if (trace_) r.trace_id = *trace_;
  }

private:
  std::optional<std::string> path_, trace_;
};

class thrower final : public zkr::interceptor {
public:
  explicit thrower(std::string what, bool std_exception = true) : what_(std::move(what)), std_(std_exception) {}
  std::string_view name() const override { return "thrower"; }
  void before(zkr::operation_record&) override { fail("before"); }
  void after(zkr::operation_record&) override { fail("after"); }

private:
  void fail(const std::string& when) {
    if (!std_) throw 42;
    throw std::runtime_error(what_ + " " + when);
  }
  std::string what_;
  bool std_;
};

std::shared_ptr<zkr::interceptor_chain> chain_of(std::vector<std::shared_ptr<zkr::interceptor>> list,
                                                 zkr::interceptor_error_sink sink = {}) {
  return std::make_shared<zkr::interceptor_chain>(std::move(list), std::move(sink));
}

// ---- queue interceptors --------------------------------------------------------

struct queue_log final : zkr::queue_interceptor {
  std::mutex m;
  std::vector<zkr::queue_record> produced, consumed;
  std::string_view name() const override { return "qlog"; }
  void on_produce(zkr::queue_record& r) override {
    std::lock_guard lk(m);
    produced.push_back(r);
  }
  void on_consume(zkr::queue_record& r) override {
    std::lock_guard lk(m);
    consumed.push_back(r);
  }
  std::vector<zkr::queue_record> get(bool produce) {
    std::lock_guard lk(m);
    return produce ? produced : consumed;
  }
};

struct queue_thrower final : zkr::queue_interceptor {
  std::string_view name() const override { return "qthrower"; }
  void on_produce(zkr::queue_record&) override { throw std::runtime_error("no produce"); }
  void on_consume(zkr::queue_record&) override { throw std::runtime_error("no consume"); }
};

// ---- a small JSON parser, to check the trace writer's lines ---------------------------

struct json;
using json_object = std::map<std::string, json>;
using json_array = std::vector<json>;
struct json {
  // null, bool, number (kept as text), string, array, object
  std::variant<std::nullptr_t, bool, double, std::string, json_array, json_object> v;
  bool is_null() const { return std::holds_alternative<std::nullptr_t>(v); }
  const std::string& str() const { return std::get<std::string>(v); }
  double num() const { return std::get<double>(v); }
  const json_array& arr() const { return std::get<json_array>(v); }
  const json_object& obj() const { return std::get<json_object>(v); }
};

class json_parser {
public:
  explicit json_parser(std::string_view s) : s_(s) {}
  /// One value filling the whole text, or nullopt.
  std::optional<json> parse_all() {
    auto v = value();
    ws();
    if (!v || i_ != s_.size()) return std::nullopt;
    return v;
  }

private:
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  bool lit(std::string_view l) {
    if (s_.substr(i_, l.size()) != l) return false;
    i_ += l.size();
    return true;
  }
  std::optional<json> value() {
    ws();
    if (i_ >= s_.size()) return std::nullopt;
    char c = s_[i_];
    if (c == 'n') return lit("null") ? std::optional<json>(json{nullptr}) : std::nullopt;
    if (c == 't') return lit("true") ? std::optional<json>(json{true}) : std::nullopt;
    if (c == 'f') return lit("false") ? std::optional<json>(json{false}) : std::nullopt;
    if (c == '"') {
      auto s = string();
      if (!s) return std::nullopt;
      return json{*s};
    }
    if (c == '[') {
      ++i_;
      json_array a;
      ws();
      if (lit("]")) return json{a};
      for (;;) {
        auto v = value();
        if (!v) return std::nullopt;
        a.push_back(*v);
        ws();
        if (lit("]")) return json{a};
        if (!lit(",")) return std::nullopt;
      }
    }
    if (c == '{') {
      ++i_;
      json_object o;
      ws();
      if (lit("}")) return json{o};
      for (;;) {
        ws();
        auto k = string();
        if (!k) return std::nullopt;
        ws();
        if (!lit(":")) return std::nullopt;
        auto v = value();
        if (!v) return std::nullopt;
        if (!o.emplace(*k, *v).second) return std::nullopt; // duplicate key
        ws();
        if (lit("}")) return json{o};
        if (!lit(",")) return std::nullopt;
      }
    }
    std::size_t start = i_;
    if (c == '-') ++i_;
    while (i_ < s_.size() && ((s_[i_] >= '0' && s_[i_] <= '9') || s_[i_] == '.' || s_[i_] == 'e' || s_[i_] == 'E' ||
                              s_[i_] == '+' || s_[i_] == '-'))
      ++i_;
    if (i_ == start) return std::nullopt;
    return json{std::strtod(std::string(s_.substr(start, i_ - start)).c_str(), nullptr)};
  }
  std::optional<std::string> string() {
    if (!lit("\"")) return std::nullopt;
    std::string out;
    while (i_ < s_.size()) {
      auto c = static_cast<unsigned char>(s_[i_++]);
      if (c == '"') return out;
      if (c < 0x20) return std::nullopt; // raw control characters are not JSON
      if (c != '\\') {
        out += char(c);
        continue;
      }
      if (i_ >= s_.size()) return std::nullopt;
      char e = s_[i_++];
      switch (e) {
      case '"': out += '"'; break;
      case '\\': out += '\\'; break;
      case '/': out += '/'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'u': {
        if (i_ + 4 > s_.size()) return std::nullopt;
        unsigned cp = std::stoul(std::string(s_.substr(i_, 4)), nullptr, 16);
        i_ += 4;
        if (cp < 0x80) out += char(cp);
        else if (cp < 0x800) {
          out += char(0xc0 | (cp >> 6));
          out += char(0x80 | (cp & 0x3f));
        } else {
          out += char(0xe0 | (cp >> 12));
          out += char(0x80 | ((cp >> 6) & 0x3f));
          out += char(0x80 | (cp & 0x3f));
        }
        break;
      }
      default: return std::nullopt;
      }
    }
    return std::nullopt;
  }
  std::string_view s_;
  std::size_t i_ = 0;
};

std::vector<json_object> parse_lines(const std::string& text) {
  std::vector<json_object> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    INFO("line: " << line);
    auto v = json_parser(line).parse_all();
    REQUIRE(v.has_value());
    REQUIRE(std::holds_alternative<json_object>(v->v));
    out.push_back(v->obj());
  }
  return out;
}

// The tracing example, for the two-process test: $ZKRECIPES_TRACING_EXAMPLE,
// or the "tracing" program in the example list tests/meson.build passes.
std::string tracing_program() {
  if (const char* p = std::getenv("ZKRECIPES_TRACING_EXAMPLE"); p && *p) return p;
#ifdef ZKRECIPES_EXAMPLES
  for (std::string p : {ZKRECIPES_EXAMPLES})
    if (std::filesystem::path(p).filename() == "tracing") return p;
#endif
  return {};
}

} // namespace

TEST_CASE("interceptors: before and after run in list order, then the handler; records carry the operation") {
  auto s = connect_shared();
  auto root = unique_root("icp-order");
  auto log = std::make_shared<call_log>();
  auto chain = chain_of({std::make_shared<recorder>("A", log),
                         std::make_shared<rewriter>("B", log, std::nullopt, "set-by-b"),
                         std::make_shared<recorder>("C", log)});
  zkr::session t = s.intercepted(chain);
  CHECK(t.interceptors() == chain);
  CHECK(s.interceptors() == nullptr);

  mailbox<zkr::result<zkr::created_node>> done;
  t.async_create(root, "12345", {}, [&](zkr::result<zkr::created_node> r) {
    log->note("handler");
    done.push(std::move(r));
  });
  auto created = done.pop();
  REQUIRE(created);
  REQUIRE(*created);
  CHECK(log->calls_copy() ==
        std::vector<std::string>{"A.before", "B.before", "C.before", "A.after", "B.after", "C.after", "handler"});
  auto a_before = log->seen("A.before", "create");
  auto c_before = log->seen("C.before", "create");
  auto c_after = log->seen("C.after", "create");
  REQUIRE(a_before);
  REQUIRE(c_before);
  REQUIRE(c_after);
  CHECK(a_before->path == root);
  CHECK(a_before->size == std::optional<std::size_t>(5));
  CHECK_FALSE(a_before->trace_id.has_value());
  CHECK_FALSE(a_before->completed());
  CHECK(c_before->trace_id == std::optional<std::string>("set-by-b")); // B passed its change on
  CHECK(c_after->id == a_before->id);
  CHECK(c_after->ok());
  CHECK(c_after->zxid == std::optional<std::int64_t>(created->value().stat.czxid));
  REQUIRE(c_after->latency.has_value());
  CHECK(c_after->latency->count() >= 0);
  CHECK(c_after->session_id == s.session_id());
  CHECK(c_after->interceptor_errors.empty());

  // Blocking forms pass through the chain too, with the zxid of each kind.
  log->clear();
  auto set = t.set(root, "abc");
  REQUIRE(set);
  auto set_after = log->seen("C.after", "set");
  REQUIRE(set_after);
  CHECK(set_after->zxid == std::optional<std::int64_t>(set.value().mzxid));
  CHECK(set_after->size == std::optional<std::size_t>(3));
  auto got = t.get(root);
  REQUIRE(got);
  REQUIRE(log->seen("C.after", "get"));
  CHECK(log->seen("C.after", "get")->zxid == std::optional<std::int64_t>(got.value().stat.mzxid));
  REQUIRE(t.exists(root + "/none"));
  REQUIRE(log->seen("C.after", "exists"));
  CHECK(log->seen("C.after", "exists")->ok());
  CHECK_FALSE(log->seen("C.after", "exists")->zxid.has_value()); // no node, no zxid
  zkr::multi_op tx;
  tx.create(root + "/m", "xy").set(root, "def");
  auto m = t.multi(tx);
  REQUIRE(m);
  auto multi_after = log->seen("C.after", "multi");
  REQUIRE(multi_after);
  CHECK(multi_after->path == root + "/m");
  CHECK(multi_after->size == std::optional<std::size_t>(5));
  CHECK(multi_after->zxid == std::optional<std::int64_t>(m.value()[1].stat->mzxid));
  auto missing = t.get(root + "/missing");
  REQUIRE_FALSE(missing);
  auto miss_after = log->seen("C.after", "get");
  REQUIRE(miss_after);
  CHECK(miss_after->result == std::optional<std::error_code>(zkr::make_error_code(zkr::zk_errc::no_node)));
  CHECK(miss_after->error.value_or("").find(root + "/missing") != std::string::npos);
  CHECK_FALSE(miss_after->zxid.has_value());

  // The plain session is not intercepted; a moved handle keeps its chain.
  const auto before_plain = log->calls_copy().size();
  REQUIRE(s.get(root));
  CHECK(log->calls_copy().size() == before_plain);
  zkr::session moved = std::move(t);
  CHECK(moved.interceptors() == chain);
  REQUIRE(moved.remove_recursive(root));
  auto rr = log->all("A.before");
  REQUIRE_FALSE(rr.empty());
  CHECK(rr.back().kind == "remove_recursive"); // one record, not one per inner step
  CHECK(log->all("A.after").back().kind == "remove_recursive");
}

TEST_CASE("interceptors: a malformed field is nulled and the record and the operation go on") {
  auto s = connect_shared();
  auto root = unique_root("icp-null");
  auto log = std::make_shared<call_log>();
  auto chain = chain_of({std::make_shared<recorder>("A", log),
                         std::make_shared<rewriter>("B", log, std::string("bad//path"), std::string("bad id!")),
                         std::make_shared<recorder>("C", log)});
  zkr::session t = s.intercepted(chain);

  // A bad trace id and a bad path from the caller: nulled; the operation
  // fails as it would without interceptors.
  {
    zkr::trace_scope scope("not a trace id");
    auto r = t.get("no-slash");
    REQUIRE_FALSE(r);
    CHECK(r.error() == zkr::errc::invalid_path);
  }
  auto a = log->seen("A.before", "get");
  REQUIRE(a);
  CHECK_FALSE(a->path.has_value());
  CHECK_FALSE(a->trace_id.has_value());
  auto after = log->seen("C.after", "get");
  REQUIRE(after);
  CHECK(after->result == std::optional<std::error_code>(zkr::make_error_code(zkr::errc::invalid_path)));

  // Too long a trace id is nulled too; a good one passes.
  {
    zkr::trace_scope scope(std::string(65, 'a'));
    REQUIRE(t.create(root));
  }
  CHECK_FALSE(log->seen("A.before", "create")->trace_id.has_value());
  {
    zkr::trace_scope scope(std::string(64, 'a'));
    REQUIRE(t.set(root, "x"));
  }
  CHECK(log->seen("A.before", "set")->trace_id == std::optional<std::string>(std::string(64, 'a')));

  // B writes a malformed path and trace id into a good record: C sees null,
  // and the operation itself is untouched (it succeeds on the real path).
  {
    zkr::trace_scope scope("req-2");
    auto r = t.create(root + "/x", "data");
    REQUIRE(r);
    CHECK(r.value().path == root + "/x");
  }
  auto a2 = log->seen("A.before", "create");
  auto c2 = log->seen("C.before", "create");
  REQUIRE(a2);
  REQUIRE(c2);
  CHECK(a2->path == root + "/x");
  CHECK(a2->trace_id == std::optional<std::string>("req-2"));
  CHECK_FALSE(c2->path.has_value());
  CHECK_FALSE(c2->trace_id.has_value());
  CHECK(log->seen("C.after", "create")->ok());
  REQUIRE(s.remove_recursive(root));
}

TEST_CASE("interceptors: one that throws does not stop the chain or the operation; the error is on the completion") {
  auto s = connect_shared();
  auto root = unique_root("icp-throw");
  auto log = std::make_shared<call_log>();
  mailbox<std::string> sink;
  auto chain = chain_of({std::make_shared<recorder>("A", log), std::make_shared<thrower>("boom"),
                         std::make_shared<recorder>("C", log)},
                        [&](std::string_view e) { sink.push(std::string(e)); });
  zkr::session t = s.intercepted(chain);

  mailbox<zkr::result<zkr::created_node>> done;
  t.async_create(root, "x", {}, [&](zkr::result<zkr::created_node> r) { done.push(std::move(r)); });
  auto r = done.pop();
  REQUIRE(r);
  REQUIRE(*r); // the operation went on
  CHECK(s.exists(root).value().has_value());
  CHECK(log->calls_copy() == std::vector<std::string>{"A.before", "C.before", "A.after", "C.after"});
  auto c_before = log->seen("C.before", "create");
  auto c_after = log->seen("C.after", "create");
  REQUIRE(c_before);
  REQUIRE(c_after);
  CHECK(c_before->interceptor_errors == std::vector<std::string>{"thrower: boom before"});
  CHECK(c_after->interceptor_errors == std::vector<std::string>{"thrower: boom before", "thrower: boom after"});
  CHECK(c_after->ok());
  CHECK(sink.pop() == std::optional<std::string>("thrower: boom before"));
  CHECK(sink.pop() == std::optional<std::string>("thrower: boom after"));

  // A failing operation keeps its own result; a non-standard throw is named.
  auto t2 = s.intercepted(chain_of({std::make_shared<thrower>("", false), std::make_shared<recorder>("C", log)}));
  auto g = t2.get(root + "/missing");
  REQUIRE_FALSE(g);
  CHECK(g.error() == zkr::zk_errc::no_node);
  auto after = log->seen("C.after", "get");
  REQUIRE(after);
  CHECK(after->interceptor_errors ==
        std::vector<std::string>{"thrower: unknown exception", "thrower: unknown exception"});
  REQUIRE(s.remove_recursive(root));
}

TEST_CASE("interceptors: the list comes from configuration; empty is none; an unknown name is a clear error") {
  auto dir = zkr::detail::temp_dir::create("zkrecipes-icp-");
  REQUIRE(dir);
  auto empty = zkr::make_interceptor_chain("");
  REQUIRE(empty);
  CHECK(empty.value()->empty());
  auto blank = zkr::make_interceptor_chain(" , ,");
  REQUIRE(blank);
  CHECK(blank.value()->empty());
  auto s = connect_shared();
  CHECK(s.intercepted(empty.value()).interceptors() == nullptr); // no chain at all: one null check
  CHECK(s.intercepted(nullptr).interceptors() == nullptr);

  auto unknown = zkr::make_interceptor_chain("counter, tracer");
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error() == zkr::errc::invalid_argument);
  CHECK(unknown.error().message().find("'tracer'") != std::string::npos);
  CHECK(unknown.error().message().find("trace") != std::string::npos); // lists the known names

  auto file = (dir.value().path() / "t.jsonl").string();
  auto two = zkr::make_interceptor_chain("trace:" + file + " , counter");
  REQUIRE(two);
  REQUIRE(two.value()->size() == 2);
  CHECK(two.value()->interceptors()[0]->name() == "trace");
  CHECK(two.value()->interceptors()[1]->name() == "counter");
  CHECK(two.value()->queue_interceptors().size() == 2);

  CHECK(zkr::make_interceptor_chain("counter:x").error() == zkr::errc::invalid_argument);
  auto bad_file = zkr::make_interceptor_chain("trace:" + (dir.value().path() / "no-dir" / "t.jsonl").string());
  REQUIRE_FALSE(bad_file);
  CHECK(bad_file.error().message().find("no-dir") != std::string::npos);

  // A registry of one's own, with the built-ins; the argument reaches the factory.
  auto reg = zkr::interceptor_registry::with_builtins();
  std::string got_arg;
  reg.add("mine", [&](std::string_view arg) -> zkr::result<std::shared_ptr<zkr::interceptor>> {
    got_arg = std::string(arg);
    return std::shared_ptr<zkr::interceptor>(std::make_shared<zkr::counting_interceptor>());
  });
  auto mine = zkr::make_interceptor_chain("mine:a:b,counter", reg);
  REQUIRE(mine);
  CHECK(mine.value()->size() == 2);
  CHECK(got_arg == "a:b");

  // The counter counts what passes.
  auto counter = std::dynamic_pointer_cast<zkr::counting_interceptor>(two.value()->interceptors()[1]);
  REQUIRE(counter);
  auto t = s.intercepted(two.value());
  REQUIRE(t.exists("/"));
  CHECK_FALSE(t.get(unique_root("icp-none")));
  CHECK(counter->started() == 2);
  CHECK(counter->completed() == 2);
  CHECK(counter->failed() == 1);
}

TEST_CASE("interceptors: a recipe over the intercepted handle has its operations seen, with the caller's trace id") {
  auto s = connect_shared();
  auto root = unique_root("icp-mutex");
  auto log = std::make_shared<call_log>();
  zkr::session t = s.intercepted(chain_of({std::make_shared<recorder>("A", log)}));
  {
    zkr::mutex m(t, root + "/lock");
    {
      zkr::trace_scope scope("req-mutex");
      REQUIRE(m.lock(10s));
    }
    REQUIRE(m.unlock());
    // The release is sent without waiting for it (design §4): wait for its record.
    CHECK(eventually([&] {
      for (auto& r : log->all("A.after"))
        if (r.kind == "remove" && r.path && r.path->rfind(root + "/lock/", 0) == 0) return true;
      return false;
    }));
  }
  // The first create may fail with no_node (no parent yet) and be sent again
  // after an ensure_path: every step carries the caller's trace id.
  bool created = false;
  for (auto& r : log->all("A.after")) {
    if (r.kind != "create" && r.kind != "ensure_path") continue;
    if (!r.path || r.path->rfind(root, 0) != 0) continue;
    CHECK(r.trace_id == std::optional<std::string>("req-mutex"));
    if (r.kind == "create" && r.ok() && r.path->rfind(root + "/lock/", 0) == 0) {
      created = true;
      CHECK(r.zxid.has_value());
    }
  }
  CHECK(created);
  REQUIRE(s.remove_recursive(root));
}

TEST_CASE("tracing: JSON strings are escaped; the trace writer writes one JSON object per line") {
  std::string out;
  zkr::detail::append_json_string(out, std::string_view("q\"b\\n\nc\x01 del\x7f \xc3\xa9 \xff \xc0\xaf \xed\xa0\x80 \xe2\x82"));
  CHECK(out == "\"q\\\"b\\\\n\\nc\\u0001 del\\u007f \xc3\xa9 \\ufffd \\ufffd\\ufffd \\ufffd\\ufffd\\ufffd \\ufffd\\ufffd\"");

  auto dir = zkr::detail::temp_dir::create("zkrecipes-icp-");
  REQUIRE(dir);
  auto file = dir.value().path() / "trace.jsonl";
  auto chain = zkr::make_interceptor_chain("trace:" + file.string());
  REQUIRE(chain);
  // A thrower before the writer, with a message full of what JSON must escape.
  auto nasty = std::make_shared<thrower>(std::string("quote\" back\\ nl\n ctl\x01 bad\xff \xc3\xa9"));
  auto full = chain_of({nasty, chain.value()->interceptors()[0]});
  auto s = connect_shared();
  auto root = unique_root("icp-json");
  auto t = s.intercepted(full);
  {
    zkr::trace_scope scope("req-json");
    REQUIRE(t.create(root, "12345"));
  }
  REQUIRE_FALSE(t.get(root + "/missing"));
  REQUIRE(t.remove(root));

  auto lines = parse_lines(zkr::detail::read_file(file));
  REQUIRE(lines.size() == 3);
  for (auto& o : lines)
    for (const char* k : {"ts", "pid", "event", "id", "kind", "path", "size", "trace_id", "result", "error", "zxid",
                          "latency_us", "errors"})
      CHECK_MESSAGE(o.count(k) == 1, "field " << k);
  auto& c = lines[0];
  CHECK(c.at("event").str() == "op");
  CHECK(c.at("kind").str() == "create");
  CHECK(c.at("path").str() == root);
  CHECK(c.at("size").num() == 5);
  CHECK(c.at("trace_id").str() == "req-json");
  CHECK(c.at("result").str() == "ok");
  CHECK(c.at("error").is_null());
  CHECK(c.at("zxid").num() > 0);
  CHECK(c.at("latency_us").num() >= 0);
  CHECK(c.at("pid").num() == double(::getpid()));
  REQUIRE(c.at("errors").arr().size() == 2); // the thrower's before and after: it runs before the writer
  CHECK(c.at("errors").arr()[0].str() == "thrower: quote\" back\\ nl\n ctl\x01 bad\xef\xbf\xbd \xc3\xa9 before");
  CHECK(c.at("errors").arr()[1].str() == "thrower: quote\" back\\ nl\n ctl\x01 bad\xef\xbf\xbd \xc3\xa9 after");
  auto& g = lines[1];
  CHECK(g.at("kind").str() == "get");
  CHECK(g.at("trace_id").is_null());
  CHECK(g.at("result").str() == "no node");
  CHECK(g.at("error").str().find(root + "/missing") != std::string::npos);
  CHECK(g.at("zxid").is_null());
  CHECK(g.at("size").is_null());
  CHECK(lines[2].at("kind").str() == "remove");
}

TEST_CASE("tracing: the trace envelope round-trips, wraps payloads that look like it, refuses a truncated one") {
  using namespace zkr::detail;
  const std::string magic(trace_magic);
  CHECK(wrap_trace("plain", std::nullopt) == "plain"); // unchanged bytes without a trace id
  CHECK(wrap_trace("plain", std::string("bad id")) == "plain"); // a malformed id is not carried
  auto w = wrap_trace("payload", std::string("req-1"));
  CHECK(w == magic + "req-1\x1fpayload");
  auto u = unwrap_trace(w);
  REQUIRE(u);
  CHECK(u.value().payload == "payload");
  CHECK(u.value().trace_id == std::optional<std::string>("req-1"));
  auto plain = unwrap_trace("plain");
  REQUIRE(plain);
  CHECK(plain.value().payload == "plain");
  CHECK_FALSE(plain.value().trace_id.has_value());
  // A payload that itself begins with the magic is always wrapped.
  auto tricky = magic + "not-an-id\x1fstill payload";
  auto wt = wrap_trace(tricky, std::nullopt);
  CHECK(wt == magic + "\x1f" + tricky);
  auto ut = unwrap_trace(wt);
  REQUIRE(ut);
  CHECK(ut.value().payload == tricky);
  CHECK_FALSE(ut.value().trace_id.has_value());
  const auto wt2 = wrap_trace(tricky, std::string("req-2")); // the payload is a view into it
  auto ut2 = unwrap_trace(wt2);
  REQUIRE(ut2);
  CHECK(ut2.value().payload == tricky);
  CHECK(ut2.value().trace_id == std::optional<std::string>("req-2"));
  CHECK(unwrap_trace(wrap_trace("", std::string("r"))).value().payload.empty());
  // Truncated: no end of the trace id (or none within 64 characters).
  for (std::string bad : {magic, magic + "abc", magic + std::string(70, 'a') + "\x1fpayload"}) {
    auto r = unwrap_trace(bad);
    REQUIRE_FALSE(r);
    CHECK(r.error() == zkr::errc::decode_failed);
    CHECK(r.error().message().find("truncated") != std::string::npos);
  }
  // A malformed id inside a whole envelope is nulled; the payload flows.
  const auto odd_bytes = magic + "b a d\x1fpayload";
  auto odd = unwrap_trace(odd_bytes);
  REQUIRE(odd);
  CHECK(odd.value().payload == "payload");
  CHECK_FALSE(odd.value().trace_id.has_value());
}

TEST_CASE("tracing: FIFO producer and consumer interceptors see the queue, key, sequence and the item's trace id") {
  auto s = connect_shared();
  auto path = unique_root("icp-fifo") + "/q";
  auto qlog = std::make_shared<queue_log>();
  zkr::queue_options o;
  o.interceptors = {std::make_shared<queue_thrower>(), qlog}; // the thrower does not stop delivery
  zkr::fifo_queue<std::string> q(s, path, o);
  const std::string magic(zkr::detail::trace_magic);

  std::string p1;
  {
    zkr::trace_scope scope("job-7");
    auto p = q.put("payload");
    REQUIRE(p);
    p1 = p.value();
  }
  REQUIRE(q.put("plain"));
  REQUIRE(q.put(magic + "tricky"));
  auto produced = qlog->get(true);
  REQUIRE(produced.size() == 3);
  CHECK(produced[0].role == "produce");
  CHECK(produced[0].queue_path == path);
  CHECK(produced[0].item_key == "b-0000000000/i-0000000000");
  CHECK(produced[0].bucket == std::optional<std::uint64_t>(0));
  CHECK(produced[0].sequence == std::optional<std::int64_t>(0));
  CHECK(produced[0].trace_id == std::optional<std::string>("job-7"));
  CHECK(produced[0].interceptor_errors == std::vector<std::string>{"qthrower: no produce"});
  CHECK(produced[1].sequence == std::optional<std::int64_t>(1));
  CHECK_FALSE(produced[1].trace_id.has_value());

  // The stored bytes: the envelope only where needed.
  CHECK(s.get(p1).value().data == magic + "job-7\x1fpayload");
  CHECK(s.get(path + "/b-0000000000/i-0000000001").value().data == "plain");
  CHECK(s.get(path + "/b-0000000000/i-0000000002").value().data == magic + "\x1f" + magic + "tricky");
  CHECK(q.peek().value() == std::optional<std::string>("payload"));

  auto it = q.take_item(5s);
  REQUIRE(it);
  CHECK(it.value().value == "payload");
  CHECK(it.value().path == p1);
  CHECK(it.value().trace_id == std::optional<std::string>("job-7"));
  CHECK(q.take(5s).value() == "plain");
  auto t3 = q.take_item(5s);
  REQUIRE(t3);
  CHECK(t3.value().value == magic + "tricky");
  CHECK_FALSE(t3.value().trace_id.has_value());
  auto consumed = qlog->get(false);
  REQUIRE(consumed.size() == 3);
  CHECK(consumed[0].role == "consume");
  CHECK(consumed[0].item_key == "b-0000000000/i-0000000000");
  CHECK(consumed[0].sequence == std::optional<std::int64_t>(0));
  CHECK(consumed[0].trace_id == std::optional<std::string>("job-7"));
  CHECK(consumed[0].interceptor_errors == std::vector<std::string>{"qthrower: no consume"});

  // async_take's handler runs with the item's trace id current.
  {
    zkr::trace_scope scope("job-8");
    REQUIRE(q.put("next"));
  }
  mailbox<std::optional<std::string>> seen;
  q.async_take(5s, [&](zkr::result<std::string> r) {
    CHECK(r);
    seen.push(zkr::current_trace_id());
  });
  auto cur = seen.pop();
  REQUIRE(cur);
  CHECK(*cur == std::optional<std::string>("job-8"));
  CHECK_FALSE(zkr::current_trace_id().has_value()); // not leaked to this thread

  // A truncated envelope is a decode error naming the item; the queue flows on.
  auto bad = s.create(path + "/b-0000000000/i-", magic + "abc", zkr::create_options(zkr::create_mode::persistent_sequential));
  REQUIRE(bad);
  REQUIRE(q.put("after"));
  auto e = q.take(5s);
  REQUIRE_FALSE(e);
  CHECK(e.error() == zkr::errc::decode_failed);
  CHECK(e.error().message().find(bad.value().path) != std::string::npos);
  CHECK(q.take(5s).value() == "after");
  REQUIRE(s.remove_recursive(zkr::parent(path)));
}

TEST_CASE("tracing: locking queue items carry their trace id to the claim, with lane and key") {
  auto s = connect_shared();
  auto path = unique_root("icp-locking") + "/q";
  auto qlog = std::make_shared<queue_log>();
  zkr::queue_options o;
  o.interceptors = {qlog};
  zkr::locking_queue<std::string> q(s, path, o);
  {
    zkr::trace_scope scope("task-1");
    REQUIRE(q.put("fetch 17", 3));
  }
  REQUIRE(q.put("fetch 18", 3));
  auto produced = qlog->get(true);
  REQUIRE(produced.size() == 2);
  CHECK(produced[0].item_key == "p-003/b-0000000000/i-0000000000");
  CHECK(produced[0].priority == std::optional<int>(3));
  CHECK(produced[0].trace_id == std::optional<std::string>("task-1"));
  auto item = q.take(5s);
  REQUIRE(item);
  CHECK(item.value().value() == "fetch 17");
  CHECK(item.value().trace_id() == std::optional<std::string>("task-1"));
  auto item2 = q.take(5s);
  REQUIRE(item2);
  CHECK_FALSE(item2.value().trace_id().has_value());
  auto consumed = qlog->get(false);
  REQUIRE(consumed.size() == 2);
  CHECK(consumed[0].role == "consume");
  CHECK(consumed[0].queue_path == path);
  CHECK(consumed[0].item_key == "p-003/b-0000000000/i-0000000000");
  CHECK(consumed[0].bucket == std::optional<std::uint64_t>(0));
  CHECK(consumed[0].sequence == std::optional<std::int64_t>(0));
  CHECK(consumed[0].trace_id == std::optional<std::string>("task-1"));
  REQUIRE(item.value().ack());
  REQUIRE(item2.value().ack());
  REQUIRE(s.remove_recursive(zkr::parent(path)));
}

TEST_CASE("tracing: a queue item's trace id is seen by the producer's interceptors in one process and the "
          "consumer's in another" *
          doctest::skip(tracing_program().empty())) {
  namespace fs = std::filesystem;
  const std::string program = tracing_program();
  auto dir = zkr::detail::temp_dir::create("zkrecipes-icp-");
  REQUIRE(dir);
  const fs::path trace_file = dir.value().path() / "producer.jsonl";
  const fs::path out = dir.value().path() / "producer.out";
  const std::string connect = shared_server().connect_string();
  auto path = unique_root("icp-2p") + "/jobs";
  const std::string id = zkr::make_trace_id();
  REQUIRE(zkr::valid_trace_id(id));

  auto child = zkr::detail::child_process::spawn({program, "--produce", connect, path, id, trace_file.string()},
                                                 dir.value().path(), out);
  REQUIRE_MESSAGE(child.has_value(), (child ? "" : child.error().message()));
  const int child_pid = child.value().pid();
  const bool ended = child.value().wait_for(60s);
  if (!ended) child.value().kill_and_reap(); // that pid only
  const int st = child.value().last_status();
  REQUIRE_MESSAGE((ended && WIFEXITED(st) && WEXITSTATUS(st) == 0),
                  "producer " << child.value().describe_status() << ":\n" << zkr::detail::tail_of_file(out, 20));

  // Consume here, over an intercepted handle with our own writer.
  auto s = connect_shared();
  auto log = std::make_shared<call_log>();
  std::vector<std::string> consumer_lines;
  std::mutex lm;
  auto writer = std::make_shared<zkr::trace_writer>([&](std::string_view line) {
    std::lock_guard lk(lm);
    consumer_lines.emplace_back(line);
  });
  auto qlog = std::make_shared<queue_log>();
  zkr::session t = s.intercepted(chain_of({writer, std::make_shared<recorder>("A", log)}));
  zkr::queue_options o;
  o.interceptors = {qlog, writer};
  std::optional<zkr::fifo_item<std::string>> taken;
  {
    zkr::fifo_queue<std::string> q(t, path, o);
    auto it = q.take_item(15s);
    REQUIRE(it);
    taken = std::move(it).value();
    // Going on under the producer's trace id: this write is part of the request.
    zkr::trace_scope scope(taken->trace_id);
    REQUIRE(t.create(std::string(zkr::parent(path)) + "/done", taken->value));
  }
  CHECK(taken->value == "resize image 42");
  CHECK(taken->trace_id == std::optional<std::string>(id));
  auto consumed = qlog->get(false);
  REQUIRE(consumed.size() == 1);
  CHECK(consumed[0].trace_id == std::optional<std::string>(id));
  CHECK(consumed[0].item_key == "b-0000000000/i-0000000000");
  bool follow_up = false;
  for (auto& r : log->all("A.after"))
    if (r.kind == "create" && r.path == std::string(zkr::parent(path)) + "/done") follow_up = r.trace_id == std::optional<std::string>(id);
  CHECK(follow_up);

  // The producer's log, written by the other process: its queue event and
  // its create carry the same id, and the same item key.
  auto lines = parse_lines(zkr::detail::read_file(trace_file));
  REQUIRE_FALSE(lines.empty());
  int produce_events = 0, creates = 0;
  for (auto& l : lines) {
    CHECK(l.at("pid").num() == double(child_pid)); // written by the other process
    if (l.at("event").str() == "queue") {
      ++produce_events;
      CHECK(l.at("role").str() == "produce");
      CHECK(l.at("queue").str() == path);
      CHECK(l.at("key").str() == consumed[0].item_key);
      CHECK(l.at("sequence").num() == 0);
      CHECK(l.at("trace_id").str() == id);
    } else if (l.at("kind").str() == "create" && l.at("path").str() == path + "/b-0000000000/i-") {
      ++creates;
      CHECK(l.at("trace_id").str() == id);
      CHECK(l.at("result").str() == "ok");
    }
  }
  CHECK(produce_events == 1);
  CHECK(creates == 1);
  // And our own log shows the consume event with the id.
  {
    std::lock_guard lk(lm);
    std::string all;
    for (auto& l : consumer_lines) all += l + "\n";
    auto ours = parse_lines(all);
    int consume_events = 0;
    for (auto& l : ours)
      if (l.at("event").str() == "queue") {
        ++consume_events;
        CHECK(l.at("role").str() == "consume");
        CHECK(l.at("trace_id").str() == id);
      }
    CHECK(consume_events == 1);
  }
  REQUIRE(s.remove_recursive(zkr::parent(path)));
}
