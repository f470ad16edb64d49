#include "senningen/agent/forward/forwarder.h"

#include <gtest/gtest.h>

#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

#include "alert_factory.h"

namespace senningen::agent {
namespace {

using namespace std::chrono_literals;

// A transport whose peer is the test: it records what is sent and delivers what the test
// injects.
class FakeTransport final : public common::Transport {
public:
    struct State {
        std::mutex mutex;
        std::vector<common::AlertBatch> sent;
        std::vector<common::MetadataBatch> metadata;
        std::vector<common::Heartbeat> heartbeats;
        std::vector<common::Inbound> inbox;
        int connects = 0;
        std::vector<std::chrono::steady_clock::time_point> connect_times;
        bool ready = true;
        std::size_t peers = 0;
    };
    explicit FakeTransport(std::shared_ptr<State> state) : s_(std::move(state)) {}

    common::Result<std::uint16_t> listen(const std::string&, std::uint16_t) override {
        return std::uint16_t{1};
    }
    void connect(const std::string&, std::uint16_t) override {
        const std::lock_guard<std::mutex> lock(s_->mutex);
        ++s_->connects;
        s_->connect_times.push_back(std::chrono::steady_clock::now());
    }
    void send(const common::AlertBatch& batch) override {
        const std::lock_guard<std::mutex> lock(s_->mutex);
        s_->sent.push_back(batch);
    }
    void send(const common::MetadataBatch& batch) override {
        const std::lock_guard<std::mutex> lock(s_->mutex);
        s_->metadata.push_back(batch);
    }
    void send(const common::BatchAck&) override {}
    void send(const common::Heartbeat& hb) override {
        const std::lock_guard<std::mutex> lock(s_->mutex);
        s_->heartbeats.push_back(hb);
    }
    std::vector<common::Inbound> receive(std::chrono::milliseconds timeout) override {
        {
            const std::lock_guard<std::mutex> lock(s_->mutex);
            if (!s_->inbox.empty()) return std::exchange(s_->inbox, {});
        }
        std::this_thread::sleep_for(std::min(timeout, 5ms));
        return {};
    }
    std::size_t peer_count() const override { return s_->peers; }
    bool ready_to_send() const override {
        const std::lock_guard<std::mutex> lock(s_->mutex);
        return s_->ready;
    }

private:
    std::shared_ptr<State> s_;
};

class ForwarderTest : public ::testing::Test {
protected:
    void SetUp() override { state_ = std::make_shared<FakeTransport::State>(); }

    std::unique_ptr<Forwarder> make(ForwarderOptions o = fast_options()) {
        return std::make_unique<Forwarder>(std::make_unique<FakeTransport>(state_), o, "agent-1");
    }
    static ForwarderOptions fast_options() {
        ForwarderOptions o;
        o.batch_size = 3;
        o.resend_after = 200ms;
        o.initial_backoff = 20ms;
        o.max_backoff = 80ms;
        return o;
    }
    void inject(common::Inbound item) {
        const std::lock_guard<std::mutex> lock(state_->mutex);
        state_->inbox.push_back(std::move(item));
    }
    void connect_peer() { inject(common::PeerEvent{common::PeerState::kConnected, "c", ""}); }
    std::vector<common::AlertBatch> sent() {
        const std::lock_guard<std::mutex> lock(state_->mutex);
        return state_->sent;
    }
    template <typename Pred>
    bool eventually(Pred pred, std::chrono::milliseconds limit = 10000ms) {
        const auto end = std::chrono::steady_clock::now() + limit;
        while (std::chrono::steady_clock::now() < end) {
            if (pred()) return true;
            std::this_thread::sleep_for(5ms);
        }
        return pred();
    }
    // Submits n alerts, then connects the peer, and waits for them to go out in full batches.
    // Submitted after connecting, they could be split: a turn of the forwarder may commit and
    // send the first four while the test is still submitting (CI once saw batches of three and
    // one, then a third batch that was not a resend). With every turn committing what is
    // staged, the turn that sees the connection sends all n.
    static ForwarderOptions whole_batch_options() {
        ForwarderOptions o = fast_options();
        o.commit_interval = 0ms;
        return o;
    }
    bool send_in_full_batches(Forwarder& f, std::size_t n) {
        for (std::size_t i = 0; i < n; ++i) f.submit(testing::network_alert("agent-1"));
        connect_peer();
        const std::size_t batches = (n + 2) / 3;
        if (!eventually([&] { return sent().size() >= batches; })) return false;
        const auto out = sent();
        for (std::size_t i = 0; i < batches; ++i) {
            if (out[i].alerts.size() != std::min<std::size_t>(3, n - i * 3)) return false;
        }
        return true;
    }
    void ack(const common::AlertBatch& b) {
        inject(common::BatchAck{"agent-1", b.batch_id, b.alerts.size(), 0, 0});
    }

    std::shared_ptr<FakeTransport::State> state_;
};

TEST_F(ForwarderTest, SendsNothingUntilConnectedThenBatches) {
    auto f = make();
    f->start();
    for (int i = 0; i < 7; ++i) f->submit(testing::network_alert("agent-1"));
    std::this_thread::sleep_for(100ms);
    EXPECT_TRUE(sent().empty());
    EXPECT_EQ(f->pending(), 7u);
    connect_peer();
    ASSERT_TRUE(eventually([&] { return sent().size() == 3; }));
    const auto batches = sent();
    EXPECT_EQ(batches[0].alerts.size(), 3u);
    EXPECT_EQ(batches[2].alerts.size(), 1u);
    EXPECT_EQ(batches[0].agent_id, "agent-1");
    EXPECT_LT(batches[0].batch_id, batches[1].batch_id);
}

TEST_F(ForwarderTest, DrainsOnlyWhenEveryBatchIsAcknowledged) {
    auto f = make(whole_batch_options());
    f->start();
    ASSERT_TRUE(send_in_full_batches(*f, 5));
    ack(sent()[0]);
    EXPECT_FALSE(f->drain(std::chrono::steady_clock::now() + 150ms));
    EXPECT_EQ(f->pending(), 2u);
    ack(sent()[1]);
    EXPECT_TRUE(f->drain(std::chrono::steady_clock::now() + 2s));
    EXPECT_EQ(f->counters().alerts_acked, 5u);
}

TEST_F(ForwarderTest, ResendsUnacknowledgedBatchesWithTheSameIds) {
    auto f = make();
    f->start();
    connect_peer();
    f->submit(testing::network_alert("agent-1"));
    ASSERT_TRUE(eventually([&] { return sent().size() >= 2; }));  // resent after 200 ms
    const auto batches = sent();
    EXPECT_EQ(batches[0], batches[1]);  // same batch id, same alert ids
    EXPECT_GE(f->counters().batches_resent, 1u);
    ack(batches[0]);
    EXPECT_TRUE(f->drain(std::chrono::steady_clock::now() + 2s));
}

// A busy collector answers late but in order: while acknowledgements keep coming, a batch
// that waited longer than resend_after is not sent again (that would only add to its work).
TEST_F(ForwarderTest, DoesNotResendToACollectorThatKeepsAcknowledgingInOrder) {
    // Times wide of a loaded sanitizer build's scheduling delays: the first acknowledgement
    // comes well within resend_after (2 s), which teaches the forwarder acknowledgements take
    // about 1.2 s (a wait of 1.2 + 4 x 0.6 = 3.6 s from then on); the second comes after 2.4 s,
    // past resend_after but within that wait. A fixed resend_after would resend it.
    ForwarderOptions o = whole_batch_options();
    o.resend_after = 2s;
    auto f = make(o);
    f->start();
    ASSERT_TRUE(send_in_full_batches(*f, 6));
    const auto batches = sent();
    std::this_thread::sleep_for(1200ms);
    ack(batches[0]);
    std::this_thread::sleep_for(1200ms);
    ack(batches[1]);
    EXPECT_TRUE(f->drain(std::chrono::steady_clock::now() + 2s));
    EXPECT_EQ(f->counters().batches_resent, 0u);
    EXPECT_EQ(sent().size(), 2u);
}

// A batch whose successor was acknowledged first was lost (or refused): it goes again after
// resend_after although the collector is answering.
TEST_F(ForwarderTest, ResendsABatchOvertakenByALaterOne) {
    auto f = make(whole_batch_options());
    f->start();
    ASSERT_TRUE(send_in_full_batches(*f, 6));
    const auto batches = sent();
    ack(batches[1]);
    ASSERT_TRUE(eventually([&] { return sent().size() == 3; }));
    EXPECT_EQ(sent()[2], batches[0]);
    EXPECT_EQ(f->counters().batches_resent, 1u);
    ack(batches[0]);
    EXPECT_TRUE(f->drain(std::chrono::steady_clock::now() + 2s));
}

TEST_F(ForwarderTest, ResendsEverythingAfterAReconnect) {
    auto o = fast_options();
    o.resend_after = 60s;  // only the reconnect may trigger the resend
    auto f = make(o);
    f->start();
    connect_peer();
    f->submit(testing::network_alert("agent-1"));
    ASSERT_TRUE(eventually([&] { return sent().size() == 1; }));
    inject(common::PeerEvent{common::PeerState::kDisconnected, "c", "peer lost"});
    ASSERT_TRUE(eventually([&] { return !f->connected(); }));
    connect_peer();
    ASSERT_TRUE(eventually([&] { return sent().size() == 2; }));
    EXPECT_EQ(sent()[0], sent()[1]);
}

TEST_F(ForwarderTest, WaitsForThePeersSubscriptionBeforeSending) {
    state_->ready = false;
    auto f = make();
    f->start();
    connect_peer();
    f->submit(testing::network_alert("agent-1"));
    std::this_thread::sleep_for(100ms);
    EXPECT_TRUE(sent().empty());
    {
        const std::lock_guard<std::mutex> lock(state_->mutex);
        state_->ready = true;
    }
    EXPECT_TRUE(eventually([&] { return sent().size() == 1; }));
}

TEST_F(ForwarderTest, RetriesWithBackoffWhileUnreachable) {
    auto f = make();
    f->start();
    ASSERT_TRUE(eventually([&] { return state_->connects >= 1; }));
    // Each refusal schedules the next attempt later; several attempts follow, bounded by the
    // maximum backoff of 80 ms (+25 % jitter).
    for (int i = 0; i < 4; ++i) {
        const int before = [&] {
            const std::lock_guard<std::mutex> lock(state_->mutex);
            return state_->connects;
        }();
        inject(common::PeerEvent{common::PeerState::kUnreachable, "", "refused"});
        ASSERT_TRUE(eventually([&] {
            const std::lock_guard<std::mutex> lock(state_->mutex);
            return state_->connects == before + 1;
        }));
    }
    EXPECT_EQ(f->counters().connect_attempts, 5u);
    EXPECT_FALSE(f->connected());
}

// An attempt that gets no answer (a handshake on a host too loaded to finish it in time) is
// made again with twice the wait, so that it can finish; a connection resets the wait.
TEST_F(ForwarderTest, AnUnansweredAttemptIsRetriedWithALongerWait) {
    auto o = fast_options();
    o.connect_timeout = 100ms;
    o.max_connect_timeout = 400ms;
    auto f = make(o);
    f->start();
    const auto connects = [&] {
        const std::lock_guard<std::mutex> lock(state_->mutex);
        return state_->connect_times;
    };
    ASSERT_TRUE(eventually([&] { return connects().size() >= 5; }));
    auto times = connects();
    // Waits of 100, 200, 400 and 400 ms (at most), each followed by a backoff of 20-100 ms.
    const auto gap = [&](std::size_t i) { return times[i + 1] - times[i]; };
    EXPECT_GE(gap(0), 100ms);
    EXPECT_GE(gap(1), 200ms);
    EXPECT_GE(gap(2), 400ms);
    EXPECT_GE(gap(3), 400ms);
    EXPECT_EQ(f->counters().connect_attempts, times.size());
    // Connected and lost: the next attempt waits the first 100 ms again, not 400.
    connect_peer();
    ASSERT_TRUE(eventually([&] { return f->connected(); }));
    inject(common::PeerEvent{common::PeerState::kDisconnected, "c", "peer lost"});
    const std::size_t before = connects().size();
    ASSERT_TRUE(eventually([&] { return connects().size() >= before + 2; }));
    times = connects();
    EXPECT_LT(times[before + 1] - times[before], 390ms);
    EXPECT_FALSE(f->connected());
}

TEST_F(ForwarderTest, SubmitBlocksWhenThePendingSetIsFull) {
    auto o = fast_options();
    o.max_pending_alerts = 2;
    auto f = make(o);
    f->start();
    f->submit(testing::network_alert("agent-1"));
    f->submit(testing::network_alert("agent-1"));
    std::atomic<bool> third_in{false};
    std::thread producer([&] {
        f->submit(testing::network_alert("agent-1"));
        third_in = true;
    });
    std::this_thread::sleep_for(150ms);
    EXPECT_FALSE(third_in.load());  // back-pressure: the producer waits
    connect_peer();
    ASSERT_TRUE(eventually([&] { return !sent().empty(); }));
    ack(sent()[0]);
    EXPECT_TRUE(eventually([&] { return third_in.load(); }));
    producer.join();
}

TEST_F(ForwarderTest, IgnoresAcksForOtherAgentsAndUnknownBatches) {
    auto f = make();
    f->start();
    connect_peer();
    f->submit(testing::network_alert("agent-1"));
    ASSERT_TRUE(eventually([&] { return !sent().empty(); }));
    const auto b = sent()[0];
    inject(common::BatchAck{"agent-2", b.batch_id, 1, 0, 0});
    inject(common::BatchAck{"agent-1", b.batch_id + 100, 1, 0, 0});
    std::this_thread::sleep_for(100ms);
    EXPECT_EQ(f->pending(), 1u);
    ack(b);
    EXPECT_TRUE(f->drain(std::chrono::steady_clock::now() + 2s));
}

TEST_F(ForwarderTest, SendsAHeartbeatWithCountersWhenConnected) {
    auto o = fast_options();
    o.heartbeat_interval = std::chrono::seconds(1);
    auto f = make(o);
    f->set_stats_source([] {
        AgentStats st;
        st.packets = 42;
        st.alerts = 7;
        st.pack_version = "pack-1";
        return st;
    });
    f->start();
    f->submit(testing::network_alert("agent-1"));
    connect_peer();
    ASSERT_TRUE(eventually([&] {
        const std::lock_guard<std::mutex> lock(state_->mutex);
        return state_->heartbeats.size() >= 2;  // one at once, one a second later
    }));
    const std::lock_guard<std::mutex> lock(state_->mutex);
    const common::Heartbeat& hb = state_->heartbeats.front();
    EXPECT_EQ(hb.agent_id, "agent-1");
    EXPECT_EQ(hb.packets, 42u);
    EXPECT_EQ(hb.alerts, 7u);
    EXPECT_EQ(hb.pack_version, "pack-1");
    EXPECT_EQ(hb.interval_s, 1u);
    EXPECT_FALSE(hb.stopping);
    EXPECT_LT(state_->heartbeats[0].sequence, state_->heartbeats[1].sequence);
}

TEST_F(ForwarderTest, AStatsSourceSetWhileRunningReachesTheNextHeartbeat) {
    // The file watcher sets its counters after the forwarder started (its output opens first).
    auto o = fast_options();
    o.heartbeat_interval = std::chrono::seconds(1);
    auto f = make(o);
    f->start();
    connect_peer();
    ASSERT_TRUE(eventually([&] {
        const std::lock_guard<std::mutex> lock(state_->mutex);
        return !state_->heartbeats.empty();
    }));
    f->set_stats_source([] {
        AgentStats st;
        st.files_scanned = 12;
        st.kernel_drops = 3;
        return st;
    });
    ASSERT_TRUE(eventually([&] {
        const std::lock_guard<std::mutex> lock(state_->mutex);
        return state_->heartbeats.back().files_scanned == 12u;
    }));
    const std::lock_guard<std::mutex> lock(state_->mutex);
    EXPECT_EQ(state_->heartbeats.front().files_scanned, 0u);
    EXPECT_EQ(state_->heartbeats.back().kernel_drops, 3u);
}

TEST_F(ForwarderTest, UnacknowledgedAlertsSurviveARestartAndGoFirst) {
    char dir_template[] = "/tmp/senningen-fwd-XXXXXX";
    ASSERT_NE(::mkdtemp(dir_template), nullptr);
    const std::string dir = dir_template;
    auto o = fast_options();
    o.queue_path = dir + "/queue.db";
    std::vector<std::string> ids;
    {
        auto f = make(o);
        f->set_source("capture-a");
        ASSERT_TRUE(f->open_queue().ok());
        EXPECT_EQ(f->source_progress(), 0u);
        f->start();
        for (int i = 0; i < 4; ++i) {
            auto a = testing::network_alert("agent-1");
            ids.push_back(a.id);
            f->submit(std::move(a));
        }
        f->stop();  // never connected: nothing acknowledged
    }
    state_->sent.clear();
    auto f = make(o);
    f->set_source("capture-a");
    ASSERT_TRUE(f->open_queue().ok());
    EXPECT_EQ(f->source_progress(), 4u);  // a resumed producer skips what was queued
    EXPECT_EQ(f->pending(), 4u);
    f->start();
    connect_peer();
    ASSERT_TRUE(eventually([&] { return sent().size() >= 2; }));
    std::vector<std::string> replayed;
    for (const auto& b : sent()) {
        for (const auto& a : b.alerts) replayed.push_back(a.id);
    }
    replayed.resize(4);
    EXPECT_EQ(replayed, ids);  // in order
    for (const auto& b : sent()) ack(b);
    EXPECT_TRUE(f->drain(std::chrono::steady_clock::now() + 2s));
    EXPECT_EQ(f->pending(), 0u);
    f->stop();
    std::filesystem::remove_all(dir);
}

// Metadata goes out in batches of its own, acknowledged and deleted like alerts, and never
// ahead of a queued alert: alerts submitted after a large metadata backlog are sent first.
TEST_F(ForwarderTest, SendsMetadataAfterTheAlertsAndDeletesItOnlyWhenAcknowledged) {
    ForwarderOptions o = whole_batch_options();
    o.max_metadata_batches_in_flight = 1;
    auto f = make(o);
    f->start();
    for (int i = 0; i < 7; ++i)
        f->submit_metadata(R"({"event_type":"dns","n":)" + std::to_string(i) + "}");
    for (int i = 0; i < 4; ++i) f->submit(testing::network_alert("agent-1"));
    ASSERT_TRUE(eventually([&] { return f->pending() == 11u; }));
    connect_peer();
    auto metadata = [&] {
        const std::lock_guard<std::mutex> lock(state_->mutex);
        return state_->metadata;
    };
    ASSERT_TRUE(eventually([&] { return sent().size() >= 2 && !metadata().empty(); }));
    // Both alert batches went out before (or with) the first metadata batch, and only one
    // metadata batch is on the wire at a time.
    std::this_thread::sleep_for(50ms);
    EXPECT_EQ(metadata().size(), 1u);
    EXPECT_LT(sent()[1].batch_id, metadata()[0].batch_id);
    EXPECT_EQ(metadata()[0].records.size(), 3u);
    EXPECT_EQ(metadata()[0].records[0], R"({"event_type":"dns","n":0})");
    EXPECT_EQ(metadata()[0].agent_id, "agent-1");
    ack(sent()[0]);
    ack(sent()[1]);
    // Unacknowledged metadata stays: the agent cannot drain.
    EXPECT_FALSE(f->drain(std::chrono::steady_clock::now() + 150ms));
    EXPECT_EQ(f->pending(), 7u);
    std::set<std::uint64_t> acked;
    ASSERT_TRUE(eventually([&] {
        for (const auto& b : metadata()) {
            if (acked.insert(b.batch_id).second) {
                inject(common::BatchAck{"agent-1", b.batch_id, b.records.size(), 0, 0});
            }
        }
        return f->pending() == 0;
    }));
    EXPECT_TRUE(f->drain(std::chrono::steady_clock::now() + 2s));
    const ForwarderCounters c = f->counters();
    EXPECT_EQ(c.metadata_submitted, 7u);
    EXPECT_EQ(c.metadata_acked, 7u);
    EXPECT_EQ(c.alerts_acked, 4u);
    EXPECT_EQ(acked.size(), 3u);  // 3 + 3 + 1 records
}

// With the block policy metadata may fill only 90% of the queue; beyond it a record is not
// queued (counted) and the producer goes on at once: an alert still finds room.
TEST_F(ForwarderTest, AMetadataBacklogNeitherBlocksTheProducerNorTakesTheAlertsRoom) {
    ForwarderOptions o = whole_batch_options();
    o.max_pending_alerts = 10;
    auto f = make(o);
    f->start();
    for (int i = 0; i < 20; ++i) f->submit_metadata(R"({"n":)" + std::to_string(i) + "}");
    f->submit(testing::network_alert("agent-1"));  // does not wait
    EXPECT_EQ(f->pending(), 10u);
    const ForwarderCounters c = f->counters();
    EXPECT_EQ(c.metadata_submitted, 9u);
    EXPECT_EQ(c.metadata_dropped, 11u);
    EXPECT_EQ(c.alerts_submitted, 1u);
    f->stop();
}

}  // namespace
}  // namespace senningen::agent
