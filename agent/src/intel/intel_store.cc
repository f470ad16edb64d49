#include "senningen/agent/intel/intel_store.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <utility>

namespace senningen::agent {

using common::ErrorCode;
using common::make_error;
using common::Result;

namespace {

constexpr std::size_t kMaxProblems = 100;
constexpr std::size_t kMaxDomainLength = 253;  // RFC 1035, without the trailing dot
constexpr std::size_t kMaxLabelLength = 63;
constexpr std::string_view kEmptyField = "-";

// Every type Zeek's intel framework defines (base/frameworks/intel/main.zeek and files.zeek),
// so that a valid feed line for a type we do not handle yet is told apart from a typo.
constexpr std::array<std::string_view, 1> kZeekTypesNotYetSupported = {
    "Intel::PUBKEY_HASH",
};

// MD5, SHA-1 or SHA-256 in hex, lower-cased; false for anything else.
bool canonical_file_hash(std::string_view text, std::string& out) {
    if (text.size() != 32 && text.size() != 40 && text.size() != 64) return false;
    out.clear();
    for (const char c : text) {
        if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
        out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    }
    return true;
}

// Lower-case hex of exactly LEN digits (CERT_HASH is a SHA-1: 40).
bool canonical_hex(std::string_view text, std::size_t len, std::string& out) {
    if (text.size() != len) return false;
    out.clear();
    for (const char c : text) {
        if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
        out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    }
    return true;
}

// Zeek compares every indicator that is not an address or a subnet without case: it lowers
// both the indicator and what it sees (Intel::insert and Intel::find, to_lower).
std::string lower_text(std::string_view text) {
    std::string out(text);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

// Zeek's URL indicators carry no scheme ("example.com/path"); feeds often do. The scheme is
// dropped, and the rest lower-cased as Zeek does.
std::string canonical_url(std::string_view text) {
    const std::size_t scheme = text.find("://");
    if (scheme != std::string_view::npos && scheme < 16) text.remove_prefix(scheme + 3);
    return lower_text(text);
}

// Addresses in mail are compared without case and without the angle brackets of a path.
std::string canonical_email(std::string_view text) {
    if (text.size() >= 2 && text.front() == '<' && text.back() == '>') {
        text = text.substr(1, text.size() - 2);
    }
    return lower_text(text);
}

// An address in binary: 4 or 16 bytes (an IPv4-mapped IPv6 address is the IPv4 address).
struct BinaryAddr {
    std::array<std::uint8_t, 16> bytes{};
    std::size_t len = 0;
};

std::optional<BinaryAddr> parse_binary_addr(std::string_view text) {
    if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
    char in[INET6_ADDRSTRLEN] = {};
    std::copy(text.begin(), text.end(), in);
    BinaryAddr out;
    if (inet_pton(AF_INET, in, out.bytes.data()) == 1) {
        out.len = 4;
        return out;
    }
    in6_addr v6{};
    if (inet_pton(AF_INET6, in, &v6) != 1) return std::nullopt;
    static constexpr std::array<std::uint8_t, 12> kMapped = {0, 0, 0, 0, 0, 0,
                                                             0, 0, 0, 0, 0xff, 0xff};
    if (std::equal(kMapped.begin(), kMapped.end(), v6.s6_addr)) {
        std::copy(v6.s6_addr + 12, v6.s6_addr + 16, out.bytes.begin());
        out.len = 4;
        return out;
    }
    std::copy(v6.s6_addr, v6.s6_addr + 16, out.bytes.begin());
    out.len = 16;
    return out;
}

// The subnet table key: prefix length, then the address masked to it. Written into KEY
// (17 bytes at most) so that lookups do not allocate.
std::size_t subnet_key(const BinaryAddr& addr, std::size_t prefix, char* key) {
    key[0] = static_cast<char>(prefix);
    for (std::size_t i = 0; i < addr.len; ++i) {
        const std::size_t bits_before = i * 8;
        std::uint8_t mask = 0;
        if (prefix >= bits_before + 8) {
            mask = 0xff;
        } else if (prefix > bits_before) {
            mask = static_cast<std::uint8_t>(0xff << (8 - (prefix - bits_before)));
        }
        key[1 + i] = static_cast<char>(addr.bytes[i] & mask);
    }
    return 1 + addr.len;
}

char ascii_lower(char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

// Lowercases NAME into OUT and drops one trailing dot; false when it cannot be a DNS name.
// Only the characters a DNS decoder can hand us as a host name are accepted, so that a URL
// or a Unicode (not xn--) name in a DOMAIN column is reported rather than never matching.
bool canonical_domain(std::string_view name, std::string& out) {
    if (!name.empty() && name.back() == '.') name.remove_suffix(1);
    if (name.empty() || name.size() > kMaxDomainLength) return false;
    out.resize(name.size());
    std::size_t label = 0;
    for (std::size_t i = 0; i < name.size(); ++i) {
        const char c = ascii_lower(name[i]);
        if (c == '.') {
            if (label == 0) return false;
            label = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_') {
            if (++label > kMaxLabelLength) return false;
        } else {
            return false;
        }
        out[i] = c;
    }
    return label != 0;
}

void split_tabs(std::string_view line, std::vector<std::string_view>& out) {
    out.clear();
    std::size_t start = 0;
    while (true) {
        const std::size_t tab = line.find('\t', start);
        if (tab == std::string_view::npos) {
            out.push_back(line.substr(start));
            return;
        }
        out.push_back(line.substr(start, tab - start));
        start = tab + 1;
    }
}

bool is_empty_field(std::string_view field) {
    return field.empty() || field == kEmptyField;
}

struct Columns {
    std::size_t count = 0;
    std::size_t indicator = 0;
    std::size_t type = 0;
    std::optional<std::size_t> source;
    std::vector<std::pair<std::size_t, std::string>> meta;  // other meta.* columns
};

// Parses "#fields\tname\tname...". Columns other than indicator, indicator_type and meta.*
// are ignored, as Zeek's input reader ignores fields its record does not have.
Result<Columns> parse_fields_header(std::string_view line, const std::string& where) {
    std::vector<std::string_view> names;
    split_tabs(line, names);
    names.erase(names.begin());  // "#fields"
    Columns columns;
    columns.count = names.size();
    std::optional<std::size_t> indicator;
    std::optional<std::size_t> type;
    for (std::size_t i = 0; i < names.size(); ++i) {
        const std::string_view name = names[i];
        if (name.empty()) {
            return make_error(ErrorCode::kParse,
                              where + ": #fields header has an empty column name (column " +
                                  std::to_string(i + 1) + ")");
        }
        if (std::count(names.begin(), names.end(), name) > 1) {
            return make_error(ErrorCode::kParse, where + ": #fields header names column '" +
                                                     std::string(name) + "' twice");
        }
        if (name == "indicator") {
            indicator = i;
        } else if (name == "indicator_type") {
            type = i;
        } else if (name == "meta.source") {
            columns.source = i;
        } else if (name.starts_with("meta.")) {
            columns.meta.emplace_back(i, std::string(name));
        }
    }
    if (!indicator || !type) {
        return make_error(ErrorCode::kParse,
                          where + ": #fields header has no '" +
                              std::string(indicator ? "indicator_type" : "indicator") + "' column");
    }
    columns.indicator = *indicator;
    columns.type = *type;
    return columns;
}

void add_problem(IntelLoadStats& stats, std::string problem) {
    ++stats.skipped;
    if (stats.problems.size() < kMaxProblems) stats.problems.push_back(std::move(problem));
}

constexpr std::size_t kArenaBlock = 256 * 1024;
constexpr std::size_t kHugePage = std::size_t{2} << 20;
// Intel files are read in chunks of this size through one buffer (a longer line grows it):
// the whole file is never held, and a pipe works too.
constexpr std::size_t kReadChunk = 1 << 20;

// A file descriptor, closed when it goes out of scope.
class FileDescriptor {
public:
    explicit FileDescriptor(int fd) : fd_(fd) {}
    ~FileDescriptor() {
        if (fd_ >= 0) ::close(fd_);
    }
    FileDescriptor(const FileDescriptor&) = delete;
    FileDescriptor& operator=(const FileDescriptor&) = delete;
    int get() const { return fd_; }

private:
    int fd_;
};

// read(2), retried on EINTR: the bytes read, 0 at the end, -1 on an error.
ssize_t read_retrying(int fd, char* to, std::size_t count) {
    for (;;) {
        const ssize_t n = ::read(fd, to, count);
        if (n >= 0 || errno != EINTR) return n;
    }
}

// The lines of a regular file (an upper bound on its indicators), read ahead through BUFFER,
// the file then rewound: sizing the table once costs a few milliseconds of reading from the
// page cache, growing it costs rehashing and zero-filling it again at every doubling.
// 0 when the file cannot be read twice (a pipe); FAILED on a read error.
std::size_t count_lines(int fd, char* buffer, std::size_t size, bool& failed) {
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
    std::size_t lines = 1;
    for (;;) {
        const ssize_t n = read_retrying(fd, buffer, size);
        if (n < 0) {
            failed = true;
            return 0;
        }
        if (n == 0) break;
        const char* at = buffer;
        const char* const end = buffer + n;
        while ((at = static_cast<const char*>(std::memchr(at, '\n', end - at))) != nullptr) {
            ++lines;
            ++at;
        }
    }
    if (::lseek(fd, 0, SEEK_SET) != 0) failed = true;
    return lines;
}

std::size_t hash_key(IntelType type, std::string_view key) {
    return std::hash<std::string_view>{}(key) ^
           ((static_cast<std::size_t>(type) + 1) * 0x9e3779b97f4a7c15ULL);
}

}  // namespace

// Addresses compare as text, so both sides must print them the same way: dotted quad for
// IPv4, RFC 5952 (inet_ntop) for IPv6. An IPv4-mapped IPv6 address is the IPv4 address, as
// in Zeek.
std::optional<std::string> canonical_addr(std::string_view text) {
    if (text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
    char in[INET6_ADDRSTRLEN] = {};
    std::copy(text.begin(), text.end(), in);
    char out[INET6_ADDRSTRLEN] = {};
    in_addr v4{};
    if (inet_pton(AF_INET, in, &v4) == 1) {
        if (inet_ntop(AF_INET, &v4, out, sizeof out) == nullptr) return std::nullopt;
        return std::string(out);
    }
    in6_addr v6{};
    if (inet_pton(AF_INET6, in, &v6) != 1) return std::nullopt;
    static constexpr std::array<std::uint8_t, 12> kV4MappedPrefix = {0, 0, 0, 0, 0,    0,
                                                                     0, 0, 0, 0, 0xff, 0xff};
    if (std::equal(kV4MappedPrefix.begin(), kV4MappedPrefix.end(), v6.s6_addr)) {
        std::copy(v6.s6_addr + 12, v6.s6_addr + 16, reinterpret_cast<std::uint8_t*>(&v4));
        if (inet_ntop(AF_INET, &v4, out, sizeof out) == nullptr) return std::nullopt;
        return std::string(out);
    }
    if (inet_ntop(AF_INET6, &v6, out, sizeof out) == nullptr) return std::nullopt;
    return std::string(out);
}

std::string_view to_string(IntelType type) {
    switch (type) {
        case IntelType::kAddr: return "Intel::ADDR";
        case IntelType::kDomain: return "Intel::DOMAIN";
        case IntelType::kFileHash: return "Intel::FILE_HASH";
        case IntelType::kFileName: return "Intel::FILE_NAME";
        case IntelType::kSubnet: return "Intel::SUBNET";
        case IntelType::kUrl: return "Intel::URL";
        case IntelType::kEmail: return "Intel::EMAIL";
        case IntelType::kCertHash: return "Intel::CERT_HASH";
        case IntelType::kSoftware: return "Intel::SOFTWARE";
        case IntelType::kUserName: return "Intel::USER_NAME";
    }
    return "Intel::UNKNOWN";
}

std::optional<IntelType> parse_intel_type(std::string_view zeek_name) {
    if (zeek_name == "Intel::ADDR") return IntelType::kAddr;
    if (zeek_name == "Intel::DOMAIN") return IntelType::kDomain;
    if (zeek_name == "Intel::FILE_HASH") return IntelType::kFileHash;
    if (zeek_name == "Intel::FILE_NAME") return IntelType::kFileName;
    if (zeek_name == "Intel::SUBNET") return IntelType::kSubnet;
    if (zeek_name == "Intel::URL") return IntelType::kUrl;
    if (zeek_name == "Intel::EMAIL") return IntelType::kEmail;
    if (zeek_name == "Intel::CERT_HASH") return IntelType::kCertHash;
    if (zeek_name == "Intel::SOFTWARE") return IntelType::kSoftware;
    if (zeek_name == "Intel::USER_NAME") return IntelType::kUserName;
    return std::nullopt;
}

Result<void> IntelStore::load_file(const std::string& path, IntelLoadStats& stats) {
    const FileDescriptor file(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (file.get() < 0) {
        if (errno == ENOENT) {
            return make_error(ErrorCode::kNotFound, "intel file " + path + " does not exist");
        }
        return make_error(ErrorCode::kIo, "cannot read intel file " + path);
    }
    std::size_t buffer_size = kReadChunk;
    auto buffer = std::make_unique_for_overwrite<char[]>(buffer_size);
    bool read_failed = false;
    const std::size_t lines = count_lines(file.get(), buffer.get(), buffer_size, read_failed);
    if (lines != 0) reserve(entry_count_ + lines);
    if (read_failed) return make_error(ErrorCode::kIo, "error reading intel file " + path);

    // Lines go straight into the table; a file that turns out broken is undone (its entries
    // dropped, the ones it merged into restored), so that it leaves the store as it was. Its
    // texts go into an arena of its own, adopted only when the whole file is good.
    const std::size_t entries_before = entry_count_;
    const auto counts_before = counts_;
    const auto hash_counts_before = hash_counts_;
    const auto v4_before = v4_lengths_;
    const auto v6_before = v6_lengths_;
    struct Merged {
        std::size_t entry;
        std::span<const std::string_view> sources;
        IntelMeta meta;
        bool whitelisted;
    };
    std::vector<Merged> merged;  // entries of earlier files this one changed, as they were
    const auto undo = [&](common::Error error) -> Result<void> {
        for (auto it = merged.rbegin(); it != merged.rend(); ++it) {
            Indicator& indicator = entry_at(it->entry).indicator;
            indicator.sources = it->sources;
            indicator.meta = it->meta;
            indicator.whitelisted = it->whitelisted;
        }
        truncate(entries_before);
        counts_ = counts_before;
        hash_counts_ = hash_counts_before;
        v4_lengths_ = v4_before;
        v6_lengths_ = v6_before;
        return error;
    };

    Arena arena;
    // The indicators' texts (values, meta values) and meta tables take about a file's size
    // (measured: 8 MiB for a 7 MiB file of 100,000 lines): that much of the arena may be huge
    // pages, which it will fill but for the last.
    if (struct stat st {}; lines != 0 && ::fstat(file.get(), &st) == 0) {
        arena.use_huge_blocks(static_cast<std::size_t>(st.st_size));
    }
    std::vector<std::string_view> meta_names;  // interned, parallel to columns->meta
    IntelLoadStats local;
    std::optional<Columns> columns;
    std::vector<std::string_view> fields;
    std::vector<std::string_view> sources;
    std::vector<IntelMeta::Entry> meta;
    std::string domain;
    std::string canonical;
    std::size_t line_no = 0;
    auto where = [&] { return path + ":" + std::to_string(line_no); };

    const auto handle_line = [&](std::string_view line) -> Result<void> {
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.empty()) return {};
        if (line[0] == '#') {
            if (line.starts_with("#fields")) {
                if (line.size() > 7 && line[7] != '\t') {
                    return make_error(ErrorCode::kParse,
                                      where() +
                                          ": #fields header must separate column names "
                                          "with tabs");
                }
                auto parsed = parse_fields_header(line, where());
                if (!parsed) return parsed.error();
                columns = std::move(*parsed);
                meta_names.clear();
                for (const auto& [index, name] : columns->meta) {
                    meta_names.push_back(intern(name));
                }
            }
            // Anything else starting with '#' is a Zeek log header (#separator, #path,
            // #types, ...) or a comment; Zeek's intel files are always tab-separated.
            return {};
        }
        if (!columns) {
            return make_error(ErrorCode::kParse,
                              where() + ": indicator line before any #fields header");
        }
        split_tabs(line, fields);
        if (fields.size() != columns->count) {
            add_problem(local, where() + ": " + std::to_string(fields.size()) +
                                   " fields, but the #fields header names " +
                                   std::to_string(columns->count) + " columns");
            return {};
        }
        const std::string_view value = fields[columns->indicator];
        const std::string_view type_name = fields[columns->type];
        if (is_empty_field(value)) {
            add_problem(local, where() + ": empty indicator");
            return {};
        }
        if (is_empty_field(type_name)) {
            add_problem(local, where() + ": empty indicator type");
            return {};
        }
        const auto type = parse_intel_type(type_name);
        if (!type) {
            const bool known =
                std::find(kZeekTypesNotYetSupported.begin(), kZeekTypesNotYetSupported.end(),
                          type_name) != kZeekTypesNotYetSupported.end();
            add_problem(local, where() + (known ? ": indicator type " + std::string(type_name) +
                                                      " is not supported yet"
                                                : ": unknown indicator type '" +
                                                      std::string(type_name) + "'"));
            return {};
        }
        char binary_key[17];
        std::size_t subnet_key_len = 0;
        if (*type == IntelType::kAddr) {
            auto addr = canonical_addr(value);
            if (!addr) {
                add_problem(local, where() + ": '" + std::string(value) +
                                       "' is not an IPv4 or IPv6 address");
                return {};
            }
            canonical = std::move(*addr);
        } else if (*type == IntelType::kFileHash) {
            if (!canonical_file_hash(value, canonical)) {
                add_problem(local, where() + ": '" + std::string(value) +
                                       "' is not an MD5, SHA-1 or SHA-256 hex digest");
                return {};
            }
        } else if (*type == IntelType::kFileName || *type == IntelType::kSoftware ||
                   *type == IntelType::kUserName) {
            canonical = lower_text(value);
        } else if (*type == IntelType::kSubnet) {
            const std::size_t slash = value.find('/');
            const auto addr = parse_binary_addr(value.substr(0, slash));
            long long prefix = -1;
            if (slash != std::string_view::npos && slash + 1 < value.size() &&
                value.size() - slash <= 4 &&
                std::all_of(value.begin() + static_cast<std::ptrdiff_t>(slash) + 1, value.end(),
                            [](char c) { return c >= '0' && c <= '9'; })) {
                prefix = std::stoll(std::string(value.substr(slash + 1)));
            }
            if (!addr || prefix < 0 || static_cast<std::size_t>(prefix) > addr->len * 8) {
                add_problem(local, where() + ": '" + std::string(value) +
                                       "' is not a subnet in CIDR notation (ADDRESS/BITS)");
                return {};
            }
            // The value names the network as Zeek prints a subnet: host bits cleared.
            subnet_key_len = subnet_key(*addr, static_cast<std::size_t>(prefix), binary_key);
            BinaryAddr net = *addr;
            std::copy(binary_key + 1, binary_key + 1 + addr->len, net.bytes.begin());
            char text[INET6_ADDRSTRLEN] = {};
            inet_ntop(net.len == 4 ? AF_INET : AF_INET6, net.bytes.data(), text, sizeof text);
            canonical = std::string(text) + "/" + std::to_string(prefix);
            (addr->len == 4 ? v4_lengths_.data() : v6_lengths_.data())[prefix] = true;
        } else if (*type == IntelType::kUrl) {
            canonical = canonical_url(value);
        } else if (*type == IntelType::kEmail) {
            canonical = canonical_email(value);
            if (canonical.find('@') == std::string::npos) {
                add_problem(local, where() + ": '" + std::string(value) +
                                       "' is not a mail address (no '@')");
                return {};
            }
        } else if (*type == IntelType::kCertHash) {
            if (!canonical_hex(value, 40, canonical)) {
                add_problem(local, where() + ": '" + std::string(value) +
                                       "' is not a SHA-1 hex digest (40 digits)");
                return {};
            }
        } else {
            if (!canonical_domain(value, domain)) {
                add_problem(local, where() + ": '" + std::string(value) +
                                       "' is not a DNS name (letters, digits, '-', '_' and "
                                       "dots; internationalised names in xn-- form)");
                return {};
            }
            canonical = domain;
        }
        std::string_view source;
        if (columns->source && !is_empty_field(fields[*columns->source])) {
            source = intern(fields[*columns->source]);
        }

        const auto [index, inserted] =
            insert(*type, subnet_key_len != 0 ? std::string_view(binary_key, subnet_key_len)
                                              : std::string_view(canonical));
        Entry& stored = entry_at(index);
        Indicator& indicator = stored.indicator;
        if (inserted) {
            indicator.value = arena.copy(canonical);
            if (subnet_key_len != 0) {
                char* key = static_cast<char*>(arena.allocate(subnet_key_len + 1, 1));
                key[0] = static_cast<char>(subnet_key_len);
                std::copy(binary_key, binary_key + subnet_key_len, key + 1);
                stored.subnet_key = key + 1;
            }
            if (!source.empty()) indicator.sources = single_source(source);
            std::size_t present = 0;
            for (const auto& column : columns->meta) {
                if (!is_empty_field(fields[column.first])) ++present;
            }
            if (present != 0) {
                auto* out = static_cast<IntelMeta::Entry*>(
                    arena.allocate(sizeof(IntelMeta::Entry) * present, alignof(IntelMeta::Entry)));
                std::size_t n = 0;
                for (std::size_t m = 0; m < columns->meta.size(); ++m) {
                    const std::string_view field = fields[columns->meta[m].first];
                    if (is_empty_field(field)) continue;
                    std::construct_at(out + n++, meta_names[m], arena.copy(field));
                }
                indicator.meta = IntelMeta(std::span<const IntelMeta::Entry>(out, present));
            }
        } else {
            // Listed before: sources merge, each meta column keeps its last non-empty value.
            if (index < entries_before) {
                merged.push_back({index, indicator.sources, indicator.meta, indicator.whitelisted});
            }
            if (!source.empty() && std::find(indicator.sources.begin(), indicator.sources.end(),
                                             source) == indicator.sources.end()) {
                sources.assign(indicator.sources.begin(), indicator.sources.end());
                sources.push_back(source);
                indicator.sources = arena.copy(std::span<const std::string_view>(sources));
            }
            bool meta_changed = false;
            meta.assign(indicator.meta.begin(), indicator.meta.end());
            for (std::size_t m = 0; m < columns->meta.size(); ++m) {
                const std::string_view field = fields[columns->meta[m].first];
                if (is_empty_field(field)) continue;
                meta_changed = true;
                auto it = std::find_if(meta.begin(), meta.end(),
                                       [&](const auto& e) { return e.first == meta_names[m]; });
                if (it == meta.end()) {
                    meta.emplace_back(meta_names[m], arena.copy(field));
                } else {
                    it->second = arena.copy(field);
                }
            }
            if (meta_changed) {
                indicator.meta = IntelMeta(arena.copy(std::span<const IntelMeta::Entry>(meta)));
            }
        }
        indicator.whitelisted = indicator.meta.at("meta.whitelist") == "T";
        ++local.loaded;
        return {};
    };

    // Complete lines are handled as they arrive; a partial one moves to the buffer's front
    // and waits for the rest (the buffer doubles for a line longer than itself).
    std::size_t used = 0;
    for (bool end = false; !end;) {
        if (used == buffer_size) {
            auto bigger = std::make_unique_for_overwrite<char[]>(buffer_size * 2);
            std::copy(buffer.get(), buffer.get() + used, bigger.get());
            buffer = std::move(bigger);
            buffer_size *= 2;
        }
        const ssize_t n = read_retrying(file.get(), buffer.get() + used, buffer_size - used);
        if (n < 0) return undo(make_error(ErrorCode::kIo, "error reading intel file " + path));
        end = n == 0;
        used += static_cast<std::size_t>(n);
        const char* const data = buffer.get();
        std::size_t done = 0;
        while (done < used) {
            const auto* eol = static_cast<const char*>(std::memchr(data + done, '\n', used - done));
            if (eol == nullptr && !end) break;
            const std::size_t stop = eol == nullptr ? used : static_cast<std::size_t>(eol - data);
            ++line_no;
            if (auto handled = handle_line(std::string_view(data + done, stop - done));
                !handled) {
                return undo(handled.error());
            }
            done = eol == nullptr ? used : stop + 1;
        }
        std::memmove(buffer.get(), buffer.get() + done, used - done);
        used -= done;
    }
    if (!columns) {
        return undo(make_error(ErrorCode::kParse,
                               path + ":" + std::to_string(std::max<std::size_t>(line_no, 1)) +
                                   ": no #fields header in the file"));
    }
    arena_.adopt(arena);
    stats.loaded += local.loaded;
    stats.skipped += local.skipped;
    for (auto& problem : local.problems) {
        if (stats.problems.size() >= kMaxProblems) break;
        stats.problems.push_back(std::move(problem));
    }
    return {};
}

const Indicator* IntelStore::find_addr(std::string_view addr) const {
    return find_key(IntelType::kAddr, addr);
}

const Indicator* IntelStore::find_domain(std::string_view name) const {
    // Lowercased on the stack: this runs for every DNS query on the packet path.
    if (!name.empty() && name.back() == '.') name.remove_suffix(1);
    std::array<char, kMaxDomainLength> buffer;
    if (name.empty() || name.size() > buffer.size()) return nullptr;
    for (std::size_t i = 0; i < name.size(); ++i) buffer[i] = ascii_lower(name[i]);
    return find_key(IntelType::kDomain, std::string_view(buffer.data(), name.size()));
}

const Indicator* IntelStore::find(IntelType type, std::string_view value) const {
    switch (type) {
        case IntelType::kAddr: return find_addr(value);
        case IntelType::kDomain: return find_domain(value);
        case IntelType::kSubnet: return find_subnet(value);
        case IntelType::kFileName:
        case IntelType::kSoftware:
        case IntelType::kUserName:
        case IntelType::kFileHash:
        case IntelType::kCertHash:
        case IntelType::kUrl:
        case IntelType::kEmail: break;
    }
    if (counts_[static_cast<std::size_t>(type)] == 0) return nullptr;
    std::string canonical;
    switch (type) {
        case IntelType::kFileHash:
            if (!canonical_file_hash(value, canonical)) return nullptr;
            break;
        case IntelType::kCertHash:
            if (!canonical_hex(value, 40, canonical)) return nullptr;
            break;
        case IntelType::kUrl: canonical = canonical_url(value); break;
        case IntelType::kEmail: canonical = canonical_email(value); break;
        default: canonical = lower_text(value); break;
    }
    return find_key(type, canonical);
}

const Indicator* IntelStore::find_subnet(std::string_view addr) const {
    std::array<const Indicator*, 129> all;
    return find_subnets(addr, all) > 0 ? all[0] : nullptr;
}

std::size_t IntelStore::find_subnets(std::string_view addr,
                                     std::array<const Indicator*, 129>& out) const {
    if (counts_[static_cast<std::size_t>(IntelType::kSubnet)] == 0) return 0;
    const auto binary = parse_binary_addr(addr);
    if (!binary) return 0;
    const bool* lengths = binary->len == 4 ? v4_lengths_.data() : v6_lengths_.data();
    char key[17];
    std::size_t found = 0;
    for (std::size_t prefix = binary->len * 8 + 1; prefix-- > 0;) {
        if (!lengths[prefix]) continue;
        const std::size_t n = subnet_key(*binary, prefix, key);
        if (const Indicator* hit = find_key(IntelType::kSubnet, std::string_view(key, n))) {
            out[found++] = hit;
        }
    }
    return found;
}

std::size_t IntelStore::size() const { return entry_count_; }

std::size_t IntelStore::count(IntelType type) const {
    return counts_[static_cast<std::size_t>(type)];
}

unsigned IntelStore::file_hash_kinds() const {
    return (hash_counts_[0] != 0 ? kFileHashMd5 : 0u) | (hash_counts_[1] != 0 ? kFileHashSha1 : 0u) |
           (hash_counts_[2] != 0 ? kFileHashSha256 : 0u);
}

std::string_view IntelStore::intern(std::string_view text) {
    auto it = interned_.find(text);
    if (it == interned_.end()) it = interned_.emplace(text).first;
    return *it;
}

std::span<const std::string_view> IntelStore::single_source(std::string_view source) {
    auto& list = single_sources_[source.data()];
    if (list.empty()) list = arena_.copy(std::span<const std::string_view>(&source, 1));
    return list;
}

namespace {

// SIZE bytes, from malloc; from 2 MiB up, aligned to and a multiple of 2 MiB, so that
// advise_huge() can have them backed by huge pages. Freed with free().
void* allocate_maybe_huge(std::size_t size) {
    void* p = nullptr;
    if (size >= kHugePage) {
        size = (size + kHugePage - 1) & ~(kHugePage - 1);
        p = std::aligned_alloc(kHugePage, size);
    } else {
        p = std::malloc(size);
    }
    if (p == nullptr) throw std::bad_alloc();
    return p;
}

// Asks for transparent huge pages (the system's setting is usually "madvise") over the whole
// 2 MiB pages in [P, P + SIZE): only for memory that will be filled, since the first touch
// of a huge page makes all of it resident.
void advise_huge(void* p, std::size_t size) {
    const auto begin = (reinterpret_cast<std::uintptr_t>(p) + kHugePage - 1) & ~(kHugePage - 1);
    const auto end = (reinterpret_cast<std::uintptr_t>(p) + size) & ~(kHugePage - 1);
    if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
}

}  // namespace

template <typename T>
T* IntelStore::HugePageAllocator<T>::allocate(std::size_t n) {
    return static_cast<T*>(allocate_maybe_huge(n * sizeof(T)));
}
template struct IntelStore::HugePageAllocator<IntelStore::Slot>;
template struct IntelStore::HugePageAllocator<IntelStore::Entry>;

void IntelStore::Arena::Free::operator()(char* p) const { std::free(p); }

void* IntelStore::Arena::allocate(std::size_t bytes, std::size_t align) {
    const std::size_t pad = (align - reinterpret_cast<std::uintptr_t>(next_) % align) % align;
    if (next_ == nullptr || pad + bytes > left_) {
        const bool huge = huge_budget_ >= kHugePage && bytes + align <= kHugePage;
        const std::size_t size = std::max(huge ? kHugePage : kArenaBlock, bytes + align);
        char* block = static_cast<char*>(allocate_maybe_huge(size));
        if (huge) {
            advise_huge(block, size);
            huge_budget_ -= kHugePage;
        }
        blocks_.emplace_back(block);
        next_ = block;
        left_ = size;
        return allocate(bytes, align);
    }
    char* out = next_ + pad;
    next_ = out + bytes;
    left_ -= pad + bytes;
    return out;
}

std::string_view IntelStore::Arena::copy(std::string_view text) {
    if (text.empty()) return {};
    char* out = static_cast<char*>(allocate(text.size(), 1));
    std::copy(text.begin(), text.end(), out);
    return {out, text.size()};
}

void IntelStore::Arena::adopt(Arena& other) {
    for (auto& block : other.blocks_) blocks_.push_back(std::move(block));
    other.blocks_.clear();
    other.next_ = nullptr;
    other.left_ = 0;
}

std::string_view IntelStore::Entry::key() const {
    if (subnet_key == nullptr) return indicator.value;
    return {subnet_key, static_cast<unsigned char>(subnet_key[-1])};
}

const Indicator* IntelStore::find_key(IntelType type, std::string_view key) const {
    if (counts_[static_cast<std::size_t>(type)] == 0) return nullptr;
    const std::size_t hash = hash_key(type, key);
    const auto tag = static_cast<std::uint32_t>(hash >> 32);
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t i = hash & mask;; i = (i + 1) & mask) {
        const Slot slot = slots_[i];
        if (slot.entry == 0) return nullptr;
        if (slot.tag != tag) continue;
        const Entry& entry = entry_at(slot.entry - 1);
        if (entry.indicator.type == type && entry.key() == key) return &entry.indicator;
    }
}

std::pair<std::size_t, bool> IntelStore::insert(IntelType type, std::string_view key) {
    // At most 70% full, so that a miss ends after a few probes.
    if ((entry_count_ + 1) * 10 > slots_.size() * 7) {
        rehash(std::max<std::size_t>(64, slots_.size() * 2));
    }
    const std::size_t hash = hash_key(type, key);
    const auto tag = static_cast<std::uint32_t>(hash >> 32);
    const std::size_t mask = slots_.size() - 1;
    std::size_t i = hash & mask;
    for (;; i = (i + 1) & mask) {
        const Slot slot = slots_[i];
        if (slot.entry == 0) break;
        if (slot.tag != tag) continue;
        const Entry& entry = entry_at(slot.entry - 1);
        if (entry.indicator.type == type && entry.key() == key) return {slot.entry - 1, false};
    }
    const std::size_t index = entry_count_;
    if (index / kEntriesPerBlock == blocks_.size()) {
        auto& block = blocks_.emplace_back();
        block.reserve(kEntriesPerBlock);
        // A block the reserved entries will fill gets huge pages.
        if (reserved_entries_ >= blocks_.size() * kEntriesPerBlock) {
            advise_huge(block.data(), kEntriesPerBlock * sizeof(Entry));
        }
    }
    blocks_[index / kEntriesPerBlock].emplace_back().indicator.type = type;
    ++entry_count_;
    ++counts_[static_cast<std::size_t>(type)];
    if (type == IntelType::kFileHash) {
        ++hash_counts_[key.size() == 32 ? 0 : key.size() == 40 ? 1 : 2];  // canonical: 32/40/64
    }
    slots_[i] = Slot{static_cast<std::uint32_t>(index + 1), tag};
    return {index, true};
}

void IntelStore::reserve(std::size_t entries) {
    std::size_t slots = 64;
    while (slots * 7 < entries * 10) slots *= 2;
    reserved_entries_ = std::max(reserved_entries_, entries);
    if (slots > slots_.size()) rehash(slots);
    blocks_.reserve(entries / kEntriesPerBlock + 1);
}

void IntelStore::rehash(std::size_t slot_count) {
    std::vector<Slot, HugePageAllocator<Slot>> slots;
    slots.reserve(slot_count);
    advise_huge(slots.data(), slot_count * sizeof(Slot));  // before the zeros touch it
    slots.resize(slot_count);
    const std::size_t mask = slot_count - 1;
    for (std::size_t e = 0; e < entry_count_; ++e) {
        const Entry& entry = entry_at(e);
        const std::size_t hash = hash_key(entry.indicator.type, entry.key());
        std::size_t i = hash & mask;
        while (slots[i].entry != 0) i = (i + 1) & mask;
        slots[i] = Slot{static_cast<std::uint32_t>(e + 1), static_cast<std::uint32_t>(hash >> 32)};
    }
    slots_ = std::move(slots);
}

void IntelStore::truncate(std::size_t count) {
    while (entry_count_ > count) {
        blocks_[(entry_count_ - 1) / kEntriesPerBlock].pop_back();
        --entry_count_;
    }
    while (!blocks_.empty() && blocks_.back().empty()) blocks_.pop_back();
    rehash(slots_.size());
}

const IntelMeta::Entry* IntelMeta::find(std::string_view name) const {
    return std::find_if(begin(), end(), [&](const Entry& e) { return e.first == name; });
}

std::string_view IntelMeta::at(std::string_view name) const {
    const Entry* it = find(name);
    return it == end() ? std::string_view{} : it->second;
}

std::map<std::string, std::string> IntelMeta::to_map() const {
    std::map<std::string, std::string> out;
    for (const auto& [name, value] : *this) out.emplace(name, value);
    return out;
}

bool is_whitelisted(const Indicator& indicator) {
    return indicator.whitelisted;
}

}  // namespace senningen::agent
