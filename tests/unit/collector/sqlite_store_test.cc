// What only the SQLite backend does: WAL mode, file errors, and upgrading files written by
// older builds. The behaviour both backends share is in store_test.cc.
#include "senningen/collector/sqlite_store.h"

#include <Poco/Data/SQLite/Connector.h>
#include <Poco/Data/Session.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <thread>
#include <vector>

#include "senningen/common/json_codec.h"
#include "test_alerts.h"

namespace senningen::collector {
namespace {

using common::ErrorCode;
using Poco::Data::Keywords::into;
using Poco::Data::Keywords::now;
using Poco::Data::Keywords::use;
using test::base_ns;
using common::Alert;
using test::ids_of;
using test::kMinuteNs;
using test::make_alert;

TEST(SqliteStore, UsesWalJournalMode) {
    test::TempDir dir;
    const std::string path = dir.file("alerts.db");
    auto store = open_sqlite_store(path);
    ASSERT_TRUE(store.ok()) << store.error().message;
    Poco::Data::Session raw("SQLite", path);
    std::string mode;
    raw << "PRAGMA journal_mode", into(mode), now;
    EXPECT_EQ(mode, "wal");
}

// A file as the first released build left it (schema version 1: alerts only) opens, gains the
// agent tables, and keeps its alerts.
TEST(SqliteStore, UpgradesAVersion1FileKeepingItsAlerts) {
    test::TempDir dir;
    const std::string path = dir.file("v1.db");
    const common::Alert old = make_alert("sensor-a", base_ns(), 3);
    {
        Poco::Data::SQLite::Connector::registerConnector();
        Poco::Data::Session raw("SQLite", path);
        raw << "CREATE TABLE schema_version (version INTEGER PRIMARY KEY NOT NULL,"
               " description TEXT NOT NULL, applied_ns INTEGER NOT NULL)",
            now;
        raw << "INSERT INTO schema_version VALUES (1, 'alerts table and its query indexes', 1)",
            now;
        raw << "CREATE TABLE alerts (id TEXT PRIMARY KEY NOT NULL, agent_id TEXT NOT NULL,"
               " ts_ns INTEGER NOT NULL, severity INTEGER NOT NULL, kind TEXT NOT NULL,"
               " source TEXT NOT NULL, rule TEXT NOT NULL, category TEXT NOT NULL,"
               " pack TEXT NOT NULL, src_ip TEXT, src_port INTEGER, dest_ip TEXT,"
               " dest_port INTEGER, proto TEXT, app_proto TEXT, flow_id INTEGER,"
               " received_ns INTEGER NOT NULL, eve TEXT NOT NULL)",
            now;
        std::string id = old.id;
        std::string agent = old.agent_id;
        Poco::Int64 ts = old.timestamp_ns;
        int severity = old.severity;
        std::string eve = common::alert_to_json(old);
        raw << "INSERT INTO alerts (id, agent_id, ts_ns, severity, kind, source, rule, category,"
               " pack, received_ns, eve) VALUES (?, ?, ?, ?, 'network', 'policy', 'r', 'c', 'p',"
               " 0, ?)",
            use(id), use(agent), use(ts), use(severity), use(eve), now;
    }
    auto store = open_sqlite_store(path);
    ASSERT_TRUE(store.ok()) << store.error().message;
    EXPECT_EQ((*store)->count().value(), 1U);
    auto back = (*store)->query(AlertQuery{});
    ASSERT_TRUE(back.ok()) << back.error().message;
    ASSERT_EQ(back->size(), 1U);
    EXPECT_EQ(back->front(), old);
    common::Heartbeat hb;
    hb.agent_id = "sensor-a";
    EXPECT_TRUE((*store)->record_heartbeat(hb, base_ns()).ok());  // the v2 tables exist

    Poco::Data::Session raw("SQLite", path);
    std::vector<int> versions;
    Poco::Int64 first_applied = 0;
    raw << "SELECT version FROM schema_version ORDER BY version", into(versions), now;
    raw << "SELECT applied_ns FROM schema_version WHERE version = 1", into(first_applied), now;
    std::vector<int> all(kSqliteSchemaVersion);
    std::iota(all.begin(), all.end(), 1);
    EXPECT_EQ(versions, all);
    EXPECT_EQ(first_applied, 1);  // version 1 was not applied again
    // The free-text index was filled from the old row's EVE JSON.
    AlertQuery q;
    q.text = "MODBUS write";
    auto found = (*store)->query(q);
    ASSERT_TRUE(found.ok()) << found.error().message;
    EXPECT_EQ(ids_of(*found), std::vector<std::string>{old.id});
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

// insert_batches() on SQLite: one transaction for a group of batches (the collector's ingest
// commits batches that arrive together at once; docs/collector.md).
class SqliteBatchTest : public ::testing::Test {
protected:
    void SetUp() override {
        auto opened = open_sqlite_store(path_);
        ASSERT_TRUE(opened.ok()) << opened.error().message;
        store_ = std::move(opened).value();
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

TEST_F(SqliteBatchTest, InsertBatchesStoresAGroupAndCountsPerBatch) {
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

TEST_F(SqliteBatchTest, InsertBatchesStoresNothingWhenOneAlertIsInvalid) {
    Alert bad = make_alert("s", base_ns(), 2);
    bad.agent_id.clear();
    auto results = store_->insert_batches({{make_alert("s", base_ns(), 1)}, {bad}});
    ASSERT_FALSE(results.ok());
    EXPECT_EQ(results.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(results.error().message.find("1 of the group"), std::string::npos)
        << results.error().message;
    EXPECT_EQ(store_->count().value(), 0U);
}

// The writer connection's automatic checkpoint is replaced by a thread of the store's own
// (sqlite_store.cc, WalCheckpointer): if that thread did not checkpoint, committed rows would
// stay in the WAL and the database file would not grow while the store is open.
TEST_F(SqliteBatchTest, CheckpointsTheWalIntoTheDatabaseFileInTheBackground) {
    const auto file_size = [&] { return std::filesystem::file_size(path_); };
    const auto before = file_size();
    for (int b = 0; b < 10; ++b) {
        std::vector<Alert> batch;
        for (int i = 0; i < 1000; ++i) batch.push_back(make_alert("s", base_ns() + b * 1000 + i, 1 + i % 4));
        ASSERT_TRUE(store_->insert(batch).ok());
    }
    // Well over 1,000 pages (the checkpoint threshold) went into the WAL.
    const auto wal = std::filesystem::file_size(path_ + "-wal");
    EXPECT_GT(wal, 4U * 1024 * 1024);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (file_size() < before + 4U * 1024 * 1024 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_GE(file_size(), before + 4U * 1024 * 1024);
    EXPECT_EQ(store_->count().value(), 10000U);
}

TEST_F(SqliteBatchTest, InsertBatchesIsOneTransaction) {
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
    Poco::Data::SQLite::Connector::registerConnector();  // before any store has done it
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

}  // namespace
}  // namespace senningen::collector
