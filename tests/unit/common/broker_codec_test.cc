#include "senningen/common/broker_codec.h"

#include <gtest/gtest.h>

#include <broker/data.hh>

#include "alert_factory.h"
#include "senningen/common/record_codec.h"

namespace senningen::common {
namespace {

AlertBatch sample_batch() {
    AlertBatch b;
    b.agent_id = "agent-1";
    b.batch_id = 42;
    b.alerts = {testing::network_alert(), testing::intel_alert(), testing::file_alert()};
    return b;
}

TEST(BrokerCodec, AlertRoundTripsEveryShape) {
    for (const Alert& a : {testing::network_alert(), testing::intel_alert(),
                           testing::file_alert()}) {
        auto back = alert_from_broker(to_broker(a));
        ASSERT_TRUE(back.ok()) << back.error().message;
        EXPECT_EQ(*back, a);
    }
}

TEST(BrokerCodec, BatchAndAckRoundTrip) {
    const AlertBatch b = sample_batch();
    auto back = batch_from_broker(to_broker(b));
    ASSERT_TRUE(back.ok()) << back.error().message;
    EXPECT_EQ(*back, b);

    const BatchAck ack{"agent-1", 42, 2, 1, 0};
    auto ack_back = ack_from_broker(to_broker(ack));
    ASSERT_TRUE(ack_back.ok()) << ack_back.error().message;
    EXPECT_EQ(*ack_back, ack);
}

// Version 3 (what agents send) carries each alert as its record encoding in one string;
// version 2 (agents of the previous release) as nested vectors. Both decode to the same batch.
TEST(BrokerCodec, BatchesRoundTripInVersions2And3) {
    AlertBatch v3 = sample_batch();
    const broker::data d3 = to_broker(v3);
    const auto& alerts3 = broker::get<broker::vector>(broker::get<broker::vector>(d3)[4]);
    ASSERT_EQ(alerts3.size(), 3U);
    EXPECT_EQ(broker::get<std::string>(alerts3[1]), encode_alert_record(v3.alerts[1]));
    auto back3 = batch_from_broker(d3);
    ASSERT_TRUE(back3.ok()) << back3.error().message;
    EXPECT_EQ(*back3, v3);
    EXPECT_EQ(back3->wire_version, 3U);
    ASSERT_TRUE(back3->has_records());  // kept for the digest and the store
    EXPECT_EQ(back3->records[2], encode_alert_record(v3.alerts[2]));

    AlertBatch v2 = v3;
    v2.wire_version = 2;
    const broker::data d2 = to_broker(v2);
    const auto& alerts2 = broker::get<broker::vector>(broker::get<broker::vector>(d2)[4]);
    EXPECT_NE(broker::get_if<broker::vector>(alerts2[0]), nullptr);
    auto back2 = batch_from_broker(d2);
    ASSERT_TRUE(back2.ok()) << back2.error().message;
    EXPECT_EQ(*back2, v2);
    EXPECT_FALSE(back2->has_records());
    back2->wire_version = 3;
    EXPECT_EQ(*back2, *back3);
}

// Records the agent already holds are sent as they are.
TEST(BrokerCodec, Version3SendsTheRecordsAtHand) {
    AlertBatch b = sample_batch();
    for (const auto& a : b.alerts) b.records.push_back(encode_alert_record(a));
    const broker::data d = to_broker(b);
    const auto& alerts = broker::get<broker::vector>(broker::get<broker::vector>(d)[4]);
    for (std::size_t i = 0; i < alerts.size(); ++i) {
        EXPECT_EQ(broker::get<std::string>(alerts[i]), b.records[i]);
    }
}

TEST(BrokerCodec, Version3RefusesAnAlertThatIsNotAValidRecord) {
    broker::data d = to_broker(sample_batch());
    auto& alerts = broker::get<broker::vector>(broker::get<broker::vector>(d)[4]);
    alerts[1] = to_broker(testing::network_alert());  // a version 2 alert in a version 3 batch
    auto r = batch_from_broker(d);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("alert 1 of batch is not a string"), std::string::npos)
        << r.error().message;

    d = to_broker(sample_batch());
    auto& cut = broker::get<broker::vector>(broker::get<broker::vector>(d)[4]);
    broker::get<std::string>(cut[2]).resize(20);  // inside the agent id
    r = batch_from_broker(d);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("alert 2 of batch"), std::string::npos) << r.error().message;
}

TEST(BrokerCodec, RefusesOtherWireVersions) {
    broker::data d = to_broker(sample_batch());
    for (const std::uint64_t other :
         {kOldestAlertBatchWireVersion - 1, kAlertBatchWireVersion + 1}) {
        broker::get<broker::vector>(d)[1] = broker::count{other};
        auto r = batch_from_broker(d);
        ASSERT_FALSE(r.ok());
        EXPECT_EQ(r.error().code, ErrorCode::kUnsupported);
        EXPECT_NE(r.error().message.find("version " + std::to_string(other)), std::string::npos);
    }
}

TEST(BrokerCodec, RefusesWrongTags) {
    EXPECT_FALSE(batch_from_broker(to_broker(BatchAck{"a", 1, 0, 0, 0})).ok());
    EXPECT_FALSE(ack_from_broker(to_broker(sample_batch())).ok());
    EXPECT_FALSE(batch_from_broker(broker::data{std::string("hello")}).ok());
    EXPECT_FALSE(batch_from_broker(broker::data{}).ok());
    EXPECT_FALSE(alert_from_broker(broker::data{broker::count{7}}).ok());
}

TEST(BrokerCodec, NamesTheBadElement) {
    broker::data d = to_broker(testing::network_alert());
    auto& v = broker::get<broker::vector>(d);
    v[8] = broker::count{9};  // severity
    auto r = alert_from_broker(d);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("element 8"), std::string::npos) << r.error().message;

    d = to_broker(testing::network_alert());
    broker::get<broker::vector>(d)[0] = broker::count{1};  // id must be a string
    r = alert_from_broker(d);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("element 0 is not a string"), std::string::npos);

    d = to_broker(testing::network_alert());
    broker::get<broker::vector>(d)[0] = std::string("not-a-uuid");
    r = alert_from_broker(d);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("not-a-uuid"), std::string::npos);
}

TEST(BrokerCodec, EveryTruncationIsAnError) {
    const broker::data full = to_broker(testing::network_alert());
    const auto& v = broker::get<broker::vector>(full);
    for (std::size_t n = 0; n < v.size(); ++n) {
        broker::vector cut(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(n));
        EXPECT_FALSE(alert_from_broker(broker::data{cut}).ok()) << n;
    }
    // A network context cut short, and a match with a bad shape.
    broker::data d = full;
    broker::get<broker::vector>(broker::get<broker::vector>(d)[9]).pop_back();
    EXPECT_FALSE(alert_from_broker(d).ok());
    d = full;
    broker::get<broker::vector>(broker::get<broker::vector>(d)[12])[0] = broker::count{3};
    EXPECT_FALSE(alert_from_broker(d).ok());
}

TEST(BrokerCodec, OneBadAlertFailsTheBatchWithItsIndex) {
    AlertBatch b = sample_batch();
    b.wire_version = 2;
    broker::data d = to_broker(b);
    auto& alerts = broker::get<broker::vector>(broker::get<broker::vector>(d)[4]);
    broker::get<broker::vector>(alerts[2])[8] = broker::count{0};
    auto r = batch_from_broker(d);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("alert 2 of batch"), std::string::npos) << r.error().message;
}

TEST(BrokerCodec, MetadataBatchRoundTripsAndIsCheckedFieldByField) {
    MetadataBatch b;
    b.agent_id = "agent-1";
    b.batch_id = 43;
    b.records = {R"({"event_type":"dns","timestamp":"2026-01-15T10:00:00Z"})",
                 std::string("\x00\xff not even JSON", 16)};  // content is the collector's to check
    b.credentials = {"CERT", "SIG"};
    const broker::data wire = to_broker(b);
    auto back = metadata_batch_from_broker(wire);
    ASSERT_TRUE(back.ok()) << back.error().message;
    EXPECT_EQ(*back, b);
    // Not an alert batch, and an alert batch is not one either.
    EXPECT_FALSE(batch_from_broker(wire).ok());
    EXPECT_FALSE(metadata_batch_from_broker(to_broker(sample_batch())).ok());

    auto with = [&](std::size_t i, broker::data value) {
        broker::vector v = broker::get<broker::vector>(wire);
        v[i] = std::move(value);
        return metadata_batch_from_broker(broker::data{std::move(v)});
    };
    auto version = with(1, broker::count{2});
    ASSERT_FALSE(version.ok());
    EXPECT_EQ(version.error().code, ErrorCode::kUnsupported);
    auto record = with(4, broker::vector{std::string("{}"), broker::count{1}});
    ASSERT_FALSE(record.ok());
    EXPECT_NE(record.error().message.find("element 1"), std::string::npos)
        << record.error().message;
    EXPECT_FALSE(with(2, broker::count{1}).ok());
    EXPECT_FALSE(with(4, std::string("records")).ok());
    broker::vector short_one = broker::get<broker::vector>(wire);
    short_one.resize(6);
    EXPECT_FALSE(metadata_batch_from_broker(broker::data{std::move(short_one)}).ok());
}

}  // namespace
}  // namespace senningen::common
