// SMTP analyzer: envelope and header addresses in every RFC 5322 form, intel locations,
// STARTTLS, and input cut or split anywhere.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "analyzer_harness.h"
#include "analyzers/smtp/smtp_analyzer.h"

namespace senningen::agent {
namespace {

using test::AnalyzerRun;
using List = std::vector<std::string>;

TEST(SmtpAddresses, EveryAddressForm) {
    EXPECT_EQ(parse_address_list("a@example.com"), List{"a@example.com"});
    EXPECT_EQ(parse_address_list("John Doe <jd@example.com>"), List{"jd@example.com"});
    EXPECT_EQ(parse_address_list("\"Doe, John\" <jd@example.com>, b@example.com"),
              (List{"jd@example.com", "b@example.com"}));
    EXPECT_EQ(parse_address_list("jd@example.com (John (the) Doe), c@x.example"),
              (List{"jd@example.com", "c@x.example"}));
    EXPECT_EQ(parse_address_list("Team: a@x.example, B <b@x.example>;, solo@y.example"),
              (List{"a@x.example", "b@x.example", "solo@y.example"}));
    EXPECT_EQ(parse_address_list("undisclosed-recipients:;"), List{});
    EXPECT_EQ(parse_address_list("\"odd\\\"quote\"@x.example"), List{"\"odd\\\"quote\"@x.example"});
    EXPECT_EQ(parse_address_list("<@relay.example,@r2.example:user@x.example>"),
              List{"user@x.example"});
    EXPECT_EQ(parse_address_list("=?UTF-8?Q?J=C3=BCrgen?= <j@x.example>"), List{"j@x.example"});
    EXPECT_EQ(parse_address_list("a @ x.example"), List{"a@x.example"}) << "folding whitespace";
    EXPECT_EQ(parse_address_list("not an address, (only a comment)"), List{});
}

TEST(SmtpAddresses, EnvelopePaths) {
    EXPECT_EQ(smtp_path_address("<a@b.example> SIZE=100 BODY=8BITMIME"), "a@b.example");
    EXPECT_EQ(smtp_path_address("<>"), "");
    EXPECT_EQ(smtp_path_address(" a@b.example"), "a@b.example");
    EXPECT_EQ(smtp_path_address("<@hop.example:a@b.example>"), "a@b.example");
}

const std::string kClient =
    "EHLO me.example\r\nMAIL FROM:<Boss@Corp.example>\r\nRCPT TO:<a@corp.example>\r\n"
    "RCPT TO:<b@corp.example>\r\nDATA\r\n"
    "From: Boss <Boss@Corp.example>\r\nTo: Ops: a@corp.example, b@corp.example;\r\n"
    "Cc: \"C, D\" <cd@corp.example>,\r\n e@corp.example\r\nSubject: hi\r\n\r\nbody\r\n"
    "..dot\r\n.\r\nQUIT\r\n";
const std::string kServer =
    "220 mx.example ESMTP\r\n250-mx.example\r\n250 OK\r\n250 OK\r\n250 OK\r\n250 OK\r\n354 go\r\n"
    "250 queued\r\n221 bye\r\n";

TEST(SmtpAnalyzer, TransactionRecordAndIntelLocations) {
    AnalyzerRun run("smtp", kIpProtoTcp, 25);
    ASSERT_TRUE(run.ok());
    run.feed(1, kServer);
    run.feed(0, kClient);
    run.end();
    const auto smtp = run.host.records_of("smtp");
    ASSERT_EQ(smtp.size(), 1U);
    EXPECT_NE(smtp[0].find("\"rcpt_to\":[\"a@corp.example\",\"b@corp.example\"]"), std::string::npos);
    EXPECT_NE(smtp[0].find("\"cc\":[\"cd@corp.example\",\"e@corp.example\"]"), std::string::npos)
        << smtp[0];
    EXPECT_TRUE(run.host.saw("SMTP::IN_MAIL_FROM", "Boss@Corp.example"));
    EXPECT_TRUE(run.host.saw("SMTP::IN_RCPT_TO", "b@corp.example"));
    EXPECT_TRUE(run.host.saw("SMTP::IN_FROM", "Boss@Corp.example"));
    EXPECT_TRUE(run.host.saw("SMTP::IN_TO", "a@corp.example"));
    EXPECT_TRUE(run.host.saw("SMTP::IN_CC", "e@corp.example"));
    EXPECT_TRUE(run.host.weirds.empty());
}

// The rest of Zeek's SMTP where locations: the Received path, X-Originating-IP, the mailer
// (SMTP::IN_HEADER) and URLs in the message text; the smtp record carries path, user_agent and
// x_originating_ip as Zeek's smtp.log does.
TEST(SmtpAnalyzer, ReceivedPathOriginatingIpMailerAndMessageUrls) {
    AnalyzerRun run("smtp", kIpProtoTcp, 25);
    ASSERT_TRUE(run.ok());
    run.feed(1, kServer);
    run.feed(0,
             "EHLO me.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<ops@plant.example>\r\n"
             "DATA\r\n"
             "Received: from evil (mx.evil.example [203.0.113.66])\r\n by mx.plant.example\r\n"
             "Received: from relay ([IPv6:2001:DB8::25]) by mx.evil.example\r\n"
             "X-Originating-IP: [203.0.113.77]\r\nX-Mailer: EvilMailer 1.0\r\n"
             "Subject: hi\r\n\r\nClick http://phish.bad-vendor.example/login, or\r\n"
             "<HTTPS://Files.Example/a?b=1> now; not mailto:x@y or http://\r\n.\r\nQUIT\r\n");
    run.end();
    EXPECT_TRUE(run.host.saw("SMTP::IN_RECEIVED_HEADER", "203.0.113.66"));
    EXPECT_TRUE(run.host.saw("SMTP::IN_RECEIVED_HEADER", "2001:db8::25")) << "canonical IPv6";
    EXPECT_TRUE(run.host.saw("SMTP::IN_X_ORIGINATING_IP_HEADER", "203.0.113.77"));
    EXPECT_TRUE(run.host.saw("SMTP::IN_HEADER", "EvilMailer 1.0"));
    EXPECT_TRUE(run.host.saw("SMTP::IN_MESSAGE", "phish.bad-vendor.example/login"));
    EXPECT_TRUE(run.host.saw("SMTP::IN_MESSAGE", "Files.Example/a?b=1"));
    const auto smtp = run.host.records_of("smtp");
    ASSERT_EQ(smtp.size(), 1U);
    EXPECT_NE(smtp[0].find("\"path\":[\"203.0.113.66\",\"2001:db8::25\"]"), std::string::npos)
        << smtp[0];
    EXPECT_NE(smtp[0].find("\"user_agent\":\"EvilMailer 1.0\""), std::string::npos);
    EXPECT_NE(smtp[0].find("\"x_originating_ip\":\"203.0.113.77\""), std::string::npos);
    EXPECT_TRUE(run.host.weirds.empty());
}

TEST(SmtpAnalyzer, SplitAtEveryByteGivesTheSameRecords) {
    AnalyzerRun whole("smtp", kIpProtoTcp, 25);
    whole.feed(0, kClient);
    whole.end();
    AnalyzerRun bytewise("smtp", kIpProtoTcp, 25);
    bytewise.feed(0, kClient, 1);
    bytewise.end();
    EXPECT_EQ(whole.host.records, bytewise.host.records);
    EXPECT_EQ(whole.host.observations.size(), bytewise.host.observations.size());
}

TEST(SmtpAnalyzer, CutAtEveryOffsetNeverCrashes) {
    for (std::size_t cut = 0; cut <= kClient.size(); ++cut) {
        AnalyzerRun run("smtp", kIpProtoTcp, 25);
        run.feed(0, kClient.substr(0, cut));
        run.end();
        const bool has_mail = cut > kClient.find("MAIL FROM") + 30;
        EXPECT_EQ(run.host.records_of("smtp").size(), has_mail ? 1U : 0U) << "cut at " << cut;
    }
}

TEST(SmtpAnalyzer, StartTlsEndsParsingAndLongLinesAreWeird) {
    AnalyzerRun run("smtp", kIpProtoTcp, 25);
    run.feed(0, "EHLO x\r\nSTARTTLS\r\n");
    run.feed(1, "220 2.0.0 Ready to start TLS\r\n");
    run.feed(0, "\x16\x03\x01 binary MAIL FROM:<x@y.example>\r\n");
    run.end();
    EXPECT_TRUE(run.host.observations.empty());

    AnalyzerRun longline("smtp", kIpProtoTcp, 25);
    longline.feed(0, std::string(10000, 'x') + "\r\nMAIL FROM:<ok@y.example>\r\n");
    longline.end();
    EXPECT_EQ(longline.host.weirds, std::vector<std::string>{"smtp_line_too_long"});
    EXPECT_TRUE(longline.host.saw("SMTP::IN_MAIL_FROM", "ok@y.example"));
}

TEST(SmtpAnalyzer, DetectsGreetingOrHelo) {
    const auto* spec = test::find_spec("smtp", kIpProtoTcp);
    ASSERT_NE(spec, nullptr);
    auto span = [](std::string_view s) {
        return std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(s.data()),
                                             s.size());
    };
    EXPECT_TRUE(spec->detect(span("220 mx.example ESMTP Postfix\r\n"), 1, 25, 5000));
    EXPECT_FALSE(spec->detect(span("220 ProFTPD Server ready\r\n"), 1, 21, 5000));
    EXPECT_TRUE(spec->detect(span("EHLO client\r\n"), 0, 5000, 2525));
}

}  // namespace
}  // namespace senningen::agent
