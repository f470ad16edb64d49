#include "senningen/common/record_codec.h"

#include <gtest/gtest.h>

#include "alert_factory.h"

namespace senningen::common {
namespace {

TEST(RecordCodec, RoundTripsEveryShape) {
    Alert with_matches = testing::network_alert();
    ASSERT_TRUE(add_match(with_matches, "$bin", 7, std::string("\0\xff\x01zz", 5)));
    for (const Alert& a : {testing::network_alert(), testing::intel_alert(),
                           testing::file_alert(), with_matches}) {
        auto back = decode_alert_record(encode_alert_record(a));
        ASSERT_TRUE(back.ok()) << back.error().message;
        EXPECT_EQ(*back, a);
    }
}

TEST(RecordCodec, EveryTruncationIsAnErrorNotACrash) {
    Alert a = testing::intel_alert();
    ASSERT_TRUE(add_match(a, "$m", 1, "abc"));
    const std::string full = encode_alert_record(a);
    for (std::size_t n = 0; n < full.size(); ++n) {
        auto r = decode_alert_record(std::string_view(full).substr(0, n));
        ASSERT_FALSE(r.ok()) << "cut at " << n;
        EXPECT_EQ(r.error().code, ErrorCode::kTruncated) << r.error().message;
    }
    EXPECT_FALSE(decode_alert_record(full + "x").ok());
}

TEST(RecordCodec, RefusesAnotherFormatAndInvalidAlerts) {
    std::string rec = encode_alert_record(testing::network_alert());
    rec[0] = 9;
    auto r = decode_alert_record(rec);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::kUnsupported);
    Alert bad = testing::network_alert();
    bad.id = "not-a-uuid";
    EXPECT_FALSE(decode_alert_record(encode_alert_record(bad)).ok());
}

}  // namespace
}  // namespace senningen::common
