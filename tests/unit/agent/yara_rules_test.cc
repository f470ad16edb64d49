// Tests of the libyara wrapper: compiling (errors, namespaces, directories, version), scanning
// (meta, offsets, bounds, libyara's match limit, timeouts), YARA's own test expectations and
// the real rule sets in the shared data folder.
#include "senningen/agent/scan/yara_rules.h"

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

namespace senningen::agent {
namespace {

namespace fs = std::filesystem;
using common::ErrorCode;

const fs::path kSharedData = SENNINGEN_SHARED_DATA;

std::span<const std::uint8_t> bytes(const std::string& text) {
    return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

std::string read_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

// Rules compiled from TEXT, scanned over DATA; fails the test on any error.
std::vector<YaraMatch> scan_text(const std::string& rules_text, const std::string& data) {
    auto rules = YaraRules::compile_string(rules_text);
    if (!rules) {
        ADD_FAILURE() << rules.error().message;
        return {};
    }
    YaraScanner scanner(*rules);
    auto matches = scanner.scan(bytes(data));
    if (!matches) {
        ADD_FAILURE() << matches.error().message;
        return {};
    }
    return *matches;
}

const YaraMatch* find_rule(const std::vector<YaraMatch>& matches, const std::string& rule) {
    const auto it = std::find_if(matches.begin(), matches.end(),
                                 [&](const YaraMatch& m) { return m.rule == rule; });
    return it == matches.end() ? nullptr : &*it;
}

class YaraFiles : public ::testing::Test {
protected:
    void SetUp() override {
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        dir_ = fs::temp_directory_path() /
               ("senningen-yara-" + std::string(info->name()) + "-" + std::to_string(::getpid()));
        fs::remove_all(dir_);
        fs::create_directories(dir_);
    }
    void TearDown() override { fs::remove_all(dir_); }

    std::string write(const std::string& name, const std::string& text) {
        const fs::path path = dir_ / name;
        fs::create_directories(path.parent_path());
        std::ofstream(path, std::ios::binary) << text;
        return path.string();
    }

    fs::path dir_;
};

// Rule partitions (rule_gates.h) leave out rules a file's size and first bytes rule out: the
// matches must be exactly those of the full set, for files on every side of every gate, with
// externals set per file, global rules and rules that other rules name.
TEST_F(YaraFiles, PartitionsMatchExactlyWhatTheFullSetMatches) {
    const auto gated = write(
        "gated.yar",
        "global rule not_empty { condition: filesize > 0 }\n"
        "rule mz_small { strings: $a = \"evil\" condition: uint16(0) == 0x5a4d and "
        "filesize < 100 and $a }\n"
        "rule elf_only { strings: $a = \"evil\" condition: uint32(0) == 0x464c457f and $a }\n"
        "rule tiny { strings: $a = \"evil\" condition: filesize <= 64 and $a }\n"
        "rule mid { strings: $a = \"evil\" condition: ($a and 70000 > filesize) }\n"
        "rule named { condition: uint16(0) == 0x5a4d and filesize < 50 }\n"
        "rule uses_named { condition: named }\n"
        "rule any_evil { strings: $a = \"evil\" condition: $a }\n"
        "rule ext { condition: filesize < 1000 and filename == \"x.exe\" }\n"
        "rule either { strings: $a = \"evil\" condition: filesize < 10 or $a }\n");
    const auto other = write("other.yar",
                             "rule pk_zip { strings: $a = \"evil\" condition: "
                             "uint16be(0) == 0x504b and filesize < 1MB and $a }\n");
    const YaraExternals externals{{"filename", std::string()}};
    const std::vector<RuleSourceFile> files{{gated, ""}, {other, "ns2"}};
    auto full = YaraRules::compile_files(files, externals);
    YaraCompileOptions options;
    options.partitions = true;
    auto parted = YaraRules::compile_files(files, externals, options);
    ASSERT_TRUE(full && parted) << (full ? parted.error().message : full.error().message);
    ASSERT_TRUE((*parted)->partitioned());
    EXPECT_FALSE((*full)->partitioned());
    YaraScanner full_scanner(*full);
    YaraScanner part_scanner(*parted);

    std::set<std::string> seen;
    std::size_t compared = 0;
    for (int round = 0; round < kPartitionDemand + 1; ++round) {
        for (const char* head_text : {"MZ", "\x7f" "ELF", "PK", "ab"}) {
            const std::string head = head_text;
            for (const std::size_t size : {std::size_t{2}, std::size_t{10}, std::size_t{49},
                                           std::size_t{64}, std::size_t{65}, std::size_t{99},
                                           std::size_t{5000}, std::size_t{69999},
                                           std::size_t{70000}, std::size_t{1} << 20}) {
                for (const char* name : {"x.exe", "y"}) {
                    std::string data = head;
                    if (size >= data.size() + 4) data += "evil";
                    data.resize(std::max(size, data.size()), 'z');
                    std::set<std::string> expected, got;
                    ASSERT_TRUE(full_scanner.set_external("filename", std::string(name)));
                    ASSERT_TRUE(part_scanner.set_external("filename", std::string(name)));
                    auto a = full_scanner.scan(bytes(data));
                    auto b = part_scanner.scan(bytes(data));
                    ASSERT_TRUE(a && b);
                    for (const auto& m : *a) expected.insert(m.ns + ":" + m.rule);
                    for (const auto& m : *b) got.insert(m.ns + ":" + m.rule);
                    EXPECT_EQ(got, expected) << "head " << head << ", size " << data.size()
                                             << ", filename " << name << ", round " << round;
                    seen.insert(expected.begin(), expected.end());
                    ++compared;
                }
            }
        }
    }
    // Every rule matched somewhere: the comparison covered both sides of each gate.
    EXPECT_EQ(seen, (std::set<std::string>{
                        "default:not_empty", "default:mz_small", "default:elf_only",
                        "default:tiny", "default:mid", "default:named", "default:uses_named",
                        "default:any_evil", "default:ext", "default:either", "ns2:pk_zip"}));
    EXPECT_EQ(compared, 4U * 10 * 2 * (kPartitionDemand + 1));
    // Partitions were compiled and used: a text file of 5000 bytes gets one (made for its
    // kind or for a kind whose cuts all fail for it too).
    // Sets are compiled on a thread of their own: give the last one a moment.
    const std::string text(5000, 'a');
    auto selection = (*parted)->select(text.size(), bytes(text).first(4));
    for (int i = 0; i < 200 && selection.id == 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        selection = (*parted)->select(text.size(), bytes(text).first(4));
    }
    EXPECT_NE(selection.id, 0U);
    EXPECT_NE(selection.handle, (*parted)->handle());
    EXPECT_TRUE((*parted)->partition_summary().find("files scanned with one") !=
                std::string::npos);
    EXPECT_FALSE((*parted)->partition_summary().starts_with("0 "));
    EXPECT_EQ((*full)->select(text.size(), bytes(text).first(4)).id, 0U);
}

TEST_F(YaraFiles, NoPartitionsWhenARuleFileIncludesAnother) {
    write("inc.yar", "rule inc { condition: filesize < 10 }\n");
    const auto top = write("top.yar", "include \"inc.yar\"\nrule top { condition: filesize < 5 }\n");
    YaraCompileOptions options;
    options.partitions = true;
    auto rules = YaraRules::compile_files({{top, ""}}, {}, options);
    ASSERT_TRUE(rules) << rules.error().message;
    EXPECT_FALSE((*rules)->partitioned());
    EXPECT_EQ((*rules)->rule_count(), 2U);
}

TEST(YaraRules, CompilesStringAndCountsRules) {
    auto rules = YaraRules::compile_string(
        "rule one { condition: true }\n"
        "rule two { strings: $a = \"x\" condition: $a }\n"
        "private rule three { condition: false }\n");
    ASSERT_TRUE(rules) << rules.error().message;
    EXPECT_EQ((*rules)->rule_count(), 3U);
    EXPECT_NE((*rules)->handle(), nullptr);
    EXPECT_TRUE((*rules)->version().starts_with("sha256:"));
    EXPECT_EQ((*rules)->version().size(), 7U + 16U);
}

TEST(YaraRules, StringErrorsNameTheLineAndYarasText) {
    auto rules = YaraRules::compile_string(
        "rule a { condition: true }\n"
        "rule b { condition: nope }\n"
        "rule c { condition: ( }\n");
    ASSERT_FALSE(rules);
    EXPECT_EQ(rules.error().code, ErrorCode::kCompile);
    EXPECT_NE(rules.error().message.find("<string>:2: undefined identifier \"nope\""),
              std::string::npos)
        << rules.error().message;
}

TEST_F(YaraFiles, SyntaxErrorNamesFileAndLine) {
    const auto path = write("bad.yar",
                            "rule ok { condition: true }\n\n"
                            "rule broken {\n  condition: and\n}\n");
    auto rules = YaraRules::compile_files({{path, ""}});
    ASSERT_FALSE(rules);
    EXPECT_EQ(rules.error().code, ErrorCode::kCompile);
    EXPECT_NE(rules.error().message.find(path + ":4: syntax error"), std::string::npos)
        << rules.error().message;
}

TEST_F(YaraFiles, ReportsErrorsOfEveryFileAtOnce) {
    const auto base = write("1_base.yar", "rule base { strings: $a = \"base\" condition: $a }\n");
    const auto bad1 = write("2_bad.yar", "rule bad1 { condition: undefined_one }\n");
    const auto uses = write("3_uses.yar", "rule uses { condition: base }\n");
    const auto bad2 =
        write("4_bad.yar", "rule ok2 { condition: true }\nrule bad2 { condition: = }\n");
    auto rules = YaraRules::compile_files({{base, ""}, {bad1, ""}, {uses, ""}, {bad2, ""}});
    ASSERT_FALSE(rules);
    const auto lines = lines_of(rules.error().message);
    // One line per error; 3_uses.yar refers to a rule of 1_base.yar and is not reported even
    // though it was compiled after the failing 2_bad.yar.
    ASSERT_EQ(lines.size(), 2U) << rules.error().message;
    EXPECT_EQ(lines[0], bad1 + ":1: undefined identifier \"undefined_one\"");
    EXPECT_EQ(lines[1], bad2 + ":2: syntax error");
}

TEST_F(YaraFiles, MissingPathIsNotFound) {
    const std::string missing = (dir_ / "nope.yar").string();
    auto rules = YaraRules::compile_files({{missing, ""}});
    ASSERT_FALSE(rules);
    EXPECT_EQ(rules.error().code, ErrorCode::kNotFound);
    EXPECT_NE(rules.error().message.find(missing), std::string::npos);
}

TEST_F(YaraFiles, DirectoryWithoutRuleFilesIsNotFound) {
    write("empty/readme.txt", "rule not_a_rule_file { condition: true }\n");
    auto rules = YaraRules::compile_files({{(dir_ / "empty").string(), ""}});
    ASSERT_FALSE(rules);
    EXPECT_EQ(rules.error().code, ErrorCode::kNotFound);
    EXPECT_NE(rules.error().message.find("empty"), std::string::npos);
}

TEST_F(YaraFiles, NamespacesKeepEqualRuleNamesApart) {
    const auto a = write("a.yar", "rule dup { strings: $s = \"alpha\" condition: $s }\n");
    const auto b = write("b.yar", "rule dup { strings: $s = \"beta\" condition: $s }\n");

    auto clash = YaraRules::compile_files({{a, ""}, {b, ""}});
    ASSERT_FALSE(clash);
    EXPECT_NE(clash.error().message.find(b + ":1: duplicated identifier \"dup\""),
              std::string::npos)
        << clash.error().message;

    auto rules = YaraRules::compile_files({{a, "set_a"}, {b, "set_b"}});
    ASSERT_TRUE(rules) << rules.error().message;
    EXPECT_EQ((*rules)->rule_count(), 2U);
    YaraScanner scanner(*rules);
    auto matches = scanner.scan(bytes("alpha and beta"));
    ASSERT_TRUE(matches) << matches.error().message;
    std::set<std::pair<std::string, std::string>> seen;
    for (const auto& m : *matches) seen.emplace(m.ns, m.rule);
    EXPECT_EQ(seen,
              (std::set<std::pair<std::string, std::string>>{{"set_a", "dup"}, {"set_b", "dup"}}));
}

TEST_F(YaraFiles, DirectoryExpandsRecursivelyInNameOrder) {
    const auto b = write("rules/b.yar", "rule b { condition: true }\n");
    const auto a = write("rules/a.yara", "rule a { condition: true }\n");
    const auto c = write("rules/sub/c.yar", "rule c { condition: true }\n");
    write("rules/notes.txt", "this is not YARA");
    write("rules/sub/old.yar.bak", "rule bak { condition: ");

    auto from_dir = YaraRules::compile_files({{(dir_ / "rules").string(), "set"}});
    ASSERT_TRUE(from_dir) << from_dir.error().message;
    EXPECT_EQ((*from_dir)->rule_count(), 3U);

    // The version covers the files in sorted order, so listing them so gives the same one.
    auto listed = YaraRules::compile_files({{a, "set"}, {b, "set"}, {c, "set"}});
    ASSERT_TRUE(listed) << listed.error().message;
    EXPECT_EQ((*from_dir)->version(), (*listed)->version());
    auto reordered = YaraRules::compile_files({{c, "set"}, {b, "set"}, {a, "set"}});
    ASSERT_TRUE(reordered) << reordered.error().message;
    EXPECT_NE((*from_dir)->version(), (*reordered)->version());

    YaraScanner scanner(*from_dir);
    auto matches = scanner.scan(bytes("x"));
    ASSERT_TRUE(matches);
    ASSERT_EQ(matches->size(), 3U);
    for (const auto& m : *matches) EXPECT_EQ(m.ns, "set");
}

TEST_F(YaraFiles, VersionIsStableAndFollowsContent) {
    const std::string text = "rule v { condition: true }\n";
    const auto path = write("v.yar", text);
    auto first = YaraRules::compile_files({{path, ""}});
    auto second = YaraRules::compile_files({{path, ""}});
    auto as_string = YaraRules::compile_string(text);
    ASSERT_TRUE(first && second && as_string);
    EXPECT_EQ((*first)->version(), (*second)->version());
    // Only the source text counts, not where it came from.
    EXPECT_EQ((*first)->version(), (*as_string)->version());
    // `sha256sum v.yar | cut -c1-16`: operators can check the version by hand.
    EXPECT_EQ((*first)->version(), "sha256:ccbea302aadb5eba");

    write("v.yar", "rule v { condition: false }\n");
    auto changed = YaraRules::compile_files({{path, ""}});
    ASSERT_TRUE(changed);
    EXPECT_NE((*first)->version(), (*changed)->version());
}

TEST(YaraScanner, ReportsTagsMetaAndStringOffsets) {
    const auto matches = scan_text(
        "rule tagged : net exe {\n"
        "  meta:\n"
        "    author = \"senningen\"\n"
        "    score = 75\n"
        "    negative = -3\n"
        "    active = true\n"
        "    retired = false\n"
        "  strings:\n"
        "    $hello = \"hello\"\n"
        "    $hex = { 00 ff 00 }\n"
        "  condition:\n"
        "    all of them\n"
        "}\n"
        "rule quiet { strings: $q = \"absent\" condition: $q }\n",
        std::string("..hello..") + std::string("\x00\xff\x00", 3) + "hello");
    ASSERT_EQ(matches.size(), 1U);
    const YaraMatch& m = matches[0];
    EXPECT_EQ(m.rule, "tagged");
    EXPECT_EQ(m.tags, (std::vector<std::string>{"net", "exe"}));
    EXPECT_EQ(m.meta, (std::map<std::string, std::string>{{"author", "senningen"},
                                                          {"score", "75"},
                                                          {"negative", "-3"},
                                                          {"active", "true"},
                                                          {"retired", "false"}}));
    ASSERT_EQ(m.strings.size(), 3U);
    EXPECT_EQ(m.strings[0], (common::StringMatch{"$hello", 2, "hello", 5}));
    EXPECT_EQ(m.strings[1], (common::StringMatch{"$hex", 9, std::string("\x00\xff\x00", 3), 3}));
    EXPECT_EQ(m.strings[2], (common::StringMatch{"$hello", 12, "hello", 5}));
}

// Without libyara's signal guard (heap-only scans, as the engine's) the scan finds the same
// rules and strings at the same offsets, also after fast mode was switched on and off again
// (which must not drop the heap-only flag's effect on the result either).
TEST(YaraScanner, HeapOnlyScansFindWhatGuardedScansFind) {
    auto rules = YaraRules::compile_string(
        "rule two { strings: $a = \"beacon\" $b = { 41 42 43 } condition: all of them }\n"
        "rule quiet { strings: $n = \"absent\" condition: $n }\n");
    ASSERT_TRUE(rules) << rules.error().message;
    const std::string data = "xx beacon yy ABC zz beacon";
    YaraScanner guarded(*rules);
    YaraScanner heap_only(*rules);
    heap_only.set_heap_only(true);
    heap_only.set_fast_mode(true);
    heap_only.set_fast_mode(false);
    for (int round = 0; round < 3; ++round) {  // a scanner is reused scan after scan
        auto a = guarded.scan(bytes(data));
        auto b = heap_only.scan(bytes(data));
        ASSERT_TRUE(a) << a.error().message;
        ASSERT_TRUE(b) << b.error().message;
        ASSERT_EQ(b->size(), 1U);
        EXPECT_EQ((*b)[0].rule, "two");
        ASSERT_EQ(a->size(), b->size());
        EXPECT_EQ((*a)[0].strings, (*b)[0].strings);
        ASSERT_EQ((*b)[0].strings.size(), 3U);
        EXPECT_EQ((*b)[0].strings[0], (common::StringMatch{"$a", 3, "beacon", 6}));
        EXPECT_EQ((*b)[0].strings[1], (common::StringMatch{"$b", 13, "ABC", 3}));
        EXPECT_EQ((*b)[0].strings[2], (common::StringMatch{"$a", 20, "beacon", 6}));
    }
}

TEST(YaraScanner, DefaultNamespaceIsNamedDefault) {
    auto matches = scan_text("rule anything { condition: true }", "x");
    ASSERT_EQ(matches.size(), 1U);
    EXPECT_EQ(matches[0].ns, "default");
}

TEST(YaraScanner, KeepsAtMostMaxStringMatchesPerRule) {
    std::string data;
    for (int i = 0; i < 1000; ++i) data += "ab";
    const auto matches =
        scan_text("rule many { strings: $ab = \"ab\" condition: #ab == 1000 }", data);
    ASSERT_EQ(matches.size(), 1U);
    const auto& strings = matches[0].strings;
    ASSERT_EQ(strings.size(), common::kMaxStringMatches);
    for (std::size_t i = 0; i < strings.size(); ++i) {
        EXPECT_EQ(strings[i].offset, 2 * i);
        EXPECT_EQ(strings[i].data, "ab");
    }
}

TEST(YaraScanner, EveryStringGetsItsShareOfTheBoundedList) {
    std::string data(2000, 'a');
    data += "needle";
    const auto matches =
        scan_text("rule mixed { strings: $a = \"a\" $n = \"needle\" condition: $a and $n }", data);
    ASSERT_EQ(matches.size(), 1U);
    const auto& strings = matches[0].strings;
    ASSERT_EQ(strings.size(), common::kMaxStringMatches);
    const auto needle = std::find_if(strings.begin(), strings.end(),
                                     [](const auto& s) { return s.identifier == "$n"; });
    ASSERT_NE(needle, strings.end());
    EXPECT_EQ(needle->offset, 2000U);
    EXPECT_TRUE(std::is_sorted(strings.begin(), strings.end(),
                               [](const auto& x, const auto& y) { return x.offset < y.offset; }));
}

TEST(YaraScanner, CutsLongMatchesButKeepsTheirLength) {
    const std::string long_text(300, 'z');
    const auto matches =
        scan_text("rule long { strings: $z = /z{300}/ condition: $z }", "<" + long_text + ">");
    ASSERT_EQ(matches.size(), 1U);
    ASSERT_FALSE(matches[0].strings.empty());
    const auto& s = matches[0].strings[0];
    EXPECT_EQ(s.offset, 1U);
    EXPECT_EQ(s.length, 300U);
    EXPECT_EQ(s.data, std::string(common::kMaxMatchExcerpt, 'z'));
}

TEST(YaraScanner, TooManyMatchesOfOneStringDoesNotAbortTheScan) {
    // libyara stops collecting a string after 1,000,000 matches and asks the callback.
    std::string data(1'100'000, 'A');
    data += "the end";
    const auto matches = scan_text(
        "rule flood { strings: $a = \"A\" condition: $a }\n"
        "rule tail { strings: $e = \"the end\" condition: $e }\n"
        "rule size { condition: filesize > 1000000 }\n",
        data);
    std::set<std::string> names;
    for (const auto& m : matches) names.insert(m.rule);
    EXPECT_EQ(names, (std::set<std::string>{"flood", "tail", "size"}));
    const YaraMatch* flood = find_rule(matches, "flood");
    ASSERT_NE(flood, nullptr);
    EXPECT_EQ(flood->strings.size(), common::kMaxStringMatches);
    const YaraMatch* tail = find_rule(matches, "tail");
    ASSERT_NE(tail, nullptr);
    ASSERT_EQ(tail->strings.size(), 1U);
    EXPECT_EQ(tail->strings[0].offset, 1'100'000U);
}

TEST(YaraScanner, TimeoutIsMappedToKTimeout) {
    auto rules = YaraRules::compile_string(
        "rule slow { condition: for all i in (0..0x7fffffffffff) : "
        "(for all j in (0..0x7fffffffffff) : (i + j >= 0)) }");
    ASSERT_TRUE(rules) << rules.error().message;
    YaraScanner scanner(*rules, 1);
    const auto started = std::chrono::steady_clock::now();
    auto matches = scanner.scan(bytes("data"));
    const auto elapsed = std::chrono::steady_clock::now() - started;
    ASSERT_FALSE(matches);
    EXPECT_EQ(matches.error().code, ErrorCode::kTimeout);
    EXPECT_NE(matches.error().message.find("timed out after 1 s"), std::string::npos)
        << matches.error().message;
    EXPECT_LT(elapsed, std::chrono::seconds(10));

    // The scanner is still usable afterwards.
    auto fast = YaraRules::compile_string("rule fast { condition: true }");
    ASSERT_TRUE(fast);
    YaraScanner again(*fast, 1);
    auto ok = again.scan(bytes("data"));
    ASSERT_TRUE(ok) << ok.error().message;
    EXPECT_EQ(ok->size(), 1U);
}

TEST(YaraScanner, ExternalsAtCompileTimeAndPerScan) {
    const std::string text = "rule exe { condition: filename endswith \".exe\" and size > 2 }";
    auto without = YaraRules::compile_string(text);
    ASSERT_FALSE(without);
    EXPECT_NE(without.error().message.find("undefined identifier \"filename\""), std::string::npos)
        << without.error().message;

    auto rules = YaraRules::compile_string(
        text, {{"filename", std::string("setup.exe")}, {"size", std::int64_t{3}}});
    ASSERT_TRUE(rules) << rules.error().message;
    YaraScanner scanner(*rules);
    auto first = scanner.scan(bytes("x"));
    ASSERT_TRUE(first);
    EXPECT_EQ(first->size(), 1U);

    ASSERT_TRUE(scanner.set_external("filename", std::string("notes.txt")));
    auto second = scanner.scan(bytes("x"));
    ASSERT_TRUE(second);
    EXPECT_TRUE(second->empty());

    auto unknown = scanner.set_external("no_such_variable", std::string("x"));
    ASSERT_FALSE(unknown);
    EXPECT_EQ(unknown.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(unknown.error().message.find("no_such_variable"), std::string::npos);
}

TEST(YaraScanner, OneScannerPerThreadSharesTheRules) {
    auto rules = YaraRules::compile_string("rule hit { strings: $a = \"needle\" condition: $a }");
    ASSERT_TRUE(rules);
    std::shared_ptr<const YaraRules> shared = *rules;
    std::atomic<int> hits{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&shared, &hits] {
            ensure_yara_initialized();
            YaraScanner scanner(shared);
            for (int i = 0; i < 50; ++i) {
                auto m = scanner.scan(bytes("hay needle hay"));
                if (m && m->size() == 1 && (*m)[0].strings.size() == 1) ++hits;
            }
        });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(hits.load(), 200);
}

TEST(YaraScanner, ScannerWithoutRulesReportsAnError) {
    YaraScanner scanner(nullptr);
    auto matches = scanner.scan(bytes("x"));
    ASSERT_FALSE(matches);
    EXPECT_EQ(matches.error().code, ErrorCode::kInternal);
}

// ---- YARA's own expectations (tests/test-rules.c of v4.2.3) ----

std::string unhex(const std::string& hex) {
    std::string out;
    out.reserve(hex.size() / 2);
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
        out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    }
    return out;
}

// What YARA's test harness defines for every rule it compiles.
YaraExternals harness_externals() {
    return {{"var_zero", std::int64_t{0}},
            {"var_one", std::int64_t{1}},
            {"var_true", true},
            {"var_false", false}};
}

std::vector<Poco::JSON::Object::Ptr> read_jsonl(const fs::path& path) {
    std::vector<Poco::JSON::Object::Ptr> records;
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);) {
        if (line.empty()) continue;
        Poco::JSON::Parser parser;
        records.push_back(parser.parse(line).extract<Poco::JSON::Object::Ptr>());
    }
    return records;
}

TEST(YaraOwnTests, AllCasesOfYara423AgreeWithLibyara) {
    const fs::path path = kSharedData / "yara/yara-own-tests/cases.jsonl";
    if (!fs::exists(path)) GTEST_SKIP() << "shared data not present: " << path;
    const auto cases = read_jsonl(path);
    ASSERT_EQ(cases.size(), 347U);
    int passed = 0;
    int prefiltered_rules = 0;
    std::uint64_t skipped_scans = 0;
    std::vector<std::string> failures;
    for (const auto& c : cases) {
        const std::string rule = c->getValue<std::string>("rule");
        const std::string data = unhex(c->getValue<std::string>("data_hex"));
        const bool expect = c->getValue<bool>("expect_match");
        const std::string where = "case " + std::to_string(c->getValue<int>("id")) +
                                  " (test-rules.c:" + std::to_string(c->getValue<int>("line")) +
                                  ")";
        ASSERT_EQ(data.size(), c->getValue<std::size_t>("data_len")) << where;
        auto rules = YaraRules::compile_string(rule, harness_externals(), {.prefilter = true});
        if (!rules) {
            failures.push_back(where + ": does not compile: " + rules.error().message);
            continue;
        }
        YaraScanner scanner(*rules);
        auto matches = scanner.scan(bytes(data));
        if (!matches) {
            failures.push_back(where + ": scan failed: " + matches.error().message);
            continue;
        }
        if (matches->empty() == expect) {
            failures.push_back(where + ": expected " + (expect ? "a match" : "no match") + ": " +
                               rule);
            continue;
        }
        // The stream engine's kind of scanner: heap-only, with the literal prefilter when the
        // rules allow it. It must agree too, also when the prefilter skips the data.
        YaraScanner stream(*rules);
        stream.set_heap_only(true);
        auto streamed = stream.scan(bytes(data));
        if (!streamed || streamed->empty() == expect) {
            failures.push_back(where + ": the heap-only scanner (prefilter " +
                               ((*rules)->prefilter() ? "on" : "off") + ") disagrees: " + rule);
            continue;
        }
        if ((*rules)->prefilter()) ++prefiltered_rules;
        skipped_scans += stream.prefiltered();
        ++passed;
    }
    std::cout << "YARA own tests: " << passed << " of " << cases.size()
              << " cases agree, 0 skipped; the literal prefilter was on for "
              << prefiltered_rules << " and skipped the data of " << skipped_scans << "\n";
    EXPECT_EQ(passed, 347);
    EXPECT_GT(prefiltered_rules, 20);
    EXPECT_GT(skipped_scans, 0U);
    for (const auto& f : failures) ADD_FAILURE() << f;
}

// The CLI printed "error: rule "x" in r.yar(N): MSG" or "r.yar(N): error: MSG"; the wrapper
// must say "<string>:N: MSG" for each, through the same libyara.
TEST(YaraOwnTests, AllCompileErrorsAreReportedLikeTheCli) {
    const fs::path path = kSharedData / "yara/yara-own-tests/compile-errors.jsonl";
    if (!fs::exists(path)) GTEST_SKIP() << "shared data not present: " << path;
    const auto cases = read_jsonl(path);
    ASSERT_EQ(cases.size(), 59U);
    const std::regex cli_line(R"(r\.yar\((\d+)\):(?: error:)?(?: (.*))?$)");
    int refused = 0;
    for (const auto& c : cases) {
        const std::string rule = c->getValue<std::string>("rule");
        const std::string where = "compile error case " + std::to_string(c->getValue<int>("id")) +
                                  " (" + c->getValue<std::string>("expected_error") + "): " + rule;
        auto rules = YaraRules::compile_string(rule, harness_externals());
        if (rules) {
            ADD_FAILURE() << where << ": compiled";
            continue;
        }
        ++refused;
        EXPECT_EQ(rules.error().code, ErrorCode::kCompile) << where;
        const auto ours = lines_of(rules.error().message);
        const auto cli = lines_of(c->getValue<std::string>("yara_4.2.3_stderr"));
        EXPECT_EQ(ours.size(), cli.size()) << where << "\nours:\n" << rules.error().message;
        for (const auto& line : cli) {
            std::smatch m;
            ASSERT_TRUE(std::regex_search(line, m, cli_line)) << line;
            const std::string expected =
                "<string>:" + m[1].str() + ":" + (m[2].length() > 0 ? " " + m[2].str() : "");
            EXPECT_NE(rules.error().message.find(expected), std::string::npos)
                << where << "\nexpected: " << expected << "\nours:\n"
                << rules.error().message;
        }
    }
    EXPECT_EQ(refused, 59);
}

// ---- The real rule sets in the shared data folder ----

struct RuleSet {
    const char* name;
    // As `yara -S` counts them after `yarac`. yara/README.md says 1,065 and 1,350 for the first
    // two: it counted "rule" lines, including rules inside /* comments */.
    std::size_t rules;
};
constexpr RuleSet kRuleSets[] = {{"yara-rules", 1042}, {"signature-base", 1342}, {"elastic", 957}};

TEST(YaraRuleSets, EachSetCompilesInItsOwnNamespace) {
    if (!fs::exists(kSharedData / "yara")) {
        GTEST_SKIP() << "shared data not present: " << kSharedData / "yara";
    }
    for (const auto& set : kRuleSets) {
        const auto started = std::chrono::steady_clock::now();
        auto rules =
            YaraRules::compile_files({{(kSharedData / "yara" / set.name).string(), set.name}});
        ASSERT_TRUE(rules) << set.name << ": " << rules.error().message;
        EXPECT_EQ((*rules)->rule_count(), set.rules) << set.name;
        std::cout << set.name << ": " << (*rules)->rule_count() << " rules in "
                  << std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::steady_clock::now() - started)
                         .count()
                  << " ms, " << (*rules)->version() << "\n";
    }
}

TEST(YaraRuleSets, SetsClashInOneNamespace) {
    if (!fs::exists(kSharedData / "yara")) {
        GTEST_SKIP() << "shared data not present: " << kSharedData / "yara";
    }
    auto rules = YaraRules::compile_files({{(kSharedData / "yara/yara-rules").string(), ""},
                                           {(kSharedData / "yara/signature-base").string(), ""}});
    ASSERT_FALSE(rules);
    EXPECT_EQ(rules.error().code, ErrorCode::kCompile);
    EXPECT_NE(rules.error().message.find("thor-webshells.yar:"), std::string::npos);
    EXPECT_NE(rules.error().message.find("duplicated identifier"), std::string::npos);
}

// All three sets at once, each in its namespace, over the generated samples: the matches must
// be exactly what yara 4.2.3 reported (samples/EXPECTED-yara-4.2.3-matches.tsv).
TEST(YaraRuleSets, AllSetsTogetherMatchSamplesLikeYaraCli) {
    const fs::path expected_path = kSharedData / "samples/EXPECTED-yara-4.2.3-matches.tsv";
    if (!fs::exists(expected_path)) GTEST_SKIP() << "shared data not present: " << expected_path;
    std::vector<RuleSourceFile> files;
    std::size_t total = 0;
    for (const auto& set : kRuleSets) {
        files.push_back({(kSharedData / "yara" / set.name).string(), set.name});
        total += set.rules;
    }
    auto rules = YaraRules::compile_files(files);
    ASSERT_TRUE(rules) << rules.error().message;
    EXPECT_EQ((*rules)->rule_count(), total);

    std::set<std::tuple<std::string, std::string, std::string>> expected;
    for (const auto& line : lines_of(read_file(expected_path))) {
        std::istringstream fields(line);
        std::string set, rule, file;
        std::getline(fields, set, '\t');
        std::getline(fields, rule, '\t');
        std::getline(fields, file, '\t');
        if (set == "ruleset") continue;  // the header
        expected.emplace(set, rule, file);
    }
    ASSERT_FALSE(expected.empty());

    YaraScanner scanner(*rules);
    std::set<std::tuple<std::string, std::string, std::string>> seen;
    int scanned = 0;
    for (const auto& entry : fs::directory_iterator(kSharedData / "samples")) {
        if (entry.path().extension() == ".tsv") continue;
        const std::string name = "samples/" + entry.path().filename().string();
        auto matches = scanner.scan(bytes(read_file(entry.path())));
        ASSERT_TRUE(matches) << name << ": " << matches.error().message;
        for (const auto& m : *matches) seen.emplace(m.ns, m.rule, name);
        ++scanned;
    }
    EXPECT_GE(scanned, 9);
    EXPECT_EQ(seen, expected);
}

}  // namespace
}  // namespace senningen::agent
