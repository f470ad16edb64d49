// Indicators in Zeek's intel framework format: tab-separated, a "#fields" header naming the
// columns (indicator, indicator_type, meta.source, and any other meta.* columns, kept), "-"
// for an empty field, "#" comment lines. Lookups are hash-based, O(1) at any size; subnets are
// one hash table per prefix length in use, so a longest-prefix match costs at most 33 (IPv4)
// or 129 (IPv6) O(1) probes whatever the number of indicators. A line whose meta.whitelist
// column is T marks its indicator as whitelisted: matches on it are suppressed by the caller
// (Engine), as Zeek's policy/frameworks/intel/whitelist.zeek does.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "senningen/common/result.h"

namespace senningen::agent {

// Zeek's Intel::Type values (base/frameworks/intel/main.zeek, files.zeek). PUBKEY_HASH is
// not matched anywhere yet and is skipped with a message.
enum class IntelType : std::uint8_t {
    kAddr,
    kDomain,
    kFileHash,
    kFileName,
    kSubnet,
    kUrl,
    kEmail,
    kCertHash,
    kSoftware,
    kUserName,
};
inline constexpr std::size_t kIntelTypeCount = 10;

// "Intel::ADDR" <-> kAddr, ...
std::string_view to_string(IntelType type);
std::optional<IntelType> parse_intel_type(std::string_view zeek_name);

struct Indicator {
    std::string value;  // canonical: addresses as IpAddress::to_string(), domains lowercase
    IntelType type = IntelType::kAddr;
    std::vector<std::string> sources;  // meta.source of every line that listed it
    std::map<std::string, std::string> meta;  // other meta.* columns by full column name
                                              // ("meta.desc"), last non-empty value wins
};

struct IntelLoadStats {
    std::uint64_t loaded = 0;   // indicator lines accepted
    std::uint64_t skipped = 0;  // bad lines, each with a message in problems
    std::vector<std::string> problems;  // "FILE:LINE: what is wrong" (at most 100 kept)
};

class IntelStore {
public:
    // Adds the indicators of one file. A missing file or a file without a "#fields" header
    // naming at least indicator and indicator_type is an Error; a bad line (wrong column
    // count, unknown type, an address that does not parse) is skipped and reported in STATS.
    // The same indicator in several files merges its sources.
    common::Result<void> load_file(const std::string& path, IntelLoadStats& stats);

    // ADDR is text from IpAddress::to_string(); NAME is a DNS name (case and a trailing dot
    // are ignored). nullptr when not listed.
    const Indicator* find_addr(std::string_view addr) const;
    const Indicator* find_domain(std::string_view name) const;

    // Any type: FILE_HASH values are MD5, SHA-1 or SHA-256 in hex (case ignored), FILE_NAME
    // values a base name compared exactly (as Zeek does). nullptr when not listed.
    // SUBNET: VALUE is an address, the answer the longest listed prefix that contains it.
    // URL: with or without a scheme, host case ignored ("example.com/a?b", as Zeek's
    // HTTP::build_url writes it). EMAIL: case ignored, angle brackets dropped. CERT_HASH: the
    // SHA-1 of the DER in hex. SOFTWARE, USER_NAME: exact.
    const Indicator* find(IntelType type, std::string_view value) const;

    // The longest listed subnet containing ADDR (text, IPv4 or IPv6), or nullptr.
    const Indicator* find_subnet(std::string_view addr) const;

    std::size_t size() const;
    // Indicators of TYPE (the file scanner computes digests only when FILE_HASH has some).
    std::size_t count(IntelType type) const;

private:
    // Transparent hashing lets the packet path look up a string_view without allocating.
    struct TextHash {
        using is_transparent = void;
        std::size_t operator()(std::string_view text) const {
            return std::hash<std::string_view>{}(text);
        }
    };
    using Table = std::unordered_map<std::string, Indicator, TextHash, std::equal_to<>>;

    Table& table_of(IntelType type);

    Table addrs_;
    Table domains_;
    Table file_hashes_;
    Table file_names_;
    Table urls_;
    Table emails_;
    Table cert_hashes_;
    Table software_;
    Table user_names_;
    // Subnets by binary key: one byte prefix length, then the masked address (4 or 16 bytes).
    Table subnets_;
    std::array<bool, 33> v4_lengths_{};   // prefix lengths present, IPv4
    std::array<bool, 129> v6_lengths_{};  // prefix lengths present, IPv6
};

// True when the indicator's meta.whitelist column is T.
bool is_whitelisted(const Indicator& indicator);

}  // namespace senningen::agent
