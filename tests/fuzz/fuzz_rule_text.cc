// libFuzzer target for the agent's reader of YARA rule text (rule_gates.h): the tokenizer,
// the condition analysis behind the file-scan gates and the literal prefilter, and the
// blanking of rules and imports that builds the partitions. Rule packs come from rule authors
// and from other CERTs; a text the reader cannot follow must be an error, never a crash.
// Invariants that must hold for any input abort, so the fuzzer reports them as crashes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "senningen/agent/scan/prefilter_patterns.h"
#include "senningen/agent/scan/rule_gates.h"

namespace {

using namespace senningen::agent;

void check(bool condition) {
    if (!condition) {
        std::abort();
    }
}

// Blanking keeps every byte's position and every newline (compiler messages keep their line
// numbers): the output is as long as the input, and has a newline exactly where it does.
void check_blanked(std::string_view text, std::string_view out) {
    check(out.size() == text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        check((text[i] == '\n') == (out[i] == '\n'));
    }
}

void check_span(std::size_t begin, std::size_t end, std::size_t size) {
    check(begin <= end);
    check(end <= size);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const auto gates = analyse_rule_gates(text);
    if (!gates) {
        check(!gates.error().message.empty());  // a refusal says why
        return 0;
    }
    const RuleSourceGates& g = *gates;
    for (const RuleGates& rule : g.rules) {
        check_span(rule.begin, rule.end, text.size());
        for (const Disjunct& d : rule.disjuncts) {
            check_span(d.begin, d.end, text.size());
            check(d.begin >= rule.begin && d.end <= rule.end);
        }
        for (const HeaderGate& h : rule.headers) {
            check(h.width == 1 || h.width == 2 || h.width == 4);
        }
        // A string declaration's value lies inside its rule and is what its kind says; a
        // section the reader gave up on has no declarations and says why. The translations
        // for the prefilter take any value: a pattern or a reason, never both, never a crash.
        check(rule.strings_problem.empty() || rule.strings.empty());
        // Required groups only where a string is needed, and only strings or `them` in them.
        check(rule.required.empty() || rule.needs_string);
        for (const auto& group : rule.required) {
            check(!group.empty());
            for (std::string_view member : group) {
                if (member.starts_with('=')) member.remove_prefix(1);
                check(member == "them" || member.starts_with('$'));
            }
        }
        for (const StringDeclaration& s : rule.strings) {
            check_span(s.begin, s.end, text.size());
            check(s.begin >= rule.begin && s.end <= rule.end && s.end > s.begin);
            check(s.identifier.starts_with('$'));
            const std::string_view value = text.substr(s.begin, s.end - s.begin);
            const char first = s.kind == StringKind::kText  ? '"'
                               : s.kind == StringKind::kHex ? '{'
                                                            : '/';
            check(value.front() == first);
            if (s.kind == StringKind::kText) continue;
            for (const bool wide : {false, true}) {
                const TranslatedPattern p = s.kind == StringKind::kHex
                                                ? translate_yara_hex(value)
                                                : translate_yara_regex(value, wide, false);
                check(p.problem.empty() != p.expression.empty());
            }
        }
    }
    for (const ImportStatement& import : g.imports) check_span(import.begin, import.end, text.size());

    // Every rule dropped, none dropped, every other one dropped with every disjunct falsified.
    const std::size_t n = g.rules.size();
    std::vector<bool> drop(n, true);
    check_blanked(text, specialise(text, g, drop));
    drop.assign(n, false);
    const std::string kept = specialise(text, g, drop);
    check(kept == text);  // nothing dropped, nothing falsified: the text as it was
    std::vector<std::vector<bool>> falsified(n);
    for (std::size_t i = 0; i < n; ++i) {
        drop[i] = i % 2 == 1;
        falsified[i].assign(g.rules[i].disjuncts.size(), true);
    }
    (void)specialise(text, g, drop, falsified);  // stand-ins may change lengths: no crash
    std::set<std::string> modules;
    for (const ImportStatement& import : g.imports) modules.insert(import.module);
    check_blanked(text, without_imports(text, g, modules));
    return 0;
}
