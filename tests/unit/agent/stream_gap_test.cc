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

// A download over a stream depth of DEPTH bytes: SENT of the body's 300 bytes come, in three
// segments, before both sides close.
std::vector<Poco::JSON::Object::Ptr> run_http_download(std::size_t depth, std::size_t sent) {
    std::vector<Poco::JSON::Object::Ptr> records;
    EngineOptions options;
    options.stream_depth = depth;
    Engine engine(options, nullptr, nullptr, {});
    engine.set_record_sink([&](const std::string& line) {
        records.push_back(Poco::JSON::Parser().parse(line).extract<Poco::JSON::Object::Ptr>());
    });
    Feed f{engine};
    const std::string request = "GET /tool.bin HTTP/1.1\r\nHost: example.test\r\n\r\n";
    const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 300\r\n\r\n";
    f.send(true, 1000, kSyn, "");
    f.send(false, 5000, kSyn | kAck, "");
    f.send(true, 1001, kAck | kPsh, request);
    std::uint32_t seq = 5001;
    f.send(false, seq, kAck, head);
    seq += static_cast<std::uint32_t>(head.size());
    for (std::size_t done = 0; done < sent; done += 100) {
        f.send(false, seq, kAck, std::string(std::min<std::size_t>(100, sent - done), 'A'));
        seq += 100;
    }
    f.send(false, seq, kFin | kAck, "");
    f.send(true, 1001 + static_cast<std::uint32_t>(request.size()), kFin | kAck, "");
    engine.finish();
    return records;
}

TEST(StreamGap, AFileIsHashedToItsEndPastTheStreamDepth) {
    // The analyzer parses the whole stream: the depth (64 bytes, inside the headers) bounds
    // what is held, not what is parsed.
    const auto records = run_http_download(64, 300);
    const auto files = of_type(records, "files");
    ASSERT_EQ(files.size(), 1U);
    EXPECT_EQ(files[0]->getValue<std::uint64_t>("seen_bytes"), 300U);
    EXPECT_EQ(files[0]->getValue<std::uint64_t>("missing_bytes"), 0U);
    // md5 of 300 'A's (md5sum of `printf 'A%.0s' $(seq 300)`).
    EXPECT_EQ(files[0]->getValue<std::string>("md5"), "ec11aea0501a4c68d89e47d243aaa1eb");
    EXPECT_TRUE(of_type(records, "weird").empty());
}

TEST(StreamGap, ABodyCutByTheConnectionsEndMissesTheRest) {
    const auto records = run_http_download(1 << 20, 200);
    const auto files = of_type(records, "files");
    ASSERT_EQ(files.size(), 1U);
    EXPECT_EQ(files[0]->getValue<std::uint64_t>("seen_bytes"), 200U);
    EXPECT_EQ(files[0]->getValue<std::uint64_t>("missing_bytes"), 100U);
    EXPECT_FALSE(files[0]->has("md5")) << "a part of a file has no digest of the file";
    const auto weirds = of_type(records, "weird");
    ASSERT_EQ(weirds.size(), 1U);
    EXPECT_EQ(weirds[0]->getValue<std::string>("name"), "http_body_truncated");
}

// A control connection polled for long: the write after the stream depth (here 256 bytes,
// 40 reads in) is parsed and recorded, as an ICS monitor must see it.
TEST(StreamGap, AModbusWriteLongAfterTheStreamDepthIsSeen) {
    std::vector<Poco::JSON::Object::Ptr> records;
    EngineOptions options;
    options.stream_depth = 256;
    Engine engine(options, nullptr, nullptr, {});
    engine.set_record_sink([&](const std::string& line) {
        records.push_back(Poco::JSON::Parser().parse(line).extract<Poco::JSON::Object::Ptr>());
    });
    Feed f{engine};
    // MBAP (transaction, protocol 0, length 6, unit 1) and a PDU of five bytes.
    const auto adu = [](unsigned tid, unsigned fc, unsigned addr, unsigned value) {
        const unsigned char b[] = {static_cast<unsigned char>(tid >> 8),
                                   static_cast<unsigned char>(tid),
                                   0,
                                   0,
                                   0,
                                   6,
                                   1,
                                   static_cast<unsigned char>(fc),
                                   static_cast<unsigned char>(addr >> 8),
                                   static_cast<unsigned char>(addr),
                                   static_cast<unsigned char>(value >> 8),
                                   static_cast<unsigned char>(value)};
        return std::string(reinterpret_cast<const char*>(b), sizeof b);
    };
    const auto send = [&](bool from_client, std::uint32_t seq, const std::string& text) {
        const Bytes payload(text.begin(), text.end());
        const Bytes l4 = from_client ? test::tcp(40001, 502, seq, 0, kAck | kPsh, payload)
                                     : test::tcp(502, 40001, seq, 0, kAck | kPsh, payload);
        const Bytes frame =
            test::ethernet(0x0800, from_client ? test::ipv4(kClient, kServer, kIpProtoTcp, l4)
                                               : test::ipv4(kServer, kClient, kIpProtoTcp, l4));
        f.ts += 1'000'000;
        engine.process(RawPacket{f.ts, frame.data(), static_cast<std::uint32_t>(frame.size()),
                                 static_cast<std::uint32_t>(frame.size())},
                       DLT_EN10MB);
    };
    std::uint32_t cseq = 1001;
    std::uint32_t sseq = 7001;
    for (unsigned tid = 1; tid <= 40; ++tid) {
        const std::string read = adu(tid, 3, 100, 2);
        send(true, cseq, read);
        cseq += static_cast<std::uint32_t>(read.size());
        const std::string answer = adu(tid, 3, 0x0400, 0);  // 4 bytes of data; framing only
        send(false, sseq, answer);
        sseq += static_cast<std::uint32_t>(answer.size());
    }
    send(true, cseq, adu(41, 6, 40, 1234));  // write single register
    engine.finish();
    std::size_t reads = 0;
    bool write = false;
    for (const auto& r : records) {
        if (r->getValue<std::string>("event_type") != "modbus") continue;
        const auto m = r->getObject("modbus");
        if (m->getValue<std::string>("direction") != "request") continue;
        if (m->getValue<int>("function") == 3) ++reads;
        if (m->getValue<int>("function") == 6 && m->getValue<int>("transaction_id") == 41) {
            write = true;
        }
    }
    EXPECT_EQ(reads, 40U);
    EXPECT_TRUE(write) << "the write 480 bytes into a 256-byte depth";
}

}  // namespace
}  // namespace senningen::agent
