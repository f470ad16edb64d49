#include "senningen/agent/scan/rule_gates.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace senningen::agent {
namespace {

RuleSourceGates analyse(const std::string& text) {
    auto gates = analyse_rule_gates(text);
    EXPECT_TRUE(gates) << (gates ? "" : gates.error().message);
    return gates ? *gates : RuleSourceGates{};
}

// The gates of the only rule in "rule r { condition: CONDITION }".
RuleGates gates_of(const std::string& condition) {
    const auto all = analyse("rule r { strings: $a = \"x\" condition: " + condition + " }");
    EXPECT_EQ(all.rules.size(), 1U);
    return all.rules.empty() ? RuleGates{} : all.rules.front();
}

TEST(RuleGates, SizeAndHeaderTermsOfATopLevelConjunction) {
    const RuleGates r = gates_of("uint16(0) == 0x5a4d and filesize < 100KB and all of them");
    ASSERT_TRUE(r.max_size.has_value());
    EXPECT_EQ(*r.max_size, 100U * 1024 - 1);
    ASSERT_EQ(r.headers.size(), 1U);
    EXPECT_EQ(r.headers[0], (HeaderGate{2, false, 0x5a4d}));
    EXPECT_TRUE(r.gated());

    const RuleGates m = gates_of("filesize <= 0x10 and $a and filesize < 2MB");
    ASSERT_TRUE(m.max_size.has_value());
    EXPECT_EQ(*m.max_size, 16U);  // the tighter bound wins
}

TEST(RuleGates, MirroredAndInclusiveBounds) {
    EXPECT_EQ(gates_of("100 > filesize and $a").max_size, 99U);
    EXPECT_EQ(gates_of("$a and 1MB >= filesize").max_size, 1024U * 1024);
    EXPECT_EQ(gates_of("$a and 0x7f454c46 == uint32be(0)").headers,
              (std::vector<HeaderGate>{{4, true, 0x7f454c46}}));
    EXPECT_EQ(gates_of("uint8(0) == 77 and $a").headers,
              (std::vector<HeaderGate>{{1, false, 77}}));
}

TEST(RuleGates, AnythingElseLeavesTheRuleUngated) {
    for (const char* condition : {
             "filesize < 10 and $a or $a",                          // top-level or
             "(uint16(0) == 0x5a4d and filesize < 1KB) or all of them",
             "not filesize < 10 and $a",                            // negated
             "not (filesize < 10) and $a",
             "filesize < 10 * 1024 and $a",                         // not a literal
             "filesize < 1.5 and $a",                               // not an integer
             "filesize < 0 and $a",                                 // never true: left alone
             "filesize > 100 and $a",                               // a lower bound
             "filesize < 10KiB and $a",                             // not a YARA literal
             "uint16(2) == 0x5a4d and $a",                          // not at offset 0
             "int16(0) == 0x5a4d and $a",                           // signed read
             "uint16(0) != 0x5a4d and $a",
             "uint16(0) == 0x5a4d + 1 and $a",
             "for any i in (0..filesize) : (uint16(i) == 0x5a4d) and $a",
             "$a",
         }) {
        const RuleGates r = gates_of(condition);
        EXPECT_FALSE(r.gated()) << condition;
    }
}

TEST(RuleGates, ParenthesesAroundConjunctionsAreFlattened) {
    const RuleGates r = gates_of("((filesize < 1KB) and (uint32(0) == 0x464c457f and $a))");
    EXPECT_EQ(r.max_size, 1023U);
    EXPECT_EQ(r.headers, (std::vector<HeaderGate>{{4, false, 0x464c457f}}));
    // A for-expression's body is its own business, the term after it still counts.
    const RuleGates f = gates_of("for any of ($a) : ( $ at 0 ) and filesize < 10");
    EXPECT_EQ(f.max_size, 9U);
}

TEST(RuleGates, CommentsStringsRegexesAndHexStringsDoNotConfuseTheReader) {
    const std::string text =
        "import \"pe\"\n"
        "/* rule fake { condition: filesize < 1 } */\n"
        "rule first : tag1 tag2 {\n"
        "  meta: note = \"condition: filesize < 1 } or \\\" }\"\n"
        "  strings:\n"
        "    $h = { 4D 5A [2-4] ( 90 | 00 ) ?? }\n"
        "    $r = /rule x \\{ condition: \\/ \\}/ nocase\n"
        "    $t = \"}\" wide\n"
        "  condition: // or everything\n"
        "    filesize < 2KB and /* or */ any of them\n"
        "}\n"
        "private rule second { condition: first and uint16(0) == 0x4b50 }\n";
    const RuleSourceGates all = analyse(text);
    ASSERT_EQ(all.rules.size(), 2U);
    const RuleGates& a = all.rules[0];
    EXPECT_EQ(a.name, "first");
    EXPECT_EQ(a.max_size, 2047U);
    EXPECT_TRUE(text.substr(a.begin).starts_with("rule first"));
    EXPECT_EQ(text[a.end - 1], '}');
    EXPECT_EQ(text.substr(a.end, 2), "\np");
    const RuleGates& b = all.rules[1];
    EXPECT_EQ(b.name, "second");
    EXPECT_TRUE(b.is_private);
    EXPECT_FALSE(b.global);
    EXPECT_TRUE(text.substr(b.begin).starts_with("private rule second"));
    EXPECT_EQ(b.headers, (std::vector<HeaderGate>{{2, false, 0x4b50}}));
    EXPECT_TRUE(all.referenced.contains("first"));
    EXPECT_FALSE(all.has_include);
}

TEST(RuleGates, ModifiersIncludeAndMatchesRegex) {
    const RuleSourceGates all = analyse(
        "include \"other.yar\"\n"
        "global rule g { condition: filesize < 10 }\n"
        "rule m { condition: filename matches /a\\/b}/i and filesize < 5 }\n");
    EXPECT_TRUE(all.has_include);
    ASSERT_EQ(all.rules.size(), 2U);
    EXPECT_TRUE(all.rules[0].global);
    EXPECT_EQ(all.rules[1].max_size, 4U);
}

TEST(RuleGates, UnreadableTextIsAParseErrorWithItsLine) {
    for (const char* text : {"rule a { condition: true }\n/* open",
                             "rule a {\n meta: x = \"open\n condition: true }",
                             "rule a {\n strings: $a = /open\n condition: $a }",
                             "rule a {\n condition: true\n",
                             "private 12"}) {
        auto gates = analyse_rule_gates(text);
        ASSERT_FALSE(gates) << text;
        EXPECT_EQ(gates.error().code, common::ErrorCode::kParse);
        EXPECT_TRUE(gates.error().message.starts_with("line ")) << gates.error().message;
    }
}

TEST(RuleGates, HeaderGateReadsLittleAndBigEndianAndNeedsTheBytes) {
    const std::array<std::uint8_t, 4> mz{0x4d, 0x5a, 0x90, 0x00};
    EXPECT_TRUE((HeaderGate{2, false, 0x5a4d}).holds(mz));
    EXPECT_FALSE((HeaderGate{2, true, 0x5a4d}).holds(mz));
    EXPECT_TRUE((HeaderGate{2, true, 0x4d5a}).holds(mz));
    EXPECT_TRUE((HeaderGate{4, false, 0x00905a4d}).holds(mz));
    EXPECT_TRUE((HeaderGate{1, false, 0x4d}).holds(mz));
    EXPECT_FALSE((HeaderGate{4, false, 0x5a4d}).holds(std::span(mz).first(2)));

    RuleGates r;
    r.max_size = 10;
    r.headers = {{2, false, 0x5a4d}};
    EXPECT_TRUE(r.may_match(10, mz));
    EXPECT_FALSE(r.may_match(11, mz));
    EXPECT_FALSE(r.may_match(4, std::span(mz).first(1)));
}

TEST(RuleGates, SpecialiseBlanksDroppedRulesAndKeepsLines) {
    const std::string text = "rule a {\n condition: true\n}\nrule b { condition: false }\n";
    const RuleSourceGates all = analyse(text);
    ASSERT_EQ(all.rules.size(), 2U);
    const std::string out = specialise(text, all, {true, false});
    EXPECT_EQ(out.size(), text.size());
    EXPECT_EQ(out, "        \n                \n \nrule b { condition: false }\n");
}

TEST(RuleGates, DisjunctsCarryTheirOwnGatesAndAStandInThatKeepsStringsUsed) {
    const std::string text =
        "import \"pe\"\n"
        "rule r { strings: $a = \"a\" $b1 = \"b\" $c = \"c\"\n"
        "  condition: uint16(0) == 0x5a4d and filesize < 50KB and (pe.imphash() == \"x\" or "
        "#a > 2) or 2 of ($b*) or (filesize < 10 and $c and @a[1] == 0) or for any of ($c) : "
        "($ at 0) }\n";
    const RuleSourceGates all = analyse(text);
    ASSERT_EQ(all.rules.size(), 1U);
    const RuleGates& r = all.rules[0];
    EXPECT_FALSE(r.gated());  // one disjunct is enough to match
    ASSERT_EQ(r.disjuncts.size(), 4U);
    EXPECT_EQ(r.disjuncts[0].headers, (std::vector<HeaderGate>{{2, false, 0x5a4d}}));
    EXPECT_EQ(r.disjuncts[0].max_size, 50U * 1024 - 1);
    EXPECT_EQ(r.disjuncts[0].stand_in, "(false and any of ($a))");
    EXPECT_FALSE(r.disjuncts[1].max_size.has_value());
    EXPECT_EQ(r.disjuncts[2].max_size, 9U);
    EXPECT_EQ(r.disjuncts[2].stand_in, "(false and any of ($a, $c))");
    EXPECT_EQ(r.disjuncts[3].stand_in, "(false and any of ($c))");
    EXPECT_EQ(text.substr(r.disjuncts[1].begin, r.disjuncts[1].end - r.disjuncts[1].begin),
              "2 of ($b*)");

    const std::string out = specialise(text, all, {false}, {{true, false, true, false}});
    EXPECT_NE(out.find("condition: (false and any of ($a)) or 2 of ($b*) or "
                       "(false and any of ($a, $c)) or for any of ($c)"),
              std::string::npos)
        << out;
    const auto left = analyse(out);
    EXPECT_FALSE(left.referenced.contains("pe"));
    EXPECT_EQ(without_imports(out, left, {"pe"}).substr(0, 12), "           \n");
    EXPECT_TRUE(all.referenced.contains("pe"));
}


// needs_string: the literal prefilter is sound only for rules that cannot match without one of
// their own strings.
TEST(RuleGates, ConditionsThatNeedAStringMatch) {
    for (const char* condition :
         {"$a", "any of them", "all of them", "1 of them", "2 of ($a, $a)", "any of ($a*)",
          "$a at 0", "$a in (0..100)", "#a > 0", "#a >= 1", "#a == 3", "0 < #a", "2 <= #a",
          "($a)", "$a and filesize < 10", "uint16(0) == 0x5a4d and any of them",
          "not $a and $a", "$a or any of them", "($a and pe.is_dll()) or ($a at 10)"}) {
        EXPECT_TRUE(gates_of(condition).needs_string) << condition;
    }
}

TEST(RuleGates, ConditionsThatCanHoldWithoutAStringDoNot) {
    for (const char* condition :
         {"true", "filesize < 10", "not $a", "$a or filesize > 100", "#a == 0", "#a >= 0",
          "#a < 2", "none of them", "0 of them", "for any i in (1..2) : ($a at i)",
          "other_rule", "any of (other_rule*)", "uint8(0) == 1", "$a or true",
          "any of them or pe.number_of_sections > 2", "#a > -1"}) {
        EXPECT_FALSE(gates_of(condition).needs_string) << condition;
    }
}

// The strings section as the prefilter reads it: identifiers, kinds, values as written (spans
// into the text) and modifiers; strings in comments and meta values that look like sections are
// not strings.
TEST(RuleGates, StringDeclarationsWithTheirModifiers) {
    const std::string text = R"(
rule r {
    meta:
        strings = "not a section"
        note = "$fake = /not a string/"
    strings:
        $a = "te\"xt" nocase wide ascii
        $ = { 4D 5A ?? } private
        $re = /ab+c\/d/is fullword
        // $c = "in a comment"
        $x = "k" xor(1-255)
        /* $d = /in a block comment/ */
        $b = "b" base64("!@#$%^&*(){}[].,|ABCDEFGHIJ\x09LMNOPQRSTUVWXYZabcdefghijklmnopqrstu") base64wide
        $ = "anon two"
    condition:
        any of them
}
rule no_strings { condition: true }
)";
    const auto all = analyse(text);
    ASSERT_EQ(all.rules.size(), 2U);
    const RuleGates& r = all.rules[0];
    EXPECT_EQ(r.strings_problem, "");
    ASSERT_EQ(r.strings.size(), 6U);
    const auto value = [&](const StringDeclaration& d) {
        return text.substr(d.begin, d.end - d.begin);
    };
    namespace m = string_modifier;
    EXPECT_EQ(r.strings[0].identifier, "$a");
    EXPECT_EQ(r.strings[0].kind, StringKind::kText);
    EXPECT_EQ(value(r.strings[0]), R"("te\"xt")");
    EXPECT_EQ(r.strings[0].modifiers, m::kNocase | m::kWide | m::kAscii);
    EXPECT_EQ(r.strings[1].identifier, "$");
    EXPECT_EQ(r.strings[1].kind, StringKind::kHex);
    EXPECT_EQ(value(r.strings[1]), "{ 4D 5A ?? }");
    EXPECT_EQ(r.strings[1].modifiers, m::kPrivate);
    EXPECT_EQ(r.strings[2].kind, StringKind::kRegex);
    EXPECT_EQ(value(r.strings[2]), R"(/ab+c\/d/is)");
    EXPECT_EQ(r.strings[2].modifiers, m::kFullword);
    EXPECT_EQ(r.strings[3].identifier, "$x");
    EXPECT_EQ(r.strings[3].modifiers, m::kXor);
    EXPECT_EQ(r.strings[4].modifiers, m::kBase64 | m::kBase64Wide);
    EXPECT_EQ(r.strings[5].identifier, "$");
    EXPECT_EQ(value(r.strings[5]), R"("anon two")");
    EXPECT_TRUE(all.rules[1].strings.empty());
    EXPECT_EQ(all.rules[1].strings_problem, "");
}

TEST(RuleGates, AStringsSectionItCannotFollowSaysWhy) {
    const struct {
        const char* rule;
        const char* problem;
    } cases[] = {
        {"rule r { strings: $a = \"x\" bogus condition: $a }", "unknown string modifier 'bogus'"},
        {"rule r { strings: $a \"x\" condition: $a }", "expected '=' after $a"},
        {"rule r { strings: $a = 12 condition: $a }", "expected a string value for $a"},
        {"rule r { strings: a = \"x\" condition: $a }", "expected a string identifier"},
        {"rule r { strings: $a = \"x\" xor(1 condition: $a }", "unbalanced modifier"},
    };
    for (const auto& c : cases) {
        const auto all = analyse(c.rule);
        ASSERT_EQ(all.rules.size(), 1U) << c.rule;
        EXPECT_TRUE(all.rules[0].strings.empty()) << c.rule;
        EXPECT_NE(all.rules[0].strings_problem.find(c.problem), std::string::npos)
            << c.rule << " -> " << all.rules[0].strings_problem;
        EXPECT_NE(all.rules[0].strings_problem.find("rule r"), std::string::npos);
    }
}

// The groups of strings a condition cannot hold without (the prefilter looks for one group).
TEST(RuleGates, RequiredStringGroups) {
    using G = std::vector<std::vector<std::string>>;
    const auto required = [](const std::string& condition) {
        return analyse("rule r { strings: $a = \"x\" $b1 = \"y\" $b2 = \"z\" condition: " +
                       condition + " }")
            .rules.at(0)
            .required;
    };
    EXPECT_EQ(required("$a"), (G{{"$a"}}));
    EXPECT_EQ(required("$a at 0 and #b1 > 2 and filesize < 10"), (G{{"$a"}, {"$b1"}}));
    EXPECT_EQ(required("2 <= #b2"), (G{{"$b2"}}));
    EXPECT_EQ(required("any of them"), (G{{"them"}}));
    EXPECT_EQ(required("2 of ($a, $b*)"), (G{{"$a", "$b*"}}));
    EXPECT_EQ(required("all of them"), (G{{"=them"}}));
    EXPECT_EQ(required("all of ($b*) and not $a"), (G{{"=$b*"}}));
    EXPECT_EQ(required("$a or all of ($b*)"), (G{{"$a", "$b*"}}));
    EXPECT_EQ(required("($a and $b1) or $b2"), (G{{"$a", "$b2"}}));
    for (const char* none : {"not $a", "$a or filesize < 10", "none of them", "true"}) {
        EXPECT_TRUE(required(none).empty()) << none;
    }
}

}  // namespace
}  // namespace senningen::agent
