#include "senningen/agent/scan/rule_gates.h"

#include <algorithm>
#include <cctype>
#include <limits>
#include <utility>

namespace senningen::agent {

using common::ErrorCode;
using common::make_error;
using common::Result;

namespace {

enum class Kind : std::uint8_t {
    kIdent,      // identifiers and keywords
    kNumber,     // 12, 0x5a4d, 100KB, 1.5
    kText,       // "..."
    kHex,        // { 4D 5A ?? } (a hex string, in the strings section)
    kRegex,      // /.../is
    kStringRef,  // $a, #a, @a, !a, $a*, $
    kPunct,      // operators and brackets, one or two characters
};

struct Token {
    Kind kind;
    std::string_view text;
    std::size_t offset;
    int line;
};

bool ident_start(char c) {
    return std::isalpha(static_cast<unsigned char>(c)) != 0 || c == '_';
}
bool ident_char(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_';
}

class Lexer {
public:
    explicit Lexer(std::string_view text) : text_(text) {}

    Result<std::vector<Token>> run() {
        std::vector<Token> out;
        while (true) {
            if (auto skipped = skip_space_and_comments(); !skipped) return skipped.error();
            if (at_ >= text_.size()) break;
            const std::size_t start = at_;
            const int line = line_;
            const char c = text_[at_];
            Kind kind = Kind::kPunct;
            if (ident_start(c)) {
                while (at_ < text_.size() && ident_char(text_[at_])) ++at_;
                kind = Kind::kIdent;
            } else if (std::isdigit(static_cast<unsigned char>(c)) != 0) {
                while (at_ < text_.size() && ident_char(text_[at_])) ++at_;
                // A fraction, but not the `..` of a range.
                if (at_ + 1 < text_.size() && text_[at_] == '.' &&
                    std::isdigit(static_cast<unsigned char>(text_[at_ + 1])) != 0) {
                    ++at_;
                    while (at_ < text_.size() && ident_char(text_[at_])) ++at_;
                }
                kind = Kind::kNumber;
            } else if (c == '"') {
                if (auto r = skip_quoted(); !r) return r.error();
                kind = Kind::kText;
            } else if (c == '{' && previous_is(out, Kind::kPunct, "=")) {
                const std::size_t close = text_.find('}', at_);
                if (close == std::string_view::npos) return fail(line, "unterminated hex string");
                count_lines(at_, close + 1);
                at_ = close + 1;
                kind = Kind::kHex;
            } else if (c == '/' && (previous_is(out, Kind::kPunct, "=") ||
                                    previous_is(out, Kind::kIdent, "matches"))) {
                if (auto r = skip_regex(); !r) return r.error();
                kind = Kind::kRegex;
            } else if ((c == '$' || c == '#' || c == '@' ||
                        (c == '!' && (at_ + 1 >= text_.size() || text_[at_ + 1] != '='))) &&
                       (c == '$' || (at_ + 1 < text_.size() && ident_char(text_[at_ + 1])))) {
                ++at_;
                while (at_ < text_.size() && ident_char(text_[at_])) ++at_;
                if (at_ < text_.size() && text_[at_] == '*') ++at_;
                kind = Kind::kStringRef;
            } else {
                static constexpr std::string_view kTwo[] = {"==", "!=", "<=", ">=",
                                                            "<<", ">>", ".."};
                const std::string_view two = text_.substr(at_, 2);
                at_ += std::find(std::begin(kTwo), std::end(kTwo), two) != std::end(kTwo) ? 2 : 1;
            }
            out.push_back(Token{kind, text_.substr(start, at_ - start), start, line});
        }
        return out;
    }

private:
    static bool previous_is(const std::vector<Token>& out, Kind kind, std::string_view text) {
        return !out.empty() && out.back().kind == kind && out.back().text == text;
    }

    common::Error fail(int line, const std::string& what) const {
        return make_error(ErrorCode::kParse, "line " + std::to_string(line) + ": " + what);
    }

    void count_lines(std::size_t from, std::size_t to) {
        line_ += static_cast<int>(std::count(text_.begin() + static_cast<std::ptrdiff_t>(from),
                                             text_.begin() + static_cast<std::ptrdiff_t>(to),
                                             '\n'));
    }

    Result<void> skip_space_and_comments() {
        while (at_ < text_.size()) {
            const char c = text_[at_];
            if (c == '\n') {
                ++line_;
                ++at_;
            } else if (std::isspace(static_cast<unsigned char>(c)) != 0) {
                ++at_;
            } else if (text_.substr(at_, 2) == "//") {
                while (at_ < text_.size() && text_[at_] != '\n') ++at_;
            } else if (text_.substr(at_, 2) == "/*") {
                const std::size_t close = text_.find("*/", at_ + 2);
                if (close == std::string_view::npos) return fail(line_, "unterminated comment");
                count_lines(at_, close + 2);
                at_ = close + 2;
            } else {
                break;
            }
        }
        return {};
    }

    Result<void> skip_quoted() {
        const int line = line_;
        ++at_;
        while (at_ < text_.size()) {
            const char c = text_[at_];
            if (c == '\\') {
                at_ += 2;
            } else if (c == '"') {
                ++at_;
                return {};
            } else if (c == '\n') {
                break;  // YARA's text strings do not span lines
            } else {
                ++at_;
            }
        }
        return fail(line, "unterminated text string");
    }

    Result<void> skip_regex() {
        const int line = line_;
        ++at_;
        while (at_ < text_.size()) {
            const char c = text_[at_];
            if (c == '\\') {
                at_ += 2;
            } else if (c == '/') {
                ++at_;
                while (at_ < text_.size() && std::isalpha(static_cast<unsigned char>(text_[at_]))) {
                    ++at_;  // flags: i, s
                }
                return {};
            } else if (c == '\n') {
                break;
            } else {
                ++at_;
            }
        }
        return fail(line, "unterminated regular expression");
    }

    std::string_view text_;
    std::size_t at_ = 0;
    int line_ = 1;
};

// An integer literal as YARA reads it: decimal with an optional KB or MB suffix, or hex.
std::optional<std::uint64_t> integer_literal(std::string_view text) {
    std::uint64_t base = 10;
    std::uint64_t scale = 1;
    if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
        base = 16;
        text.remove_prefix(2);
    } else if (text.size() > 2 && (text.ends_with("KB") || text.ends_with("MB"))) {
        scale = text.ends_with("KB") ? 1024 : 1024 * 1024;
        text.remove_suffix(2);
    }
    if (text.empty()) return std::nullopt;
    std::uint64_t value = 0;
    for (const char c : text) {
        std::uint64_t digit = 0;
        if (c >= '0' && c <= '9') {
            digit = static_cast<std::uint64_t>(c - '0');
        } else if (base == 16 && std::isxdigit(static_cast<unsigned char>(c)) != 0) {
            digit = static_cast<std::uint64_t>(std::tolower(static_cast<unsigned char>(c)) - 'a' + 10);
        } else {
            return std::nullopt;
        }
        if (value > (std::numeric_limits<std::uint64_t>::max() - digit) / base) return std::nullopt;
        value = value * base + digit;
    }
    if (value > std::numeric_limits<std::uint64_t>::max() / scale) return std::nullopt;
    return value * scale;
}

bool is(const Token& t, Kind kind, std::string_view text) {
    return t.kind == kind && t.text == text;
}

using Span = std::span<const Token>;

// The index of the bracket closing the one at OPEN, or npos.
std::size_t matching_close(Span tokens, std::size_t open) {
    int depth = 0;
    for (std::size_t i = open; i < tokens.size(); ++i) {
        const Token& t = tokens[i];
        if (t.kind != Kind::kPunct) continue;
        if (t.text == "(" || t.text == "[") ++depth;
        if (t.text == ")" || t.text == "]") {
            if (--depth == 0) return i;
        }
    }
    return std::string_view::npos;
}

// TOKENS without brackets that enclose all of it: `((a and b))` is `a and b`.
Span strip_parens(Span tokens) {
    while (tokens.size() >= 2 && is(tokens.front(), Kind::kPunct, "(") &&
           matching_close(tokens, 0) == tokens.size() - 1) {
        tokens = tokens.subspan(1, tokens.size() - 2);
    }
    return tokens;
}

// The positions of the operator WORD (`and`, `or`) outside any brackets in TOKENS; nullopt when
// the brackets do not balance.
std::optional<std::vector<std::size_t>> top_level(Span tokens, std::string_view word) {
    std::vector<std::size_t> at;
    int depth = 0;
    for (std::size_t i = 0; i < tokens.size(); ++i) {
        const Token& t = tokens[i];
        if (t.kind == Kind::kPunct) {
            if (t.text == "(" || t.text == "[") ++depth;
            if (t.text == ")" || t.text == "]") --depth;
        } else if (depth == 0 && is(t, Kind::kIdent, word)) {
            at.push_back(i);
        }
    }
    if (depth != 0) return std::nullopt;
    return at;
}

// The terms of the top-level conjunction of TOKENS.
void conjuncts(Span tokens, std::vector<Span>& out) {
    tokens = strip_parens(tokens);
    // `or` binds loosest: with one at the top level the condition is no conjunction.
    const auto ors = top_level(tokens, "or");
    auto ands = top_level(tokens, "and");
    if (!ors || !ors->empty() || ands->empty()) {
        out.push_back(tokens);
        return;
    }
    std::size_t from = 0;
    ands->push_back(tokens.size());
    for (const std::size_t at : *ands) {
        if (at > from) conjuncts(tokens.subspan(from, at - from), out);
        from = at + 1;
    }
}

// `filesize < N` and its variants: the largest size the term allows.
std::optional<std::uint64_t> size_bound(Span t) {
    if (t.size() != 3 || t[1].kind != Kind::kPunct) return std::nullopt;
    const std::string_view op = t[1].text;
    std::optional<std::uint64_t> n;
    bool strict = false;
    if (is(t[0], Kind::kIdent, "filesize") && t[2].kind == Kind::kNumber) {
        n = integer_literal(t[2].text);
        if (op == "<") strict = true;
        else if (op != "<=") return std::nullopt;
    } else if (is(t[2], Kind::kIdent, "filesize") && t[0].kind == Kind::kNumber) {
        n = integer_literal(t[0].text);
        if (op == ">") strict = true;
        else if (op != ">=") return std::nullopt;
    } else {
        return std::nullopt;
    }
    if (!n || (strict && *n == 0)) return std::nullopt;  // `< 0` never holds: left ungated
    return strict ? *n - 1 : *n;
}

// `uintW(0) == C` or `C == uintW(0)`.
std::optional<HeaderGate> header_gate(Span t) {
    if (t.size() != 6) return std::nullopt;
    Span call = t.first(4);
    const Token* value = &t[5];
    if (!is(t[4], Kind::kPunct, "==")) {
        if (!is(t[1], Kind::kPunct, "==")) return std::nullopt;
        call = t.subspan(2, 4);
        value = &t[0];
    }
    if (call[0].kind != Kind::kIdent || !is(call[1], Kind::kPunct, "(") ||
        call[2].kind != Kind::kNumber || !is(call[3], Kind::kPunct, ")") ||
        value->kind != Kind::kNumber) {
        return std::nullopt;
    }
    const auto offset = integer_literal(call[2].text);
    const auto constant = integer_literal(value->text);
    if (!offset || *offset != 0 || !constant) return std::nullopt;
    static constexpr std::pair<std::string_view, std::uint8_t> kFunctions[] = {
        {"uint8", 1}, {"uint16", 2}, {"uint32", 4}, {"uint8be", 1}, {"uint16be", 2},
        {"uint32be", 4}};
    for (const auto& [name, width] : kFunctions) {
        if (call[0].text == name) {
            return HeaderGate{width, name.ends_with("be"), *constant};
        }
    }
    return std::nullopt;
}

// The gates of CONDITION's top-level conjunction: its smallest `filesize` bound into MAX_SIZE
// and its `uintW(0) == C` terms into HEADERS.
void gate_terms(Span condition, std::optional<std::uint64_t>& max_size,
                std::vector<HeaderGate>& headers) {
    std::vector<Span> terms;
    conjuncts(condition, terms);
    for (const Span term : terms) {
        if (const auto bound = size_bound(term)) {
            max_size = max_size ? std::min(*max_size, *bound) : *bound;
        } else if (const auto gate = header_gate(term)) {
            headers.push_back(*gate);
        }
    }
}

// The top-level disjuncts of CONDITION when there are two or more.
void split_disjuncts(Span condition, RuleGates& rule) {
    condition = strip_parens(condition);
    auto ors = top_level(condition, "or");
    if (!ors || ors->empty()) return;
    ors->push_back(condition.size());
    std::size_t from = 0;
    std::vector<Disjunct> out;
    for (const std::size_t at : *ors) {
        if (at <= from) return;  // `or or`: not YARA, not ours to judge
        const Span part = condition.subspan(from, at - from);
        from = at + 1;
        Disjunct d;
        d.begin = part.front().offset;
        d.end = part.back().offset + part.back().text.size();
        gate_terms(part, d.max_size, d.headers);
        std::set<std::string> refs;
        bool them = false;
        for (const Token& t : part) {
            if (is(t, Kind::kIdent, "them")) them = true;
            if (t.kind != Kind::kStringRef || t.text.size() < 2) continue;  // `$` of a for body
            refs.insert("$" + std::string(t.text.substr(1)));
        }
        if (them) {
            d.stand_in = "(false and any of them)";
        } else if (refs.empty()) {
            d.stand_in = "false";
        } else {
            d.stand_in = "(false and any of (";
            bool first = true;
            for (const auto& r : refs) {
                if (!first) d.stand_in += ", ";
                d.stand_in += r;
                first = false;
            }
            d.stand_in += "))";
        }
        out.push_back(std::move(d));
    }
    rule.disjuncts = std::move(out);
}

// `X of them` or `X of ($a, $b*)` with X `any`, `all` or a count of at least one: nothing
// after the set (YARA 4.3's `in`/`at` ranges would be; not ours to judge).
bool of_needs_string(Span t) {
    if (t.size() < 3 || !is(t[1], Kind::kIdent, "of")) return false;
    const Token& q = t[0];
    const bool quantifier = is(q, Kind::kIdent, "any") || is(q, Kind::kIdent, "all") ||
                            (q.kind == Kind::kNumber && integer_literal(q.text).value_or(0) >= 1);
    if (!quantifier) return false;
    if (t.size() == 3) return is(t[2], Kind::kIdent, "them");
    if (!is(t[2], Kind::kPunct, "(") || matching_close(t, 2) != t.size() - 1) return false;
    bool any = false;
    for (std::size_t i = 3; i + 1 < t.size(); ++i) {
        if (t[i].kind == Kind::kStringRef && t[i].text.starts_with('$') && t[i].text.size() > 1) {
            any = true;
        } else if (!is(t[i], Kind::kPunct, ",")) {
            return false;  // a rule set (`any of (r*)`) or an expression
        }
    }
    return any;
}

// `#a OP N` or `N OP #a` that cannot hold with no occurrence of $a.
bool count_needs_string(Span t) {
    if (t.size() != 3 || t[1].kind != Kind::kPunct) return false;
    std::string_view op = t[1].text;
    const Token* count = &t[0];
    const Token* number = &t[2];
    if (t[2].kind == Kind::kStringRef) {  // mirrored: N < #a is #a > N
        std::swap(count, number);
        if (op == "<") op = ">";
        else if (op == "<=") op = ">=";
        else if (op == ">") op = "<";
        else if (op == ">=") op = "<=";
    }
    if (count->kind != Kind::kStringRef || !count->text.starts_with('#') ||
        count->text.size() < 2 || count->text.ends_with('*') || number->kind != Kind::kNumber) {
        return false;
    }
    const auto n = integer_literal(number->text);
    if (!n) return false;
    if (op == ">") return true;
    if (op == ">=" || op == "==") return *n >= 1;
    return false;
}

bool requires_string(Span t) {
    t = strip_parens(t);
    if (t.empty()) return false;
    const auto ors = top_level(t, "or");
    if (!ors) return false;
    if (!ors->empty()) {  // every disjunct must need one
        std::size_t from = 0;
        for (const std::size_t at : *ors) {
            if (at <= from || !requires_string(t.subspan(from, at - from))) return false;
            from = at + 1;
        }
        return from < t.size() && requires_string(t.subspan(from));
    }
    const auto ands = top_level(t, "and");
    if (!ands->empty()) {  // one conjunct that needs one is enough
        std::size_t from = 0;
        for (const std::size_t at : *ands) {
            if (at > from && requires_string(t.subspan(from, at - from))) return true;
            from = at + 1;
        }
        return from < t.size() && requires_string(t.subspan(from));
    }
    const Token& first = t[0];
    const bool string_id = first.kind == Kind::kStringRef && first.text.starts_with('$') &&
                           first.text.size() > 1 && !first.text.ends_with('*');
    if (string_id && t.size() == 1) return true;
    if (string_id && t.size() >= 3 &&
        (is(t[1], Kind::kIdent, "at") || is(t[1], Kind::kIdent, "in"))) {
        return true;
    }
    return count_needs_string(t) || of_needs_string(t);
}

// The `$id = value modifiers` lines of a strings section.
void read_strings(Span section, RuleGates& rule) {
    static constexpr std::pair<std::string_view, std::uint32_t> kModifiers[] = {
        {"nocase", string_modifier::kNocase},     {"ascii", string_modifier::kAscii},
        {"wide", string_modifier::kWide},         {"fullword", string_modifier::kFullword},
        {"private", string_modifier::kPrivate},   {"xor", string_modifier::kXor},
        {"base64", string_modifier::kBase64},     {"base64wide", string_modifier::kBase64Wide}};
    const auto fail = [&](const Token& at, const std::string& what) {
        rule.strings_problem = "line " + std::to_string(at.line) + ": " + what +
                               " in the strings of rule " + rule.name;
        rule.strings.clear();
    };
    std::size_t i = 0;
    while (i < section.size()) {
        const Token& id = section[i];
        if (id.kind != Kind::kStringRef || !id.text.starts_with('$') || id.text.ends_with('*')) {
            return fail(id, "expected a string identifier, found '" + std::string(id.text) + "'");
        }
        if (i + 2 >= section.size() || !is(section[i + 1], Kind::kPunct, "=")) {
            return fail(id, "expected '=' after " + std::string(id.text));
        }
        const Token& value = section[i + 2];
        StringDeclaration d;
        d.identifier = std::string(id.text);
        if (value.kind == Kind::kText) {
            d.kind = StringKind::kText;
        } else if (value.kind == Kind::kHex) {
            d.kind = StringKind::kHex;
        } else if (value.kind == Kind::kRegex) {
            d.kind = StringKind::kRegex;
        } else {
            return fail(value, "expected a string value for " + d.identifier);
        }
        d.begin = value.offset;
        d.end = value.offset + value.text.size();
        i += 3;
        while (i < section.size() && section[i].kind == Kind::kIdent) {
            const Token& m = section[i];
            const auto* found = std::find_if(std::begin(kModifiers), std::end(kModifiers),
                                             [&](const auto& k) { return k.first == m.text; });
            if (found == std::end(kModifiers)) {
                return fail(m, "unknown string modifier '" + std::string(m.text) + "'");
            }
            d.modifiers |= found->second;
            ++i;
            // xor(1-255), base64("alphabet"): the arguments do not matter here.
            if (i < section.size() && is(section[i], Kind::kPunct, "(")) {
                const std::size_t close = matching_close(section.subspan(i), 0);
                if (close == std::string_view::npos) {
                    return fail(m, "unbalanced modifier arguments");
                }
                i += close + 1;
            }
        }
        rule.strings.push_back(std::move(d));
    }
}

// The groups of strings a condition cannot hold without (RuleGates::required): those of every
// conjunct of a top-level conjunction; for a disjunction whose every term has some, one group:
// the first group of each term together; for a term, the string of `$a`, `$a at E`, `$a in R`
// and of the counts count_needs_string takes, the set of `any of S` and `N of S`, and each
// member of `all of S`. Anything else: none.
using Groups = std::vector<std::vector<std::string>>;

Groups required_strings(Span t) {
    t = strip_parens(t);
    if (t.empty()) return {};
    const auto ors = top_level(t, "or");
    if (!ors) return {};
    const auto split = [&](const std::vector<std::size_t>& at) {
        std::vector<Span> parts;
        std::size_t from = 0;
        for (const std::size_t i : at) {
            parts.push_back(t.subspan(from, i - from));
            from = i + 1;
        }
        parts.push_back(t.subspan(from));
        return parts;
    };
    if (!ors->empty()) {
        std::vector<std::string> any;
        for (const Span part : split(*ors)) {
            const Groups g = required_strings(part);
            if (g.empty()) return {};
            for (std::string s : g.front()) {
                if (s.starts_with('=')) s.erase(0, 1);  // all of X implies any of X
                any.push_back(std::move(s));
            }
        }
        return {any};
    }
    const auto ands = top_level(t, "and");
    if (!ands->empty()) {
        Groups all;
        for (const Span part : split(*ands)) {
            for (auto& g : required_strings(part)) all.push_back(std::move(g));
        }
        return all;
    }
    const Token& first = t[0];
    const bool string_id = first.kind == Kind::kStringRef && first.text.starts_with('$') &&
                           first.text.size() > 1 && !first.text.ends_with('*');
    if (string_id && (t.size() == 1 || (t.size() >= 3 && (is(t[1], Kind::kIdent, "at") ||
                                                          is(t[1], Kind::kIdent, "in"))))) {
        return {{std::string(first.text)}};
    }
    if (count_needs_string(t)) {
        const Token& count = t[0].kind == Kind::kStringRef ? t[0] : t[2];
        return {{"$" + std::string(count.text.substr(1))}};
    }
    if (!of_needs_string(t)) return {};
    const bool all = is(t[0], Kind::kIdent, "all");
    std::vector<std::string> members;
    if (t.size() == 3) {
        members.emplace_back("them");
    } else {
        for (std::size_t i = 3; i + 1 < t.size(); ++i) {
            if (t[i].kind == Kind::kStringRef) members.emplace_back(t[i].text);
        }
    }
    if (!all) return {members};
    Groups each;
    for (const auto& m : members) each.push_back({"=" + m});
    return each;
}

void gate_condition(Span condition, RuleGates& rule) {
    rule.needs_string = requires_string(condition);
    if (rule.needs_string) rule.required = required_strings(condition);
    split_disjuncts(condition, rule);
    gate_terms(condition, rule.max_size, rule.headers);
}

}  // namespace

bool HeaderGate::holds(std::span<const std::uint8_t> head) const {
    if (head.size() < width) return false;
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < width; ++i) {
        const std::uint64_t byte = head[big_endian ? i : width - 1 - i];
        v = (v << 8) | byte;
    }
    return v == value;
}

bool RuleGates::may_match(std::uint64_t size, std::span<const std::uint8_t> head) const {
    if (max_size && size > *max_size) return false;
    return std::all_of(headers.begin(), headers.end(),
                       [&](const HeaderGate& g) { return g.holds(head); });
}

Result<RuleSourceGates> analyse_rule_gates(std::string_view text) {
    auto lexed = Lexer(text).run();
    if (!lexed) return lexed.error();
    const std::vector<Token>& tokens = *lexed;
    RuleSourceGates out;
    std::size_t i = 0;
    const std::size_t n = tokens.size();
    while (i < n) {
        const Token& t = tokens[i];
        if (is(t, Kind::kIdent, "include")) out.has_include = true;
        if (is(t, Kind::kIdent, "import") && i + 1 < n && tokens[i + 1].kind == Kind::kText) {
            const std::string_view quoted = tokens[i + 1].text;
            out.imports.push_back(ImportStatement{std::string(quoted.substr(1, quoted.size() - 2)),
                                                  t.offset,
                                                  tokens[i + 1].offset + quoted.size()});
        }
        if (!(is(t, Kind::kIdent, "rule") || is(t, Kind::kIdent, "private") ||
              is(t, Kind::kIdent, "global"))) {
            ++i;
            continue;
        }
        RuleGates rule;
        rule.begin = t.offset;
        while (i < n && (is(tokens[i], Kind::kIdent, "private") ||
                         is(tokens[i], Kind::kIdent, "global"))) {
            (tokens[i].text == "global" ? rule.global : rule.is_private) = true;
            ++i;
        }
        if (i + 1 >= n || !is(tokens[i], Kind::kIdent, "rule") ||
            tokens[i + 1].kind != Kind::kIdent) {
            return make_error(ErrorCode::kParse,
                              "line " + std::to_string(t.line) + ": expected a rule name");
        }
        rule.name = std::string(tokens[i + 1].text);
        const int line = tokens[i].line;
        i += 2;
        while (i < n && !is(tokens[i], Kind::kPunct, "{")) ++i;  // tags
        std::size_t condition = n;
        std::size_t strings = n;
        std::size_t close = n;
        for (std::size_t j = i + 1; j < n; ++j) {
            if (is(tokens[j], Kind::kPunct, "}")) {
                close = j;
                break;
            }
            if (is(tokens[j], Kind::kIdent, "condition") && j + 1 < n &&
                is(tokens[j + 1], Kind::kPunct, ":")) {
                condition = j + 2;
            }
            if (is(tokens[j], Kind::kIdent, "strings") && j + 1 < n &&
                is(tokens[j + 1], Kind::kPunct, ":") && strings == n) {
                strings = j + 2;
            }
        }
        if (i >= n || close >= n) {
            return make_error(ErrorCode::kParse, "line " + std::to_string(line) + ": rule " +
                                                     rule.name + " has no closing brace");
        }
        rule.end = tokens[close].offset + 1;
        if (strings < close) {
            const std::size_t until = condition < close && condition >= strings + 2
                                          ? condition - 2
                                          : close;
            read_strings(Span(tokens.data() + strings, until - strings), rule);
        }
        if (condition < close) {
            const Span cond(tokens.data() + condition, close - condition);
            for (const Token& c : cond) {
                if (c.kind == Kind::kIdent) rule.identifiers.emplace(c.text);
            }
            out.referenced.insert(rule.identifiers.begin(), rule.identifiers.end());
            gate_condition(cond, rule);
        }
        out.rules.push_back(std::move(rule));
        i = close + 1;
    }
    return out;
}

namespace {

void blank(std::string& text, std::size_t begin, std::size_t end) {
    for (std::size_t k = begin; k < end && k < text.size(); ++k) {
        if (text[k] != '\n') text[k] = ' ';
    }
}

}  // namespace

std::string specialise(std::string_view text, const RuleSourceGates& gates,
                       const std::vector<bool>& drop,
                       const std::vector<std::vector<bool>>& falsified) {
    // Pieces are replaced from the back, so that the offsets of those before stay right.
    std::string out(text);
    for (std::size_t r = gates.rules.size(); r-- > 0;) {
        const RuleGates& rule = gates.rules[r];
        if (r < drop.size() && drop[r]) {
            blank(out, rule.begin, rule.end);
            continue;
        }
        if (r >= falsified.size()) continue;
        for (std::size_t d = std::min(falsified[r].size(), rule.disjuncts.size()); d-- > 0;) {
            if (!falsified[r][d]) continue;
            const Disjunct& dj = rule.disjuncts[d];
            out.replace(dj.begin, dj.end - dj.begin, dj.stand_in);
        }
    }
    return out;
}

std::string without_imports(std::string_view text, const RuleSourceGates& gates,
                            const std::set<std::string>& modules) {
    std::string out(text);
    for (const auto& import : gates.imports) {
        if (modules.contains(import.module)) blank(out, import.begin, import.end);
    }
    return out;
}

}  // namespace senningen::agent
