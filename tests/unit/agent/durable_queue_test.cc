#include "senningen/agent/forward/durable_queue.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>

#include "alert_factory.h"

namespace senningen::agent {
namespace {

class DurableQueueTest : public ::testing::Test {
protected:
    void SetUp() override {
        char dir_template[] = "/tmp/senningen-queue-XXXXXX";
        ASSERT_NE(::mkdtemp(dir_template), nullptr);
        dir_ = dir_template;
        path_ = dir_ + "/queue.db";
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }

    std::unique_ptr<DurableQueue> open(DurableQueueOptions o = {}) {
        auto q = DurableQueue::open(path_, o);
        EXPECT_TRUE(q.ok()) << (q.ok() ? "" : q.error().message);
        return q.ok() ? std::move(q).value() : nullptr;
    }
    static std::vector<common::Alert> alerts(int n) {
        std::vector<common::Alert> out;
        for (int i = 0; i < n; ++i) out.push_back(testing::network_alert("agent-1"));
        return out;
    }
    static std::vector<std::string> ids(const std::vector<QueuedAlert>& q) {
        std::vector<std::string> out;
        for (const auto& e : q) out.push_back(e.alert.id);
        return out;
    }
    static std::vector<std::string> ids(const std::vector<common::Alert>& a) {
        std::vector<std::string> out;
        for (const auto& e : a) out.push_back(e.id);
        return out;
    }

    std::string dir_;
    std::string path_;
};

TEST_F(DurableQueueTest, ReplaysWholeAlertsInOrderAfterReopening) {
    const auto written = alerts(5);
    {
        auto q = open();
        ASSERT_TRUE(q->append(written, "", 0).ok());
        EXPECT_EQ(q->depth(), 5u);
    }
    auto q = open();
    EXPECT_EQ(q->depth(), 5u);
    auto read = q->read_after(0, 100);
    ASSERT_TRUE(read.ok());
    ASSERT_EQ(read->size(), 5u);
    for (std::size_t i = 0; i < 5; ++i) EXPECT_EQ((*read)[i].alert, written[i]);
    EXPECT_LT((*read)[0].seq, (*read)[4].seq);
    auto oldest = q->oldest_ns();
    ASSERT_TRUE(oldest.ok());
    EXPECT_GT(*oldest, 0);
}

TEST_F(DurableQueueTest, DeletesOnlyAcknowledgedRanges) {
    auto q = open();
    const auto written = alerts(6);
    ASSERT_TRUE(q->append(written, "", 0).ok());
    auto all = q->read_after(0, 100).value();
    auto removed = q->remove(all[2].seq, all[3].seq);
    ASSERT_TRUE(removed.ok());
    EXPECT_EQ(*removed, 2u);
    EXPECT_EQ(q->depth(), 4u);
    EXPECT_EQ(ids(q->read_after(0, 100).value()),
              (std::vector<std::string>{written[0].id, written[1].id, written[4].id,
                                        written[5].id}));
    EXPECT_EQ(q->remove(all[2].seq, all[3].seq).value(), 0u);  // a late duplicate ack
    EXPECT_EQ(q->depth(), 4u);
}

TEST_F(DurableQueueTest, ReadsAfterASequenceNumberInPages) {
    auto q = open();
    ASSERT_TRUE(q->append(alerts(5), "", 0).ok());
    auto first = q->read_after(0, 2).value();
    ASSERT_EQ(first.size(), 2u);
    auto rest = q->read_after(first.back().seq, 10).value();
    EXPECT_EQ(rest.size(), 3u);
    EXPECT_TRUE(q->read_after(rest.back().seq, 10).value().empty());
}

TEST_F(DurableQueueTest, DropOldestMakesRoomAndCounts) {
    DurableQueueOptions o;
    o.max_entries = 4;
    o.policy = QueueFullPolicy::kDropOldest;
    auto q = open(o);
    const auto first = alerts(3);
    const auto second = alerts(3);
    ASSERT_TRUE(q->append(first, "", 0).ok());
    auto r = q->append(second, "", 0);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->appended, 3u);
    EXPECT_EQ(r->dropped, 2u);
    EXPECT_EQ(q->depth(), 4u);
    EXPECT_EQ(ids(q->read_after(0, 10).value()),
              (std::vector<std::string>{first[2].id, second[0].id, second[1].id, second[2].id}));
}

TEST_F(DurableQueueTest, BlockPolicyReportsNoRoomAndDropsNothing) {
    DurableQueueOptions o;
    o.max_entries = 3;
    auto q = open(o);
    ASSERT_TRUE(q->append(alerts(3), "", 0).ok());
    EXPECT_EQ(q->free(), 0u);  // the forwarder makes the producer wait on this
    EXPECT_EQ(q->depth(), 3u);
}

TEST_F(DurableQueueTest, SourceProgressIsCommittedWithTheRecords) {
    {
        auto q = open();
        EXPECT_EQ(q->progress("capture:x").value(), 0u);
        ASSERT_TRUE(q->append(alerts(2), "capture:x", 2).ok());
        ASSERT_TRUE(q->append(alerts(3), "capture:x", 5).ok());
    }
    auto q = open();
    EXPECT_EQ(q->progress("capture:x").value(), 5u);
    EXPECT_EQ(q->progress("capture:y").value(), 0u);
    EXPECT_EQ(q->depth(), 5u);
}

TEST_F(DurableQueueTest, MetadataHasACursorOfItsOwnAndSurvivesReopening) {
    const auto a = alerts(2);
    {
        auto q = open();
        ASSERT_TRUE(q->append({a[0]},
                              {R"({"event_type":"dns","n":1})", R"({"event_type":"dns","n":2})"},
                              "", 0)
                        .ok());
        ASSERT_TRUE(q->append({a[1]}, {R"({"event_type":"conn","n":3})"}, "", 0).ok());
        EXPECT_EQ(q->depth(), 5u);
        EXPECT_EQ(q->metadata_depth(), 3u);
    }
    auto q = open();
    EXPECT_EQ(q->depth(), 5u);
    EXPECT_EQ(q->metadata_depth(), 3u);
    // Alerts are read without the metadata between them, and the other way round.
    auto read = q->read_after(0, 10).value();
    EXPECT_EQ(ids(read), ids(a));
    auto meta = q->read_metadata_after(0, 10).value();
    ASSERT_EQ(meta.size(), 3u);
    EXPECT_EQ(meta[0].line, R"({"event_type":"dns","n":1})");
    EXPECT_EQ(meta[2].line, R"({"event_type":"conn","n":3})");
    EXPECT_EQ(q->read_metadata_after(meta[0].seq, 1).value()[0].seq, meta[1].seq);
    // Acknowledging the alerts' range deletes no metadata inside it, and the other way round.
    EXPECT_EQ(q->remove(read.front().seq, read.back().seq, RecordKind::kAlert).value(), 2u);
    EXPECT_EQ(q->metadata_depth(), 3u);
    EXPECT_EQ(q->read_metadata_after(0, 10).value().size(), 3u);
    EXPECT_EQ(q->remove({{meta[0].seq, meta[1].seq}}, RecordKind::kMetadata).value(), 2u);
    EXPECT_EQ(q->depth(), 1u);
    EXPECT_EQ(q->metadata_depth(), 1u);
}

TEST_F(DurableQueueTest, DropOldestDropsMetadataBeforeAnyAlert) {
    DurableQueueOptions o;
    o.max_entries = 4;
    o.policy = QueueFullPolicy::kDropOldest;
    auto q = open(o);
    const auto first = alerts(1);
    ASSERT_TRUE(q->append(first, {"{\"n\":1}", "{\"n\":2}", "{\"n\":3}"}, "", 0).ok());
    const auto more = alerts(2);
    auto r = q->append(more, {}, "", 0);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->dropped, 2u);
    EXPECT_EQ(q->metadata_depth(), 1u);
    EXPECT_EQ(q->read_after(0, 10).value().size(), 3u);                          // every alert kept
    EXPECT_EQ(q->read_metadata_after(0, 10).value().front().line, "{\"n\":3}");  // oldest went
}

TEST_F(DurableQueueTest, AnUnopenablePathIsAnErrorNamingIt) {
    auto q = DurableQueue::open("/nonexistent-dir/sub/queue.db", {});
    ASSERT_FALSE(q.ok());
    EXPECT_EQ(q.error().code, common::ErrorCode::kDatabase);
    EXPECT_NE(q.error().message.find("/nonexistent-dir/sub/queue.db"), std::string::npos);
}

}  // namespace
}  // namespace senningen::agent
