// SQLite backend of AlertStore.
//
// Threading: two connections to the same file. The writer connection, behind write_mutex_,
// serves insert(), insert_batches() (one transaction for a whole group of batches) and the
// migrations; the reader connection, behind read_mutex_, serves
// query() and count() and is opened query_only (aggregate() and groups() have a small pool of
// readers of their own, see ReaderPool). In WAL mode a reader sees the last committed
// snapshot and neither blocks nor is blocked by the writer, so HTTP queries never wait for an
// ingest batch (they only wait for each other, which is cheap: a query returns at most
// kMaxQueryLimit rows). A Poco::Data::Session is not safe to share unlocked, hence a mutex per
// connection rather than none.
//
// Every value reaches SQLite as a bound parameter; the only SQL text assembled at run time is
// the WHERE clause of the list's filters (filter_sql(), shared by query(), aggregate() and
// groups()) and the aggregation queries around it (rollup.h), built from fixed fragments,
// "?" placeholders and limits that are our own integers.
#include "senningen/collector/sqlite_store.h"

#include <Poco/Data/SQLite/Connector.h>
#include <Poco/Data/SQLite/Utility.h>
#include <Poco/Data/Session.h>
#include <Poco/Exception.h>
#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "filter_sql.h"
#include "rollup.h"
#include "senningen/common/json_codec.h"
#include "senningen/common/log.h"
#include "senningen/common/record_codec.h"

namespace senningen::collector {

namespace {

using common::ErrorCode;
using common::make_error;
using Poco::Data::Session;
using Poco::Data::Keywords::into;
using Poco::Data::Keywords::now;
using Poco::Data::Keywords::use;

// Long enough to ride out another process's checkpoint or a long batch, short enough that a
// wedged database shows up as an error rather than a hung ingest thread.
constexpr int kBusyTimeoutMs = 5000;
// Poco's login timeout: how long its open() keeps retrying. probe_open() has already shown
// that the file opens, so this only bounds a race with someone removing it.
constexpr std::size_t kOpenTimeoutSeconds = 2;

struct Migration {
    int version;
    std::string_view description;
    std::array<std::string_view, 12> statements;  // empty entries are skipped
    // Run after the statements, in the same transaction, for what SQL alone cannot do; false
    // with a message in the string fails the migration.
    bool (*backfill)(sqlite3*, std::string&) = nullptr;
};

bool backfill_migration_7(sqlite3* db, std::string& error);

// Append only: a released migration is never edited, a change is a new migration.
constexpr std::array kMigrations = {
    Migration{1,
              "alerts table and its query indexes",
              {
                  "CREATE TABLE alerts ("
                  " id TEXT PRIMARY KEY NOT NULL,"
                  " agent_id TEXT NOT NULL,"
                  " ts_ns INTEGER NOT NULL,"
                  " severity INTEGER NOT NULL,"
                  " kind TEXT NOT NULL,"
                  " source TEXT NOT NULL,"
                  " rule TEXT NOT NULL,"
                  " category TEXT NOT NULL,"
                  " pack TEXT NOT NULL,"
                  " src_ip TEXT,"
                  " src_port INTEGER,"
                  " dest_ip TEXT,"
                  " dest_port INTEGER,"
                  " proto TEXT,"
                  " app_proto TEXT,"
                  " flow_id INTEGER,"
                  " received_ns INTEGER NOT NULL,"
                  " eve TEXT NOT NULL)",
                  "CREATE INDEX alerts_ts ON alerts (ts_ns)",
                  "CREATE INDEX alerts_agent_ts ON alerts (agent_id, ts_ns)",
                  "CREATE INDEX alerts_severity_ts ON alerts (severity, ts_ns)",
              }},
    Migration{2,
              "agents and their state changes",
              {
                  "CREATE TABLE agents ("
                  " id TEXT PRIMARY KEY NOT NULL,"
                  " state TEXT NOT NULL,"
                  " first_seen_ns INTEGER NOT NULL,"
                  " last_seen_ns INTEGER NOT NULL,"
                  " state_since_ns INTEGER NOT NULL,"
                  " sequence INTEGER NOT NULL, version TEXT NOT NULL, uptime_s INTEGER NOT NULL,"
                  " pack_version TEXT NOT NULL, interval_s INTEGER NOT NULL,"
                  " packets INTEGER NOT NULL, kernel_drops INTEGER NOT NULL,"
                  " bytes INTEGER NOT NULL, files_scanned INTEGER NOT NULL,"
                  " alerts INTEGER NOT NULL, queue_depth INTEGER NOT NULL,"
                  " queue_oldest_age_s INTEGER NOT NULL)",
                  "CREATE TABLE agent_events ("
                  " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                  " time_ns INTEGER NOT NULL,"
                  " agent_id TEXT NOT NULL,"
                  " event TEXT NOT NULL,"
                  " detail TEXT NOT NULL)",
                  "CREATE INDEX agent_events_agent ON agent_events (agent_id, seq)",
              }},
    // Encoding each alert as EVE JSON cost more than everything else on the ingest path put
    // together (Poco's JSON builds a tree per alert); new rows keep the alert in the compact
    // record format (common/record_codec.h) in body, and JSON is made when an alert is read
    // out through the API. Rows written before keep their eve text and are still read.
    // SQLite cannot drop a NOT NULL constraint, hence the table is rebuilt.
    Migration{3,
              "alert bodies in the compact record format; eve only in older rows",
              {
                  "CREATE TABLE alerts_v3 ("
                  " id TEXT PRIMARY KEY NOT NULL,"
                  " agent_id TEXT NOT NULL,"
                  " ts_ns INTEGER NOT NULL,"
                  " severity INTEGER NOT NULL,"
                  " kind TEXT NOT NULL,"
                  " source TEXT NOT NULL,"
                  " rule TEXT NOT NULL,"
                  " category TEXT NOT NULL,"
                  " pack TEXT NOT NULL,"
                  " src_ip TEXT,"
                  " src_port INTEGER,"
                  " dest_ip TEXT,"
                  " dest_port INTEGER,"
                  " proto TEXT,"
                  " app_proto TEXT,"
                  " flow_id INTEGER,"
                  " received_ns INTEGER NOT NULL,"
                  " eve TEXT,"
                  " body BLOB,"
                  " CHECK (eve IS NOT NULL OR body IS NOT NULL))",
                  "INSERT INTO alerts_v3 (id, agent_id, ts_ns, severity, kind, source, rule,"
                  " category, pack, src_ip, src_port, dest_ip, dest_port, proto, app_proto,"
                  " flow_id, received_ns, eve, body)"
                  " SELECT id, agent_id, ts_ns, severity, kind, source, rule, category, pack,"
                  " src_ip, src_port, dest_ip, dest_port, proto, app_proto, flow_id, received_ns,"
                  " eve, NULL FROM alerts",
                  "DROP TABLE alerts",
                  "ALTER TABLE alerts_v3 RENAME TO alerts",
                  "CREATE INDEX alerts_ts ON alerts (ts_ns)",
                  "CREATE INDEX alerts_agent_ts ON alerts (agent_id, ts_ns)",
                  "CREATE INDEX alerts_severity_ts ON alerts (severity, ts_ns)",
              }},
    Migration{4,
              "accounts, sessions, API tokens and the audit log",
              {
                  "CREATE TABLE users ("
                  " name TEXT PRIMARY KEY NOT NULL,"
                  " role INTEGER NOT NULL CHECK (role IN (1, 2, 3)),"
                  " password_hash TEXT NOT NULL,"
                  " created_ns INTEGER NOT NULL,"
                  " disabled INTEGER NOT NULL DEFAULT 0)",
                  "CREATE TABLE sessions ("
                  " digest TEXT PRIMARY KEY NOT NULL,"
                  " user_name TEXT NOT NULL REFERENCES users (name),"
                  " created_ns INTEGER NOT NULL,"
                  " expires_ns INTEGER NOT NULL,"
                  " last_seen_ns INTEGER NOT NULL)",
                  "CREATE INDEX sessions_user ON sessions (user_name)",
                  "CREATE TABLE api_tokens ("
                  " digest TEXT PRIMARY KEY NOT NULL,"
                  " user_name TEXT NOT NULL REFERENCES users (name),"
                  " label TEXT NOT NULL,"
                  " created_ns INTEGER NOT NULL,"
                  " last_used_ns INTEGER NOT NULL DEFAULT 0)",
                  "CREATE TABLE audit_log ("
                  " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                  " time_ns INTEGER NOT NULL,"
                  " actor TEXT NOT NULL,"
                  " action TEXT NOT NULL,"
                  " target TEXT NOT NULL,"
                  " old_value TEXT NOT NULL,"
                  " new_value TEXT NOT NULL)",
                  "CREATE INDEX audit_log_target ON audit_log (target, seq)",
              }},
    Migration{5,
              "alert triage: status, assignee and comments",
              {
                  "CREATE TABLE alert_triage ("
                  " alert_id TEXT PRIMARY KEY NOT NULL REFERENCES alerts (id),"
                  " status TEXT NOT NULL,"
                  " assignee TEXT NOT NULL,"
                  " updated_ns INTEGER NOT NULL)",
                  "CREATE INDEX alert_triage_status ON alert_triage (status)",
                  "CREATE INDEX alert_triage_assignee ON alert_triage (assignee)",
                  "CREATE TABLE alert_comments ("
                  " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                  " alert_id TEXT NOT NULL REFERENCES alerts (id),"
                  " time_ns INTEGER NOT NULL,"
                  " author TEXT NOT NULL,"
                  " text TEXT NOT NULL)",
                  "CREATE INDEX alert_comments_alert ON alert_comments (alert_id, seq)",
              }},
    // The alert list's filters (docs/collector.md, "GET /api/v1/alerts"). Addresses as 16
    // bytes (IPv4 mapped into ::ffff:0:0/96), so that a CIDR block is a range scan of an
    // index; text columns cannot do that. Free text both as a column (search_text, for a LIKE
    // walk in time order, quick for common text) and through a trigram index (FTS5, quick
    // for rare text); query() picks (tests/bench/alert_text measured both). Both are
    // filled for older rows here by functions the store registers on its connection
    // (register_functions), and by insert_group for new ones.
    Migration{6,
              "address and free-text filters: 16-byte addresses, trigram text index, rule index",
              {
                  "ALTER TABLE alerts ADD COLUMN src_bin BLOB",
                  "ALTER TABLE alerts ADD COLUMN dest_bin BLOB",
                  "ALTER TABLE alerts ADD COLUMN search_text TEXT",
                  "UPDATE alerts SET src_bin = senningen_ip16(src_ip),"
                  " dest_bin = senningen_ip16(dest_ip),"
                  " search_text = senningen_search_text(body, eve)",
                  "CREATE INDEX alerts_src_bin ON alerts (src_bin)",
                  "CREATE INDEX alerts_dest_bin ON alerts (dest_bin)",
                  "CREATE INDEX alerts_rule_ts ON alerts (rule, ts_ns)",
                  // Contentless: the text is alert_search_text(), kept only as the index;
                  // lower-cased by the store, hence case-sensitive here.
                  "CREATE VIRTUAL TABLE alerts_text USING fts5(text, content='',"
                  " tokenize='trigram case_sensitive 1')",
                  "INSERT INTO alerts_text (rowid, text)"
                  " SELECT rowid, search_text FROM alerts WHERE search_text IS NOT NULL",
              }},
    // Aggregations answer from hourly counts kept in the insert transaction, because a
    // GROUP BY over millions of alerts is too slow for the UI's chart (docs/collector.md,
    // "Aggregation and groups"); alert_hour_counts holds the same without agent and rule,
    // a few rows per hour. target is what related alerts are grouped on; file paths live only
    // in the encoded body, hence the backfill in C++.
    Migration{
        7,
        "hourly alert counts; alert targets for grouping",
        {
            "ALTER TABLE alerts ADD COLUMN target TEXT",
            "CREATE TABLE alert_counts ("
            " hour INTEGER NOT NULL,"
            " severity INTEGER NOT NULL,"
            " agent_id TEXT NOT NULL,"
            " rule TEXT NOT NULL,"
            " n INTEGER NOT NULL,"
            " PRIMARY KEY (hour, severity, agent_id, rule)) WITHOUT ROWID",
            // Covering (n included): agent- and rule-keyed counts never visit the table.
            "CREATE INDEX alert_counts_agent ON alert_counts"
            " (agent_id, hour, severity, rule, n)",
            "CREATE INDEX alert_counts_rule ON alert_counts (rule, hour, severity, agent_id, n)",
            "CREATE TABLE alert_hour_counts ("
            " hour INTEGER NOT NULL,"
            " severity INTEGER NOT NULL,"
            " n INTEGER NOT NULL,"
            " PRIMARY KEY (hour, severity)) WITHOUT ROWID",
            "INSERT INTO alert_counts (hour, severity, agent_id, rule, n)"
            " SELECT (ts_ns - (((ts_ns % 3600000000000) + 3600000000000) % 3600000000000)),"
            " severity, agent_id, rule, count(*) FROM alerts GROUP BY 1, 2, 3, 4",
            "CREATE TABLE alert_minute_counts ("
            " minute INTEGER NOT NULL,"
            " severity INTEGER NOT NULL,"
            " n INTEGER NOT NULL,"
            " PRIMARY KEY (minute, severity)) WITHOUT ROWID",
            "INSERT INTO alert_hour_counts (hour, severity, n)"
            " SELECT hour, severity, SUM(n) FROM alert_counts GROUP BY hour, severity",
        },
        backfill_migration_7},
    // The trigram index without token positions (detail=none): about half the index's upkeep
    // per inserted alert, the largest single cost of ingest after the table's own B-trees
    // (tests/bench/ingest/README.md). Without positions FTS5 answers no phrase, so the text
    // filter asks the index for rows holding every trigram of the text and checks the
    // substring with LIKE on search_text (add_text_condition). Rebuilt from search_text.
    Migration{8,
              "trigram text index without positions",
              {
                  "DROP TABLE alerts_text",
                  "CREATE VIRTUAL TABLE alerts_text USING fts5(text, content='',"
                  " tokenize='trigram case_sensitive 1', detail='none')",
                  "INSERT INTO alerts_text (rowid, text)"
                  " SELECT rowid, search_text FROM alerts WHERE search_text IS NOT NULL",
              }},
    // Metadata records for hunting (collector/metadata.h): the records, and their indicator
    // values keyed (value, time) so that a hunt reads the newest matches first, off the index.
    // "IF NOT EXISTS": the tests that undo an earlier migration run this one again.
    Migration{9,
              "metadata records and their indicator values",
              {
                  "CREATE TABLE IF NOT EXISTS metadata ("
                  " id INTEGER PRIMARY KEY AUTOINCREMENT,"
                  " agent_id TEXT NOT NULL,"
                  " ts_ns INTEGER NOT NULL,"
                  " received_ns INTEGER NOT NULL,"
                  " type TEXT NOT NULL,"
                  " uid TEXT,"
                  " flow_id TEXT,"
                  " digest TEXT NOT NULL,"
                  " json TEXT NOT NULL)",
                  "CREATE UNIQUE INDEX IF NOT EXISTS metadata_agent_digest"
                  " ON metadata (agent_id, digest)",
                  "CREATE INDEX IF NOT EXISTS metadata_received ON metadata (received_ns)",
                  "CREATE INDEX IF NOT EXISTS metadata_ts ON metadata (ts_ns, id)",
                  "CREATE INDEX IF NOT EXISTS metadata_uid ON metadata (uid) WHERE uid IS NOT NULL",
                  "CREATE TABLE IF NOT EXISTS metadata_values ("
                  " value TEXT NOT NULL,"
                  " ts_ns INTEGER NOT NULL,"
                  " record_id INTEGER NOT NULL,"
                  " PRIMARY KEY (value, ts_ns, record_id)) WITHOUT ROWID",
                  "CREATE INDEX IF NOT EXISTS metadata_values_record"
                  " ON metadata_values (record_id)",
              }},
};
static_assert(kMigrations.back().version == kSqliteSchemaVersion,
              "kSqliteSchemaVersion must name the last migration");

constexpr std::string_view kInsertSql =
    "INSERT OR IGNORE INTO alerts (id, agent_id, ts_ns, severity, kind, source, rule, category,"
    " pack, src_ip, src_port, dest_ip, dest_port, proto, app_proto, flow_id, received_ns, body,"
    " target, src_bin, dest_bin, search_text)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
// The free-text index row of an alert just inserted (migration 6).
constexpr std::string_view kInsertTextSql = "INSERT INTO alerts_text (rowid, text) VALUES (?, ?)";

// The writer's page cache. The indexes' hot pages (the right edges of the time-ordered ones,
// and whatever the id index touches) stay in memory; a fixed size, so memory stays bounded.
constexpr int kWriterCacheKiB = 64 * 1024;

common::Error database_error(const std::string& path, std::string_view what,
                             std::string_view detail) {
    return make_error(ErrorCode::kDatabase, "SQLite database '" + path + "': " + std::string(what) +
                                                ": " + std::string(detail));
}

// Poco's connector registry is process-wide; registering twice is harmless but pointless.
// Also turns off SQLite's memory statistics, which take a process-wide mutex on every one of
// its allocations (several per inserted row; the insert thread spent about 5% of its time in
// that mutex); nothing here reads them. sqlite3_config only works before SQLite is first
// used in the process: in a process that used it already (a test, the benchmark's floor) it
// answers SQLITE_MISUSE and changes nothing, which is harmless.
void register_connector() {
    static std::once_flag once;
    std::call_once(once, [] {
        sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
        Poco::Data::SQLite::Connector::registerConnector();
    });
}

// Poco's SQLite session retries a failed open until its login timeout runs out (60 s by
// default); opening once with the C API first makes a bad path fail at once, with
// SQLite's own message.
common::Result<void> probe_open(const std::string& path) {
    sqlite3* db = nullptr;
    const int rc = sqlite3_open_v2(
        path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI, nullptr);
    const std::string message = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);  // needed even after a failed open; a no-op on nullptr
    if (rc != SQLITE_OK) return database_error(path, "cannot open", message);
    return {};
}

// Per-connection settings; synchronous=NORMAL is durable against process crashes in WAL mode
// and loses at most the last commits on power loss, the usual trade for an event store.
// Throws Poco::Exception; the caller maps it.
std::string configure_connection(Session& session) {
    int busy = 0;
    // PRAGMA values cannot be bound parameters; this one is our own constant.
    session << "PRAGMA busy_timeout = " + std::to_string(kBusyTimeoutMs), into(busy), now;
    std::string mode;
    session << "PRAGMA journal_mode = WAL", into(mode), now;
    session << "PRAGMA synchronous = NORMAL", now;
    return mode;
}

// BEGIN IMMEDIATE takes the write lock up front. A deferred transaction that later upgrades
// from read to write gets SQLITE_BUSY at once, without the busy timeout, when another
// connection wrote in between; immediate waits its turn instead.
class WriteTransaction {
public:
    explicit WriteTransaction(Session& session) : session_(session) {
        session_ << "BEGIN IMMEDIATE", now;
    }
    WriteTransaction(const WriteTransaction&) = delete;
    WriteTransaction& operator=(const WriteTransaction&) = delete;
    ~WriteTransaction() {
        if (done_) return;
        try {
            session_ << "ROLLBACK", now;
        } catch (...) {  // NOLINT(bugprone-empty-catch): the error that got us here matters more
        }
    }

    void commit() {
        session_ << "COMMIT", now;
        done_ = true;
    }

private:
    Session& session_;
    bool done_ = false;
};

// senningen_ip16(TEXT): the address as 16 bytes (address_bytes), NULL for anything else.
void sql_ip16(sqlite3_context* context, int /*argc*/, sqlite3_value** argv) {
    const auto* text = sqlite3_value_text(argv[0]);
    const auto bytes = text == nullptr
                           ? std::nullopt
                           : address_bytes(std::string_view(
                                 reinterpret_cast<const char*>(text),
                                 static_cast<std::size_t>(sqlite3_value_bytes(argv[0]))));
    if (!bytes) {
        sqlite3_result_null(context);
        return;
    }
    sqlite3_result_blob(context, bytes->data(), static_cast<int>(bytes->size()), SQLITE_TRANSIENT);
}

// senningen_search_text(body, eve): alert_search_text() of a stored row, NULL when the row
// does not decode (it then cannot be found by free text, as it cannot be listed either).
void sql_search_text(sqlite3_context* context, int /*argc*/, sqlite3_value** argv) {
    common::Result<common::Alert> alert = common::make_error(ErrorCode::kParse, "no alert");
    if (sqlite3_value_type(argv[0]) != SQLITE_NULL) {
        alert = common::decode_alert_record(
            std::string_view(static_cast<const char*>(sqlite3_value_blob(argv[0])),
                             static_cast<std::size_t>(sqlite3_value_bytes(argv[0]))));
    } else if (const auto* eve = sqlite3_value_text(argv[1]); eve != nullptr) {
        alert = common::alert_from_json(
            std::string_view(reinterpret_cast<const char*>(eve),
                             static_cast<std::size_t>(sqlite3_value_bytes(argv[1]))));
    }
    if (!alert) {
        sqlite3_result_null(context);
        return;
    }
    const std::string text = alert_search_text(*alert);
    sqlite3_result_text(context, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
}

// The functions migration 6 fills older rows with.
common::Result<void> register_functions(Session& session, const std::string& path) {
    sqlite3* db = Poco::Data::SQLite::Utility::dbHandle(session);
    const int flags = SQLITE_UTF8 | SQLITE_DETERMINISTIC;
    if (sqlite3_create_function_v2(db, "senningen_ip16", 1, flags, nullptr, sql_ip16, nullptr,
                                   nullptr, nullptr) != SQLITE_OK ||
        sqlite3_create_function_v2(db, "senningen_search_text", 2, flags, nullptr, sql_search_text,
                                   nullptr, nullptr, nullptr) != SQLITE_OK) {
        return database_error(path, "cannot register SQL functions", sqlite3_errmsg(db));
    }
    return {};
}

// Throws Poco::Exception on SQL errors; returns an Error for a schema this build cannot read.
common::Result<void> migrate(Session& session, const std::string& path) {
    WriteTransaction tx(session);
    session << "CREATE TABLE IF NOT EXISTS schema_version ("
               " version INTEGER PRIMARY KEY NOT NULL,"
               " description TEXT NOT NULL,"
               " applied_ns INTEGER NOT NULL)",
        now;
    // Read inside the immediate transaction so that two collectors opening the same new file
    // cannot both apply migration 1.
    int current = 0;
    session << "SELECT COALESCE(MAX(version), 0) FROM schema_version", into(current), now;
    if (current > kSqliteSchemaVersion) {
        return make_error(ErrorCode::kUnsupported,
                          "SQLite database '" + path + "' has schema version " +
                              std::to_string(current) + ", newer than this build's " +
                              std::to_string(kSqliteSchemaVersion));
    }
    for (const Migration& m : kMigrations) {
        if (m.version <= current) continue;
        for (std::string_view sql : m.statements) {
            if (!sql.empty()) session << std::string(sql), now;
        }
        if (m.backfill != nullptr) {
            std::string error;
            if (!m.backfill(Poco::Data::SQLite::Utility::dbHandle(session), error)) {
                return database_error(path, "migration " + std::to_string(m.version) + " failed",
                                      error);
            }
        }
        int version = m.version;
        std::string description(m.description);
        Poco::Int64 applied = common::now_ns();
        session << "INSERT INTO schema_version (version, description, applied_ns)"
                   " VALUES (?, ?, ?)",
            use(version), use(description), use(applied), now;
    }
    tx.commit();
    return {};
}

// Inserts, queries and the agent tables go through SQLite's C API on the same connections
// (under the same mutexes): Poco's binding makes flat rows no simpler and costs per value.
class Sql {
public:
    Sql(sqlite3* db, std::string_view sql) : db_(db) {
        if (sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &stmt_, nullptr) !=
            SQLITE_OK) {
            error_ = sqlite3_errmsg(db);
        }
    }
    ~Sql() { sqlite3_finalize(stmt_); }
    Sql(const Sql&) = delete;
    Sql& operator=(const Sql&) = delete;

    Sql& bind(int i, std::int64_t v) {
        if (stmt_) sqlite3_bind_int64(stmt_, i, v);
        return *this;
    }
    Sql& bind(int i, const std::string& v) {
        if (stmt_)
            sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
        return *this;
    }
    // SQLITE_ROW, SQLITE_DONE, or an error (message in error()).
    int step() {
        if (!stmt_) return SQLITE_ERROR;
        const int rc = sqlite3_step(stmt_);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) error_ = sqlite3_errmsg(db_);
        return rc;
    }
    std::int64_t i64(int col) const { return sqlite3_column_int64(stmt_, col); }
    std::uint64_t u64(int col) const { return static_cast<std::uint64_t>(i64(col)); }
    std::string text(int col) const {
        const auto* p = sqlite3_column_text(stmt_, col);
        return p ? std::string(reinterpret_cast<const char*>(p),
                               static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col)))
                 : std::string();
    }
    bool is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
    std::string_view blob(int col) const {
        const void* p = sqlite3_column_blob(stmt_, col);
        return p ? std::string_view(static_cast<const char*>(p),
                                    static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col)))
                 : std::string_view();
    }
    const std::string& error() const { return error_; }
    sqlite3_stmt* handle() const { return stmt_; }

private:
    sqlite3* db_;
    sqlite3_stmt* stmt_ = nullptr;
    std::string error_;
};

bool exec(sqlite3* db, const char* sql, std::string& error) {
    char* msg = nullptr;
    if (sqlite3_exec(db, sql, nullptr, nullptr, &msg) == SQLITE_OK) return true;
    error = msg ? msg : "unknown error";
    sqlite3_free(msg);
    return false;
}

bool run(Sql& sql, std::string& error);

// Migration 7, after its statements (which are as many as a migration holds): per-minute
// totals from the stored alerts, and the targets. The target of file alerts is their path,
// which rows keep only inside the encoded body (or the EVE text of rows older than schema 3);
// a row that does not decode keeps no target, as query() skips it too.
bool backfill_migration_7(sqlite3* db, std::string& error) {
    const std::string minutes = "INSERT INTO alert_minute_counts (minute, severity, n) SELECT " +
                                std::string(detail::kMinuteOfRowSql) +
                                ", severity, count(*) FROM alerts GROUP BY 1, 2";
    if (!exec(db, minutes.c_str(), error) ||
        !exec(db, "UPDATE alerts SET target = dest_ip WHERE kind <> 'file'", error)) {
        return false;
    }
    Sql rows(db, "SELECT id, body, eve FROM alerts WHERE kind = 'file'");
    Sql update(db, "UPDATE alerts SET target = ? WHERE id = ?");
    int rc = 0;
    while ((rc = rows.step()) == SQLITE_ROW) {
        auto alert = rows.is_null(1) ? common::alert_from_json(rows.text(2))
                                     : common::decode_alert_record(rows.blob(1));
        if (!alert) continue;
        sqlite3_reset(update.handle());
        update.bind(1, group_target(*alert)).bind(2, rows.text(0));
        if (!run(update, error)) return false;
    }
    if (rc != SQLITE_DONE) {
        error = rows.error();
        return false;
    }
    return true;
}

// Connections of their own for aggregate() and groups(), opened on demand up to
// kAggregateReaders: in WAL mode readers neither block each other nor the writer, so twenty
// clients polling the chart run side by side instead of queueing behind the one reader
// connection the list uses (and behind each other's slow queries). query_only, as the reader.
constexpr std::size_t kAggregateReaders = 4;

class ReaderPool {
public:
    explicit ReaderPool(std::string path) : path_(std::move(path)) {}
    ~ReaderPool() {
        for (sqlite3* db : idle_) sqlite3_close(db);
    }
    ReaderPool(const ReaderPool&) = delete;
    ReaderPool& operator=(const ReaderPool&) = delete;

    class Lease {
    public:
        Lease(ReaderPool& pool, sqlite3* db) : pool_(&pool), db_(db) {}
        Lease(Lease&& other) noexcept
            : pool_(std::exchange(other.pool_, nullptr)), db_(std::exchange(other.db_, nullptr)) {}
        Lease(const Lease&) = delete;
        Lease& operator=(const Lease&) = delete;
        Lease& operator=(Lease&&) = delete;
        ~Lease() {
            if (pool_ != nullptr) pool_->give_back(db_);
        }
        sqlite3* get() const { return db_; }

    private:
        ReaderPool* pool_;
        sqlite3* db_;
    };

    common::Result<Lease> acquire() {
        std::unique_lock lock(mutex_);
        available_.wait(lock, [&] { return !idle_.empty() || open_ < kAggregateReaders; });
        if (!idle_.empty()) {
            sqlite3* db = idle_.back();
            idle_.pop_back();
            return Lease(*this, db);
        }
        ++open_;
        lock.unlock();
        sqlite3* db = nullptr;
        int rc =
            sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI, nullptr);
        std::string error;
        if (rc == SQLITE_OK) {
            sqlite3_busy_timeout(db, kBusyTimeoutMs);
            if (!exec(db, "PRAGMA query_only = ON", error)) rc = SQLITE_ERROR;
        } else {
            error = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
        }
        if (rc != SQLITE_OK) {
            sqlite3_close(db);
            {
                std::lock_guard relock(mutex_);
                --open_;
            }
            available_.notify_one();
            return database_error(path_, "cannot open a reader for aggregations", error);
        }
        return Lease(*this, db);
    }

private:
    void give_back(sqlite3* db) {
        {
            std::lock_guard lock(mutex_);
            idle_.push_back(db);
        }
        available_.notify_one();
    }

    const std::string path_;
    std::mutex mutex_;
    std::condition_variable available_;
    std::vector<sqlite3*> idle_;
    std::size_t open_ = 0;
};
// Checkpoints the WAL on a thread and a connection of its own. SQLite's automatic checkpoint
// runs inside the commit of the connection that pushed the WAL past its limit, i.e. on the
// ingest thread, where it cost about 7.5% of that thread (copying pages into the database
// file and syncing it) while the other core sat partly idle. So the writer connection's WAL
// hook (which replaces the automatic checkpoint: SQLite implements that with the same hook)
// only notes the WAL's size and wakes this thread, which runs PASSIVE checkpoints: they
// never wait for the writer or the readers, and copy what no reader still needs. The writer
// starts the WAL over from its beginning once a checkpoint has copied all of it, so the file
// stops growing. If it grows past kWalLimitPages all the same (a reader holding an old
// snapshot, or a writer outrunning the copies), a TRUNCATE checkpoint waits for the writer
// and the readers (up to the busy timeout) and empties it: the WAL stays bounded.
class WalCheckpointer {
public:
    // Below this many pages in the WAL a commit does not wake the thread (SQLite's default
    // automatic checkpoint threshold, about 4 MiB of 4 KiB pages).
    static constexpr int kCheckpointPages = 1000;
    // Past this many pages (about 256 MiB) the WAL is reset even if that makes the writer wait.
    static constexpr int kWalLimitPages = 64 * 1024;
    // With no commit to wake it, the thread still looks this often, to copy the last commits.
    static constexpr std::chrono::milliseconds kIdleCheck{1000};

    static common::Result<std::unique_ptr<WalCheckpointer>> start(const std::string& path) {
        sqlite3* db = nullptr;
        const int rc =
            sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI, nullptr);
        if (rc != SQLITE_OK) {
            std::string message = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
            sqlite3_close(db);
            return database_error(path, "cannot open the checkpoint connection", message);
        }
        sqlite3_busy_timeout(db, kBusyTimeoutMs);
        // A connection learns that the file is in WAL mode when it first reads it; before
        // that a checkpoint is a silent no-op (its log size comes back as -1).
        std::string error;
        sqlite3_stmt* mode = nullptr;
        bool wal = false;
        if (sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &mode, nullptr) == SQLITE_OK &&
            sqlite3_step(mode) == SQLITE_ROW) {
            const auto* text = sqlite3_column_text(mode, 0);
            wal = text != nullptr && std::string_view(reinterpret_cast<const char*>(text)) == "wal";
        }
        error = sqlite3_errmsg(db);
        sqlite3_finalize(mode);
        if (!wal) {
            sqlite3_close(db);
            return database_error(path, "checkpoint connection", "not in WAL mode: " + error);
        }
        return std::unique_ptr<WalCheckpointer>(new WalCheckpointer(path, db));
    }

    ~WalCheckpointer() {
        {
            const std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        wake_.notify_one();
        thread_.join();
        sqlite3_close(db_);
    }
    WalCheckpointer(const WalCheckpointer&) = delete;
    WalCheckpointer& operator=(const WalCheckpointer&) = delete;

    // Installs the hook on the writer connection DB (under the writer's lock); detach() before
    // this object goes away.
    void attach(sqlite3* db) { sqlite3_wal_hook(db, &WalCheckpointer::on_commit, this); }
    static void detach(sqlite3* db) { sqlite3_wal_hook(db, nullptr, nullptr); }

    std::uint64_t checkpoints() const { return checkpoints_.load(); }
    std::uint64_t truncations() const { return truncations_.load(); }

private:
    WalCheckpointer(std::string path, sqlite3* db)
        : path_(std::move(path)), db_(db), thread_([this] { run(); }) {}

    // sqlite3_wal_hook's callback, on the committing thread after each commit: cheap.
    static int on_commit(void* self, sqlite3* /*db*/, const char* /*name*/, int pages) {
        auto* c = static_cast<WalCheckpointer*>(self);
        bool wake = false;
        {
            const std::lock_guard lock(c->mutex_);
            c->wal_pages_ = pages;
            c->dirty_ = true;
            wake = pages >= kCheckpointPages;
        }
        if (wake) c->wake_.notify_one();
        return SQLITE_OK;
    }

    void run() {
        std::unique_lock lock(mutex_);
        while (!stopping_) {
            wake_.wait_for(lock, kIdleCheck,
                           [&] { return stopping_ || wal_pages_ >= kCheckpointPages; });
            if (stopping_) break;
            if (!dirty_) continue;
            const int pages = wal_pages_;
            dirty_ = false;
            wal_pages_ = 0;
            lock.unlock();
            checkpoint(pages >= kWalLimitPages ? SQLITE_CHECKPOINT_TRUNCATE
                                               : SQLITE_CHECKPOINT_PASSIVE);
            lock.lock();
        }
    }

    void checkpoint(int mode) {
        int log = 0;
        int copied = 0;
        int rc = sqlite3_wal_checkpoint_v2(db_, nullptr, mode, &log, &copied);
        if (rc == SQLITE_OK && mode == SQLITE_CHECKPOINT_PASSIVE && log >= kWalLimitPages) {
            // The passive copy could not catch up: reset the WAL, letting the writer wait.
            mode = SQLITE_CHECKPOINT_TRUNCATE;
            rc = sqlite3_wal_checkpoint_v2(db_, nullptr, mode, &log, &copied);
        }
        if (rc == SQLITE_OK && log < 0) {
            common::log_warn("store", "SQLite database '" + path_ +
                                          "': WAL checkpoint did not run (not in WAL mode?)");
            return;
        }
        if (rc == SQLITE_OK) {
            checkpoints_.fetch_add(1);
            if (mode == SQLITE_CHECKPOINT_TRUNCATE) truncations_.fetch_add(1);
            return;
        }
        // Busy (a long reader, or the writer kept the lock past the busy timeout): the next
        // commit tries again. Anything else is worth a line; neither loses data, the WAL
        // only grows until a checkpoint succeeds.
        if (rc != SQLITE_BUSY) {
            common::log_warn("store", "SQLite database '" + path_ +
                                          "': WAL checkpoint failed: " + sqlite3_errmsg(db_));
        }
        const std::lock_guard lock(mutex_);
        dirty_ = true;
    }

    const std::string path_;
    sqlite3* const db_;  // used by the thread only (and closed after it has stopped)
    std::mutex mutex_;
    std::condition_variable wake_;
    int wal_pages_ = 0;      // under mutex_: the WAL's size at the last commit
    bool dirty_ = false;     // under mutex_: a commit since the last checkpoint
    bool stopping_ = false;  // under mutex_
    std::atomic<std::uint64_t> checkpoints_{0};
    std::atomic<std::uint64_t> truncations_{0};
    std::thread thread_;  // last: starts once everything above is set
};

// The longest time slice query() gives the free-text walk before the index may finish.
constexpr std::chrono::milliseconds kMaxTextSlice{1000};

// How query() answers a free-text filter: a LIKE on each row's search_text as the rows come
// in the query's order, or the trigram index's set of matching rows.
enum class TextPath { kScan, kIndex };

class SqliteStore final : public AlertStore {
public:
    SqliteStore(std::string path, Session writer, Session reader, SqliteOptions options,
                std::unique_ptr<WalCheckpointer> checkpointer)
        : path_(std::move(path)),
          writer_(std::move(writer)),
          checkpointer_(std::move(checkpointer)),
          reader_(std::move(reader)),
          options_(options) {
        checkpointer_->attach(Poco::Data::SQLite::Utility::dbHandle(writer_));
    }
    ~SqliteStore() override {  // before the sessions close
        {
            const std::lock_guard lock(write_mutex_);
            WalCheckpointer::detach(Poco::Data::SQLite::Utility::dbHandle(writer_));
        }
        checkpointer_.reset();
        sqlite3_finalize(insert_stmt_);
        sqlite3_finalize(text_stmt_);
    }
    SqliteStore(const SqliteStore&) = delete;
    SqliteStore& operator=(const SqliteStore&) = delete;

    common::Result<InsertResult> insert(const std::vector<common::Alert>& alerts) override;
    common::Result<std::vector<InsertResult>> insert_batches(
        const std::vector<std::vector<common::Alert>>& batches) override;
    common::Result<std::vector<InsertResult>> insert_validated(
        const std::vector<ValidatedBatch>& batches) override;
    common::Result<std::vector<common::Alert>> query(const AlertQuery& q) override;
    common::Result<std::uint64_t> count() override;
    common::Result<AggregateResult> aggregate(const AggregateQuery& q) override;
    common::Result<std::vector<AlertGroup>> groups(const GroupQuery& q) override;
    std::uint64_t undecodable_rows() const override { return undecodable_.load(); }
    std::string backend_name() const override { return "sqlite"; }

    common::Result<void> record_heartbeat(const common::Heartbeat& heartbeat,
                                          std::int64_t received_ns) override;
    common::Result<void> set_agent_state(const std::string& agent_id, const std::string& state,
                                         std::int64_t at_ns, const std::string& detail) override;
    common::Result<std::vector<AgentStatus>> agents() override;
    common::Result<std::optional<AgentStatus>> agent(const std::string& agent_id) override;
    common::Result<std::vector<AgentEvent>> agent_events(const std::string& agent_id,
                                                         std::size_t limit) override;

    common::Result<void> add_user(const UserAccount& user) override;
    common::Result<std::optional<UserAccount>> find_user(const std::string& name) override;
    common::Result<std::vector<UserAccount>> users() override;
    common::Result<void> set_user_disabled(const std::string& name, bool disabled) override;
    common::Result<void> set_password_hash(const std::string& name,
                                           const std::string& password_hash) override;
    common::Result<void> add_session(const std::string& digest, const std::string& user,
                                     std::int64_t created_ns, std::int64_t expires_ns) override;
    common::Result<std::optional<UserAccount>> session_user(const std::string& digest,
                                                            std::int64_t now_ns) override;
    common::Result<void> delete_session(const std::string& digest) override;
    common::Result<void> add_api_token(const std::string& digest, const std::string& user,
                                       const std::string& label, std::int64_t created_ns) override;
    common::Result<std::optional<UserAccount>> token_user(const std::string& digest,
                                                          std::int64_t now_ns) override;
    common::Result<void> append_audit(const AuditEntry& entry) override;
    common::Result<std::vector<AuditEntry>> audit_entries(const std::string& target,
                                                          std::size_t limit) override;
    common::Result<std::map<std::string, AlertTriage>> triage_of(
        const std::vector<std::string>& ids) override;
    common::Result<std::vector<AuditEntry>> update_triage(const std::vector<std::string>& ids,
                                                          const TriageChange& change,
                                                          const std::string& actor,
                                                          std::int64_t at_ns) override;
    common::Result<void> add_comment(const std::string& alert_id,
                                     const AlertComment& comment) override;
    common::Result<std::vector<AlertComment>> comments(const std::string& alert_id) override;

    common::Result<std::vector<MetadataInsertResult>> insert_metadata(
        const std::vector<MetadataBatchIn>& batches, std::int64_t received_ns) override;
    common::Result<std::vector<StoredMetadata>> hunt_metadata(const MetadataQuery& q) override;
    common::Result<std::uint64_t> prune_metadata(const MetadataRetention& retention,
                                                 std::int64_t now_ns,
                                                 std::size_t max_delete) override;
    common::Result<std::uint64_t> metadata_count() override;

private:
    // The query in one of the ways of answering free text; with a DEADLINE, an
    // empty optional when it was reached first.
    common::Result<std::optional<std::vector<common::Alert>>> run_query(
        const AlertQuery& q, TextPath text_path,
        std::optional<std::chrono::steady_clock::time_point> deadline);
    // VALIDATE: check every alert first (callers that have not). Records are encoded for the
    // batches that come without them.
    common::Result<std::vector<InsertResult>> insert_group(
        const std::vector<ValidatedBatch>& batches, bool validate);
    common::Result<std::vector<UserAccount>> select_users(const std::string* only);
    // Runs BODY(db, error) -> bool in an immediate write transaction: committed when BODY
    // returns true, rolled back otherwise; a false without an error message is kNotFound
    // (NOT_FOUND's text), any other failure kDatabase naming WHAT.
    template <typename Body>
    common::Result<void> write(const std::string& what, const std::string& not_found, Body&& body);
    // The account behind a secret's DIGEST: SQL_SELECT finds it (digest, then now if it has a
    // second placeholder), SQL_TOUCH notes NOW_NS as its last use.
    common::Result<std::optional<UserAccount>> secret_user(std::string_view sql_select,
                                                           std::string_view sql_touch,
                                                           const std::string& digest,
                                                           std::int64_t now_ns);
    common::Result<std::vector<AgentStatus>> select_agents(const std::string* only);
    const std::string path_;
    std::mutex write_mutex_;
    Session writer_;
    sqlite3_stmt* insert_stmt_ = nullptr;            // prepared once on writer_, under write_mutex_
    sqlite3_stmt* text_stmt_ = nullptr;              // the same, kInsertTextSql
    std::unique_ptr<WalCheckpointer> checkpointer_;  // its hook is on writer_
    std::mutex read_mutex_;
    Session reader_;
    ReaderPool aggregate_readers_{path_};
    std::atomic<std::uint64_t> undecodable_{0};
    const SqliteOptions options_;
};

common::Result<InsertResult> SqliteStore::insert(const std::vector<common::Alert>& alerts) {
    if (alerts.empty()) return InsertResult{};
    auto results = insert_group({ValidatedBatch{&alerts, nullptr}}, true);
    if (!results) return results.error();
    return results->front();
}

common::Result<std::vector<InsertResult>> SqliteStore::insert_batches(
    const std::vector<std::vector<common::Alert>>& batches) {
    std::vector<ValidatedBatch> group;
    group.reserve(batches.size());
    for (const auto& b : batches) group.push_back(ValidatedBatch{&b, nullptr});
    return insert_group(group, true);
}

common::Result<std::vector<InsertResult>> SqliteStore::insert_validated(
    const std::vector<ValidatedBatch>& batches) {
    return insert_group(batches, false);
}

namespace {

// Binds one alert's columns to the insert statement. Texts are bound SQLITE_STATIC: ALERT and
// BODY outlive the step that reads them.
void bind_alert(sqlite3_stmt* st, const common::Alert& a, std::int64_t received,
                const std::string& body) {
    auto text = [st](int i, std::string_view v) {
        sqlite3_bind_text(st, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
    };
    text(1, a.id);
    text(2, a.agent_id);
    sqlite3_bind_int64(st, 3, a.timestamp_ns);
    sqlite3_bind_int(st, 4, a.severity);
    text(5, common::to_string(a.kind));
    text(6, common::to_string(a.source));
    text(7, a.rule);
    text(8, a.category);
    text(9, a.pack_version);
    if (a.network) {
        const common::NetworkContext& n = *a.network;
        text(10, n.src_ip);
        sqlite3_bind_int(st, 11, static_cast<int>(n.src_port));
        text(12, n.dest_ip);
        sqlite3_bind_int(st, 13, static_cast<int>(n.dest_port));
        text(14, n.proto);
        if (n.app_proto.empty()) {
            sqlite3_bind_null(st, 15);
        } else {
            text(15, n.app_proto);
        }
        // SQLite integers are signed; a flow id above 2^63 is stored wrapped. The exact value
        // is in body, the column only serves lookups.
        sqlite3_bind_int64(st, 16, static_cast<std::int64_t>(n.flow_id));
    } else {
        for (int i = 10; i <= 16; ++i) sqlite3_bind_null(st, i);
    }
    sqlite3_bind_int64(st, 17, received);
    sqlite3_bind_blob(st, 18, body.data(), static_cast<int>(body.size()), SQLITE_STATIC);
    const std::string target = group_target(a);
    sqlite3_bind_text(st, 19, target.data(), static_cast<int>(target.size()), SQLITE_TRANSIENT);
}

// Adds DELTA to the hourly counts, inside the insert's transaction.
bool apply_rollup(sqlite3* db, const detail::RollupDelta& delta, std::string& error) {
    Sql counts(db,
               "INSERT INTO alert_counts (hour, severity, agent_id, rule, n)"
               " VALUES (?, ?, ?, ?, ?) ON CONFLICT (hour, severity, agent_id, rule)"
               " DO UPDATE SET n = n + excluded.n");
    for (const auto& [key, n] : delta.counts) {
        sqlite3_reset(counts.handle());
        counts.bind(1, key.hour_ns).bind(2, std::int64_t{key.severity});
        counts.bind(3, key.agent_id).bind(4, key.rule).bind(5, static_cast<std::int64_t>(n));
        if (!run(counts, error)) return false;
    }
    auto per_time = [&](const char* sql, const auto& per_key) {
        Sql up(db, sql);
        for (const auto& [key, n] : per_key) {
            sqlite3_reset(up.handle());
            up.bind(1, key.first).bind(2, std::int64_t{key.second});
            up.bind(3, static_cast<std::int64_t>(n));
            if (!run(up, error)) return false;
        }
        return true;
    };
    return per_time(
               "INSERT INTO alert_hour_counts (hour, severity, n) VALUES (?, ?, ?)"
               " ON CONFLICT (hour, severity) DO UPDATE SET n = n + excluded.n",
               delta.hour_counts) &&
           per_time(
               "INSERT INTO alert_minute_counts (minute, severity, n) VALUES (?, ?, ?)"
               " ON CONFLICT (minute, severity) DO UPDATE SET n = n + excluded.n",
               delta.minute_counts);
}

// What the filters of migration 6 need of an alert, made before the write lock is taken.
struct SearchColumns {
    std::optional<std::array<std::uint8_t, 16>> src;
    std::optional<std::array<std::uint8_t, 16>> dest;
    std::string text;
};

SearchColumns search_columns(const common::Alert& a) {
    SearchColumns c;
    if (a.network) {
        c.src = address_bytes(a.network->src_ip);
        c.dest = address_bytes(a.network->dest_ip);
    }
    c.text = alert_search_text(a);
    return c;
}

// Binds the filter columns (parameters 20 to 22 of kInsertSql); C outlives the step.
void bind_search_columns(sqlite3_stmt* st, const SearchColumns& c) {
    auto blob = [st](int i, const std::optional<std::array<std::uint8_t, 16>>& v) {
        if (v) {
            sqlite3_bind_blob(st, i, v->data(), static_cast<int>(v->size()), SQLITE_STATIC);
        } else {
            sqlite3_bind_null(st, i);
        }
    };
    blob(20, c.src);
    blob(21, c.dest);
    sqlite3_bind_text(st, 22, c.text.data(), static_cast<int>(c.text.size()), SQLITE_STATIC);
}

}  // namespace

common::Result<std::vector<InsertResult>> SqliteStore::insert_group(
    const std::vector<ValidatedBatch>& batches, bool validate) {
    // Validate and encode before taking the lock, so the write lock is held for SQL only.
    // Bodies the agent sent already encoded are bound from its batch, not copied.
    std::size_t total = 0;
    std::size_t to_encode = 0;
    for (const ValidatedBatch& b : batches) {
        total += b.alerts->size();
        if (b.usable_records() == nullptr) to_encode += b.alerts->size();
    }
    std::vector<std::string> encoded;
    encoded.reserve(to_encode);  // never reallocated below: bodies points into it
    std::vector<const std::string*> bodies;
    bodies.reserve(total);
    std::vector<SearchColumns> search;
    search.reserve(total);
    for (std::size_t k = 0; k < batches.size(); ++k) {
        const auto& alerts = *batches[k].alerts;
        const std::vector<std::string>* records = batches[k].usable_records();
        for (std::size_t i = 0; i < alerts.size(); ++i) {
            if (auto valid = validate ? common::validate(alerts[i]) : common::Result<void>{};
                !valid) {
                const std::string which =
                    batches.size() == 1 ? "" : " " + std::to_string(k) + " of the group";
                return make_error(ErrorCode::kInvalidArgument,
                                  "alert " + std::to_string(i) + " of the batch" + which + " ('" +
                                      alerts[i].id + "'): " + valid.error().message);
            }
            if (records != nullptr) {
                bodies.push_back(&(*records)[i]);
            } else {
                encoded.push_back(common::encode_alert_record(alerts[i]));
                bodies.push_back(&encoded.back());
            }
            search.push_back(search_columns(alerts[i]));
        }
    }
    std::vector<InsertResult> results(batches.size());
    if (total == 0) return results;

    std::lock_guard lock(write_mutex_);
    sqlite3* db = Poco::Data::SQLite::Utility::dbHandle(writer_);
    if (insert_stmt_ == nullptr &&
        sqlite3_prepare_v3(db, kInsertSql.data(), static_cast<int>(kInsertSql.size()),
                           SQLITE_PREPARE_PERSISTENT, &insert_stmt_, nullptr) != SQLITE_OK) {
        return database_error(path_, "cannot prepare the insert", sqlite3_errmsg(db));
    }
    if (text_stmt_ == nullptr &&
        sqlite3_prepare_v3(db, kInsertTextSql.data(), static_cast<int>(kInsertTextSql.size()),
                           SQLITE_PREPARE_PERSISTENT, &text_stmt_, nullptr) != SQLITE_OK) {
        return database_error(path_, "cannot prepare the insert", sqlite3_errmsg(db));
    }
    std::string error;
    if (!exec(db, "BEGIN IMMEDIATE", error)) return database_error(path_, "insert failed", error);
    const std::int64_t received = common::now_ns();
    std::size_t row = 0;
    detail::RollupDelta rollup;
    for (std::size_t k = 0; k < batches.size(); ++k) {
        for (const common::Alert& alert : *batches[k].alerts) {
            const SearchColumns& columns = search[row];
            bind_alert(insert_stmt_, alert, received, *bodies[row++]);
            bind_search_columns(insert_stmt_, columns);
            int rc = sqlite3_step(insert_stmt_);
            sqlite3_reset(insert_stmt_);
            // OR IGNORE makes a duplicate id a successful no-op: changes() tells them apart.
            const bool fresh = rc == SQLITE_DONE && sqlite3_changes(db) > 0;
            if (fresh) {
                sqlite3_bind_int64(text_stmt_, 1, sqlite3_last_insert_rowid(db));
                sqlite3_bind_text(text_stmt_, 2, columns.text.data(),
                                  static_cast<int>(columns.text.size()), SQLITE_STATIC);
                rc = sqlite3_step(text_stmt_);
                sqlite3_reset(text_stmt_);
                sqlite3_clear_bindings(text_stmt_);
            }
            if (rc != SQLITE_DONE) {
                error = sqlite3_errmsg(db);
                sqlite3_clear_bindings(insert_stmt_);
                std::string ignored;
                exec(db, "ROLLBACK", ignored);
                return database_error(path_, "insert failed", error);
            }
            if (fresh) {
                ++results[k].inserted;
                rollup.add(alert);
            } else {
                ++results[k].duplicates;
            }
        }
    }
    // The bound texts belong to the caller's alerts: nothing may point at them afterwards.
    sqlite3_clear_bindings(insert_stmt_);
    if (!apply_rollup(db, rollup, error)) {
        std::string ignored;
        exec(db, "ROLLBACK", ignored);
        return database_error(path_, "insert failed: hourly counts", error);
    }
    if (!exec(db, "COMMIT", error)) {
        std::string ignored;
        exec(db, "ROLLBACK", ignored);
        return database_error(path_, "commit failed", error);
    }
    return results;
}

namespace {

using detail::FilterSql;
using detail::FilterValue;

// The free-text condition of Q for TEXT_PATH: a walk over search_text in the query's order,
// or the trigram index.
void add_text_condition(const AlertQuery& q, TextPath text_path, FilterSql& f) {
    if (!q.text) return;
    if (text_path == TextPath::kScan) {
        // LIKE is case-insensitive in SQLite; GLOB is not, but has other special characters.
        // search_text is lower-cased, and so is the pattern: case folding changes nothing.
        f.add("search_text LIKE ? ESCAPE '\\'");
        f.params.emplace_back(detail::like_pattern(*q.text));
        return;
    }
    // The index holds trigrams without positions (migration 8): it is asked for the rows
    // holding every trigram of the text, each a quoted string (quotes doubled), and LIKE
    // keeps those holding the text itself. A text of fewer than three characters has no
    // trigram: LIKE alone, as the walk.
    const std::string text = normalize_search(*q.text);
    const std::string pattern = detail::like_pattern(*q.text);
    std::vector<std::string_view> trigrams;
    for (std::size_t i = 0; i + 3 <= text.size(); ++i) {
        // Whole characters only: a trigram starts at a UTF-8 lead byte and spans three
        // characters; the tokenizer indexes characters, not bytes.
        if ((static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) continue;
        std::size_t end = i, chars = 0;
        while (end < text.size() && chars < 3) {
            ++end;
            while (end < text.size() && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) {
                ++end;
            }
            ++chars;
        }
        if (chars < 3) break;
        const std::string_view t(text.data() + i, end - i);
        if (std::find(trigrams.begin(), trigrams.end(), t) == trigrams.end()) {
            trigrams.push_back(t);
        }
    }
    if (!trigrams.empty()) {
        std::string match;
        for (std::string_view t : trigrams) {
            match += match.empty() ? "\"" : " AND \"";
            for (char c : t) {
                match += c;
                if (c == '"') match += '"';
            }
            match += '"';
        }
        f.add("alerts.rowid IN (SELECT rowid FROM alerts_text WHERE alerts_text MATCH ?)");
        f.params.emplace_back(std::move(match));
    }
    f.add("search_text LIKE ? ESCAPE '\\'");
    f.params.emplace_back(pattern);
}

// The filters of aggregation and grouping: the list's, none of its keyset, the index for text.
FilterSql filter_sql(const AlertQuery& q) {
    FilterSql f = detail::filter_sql(q, false);
    add_text_condition(q, TextPath::kIndex, f);
    return f;
}

// Binds PARAMS after placeholder I; returns the last placeholder bound.
int bind_params(Sql& stmt, const std::vector<FilterValue>& params, int i) {
    for (const FilterValue& v : params) {
        ++i;
        if (const auto* n = std::get_if<std::int64_t>(&v)) {
            stmt.bind(i, *n);
        } else if (const auto* t = std::get_if<std::string>(&v)) {
            stmt.bind(i, *t);
        } else if (stmt.handle() != nullptr) {
            const auto& b = std::get<std::array<std::uint8_t, 16>>(v);
            sqlite3_bind_blob(stmt.handle(), i, b.data(), static_cast<int>(b.size()),
                              SQLITE_TRANSIENT);
        }
    }
    return i;
}

}  // namespace

common::Result<std::vector<common::Alert>> SqliteStore::query(const AlertQuery& q) {
    if (auto ok = check_query(q); !ok) return ok.error();
    if (!q.text || options_.text_scan_budget.count() <= 0) {
        auto done = run_query(q, TextPath::kIndex, std::nullopt);
        if (!done) return done.error();
        return std::move(*done).value();
    }
    // Free text: the walk in the query's order is quick when the text is common (the page
    // fills after a few rows), the trigram index when it is rare; which one is not known
    // beforehand. So each gets a slice of time in turn, the slices doubling, until one
    // finishes: never much more than four times what the better one alone needs.
    auto slice = options_.text_scan_budget;
    for (;;) {
        for (TextPath path : {TextPath::kScan, TextPath::kIndex}) {
            // Past a second the index is left to finish: it reads only the matching rows.
            const bool last = path == TextPath::kIndex && slice >= kMaxTextSlice;
            auto done = run_query(
                q, path,
                last ? std::nullopt : std::optional(std::chrono::steady_clock::now() + slice));
            if (!done) return done.error();
            if (*done) return std::move(**done);
        }
        slice *= 2;
    }
}

namespace {

// sqlite3_progress_handler's callback: a non-zero answer interrupts the statement.
int past_deadline(void* deadline) {
    return std::chrono::steady_clock::now() >
                   *static_cast<const std::chrono::steady_clock::time_point*>(deadline)
               ? 1
               : 0;
}

// How many virtual machine steps pass between two looks at the clock.
constexpr int kProgressSteps = 10000;

}  // namespace

common::Result<std::optional<std::vector<common::Alert>>> SqliteStore::run_query(
    const AlertQuery& q, TextPath text_path,
    std::optional<std::chrono::steady_clock::time_point> deadline) {
    const FilterSql list =
        detail::list_sql(q, "body, eve", [text_path](const AlertQuery& part, FilterSql& f) {
            add_text_condition(part, text_path, f);
        });
    const std::string& sql = list.sql;
    const std::vector<FilterValue>& params = list.params;

    std::vector<common::Alert> alerts;
    std::lock_guard lock(read_mutex_);
    Sql stmt(Poco::Data::SQLite::Utility::dbHandle(reader_), sql);
    bind_params(stmt, params, 0);
    sqlite3* db = Poco::Data::SQLite::Utility::dbHandle(reader_);
    if (deadline) sqlite3_progress_handler(db, kProgressSteps, past_deadline, &*deadline);
    int rc = 0;
    while ((rc = stmt.step()) == SQLITE_ROW) {
        // Rows since schema 3 hold the compact record; older ones their EVE JSON.
        auto alert = stmt.is_null(0) ? common::alert_from_json(stmt.text(1))
                                     : common::decode_alert_record(stmt.blob(0));
        if (!alert) {
            // One damaged row must not hide every other alert from the analyst.
            undecodable_.fetch_add(1);
            continue;
        }
        alerts.push_back(std::move(alert).value());
    }
    if (deadline) sqlite3_progress_handler(db, 0, nullptr, nullptr);
    if (deadline && rc == SQLITE_INTERRUPT) return std::optional<std::vector<common::Alert>>();
    if (rc != SQLITE_DONE) return database_error(path_, "query failed", stmt.error());
    return std::optional(std::move(alerts));
}

common::Result<AggregateResult> SqliteStore::aggregate(const AggregateQuery& q) {
    if (auto ok = check_aggregate_query(q); !ok) return ok.error();
    if (auto parts = detail::aggregate_in_parts(
            q, [this](const AggregateQuery& part) { return aggregate(part); })) {
        return std::move(*parts);
    }
    const bool rollup = q.use_rollup && (rollup_answers(q) || detail::minute_rollup_answers(q));
    auto lease = aggregate_readers_.acquire();
    if (!lease) return lease.error();
    sqlite3* db = lease->get();
    std::unique_ptr<Sql> stmt;
    if (rollup) {
        const detail::RollupSql r = detail::rollup_sql(
            q, [](int) { return std::string("?"); }, "");
        stmt = std::make_unique<Sql>(db, r.sql);
        int i = 0;
        for (std::int64_t v : r.ints) stmt->bind(++i, v);
        if (r.agent) stmt->bind(++i, *r.agent);
    } else {
        const detail::ScanSql parts = detail::scan_sql(q, "");
        const FilterSql filters = filter_sql(q.filter);
        stmt = std::make_unique<Sql>(db, parts.head + filters.sql + parts.tail);
        bind_params(*stmt, filters.params, 0);
    }
    int rc = 0;
    AggregateResult result;
    if (q.by == AggregateBy::kHour) {
        // Newest hour first: the rows of one hour more than the limit are enough to know that
        // the answer is cut, and the rollup's queries stream in that order without sorting.
        std::vector<detail::HourRow> rows;
        std::size_t hours = 0;
        while ((rc = stmt->step()) == SQLITE_ROW) {
            const std::int64_t hour = stmt->i64(0);
            if (rows.empty() || rows.back().hour_ns != hour) {
                if (++hours > q.limit + 1) {
                    rc = SQLITE_DONE;
                    break;
                }
            }
            rows.push_back({hour, static_cast<int>(stmt->i64(1)), stmt->u64(2)});
        }
        result = detail::hourly_result(rows, q.limit, rollup);
    } else {
        std::vector<detail::KeyRow> rows;
        while ((rc = stmt->step()) == SQLITE_ROW) rows.push_back({stmt->text(0), stmt->u64(1)});
        result = detail::keyed_result(std::move(rows), q.limit, rollup);
    }
    if (rc != SQLITE_DONE) return database_error(path_, "aggregation failed", stmt->error());
    return result;
}

common::Result<std::vector<AlertGroup>> SqliteStore::groups(const GroupQuery& q) {
    if (auto ok = check_group_query(q); !ok) return ok.error();
    // The window's three placeholders come before the filters' in the text, the limit after.
    const FilterSql filters = filter_sql(q.filter);
    const std::string sql = detail::group_sql(filters.sql, "?", "?", "?", "?", "");
    auto lease = aggregate_readers_.acquire();
    if (!lease) return lease.error();
    Sql stmt(lease->get(), sql);
    stmt.bind(1, q.window_ns).bind(2, q.window_ns).bind(3, q.window_ns);
    int i = bind_params(stmt, filters.params, 3);
    stmt.bind(++i, static_cast<std::int64_t>(q.limit));
    std::vector<AlertGroup> out;
    int rc = 0;
    while ((rc = stmt.step()) == SQLITE_ROW) {
        AlertGroup g;
        g.rule = stmt.text(0);
        g.agent_id = stmt.text(1);
        g.target = stmt.text(2);
        g.window_start_ns = stmt.i64(3);
        g.count = stmt.u64(4);
        g.first_ns = stmt.i64(5);
        g.last_ns = stmt.i64(6);
        g.top_severity = static_cast<int>(stmt.i64(7));
        g.newest_id = stmt.text(8);
        for (std::size_t k = 0; k < g.status_counts.size(); ++k) {
            g.status_counts[k] = stmt.u64(9 + static_cast<int>(k));
        }
        out.push_back(std::move(g));
    }
    if (rc != SQLITE_DONE) return database_error(path_, "grouping failed", stmt.error());
    return out;
}

common::Result<std::uint64_t> SqliteStore::count() {
    std::lock_guard lock(read_mutex_);
    try {
        Poco::Int64 n = 0;
        reader_ << "SELECT count(*) FROM alerts", into(n), now;
        return static_cast<std::uint64_t>(n);
    } catch (const Poco::Exception& e) {
        return database_error(path_, "count failed", e.displayText());
    } catch (const std::exception& e) {
        return database_error(path_, "count failed", e.what());
    }
}

// Inside an open write transaction: the state change, if it is one, becomes an event.
bool record_event_if_changed(sqlite3* db, const std::string& agent_id, const std::string& before,
                             const std::string& after, std::int64_t at_ns,
                             const std::string& detail, std::string& error) {
    if (before == after) return true;
    Sql ev(db, "INSERT INTO agent_events (time_ns, agent_id, event, detail) VALUES (?, ?, ?, ?)");
    ev.bind(1, at_ns).bind(2, agent_id).bind(3, after).bind(4, detail);
    if (ev.step() != SQLITE_DONE) {
        error = ev.error();
        return false;
    }
    return true;
}

common::Result<void> SqliteStore::record_heartbeat(const common::Heartbeat& hb,
                                                   std::int64_t received_ns) {
    const std::string state = hb.stopping ? "stopped" : "online";
    auto i64 = [](std::uint64_t v) { return static_cast<std::int64_t>(v); };
    std::lock_guard lock(write_mutex_);
    sqlite3* db = Poco::Data::SQLite::Utility::dbHandle(writer_);
    std::string error;
    if (!exec(db, "BEGIN IMMEDIATE", error)) return database_error(path_, "heartbeat", error);
    std::string before;
    {
        Sql q(db, "SELECT state FROM agents WHERE id = ?");
        q.bind(1, hb.agent_id);
        if (q.step() == SQLITE_ROW) before = q.text(0);
    }
    Sql up(db,
           "INSERT INTO agents (id, state, first_seen_ns, last_seen_ns, state_since_ns, sequence,"
           " version, uptime_s, pack_version, interval_s, packets, kernel_drops, bytes,"
           " files_scanned, alerts, queue_depth, queue_oldest_age_s)"
           " VALUES (?1, ?2, ?3, ?3, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
           " ON CONFLICT (id) DO UPDATE SET state = ?2, last_seen_ns = ?3,"
           " state_since_ns = CASE WHEN state = ?2 THEN state_since_ns ELSE ?3 END,"
           " sequence = ?4, version = ?5, uptime_s = ?6, pack_version = ?7, interval_s = ?8,"
           " packets = ?9, kernel_drops = ?10, bytes = ?11, files_scanned = ?12, alerts = ?13,"
           " queue_depth = ?14, queue_oldest_age_s = ?15");
    up.bind(1, hb.agent_id).bind(2, state).bind(3, received_ns).bind(4, i64(hb.sequence));
    up.bind(5, hb.version).bind(6, i64(hb.uptime_s)).bind(7, hb.pack_version);
    up.bind(8, i64(hb.interval_s)).bind(9, i64(hb.packets)).bind(10, i64(hb.kernel_drops));
    up.bind(11, i64(hb.bytes)).bind(12, i64(hb.files_scanned)).bind(13, i64(hb.alerts));
    up.bind(14, i64(hb.queue_depth)).bind(15, i64(hb.queue_oldest_age_s));
    const std::string detail = hb.stopping      ? "the agent stopped cleanly"
                               : before.empty() ? "first heartbeat"
                                                : "heartbeat after being " + before;
    if (up.step() != SQLITE_DONE ||
        !record_event_if_changed(db, hb.agent_id, before, state, received_ns, detail, error) ||
        !exec(db, "COMMIT", error)) {
        if (error.empty()) error = up.error();
        std::string ignored;
        exec(db, "ROLLBACK", ignored);
        return database_error(path_, "heartbeat of agent '" + hb.agent_id + "'", error);
    }
    return {};
}

common::Result<void> SqliteStore::set_agent_state(const std::string& agent_id,
                                                  const std::string& state, std::int64_t at_ns,
                                                  const std::string& detail) {
    std::lock_guard lock(write_mutex_);
    sqlite3* db = Poco::Data::SQLite::Utility::dbHandle(writer_);
    std::string error;
    if (!exec(db, "BEGIN IMMEDIATE", error)) return database_error(path_, "agent state", error);
    std::string before;
    {
        Sql q(db, "SELECT state FROM agents WHERE id = ?");
        q.bind(1, agent_id);
        if (q.step() == SQLITE_ROW) before = q.text(0);
    }
    if (before.empty()) {
        exec(db, "ROLLBACK", error);
        return make_error(ErrorCode::kNotFound, "agent '" + agent_id + "' was never seen");
    }
    Sql up(db, "UPDATE agents SET state = ?1, state_since_ns = ?2 WHERE id = ?3 AND state <> ?1");
    up.bind(1, state).bind(2, at_ns).bind(3, agent_id);
    if (up.step() != SQLITE_DONE ||
        !record_event_if_changed(db, agent_id, before, state, at_ns, detail, error) ||
        !exec(db, "COMMIT", error)) {
        if (error.empty()) error = up.error();
        std::string ignored;
        exec(db, "ROLLBACK", ignored);
        return database_error(path_, "state of agent '" + agent_id + "'", error);
    }
    return {};
}

common::Result<std::vector<AgentStatus>> SqliteStore::select_agents(const std::string* only) {
    std::lock_guard lock(read_mutex_);
    sqlite3* db = Poco::Data::SQLite::Utility::dbHandle(reader_);
    Sql q(db, std::string("SELECT id, state, first_seen_ns, last_seen_ns, state_since_ns, sequence,"
                          " version, uptime_s, pack_version, interval_s, packets, kernel_drops,"
                          " bytes, files_scanned, alerts, queue_depth, queue_oldest_age_s"
                          " FROM agents") +
                  (only ? " WHERE id = ?" : "") + " ORDER BY id");
    if (only) q.bind(1, *only);
    std::vector<AgentStatus> out;
    int rc = 0;
    while ((rc = q.step()) == SQLITE_ROW) {
        AgentStatus a;
        a.id = q.text(0);
        a.state = q.text(1);
        a.first_seen_ns = q.i64(2);
        a.last_seen_ns = q.i64(3);
        a.state_since_ns = q.i64(4);
        common::Heartbeat& h = a.last;
        h.agent_id = a.id;
        h.sequence = q.u64(5);
        h.version = q.text(6);
        h.uptime_s = q.u64(7);
        h.pack_version = q.text(8);
        h.interval_s = q.u64(9);
        h.packets = q.u64(10);
        h.kernel_drops = q.u64(11);
        h.bytes = q.u64(12);
        h.files_scanned = q.u64(13);
        h.alerts = q.u64(14);
        h.queue_depth = q.u64(15);
        h.queue_oldest_age_s = q.u64(16);
        h.stopping = a.state == "stopped";
        out.push_back(std::move(a));
    }
    if (rc != SQLITE_DONE) return database_error(path_, "agents query failed", q.error());
    return out;
}

common::Result<std::vector<AgentStatus>> SqliteStore::agents() {
    return select_agents(nullptr);
}

common::Result<std::optional<AgentStatus>> SqliteStore::agent(const std::string& agent_id) {
    auto rows = select_agents(&agent_id);
    if (!rows) return rows.error();
    if (rows->empty()) return std::optional<AgentStatus>();
    return std::optional<AgentStatus>(std::move(rows->front()));
}

common::Result<std::vector<AgentEvent>> SqliteStore::agent_events(const std::string& agent_id,
                                                                  std::size_t limit) {
    std::lock_guard lock(read_mutex_);
    sqlite3* db = Poco::Data::SQLite::Utility::dbHandle(reader_);
    Sql q(db,
          "SELECT time_ns, event, detail FROM agent_events WHERE agent_id = ?"
          " ORDER BY seq DESC LIMIT ?");
    q.bind(1, agent_id).bind(2, static_cast<std::int64_t>(limit));
    std::vector<AgentEvent> out;
    int rc = 0;
    while ((rc = q.step()) == SQLITE_ROW) {
        out.push_back(AgentEvent{q.i64(0), agent_id, q.text(1), q.text(2)});
    }
    if (rc != SQLITE_DONE) return database_error(path_, "agent events query failed", q.error());
    return out;
}

template <typename Body>
common::Result<void> SqliteStore::write(const std::string& what, const std::string& not_found,
                                        Body&& body) {
    std::lock_guard lock(write_mutex_);
    sqlite3* db = Poco::Data::SQLite::Utility::dbHandle(writer_);
    std::string error;
    if (!exec(db, "BEGIN IMMEDIATE", error)) return database_error(path_, what, error);
    if (body(db, error) && exec(db, "COMMIT", error)) return {};
    std::string ignored;
    exec(db, "ROLLBACK", ignored);
    if (error.empty()) return make_error(ErrorCode::kNotFound, not_found);
    return database_error(path_, what, error);
}

// Runs a statement that must complete; false (with the message in ERROR) if it did not.
bool run(Sql& sql, std::string& error) {
    if (sql.step() == SQLITE_DONE) return true;
    error = sql.error();
    return false;
}

bool user_exists(sqlite3* db, const std::string& name) {
    Sql q(db, "SELECT 1 FROM users WHERE name = ?");
    q.bind(1, name);
    return q.step() == SQLITE_ROW;
}

constexpr std::string_view kUserColumns =
    "users.name, users.role, users.password_hash, users.created_ns, users.disabled";

UserAccount user_from(const Sql& q) {
    UserAccount u;
    u.name = q.text(0);
    u.role = parse_role(to_string(static_cast<Role>(q.i64(1)))).value_or(Role::kAnalyst);
    u.password_hash = q.text(2);
    u.created_ns = q.i64(3);
    u.disabled = q.i64(4) != 0;
    return u;
}

common::Result<void> SqliteStore::add_user(const UserAccount& user) {
    if (auto ok = check_user_name(user.name); !ok) return ok.error();
    bool exists = false;
    auto result =
        write("add account '" + user.name + "'", "", [&](sqlite3* db, std::string& error) {
            if (user_exists(db, user.name)) {
                exists = true;
                error = "exists";
                return false;
            }
            Sql q(db,
                  "INSERT INTO users (name, role, password_hash, created_ns, disabled)"
                  " VALUES (?, ?, ?, ?, ?)");
            q.bind(1, user.name).bind(2, static_cast<std::int64_t>(user.role));
            q.bind(3, user.password_hash).bind(4, user.created_ns);
            q.bind(5, static_cast<std::int64_t>(user.disabled ? 1 : 0));
            return run(q, error);
        });
    if (exists) {
        return make_error(ErrorCode::kInvalidArgument,
                          "account '" + user.name + "' exists already");
    }
    return result;
}

common::Result<std::vector<UserAccount>> SqliteStore::select_users(const std::string* only) {
    std::lock_guard lock(read_mutex_);
    sqlite3* db = Poco::Data::SQLite::Utility::dbHandle(reader_);
    Sql q(db, "SELECT " + std::string(kUserColumns) + " FROM users" +
                  (only ? " WHERE name = ?" : "") + " ORDER BY name");
    if (only) q.bind(1, *only);
    std::vector<UserAccount> out;
    int rc = 0;
    while ((rc = q.step()) == SQLITE_ROW) out.push_back(user_from(q));
    if (rc != SQLITE_DONE) return database_error(path_, "accounts query failed", q.error());
    return out;
}

common::Result<std::optional<UserAccount>> SqliteStore::find_user(const std::string& name) {
    auto rows = select_users(&name);
    if (!rows) return rows.error();
    if (rows->empty()) return std::optional<UserAccount>();
    return std::optional<UserAccount>(std::move(rows->front()));
}

common::Result<std::vector<UserAccount>> SqliteStore::users() {
    return select_users(nullptr);
}

common::Result<void> SqliteStore::set_user_disabled(const std::string& name, bool disabled) {
    return write("disable account '" + name + "'", "there is no account '" + name + "'",
                 [&](sqlite3* db, std::string& error) {
                     Sql q(db, "UPDATE users SET disabled = ? WHERE name = ?");
                     q.bind(1, static_cast<std::int64_t>(disabled ? 1 : 0)).bind(2, name);
                     if (!run(q, error)) return false;
                     if (sqlite3_changes(db) == 0) return false;
                     if (!disabled) return true;
                     Sql end(db, "DELETE FROM sessions WHERE user_name = ?");
                     end.bind(1, name);
                     return run(end, error);
                 });
}

common::Result<void> SqliteStore::set_password_hash(const std::string& name,
                                                    const std::string& password_hash) {
    return write("password of account '" + name + "'", "there is no account '" + name + "'",
                 [&](sqlite3* db, std::string& error) {
                     Sql q(db, "UPDATE users SET password_hash = ? WHERE name = ?");
                     q.bind(1, password_hash).bind(2, name);
                     return run(q, error) && sqlite3_changes(db) > 0;
                 });
}

common::Result<void> SqliteStore::add_session(const std::string& digest, const std::string& user,
                                              std::int64_t created_ns, std::int64_t expires_ns) {
    return write("session of account '" + user + "'", "there is no account '" + user + "'",
                 [&](sqlite3* db, std::string& error) {
                     if (!user_exists(db, user)) return false;
                     Sql prune(db, "DELETE FROM sessions WHERE expires_ns <= ?");
                     prune.bind(1, created_ns);
                     if (!run(prune, error)) return false;
                     Sql q(db,
                           "INSERT INTO sessions (digest, user_name, created_ns, expires_ns,"
                           " last_seen_ns) VALUES (?, ?, ?, ?, ?)");
                     q.bind(1, digest).bind(2, user).bind(3, created_ns).bind(4, expires_ns);
                     q.bind(5, created_ns);
                     return run(q, error);
                 });
}

common::Result<std::optional<UserAccount>> SqliteStore::secret_user(std::string_view sql_select,
                                                                    std::string_view sql_touch,
                                                                    const std::string& digest,
                                                                    std::int64_t now_ns) {
    std::optional<UserAccount> found;
    auto done = write("credential lookup", "", [&](sqlite3* db, std::string& error) {
        Sql q(db, sql_select);
        q.bind(1, digest);
        // Sessions expire (a second placeholder for now); tokens do not.
        if (sqlite3_bind_parameter_count(q.handle()) == 2) q.bind(2, now_ns);
        const int rc = q.step();
        if (rc == SQLITE_DONE) return true;
        if (rc != SQLITE_ROW) {
            error = q.error();
            return false;
        }
        found = user_from(q);
        Sql touch(db, sql_touch);
        touch.bind(1, now_ns).bind(2, digest);
        return run(touch, error);
    });
    if (!done) return done.error();
    return found;
}

common::Result<std::optional<UserAccount>> SqliteStore::session_user(const std::string& digest,
                                                                     std::int64_t now_ns) {
    return secret_user("SELECT " + std::string(kUserColumns) +
                           " FROM sessions JOIN users ON users.name = sessions.user_name"
                           " WHERE sessions.digest = ? AND sessions.expires_ns > ?"
                           " AND users.disabled = 0",
                       "UPDATE sessions SET last_seen_ns = ? WHERE digest = ?", digest, now_ns);
}

common::Result<void> SqliteStore::delete_session(const std::string& digest) {
    return write("end session", "", [&](sqlite3* db, std::string& error) {
        Sql q(db, "DELETE FROM sessions WHERE digest = ?");
        q.bind(1, digest);
        return run(q, error);
    });
}

common::Result<void> SqliteStore::add_api_token(const std::string& digest, const std::string& user,
                                                const std::string& label, std::int64_t created_ns) {
    return write("token of account '" + user + "'", "there is no account '" + user + "'",
                 [&](sqlite3* db, std::string& error) {
                     if (!user_exists(db, user)) return false;
                     Sql q(db,
                           "INSERT INTO api_tokens (digest, user_name, label, created_ns)"
                           " VALUES (?, ?, ?, ?)");
                     q.bind(1, digest).bind(2, user).bind(3, label).bind(4, created_ns);
                     return run(q, error);
                 });
}

common::Result<std::optional<UserAccount>> SqliteStore::token_user(const std::string& digest,
                                                                   std::int64_t now_ns) {
    return secret_user("SELECT " + std::string(kUserColumns) +
                           " FROM api_tokens JOIN users ON users.name = api_tokens.user_name"
                           " WHERE api_tokens.digest = ? AND users.disabled = 0",
                       "UPDATE api_tokens SET last_used_ns = ? WHERE digest = ?", digest, now_ns);
}

bool insert_audit(sqlite3* db, const AuditEntry& e, std::string& error) {
    Sql q(db,
          "INSERT INTO audit_log (time_ns, actor, action, target, old_value, new_value)"
          " VALUES (?, ?, ?, ?, ?, ?)");
    q.bind(1, e.time_ns).bind(2, e.actor).bind(3, e.action).bind(4, e.target);
    q.bind(5, e.old_value).bind(6, e.new_value);
    return run(q, error);
}

common::Result<void> SqliteStore::append_audit(const AuditEntry& e) {
    return write("audit log", "",
                 [&](sqlite3* db, std::string& error) { return insert_audit(db, e, error); });
}

common::Result<std::map<std::string, AlertTriage>> SqliteStore::triage_of(
    const std::vector<std::string>& ids) {
    std::lock_guard lock(read_mutex_);
    sqlite3* db = Poco::Data::SQLite::Utility::dbHandle(reader_);
    std::map<std::string, AlertTriage> out;
    Sql q(db,
          "SELECT alerts.id, t.status, t.assignee FROM alerts"
          " LEFT JOIN alert_triage t ON t.alert_id = alerts.id WHERE alerts.id = ?");
    for (const std::string& id : ids) {
        sqlite3_reset(q.handle());
        q.bind(1, id);
        const int rc = q.step();
        if (rc == SQLITE_ROW) {
            AlertTriage t;
            if (sqlite3_column_type(q.handle(), 1) != SQLITE_NULL) t = {q.text(1), q.text(2)};
            out[id] = t;
        } else if (rc != SQLITE_DONE) {
            return database_error(path_, "triage query failed", q.error());
        }
    }
    return out;
}

common::Result<std::vector<AuditEntry>> SqliteStore::update_triage(
    const std::vector<std::string>& ids, const TriageChange& change, const std::string& actor,
    std::int64_t at_ns) {
    if (change.status && !is_alert_status(*change.status)) {
        return make_error(ErrorCode::kInvalidArgument,
                          "status '" + *change.status + "' is not a triage status");
    }
    std::vector<AuditEntry> entries;
    std::string missing;
    auto done = write("triage update", "", [&](sqlite3* db, std::string& error) {
        for (const std::string& id : ids) {
            Sql exists(db, "SELECT 1 FROM alerts WHERE id = ?");
            exists.bind(1, id);
            if (exists.step() != SQLITE_ROW) {
                missing = id;
                error = "no such alert";
                return false;
            }
            AlertTriage before;
            {
                Sql q(db, "SELECT status, assignee FROM alert_triage WHERE alert_id = ?");
                q.bind(1, id);
                if (q.step() == SQLITE_ROW) before = {q.text(0), q.text(1)};
            }
            AlertTriage after = before;
            if (change.status) after.status = *change.status;
            if (change.assignee) after.assignee = *change.assignee;
            if (after == before) continue;
            Sql up(db,
                   "INSERT INTO alert_triage (alert_id, status, assignee, updated_ns)"
                   " VALUES (?, ?, ?, ?) ON CONFLICT (alert_id) DO UPDATE SET"
                   " status = excluded.status, assignee = excluded.assignee,"
                   " updated_ns = excluded.updated_ns");
            up.bind(1, id).bind(2, after.status).bind(3, after.assignee).bind(4, at_ns);
            if (!run(up, error)) return false;
            std::vector<AuditEntry> mine;
            if (after.status != before.status) {
                mine.push_back({at_ns, actor, "alert.status", id, before.status, after.status});
            }
            if (after.assignee != before.assignee) {
                mine.push_back(
                    {at_ns, actor, "alert.assignee", id, before.assignee, after.assignee});
            }
            for (const AuditEntry& e : mine) {
                if (!insert_audit(db, e, error)) return false;
                entries.push_back(e);
            }
        }
        return true;
    });
    if (!missing.empty()) {
        return make_error(ErrorCode::kNotFound, "there is no alert '" + missing + "'");
    }
    if (!done) return done.error();
    return entries;
}

common::Result<void> SqliteStore::add_comment(const std::string& alert_id, const AlertComment& c) {
    return write(
        "comment", "there is no alert '" + alert_id + "'", [&](sqlite3* db, std::string& error) {
            Sql exists(db, "SELECT 1 FROM alerts WHERE id = ?");
            exists.bind(1, alert_id);
            if (exists.step() != SQLITE_ROW) return false;
            Sql q(db,
                  "INSERT INTO alert_comments (alert_id, time_ns, author, text)"
                  " VALUES (?, ?, ?, ?)");
            q.bind(1, alert_id).bind(2, c.time_ns).bind(3, c.author).bind(4, c.text);
            return run(q, error) &&
                   insert_audit(db, {c.time_ns, c.author, "alert.comment", alert_id, "", c.text},
                                error);
        });
}

common::Result<std::vector<AlertComment>> SqliteStore::comments(const std::string& alert_id) {
    std::lock_guard lock(read_mutex_);
    sqlite3* db = Poco::Data::SQLite::Utility::dbHandle(reader_);
    Sql q(db, "SELECT time_ns, author, text FROM alert_comments WHERE alert_id = ? ORDER BY seq");
    q.bind(1, alert_id);
    std::vector<AlertComment> out;
    int rc = 0;
    while ((rc = q.step()) == SQLITE_ROW) out.push_back({q.i64(0), q.text(1), q.text(2)});
    if (rc != SQLITE_DONE) return database_error(path_, "comments query failed", q.error());
    return out;
}

common::Result<std::vector<AuditEntry>> SqliteStore::audit_entries(const std::string& target,
                                                                   std::size_t limit) {
    std::lock_guard lock(read_mutex_);
    sqlite3* db = Poco::Data::SQLite::Utility::dbHandle(reader_);
    Sql q(db,
          "SELECT time_ns, actor, action, old_value, new_value FROM audit_log"
          " WHERE target = ? ORDER BY seq DESC LIMIT ?");
    q.bind(1, target).bind(2, static_cast<std::int64_t>(std::min<std::size_t>(limit, INT64_MAX)));
    std::vector<AuditEntry> out;
    int rc = 0;
    while ((rc = q.step()) == SQLITE_ROW) {
        out.push_back(AuditEntry{q.i64(0), q.text(1), q.text(2), target, q.text(3), q.text(4)});
    }
    if (rc != SQLITE_DONE) return database_error(path_, "audit log query failed", q.error());
    std::reverse(out.begin(), out.end());
    return out;
}

}  // namespace

common::Result<std::unique_ptr<AlertStore>> open_sqlite_store(const std::string& path,
                                                              const SqliteOptions& options) {
    if (path.empty() || path == ":memory:" || path.starts_with("file::memory:")) {
        return make_error(ErrorCode::kInvalidArgument,
                          "SQLite database path '" + path +
                              "' is not a file; the alert store needs one for WAL mode");
    }
    register_connector();  // first: it configures SQLite, which only works before any use
    if (auto probed = probe_open(path); !probed) return probed.error();
    try {
        Session writer("SQLite", path, kOpenTimeoutSeconds);
        if (std::string mode = configure_connection(writer); mode != "wal") {
            return database_error(path, "cannot switch to WAL journal mode",
                                  "journal mode is '" + mode + "'");
        }
        if (auto registered = register_functions(writer, path); !registered) {
            return registered.error();
        }
        if (auto migrated = migrate(writer, path); !migrated) return migrated.error();
        writer << "PRAGMA cache_size = -" + std::to_string(kWriterCacheKiB), now;
        auto checkpointer = WalCheckpointer::start(path);
        if (!checkpointer) return checkpointer.error();

        // Opened after the migrations so that it never sees a half-made schema.
        Session reader("SQLite", path, kOpenTimeoutSeconds);
        configure_connection(reader);
        reader << "PRAGMA query_only = ON", now;
        return std::unique_ptr<AlertStore>(std::make_unique<SqliteStore>(
            path, std::move(writer), std::move(reader), options, std::move(checkpointer).value()));
    } catch (const Poco::Exception& e) {
        return database_error(path, "cannot open", e.displayText());
    } catch (const std::exception& e) {
        return database_error(path, "cannot open", e.what());
    }
}

// ---- Metadata records ----

common::Result<std::vector<MetadataInsertResult>> SqliteStore::insert_metadata(
    const std::vector<MetadataBatchIn>& batches, std::int64_t received_ns) {
    std::vector<MetadataInsertResult> results(batches.size());
    std::lock_guard lock(write_mutex_);
    sqlite3* db = Poco::Data::SQLite::Utility::dbHandle(writer_);
    std::string error;
    if (!exec(db, "BEGIN IMMEDIATE", error)) {
        return database_error(path_, "metadata insert failed", error);
    }
    auto fail = [&](const std::string& what) {
        std::string ignored;
        exec(db, "ROLLBACK", ignored);
        return database_error(path_, what, error);
    };
    Sql record(db,
               "INSERT OR IGNORE INTO metadata (agent_id, ts_ns, received_ns, type, uid, flow_id,"
               " digest, json) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    Sql value(db,
              "INSERT OR IGNORE INTO metadata_values (value, ts_ns, record_id) VALUES (?, ?, ?)");
    if (!record.error().empty() || !value.error().empty()) {
        error = record.error().empty() ? value.error() : record.error();
        return fail("metadata insert failed");
    }
    for (std::size_t b = 0; b < batches.size(); ++b) {
        for (const ParsedMetadata& m : batches[b].records) {
            sqlite3_reset(record.handle());
            record.bind(1, batches[b].agent_id).bind(2, m.timestamp_ns).bind(3, received_ns);
            record.bind(4, m.type);
            m.uid.empty() ? (void)sqlite3_bind_null(record.handle(), 5)
                          : (void)record.bind(5, m.uid);
            m.flow_id.empty() ? (void)sqlite3_bind_null(record.handle(), 6)
                              : (void)record.bind(6, m.flow_id);
            record.bind(7, m.digest).bind(8, m.json);
            if (!run(record, error)) return fail("metadata insert failed");
            if (sqlite3_changes(db) == 0) {
                ++results[b].duplicates;
                continue;
            }
            const std::int64_t id = sqlite3_last_insert_rowid(db);
            for (const std::string& v : m.values) {
                sqlite3_reset(value.handle());
                value.bind(1, v).bind(2, m.timestamp_ns).bind(3, id);
                if (!run(value, error)) return fail("metadata insert failed");
            }
            ++results[b].inserted;
        }
    }
    if (!exec(db, "COMMIT", error)) return fail("metadata commit failed");
    return results;
}

common::Result<std::vector<StoredMetadata>> SqliteStore::hunt_metadata(const MetadataQuery& q) {
    if (auto ok = check_metadata_query(q); !ok) return ok.error();
    // Walks the value's index entries newest first (without a value, the records' time index);
    // the filters on the record are checked on the way, so the walk stops as soon as the page
    // is full.
    const bool by_value = !q.value.empty();
    const char* ts = by_value ? "v.ts_ns" : "m.ts_ns";
    const char* id = by_value ? "v.record_id" : "m.id";
    std::string sql =
        "SELECT m.id, m.agent_id, m.ts_ns, m.received_ns, m.type, m.uid, m.flow_id, m.json";
    sql += by_value ? " FROM metadata_values v JOIN metadata m ON m.id = v.record_id"
                      " WHERE v.value = ?"
                    : " FROM metadata m WHERE 1 = 1";
    if (q.since_ns) sql += std::string(" AND ") + ts + " >= ?";
    if (q.until_ns) sql += std::string(" AND ") + ts + " < ?";
    if (q.after) {
        sql += std::string(" AND (") + ts + " < ? OR (" + ts + " = ? AND " + id + " < ?))";
    }
    if (q.type) sql += " AND m.type = ?";
    if (q.agent_id) sql += " AND m.agent_id = ?";
    sql += std::string(" ORDER BY ") + ts + " DESC, " + id + " DESC LIMIT ?";
    std::lock_guard lock(read_mutex_);
    sqlite3* db = Poco::Data::SQLite::Utility::dbHandle(reader_);
    Sql st(db, sql);
    int i = 1;
    if (by_value) st.bind(i++, q.value);
    if (q.since_ns) st.bind(i++, *q.since_ns);
    if (q.until_ns) st.bind(i++, *q.until_ns);
    if (q.after) {
        st.bind(i++, q.after->timestamp_ns);
        st.bind(i++, q.after->timestamp_ns);
        st.bind(i++, q.after->id);
    }
    if (q.type) st.bind(i++, *q.type);
    if (q.agent_id) st.bind(i++, *q.agent_id);
    st.bind(i++, static_cast<std::int64_t>(q.limit));
    std::vector<StoredMetadata> out;
    int rc = 0;
    while ((rc = st.step()) == SQLITE_ROW) {
        out.push_back(StoredMetadata{st.i64(0), st.text(1), st.i64(2), st.i64(3), st.text(4),
                                     st.text(5), st.text(6), st.text(7)});
    }
    if (rc != SQLITE_DONE) return database_error(path_, "metadata hunt failed", st.error());
    return out;
}

common::Result<std::uint64_t> SqliteStore::prune_metadata(const MetadataRetention& retention,
                                                          std::int64_t now_ns,
                                                          std::size_t max_delete) {
    std::lock_guard lock(write_mutex_);
    sqlite3* db = Poco::Data::SQLite::Utility::dbHandle(writer_);
    std::string error;
    // The ids to delete: the oldest stored, up to MAX_DELETE, that are past the age or beyond
    // the row bound (ids grow in insertion order).
    std::int64_t cutoff_id = 0;
    if (retention.max_age_ns > 0) {
        Sql q(db,
              "SELECT max(id) FROM (SELECT id FROM metadata WHERE received_ns < ?"
              " ORDER BY id LIMIT ?)");
        q.bind(1, now_ns - retention.max_age_ns).bind(2, static_cast<std::int64_t>(max_delete));
        if (q.step() != SQLITE_ROW) return database_error(path_, "metadata retention", q.error());
        cutoff_id = std::max(cutoff_id, q.i64(0));
    }
    if (retention.max_rows > 0) {
        Sql q(db, "SELECT id FROM metadata ORDER BY id DESC LIMIT 1 OFFSET ?");
        q.bind(1, static_cast<std::int64_t>(retention.max_rows));
        const int rc = q.step();
        if (rc == SQLITE_ROW) {
            // The row at offset max_rows from the newest and everything older go, at most
            // MAX_DELETE of them per call.
            Sql first(db, "SELECT min(id) FROM metadata");
            if (first.step() != SQLITE_ROW) {
                return database_error(path_, "metadata retention", first.error());
            }
            const std::int64_t bound = first.i64(0) + static_cast<std::int64_t>(max_delete) - 1;
            cutoff_id = std::max(cutoff_id, std::min(q.i64(0), bound));
        } else if (rc != SQLITE_DONE) {
            return database_error(path_, "metadata retention", q.error());
        }
    }
    if (cutoff_id <= 0) return std::uint64_t{0};
    if (!exec(db, "BEGIN IMMEDIATE", error))
        return database_error(path_, "metadata retention", error);
    Sql values(db, "DELETE FROM metadata_values WHERE record_id <= ?");
    Sql records(db, "DELETE FROM metadata WHERE id <= ?");
    values.bind(1, cutoff_id);
    records.bind(1, cutoff_id);
    std::uint64_t deleted = 0;
    if (!run(values, error) || !run(records, error) ||
        (deleted = static_cast<std::uint64_t>(sqlite3_changes(db)), !exec(db, "COMMIT", error))) {
        std::string ignored;
        exec(db, "ROLLBACK", ignored);
        return database_error(path_, "metadata retention", error);
    }
    return deleted;
}

common::Result<std::uint64_t> SqliteStore::metadata_count() {
    std::lock_guard lock(read_mutex_);
    sqlite3* db = Poco::Data::SQLite::Utility::dbHandle(reader_);
    Sql q(db, "SELECT count(*) FROM metadata");
    if (q.step() != SQLITE_ROW) return database_error(path_, "metadata count failed", q.error());
    return static_cast<std::uint64_t>(q.i64(0));
}

}  // namespace senningen::collector
