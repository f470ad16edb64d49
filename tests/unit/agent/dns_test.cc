#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "packet_builder.h"
#include "senningen/agent/capture/pcap_file.h"
#include "senningen/agent/decode/dns.h"
#include "senningen/agent/decode/packet.h"

namespace senningen::agent {
namespace {

using test::Bytes;

Bytes header(std::uint16_t id, std::uint16_t flags, std::uint16_t qdcount,
             std::uint16_t ancount = 0) {
    Bytes b;
    test::put16(b, id);
    test::put16(b, flags);
    test::put16(b, qdcount);
    test::put16(b, ancount);
    test::put16(b, 0);
    test::put16(b, 0);
    return b;
}

void put_name(Bytes& b, const std::vector<std::string>& labels) {
    for (const auto& label : labels) {
        test::put8(b, static_cast<std::uint8_t>(label.size()));
        b.insert(b.end(), label.begin(), label.end());
    }
    test::put8(b, 0);
}

void put_pointer(Bytes& b, std::uint16_t target) {
    test::put16(b, 0xc000 | target);
}

void put_type_class(Bytes& b, std::uint16_t qtype = 1, std::uint16_t qclass = 1) {
    test::put16(b, qtype);
    test::put16(b, qclass);
}

Bytes simple_query() {
    Bytes b = header(0xbeef, 0x0100, 1);
    put_name(b, {"www", "Example", "COM"});
    put_type_class(b, 28, 1);
    return b;
}

TEST(Dns, ParsesANormalQuery) {
    DnsMessage m;
    ASSERT_EQ(parse_dns(simple_query(), m), DnsParseStatus::kOk);
    EXPECT_EQ(m.id, 0xbeef);
    EXPECT_FALSE(m.is_response);
    EXPECT_EQ(m.opcode, 0);
    EXPECT_EQ(m.rcode, 0);
    ASSERT_EQ(m.questions.size(), 1u);
    EXPECT_EQ(m.questions[0].name, "www.example.com") << "names are lowercased";
    EXPECT_EQ(m.questions[0].qtype, 28);
    EXPECT_EQ(m.questions[0].qclass, 1);
    EXPECT_TRUE(looks_like_dns(simple_query()));
}

TEST(Dns, HeaderFlags) {
    Bytes b = header(7, 0x8183, 1);  // response, RD, RA, NXDOMAIN
    put_name(b, {"nope", "test"});
    put_type_class(b);
    DnsMessage m;
    ASSERT_EQ(parse_dns(b, m), DnsParseStatus::kOk);
    EXPECT_TRUE(m.is_response);
    EXPECT_EQ(m.rcode, 3);
    EXPECT_EQ(m.opcode, 0);

    Bytes update = header(8, 0x2800, 0);  // opcode 5: UPDATE
    ASSERT_EQ(parse_dns(update, m), DnsParseStatus::kOk);
    EXPECT_EQ(m.opcode, 5);
    EXPECT_TRUE(m.questions.empty());
}

TEST(Dns, RootName) {
    Bytes b = header(1, 0, 1);
    put_name(b, {});
    put_type_class(b, 2);
    DnsMessage m;
    ASSERT_EQ(parse_dns(b, m), DnsParseStatus::kOk);
    ASSERT_EQ(m.questions.size(), 1u);
    EXPECT_EQ(m.questions[0].name, "");
    EXPECT_EQ(m.questions[0].qtype, 2);
}

TEST(Dns, FollowsCompressionPointers) {
    Bytes b = header(2, 0, 3);
    put_name(b, {"example", "com"});  // at offset 12
    put_type_class(b);
    const std::size_t mail = b.size();
    test::put8(b, 4);
    b.insert(b.end(), {'M', 'a', 'i', 'l'});
    put_pointer(b, 12);
    put_type_class(b, 15);
    // A pointer to a name that itself ends in a pointer.
    test::put8(b, 2);
    b.insert(b.end(), {'e', 'u'});
    put_pointer(b, static_cast<std::uint16_t>(mail));
    put_type_class(b, 16);
    DnsMessage m;
    ASSERT_EQ(parse_dns(b, m), DnsParseStatus::kOk);
    ASSERT_EQ(m.questions.size(), 3u);
    EXPECT_EQ(m.questions[0].name, "example.com");
    EXPECT_EQ(m.questions[1].name, "mail.example.com");
    EXPECT_EQ(m.questions[1].qtype, 15) << "parsing resumes right after the pointer";
    EXPECT_EQ(m.questions[2].name, "eu.mail.example.com");
    EXPECT_EQ(m.questions[2].qtype, 16);
}

TEST(Dns, PointerLoopsAreMalformed) {
    DnsMessage m;
    Bytes self = header(3, 0, 1);
    put_pointer(self, 12);  // points at itself
    put_type_class(self);
    EXPECT_EQ(parse_dns(self, m), DnsParseStatus::kMalformed);
    EXPECT_FALSE(looks_like_dns(self));

    // A label and a backward pointer to it: each jump is backwards, yet it never ends.
    Bytes cycle = header(3, 0, 1);
    test::put8(cycle, 1);
    test::put8(cycle, 'a');
    put_pointer(cycle, 12);
    put_type_class(cycle);
    EXPECT_EQ(parse_dns(cycle, m), DnsParseStatus::kMalformed);

    // A forward pointer (to a later pointer back to the first) is refused outright.
    Bytes forward = header(3, 0, 1);
    put_pointer(forward, 14);
    put_pointer(forward, 12);
    put_type_class(forward);
    EXPECT_EQ(parse_dns(forward, m), DnsParseStatus::kMalformed);
}

TEST(Dns, PointerOutOfBounds) {
    DnsMessage m;
    Bytes b = header(4, 0, 1);
    put_pointer(b, 0x3fff);
    put_type_class(b);
    EXPECT_EQ(parse_dns(b, m), DnsParseStatus::kMalformed);

    Bytes cut = header(4, 0, 1);
    test::put8(cut, 0xc0);  // the second pointer byte is missing
    EXPECT_EQ(parse_dns(cut, m), DnsParseStatus::kTruncated);
}

TEST(Dns, LabelTooLong) {
    DnsMessage m;
    Bytes b = header(5, 0, 1);
    test::put8(b, 64);  // 0x40: not a length, an obsolete extended label type
    b.insert(b.end(), 64, 'a');
    test::put8(b, 0);
    put_type_class(b);
    EXPECT_EQ(parse_dns(b, m), DnsParseStatus::kMalformed);

    Bytes b80 = header(5, 0, 1);
    test::put8(b80, 0x80);
    put_type_class(b80);
    EXPECT_EQ(parse_dns(b80, m), DnsParseStatus::kMalformed);
}

TEST(Dns, NameLengthLimit) {
    DnsMessage m;
    const std::string l63(63, 'x');
    Bytes longest = header(6, 0, 1);
    put_name(longest, {l63, l63, l63, std::string(61, 'y')});  // 255 bytes on the wire
    put_type_class(longest);
    ASSERT_EQ(parse_dns(longest, m), DnsParseStatus::kOk);
    EXPECT_EQ(m.questions[0].name.size(), 253u);

    Bytes too_long = header(6, 0, 1);
    put_name(too_long, {l63, l63, l63, std::string(62, 'y')});  // 256
    put_type_class(too_long);
    EXPECT_EQ(parse_dns(too_long, m), DnsParseStatus::kMalformed);
}

TEST(Dns, TruncatedHeader) {
    DnsMessage m;
    const Bytes full = simple_query();
    EXPECT_EQ(parse_dns(Bytes{}, m), DnsParseStatus::kTruncated);
    EXPECT_EQ(parse_dns(Bytes(full.begin(), full.begin() + 11), m), DnsParseStatus::kTruncated);
    EXPECT_FALSE(looks_like_dns(Bytes(full.begin(), full.begin() + 11)));
}

TEST(Dns, TruncatedAtEveryOffset) {
    const Bytes full = simple_query();
    for (std::size_t len = 0; len < full.size(); ++len) {
        const Bytes cut(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(len));
        DnsMessage m;
        EXPECT_EQ(parse_dns(cut, m), DnsParseStatus::kTruncated) << "cut at " << len;
        EXPECT_FALSE(looks_like_dns(cut)) << "cut at " << len;
    }
}

TEST(Dns, ReusedMessageIsReset) {
    DnsMessage m;
    ASSERT_EQ(parse_dns(simple_query(), m), DnsParseStatus::kOk);
    ASSERT_EQ(parse_dns(header(9, 0x8000, 0), m), DnsParseStatus::kOk);
    EXPECT_TRUE(m.questions.empty());
    EXPECT_TRUE(m.is_response);
    EXPECT_EQ(m.id, 9);
}

TEST(Dns, LooksLikeDnsRejectsOtherProtocols) {
    EXPECT_FALSE(looks_like_dns(test::text("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")));
    // A TLS ClientHello whose first bytes happen to say "one question".
    Bytes tls = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03};
    tls.insert(tls.end(), 32, 'z');
    EXPECT_FALSE(looks_like_dns(tls));
    EXPECT_FALSE(looks_like_dns(header(1, 0x0100, 0))) << "no question";

    Bytes bad_class = header(1, 0x0100, 1);
    put_name(bad_class, {"a", "b"});
    put_type_class(bad_class, 1, 0x1234);
    EXPECT_FALSE(looks_like_dns(bad_class));

    Bytes z_bit = simple_query();
    z_bit[3] |= 0x40;
    EXPECT_FALSE(looks_like_dns(z_bit));

    Bytes bad_opcode = simple_query();
    bad_opcode[2] = 0x18;  // opcode 3: unassigned
    EXPECT_FALSE(looks_like_dns(bad_opcode));

    Bytes many_answers = header(1, 0x8180, 1, 500);  // claims 500 records in 20 bytes
    put_name(many_answers, {"a"});
    put_type_class(many_answers);
    EXPECT_FALSE(looks_like_dns(many_answers));

    Bytes mdns = header(0, 0, 1);
    put_name(mdns, {"_http", "_tcp", "local"});
    put_type_class(mdns, 12, 0x8001);  // QU bit set
    EXPECT_TRUE(looks_like_dns(mdns));
}

TEST(Dns, ParsesRealResponse) {
    const std::filesystem::path path =
        std::filesystem::path(SENNINGEN_SHARED_DATA) / "pcaps/general/dns53/trace.pcap";
    if (!std::filesystem::exists(path)) {
        GTEST_SKIP() << "shared data not present: " << path;
    }
    auto file = PcapFile::open(path.string());
    ASSERT_TRUE(file) << file.error().message;
    RawPacket raw;
    auto more = (*file)->next(raw);
    ASSERT_TRUE(more && *more);
    DecodedPacket p;
    ASSERT_EQ(decode_packet((*file)->linktype(), {raw.data, raw.caplen}, p), DecodeStatus::kOk);
    ASSERT_EQ(p.ip_proto, kIpProtoUdp);
    EXPECT_TRUE(looks_like_dns(p.payload));
    DnsMessage m;
    ASSERT_EQ(parse_dns(p.payload, m), DnsParseStatus::kOk);
    EXPECT_EQ(m.id, 25701);
    EXPECT_TRUE(m.is_response);
    ASSERT_EQ(m.questions.size(), 1u);
    EXPECT_EQ(m.questions[0].name, "us.v27.distributed.net");
    EXPECT_EQ(m.questions[0].qtype, 1);
}

}  // namespace
}  // namespace senningen::agent
