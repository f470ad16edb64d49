// Over real Broker endpoints with mutual TLS on 127.0.0.1: a correctly enrolled agent's batch
// is stored and acknowledged on its own ack topic; the same agent's batch that claims another
// agent's id passes the TLS handshake (its certificate is the CA's) and is refused by Ingest.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <ctime>
#include <filesystem>
#include <fstream>

#include "alert_factory.h"
#include "senningen/collector/ca.h"
#include "senningen/collector/ingest.h"
#include "senningen/collector/sqlite_store.h"
#include "senningen/common/identity.h"

namespace senningen::collector {
namespace {

using namespace std::chrono_literals;

class TransportSecurityTest : public ::testing::Test {
protected:
    void SetUp() override {
        char dir_template[] = "/tmp/senningen-tls-XXXXXX";
        ASSERT_NE(::mkdtemp(dir_template), nullptr);
        dir_ = dir_template;
        ASSERT_TRUE(init_ca(dir_ + "/ca", 30).ok());
        const CaPaths ca{dir_ + "/ca"};
        store_ = open_sqlite_store(dir_ + "/alerts.db").value();
        verifier_ = common::PeerVerifier::create(ca.ca_certificate(), ca.crl()).value();
        common::TransportOptions to;
        to.role = common::TransportRole::kCollector;
        to.tls = {ca.collector_certificate(), ca.collector_key(), ca.ca_certificate()};
        collector_ = common::make_broker_transport(to).value();
        port_ = collector_->listen("127.0.0.1", 0).value();
        ingest_ = std::make_unique<Ingest>(*collector_, *store_, verifier_.get());

        const std::int64_t now = std::time(nullptr);
        auto issued = issue_agent_certificate(dir_ + "/ca", "agent-a", now - 60, now + 86400);
        std::ofstream(dir_ + "/a.crt") << issued->certificate_pem;
        std::ofstream(dir_ + "/a.key") << issued->key_pem;
        signer_ = common::Signer::load(dir_ + "/a.crt", dir_ + "/a.key").value();
    }
    void TearDown() override {
        ingest_.reset();
        collector_.reset();
        store_.reset();
        std::filesystem::remove_all(dir_);
    }

    // An agent endpoint with agent-a's certificate, listening for acks addressed to ACK_ID.
    std::unique_ptr<common::Transport> agent_endpoint(const std::string& ack_id) {
        common::TransportOptions to;
        to.role = common::TransportRole::kAgent;
        to.agent_id = ack_id;
        to.tls = {dir_ + "/a.crt", dir_ + "/a.key", CaPaths{dir_ + "/ca"}.ca_certificate()};
        auto t = common::make_broker_transport(to).value();
        t->connect("127.0.0.1", port_);
        const auto end = std::chrono::steady_clock::now() + 15s;
        while (std::chrono::steady_clock::now() < end && !t->ready_to_send()) {
            ingest_->poll(20ms);
            t->receive(20ms);
        }
        EXPECT_TRUE(t->ready_to_send());
        return t;
    }

    // Sends BATCH and runs both ends for a while; the acks the agent end received.
    std::vector<common::BatchAck> exchange(common::Transport& agent,
                                           const common::AlertBatch& batch) {
        agent.send(batch);
        std::vector<common::BatchAck> acks;
        const auto end = std::chrono::steady_clock::now() + 3s;
        while (std::chrono::steady_clock::now() < end && acks.empty()) {
            ingest_->poll(20ms);
            for (auto& item : agent.receive(20ms)) {
                if (auto* ack = std::get_if<common::BatchAck>(&item)) acks.push_back(*ack);
            }
        }
        return acks;
    }

    std::string dir_;
    std::unique_ptr<AlertStore> store_;
    std::unique_ptr<common::PeerVerifier> verifier_;
    std::unique_ptr<common::Transport> collector_;
    std::uint16_t port_ = 0;
    std::unique_ptr<Ingest> ingest_;
    std::unique_ptr<common::Signer> signer_;
};

TEST_F(TransportSecurityTest, AnEnrolledAgentsSignedBatchIsStoredAndAcknowledged) {
    auto agent = agent_endpoint("agent-a");
    common::AlertBatch b;
    b.agent_id = "agent-a";
    b.batch_id = 1;
    b.alerts = {testing::network_alert("agent-a")};
    ASSERT_TRUE(signer_->sign(b).ok());
    auto acks = exchange(*agent, b);
    ASSERT_EQ(acks.size(), 1u);
    EXPECT_EQ(acks[0].inserted, 1u);
    EXPECT_EQ(store_->count().value(), 1u);
}

TEST_F(TransportSecurityTest, ABatchClaimingAnotherAgentsIdIsRejected) {
    auto agent = agent_endpoint("agent-b");
    common::AlertBatch b;
    b.agent_id = "agent-b";
    b.batch_id = 1;
    b.alerts = {testing::network_alert("agent-b")};
    ASSERT_TRUE(signer_->sign(b).ok());  // agent-a's key and certificate
    EXPECT_TRUE(exchange(*agent, b).empty());
    EXPECT_EQ(store_->count().value(), 0u);
    EXPECT_EQ(ingest_->counters().messages_refused, 1u);
}

}  // namespace
}  // namespace senningen::collector
