// The literal prefilter (see literal_prefilter.h): which strings count, and Hyperscan.
#include "senningen/agent/scan/literal_prefilter.h"

#include <hs.h>
#include <yara.h>

#include <set>
#include <utility>

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

// xor and base64 strings keep their plain text in `string` but match encoded forms of it.
constexpr std::uint32_t kEncoded = STRING_FLAGS_XOR | STRING_FLAGS_BASE64 | STRING_FLAGS_BASE64_WIDE;

bool literal_kind(const YR_STRING* string) {
    return STRING_IS_LITERAL(string) && string->length > 0 && (string->flags & kEncoded) == 0;
}

int on_literal(unsigned /*id*/, unsigned long long /*from*/, unsigned long long /*to*/,
               unsigned /*flags*/, void* found) {
    *static_cast<bool*>(found) = true;
    return 1;  // one is enough: stop the scan
}

}  // namespace

std::string yara_rule_key(const void* yr_rule) {
    const auto* rule = static_cast<const YR_RULE*>(yr_rule);
    const char* ns = rule->ns != nullptr && rule->ns->name != nullptr ? rule->ns->name : "default";
    return std::string(ns) + ":" + rule->identifier;
}

std::string literal_problem(const void* yr_rule) {
    const auto* rule = static_cast<const YR_RULE*>(yr_rule);
    const YR_STRING* string = nullptr;
    yr_rule_strings_foreach(rule, string) {
        if (STRING_IS_DISABLED(string) || literal_kind(string)) continue;
        const std::string name = std::string("rule ") + rule->identifier + " " + string->identifier;
        if ((string->flags & kEncoded) != 0) {
            return name + " is an xor or base64 string";
        }
        return name + " is a regular expression or a hex string with wildcards or jumps";
    }
    return "";
}

std::unique_ptr<LiteralPrefilter> LiteralPrefilter::build(void* yr_rules,
                                                          const std::set<std::string>& rule_keys,
                                                          std::string& why_not) {
    std::set<Literal> literals;
    const YR_RULE* rule = nullptr;
    yr_rules_foreach(static_cast<YR_RULES*>(yr_rules), rule) {
        if (RULE_IS_DISABLED(rule) || !rule_keys.contains(yara_rule_key(rule))) continue;
        const YR_STRING* string = nullptr;
        yr_rule_strings_foreach(rule, string) {
            if (STRING_IS_DISABLED(string)) continue;  // never matches
            if (!literal_kind(string)) {
                why_not = literal_problem(rule);
                return nullptr;
            }
            const std::string bytes(reinterpret_cast<const char*>(string->string),
                                    static_cast<std::size_t>(string->length));
            const bool nocase = STRING_IS_NO_CASE(string) != 0;
            // libyara searches the ascii form unless only `wide` was asked for.
            if (STRING_IS_ASCII(string) || !STRING_IS_WIDE(string)) literals.emplace(bytes, nocase);
            if (STRING_IS_WIDE(string)) literals.emplace(widen(bytes), nocase);
        }
    }
    if (literals.empty()) {
        why_not = "no literals";
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
