// A literal prefilter in front of YARA scans of network streams, in the spirit of Suricata's
// multi-pattern matcher: Hyperscan looks for every literal of every YARA string at once, and
// libyara (whose Aho-Corasick loop runs at about 120-180 MB/s on this class of machine) scans
// only the buffers where one occurs. Most traffic contains none of a rule pack's strings.
//
// Sound, or not built at all. A buffer in which no literal occurs can make no YARA string
// match, so the prefilter is built only when no rule can match without one of its strings
// matching (rule_gates.h: needs_string, read from the rule text; a rule pack with `include`
// or a rule this reader cannot follow leaves it off) and every string of the compiled rules
// is a literal libyara itself found: text strings with their nocase, ascii and wide forms, hex
// strings without wildcards or jumps. Regular expressions, hex strings with wildcards, xor and
// base64 strings leave it off. It is then off for the whole rule set: every buffer goes to
// libyara, as without it; why is in reason() and the agent's log.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace senningen::agent {

class LiteralPrefilter {
public:
    // YR_RULES: the compiled rules (YR_RULES*); TEXTS: every source text they were compiled
    // from. Null, with WHY_NOT set, when the prefilter would not be sound or Hyperscan
    // refuses (an unsupported CPU, a compile failure).
    static std::unique_ptr<LiteralPrefilter> build(void* yr_rules,
                                                   std::span<const std::string> texts,
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
