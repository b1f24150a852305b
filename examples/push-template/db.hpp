// push-template: the database layer. Two backends behind one small
// interface, SQLite (the embedded default, a file) and MariaDB/MySQL (a
// server, through MariaDB Connector/C), and on top of it the schema, its
// migrations and the catalogue's reads and edits.
//
//   --db sqlite:/path/file.db
//   --db mysql://user[:password]@host[:port]/database
//
// Errors are thrown as db_error, whose message names the statement's purpose
// and the backend's own message; the programs catch it at their boundary.
#pragma once

#include "catalogue.hpp"

#include <mysql.h>
#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace push_template {

struct db_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

using sql_value = std::optional<std::string>; ///< nullopt is NULL
using sql_row = std::vector<sql_value>;

/// One connection. Statements use `?` placeholders, bound as text (both
/// engines convert text to the column's type); no `?` may appear in literals.
class sql_connection {
public:
  virtual ~sql_connection() = default;
  void exec(std::string_view sql, const std::vector<sql_value>& args = {}) { (void)run(sql, args, false); }
  std::vector<sql_row> query(std::string_view sql, const std::vector<sql_value>& args = {}) {
    return run(sql, args, true);
  }
  /// A write transaction (SQLite: BEGIN IMMEDIATE, so writers queue at the
  /// start instead of failing at commit).
  virtual void begin_write() = 0;
  /// A read transaction: one consistent snapshot for a whole load.
  virtual void begin_read() = 0;
  virtual void commit() { exec("COMMIT"); }
  virtual void rollback() noexcept = 0;
  /// Serialises schema migrations between processes (released by commit or
  /// rollback for SQLite, explicitly for MariaDB).
  virtual void lock_schema() = 0;
  virtual void unlock_schema() noexcept {}
  /// Extra words for CREATE TABLE.
  virtual std::string table_options() const { return {}; }
  virtual const char* backend() const = 0;

protected:
  virtual std::vector<sql_row> run(std::string_view sql, const std::vector<sql_value>& args, bool rows) = 0;
};

// ---------------------------------------------------------------- SQLite

class sqlite_connection final : public sql_connection {
public:
  sqlite_connection(const std::string& file, bool create) {
    const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
    const int rc = sqlite3_open_v2(file.c_str(), &db_, flags, nullptr);
    if (rc != SQLITE_OK) {
      std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
      sqlite3_close(db_);
      db_ = nullptr;
      throw db_error("sqlite: cannot open " + file + ": " + msg);
    }
    // Several servers and an admin share the file: wait for a writer rather
    // than failing with SQLITE_BUSY at once.
    sqlite3_busy_timeout(db_, 5000);
    try {
      // The first statement is where a file that is not a database fails
      // (SQLITE_NOTADB). The destructor does not run for a constructor that
      // throws, so close here: a server retries a failed reload every
      // second, and each attempt would leak a handle and a descriptor.
      exec("PRAGMA journal_mode=WAL");
    } catch (...) {
      sqlite3_close(db_);
      db_ = nullptr;
      throw;
    }
  }
  ~sqlite_connection() override { sqlite3_close(db_); }
  sqlite_connection(const sqlite_connection&) = delete;
  sqlite_connection& operator=(const sqlite_connection&) = delete;

  void begin_write() override { exec("BEGIN IMMEDIATE"); }
  void begin_read() override { exec("BEGIN"); }
  void rollback() noexcept override { sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr); }
  void lock_schema() override { begin_write(); }
  const char* backend() const override { return "sqlite"; }

private:
  std::vector<sql_row> run(std::string_view sql, const std::vector<sql_value>& args, bool rows) override {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &st, nullptr) != SQLITE_OK)
      throw db_error("sqlite: " + std::string(sqlite3_errmsg(db_)) + " in: " + std::string(sql));
    std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> guard(st, sqlite3_finalize);
    for (std::size_t i = 0; i < args.size(); ++i) {
      const int idx = static_cast<int>(i + 1);
      const int rc = args[i] ? sqlite3_bind_text(st, idx, args[i]->data(), static_cast<int>(args[i]->size()),
                                                 SQLITE_TRANSIENT)
                             : sqlite3_bind_null(st, idx);
      if (rc != SQLITE_OK) throw db_error("sqlite: bind: " + std::string(sqlite3_errmsg(db_)));
    }
    std::vector<sql_row> out;
    for (;;) {
      const int rc = sqlite3_step(st);
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) throw db_error("sqlite: " + std::string(sqlite3_errmsg(db_)) + " in: " + std::string(sql));
      if (!rows) continue;
      sql_row r;
      const int n = sqlite3_column_count(st);
      for (int c = 0; c < n; ++c) {
        if (sqlite3_column_type(st, c) == SQLITE_NULL) {
          r.emplace_back(std::nullopt);
        } else {
          const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(st, c));
          r.emplace_back(std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(st, c))));
        }
      }
      out.push_back(std::move(r));
    }
    return out;
  }

  sqlite3* db_ = nullptr;
};

// ---------------------------------------------------------------- MariaDB

/// Connector/C's global state, for the life of main(): set up before any
/// thread, released at the end (so leak checkers see nothing of it).
struct mysql_library {
  mysql_library() { mysql_library_init(0, nullptr, nullptr); }
  ~mysql_library() { mysql_library_end(); }
  mysql_library(const mysql_library&) = delete;
  mysql_library& operator=(const mysql_library&) = delete;
};

struct mysql_url {
  std::string user, password, host, database;
  unsigned port = 3306;
};

/// Parses `mysql://user[:password]@host[:port]/database` (also `mariadb://`).
inline mysql_url parse_mysql_url(std::string_view url) {
  auto bad = [&](const std::string& why) {
    return db_error("bad database URL (" + why + "); expected mysql://user[:password]@host[:port]/database");
  };
  std::string_view rest;
  if (url.rfind("mysql://", 0) == 0) rest = url.substr(8);
  else if (url.rfind("mariadb://", 0) == 0) rest = url.substr(10);
  else throw bad("scheme");
  mysql_url u;
  const auto at = rest.rfind('@');
  if (at == std::string_view::npos) throw bad("no user@");
  auto cred = rest.substr(0, at);
  rest = rest.substr(at + 1);
  const auto colon = cred.find(':');
  u.user = std::string(cred.substr(0, colon));
  if (colon != std::string_view::npos) u.password = std::string(cred.substr(colon + 1));
  if (u.user.empty()) throw bad("empty user");
  const auto slash = rest.find('/');
  if (slash == std::string_view::npos) throw bad("no /database");
  auto hostport = rest.substr(0, slash);
  u.database = std::string(rest.substr(slash + 1));
  if (u.database.empty() || !valid_name(u.database)) throw bad("database name");
  const auto pc = hostport.rfind(':');
  u.host = std::string(hostport.substr(0, pc));
  if (pc != std::string_view::npos) {
    const auto p = hostport.substr(pc + 1);
    unsigned v = 0;
    if (p.empty() || p.size() > 5) throw bad("port");
    for (char c : p) {
      if (c < '0' || c > '9') throw bad("port");
      v = v * 10 + static_cast<unsigned>(c - '0');
    }
    if (v == 0 || v > 65535) throw bad("port");
    u.port = v;
  }
  if (u.host.empty()) throw bad("empty host");
  return u;
}

class mariadb_connection final : public sql_connection {
public:
  explicit mariadb_connection(mysql_url u) : where_(u.user + "@" + u.host + ":" + std::to_string(u.port) + "/" + u.database) {
    // A password in the URL shows in `ps`; PUSH_DB_PASSWORD keeps it out.
    if (const char* pw = std::getenv("PUSH_DB_PASSWORD"); u.password.empty() && pw != nullptr) u.password = pw;
    db_ = mysql_init(nullptr);
    if (db_ == nullptr) throw db_error("mariadb: out of memory");
    // Bounded: a dead server must not hang a reload or the admin.
    unsigned int t = 5;
    mysql_options(db_, MYSQL_OPT_CONNECT_TIMEOUT, &t);
    unsigned int rw = 10;
    mysql_options(db_, MYSQL_OPT_READ_TIMEOUT, &rw);
    mysql_options(db_, MYSQL_OPT_WRITE_TIMEOUT, &rw);
    mysql_options(db_, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    if (mysql_real_connect(db_, u.host.c_str(), u.user.c_str(), u.password.c_str(), u.database.c_str(), u.port,
                           nullptr, 0) == nullptr) {
      std::string msg = mysql_error(db_);
      mysql_close(db_);
      db_ = nullptr;
      throw db_error("mariadb: cannot connect to " + where_ + ": " + msg);
    }
  }
  ~mariadb_connection() override {
    if (db_) mysql_close(db_);
  }
  mariadb_connection(const mariadb_connection&) = delete;
  mariadb_connection& operator=(const mariadb_connection&) = delete;

  void begin_write() override { exec("START TRANSACTION"); }
  void begin_read() override { exec("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"); }
  void rollback() noexcept override { mysql_query(db_, "ROLLBACK"); }
  void lock_schema() override {
    auto r = query("SELECT GET_LOCK('push_template_schema', 10)");
    if (r.empty() || !r[0][0] || *r[0][0] != "1") throw db_error("mariadb: schema lock not granted within 10 s");
  }
  void unlock_schema() noexcept override { mysql_query(db_, "DO RELEASE_LOCK('push_template_schema')"); }
  std::string table_options() const override { return " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"; }
  const char* backend() const override { return "mariadb"; }

private:
  // Placeholders become quoted literals escaped by the server's rules for the
  // connection's character set (mysql_real_escape_string), which is simpler
  // than the prepared-statement API and as safe for text values.
  std::string expand(std::string_view sql, const std::vector<sql_value>& args) {
    std::string out;
    std::size_t next = 0;
    for (char c : sql) {
      if (c != '?') {
        out += c;
        continue;
      }
      if (next >= args.size()) throw db_error("mariadb: too few arguments for: " + std::string(sql));
      const auto& a = args[next++];
      if (!a) {
        out += "NULL";
        continue;
      }
      std::string buf(a->size() * 2 + 1, '\0');
      const auto n = mysql_real_escape_string(db_, buf.data(), a->data(), static_cast<unsigned long>(a->size()));
      out += '\'';
      out.append(buf.data(), n);
      out += '\'';
    }
    if (next != args.size()) throw db_error("mariadb: too many arguments for: " + std::string(sql));
    return out;
  }

  std::vector<sql_row> run(std::string_view sql, const std::vector<sql_value>& args, bool rows) override {
    const std::string text = expand(sql, args);
    if (mysql_real_query(db_, text.data(), static_cast<unsigned long>(text.size())) != 0)
      throw db_error("mariadb " + where_ + ": " + mysql_error(db_) + " in: " + std::string(sql));
    MYSQL_RES* res = mysql_store_result(db_);
    std::vector<sql_row> out;
    if (res == nullptr) {
      if (mysql_field_count(db_) != 0) throw db_error("mariadb " + where_ + ": " + mysql_error(db_));
      return out;
    }
    std::unique_ptr<MYSQL_RES, void (*)(MYSQL_RES*)> guard(res, mysql_free_result);
    if (!rows) return out;
    const unsigned n = mysql_num_fields(res);
    while (MYSQL_ROW row = mysql_fetch_row(res)) {
      const unsigned long* len = mysql_fetch_lengths(res);
      sql_row r;
      for (unsigned c = 0; c < n; ++c) {
        if (row[c] == nullptr) r.emplace_back(std::nullopt);
        else r.emplace_back(std::string(row[c], len[c]));
      }
      out.push_back(std::move(r));
    }
    return out;
  }

  std::string where_;
  MYSQL* db_ = nullptr;
};

/// Opens `sqlite:<file>` or `mysql://...`. Without `create`, a missing
/// SQLite file is an error rather than a new empty database (a server's
/// reload must not make one where the real one went missing).
inline std::unique_ptr<sql_connection> open_database(std::string_view url, bool create = true) {
  if (url.rfind("sqlite:", 0) == 0) {
    std::string file(url.substr(7));
    if (file.rfind("//", 0) == 0) file.erase(0, 2); // sqlite:///abs/path
    if (file.empty()) throw db_error("bad database URL: sqlite: needs a file, as in sqlite:/var/lib/push/push.db");
    return std::make_unique<sqlite_connection>(file, create);
  }
  if (url.rfind("mysql://", 0) == 0 || url.rfind("mariadb://", 0) == 0)
    return std::make_unique<mariadb_connection>(parse_mysql_url(url));
  throw db_error("bad database URL " + quote_name(url) + ": expected sqlite:<file> or mysql://user[:password]@host[:port]/database");
}

// ---------------------------------------------------------------- schema

/// The migrations, in order; schema_version holds how many have run. Only
/// ever append: a deployed database has run the earlier ones.
inline std::vector<std::string> migration(const sql_connection& c, int step) {
  const std::string opt = c.table_options();
  switch (step) {
  // IF NOT EXISTS in every step: MariaDB commits each DDL statement by itself,
  // so a step that failed half way (a lost connection, a full disk) has left
  // some of its work behind, and running it again must finish it rather than
  // fail on what is there. (SQLite rolls a failed step back whole.)
  case 0: // 1: the catalogue
    return {"CREATE TABLE IF NOT EXISTS categories (name VARCHAR(64) NOT NULL PRIMARY KEY, description TEXT NOT NULL)" +
                opt,
            "CREATE TABLE IF NOT EXISTS parameters (category VARCHAR(64) NOT NULL, name VARCHAR(64) NOT NULL, "
            "position INTEGER NOT NULL, required INTEGER NOT NULL, default_value TEXT NULL, "
            "PRIMARY KEY (category, name))" + opt,
            "CREATE TABLE IF NOT EXISTS templates (category VARCHAR(64) NOT NULL, kind VARCHAR(32) NOT NULL, "
            "body TEXT NOT NULL, PRIMARY KEY (category, kind))" + opt};
  case 1: // 2: when a category last changed (shown by push-admin list)
    // SQLite has no ADD COLUMN IF NOT EXISTS; its step is transactional.
    if (std::string_view(c.backend()) == "sqlite")
      return {"ALTER TABLE categories ADD COLUMN updated_ms BIGINT NOT NULL DEFAULT 0"};
    return {"ALTER TABLE categories ADD COLUMN IF NOT EXISTS updated_ms BIGINT NOT NULL DEFAULT 0"};
  default: return {};
  }
}
inline constexpr int schema_version = 2;

/// Creates or upgrades the schema; returns the version found before. Several
/// programs may start at once: the schema lock serialises them and the
/// version is read again under it.
inline int migrate(sql_connection& c) {
  c.exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)" + c.table_options());
  c.lock_schema();
  struct unlock {
    sql_connection& c;
    bool done = false;
    ~unlock() {
      if (!done) c.rollback();
      c.unlock_schema();
    }
  } guard{c};
  auto rows = c.query("SELECT version FROM schema_version");
  int found = 0;
  if (rows.empty()) c.exec("INSERT INTO schema_version (version) VALUES (0)");
  else if (rows.size() > 1 || !rows[0][0]) throw db_error("schema_version must hold exactly one row");
  else found = std::stoi(*rows[0][0]);
  if (found > schema_version)
    throw db_error("the database's schema is version " + std::to_string(found) + ", newer than this program's (" +
                   std::to_string(schema_version) + ")");
  for (int v = found; v < schema_version; ++v) {
    for (const auto& sql : migration(c, v)) c.exec(sql);
    c.exec("UPDATE schema_version SET version = ?", {std::to_string(v + 1)});
  }
  if (std::string_view(c.backend()) == "sqlite") c.commit(); // MariaDB: DDL commits by itself
  guard.done = true;
  return found;
}

// ---------------------------------------------------------------- catalogue

inline std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// Reads every category in one snapshot.
inline catalogue load_catalogue(sql_connection& c) {
  catalogue out;
  c.begin_read();
  try {
    for (auto& r : c.query("SELECT name, description FROM categories")) {
      category cat;
      cat.name = r[0].value_or("");
      cat.description = r[1].value_or("");
      out.categories.emplace(cat.name, std::move(cat));
    }
    for (auto& r : c.query("SELECT category, name, required, default_value FROM parameters ORDER BY category, position")) {
      auto it = out.categories.find(r[0].value_or(""));
      if (it == out.categories.end()) continue; // left by a partial delete: ignore
      it->second.params.push_back({r[1].value_or(""), r[2].value_or("0") != "0", r[3]});
    }
    for (auto& r : c.query("SELECT category, kind, body FROM templates")) {
      auto it = out.categories.find(r[0].value_or(""));
      if (it == out.categories.end() || !is_template_kind(r[1].value_or(""))) continue;
      it->second.templates[*r[1]] = r[2].value_or("");
    }
    c.commit();
  } catch (...) {
    c.rollback();
    throw;
  }
  for (auto& [name, cat] : out.categories) compile_templates(cat); // once per load, not per request
  return out;
}

/// One edit in one write transaction; rolled back if `f` throws.
template <class F> void in_transaction(sql_connection& c, F&& f) {
  c.begin_write();
  try {
    f();
    c.commit();
  } catch (...) {
    c.rollback();
    throw;
  }
}

inline bool category_exists(sql_connection& c, const std::string& name) {
  return !c.query("SELECT 1 FROM categories WHERE name = ?", {name}).empty();
}

inline void require_category(sql_connection& c, const std::string& name) {
  if (!category_exists(c, name)) throw db_error("no category " + quote_name(name));
}

inline void touch(sql_connection& c, const std::string& cat) {
  c.exec("UPDATE categories SET updated_ms = ? WHERE name = ?", {std::to_string(now_ms()), cat});
}

inline void add_category(sql_connection& c, const std::string& name, const std::string& description) {
  if (!valid_name(name)) throw db_error("invalid category name " + quote_name(name) + " (1-64 of A-Z a-z 0-9 _ -)");
  in_transaction(c, [&] {
    if (category_exists(c, name)) throw db_error("category " + quote_name(name) + " exists already");
    c.exec("INSERT INTO categories (name, description, updated_ms) VALUES (?, ?, ?)",
           {name, description, std::to_string(now_ms())});
  });
}

inline void describe_category(sql_connection& c, const std::string& name, const std::string& description) {
  in_transaction(c, [&] {
    require_category(c, name);
    c.exec("UPDATE categories SET description = ? WHERE name = ?", {description, name});
    touch(c, name);
  });
}

inline void remove_category(sql_connection& c, const std::string& name) {
  in_transaction(c, [&] {
    require_category(c, name);
    c.exec("DELETE FROM templates WHERE category = ?", {name});
    c.exec("DELETE FROM parameters WHERE category = ?", {name});
    c.exec("DELETE FROM categories WHERE name = ?", {name});
  });
}

/// Adds a parameter or changes one (keeping its position).
inline void set_parameter(sql_connection& c, const std::string& cat, const std::string& name, bool required,
                          const std::optional<std::string>& default_value) {
  if (!valid_name(name)) throw db_error("invalid parameter name " + quote_name(name) + " (1-64 of A-Z a-z 0-9 _ -)");
  if (required && default_value)
    throw db_error("parameter " + quote_name(name) + ": a required parameter has no default (make it optional)");
  if (default_value)
    if (auto bad = check_value(name, *default_value)) throw db_error("default of " + *bad);
  in_transaction(c, [&] {
    require_category(c, cat);
    const std::string req = required ? "1" : "0";
    if (!c.query("SELECT 1 FROM parameters WHERE category = ? AND name = ?", {cat, name}).empty()) {
      c.exec("UPDATE parameters SET required = ?, default_value = ? WHERE category = ? AND name = ?",
             {req, default_value, cat, name});
    } else {
      auto n = c.query("SELECT COUNT(*) FROM parameters WHERE category = ?", {cat});
      if (std::stoul(n.at(0).at(0).value_or("0")) >= max_params)
        throw db_error("category " + quote_name(cat) + " has " + std::to_string(max_params) + " parameters already");
      auto pos = c.query("SELECT COALESCE(MAX(position), 0) + 1 FROM parameters WHERE category = ?", {cat});
      c.exec("INSERT INTO parameters (category, name, position, required, default_value) VALUES (?, ?, ?, ?, ?)",
             {cat, name, pos.at(0).at(0), req, default_value});
    }
    touch(c, cat);
  });
}

inline void remove_parameter(sql_connection& c, const std::string& cat, const std::string& name) {
  in_transaction(c, [&] {
    require_category(c, cat);
    if (c.query("SELECT 1 FROM parameters WHERE category = ? AND name = ?", {cat, name}).empty())
      throw db_error("category " + quote_name(cat) + " has no parameter " + quote_name(name));
    c.exec("DELETE FROM parameters WHERE category = ? AND name = ?", {cat, name});
    touch(c, cat);
  });
}

inline void set_template(sql_connection& c, const std::string& cat, const std::string& kind, const std::string& body) {
  if (!is_template_kind(kind)) {
    std::string kinds;
    for (auto k : template_kinds) kinds += (kinds.empty() ? "" : ", ") + std::string(k);
    throw db_error("unknown template kind " + quote_name(kind) + " (one of " + kinds + ")");
  }
  if (body.size() > 60000) throw db_error("template is longer than 60000 bytes");
  if (auto e = check_template(body)) throw db_error("template for " + quote_name(kind) + " does not parse: " + *e);
  in_transaction(c, [&] {
    require_category(c, cat);
    if (!c.query("SELECT 1 FROM templates WHERE category = ? AND kind = ?", {cat, kind}).empty())
      c.exec("UPDATE templates SET body = ? WHERE category = ? AND kind = ?", {body, cat, kind});
    else
      c.exec("INSERT INTO templates (category, kind, body) VALUES (?, ?, ?)", {cat, kind, body});
    touch(c, cat);
  });
}

inline void remove_template(sql_connection& c, const std::string& cat, const std::string& kind) {
  in_transaction(c, [&] {
    require_category(c, cat);
    if (c.query("SELECT 1 FROM templates WHERE category = ? AND kind = ?", {cat, kind}).empty())
      throw db_error("category " + quote_name(cat) + " has no template for " + quote_name(kind));
    c.exec("DELETE FROM templates WHERE category = ? AND kind = ?", {cat, kind});
    touch(c, cat);
  });
}

} // namespace push_template
