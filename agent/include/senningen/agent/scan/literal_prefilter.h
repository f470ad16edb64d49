// A literal prefilter in front of YARA scans of network streams, in the spirit of Suricata's
// multi-pattern matcher: Hyperscan looks for every literal of the prefiltered rules' strings
// at once, and a buffer holding none of them is scanned without those rules. libyara's
// Aho-Corasick loop runs at about 120-180 MB/s on this class of machine; most traffic holds
// none of a rule pack's strings.
//
// Exact, or not used. A rule is prefiltered when it cannot match unless one of its own
// strings matches (rule_gates.h: needs_string, read from the rule text) and every one of its
// strings is a literal libyara itself found (text strings with their nocase, ascii and wide
// forms, hex strings without wildcards or jumps), and it is neither global nor named by
// another rule's condition. A buffer without any of their literals can match none of them, so
// the remaining rules (compiled on their own, YaraRules) give the same result as the whole set;
// when every rule is prefiltered, such a buffer is not scanned at all. A rule set with
// `include`, or a text this reader cannot follow, has no prefilter.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace senningen::agent {

// "NS:NAME" of a compiled rule (a YR_RULE*; NS is "default" when the source gave none).
std::string yara_rule_key(const void* yr_rule);
// Empty when the prefilter can look for every string of the compiled rule (YR_RULE*), else
// which string it cannot look for and why.
std::string literal_problem(const void* yr_rule);

class LiteralPrefilter {
public:
    // The literals of the compiled rules (YR_RULES*) whose keys (yara_rule_key) are in
    // RULE_KEYS; each such rule must have no literal_problem. Null, with WHY_NOT set, when
    // Hyperscan refuses (an unsupported CPU, a compile failure) or there are no literals.
    static std::unique_ptr<LiteralPrefilter> build(void* yr_rules,
                                                   const std::set<std::string>& rule_keys,
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

    // False only when no literal occurs in DATA: then no rule can match it. True on any
    // Hyperscan error (the scan goes to libyara).
    bool may_match(std::span<const std::uint8_t> data, Scratch& scratch) const;

    std::size_t literal_count() const { return literal_count_; }

private:
    LiteralPrefilter(void* database, std::size_t literals)
        : database_(database), literal_count_(literals) {}
    void* database_;  // hs_database_t*
    std::size_t literal_count_;
};

}  // namespace senningen::agent
