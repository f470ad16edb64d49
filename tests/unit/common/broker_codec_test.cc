#include "senningen/common/broker_codec.h"

#include <gtest/gtest.h>

#include <broker/data.hh>

#include "alert_factory.h"

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

TEST(BrokerCodec, RefusesOtherWireVersions) {
    broker::data d = to_broker(sample_batch());
    for (const std::uint64_t other : {kWireVersion - 1, kWireVersion + 1}) {
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
    broker::data d = to_broker(sample_batch());
    auto& alerts = broker::get<broker::vector>(broker::get<broker::vector>(d)[4]);
    broker::get<broker::vector>(alerts[2])[8] = broker::count{0};
    auto r = batch_from_broker(d);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("alert 2 of batch"), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace senningen::common
