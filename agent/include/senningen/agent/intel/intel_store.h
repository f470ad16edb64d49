// Indicators in Zeek's intel framework format: tab-separated, a "#fields" header naming the
// columns (indicator, indicator_type, meta.source, and any other meta.* columns, kept), "-"
// for an empty field, "#" comment lines. Lookups are hash-based, O(1) at any size: one table
// for every type, subnets keyed by prefix length and masked address, so a longest-prefix match
// costs at most 33 (IPv4) or 129 (IPv6) O(1) probes whatever the number of indicators. Texts
// live in one arena, repeated ones (sources, column names) once. A line whose meta.whitelist
// column is T marks its indicator as whitelisted: matches on it are suppressed by the caller
// (Engine), as Zeek's policy/frameworks/intel/whitelist.zeek does.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
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

// The meta.* columns of an indicator (other than meta.source): (full column name, value)
// pairs, e.g. ("meta.desc", "C2 server"), in the order the columns were first seen. Views into
// the store that owns the indicator.
class IntelMeta {
public:
    using Entry = std::pair<std::string_view, std::string_view>;

    IntelMeta() = default;
    explicit IntelMeta(std::span<const Entry> entries) : entries_(entries) {}

    const Entry* begin() const { return entries_.data(); }
    const Entry* end() const { return entries_.data() + entries_.size(); }
    std::size_t size() const { return entries_.size(); }
    bool empty() const { return entries_.empty(); }
    // The entry of column NAME, or end().
    const Entry* find(std::string_view name) const;
    // The value of column NAME, "" when the indicator has none.
    std::string_view at(std::string_view name) const;
    std::map<std::string, std::string> to_map() const;

private:
    std::span<const Entry> entries_;
};

// One indicator as the store keeps it: every text is a view into the store's own buffers
// (valid as long as the store), so that 100,000 indicators cost tens of bytes each, not the
// hundreds a string, a vector and a map per indicator did.
struct Indicator {
    std::string_view value;  // canonical: addresses as IpAddress::to_string(), the rest lower case
    IntelType type = IntelType::kAddr;
    bool whitelisted = false;                   // meta.whitelist is T
    std::span<const std::string_view> sources;  // meta.source of every line that listed it
    IntelMeta meta;  // other meta.* columns by full column name, last non-empty value wins

    std::vector<std::string> source_list() const { return {sources.begin(), sources.end()}; }
};

struct IntelLoadStats {
    std::uint64_t loaded = 0;   // indicator lines accepted
    std::uint64_t skipped = 0;  // bad lines, each with a message in problems
    std::vector<std::string> problems;  // "FILE:LINE: what is wrong" (at most 100 kept)
};

// The digests of a file, as bits: those a FILE_HASH indicator needs (by its length), those the
// engine computes (EngineOptions::file_hashes).
enum FileHash : unsigned { kFileHashMd5 = 1, kFileHashSha1 = 2, kFileHashSha256 = 4 };
constexpr unsigned kAllFileHashes = kFileHashMd5 | kFileHashSha1 | kFileHashSha256;

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

    // Any type, case ignored except in addresses (Zeek lowers every other indicator and what
    // it sees): FILE_HASH values are MD5, SHA-1 or SHA-256 in hex, FILE_NAME values a base
    // name. nullptr when not listed.
    // SUBNET: VALUE is an address, the answer the longest listed prefix that contains it.
    // URL: with or without a scheme ("example.com/a?b", as Zeek's HTTP::build_url writes
    // it). EMAIL: angle brackets dropped. CERT_HASH: the SHA-1 of the DER in hex.
    const Indicator* find(IntelType type, std::string_view value) const;

    // The longest listed subnet containing ADDR (text, IPv4 or IPv6), or nullptr.
    const Indicator* find_subnet(std::string_view addr) const;
    // Every listed subnet containing ADDR, the longest first, into OUT; returns how many
    // (Zeek matches a host against all of them: any whitelisted one silences the hit).
    std::size_t find_subnets(std::string_view addr, std::array<const Indicator*, 129>& out) const;

    std::size_t size() const;
    // Indicators of TYPE (the file scanner computes digests only when FILE_HASH has some).
    std::size_t count(IntelType type) const;
    // The FileHash bits of the digests FILE_HASH indicators are given in (0 when none): a file
    // is hashed at least with these, or those indicators could never match.
    unsigned file_hash_kinds() const;

private:
    struct TextHash {
        using is_transparent = void;
        std::size_t operator()(std::string_view text) const {
            return std::hash<std::string_view>{}(text);
        }
    };

    // Bump allocation in large blocks for the indicators' texts and arrays: nothing is freed
    // before the store is.
    class Arena {
    public:
        void* allocate(std::size_t bytes, std::size_t align);
        std::string_view copy(std::string_view text);
        template <typename T>
        std::span<const T> copy(std::span<const T> items) {
            if (items.empty()) return {};
            T* out = static_cast<T*>(allocate(sizeof(T) * items.size(), alignof(T)));
            std::copy(items.begin(), items.end(), out);
            return {out, items.size()};
        }
        void adopt(Arena& other);  // takes OTHER's blocks (the views into them stay valid)
        // Up to BYTES in blocks of 2 MiB that the kernel may back with one huge page each
        // (one page fault instead of 512), for a file of many indicators; the rest, and small
        // files, in 256 KiB blocks.
        void use_huge_blocks(std::size_t bytes) { huge_budget_ = bytes; }

    private:
        struct Free {
            void operator()(char* p) const;
        };
        std::vector<std::unique_ptr<char, Free>> blocks_;
        std::size_t huge_budget_ = 0;
        char* next_ = nullptr;
        std::size_t left_ = 0;
    };

    // Every indicator, of every type, in one open-addressing table with linear probing (the
    // type is part of the key), so that a file's line count sizes it once. The entries live
    // in fixed-size blocks: their addresses (the Indicator pointers handed out) stay valid as
    // the store grows.
    struct Entry {
        Indicator indicator;
        // Subnets only: the key (prefix length, then the masked address) in the arena, its
        // length in the byte before it; every other type is keyed by its canonical value.
        const char* subnet_key = nullptr;
        std::string_view key() const;
    };
    struct Slot {
        std::uint32_t entry = 0;  // 0: empty; else an index into the entries plus 1
        std::uint32_t tag = 0;    // the hash's high half: most mismatches end here
    };
    static constexpr std::size_t kEntriesPerBlock = 32768;  // 2 MiB: a huge page

    const Indicator* find_key(IntelType type, std::string_view key) const;
    // The index of the entry of (TYPE, KEY), and whether it was made now: then only its type
    // is set, and the caller sets its key (value, subnet_key) before the next insert.
    std::pair<std::size_t, bool> insert(IntelType type, std::string_view key);
    // Room for ENTRIES entries in all without a rehash.
    void reserve(std::size_t entries);
    void rehash(std::size_t slot_count);
    Entry& entry_at(std::size_t index) {
        return blocks_[index / kEntriesPerBlock][index % kEntriesPerBlock];
    }
    const Entry& entry_at(std::size_t index) const {
        return blocks_[index / kEntriesPerBlock][index % kEntriesPerBlock];
    }
    // Back to the first COUNT entries (a file that turned out broken), the slots rebuilt.
    void truncate(std::size_t count);

    // Interned texts that repeat across indicators (sources, meta column names).
    std::string_view intern(std::string_view text);
    // A one-element source list for an interned SOURCE, shared by every indicator with only it.
    std::span<const std::string_view> single_source(std::string_view source);

    Arena arena_;
    std::unordered_set<std::string, TextHash, std::equal_to<>> interned_;
    std::unordered_map<const char*, std::span<const std::string_view>> single_sources_;
    // Memory for large tables that the kernel may back with huge pages: 100,000 indicators
    // fill megabytes, and page faults were a fifth of loading them.
    template <typename T>
    struct HugePageAllocator {
        using value_type = T;
        HugePageAllocator() = default;
        template <typename U>
        HugePageAllocator(const HugePageAllocator<U>&) {}
        T* allocate(std::size_t n);
        void deallocate(T* p, std::size_t) { std::free(p); }
        bool operator==(const HugePageAllocator&) const { return true; }
    };
    std::vector<std::vector<Entry, HugePageAllocator<Entry>>> blocks_;  // each reserved to
                                                                        // kEntriesPerBlock
    std::size_t entry_count_ = 0;
    std::size_t reserved_entries_ = 0;  // the most reserve() was asked for
    std::vector<Slot, HugePageAllocator<Slot>> slots_;  // a power of two in size, at most 70% used
    std::array<std::size_t, kIntelTypeCount> counts_{};  // entries by IntelType
    std::array<std::size_t, 3> hash_counts_{};  // FILE_HASH entries: MD5, SHA-1, SHA-256
    std::array<bool, 33> v4_lengths_{};   // subnet prefix lengths present, IPv4
    std::array<bool, 129> v6_lengths_{};  // subnet prefix lengths present, IPv6
};

// TEXT as an address in the form ADDR indicators are kept and looked up in (inet_ntop's;
// an IPv4-mapped IPv6 address is the IPv4 address, as in Zeek), or nothing when it is not
// an address. Analyzers pass addresses they read from text (headers) through it.
std::optional<std::string> canonical_addr(std::string_view text);

// True when the indicator's meta.whitelist column is T.
bool is_whitelisted(const Indicator& indicator);

}  // namespace senningen::agent
