// PostgreSQL backend of AlertStore, over Poco::Data's PostgreSQL connector.
//
// Why Poco's connector and not libpq directly: it does what this store needs (bound $n
// parameters, NULLs, 64-bit integers, affected-row counts, transactions), and it notices a
// connection the server dropped (Session::isConnected() turns false after the failed call),
// which is what the pool below builds on. libpq itself is used for one thing Poco lacks:
// parsing a postgresql:// URL (PQconninfoParse), since Poco's connector only takes
// "key=value" strings.
//
// Threading: a pool of sessions, one per call in flight (the ingest thread and the HTTP
// workers). PostgreSQL's MVCC lets readers and writers run side by side, also across
// collector processes sharing the database.
//
// Every value reaches the server as a bound parameter; the only SQL assembled at run time is
// the WHERE clause of query(), built from fixed fragments and $n placeholders.
#include "senningen/collector/postgres_store.h"

#include <Poco/Data/PostgreSQL/Connector.h>
#include <Poco/Data/Session.h>
#include <Poco/Data/Statement.h>
#include <Poco/Exception.h>
#include <Poco/Nullable.h>
#include <libpq-fe.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <map>
#include <mutex>
#include <numeric>
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

// Any constant will do, as long as nothing else in the database takes the same advisory lock:
// "SNNG" in ASCII.
constexpr Poco::Int64 kMigrationLockKey = 0x534e4e47;

struct Migration {
    int version;
    std::string_view description;
    std::array<std::string_view, 4> statements;  // empty entries are skipped
};

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
};
static_assert(kMigrations.back().version == kPostgresSchemaVersion,
              "kPostgresSchemaVersion must name the last migration");

constexpr std::string_view kInsertSql =
    "INSERT INTO alerts (id, agent_id, ts_ns, severity, kind, source, rule, category,"
    " pack, src_ip, src_port, dest_ip, dest_port, proto, app_proto, flow_id, received_ns, eve)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
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

void register_connector() {
    static std::once_flag once;
    std::call_once(once, [] { Poco::Data::PostgreSQL::Connector::registerConnector(); });
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

// "key='value' ..." in libpq's quoting: backslash and quote escaped. Poco's connector splits
// the string at every space before libpq sees it, so a value with white space in it cannot be
// passed at all: that is refused here, naming the keyword (not the value, a password perhaps).
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

// The pool: sessions are made on demand up to a maximum and kept while they work. A session
// that broke is never handed out again, and since a broken session usually means the server
// restarted (which ends every connection), the idle ones are dropped too, so that only the
// call that met the broken connection fails.
class SessionPool {
public:
    SessionPool(std::string keywords, std::string name, const PostgresOptions& options)
        : keywords_(std::move(keywords)), name_(std::move(name)), options_(options) {}

    class Lease {
    public:
        Lease(SessionPool& pool, std::unique_ptr<Session> session)
            : pool_(&pool), session_(std::move(session)) {}
        Lease(Lease&& other) noexcept
            : pool_(std::exchange(other.pool_, nullptr)), session_(std::move(other.session_)) {}
        Lease(const Lease&) = delete;
        Lease& operator=(const Lease&) = delete;
        Lease& operator=(Lease&&) = delete;
        ~Lease() {
            if (pool_ != nullptr) pool_->give_back(std::move(session_));
        }
        Session& operator*() { return *session_; }

    private:
        SessionPool* pool_;
        std::unique_ptr<Session> session_;
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
            std::unique_ptr<Session> session = std::move(idle_.back());
            idle_.pop_back();
            return Lease(*this, std::move(session));
        }
        ++open_;
        lock.unlock();  // connecting takes a round trip or more; others may use idle sessions
        try {
            auto session = std::make_unique<Session>("PostgreSQL", keywords_);
            // libpq prints the server's notices to stderr ("relation already exists,
            // skipping"); the store reports what matters itself. (Not through the "options"
            // keyword: its value needs a space, see to_keyword_string.)
            *session << "SET client_min_messages TO warning", now;
            return Lease(*this, std::move(session));
        } catch (const Poco::Exception& e) {
            release_slot();
            return make_error(ErrorCode::kDatabase,
                              "PostgreSQL database '" + name_ +
                                  "': cannot connect: " + one_line(e.displayText()));
        } catch (const std::exception& e) {
            release_slot();
            return make_error(ErrorCode::kDatabase, "PostgreSQL database '" + name_ +
                                                        "': cannot connect: " + one_line(e.what()));
        }
    }

    const std::string& name() const { return name_; }

private:
    void release_slot() {
        {
            std::lock_guard lock(mutex_);
            --open_;
        }
        available_.notify_one();
    }

    void give_back(std::unique_ptr<Session> session) {
        bool healthy = false;
        try {
            healthy = session->isConnected();
        } catch (...) {  // NOLINT(bugprone-empty-catch): a session that cannot say is unhealthy
        }
        std::vector<std::unique_ptr<Session>> dropped;
        {
            std::lock_guard lock(mutex_);
            if (healthy) {
                idle_.push_back(std::move(session));
            } else {
                --open_;
                open_ -= idle_.size();
                dropped.swap(idle_);
            }
        }
        available_.notify_all();
        // Closed outside the lock: closing may wait on the network.
        try {
            session.reset();
            dropped.clear();
        } catch (...) {  // NOLINT(bugprone-empty-catch): closing a dead connection may complain
        }
    }

    const std::string keywords_;
    const std::string name_;
    const PostgresOptions options_;
    std::mutex mutex_;
    std::condition_variable available_;
    std::vector<std::unique_ptr<Session>> idle_;
    std::size_t open_ = 0;  // sessions in existence: idle plus leased
};

// Rolls back unless committed; a connection that died mid-transaction cannot roll back, and
// the error that got us here matters more than that one.
class Transaction {
public:
    explicit Transaction(Session& session) : session_(session) { session_.begin(); }
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;
    ~Transaction() {
        if (done_) return;
        try {
            session_.rollback();
        } catch (...) {  // NOLINT(bugprone-empty-catch): see above
        }
    }
    void commit() {
        session_.commit();
        done_ = true;
    }

private:
    Session& session_;
    bool done_ = false;
};

// One alert's column values, bound by reference to the prepared insert and refilled per alert.
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
            // BIGINT is signed; a flow id above 2^63 is stored wrapped. The exact value is in
            // eve, the column only serves lookups.
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

class PostgresStore final : public AlertStore {
public:
    explicit PostgresStore(std::unique_ptr<SessionPool> pool) : pool_(std::move(pool)) {}

    common::Result<InsertResult> insert(const std::vector<common::Alert>& alerts) override;
    common::Result<std::vector<common::Alert>> query(const AlertQuery& q) override;
    common::Result<std::uint64_t> count() override;
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

private:
    // Runs BODY(Session&) on a pooled session; maps exceptions to kDatabase naming WHAT.
    template <typename T, typename Body>
    common::Result<T> with_session(std::string_view what, Body&& body) {
        auto lease = pool_->acquire();
        if (!lease) return lease.error();
        try {
            return body(**lease);
        } catch (const Poco::Exception& e) {
            return error(what, e.displayText());
        } catch (const std::exception& e) {
            return error(what, e.what());
        }
    }
    common::Error error(std::string_view what, std::string_view detail) const {
        return make_error(ErrorCode::kDatabase, "PostgreSQL database '" + pool_->name() + "': " +
                                                    std::string(what) + ": " + one_line(detail));
    }
    common::Result<std::vector<AgentStatus>> select_agents(const std::string* only);

    std::unique_ptr<SessionPool> pool_;
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

    return with_session<InsertResult>("insert failed", [&](Session& session) {
        Transaction tx(session);
        InsertRow row;
        Statement insert_stmt =
            (session << std::string(kInsertSql), use(row.id), use(row.agent_id), use(row.ts_ns),
             use(row.severity), use(row.kind), use(row.source), use(row.rule), use(row.category),
             use(row.pack), use(row.src_ip), use(row.src_port), use(row.dest_ip),
             use(row.dest_port), use(row.proto), use(row.app_proto), use(row.flow_id),
             use(row.received_ns), use(row.eve));
        const std::int64_t received = common::now_ns();
        InsertResult result;
        for (std::size_t i : order) {
            row.fill(alerts[i], std::move(eves[i]), received);
            // ON CONFLICT DO NOTHING: a duplicate id affects no row.
            if (insert_stmt.execute() > 0) {
                ++result.inserted;
            } else {
                ++result.duplicates;
            }
        }
        tx.commit();
        return result;
    });
}

common::Result<std::vector<common::Alert>> PostgresStore::query(const AlertQuery& q) {
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

    int parameter = 0;
    auto next = [&] { return "$" + std::to_string(++parameter); };
    std::string sql = "SELECT eve FROM alerts";
    std::string_view glue = " WHERE ";
    auto add_condition = [&](const std::string& condition) {
        sql += glue;
        sql += condition;
        glue = " AND ";
    };
    if (q.since_ns) add_condition("ts_ns >= " + next());
    if (q.until_ns) add_condition("ts_ns < " + next());
    if (!severities.empty()) {
        std::string in = "severity IN (" + next();
        for (std::size_t i = 1; i < severities.size(); ++i) in += ", " + next();
        add_condition(in + ")");
    }
    if (q.agent_id) add_condition("agent_id = " + next());
    sql += " ORDER BY ts_ns DESC, id ASC LIMIT " + next();

    auto eves = with_session<std::vector<std::string>>("query failed", [&](Session& session) {
        std::vector<std::string> out;
        Statement stmt(session);
        stmt << sql;
        // Same order as the placeholders above.
        if (q.since_ns) stmt.addBind(use(since));
        if (q.until_ns) stmt.addBind(use(until));
        for (int& s : severities) stmt.addBind(use(s));
        if (q.agent_id) stmt.addBind(use(agent));
        stmt.addBind(use(limit));
        stmt.addExtract(into(out));
        stmt.execute();
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

common::Result<std::uint64_t> PostgresStore::count() {
    return with_session<std::uint64_t>("count failed", [&](Session& session) {
        Poco::Int64 n = 0;
        session << "SELECT count(*) FROM alerts", into(n), now;
        return static_cast<std::uint64_t>(n);
    });
}

// Inside an open transaction: the state change, if it is one, becomes an event.
void record_event_if_changed(Session& session, std::string agent_id, const std::string& before,
                             std::string after, Poco::Int64 at_ns, std::string detail) {
    if (before == after) return;
    session << "INSERT INTO agent_events (time_ns, agent_id, event, detail)"
               " VALUES ($1, $2, $3, $4)",
        use(at_ns), use(agent_id), use(after), use(detail), now;
}

// The agent's current state, locking its row until the transaction ends (so a heartbeat on one
// collector and the liveness check on another cannot both record a change); empty when the
// agent was never seen.
std::string lock_agent_state(Session& session, std::string agent_id) {
    std::vector<std::string> states;
    session << "SELECT state FROM agents WHERE id = $1 FOR UPDATE", use(agent_id), into(states),
        now;
    return states.empty() ? std::string() : states.front();
}

common::Result<void> PostgresStore::record_heartbeat(const common::Heartbeat& hb,
                                                     std::int64_t received_ns) {
    auto i64 = [](std::uint64_t v) { return static_cast<Poco::Int64>(v); };
    return with_session<void>(
        "heartbeat of agent '" + hb.agent_id + "'", [&](Session& session) -> common::Result<void> {
            Transaction tx(session);
            std::string id = hb.agent_id;
            std::string state = hb.stopping ? "stopped" : "online";
            const std::string before = lock_agent_state(session, id);
            Poco::Int64 at = received_ns;
            Poco::Int64 sequence = i64(hb.sequence);
            std::string version = hb.version;
            Poco::Int64 uptime = i64(hb.uptime_s);
            std::string pack = hb.pack_version;
            Poco::Int64 interval = i64(hb.interval_s);
            Poco::Int64 packets = i64(hb.packets);
            Poco::Int64 drops = i64(hb.kernel_drops);
            Poco::Int64 bytes = i64(hb.bytes);
            Poco::Int64 files = i64(hb.files_scanned);
            Poco::Int64 alerts = i64(hb.alerts);
            Poco::Int64 depth = i64(hb.queue_depth);
            Poco::Int64 oldest = i64(hb.queue_oldest_age_s);
            session << "INSERT INTO agents (id, state, first_seen_ns, last_seen_ns, state_since_ns,"
                       " sequence, version, uptime_s, pack_version, interval_s, packets,"
                       " kernel_drops, bytes, files_scanned, alerts, queue_depth,"
                       " queue_oldest_age_s)"
                       " VALUES ($1, $2, $3, $3, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,"
                       " $14, $15)"
                       " ON CONFLICT (id) DO UPDATE SET state = $2, last_seen_ns = $3,"
                       " state_since_ns = CASE WHEN agents.state = $2 THEN agents.state_since_ns"
                       " ELSE $3 END,"
                       " sequence = $4, version = $5, uptime_s = $6, pack_version = $7,"
                       " interval_s = $8, packets = $9, kernel_drops = $10, bytes = $11,"
                       " files_scanned = $12, alerts = $13, queue_depth = $14,"
                       " queue_oldest_age_s = $15",
                use(id), use(state), use(at), use(sequence), use(version), use(uptime), use(pack),
                use(interval), use(packets), use(drops), use(bytes), use(files), use(alerts),
                use(depth), use(oldest), now;
            const std::string detail = hb.stopping      ? "the agent stopped cleanly"
                                       : before.empty() ? "first heartbeat"
                                                        : "heartbeat after being " + before;
            record_event_if_changed(session, id, before, state, at, detail);
            tx.commit();
            return {};
        });
}

common::Result<void> PostgresStore::set_agent_state(const std::string& agent_id,
                                                    const std::string& state, std::int64_t at_ns,
                                                    const std::string& detail) {
    return with_session<void>(
        "state of agent '" + agent_id + "'", [&](Session& session) -> common::Result<void> {
            Transaction tx(session);
            std::string id = agent_id;
            const std::string before = lock_agent_state(session, id);
            if (before.empty()) {
                return make_error(ErrorCode::kNotFound, "agent '" + agent_id + "' was never seen");
            }
            if (before != state) {
                std::string new_state = state;
                Poco::Int64 at = at_ns;
                session << "UPDATE agents SET state = $1, state_since_ns = $2 WHERE id = $3",
                    use(new_state), use(at), use(id), now;
                record_event_if_changed(session, id, before, state, at, detail);
            }
            tx.commit();
            return {};
        });
}

common::Result<std::vector<AgentStatus>> PostgresStore::select_agents(const std::string* only) {
    return with_session<std::vector<AgentStatus>>("agents query failed", [&](Session& session) {
        std::vector<std::string> ids;
        std::vector<std::string> states;
        std::vector<std::string> versions;
        std::vector<std::string> packs;
        // first_seen_ns ... queue_oldest_age_s, in kAgentColumns' order.
        std::array<std::vector<Poco::Int64>, 13> numbers;
        std::string id = only != nullptr ? *only : std::string();
        Statement stmt(session);
        stmt << std::string(kAgentColumns) + (only != nullptr ? " WHERE id = $1" : "") +
                    " ORDER BY id";
        if (only != nullptr) stmt.addBind(use(id));
        stmt.addExtract(into(ids));
        stmt.addExtract(into(states));
        stmt.addExtract(into(versions));
        stmt.addExtract(into(packs));
        for (auto& column : numbers) stmt.addExtract(into(column));
        stmt.execute();

        std::vector<AgentStatus> out;
        out.reserve(ids.size());
        auto u64 = [&](std::size_t column, std::size_t row) {
            return static_cast<std::uint64_t>(numbers[column][row]);
        };
        for (std::size_t r = 0; r < ids.size(); ++r) {
            AgentStatus a;
            a.id = ids[r];
            a.state = states[r];
            a.first_seen_ns = numbers[0][r];
            a.last_seen_ns = numbers[1][r];
            a.state_since_ns = numbers[2][r];
            common::Heartbeat& h = a.last;
            h.agent_id = a.id;
            h.version = versions[r];
            h.pack_version = packs[r];
            h.sequence = u64(3, r);
            h.uptime_s = u64(4, r);
            h.interval_s = u64(5, r);
            h.packets = u64(6, r);
            h.kernel_drops = u64(7, r);
            h.bytes = u64(8, r);
            h.files_scanned = u64(9, r);
            h.alerts = u64(10, r);
            h.queue_depth = u64(11, r);
            h.queue_oldest_age_s = u64(12, r);
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
    return with_session<std::vector<AgentEvent>>(
        "agent events query failed", [&](Session& session) {
            std::string id = agent_id;
            auto n = static_cast<Poco::Int64>(std::min<std::size_t>(limit, INT64_MAX));
            std::vector<Poco::Int64> times;
            std::vector<std::string> events;
            std::vector<std::string> details;
            session << "SELECT time_ns, event, detail FROM agent_events WHERE agent_id = $1"
                       " ORDER BY seq DESC LIMIT $2",
                use(id), use(n), into(times), into(events), into(details), now;
            std::vector<AgentEvent> out;
            out.reserve(times.size());
            for (std::size_t i = 0; i < times.size(); ++i) {
                out.push_back(AgentEvent{times[i], agent_id, events[i], details[i]});
            }
            return out;
        });
}

// One migration per transaction, each under the advisory lock: a second collector starting at
// the same moment waits, then finds the work done. Throws Poco::Exception on SQL errors.
common::Result<void> migrate(Session& session, const std::string& name) {
    for (;;) {
        Transaction tx(session);
        Poco::Int64 key = kMigrationLockKey;
        session << "SELECT pg_advisory_xact_lock($1)", use(key), now;
        session << "CREATE TABLE IF NOT EXISTS schema_version ("
                   " version INTEGER PRIMARY KEY NOT NULL,"
                   " description TEXT NOT NULL,"
                   " applied_ns BIGINT NOT NULL)",
            now;
        int current = 0;
        session << "SELECT COALESCE(MAX(version), 0) FROM schema_version", into(current), now;
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
            if (!sql.empty()) session << std::string(sql), now;
        }
        int version = next->version;
        std::string description(next->description);
        Poco::Int64 applied = common::now_ns();
        session << "INSERT INTO schema_version (version, description, applied_ns)"
                   " VALUES ($1, $2, $3)",
            use(version), use(description), use(applied), now;
        tx.commit();
    }
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
    auto keyword_string = to_keyword_string(*keywords, name);
    if (!keyword_string) return keyword_string.error();
    register_connector();
    auto pool = std::make_unique<SessionPool>(*keyword_string, name, options);
    {
        auto lease = pool->acquire();
        if (!lease) return lease.error();
        try {
            if (auto migrated = migrate(**lease, name); !migrated) return migrated.error();
        } catch (const Poco::Exception& e) {
            return make_error(ErrorCode::kDatabase,
                              "PostgreSQL database '" + name +
                                  "': migration failed: " + one_line(e.displayText()));
        }
    }
    return std::unique_ptr<AlertStore>(std::make_unique<PostgresStore>(std::move(pool)));
}

}  // namespace senningen::collector
