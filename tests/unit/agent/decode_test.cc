#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <pcap/dlt.h>

#include <algorithm>
#include <array>
#include <string>
#include <vector>

#include "packet_builder.h"
#include "senningen/agent/decode/packet.h"

namespace senningen::agent {
namespace {

using test::Bytes;

const test::Ipv4 kClient4 = {192, 168, 1, 10};
const test::Ipv4 kServer4 = {10, 0, 0, 1};
const test::Ipv6 kClient6 = test::ipv6({0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10});
const test::Ipv6 kServer6 = test::ipv6({0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x1});

constexpr std::uint16_t kEtherIpv4 = 0x0800;
constexpr std::uint16_t kEtherIpv6 = 0x86dd;
constexpr std::uint16_t kEtherArp = 0x0806;
constexpr int kLinktypeRaw = 101;

Bytes tcp4_packet(const Bytes& payload = test::text("hello")) {
    return test::ipv4(kClient4, kServer4, kIpProtoTcp,
                      test::tcp(40000, 80, 1000, 2000, tcp_flags::kPsh | tcp_flags::kAck, payload));
}

Bytes udp4_packet(const Bytes& payload = test::text("query")) {
    return test::ipv4(kClient4, kServer4, kIpProtoUdp, test::udp(5353, 53, payload));
}

Bytes tcp6_packet(const Bytes& payload = test::text("hello")) {
    return test::ipv6(kClient6, kServer6, kIpProtoTcp, {},
                      test::tcp(40000, 443, 7, 9, tcp_flags::kAck, payload));
}

// A decoded packet is a view into its frame, and tests often pass a temporary frame: the
// helper keeps a copy of the last one alive for as long as the test looks at the packet.
DecodeStatus decode(int linktype, const Bytes& frame, DecodedPacket& out) {
    static Bytes kept;
    kept = frame;
    return decode_packet(linktype, kept, out);
}

std::string payload_text(const DecodedPacket& p) {
    return std::string(p.payload.begin(), p.payload.end());
}

void expect_tcp4(const DecodedPacket& p) {
    EXPECT_EQ(p.src.to_string(), "192.168.1.10");
    EXPECT_EQ(p.dst.to_string(), "10.0.0.1");
    EXPECT_EQ(p.ip_proto, kIpProtoTcp);
    EXPECT_EQ(p.src_port, 40000);
    EXPECT_EQ(p.dst_port, 80);
    EXPECT_EQ(p.seq, 1000u);
    EXPECT_EQ(p.ack, 2000u);
    EXPECT_EQ(p.tcp_flags, tcp_flags::kPsh | tcp_flags::kAck);
    EXPECT_EQ(payload_text(p), "hello");
}

TEST(Decode, EthernetIpv4Tcp) {
    const Bytes frame = test::ethernet(kEtherIpv4, tcp4_packet());
    DecodedPacket p;
    p.ts_ns = 42;
    ASSERT_EQ(decode_packet(DLT_EN10MB, frame, p), DecodeStatus::kOk);
    expect_tcp4(p);
    EXPECT_EQ(p.vlan, 0);
    EXPECT_EQ(p.ts_ns, 42) << "the caller's time stamp survives decoding";
    // Zero-copy: the payload is a view into the frame, at the end of it.
    EXPECT_EQ(p.payload.data(), frame.data() + frame.size() - 5);
}

TEST(Decode, EthernetPaddingIsNotPayload) {
    Bytes frame = test::ethernet(kEtherIpv4, udp4_packet(test::text("ab")));
    frame.resize(60, 0);  // minimum Ethernet frame: the NIC pads with zeros
    DecodedPacket p;
    ASSERT_EQ(decode(DLT_EN10MB, frame, p), DecodeStatus::kOk);
    EXPECT_EQ(payload_text(p), "ab");
    EXPECT_EQ(p.src_port, 5353);
    EXPECT_EQ(p.dst_port, 53);
    EXPECT_EQ(p.ip_proto, kIpProtoUdp);
}

TEST(Decode, EthernetIpv6Tcp) {
    DecodedPacket p;
    ASSERT_EQ(decode(DLT_EN10MB, test::ethernet(kEtherIpv6, tcp6_packet()), p), DecodeStatus::kOk);
    EXPECT_EQ(p.src.family, 6);
    EXPECT_EQ(p.src.to_string(), "2001:db8::10");
    EXPECT_EQ(p.dst.to_string(), "2001:db8::1");
    EXPECT_EQ(p.dst_port, 443);
    EXPECT_EQ(payload_text(p), "hello");
}

TEST(Decode, Vlan8021Q) {
    DecodedPacket p;
    const Bytes frame = test::ethernet(kEtherIpv4, tcp4_packet(), {{0x8100, 0x2064}});
    ASSERT_EQ(decode(DLT_EN10MB, frame, p), DecodeStatus::kOk);
    EXPECT_EQ(p.vlan, 100) << "the priority bits are not part of the id";
    expect_tcp4(p);
}

TEST(Decode, QinQReportsOuterVlan) {
    DecodedPacket p;
    const Bytes frame = test::ethernet(kEtherIpv6, tcp6_packet(), {{0x88a8, 300}, {0x8100, 200}});
    ASSERT_EQ(decode(DLT_EN10MB, frame, p), DecodeStatus::kOk);
    EXPECT_EQ(p.vlan, 300);
    EXPECT_EQ(payload_text(p), "hello");
}

TEST(Decode, LegacyQinQTag9100) {
    DecodedPacket p;
    const Bytes frame = test::ethernet(kEtherIpv4, tcp4_packet(), {{0x9100, 7}, {0x8100, 8}});
    ASSERT_EQ(decode(DLT_EN10MB, frame, p), DecodeStatus::kOk);
    EXPECT_EQ(p.vlan, 7);
    expect_tcp4(p);
}

TEST(Decode, EndlessVlanTagsAreMalformed) {
    DecodedPacket p;
    const Bytes frame = test::ethernet(kEtherIpv4, tcp4_packet(),
                                       {{0x8100, 1},
                                        {0x8100, 2},
                                        {0x8100, 3},
                                        {0x8100, 4},
                                        {0x8100, 5},
                                        {0x8100, 6},
                                        {0x8100, 7},
                                        {0x8100, 8},
                                        {0x8100, 9}});
    EXPECT_EQ(decode(DLT_EN10MB, frame, p), DecodeStatus::kMalformed);
}

TEST(Decode, ArpIsNotIp) {
    DecodedPacket p;
    EXPECT_EQ(decode(DLT_EN10MB, test::ethernet(kEtherArp, Bytes(28, 0)), p), DecodeStatus::kNotIp);
    // An 802.3 length field in place of the EtherType (LLC frames, STP) is not IP either.
    EXPECT_EQ(decode(DLT_EN10MB, test::ethernet(0x0026, Bytes(38, 0x42)), p), DecodeStatus::kNotIp);
}

TEST(Decode, LinuxCookedV1) {
    DecodedPacket p;
    ASSERT_EQ(decode(DLT_LINUX_SLL, test::linux_sll(kEtherIpv4, tcp4_packet()), p),
              DecodeStatus::kOk);
    expect_tcp4(p);
    EXPECT_EQ(decode(DLT_LINUX_SLL, test::linux_sll(kEtherArp, Bytes(28, 0)), p),
              DecodeStatus::kNotIp);
    // Tags that the kernel did not strip still sit after the cooked header.
    Bytes tagged;
    test::put16(tagged, 55);
    test::put16(tagged, kEtherIpv4);
    test::append(tagged, tcp4_packet());
    ASSERT_EQ(decode(DLT_LINUX_SLL, test::linux_sll(0x8100, tagged), p), DecodeStatus::kOk);
    EXPECT_EQ(p.vlan, 55);
    expect_tcp4(p);
}

TEST(Decode, LinuxCookedV2) {
    DecodedPacket p;
    ASSERT_EQ(decode(DLT_LINUX_SLL2, test::linux_sll2(kEtherIpv6, tcp6_packet()), p),
              DecodeStatus::kOk);
    EXPECT_EQ(p.src.to_string(), "2001:db8::10");
    EXPECT_EQ(payload_text(p), "hello");
    ASSERT_EQ(decode(DLT_LINUX_SLL2, test::linux_sll2(kEtherIpv4, tcp4_packet()), p),
              DecodeStatus::kOk);
    expect_tcp4(p);
}

TEST(Decode, BsdNullBothByteOrders) {
    DecodedPacket p;
    ASSERT_EQ(decode(DLT_NULL, test::bsd_loopback(2, false, tcp4_packet()), p), DecodeStatus::kOk);
    expect_tcp4(p);
    ASSERT_EQ(decode(DLT_NULL, test::bsd_loopback(2, true, tcp4_packet()), p), DecodeStatus::kOk);
    expect_tcp4(p);
}

TEST(Decode, BsdNullIpv6FamiliesOfEveryBsd) {
    for (std::uint32_t family : {24u, 28u, 30u}) {
        for (bool big_endian : {false, true}) {
            DecodedPacket p;
            ASSERT_EQ(decode(DLT_NULL, test::bsd_loopback(family, big_endian, tcp6_packet()), p),
                      DecodeStatus::kOk)
                << "family " << family << (big_endian ? " big" : " little") << "-endian";
            EXPECT_EQ(p.dst.to_string(), "2001:db8::1");
        }
    }
    DecodedPacket p;
    EXPECT_EQ(decode(DLT_NULL, test::bsd_loopback(7, false, tcp6_packet()), p),
              DecodeStatus::kNotIp);
}

TEST(Decode, BsdLoopIsNetworkOrder) {
    DecodedPacket p;
    ASSERT_EQ(decode(DLT_LOOP, test::bsd_loopback(2, true, tcp4_packet()), p), DecodeStatus::kOk);
    expect_tcp4(p);
    ASSERT_EQ(decode(DLT_LOOP, test::bsd_loopback(30, true, tcp6_packet()), p), DecodeStatus::kOk);
    EXPECT_EQ(p.src.family, 6);
}

TEST(Decode, RawIpLinkTypes) {
    for (int linktype : {DLT_RAW, kLinktypeRaw}) {
        DecodedPacket p;
        ASSERT_EQ(decode(linktype, tcp4_packet(), p), DecodeStatus::kOk) << linktype;
        expect_tcp4(p);
        ASSERT_EQ(decode(linktype, tcp6_packet(), p), DecodeStatus::kOk) << linktype;
        EXPECT_EQ(p.src.family, 6);
        EXPECT_EQ(decode(linktype, Bytes{0x55, 0, 0, 0}, p), DecodeStatus::kMalformed);
    }
}

TEST(Decode, IpVersionSpecificLinkTypes) {
    DecodedPacket p;
    ASSERT_EQ(decode(DLT_IPV4, tcp4_packet(), p), DecodeStatus::kOk);
    expect_tcp4(p);
    ASSERT_EQ(decode(DLT_IPV6, tcp6_packet(), p), DecodeStatus::kOk);
    EXPECT_EQ(payload_text(p), "hello");
    EXPECT_EQ(decode(DLT_IPV4, tcp6_packet(), p), DecodeStatus::kMalformed);
    EXPECT_EQ(decode(DLT_IPV6, udp4_packet(Bytes{}), p), DecodeStatus::kTruncated)
        << "a 28-byte IPv4 packet is too short for an IPv6 header";
    EXPECT_EQ(decode(DLT_IPV6, tcp4_packet(Bytes(40, 'x')), p), DecodeStatus::kMalformed);
}

TEST(Decode, UnknownLinkTypeIsUnsupported) {
    DecodedPacket p;
    EXPECT_EQ(decode(DLT_IEEE802_11, tcp4_packet(), p), DecodeStatus::kUnsupportedLink);
    EXPECT_EQ(decode(-1, tcp4_packet(), p), DecodeStatus::kUnsupportedLink);
}

TEST(Decode, Ipv4OptionsAreSkipped) {
    for (std::size_t option_bytes : {4u, 20u, 40u}) {
        DecodedPacket p;
        const Bytes packet =
            test::ipv4(kClient4, kServer4, kIpProtoTcp,
                       test::tcp(40000, 80, 1000, 2000, tcp_flags::kPsh | tcp_flags::kAck,
                                 test::text("hello")),
                       {.option_bytes = option_bytes});
        ASSERT_EQ(decode(DLT_RAW, packet, p), DecodeStatus::kOk) << option_bytes;
        expect_tcp4(p);
    }
}

TEST(Decode, Ipv4FragmentsAreFlaggedWithAddresses) {
    const Bytes l4 = test::udp(1, 2, Bytes(16, 0));
    for (std::uint16_t frag :
         {std::uint16_t{0x2000}, std::uint16_t{0x0010}, std::uint16_t{0x2010}}) {
        DecodedPacket p;
        const Bytes packet = test::ipv4(kClient4, kServer4, kIpProtoUdp, l4, {.frag_field = frag});
        ASSERT_EQ(decode(DLT_RAW, packet, p), DecodeStatus::kFragment) << std::hex << frag;
        EXPECT_EQ(p.src.to_string(), "192.168.1.10");
        EXPECT_EQ(p.dst.to_string(), "10.0.0.1");
        EXPECT_EQ(p.ip_proto, kIpProtoUdp);
        EXPECT_EQ(p.src_port, 0) << "no transport header is read from a fragment";
    }
    // Don't-fragment alone is an ordinary packet.
    DecodedPacket p;
    const Bytes df = test::ipv4(kClient4, kServer4, kIpProtoUdp, l4, {.frag_field = 0x4000});
    EXPECT_EQ(decode(DLT_RAW, df, p), DecodeStatus::kOk);
}

TEST(Decode, Ipv4MalformedHeaders) {
    DecodedPacket p;
    Bytes bad_version = tcp4_packet();
    bad_version[0] = 0x55;
    EXPECT_EQ(decode(DLT_IPV4, bad_version, p), DecodeStatus::kMalformed);

    Bytes short_ihl = tcp4_packet();
    short_ihl[0] = 0x44;
    EXPECT_EQ(decode(DLT_RAW, short_ihl, p), DecodeStatus::kMalformed);

    const Bytes short_total =
        test::ipv4(kClient4, kServer4, kIpProtoTcp, test::tcp(1, 2, 3, 4, 0),
                   {.total_length_delta = -30});  // 10 bytes: shorter than the IP header
    EXPECT_EQ(decode(DLT_RAW, short_total, p), DecodeStatus::kMalformed);

    const Bytes ihl_past_total = test::ipv4(kClient4, kServer4, kIpProtoUdp, {},
                                            {.option_bytes = 8, .total_length_delta = -4});
    EXPECT_EQ(decode(DLT_RAW, ihl_past_total, p), DecodeStatus::kMalformed);
}

TEST(Decode, Ipv4TotalLengthBoundsPayload) {
    DecodedPacket p;
    // A total length beyond the captured bytes is a snap length cut: decode what is there.
    const Bytes longer = test::ipv4(kClient4, kServer4, kIpProtoTcp,
                                    test::tcp(1, 2, 3, 4, tcp_flags::kAck, test::text("abc")),
                                    {.total_length_delta = 1000});
    ASSERT_EQ(decode(DLT_RAW, longer, p), DecodeStatus::kOk);
    EXPECT_EQ(payload_text(p), "abc");
    // A shorter one ends the packet: trailing bytes are not payload.
    const Bytes shorter = test::ipv4(kClient4, kServer4, kIpProtoTcp,
                                     test::tcp(1, 2, 3, 4, tcp_flags::kAck, test::text("abc")),
                                     {.total_length_delta = -2});
    ASSERT_EQ(decode(DLT_RAW, shorter, p), DecodeStatus::kOk);
    EXPECT_EQ(payload_text(p), "a");
    // Total length 0 (segmentation offload): the captured length is used.
    Bytes tso = tcp4_packet();
    tso[2] = 0;
    tso[3] = 0;
    ASSERT_EQ(decode(DLT_RAW, tso, p), DecodeStatus::kOk);
    EXPECT_EQ(payload_text(p), "hello");
}

TEST(Decode, OtherTransportKeepsAddresses) {
    DecodedPacket p;
    const Bytes icmp = test::ipv4(kClient4, kServer4, 1, Bytes{8, 0, 0, 0, 0, 1, 0, 1});
    ASSERT_EQ(decode(DLT_RAW, icmp, p), DecodeStatus::kOtherTransport);
    EXPECT_EQ(p.ip_proto, 1);
    EXPECT_EQ(p.src.to_string(), "192.168.1.10");
    EXPECT_TRUE(p.payload.empty());
}

TEST(Decode, TcpDataOffsetChecks) {
    DecodedPacket p;
    // Data offset 4 (16 bytes) is below the minimum header.
    Bytes small = tcp4_packet();
    small[20 + 12] = 0x40;
    EXPECT_EQ(decode(DLT_RAW, small, p), DecodeStatus::kMalformed);
    // Data offset 15 (60 bytes) runs past the IP total length.
    Bytes big = tcp4_packet();
    big[20 + 12] = 0xf0;
    EXPECT_EQ(decode(DLT_RAW, big, p), DecodeStatus::kMalformed);
    // Options are skipped and the payload starts after them.
    const Bytes with_options =
        test::ipv4(kClient4, kServer4, kIpProtoTcp,
                   test::tcp(40000, 80, 1000, 2000, tcp_flags::kPsh | tcp_flags::kAck,
                             test::text("hello"), 12));
    ASSERT_EQ(decode(DLT_RAW, with_options, p), DecodeStatus::kOk);
    expect_tcp4(p);
    // An IP packet too short for any TCP header.
    const Bytes short_l4 = test::ipv4(kClient4, kServer4, kIpProtoTcp, Bytes(10, 0));
    EXPECT_EQ(decode(DLT_RAW, short_l4, p), DecodeStatus::kMalformed);
}

TEST(Decode, UdpLengthChecks) {
    DecodedPacket p;
    Bytes too_small = udp4_packet();
    too_small[20 + 4] = 0;
    too_small[20 + 5] = 7;
    EXPECT_EQ(decode(DLT_RAW, too_small, p), DecodeStatus::kMalformed);

    Bytes too_big = udp4_packet();
    too_big[20 + 5] = static_cast<std::uint8_t>(too_big[20 + 5] + 1);
    EXPECT_EQ(decode(DLT_RAW, too_big, p), DecodeStatus::kMalformed);

    // A UDP length shorter than the IP payload ends the datagram early.
    Bytes shorter = udp4_packet(test::text("query"));
    shorter[20 + 5] = 8 + 2;
    ASSERT_EQ(decode(DLT_RAW, shorter, p), DecodeStatus::kOk);
    EXPECT_EQ(payload_text(p), "qu");

    const Bytes short_l4 = test::ipv4(kClient4, kServer4, kIpProtoUdp, Bytes(4, 0));
    EXPECT_EQ(decode(DLT_RAW, short_l4, p), DecodeStatus::kMalformed);
}

TEST(Decode, Ipv6ExtensionHeadersAreWalked) {
    // hop-by-hop -> routing (24 bytes) -> destination options -> TCP
    Bytes ext = test::ipv6_ext(43);
    test::append(ext, test::ipv6_ext(60, 2));
    test::append(ext, test::ipv6_ext(kIpProtoTcp));
    const Bytes packet = test::ipv6(kClient6, kServer6, 0, ext,
                                    test::tcp(1, 2, 3, 4, tcp_flags::kAck, test::text("deep")));
    DecodedPacket p;
    ASSERT_EQ(decode(DLT_IPV6, packet, p), DecodeStatus::kOk);
    EXPECT_EQ(p.ip_proto, kIpProtoTcp);
    EXPECT_EQ(p.dst_port, 2);
    EXPECT_EQ(payload_text(p), "deep");
}

TEST(Decode, Ipv6AuthenticationHeaderCountsWords) {
    Bytes ah;
    test::put8(ah, kIpProtoUdp);
    test::put8(ah, 4);  // (4 + 2) * 4 = 24 bytes
    for (int i = 0; i < 22; ++i) {
        test::put8(ah, 0);
    }
    DecodedPacket p;
    const Bytes packet =
        test::ipv6(kClient6, kServer6, 51, ah, test::udp(53, 53, test::text("dns")));
    ASSERT_EQ(decode(DLT_IPV6, packet, p), DecodeStatus::kOk);
    EXPECT_EQ(payload_text(p), "dns");
}

TEST(Decode, Ipv6Fragments) {
    DecodedPacket p;
    const Bytes first =
        test::ipv6(kClient6, kServer6, 44, test::ipv6_fragment(kIpProtoUdp, 0, true),
                   test::udp(1, 2, Bytes(8, 0)));
    ASSERT_EQ(decode(DLT_IPV6, first, p), DecodeStatus::kFragment);
    EXPECT_EQ(p.ip_proto, kIpProtoUdp);
    EXPECT_EQ(p.src.to_string(), "2001:db8::10");

    const Bytes later = test::ipv6(
        kClient6, kServer6, 0,
        [] {
            Bytes e = test::ipv6_ext(44);
            test::append(e, test::ipv6_fragment(kIpProtoTcp, 185, false));
            return e;
        }(),
        Bytes(16, 0));
    EXPECT_EQ(decode(DLT_IPV6, later, p), DecodeStatus::kFragment);
    EXPECT_EQ(p.ip_proto, kIpProtoTcp);

    // An atomic fragment (offset 0, no more) is a whole packet.
    const Bytes atomic =
        test::ipv6(kClient6, kServer6, 44, test::ipv6_fragment(kIpProtoUdp, 0, false),
                   test::udp(1, 2, test::text("whole")));
    ASSERT_EQ(decode(DLT_IPV6, atomic, p), DecodeStatus::kOk);
    EXPECT_EQ(payload_text(p), "whole");
}

TEST(Decode, Ipv6MalformedAndOther) {
    DecodedPacket p;
    const Bytes no_next = test::ipv6(kClient6, kServer6, 59, {}, {});
    EXPECT_EQ(decode(DLT_IPV6, no_next, p), DecodeStatus::kOtherTransport);
    EXPECT_EQ(p.ip_proto, 59);

    const Bytes icmp6 = test::ipv6(kClient6, kServer6, 58, {}, Bytes{128, 0, 0, 0});
    EXPECT_EQ(decode(DLT_IPV6, icmp6, p), DecodeStatus::kOtherTransport);
    EXPECT_EQ(p.ip_proto, 58);

    // The hop-by-hop header claims 2 KiB within a 30-byte payload.
    Bytes ext = test::ipv6_ext(kIpProtoTcp);
    ext[1] = 255;
    const Bytes lying = test::ipv6(kClient6, kServer6, 0, ext, Bytes(22, 0));
    EXPECT_EQ(decode(DLT_IPV6, lying, p), DecodeStatus::kMalformed);

    // Twenty destination-options headers in a row: more than any stack sends.
    Bytes chain;
    for (int i = 0; i < 20; ++i) {
        test::append(chain, test::ipv6_ext(60));
    }
    EXPECT_EQ(decode(DLT_IPV6, test::ipv6(kClient6, kServer6, 60, chain, {}), p),
              DecodeStatus::kMalformed);

    Bytes bad_version = tcp6_packet();
    bad_version[0] = 0x40;
    EXPECT_EQ(decode(DLT_IPV6, bad_version, p), DecodeStatus::kMalformed);
}

TEST(Decode, StaleFieldsAreCleared) {
    DecodedPacket p;
    ASSERT_EQ(decode(DLT_EN10MB, test::ethernet(kEtherIpv4, tcp4_packet(), {{0x8100, 9}}), p),
              DecodeStatus::kOk);
    ASSERT_EQ(decode(DLT_RAW, udp4_packet(), p), DecodeStatus::kOk);
    EXPECT_EQ(p.tcp_flags, 0);
    EXPECT_EQ(p.seq, 0u);
    EXPECT_EQ(p.vlan, 0);
    EXPECT_EQ(payload_text(p), "query");
}

struct TruncationCase {
    const char* name;
    int linktype;
    Bytes frame;
    std::size_t payload_size;  // the transport payload at the end of the frame
};

// Cut every valid frame at every length: inside the headers the decoder must say truncated
// (or malformed), inside the payload it must return the bytes that are there; never crash.
TEST(Decode, TruncatedAtEveryOffset) {
    Bytes ext = test::ipv6_ext(43);
    test::append(ext, test::ipv6_ext(kIpProtoUdp, 1));
    const std::vector<TruncationCase> cases = {
        {"ethernet/ipv4/tcp", DLT_EN10MB, test::ethernet(kEtherIpv4, tcp4_packet()), 5},
        {"qinq/ipv6/tcp", DLT_EN10MB,
         test::ethernet(kEtherIpv6, tcp6_packet(), {{0x88a8, 1}, {0x8100, 2}}), 5},
        {"ethernet/ipv4-options/udp", DLT_EN10MB,
         test::ethernet(kEtherIpv4,
                        test::ipv4(kClient4, kServer4, kIpProtoUdp,
                                   test::udp(1, 2, test::text("abcd")), {.option_bytes = 8})),
         4},
        {"sll/ipv4/udp", DLT_LINUX_SLL, test::linux_sll(kEtherIpv4, udp4_packet()), 5},
        {"sll2/ipv6/tcp", DLT_LINUX_SLL2, test::linux_sll2(kEtherIpv6, tcp6_packet()), 5},
        {"null/ipv4/tcp", DLT_NULL, test::bsd_loopback(2, false, tcp4_packet()), 5},
        {"loop/ipv6/tcp", DLT_LOOP, test::bsd_loopback(28, true, tcp6_packet()), 5},
        {"raw/ipv6-ext/udp", DLT_RAW,
         test::ipv6(kClient6, kServer6, 0, ext, test::udp(1, 2, test::text("xyz"))), 3},
        {"ipv4/tcp-options", DLT_IPV4,
         test::ipv4(kClient4, kServer4, kIpProtoTcp,
                    test::tcp(1, 2, 3, 4, tcp_flags::kAck, test::text("opt"), 8)),
         3},
    };
    for (const auto& c : cases) {
        DecodedPacket full;
        ASSERT_EQ(decode(c.linktype, c.frame, full), DecodeStatus::kOk) << c.name;
        ASSERT_EQ(full.payload.size(), c.payload_size) << c.name;
        const std::size_t header_end = c.frame.size() - c.payload_size;
        for (std::size_t len = 0; len < c.frame.size(); ++len) {
            // A copy of exactly LEN bytes, so that AddressSanitizer sees any overread.
            const Bytes cut(c.frame.begin(), c.frame.begin() + static_cast<std::ptrdiff_t>(len));
            DecodedPacket p;
            const DecodeStatus status = decode(c.linktype, cut, p);
            if (len < header_end) {
                EXPECT_TRUE(status == DecodeStatus::kTruncated ||
                            status == DecodeStatus::kMalformed)
                    << c.name << " cut at " << len << ": " << to_string(status);
            } else {
                ASSERT_EQ(status, DecodeStatus::kOk) << c.name << " cut at " << len;
                EXPECT_EQ(p.payload.size(), len - header_end) << c.name << " cut at " << len;
            }
        }
    }
}

TEST(Decode, StatusNames) {
    EXPECT_STREQ(to_string(DecodeStatus::kOk), "ok");
    EXPECT_STREQ(to_string(DecodeStatus::kNotIp), "not_ip");
    EXPECT_STREQ(to_string(DecodeStatus::kUnsupportedLink), "unsupported_link");
    EXPECT_STREQ(to_string(DecodeStatus::kTruncated), "truncated");
    EXPECT_STREQ(to_string(DecodeStatus::kMalformed), "malformed");
    EXPECT_STREQ(to_string(DecodeStatus::kFragment), "fragment");
    EXPECT_STREQ(to_string(DecodeStatus::kOtherTransport), "other_transport");
}

IpAddress v6(std::initializer_list<std::uint16_t> groups) {
    IpAddress a;
    a.family = 6;
    a.bytes = test::ipv6(groups);
    return a;
}

TEST(Decode, IpAddressText) {
    IpAddress v4;
    v4.family = 4;
    v4.bytes = {255, 0, 10, 1};
    EXPECT_EQ(v4.to_string(), "255.0.10.1");
    // RFC 5952: lowercase, the longest zero run compressed (the first on a tie), a single
    // zero group left alone.
    EXPECT_EQ(v6({0x2001, 0xdb8, 0, 0, 0, 0, 0, 1}).to_string(), "2001:db8::1");
    EXPECT_EQ(v6({0, 0, 0, 0, 0, 0, 0, 0}).to_string(), "::");
    EXPECT_EQ(v6({0, 0, 0, 0, 0, 0, 0, 1}).to_string(), "::1");
    EXPECT_EQ(v6({0x2001, 0xdb8, 0, 1, 1, 1, 1, 1}).to_string(), "2001:db8:0:1:1:1:1:1");
    EXPECT_EQ(v6({0x2001, 0xdb8, 0, 0, 1, 0, 0, 1}).to_string(), "2001:db8::1:0:0:1");
    EXPECT_EQ(v6({0x2001, 0, 0, 1, 0, 0, 0, 1}).to_string(), "2001:0:0:1::1");
    EXPECT_EQ(v6({0xFE80, 0, 0, 0, 0xABCD, 0, 0, 0}).to_string(), "fe80::abcd:0:0:0");
    EXPECT_EQ(IpAddress{}.to_string(), "");
}

TEST(IpAddressText, DottedQuadAtTheEdgesOfEachByte) {
    // Every byte value width (1, 2, 3 digits) and both ends of the range, against inet_ntop.
    for (const std::array<std::uint8_t, 4> v : {std::array<std::uint8_t, 4>{0, 0, 0, 0},
                                                 {255, 255, 255, 255},
                                                 {10, 200, 3, 40},
                                                 {9, 99, 100, 1}}) {
        IpAddress a;
        a.family = 4;
        std::copy(v.begin(), v.end(), a.bytes.begin());
        char expected[INET_ADDRSTRLEN] = {};
        ASSERT_NE(inet_ntop(AF_INET, v.data(), expected, sizeof expected), nullptr);
        EXPECT_EQ(a.to_string(), expected);
    }
}

}  // namespace
}  // namespace senningen::agent
