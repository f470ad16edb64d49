// The storage test suite, run against every AlertStore backend (store_backends.h): what the
// interface promises must hold on SQLite and on PostgreSQL alike.
#include <Poco/Data/Session.h>
#include <Poco/Data/Statement.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <numeric>
#include <vector>

#include "store_backends.h"
#include "test_alerts.h"

namespace senningen::collector {
namespace {

using common::Alert;
using common::ErrorCode;
using Poco::Data::Keywords::into;
using Poco::Data::Keywords::now;
using test::base_ns;
using test::ids_of;
using test::kMinuteNs;
using test::make_alert;

class StoreTest : public test::BackendTest {
protected:

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

    common::Heartbeat heartbeat(const std::string& id, std::uint64_t sequence) {
        common::Heartbeat hb;
        hb.agent_id = id;
        hb.sequence = sequence;
        hb.version = "0.1.0";
        hb.uptime_s = 60 * sequence;
        hb.pack_version = "sha256:ab";
        hb.interval_s = 30;
        hb.packets = 1000 * sequence;
        hb.kernel_drops = 2;
        hb.bytes = 5'000'000'000ULL;  // above 2^32
        hb.files_scanned = 7;
        hb.alerts = 11;
        hb.queue_depth = 13;
        hb.queue_oldest_age_s = 17;
        return hb;
    }
};

INSTANTIATE_TEST_SUITE_P(Backends, StoreTest, ::testing::ValuesIn(test::all_backends()),
                         test::backend_param_name);

TEST_P(StoreTest, InsertsBatchAndReadsItBackExactly) {
    const std::vector<Alert> alerts = seed();
    EXPECT_EQ(store_->backend_name(), backend_->name());
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

// The same statement again and again with other values (PostgreSQL prepares the read queries
// once per connection and may switch to a generic plan after five runs): each answer is right.
TEST_P(StoreTest, RepeatedQueriesWithOtherValuesAnswerEach) {
    std::vector<Alert> alerts;
    for (int i = 0; i < 12; ++i) {
        for (int k = 0; k <= i % 4; ++k) {
            alerts.push_back(test::make_alert("agent-" + std::to_string(i),
                                              test::base_ns() + (i * 10 + k) * test::kMinuteNs,
                                              1 + k));
        }
    }
    ASSERT_TRUE(store_->insert(alerts).ok());
    for (int round = 0; round < 2; ++round) {
        for (int i = 0; i < 12; ++i) {
            AlertQuery q;
            q.agent_id = "agent-" + std::to_string(i);
            std::vector<Alert> back = query_ok(q);
            ASSERT_EQ(back.size(), static_cast<std::size_t>(i % 4 + 1)) << *q.agent_id;
            for (const Alert& a : back) EXPECT_EQ(a.agent_id, *q.agent_id);
            AggregateQuery by_severity;
            by_severity.by = AggregateBy::kSeverity;
            by_severity.filter.severities = {1 + i % 4};
            auto counted = store_->aggregate(by_severity);
            ASSERT_TRUE(counted.ok()) << counted.error().message;
            ASSERT_EQ(counted->buckets.size(), 1U);
            // Severity s is in every agent i with i % 4 >= s - 1.
            EXPECT_EQ(counted->buckets[0].count, static_cast<std::uint64_t>(3 * (4 - i % 4)));
        }
    }
}

TEST_P(StoreTest, InsertReportsInsertedCount) {
    auto result = store_->insert({make_alert("s", base_ns(), 2), make_alert("s", base_ns(), 3)});
    ASSERT_TRUE(result.ok()) << result.error().message;
    EXPECT_EQ(result->inserted, 2U);
    EXPECT_EQ(result->duplicates, 0U);
}

TEST_P(StoreTest, EmptyBatchIsANoOp) {
    auto result = store_->insert({});
    ASSERT_TRUE(result.ok()) << result.error().message;
    EXPECT_EQ(*result, InsertResult{});
    EXPECT_EQ(store_->count().value(), 0U);
}

TEST_P(StoreTest, ReplayInsertsNothingTwice) {
    const std::vector<Alert> alerts = seed();
    auto replay = store_->insert(alerts);
    ASSERT_TRUE(replay.ok()) << replay.error().message;
    EXPECT_EQ(replay->inserted, 0U);
    EXPECT_EQ(replay->duplicates, 5U);
    EXPECT_EQ(store_->count().value(), 5U);
}

TEST_P(StoreTest, PartialReplayCountsOnlyNewAlerts) {
    const std::vector<Alert> alerts = seed();
    const Alert fresh = make_alert("sensor-d", base_ns() + 50 * kMinuteNs, 2);
    auto result = store_->insert({alerts[1], fresh, alerts[3]});
    ASSERT_TRUE(result.ok()) << result.error().message;
    EXPECT_EQ(result->inserted, 1U);
    EXPECT_EQ(result->duplicates, 2U);
    EXPECT_EQ(store_->count().value(), 6U);
}

TEST_P(StoreTest, DuplicateWithinOneBatchIsCounted) {
    const Alert a = make_alert("s", base_ns(), 2);
    auto result = store_->insert({a, a, make_alert("s", base_ns(), 3)});
    ASSERT_TRUE(result.ok()) << result.error().message;
    EXPECT_EQ(result->inserted, 2U);
    EXPECT_EQ(result->duplicates, 1U);
}

TEST_P(StoreTest, ReplayWithChangedContentKeepsTheFirstCopy) {
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

TEST_P(StoreTest, InvalidAlertFailsTheWholeBatch) {
    Alert bad = make_alert("s", base_ns(), 2);
    bad.severity = 9;
    auto result = store_->insert({make_alert("s", base_ns(), 1), bad});
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(result.error().message.find("alert 1"), std::string::npos) << result.error().message;
    EXPECT_NE(result.error().message.find(bad.id), std::string::npos) << result.error().message;
    EXPECT_EQ(store_->count().value(), 0U);
}

TEST_P(StoreTest, SinceIsInclusiveUntilIsExclusive) {
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

TEST_P(StoreTest, FiltersBySeverityList) {
    const std::vector<Alert> a = seed();
    AlertQuery q;
    q.severities = {1};
    EXPECT_EQ(ids_of(query_ok(q)), ids_of({a[4], a[0]}));
    q.severities = {2, 4};
    EXPECT_EQ(ids_of(query_ok(q)), ids_of({a[3], a[1]}));
    q.severities = {1, 2, 3, 4};
    EXPECT_EQ(query_ok(q).size(), 5U);
}

TEST_P(StoreTest, FiltersByAgent) {
    const std::vector<Alert> a = seed();
    AlertQuery q;
    q.agent_id = "sensor-b";
    EXPECT_EQ(ids_of(query_ok(q)), ids_of({a[3], a[2]}));
    q.agent_id = "sensor";  // exact match, not a prefix
    EXPECT_TRUE(query_ok(q).empty());
}

TEST_P(StoreTest, SqlMetacharactersInAgentMatchNothingAndHarmNothing) {
    seed();
    for (const char* agent :
         {"' OR '1'='1", "x'; DROP TABLE alerts; --", "%", "_", "\"", "sensor-a' --"}) {
        AlertQuery q;
        q.agent_id = agent;
        EXPECT_TRUE(query_ok(q).empty()) << agent;
    }
    EXPECT_EQ(store_->count().value(), 5U);
}

TEST_P(StoreTest, CombinesFiltersWithAnd) {
    const std::vector<Alert> a = seed();
    AlertQuery q;
    q.agent_id = "sensor-a";
    q.severities = {2, 3};
    q.since_ns = base_ns();
    EXPECT_EQ(ids_of(query_ok(q)), ids_of({a[1]}));
}

TEST_P(StoreTest, LimitKeepsTheNewest) {
    const std::vector<Alert> a = seed();
    AlertQuery q;
    q.limit = 2;
    EXPECT_EQ(ids_of(query_ok(q)), ids_of({a[4], a[3]}));
    q.limit = 1;
    q.agent_id = "sensor-a";
    EXPECT_EQ(ids_of(query_ok(q)), ids_of({a[1]}));
}

TEST_P(StoreTest, EqualTimestampsAreOrderedById) {
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

TEST_P(StoreTest, RefusesBadQueries) {
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

TEST_P(StoreTest, RecordsAppliedMigrations) {
    Poco::Data::Session raw = backend_->raw();
    std::vector<int> versions;
    raw << "SELECT version FROM schema_version ORDER BY version", into(versions), now;
    EXPECT_EQ(versions, backend_->migration_versions());
    EXPECT_EQ(versions.back(), backend_->schema_version());
    Poco::Int64 indexes = 0;
    raw << backend_->count_alert_indexes_sql(), into(indexes), now;
    EXPECT_EQ(indexes, 3);
}

TEST_P(StoreTest, ReopenKeepsDataAndDoesNotRerunMigrations) {
    const std::vector<Alert> alerts = seed();
    Poco::Int64 applied_before = 0;
    {
        Poco::Data::Session raw = backend_->raw();
        raw << "SELECT applied_ns FROM schema_version WHERE version = 1", into(applied_before), now;
    }
    store_.reset();

    auto reopened = backend_->open();
    ASSERT_TRUE(reopened.ok()) << reopened.error().message;
    store_ = std::move(reopened).value();
    EXPECT_EQ(store_->count().value(), 5U);
    EXPECT_EQ(ids_of(query_ok(AlertQuery{})).front(), alerts.back().id);

    Poco::Data::Session raw = backend_->raw();
    Poco::Int64 rows = 0;
    Poco::Int64 applied_after = 0;
    raw << "SELECT count(*) FROM schema_version", into(rows), now;
    raw << "SELECT applied_ns FROM schema_version WHERE version = 1", into(applied_after), now;
    EXPECT_EQ(rows, static_cast<Poco::Int64>(backend_->migration_versions().size()));
    EXPECT_EQ(applied_after, applied_before);
}

TEST_P(StoreTest, RefusesASchemaNewerThanThisBuild) {
    store_.reset();
    {
        Poco::Data::Session raw = backend_->raw();
        raw << "INSERT INTO schema_version (version, description, applied_ns)"
               " VALUES (99, 'from the future', 0)",
            now;
    }
    auto reopened = backend_->open();
    ASSERT_FALSE(reopened.ok());
    EXPECT_EQ(reopened.error().code, ErrorCode::kUnsupported);
    EXPECT_NE(reopened.error().message.find("99"), std::string::npos) << reopened.error().message;
}

TEST_P(StoreTest, UndecodableRowIsSkippedAndCounted) {
    const std::vector<Alert> a = seed();
    {
        Poco::Data::Session raw = backend_->raw();
        // The id is a UUID this test made, safe to splice; the placeholder syntax differs.
        raw << backend_->corrupt_alert_sql(a[2].id), now;
    }
    std::vector<Alert> back = query_ok(AlertQuery{});
    EXPECT_EQ(ids_of(back), ids_of({a[4], a[3], a[1], a[0]}));
    EXPECT_EQ(store_->undecodable_rows(), 1U);
}

TEST_P(StoreTest, QueriesWhileAnotherThreadInserts) {
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

TEST_P(StoreTest, FirstHeartbeatMakesAnOnlineAgentAndAnEvent) {
    const std::int64_t t0 = base_ns();
    ASSERT_TRUE(store_->record_heartbeat(heartbeat("plc-gw-1", 1), t0).ok());
    auto agent = store_->agent("plc-gw-1");
    ASSERT_TRUE(agent.ok()) << agent.error().message;
    ASSERT_TRUE(agent->has_value());
    const AgentStatus& a = **agent;
    EXPECT_EQ(a.state, "online");
    EXPECT_EQ(a.first_seen_ns, t0);
    EXPECT_EQ(a.last_seen_ns, t0);
    EXPECT_EQ(a.state_since_ns, t0);
    common::Heartbeat expected = heartbeat("plc-gw-1", 1);
    EXPECT_EQ(a.last, expected);  // every counter survives the trip
    auto events = store_->agent_events("plc-gw-1", 10);
    ASSERT_TRUE(events.ok()) << events.error().message;
    EXPECT_EQ(*events, (std::vector<AgentEvent>{{t0, "plc-gw-1", "online", "first heartbeat"}}));
}

TEST_P(StoreTest, LaterHeartbeatsUpdateCountersButNotStateSince) {
    const std::int64_t t0 = base_ns();
    ASSERT_TRUE(store_->record_heartbeat(heartbeat("a", 1), t0).ok());
    ASSERT_TRUE(store_->record_heartbeat(heartbeat("a", 2), t0 + kMinuteNs).ok());
    auto agent = store_->agent("a").value();
    ASSERT_TRUE(agent.has_value());
    EXPECT_EQ(agent->first_seen_ns, t0);
    EXPECT_EQ(agent->last_seen_ns, t0 + kMinuteNs);
    EXPECT_EQ(agent->state_since_ns, t0);
    EXPECT_EQ(agent->last.sequence, 2U);
    EXPECT_EQ(agent->last.packets, 2000U);
    EXPECT_EQ(store_->agent_events("a", 10).value().size(), 1U);  // no change, no event
}

TEST_P(StoreTest, StateChangesAreRecordedOnceNewestFirst) {
    const std::int64_t t0 = base_ns();
    ASSERT_TRUE(store_->record_heartbeat(heartbeat("a", 1), t0).ok());
    ASSERT_TRUE(store_->set_agent_state("a", "offline", t0 + 1, "3 missed").ok());
    // Already offline: neither the state time nor the events change.
    ASSERT_TRUE(store_->set_agent_state("a", "offline", t0 + 2, "3 missed again").ok());
    EXPECT_EQ(store_->agent("a").value()->state_since_ns, t0 + 1);
    ASSERT_TRUE(store_->record_heartbeat(heartbeat("a", 2), t0 + 3).ok());
    common::Heartbeat bye = heartbeat("a", 3);
    bye.stopping = true;
    ASSERT_TRUE(store_->record_heartbeat(bye, t0 + 4).ok());

    auto agent = store_->agent("a").value();
    EXPECT_EQ(agent->state, "stopped");
    EXPECT_TRUE(agent->last.stopping);
    EXPECT_EQ(agent->state_since_ns, t0 + 4);
    auto events = store_->agent_events("a", 10);
    ASSERT_TRUE(events.ok()) << events.error().message;
    EXPECT_EQ(*events, (std::vector<AgentEvent>{
                           {t0 + 4, "a", "stopped", "the agent stopped cleanly"},
                           {t0 + 3, "a", "online", "heartbeat after being offline"},
                           {t0 + 1, "a", "offline", "3 missed"},
                           {t0, "a", "online", "first heartbeat"},
                       }));
    EXPECT_EQ(store_->agent_events("a", 2).value().size(), 2U);
    EXPECT_EQ(store_->agent_events("a", 2).value().front().event, "stopped");
    EXPECT_TRUE(store_->agent_events("nobody", 10).value().empty());
}

TEST_P(StoreTest, UnknownAgentIsNotFoundOrAbsent) {
    auto set = store_->set_agent_state("nobody", "offline", base_ns(), "x");
    ASSERT_FALSE(set.ok());
    EXPECT_EQ(set.error().code, ErrorCode::kNotFound);
    EXPECT_NE(set.error().message.find("nobody"), std::string::npos);
    auto agent = store_->agent("nobody");
    ASSERT_TRUE(agent.ok()) << agent.error().message;
    EXPECT_FALSE(agent->has_value());
}

TEST_P(StoreTest, AgentsAreListedById) {
    for (const char* id : {"zulu", "Alpha", "alpha", "mike"}) {
        ASSERT_TRUE(store_->record_heartbeat(heartbeat(id, 1), base_ns()).ok());
    }
    auto agents = store_->agents();
    ASSERT_TRUE(agents.ok()) << agents.error().message;
    std::vector<std::string> ids;
    for (const AgentStatus& a : *agents) ids.push_back(a.id);
    // Bytewise order on both backends: upper case first.
    EXPECT_EQ(ids, (std::vector<std::string>{"Alpha", "alpha", "mike", "zulu"}));
}

TEST_P(StoreTest, AgentIdsWithSqlMetacharactersAreJustIds) {
    const std::string id = "x'); DROP TABLE agents; --";
    ASSERT_TRUE(store_->record_heartbeat(heartbeat(id, 1), base_ns()).ok());
    auto agent = store_->agent(id);
    ASSERT_TRUE(agent.ok()) << agent.error().message;
    ASSERT_TRUE(agent->has_value());
    EXPECT_EQ((*agent)->id, id);
    EXPECT_EQ(store_->agents().value().size(), 1U);
}

// Accounts, sessions, tokens, audit log.

UserAccount account(const std::string& name, Role role) {
    return UserAccount{name, role, "pbkdf2-sha256$1000$00$00", base_ns(), false};
}

TEST_P(StoreTest, AddsAndFindsAccountsListedByName) {
    ASSERT_TRUE(store_->add_user(account("zoe", Role::kAnalyst)).ok());
    ASSERT_TRUE(store_->add_user(account("adam", Role::kAdmin)).ok());
    ASSERT_TRUE(store_->add_user(account("Rita", Role::kRuleAuthor)).ok());
    auto found = store_->find_user("adam");
    ASSERT_TRUE(found.ok()) << found.error().message;
    ASSERT_TRUE(found->has_value());
    EXPECT_EQ(**found, account("adam", Role::kAdmin));
    EXPECT_FALSE(store_->find_user("nobody").value().has_value());
    std::vector<std::string> names;
    std::vector<Role> roles;
    auto listed = store_->users();
    ASSERT_TRUE(listed.ok()) << listed.error().message;
    for (const UserAccount& u : *listed) {
        names.push_back(u.name);
        roles.push_back(u.role);
    }
    EXPECT_EQ(names, (std::vector<std::string>{"Rita", "adam", "zoe"}));
    EXPECT_EQ(roles, (std::vector<Role>{Role::kRuleAuthor, Role::kAdmin, Role::kAnalyst}));
}

TEST_P(StoreTest, RefusesADuplicateOrMalformedAccountName) {
    ASSERT_TRUE(store_->add_user(account("ann", Role::kAnalyst)).ok());
    auto again = store_->add_user(account("ann", Role::kAdmin));
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(again.error().message.find("exists"), std::string::npos) << again.error().message;
    EXPECT_EQ(store_->find_user("ann").value()->role, Role::kAnalyst);
    for (const std::string& bad : {std::string(), std::string("-x"), std::string("a b"),
                                   std::string("x'; DROP TABLE users; --"),
                                   std::string(kMaxUserNameLength + 1, 'a')}) {
        auto refused = store_->add_user(account(bad, Role::kAnalyst));
        ASSERT_FALSE(refused.ok()) << bad;
        EXPECT_EQ(refused.error().code, ErrorCode::kInvalidArgument) << bad;
    }
    EXPECT_EQ(store_->users().value().size(), 1U);
}

TEST_P(StoreTest, SessionsResolveUntilTheyExpireOrEnd) {
    ASSERT_TRUE(store_->add_user(account("ann", Role::kAnalyst)).ok());
    const std::int64_t t0 = base_ns();
    ASSERT_TRUE(store_->add_session("d1", "ann", t0, t0 + 100).ok());
    auto user = store_->session_user("d1", t0 + 50);
    ASSERT_TRUE(user.ok()) << user.error().message;
    ASSERT_TRUE(user->has_value());
    EXPECT_EQ((*user)->name, "ann");
    EXPECT_FALSE(store_->session_user("d1", t0 + 100).value().has_value());  // expired
    EXPECT_FALSE(store_->session_user("other", t0 + 50).value().has_value());

    ASSERT_TRUE(store_->add_session("d2", "ann", t0, t0 + 100).ok());
    ASSERT_TRUE(store_->delete_session("d2").ok());
    EXPECT_FALSE(store_->session_user("d2", t0 + 1).value().has_value());

    auto unknown = store_->add_session("d3", "nobody", t0, t0 + 100);
    ASSERT_FALSE(unknown.ok());
    EXPECT_EQ(unknown.error().code, ErrorCode::kNotFound);
}

TEST_P(StoreTest, SessionLookupNotesLastSeenAndNewSessionsPruneExpiredOnes) {
    ASSERT_TRUE(store_->add_user(account("ann", Role::kAnalyst)).ok());
    const std::int64_t t0 = base_ns();
    ASSERT_TRUE(store_->add_session("old", "ann", t0, t0 + 10).ok());
    ASSERT_TRUE(store_->add_session("live", "ann", t0, t0 + 1000).ok());
    ASSERT_TRUE(store_->session_user("live", t0 + 5).value().has_value());
    Poco::Data::Session raw = backend_->raw();
    Poco::Int64 seen = 0;
    raw << "SELECT last_seen_ns FROM sessions WHERE digest = 'live'", into(seen), now;
    EXPECT_EQ(seen, t0 + 5);
    ASSERT_TRUE(store_->add_session("new", "ann", t0 + 20, t0 + 1000).ok());
    Poco::Int64 rows = 0;
    raw << "SELECT count(*) FROM sessions", into(rows), now;
    EXPECT_EQ(rows, 2);  // "old" is gone
}

TEST_P(StoreTest, DisablingAnAccountEndsItsSessionsAndTokens) {
    ASSERT_TRUE(store_->add_user(account("ann", Role::kAnalyst)).ok());
    const std::int64_t t0 = base_ns();
    ASSERT_TRUE(store_->add_session("s", "ann", t0, t0 + 100).ok());
    ASSERT_TRUE(store_->add_api_token("t", "ann", "ci", t0).ok());
    ASSERT_TRUE(store_->token_user("t", t0 + 1).value().has_value());
    ASSERT_TRUE(store_->set_user_disabled("ann", true).ok());
    EXPECT_TRUE(store_->find_user("ann").value()->disabled);
    EXPECT_FALSE(store_->session_user("s", t0 + 1).value().has_value());
    EXPECT_FALSE(store_->token_user("t", t0 + 1).value().has_value());
    ASSERT_TRUE(store_->set_user_disabled("ann", false).ok());
    EXPECT_TRUE(store_->token_user("t", t0 + 2).value().has_value());
    EXPECT_FALSE(store_->session_user("s", t0 + 2).value().has_value());  // ended for good
    EXPECT_EQ(store_->set_user_disabled("nobody", true).error().code, ErrorCode::kNotFound);
}

TEST_P(StoreTest, TokensResolveToTheirAccountAndNoteLastUse) {
    ASSERT_TRUE(store_->add_user(account("bot", Role::kRuleAuthor)).ok());
    ASSERT_TRUE(store_->add_api_token("tok", "bot", "pipeline", base_ns()).ok());
    auto user = store_->token_user("tok", base_ns() + 7);
    ASSERT_TRUE(user.ok()) << user.error().message;
    ASSERT_TRUE(user->has_value());
    EXPECT_EQ((*user)->role, Role::kRuleAuthor);
    EXPECT_FALSE(store_->token_user("tok2", base_ns()).value().has_value());
    Poco::Data::Session raw = backend_->raw();
    Poco::Int64 used = 0;
    raw << "SELECT last_used_ns FROM api_tokens WHERE digest = 'tok'", into(used), now;
    EXPECT_EQ(used, base_ns() + 7);
    EXPECT_EQ(store_->add_api_token("x", "nobody", "", base_ns()).error().code,
              ErrorCode::kNotFound);
}

TEST_P(StoreTest, PasswordHashCanBeReplaced) {
    ASSERT_TRUE(store_->add_user(account("ann", Role::kAnalyst)).ok());
    ASSERT_TRUE(store_->set_password_hash("ann", "new-hash").ok());
    EXPECT_EQ(store_->find_user("ann").value()->password_hash, "new-hash");
    EXPECT_EQ(store_->set_password_hash("nobody", "h").error().code, ErrorCode::kNotFound);
}

TEST_P(StoreTest, AuditEntriesAreKeptPerTargetOldestFirst) {
    for (int i = 0; i < 5; ++i) {
        ASSERT_TRUE(store_
                        ->append_audit(AuditEntry{base_ns() + i, "ann", "alert.status", "a1",
                                                  "v" + std::to_string(i), "v" + std::to_string(i + 1)})
                        .ok());
    }
    ASSERT_TRUE(store_->append_audit(AuditEntry{base_ns(), "bob", "user.add", "carl", "", "analyst"})
                    .ok());
    auto entries = store_->audit_entries("a1", 3);
    ASSERT_TRUE(entries.ok()) << entries.error().message;
    ASSERT_EQ(entries->size(), 3U);
    EXPECT_EQ(entries->front(),
              (AuditEntry{base_ns() + 2, "ann", "alert.status", "a1", "v2", "v3"}));
    EXPECT_EQ(entries->back().new_value, "v5");
    EXPECT_EQ(store_->audit_entries("carl", 10).value().size(), 1U);
    EXPECT_TRUE(store_->audit_entries("nothing", 10).value().empty());
}

// Triage.

TEST_P(StoreTest, UntriagedAlertsAreNewAndUnknownIdsAreLeftOut) {
    const std::vector<Alert> alerts = seed();
    auto triage = store_->triage_of({alerts[0].id, "no-such-alert"});
    ASSERT_TRUE(triage.ok()) << triage.error().message;
    ASSERT_EQ(triage->size(), 1U);
    EXPECT_EQ(triage->at(alerts[0].id), (AlertTriage{"new", ""}));
}

TEST_P(StoreTest, TriageUpdatesAreAuditedOnlyWhenSomethingChanges) {
    const std::vector<Alert> alerts = seed();
    const std::string id = alerts[1].id;
    auto first = store_->update_triage({id}, {"in_progress", "ann"}, "bob", base_ns());
    ASSERT_TRUE(first.ok()) << first.error().message;
    EXPECT_EQ(*first, (std::vector<AuditEntry>{
                          {base_ns(), "bob", "alert.status", id, "new", "in_progress"},
                          {base_ns(), "bob", "alert.assignee", id, "", "ann"}}));
    auto same = store_->update_triage({id}, {"in_progress", std::nullopt}, "bob", base_ns() + 1);
    ASSERT_TRUE(same.ok());
    EXPECT_TRUE(same->empty());
    ASSERT_TRUE(store_->update_triage({id}, {"resolved", std::nullopt}, "ann", base_ns() + 2).ok());
    EXPECT_EQ(store_->triage_of({id}).value().at(id), (AlertTriage{"resolved", "ann"}));
    auto audit = store_->audit_entries(id, 10).value();
    ASSERT_EQ(audit.size(), 3U);
    EXPECT_EQ(audit.back(), (AuditEntry{base_ns() + 2, "ann", "alert.status", id, "in_progress",
                                        "resolved"}));
}

TEST_P(StoreTest, BulkTriageIsAllOrNothing) {
    const std::vector<Alert> alerts = seed();
    auto refused = store_->update_triage({alerts[0].id, "missing-id"}, {"escalated", std::nullopt},
                                         "bob", base_ns());
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.error().code, ErrorCode::kNotFound);
    EXPECT_NE(refused.error().message.find("missing-id"), std::string::npos);
    EXPECT_EQ(store_->triage_of({alerts[0].id}).value().at(alerts[0].id).status, "new");
    EXPECT_TRUE(store_->audit_entries(alerts[0].id, 10).value().empty());

    auto bad = store_->update_triage({alerts[0].id}, {"closed", std::nullopt}, "bob", base_ns());
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);

    auto bulk = store_->update_triage({alerts[0].id, alerts[2].id, alerts[0].id},
                                      {"false_positive", std::nullopt}, "bob", base_ns());
    ASSERT_TRUE(bulk.ok()) << bulk.error().message;
    EXPECT_EQ(bulk->size(), 2U) << "a repeated id changes once";
}

TEST_P(StoreTest, QueryFiltersByTriageStatusAndAssignee) {
    const std::vector<Alert> alerts = seed();
    ASSERT_TRUE(store_->update_triage({alerts[1].id, alerts[3].id}, {"escalated", "ann"}, "bob",
                                      base_ns())
                    .ok());
    ASSERT_TRUE(store_->update_triage({alerts[3].id}, {std::nullopt, "carl"}, "bob", base_ns()).ok());
    AlertQuery q;
    q.status = "escalated";
    EXPECT_EQ(ids_of(query_ok(q)), (std::vector<std::string>{alerts[3].id, alerts[1].id}));
    q.status = "new";
    EXPECT_EQ(ids_of(query_ok(q)),
              (std::vector<std::string>{alerts[4].id, alerts[2].id, alerts[0].id}));
    q.status.reset();
    q.assignee = "ann";
    EXPECT_EQ(ids_of(query_ok(q)), (std::vector<std::string>{alerts[1].id}));
    q.alert_id = alerts[2].id;
    EXPECT_TRUE(query_ok(q).empty());
    q.assignee.reset();
    EXPECT_EQ(ids_of(query_ok(q)), (std::vector<std::string>{alerts[2].id}));
}

TEST_P(StoreTest, CommentsAreKeptInOrderAndAudited) {
    const std::vector<Alert> alerts = seed();
    const std::string id = alerts[0].id;
    ASSERT_TRUE(store_->add_comment(id, {base_ns(), "ann", "looks like a scan"}).ok());
    ASSERT_TRUE(store_->add_comment(id, {base_ns() + 1, "bob", "blocked at the edge"}).ok());
    EXPECT_EQ(store_->comments(id).value(),
              (std::vector<AlertComment>{{base_ns(), "ann", "looks like a scan"},
                                         {base_ns() + 1, "bob", "blocked at the edge"}}));
    EXPECT_EQ(store_->audit_entries(id, 10).value().size(), 2U);
    EXPECT_EQ(store_->add_comment("missing-id", {base_ns(), "ann", "x"}).error().code,
              ErrorCode::kNotFound);
    EXPECT_TRUE(store_->comments(alerts[1].id).value().empty());
}
}  // namespace
}  // namespace senningen::collector
