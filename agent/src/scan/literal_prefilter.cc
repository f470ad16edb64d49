// The prefilter (see literal_prefilter.h): which strings count, their patterns, and Hyperscan.
#include "senningen/agent/scan/literal_prefilter.h"

#include <hs.h>
#include <yara.h>

#include <algorithm>
#include <cstdlib>
#include <set>
#include <utility>

#include "senningen/agent/scan/prefilter_patterns.h"
#include "senningen/agent/scan/rule_gates.h"

namespace senningen::agent {
namespace {

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
constexpr std::uint32_t kEncoded =
    STRING_FLAGS_XOR | STRING_FLAGS_BASE64 | STRING_FLAGS_BASE64_WIDE;

constexpr std::size_t kFewestFixedBytes = 3;

bool literal_kind(const YR_STRING* string) {
    return STRING_IS_LITERAL(string) && string->length > 0 && (string->flags & kEncoded) == 0;
}

int on_match(unsigned /*id*/, unsigned long long /*from*/, unsigned long long /*to*/,
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

namespace {

// What the prefilter looks for in place of one declared string: its patterns and how
// distinctive they are (the fewest fixed bytes any of them holds), or why it cannot.
struct StringPatterns {
    std::vector<PrefilterPattern> patterns;
    std::size_t fixed = SIZE_MAX;
    std::string problem;
};

StringPatterns string_patterns(const std::vector<const YR_STRING*>& compiled,
                               const StringDeclaration& decl, std::string_view source,
                               const std::string& what) {
    StringPatterns out;
    const YR_STRING* head = compiled.front();
    if (decl.identifier != head->identifier) {
        out.problem =
            what + " is compiled as " + head->identifier + ": the text is not what was compiled";
        return out;
    }
    if ((head->flags & kEncoded) != 0) {
        out.problem = what + " is an xor or base64 string";
        return out;
    }
    if (STRING_IS_DISABLED(head)) return out;  // never matches: nothing to look for
    const bool wide = STRING_IS_WIDE(head) != 0;
    // libyara searches the ascii form unless only `wide` was asked for.
    const bool ascii = STRING_IS_ASCII(head) != 0 || !wide;
    const bool nocase = STRING_IS_NO_CASE(head) != 0;
    // A literal, or a chain of literal pieces (a hex string cut at a long jump): every piece
    // must occur for a match, so looking for the longest one is looking for a superset.
    const bool literal = std::all_of(compiled.begin(), compiled.end(), literal_kind);
    if (literal) {
        const YR_STRING* longest = *std::max_element(
            compiled.begin(), compiled.end(),
            [](const YR_STRING* x, const YR_STRING* y) { return x->length < y->length; });
        const std::string bytes(reinterpret_cast<const char*>(longest->string),
                                static_cast<std::size_t>(longest->length));
        if (ascii) out.patterns.push_back({hyperscan_literal(bytes), true, nocase, false});
        if (wide) out.patterns.push_back({hyperscan_literal(widen(bytes)), true, nocase, false});
        out.fixed = bytes.size();
        return out;
    }
    if (decl.end > source.size() || decl.begin > decl.end) {
        out.problem = what + ": no source text";
        return out;
    }
    const std::string_view value = source.substr(decl.begin, decl.end - decl.begin);
    if (decl.kind == StringKind::kHex && STRING_IS_HEX(head)) {
        if ((decl.modifiers & ~string_modifier::kPrivate) != 0) {
            out.problem = what + " is a hex string with modifiers";
            return out;
        }
        const TranslatedPattern p = translate_yara_hex(value);
        if (!p.problem.empty()) {
            out.problem = what + " is a hex string with " + p.problem;
            return out;
        }
        out.patterns.push_back({p.expression, false, false, true});
        out.fixed = p.fixed_bytes;
    } else if (decl.kind == StringKind::kRegex && STRING_IS_REGEXP(head)) {
        const bool dotall = (head->flags & STRING_FLAGS_DOT_ALL) != 0;
        for (const bool w : {false, true}) {
            if (w ? !wide : !ascii) continue;
            const TranslatedPattern p = translate_yara_regex(value, w, nocase);
            if (!p.problem.empty()) {
                out.problem = what + " is a regular expression with " + p.problem;
                out.patterns.clear();
                return out;
            }
            out.patterns.push_back({p.expression, false, p.caseless, p.dotall || dotall});
            out.fixed = std::min(out.fixed, p.fixed_bytes);
        }
    } else {
        out.problem = what + " is compiled as another kind of string than its text says";
    }
    return out;
}

// Whether SELECTOR ("$a", "$b*", "them"; a leading "=" ignored) names DECL.
bool selects(std::string_view selector, const StringDeclaration& decl) {
    if (selector.starts_with('=')) selector.remove_prefix(1);
    if (selector == "them") return true;
    if (selector.ends_with('*')) {
        return decl.identifier.starts_with(selector.substr(0, selector.size() - 1));
    }
    return decl.identifier == selector;
}

}  // namespace

std::string rule_patterns(const void* yr_rule, const RuleGates& text, std::string_view source,
                          std::vector<PrefilterPattern>& patterns) {
    const auto* rule = static_cast<const YR_RULE*>(yr_rule);
    const std::string name = std::string("rule ") + rule->identifier;
    if (!text.strings_problem.empty()) return text.strings_problem;
    // The compiled strings of each declaration: the head of a chain and its pieces.
    std::vector<std::vector<const YR_STRING*>> declared;
    const YR_STRING* string = nullptr;
    yr_rule_strings_foreach(rule, string) {
        if (string->chained_to == nullptr || declared.empty()) declared.emplace_back();
        declared.back().push_back(string);
    }
    if (declared.size() != text.strings.size()) {
        return name + " has " + std::to_string(declared.size()) + " compiled strings but " +
               std::to_string(text.strings.size()) + " read from its text";
    }
    std::vector<StringPatterns> each;
    for (std::size_t d = 0; d < declared.size(); ++d) {
        each.push_back(string_patterns(declared[d], text.strings[d], source,
                                       name + " " + text.strings[d].identifier));
    }
    // Sound either way, but a pattern without a few fixed bytes (`/([\w\.-]+)/` of
    // yara-rules' `domain`, the literal "A") matches nearly every buffer, and one such pattern
    // lets every buffer through to the whole rule set: its rule is better scanned on its own.
    const auto too_common = [&](const std::string& what) {
        return what + " fewer than " + std::to_string(kFewestFixedBytes) +
               " fixed bytes (it would let most buffers through)";
    };
    // A group of strings the condition cannot hold without (one of them must match): looking
    // for that group alone is enough, whatever the other strings are. The most distinctive
    // usable group (its weakest member the strongest; then the fewest patterns) is taken.
    std::vector<std::vector<std::size_t>> groups;  // declaration indexes
    for (const auto& group : text.required) {
        if (group.size() == 1 && group.front().starts_with('=')) {  // all of: one group each
            for (std::size_t d = 0; d < each.size(); ++d) {
                if (selects(group.front(), text.strings[d])) groups.push_back({d});
            }
            continue;
        }
        std::vector<std::size_t> members;
        for (std::size_t d = 0; d < each.size(); ++d) {
            if (std::any_of(group.begin(), group.end(),
                            [&](const std::string& s) { return selects(s, text.strings[d]); })) {
                members.push_back(d);
            }
        }
        if (!members.empty()) groups.push_back(std::move(members));
    }
    const std::vector<std::size_t>* best = nullptr;
    std::size_t best_fixed = 0;
    std::size_t best_count = 0;
    for (const auto& group : groups) {
        std::size_t fixed = SIZE_MAX;
        std::size_t count = 0;
        bool usable = true;
        for (const std::size_t d : group) {
            usable = usable && each[d].problem.empty();
            fixed = std::min(fixed, each[d].fixed);
            count += each[d].patterns.size();
        }
        if (!usable) continue;
        if (best == nullptr || fixed > best_fixed || (fixed == best_fixed && count < best_count)) {
            best = &group;
            best_fixed = fixed;
            best_count = count;
        }
    }
    if (best != nullptr && best_fixed >= kFewestFixedBytes) {
        for (const std::size_t d : *best) {
            patterns.insert(patterns.end(), each[d].patterns.begin(), each[d].patterns.end());
        }
        return "";
    }
    // Otherwise any of its strings may be the one that matches: all of them.
    if (best != nullptr) {
        return too_common(best->size() == 1
                              ? name + " " + text.strings[best->front()].identifier + " has"
                              : name + ": every group of strings it needs has one with");
    }
    std::vector<PrefilterPattern> out;
    for (std::size_t d = 0; d < each.size(); ++d) {
        if (!each[d].problem.empty()) return each[d].problem;
        if (each[d].fixed < kFewestFixedBytes) {
            return too_common(name + " " + text.strings[d].identifier + " has");
        }
        out.insert(out.end(), each[d].patterns.begin(), each[d].patterns.end());
    }
    patterns.insert(patterns.end(), out.begin(), out.end());
    return "";
}

std::unique_ptr<LiteralPrefilter> LiteralPrefilter::build(
    const std::vector<RulePatterns>& rules, std::map<std::string, std::string>& refused,
    std::string& why_not) {
    if (hs_valid_platform() != HS_SUCCESS) {
        why_not = "Hyperscan does not support this CPU";
        return nullptr;
    }
    // Each distinct pattern once, with the rules that use it.
    std::map<PrefilterPattern, std::vector<const std::string*>> users;
    for (const RulePatterns& rule : rules) {
        for (const PrefilterPattern& p : rule.patterns) users[p].push_back(&rule.key);
    }
    const auto flags_of = [](const PrefilterPattern& p) {
        unsigned flags = HS_FLAG_SINGLEMATCH;
        if (p.caseless) flags |= HS_FLAG_CASELESS;
        if (p.dotall) flags |= HS_FLAG_DOTALL;
        if (!p.literal) flags |= HS_FLAG_PREFILTER;
        return flags;
    };
    const auto refuse = [&](const PrefilterPattern& p, const std::string& why) {
        for (const std::string* key : users[p]) refused.emplace(*key, why);
    };
    // A pattern Hyperscan cannot read, or one matching the empty string (which it refuses in
    // a database and which would let every buffer through), leaves its rules out.
    for (const auto& [pattern, keys] : users) {
        if (pattern.literal) continue;
        hs_expr_info_t* info = nullptr;
        hs_compile_error_t* error = nullptr;
        if (hs_expression_info(pattern.expression.c_str(), flags_of(pattern), &info, &error) !=
            HS_SUCCESS) {
            refuse(pattern, "Hyperscan refuses /" + pattern.expression + "/: " +
                                (error != nullptr && error->message != nullptr ? error->message
                                                                               : "unknown"));
            hs_free_compile_error(error);
            continue;
        }
        if (info->min_width == 0) {
            refuse(pattern, "/" + pattern.expression + "/ can match the empty string");
        }
        std::free(info);  // NOLINT(cppcoreguidelines-no-malloc): Hyperscan's misc allocator
    }
    // Compile what is left; a pattern the compiler refuses takes its rules out, and again.
    for (int attempt = 0; attempt < 100; ++attempt) {
        std::vector<const PrefilterPattern*> chosen;
        std::size_t literals = 0;
        for (const auto& [pattern, keys] : users) {
            const bool kept = std::none_of(keys.begin(), keys.end(), [&](const std::string* k) {
                return refused.contains(*k);
            });
            if (!kept) continue;
            chosen.push_back(&pattern);
            if (pattern.literal) ++literals;
        }
        if (chosen.empty()) {
            why_not = refused.empty()
                          ? "no strings to look for"
                          : "Hyperscan refuses every rule (" + refused.begin()->second + ")";
            return nullptr;
        }
        std::vector<const char*> expressions;
        std::vector<unsigned> flags;
        std::vector<unsigned> ids;
        for (const PrefilterPattern* p : chosen) {
            expressions.push_back(p->expression.c_str());
            flags.push_back(flags_of(*p));
            ids.push_back(static_cast<unsigned>(ids.size()));
        }
        hs_database_t* database = nullptr;
        hs_compile_error_t* error = nullptr;
        if (hs_compile_multi(expressions.data(), flags.data(), ids.data(),
                             static_cast<unsigned>(expressions.size()), HS_MODE_BLOCK, nullptr,
                             &database, &error) == HS_SUCCESS) {
            return std::unique_ptr<LiteralPrefilter>(
                new LiteralPrefilter(database, literals, chosen.size() - literals));
        }
        const std::string message =
            error != nullptr && error->message != nullptr ? error->message : "unknown";
        const int which = error != nullptr ? error->expression : -1;
        hs_free_compile_error(error);
        if (which < 0 || static_cast<std::size_t>(which) >= chosen.size()) {
            why_not = "Hyperscan cannot compile the patterns: " + message;
            return nullptr;
        }
        refuse(*chosen[static_cast<std::size_t>(which)],
               "Hyperscan refuses /" + chosen[static_cast<std::size_t>(which)]->expression +
                   "/: " + message);
    }
    why_not = "Hyperscan refuses too many patterns";
    return nullptr;
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
    const hs_error_t rc =
        hs_scan(static_cast<hs_database_t*>(database_), reinterpret_cast<const char*>(data.data()),
                static_cast<unsigned>(data.size()), 0, static_cast<hs_scratch_t*>(scratch.scratch_),
                on_match, &found);
    return found || (rc != HS_SUCCESS && rc != HS_SCAN_TERMINATED);
}

}  // namespace senningen::agent
