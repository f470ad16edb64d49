#include "senningen/agent/intel/intel_store.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cctype>
#include <array>
#include <filesystem>
#include <fstream>
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

// Zeek's URL indicators carry no scheme ("example.com/path"); feeds often do. The scheme is
// dropped and the host (up to the first '/') lower-cased; the path keeps its case.
std::string canonical_url(std::string_view text) {
    const std::size_t scheme = text.find("://");
    if (scheme != std::string_view::npos && scheme < 16) text.remove_prefix(scheme + 3);
    std::string out(text);
    const std::size_t slash = out.find('/');
    const std::size_t host_end = slash == std::string::npos ? out.size() : slash;
    for (std::size_t i = 0; i < host_end; ++i) {
        out[i] = static_cast<char>(std::tolower(static_cast<unsigned char>(out[i])));
    }
    return out;
}

// Addresses in mail are compared without case and without the angle brackets of a path.
std::string canonical_email(std::string_view text) {
    if (text.size() >= 2 && text.front() == '<' && text.back() == '>') {
        text = text.substr(1, text.size() - 2);
    }
    std::string out(text);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
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

// One parsed line, before the file is known to be good: texts already in the file's arena.
struct PendingIndicator {
    std::string_view key;  // the table key (the value, or a subnet's binary key)
    std::string_view value;
    IntelType type = IntelType::kAddr;
    std::string_view source;             // interned, "" when none
    std::vector<IntelMeta::Entry> meta;  // names interned
};

// Reads all of IN (intel files are a few MB to a few hundred; a pipe works too); false on a
// read error.
bool read_whole(std::ifstream& in, std::string& out) {
    constexpr std::size_t kChunk = 1 << 20;
    std::size_t used = 0;
    while (in) {
        out.resize(used + kChunk);
        in.read(out.data() + used, static_cast<std::streamsize>(kChunk));
        used += static_cast<std::size_t>(in.gcount());
    }
    out.resize(used);
    return !in.bad();
}

}  // namespace

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
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        std::error_code ec;
        if (!std::filesystem::exists(path, ec)) {
            return make_error(ErrorCode::kNotFound, "intel file " + path + " does not exist");
        }
        return make_error(ErrorCode::kIo, "cannot read intel file " + path);
    }

    // Lines are parsed into PENDING (texts in a file arena) first and merged only when the
    // whole file is good, so a file that turns out to be broken leaves the store as it was.
    std::string text_buffer;
    if (!read_whole(in, text_buffer)) {
        return make_error(ErrorCode::kIo, "error reading intel file " + path);
    }
    Arena arena;
    std::vector<PendingIndicator> pending;
    std::vector<std::string_view> meta_names;  // interned, parallel to columns->meta
    IntelLoadStats local;
    std::optional<Columns> columns;
    std::vector<std::string_view> fields;
    std::string_view rest = text_buffer;
    std::string domain;
    std::string canonical;
    std::size_t line_no = 0;
    auto where = [&] { return path + ":" + std::to_string(line_no); };

    while (!rest.empty()) {
        const std::size_t eol = rest.find('\n');
        std::string_view line = rest.substr(0, eol);
        rest.remove_prefix(eol == std::string_view::npos ? rest.size() : eol + 1);
        ++line_no;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.empty()) continue;
        if (line[0] == '#') {
            const std::string_view text = line;
            if (text.starts_with("#fields")) {
                if (text.size() > 7 && text[7] != '\t') {
                    return make_error(ErrorCode::kParse,
                                      where() +
                                          ": #fields header must separate column names "
                                          "with tabs");
                }
                auto parsed = parse_fields_header(text, where());
                if (!parsed) return parsed.error();
                columns = std::move(*parsed);
                meta_names.clear();
                for (const auto& [index, name] : columns->meta) {
                    meta_names.push_back(intern(name));
                }
            }
            // Anything else starting with '#' is a Zeek log header (#separator, #path,
            // #types, ...) or a comment; Zeek's intel files are always tab-separated.
            continue;
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
            continue;
        }
        const std::string_view value = fields[columns->indicator];
        const std::string_view type_name = fields[columns->type];
        if (is_empty_field(value)) {
            add_problem(local, where() + ": empty indicator");
            continue;
        }
        if (is_empty_field(type_name)) {
            add_problem(local, where() + ": empty indicator type");
            continue;
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
            continue;
        }
        PendingIndicator indicator;
        indicator.type = *type;
        std::string_view key_override;  // subnets: the binary key
        if (*type == IntelType::kAddr) {
            auto addr = canonical_addr(value);
            if (!addr) {
                add_problem(local, where() + ": '" + std::string(value) +
                                       "' is not an IPv4 or IPv6 address");
                continue;
            }
            canonical = std::move(*addr);
        } else if (*type == IntelType::kFileHash) {
            if (!canonical_file_hash(value, canonical)) {
                add_problem(local, where() + ": '" + std::string(value) +
                                       "' is not an MD5, SHA-1 or SHA-256 hex digest");
                continue;
            }
        } else if (*type == IntelType::kFileName || *type == IntelType::kSoftware ||
                   *type == IntelType::kUserName) {
            canonical.assign(value);
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
                continue;
            }
            // The value names the network as Zeek prints a subnet: host bits cleared.
            BinaryAddr net = *addr;
            char key[17];
            subnet_key(*addr, static_cast<std::size_t>(prefix), key);
            std::copy(key + 1, key + 1 + addr->len, net.bytes.begin());
            char text[INET6_ADDRSTRLEN] = {};
            inet_ntop(net.len == 4 ? AF_INET : AF_INET6, net.bytes.data(), text, sizeof text);
            canonical = std::string(text) + "/" + std::to_string(prefix);
            char binary[17];
            key_override = arena.copy(std::string_view(
                binary, subnet_key(*addr, static_cast<std::size_t>(prefix), binary)));
        } else if (*type == IntelType::kUrl) {
            canonical = canonical_url(value);
        } else if (*type == IntelType::kEmail) {
            canonical = canonical_email(value);
            if (canonical.find('@') == std::string::npos) {
                add_problem(local, where() + ": '" + std::string(value) +
                                       "' is not a mail address (no '@')");
                continue;
            }
        } else if (*type == IntelType::kCertHash) {
            if (!canonical_hex(value, 40, canonical)) {
                add_problem(local, where() + ": '" + std::string(value) +
                                       "' is not a SHA-1 hex digest (40 digits)");
                continue;
            }
        } else {
            if (!canonical_domain(value, domain)) {
                add_problem(local, where() + ": '" + std::string(value) +
                                       "' is not a DNS name (letters, digits, '-', '_' and "
                                       "dots; internationalised names in xn-- form)");
                continue;
            }
            canonical = domain;
        }
        indicator.value = arena.copy(canonical);
        indicator.key = key_override.empty() ? indicator.value : key_override;
        if (columns->source && !is_empty_field(fields[*columns->source])) {
            indicator.source = intern(fields[*columns->source]);
        }
        for (std::size_t m = 0; m < columns->meta.size(); ++m) {
            const std::string_view field = fields[columns->meta[m].first];
            if (!is_empty_field(field))
                indicator.meta.emplace_back(meta_names[m], arena.copy(field));
        }
        pending.push_back(std::move(indicator));
        ++local.loaded;
    }
    if (in.bad()) return make_error(ErrorCode::kIo, "error reading intel file " + path);
    if (!columns) {
        return make_error(ErrorCode::kParse, path + ":" +
                                                 std::to_string(std::max<std::size_t>(line_no, 1)) +
                                                 ": no #fields header in the file");
    }

    std::vector<std::string_view> sources;
    std::vector<IntelMeta::Entry> meta;
    for (const PendingIndicator& p : pending) {
        if (p.type == IntelType::kSubnet) {
            const std::size_t prefix = static_cast<unsigned char>(p.key[0]);
            (p.key.size() == 5 ? v4_lengths_.data() : v6_lengths_.data())[prefix] = true;
        }
        auto [stored, inserted] = table_of(p.type).insert(p.key);
        if (inserted) {
            stored->value = p.value;
            stored->type = p.type;
            if (!p.source.empty()) stored->sources = arena.copy(std::span(&p.source, 1));
            stored->meta = IntelMeta(arena.copy(std::span<const IntelMeta::Entry>(p.meta)));
        } else {
            // Listed before: sources merge, each meta column keeps its last non-empty value.
            sources.assign(stored->sources.begin(), stored->sources.end());
            if (!p.source.empty() &&
                std::find(sources.begin(), sources.end(), p.source) == sources.end()) {
                sources.push_back(p.source);
                stored->sources = arena.copy(std::span<const std::string_view>(sources));
            }
            if (!p.meta.empty()) {
                meta.assign(stored->meta.begin(), stored->meta.end());
                for (const auto& entry : p.meta) {
                    auto it = std::find_if(meta.begin(), meta.end(),
                                           [&](const auto& e) { return e.first == entry.first; });
                    if (it == meta.end()) {
                        meta.push_back(entry);
                    } else {
                        it->second = entry.second;
                    }
                }
                stored->meta = IntelMeta(arena.copy(std::span<const IntelMeta::Entry>(meta)));
            }
        }
        stored->whitelisted = stored->meta.at("meta.whitelist") == "T";
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
    return table_of(IntelType::kAddr).find(addr);
}

const Indicator* IntelStore::find_domain(std::string_view name) const {
    // Lowercased on the stack: this runs for every DNS query on the packet path.
    if (!name.empty() && name.back() == '.') name.remove_suffix(1);
    std::array<char, kMaxDomainLength> buffer{};
    if (name.empty() || name.size() > buffer.size()) return nullptr;
    for (std::size_t i = 0; i < name.size(); ++i) buffer[i] = ascii_lower(name[i]);
    return table_of(IntelType::kDomain).find(std::string_view(buffer.data(), name.size()));
}

const Indicator* IntelStore::find(IntelType type, std::string_view value) const {
    const Table& table = table_of(type);
    switch (type) {
        case IntelType::kAddr: return find_addr(value);
        case IntelType::kDomain: return find_domain(value);
        case IntelType::kSubnet: return find_subnet(value);
        case IntelType::kFileName:
        case IntelType::kSoftware:
        case IntelType::kUserName: return table.find(value);
        case IntelType::kFileHash:
        case IntelType::kCertHash:
        case IntelType::kUrl:
        case IntelType::kEmail: break;
    }
    if (table.empty()) return nullptr;
    std::string canonical;
    switch (type) {
        case IntelType::kFileHash:
            if (!canonical_file_hash(value, canonical)) return nullptr;
            break;
        case IntelType::kCertHash:
            if (!canonical_hex(value, 40, canonical)) return nullptr;
            break;
        case IntelType::kUrl: canonical = canonical_url(value); break;
        default: canonical = canonical_email(value); break;
    }
    return table.find(canonical);
}

const Indicator* IntelStore::find_subnet(std::string_view addr) const {
    const Table& subnets = table_of(IntelType::kSubnet);
    if (subnets.empty()) return nullptr;
    const auto binary = parse_binary_addr(addr);
    if (!binary) return nullptr;
    const bool* lengths = binary->len == 4 ? v4_lengths_.data() : v6_lengths_.data();
    char key[17];
    for (std::size_t prefix = binary->len * 8 + 1; prefix-- > 0;) {
        if (!lengths[prefix]) continue;
        const std::size_t n = subnet_key(*binary, prefix, key);
        if (const Indicator* hit = subnets.find(std::string_view(key, n))) return hit;
    }
    return nullptr;
}

std::size_t IntelStore::size() const {
    std::size_t n = 0;
    for (const Table& table : tables_) n += table.size();
    return n;
}

std::size_t IntelStore::count(IntelType type) const {
    return table_of(type).size();
}

IntelStore::Table& IntelStore::table_of(IntelType type) {
    return tables_[static_cast<std::size_t>(type)];
}

const IntelStore::Table& IntelStore::table_of(IntelType type) const {
    return tables_[static_cast<std::size_t>(type)];
}

std::string_view IntelStore::intern(std::string_view text) {
    auto it = interned_.find(text);
    if (it == interned_.end()) it = interned_.emplace(text).first;
    return *it;
}

void* IntelStore::Arena::allocate(std::size_t bytes, std::size_t align) {
    const std::size_t pad = (align - reinterpret_cast<std::uintptr_t>(next_) % align) % align;
    if (next_ == nullptr || pad + bytes > left_) {
        const std::size_t size = std::max(kArenaBlock, bytes + align);
        blocks_.push_back(std::make_unique_for_overwrite<char[]>(size));
        next_ = blocks_.back().get();
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

const Indicator* IntelStore::Table::find(std::string_view key) const {
    if (slots_.empty()) return nullptr;
    const std::size_t hash = TextHash{}(key);
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t i = hash & mask;; i = (i + 1) & mask) {
        const std::uint32_t slot = slots_[i];
        if (slot == 0) return nullptr;
        const Entry& entry = entries_[slot - 1];
        if (entry.hash == hash && entry.key == key) return &entry.indicator;
    }
}

std::pair<Indicator*, bool> IntelStore::Table::insert(std::string_view key) {
    // At most 70% full, so that a miss ends after a few probes.
    if ((entries_.size() + 1) * 10 > slots_.size() * 7) grow();
    const std::size_t hash = TextHash{}(key);
    const std::size_t mask = slots_.size() - 1;
    std::size_t i = hash & mask;
    for (;; i = (i + 1) & mask) {
        const std::uint32_t slot = slots_[i];
        if (slot == 0) break;
        Entry& entry = entries_[slot - 1];
        if (entry.hash == hash && entry.key == key) return {&entry.indicator, false};
    }
    entries_.push_back(Entry{key, hash, Indicator{}});
    slots_[i] = static_cast<std::uint32_t>(entries_.size());
    return {&entries_.back().indicator, true};
}

void IntelStore::Table::grow() {
    std::vector<std::uint32_t> slots(slots_.empty() ? 64 : slots_.size() * 2, 0);
    const std::size_t mask = slots.size() - 1;
    for (std::size_t e = 0; e < entries_.size(); ++e) {
        std::size_t i = entries_[e].hash & mask;
        while (slots[i] != 0) i = (i + 1) & mask;
        slots[i] = static_cast<std::uint32_t>(e + 1);
    }
    slots_ = std::move(slots);
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
