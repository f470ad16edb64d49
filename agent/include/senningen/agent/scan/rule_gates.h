// Static analysis of YARA rule text for the file scanner: which rules cannot match a file,
// told by the file's size and first bytes alone. Files are then scanned with a smaller rule set
// compiled without those rules (YaraRules partitions), with the same matches as the full set.
//
// A rule is gated when its condition, read as a conjunction at the top level (enclosing
// parentheses flattened; any top-level `or` makes the whole condition one opaque term), has a
// term `filesize < N`, `filesize <= N` (or mirrored: `N > filesize`), or `uintW(0) == C`,
// `uintWbe(0) == C` (or `C == ...`), W 8, 16 or 32, N and C integer literals (decimal with an
// optional KB/MB suffix, or hex). Every other term, and any doubt, leaves the rule ungated.
// The text is read by a tokenizer that knows YARA's comments, text strings, hex strings and
// regular expressions (never by patterns over the raw text); nothing is evaluated.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "senningen/common/result.h"

namespace senningen::agent {

// `uintW(0) == value` (little endian unless big_endian).
struct HeaderGate {
    std::uint8_t width = 1;  // bytes: 1, 2 or 4
    bool big_endian = false;
    std::uint64_t value = 0;

    // HEAD: the file's first bytes (at most 4 are looked at). A file shorter than WIDTH leaves
    // uintW(0) undefined in YARA, and the conjunction false: the gate does not hold.
    bool holds(std::span<const std::uint8_t> head) const;
    bool operator==(const HeaderGate&) const = default;
};

// One term of a condition that is a disjunction at the top level (`A and B or C and D`), with
// the gates of its own conjunction. A partition for files that fail a gate replaces the term
// by STAND_IN, which is false and still names the strings the term named (YARA refuses a
// string no condition uses): what the other terms decide stays as it was, and a module only
// the term used is no longer needed.
struct Disjunct {
    std::size_t begin = 0;
    std::size_t end = 0;
    std::optional<std::uint64_t> max_size;
    std::vector<HeaderGate> headers;
    std::string stand_in;  // "false" or "(false and any of ($a, $b*))"
};

// One `$id = value modifiers` line of a rule's strings section, for the prefilter (which takes
// the source of regular expressions and hex strings from the text: libyara keeps only their
// compiled form).
enum class StringKind : std::uint8_t { kText, kHex, kRegex };

namespace string_modifier {
constexpr std::uint32_t kNocase = 1U << 0;
constexpr std::uint32_t kAscii = 1U << 1;
constexpr std::uint32_t kWide = 1U << 2;
constexpr std::uint32_t kFullword = 1U << 3;
constexpr std::uint32_t kPrivate = 1U << 4;
constexpr std::uint32_t kXor = 1U << 5;
constexpr std::uint32_t kBase64 = 1U << 6;
constexpr std::uint32_t kBase64Wide = 1U << 7;
}  // namespace string_modifier

struct StringDeclaration {
    std::string identifier;  // "$a"; "$" for an anonymous string
    StringKind kind = StringKind::kText;
    std::size_t begin = 0;  // the value as written: "...", { ... } or /.../flags
    std::size_t end = 0;
    std::uint32_t modifiers = 0;  // string_modifier bits (a regex's /i /s stay in its text)
};

struct RuleGates {
    std::string name;
    std::size_t begin = 0;  // the rule's text: from its first modifier ...
    std::size_t end = 0;    // ... to one past its closing brace
    bool global = false;
    bool is_private = false;
    std::optional<std::uint64_t> max_size;  // can match only files of at most this many bytes
    std::vector<HeaderGate> headers;        // can match only files where all of these hold
    std::set<std::string> identifiers;      // in its condition: rules and modules it uses
    std::vector<Disjunct> disjuncts;        // when the condition is a top-level disjunction
    // The condition can hold only when at least one of the rule's own strings matched (see
    // requires_string in the .cc): no such string in the data, no match. False in any doubt.
    bool needs_string = false;
    // The strings section in the order of the text. STRINGS_PROBLEM, when not empty, says what
    // in it this reader could not follow (the list is then incomplete and must not be used).
    std::vector<StringDeclaration> strings;
    std::string strings_problem;
    // What the condition cannot hold without (see required_strings in the .cc), as groups of
    // which each must have a match of at least one member: "$a"; "$b*", any string whose
    // identifier starts with $b; "them", any string. A group of one "=$b*" or "=them" stands
    // for one group per string it names (`all of`). The prefilter then looks for the most
    // distinctive group alone. Empty in any doubt.
    std::vector<std::vector<std::string>> required;

    bool gated() const { return max_size.has_value() || !headers.empty(); }
    // False only when a gate rules the file out.
    bool may_match(std::uint64_t size, std::span<const std::uint8_t> head) const;
};

// `import "pe"`: each scan loads the module (for pe, a tree of hundreds of objects built per
// file), so a partition whose rules do not use a module leaves its import out too.
struct ImportStatement {
    std::string module;
    std::size_t begin = 0;
    std::size_t end = 0;
};

struct RuleSourceGates {
    std::vector<RuleGates> rules;          // in the order of the text
    std::vector<ImportStatement> imports;
    std::set<std::string> referenced;      // identifiers in any condition (rule references)
    bool has_include = false;              // `include`: the text is not all there is
};

// needs_string, for the literal prefilter in front of stream scans (literal_prefilter.h): a
// condition needs a string when it is `$a`, `$a at E`, `$a in (R)`, `#a > N` (N >= 0),
// `#a >= N` or `#a == N` (N >= 1, mirrored forms too), `any of S`, `all of S`, `N of S`
// (N >= 1; S `them` or a list of strings), a conjunction with at least one such term, or a
// disjunction of such terms only. Anything else (`not`, `for`, rule references, modules,
// arithmetic, filesize, ...) does not.
//
// A text YARA would reject may still analyse; a text this reader cannot follow (an unterminated
// comment, string or regular expression, a rule without its closing brace) is kParse with
// "line N: what".
common::Result<RuleSourceGates> analyse_rule_gates(std::string_view text);

// TEXT with the rules whose DROP entry is true blanked out (their bytes become spaces, newlines
// stay, so that line numbers in compiler messages still point into the original file) and the
// disjuncts marked in FALSIFIED (per rule, per disjunct; may be shorter) replaced by their
// stand-ins.
std::string specialise(std::string_view text, const RuleSourceGates& gates,
                       const std::vector<bool>& drop,
                       const std::vector<std::vector<bool>>& falsified = {});

// TEXT (whose imports GATES describes) without the imports of MODULES, blanked as above.
std::string without_imports(std::string_view text, const RuleSourceGates& gates,
                            const std::set<std::string>& modules);

}  // namespace senningen::agent
