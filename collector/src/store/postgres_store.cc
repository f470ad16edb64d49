// PostgreSQL backend of AlertStore, over libpq.
//
// Why libpq and not Poco::Data's PostgreSQL connector (Poco 1.11, which the SQLite backend's
// Poco::Data would suggest): that connector never frees a connection that failed. Its
// SessionHandle only calls PQfinish() while PQstatus() is CONNECTION_OK, so a connection that
// could not be opened, or that the server dropped (a restart), leaks its PGconn; LeakSanitizer
// showed it in this store's reconnect and unreachable-server tests. Reconnecting after a
// server restart is exactly what this store must do, so it talks to libpq itself, wrapped once
// below (PgConn, PgResult). The connector also splits its connection string at spaces, so a
// password with a space could not be passed; libpq's PQconnectdbParams has no such limit.
//
// Threading: a pool of connections, one per call in flight (the ingest thread and the HTTP
// workers). PostgreSQL's MVCC lets readers and writers run side by side, also across
// collector processes sharing the database.
//
// Every value reaches the server as a bound parameter (PQexecParams, text format); the only
// SQL assembled at run time is the WHERE clause of the list's filters (filter_sql(), shared by
// query(), aggregate() and groups()) and the aggregation queries around it (rollup.h), built
// from fixed fragments, $n placeholders and limits that are our own integers.
#include "senningen/collector/postgres_store.h"

#include <libpq-fe.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <initializer_list>
#include <map>
#include <mutex>
#include <numeric>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>

#include "senningen/common/json_codec.h"
#include "senningen/common/openssl_util.h"
#include "filter_sql.h"
#include "rollup.h"

namespace senningen::collector {

namespace {

using common::ErrorCode;
using common::make_error;

// Any constant will do, as long as nothing else in the database takes the same advisory lock:
// "SNNG" in ASCII.
constexpr std::int64_t kMigrationLockKey = 0x534e4e47;

struct Migration {
    int version;
    std::string_view description;
    std::array<std::string_view, 8> statements;  // empty entries are skipped
    // Run after the statements, in the same transaction, for what SQL alone cannot do; throws
    // SqlError.
    void (*backfill)(PGconn*) = nullptr;
};

void backfill_filter_columns(PGconn* conn);
void backfill_migration_6(PGconn* conn);

// Append only: a released migration is never edited, a change is a new migration. The same
// tables as the SQLite backend's, in PostgreSQL's types. Texts compare bytewise (COLLATE "C"),
// as in SQLite, so that "newest first, then by id" is the same order on both backends.
constexpr std::array kMigrations = {
    Migration{1,
              "alerts table and its query indexes",
              {
                  "CREATE TABLE alerts ("
                  " id TEXT COLLATE \"C\" PRIMARY KEY NOT NULL,"
                  " agent_id TEXT COLLATE \"C\" NOT NULL,"
                  " ts_ns BIGINT NOT NULL,"
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
                  " flow_id BIGINT,"
                  " received_ns BIGINT NOT NULL,"
                  " eve TEXT NOT NULL)",
                  "CREATE INDEX alerts_ts ON alerts (ts_ns)",
                  "CREATE INDEX alerts_agent_ts ON alerts (agent_id, ts_ns)",
                  "CREATE INDEX alerts_severity_ts ON alerts (severity, ts_ns)",
              }},
    Migration{2,
              "agents and their state changes",
              {
                  "CREATE TABLE agents ("
                  " id TEXT COLLATE \"C\" PRIMARY KEY NOT NULL,"
                  " state TEXT NOT NULL,"
                  " first_seen_ns BIGINT NOT NULL,"
                  " last_seen_ns BIGINT NOT NULL,"
                  " state_since_ns BIGINT NOT NULL,"
                  " sequence BIGINT NOT NULL, version TEXT NOT NULL, uptime_s BIGINT NOT NULL,"
                  " pack_version TEXT NOT NULL, interval_s BIGINT NOT NULL,"
                  " packets BIGINT NOT NULL, kernel_drops BIGINT NOT NULL,"
                  " bytes BIGINT NOT NULL, files_scanned BIGINT NOT NULL,"
                  " alerts BIGINT NOT NULL, queue_depth BIGINT NOT NULL,"
                  " queue_oldest_age_s BIGINT NOT NULL)",
                  "CREATE TABLE agent_events ("
                  " seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
                  " time_ns BIGINT NOT NULL,"
                  " agent_id TEXT COLLATE \"C\" NOT NULL,"
                  " event TEXT NOT NULL,"
                  " detail TEXT NOT NULL)",
                  "CREATE INDEX agent_events_agent ON agent_events (agent_id, seq)",
              }},
    Migration{3,
              "accounts, sessions, API tokens and the audit log",
              {
                  "CREATE TABLE users ("
                  " name TEXT COLLATE \"C\" PRIMARY KEY NOT NULL,"
                  " role INTEGER NOT NULL CHECK (role IN (1, 2, 3)),"
                  " password_hash TEXT NOT NULL,"
                  " created_ns BIGINT NOT NULL,"
                  " disabled INTEGER NOT NULL DEFAULT 0)",
                  "CREATE TABLE sessions ("
                  " digest TEXT PRIMARY KEY NOT NULL,"
                  " user_name TEXT COLLATE \"C\" NOT NULL REFERENCES users (name),"
                  " created_ns BIGINT NOT NULL,"
                  " expires_ns BIGINT NOT NULL,"
                  " last_seen_ns BIGINT NOT NULL)",
                  "CREATE INDEX sessions_user ON sessions (user_name)",
                  "CREATE TABLE api_tokens ("
                  " digest TEXT PRIMARY KEY NOT NULL,"
                  " user_name TEXT COLLATE \"C\" NOT NULL REFERENCES users (name),"
                  " label TEXT NOT NULL,"
                  " created_ns BIGINT NOT NULL,"
                  " last_used_ns BIGINT NOT NULL DEFAULT 0)",
                  "CREATE TABLE audit_log ("
                  " seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
                  " time_ns BIGINT NOT NULL,"
                  " actor TEXT NOT NULL,"
                  " action TEXT NOT NULL,"
                  " target TEXT COLLATE \"C\" NOT NULL,"
                  " old_value TEXT NOT NULL,"
                  " new_value TEXT NOT NULL)",
                  "CREATE INDEX audit_log_target ON audit_log (target, seq)",
              }},
    Migration{4,
              "alert triage: status, assignee and comments",
              {
                  "CREATE TABLE alert_triage ("
                  " alert_id TEXT COLLATE \"C\" PRIMARY KEY NOT NULL REFERENCES alerts (id),"
                  " status TEXT NOT NULL,"
                  " assignee TEXT COLLATE \"C\" NOT NULL,"
                  " updated_ns BIGINT NOT NULL)",
                  "CREATE INDEX alert_triage_status ON alert_triage (status)",
                  "CREATE INDEX alert_triage_assignee ON alert_triage (assignee)",
                  "CREATE TABLE alert_comments ("
                  " seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
                  " alert_id TEXT COLLATE \"C\" NOT NULL REFERENCES alerts (id),"
                  " time_ns BIGINT NOT NULL,"
                  " author TEXT NOT NULL,"
                  " text TEXT NOT NULL)",
                  "CREATE INDEX alert_comments_alert ON alert_comments (alert_id, seq)",
              }},
    // The alert list's filters (docs/collector.md, "GET /api/v1/alerts"): addresses as 16
    // bytes (IPv4 mapped into ::ffff:0:0/96), so that a CIDR block is a range scan of a B-tree,
    // and the signature and matched strings as one text column under a trigram index
    // (pg_trgm, in Debian's postgresql package; trusted since PostgreSQL 13, so the database
    // owner may create it), so that a substring search does not read every row. Older rows
    // are filled by backfill_filter_columns, from their EVE JSON.
    Migration{5,
              "address and free-text filters: 16-byte addresses, trigram text index, rule index",
              {
                  "CREATE EXTENSION IF NOT EXISTS pg_trgm",
                  "ALTER TABLE alerts ADD COLUMN src_bin BYTEA, ADD COLUMN dest_bin BYTEA,"
                  " ADD COLUMN search_text TEXT",
                  "CREATE INDEX alerts_src_bin ON alerts (src_bin)",
                  "CREATE INDEX alerts_dest_bin ON alerts (dest_bin)",
                  "CREATE INDEX alerts_rule_ts ON alerts (rule, ts_ns)",
                  "CREATE INDEX alerts_search_text ON alerts USING gin (search_text gin_trgm_ops)",
              },
              backfill_filter_columns},
    // As SQLite's migration 7: hourly counts for aggregations, kept in the insert transaction, and
    // the target related alerts are grouped on (file paths decoded in C++, as a damaged eve must
    // not stop the migration).
    Migration{6,
              "hourly alert counts; alert targets for grouping",
              {
                  "ALTER TABLE alerts ADD COLUMN target TEXT COLLATE \"C\"",
                  "CREATE TABLE alert_minute_counts ("
                  " minute BIGINT NOT NULL,"
                  " severity INTEGER NOT NULL,"
                  " n BIGINT NOT NULL,"
                  " PRIMARY KEY (minute, severity))",
                  "CREATE TABLE alert_counts ("
                  " hour BIGINT NOT NULL,"
                  " severity INTEGER NOT NULL,"
                  " agent_id TEXT COLLATE \"C\" NOT NULL,"
                  " rule TEXT COLLATE \"C\" NOT NULL,"
                  " n BIGINT NOT NULL,"
                  " PRIMARY KEY (hour, severity, agent_id, rule))",
                  "CREATE INDEX alert_counts_agent ON alert_counts (agent_id, hour)",
                  "CREATE INDEX alert_counts_rule ON alert_counts (rule, hour)",
                  "CREATE TABLE alert_hour_counts ("
                  " hour BIGINT NOT NULL,"
                  " severity INTEGER NOT NULL,"
                  " n BIGINT NOT NULL,"
                  " PRIMARY KEY (hour, severity))",
                  "INSERT INTO alert_counts (hour, severity, agent_id, rule, n)"
                  " SELECT (ts_ns - (((ts_ns % 3600000000000) + 3600000000000) % 3600000000000)),"
                  " severity, agent_id, rule, count(*) FROM alerts GROUP BY 1, 2, 3, 4",
                  "INSERT INTO alert_hour_counts (hour, severity, n)"
                  " SELECT hour, severity, SUM(n) FROM alert_counts GROUP BY hour, severity",
              },
              backfill_migration_6},
    // As SQLite's migration 9: metadata records and their indicator values for hunting.
    // "IF NOT EXISTS": the tests that undo an earlier migration run this one again.
    Migration{7,
              "metadata records and their indicator values",
              {
                  "CREATE TABLE IF NOT EXISTS metadata ("
                  " id BIGSERIAL PRIMARY KEY,"
                  " agent_id TEXT COLLATE \"C\" NOT NULL,"
                  " ts_ns BIGINT NOT NULL,"
                  " received_ns BIGINT NOT NULL,"
                  " type TEXT COLLATE \"C\" NOT NULL,"
                  " uid TEXT COLLATE \"C\","
                  " flow_id TEXT COLLATE \"C\","
                  " digest TEXT COLLATE \"C\" NOT NULL,"
                  " json TEXT NOT NULL)",
                  "CREATE UNIQUE INDEX IF NOT EXISTS metadata_agent_digest"
                  " ON metadata (agent_id, digest)",
                  "CREATE INDEX IF NOT EXISTS metadata_received ON metadata (received_ns)",
                  "CREATE INDEX IF NOT EXISTS metadata_ts ON metadata (ts_ns, id)",
                  "CREATE INDEX IF NOT EXISTS metadata_uid ON metadata (uid) WHERE uid IS NOT NULL",
                  "CREATE TABLE IF NOT EXISTS metadata_values ("
                  " value TEXT COLLATE \"C\" NOT NULL,"
                  " ts_ns BIGINT NOT NULL,"
                  " record_id BIGINT NOT NULL,"
                  " PRIMARY KEY (value, ts_ns, record_id))",
                  "CREATE INDEX IF NOT EXISTS metadata_values_record"
                  " ON metadata_values (record_id)",
              }},
};
static_assert(kMigrations.back().version == kPostgresSchemaVersion,
              "kPostgresSchemaVersion must name the last migration");

constexpr std::string_view kInsertSql =
    "INSERT INTO alerts (id, agent_id, ts_ns, severity, kind, source, rule, category,"
    " pack, src_ip, src_port, dest_ip, dest_port, proto, app_proto, flow_id, received_ns, eve,"
    " target, src_bin, dest_bin, search_text)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,"
    " $19, $20, $21, $22)"
    " ON CONFLICT (id) DO NOTHING";

constexpr std::string_view kAgentColumns =
    "SELECT id, state, version, pack_version, first_seen_ns, last_seen_ns, state_since_ns,"
    " sequence, uptime_s, interval_s, packets, kernel_drops, bytes, files_scanned, alerts,"
    " queue_depth, queue_oldest_age_s FROM agents";

// libpq's messages span lines ("...failed: Connection refused\n\tIs the server running...");
// a log line and a problem detail want one.
std::string one_line(std::string_view text) {
    std::string out;
    bool space = false;
    for (char c : text) {
        if (c == '\n' || c == '\t' || c == '\r' || c == ' ') {
            space = !out.empty();
            continue;
        }
        if (space) out += ' ';
        space = false;
        out += c;
    }
    return out;
}

// libpq's parse of CONNINFO: keyword => value, only those set. The error is libpq's message.
common::Result<std::map<std::string, std::string>> parse_conninfo(const std::string& conninfo) {
    char* error = nullptr;
    PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &error);
    if (options == nullptr) {
        std::string message = error != nullptr ? error : "out of memory";
        PQfreemem(error);
        while (!message.empty() && message.back() == '\n') message.pop_back();
        return make_error(ErrorCode::kInvalidArgument, "PostgreSQL connection string '" +
                                                           redact_conninfo(conninfo) +
                                                           "' is malformed: " + message);
    }
    std::map<std::string, std::string> out;
    for (const PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
        if (o->val != nullptr) out[o->keyword] = o->val;
    }
    PQconninfoFree(options);
    return out;
}

// "key='value' ..." in libpq's quoting: backslash and quote escaped. For Poco's connector
// (postgres_keyword_string), which splits the string at every space before libpq sees it, so
// a value with white space in it cannot be passed at all: that is refused here, naming the
// keyword (not the value, a password perhaps).
common::Result<std::string> to_keyword_string(const std::map<std::string, std::string>& keywords,
                                              const std::string& name) {
    std::string out;
    for (const auto& [key, value] : keywords) {
        if (value.find_first_of(" \t\n\r\f\v") != std::string::npos) {
            return make_error(ErrorCode::kInvalidArgument,
                              "PostgreSQL connection string '" + name + "': the value of '" + key +
                                  "' contains white space, which Poco's PostgreSQL connector "
                                  "cannot pass on (for a password, use ~/.pgpass or PGPASSWORD)");
        }
        if (!out.empty()) out += ' ';
        out += key;
        out += "='";
        for (char c : value) {
            if (c == '\\' || c == '\'') out += '\\';
            out += c;
        }
        out += '\'';
    }
    return out;
}

// --- libpq, wrapped once ---------------------------------------------------------------

// The statements prepared on each open connection: SQL text to statement name. Planning a
// list or aggregation query over ten million alerts costs more than running it (the planner
// weighs every index of the table), so the read queries the API repeats are prepared once per
// connection; PostgreSQL then keeps a generic plan where it costs no more than fresh ones.
class PreparedStatements {
public:
    static PreparedStatements& instance() {
        static PreparedStatements statements;
        return statements;
    }
    // The name of SQL's statement on CONN, or empty when it must be prepared as NAME first
    // (which add() then records). Empty NAME: the connection has as many as it may keep.
    std::string find(PGconn* conn, const std::string& sql, std::string& name) {
        std::lock_guard lock(mutex_);
        auto& known = by_connection_[conn];
        if (auto it = known.find(sql); it != known.end()) return it->second;
        name = known.size() < kMaxPerConnection ? "s" + std::to_string(known.size()) : "";
        return {};
    }
    void add(PGconn* conn, const std::string& sql, const std::string& name) {
        std::lock_guard lock(mutex_);
        by_connection_[conn].emplace(sql, name);
    }
    void forget(PGconn* conn) {
        std::lock_guard lock(mutex_);
        by_connection_.erase(conn);
    }

private:
    // Filters make many texts (each combination, each count of severities): a bounded few.
    static constexpr std::size_t kMaxPerConnection = 200;
    std::mutex mutex_;
    std::unordered_map<PGconn*, std::unordered_map<std::string, std::string>> by_connection_;
};

struct PgConnClose {
    void operator()(PGconn* c) const {
        PreparedStatements::instance().forget(c);
        PQfinish(c);
    }
};
using PgConn = std::unique_ptr<PGconn, PgConnClose>;

struct PgResultClear {
    void operator()(PGresult* r) const { PQclear(r); }
};
using PgResult = std::unique_ptr<PGresult, PgResultClear>;

// A statement the server refused or a connection that broke. Thrown by the helpers below and
// caught at the boundary of every store call (with_connection), never beyond this file: it
// keeps the SQL sequences readable, as the exceptions of Poco::Data do in the SQLite backend.
class SqlError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// A bound parameter: text, or NULL.
using Param = std::optional<std::string>;

Param param(std::int64_t v) {
    return std::to_string(v);
}
Param param(std::uint64_t v) {
    return std::to_string(static_cast<std::int64_t>(v));
}
Param param(int v) {
    return std::to_string(v);
}
Param param(std::string v) {
    return v;
}

// PARAMS as libpq's values (NULL for a NULL); valid while PARAMS is.
std::vector<const char*> param_values(const std::vector<Param>& params) {
    std::vector<const char*> values;
    values.reserve(params.size());
    for (const Param& p : params) values.push_back(p ? p->c_str() : nullptr);
    return values;
}

// RESULT when it is one of the OK statuses; throws SqlError with the server's message else.
PgResult checked(PgResult result, PGconn* conn,
                 std::initializer_list<ExecStatusType> ok = {PGRES_COMMAND_OK, PGRES_TUPLES_OK}) {
    const ExecStatusType status = result ? PQresultStatus(result.get()) : PGRES_FATAL_ERROR;
    if (std::find(ok.begin(), ok.end(), status) == ok.end()) {
        throw SqlError(
            one_line(result ? PQresultErrorMessage(result.get()) : PQerrorMessage(conn)));
    }
    return result;
}

// Runs SQL with PARAMS as $1, $2, ... and returns the result; throws SqlError.
PgResult exec(PGconn* conn, const std::string& sql, const std::vector<Param>& params = {}) {
    const std::vector<const char*> values = param_values(params);
    return checked(PgResult(PQexecParams(conn, sql.c_str(), static_cast<int>(values.size()),
                                         nullptr, values.data(), nullptr, nullptr, 0)),
                   conn);
}

// exec() through a statement prepared on CONN once (PreparedStatements), for the read queries
// the API repeats; throws SqlError.
PgResult exec_prepared(PGconn* conn, const std::string& sql, const std::vector<Param>& params) {
    std::string name;
    std::string known = PreparedStatements::instance().find(conn, sql, name);
    if (known.empty()) {
        if (name.empty()) return exec(conn, sql, params);
        checked(PgResult(PQprepare(conn, name.c_str(), sql.c_str(), 0, nullptr)), conn,
                {PGRES_COMMAND_OK});
        PreparedStatements::instance().add(conn, sql, name);
        known = std::move(name);
    }
    const std::vector<const char*> values = param_values(params);
    return checked(PgResult(PQexecPrepared(conn, known.c_str(), static_cast<int>(values.size()),
                                           values.data(), nullptr, nullptr, 0)),
                   conn);
}

std::string text(const PgResult& r, int row, int col) {
    return {PQgetvalue(r.get(), row, col),
            static_cast<std::size_t>(PQgetlength(r.get(), row, col))};
}

std::int64_t integer(const PgResult& r, int row, int col) {
    const char* v = PQgetvalue(r.get(), row, col);
    const char* end = v + PQgetlength(r.get(), row, col);
    std::int64_t out = 0;
    const auto [ptr, ec] = std::from_chars(v, end, out);
    if (ec != std::errc() || ptr != end) {
        throw SqlError("column " + std::to_string(col) + " of row " + std::to_string(row) +
                       " is not an integer: '" + std::string(v, end) + "'");
    }
    return out;
}

// Rows an INSERT, UPDATE or DELETE affected.
std::uint64_t affected(const PgResult& r) {
    const std::string n = PQcmdTuples(r.get());
    std::uint64_t out = 0;
    std::from_chars(n.data(), n.data() + n.size(), out);
    return out;
}

// Server notices ("relation already exists, skipping") would go to stderr; the store reports
// what matters itself.
void ignore_notice(void* /*arg*/, const char* /*message*/) {}

// The pool: connections are made on demand up to a maximum and kept while they work. A
// connection that broke is closed, never handed out again, and since a broken connection
// usually means the server restarted (which ends every connection), the idle ones are closed
// too, so that only the call that met the broken connection fails.
class ConnectionPool {
public:
    ConnectionPool(std::map<std::string, std::string> keywords, std::string name,
                   const PostgresOptions& options)
        : keywords_(std::move(keywords)), name_(std::move(name)), options_(options) {}

    class Lease {
    public:
        Lease(ConnectionPool& pool, PgConn conn) : pool_(&pool), conn_(std::move(conn)) {}
        Lease(Lease&& other) noexcept
            : pool_(std::exchange(other.pool_, nullptr)), conn_(std::move(other.conn_)) {}
        Lease(const Lease&) = delete;
        Lease& operator=(const Lease&) = delete;
        Lease& operator=(Lease&&) = delete;
        ~Lease() {
            if (pool_ != nullptr) pool_->give_back(std::move(conn_));
        }
        PGconn* get() const { return conn_.get(); }

    private:
        ConnectionPool* pool_;
        PgConn conn_;
    };

    common::Result<Lease> acquire() {
        std::unique_lock lock(mutex_);
        const auto deadline = std::chrono::steady_clock::now() +
                              std::chrono::milliseconds(options_.acquire_timeout_ms);
        if (!available_.wait_until(lock, deadline, [&] {
                return !idle_.empty() || open_ < options_.max_connections;
            })) {
            return make_error(ErrorCode::kDatabase,
                              "PostgreSQL database '" + name_ + "': all " +
                                  std::to_string(options_.max_connections) +
                                  " connections stayed busy for " +
                                  std::to_string(options_.acquire_timeout_ms) + " ms");
        }
        if (!idle_.empty()) {
            PgConn conn = std::move(idle_.back());
            idle_.pop_back();
            return Lease(*this, std::move(conn));
        }
        ++open_;
        lock.unlock();  // connecting takes a round trip or more; others may use idle ones
        PgConn conn = connect();
        if (PQstatus(conn.get()) != CONNECTION_OK) {
            const std::string message =
                conn ? one_line(PQerrorMessage(conn.get())) : std::string("out of memory");
            conn.reset();
            {
                std::lock_guard relock(mutex_);
                --open_;
            }
            available_.notify_one();
            return make_error(ErrorCode::kDatabase,
                              "PostgreSQL database '" + name_ + "': cannot connect: " + message);
        }
        PQsetNoticeProcessor(conn.get(), ignore_notice, nullptr);
        return Lease(*this, std::move(conn));
    }

    const std::string& name() const { return name_; }

private:
    PgConn connect() const {
        std::vector<const char*> keys;
        std::vector<const char*> values;
        for (const auto& [key, value] : keywords_) {
            keys.push_back(key.c_str());
            values.push_back(value.c_str());
        }
        keys.push_back(nullptr);
        values.push_back(nullptr);
        return PgConn(PQconnectdbParams(keys.data(), values.data(), 0));
    }

    void give_back(PgConn conn) {
        std::vector<PgConn> dropped;
        {
            std::lock_guard lock(mutex_);
            if (PQstatus(conn.get()) == CONNECTION_OK &&
                PQtransactionStatus(conn.get()) == PQTRANS_IDLE) {
                idle_.push_back(std::move(conn));
            } else {
                --open_;
                open_ -= idle_.size();
                dropped.swap(idle_);
            }
        }
        available_.notify_all();
        // Closed outside the lock (PQfinish may wait on the network): CONN and DROPPED go here.
    }

    const std::map<std::string, std::string> keywords_;
    const std::string name_;
    const PostgresOptions options_;
    std::mutex mutex_;
    std::condition_variable available_;
    std::vector<PgConn> idle_;
    std::size_t open_ = 0;  // connections in existence: idle plus leased
};

// Rolls back unless committed; a connection that died mid-transaction cannot roll back, and
// the error that got us here matters more than that one.
class Transaction {
public:
    explicit Transaction(PGconn* conn) : conn_(conn) { exec(conn_, "BEGIN"); }
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;
    ~Transaction() {
        if (done_) return;
        PQclear(PQexec(conn_, "ROLLBACK"));
    }
    void commit() {
        exec(conn_, "COMMIT");
        done_ = true;
    }

private:
    PGconn* conn_;
    bool done_ = false;
};

// One alert's column values, in kInsertSql's order.
std::vector<Param> insert_params(const common::Alert& a, std::string eve, std::int64_t received) {
    std::vector<Param> p;
    p.reserve(18);
    p.push_back(param(a.id));
    p.push_back(param(a.agent_id));
    p.push_back(param(a.timestamp_ns));
    p.push_back(param(a.severity));
    p.push_back(param(std::string(common::to_string(a.kind))));
    p.push_back(param(std::string(common::to_string(a.source))));
    p.push_back(param(a.rule));
    p.push_back(param(a.category));
    p.push_back(param(a.pack_version));
    if (a.network) {
        const common::NetworkContext& n = *a.network;
        p.push_back(param(n.src_ip));
        p.push_back(param(static_cast<int>(n.src_port)));
        p.push_back(param(n.dest_ip));
        p.push_back(param(static_cast<int>(n.dest_port)));
        p.push_back(param(n.proto));
        p.push_back(n.app_proto.empty() ? Param() : param(n.app_proto));
        // BIGINT is signed; a flow id above 2^63 is stored wrapped. The exact value is in
        // eve, the column only serves lookups.
        p.push_back(param(n.flow_id));
    } else {
        p.insert(p.end(), 7, Param());
    }
    p.push_back(param(received));
    p.push_back(param(std::move(eve)));
    p.push_back(param(group_target(a)));
    return p;
}

// Adds DELTA to the hourly counts, inside the insert's transaction, in DELTA's (sorted) order.
void apply_rollup(PGconn* conn, const detail::RollupDelta& delta) {
    const std::string counts =
        "INSERT INTO alert_counts (hour, severity, agent_id, rule, n) VALUES ($1, $2, $3, $4, $5)"
        " ON CONFLICT (hour, severity, agent_id, rule) DO UPDATE SET n = alert_counts.n + EXCLUDED.n";
    for (const auto& [key, n] : delta.counts) {
        exec(conn, counts, {param(key.hour_ns), param(key.severity), param(key.agent_id),
                            param(key.rule), param(n)});
    }
    const std::string hours =
        "INSERT INTO alert_hour_counts (hour, severity, n) VALUES ($1, $2, $3)"
        " ON CONFLICT (hour, severity) DO UPDATE SET n = alert_hour_counts.n + EXCLUDED.n";
    for (const auto& [key, n] : delta.hour_counts) {
        exec(conn, hours, {param(key.first), param(key.second), param(n)});
    }
    const std::string minutes =
        "INSERT INTO alert_minute_counts (minute, severity, n) VALUES ($1, $2, $3)"
        " ON CONFLICT (minute, severity) DO UPDATE SET n = alert_minute_counts.n + EXCLUDED.n";
    for (const auto& [key, n] : delta.minute_counts) {
        exec(conn, minutes, {param(key.first), param(key.second), param(n)});
    }
}

// A 16-byte address in bytea's text form, or NULL.
Param address_param(const std::optional<std::array<std::uint8_t, 16>>& bytes) {
    if (!bytes) return Param();
    return "\\x" + common::to_hex(bytes->data(), bytes->size());
}
Param address_param(const std::array<std::uint8_t, 16>& bytes) {
    return address_param(std::optional(bytes));
}

// The columns of the alert list's filters (migration 5): src_bin, dest_bin, search_text.
std::vector<Param> filter_params(const common::Alert& a) {
    std::vector<Param> p;
    p.push_back(a.network ? address_param(address_bytes(a.network->src_ip)) : Param());
    p.push_back(a.network ? address_param(address_bytes(a.network->dest_ip)) : Param());
    p.push_back(param(alert_search_text(a)));
    return p;
}

// kInsertSql's values: the row, then the filter columns.
std::vector<Param> insert_row_params(const common::Alert& a, std::string eve,
                                     std::int64_t received) {
    std::vector<Param> p = insert_params(a, std::move(eve), received);
    std::vector<Param> extra = filter_params(a);
    p.insert(p.end(), std::make_move_iterator(extra.begin()), std::make_move_iterator(extra.end()));
    return p;
}

// Migration 5's backfill: every row's filter columns from its EVE JSON, in id order, a
// thousand rows per statement. A row that does not decode keeps NULLs (it cannot be listed
// either).
void backfill_filter_columns(PGconn* conn) {
    constexpr int kBatch = 1000;
    std::string last;
    for (;;) {
        PgResult rows = exec(conn, "SELECT id, eve FROM alerts WHERE id > $1 ORDER BY id LIMIT $2",
                             {param(last), param(kBatch)});
        const int n = PQntuples(rows.get());
        if (n == 0) return;
        std::string sql = "UPDATE alerts AS a SET src_bin = v.s, dest_bin = v.d, search_text = v.t"
                          " FROM (VALUES ";
        std::vector<Param> params;
        params.reserve(static_cast<std::size_t>(n) * 4);
        for (int row = 0; row < n; ++row) {
            const std::size_t base = params.size();
            sql += (row == 0 ? "($" : ", ($") + std::to_string(base + 1) + "::text, $" +
                   std::to_string(base + 2) + "::bytea, $" + std::to_string(base + 3) +
                   "::bytea, $" + std::to_string(base + 4) + "::text)";
            params.push_back(param(text(rows, row, 0)));
            auto alert = common::alert_from_json(text(rows, row, 1));
            if (alert) {
                std::vector<Param> extra = filter_params(*alert);
                params.insert(params.end(), std::make_move_iterator(extra.begin()),
                              std::make_move_iterator(extra.end()));
            } else {
                params.insert(params.end(), 3, Param());
            }
        }
        sql += ") AS v(id, s, d, t) WHERE a.id = v.id";
        exec(conn, sql, params);
        last = text(rows, n - 1, 0);
    }
}

// FILTERS's SQL with each "?" numbered $n after the values already in PARAMS, its values
// appended to PARAMS.
std::string numbered(const detail::FilterSql& filters, std::vector<Param>& params) {
    std::string sql;
    sql.reserve(filters.sql.size() + 16);
    std::size_t next = 0;
    for (char c : filters.sql) {
        if (c != '?') {
            sql += c;
            continue;
        }
        const detail::FilterValue& v = filters.params.at(next++);
        if (const auto* n = std::get_if<std::int64_t>(&v)) {
            params.push_back(param(*n));
        } else if (const auto* t = std::get_if<std::string>(&v)) {
            params.push_back(param(*t));
        } else {
            params.push_back(address_param(std::get<std::array<std::uint8_t, 16>>(v)));
        }
        sql += "$" + std::to_string(params.size());
    }
    return sql;
}

// The free-text condition of Q: a LIKE over search_text, which a pg_trgm index serves
// (LIKE's default escape is the backslash).
void add_text_condition(const AlertQuery& q, detail::FilterSql& f) {
    if (!q.text) return;
    f.add("search_text LIKE ?");
    f.params.emplace_back(detail::like_pattern(*q.text));
}

class PostgresStore final : public AlertStore {
public:
    explicit PostgresStore(std::unique_ptr<ConnectionPool> pool) : pool_(std::move(pool)) {}

    common::Result<InsertResult> insert(const std::vector<common::Alert>& alerts) override;
    common::Result<std::vector<common::Alert>> query(const AlertQuery& q) override;
    common::Result<std::uint64_t> count() override;
    common::Result<AggregateResult> aggregate(const AggregateQuery& q) override;
    common::Result<std::vector<AlertGroup>> groups(const GroupQuery& q) override;
    std::uint64_t undecodable_rows() const override { return undecodable_.load(); }
    std::string backend_name() const override { return "postgresql"; }

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
    common::Result<std::vector<UserAccount>> select_users(const std::string* only);
    // Runs BODY(PGconn*) on a pooled connection; an SqlError becomes kDatabase naming WHAT.
    template <typename T, typename Body>
    common::Result<T> with_connection(std::string_view what, Body&& body) {
        auto lease = pool_->acquire();
        if (!lease) return lease.error();
        try {
            return body(lease->get());
        } catch (const SqlError& e) {
            return make_error(ErrorCode::kDatabase, "PostgreSQL database '" + pool_->name() +
                                                        "': " + std::string(what) + ": " +
                                                        e.what());
        }
    }
    common::Result<std::vector<AgentStatus>> select_agents(const std::string* only);

    std::unique_ptr<ConnectionPool> pool_;
    std::atomic<std::uint64_t> undecodable_{0};
};

common::Result<InsertResult> PostgresStore::insert(const std::vector<common::Alert>& alerts) {
    if (alerts.empty()) return InsertResult{};
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
    // Rows are inserted in id order: two collectors inserting overlapping batches (an agent
    // that failed over and resent) then lock the rows in the same order and cannot deadlock.
    std::vector<std::size_t> order(alerts.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return alerts[a].id < alerts[b].id; });

    return with_connection<InsertResult>("insert failed", [&](PGconn* conn) {
        Transaction tx(conn);
        const std::string sql(kInsertSql);
        const std::int64_t received = common::now_ns();
        InsertResult result;
        detail::RollupDelta rollup;
        for (std::size_t i : order) {
            // ON CONFLICT DO NOTHING: a duplicate id affects no row.
            if (affected(exec(conn, sql, insert_row_params(alerts[i], std::move(eves[i]), received))) >
                0) {
                ++result.inserted;
                rollup.add(alerts[i]);
            } else {
                ++result.duplicates;
            }
        }
        apply_rollup(conn, rollup);
        tx.commit();
        return result;
    });
}

// The WHERE clause of the list's filters (empty when nothing filters), none of its keyset,
// their values appended to PARAMS as $n: for aggregation and grouping.
std::string filter_sql(const AlertQuery& q, std::vector<Param>& params) {
    detail::FilterSql f = detail::filter_sql(q, false);
    add_text_condition(q, f);
    return numbered(f, params);
}

common::Result<std::vector<common::Alert>> PostgresStore::query(const AlertQuery& q) {
    if (auto ok = check_query(q); !ok) return ok.error();

    std::vector<Param> params;
    const std::string sql = numbered(detail::list_sql(q, "eve", add_text_condition), params);

    auto eves = with_connection<std::vector<std::string>>("query failed", [&](PGconn* conn) {
        // Free text is left to a fresh plan each time: whether the trigram index pays depends
        // on the pattern.
        PgResult r = q.text ? exec(conn, sql, params) : exec_prepared(conn, sql, params);
        std::vector<std::string> out;
        out.reserve(static_cast<std::size_t>(PQntuples(r.get())));
        for (int row = 0; row < PQntuples(r.get()); ++row) out.push_back(text(r, row, 0));
        return out;
    });
    if (!eves) return eves.error();

    std::vector<common::Alert> alerts;
    alerts.reserve(eves->size());
    for (const std::string& eve : *eves) {
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

common::Result<AggregateResult> PostgresStore::aggregate(const AggregateQuery& q) {
    if (auto ok = check_aggregate_query(q); !ok) return ok.error();
    if (auto parts = detail::aggregate_in_parts(
            q, [this](const AggregateQuery& part) { return aggregate(part); })) {
        return std::move(*parts);
    }
    const bool rollup = q.use_rollup && (rollup_answers(q) || detail::minute_rollup_answers(q));
    std::vector<Param> params;
    std::string sql;
    if (rollup) {
        detail::RollupSql r = detail::rollup_sql(
            q, [](int i) { return "$" + std::to_string(i); }, " COLLATE \"C\"");
        for (std::int64_t v : r.ints) params.push_back(param(v));
        if (r.agent) params.push_back(param(*r.agent));
        sql = std::move(r.sql);
    } else {
        const detail::ScanSql parts = detail::scan_sql(q, " COLLATE \"C\"");
        sql = parts.head + filter_sql(q.filter, params) + parts.tail;
    }
    return with_connection<AggregateResult>("aggregation failed", [&](PGconn* conn) {
        PgResult r = q.filter.text ? exec(conn, sql, params) : exec_prepared(conn, sql, params);
        const int n = PQntuples(r.get());
        if (q.by == AggregateBy::kHour) {
            std::vector<detail::HourRow> rows;
            rows.reserve(static_cast<std::size_t>(n));
            for (int row = 0; row < n; ++row) {
                rows.push_back({integer(r, row, 0), static_cast<int>(integer(r, row, 1)),
                                static_cast<std::uint64_t>(integer(r, row, 2))});
            }
            return detail::hourly_result(rows, q.limit, rollup);
        }
        std::vector<detail::KeyRow> rows;
        rows.reserve(static_cast<std::size_t>(n));
        for (int row = 0; row < n; ++row) {
            rows.push_back({text(r, row, 0), static_cast<std::uint64_t>(integer(r, row, 1))});
        }
        return detail::keyed_result(std::move(rows), q.limit, rollup);
    });
}

common::Result<std::vector<AlertGroup>> PostgresStore::groups(const GroupQuery& q) {
    if (auto ok = check_group_query(q); !ok) return ok.error();
    std::vector<Param> params = {param(q.window_ns)};
    const std::string where = filter_sql(q.filter, params);
    params.push_back(param(static_cast<std::int64_t>(q.limit)));
    const std::string sql = detail::group_sql(where, "$1", "$1", "$1",
                                              "$" + std::to_string(params.size()),
                                              " COLLATE \"C\"");
    return with_connection<std::vector<AlertGroup>>("grouping failed", [&](PGconn* conn) {
        PgResult r = exec(conn, sql, params);
        std::vector<AlertGroup> out;
        for (int row = 0; row < PQntuples(r.get()); ++row) {
            AlertGroup g;
            g.rule = text(r, row, 0);
            g.agent_id = text(r, row, 1);
            g.target = text(r, row, 2);
            g.window_start_ns = integer(r, row, 3);
            g.count = static_cast<std::uint64_t>(integer(r, row, 4));
            g.first_ns = integer(r, row, 5);
            g.last_ns = integer(r, row, 6);
            g.top_severity = static_cast<int>(integer(r, row, 7));
            g.newest_id = text(r, row, 8);
            for (std::size_t k = 0; k < g.status_counts.size(); ++k) {
                g.status_counts[k] =
                    static_cast<std::uint64_t>(integer(r, row, 9 + static_cast<int>(k)));
            }
            out.push_back(std::move(g));
        }
        return out;
    });
}

common::Result<std::uint64_t> PostgresStore::count() {
    return with_connection<std::uint64_t>("count failed", [&](PGconn* conn) {
        return static_cast<std::uint64_t>(integer(exec(conn, "SELECT count(*) FROM alerts"), 0, 0));
    });
}

// Inside an open transaction: the state change, if it is one, becomes an event.
void record_event_if_changed(PGconn* conn, const std::string& agent_id, const std::string& before,
                             const std::string& after, std::int64_t at_ns,
                             const std::string& detail) {
    if (before == after) return;
    exec(conn,
         "INSERT INTO agent_events (time_ns, agent_id, event, detail) VALUES ($1, $2, $3, $4)",
         {param(at_ns), param(agent_id), param(after), param(detail)});
}

// The agent's current state, locking its row until the transaction ends (so a heartbeat on one
// collector and the liveness check on another cannot both record a change); empty when the
// agent was never seen.
std::string lock_agent_state(PGconn* conn, const std::string& agent_id) {
    PgResult r = exec(conn, "SELECT state FROM agents WHERE id = $1 FOR UPDATE", {param(agent_id)});
    return PQntuples(r.get()) == 0 ? std::string() : text(r, 0, 0);
}

common::Result<void> PostgresStore::record_heartbeat(const common::Heartbeat& hb,
                                                     std::int64_t received_ns) {
    return with_connection<void>(
        "heartbeat of agent '" + hb.agent_id + "'", [&](PGconn* conn) -> common::Result<void> {
            Transaction tx(conn);
            const std::string state = hb.stopping ? "stopped" : "online";
            const std::string before = lock_agent_state(conn, hb.agent_id);
            exec(conn,
                 "INSERT INTO agents (id, state, first_seen_ns, last_seen_ns, state_since_ns,"
                 " sequence, version, uptime_s, pack_version, interval_s, packets,"
                 " kernel_drops, bytes, files_scanned, alerts, queue_depth, queue_oldest_age_s)"
                 " VALUES ($1, $2, $3, $3, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,"
                 " $15)"
                 " ON CONFLICT (id) DO UPDATE SET state = $2, last_seen_ns = $3,"
                 " state_since_ns = CASE WHEN agents.state = $2 THEN agents.state_since_ns"
                 " ELSE $3 END,"
                 " sequence = $4, version = $5, uptime_s = $6, pack_version = $7,"
                 " interval_s = $8, packets = $9, kernel_drops = $10, bytes = $11,"
                 " files_scanned = $12, alerts = $13, queue_depth = $14,"
                 " queue_oldest_age_s = $15",
                 {param(hb.agent_id), param(state), param(received_ns), param(hb.sequence),
                  param(hb.version), param(hb.uptime_s), param(hb.pack_version),
                  param(hb.interval_s), param(hb.packets), param(hb.kernel_drops), param(hb.bytes),
                  param(hb.files_scanned), param(hb.alerts), param(hb.queue_depth),
                  param(hb.queue_oldest_age_s)});
            const std::string detail = hb.stopping      ? "the agent stopped cleanly"
                                       : before.empty() ? "first heartbeat"
                                                        : "heartbeat after being " + before;
            record_event_if_changed(conn, hb.agent_id, before, state, received_ns, detail);
            tx.commit();
            return {};
        });
}

common::Result<void> PostgresStore::set_agent_state(const std::string& agent_id,
                                                    const std::string& state, std::int64_t at_ns,
                                                    const std::string& detail) {
    return with_connection<void>(
        "state of agent '" + agent_id + "'", [&](PGconn* conn) -> common::Result<void> {
            Transaction tx(conn);
            const std::string before = lock_agent_state(conn, agent_id);
            if (before.empty()) {
                return make_error(ErrorCode::kNotFound, "agent '" + agent_id + "' was never seen");
            }
            if (before != state) {
                exec(conn, "UPDATE agents SET state = $1, state_since_ns = $2 WHERE id = $3",
                     {param(state), param(at_ns), param(agent_id)});
                record_event_if_changed(conn, agent_id, before, state, at_ns, detail);
            }
            tx.commit();
            return {};
        });
}

common::Result<std::vector<AgentStatus>> PostgresStore::select_agents(const std::string* only) {
    return with_connection<std::vector<AgentStatus>>("agents query failed", [&](PGconn* conn) {
        const std::string sql =
            std::string(kAgentColumns) + (only != nullptr ? " WHERE id = $1" : "") + " ORDER BY id";
        std::vector<Param> params;
        if (only != nullptr) params.push_back(param(*only));
        PgResult r = exec(conn, sql, params);
        std::vector<AgentStatus> out;
        const int rows = PQntuples(r.get());
        out.reserve(static_cast<std::size_t>(rows));
        for (int row = 0; row < rows; ++row) {
            auto u64 = [&](int col) { return static_cast<std::uint64_t>(integer(r, row, col)); };
            AgentStatus a;
            a.id = text(r, row, 0);
            a.state = text(r, row, 1);
            a.first_seen_ns = integer(r, row, 4);
            a.last_seen_ns = integer(r, row, 5);
            a.state_since_ns = integer(r, row, 6);
            common::Heartbeat& h = a.last;
            h.agent_id = a.id;
            h.version = text(r, row, 2);
            h.pack_version = text(r, row, 3);
            h.sequence = u64(7);
            h.uptime_s = u64(8);
            h.interval_s = u64(9);
            h.packets = u64(10);
            h.kernel_drops = u64(11);
            h.bytes = u64(12);
            h.files_scanned = u64(13);
            h.alerts = u64(14);
            h.queue_depth = u64(15);
            h.queue_oldest_age_s = u64(16);
            h.stopping = a.state == "stopped";
            out.push_back(std::move(a));
        }
        return out;
    });
}

common::Result<std::vector<AgentStatus>> PostgresStore::agents() {
    return select_agents(nullptr);
}

common::Result<std::optional<AgentStatus>> PostgresStore::agent(const std::string& agent_id) {
    auto rows = select_agents(&agent_id);
    if (!rows) return rows.error();
    if (rows->empty()) return std::optional<AgentStatus>();
    return std::optional<AgentStatus>(std::move(rows->front()));
}

common::Result<std::vector<AgentEvent>> PostgresStore::agent_events(const std::string& agent_id,
                                                                    std::size_t limit) {
    return with_connection<std::vector<AgentEvent>>("agent events query failed", [&](PGconn* conn) {
        const auto n = static_cast<std::int64_t>(
            std::min<std::size_t>(limit, static_cast<std::size_t>(INT64_MAX)));
        PgResult r = exec(conn,
                          "SELECT time_ns, event, detail FROM agent_events WHERE agent_id = $1"
                          " ORDER BY seq DESC LIMIT $2",
                          {param(agent_id), param(n)});
        std::vector<AgentEvent> out;
        for (int row = 0; row < PQntuples(r.get()); ++row) {
            out.push_back(
                AgentEvent{integer(r, row, 0), agent_id, text(r, row, 1), text(r, row, 2)});
        }
        return out;
    });
}

constexpr std::string_view kUserColumns =
    "users.name, users.role, users.password_hash, users.created_ns, users.disabled";

// The accounts in R's rows, whose columns are kUserColumns.
std::vector<UserAccount> user_accounts(const PgResult& r) {
    std::vector<UserAccount> out;
    const int rows = PQntuples(r.get());
    out.reserve(static_cast<std::size_t>(rows));
    for (int row = 0; row < rows; ++row) {
        UserAccount u;
        u.name = text(r, row, 0);
        const std::int64_t role = integer(r, row, 1);
        u.role = role == 3 ? Role::kAdmin : role == 2 ? Role::kRuleAuthor : Role::kAnalyst;
        u.password_hash = text(r, row, 2);
        u.created_ns = integer(r, row, 3);
        u.disabled = integer(r, row, 4) != 0;
        out.push_back(std::move(u));
    }
    return out;
}

std::optional<UserAccount> first_account(const PgResult& r) {
    auto accounts = user_accounts(r);
    return accounts.empty() ? std::optional<UserAccount>() : std::optional(accounts.front());
}

// Locks the account's row until the transaction ends; false when there is no such account.
bool user_exists(PGconn* conn, const std::string& name) {
    return PQntuples(exec(conn, "SELECT 1 FROM users WHERE name = $1 FOR UPDATE", {param(name)})
                         .get()) > 0;
}

common::Error no_account(const std::string& name) {
    return make_error(ErrorCode::kNotFound, "there is no account '" + name + "'");
}

common::Result<void> PostgresStore::add_user(const UserAccount& user) {
    if (auto ok = check_user_name(user.name); !ok) return ok.error();
    return with_connection<void>(
        "add account '" + user.name + "'", [&](PGconn* conn) -> common::Result<void> {
            PgResult r = exec(conn,
                              "INSERT INTO users (name, role, password_hash, created_ns, disabled)"
                              " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING",
                              {param(user.name), param(static_cast<int>(user.role)),
                               param(user.password_hash), param(user.created_ns),
                               param(user.disabled ? 1 : 0)});
            if (affected(r) == 0) {
                return make_error(ErrorCode::kInvalidArgument,
                                  "account '" + user.name + "' exists already");
            }
            return {};
        });
}

common::Result<std::vector<UserAccount>> PostgresStore::select_users(const std::string* only) {
    return with_connection<std::vector<UserAccount>>("accounts query failed", [&](PGconn* conn) {
        std::vector<Param> params;
        if (only != nullptr) params.push_back(param(*only));
        return user_accounts(exec(conn,
                                  "SELECT " + std::string(kUserColumns) + " FROM users" +
                                      (only != nullptr ? " WHERE name = $1" : "") +
                                      " ORDER BY name",
                                  params));
    });
}

common::Result<std::optional<UserAccount>> PostgresStore::find_user(const std::string& name) {
    auto rows = select_users(&name);
    if (!rows) return rows.error();
    if (rows->empty()) return std::optional<UserAccount>();
    return std::optional<UserAccount>(std::move(rows->front()));
}

common::Result<std::vector<UserAccount>> PostgresStore::users() { return select_users(nullptr); }

common::Result<void> PostgresStore::set_user_disabled(const std::string& name, bool disabled) {
    return with_connection<void>(
        "disable account '" + name + "'", [&](PGconn* conn) -> common::Result<void> {
            Transaction tx(conn);
            if (affected(exec(conn, "UPDATE users SET disabled = $1 WHERE name = $2",
                              {param(disabled ? 1 : 0), param(name)})) == 0) {
                return no_account(name);
            }
            if (disabled) exec(conn, "DELETE FROM sessions WHERE user_name = $1", {param(name)});
            tx.commit();
            return {};
        });
}

common::Result<void> PostgresStore::set_password_hash(const std::string& name,
                                                      const std::string& password_hash) {
    return with_connection<void>(
        "password of account '" + name + "'", [&](PGconn* conn) -> common::Result<void> {
            if (affected(exec(conn, "UPDATE users SET password_hash = $1 WHERE name = $2",
                              {param(password_hash), param(name)})) == 0) {
                return no_account(name);
            }
            return {};
        });
}

common::Result<void> PostgresStore::add_session(const std::string& digest, const std::string& user,
                                                std::int64_t created_ns, std::int64_t expires_ns) {
    return with_connection<void>(
        "session of account '" + user + "'", [&](PGconn* conn) -> common::Result<void> {
            Transaction tx(conn);
            if (!user_exists(conn, user)) return no_account(user);
            exec(conn, "DELETE FROM sessions WHERE expires_ns <= $1", {param(created_ns)});
            exec(conn,
                 "INSERT INTO sessions (digest, user_name, created_ns, expires_ns, last_seen_ns)"
                 " VALUES ($1, $2, $3, $4, $3)",
                 {param(digest), param(user), param(created_ns), param(expires_ns)});
            tx.commit();
            return {};
        });
}

common::Result<std::optional<UserAccount>> PostgresStore::session_user(const std::string& digest,
                                                                       std::int64_t now_ns) {
    return with_connection<std::optional<UserAccount>>("credential lookup", [&](PGconn* conn) {
        // One statement: touch the session and return its account when it is still valid.
        return first_account(exec(conn,
                                  "UPDATE sessions SET last_seen_ns = $2 FROM users"
                                  " WHERE sessions.digest = $1 AND sessions.expires_ns > $2"
                                  " AND users.name = sessions.user_name AND users.disabled = 0"
                                  " RETURNING " +
                                      std::string(kUserColumns),
                                  {param(digest), param(now_ns)}));
    });
}

common::Result<void> PostgresStore::delete_session(const std::string& digest) {
    return with_connection<void>("end session", [&](PGconn* conn) -> common::Result<void> {
        exec(conn, "DELETE FROM sessions WHERE digest = $1", {param(digest)});
        return {};
    });
}

common::Result<void> PostgresStore::add_api_token(const std::string& digest,
                                                  const std::string& user,
                                                  const std::string& label,
                                                  std::int64_t created_ns) {
    return with_connection<void>(
        "token of account '" + user + "'", [&](PGconn* conn) -> common::Result<void> {
            Transaction tx(conn);
            if (!user_exists(conn, user)) return no_account(user);
            exec(conn,
                 "INSERT INTO api_tokens (digest, user_name, label, created_ns)"
                 " VALUES ($1, $2, $3, $4)",
                 {param(digest), param(user), param(label), param(created_ns)});
            tx.commit();
            return {};
        });
}

common::Result<std::optional<UserAccount>> PostgresStore::token_user(const std::string& digest,
                                                                     std::int64_t now_ns) {
    return with_connection<std::optional<UserAccount>>("credential lookup", [&](PGconn* conn) {
        return first_account(exec(conn,
                                  "UPDATE api_tokens SET last_used_ns = $2 FROM users"
                                  " WHERE api_tokens.digest = $1"
                                  " AND users.name = api_tokens.user_name"
                                  " AND users.disabled = 0 RETURNING " +
                                      std::string(kUserColumns),
                                  {param(digest), param(now_ns)}));
    });
}

void insert_audit(PGconn* conn, const AuditEntry& e) {
    exec(conn,
         "INSERT INTO audit_log (time_ns, actor, action, target, old_value, new_value)"
         " VALUES ($1, $2, $3, $4, $5, $6)",
         {param(e.time_ns), param(e.actor), param(e.action), param(e.target), param(e.old_value),
          param(e.new_value)});
}

// Locks the alert's row until the transaction ends, so that triage changes of one alert are
// applied (and audited) one after the other; false when the alert is not stored.
bool lock_alert(PGconn* conn, const std::string& id) {
    return PQntuples(
               exec(conn, "SELECT 1 FROM alerts WHERE id = $1 FOR UPDATE", {param(id)}).get()) > 0;
}

common::Result<void> PostgresStore::append_audit(const AuditEntry& e) {
    return with_connection<void>("audit log", [&](PGconn* conn) -> common::Result<void> {
        insert_audit(conn, e);
        return {};
    });
}

common::Result<std::map<std::string, AlertTriage>> PostgresStore::triage_of(
    const std::vector<std::string>& ids) {
    return with_connection<std::map<std::string, AlertTriage>>(
        "triage query failed", [&](PGconn* conn) {
            std::map<std::string, AlertTriage> out;
            if (ids.empty()) return out;
            std::string sql = "SELECT alerts.id, t.status, t.assignee FROM alerts"
                              " LEFT JOIN alert_triage t ON t.alert_id = alerts.id"
                              " WHERE alerts.id IN (";
            std::vector<Param> params;
            params.reserve(ids.size());
            for (std::size_t i = 0; i < ids.size(); ++i) {
                sql += (i ? ", $" : "$") + std::to_string(i + 1);
                params.push_back(param(ids[i]));
            }
            sql += ")";
            PgResult r = exec(conn, sql, params);
            for (int row = 0; row < PQntuples(r.get()); ++row) {
                AlertTriage t;
                if (PQgetisnull(r.get(), row, 1) == 0) t = {text(r, row, 1), text(r, row, 2)};
                out[text(r, row, 0)] = t;
            }
            return out;
        });
}

common::Result<std::vector<AuditEntry>> PostgresStore::update_triage(
    const std::vector<std::string>& ids, const TriageChange& change, const std::string& actor,
    std::int64_t at_ns) {
    if (change.status && !is_alert_status(*change.status)) {
        return make_error(ErrorCode::kInvalidArgument,
                          "status '" + *change.status + "' is not a triage status");
    }
    // Rows locked in id order: two bulk updates over overlapping ids cannot deadlock.
    std::vector<std::string> order = ids;
    std::sort(order.begin(), order.end());
    order.erase(std::unique(order.begin(), order.end()), order.end());
    return with_connection<std::vector<AuditEntry>>(
        "triage update", [&](PGconn* conn) -> common::Result<std::vector<AuditEntry>> {
            Transaction tx(conn);
            std::vector<AuditEntry> entries;
            for (const std::string& id : order) {
                if (!lock_alert(conn, id)) {
                    return make_error(ErrorCode::kNotFound, "there is no alert '" + id + "'");
                }
                PgResult r = exec(conn,
                                  "SELECT status, assignee FROM alert_triage WHERE alert_id = $1",
                                  {param(id)});
                AlertTriage before;
                if (PQntuples(r.get()) > 0) before = {text(r, 0, 0), text(r, 0, 1)};
                AlertTriage after = before;
                if (change.status) after.status = *change.status;
                if (change.assignee) after.assignee = *change.assignee;
                if (after == before) continue;
                exec(conn,
                     "INSERT INTO alert_triage (alert_id, status, assignee, updated_ns)"
                     " VALUES ($1, $2, $3, $4) ON CONFLICT (alert_id) DO UPDATE SET"
                     " status = excluded.status, assignee = excluded.assignee,"
                     " updated_ns = excluded.updated_ns",
                     {param(id), param(after.status), param(after.assignee), param(at_ns)});
                if (after.status != before.status) {
                    entries.push_back({at_ns, actor, "alert.status", id, before.status, after.status});
                    insert_audit(conn, entries.back());
                }
                if (after.assignee != before.assignee) {
                    entries.push_back(
                        {at_ns, actor, "alert.assignee", id, before.assignee, after.assignee});
                    insert_audit(conn, entries.back());
                }
            }
            tx.commit();
            return entries;
        });
}

common::Result<void> PostgresStore::add_comment(const std::string& alert_id,
                                                const AlertComment& c) {
    return with_connection<void>("comment", [&](PGconn* conn) -> common::Result<void> {
        Transaction tx(conn);
        if (!lock_alert(conn, alert_id)) {
            return make_error(ErrorCode::kNotFound, "there is no alert '" + alert_id + "'");
        }
        exec(conn,
             "INSERT INTO alert_comments (alert_id, time_ns, author, text)"
             " VALUES ($1, $2, $3, $4)",
             {param(alert_id), param(c.time_ns), param(c.author), param(c.text)});
        insert_audit(conn, {c.time_ns, c.author, "alert.comment", alert_id, "", c.text});
        tx.commit();
        return {};
    });
}

common::Result<std::vector<AlertComment>> PostgresStore::comments(const std::string& alert_id) {
    return with_connection<std::vector<AlertComment>>("comments query failed", [&](PGconn* conn) {
        PgResult r = exec(conn,
                          "SELECT time_ns, author, text FROM alert_comments WHERE alert_id = $1"
                          " ORDER BY seq",
                          {param(alert_id)});
        std::vector<AlertComment> out;
        for (int row = 0; row < PQntuples(r.get()); ++row) {
            out.push_back({integer(r, row, 0), text(r, row, 1), text(r, row, 2)});
        }
        return out;
    });
}

common::Result<std::vector<AuditEntry>> PostgresStore::audit_entries(const std::string& target,
                                                                     std::size_t limit) {
    return with_connection<std::vector<AuditEntry>>("audit log query failed", [&](PGconn* conn) {
        const auto n = static_cast<std::int64_t>(
            std::min<std::size_t>(limit, static_cast<std::size_t>(INT64_MAX)));
        PgResult r = exec(conn,
                          "SELECT time_ns, actor, action, old_value, new_value FROM audit_log"
                          " WHERE target = $1 ORDER BY seq DESC LIMIT $2",
                          {param(target), param(n)});
        std::vector<AuditEntry> out;
        for (int row = PQntuples(r.get()); row-- > 0;) {
            out.push_back(AuditEntry{integer(r, row, 0), text(r, row, 1), text(r, row, 2), target,
                                     text(r, row, 3), text(r, row, 4)});
        }
        return out;
    });
}

// Migration 6, after its statements (which are as many as a migration holds): per-minute
// totals from the stored alerts, and the targets. File alerts' target is their path, kept
// only in eve; a row whose eve does not decode keeps no target, as query() skips it too.
void backfill_migration_6(PGconn* conn) {
    exec(conn, "INSERT INTO alert_minute_counts (minute, severity, n) SELECT " +
                   std::string(detail::kMinuteOfRowSql) +
                   ", severity, count(*) FROM alerts GROUP BY 1, 2");
    exec(conn, "UPDATE alerts SET target = dest_ip WHERE kind <> 'file'");
    PgResult rows = exec(conn, "SELECT id, eve FROM alerts WHERE kind = 'file'");
    for (int row = 0; row < PQntuples(rows.get()); ++row) {
        auto alert = common::alert_from_json(text(rows, row, 1));
        if (!alert) continue;
        exec(conn, "UPDATE alerts SET target = $1 WHERE id = $2",
             {param(group_target(*alert)), param(text(rows, row, 0))});
    }
}

// One migration per transaction, each under the advisory lock: a second collector starting at
// the same moment waits, then finds the work done. Throws SqlError.
common::Result<void> migrate(PGconn* conn, const std::string& name) {
    for (;;) {
        Transaction tx(conn);
        exec(conn, "SELECT pg_advisory_xact_lock($1)", {param(kMigrationLockKey)});
        exec(conn,
             "CREATE TABLE IF NOT EXISTS schema_version ("
             " version INTEGER PRIMARY KEY NOT NULL,"
             " description TEXT NOT NULL,"
             " applied_ns BIGINT NOT NULL)");
        const std::int64_t current =
            integer(exec(conn, "SELECT COALESCE(MAX(version), 0) FROM schema_version"), 0, 0);
        if (current > kPostgresSchemaVersion) {
            return make_error(ErrorCode::kUnsupported,
                              "PostgreSQL database '" + name + "' has schema version " +
                                  std::to_string(current) + ", newer than this build's " +
                                  std::to_string(kPostgresSchemaVersion) +
                                  "; run a newer senningen-collector");
        }
        if (current == kPostgresSchemaVersion) {
            tx.commit();
            return {};
        }
        const auto next = std::find_if(kMigrations.begin(), kMigrations.end(),
                                       [&](const Migration& m) { return m.version > current; });
        for (std::string_view sql : next->statements) {
            if (!sql.empty()) exec(conn, std::string(sql));
        }
        if (next->backfill != nullptr) next->backfill(conn);
        exec(
            conn,
            "INSERT INTO schema_version (version, description, applied_ns) VALUES ($1, $2, $3)",
            {param(next->version), param(std::string(next->description)), param(common::now_ns())});
        tx.commit();
    }
}

// ---- Metadata records ----

common::Result<std::vector<MetadataInsertResult>> PostgresStore::insert_metadata(
    const std::vector<MetadataBatchIn>& batches, std::int64_t received_ns) {
    return with_connection<std::vector<MetadataInsertResult>>(
        "metadata insert failed", [&](PGconn* conn) {
            std::vector<MetadataInsertResult> results(batches.size());
            Transaction tx(conn);
            for (std::size_t b = 0; b < batches.size(); ++b) {
                for (const ParsedMetadata& m : batches[b].records) {
                    PgResult r = exec_prepared(
                        conn,
                        "INSERT INTO metadata (agent_id, ts_ns, received_ns, type, uid, flow_id,"
                        " digest, json) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                        " ON CONFLICT (agent_id, digest) DO NOTHING RETURNING id",
                        {param(batches[b].agent_id), param(m.timestamp_ns), param(received_ns),
                         param(m.type), m.uid.empty() ? Param() : param(m.uid),
                         m.flow_id.empty() ? Param() : param(m.flow_id), param(m.digest),
                         param(m.json)});
                    if (PQntuples(r.get()) == 0) {
                        ++results[b].duplicates;
                        continue;
                    }
                    const std::int64_t id = integer(r, 0, 0);
                    // The record's values in one statement (at most kMaxMetadataValues rows):
                    // one round trip per record, not one per value.
                    if (!m.values.empty()) {
                        std::string sql =
                            "INSERT INTO metadata_values (value, ts_ns, record_id) VALUES ";
                        std::vector<Param> params{param(m.timestamp_ns), param(id)};
                        for (std::size_t i = 0; i < m.values.size(); ++i) {
                            params.push_back(param(m.values[i]));
                            sql += (i == 0 ? "($" : ", ($") + std::to_string(params.size()) +
                                   ", $1::bigint, $2::bigint)";
                        }
                        exec(conn, sql + " ON CONFLICT DO NOTHING", params);
                    }
                    ++results[b].inserted;
                }
            }
            tx.commit();
            return results;
        });
}

common::Result<std::vector<StoredMetadata>> PostgresStore::hunt_metadata(const MetadataQuery& q) {
    if (auto ok = check_metadata_query(q); !ok) return ok.error();
    const bool by_value = !q.value.empty();
    const std::string ts = by_value ? "v.ts_ns" : "m.ts_ns";
    const std::string id = by_value ? "v.record_id" : "m.id";
    std::vector<Param> params;
    auto next = [&](Param p) {
        params.push_back(std::move(p));
        return "$" + std::to_string(params.size());
    };
    std::string sql =
        "SELECT m.id, m.agent_id, m.ts_ns, m.received_ns, m.type, coalesce(m.uid, ''),"
        " coalesce(m.flow_id, ''), m.json";
    sql += by_value ? " FROM metadata_values v JOIN metadata m ON m.id = v.record_id"
                      " WHERE v.value = " +
                          next(param(q.value))
                    : std::string(" FROM metadata m WHERE TRUE");
    if (q.since_ns) sql += " AND " + ts + " >= " + next(param(*q.since_ns));
    if (q.until_ns) sql += " AND " + ts + " < " + next(param(*q.until_ns));
    if (q.after) {
        const std::string at = next(param(q.after->timestamp_ns));
        sql += " AND (" + ts + ", " + id + ") < (" + at + "::bigint, " + next(param(q.after->id)) +
               "::bigint)";
    }
    if (q.type) sql += " AND m.type = " + next(param(*q.type));
    if (q.agent_id) sql += " AND m.agent_id = " + next(param(*q.agent_id));
    sql += " ORDER BY " + ts + " DESC, " + id + " DESC LIMIT " + std::to_string(q.limit);
    return with_connection<std::vector<StoredMetadata>>("metadata hunt failed", [&](PGconn* conn) {
        PgResult r = exec(conn, sql, params);
        std::vector<StoredMetadata> out;
        for (int row = 0; row < PQntuples(r.get()); ++row) {
            out.push_back(StoredMetadata{integer(r, row, 0), text(r, row, 1), integer(r, row, 2),
                                         integer(r, row, 3), text(r, row, 4), text(r, row, 5),
                                         text(r, row, 6), text(r, row, 7)});
        }
        return out;
    });
}

common::Result<std::uint64_t> PostgresStore::prune_metadata(const MetadataRetention& retention,
                                                            std::int64_t now_ns,
                                                            std::size_t max_delete) {
    return with_connection<std::uint64_t>("metadata retention", [&](PGconn* conn) {
        const auto most = static_cast<std::int64_t>(max_delete);
        std::int64_t cutoff_id = 0;
        if (retention.max_age_ns > 0) {
            PgResult r = exec(conn,
                              "SELECT coalesce(max(id), 0) FROM (SELECT id FROM metadata"
                              " WHERE received_ns < $1 ORDER BY id LIMIT $2) old",
                              {param(now_ns - retention.max_age_ns), param(most)});
            cutoff_id = std::max(cutoff_id, integer(r, 0, 0));
        }
        if (retention.max_rows > 0) {
            PgResult r = exec(conn, "SELECT id FROM metadata ORDER BY id DESC LIMIT 1 OFFSET $1",
                              {param(static_cast<std::int64_t>(retention.max_rows))});
            if (PQntuples(r.get()) == 1) {
                PgResult first = exec(conn, "SELECT coalesce(min(id), 0) FROM metadata");
                cutoff_id = std::max(cutoff_id,
                                     std::min(integer(r, 0, 0), integer(first, 0, 0) + most - 1));
            }
        }
        if (cutoff_id <= 0) return std::uint64_t{0};
        Transaction tx(conn);
        exec(conn, "DELETE FROM metadata_values WHERE record_id <= $1", {param(cutoff_id)});
        PgResult deleted = exec(conn, "DELETE FROM metadata WHERE id <= $1", {param(cutoff_id)});
        tx.commit();
        return affected(deleted);
    });
}

common::Result<std::uint64_t> PostgresStore::metadata_count() {
    return with_connection<std::uint64_t>("metadata count failed", [&](PGconn* conn) {
        PgResult r = exec(conn, "SELECT count(*) FROM metadata");
        return static_cast<std::uint64_t>(integer(r, 0, 0));
    });
}

}  // namespace

common::Result<std::string> postgres_keyword_string(const std::string& conninfo) {
    auto keywords = parse_conninfo(conninfo);
    if (!keywords) return keywords.error();
    return to_keyword_string(*keywords, redact_conninfo(conninfo));
}

std::string redact_conninfo(const std::string& conninfo) {
    // URL form: scheme://user:password@host...; the password ends at the last '@' before the
    // path (a password may itself contain '@' only percent-encoded, but be lenient).
    const auto scheme = conninfo.find("://");
    if (scheme != std::string::npos) {
        const auto authority = scheme + 3;
        const auto path = conninfo.find('/', authority);
        const auto at = conninfo.rfind('@', path == std::string::npos ? std::string::npos : path);
        if (at != std::string::npos && at > authority) {
            const auto colon = conninfo.find(':', authority);
            if (colon != std::string::npos && colon < at) {
                return conninfo.substr(0, colon + 1) + "***" + conninfo.substr(at);
            }
        }
        // A password can also come as a query parameter.
        const auto query = conninfo.find("password=", authority);
        if (query != std::string::npos) {
            const auto end = conninfo.find('&', query);
            return conninfo.substr(0, query + 9) + "***" +
                   (end == std::string::npos ? std::string() : conninfo.substr(end));
        }
        return conninfo;
    }
    // key=value form: mask the value of password (quoted or not).
    const auto key = conninfo.find("password");
    if (key == std::string::npos) return conninfo;
    auto pos = conninfo.find('=', key);
    if (pos == std::string::npos) return conninfo;
    ++pos;
    while (pos < conninfo.size() && conninfo[pos] == ' ') ++pos;
    auto end = pos;
    if (end < conninfo.size() && conninfo[end] == '\'') {
        ++end;
        while (end < conninfo.size() && conninfo[end] != '\'') end += conninfo[end] == '\\' ? 2 : 1;
        end = std::min(end + 1, conninfo.size());
    } else {
        while (end < conninfo.size() && conninfo[end] != ' ') ++end;
    }
    return conninfo.substr(0, pos) + "***" + conninfo.substr(end);
}

common::Result<std::unique_ptr<AlertStore>> open_postgres_store(const std::string& conninfo,
                                                                const PostgresOptions& options) {
    const std::string name = redact_conninfo(conninfo);
    if (options.max_connections == 0) {
        return make_error(ErrorCode::kInvalidArgument,
                          "PostgreSQL database '" + name + "': max_connections must be at least 1");
    }
    auto keywords = parse_conninfo(conninfo);
    if (!keywords) return keywords.error();
    if (keywords->count("connect_timeout") == 0) {
        (*keywords)["connect_timeout"] = std::to_string(options.connect_timeout_s);
    }
    if (keywords->count("application_name") == 0) {
        (*keywords)["application_name"] = "senningen-collector";
    }
    auto pool = std::make_unique<ConnectionPool>(std::move(keywords).value(), name, options);
    {
        auto lease = pool->acquire();
        if (!lease) return lease.error();
        try {
            if (auto migrated = migrate(lease->get(), name); !migrated) return migrated.error();
        } catch (const SqlError& e) {
            return make_error(ErrorCode::kDatabase,
                              "PostgreSQL database '" + name + "': migration failed: " + e.what());
        }
    }
    return std::unique_ptr<AlertStore>(std::make_unique<PostgresStore>(std::move(pool)));
}

}  // namespace senningen::collector
