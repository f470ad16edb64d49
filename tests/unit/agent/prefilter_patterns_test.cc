// YARA regular expressions and hex strings as Hyperscan patterns: each construct, what it
// becomes, and what is refused (the rule is then not prefiltered).
#include "senningen/agent/scan/prefilter_patterns.h"

#include <gtest/gtest.h>

#include <string>

namespace senningen::agent {
namespace {

struct Case {
    const char* yara;
    const char* hyperscan;     // nullptr: refused
    const char* problem = "";  // a part of the refusal's reason
};

const Case kRegexes[] = {
    {"/abc/", "abc"},
    {"/a{,3}b/", "a{0,3}b"},  // YARA's {,m} is {0,m}; PCRE would read it as text
    {"/a{,}/", "a*"},
    {"/a{2,}/", "a{2,}"},
    {"/a{3}/", "a{3}"},
    {"/a{2,5}?/", "a{2,5}"},     // lazy: the same places match
    {"/a{x}/", "a\\x7bx\\x7d"},  // no repeat: literal braces, as in YARA
    // Large bounded repeats (slow to compile) become open ones: a superset.
    {"/a{0,500}b{100}c{10,40}d{32}/", "a*b{32,}c{10,}d{32}"},
    {"/a*?b+?c?"
     "?/",
     "a*b+c?"},  // split: no trigraph
    {"/\\x41\\n\\t\\r\\f\\a/", "\\x41\\x0a\\x09\\x0d\\x0c\\x07"},
    {"/\\d\\s/", "[\\x30-\\x39][\\x09-\\x0d\\x20]"},
    {"/\\w/", "[\\x30-\\x39\\x41-\\x5a\\x5f\\x61-\\x7a]"},
    {"/\\D\\S/", "[\\x00-\\x2f\\x3a-\\xff][\\x00-\\x08\\x0e-\\x1f\\x21-\\xff]"},
    {"/\\bfoo\\B/", "\\bfoo\\B"},
    {"/a\\/b\\.c\\\\/", "a\\x2fb\\x2ec\\x5c"},
    {"/^a.c$/", "^a.c$"},
    {"/[a-c\\]x]/", "[\\x5d\\x61-\\x63\\x78]"},
    {"/[^]a]/", "[^\\x5d\\x61]"},
    {"/[]a]/", "[\\x5d\\x61]"},
    {"/[a-]/", "[\\x2d\\x61]"},
    {"/[\\x30-\\x32\\d]/", "[\\x30-\\x39]"},
    {"/[\\w-]/", "[\\x2d\\x30-\\x39\\x41-\\x5a\\x5f\\x61-\\x7a]"},
    {"/[.*+?(]/", "[\\x28\\x2a-\\x2b\\x2e\\x3f]"},
    {"/(ab|cd)+e/", "(?:ab|cd)+e"},
    {"/(ab|)c/", "(?:ab|)c"},
    {"/\\z/", nullptr, "the escape \\z"},
    {"/\\v/", nullptr, "the escape \\v"},
    {"/a\\1/", nullptr, "backreference"},
    {"/(?:a)/", nullptr, "(?"},
    {"/[\\w-z]/", nullptr, "a range starting at \\w"},
    {"/[\\q]/", nullptr, "the escape \\q"},
    {"/abc/m", nullptr, "flag m"},
    {"/*a/", nullptr, "nothing to repeat"},
    {"/a**/", nullptr, "nothing to repeat"},
    {"/a(b/", nullptr, "unbalanced ("},
    {"/[ab/", nullptr, "closing ]"},
    {"/a\\x4/", nullptr, "two hex digits"},
};

// C's expected pattern, or a refusal whose reason names C's problem.
void expect_translation(const Case& c, const TranslatedPattern& p) {
    if (c.hyperscan == nullptr) {
        EXPECT_NE(p.problem, "") << c.yara << " -> " << p.expression;
        EXPECT_NE(p.problem.find(c.problem), std::string::npos) << c.yara << ": " << p.problem;
    } else {
        EXPECT_EQ(p.problem, "") << c.yara;
        EXPECT_EQ(p.expression, c.hyperscan) << c.yara;
    }
}

TEST(PrefilterPatterns, RegularExpressionConstructs) {
    for (const Case& c : kRegexes) {
        expect_translation(c, translate_yara_regex(c.yara, false, false));
    }
}

TEST(PrefilterPatterns, RegularExpressionFlagsAndModifiers) {
    const auto plain = translate_yara_regex("/a.c/", false, false);
    EXPECT_FALSE(plain.caseless);
    EXPECT_FALSE(plain.dotall);
    const auto flags = translate_yara_regex("/a.c/is", false, false);
    EXPECT_TRUE(flags.caseless);
    EXPECT_TRUE(flags.dotall);
    EXPECT_EQ(flags.expression, "a.c");
    EXPECT_TRUE(translate_yara_regex("/a/", false, true).caseless);  // nocase
}

TEST(PrefilterPatterns, WideRegularExpressionsPutAZeroAfterEachCharacter) {
    const Case wide[] = {
        {"/ab+/", "(?:a\\x00)(?:b\\x00)+"},
        {"/[0-9]{2}/", "(?:[\\x30-\\x39]\\x00){2}"},
        {"/a.(b|c)/", "(?:a\\x00)(?:.\\x00)(?:(?:b\\x00)|(?:c\\x00))"},
        // YARA looks two bytes back for a wide word boundary: dropped, a superset.
        {"/\\bab\\B/", "(?:a\\x00)(?:b\\x00)"},
        {"/^a$/", "^(?:a\\x00)$"},
    };
    for (const Case& c : wide) {
        const TranslatedPattern p = translate_yara_regex(c.yara, true, false);
        EXPECT_EQ(p.problem, "") << c.yara;
        EXPECT_EQ(p.expression, c.hyperscan) << c.yara;
    }
}

const Case kHexStrings[] = {
    {"{ 4D 5A }", "\\x4d\\x5a"},
    {"{4d5a}", "\\x4d\\x5a"},
    {"{ 4D ?? 5A }", "\\x4d.\\x5a"},
    {"{ 4? }", "[\\x40-\\x4f]"},
    {"{ ?4 }",
     "[\\x04\\x14\\x24\\x34\\x44\\x54\\x64\\x74\\x84\\x94\\xa4\\xb4\\xc4\\xd4\\xe4\\xf4]"},
    {"{ ~4D 01 }", "[^\\x4d]\\x01"},
    {"{ ~4? 01 }", "[^\\x40-\\x4f]\\x01"},
    {"{ 01 [2] 02 [1-3] 03 [4-] 04 [-] 05 }", "\\x01.{2}\\x02.{1,3}\\x03.{4,}\\x04.*\\x05"},
    {"{ 01 [ 2 - 3 ] 02 [0] 03 }", "\\x01.{2,3}\\x02\\x03"},
    {"{ 01 [0-500] 02 [40-50] 03 [33] 04 [0-32] 05 }",
     "\\x01.*\\x02.{32,}\\x03.{32,}\\x04.{0,32}\\x05"},
    {"{ 01 ( 02 | 03 ?? ) 04 }", "\\x01(?:\\x02|\\x03.)\\x04"},
    {"{ 01 /* 02 } */ 03 // 04\n 05 }", "\\x01\\x03\\x05"},
    {"{ 0 }", nullptr, "does not take"},
    {"{ 01 G1 }", nullptr, "does not take"},
    {"{ 01 ~?? }", nullptr, "~??"},
    {"{ 01 [a] 02 }", nullptr, "jump"},
    {"{ 01 [3-1] 02 }", nullptr, "backwards"},
    {"{ 01 ( 02 }", nullptr, "unbalanced"},
};

TEST(PrefilterPatterns, HexStringConstructs) {
    for (const Case& c : kHexStrings) {
        const TranslatedPattern p = translate_yara_hex(c.yara);
        expect_translation(c, p);
        if (c.hyperscan != nullptr) {
            EXPECT_TRUE(p.dotall) << c.yara;  // ?? and jumps match newlines too
            EXPECT_FALSE(p.caseless) << c.yara;
        }
    }
}

// The fixed bytes every match holds: what decides whether a pattern is distinctive enough.
TEST(PrefilterPatterns, FixedBytesEveryMatchHolds) {
    const struct {
        const char* yara;
        bool wide;
        std::size_t fixed;
    } regexes[] = {
        {"/abc/", false, 3},           {"/a[bc]d?e*f+/", false, 2},
        {"/(exec|eval)\\(/", false, 5}, {"/(ab|c)?xyz/", false, 3},
        {"/abc|de/", false, 2},        {"/abc/", true, 6},
        {"/([\\w\\.-]+)/", false, 0}, {"/x{3}y{0,2}/", false, 1},
    };
    for (const auto& c : regexes) {
        EXPECT_EQ(translate_yara_regex(c.yara, c.wide, false).fixed_bytes, c.fixed) << c.yara;
    }
    EXPECT_EQ(translate_yara_hex("{ 4D 5A ?? ( 01 02 | 03 ) [2-4] 0? 05 }").fixed_bytes, 4U);
}

TEST(PrefilterPatterns, LiteralsAreEscapedByteForByte) {
    EXPECT_EQ(hyperscan_literal(std::string("a\0.", 3)), "\\x61\\x00\\x2e");
    EXPECT_EQ(hyperscan_literal(""), "");
}

}  // namespace
}  // namespace senningen::agent
