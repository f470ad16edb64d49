#include "senningen/collector/sqlite_store.h"

#include <Poco/Data/Session.h>
#include <Poco/Data/Statement.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <thread>
#include <vector>

#include "senningen/common/json_codec.h"
#include "test_alerts.h"

namespace senningen::collector {
namespace {

using common::Alert;
using common::ErrorCode;
using Poco::Data::Keywords::into;
using Poco::Data::Keywords::now;
using Poco::Data::Keywords::use;
using test::base_ns;
using test::ids_of;
using test::kMinuteNs;
using test::make_alert;

class SqliteStoreTest : public ::testing::Test {
protected:
    void SetUp() override {
        auto opened = open_sqlite_store(path_);
        ASSERT_TRUE(opened.ok()) << opened.error().message;
        store_ = std::move(opened).value();
    }

    // Five alerts ten minutes apart: a0 oldest ... a4 newest.
    //   a0 sensor-a sev 1, a1 sensor-a sev 2, a2 sensor-b sev 3, a3 sensor-b sev 4,
    //   a4 sensor-c sev 1
    std::vector<Alert> seed() {
        std::vector<Alert> alerts = {
            make_alert("sensor-a", base_ns() + 0 * kMinuteNs, 1),
            make_alert("sensor-a", base_ns() + 10 * kMinuteNs, 2),
            make_alert("sensor-b", base_ns() + 20 * kMinuteNs, 3),
            make_alert("sensor-b", base_ns() + 30 * kMinuteNs, 4),
            make_alert("sensor-c", base_ns() + 40 * kMinuteNs, 1),
        };
        auto inserted = store_->insert(alerts);
        EXPECT_TRUE(inserted.ok()) << inserted.error().message;
        return alerts;
    }

    std::vector<Alert> query_ok(const AlertQuery& q) {
        auto result = store_->query(q);
        EXPECT_TRUE(result.ok()) << result.error().message;
        if (!result.ok()) return {};
        return std::move(result).value();
    }

    // A second, independent connection for looking behind the store's back.
    Poco::Data::Session raw_session() const { return {"SQLite", path_}; }

    test::TempDir dir_;
    std::string path_ = dir_.file("alerts.db");
    std::unique_ptr<AlertStore> store_;
};

TEST_F(SqliteStoreTest, InsertsBatchAndReadsItBackExactly) {
    const std::vector<Alert> alerts = seed();
    EXPECT_EQ(store_->backend_name(), "sqlite");
    auto count = store_->count();
    ASSERT_TRUE(count.ok()) << count.error().message;
    EXPECT_EQ(*count, 5U);

    std::vector<Alert> back = query_ok(AlertQuery{});
    ASSERT_EQ(back.size(), 5U);
    // Newest first, and every field survives the trip through the eve column.
    std::vector<Alert> expected(alerts.rbegin(), alerts.rend());
    EXPECT_EQ(back, expected);
    EXPECT_EQ(store_->undecodable_rows(), 0U);
}

TEST_F(SqliteStoreTest, InsertReportsInsertedCount) {
    auto result = store_->insert({make_alert("s", base_ns(), 2), make_alert("s", base_ns(), 3)});
    ASSERT_TRUE(result.ok()) << result.error().message;
    EXPECT_EQ(result->inserted, 2U);
    EXPECT_EQ(result->duplicates, 0U);
}

TEST_F(SqliteStoreTest, EmptyBatchIsANoOp) {
    auto result = store_->insert({});
    ASSERT_TRUE(result.ok()) << result.error().message;
    EXPECT_EQ(*result, InsertResult{});
    EXPECT_EQ(store_->count().value(), 0U);
}

TEST_F(SqliteStoreTest, ReplayInsertsNothingTwice) {
    const std::vector<Alert> alerts = seed();
    auto replay = store_->insert(alerts);
    ASSERT_TRUE(replay.ok()) << replay.error().message;
    EXPECT_EQ(replay->inserted, 0U);
    EXPECT_EQ(replay->duplicates, 5U);
    EXPECT_EQ(store_->count().value(), 5U);
}

TEST_F(SqliteStoreTest, PartialReplayCountsOnlyNewAlerts) {
    const std::vector<Alert> alerts = seed();
    const Alert fresh = make_alert("sensor-d", base_ns() + 50 * kMinuteNs, 2);
    auto result = store_->insert({alerts[1], fresh, alerts[3]});
    ASSERT_TRUE(result.ok()) << result.error().message;
    EXPECT_EQ(result->inserted, 1U);
    EXPECT_EQ(result->duplicates, 2U);
    EXPECT_EQ(store_->count().value(), 6U);
}

TEST_F(SqliteStoreTest, DuplicateWithinOneBatchIsCounted) {
    const Alert a = make_alert("s", base_ns(), 2);
    auto result = store_->insert({a, a, make_alert("s", base_ns(), 3)});
    ASSERT_TRUE(result.ok()) << result.error().message;
    EXPECT_EQ(result->inserted, 2U);
    EXPECT_EQ(result->duplicates, 1U);
}

TEST_F(SqliteStoreTest, ReplayWithChangedContentKeepsTheFirstCopy) {
    Alert a = make_alert("s", base_ns(), 2);
    ASSERT_TRUE(store_->insert({a}).ok());
    Alert changed = a;
    changed.severity = 1;
    changed.rule = "something else";
    auto result = store_->insert({changed});
    ASSERT_TRUE(result.ok()) << result.error().message;
    EXPECT_EQ(result->duplicates, 1U);
    std::vector<Alert> back = query_ok(AlertQuery{});
    ASSERT_EQ(back.size(), 1U);
    EXPECT_EQ(back[0], a);
}

TEST_F(SqliteStoreTest, InvalidAlertFailsTheWholeBatch) {
    Alert bad = make_alert("s", base_ns(), 2);
    bad.severity = 9;
    auto result = store_->insert({make_alert("s", base_ns(), 1), bad});
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(result.error().message.find("alert 1"), std::string::npos) << result.error().message;
    EXPECT_NE(result.error().message.find(bad.id), std::string::npos) << result.error().message;
    EXPECT_EQ(store_->count().value(), 0U);
}

TEST_F(SqliteStoreTest, InsertBatchesStoresAGroupAndCountsPerBatch) {
    const Alert a = make_alert("s", base_ns(), 1);
    const Alert b = make_alert("s", base_ns() + 1, 2);
    const Alert c = make_alert("t", base_ns() + 2, 3);
    ASSERT_TRUE(store_->insert({a}).ok());
    // a is a replay; b comes twice in the group (a resend next to its original).
    auto results = store_->insert_batches({{a, b}, {b, c}, {}});
    ASSERT_TRUE(results.ok()) << results.error().message;
    ASSERT_EQ(results->size(), 3U);
    EXPECT_EQ((*results)[0], (InsertResult{1, 1}));
    EXPECT_EQ((*results)[1], (InsertResult{1, 1}));
    EXPECT_EQ((*results)[2], (InsertResult{0, 0}));
    EXPECT_EQ(ids_of(query_ok(AlertQuery{})), ids_of({c, b, a}));
}

TEST_F(SqliteStoreTest, InsertBatchesStoresNothingWhenOneAlertIsInvalid) {
    Alert bad = make_alert("s", base_ns(), 2);
    bad.agent_id.clear();
    auto results = store_->insert_batches({{make_alert("s", base_ns(), 1)}, {bad}});
    ASSERT_FALSE(results.ok());
    EXPECT_EQ(results.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(results.error().message.find("1 of the group"), std::string::npos)
        << results.error().message;
    EXPECT_EQ(store_->count().value(), 0U);
}

TEST_F(SqliteStoreTest, InsertBatchesIsOneTransaction) {
    // A trigger the store does not know about fails the last row of the group; the rows
    // before it, in the same and in earlier batches, must not stay behind.
    {
        Poco::Data::Session raw = raw_session();
        raw << "CREATE TRIGGER test_no_severity_4 BEFORE INSERT ON alerts"
               " WHEN NEW.severity = 4 BEGIN SELECT RAISE(ABORT, 'test: no severity 4'); END",
            now;
    }
    auto results = store_->insert_batches(
        {{make_alert("s", base_ns(), 1)}, {make_alert("s", base_ns() + 1, 2),
                                           make_alert("s", base_ns() + 2, 4)}});
    ASSERT_FALSE(results.ok());
    EXPECT_EQ(results.error().code, ErrorCode::kDatabase);
    EXPECT_NE(results.error().message.find("no severity 4"), std::string::npos)
        << results.error().message;
    EXPECT_EQ(store_->count().value(), 0U);
    // And the store still works afterwards.
    EXPECT_TRUE(store_->insert({make_alert("s", base_ns() + 3, 3)}).ok());
    EXPECT_EQ(store_->count().value(), 1U);
}

TEST(SqliteStoreMigration, AVersion2FileKeepsItsJsonRowsReadable) {
    test::TempDir dir;
    const std::string path = dir.file("v2.db");
    const Alert old_alert = make_alert("sensor-old", base_ns(), 3);
    {
        // The schema as versions 1 and 2 made it, with one row of that time (EVE JSON).
        Poco::Data::Session raw("SQLite", path);
        raw << "PRAGMA journal_mode = WAL", now;
        raw << "CREATE TABLE schema_version (version INTEGER PRIMARY KEY NOT NULL,"
               " description TEXT NOT NULL, applied_ns INTEGER NOT NULL)", now;
        raw << "INSERT INTO schema_version VALUES (1, 'v1', 0), (2, 'v2', 0)", now;
        raw << "CREATE TABLE alerts (id TEXT PRIMARY KEY NOT NULL, agent_id TEXT NOT NULL,"
               " ts_ns INTEGER NOT NULL, severity INTEGER NOT NULL, kind TEXT NOT NULL,"
               " source TEXT NOT NULL, rule TEXT NOT NULL, category TEXT NOT NULL,"
               " pack TEXT NOT NULL, src_ip TEXT, src_port INTEGER, dest_ip TEXT,"
               " dest_port INTEGER, proto TEXT, app_proto TEXT, flow_id INTEGER,"
               " received_ns INTEGER NOT NULL, eve TEXT NOT NULL)", now;
        raw << "CREATE INDEX alerts_ts ON alerts (ts_ns)", now;
        raw << "CREATE TABLE agents (id TEXT PRIMARY KEY NOT NULL, state TEXT NOT NULL,"
               " first_seen_ns INTEGER NOT NULL, last_seen_ns INTEGER NOT NULL,"
               " state_since_ns INTEGER NOT NULL, sequence INTEGER NOT NULL,"
               " version TEXT NOT NULL, uptime_s INTEGER NOT NULL, pack_version TEXT NOT NULL,"
               " interval_s INTEGER NOT NULL, packets INTEGER NOT NULL,"
               " kernel_drops INTEGER NOT NULL, bytes INTEGER NOT NULL,"
               " files_scanned INTEGER NOT NULL, alerts INTEGER NOT NULL,"
               " queue_depth INTEGER NOT NULL, queue_oldest_age_s INTEGER NOT NULL)", now;
        raw << "CREATE TABLE agent_events (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
               " time_ns INTEGER NOT NULL, agent_id TEXT NOT NULL, event TEXT NOT NULL,"
               " detail TEXT NOT NULL)", now;
        std::string id = old_alert.id;
        std::string agent = old_alert.agent_id;
        Poco::Int64 ts = old_alert.timestamp_ns;
        int severity = old_alert.severity;
        std::string eve = common::alert_to_json(old_alert);
        raw << "INSERT INTO alerts (id, agent_id, ts_ns, severity, kind, source, rule, category,"
               " pack, received_ns, eve) VALUES (?, ?, ?, ?, 'network', 'yara', 'r', 'c', 'p', 0, ?)",
            use(id), use(agent), use(ts), use(severity), use(eve), now;
    }
    auto opened = open_sqlite_store(path);
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    auto& store = *opened;
    const Alert new_alert = make_alert("sensor-new", base_ns() + kMinuteNs, 1);
    ASSERT_TRUE(store->insert({new_alert}).ok());
    auto back = store->query(AlertQuery{});
    ASSERT_TRUE(back.ok()) << back.error().message;
    EXPECT_EQ(*back, (std::vector<Alert>{new_alert, old_alert}));
    EXPECT_EQ(store->undecodable_rows(), 0U);
    // A replay of the old alert is still a duplicate: the ids survived the rebuild.
    auto replay = store->insert({old_alert});
    ASSERT_TRUE(replay.ok());
    EXPECT_EQ(replay->duplicates, 1U);
}

TEST_F(SqliteStoreTest, SinceIsInclusiveUntilIsExclusive) {
    const std::vector<Alert> a = seed();
    AlertQuery q;
    q.since_ns = base_ns() + 10 * kMinuteNs;
    EXPECT_EQ(ids_of(query_ok(q)), ids_of({a[4], a[3], a[2], a[1]}));

    q = AlertQuery{};
    q.until_ns = base_ns() + 20 * kMinuteNs;
    EXPECT_EQ(ids_of(query_ok(q)), ids_of({a[1], a[0]}));

    q.since_ns = base_ns() + 10 * kMinuteNs;
    EXPECT_EQ(ids_of(query_ok(q)), ids_of({a[1]}));

    q.since_ns = base_ns() + 20 * kMinuteNs;  // empty window
    EXPECT_TRUE(query_ok(q).empty());
}

TEST_F(SqliteStoreTest, FiltersBySeverityList) {
    const std::vector<Alert> a = seed();
    AlertQuery q;
    q.severities = {1};
    EXPECT_EQ(ids_of(query_ok(q)), ids_of({a[4], a[0]}));
    q.severities = {2, 4};
    EXPECT_EQ(ids_of(query_ok(q)), ids_of({a[3], a[1]}));
    q.severities = {1, 2, 3, 4};
    EXPECT_EQ(query_ok(q).size(), 5U);
}

TEST_F(SqliteStoreTest, FiltersByAgent) {
    const std::vector<Alert> a = seed();
    AlertQuery q;
    q.agent_id = "sensor-b";
    EXPECT_EQ(ids_of(query_ok(q)), ids_of({a[3], a[2]}));
    q.agent_id = "sensor";  // exact match, not a prefix
    EXPECT_TRUE(query_ok(q).empty());
}

TEST_F(SqliteStoreTest, SqlMetacharactersInAgentMatchNothingAndHarmNothing) {
    seed();
    for (const char* agent :
         {"' OR '1'='1", "x'; DROP TABLE alerts; --", "%", "_", "\"", "sensor-a' --"}) {
        AlertQuery q;
        q.agent_id = agent;
        EXPECT_TRUE(query_ok(q).empty()) << agent;
    }
    EXPECT_EQ(store_->count().value(), 5U);
}

TEST_F(SqliteStoreTest, CombinesFiltersWithAnd) {
    const std::vector<Alert> a = seed();
    AlertQuery q;
    q.agent_id = "sensor-a";
    q.severities = {2, 3};
    q.since_ns = base_ns();
    EXPECT_EQ(ids_of(query_ok(q)), ids_of({a[1]}));
}

TEST_F(SqliteStoreTest, LimitKeepsTheNewest) {
    const std::vector<Alert> a = seed();
    AlertQuery q;
    q.limit = 2;
    EXPECT_EQ(ids_of(query_ok(q)), ids_of({a[4], a[3]}));
    q.limit = 1;
    q.agent_id = "sensor-a";
    EXPECT_EQ(ids_of(query_ok(q)), ids_of({a[1]}));
}

TEST_F(SqliteStoreTest, EqualTimestampsAreOrderedById) {
    std::vector<Alert> same;
    same.reserve(7);
    for (int i = 0; i < 6; ++i) same.push_back(make_alert("s", base_ns(), 3));
    const Alert newer = make_alert("s", base_ns() + 1, 3);
    same.push_back(newer);
    ASSERT_TRUE(store_->insert(same).ok());

    std::vector<std::string> expected;
    for (std::size_t i = 0; i + 1 < same.size(); ++i) expected.push_back(same[i].id);
    std::sort(expected.begin(), expected.end());
    expected.insert(expected.begin(), newer.id);
    EXPECT_EQ(ids_of(query_ok(AlertQuery{})), expected);
}

TEST_F(SqliteStoreTest, RefusesBadQueries) {
    AlertQuery q;
    q.limit = 0;
    EXPECT_EQ(store_->query(q).error().code, ErrorCode::kInvalidArgument);
    q.limit = kMaxQueryLimit + 1;
    EXPECT_EQ(store_->query(q).error().code, ErrorCode::kInvalidArgument);
    q.limit = kMaxQueryLimit;
    EXPECT_TRUE(store_->query(q).ok());
    q.severities = {5};
    EXPECT_EQ(store_->query(q).error().code, ErrorCode::kInvalidArgument);
}

TEST_F(SqliteStoreTest, UsesWalJournalMode) {
    Poco::Data::Session raw = raw_session();
    std::string mode;
    raw << "PRAGMA journal_mode", into(mode), now;
    EXPECT_EQ(mode, "wal");
}

TEST_F(SqliteStoreTest, RecordsAppliedMigrations) {
    Poco::Data::Session raw = raw_session();
    std::vector<int> versions;
    raw << "SELECT version FROM schema_version ORDER BY version", into(versions), now;
    EXPECT_EQ(versions, (std::vector<int>{1, 2, 3}));
    EXPECT_EQ(versions.back(), kSqliteSchemaVersion);
    int indexes = 0;
    raw << "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'alerts'"
           " AND name IN ('alerts_ts', 'alerts_agent_ts', 'alerts_severity_ts')",
        into(indexes), now;
    EXPECT_EQ(indexes, 3);
}

TEST_F(SqliteStoreTest, ReopenKeepsDataAndDoesNotRerunMigrations) {
    const std::vector<Alert> alerts = seed();
    Poco::Int64 applied_before = 0;
    {
        Poco::Data::Session raw = raw_session();
        raw << "SELECT applied_ns FROM schema_version WHERE version = 1", into(applied_before), now;
    }
    store_.reset();

    auto reopened = open_sqlite_store(path_);
    ASSERT_TRUE(reopened.ok()) << reopened.error().message;
    store_ = std::move(reopened).value();
    EXPECT_EQ(store_->count().value(), 5U);
    EXPECT_EQ(ids_of(query_ok(AlertQuery{})).front(), alerts.back().id);

    Poco::Data::Session raw = raw_session();
    int rows = 0;
    Poco::Int64 applied_after = 0;
    raw << "SELECT count(*) FROM schema_version", into(rows), now;
    raw << "SELECT applied_ns FROM schema_version WHERE version = 1", into(applied_after), now;
    EXPECT_EQ(rows, kSqliteSchemaVersion);
    EXPECT_EQ(applied_after, applied_before);
}

TEST_F(SqliteStoreTest, RefusesASchemaNewerThanThisBuild) {
    store_.reset();
    {
        Poco::Data::Session raw = raw_session();
        raw << "INSERT INTO schema_version (version, description, applied_ns)"
               " VALUES (99, 'from the future', 0)",
            now;
    }
    auto reopened = open_sqlite_store(path_);
    ASSERT_FALSE(reopened.ok());
    EXPECT_EQ(reopened.error().code, ErrorCode::kUnsupported);
    EXPECT_NE(reopened.error().message.find("99"), std::string::npos) << reopened.error().message;
}

TEST_F(SqliteStoreTest, UndecodableRowIsSkippedAndCounted) {
    const std::vector<Alert> a = seed();
    {
        Poco::Data::Session raw = raw_session();
        std::string id = a[2].id;
        raw << "UPDATE alerts SET body = x'01ff00' WHERE id = ?", use(id), now;
    }
    std::vector<Alert> back = query_ok(AlertQuery{});
    EXPECT_EQ(ids_of(back), ids_of({a[4], a[3], a[1], a[0]}));
    EXPECT_EQ(store_->undecodable_rows(), 1U);
}

TEST_F(SqliteStoreTest, QueriesWhileAnotherThreadInserts) {
    constexpr int kBatches = 40;
    constexpr int kBatchSize = 25;
    std::atomic<bool> done{false};
    std::atomic<int> insert_failures{0};
    std::thread writer([&] {
        for (int b = 0; b < kBatches; ++b) {
            std::vector<Alert> batch;
            batch.reserve(kBatchSize);
            for (int i = 0; i < kBatchSize; ++i) {
                batch.push_back(make_alert("sensor-" + std::to_string(i % 3),
                                           base_ns() + b * kMinuteNs + i, 1 + i % 4));
            }
            if (!store_->insert(batch).ok()) ++insert_failures;
        }
        done = true;
    });

    int queries = 0;
    std::uint64_t last_count = 0;
    bool monotonic = true;
    bool all_ok = true;
    while (!done || queries < 5) {
        AlertQuery q;
        q.severities = {1, 2};
        q.limit = 50;
        auto result = store_->query(q);
        auto count = store_->count();
        all_ok = all_ok && result.ok() && count.ok();
        if (count.ok()) {
            monotonic = monotonic && *count >= last_count;
            last_count = *count;
        }
        ++queries;
    }
    writer.join();

    EXPECT_TRUE(all_ok);
    EXPECT_TRUE(monotonic);
    EXPECT_EQ(insert_failures.load(), 0);
    EXPECT_EQ(store_->count().value(), static_cast<std::uint64_t>(kBatches * kBatchSize));
    // The reader is not stuck on an old snapshot: it sees the last batch.
    std::vector<Alert> newest = query_ok(AlertQuery{});
    ASSERT_FALSE(newest.empty());
    EXPECT_EQ(newest.front().timestamp_ns, base_ns() + (kBatches - 1) * kMinuteNs + kBatchSize - 1);
}

TEST(SqliteStoreOpen, BadPathIsADatabaseErrorNamingThePath) {
    const std::string path = "/nonexistent-senningen-dir/sub/alerts.db";
    auto opened = open_sqlite_store(path);
    ASSERT_FALSE(opened.ok());
    EXPECT_EQ(opened.error().code, ErrorCode::kDatabase);
    EXPECT_NE(opened.error().message.find(path), std::string::npos) << opened.error().message;
    EXPECT_NE(opened.error().message.find("unable to open database file"), std::string::npos)
        << opened.error().message;
}

TEST(SqliteStoreOpen, AFileThatIsNotADatabaseIsADatabaseError) {
    test::TempDir dir;
    const std::string path = dir.file("not-a.db");
    {
        std::ofstream out(path, std::ios::binary);
        out << std::string(4096, 'x');
    }
    auto opened = open_sqlite_store(path);
    ASSERT_FALSE(opened.ok());
    EXPECT_EQ(opened.error().code, ErrorCode::kDatabase);
    EXPECT_NE(opened.error().message.find(path), std::string::npos) << opened.error().message;
}

TEST(SqliteStoreOpen, InMemoryAndEmptyPathsAreRefused) {
    for (const char* path : {"", ":memory:"}) {
        auto opened = open_sqlite_store(path);
        ASSERT_FALSE(opened.ok()) << path;
        EXPECT_EQ(opened.error().code, ErrorCode::kInvalidArgument) << path;
    }
}

}  // namespace
}  // namespace senningen::collector
