#include "senningen/agent/forward/durable_queue.h"

#include <sqlite3.h>

#include "senningen/common/record_codec.h"

namespace senningen::agent {

namespace {

using common::ErrorCode;
using common::make_error;

// Records are the alerts' compact binary form (common/record_codec.h): the JSON codec costs
// several times what the rest of the delivery path does.
constexpr const char* kSchema =
    "CREATE TABLE IF NOT EXISTS entries ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"  // never reused, so replay order is append order
    " kind INTEGER NOT NULL,"
    " enqueued_ns INTEGER NOT NULL,"
    " body BLOB NOT NULL);"
    "CREATE INDEX IF NOT EXISTS entries_kind ON entries (kind, seq);"
    "CREATE TABLE IF NOT EXISTS progress ("
    " source TEXT PRIMARY KEY NOT NULL,"
    " count INTEGER NOT NULL);";

class Stmt {
public:
    Stmt(sqlite3* db, const char* sql) : db_(db) {
        if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) stmt_ = nullptr;
    }
    ~Stmt() { sqlite3_finalize(stmt_); }
    Stmt(const Stmt&) = delete;
    Stmt& operator=(const Stmt&) = delete;
    bool ok() const { return stmt_ != nullptr; }
    void reset() {
        sqlite3_reset(stmt_);
        sqlite3_clear_bindings(stmt_);
    }
    Stmt& bind(int i, std::int64_t v) {
        sqlite3_bind_int64(stmt_, i, v);
        return *this;
    }
    Stmt& bind(int i, const std::string& v) {
        sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
        return *this;
    }
    Stmt& blob(int i, const std::string& v) {
        sqlite3_bind_blob(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
        return *this;
    }
    int step() { return stmt_ ? sqlite3_step(stmt_) : SQLITE_ERROR; }
    // Steps a statement that returns no rows and makes it ready for the next use.
    int run() {
        const int rc = step();
        reset();
        return rc;
    }
    std::string_view blob(int c) const {
        const void* p = sqlite3_column_blob(stmt_, c);
        return p ? std::string_view(static_cast<const char*>(p),
                                    static_cast<std::size_t>(sqlite3_column_bytes(stmt_, c)))
                 : std::string_view();
    }
    std::int64_t i64(int c) const { return sqlite3_column_int64(stmt_, c); }
    std::string_view text(int c) const {
        const auto* p = sqlite3_column_text(stmt_, c);
        return p ? std::string_view(reinterpret_cast<const char*>(p),
                                    static_cast<std::size_t>(sqlite3_column_bytes(stmt_, c)))
                 : std::string_view();
    }

private:
    sqlite3* db_;
    sqlite3_stmt* stmt_ = nullptr;
};

}  // namespace

// The connection and the statements every append, read and delete runs, prepared once when
// the queue opens: parsing and planning them on each call cost more than running them.
struct DurableQueue::Db {
    sqlite3* handle = nullptr;
    // Closes the connection; declared before the statements, so it runs after they are
    // finalized (members go in reverse order).
    struct Closer {
        sqlite3*& db;
        ~Closer() { sqlite3_close(db); }
    } closer{handle};
    std::unique_ptr<Stmt> begin;
    std::unique_ptr<Stmt> commit;
    std::unique_ptr<Stmt> insert;
    std::unique_ptr<Stmt> read;
    std::unique_ptr<Stmt> read_metadata;
    std::unique_ptr<Stmt> remove;
    std::unique_ptr<Stmt> mark;
    bool prepare() {
        begin = std::make_unique<Stmt>(handle, "BEGIN IMMEDIATE");
        commit = std::make_unique<Stmt>(handle, "COMMIT");
        insert = std::make_unique<Stmt>(
            handle, "INSERT INTO entries (kind, enqueued_ns, body) VALUES (?, ?, ?)");
        read = std::make_unique<Stmt>(
            handle, "SELECT seq, body FROM entries WHERE seq > ? AND kind = 0 ORDER BY seq LIMIT ?");
        read_metadata = std::make_unique<Stmt>(
            handle,
            "SELECT seq, body FROM entries WHERE seq > ? AND kind = 1 ORDER BY seq LIMIT ?");
        remove = std::make_unique<Stmt>(
            handle, "DELETE FROM entries WHERE kind = ? AND seq BETWEEN ? AND ?");
        mark = std::make_unique<Stmt>(handle,
                                      "INSERT INTO progress (source, count) VALUES (?, ?)"
                                      " ON CONFLICT (source) DO UPDATE SET count = excluded.count");
        return begin->ok() && commit->ok() && insert->ok() && read->ok() && read_metadata->ok() &&
               remove->ok() && mark->ok();
    }
};

DurableQueue::DurableQueue(std::unique_ptr<Db> db, std::string path, DurableQueueOptions options,
                           std::size_t depth, std::size_t metadata_depth)
    : db_(std::move(db)),
      path_(std::move(path)),
      options_(options),
      depth_(depth),
      metadata_depth_(metadata_depth) {}

DurableQueue::~DurableQueue() = default;

namespace {

common::Error db_error(const std::string& path, sqlite3* db, const std::string& what) {
    return make_error(ErrorCode::kDatabase, "queue '" + path + "': " + what + ": " +
                                                (db ? sqlite3_errmsg(db) : "out of memory"));
}

bool exec(sqlite3* db, const char* sql) {
    return sqlite3_exec(db, sql, nullptr, nullptr, nullptr) == SQLITE_OK;
}

// Resets a cached statement when the scope using it ends, whichever way it ends, so that it
// holds no read transaction open and no bound text of the caller's.
struct ResetOnExit {
    Stmt& stmt;
    ~ResetOnExit() { stmt.reset(); }
};

}  // namespace

common::Result<std::unique_ptr<DurableQueue>> DurableQueue::open(const std::string& path,
                                                                 DurableQueueOptions options) {
    if (options.max_entries == 0) {
        return make_error(ErrorCode::kInvalidArgument, "queue '" + path + "': capacity is 0");
    }
    auto db = std::make_unique<Db>();
    if (sqlite3_open_v2(path.c_str(), &db->handle,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        nullptr) != SQLITE_OK) {
        return db_error(path, db->handle, "cannot open");
    }
    sqlite3_busy_timeout(db->handle, 5000);
    const bool memory = path == ":memory:";
    if ((!memory && !exec(db->handle, "PRAGMA journal_mode = WAL")) ||
        !exec(db->handle, options.sync == QueueSync::kFull ? "PRAGMA synchronous = FULL"
                                                           : "PRAGMA synchronous = NORMAL") ||
        !exec(db->handle, kSchema) || !db->prepare()) {
        return db_error(path, db->handle, "cannot prepare the queue");
    }
    Stmt count(db->handle,
               "SELECT count(*), coalesce(sum(CASE WHEN kind = 1 THEN 1 ELSE 0 END), 0)"
               " FROM entries");
    if (count.step() != SQLITE_ROW) return db_error(path, db->handle, "cannot count entries");
    const auto depth = static_cast<std::size_t>(count.i64(0));
    const auto metadata_depth = static_cast<std::size_t>(count.i64(1));
    return std::unique_ptr<DurableQueue>(
        new DurableQueue(std::move(db), path, options, depth, metadata_depth));
}

common::Result<AppendResult> DurableQueue::append(const std::vector<common::Alert>& alerts,
                                                  const std::string& source,
                                                  std::uint64_t progress_count) {
    return append(alerts, {}, source, progress_count);
}

common::Result<AppendResult> DurableQueue::append(const std::vector<common::Alert>& alerts,
                                                  const std::vector<std::string>& metadata,
                                                  const std::string& source,
                                                  std::uint64_t progress_count) {
    sqlite3* db = db_->handle;
    std::size_t metadata_dropped = 0;
    AppendResult result;
    if (db_->begin->run() != SQLITE_DONE) return db_error(path_, db, "cannot begin");
    auto fail = [&](const std::string& what) {
        common::Error e = db_error(path_, db, what);
        exec(db, "ROLLBACK");
        return e;
    };
    const std::size_t needed = alerts.size() + metadata.size();
    if (options_.policy == QueueFullPolicy::kDropOldest && depth_ + needed > options_.max_entries) {
        // Metadata goes first (it is the less valuable), then the oldest alerts.
        auto excess = static_cast<std::int64_t>(depth_ + needed - options_.max_entries);
        Stmt drop_metadata(db,
                           "DELETE FROM entries WHERE seq IN (SELECT seq FROM entries"
                           " WHERE kind = 1 ORDER BY seq ASC LIMIT ?)");
        drop_metadata.bind(1, excess);
        if (drop_metadata.step() != SQLITE_DONE) return fail("cannot drop old entries");
        metadata_dropped = static_cast<std::size_t>(sqlite3_changes(db));
        excess -= static_cast<std::int64_t>(metadata_dropped);
        result.dropped = metadata_dropped;
        if (excess > 0) {
            Stmt drop(db,
                      "DELETE FROM entries WHERE seq IN (SELECT seq FROM entries"
                      " ORDER BY kind DESC, seq ASC LIMIT ?)");
            drop.bind(1, excess);
            if (drop.step() != SQLITE_DONE) return fail("cannot drop old entries");
            result.dropped += static_cast<std::size_t>(sqlite3_changes(db));
        }
    }
    Stmt& insert = *db_->insert;
    const std::int64_t now = common::now_ns();
    std::string body;
    for (const auto& alert : alerts) {
        body = common::encode_alert_record(alert);
        insert.bind(1, static_cast<std::int64_t>(RecordKind::kAlert)).bind(2, now).blob(3, body);
        if (insert.run() != SQLITE_DONE) return fail("cannot append");
        ++result.appended;
    }
    for (const auto& line : metadata) {
        insert.bind(1, static_cast<std::int64_t>(RecordKind::kMetadata)).bind(2, now).blob(3, line);
        if (insert.run() != SQLITE_DONE) return fail("cannot append metadata");
        ++result.appended;
    }
    if (!source.empty()) {
        Stmt& mark = *db_->mark;
        mark.bind(1, source).bind(2, static_cast<std::int64_t>(progress_count));
        if (mark.run() != SQLITE_DONE) return fail("cannot record progress");
    }
    if (db_->commit->run() != SQLITE_DONE) return fail("cannot commit");
    depth_ = depth_ + result.appended - result.dropped;
    metadata_depth_ = metadata_depth_ + metadata.size() - metadata_dropped;
    return result;
}

common::Result<std::vector<QueuedAlert>> DurableQueue::read_after(std::uint64_t after,
                                                                  std::size_t max) {
    Stmt& q = *db_->read;
    const ResetOnExit done{q};
    q.bind(1, static_cast<std::int64_t>(after)).bind(2, static_cast<std::int64_t>(max));
    std::vector<QueuedAlert> out;
    int rc = 0;
    while ((rc = q.step()) == SQLITE_ROW) {
        const auto seq = static_cast<std::uint64_t>(q.i64(0));
        const auto record = q.blob(1);
        auto alert = common::decode_alert_record(record);
        if (!alert) {
            // A damaged record cannot be sent; it is skipped (and deleted with its batch's ack)
            // rather than blocking the queue for ever.
            continue;
        }
        out.push_back(QueuedAlert{seq, std::move(alert).value(), std::string(record)});
    }
    if (rc != SQLITE_DONE) return db_error(path_, db_->handle, "cannot read");
    return out;
}

common::Result<std::vector<QueuedMetadata>> DurableQueue::read_metadata_after(std::uint64_t after,
                                                                              std::size_t max) {
    Stmt& q = *db_->read_metadata;
    const ResetOnExit done{q};
    q.bind(1, static_cast<std::int64_t>(after)).bind(2, static_cast<std::int64_t>(max));
    std::vector<QueuedMetadata> out;
    int rc = 0;
    while ((rc = q.step()) == SQLITE_ROW) {
        out.push_back(QueuedMetadata{static_cast<std::uint64_t>(q.i64(0)), std::string(q.blob(1))});
    }
    if (rc != SQLITE_DONE) return db_error(path_, db_->handle, "cannot read metadata");
    return out;
}

void DurableQueue::note_removed(std::size_t n, RecordKind kind) {
    depth_ -= std::min(depth_, n);
    if (kind == RecordKind::kMetadata) metadata_depth_ -= std::min(metadata_depth_, n);
}

common::Result<std::size_t> DurableQueue::remove(std::uint64_t first, std::uint64_t last,
                                                 RecordKind kind) {
    Stmt& del = *db_->remove;
    del.bind(1, static_cast<std::int64_t>(kind))
        .bind(2, static_cast<std::int64_t>(first))
        .bind(3, static_cast<std::int64_t>(last));
    if (del.run() != SQLITE_DONE) return db_error(path_, db_->handle, "cannot delete");
    const auto n = static_cast<std::size_t>(sqlite3_changes(db_->handle));
    note_removed(n, kind);
    return n;
}

common::Result<std::size_t> DurableQueue::remove(
    const std::vector<std::pair<std::uint64_t, std::uint64_t>>& ranges, RecordKind kind) {
    if (ranges.empty()) return std::size_t{0};
    sqlite3* db = db_->handle;
    // Deletes need no fsync of their own: one lost to a power cut only replays acknowledged
    // alerts, which the collector's idempotent insert drops. Appends keep the configured sync.
    const bool full = options_.sync == QueueSync::kFull;
    if (full) exec(db, "PRAGMA synchronous = NORMAL");
    struct RestoreSync {
        sqlite3* db;
        bool full;
        ~RestoreSync() {
            if (full) exec(db, "PRAGMA synchronous = FULL");
        }
    } restore{db, full};
    if (db_->begin->run() != SQLITE_DONE) return db_error(path_, db, "cannot begin");
    Stmt& del = *db_->remove;
    std::size_t n = 0;
    for (const auto& [first, last] : ranges) {
        del.bind(1, static_cast<std::int64_t>(kind))
            .bind(2, static_cast<std::int64_t>(first))
            .bind(3, static_cast<std::int64_t>(last));
        if (del.run() != SQLITE_DONE) {
            common::Error e = db_error(path_, db, "cannot delete");
            exec(db, "ROLLBACK");
            return e;
        }
        n += static_cast<std::size_t>(sqlite3_changes(db));
    }
    if (db_->commit->run() != SQLITE_DONE) {
        common::Error e = db_error(path_, db, "cannot commit the deletes");
        exec(db, "ROLLBACK");
        return e;
    }
    note_removed(n, kind);
    return n;
}

common::Result<std::uint64_t> DurableQueue::progress(const std::string& source) {
    Stmt q(db_->handle, "SELECT count FROM progress WHERE source = ?");
    q.bind(1, source);
    const int rc = q.step();
    if (rc == SQLITE_ROW) return static_cast<std::uint64_t>(q.i64(0));
    if (rc == SQLITE_DONE) return std::uint64_t{0};
    return db_error(path_, db_->handle, "cannot read progress");
}

common::Result<void> DurableQueue::clear_progress(const std::string& source) {
    Stmt del(db_->handle, "DELETE FROM progress WHERE source = ?");
    del.bind(1, source);
    if (del.step() != SQLITE_DONE) return db_error(path_, db_->handle, "cannot clear progress");
    return {};
}

common::Result<std::int64_t> DurableQueue::oldest_ns() {
    Stmt q(db_->handle, "SELECT enqueued_ns FROM entries ORDER BY seq LIMIT 1");
    const int rc = q.step();
    if (rc == SQLITE_ROW) return q.i64(0);
    if (rc == SQLITE_DONE) return std::int64_t{0};
    return db_error(path_, db_->handle, "cannot read the oldest entry");
}

}  // namespace senningen::agent
