// The literal prefilter (see literal_prefilter.h): which strings count, and Hyperscan.
#include "senningen/agent/scan/literal_prefilter.h"

#include <hs.h>
#include <yara.h>

#include <set>
#include <utility>

#include "senningen/agent/scan/rule_gates.h"

namespace senningen::agent {
namespace {

// A literal as Hyperscan takes it: bytes (NULs allowed) and whether case is ignored.
using Literal = std::pair<std::string, bool>;

std::string widen(std::string_view ascii) {
    std::string wide;
    wide.reserve(ascii.size() * 2);
    for (const char c : ascii) {
        wide += c;
        wide += '\0';
    }
    return wide;
}

// Every literal the rules' strings are made of, or false with WHY_NOT.
bool collect_literals(YR_RULES* rules, std::set<Literal>& out, std::string& why_not) {
    const YR_RULE* rule = nullptr;
    yr_rules_foreach(rules, rule) {
        if (RULE_IS_DISABLED(rule)) continue;
        const YR_STRING* string = nullptr;
        yr_rule_strings_foreach(rule, string) {
            if (STRING_IS_DISABLED(string)) continue;  // never matches
            const std::string name = std::string(rule->identifier) + " " + string->identifier;
            if ((string->flags & (STRING_FLAGS_XOR | STRING_FLAGS_BASE64 |
                                  STRING_FLAGS_BASE64_WIDE)) != 0) {
                why_not = "rule " + name + " is an xor or base64 string";
                return false;
            }
            if (!STRING_IS_LITERAL(string) || string->length <= 0) {
                why_not = "rule " + name + " is a regular expression or a hex string with " +
                          "wildcards or jumps";
                return false;
            }
            const std::string bytes(reinterpret_cast<const char*>(string->string),
                                    static_cast<std::size_t>(string->length));
            const bool nocase = STRING_IS_NO_CASE(string) != 0;
            // libyara searches the ascii form unless only `wide` was asked for.
            if (STRING_IS_ASCII(string) || !STRING_IS_WIDE(string)) out.emplace(bytes, nocase);
            if (STRING_IS_WIDE(string)) out.emplace(widen(bytes), nocase);
        }
    }
    return true;
}

int on_literal(unsigned /*id*/, unsigned long long /*from*/, unsigned long long /*to*/,
               unsigned /*flags*/, void* found) {
    *static_cast<bool*>(found) = true;
    return 1;  // one is enough: stop the scan
}

}  // namespace

std::unique_ptr<LiteralPrefilter> LiteralPrefilter::build(void* yr_rules,
                                                          std::span<const std::string> texts,
                                                          std::string& why_not) {
    auto* rules = static_cast<YR_RULES*>(yr_rules);
    if (rules == nullptr) {
        why_not = "no rules";
        return nullptr;
    }
    // Every rule of the text must need one of its strings; the texts must be all there is.
    std::size_t analysed = 0;
    for (const std::string& text : texts) {
        auto gates = analyse_rule_gates(text);
        if (!gates) {
            why_not = "a rule text this reader cannot follow (" + gates.error().message + ")";
            return nullptr;
        }
        if (gates->has_include) {
            why_not = "the rules use include";
            return nullptr;
        }
        for (const RuleGates& rule : gates->rules) {
            if (!rule.needs_string) {
                why_not = "rule " + rule.name + " can match without any of its strings";
                return nullptr;
            }
        }
        analysed += gates->rules.size();
    }
    std::size_t compiled = 0;
    const YR_RULE* rule = nullptr;
    yr_rules_foreach(rules, rule) { ++compiled; }
    if (compiled != analysed) {
        why_not = std::to_string(compiled) + " rules compiled but " + std::to_string(analysed) +
                  " read from the text";
        return nullptr;
    }
    std::set<Literal> literals;
    if (!collect_literals(rules, literals, why_not)) return nullptr;
    if (literals.empty()) {
        why_not = "no strings";
        return nullptr;
    }
    if (hs_valid_platform() != HS_SUCCESS) {
        why_not = "Hyperscan does not support this CPU";
        return nullptr;
    }
    std::vector<const char*> patterns;
    std::vector<unsigned> flags;
    std::vector<unsigned> ids;
    std::vector<std::size_t> lengths;
    for (const auto& [bytes, nocase] : literals) {
        patterns.push_back(bytes.data());
        flags.push_back(HS_FLAG_SINGLEMATCH | (nocase ? HS_FLAG_CASELESS : 0U));
        ids.push_back(static_cast<unsigned>(ids.size()));
        lengths.push_back(bytes.size());
    }
    hs_database_t* database = nullptr;
    hs_compile_error_t* error = nullptr;
    if (hs_compile_lit_multi(patterns.data(), flags.data(), ids.data(), lengths.data(),
                             static_cast<unsigned>(patterns.size()), HS_MODE_BLOCK, nullptr,
                             &database, &error) != HS_SUCCESS) {
        why_not = std::string("Hyperscan cannot compile the literals: ") +
                  (error != nullptr && error->message != nullptr ? error->message : "unknown");
        hs_free_compile_error(error);
        return nullptr;
    }
    return std::unique_ptr<LiteralPrefilter>(new LiteralPrefilter(database, literals.size()));
}

LiteralPrefilter::~LiteralPrefilter() {
    hs_free_database(static_cast<hs_database_t*>(database_));
}

LiteralPrefilter::Scratch::~Scratch() {
    hs_free_scratch(static_cast<hs_scratch_t*>(scratch_));
}

std::unique_ptr<LiteralPrefilter::Scratch> LiteralPrefilter::make_scratch() const {
    hs_scratch_t* scratch = nullptr;
    if (hs_alloc_scratch(static_cast<hs_database_t*>(database_), &scratch) != HS_SUCCESS) {
        return nullptr;
    }
    return std::unique_ptr<Scratch>(new Scratch(scratch));
}

bool LiteralPrefilter::may_match(std::span<const std::uint8_t> data, Scratch& scratch) const {
    if (data.empty()) return false;
    // hs_scan takes an unsigned int length: larger buffers (never from streams, whose depth
    // is far less) go to libyara unfiltered.
    if (data.size() > 0xFFFFFFFFU) return true;
    bool found = false;
    const hs_error_t rc = hs_scan(static_cast<hs_database_t*>(database_),
                                  reinterpret_cast<const char*>(data.data()),
                                  static_cast<unsigned>(data.size()), 0,
                                  static_cast<hs_scratch_t*>(scratch.scratch_), on_literal, &found);
    return found || (rc != HS_SUCCESS && rc != HS_SCAN_TERMINATED);
}

}  // namespace senningen::agent
