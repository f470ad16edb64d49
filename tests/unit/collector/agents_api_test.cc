// GET /api/v1/agents and /api/v1/agents/{id} over a real store (each backend) and a real server.
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/StreamCopier.h>
#include <gtest/gtest.h>

#include "senningen/collector/http_api.h"
#include "api_accounts.h"
#include "store_backends.h"

namespace senningen::collector {
namespace {

// Over every store backend (store_backends.h).
class AgentsApiTest : public ::testing::TestWithParam<test::BackendParam> {
protected:
    void SetUp() override {
        backend_ = GetParam().make();
        if (std::string reason = backend_->skip_reason(); !reason.empty()) GTEST_SKIP() << reason;
        auto opened = backend_->open();
        ASSERT_TRUE(opened.ok()) << opened.error().message;
        store_ = std::move(opened).value();
        authorization_ = test::add_token_account(*store_, "reader", Role::kAnalyst);
        server_ = std::make_unique<ApiServer>(*store_, ApiOptions{});
        port_ = server_->start().value();
    }
    void TearDown() override {
        if (server_) server_->stop();
        server_.reset();
        store_.reset();
    }
    std::pair<int, std::string> get(const std::string& target) {
        Poco::Net::HTTPClientSession session("127.0.0.1", port_);
        Poco::Net::HTTPRequest req(Poco::Net::HTTPRequest::HTTP_GET, target,
                                   Poco::Net::HTTPMessage::HTTP_1_1);
        req.set("Authorization", authorization_);
        session.sendRequest(req);
        Poco::Net::HTTPResponse resp;
        std::string body;
        Poco::StreamCopier::copyToString(session.receiveResponse(resp), body);
        return {static_cast<int>(resp.getStatus()), body};
    }
    static Poco::JSON::Object::Ptr json(const std::string& body) {
        return Poco::JSON::Parser().parse(body).extract<Poco::JSON::Object::Ptr>();
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

    std::unique_ptr<test::StoreBackend> backend_;
    std::string authorization_;
    std::unique_ptr<AlertStore> store_;
    std::unique_ptr<ApiServer> server_;
    std::uint16_t port_ = 0;
};

TEST_P(AgentsApiTest, ListsAgentsByIdWithStateAndCounters) {
    EXPECT_EQ(json(get("/api/v1/agents").second)->getValue<int>("count"), 0);
    heartbeat("zulu", 3, 1'800'000'000'000'000'000);
    heartbeat("alpha", 0, 1'800'000'001'000'000'000);
    auto [status, body] = get("/api/v1/agents");
    ASSERT_EQ(status, 200) << body;
    auto list = json(body)->getArray("agents");
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
    auto [status, body] = get("/api/v1/agents/plc-gw-1");
    ASSERT_EQ(status, 200) << body;
    auto agent = json(body);
    EXPECT_EQ(agent->getValue<std::string>("state"), "offline");
    auto events = agent->getArray("events");
    ASSERT_EQ(events->size(), 2u);
    EXPECT_EQ(events->getObject(0)->getValue<std::string>("event"), "offline");
    EXPECT_NE(events->getObject(0)->getValue<std::string>("detail").find("3 missed"),
              std::string::npos);
    EXPECT_EQ(events->getObject(1)->getValue<std::string>("event"), "online");
}

TEST_P(AgentsApiTest, UnknownAgentsAndParametersAreProblems) {
    auto [status, body] = get("/api/v1/agents/nobody");
    EXPECT_EQ(status, 404);
    EXPECT_NE(body.find("nobody"), std::string::npos);
    EXPECT_EQ(get("/api/v1/agents?limit=3").first, 400);
    EXPECT_FALSE(store_->set_agent_state("nobody", "offline", 1, "x").ok());
}

INSTANTIATE_TEST_SUITE_P(Backends, AgentsApiTest, ::testing::ValuesIn(test::all_backends()),
                         test::backend_param_name);

}  // namespace
}  // namespace senningen::collector
