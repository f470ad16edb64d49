// Indicators in Zeek's intel framework format: tab-separated, a "#fields" header naming the
// columns (indicator, indicator_type, meta.source, and any other meta.* columns, kept), "-"
// for an empty field, "#" comment lines. Lookups are hash-based, O(1) at any size.
#pragma once

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

enum class IntelType : std::uint8_t { kAddr, kDomain };

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

    std::size_t size() const { return addrs_.size() + domains_.size(); }

private:
    // Transparent hashing lets the packet path look up a string_view without allocating.
    struct TextHash {
        using is_transparent = void;
        std::size_t operator()(std::string_view text) const {
            return std::hash<std::string_view>{}(text);
        }
    };
    using Table = std::unordered_map<std::string, Indicator, TextHash, std::equal_to<>>;

    Table addrs_;
    Table domains_;
};

}  // namespace senningen::agent
