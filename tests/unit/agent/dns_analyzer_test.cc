// DNS analyzer: answers of every common type, intel at DNS::IN_REQUEST / DNS::IN_RESPONSE,
// TCP framing split anywhere, and cut answers.
#include <gtest/gtest.h>

#include <string>

#include "analyzer_harness.h"
#include "senningen/agent/decode/dns.h"

namespace senningen::agent {
namespace {

using test::AnalyzerRun;

std::string be16(unsigned v) { return {static_cast<char>(v >> 8), static_cast<char>(v & 0xff)}; }
std::string be32(std::uint32_t v) { return be16(v >> 16) + be16(v & 0xffff); }
std::string name(std::initializer_list<std::string> labels) {
    std::string out;
    for (const auto& l : labels) out += static_cast<char>(l.size()) + l;
    return out + std::string(1, '\0');
}
std::string rr(const std::string& owner, unsigned type, const std::string& rdata) {
    return owner + be16(type) + be16(1) + be32(300) + be16(rdata.size()) + rdata;
}

std::string response() {
    const std::string q = name({"www", "example", "com"});
    std::string m = be16(0x1234) + be16(0x8580) + be16(1) + be16(7) + be16(0) + be16(0) + q +
                    be16(1) + be16(1);
    const std::string ptr_to_q = "\xc0\x0c";  // the question's name
    m += rr(ptr_to_q, 5, name({"cdn", "example", "net"}));
    m += rr(ptr_to_q, 1, std::string("\xc6\x33\x64\x07", 4));
    m += rr(ptr_to_q, 28, std::string("\x20\x01\x0d\xb8", 4) + std::string(11, '\0') + "\x01");
    m += rr(ptr_to_q, 15, be16(10) + name({"mx", "example", "com"}));
    m += rr(ptr_to_q, 2, name({"ns1", "example", "com"}));
    m += rr(ptr_to_q, 16, std::string("\x05hello\x05world", 12));
    m += rr(ptr_to_q, 12, ptr_to_q);
    return m;
}

TEST(DnsAnswers, EveryCommonTypeAsText) {
    const std::string m = response();
    DnsMessage msg;
    ASSERT_EQ(parse_dns({reinterpret_cast<const std::uint8_t*>(m.data()), m.size()}, msg),
              DnsParseStatus::kOk);
    EXPECT_EQ(msg.answer_status, DnsParseStatus::kOk);
    EXPECT_TRUE(msg.aa);
    EXPECT_TRUE(msg.rd);
    EXPECT_TRUE(msg.ra);
    ASSERT_EQ(msg.answers.size(), 7U);
    EXPECT_EQ(msg.answers[0].data, "cdn.example.net");
    EXPECT_EQ(msg.answers[1].data, "198.51.100.7");
    EXPECT_EQ(msg.answers[2].data, "2001:db8::1");
    EXPECT_EQ(msg.answers[3].data, "mx.example.com");
    EXPECT_EQ(msg.answers[4].data, "ns1.example.com");
    EXPECT_EQ(msg.answers[5].data, "hello world");
    EXPECT_EQ(msg.answers[6].data, "www.example.com");
    EXPECT_EQ(msg.answers[1].ttl, 300U);
    EXPECT_EQ(dns_rcode_name(3), "NXDOMAIN");
    EXPECT_EQ(dns_type_name(28), "AAAA");
}

TEST(DnsAnswers, CutAnswersKeepTheQuestion) {
    const std::string m = response();
    const std::size_t question_end = 12 + 17 + 4;
    for (std::size_t cut = question_end; cut < m.size(); ++cut) {
        DnsMessage msg;
        ASSERT_EQ(parse_dns({reinterpret_cast<const std::uint8_t*>(m.data()), cut}, msg),
                  DnsParseStatus::kOk)
            << cut;
        EXPECT_EQ(msg.questions.size(), 1U);
        EXPECT_NE(msg.answer_status, DnsParseStatus::kOk) << "cut at " << cut;
        EXPECT_LT(msg.answers.size(), 7U);
    }
}

TEST(DnsAnalyzer, ResponseNamesAndAddressesAtInResponse) {
    AnalyzerRun run("dns", kIpProtoUdp, 53);
    run.feed(1, response());
    EXPECT_TRUE(run.host.saw("DNS::IN_RESPONSE", "cdn.example.net"));
    EXPECT_TRUE(run.host.saw("DNS::IN_RESPONSE", "198.51.100.7"));
    EXPECT_TRUE(run.host.saw("DNS::IN_RESPONSE", "2001:db8::1"));
    EXPECT_TRUE(run.host.saw("DNS::IN_RESPONSE", "mx.example.com"));
    EXPECT_FALSE(run.host.saw("DNS::IN_REQUEST", "www.example.com")) << "answers are not requests";
    const auto dns = run.host.records_of("dns");
    ASSERT_EQ(dns.size(), 1U);
    EXPECT_NE(dns[0].find("\"rcode_name\":\"NOERROR\""), std::string::npos);
}

TEST(DnsAnalyzer, TcpFramingSplitAnywhere) {
    const std::string m = response();
    const std::string framed = be16(m.size()) + m + be16(m.size()) + m;
    const auto* spec = test::find_spec("dns", kIpProtoTcp);
    ASSERT_NE(spec, nullptr);
    EXPECT_TRUE(spec->detect({reinterpret_cast<const std::uint8_t*>(framed.data()), framed.size()},
                             1, 53, 4000));
    for (std::size_t chunk : {std::size_t{1}, std::size_t{2}, std::size_t{5}, framed.size()}) {
        AnalyzerRun run("dns", kIpProtoTcp, 53);
        run.feed(1, framed, chunk);
        run.end();
        EXPECT_EQ(run.host.records_of("dns").size(), 2U) << "chunk " << chunk;
        EXPECT_TRUE(run.host.weirds.empty());
    }
    AnalyzerRun cut("dns", kIpProtoTcp, 53);
    cut.feed(1, framed.substr(0, framed.size() - 3));
    cut.end();
    EXPECT_EQ(cut.host.records_of("dns").size(), 1U);
    EXPECT_EQ(cut.host.weirds, std::vector<std::string>{"dns_tcp_truncated"});
    AnalyzerRun tiny("dns", kIpProtoTcp, 53);
    tiny.feed(0, std::string("\x00\x03" "abc", 5));
    EXPECT_EQ(tiny.host.weirds, std::vector<std::string>{"dns_tcp_bad_length"});
}

TEST(DnsAnalyzer, AnswerWithoutQuestionIsRecognised) {
    // An mDNS announcement: a response with no question, one answer.
    const std::string m = be16(0) + be16(0x8400) + be16(0) + be16(1) + be16(0) + be16(0) +
                          rr(name({"printer", "local"}), 1, std::string("\xc0\x00\x02\x05", 4));
    EXPECT_TRUE(looks_like_dns({reinterpret_cast<const std::uint8_t*>(m.data()), m.size()}));
    const std::string query_without_question =
        be16(1) + be16(0x0100) + be16(0) + be16(1) + be16(0) + be16(0) + rr(name({"a"}), 1, "1234");
    EXPECT_FALSE(looks_like_dns({reinterpret_cast<const std::uint8_t*>(query_without_question.data()),
                                 query_without_question.size()}));
}

}  // namespace
}  // namespace senningen::agent
