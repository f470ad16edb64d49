// Aggregation and grouping of alerts, on every store backend (store_backends.h): counts from
// the hourly rollup must equal counts over the alerts themselves, whatever the data and filters.
#include <Poco/Data/Session.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "store_backends.h"
#include "test_alerts.h"

namespace senningen::collector {
namespace {

using common::Alert;
using common::ErrorCode;
using Poco::Data::Keywords::now;
using test::base_ns;
using test::kMinuteNs;
using test::make_alert;

Alert with_rule(Alert a, const std::string& rule) {
    a.rule = rule;
    return a;
}

Alert with_dest(Alert a, const std::string& dest) {
    a.network->dest_ip = dest;
    return a;
}

Alert file_alert(const std::string& agent, std::int64_t ts, int severity, const std::string& path) {
    Alert a = make_alert(agent, ts, severity);
    a.kind = common::AlertKind::kFile;
    a.source = common::RuleSource::kYara;
    a.network.reset();
    common::FileContext f;
    f.path = path;
    f.size = 42;
    f.sha256 = std::string(64, 'a');
    a.file = f;
    return a;
}

class AggregateTest : public test::BackendTest {
protected:
    void insert(const std::vector<Alert>& alerts) {
        auto r = store_->insert(alerts);
        ASSERT_TRUE(r.ok()) << r.error().message;
    }

    AggregateResult aggregate(const AggregateQuery& q) {
        auto r = store_->aggregate(q);
        EXPECT_TRUE(r.ok()) << r.error().message;
        return r.ok() ? *r : AggregateResult{};
    }

    std::vector<AlertGroup> groups(const GroupQuery& q) {
        auto r = store_->groups(q);
        EXPECT_TRUE(r.ok()) << r.error().message;
        return r.ok() ? *r : std::vector<AlertGroup>{};
    }
};

constexpr std::int64_t kHour = kHourNs;

TEST_P(AggregateTest, HourlyCountsAreSplitBySeverityOldestHourFirst) {
    insert({make_alert("a", base_ns() + 5 * kMinuteNs, 1),
            make_alert("a", base_ns() + 6 * kMinuteNs, 1),
            make_alert("b", base_ns() + 59 * kMinuteNs, 3),
            make_alert("b", base_ns() + 2 * kHour, 4)});
    AggregateQuery q;
    q.by = AggregateBy::kHour;
    const AggregateResult r = aggregate(q);
    EXPECT_TRUE(r.from_rollup);
    EXPECT_FALSE(r.truncated);
    ASSERT_EQ(r.buckets.size(), 2U);  // hours without alerts are not listed
    EXPECT_EQ(r.buckets[0].hour_ns, base_ns());
    EXPECT_EQ(r.buckets[0].count, 3U);
    EXPECT_EQ(r.buckets[0].severity_counts, (std::array<std::uint64_t, 4>{2, 0, 1, 0}));
    EXPECT_EQ(r.buckets[1].hour_ns, base_ns() + 2 * kHour);
    EXPECT_EQ(r.buckets[1].severity_counts, (std::array<std::uint64_t, 4>{0, 0, 0, 1}));

    // The limit keeps the newest hours.
    q.limit = 1;
    const AggregateResult newest = aggregate(q);
    ASSERT_EQ(newest.buckets.size(), 1U);
    EXPECT_EQ(newest.buckets[0].hour_ns, base_ns() + 2 * kHour);
    EXPECT_TRUE(newest.truncated);
}

TEST_P(AggregateTest, KeysAreByCountDescendingThenKeyAndCappedByTheLimit) {
    insert({with_rule(make_alert("a", base_ns(), 2), "R1"),
            with_rule(make_alert("b", base_ns(), 2), "R2"),
            with_rule(make_alert("b", base_ns() + kHour, 1), "R2"),
            with_rule(make_alert("c", base_ns(), 2), "R3")});
    AggregateQuery q;
    q.by = AggregateBy::kRule;
    AggregateResult r = aggregate(q);
    ASSERT_EQ(r.buckets.size(), 3U);
    EXPECT_EQ(r.buckets[0].key, "R2");
    EXPECT_EQ(r.buckets[0].count, 2U);
    EXPECT_EQ(r.buckets[1].key, "R1");  // ties by key
    EXPECT_EQ(r.buckets[2].key, "R3");
    q.limit = 2;
    r = aggregate(q);
    EXPECT_EQ(r.buckets.size(), 2U);
    EXPECT_TRUE(r.truncated);

    q = {};
    q.by = AggregateBy::kSeverity;
    r = aggregate(q);
    ASSERT_EQ(r.buckets.size(), 2U);
    EXPECT_EQ(r.buckets[0].key, "2");
    EXPECT_EQ(r.buckets[0].count, 3U);
    EXPECT_EQ(r.buckets[1].key, "1");

    q.by = AggregateBy::kAgent;
    q.filter.severities = {2};
    r = aggregate(q);
    ASSERT_EQ(r.buckets.size(), 3U);
    EXPECT_EQ(r.buckets[0].key, "a");
    EXPECT_EQ(r.buckets[0].count, 1U);
}

TEST_P(AggregateTest, FiltersTheRollupCannotAnswerCountTheAlerts) {
    const std::vector<Alert> alerts = {make_alert("a", base_ns(), 1), make_alert("a", base_ns(), 2),
                                       make_alert("b", base_ns() + 90 * kMinuteNs, 3)};
    insert(alerts);
    ASSERT_TRUE(store_
                    ->update_triage({alerts[1].id}, {std::string("resolved"), std::nullopt},
                                    "tester", base_ns())
                    .ok());
    AggregateQuery q;
    q.by = AggregateBy::kHour;
    q.filter.status = "new";
    AggregateResult r = aggregate(q);
    EXPECT_FALSE(r.from_rollup);
    ASSERT_EQ(r.buckets.size(), 2U);
    EXPECT_EQ(r.buckets[0].count, 1U);
    EXPECT_EQ(r.buckets[0].severity_counts[0], 1U);

    // A range without a whole minute inside is counted over the alerts; whole minutes come
    // from the per-minute totals, whole hours from the hourly ones, the rest from the alerts.
    q = {};
    q.by = AggregateBy::kHour;
    q.filter.since_ns = base_ns() - 30'000'000'000;
    q.filter.until_ns = base_ns() + 30'000'000'000;
    r = aggregate(q);
    EXPECT_FALSE(r.from_rollup);
    ASSERT_EQ(r.buckets.size(), 1U);
    EXPECT_EQ(r.buckets[0].count, 2U);
    q.filter.since_ns = base_ns() + 30 * kMinuteNs;
    q.filter.until_ns = base_ns() + 100 * kMinuteNs;
    r = aggregate(q);
    EXPECT_TRUE(r.from_rollup);
    ASSERT_EQ(r.buckets.size(), 1U);
    EXPECT_EQ(r.buckets[0].hour_ns, base_ns() + kHour);
    EXPECT_EQ(r.buckets[0].count, 1U);
    q.filter.agent_id = "b";  // not in the per-minute totals
    r = aggregate(q);
    EXPECT_FALSE(r.from_rollup);
    EXPECT_EQ(r.buckets.size(), 1U);
    q.filter.agent_id.reset();

    q.filter.since_ns = base_ns() - 30 * kMinuteNs;
    r = aggregate(q);
    EXPECT_TRUE(r.from_rollup);
    ASSERT_EQ(r.buckets.size(), 2U);
    EXPECT_EQ(r.buckets[0].count, 2U);
    q.by = AggregateBy::kAgent;
    r = aggregate(q);
    EXPECT_TRUE(r.from_rollup);
    ASSERT_EQ(r.buckets.size(), 2U);
    EXPECT_EQ(r.buckets[0].key, "a");
    EXPECT_EQ(r.buckets[0].count, 2U);
}

// The rollup must count exactly what the alerts table holds: random alerts over a few hours,
// inserted in batches with duplicates (repeated within a batch and across batches, which are
// not stored and must not be counted), then every kind of aggregation under random filters,
// both ways, and against a count made here.
TEST_P(AggregateTest, RollupAndScanAgreeOnRandomData) {
    std::mt19937_64 rng(20261128);
    const std::vector<std::string> agents = {"sensor-a", "sensor-b", "sensor-c"};
    const std::vector<std::string> rules = {"R alpha", "R beta", "R gamma", "R delta"};
    std::vector<Alert> stored;
    for (int batch = 0; batch < 8; ++batch) {
        std::vector<Alert> alerts;
        for (int i = 0; i < 60; ++i) {
            // Eight hours around base, at random minutes and nanoseconds.
            const std::int64_t ts = base_ns() - 2 * kHour +
                                    static_cast<std::int64_t>(rng() % (8 * 60)) * kMinuteNs +
                                    static_cast<std::int64_t>(rng() % 1000);
            Alert a =
                make_alert(agents[rng() % agents.size()], ts, 1 + static_cast<int>(rng() % 4));
            a.rule = rules[rng() % rules.size()];
            alerts.push_back(a);
        }
        std::vector<Alert> with_duplicates = alerts;
        with_duplicates.push_back(alerts[3]);  // within the batch
        if (!stored.empty()) with_duplicates.push_back(stored[static_cast<std::size_t>(batch)]);
        auto r = store_->insert_batches({with_duplicates});
        ASSERT_TRUE(r.ok()) << r.error().message;
        EXPECT_EQ(r->front().inserted, alerts.size());
        EXPECT_EQ(r->front().duplicates, with_duplicates.size() - alerts.size());
        stored.insert(stored.end(), alerts.begin(), alerts.end());
    }

    auto expected = [&](const AggregateQuery& q) {
        std::map<std::string, std::uint64_t> keyed;
        std::map<std::int64_t, std::array<std::uint64_t, 4>> hourly;
        for (const Alert& a : stored) {
            const AlertQuery& f = q.filter;
            if (f.since_ns && a.timestamp_ns < *f.since_ns) continue;
            if (f.until_ns && a.timestamp_ns >= *f.until_ns) continue;
            if (!f.severities.empty() && std::find(f.severities.begin(), f.severities.end(),
                                                   a.severity) == f.severities.end()) {
                continue;
            }
            if (f.agent_id && a.agent_id != *f.agent_id) continue;
            switch (q.by) {
                case AggregateBy::kRule: ++keyed[a.rule]; break;
                case AggregateBy::kAgent: ++keyed[a.agent_id]; break;
                case AggregateBy::kSeverity: ++keyed[std::to_string(a.severity)]; break;
                case AggregateBy::kHour:
                    ++hourly[hour_start(a.timestamp_ns)][static_cast<std::size_t>(a.severity - 1)];
                    break;
            }
        }
        AggregateResult out;
        if (q.by == AggregateBy::kHour) {
            for (const auto& [hour, counts] : hourly) {
                AggregateBucket b;
                b.hour_ns = hour;
                b.severity_counts = counts;
                for (auto c : counts) b.count += c;
                out.buckets.push_back(b);
            }
        } else {
            for (const auto& [key, count] : keyed) {
                AggregateBucket b;
                b.key = key;
                b.count = count;
                out.buckets.push_back(b);
            }
            std::stable_sort(out.buckets.begin(), out.buckets.end(),
                             [](const auto& x, const auto& y) { return x.count > y.count; });
        }
        if (out.buckets.size() > q.limit) {  // the most keys, or the newest hours
            if (q.by == AggregateBy::kHour) {
                out.buckets.erase(out.buckets.begin(),
                                  out.buckets.end() - static_cast<std::ptrdiff_t>(q.limit));
            } else {
                out.buckets.resize(q.limit);
            }
        }
        return out.buckets;
    };

    int rollup_answered = 0;
    int in_parts = 0;
    int scanned = 0;
    for (int round = 0; round < 160; ++round) {
        AggregateQuery q;
        q.by = static_cast<AggregateBy>(round % 4);
        q.limit = round % 5 == 0 ? 2 : 1000;
        // Each end on a whole hour or inside one: whole hours only, partial hours only, or
        // whole hours between partial edges (answered in parts).
        // Shape 3: ends on whole minutes (the per-minute totals answer the edge hours).
        const int shape = static_cast<int>(rng() % 4);
        auto edge = [&]() {
            const std::int64_t h =
                base_ns() - 3 * kHour + static_cast<std::int64_t>(rng() % 10) * kHour;
            const bool whole = shape == 0 || (shape == 2 && rng() % 2 == 0);
            const std::int64_t minute = static_cast<std::int64_t>(rng() % 60) * kMinuteNs;
            return whole ? h
                   : shape == 3
                       ? h + minute
                       : h + minute + 1 + static_cast<std::int64_t>(rng() % 59'000'000'000);
        };
        if (rng() % 4 != 0) q.filter.since_ns = edge();
        if (rng() % 4 != 0) q.filter.until_ns = edge();
        if (rng() % 2 == 0) q.filter.severities = {1 + static_cast<int>(rng() % 4)};
        if (rng() % 3 == 0) q.filter.severities.push_back(1 + static_cast<int>(rng() % 4));
        if (rng() % 2 == 0) q.filter.agent_id = agents[rng() % agents.size()];

        const AggregateResult fast = aggregate(q);
        AggregateQuery slow_q = q;
        slow_q.use_rollup = false;
        const AggregateResult slow = aggregate(slow_q);
        const std::optional<std::int64_t>& since = q.filter.since_ns;
        const std::optional<std::int64_t>& until = q.filter.until_ns;
        const bool partial =
            (since && hour_start(*since) != *since) || (until && hour_start(*until) != *until);
        // Partial ends leave the rollup the whole hours between them, if there are any.
        const std::int64_t inner_since = since ? hour_start(*since + kHour - 1) : 0;
        const bool inner = !(since && until && inner_since >= hour_start(*until));
        // Without an agent filter, hourly and per-severity counts also take the whole minutes
        // of partial hours from the per-minute totals.
        const bool minutes =
            !q.filter.agent_id && (q.by == AggregateBy::kHour || q.by == AggregateBy::kSeverity);
        if (!partial || inner) {
            EXPECT_TRUE(fast.from_rollup) << "round " << round;
        } else if (!minutes) {
            EXPECT_FALSE(fast.from_rollup) << "round " << round;
        }
        EXPECT_FALSE(slow.from_rollup);
        if (!fast.from_rollup) {
            ++scanned;
        } else if (partial) {
            ++in_parts;
        } else {
            ++rollup_answered;
        }
        EXPECT_EQ(fast.buckets, slow.buckets) << "round " << round << " by " << to_string(q.by);
        EXPECT_EQ(fast.truncated, slow.truncated) << "round " << round;
        EXPECT_EQ(slow.buckets, expected(q)) << "round " << round << " by " << to_string(q.by);
    }
    EXPECT_GT(rollup_answered, 10);
    EXPECT_GT(in_parts, 5);
    EXPECT_GT(scanned, 5);
}

// A database from before the rollup: the migration counts what is stored and gives every
// alert its target (file paths come out of the encoded alert).
TEST_P(AggregateTest, MigrationBackfillsTheRollupAndTheTargets) {
    const std::vector<Alert> alerts = {make_alert("a", base_ns(), 1),
                                       make_alert("a", base_ns() + kHour, 2),
                                       file_alert("a", base_ns() + 2 * kMinuteNs, 1, "/srv/x.exe"),
                                       file_alert("a", base_ns() + 3 * kMinuteNs, 3, "/srv/x.exe")};
    insert(alerts);
    store_.reset();
    {
        Poco::Data::Session raw = backend_->raw();
        raw << "DROP TABLE alert_counts", now;
        raw << "DROP TABLE alert_hour_counts", now;
        raw << "DROP TABLE alert_minute_counts", now;
        raw << "ALTER TABLE alerts DROP COLUMN target", now;
        // That migration and every later one run again.
        raw << "DELETE FROM schema_version WHERE version >= " +
                   std::to_string(backend_->rollup_migration()),
            now;
    }
    reopen();
    AggregateQuery q;
    q.by = AggregateBy::kHour;
    const AggregateResult r = aggregate(q);
    EXPECT_TRUE(r.from_rollup);
    ASSERT_EQ(r.buckets.size(), 2U);
    EXPECT_EQ(r.buckets[0].severity_counts, (std::array<std::uint64_t, 4>{2, 0, 1, 0}));
    EXPECT_EQ(r.buckets[1].severity_counts, (std::array<std::uint64_t, 4>{0, 1, 0, 0}));
    GroupQuery g;
    const auto found = groups(g);
    ASSERT_EQ(found.size(), 3U);
    std::set<std::string> targets;
    for (const AlertGroup& x : found) targets.insert(x.target);
    EXPECT_EQ(targets, (std::set<std::string>{"10.0.1.20", "/srv/x.exe"}));
    // And new alerts keep being counted after the migration.
    insert({make_alert("b", base_ns() + kHour, 2)});
    EXPECT_EQ(aggregate(q).buckets[1].severity_counts[1], 2U);
}

TEST_P(AggregateTest, RelatedAlertsBecomeOneGroupPerRuleAgentTargetAndWindow) {
    const std::vector<Alert> alerts = {
        make_alert("a", base_ns() + 1 * kMinuteNs, 3),
        make_alert("a", base_ns() + 20 * kMinuteNs, 1),
        make_alert("a", base_ns() + 40 * kMinuteNs, 2),  // newest of the first group
        with_dest(make_alert("a", base_ns() + 41 * kMinuteNs, 4), "10.9.9.9"),  // other target
        make_alert("b", base_ns() + 42 * kMinuteNs, 4),                         // other agent
        make_alert("a", base_ns() + 61 * kMinuteNs, 4),                         // next window
        file_alert("a", base_ns() + 5 * kMinuteNs, 2, "/tmp/dropper"),
        file_alert("a", base_ns() + 6 * kMinuteNs, 2, "/tmp/dropper"),
    };
    insert(alerts);
    ASSERT_TRUE(store_
                    ->update_triage({alerts[0].id}, {std::string("escalated"), std::nullopt},
                                    "tester", base_ns())
                    .ok());
    GroupQuery q;
    auto found = groups(q);
    ASSERT_EQ(found.size(), 5U);
    // Newest activity first.
    EXPECT_EQ(found[0].last_ns, alerts[5].timestamp_ns);
    EXPECT_EQ(found[0].window_start_ns, base_ns() + kHour);
    EXPECT_EQ(found[1].agent_id, "b");
    EXPECT_EQ(found[2].target, "10.9.9.9");
    const AlertGroup& main = found[3];
    EXPECT_EQ(main.agent_id, "a");
    EXPECT_EQ(main.rule, alerts[0].rule);
    EXPECT_EQ(main.target, "10.0.1.20");
    EXPECT_EQ(main.window_start_ns, base_ns());
    EXPECT_EQ(main.count, 3U);
    EXPECT_EQ(main.first_ns, alerts[0].timestamp_ns);
    EXPECT_EQ(main.last_ns, alerts[2].timestamp_ns);
    EXPECT_EQ(main.top_severity, 1);
    EXPECT_EQ(main.newest_id, alerts[2].id);
    EXPECT_EQ(main.status_counts, (std::array<std::uint64_t, 5>{2, 0, 1, 0, 0}));
    EXPECT_EQ(found[4].target, "/tmp/dropper");
    EXPECT_EQ(found[4].count, 2U);

    // A wider window joins the hours; the list's filters apply; the limit cuts.
    q.window_ns = 2 * kHour;
    found = groups(q);
    ASSERT_EQ(found.size(), 4U);
    EXPECT_EQ(found[0].count, 4U);
    q.filter.agent_id = "b";
    EXPECT_EQ(groups(q).size(), 1U);
    q.filter = {};
    q.filter.status = "escalated";
    found = groups(q);
    ASSERT_EQ(found.size(), 1U);
    EXPECT_EQ(found[0].count, 1U);
    q.filter = {};
    q.limit = 2;
    EXPECT_EQ(groups(q).size(), 2U);
}

TEST_P(AggregateTest, BadAggregationsAndGroupingsAreInvalidArguments) {
    AggregateQuery q;
    q.limit = 0;
    EXPECT_EQ(store_->aggregate(q).error().code, ErrorCode::kInvalidArgument);
    q.limit = kMaxAggregateLimit + 1;
    EXPECT_EQ(store_->aggregate(q).error().code, ErrorCode::kInvalidArgument);
    q.limit = 10;
    q.filter.severities = {5};
    EXPECT_EQ(store_->aggregate(q).error().code, ErrorCode::kInvalidArgument);
    GroupQuery g;
    g.window_ns = kMinGroupWindowNs - 1;
    EXPECT_EQ(store_->groups(g).error().code, ErrorCode::kInvalidArgument);
    g.window_ns = kMaxGroupWindowNs + 1;
    EXPECT_EQ(store_->groups(g).error().code, ErrorCode::kInvalidArgument);
    g.window_ns = kHourNs;
    g.limit = 0;
    EXPECT_EQ(store_->groups(g).error().code, ErrorCode::kInvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(Backends, AggregateTest, ::testing::ValuesIn(test::all_backends()),
                         test::backend_param_name);

TEST(Aggregate, HourStartIsFloorAlsoBeforeTheEpoch) {
    EXPECT_EQ(hour_start(0), 0);
    EXPECT_EQ(hour_start(kHourNs - 1), 0);
    EXPECT_EQ(hour_start(kHourNs), kHourNs);
    EXPECT_EQ(hour_start(-1), -kHourNs);
    EXPECT_EQ(hour_start(-kHourNs), -kHourNs);
}

TEST(Aggregate, RollupAnswersOnlyWholeHoursAndItsOwnFilters) {
    AggregateQuery q;
    EXPECT_TRUE(rollup_answers(q));
    q.filter.since_ns = 3 * kHourNs;
    q.filter.until_ns = 5 * kHourNs;
    q.filter.severities = {1, 2};
    q.filter.agent_id = "a";
    q.filter.limit = 7;
    EXPECT_TRUE(rollup_answers(q));
    q.filter.until_ns = 5 * kHourNs + 1;
    EXPECT_FALSE(rollup_answers(q));
    q.filter.until_ns.reset();
    q.filter.status = "new";
    EXPECT_FALSE(rollup_answers(q));
    q.filter.status.reset();
    q.filter.assignee = "x";
    EXPECT_FALSE(rollup_answers(q));
    q.filter.assignee.reset();
    q.filter.alert_id = "x";
    EXPECT_FALSE(rollup_answers(q));
}

}  // namespace
}  // namespace senningen::collector
