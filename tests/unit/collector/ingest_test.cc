// Ingest with a real SQLite store and a transport whose peer is the test: what gets stored and
// acknowledged, what is refused, and how heartbeats turn into agent states.
#include "senningen/collector/ingest.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <thread>

#include <broker/data.hh>

#include "alert_factory.h"
#include "senningen/collector/ca.h"
#include "senningen/collector/sqlite_store.h"
#include "senningen/common/broker_codec.h"

namespace senningen::collector {
namespace {

using namespace std::chrono_literals;

class InjectTransport final : public common::Transport {
public:
    common::Result<std::uint16_t> listen(const std::string&, std::uint16_t) override {
        return std::uint16_t{1};
    }
    void connect(const std::string&, std::uint16_t) override {}
    void send(const common::AlertBatch&) override {}
    void send(const common::MetadataBatch&) override {}
    void send(const common::BatchAck& ack) override { acks.push_back(ack); }
    void send(const common::Heartbeat&) override {}
    std::vector<common::Inbound> receive(std::chrono::milliseconds) override {
        return std::exchange(inbox, {});
    }
    std::size_t peer_count() const override { return 1; }
    bool ready_to_send() const override { return true; }

    std::vector<common::Inbound> inbox;
    std::vector<common::BatchAck> acks;
};

class IngestTest : public ::testing::Test {
protected:
    void SetUp() override {
        char dir_template[] = "/tmp/senningen-ingest-XXXXXX";
        ASSERT_NE(::mkdtemp(dir_template), nullptr);
        dir_ = dir_template;
        store_ = open_sqlite_store(dir_ + "/alerts.db").value();
        ASSERT_TRUE(init_ca(dir_ + "/ca", 30).ok());
        const CaPaths p{dir_ + "/ca"};
        verifier_ = common::PeerVerifier::create(p.ca_certificate(), p.crl()).value();
    }
    void TearDown() override {
        store_.reset();
        std::filesystem::remove_all(dir_);
    }
    std::shared_ptr<common::Signer> enroll(const std::string& name) {
        const std::int64_t now = std::time(nullptr);
        auto issued = issue_agent_certificate(dir_ + "/ca", name, now - 60, now + 86400).value();
        std::ofstream(dir_ + "/" + name + ".crt") << issued.certificate_pem;
        std::ofstream(dir_ + "/" + name + ".key") << issued.key_pem;
        return common::Signer::load(dir_ + "/" + name + ".crt", dir_ + "/" + name + ".key").value();
    }
    static common::AlertBatch batch(const std::string& agent, int n, std::uint64_t id = 1) {
        common::AlertBatch b;
        b.agent_id = agent;
        b.batch_id = id;
        for (int i = 0; i < n; ++i) b.alerts.push_back(testing::network_alert(agent));
        return b;
    }

    std::string dir_;
    std::unique_ptr<AlertStore> store_;
    std::unique_ptr<common::PeerVerifier> verifier_;
    InjectTransport transport_;
};

TEST_F(IngestTest, StoresAndAcknowledgesAnAuthenticatedBatchOnce) {
    Ingest ingest(transport_, *store_, verifier_.get());
    auto signer = enroll("agent-a");
    auto b = batch("agent-a", 3);
    ASSERT_TRUE(signer->sign(b).ok());
    transport_.inbox = {b, b};  // a resend after a lost ack
    ingest.poll(0ms);
    ingest.flush();
    ASSERT_EQ(transport_.acks.size(), 2u);
    EXPECT_EQ(transport_.acks[0].inserted, 3u);
    EXPECT_EQ(transport_.acks[1].duplicates, 3u);
    EXPECT_EQ(store_->count().value(), 3u);
}

TEST_F(IngestTest, RefusesABatchClaimingAnotherAgentsId) {
    Ingest ingest(transport_, *store_, verifier_.get());
    auto signer = enroll("agent-a");
    auto b = batch("agent-b", 2);
    ASSERT_TRUE(signer->sign(b).ok());
    transport_.inbox = {b};
    ingest.poll(0ms);
    ingest.flush();
    EXPECT_TRUE(transport_.acks.empty());
    EXPECT_EQ(store_->count().value(), 0u);
    EXPECT_EQ(ingest.counters().messages_refused, 1u);
}

TEST_F(IngestTest, RefusesUnsignedBatchesWhenAuthenticating) {
    Ingest ingest(transport_, *store_, verifier_.get());
    transport_.inbox = {batch("agent-a", 2)};
    ingest.poll(0ms);
    ingest.flush();
    EXPECT_TRUE(transport_.acks.empty());
    EXPECT_EQ(ingest.counters().messages_refused, 1u);
}

TEST_F(IngestTest, InsecureModeTakesTheIdFromTheMessage) {
    Ingest ingest(transport_, *store_, nullptr);
    transport_.inbox = {batch("lab-agent", 2)};
    ingest.poll(0ms);
    ingest.flush();
    ASSERT_EQ(transport_.acks.size(), 1u);
    EXPECT_EQ(transport_.acks[0].agent_id, "lab-agent");
}

TEST_F(IngestTest, BatchesThatArriveTogetherShareOneTransaction) {
    Ingest ingest(transport_, *store_, verifier_.get());
    auto signer_a = enroll("agent-a");
    auto signer_b = enroll("agent-b");
    auto a1 = batch("agent-a", 4, 1);
    auto a2 = batch("agent-a", 2, 2);
    auto b1 = batch("agent-b", 3, 7);
    ASSERT_TRUE(signer_a->sign(a1).ok());
    ASSERT_TRUE(signer_a->sign(a2).ok());
    ASSERT_TRUE(signer_b->sign(b1).ok());
    auto forged = batch("agent-b", 5, 8);
    ASSERT_TRUE(signer_a->sign(forged).ok());  // agent-a speaking for agent-b: refused
    transport_.inbox = {a1, b1, forged, a2};
    ingest.poll(0ms);
    ingest.flush();
    ASSERT_EQ(transport_.acks.size(), 3u);
    EXPECT_EQ(transport_.acks[0].agent_id, "agent-a");
    EXPECT_EQ(transport_.acks[0].batch_id, 1u);
    EXPECT_EQ(transport_.acks[0].inserted, 4u);
    EXPECT_EQ(transport_.acks[1].agent_id, "agent-b");
    EXPECT_EQ(transport_.acks[1].batch_id, 7u);
    EXPECT_EQ(transport_.acks[1].inserted, 3u);
    EXPECT_EQ(transport_.acks[2].batch_id, 2u);
    EXPECT_EQ(transport_.acks[2].inserted, 2u);
    EXPECT_EQ(store_->count().value(), 9u);
    const IngestCounters c = ingest.counters();
    EXPECT_EQ(c.transactions, 1u);
    EXPECT_EQ(c.batches, 3u);
    EXPECT_EQ(c.alerts_inserted, 9u);
    EXPECT_EQ(c.messages_refused, 1u);
}

// A rolling upgrade: agents of the previous release send version 2 batches, upgraded ones
// version 3 (records); both come through the Broker codec, are stored and acknowledged.
TEST_F(IngestTest, StoresBatchesOfWireVersions2And3) {
    Ingest ingest(transport_, *store_, verifier_.get());
    auto old_agent = enroll("agent-old");
    auto new_agent = enroll("agent-new");
    auto b2 = batch("agent-old", 2, 1);
    b2.wire_version = 2;
    auto b3 = batch("agent-new", 3, 1);
    ASSERT_TRUE(old_agent->sign(b2).ok());
    ASSERT_TRUE(new_agent->sign(b3).ok());
    auto in2 = common::batch_from_broker(common::to_broker(b2));
    auto in3 = common::batch_from_broker(common::to_broker(b3));
    ASSERT_TRUE(in2.ok() && in3.ok());
    transport_.inbox = {*in2, *in3};
    ingest.poll(0ms);
    ingest.flush();
    ASSERT_EQ(transport_.acks.size(), 2u);
    EXPECT_EQ(transport_.acks[0].inserted, 2u);
    EXPECT_EQ(transport_.acks[1].inserted, 3u);
    AlertQuery q;
    q.agent_id = "agent-new";
    auto stored = store_->query(q);
    ASSERT_TRUE(stored.ok());
    ASSERT_EQ(stored->size(), 3u);
    for (const common::Alert& a : *stored) {  // the records stored as sent read back whole
        const auto sent = std::find_if(b3.alerts.begin(), b3.alerts.end(),
                                       [&](const common::Alert& s) { return s.id == a.id; });
        ASSERT_NE(sent, b3.alerts.end()) << a.id;
        EXPECT_EQ(a, *sent);
    }
    EXPECT_EQ(store_->count().value(), 5u);
}

TEST_F(IngestTest, AGroupHoldsAtMostkMaxGroupAlerts) {
    Ingest ingest(transport_, *store_, nullptr);
    const int half = static_cast<int>(kMaxGroupAlerts / 2);
    transport_.inbox = {batch("lab", half, 1), batch("lab", half, 2), batch("lab", 1, 3)};
    ingest.poll(0ms);
    ingest.flush();
    ASSERT_EQ(transport_.acks.size(), 3u);
    EXPECT_EQ(ingest.counters().transactions, 2u);  // the first two fill a group
    EXPECT_EQ(store_->count().value(), kMaxGroupAlerts + 1);
}

// A store that refuses every write, to see what ingest does then.
class BrokenStore final : public AlertStore {
public:
    common::Result<InsertResult> insert(const std::vector<common::Alert>&) override {
        return common::make_error(common::ErrorCode::kDatabase, "disk on fire");
    }
    common::Result<std::vector<common::Alert>> query(const AlertQuery&) override {
        return std::vector<common::Alert>{};
    }
    common::Result<std::uint64_t> count() override { return std::uint64_t{0}; }
    std::uint64_t undecodable_rows() const override { return 0; }
    std::string backend_name() const override { return "broken"; }
};

TEST_F(IngestTest, AStoreErrorAcknowledgesNoBatchOfTheGroup) {
    BrokenStore broken;
    Ingest ingest(transport_, broken, nullptr);
    transport_.inbox = {batch("lab", 2, 1), batch("lab", 3, 2)};
    ingest.poll(0ms);
    ingest.flush();
    EXPECT_TRUE(transport_.acks.empty());
    EXPECT_EQ(ingest.counters().store_errors, 2u);
    EXPECT_EQ(ingest.counters().alerts_inserted, 0u);
}

TEST_F(IngestTest, HeartbeatsMakeAnAgentOnlineAndSilenceMakesItOffline) {
    Ingest ingest(transport_, *store_, verifier_.get());
    auto signer = enroll("agent-h");
    common::Heartbeat hb;
    hb.agent_id = "agent-h";
    hb.sequence = 1;
    hb.interval_s = 1;
    hb.packets = 100;
    hb.queue_depth = 5;
    ASSERT_TRUE(signer->sign(hb).ok());
    transport_.inbox = {hb};
    ingest.poll(0ms);
    ingest.flush();
    auto a = store_->agent("agent-h").value();
    ASSERT_TRUE(a.has_value());
    EXPECT_EQ(a->state, "online");
    EXPECT_EQ(a->last.packets, 100u);
    EXPECT_EQ(a->last.queue_depth, 5u);

    // Three missed heartbeats of 1 s each.
    const auto deadline = std::chrono::steady_clock::now() + 8s;
    while (std::chrono::steady_clock::now() < deadline &&
           store_->agent("agent-h").value()->state != "offline") {
        ingest.poll(100ms);
        std::this_thread::sleep_for(100ms);
    }
    EXPECT_EQ(store_->agent("agent-h").value()->state, "offline");
    EXPECT_EQ(ingest.counters().agents_marked_offline, 1u);
    auto events = store_->agent_events("agent-h", 10).value();
    ASSERT_EQ(events.size(), 2u);
    EXPECT_EQ(events[0].event, "offline");  // newest first
    EXPECT_NE(events[0].detail.find("3 missed"), std::string::npos);
    EXPECT_EQ(events[1].event, "online");

    // A heartbeat brings it back; a farewell makes it stopped, not offline.
    hb.sequence = 2;
    ASSERT_TRUE(signer->sign(hb).ok());
    transport_.inbox = {hb};
    ingest.poll(0ms);
    ingest.flush();
    EXPECT_EQ(store_->agent("agent-h").value()->state, "online");
    hb.sequence = 3;
    hb.stopping = true;
    ASSERT_TRUE(signer->sign(hb).ok());
    transport_.inbox = {hb};
    ingest.poll(0ms);
    ingest.flush();
    EXPECT_EQ(store_->agent("agent-h").value()->state, "stopped");
    EXPECT_EQ(store_->agents().value().size(), 1u);
}

TEST_F(IngestTest, AForgedHeartbeatIsRefused) {
    Ingest ingest(transport_, *store_, verifier_.get());
    auto signer = enroll("agent-a");
    common::Heartbeat hb;
    hb.agent_id = "agent-b";
    ASSERT_TRUE(signer->sign(hb).ok());
    transport_.inbox = {hb};
    ingest.poll(0ms);
    ingest.flush();
    EXPECT_TRUE(store_->agents().value().empty());
    EXPECT_EQ(ingest.counters().messages_refused, 1u);
}

}  // namespace
}  // namespace senningen::collector

namespace senningen::collector {
namespace {

common::MetadataBatch metadata_batch(const std::string& agent, std::vector<std::string> records,
                                     std::uint64_t id) {
    common::MetadataBatch b;
    b.agent_id = agent;
    b.batch_id = id;
    b.records = std::move(records);
    return b;
}

const std::string kGoodDns =
    R"({"timestamp":"2026-01-15T10:00:00Z","flow_id":1,"event_type":"dns","src_ip":"192.0.2.20",)"
    R"("dest_ip":"192.0.2.1","dns":{"queries":[{"rrname":"c2.bad-vendor.example"}]}})";

TEST_F(IngestTest, StoresMetadataRefusingBadRecordsByReasonAndAcknowledgesInArrivalOrder) {
    Ingest ingest(transport_, *store_, verifier_.get());
    auto signer = enroll("agent-a");
    auto alerts = batch("agent-a", 2, 10);
    auto metadata = metadata_batch(
        "agent-a",
        {kGoodDns, "{not json", "[1]", R"({"event_type":"dns","timestamp":"soon"})",
         std::string(kMaxMetadataRecordBytes + 1, ' '), kGoodDns /* repeated: one copy */},
        11);
    auto later = batch("agent-a", 1, 12);
    ASSERT_TRUE(signer->sign(alerts).ok());
    ASSERT_TRUE(signer->sign(metadata).ok());
    ASSERT_TRUE(signer->sign(later).ok());
    auto forged = metadata_batch("agent-b", {kGoodDns}, 13);
    ASSERT_TRUE(signer->sign(forged).ok());  // agent-a speaking for agent-b: refused
    transport_.inbox = {alerts, metadata, later, forged};
    ingest.poll(0ms);
    ingest.flush();
    ASSERT_EQ(transport_.acks.size(), 3u);
    EXPECT_EQ(transport_.acks[0].batch_id, 10u);
    EXPECT_EQ(transport_.acks[1].batch_id, 11u);
    EXPECT_EQ(transport_.acks[2].batch_id, 12u);
    EXPECT_EQ(transport_.acks[1].inserted, 1u);
    EXPECT_EQ(transport_.acks[1].duplicates, 1u);
    EXPECT_EQ(transport_.acks[1].rejected, 4u);
    const IngestCounters c = ingest.counters();
    EXPECT_EQ(c.metadata_batches, 1u);
    EXPECT_EQ(c.metadata_inserted, 1u);
    EXPECT_EQ(c.metadata_refused, 4u);
    EXPECT_EQ(c.metadata_refused_by[static_cast<std::size_t>(MetadataProblem::kNotJson)], 1u);
    EXPECT_EQ(c.metadata_refused_by[static_cast<std::size_t>(MetadataProblem::kNotObject)], 1u);
    EXPECT_EQ(c.metadata_refused_by[static_cast<std::size_t>(MetadataProblem::kBadTimestamp)], 1u);
    EXPECT_EQ(c.metadata_refused_by[static_cast<std::size_t>(MetadataProblem::kOversize)], 1u);
    EXPECT_EQ(c.messages_refused, 1u);
    EXPECT_EQ(store_->count().value(), 3u);
    EXPECT_EQ(store_->metadata_count().value(), 1u);
    MetadataQuery q;
    q.value = "c2.bad-vendor.example";
    auto found = store_->hunt_metadata(q);
    ASSERT_TRUE(found.ok());
    ASSERT_EQ(found->size(), 1u);
    EXPECT_EQ((*found)[0].agent_id, "agent-a");
}

}  // namespace
}  // namespace senningen::collector
