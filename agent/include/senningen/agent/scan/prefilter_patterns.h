// Translation of YARA strings into Hyperscan patterns for the prefilter in front of stream
// scans (literal_prefilter.h). A translated pattern must match wherever YARA's string matches
// (it may match more: Hyperscan compiles regular expressions in prefilter mode, which widens
// them too); a construct whose YARA meaning is not certain here is refused, with the reason,
// and its rule is then not prefiltered.
//
// What YARA 4.2 accepts was read from its lexers and grammars (libyara/re_lexer.l, re_grammar.y,
// hex_lexer.l): in regular expressions `{,m}` is `{0,m}`; an escaped character other than
// \x \n \t \r \f \a and the classes is the character itself (refused here when it is a letter
// or digit: a rule author writing `\v` may mean something else than `v`); `\s` is
// [\t\n\v\f\r ]; `\w` [0-9A-Za-z_]; a `wide` regular expression matches each character followed
// by a zero byte. Every byte is written as \xHH (NUL-safe, and no PCRE-only meaning of a
// character can slip through).
#pragma once

#include <string>
#include <string_view>

namespace senningen::agent {

struct TranslatedPattern {
    std::string expression;  // Hyperscan syntax
    bool caseless = false;
    bool dotall = false;
    std::string problem;  // not empty: refused, and why (then expression is meaningless)
    // How many fixed bytes every match holds (a lower estimate: classes and optional parts do
    // not count, a group counts with its poorest alternative). A pattern without a few fixed bytes (`/[\w.-]+/`)
    // matches nearly every buffer and would let all traffic past the prefilter.
    std::size_t fixed_bytes = 0;
};

// BYTES as a Hyperscan expression matching exactly those bytes.
std::string hyperscan_literal(std::string_view bytes);

// TOKEN: a YARA regular expression as written in the rule (`/body/flags`, flags i and s).
// WIDE: the `wide` form (each character followed by a zero byte); CASELESS: `nocase`.
TranslatedPattern translate_yara_regex(std::string_view token, bool wide, bool caseless);

// TOKEN: a YARA hex string as written in the rule (`{ 4D 5A ?? [2-4] (AA | BB) }`).
TranslatedPattern translate_yara_hex(std::string_view token);

}  // namespace senningen::agent
