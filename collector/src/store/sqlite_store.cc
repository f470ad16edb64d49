// SQLite backend of AlertStore.
//
// Threading: two connections to the same file. The writer connection, behind write_mutex_,
// serves insert() and the migrations; the reader connection, behind read_mutex_, serves
// query() and count() and is opened query_only. In WAL mode a reader sees the last committed
// snapshot and neither blocks nor is blocked by the writer, so HTTP queries never wait for an
// ingest batch (they only wait for each other, which is cheap: a query returns at most
// kMaxQueryLimit rows). A Poco::Data::Session is not safe to share unlocked, hence a mutex per
// connection rather than none.
//
// Every value reaches SQLite as a bound parameter; the only SQL text assembled at run time is
// the WHERE clause of query(), built from fixed fragments and "?" placeholders.
#include "senningen/collector/sqlite_store.h"

#include <Poco/Data/SQLite/Connector.h>
#include <Poco/Data/SQLite/Utility.h>
#include <Poco/Data/Session.h>
#include <Poco/Data/Statement.h>
#include <Poco/Exception.h>
#include <Poco/Nullable.h>
#include <sqlite3.h>

#include <array>
#include <atomic>
#include <exception>
#include <mutex>
#include <string_view>
#include <utility>

#include "senningen/common/json_codec.h"

namespace senningen::collector {

namespace {

using common::ErrorCode;
using common::make_error;
using Poco::Data::Session;
using Poco::Data::Statement;
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
    std::array<std::string_view, 4> statements;  // empty entries are skipped
};

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
};
static_assert(kMigrations.back().version == kSqliteSchemaVersion,
              "kSqliteSchemaVersion must name the last migration");

constexpr std::string_view kInsertSql =
    "INSERT OR IGNORE INTO alerts (id, agent_id, ts_ns, severity, kind, source, rule, category,"
    " pack, src_ip, src_port, dest_ip, dest_port, proto, app_proto, flow_id, received_ns, eve)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

common::Error database_error(const std::string& path, std::string_view what,
                             std::string_view detail) {
    return make_error(ErrorCode::kDatabase, "SQLite database '" + path + "': " + std::string(what) +
                                                ": " + std::string(detail));
}

// Poco's connector registry is process-wide; registering twice is harmless but pointless.
void register_connector() {
    static std::once_flag once;
    std::call_once(once, [] { Poco::Data::SQLite::Connector::registerConnector(); });
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

// The column values of one alert, bound by reference to the prepared insert statement and
// refilled for each alert of a batch.
struct InsertRow {
    std::string id;
    std::string agent_id;
    Poco::Int64 ts_ns = 0;
    int severity = 0;
    std::string kind;
    std::string source;
    std::string rule;
    std::string category;
    std::string pack;
    Poco::Nullable<std::string> src_ip;
    Poco::Nullable<int> src_port;
    Poco::Nullable<std::string> dest_ip;
    Poco::Nullable<int> dest_port;
    Poco::Nullable<std::string> proto;
    Poco::Nullable<std::string> app_proto;
    Poco::Nullable<Poco::Int64> flow_id;
    Poco::Int64 received_ns = 0;
    std::string eve;

    void fill(const common::Alert& a, std::string json, std::int64_t received) {
        id = a.id;
        agent_id = a.agent_id;
        ts_ns = a.timestamp_ns;
        severity = a.severity;
        kind = std::string(common::to_string(a.kind));
        source = std::string(common::to_string(a.source));
        rule = a.rule;
        category = a.category;
        pack = a.pack_version;
        if (a.network) {
            const common::NetworkContext& n = *a.network;
            src_ip = n.src_ip;
            src_port = static_cast<int>(n.src_port);
            dest_ip = n.dest_ip;
            dest_port = static_cast<int>(n.dest_port);
            proto = n.proto;
            if (n.app_proto.empty()) {
                app_proto.clear();
            } else {
                app_proto = n.app_proto;
            }
            // SQLite integers are signed; a flow id above 2^63 is stored wrapped. The exact
            // value is in eve, the column only serves lookups.
            flow_id = static_cast<Poco::Int64>(n.flow_id);
        } else {
            src_ip.clear();
            src_port.clear();
            dest_ip.clear();
            dest_port.clear();
            proto.clear();
            app_proto.clear();
            flow_id.clear();
        }
        received_ns = received;
        eve = std::move(json);
    }
};

class SqliteStore final : public AlertStore {
public:
    SqliteStore(std::string path, Session writer, Session reader)
        : path_(std::move(path)), writer_(std::move(writer)), reader_(std::move(reader)) {}

    common::Result<InsertResult> insert(const std::vector<common::Alert>& alerts) override;
    common::Result<std::vector<common::Alert>> query(const AlertQuery& q) override;
    common::Result<std::uint64_t> count() override;
    std::uint64_t undecodable_rows() const override { return undecodable_.load(); }
    std::string backend_name() const override { return "sqlite"; }

private:
    const std::string path_;
    std::mutex write_mutex_;
    Session writer_;
    std::mutex read_mutex_;
    Session reader_;
    std::atomic<std::uint64_t> undecodable_{0};
};

common::Result<InsertResult> SqliteStore::insert(const std::vector<common::Alert>& alerts) {
    if (alerts.empty()) return InsertResult{};
    // Validate and encode before taking the lock, so the write lock is held for SQL only.
    std::vector<std::string> eves;
    eves.reserve(alerts.size());
    for (std::size_t i = 0; i < alerts.size(); ++i) {
        if (auto valid = common::validate(alerts[i]); !valid) {
            return make_error(ErrorCode::kInvalidArgument, "alert " + std::to_string(i) +
                                                               " of the batch ('" + alerts[i].id +
                                                               "'): " + valid.error().message);
        }
        eves.push_back(common::alert_to_json(alerts[i]));
    }

    std::lock_guard lock(write_mutex_);
    try {
        WriteTransaction tx(writer_);
        InsertRow row;
        Statement insert_stmt =
            (writer_ << std::string(kInsertSql), use(row.id), use(row.agent_id), use(row.ts_ns),
             use(row.severity), use(row.kind), use(row.source), use(row.rule), use(row.category),
             use(row.pack), use(row.src_ip), use(row.src_port), use(row.dest_ip),
             use(row.dest_port), use(row.proto), use(row.app_proto), use(row.flow_id),
             use(row.received_ns), use(row.eve));
        sqlite3* db = Poco::Data::SQLite::Utility::dbHandle(writer_);
        const std::int64_t received = common::now_ns();
        InsertResult result;
        for (std::size_t i = 0; i < alerts.size(); ++i) {
            row.fill(alerts[i], std::move(eves[i]), received);
            insert_stmt.execute();
            // OR IGNORE makes a duplicate id a successful no-op: changes() tells them apart.
            if (sqlite3_changes(db) > 0) {
                ++result.inserted;
            } else {
                ++result.duplicates;
            }
        }
        tx.commit();
        return result;
    } catch (const Poco::Exception& e) {
        return database_error(path_, "insert failed", e.displayText());
    } catch (const std::exception& e) {
        return database_error(path_, "insert failed", e.what());
    }
}

common::Result<std::vector<common::Alert>> SqliteStore::query(const AlertQuery& q) {
    if (q.limit == 0 || q.limit > kMaxQueryLimit) {
        return make_error(ErrorCode::kInvalidArgument, "query limit " + std::to_string(q.limit) +
                                                           " is outside 1.." +
                                                           std::to_string(kMaxQueryLimit));
    }
    for (int s : q.severities) {
        if (s < common::kSeverityMin || s > common::kSeverityMax) {
            return make_error(ErrorCode::kInvalidArgument,
                              "query severity " + std::to_string(s) + " is outside 1..4");
        }
    }

    // Bound by reference: these locals must outlive the statement's execution.
    Poco::Int64 since = q.since_ns.value_or(0);
    Poco::Int64 until = q.until_ns.value_or(0);
    std::vector<int> severities = q.severities;
    std::string agent = q.agent_id.value_or(std::string());
    auto limit = static_cast<Poco::Int64>(q.limit);

    std::string sql = "SELECT eve FROM alerts";
    std::string_view glue = " WHERE ";
    auto add_condition = [&](std::string_view condition) {
        sql += glue;
        sql += condition;
        glue = " AND ";
    };
    if (q.since_ns) add_condition("ts_ns >= ?");
    if (q.until_ns) add_condition("ts_ns < ?");
    if (!severities.empty()) {
        std::string in = "severity IN (?";
        for (std::size_t i = 1; i < severities.size(); ++i) in += ", ?";
        in += ")";
        add_condition(in);
    }
    if (q.agent_id) add_condition("agent_id = ?");
    sql += " ORDER BY ts_ns DESC, id ASC LIMIT ?";

    std::vector<std::string> eves;
    {
        std::lock_guard lock(read_mutex_);
        try {
            Statement stmt(reader_);
            stmt << sql;
            // Same order as the placeholders above.
            if (q.since_ns) stmt.addBind(use(since));
            if (q.until_ns) stmt.addBind(use(until));
            for (int& s : severities) stmt.addBind(use(s));
            if (q.agent_id) stmt.addBind(use(agent));
            stmt.addBind(use(limit));
            stmt.addExtract(into(eves));
            stmt.execute();
        } catch (const Poco::Exception& e) {
            return database_error(path_, "query failed", e.displayText());
        } catch (const std::exception& e) {
            return database_error(path_, "query failed", e.what());
        }
    }

    std::vector<common::Alert> alerts;
    alerts.reserve(eves.size());
    for (const std::string& eve : eves) {
        auto alert = common::alert_from_json(eve);
        if (!alert) {
            // One damaged row must not hide every other alert from the analyst.
            undecodable_.fetch_add(1);
            continue;
        }
        alerts.push_back(std::move(alert).value());
    }
    return alerts;
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

}  // namespace

common::Result<std::unique_ptr<AlertStore>> open_sqlite_store(const std::string& path) {
    if (path.empty() || path == ":memory:" || path.starts_with("file::memory:")) {
        return make_error(ErrorCode::kInvalidArgument,
                          "SQLite database path '" + path +
                              "' is not a file; the alert store needs one for WAL mode");
    }
    if (auto probed = probe_open(path); !probed) return probed.error();
    register_connector();
    try {
        Session writer("SQLite", path, kOpenTimeoutSeconds);
        if (std::string mode = configure_connection(writer); mode != "wal") {
            return database_error(path, "cannot switch to WAL journal mode",
                                  "journal mode is '" + mode + "'");
        }
        if (auto migrated = migrate(writer, path); !migrated) return migrated.error();

        // Opened after the migrations so that it never sees a half-made schema.
        Session reader("SQLite", path, kOpenTimeoutSeconds);
        configure_connection(reader);
        reader << "PRAGMA query_only = ON", now;
        return std::unique_ptr<AlertStore>(
            std::make_unique<SqliteStore>(path, std::move(writer), std::move(reader)));
    } catch (const Poco::Exception& e) {
        return database_error(path, "cannot open", e.displayText());
    } catch (const std::exception& e) {
        return database_error(path, "cannot open", e.what());
    }
}

}  // namespace senningen::collector
