// Tests of the Zeek-format intel store: the #fields header, bad and unsupported lines,
// canonical addresses and domains, merging across files, and a large feed.
#include "senningen/agent/intel/intel_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace senningen::agent {
namespace {

namespace fs = std::filesystem;
using common::ErrorCode;

class IntelStoreTest : public ::testing::Test {
protected:
    void SetUp() override {
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        dir_ = fs::temp_directory_path() /
               ("senningen-intel-" + std::string(info->name()) + "-" + std::to_string(::getpid()));
        fs::remove_all(dir_);
        fs::create_directories(dir_);
    }
    void TearDown() override { fs::remove_all(dir_); }

    std::string write(const std::string& name, const std::string& text) {
        const fs::path path = dir_ / name;
        std::ofstream(path, std::ios::binary) << text;
        return path.string();
    }

    fs::path dir_;
    IntelStore store_;
    IntelLoadStats stats_;
};

TEST(IntelType, ZeekNamesRoundTrip) {
    EXPECT_EQ(to_string(IntelType::kAddr), "Intel::ADDR");
    EXPECT_EQ(to_string(IntelType::kDomain), "Intel::DOMAIN");
    EXPECT_EQ(parse_intel_type("Intel::ADDR"), IntelType::kAddr);
    EXPECT_EQ(parse_intel_type("Intel::DOMAIN"), IntelType::kDomain);
    EXPECT_EQ(parse_intel_type("Intel::PUBKEY_HASH"), std::nullopt);
    EXPECT_EQ(parse_intel_type("ADDR"), std::nullopt);
}

TEST_F(IntelStoreTest, LoadsZeekFileWithLogHeaders) {
    const auto path = write("feed.intel",
                            "#separator \\x09\n"
                            "#set_separator\t,\n"
                            "#path\tintel\n"
                            "# a comment from the feed's author\n"
                            "#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc\n"
                            "192.0.2.10\tIntel::ADDR\tfeed-a\tC2 server\n"
                            "\n"
                            "evil.example.com\tIntel::DOMAIN\tfeed-a\t-\n");
    ASSERT_TRUE(store_.load_file(path, stats_));
    EXPECT_EQ(stats_.loaded, 2U);
    EXPECT_EQ(stats_.skipped, 0U);
    EXPECT_TRUE(stats_.problems.empty());
    EXPECT_EQ(store_.size(), 2U);

    const Indicator* addr = store_.find_addr("192.0.2.10");
    ASSERT_NE(addr, nullptr);
    EXPECT_EQ(addr->value, "192.0.2.10");
    EXPECT_EQ(addr->type, IntelType::kAddr);
    EXPECT_EQ(addr->source_list(), std::vector<std::string>{"feed-a"});
    EXPECT_EQ(addr->meta.to_map(),
              (std::map<std::string, std::string>{{"meta.desc", "C2 server"}}));

    const Indicator* domain = store_.find_domain("evil.example.com");
    ASSERT_NE(domain, nullptr);
    EXPECT_EQ(domain->type, IntelType::kDomain);
    EXPECT_TRUE(domain->meta.empty());  // "-" is an empty field, not the text "-"

    EXPECT_EQ(store_.find_addr("192.0.2.11"), nullptr);
    EXPECT_EQ(store_.find_domain("example.com"), nullptr);
    // Types are kept apart: a domain is not an address.
    EXPECT_EQ(store_.find_addr("evil.example.com"), nullptr);
}

TEST_F(IntelStoreTest, ColumnsInAnyOrderAndExtraMetaKept) {
    const auto path = write("feed.intel",
                            "#fields\tmeta.url\tindicator_type\tmeta.source\tindicator\t"
                            "meta.do_notice\tunrelated\n"
                            "https://ti.example/1\tIntel::DOMAIN\tvendor\tBad.Example.NET\tT\tx\n"
                            "-\tIntel::ADDR\t-\t198.51.100.7\tF\ty\n");
    ASSERT_TRUE(store_.load_file(path, stats_));
    EXPECT_EQ(stats_.loaded, 2U);

    const Indicator* domain = store_.find_domain("bad.example.net");
    ASSERT_NE(domain, nullptr);
    EXPECT_EQ(domain->value, "bad.example.net");
    EXPECT_EQ(domain->source_list(), std::vector<std::string>{"vendor"});
    EXPECT_EQ(domain->meta.to_map(),
              (std::map<std::string, std::string>{{"meta.url", "https://ti.example/1"},
                                                  {"meta.do_notice", "T"}}));

    const Indicator* addr = store_.find_addr("198.51.100.7");
    ASSERT_NE(addr, nullptr);
    EXPECT_TRUE(addr->source_list().empty());
    EXPECT_EQ(addr->meta.to_map(), (std::map<std::string, std::string>{{"meta.do_notice", "F"}}));
}

TEST_F(IntelStoreTest, BadLinesAreCountedWithFileAndLine) {
    const auto path = write("bad.intel",
                            "#fields\tindicator\tindicator_type\tmeta.source\n"  // line 1
                            "192.0.2.1\tIntel::ADDR\n"                           // 2: 2 fields
                            "-\tIntel::ADDR\tsrc\n"                              // 3: empty
                            "192.0.2.2\tIntel::HOST\tsrc\n"                      // 4: unknown
                            "192.0.2.300\tIntel::ADDR\tsrc\n"                    // 5: bad addr
                            "fe80::1%eth0\tIntel::ADDR\tsrc\n"                   // 6: bad addr
                            "http://x.example/\tIntel::DOMAIN\tsrc\n"            // 7: not DNS
                            "a..b\tIntel::DOMAIN\tsrc\n"                         // 8: empty label
                            "192.0.2.3\t-\tsrc\n"                                // 9: no type
                            "192.0.2.4\tIntel::ADDR\tsrc\textra\n"               // 10: 4 fields
                            "192.0.2.5\tIntel::ADDR\tsrc\r\n");                  // 11: good, CRLF
    ASSERT_TRUE(store_.load_file(path, stats_));
    EXPECT_EQ(stats_.loaded, 1U);
    EXPECT_EQ(stats_.skipped, 9U);
    const std::vector<std::string> expected = {
        path + ":2: 2 fields, but the #fields header names 3 columns",
        path + ":3: empty indicator",
        path + ":4: unknown indicator type 'Intel::HOST'",
        path + ":5: '192.0.2.300' is not an IPv4 or IPv6 address",
        path + ":6: 'fe80::1%eth0' is not an IPv4 or IPv6 address",
        path +
            ":7: 'http://x.example/' is not a DNS name (letters, digits, '-', '_' and dots; "
            "internationalised names in xn-- form)",
        path +
            ":8: 'a..b' is not a DNS name (letters, digits, '-', '_' and dots; "
            "internationalised names in xn-- form)",
        path + ":9: empty indicator type",
        path + ":10: 4 fields, but the #fields header names 3 columns",
    };
    EXPECT_EQ(stats_.problems, expected);
    EXPECT_NE(store_.find_addr("192.0.2.5"), nullptr);
    EXPECT_EQ(store_.size(), 1U);
}

TEST_F(IntelStoreTest, UnsupportedZeekTypesAreSkippedHonestly) {
    const auto path = write("types.intel",
                            "#fields\tindicator\tindicator_type\tmeta.source\n"
                            "aa:bb:cc\tIntel::PUBKEY_HASH\ts\n"
                            "x\tIntel::NOPE\ts\n"
                            "192.0.2.9\tIntel::ADDR\ts\n");
    ASSERT_TRUE(store_.load_file(path, stats_));
    EXPECT_EQ(stats_.loaded, 1U);
    EXPECT_EQ(stats_.skipped, 2U);
    ASSERT_EQ(stats_.problems.size(), 2U);
    EXPECT_EQ(stats_.problems[0],
              path + ":2: indicator type Intel::PUBKEY_HASH is not supported yet");
    EXPECT_EQ(stats_.problems[1], path + ":3: unknown indicator type 'Intel::NOPE'");
}

TEST(IntelType, EveryZeekTypeRoundTrips) {
    for (const char* name : {"Intel::ADDR", "Intel::SUBNET", "Intel::DOMAIN", "Intel::URL",
                             "Intel::EMAIL", "Intel::FILE_HASH", "Intel::FILE_NAME",
                             "Intel::CERT_HASH", "Intel::SOFTWARE", "Intel::USER_NAME"}) {
        const auto type = parse_intel_type(name);
        ASSERT_TRUE(type.has_value()) << name;
        EXPECT_EQ(to_string(*type), name);
    }
}

TEST_F(IntelStoreTest, EveryTypeIsCanonicalAndFound) {
    const auto path = write(
        "all.intel",
        "#fields\tindicator\tindicator_type\tmeta.source\n"
        "http://Evil.Example/Path?q=1\tIntel::URL\ts\n"
        "<Bad@Example.COM>\tIntel::EMAIL\ts\n"
        "F47D6E9AD254DBCD73BF301A5AB636B8DBB8563E\tIntel::CERT_HASH\ts\n"
        "EvilBot/6.6\tIntel::SOFTWARE\ts\n"
        "Administrator\tIntel::USER_NAME\ts\n"
        "payload.exe\tIntel::FILE_NAME\ts\n"
        "d41d8cd98f00b204e9800998ecf8427e\tIntel::FILE_HASH\ts\n"
        "not-a-mail\tIntel::EMAIL\ts\n"
        "abcd\tIntel::CERT_HASH\ts\n");
    ASSERT_TRUE(store_.load_file(path, stats_));
    EXPECT_EQ(stats_.loaded, 7U);
    EXPECT_EQ(stats_.skipped, 2U);
    EXPECT_NE(store_.find(IntelType::kUrl, "evil.example/Path?q=1"), nullptr);
    EXPECT_NE(store_.find(IntelType::kUrl, "https://EVIL.example/Path?q=1"), nullptr);
    // Zeek lowers every indicator that is not an address, and what it sees (Intel::find).
    EXPECT_NE(store_.find(IntelType::kUrl, "evil.example/path?Q=1"), nullptr);
    EXPECT_EQ(store_.find(IntelType::kUrl, "evil.example/path?q=2"), nullptr);
    EXPECT_NE(store_.find(IntelType::kEmail, "bad@example.com"), nullptr);
    EXPECT_NE(store_.find(IntelType::kEmail, "<BAD@example.com>"), nullptr);
    EXPECT_NE(store_.find(IntelType::kCertHash, "f47d6e9ad254dbcd73bf301a5ab636b8dbb8563e"),
              nullptr);
    EXPECT_NE(store_.find(IntelType::kSoftware, "EvilBot/6.6"), nullptr);
    EXPECT_NE(store_.find(IntelType::kSoftware, "evilbot/6.6"), nullptr);
    EXPECT_EQ(store_.find(IntelType::kSoftware, "evilbot/6.7"), nullptr);
    EXPECT_NE(store_.find(IntelType::kUserName, "administrator"), nullptr);
    EXPECT_NE(store_.find(IntelType::kFileName, "PAYLOAD.EXE"), nullptr);
    EXPECT_EQ(store_.find(IntelType::kFileName, "payload.ex"), nullptr);
    EXPECT_NE(store_.find(IntelType::kFileHash, "D41D8CD98F00B204E9800998ECF8427E"), nullptr);
    EXPECT_EQ(store_.find(IntelType::kCertHash, "zz"), nullptr);
    EXPECT_EQ(store_.size(), 7U);
}

TEST_F(IntelStoreTest, SubnetsMatchTheLongestPrefix) {
    const auto path = write("nets.intel",
                            "#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc\n"
                            "10.0.0.0/8\tIntel::SUBNET\ts\twide\n"
                            "10.1.2.77/24\tIntel::SUBNET\ts\tnarrow\n"
                            "2001:db8::/32\tIntel::SUBNET\ts\tv6\n"
                            "0.0.0.0/0\tIntel::SUBNET\ts\teverything\n"
                            "10.0.0.0/33\tIntel::SUBNET\ts\tbad\n"
                            "10.0.0.0\tIntel::SUBNET\ts\tbad\n");
    ASSERT_TRUE(store_.load_file(path, stats_));
    EXPECT_EQ(stats_.loaded, 4U);
    EXPECT_EQ(stats_.skipped, 2U);
    const Indicator* narrow = store_.find_subnet("10.1.2.200");
    ASSERT_NE(narrow, nullptr);
    EXPECT_EQ(narrow->value, "10.1.2.0/24") << "host bits cleared, as Zeek prints subnets";
    EXPECT_EQ(narrow->meta.at("meta.desc"), "narrow");
    EXPECT_EQ(store_.find_subnet("10.9.9.9")->value, "10.0.0.0/8");
    EXPECT_EQ(store_.find_subnet("192.0.2.1")->value, "0.0.0.0/0");
    EXPECT_EQ(store_.find(IntelType::kSubnet, "2001:db8:ffff::1")->value, "2001:db8::/32");
    EXPECT_EQ(store_.find_subnet("2001:db9::1"), nullptr) << "IPv4 /0 does not cover IPv6";
    EXPECT_EQ(store_.find_subnet("::ffff:10.1.2.3")->value, "10.1.2.0/24") << "v4-mapped";
    EXPECT_EQ(store_.find_subnet("not an address"), nullptr);
    std::array<const Indicator*, 129> all;
    ASSERT_EQ(store_.find_subnets("10.1.2.200", all), 3U) << "every subnet holding the address";
    EXPECT_EQ(all[0]->value, "10.1.2.0/24");
    EXPECT_EQ(all[1]->value, "10.0.0.0/8");
    EXPECT_EQ(all[2]->value, "0.0.0.0/0");
    EXPECT_EQ(store_.find_subnets("2001:db9::1", all), 0U);
}

TEST_F(IntelStoreTest, WhitelistColumnIsKept) {
    const auto path = write("wl.intel",
                            "#fields\tindicator\tindicator_type\tmeta.source\tmeta.whitelist\n"
                            "192.0.2.1\tIntel::ADDR\ts\tT\n"
                            "192.0.2.2\tIntel::ADDR\ts\tF\n"
                            "192.0.2.3\tIntel::ADDR\ts\t-\n");
    ASSERT_TRUE(store_.load_file(path, stats_));
    EXPECT_TRUE(is_whitelisted(*store_.find_addr("192.0.2.1")));
    EXPECT_FALSE(is_whitelisted(*store_.find_addr("192.0.2.2")));
    EXPECT_FALSE(is_whitelisted(*store_.find_addr("192.0.2.3")));
}

// The lookup cost does not grow with the number of subnets (one probe per prefix length in
// use). 100k keep the Debug suite quick: loading 1M lines takes over a minute there.
TEST_F(IntelStoreTest, HundredThousandSubnetsAreEachFound) {
    std::string text = "#fields\tindicator\tindicator_type\n";
    text.reserve(3'000'000);
    // 100k /24-/32 networks spread over 10.0.0.0/8 and 11.0.0.0/8.
    for (int i = 0; i < 100'000; ++i) {
        const int prefix = 24 + (i % 9);
        text += std::to_string(10 + (i & 1)) + "." + std::to_string((i >> 9) & 0xff) + "." +
                std::to_string((i >> 1) & 0xff) + ".0/" + std::to_string(prefix) +
                "\tIntel::SUBNET\n";
    }
    const auto path = write("million.intel", text);
    ASSERT_TRUE(store_.load_file(path, stats_));
    EXPECT_EQ(stats_.skipped, 0U);
    // Lookup speed is the network benchmark's business (tests/bench/network), not a timed test.
    int found = 0;
    for (int i = 0; i < 100'000; ++i) {
        const std::string addr = std::to_string(10 + (i & 1)) + "." +
                                 std::to_string((i >> 9) & 0xff) + "." +
                                 std::to_string((i >> 1) & 0xff) + ".0";
        if (store_.find_subnet(addr) != nullptr) ++found;
    }
    EXPECT_EQ(found, 100'000);
    EXPECT_EQ(store_.find_subnet("12.0.0.1"), nullptr);
}

TEST_F(IntelStoreTest, ProblemListIsCappedButEveryLineCounted) {
    std::string text = "#fields\tindicator\tindicator_type\n";
    for (int i = 0; i < 250; ++i) text += "not-an-address-" + std::to_string(i) + "\tIntel::ADDR\n";
    const auto path = write("many-bad.intel", text);
    ASSERT_TRUE(store_.load_file(path, stats_));
    EXPECT_EQ(stats_.skipped, 250U);
    ASSERT_EQ(stats_.problems.size(), 100U);
    EXPECT_EQ(stats_.problems.front(),
              path + ":2: 'not-an-address-0' is not an IPv4 or IPv6 address");
    EXPECT_EQ(stats_.problems.back(),
              path + ":101: 'not-an-address-99' is not an IPv4 or IPv6 address");
}

TEST_F(IntelStoreTest, AddressesAreCanonical) {
    const auto path = write("v6.intel",
                            "#fields\tindicator\tindicator_type\n"
                            "2001:DB8:0:0::1\tIntel::ADDR\n"
                            "2001:0db8:0000:0000:0000:ff00:0042:8329\tIntel::ADDR\n"
                            "2001:db8:0:1:1:1:1:1\tIntel::ADDR\n"
                            "::FFFF:203.0.113.5\tIntel::ADDR\n"
                            "0:0:0:0:0:0:0:1\tIntel::ADDR\n");
    ASSERT_TRUE(store_.load_file(path, stats_));
    EXPECT_EQ(stats_.skipped, 0U) << (stats_.problems.empty() ? "" : stats_.problems[0]);
    ASSERT_NE(store_.find_addr("2001:db8::1"), nullptr);
    EXPECT_EQ(store_.find_addr("2001:db8::1")->value, "2001:db8::1");
    EXPECT_NE(store_.find_addr("2001:db8::ff00:42:8329"), nullptr);
    // RFC 5952: a single zero group is not shortened to "::".
    EXPECT_NE(store_.find_addr("2001:db8:0:1:1:1:1:1"), nullptr);
    EXPECT_NE(store_.find_addr("::1"), nullptr);
    // An IPv4-mapped address is the IPv4 address, as in Zeek.
    EXPECT_NE(store_.find_addr("203.0.113.5"), nullptr);
    // Lookups take the canonical text (IpAddress::to_string()), nothing else.
    EXPECT_EQ(store_.find_addr("2001:DB8::1"), nullptr);
    EXPECT_EQ(store_.size(), 5U);
}

TEST_F(IntelStoreTest, DomainsIgnoreCaseAndTrailingDot) {
    const auto path = write("dns.intel",
                            "#fields\tindicator\tindicator_type\n"
                            "WWW.Evil-Site.Example.\tIntel::DOMAIN\n"
                            "_dmarc.example.org\tIntel::DOMAIN\n"
                            "xn--bcher-kva.example\tIntel::DOMAIN\n");
    ASSERT_TRUE(store_.load_file(path, stats_));
    EXPECT_EQ(stats_.loaded, 3U);
    const Indicator* site = store_.find_domain("www.evil-site.example");
    ASSERT_NE(site, nullptr);
    EXPECT_EQ(site->value, "www.evil-site.example");
    EXPECT_EQ(store_.find_domain("WWW.EVIL-SITE.EXAMPLE."), site);
    EXPECT_EQ(store_.find_domain("www.evil-site.example."), site);
    EXPECT_NE(store_.find_domain("_DMARC.example.org"), nullptr);
    EXPECT_NE(store_.find_domain("xn--bcher-kva.example"), nullptr);
    // Exact names only: neither parents nor children of a listed domain.
    EXPECT_EQ(store_.find_domain("evil-site.example"), nullptr);
    EXPECT_EQ(store_.find_domain("a.www.evil-site.example"), nullptr);
    EXPECT_EQ(store_.find_domain(""), nullptr);
    EXPECT_EQ(store_.find_domain("."), nullptr);
    EXPECT_EQ(store_.find_domain(std::string(300, 'a')), nullptr);
}

TEST_F(IntelStoreTest, SourcesMergeAcrossLinesAndFiles) {
    const auto first = write("a.intel",
                             "#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc\n"
                             "192.0.2.1\tIntel::ADDR\tfeed-a\tfirst\n"
                             "192.0.2.1\tIntel::ADDR\tfeed-a\t-\n"
                             "Evil.Example\tIntel::DOMAIN\tfeed-a\t-\n");
    const auto second = write("b.intel",
                              "#fields\tindicator_type\tindicator\tmeta.desc\tmeta.source\n"
                              "Intel::ADDR\t192.0.2.1\tsecond\tfeed-b\n"
                              "Intel::DOMAIN\tevil.example.\t-\tfeed-a\n"
                              "Intel::DOMAIN\tevil.example\t-\tfeed-c\n");
    ASSERT_TRUE(store_.load_file(first, stats_));
    ASSERT_TRUE(store_.load_file(second, stats_));
    EXPECT_EQ(stats_.loaded, 6U);
    EXPECT_EQ(store_.size(), 2U);

    const Indicator* addr = store_.find_addr("192.0.2.1");
    ASSERT_NE(addr, nullptr);
    EXPECT_EQ(addr->source_list(), (std::vector<std::string>{"feed-a", "feed-b"}));
    EXPECT_EQ(addr->meta.at("meta.desc"), "second");  // the last non-empty value

    const Indicator* domain = store_.find_domain("evil.example");
    ASSERT_NE(domain, nullptr);
    EXPECT_EQ(domain->source_list(), (std::vector<std::string>{"feed-a", "feed-c"}));
}

TEST_F(IntelStoreTest, MissingFileIsNotFound) {
    const std::string path = (dir_ / "absent.intel").string();
    auto loaded = store_.load_file(path, stats_);
    ASSERT_FALSE(loaded);
    EXPECT_EQ(loaded.error().code, ErrorCode::kNotFound);
    EXPECT_NE(loaded.error().message.find(path), std::string::npos);
}

TEST_F(IntelStoreTest, MissingHeaderIsAParseError) {
    const auto path = write("noheader.intel",
                            "# exported 2026-01-01\n"
                            "192.0.2.1\tIntel::ADDR\tfeed\n");
    auto loaded = store_.load_file(path, stats_);
    ASSERT_FALSE(loaded);
    EXPECT_EQ(loaded.error().code, ErrorCode::kParse);
    EXPECT_EQ(loaded.error().message, path + ":2: indicator line before any #fields header");
    EXPECT_EQ(store_.size(), 0U);

    const auto only_comments = write("comments.intel", "# nothing here\n#path\tintel\n");
    auto empty = store_.load_file(only_comments, stats_);
    ASSERT_FALSE(empty);
    EXPECT_EQ(empty.error().code, ErrorCode::kParse);
    EXPECT_EQ(empty.error().message, only_comments + ":2: no #fields header in the file");
}

TEST_F(IntelStoreTest, HeaderWithoutRequiredColumnsIsAParseError) {
    const auto no_type = write("notype.intel",
                               "#fields\tindicator\tmeta.source\n"
                               "192.0.2.1\tfeed\n");
    auto loaded = store_.load_file(no_type, stats_);
    ASSERT_FALSE(loaded);
    EXPECT_EQ(loaded.error().code, ErrorCode::kParse);
    EXPECT_EQ(loaded.error().message,
              no_type + ":1: #fields header has no 'indicator_type' column");

    const auto no_indicator =
        write("noindicator.intel", "#path\tintel\n#fields\tindicator_type\tmeta.source\n");
    auto second = store_.load_file(no_indicator, stats_);
    ASSERT_FALSE(second);
    EXPECT_EQ(second.error().message,
              no_indicator + ":2: #fields header has no 'indicator' column");

    const auto spaces = write("spaces.intel", "#fields indicator indicator_type\n");
    auto third = store_.load_file(spaces, stats_);
    ASSERT_FALSE(third);
    EXPECT_EQ(third.error().code, ErrorCode::kParse);
    EXPECT_NE(third.error().message.find(spaces + ":1: "), std::string::npos);
    EXPECT_NE(third.error().message.find("tabs"), std::string::npos);
}

TEST_F(IntelStoreTest, BrokenFileLeavesTheStoreUnchanged) {
    const auto good =
        write("good.intel", "#fields\tindicator\tindicator_type\n192.0.2.1\tIntel::ADDR\n");
    const auto broken = write("broken.intel",
                              "#fields\tindicator\tindicator_type\n"
                              "192.0.2.2\tIntel::ADDR\n"
                              "#fields\tindicator\tmeta.source\n"
                              "192.0.2.3\tx\n");
    ASSERT_TRUE(store_.load_file(good, stats_));
    auto loaded = store_.load_file(broken, stats_);
    ASSERT_FALSE(loaded);
    EXPECT_EQ(loaded.error().message, broken + ":3: #fields header has no 'indicator_type' column");
    EXPECT_EQ(store_.size(), 1U);
    EXPECT_EQ(store_.find_addr("192.0.2.2"), nullptr);
    EXPECT_EQ(stats_.loaded, 1U);
}

TEST_F(IntelStoreTest, FileHashKindsFollowTheDigestsGivenAndABrokenFileIsUndone) {
    EXPECT_EQ(store_.file_hash_kinds(), 0U);
    const auto sha1 = write("sha1.intel", "#fields\tindicator\tindicator_type\n" +
                                              std::string(40, 'a') + "\tIntel::FILE_HASH\n");
    ASSERT_TRUE(store_.load_file(sha1, stats_));
    EXPECT_EQ(store_.file_hash_kinds(), unsigned{kFileHashSha1});
    // An MD5 and a SHA-256, then a header that breaks the file: both are undone.
    const auto broken = write("broken.intel", "#fields\tindicator\tindicator_type\n" +
                                                  std::string(32, 'b') + "\tIntel::FILE_HASH\n" +
                                                  std::string(64, 'c') + "\tIntel::FILE_HASH\n"
                                                  "#fields\tindicator\n");
    ASSERT_FALSE(store_.load_file(broken, stats_));
    EXPECT_EQ(store_.file_hash_kinds(), unsigned{kFileHashSha1});
    const auto both = write("both.intel", "#fields\tindicator\tindicator_type\n" +
                                              std::string(32, 'B') + "\tIntel::FILE_HASH\n" +
                                              std::string(64, 'c') + "\tIntel::FILE_HASH\n");
    ASSERT_TRUE(store_.load_file(both, stats_));
    EXPECT_EQ(store_.file_hash_kinds(), kAllFileHashes);
}

TEST_F(IntelStoreTest, BrokenFileUndoesWhatItMergedIntoEarlierIndicators) {
    const auto good = write("good.intel",
                            "#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc\n"
                            "192.0.2.1\tIntel::ADDR\tfeed-a\tfirst\n"
                            "10.0.0.0/8\tIntel::SUBNET\tfeed-a\tnet\n");
    // Merges into both, adds new ones (a /16 among them), then breaks at its second header.
    const auto broken = write("broken.intel",
                              "#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc\n"
                              "192.0.2.1\tIntel::ADDR\tfeed-b\tsecond\n"
                              "10.0.0.0/8\tIntel::SUBNET\tfeed-c\tother\n"
                              "192.0.2.9\tIntel::ADDR\tfeed-b\tnew\n"
                              "10.1.0.0/16\tIntel::SUBNET\tfeed-b\tnew\n"
                              "#fields\tindicator\n");
    ASSERT_TRUE(store_.load_file(good, stats_));
    ASSERT_FALSE(store_.load_file(broken, stats_));

    EXPECT_EQ(store_.size(), 2U);
    EXPECT_EQ(store_.count(IntelType::kAddr), 1U);
    EXPECT_EQ(store_.count(IntelType::kSubnet), 1U);
    EXPECT_EQ(store_.find_addr("192.0.2.9"), nullptr);
    const Indicator* addr = store_.find_addr("192.0.2.1");
    ASSERT_NE(addr, nullptr);
    EXPECT_EQ(addr->source_list(), (std::vector<std::string>{"feed-a"}));
    EXPECT_EQ(addr->meta.at("meta.desc"), "first");
    const Indicator* net = store_.find_subnet("10.1.2.3");  // the /8, not the dropped /16
    ASSERT_NE(net, nullptr);
    EXPECT_EQ(net->value, "10.0.0.0/8");
    EXPECT_EQ(net->source_list(), (std::vector<std::string>{"feed-a"}));
    EXPECT_EQ(net->meta.at("meta.desc"), "net");

    // The store still takes files after the undo, and finds what they add.
    ASSERT_TRUE(store_.load_file(good, stats_));
    EXPECT_EQ(store_.size(), 2U);
    const auto more = write("more.intel",
                            "#fields\tindicator\tindicator_type\n192.0.2.9\tIntel::ADDR\n");
    ASSERT_TRUE(store_.load_file(more, stats_));
    EXPECT_NE(store_.find_addr("192.0.2.9"), nullptr);
    EXPECT_NE(store_.find_addr("192.0.2.1"), nullptr);
}

TEST_F(IntelStoreTest, LinesLongerThanTheReadBufferAndNoFinalNewline) {
    // A meta value of 3 MB: the line spans several reads of the 1 MiB buffer.
    const std::string desc(3'000'000, 'd');
    const auto path = write("long.intel", "#fields\tindicator\tindicator_type\tmeta.desc\n"
                                          "192.0.2.1\tIntel::ADDR\t" + desc + "\n"
                                          "evil.example\tIntel::DOMAIN\tlast");
    ASSERT_TRUE(store_.load_file(path, stats_));
    EXPECT_EQ(stats_.loaded, 2U);
    const Indicator* addr = store_.find_addr("192.0.2.1");
    ASSERT_NE(addr, nullptr);
    EXPECT_EQ(addr->meta.at("meta.desc"), desc);
    const Indicator* domain = store_.find_domain("evil.example");
    ASSERT_NE(domain, nullptr);
    EXPECT_EQ(domain->meta.at("meta.desc"), "last");
}

TEST_F(IntelStoreTest, ReadsFromAPipe) {
    // Not a regular file: no line count ahead, the table grows as lines come.
    const std::string path = (dir_ / "feed.fifo").string();
    ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
    std::thread writer([&] {
        std::ofstream out(path, std::ios::binary);
        out << "#fields\tindicator\tindicator_type\n";
        for (int i = 0; i < 5000; ++i) out << "host" << i << ".example\tIntel::DOMAIN\n";
    });
    const auto loaded = store_.load_file(path, stats_);
    writer.join();
    ASSERT_TRUE(loaded);
    EXPECT_EQ(store_.size(), 5000U);
    EXPECT_NE(store_.find_domain("host0.example"), nullptr);
    EXPECT_NE(store_.find_domain("HOST4999.example"), nullptr);
}

TEST_F(IntelStoreTest, HundredThousandIndicatorsLoadAndResolve) {
    std::string text = "#fields\tindicator\tindicator_type\tmeta.source\n";
    text.reserve(4'000'000);
    for (int i = 0; i < 50'000; ++i) {
        text += "10." + std::to_string((i >> 16) & 0xff) + "." + std::to_string((i >> 8) & 0xff) +
                "." + std::to_string(i & 0xff) + "\tIntel::ADDR\tbulk\n";
        text += "host" + std::to_string(i) + ".Bulk.Example\tIntel::DOMAIN\tbulk\n";
    }
    const auto path = write("bulk.intel", text);

    ASSERT_TRUE(store_.load_file(path, stats_));
    EXPECT_EQ(stats_.loaded, 100'000U);
    EXPECT_EQ(stats_.skipped, 0U);
    EXPECT_EQ(store_.size(), 100'000U);
    // Load and lookup speed are measured by tests/bench/network, not timed here.
    int found = 0;
    for (int i = 0; i < 50'000; ++i) {
        const std::string addr = "10." + std::to_string((i >> 16) & 0xff) + "." +
                                 std::to_string((i >> 8) & 0xff) + "." + std::to_string(i & 0xff);
        if (store_.find_addr(addr) != nullptr) ++found;
        if (store_.find_domain("HOST" + std::to_string(i) + ".bulk.example") != nullptr) ++found;
    }
    EXPECT_EQ(found, 100'000);
    EXPECT_EQ(store_.find_addr("10.1.0.0"), nullptr);  // 65536 is past the last one
    EXPECT_EQ(store_.find_domain("host50000.bulk.example"), nullptr);
}

}  // namespace
}  // namespace senningen::agent
