// A prefilter in front of YARA scans of network streams, in the spirit of Suricata's
// multi-pattern matcher: Hyperscan looks for every string of the prefiltered rules at once, and
// a buffer holding none of them is scanned without those rules. libyara's Aho-Corasick loop
// runs at about 120-180 MB/s on this class of machine; most traffic holds none of a rule pack's
// strings.
//
// Exact, or not used. A rule is prefiltered when it cannot match unless one of its own strings
// matches (rule_gates.h: needs_string, read from the rule text), Hyperscan can look for a
// superset of every one of its strings, and it is neither global nor named by another rule's
// condition. Literals libyara found (text strings in their nocase, ascii and wide forms, hex
// strings and regular expressions without variable parts) are looked for as they are; the
// other regular expressions and hex strings are translated from their text
// (prefilter_patterns.h) and compiled in Hyperscan's prefilter mode, which may match more than
// the pattern but never less. A buffer without any of them can match none of those rules, so
// the remaining rules (compiled on their own, YaraRules) give the same result as the whole set;
// when every rule is prefiltered, such a buffer is not scanned at all. A rule set with
// `include`, or a text this reader cannot follow, has no prefilter.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace senningen::agent {

struct RuleGates;

// "NS:NAME" of a compiled rule (a YR_RULE*; NS is "default" when the source gave none).
std::string yara_rule_key(const void* yr_rule);

// A pattern for Hyperscan: a literal (escaped, \xHH) or a translated regular expression or hex
// string, compiled in prefilter mode.
struct PrefilterPattern {
    std::string expression;
    bool literal = false;
    bool caseless = false;
    bool dotall = false;
    auto operator<=>(const PrefilterPattern&) const = default;
};

// The patterns of one rule, under its key (yara_rule_key).
struct RulePatterns {
    std::string key;
    std::vector<PrefilterPattern> patterns;
};

// Empty when the prefilter can stand for every string of the compiled rule (YR_RULE*), whose
// strings section TEXT describes (matched by order and identifier; chained pieces of one
// string count once; SOURCE is the rule text TEXT was read from); then its patterns were
// appended to PATTERNS. Else which string it cannot stand for and why.
std::string rule_patterns(const void* yr_rule, const RuleGates& text, std::string_view source,
                          std::vector<PrefilterPattern>& patterns);

class LiteralPrefilter {
public:
    // One Hyperscan database for the patterns of RULES. A rule one of whose patterns Hyperscan
    // refuses (a construct it does not support, a pattern that matches the empty string) is
    // left out and named in REFUSED (key -> Hyperscan's message); the others stay. Null, with
    // WHY_NOT set, when Hyperscan refuses the whole (an unsupported CPU) or no rule is left.
    static std::unique_ptr<LiteralPrefilter> build(const std::vector<RulePatterns>& rules,
                                                   std::map<std::string, std::string>& refused,
                                                   std::string& why_not);
    ~LiteralPrefilter();
    LiteralPrefilter(const LiteralPrefilter&) = delete;
    LiteralPrefilter& operator=(const LiteralPrefilter&) = delete;

    // Hyperscan's per-thread working memory: one per scanner (thread), never shared.
    class Scratch {
    public:
        ~Scratch();
        Scratch(const Scratch&) = delete;
        Scratch& operator=(const Scratch&) = delete;

    private:
        friend class LiteralPrefilter;
        explicit Scratch(void* scratch) : scratch_(scratch) {}
        void* scratch_;  // hs_scratch_t*
    };
    std::unique_ptr<Scratch> make_scratch() const;  // null when Hyperscan cannot allocate one

    // False only when no pattern occurs in DATA: then no prefiltered rule can match it. True on
    // any Hyperscan error (the scan goes to libyara).
    bool may_match(std::span<const std::uint8_t> data, Scratch& scratch) const;

    std::size_t literal_count() const { return literal_count_; }
    std::size_t expression_count() const { return expression_count_; }  // prefilter mode

private:
    LiteralPrefilter(void* database, std::size_t literals, std::size_t expressions)
        : database_(database), literal_count_(literals), expression_count_(expressions) {}
    void* database_;  // hs_database_t*
    std::size_t literal_count_;
    std::size_t expression_count_;
};

}  // namespace senningen::agent
