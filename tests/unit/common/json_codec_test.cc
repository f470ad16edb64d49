#include "senningen/common/json_codec.h"

#include <gtest/gtest.h>

#include <Poco/JSON/Parser.h>

#include "alert_factory.h"

namespace senningen::common {
namespace {

TEST(JsonCodec, RoundTripsEveryShape) {
    for (const Alert& a : {testing::network_alert(), testing::intel_alert(),
                           testing::file_alert()}) {
        const std::string text = alert_to_json(a);
        auto back = alert_from_json(text);
        ASSERT_TRUE(back.ok()) << back.error().message << "\n" << text;
        EXPECT_EQ(*back, a) << text;
    }
}

TEST(JsonCodec, WritesEveFieldNames) {
    const Alert a = testing::intel_alert();
    Poco::JSON::Parser parser;
    auto obj = parser.parse(alert_to_json(a)).extract<Poco::JSON::Object::Ptr>();
    EXPECT_EQ(obj->getValue<std::string>("event_type"), "alert");
    EXPECT_EQ(obj->getValue<std::string>("timestamp"), "2026-01-15T09:00:00.123456789Z");
    EXPECT_EQ(obj->getValue<std::string>("src_ip"), "192.0.2.20");
    EXPECT_EQ(obj->getValue<int>("src_port"), 49200);
    EXPECT_EQ(obj->getValue<std::string>("dest_ip"), "2001:db8::66");
    EXPECT_EQ(obj->getValue<int>("dest_port"), 80);
    EXPECT_EQ(obj->getValue<std::string>("proto"), "TCP");
    EXPECT_EQ(obj->getValue<std::string>("app_proto"), "http");
    EXPECT_EQ(obj->getValue<std::uint64_t>("flow_id"), 18446744073709551557ULL);
    auto alert = obj->getObject("alert");
    EXPECT_EQ(alert->getValue<std::string>("signature"), a.rule);
    EXPECT_EQ(alert->getValue<int>("severity"), 2);
    EXPECT_EQ(alert->getValue<std::string>("source"), "intel");
    EXPECT_EQ(obj->getObject("intel")->getValue<std::string>("where"), "DNS::IN_REQUEST");
    EXPECT_EQ(obj->getObject("agent")->getValue<std::string>("id"), "agent-1");
    EXPECT_FALSE(obj->has("file"));
}

TEST(JsonCodec, MatchDataIsReadableAndExact) {
    EXPECT_EQ(encode_match_data("abc"), "abc");
    EXPECT_EQ(encode_match_data(std::string("\x7f" "ELF\x02\x01", 6)), "|7f|ELF|02 01|");
    EXPECT_EQ(encode_match_data("a|b"), "a|7c|b");
    std::string all;
    for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
    EXPECT_EQ(*decode_match_data(encode_match_data(all)), all);
    EXPECT_FALSE(decode_match_data("|7f").ok());
    EXPECT_FALSE(decode_match_data("|zz|").ok());
    EXPECT_FALSE(decode_match_data("|7|").ok());
}

struct BadCase {
    const char* name;
    std::string json;
    const char* expect_in_message;
};

class JsonCodecBad : public ::testing::TestWithParam<BadCase> {};

TEST_P(JsonCodecBad, GivesAClearErrorNamingTheField) {
    auto r = alert_from_json(GetParam().json);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find(GetParam().expect_in_message), std::string::npos)
        << r.error().message;
}

std::string good() { return alert_to_json(testing::network_alert()); }
std::string replace(std::string s, const std::string& from, const std::string& to) {
    const auto pos = s.find(from);
    if (pos != std::string::npos) s.replace(pos, from.size(), to);
    return s;
}

INSTANTIATE_TEST_SUITE_P(
    Malformed, JsonCodecBad,
    ::testing::Values(
        BadCase{"Empty", "", "does not parse"},
        BadCase{"NotJson", "{nope", "does not parse"},
        BadCase{"Array", "[1,2]", "not an object"},
        BadCase{"Truncated", good().substr(0, 40), "does not parse"},
        BadCase{"SeverityTooHigh", replace(good(), "\"severity\":2", "\"severity\":9"),
                "alert.severity"},
        BadCase{"SeverityString", replace(good(), "\"severity\":2", "\"severity\":\"2\""),
                "alert.severity"},
        BadCase{"PortTooHigh", replace(good(), "\"src_port\":49200", "\"src_port\":70000"),
                "src_port"},
        BadCase{"NegativeFlow",
                replace(good(), "\"flow_id\":18446744073709551557", "\"flow_id\":-1"), "flow_id"},
        BadCase{"BadSource", replace(good(), "\"source\":\"yara\"", "\"source\":\"sigma\""),
                "sigma"},
        BadCase{"BadTimestamp",
                replace(good(), "2026-01-15T09:00:00.123456789Z", "last tuesday"), "last tuesday"},
        BadCase{"NoAgent", replace(good(), "\"agent\":{\"id\":\"agent-1\"}", "\"x\":1"),
                "agent"},
        BadCase{"WrongEventType", replace(good(), "\"event_type\":\"alert\"",
                                          "\"event_type\":\"flow\""),
                "event_type"},
        BadCase{"BadMatchHex", replace(good(), "|7c 00 01 ff|", "|7c 00 0|"), "matches[0].data"}),
    [](const ::testing::TestParamInfo<BadCase>& p) { return p.param.name; });

TEST(JsonCodec, SurvivesArbitraryBytes) {
    // No proper prefix of a valid document is an alert; byte flips give an error or a valid
    // alert, never a crash or an invalid one.
    const std::string text = good();
    for (std::size_t n = 0; n < text.size(); ++n) {
        EXPECT_FALSE(alert_from_json(text.substr(0, n)).ok()) << n;
    }
    std::string flipped = text;
    for (std::size_t i = 0; i < flipped.size(); i += 7) {
        flipped[i] = static_cast<char>(flipped[i] ^ 0x5a);
        auto r = alert_from_json(flipped);
        if (r.ok()) {
            EXPECT_TRUE(validate(*r).ok());
        }
    }
}

}  // namespace
}  // namespace senningen::common
