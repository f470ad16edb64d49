// A hole in a TCP stream reaches the flow's analyzer at its place (Analyzer::gap): the bytes
// before it are parsed, the analyzer is told of the hole, and what it does then shows in its
// output (HTTP: an http_gap weird and a file with missing bytes and no digests).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <Poco/JSON/Parser.h>
#include <pcap/dlt.h>

#include "packet_builder.h"
#include "senningen/agent/engine/engine.h"

namespace senningen::agent {
namespace {

using test::Bytes;
using namespace tcp_flags;

const test::Ipv4 kClient{10, 1, 0, 1};
const test::Ipv4 kServer{10, 1, 0, 2};

struct Feed {
    Engine& engine;
    std::int64_t ts = 1'700'000'000'000'000'000;
    void send(bool from_client, std::uint32_t seq, std::uint8_t flags, const std::string& text) {
        const Bytes payload(text.begin(), text.end());
        const Bytes l4 = from_client ? test::tcp(40000, 80, seq, 0, flags, payload)
                                     : test::tcp(80, 40000, seq, 0, flags, payload);
        const Bytes frame = test::ethernet(
            0x0800, from_client ? test::ipv4(kClient, kServer, kIpProtoTcp, l4)
                                : test::ipv4(kServer, kClient, kIpProtoTcp, l4));
        ts += 1'000'000;
        const RawPacket raw{ts, frame.data(), static_cast<std::uint32_t>(frame.size()),
                            static_cast<std::uint32_t>(frame.size())};
        engine.process(raw, DLT_EN10MB);
    }
};

std::vector<Poco::JSON::Object::Ptr> run_http_with_hole(bool hole) {
    std::vector<Poco::JSON::Object::Ptr> records;
    Engine engine(EngineOptions{}, nullptr, nullptr, {});
    engine.set_record_sink([&](const std::string& line) {
        records.push_back(Poco::JSON::Parser().parse(line).extract<Poco::JSON::Object::Ptr>());
    });
    Feed f{engine};
    const std::string request = "GET /tool.bin HTTP/1.1\r\nHost: example.test\r\n\r\n";
    const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 300\r\n\r\n";
    const std::string part(100, 'A');
    f.send(true, 1000, kSyn, "");
    f.send(false, 5000, kSyn | kAck, "");
    f.send(true, 1001, kAck | kPsh, request);
    const std::uint32_t body = 5001 + static_cast<std::uint32_t>(head.size());
    f.send(false, 5001, kAck, head + part);
    if (!hole) f.send(false, body + 100, kAck, std::string(100, 'B'));
    f.send(false, body + 200, kAck | kPsh, std::string(100, 'C'));
    f.send(false, body + 300, kFin | kAck, "");
    f.send(true, 1001 + static_cast<std::uint32_t>(request.size()), kFin | kAck, "");
    engine.finish();
    return records;
}

std::vector<Poco::JSON::Object::Ptr> of_type(const std::vector<Poco::JSON::Object::Ptr>& all,
                                             const std::string& type) {
    std::vector<Poco::JSON::Object::Ptr> out;
    for (const auto& r : all) {
        if (r->getValue<std::string>("event_type") == type) out.push_back(r->getObject(type));
    }
    return out;
}

TEST(StreamGap, AnalyzerIsToldOfTheHoleAtItsPlace) {
    const auto records = run_http_with_hole(true);
    const auto weirds = of_type(records, "weird");
    ASSERT_EQ(weirds.size(), 1U);
    EXPECT_EQ(weirds[0]->getValue<std::string>("name"), "http_gap");
    const auto files = of_type(records, "files");
    ASSERT_EQ(files.size(), 1U);
    // The 100 bytes before the hole were the file's; the hole is reported as missing.
    EXPECT_EQ(files[0]->getValue<std::uint64_t>("seen_bytes"), 100U);
    EXPECT_EQ(files[0]->getValue<std::uint64_t>("missing_bytes"), 100U);
    EXPECT_FALSE(files[0]->has("md5")) << "digests of a file with a hole mean nothing";
    const auto http = of_type(records, "http");
    ASSERT_EQ(http.size(), 1U);
    EXPECT_EQ(http[0]->getValue<std::string>("uri"), "/tool.bin");
}

TEST(StreamGap, WithoutAHoleTheFileIsWhole) {
    const auto records = run_http_with_hole(false);
    EXPECT_TRUE(of_type(records, "weird").empty());
    const auto files = of_type(records, "files");
    ASSERT_EQ(files.size(), 1U);
    EXPECT_EQ(files[0]->getValue<std::uint64_t>("seen_bytes"), 300U);
    EXPECT_EQ(files[0]->getValue<std::uint64_t>("missing_bytes"), 0U);
    EXPECT_TRUE(files[0]->has("md5"));
}

}  // namespace
}  // namespace senningen::agent
