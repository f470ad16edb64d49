// The literal prefilter in front of heap-only (stream) YARA scans: when it is built, when it
// is not and why, and that a scanner using it finds exactly what libyara alone finds.
#include "senningen/agent/scan/literal_prefilter.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "senningen/agent/scan/yara_rules.h"

namespace senningen::agent {
namespace {

std::span<const std::uint8_t> bytes(const std::string& text) {
    return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

std::shared_ptr<YaraRules> compile(const std::string& text) {
    auto rules = YaraRules::compile_string(text, {}, {.prefilter = true});
    EXPECT_TRUE(rules) << (rules ? "" : rules.error().message);
    return rules ? *rules : nullptr;
}

// The names of the rules SCANNER finds in DATA, in libyara's order.
std::vector<std::string> matched_rules(YaraScanner& scanner, const std::string& data) {
    auto found = scanner.scan(bytes(data));
    EXPECT_TRUE(found) << found.error().message;
    std::vector<std::string> out;
    if (found) {
        for (const auto& m : *found) out.push_back(m.rule);
    }
    return out;
}

std::string wide(const std::string& ascii) {
    std::string out;
    for (const char c : ascii) {
        out += c;
        out += '\0';
    }
    return out;
}

const char* const kLiteralRules = R"(
rule text_and_hex {
    strings:
        $a = "persist-hook-73ab48"
        $b = { 82 DA 96 30 2F CD 83 79 }
    condition:
        any of them
}
rule nocase_and_wide {
    strings:
        $c = "powershell -enc" nocase
        $d = "/stager/f6fa5.php" ascii wide
        $e = "only-wide" wide
    condition:
        $c or $d or $e
}
rule counted {
    strings:
        $f = "beacon"
    condition:
        #f >= 2 and filesize < 1MB
}
)";

TEST(LiteralPrefilter, BuiltForRulesOfLiteralStringsThatNeedThem) {
    auto rules = compile(kLiteralRules);
    ASSERT_TRUE(rules);
    ASSERT_NE(rules->prefilter(), nullptr) << rules->prefilter_note();
    // a, b, c, d (ascii and wide), e (wide only), f
    EXPECT_EQ(rules->prefilter()->literal_count(), 7U);
    EXPECT_EQ(rules->prefilter_rest(), nullptr);  // every rule is prefiltered
    EXPECT_EQ(rules->prefilter()->expression_count(), 0U);
    EXPECT_EQ(rules->prefilter_note(),
              "7 literals and 0 regular expressions or hex strings of 3 of 3 rules");
}

TEST(LiteralPrefilter, OffWithTheReasonWhenItWouldNotBeSound) {
    const struct {
        const char* rules;
        const char* reason;
    } cases[] = {
        {"rule r { strings: $a = /ab\\z[0-9]/ condition: $a }",
         "rule r $a is a regular expression with the escape \\z"},
        {"rule r { strings: $a = /a*/ condition: $a }", "rule r $a has fewer than 3 fixed bytes"},
        {"rule r { strings: $a = { 41 ?? 43 } $b = \"x\" condition: all of them }\n"
         "rule s { condition: r }",
         "rule r is global or named by a condition"},
        {"rule r { strings: $a = \"abc\" xor condition: $a }", "xor or base64"},
        {"rule r { strings: $a = \"abc\" condition: $a or filesize < 10 }",
         "rule r can match without any of its strings"},
        {"rule ok { strings: $a = \"abc\" condition: $a }\n"
         "rule r { condition: ok }",
         "rule ok is global or named by a condition"},
        {"global rule g { strings: $a = \"abc\" condition: $a }", "rule g is global"},
        {"rule r { strings: $a = \"abc\" condition: not $a }", "rule r can match without"},
    };
    for (const auto& c : cases) {
        auto rules = compile(c.rules);
        ASSERT_TRUE(rules);
        EXPECT_EQ(rules->prefilter(), nullptr) << c.rules;
        EXPECT_NE(rules->prefilter_note().find(c.reason), std::string::npos)
            << c.rules << " -> " << rules->prefilter_note();
    }
}

TEST(LiteralPrefilter, HeapOnlyScannerSkipsBuffersWithoutAnyLiteral) {
    auto rules = compile(kLiteralRules);
    ASSERT_TRUE(rules && rules->prefilter());
    YaraScanner scanner(rules);
    scanner.set_heap_only(true);

    auto none = scanner.scan(bytes(std::string(4096, 'x') + "persist-hook-73ab4"));
    ASSERT_TRUE(none) << none.error().message;
    EXPECT_TRUE(none->empty());
    EXPECT_EQ(scanner.prefiltered(), 1U);

    // A literal in another case, its wide form, a hex literal: each goes on to libyara.
    const std::string hex("\x82\xDA\x96\x30\x2F\xCD\x83\x79", 8);
    for (const std::string& data :
         {std::string("..PoWerShell -ENC..."), "." + wide("/stager/f6fa5.php") + ".",
          "zz" + hex + "zz", "a" + wide("only-wide")}) {
        auto found = scanner.scan(bytes(data));
        ASSERT_TRUE(found) << found.error().message;
        EXPECT_EQ(found->size(), 1U) << data;
    }
    EXPECT_EQ(scanner.prefiltered(), 1U);

    // One "beacon" reaches libyara (a literal occurs) but the rule wants two: no match.
    auto once = scanner.scan(bytes("one beacon only"));
    ASSERT_TRUE(once);
    EXPECT_TRUE(once->empty());
    EXPECT_EQ(scanner.prefiltered(), 1U);
}

TEST(LiteralPrefilter, GuardedScannersAndRulesCompiledWithoutItNeverSkip) {
    auto rules = compile(kLiteralRules);
    ASSERT_TRUE(rules && rules->prefilter());
    YaraScanner guarded(rules);  // the file scanner's kind: maps files, keeps libyara's guard
    ASSERT_TRUE(guarded.scan(bytes("nothing here")));
    EXPECT_EQ(guarded.prefiltered(), 0U);

    // Not asked for (the file scanner, the rule tool): none built, every buffer scanned.
    auto plain = YaraRules::compile_string(kLiteralRules);
    ASSERT_TRUE(plain) << plain.error().message;
    EXPECT_EQ((*plain)->prefilter(), nullptr);
    EXPECT_EQ((*plain)->prefilter_rest(), nullptr);
    EXPECT_EQ((*plain)->prefilter_note(), "not asked for");
    YaraScanner heap_only(*plain);
    heap_only.set_heap_only(true);
    ASSERT_TRUE(heap_only.scan(bytes("nothing here")));
    EXPECT_EQ(heap_only.prefiltered(), 0U);
}

// Rules the prefilter cannot stand for (a size condition, a rule another names, a global rule) are compiled on their own and scan the buffers without literals.
const char* const kMixedRules = R"(
rule literal_one {
    strings:
        $a = "persist-hook-73ab48"
    condition:
        $a
}
rule regex_one {
    strings:
        $r = /implant-[0-9]{3}/
    condition:
        $r
}
rule tiny {
    condition:
        filesize < 8
}
private rule named {
    strings:
        $n = "named-literal"
    condition:
        $n
}
rule uses_named {
    strings:
        $u = "uses-literal"
    condition:
        named and $u
}
global rule not_empty {
    condition:
        filesize > 0
}
)";

TEST(LiteralPrefilter, RulesItCannotStandForScanEveryBufferOnTheirOwn) {
    auto rules = compile(kMixedRules);
    ASSERT_TRUE(rules);
    ASSERT_NE(rules->prefilter(), nullptr) << rules->prefilter_note();
    EXPECT_NE(rules->prefilter_rest(), nullptr);
    // literal_one, regex_one and uses_named are prefiltered; the other three always scanned.
    EXPECT_EQ(rules->prefilter_note().find(
                  "2 literals and 1 regular expressions or hex strings of 3 of 6 rules; the "),
              0U);
    YaraScanner scanner(rules);
    scanner.set_heap_only(true);
    const auto names = [&](const std::string& data) { return matched_rules(scanner, data); };
    using V = std::vector<std::string>;
    EXPECT_EQ(names("tiny"), (V{"tiny", "not_empty"}));  // no literal: the rest only
    EXPECT_EQ(names("...implant-123..."), (V{"regex_one", "not_empty"}));
    EXPECT_EQ(names("...implant-12..."), (V{"not_empty"}));  // a near miss
    EXPECT_EQ(scanner.prefiltered(), 2U);
    EXPECT_EQ(names("x persist-hook-73ab48 y"), (V{"literal_one", "not_empty"}));
    EXPECT_EQ(names("named-literal uses-literal"), (V{"uses_named", "not_empty"}));
    EXPECT_EQ(scanner.prefiltered(), 2U);  // those had a pattern: the whole set
    EXPECT_TRUE(names("").empty());        // the global rule fails on empty data
}

// The rules left, for a buffer that fails their header gates: without the gated rules and `or`
// terms, and without the module only those use; the matches stay the same.
TEST(LiteralPrefilter, RulesLeftDropTheirHeaderGatedPartsForBuffersThatFailThem) {
    auto rules = compile(R"(
import "math"
rule literal { strings: $a = "persist-hook" condition: $a }
rule mz_small { condition: uint16(0) == 0x5a4d and filesize < 100 }
rule mz_or_count {
    strings: $s = "abc"
    condition: (uint16(0) == 0x5a4d and math.entropy(0, filesize) > 0) or #s > 2
}
)");
    ASSERT_TRUE(rules && rules->prefilter());
    EXPECT_NE(rules->prefilter_note().find(
                  "; 2 rules or terms of them only for buffers that pass their header gates"),
              std::string::npos)
        << rules->prefilter_note();
    const auto head = [](const std::string& data) { return bytes(data).first(2); };
    EXPECT_EQ(rules->prefilter_rest_for(head("MZ")), rules->prefilter_rest());
    ASSERT_NE(rules->prefilter_rest_for(head("ab")), nullptr);
    EXPECT_NE(rules->prefilter_rest_for(head("ab")), rules->prefilter_rest());
    YaraScanner scanner(rules);
    scanner.set_heap_only(true);
    const auto names = [&](const std::string& data) { return matched_rules(scanner, data); };
    using V = std::vector<std::string>;
    EXPECT_EQ(names("MZ.."), (V{"mz_small", "mz_or_count"}));
    EXPECT_EQ(names("MZ" + std::string(200, '.')), V{"mz_or_count"});
    EXPECT_EQ(names("abc abc abc"), V{"mz_or_count"});
    EXPECT_EQ(names("ab abc"), V{});
    EXPECT_EQ(names("x persist-hook abc abc abc MZ"), (V{"literal", "mz_or_count"}));
    EXPECT_EQ(scanner.prefiltered(), 4U);
}

// Regular expressions and hex strings with wildcards, jumps and alternatives, mixed with
// literals in one rule; hex strings libyara cuts at a long jump (literal pieces: 2 literals;
// a wildcard in a piece: the whole string translated); a rule left out.
const char* const kPatternRules = R"(
rule hex_jump {
    strings:
        $h = { 4D 5A [2-6] 50 45 ?? 0? }
    condition:
        $h
}
rule wide_regex {
    strings:
        $w = /cmd\.exe \/c [a-z]{3,}/ nocase wide ascii
    condition:
        $w
}
rule mixed {
    strings:
        $a = "mixed-literal"
        $r = /stage[0-9]+\.bin/
        $h = { AA BB CC ( DD | EE FF ) }
    condition:
        2 of them
}
rule alternation {
    strings:
        $r = /(GET|POST) \/gate\.php\?id=\d{,4}\b/
    condition:
        $r at 0 or #r > 1
}
rule big_jump {
    strings:
        $h = { 01 02 03 04 [-] 05 06 07 08 }
        $m = { 11 12 ?3 14 [300-] 15 16 17 18 }
    condition:
        any of them
}
rule left_out {
    strings:
        $r = /exec\v+/
    condition:
        $r
}
)";

// Which strings are looked for: one group the condition cannot hold without (the most
// distinctive), else every string; too common a pattern leaves the rule out.
TEST(LiteralPrefilter, LooksForTheMostDistinctiveGroupOfStringsARuleNeeds) {
    const struct {
        const char* rules;
        std::size_t literals;
        std::size_t expressions;
        const char* note;  // a part of the note
    } cases[] = {
        // all of them: the longest literal alone; the xor string does not matter.
        {"rule r { strings: $a = \"ab\" $b = \"long-literal\" $x = \"k\" xor "
         "condition: all of them }",
         1, 0, "of 1 of 1 rules"},
        // $a is needed, the regex is not: "needed" alone.
        {"rule r { strings: $a = \"needed\" $r = /[a-z]+/ condition: $a and (#r > 2 or "
         "filesize < 5) }",
         1, 0, "of 1 of 1 rules"},
        // any of them: every string, the regular expression and the hex string too.
        {"rule r { strings: $a = \"abc\" $r = /abc[0-9]d/ $h = { 01 02 03 ?? } "
         "condition: any of them }",
         1, 2, "of 1 of 1 rules"},
        // the group $b* (two strings) beats the short $a.
        {"rule r { strings: $a = \"ab\" $b1 = \"bbbb\" $b2 = /cccc+/ "
         "condition: $a and any of ($b*) }",
         1, 1, "of 1 of 1 rules"},
    };
    for (const auto& c : cases) {
        auto rules = compile(c.rules);
        ASSERT_TRUE(rules);
        ASSERT_NE(rules->prefilter(), nullptr) << c.rules << ": " << rules->prefilter_note();
        EXPECT_EQ(rules->prefilter()->literal_count(), c.literals) << c.rules;
        EXPECT_EQ(rules->prefilter()->expression_count(), c.expressions) << c.rules;
        EXPECT_NE(rules->prefilter_note().find(c.note), std::string::npos)
            << rules->prefilter_note();
    }
    const struct {
        const char* rules;
        const char* reason;
    } left_out[] = {
        {"rule ok { strings: $a = \"fine\" condition: $a }\n"
         "rule domain { strings: $r = /([\\w\\.-]+)/ wide ascii condition: $r }",
         "rule domain $r has fewer than 3 fixed bytes"},
        {"rule ok { strings: $a = \"fine\" condition: $a }\n"
         "rule r { strings: $a = \"A\" $b = \"xy\" condition: $a and $b }",
         "rule r $b has fewer than 3 fixed bytes"},
        {"rule ok { strings: $a = \"fine\" condition: $a }\n"
         "rule r { strings: $a = \"A\" $b = { 01 ?? 02 } condition: any of them }",
         "rule r: every group of strings it needs has one with fewer than 3 fixed bytes"},
        {"rule ok { strings: $a = \"fine\" condition: $a }\n"
         "rule r { strings: $a = \"abc\" $x = \"k\" xor condition: any of them }",
         "rule r $x is an xor or base64 string"},
    };
    for (const auto& c : left_out) {
        auto rules = compile(c.rules);
        ASSERT_TRUE(rules);
        ASSERT_NE(rules->prefilter(), nullptr) << c.rules;
        EXPECT_NE(rules->prefilter_note().find("of 1 of 2 rules"), std::string::npos)
            << rules->prefilter_note();
        EXPECT_NE(rules->prefilter_note().find(c.reason), std::string::npos)
            << c.rules << " -> " << rules->prefilter_note();
    }
}

TEST(LiteralPrefilter, RegularExpressionsAndHexStringsArePrefilteredToo) {
    auto rules = compile(kPatternRules);
    ASSERT_TRUE(rules);
    ASSERT_NE(rules->prefilter(), nullptr) << rules->prefilter_note();
    EXPECT_NE(rules->prefilter_rest(), nullptr);
    EXPECT_EQ(rules->prefilter_note(),
              "2 literals and 7 regular expressions or hex strings of 5 of 6 rules; the other 1 "
              "always scanned (first: rule left_out $r is a regular expression with the escape "
              "\\v (not one this translation knows))");
    YaraScanner scanner(rules);
    scanner.set_heap_only(true);
    const auto names = [&](const std::string& data) { return matched_rules(scanner, data); };
    using V = std::vector<std::string>;
    EXPECT_EQ(names(std::string("..MZ\x90\x00\x03PE\x00\x01..", 13)), V{"hex_jump"});
    EXPECT_EQ(names("x" + wide("CMD.exe /C dir") + "x"), V{"wide_regex"});
    EXPECT_EQ(names("stage7.bin \xAA\xBB\xCC\xEE\xFF"), V{"mixed"});
    EXPECT_EQ(names("GET /gate.php?id=12 POST /gate.php?id="), V{"alternation"});
    EXPECT_EQ(names("\x11\x12\xF3\x14" + std::string(500, 'z') + "\x15\x16\x17\x18"),
              V{"big_jump"});
    EXPECT_EQ(names("exec\v"), V{});
    EXPECT_EQ(names("execvv"), V{"left_out"});  // YARA's \v is a v
    EXPECT_EQ(scanner.prefiltered(), 2U);      // the last two: only the rule left out scanned
}

// Random buffers with planted strings (whole, cut short, in other cases, wide, at the edges):
// a scanner with the prefilter returns exactly what libyara alone returns.
class SameMatches : public ::testing::TestWithParam<const char*> {};

TEST_P(SameMatches, AsLibyaraAloneOnRandomBuffers) {
    auto rules = compile(GetParam());
    ASSERT_TRUE(rules && rules->prefilter());
    YaraScanner filtered(rules);
    filtered.set_heap_only(true);
    YaraScanner plain(rules);  // guarded: never consults the prefilter

    const std::vector<std::string> plants = {
        "implant-042", "named-literal", "uses-literal", "implant-",
        "persist-hook-73ab48", "persist-hook-73ab4", "POWERSHELL -enc", "powershell -en",
        wide("/stager/f6fa5.php"), "/stager/f6fa5.php", wide("only-wide"), "only-wide",
        "beacon", "beacon beacon", std::string("\x82\xDA\x96\x30\x2F\xCD\x83\x79", 8),
        std::string("\x82\xDA\x96\x30\x2F\xCD\x83", 7),
        std::string("MZ\x90\x00\x03PE\x00\x01", 9), std::string("MZ\x90PE\x00\x01", 7),
        wide("cmd.exe /c dir"), wide("CMD.EXE /c ab"), "cmd.exe /C WHOAMI", "mixed-literal",
        "stage12.bin", "stage.bin", "\xAA\xBB\xCC\xDD", "\xAA\xBB\xCC\xEE\xFF", "\xAA\xBB\xCC",
        "GET /gate.php?id=42 ",
        "POST /gate.php?id=", "POST /gate.php?id=123456", "execvv", "exec\v",
        std::string("\x01\x02\x03\x04", 4) + std::string(350, 'q') + "\x05\x06\x07\x08",
        "\x11\x12\x13\x14" + std::string(301, 'q') + "\x15\x16\x17\x18"};
    std::mt19937 random(20261129);
    int matched = 0;
    for (int round = 0; round < 400; ++round) {
        std::string data(std::uniform_int_distribution<std::size_t>(0, 3000)(random), '\0');
        for (char& c : data) c = static_cast<char>(random() & 0xff);
        const int count = std::uniform_int_distribution<int>(0, 2)(random);
        for (int k = 0; k < count; ++k) {
            const std::string& plant = plants[random() % plants.size()];
            const std::size_t at = std::uniform_int_distribution<std::size_t>(0, data.size())(random);
            data.insert(at, plant);
        }
        auto a = filtered.scan(bytes(data));
        auto b = plain.scan(bytes(data));
        ASSERT_TRUE(a && b);
        ASSERT_EQ(a->size(), b->size()) << "round " << round;
        for (std::size_t i = 0; i < a->size(); ++i) {
            EXPECT_EQ((*a)[i].rule, (*b)[i].rule);
            EXPECT_EQ((*a)[i].strings, (*b)[i].strings);
        }
        if (!a->empty()) ++matched;
    }
    // Both outcomes were exercised: buffers skipped and buffers that matched.
    EXPECT_GT(filtered.prefiltered(), 50U);
    EXPECT_GT(matched, 50);
}

INSTANTIATE_TEST_SUITE_P(LiteralPrefilter, SameMatches,
                         ::testing::Values(kLiteralRules, kMixedRules, kPatternRules));

}  // namespace
}  // namespace senningen::agent
