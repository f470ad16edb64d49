// What only the SQLite backend does: WAL mode, file errors, and upgrading files written by
// older builds. The behaviour both backends share is in store_test.cc.
#include "senningen/collector/sqlite_store.h"

#include <Poco/Data/SQLite/Connector.h>
#include <Poco/Data/Session.h>
#include <gtest/gtest.h>

#include <fstream>
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
    EXPECT_EQ(versions, (std::vector<int>{1, 2, 3, 4}));
    EXPECT_EQ(first_applied, 1);  // version 1 was not applied again
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
