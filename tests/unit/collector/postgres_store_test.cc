// What only the PostgreSQL backend does: connection strings, lost connections, and several
// stores (collectors) on one database. The behaviour both backends share is in store_test.cc.
#include "senningen/collector/postgres_store.h"

#include <Poco/Data/Session.h>
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <numeric>
#include <thread>
#include <vector>

#include "senningen/collector/open_store.h"
#include "store_backends.h"
#include "test_alerts.h"

namespace senningen::collector {
namespace {

using common::Alert;
using common::ErrorCode;
using Poco::Data::Keywords::into;
using Poco::Data::Keywords::now;
using test::base_ns;
using test::kMinuteNs;
using test::make_alert;

class PostgresStoreTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (std::string reason = backend_.skip_reason(); !reason.empty()) GTEST_SKIP() << reason;
    }
    std::unique_ptr<AlertStore> open_ok() {
        auto opened = backend_.open();
        EXPECT_TRUE(opened.ok()) << opened.error().message;
        return opened.ok() ? std::move(opened).value() : nullptr;
    }

    test::PostgresBackend backend_;
};

// What a server restart looks like from the client: every connection ends. The call that meets
// a dead connection fails; the one after it connects afresh.
TEST_F(PostgresStoreTest, ReconnectsAfterTheServerDroppedItsConnections) {
    auto store = open_ok();
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->insert({make_alert("s", base_ns(), 2)}).ok());
    ASSERT_TRUE(store->count().ok());
    {
        Poco::Data::Session raw = backend_.raw();
        Poco::Int64 terminated = 0;
        raw << "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
               " WHERE datname = current_database() AND pid <> pg_backend_pid()",
            into(terminated), now;
        ASSERT_GE(terminated, 1);
    }
    // The pool holds one idle connection (the calls above ran one at a time); it is dead now.
    auto first = store->count();
    ASSERT_FALSE(first.ok());
    EXPECT_EQ(first.error().code, ErrorCode::kDatabase);
    EXPECT_NE(first.error().message.find("count failed"), std::string::npos)
        << first.error().message;
    auto second = store->count();
    ASSERT_TRUE(second.ok()) << second.error().message;
    EXPECT_EQ(*second, 1U);
    auto inserted = store->insert({make_alert("s", base_ns(), 3)});
    ASSERT_TRUE(inserted.ok()) << inserted.error().message;
    EXPECT_EQ(store->count().value(), 2U);
}

// Two collectors on one database: each sees what the other stored, and overlapping batches
// (an agent that failed over and resent) are stored once.
TEST_F(PostgresStoreTest, TwoStoresOnOneDatabaseShareAlertsWithoutDuplicates) {
    auto one = open_ok();
    auto two = open_ok();
    ASSERT_TRUE(one && two);
    constexpr int kBatches = 30;
    constexpr int kBatchSize = 20;
    std::vector<std::vector<Alert>> batches(kBatches);
    for (int b = 0; b < kBatches; ++b) {
        for (int i = 0; i < kBatchSize; ++i) {
            batches[b].push_back(
                make_alert("sensor-" + std::to_string(b % 4), base_ns() + b * kMinuteNs + i, 2));
        }
    }
    std::atomic<std::uint64_t> inserted{0};
    std::atomic<int> failures{0};
    // Both stores insert every batch, in opposite orders, at the same time.
    std::thread t1([&] {
        for (int b = 0; b < kBatches; ++b) {
            auto r = one->insert(batches[b]);
            if (r.ok()) {
                inserted += r->inserted;
            } else {
                ++failures;
                ADD_FAILURE() << r.error().message;
            }
        }
    });
    std::thread t2([&] {
        for (int b = kBatches - 1; b >= 0; --b) {
            auto r = two->insert(batches[b]);
            if (r.ok()) {
                inserted += r->inserted;
            } else {
                ++failures;
                ADD_FAILURE() << r.error().message;
            }
        }
    });
    t1.join();
    t2.join();
    EXPECT_EQ(failures.load(), 0);
    EXPECT_EQ(inserted.load(), static_cast<std::uint64_t>(kBatches * kBatchSize));
    EXPECT_EQ(one->count().value(), static_cast<std::uint64_t>(kBatches * kBatchSize));
    EXPECT_EQ(two->count().value(), static_cast<std::uint64_t>(kBatches * kBatchSize));

    AlertQuery q;
    q.limit = kMaxQueryLimit;
    auto a = one->query(q);
    auto b = two->query(q);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(*a, *b);
    std::set<std::string> ids;
    for (const Alert& alert : *a) ids.insert(alert.id);
    EXPECT_EQ(ids.size(), a->size());
}

// A heartbeat on one collector and the liveness check on another: the agent's state and its
// events stay consistent.
TEST_F(PostgresStoreTest, AgentStateChangesFromTwoStoresAreRecordedOnce) {
    auto one = open_ok();
    auto two = open_ok();
    ASSERT_TRUE(one && two);
    common::Heartbeat hb;
    hb.agent_id = "gw";
    ASSERT_TRUE(one->record_heartbeat(hb, base_ns()).ok());
    std::thread t1(
        [&] { EXPECT_TRUE(one->set_agent_state("gw", "offline", base_ns() + 1, "a").ok()); });
    std::thread t2(
        [&] { EXPECT_TRUE(two->set_agent_state("gw", "offline", base_ns() + 2, "b").ok()); });
    t1.join();
    t2.join();
    auto events = two->agent_events("gw", 10);
    ASSERT_TRUE(events.ok()) << events.error().message;
    ASSERT_EQ(events->size(), 2U);  // online, then offline once
    EXPECT_EQ(events->front().event, "offline");
}

TEST_F(PostgresStoreTest, CollectorsStartingTogetherMigrateOnce) {
    constexpr int kStarters = 4;
    std::vector<std::thread> starters;
    std::atomic<int> failures{0};
    starters.reserve(kStarters);
    for (int i = 0; i < kStarters; ++i) {
        starters.emplace_back([&] {
            auto opened = backend_.open();
            if (!opened.ok()) {
                ++failures;
                ADD_FAILURE() << opened.error().message;
            }
        });
    }
    for (auto& t : starters) t.join();
    EXPECT_EQ(failures.load(), 0);
    Poco::Data::Session raw = backend_.raw();
    std::vector<int> versions;
    raw << "SELECT version FROM schema_version ORDER BY version", into(versions), now;
    std::vector<int> all(kPostgresSchemaVersion);
    std::iota(all.begin(), all.end(), 1);
    EXPECT_EQ(versions, all);
}

TEST(PostgresStoreOpen, MalformedUrlIsInvalidArgument) {
    auto opened = open_postgres_store("postgresql://user:secret@host/db?colour=blue");
    ASSERT_FALSE(opened.ok());
    const std::string& m = opened.error().message;
    EXPECT_EQ(opened.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(m.find("postgresql://user:***@host/db?colour=blue"), std::string::npos) << m;
    EXPECT_NE(m.find("colour"), std::string::npos) << m;  // libpq's own word on it
    EXPECT_EQ(m.find("secret"), std::string::npos) << m;
}

// libpq takes the values as they are (Poco's connector, which splits at spaces, is not used).
TEST(PostgresStoreOpen, PasswordWithWhiteSpaceIsPassedOnAndNotShown) {
    auto opened = open_postgres_store("host=127.0.0.1 port=1 dbname=x password='two words'");
    ASSERT_FALSE(opened.ok());
    const std::string& m = opened.error().message;
    EXPECT_EQ(opened.error().code, ErrorCode::kDatabase);  // refused by the network, not by us
    EXPECT_NE(m.find("cannot connect"), std::string::npos) << m;
    EXPECT_NE(m.find("password=***"), std::string::npos) << m;
    EXPECT_EQ(m.find("two words"), std::string::npos) << m;
}

// No server needed: nothing listens on port 1 of the loopback address.
TEST(PostgresStoreOpen, UnreachableServerIsADatabaseErrorWithoutThePassword) {
    const std::string url = "postgresql://senningen:secret@127.0.0.1:1/alerts";
    auto opened = open_postgres_store(url);
    ASSERT_FALSE(opened.ok());
    EXPECT_EQ(opened.error().code, ErrorCode::kDatabase);
    const std::string& m = opened.error().message;
    EXPECT_NE(m.find("postgresql://senningen:***@127.0.0.1:1/alerts"), std::string::npos) << m;
    EXPECT_NE(m.find("cannot connect"), std::string::npos) << m;
    EXPECT_EQ(m.find("secret"), std::string::npos) << m;
}

TEST(PostgresStoreOpen, RedactsPasswordsInEveryForm) {
    EXPECT_EQ(redact_conninfo("postgresql://u:pw@h:5432/db"), "postgresql://u:***@h:5432/db");
    EXPECT_EQ(redact_conninfo("postgresql://u@h/db"), "postgresql://u@h/db");
    EXPECT_EQ(redact_conninfo("postgresql://h/db?user=u&password=pw&sslmode=require"),
              "postgresql://h/db?user=u&password=***&sslmode=require");
    EXPECT_EQ(redact_conninfo("host=h password=pw dbname=d"), "host=h password=*** dbname=d");
    EXPECT_EQ(redact_conninfo("host=h password='p w\\'x' dbname=d"),
              "host=h password=*** dbname=d");
}

TEST(StoreSpec, KnownFormsAndTheirProblems) {
    EXPECT_EQ(check_store_spec("sqlite:/var/lib/senningen/alerts.db"), "");
    EXPECT_EQ(check_store_spec("postgresql://u:p@127.0.0.1:5432/senningen"), "");
    EXPECT_EQ(check_store_spec("postgres://u@db.example/senningen"), "");
    for (const char* bad : {"sqlite:", "mysql://u@h/db", "alerts.db", ""}) {
        const std::string problem = check_store_spec(bad);
        EXPECT_NE(problem.find("neither sqlite:PATH nor postgresql://"), std::string::npos) << bad;
    }
    auto opened = open_store("mysql://u:pw@h/db");
    ASSERT_FALSE(opened.ok());
    EXPECT_EQ(opened.error().code, ErrorCode::kInvalidArgument);
    EXPECT_EQ(redact_store_spec("postgresql://u:pw@h/db"), "postgresql://u:***@h/db");
    EXPECT_EQ(redact_store_spec("sqlite:a.db"), "sqlite:a.db");
}

}  // namespace
}  // namespace senningen::collector
