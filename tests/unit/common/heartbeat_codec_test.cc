// Wire version 2: batch credentials and the heartbeat message (docs/wire-protocol.md).
#include <gtest/gtest.h>

#include <broker/data.hh>

#include "alert_factory.h"
#include "senningen/common/broker_codec.h"
#include "senningen/common/identity.h"

namespace senningen::common {
namespace {

Heartbeat sample_heartbeat() {
    Heartbeat hb;
    hb.agent_id = "plc-gw-1";
    hb.sequence = 9;
    hb.version = "0.1.0";
    hb.uptime_s = 3600;
    hb.pack_version = "sha256:0011";
    hb.interval_s = 30;
    hb.packets = 1;
    hb.kernel_drops = 2;
    hb.bytes = 3;
    hb.files_scanned = 4;
    hb.alerts = 5;
    hb.queue_depth = 6;
    hb.queue_oldest_age_s = 7;
    hb.stopping = true;
    hb.credentials = {"-----BEGIN CERTIFICATE-----\n...", std::string("\x30\x45\x00\x01", 4)};
    return hb;
}

TEST(HeartbeatCodec, RoundTripsEveryField) {
    const Heartbeat hb = sample_heartbeat();
    auto back = heartbeat_from_broker(to_broker(hb));
    ASSERT_TRUE(back.ok()) << back.error().message;
    EXPECT_EQ(*back, hb);
}

TEST(HeartbeatCodec, RefusesAZeroIntervalNamingTheField) {
    Heartbeat hb = sample_heartbeat();
    hb.interval_s = 0;
    auto back = heartbeat_from_broker(to_broker(hb));
    ASSERT_FALSE(back.ok());
    EXPECT_NE(back.error().message.find("element 7"), std::string::npos) << back.error().message;
}

TEST(HeartbeatCodec, EveryTruncationIsAnError) {
    const broker::vector full = broker::get<broker::vector>(to_broker(sample_heartbeat()));
    for (std::size_t n = 0; n < full.size(); ++n) {
        broker::vector cut(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
        EXPECT_FALSE(heartbeat_from_broker(broker::data{cut}).ok()) << "cut at " << n;
    }
}

TEST(HeartbeatCodec, BatchCredentialsRoundTrip) {
    AlertBatch b;
    b.agent_id = "agent-1";
    b.batch_id = 4;
    b.alerts = {testing::network_alert()};
    b.credentials = {"cert", std::string("\0sig", 4)};
    auto back = batch_from_broker(to_broker(b));
    ASSERT_TRUE(back.ok()) << back.error().message;
    EXPECT_EQ(*back, b);
}

TEST(Digest, CoversEveryFieldButTheCredentials) {
    AlertBatch b;
    b.agent_id = "agent-1";
    b.batch_id = 4;
    b.alerts = {testing::network_alert(), testing::intel_alert()};
    const Digest d = digest_of(b);
    AlertBatch same = b;
    same.credentials = {"other", "other"};
    EXPECT_EQ(digest_of(same), d);
    AlertBatch changed = b;
    changed.alerts[1].intel->sources.push_back("x");
    EXPECT_NE(digest_of(changed), d);
    changed = b;
    changed.alerts[0].network->dest_port ^= 1;
    EXPECT_NE(digest_of(changed), d);
    changed = b;
    changed.agent_id = "agent-2";
    EXPECT_NE(digest_of(changed), d);
    Heartbeat hb = sample_heartbeat();
    const Digest h = digest_of(hb);
    hb.queue_depth += 1;
    EXPECT_NE(digest_of(hb), h);
}

}  // namespace
}  // namespace senningen::common
