// IPv4 header, TCP and UDP checksums: verified, a wrong one counted and named in a weird record
// (once per flow), and the packet inspected all the same (Zeek's -C), as the issue asks.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include <Poco/JSON/Parser.h>
#include <pcap/dlt.h>

#include "packet_builder.h"
#include "senningen/agent/decode/packet.h"
#include "senningen/agent/engine/engine.h"

namespace senningen::agent {
namespace {

using test::Bytes;
using namespace tcp_flags;

const test::Ipv4 kClient{192, 0, 2, 10};
const test::Ipv4 kServer{192, 0, 2, 20};
const test::Ipv6 kClient6 = test::ipv6({0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10});
const test::Ipv6 kServer6 = test::ipv6({0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x20});

ChecksumVerdict verdict_of(const Bytes& frame, std::size_t caplen = 0) {
    DecodedPacket packet;
    const std::size_t size = caplen != 0 ? caplen : frame.size();
    EXPECT_EQ(decode_packet(DLT_EN10MB, {frame.data(), size}, packet), DecodeStatus::kOk);
    return verify_checksums(packet);
}

Bytes tcp_frame(const Bytes& payload, bool fill = true) {
    test::Ipv4Options options;
    options.transport_checksum = fill;
    return test::ethernet(0x0800,
                          test::ipv4(kClient, kServer, kIpProtoTcp,
                                     test::tcp(40000, 80, 1, 1, kAck | kPsh, payload), options));
}

TEST(Checksums, InternetSumMatchesRfc1071Example) {
    // RFC 1071, 3: the words 0001 f203 f4f5 f6f7 sum (one's complement) to ddf2.
    const Bytes bytes = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
    const std::uint16_t folded = internet_fold(internet_sum(bytes));
    std::uint8_t out[2];
    std::memcpy(out, &folded, 2);  // memory order: the bytes as they would be on the wire
    EXPECT_EQ(out[0], 0xdd);
    EXPECT_EQ(out[1], 0xf2);
    // Odd lengths pad with a zero byte, whatever the split into words.
    for (std::size_t n = 1; n <= bytes.size(); ++n) {
        const Bytes head(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
        std::uint32_t sum = 0;
        for (std::size_t i = 0; i < n; i += 2) {
            sum += static_cast<std::uint32_t>((head[i] << 8) | (i + 1 < n ? head[i + 1] : 0));
        }
        while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
        const std::uint16_t got = internet_fold(internet_sum(head));
        std::uint8_t be[2];
        std::memcpy(be, &got, 2);
        EXPECT_EQ((be[0] << 8) | be[1], static_cast<int>(sum)) << n << " bytes";
    }
}

TEST(Checksums, CorrectTcpOverIpv4PassesWhateverThePayloadLength) {
    for (std::size_t n : {0, 1, 2, 3, 7, 1460}) {
        const ChecksumVerdict v = verdict_of(tcp_frame(Bytes(n, 0x5a)));
        EXPECT_FALSE(v.ip_bad) << n;
        EXPECT_FALSE(v.transport_bad) << n;
    }
}

TEST(Checksums, WrongTcpChecksumIsNamedWithTheValueItShouldHave) {
    const Bytes good = tcp_frame(test::text("GET / HTTP/1.1\r\n\r\n"));
    const std::size_t at = 14 + 20 + 16;  // Ethernet, IPv4, the TCP checksum field
    const std::uint16_t right = static_cast<std::uint16_t>((good[at] << 8) | good[at + 1]);
    Bytes bad = good;
    bad[at] = 0;
    bad[at + 1] = 0;  // what a capture of a host with checksum offload shows
    const ChecksumVerdict v = verdict_of(bad);
    EXPECT_FALSE(v.ip_bad);
    EXPECT_TRUE(v.transport_bad);
    EXPECT_EQ(v.transport_field, 0);
    EXPECT_EQ(v.transport_expected, right);
    // A flipped payload byte is caught too.
    Bytes flipped = good;
    flipped.back() ^= 0x01;
    EXPECT_TRUE(verdict_of(flipped).transport_bad);
}

TEST(Checksums, WrongIpv4HeaderChecksum) {
    Bytes frame = tcp_frame(test::text("x"));
    frame[14 + 10] ^= 0xff;
    const ChecksumVerdict v = verdict_of(frame);
    EXPECT_TRUE(v.ip_bad);
    EXPECT_FALSE(v.transport_bad);
}

TEST(Checksums, UdpZeroMeansNoneOverIpv4ButIsWrongOverIpv6) {
    const Bytes payload = test::text("query");
    test::Ipv4Options none;
    none.transport_checksum = false;  // left zero
    EXPECT_FALSE(verdict_of(test::ethernet(0x0800, test::ipv4(kClient, kServer, kIpProtoUdp,
                                                              test::udp(5353, 53, payload), none)))
                     .transport_bad);
    EXPECT_FALSE(verdict_of(test::ethernet(0x0800, test::ipv4(kClient, kServer, kIpProtoUdp,
                                                              test::udp(5353, 53, payload))))
                     .transport_bad);
    EXPECT_TRUE(verdict_of(test::ethernet(0x86dd, test::ipv6(kClient6, kServer6, kIpProtoUdp, {},
                                                             test::udp(5353, 53, payload), false)))
                    .transport_bad);
    EXPECT_FALSE(verdict_of(test::ethernet(0x86dd, test::ipv6(kClient6, kServer6, kIpProtoUdp, {},
                                                              test::udp(5353, 53, payload))))
                     .transport_bad);
}

TEST(Checksums, TcpOverIpv6AfterExtensionHeaders) {
    const Bytes l4 = test::tcp(40000, 443, 7, 9, kAck, test::text("hello"));
    const Bytes ext = test::ipv6_ext(kIpProtoTcp);  // hop-by-hop, then TCP
    EXPECT_FALSE(verdict_of(test::ethernet(0x86dd, test::ipv6(kClient6, kServer6, 0, ext, l4)))
                     .transport_bad);
    EXPECT_TRUE(
        verdict_of(test::ethernet(0x86dd, test::ipv6(kClient6, kServer6, 0, ext, l4, false)))
            .transport_bad);
}

TEST(Checksums, SegmentCutBySnapLengthIsNotChecked) {
    Bytes frame = tcp_frame(Bytes(200, 0x41), false);  // wrong (zero) checksum
    EXPECT_TRUE(verdict_of(frame).transport_bad);
    EXPECT_FALSE(verdict_of(frame, frame.size() - 50).transport_bad)
        << "bytes the checksum covers were not captured: nothing to say";
}

// The engine: counted per packet, one weird record per flow, the payload inspected anyway.
TEST(Checksums, EngineCountsNamesOncePerFlowAndInspectsAllTheSame) {
    std::vector<Poco::JSON::Object::Ptr> records;
    Engine engine(EngineOptions{}, nullptr, nullptr, {});
    engine.set_record_sink([&](const std::string& line) {
        records.push_back(Poco::JSON::Parser().parse(line).extract<Poco::JSON::Object::Ptr>());
    });
    std::int64_t ts = 1'700'000'000'000'000'000;
    const auto send = [&](bool from_client, std::uint32_t seq, std::uint8_t flags,
                          const std::string& text, bool fill) {
        test::Ipv4Options options;
        options.transport_checksum = fill;
        const Bytes payload(text.begin(), text.end());
        const Bytes frame = test::ethernet(
            0x0800, from_client
                        ? test::ipv4(kClient, kServer, kIpProtoTcp,
                                     test::tcp(40000, 80, seq, 0, flags, payload), options)
                        : test::ipv4(kServer, kClient, kIpProtoTcp,
                                     test::tcp(80, 40000, seq, 0, flags, payload), options));
        ts += 1'000'000;
        engine.process({ts, frame.data(), static_cast<std::uint32_t>(frame.size()),
                        static_cast<std::uint32_t>(frame.size())},
                       DLT_EN10MB);
    };
    const std::string request = "GET /offload HTTP/1.1\r\nHost: example.test\r\n\r\n";
    send(true, 100, kSyn, "", false);
    send(false, 500, kSyn | kAck, "", true);
    send(true, 101, kAck | kPsh, request, false);
    send(false, 501, kAck | kPsh, "HTTP/1.1 204 No Content\r\n\r\n", true);
    send(true, 101 + static_cast<std::uint32_t>(request.size()), kFin | kAck, "", false);
    send(false, 529, kFin | kAck, "", true);
    engine.finish();

    const EngineCounters c = engine.counters();
    EXPECT_EQ(c.bad_tcp_checksums, 3U);
    EXPECT_EQ(c.bad_ip_checksums, 0U);
    EXPECT_EQ(c.bad_udp_checksums, 0U);
    std::vector<Poco::JSON::Object::Ptr> weirds;
    bool http = false;
    for (const auto& r : records) {
        const auto type = r->getValue<std::string>("event_type");
        if (type == "weird") weirds.push_back(r->getObject("weird"));
        if (type == "http") {
            http = true;
            EXPECT_EQ(r->getObject("http")->getValue<std::string>("uri"), "/offload");
        }
    }
    ASSERT_EQ(weirds.size(), 1U) << "one per flow, not one per packet";
    EXPECT_EQ(weirds[0]->getValue<std::string>("name"), "bad_TCP_checksum");
    const auto detail = weirds[0]->getValue<std::string>("detail");
    EXPECT_NE(detail.find("originator sent checksum 0x0000, should be 0x"), std::string::npos)
        << detail;
    EXPECT_TRUE(http) << "the request with the wrong checksum was parsed all the same";
}

TEST(Checksums, FragmentWithWrongHeaderChecksumIsCountedAndTheDatagramNamed) {
    Engine engine(EngineOptions{}, nullptr, nullptr, {});
    std::vector<std::string> lines;
    engine.set_record_sink([&](const std::string& line) { lines.push_back(line); });
    // A UDP datagram (its checksum filled in over the whole) in two fragments, the second's
    // header checksum broken.
    const Bytes l4 = test::with_transport_checksum(kClient, kServer, kIpProtoUdp,
                                                   test::udp(5353, 53, Bytes(40, 0x33)));
    const Bytes first(l4.begin(), l4.begin() + 24);
    const Bytes second(l4.begin() + 24, l4.end());
    test::Ipv4Options a;
    a.frag_field = 0x2000;  // more fragments, offset 0
    test::Ipv4Options b;
    b.frag_field = 3;  // offset 24 bytes
    Bytes f2 = test::ethernet(0x0800, test::ipv4(kClient, kServer, kIpProtoUdp, second, b));
    f2[14 + 11] ^= 0x5a;
    const Bytes f1 = test::ethernet(0x0800, test::ipv4(kClient, kServer, kIpProtoUdp, first, a));
    std::int64_t ts = 1'700'000'000'000'000'000;
    for (const Bytes* f : std::initializer_list<const Bytes*>{&f1, &f2}) {
        engine.process({ts += 1000, f->data(), static_cast<std::uint32_t>(f->size()),
                        static_cast<std::uint32_t>(f->size())},
                       DLT_EN10MB);
    }
    engine.finish();
    const EngineCounters c = engine.counters();
    EXPECT_EQ(c.fragment_datagrams, 1U);
    EXPECT_EQ(c.bad_ip_checksums, 1U);
    EXPECT_EQ(c.bad_udp_checksums, 0U) << "the reassembled datagram's UDP checksum is right";
    int named = 0;
    for (const auto& line : lines) {
        if (line.find("\"bad_IP_checksum\"") != std::string::npos) {
            ++named;
            EXPECT_NE(line.find("1 fragment(s) of IP datagram id 4660"), std::string::npos) << line;
        }
    }
    EXPECT_EQ(named, 1);
}

}  // namespace
}  // namespace senningen::agent
