// YARA regular expressions and hex strings as Hyperscan patterns (see prefilter_patterns.h).
#include "senningen/agent/scan/prefilter_patterns.h"

#include <algorithm>
#include <array>
#include <bitset>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace senningen::agent {
namespace {

constexpr char kHexDigits[] = "0123456789abcdef";
constexpr unsigned long kLargestRepeat = 32;

void append_byte(std::string& out, std::uint8_t byte) {
    out += "\\x";
    out += kHexDigits[byte >> 4];
    out += kHexDigits[byte & 0x0F];
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

bool is_alnum(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0;
}

using ByteSet = std::bitset<256>;

ByteSet word_chars() {
    ByteSet set;
    for (int c = '0'; c <= '9'; ++c) set.set(static_cast<std::size_t>(c));
    for (int c = 'A'; c <= 'Z'; ++c) set.set(static_cast<std::size_t>(c));
    for (int c = 'a'; c <= 'z'; ++c) set.set(static_cast<std::size_t>(c));
    set.set('_');
    return set;
}

ByteSet space_chars() {  // YARA's: \t \n \v \f \r and space
    ByteSet set;
    for (int c = 0x09; c <= 0x0D; ++c) set.set(static_cast<std::size_t>(c));
    set.set(' ');
    return set;
}

ByteSet digit_chars() {
    ByteSet set;
    for (int c = '0'; c <= '9'; ++c) set.set(static_cast<std::size_t>(c));
    return set;
}

// A class of SET, or of everything but SET, as Hyperscan reads it.
std::string class_of(const ByteSet& set, bool negated) {
    std::string out = negated ? "[^" : "[";
    for (std::size_t c = 0; c < 256;) {
        if (!set.test(c)) {
            ++c;
            continue;
        }
        std::size_t last = c;
        while (last + 1 < 256 && set.test(last + 1)) ++last;
        append_byte(out, static_cast<std::uint8_t>(c));
        if (last > c) {
            out += '-';
            append_byte(out, static_cast<std::uint8_t>(last));
        }
        c = last + 1;
    }
    out += ']';
    return out;
}

// The value of an escape that stands for one byte (`\x41`, `\n`, `\.`) at BODY[AT] (the
// backslash); advances AT past it. Nullopt, with PROBLEM set, for anything else.
std::optional<std::uint8_t> escaped_byte(std::string_view body, std::size_t& at,
                                         std::string& problem) {
    if (at + 1 >= body.size()) {
        problem = "a trailing backslash";
        return std::nullopt;
    }
    const char c = body[at + 1];
    if (c == 'x') {
        if (at + 3 >= body.size() || hex_value(body[at + 2]) < 0 || hex_value(body[at + 3]) < 0) {
            problem = "a \\x escape without two hex digits";
            return std::nullopt;
        }
        const auto value =
            static_cast<std::uint8_t>(hex_value(body[at + 2]) * 16 + hex_value(body[at + 3]));
        at += 4;
        return value;
    }
    static constexpr std::pair<char, std::uint8_t> kNamed[] = {
        {'n', '\n'}, {'t', '\t'}, {'r', '\r'}, {'f', '\f'}, {'a', '\a'}};
    for (const auto& [name, value] : kNamed) {
        if (c == name) {
            at += 2;
            return value;
        }
    }
    if (is_alnum(c)) {
        problem = std::string("the escape \\") + c + " (not one this translation knows)";
        return std::nullopt;
    }
    at += 2;
    return static_cast<std::uint8_t>(c);
}

// The class escapes, in and out of brackets.
std::optional<ByteSet> class_escape(char c) {
    switch (c) {
        case 'w': return word_chars();
        case 'W': return ~word_chars();
        case 's': return space_chars();
        case 'S': return ~space_chars();
        case 'd': return digit_chars();
        case 'D': return ~digit_chars();
        default: return std::nullopt;
    }
}

// A bracketed class at BODY[AT] (the `[`), read as YARA's lexer reads it; advances AT past
// the closing `]`.
std::optional<std::string> bracket_class(std::string_view body, std::size_t& at,
                                         std::string& problem) {
    ByteSet set;
    bool negated = false;
    ++at;
    if (body.substr(at, 2) == "^]") {
        negated = true;
        set.set(']');
        at += 2;
    } else if (body.substr(at, 1) == "^") {
        negated = true;
        ++at;
    } else if (body.substr(at, 1) == "]") {
        set.set(']');
        ++at;
    }
    while (true) {
        if (at >= body.size()) {
            problem = "a character class without its closing ]";
            return std::nullopt;
        }
        const char c = body[at];
        if (c == ']') {
            ++at;
            break;
        }
        // A range `S-E`: S a \xHH, another escape or any character but ] and \; E anything
        // but ], itself escaped when it is a backslash.
        std::size_t after_start = at;
        std::optional<std::uint8_t> start;
        if (c == '\\') {
            if (at + 1 < body.size() && class_escape(body[at + 1]) &&
                body.substr(at + 2, 1) == "-" && at + 3 < body.size() && body[at + 3] != ']') {
                problem = std::string("a range starting at \\") + body[at + 1];
                return std::nullopt;
            }
            std::size_t probe = at;
            std::string ignored;
            start = escaped_byte(body, probe, ignored);
            after_start = probe;
        } else {
            start = static_cast<std::uint8_t>(c);
            after_start = at + 1;
        }
        if (start && after_start + 1 < body.size() && body[after_start] == '-' &&
            body[after_start + 1] != ']') {
            std::size_t end_at = after_start + 1;
            std::optional<std::uint8_t> end;
            if (body[end_at] == '\\') {
                end = escaped_byte(body, end_at, problem);
                if (!end) return std::nullopt;
            } else {
                end = static_cast<std::uint8_t>(body[end_at]);
                ++end_at;
            }
            if (*end < *start) {
                problem = "a character range that runs backwards";
                return std::nullopt;
            }
            for (unsigned b = *start; b <= *end; ++b) set.set(b);
            at = end_at;
            continue;
        }
        if (c == '\\') {
            if (at + 1 < body.size()) {
                if (const auto escape = class_escape(body[at + 1])) {
                    set |= *escape;
                    at += 2;
                    continue;
                }
            }
            const auto byte = escaped_byte(body, at, problem);
            if (!byte) return std::nullopt;
            set.set(*byte);
            continue;
        }
        if (static_cast<unsigned char>(c) < 32 || static_cast<unsigned char>(c) >= 127) {
            problem = "a character class with a byte YARA refuses";
            return std::nullopt;
        }
        set.set(static_cast<unsigned char>(c));
        ++at;
    }
    return class_of(set, negated);
}

// `{n}`, `{n,m}`, `{,m}`, `{n,}`, `{,}` at BODY[AT], as YARA's lexer reads a repeat; nullopt
// (AT unchanged) when the brace starts no repeat (it is then a literal brace).
std::optional<std::pair<std::string, std::string>> repeat_bounds(std::string_view body,
                                                                 std::size_t& at) {
    std::size_t i = at + 1;
    std::string low;
    std::string high;
    while (i < body.size() && std::isdigit(static_cast<unsigned char>(body[i])) != 0)
        low += body[i++];
    if (i < body.size() && body[i] == '}' && !low.empty()) {
        at = i + 1;
        return std::pair{low, low};
    }
    if (i >= body.size() || body[i] != ',') return std::nullopt;
    ++i;
    while (i < body.size() && std::isdigit(static_cast<unsigned char>(body[i])) != 0)
        high += body[i++];
    if (i >= body.size() || body[i] != '}') return std::nullopt;
    at = i + 1;
    return std::pair{low.empty() ? "0" : low, high};
}

// A repeat of LOW to HIGH (empty: no upper bound) copies, as Hyperscan takes it. Large bounded
// repeats make Hyperscan's compile slow (up to 230 ms each for `(?:[\t ]\x00){0,500}`; 7 s for
// signature-base's patterns): a repeat bounded above kLargestRepeat becomes
// `{min(LOW, kLargestRepeat),}`, which matches wherever the original does (LOW or more copies
// are at least that many). With the bound at 8, 16, 32 or 64 signature-base's rules load in
// 1.5, 1.6, 1.8 and 1.9 s (debug build).
std::string repeat(std::string low, std::string high) {
    const auto too_large = [](const std::string& n) {
        return n.size() > 6 || std::stoul(n) > kLargestRepeat;
    };
    if (high.empty() || too_large(high)) {
        if (too_large(low)) low = std::to_string(kLargestRepeat);
        return low == "0" ? "*" : "{" + low + ",}";
    }
    return "{" + low + (low == high ? "" : "," + high) + "}";
}

// The fixed bytes of a pattern (outside classes and optional parts; a group counts with its
// poorest alternative), the least over top-level alternatives. An atom's bytes wait as PENDING until it is known
// whether a quantifier makes it optional (`?`, `*`, `{0,n}`: dropped) or repeats it (counted
// once).
class FixedBytes {
public:
    void fixed(std::size_t bytes) {
        commit();
        pending_ = bytes;
    }
    void broken() { commit(); }  // a class, `.`, a group: no fixed byte here
    void quantified(bool optional) {
        if (!optional) commit();
        pending_ = 0;
    }
    void alternative() {
        commit();
        least_ = std::min(least_, total_);
        total_ = 0;
    }
    std::size_t result() {
        alternative();
        return least_;
    }

private:
    void commit() {
        total_ += pending_;
        pending_ = 0;
    }
    std::size_t pending_ = 0;
    std::size_t total_ = 0;
    std::size_t least_ = SIZE_MAX;
};

}  // namespace

std::string hyperscan_literal(std::string_view bytes) {
    std::string out;
    out.reserve(bytes.size() * 4);
    for (const char c : bytes) append_byte(out, static_cast<std::uint8_t>(c));
    return out;
}

TranslatedPattern translate_yara_regex(std::string_view token, bool wide, bool caseless) {
    TranslatedPattern out;
    out.caseless = caseless;
    const std::size_t close = token.rfind('/');
    if (token.size() < 2 || token.front() != '/' || close == 0) {
        out.problem = "not a regular expression";
        return out;
    }
    for (const char flag : token.substr(close + 1)) {
        if (flag == 'i') {
            out.caseless = true;
        } else if (flag == 's') {
            out.dotall = true;
        } else {
            out.problem = std::string("the regular expression flag ") + flag;
            return out;
        }
    }
    const std::string_view body = token.substr(1, close - 1);
    std::string& expr = out.expression;
    // Whether the last thing written can take a quantifier (an atom or a closed group), and
    // whether one was just written (a second one is a PCRE possessive or an error).
    bool quantifiable = false;
    bool quantified = false;
    int depth = 0;
    std::vector<FixedBytes> runs(1);  // one per open group
    const auto track = [&](bool single_byte) {
        if (single_byte) {
            runs.back().fixed(wide ? 2 : 1);
        } else {
            runs.back().broken();
        }
    };
    const auto atom = [&](const std::string& what) {
        // wide: each character is followed by a zero byte; grouped so that a quantifier
        // repeats both.
        expr += wide ? "(?:" + what + "\\x00)" : what;
        quantifiable = true;
        quantified = false;
    };
    const auto refuse = [&](std::string why) {
        out.problem = std::move(why);
        out.expression.clear();
        return out;
    };
    std::size_t at = 0;
    while (at < body.size()) {
        const char c = body[at];
        if (c == '\\') {
            if (at + 1 < body.size()) {
                const char e = body[at + 1];
                if (const auto set = class_escape(e)) {
                    track(false);
                    atom(class_of(*set, false));
                    at += 2;
                    continue;
                }
                if (e == 'b' || e == 'B') {
                    // In a wide string YARA looks at the character two bytes back: drop the
                    // assertion (a superset) rather than misplace it.
                    if (!wide) expr += e == 'b' ? "\\b" : "\\B";
                    quantifiable = false;
                    quantified = false;
                    at += 2;
                    continue;
                }
                if (std::isdigit(static_cast<unsigned char>(e)) != 0) {
                    return refuse("a backreference");
                }
            }
            const auto byte = escaped_byte(body, at, out.problem);
            if (!byte) return refuse(out.problem);
            std::string one;
            append_byte(one, *byte);
            track(true);
            atom(one);
        } else if (c == '[') {
            const auto cls = bracket_class(body, at, out.problem);
            if (!cls) return refuse(out.problem);
            track(false);
            atom(*cls);
        } else if (c == '(') {
            if (body.substr(at + 1, 1) == "?") return refuse("a group starting with (?");
            runs.emplace_back();
            expr += "(?:";
            ++depth;
            quantifiable = false;
            quantified = false;
            ++at;
        } else if (c == ')') {
            if (depth == 0) return refuse("an unbalanced )");
            --depth;
            // A group holds at least the fixed bytes of its poorest alternative.
            const std::size_t inner = runs.back().result();
            runs.pop_back();
            runs.back().fixed(inner);
            expr += ')';
            quantifiable = true;
            quantified = false;
            ++at;
        } else if (c == '|') {
            runs.back().alternative();
            expr += '|';
            quantifiable = false;
            quantified = false;
            ++at;
        } else if (c == '.') {
            track(false);
            atom(".");
            ++at;
        } else if (c == '^' || c == '$') {
            expr += c;
            quantifiable = false;
            quantified = false;
            ++at;
        } else if (c == '*' || c == '+' || c == '?' || c == '{') {
            std::size_t probe = at;
            const auto bounds = c == '{' ? repeat_bounds(body, probe)
                                         : std::optional<std::pair<std::string, std::string>>();
            if (c == '{' && !bounds) {  // a brace that starts no repeat is a literal brace
                std::string one;
                append_byte(one, static_cast<std::uint8_t>(c));
                track(true);
                atom(one);
                ++at;
                continue;
            }
            if (!quantifiable || quantified) return refuse("a quantifier with nothing to repeat");
            if (bounds) {
                const auto& [low, high] = *bounds;
                if (low.size() > 5 || high.size() > 5 ||
                    (!high.empty() && std::stoul(high) < std::stoul(low)) ||
                    (high == "0" && low == "0")) {
                    return refuse("a repeat YARA refuses or this translation does not take");
                }
                expr += repeat(low, high);
                runs.back().quantified(low == "0");
                at = probe;
            } else {
                expr += c;
                runs.back().quantified(c != '+');
                ++at;
            }
            // A lazy quantifier matches where a greedy one does: the `?` changes nothing here.
            if (body.substr(at, 1) == "?") ++at;
            quantified = true;
        } else {
            std::string one;
            if (is_alnum(c)) {
                one += c;
            } else {
                append_byte(one, static_cast<std::uint8_t>(c));
            }
            track(true);
            atom(one);
            ++at;
        }
    }
    if (depth != 0) return refuse("an unbalanced (");
    if (expr.empty()) return refuse("an empty regular expression");
    out.fixed_bytes = runs.front().result();
    return out;
}

TranslatedPattern translate_yara_hex(std::string_view token) {
    TranslatedPattern out;
    out.dotall = true;  // ?? and jumps stand for any byte, newlines included
    const auto refuse = [&](std::string why) {
        out.problem = std::move(why);
        out.expression.clear();
        return out;
    };
    if (token.size() < 2 || token.front() != '{' || token.back() != '}') {
        return refuse("not a hex string");
    }
    const std::string_view body = token.substr(1, token.size() - 2);
    std::string& expr = out.expression;
    int depth = 0;
    std::vector<FixedBytes> runs(1);  // one per open alternative
    std::size_t at = 0;
    const auto space = [&](std::size_t i) {
        return i < body.size() && std::isspace(static_cast<unsigned char>(body[i])) != 0;
    };
    while (at < body.size()) {
        const char c = body[at];
        if (space(at)) {
            ++at;
        } else if (body.substr(at, 2) == "//") {
            const std::size_t end = body.find('\n', at);
            at = end == std::string_view::npos ? body.size() : end;
        } else if (body.substr(at, 2) == "/*") {
            const std::size_t end = body.find("*/", at + 2);
            if (end == std::string_view::npos) return refuse("an unterminated comment");
            at = end + 2;
        } else if (c == '(') {
            runs.emplace_back();
            expr += "(?:";
            ++depth;
            ++at;
        } else if (c == '|') {
            if (depth == 0) return refuse("an alternative outside brackets");
            runs.back().alternative();
            expr += '|';
            ++at;
        } else if (c == ')') {
            if (depth == 0) return refuse("an unbalanced )");
            const std::size_t inner = runs.back().result();
            runs.pop_back();
            runs.back().fixed(inner);
            expr += ')';
            --depth;
            ++at;
        } else if (c == '[') {
            const std::size_t close = body.find(']', at);
            if (close == std::string_view::npos) return refuse("a jump without its closing ]");
            std::string low;
            std::string high;
            bool dash = false;
            for (std::size_t i = at + 1; i < close; ++i) {
                const char j = body[i];
                if (std::isspace(static_cast<unsigned char>(j)) != 0) continue;
                if (j == '-' && !dash) {
                    dash = true;
                } else if (std::isdigit(static_cast<unsigned char>(j)) != 0) {
                    (dash ? high : low) += j;
                } else {
                    return refuse("a jump this translation does not read");
                }
            }
            if (low.size() > 6 || high.size() > 6 || (low.empty() && !dash)) {
                return refuse("a jump this translation does not read");
            }
            if (low.empty()) low = "0";
            if (!dash) {
                high = low;
            } else if (!high.empty() && std::stoul(high) < std::stoul(low)) {
                return refuse("a jump whose bounds run backwards");
            }
            if (high == "0") {
                // [0] or [0-0]: no byte
            } else {
                expr += "." + repeat(low, dash ? high : low);
                runs.back().broken();
            }
            at = close + 1;
        } else {
            // One byte: HH, H?, ?H, ?? (YARA 4.3's ~ before it negates it).
            bool negated = false;
            std::size_t i = at;
            if (body[i] == '~') {
                negated = true;
                ++i;
            }
            if (i + 1 >= body.size()) return refuse("a byte with one digit");
            const char high_nibble = body[i];
            const char low_nibble = body[i + 1];
            const int hi = hex_value(high_nibble);
            const int lo = hex_value(low_nibble);
            if ((hi < 0 && high_nibble != '?') || (lo < 0 && low_nibble != '?')) {
                return refuse(std::string("a character YARA does not take in a hex string: ") +
                              body[i]);
            }
            ByteSet set;
            for (int b = 0; b < 256; ++b) {
                if ((hi < 0 || (b >> 4) == hi) && (lo < 0 || (b & 0x0F) == lo)) {
                    set.set(static_cast<std::size_t>(b));
                }
            }
            const bool fixed = hi >= 0 && lo >= 0 && !negated;
            if (fixed) {
                runs.back().fixed(1);
            } else {
                runs.back().broken();
            }
            if (fixed) {
                append_byte(expr, static_cast<std::uint8_t>(hi * 16 + lo));
            } else if (hi < 0 && lo < 0) {
                if (negated) return refuse("~??, which matches nothing");
                expr += '.';
            } else {
                expr += class_of(set, negated);
            }
            at = i + 2;
        }
    }
    if (depth != 0) return refuse("an unbalanced (");
    if (expr.empty()) return refuse("an empty hex string");
    out.fixed_bytes = runs.front().result();
    return out;
}

}  // namespace senningen::agent
