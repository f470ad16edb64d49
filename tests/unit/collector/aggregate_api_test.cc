// GET /api/v1/alerts/aggregate and /api/v1/alerts/groups over every store backend: each
// parameter, its bad values (RFC 7807 problems naming it) and every role.
#include <Poco/JSON/Array.h>
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "api_accounts.h"
#include "api_fixture.h"
#include "test_alerts.h"

namespace senningen::collector {
namespace {

using common::Alert;
using test::base_ns;
using test::kMinuteNs;
using test::make_alert;

using Response = test::ApiResponse;
using test::Parameters;

class AggregateApiTest : public test::ApiTest {
protected:
    void SetUp() override {
        ApiTest::SetUp();
        if (IsSkipped() || HasFatalFailure()) return;
        // Hour 0: 150 alerts of sensor-a (more than a list page), severities 1 and 2; hour 1:
        // sensor-b, one of another rule and target.
        for (int i = 0; i < 150; ++i) {
            alerts_.push_back(make_alert("sensor-a", base_ns() + i * 10'000'000'000LL, 1 + i % 2));
        }
        alerts_.push_back(make_alert("sensor-b", base_ns() + 70 * kMinuteNs, 3));
        Alert other = make_alert("sensor-b", base_ns() + 80 * kMinuteNs, 4);
        other.rule = "SENNINGEN TEST other rule";
        other.network->dest_ip = "192.0.2.7";
        alerts_.push_back(other);
        ASSERT_TRUE(store_->insert(alerts_).ok());
        authorization_ = test::add_token_account(*store_);
        start_server();
    }

    Response aggregate(const Parameters& parameters) {
        return get(test::api_target("/api/v1/alerts/aggregate", parameters));
    }
    Response groups(const Parameters& parameters) {
        return get(test::api_target("/api/v1/alerts/groups", parameters));
    }

    static void expect_problem(const Response& r, const std::string& detail_part) {
        test::expect_problem(r, 400, detail_part);
    }

    std::vector<Alert> alerts_;
};

TEST_P(AggregateApiTest, HourlyCountsCoverEveryMatchingAlertSplitBySeverity) {
    Response r = aggregate({});  // by=hour is the default
    ASSERT_EQ(r.status, 200) << r.body;
    Poco::JSON::Object::Ptr o = r.json();
    EXPECT_EQ(o->getValue<std::string>("by"), "hour");
    EXPECT_EQ(o->getValue<std::string>("source"), "rollup");
    EXPECT_EQ(o->getValue<std::uint64_t>("total"), 152U);
    EXPECT_FALSE(o->getValue<bool>("truncated"));
    Poco::JSON::Array::Ptr buckets = o->getArray("buckets");
    ASSERT_EQ(buckets->size(), 2U);
    Poco::JSON::Object::Ptr first = buckets->getObject(0);
    EXPECT_EQ(first->getValue<std::string>("hour"), "2026-11-28T10:00:00.000000000Z");
    EXPECT_EQ(first->getValue<std::uint64_t>("count"), 150U);
    EXPECT_EQ(first->getObject("severity")->getValue<std::uint64_t>("1"), 75U);
    EXPECT_EQ(first->getObject("severity")->getValue<std::uint64_t>("2"), 75U);
    EXPECT_EQ(first->getObject("severity")->getValue<std::uint64_t>("3"), 0U);
    Poco::JSON::Object::Ptr second = buckets->getObject(1);
    EXPECT_EQ(second->getObject("severity")->getValue<std::uint64_t>("3"), 1U);
    EXPECT_EQ(second->getObject("severity")->getValue<std::uint64_t>("4"), 1U);

    // Whole minutes inside hours come from per-minute totals; a range without a whole minute
    // is counted over the alerts; exact either way.
    r = aggregate({{"by", "hour"}, {"since", "2026-11-28T10:10:00Z"}, {"until", "2026-11-28T11:15:00Z"}});
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.json()->getValue<std::string>("source"), "rollup");
    EXPECT_EQ(r.json()->getValue<std::uint64_t>("total"), 90U + 1U);
    r = aggregate({{"by", "hour"}, {"since", "2026-11-28T10:10:30Z"}, {"until", "2026-11-28T10:11:15Z"}});
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.json()->getValue<std::string>("source"), "alerts");
    EXPECT_EQ(r.json()->getValue<std::uint64_t>("total"), 5U);
}

TEST_P(AggregateApiTest, KeysAndFiltersAndLimit) {
    Response r = aggregate({{"by", "agent"}});
    ASSERT_EQ(r.status, 200) << r.body;
    Poco::JSON::Array::Ptr b = r.json()->getArray("buckets");
    ASSERT_EQ(b->size(), 2U);
    EXPECT_EQ(b->getObject(0)->getValue<std::string>("key"), "sensor-a");
    EXPECT_EQ(b->getObject(0)->getValue<std::uint64_t>("count"), 150U);

    r = aggregate({{"by", "rule"}, {"agent", "sensor-b"}});
    ASSERT_EQ(r.status, 200) << r.body;
    b = r.json()->getArray("buckets");
    ASSERT_EQ(b->size(), 2U);
    EXPECT_EQ(b->getObject(0)->getValue<std::string>("key"), "SENNINGEN TEST modbus write to coil");

    r = aggregate({{"by", "severity"}, {"severity", "3,4"}, {"limit", "1"}});
    ASSERT_EQ(r.status, 200) << r.body;
    b = r.json()->getArray("buckets");
    ASSERT_EQ(b->size(), 1U);
    EXPECT_EQ(b->getObject(0)->getValue<int>("key"), 3);
    EXPECT_TRUE(r.json()->getValue<bool>("truncated"));

    ASSERT_TRUE(store_->update_triage({alerts_[0].id}, {std::string("resolved"), std::nullopt},
                                      "tester", base_ns())
                    .ok());
    r = aggregate({{"by", "agent"}, {"status", "resolved"}});
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.json()->getValue<std::string>("source"), "alerts");
    EXPECT_EQ(r.json()->getValue<std::uint64_t>("total"), 1U);
}

TEST_P(AggregateApiTest, BadAggregationParametersAreProblemsNamingThem) {
    expect_problem(aggregate({{"by", "week"}}), "'by': 'week' is not one of");
    expect_problem(aggregate({{"by", ""}}), "'by'");
    expect_problem(aggregate({{"by", "hour"}, {"by", "rule"}}), "'by' is given more than once");
    expect_problem(aggregate({{"limit", "0"}}), "'limit': '0' is not an integer in 1..10000");
    expect_problem(aggregate({{"limit", "10001"}}), "'limit'");
    expect_problem(aggregate({{"limit", "ten"}}), "'limit'");
    expect_problem(aggregate({{"limit", "-1"}}), "'limit'");
    expect_problem(aggregate({{"severity", "9"}}), "'severity'");
    expect_problem(aggregate({{"since", "yesterday"}}), "'since'");
    expect_problem(aggregate({{"window", "1h"}}), "'window' is not known");
    expect_problem(aggregate({{"agent", "' OR 1=1 --"}, {"agent", "x"}}), "more than once");
    // SQL metacharacters are only values.
    Response r = aggregate({{"by", "rule"}, {"agent", "x' OR '1'='1"}});
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.json()->getValue<std::uint64_t>("total"), 0U);
}

TEST_P(AggregateApiTest, GroupsFoldANoisyRuleIntoOneRowWithCounts) {
    Response r = groups({});
    ASSERT_EQ(r.status, 200) << r.body;
    Poco::JSON::Object::Ptr o = r.json();
    EXPECT_EQ(o->getValue<std::int64_t>("window_seconds"), 3600);
    Poco::JSON::Array::Ptr list = o->getArray("groups");
    ASSERT_EQ(list->size(), 3U);
    EXPECT_EQ(o->getValue<std::uint64_t>("count"), 3U);
    // Newest activity first: the other rule, then sensor-b's, then the noisy one.
    Poco::JSON::Object::Ptr noisy = list->getObject(2);
    EXPECT_EQ(noisy->getValue<std::string>("agent"), "sensor-a");
    EXPECT_EQ(noisy->getValue<std::string>("target"), "10.0.1.20");
    EXPECT_EQ(noisy->getValue<std::uint64_t>("count"), 150U);
    EXPECT_EQ(noisy->getValue<int>("severity"), 1);
    EXPECT_EQ(noisy->getValue<std::string>("window_start"), "2026-11-28T10:00:00.000000000Z");
    EXPECT_EQ(noisy->getValue<std::string>("window_end"), "2026-11-28T11:00:00.000000000Z");
    EXPECT_EQ(noisy->getValue<std::string>("first"), common::format_timestamp(alerts_[0].timestamp_ns));
    EXPECT_EQ(noisy->getValue<std::string>("last"), common::format_timestamp(alerts_[149].timestamp_ns));
    EXPECT_EQ(noisy->getValue<std::string>("newest_id"), alerts_[149].id);
    EXPECT_EQ(noisy->getObject("statuses")->getValue<std::uint64_t>("new"), 150U);
    EXPECT_EQ(list->getObject(0)->getValue<std::string>("target"), "192.0.2.7");

    // A 15-minute window splits the noisy rule's 25 minutes in two; filters apply.
    r = groups({{"window", "15m"}, {"agent", "sensor-a"}});
    ASSERT_EQ(r.status, 200) << r.body;
    list = r.json()->getArray("groups");
    ASSERT_EQ(list->size(), 2U);
    EXPECT_EQ(list->getObject(0)->getValue<std::uint64_t>("count"), 60U);
    EXPECT_EQ(list->getObject(1)->getValue<std::uint64_t>("count"), 90U);
    r = groups({{"window", "1d"}, {"limit", "1"}});
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.json()->getArray("groups")->size(), 1U);
}

TEST_P(AggregateApiTest, BadGroupParametersAreProblemsNamingThem) {
    for (const char* bad : {"0m", "59s", "31d", "1w", "h", "-1h", "1.5h", "", "60", "1hh",
                            "99999999999d"}) {
        expect_problem(groups({{"window", bad}}), "'window'");
    }
    EXPECT_EQ(groups({{"window", "60s"}}).status, 200);
    EXPECT_EQ(groups({{"window", "30d"}}).status, 200);
    expect_problem(groups({{"limit", "0"}}), "'limit'");
    expect_problem(groups({{"limit", "10001"}}), "'limit'");
    expect_problem(groups({{"by", "rule"}}), "'by' is not known");
    expect_problem(groups({{"status", "done"}}), "'status'");
    expect_problem(groups({{"window", "1h"}, {"window", "2h"}}), "more than once");
}

TEST_P(AggregateApiTest, EveryRoleReadsThemAndNobodyWithoutCredentials) {
    for (const auto& [name, role] : {std::pair{"ana", Role::kAnalyst},
                                     std::pair{"rita", Role::kRuleAuthor},
                                     std::pair{"adam", Role::kAdmin}}) {
        const std::string auth = test::add_token_account(*store_, name, role);
        EXPECT_EQ(get("/api/v1/alerts/aggregate?by=rule", auth).status, 200) << name;
        EXPECT_EQ(get("/api/v1/alerts/groups", auth).status, 200) << name;
    }
    for (const std::string path : {"/api/v1/alerts/aggregate", "/api/v1/alerts/groups"}) {
        Response r = get(path, "");
        EXPECT_EQ(r.status, 401) << path;
        EXPECT_EQ(r.content_type, "application/problem+json");
        EXPECT_EQ(get(path, "Bearer snt_not-a-token").status, 401) << path;
    }
}

INSTANTIATE_TEST_SUITE_P(Backends, AggregateApiTest, ::testing::ValuesIn(test::all_backends()),
                         test::backend_param_name);

}  // namespace
}  // namespace senningen::collector
