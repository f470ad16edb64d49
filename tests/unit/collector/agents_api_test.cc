// GET /api/v1/agents and /api/v1/agents/{id} over a real store (each backend) and a real server.
#include <Poco/JSON/Array.h>
#include <gtest/gtest.h>

#include "api_accounts.h"
#include "api_fixture.h"

namespace senningen::collector {
namespace {

class AgentsApiTest : public test::ApiTest {
protected:
    void SetUp() override {
        ApiTest::SetUp();
        if (IsSkipped() || HasFatalFailure()) return;
        authorization_ = test::add_token_account(*store_, "reader", Role::kAnalyst);
        start_server();
    }
    void heartbeat(const std::string& id, std::uint64_t queue_depth, std::int64_t at_ns) {
        common::Heartbeat hb;
        hb.agent_id = id;
        hb.version = "0.1.0";
        hb.pack_version = "sha256:ab";
        hb.interval_s = 30;
        hb.packets = 10;
        hb.queue_depth = queue_depth;
        ASSERT_TRUE(store_->record_heartbeat(hb, at_ns).ok());
    }
};

TEST_P(AgentsApiTest, ListsAgentsByIdWithStateAndCounters) {
    EXPECT_EQ(get("/api/v1/agents").json()->getValue<int>("count"), 0);
    heartbeat("zulu", 3, 1'800'000'000'000'000'000);
    heartbeat("alpha", 0, 1'800'000'001'000'000'000);
    test::ApiResponse r = get("/api/v1/agents");
    ASSERT_EQ(r.status, 200) << r.body;
    auto list = r.json()->getArray("agents");
    ASSERT_EQ(list->size(), 2u);
    EXPECT_EQ(list->getObject(0)->getValue<std::string>("id"), "alpha");
    auto zulu = list->getObject(1);
    EXPECT_EQ(zulu->getValue<std::string>("state"), "online");
    EXPECT_EQ(zulu->getValue<std::string>("rule_pack"), "sha256:ab");
    EXPECT_EQ(zulu->getObject("counters")->getValue<int>("queue_depth"), 3);
    EXPECT_EQ(zulu->getValue<std::string>("last_heartbeat"), "2027-01-15T08:00:00.000000000Z");
}

TEST_P(AgentsApiTest, OneAgentShowsItsStateChangesNewestFirst) {
    heartbeat("plc-gw-1", 0, 1'800'000'000'000'000'000);
    ASSERT_TRUE(store_->set_agent_state("plc-gw-1", "offline", 1'800'000'100'000'000'000,
                                        "no heartbeat for 100 s (3 missed, every 30 s)")
                    .ok());
    test::ApiResponse r = get("/api/v1/agents/plc-gw-1");
    ASSERT_EQ(r.status, 200) << r.body;
    auto agent = r.json();
    EXPECT_EQ(agent->getValue<std::string>("state"), "offline");
    auto events = agent->getArray("events");
    ASSERT_EQ(events->size(), 2u);
    EXPECT_EQ(events->getObject(0)->getValue<std::string>("event"), "offline");
    EXPECT_NE(events->getObject(0)->getValue<std::string>("detail").find("3 missed"),
              std::string::npos);
    EXPECT_EQ(events->getObject(1)->getValue<std::string>("event"), "online");
}

TEST_P(AgentsApiTest, UnknownAgentsAndParametersAreProblems) {
    test::expect_problem(get("/api/v1/agents/nobody"), 404, "nobody");
    EXPECT_EQ(get("/api/v1/agents?limit=3").status, 400);
    EXPECT_FALSE(store_->set_agent_state("nobody", "offline", 1, "x").ok());
}

INSTANTIATE_TEST_SUITE_P(Backends, AgentsApiTest, ::testing::ValuesIn(test::all_backends()),
                         test::backend_param_name);

}  // namespace
}  // namespace senningen::collector
