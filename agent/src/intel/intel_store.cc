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

void add_source(Indicator& indicator, const std::string& source) {
    if (source.empty()) return;
    if (std::find(indicator.sources.begin(), indicator.sources.end(), source) ==
        indicator.sources.end()) {
        indicator.sources.push_back(source);
    }
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

    // Lines are parsed into PENDING first and merged only when the whole file is good, so a
    // file that turns out to be broken leaves the store as it was.
    std::vector<Indicator> pending;
    IntelLoadStats local;
    std::optional<Columns> columns;
    std::vector<std::string_view> fields;
    std::string line;
    std::string domain;
    std::size_t line_no = 0;
    auto where = [&] { return path + ":" + std::to_string(line_no); };

    while (std::getline(in, line)) {
        ++line_no;
        if (!line.empty() && line.back() == '\r') line.pop_back();
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
        Indicator indicator;
        indicator.type = *type;
        if (*type == IntelType::kAddr) {
            auto canonical = canonical_addr(value);
            if (!canonical) {
                add_problem(local, where() + ": '" + std::string(value) +
                                       "' is not an IPv4 or IPv6 address");
                continue;
            }
            indicator.value = std::move(*canonical);
        } else if (*type == IntelType::kFileHash) {
            if (!canonical_file_hash(value, indicator.value)) {
                add_problem(local, where() + ": '" + std::string(value) +
                                       "' is not an MD5, SHA-1 or SHA-256 hex digest");
                continue;
            }
        } else if (*type == IntelType::kFileName || *type == IntelType::kSoftware ||
                   *type == IntelType::kUserName) {
            indicator.value = std::string(value);
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
            indicator.value = std::string(text) + "/" + std::to_string(prefix);
        } else if (*type == IntelType::kUrl) {
            indicator.value = canonical_url(value);
        } else if (*type == IntelType::kEmail) {
            indicator.value = canonical_email(value);
            if (indicator.value.find('@') == std::string::npos) {
                add_problem(local, where() + ": '" + std::string(value) +
                                       "' is not a mail address (no '@')");
                continue;
            }
        } else if (*type == IntelType::kCertHash) {
            if (!canonical_hex(value, 40, indicator.value)) {
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
            indicator.value = domain;
        }
        if (columns->source && !is_empty_field(fields[*columns->source])) {
            indicator.sources.emplace_back(fields[*columns->source]);
        }
        for (const auto& [index, name] : columns->meta) {
            if (!is_empty_field(fields[index])) indicator.meta[name] = std::string(fields[index]);
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

    for (auto& indicator : pending) {
        Table& table = table_of(indicator.type);
        std::string key = indicator.value;
        if (indicator.type == IntelType::kSubnet) {
            const std::size_t slash = key.find('/');
            const auto addr = parse_binary_addr(std::string_view(key).substr(0, slash));
            const std::size_t prefix = std::stoul(key.substr(slash + 1));
            char binary[17];
            key.assign(binary, subnet_key(*addr, prefix, binary));
            (addr->len == 4 ? v4_lengths_.data() : v6_lengths_.data())[prefix] = true;
        }
        auto [it, inserted] = table.try_emplace(std::move(key));
        Indicator& stored = it->second;
        if (inserted) {
            stored = std::move(indicator);
            continue;
        }
        for (const auto& source : indicator.sources) add_source(stored, source);
        for (auto& [name, text] : indicator.meta) stored.meta[name] = std::move(text);
    }
    stats.loaded += local.loaded;
    stats.skipped += local.skipped;
    for (auto& problem : local.problems) {
        if (stats.problems.size() >= kMaxProblems) break;
        stats.problems.push_back(std::move(problem));
    }
    return {};
}

const Indicator* IntelStore::find_addr(std::string_view addr) const {
    const auto it = addrs_.find(addr);
    return it == addrs_.end() ? nullptr : &it->second;
}

const Indicator* IntelStore::find_domain(std::string_view name) const {
    // Lowercased on the stack: this runs for every DNS query on the packet path.
    if (!name.empty() && name.back() == '.') name.remove_suffix(1);
    std::array<char, kMaxDomainLength> buffer{};
    if (name.empty() || name.size() > buffer.size()) return nullptr;
    for (std::size_t i = 0; i < name.size(); ++i) buffer[i] = ascii_lower(name[i]);
    const auto it = domains_.find(std::string_view(buffer.data(), name.size()));
    return it == domains_.end() ? nullptr : &it->second;
}

const Indicator* IntelStore::find(IntelType type, std::string_view value) const {
    switch (type) {
        case IntelType::kAddr: return find_addr(value);
        case IntelType::kDomain: return find_domain(value);
        case IntelType::kFileHash: {
            std::string canonical;
            if (!canonical_file_hash(value, canonical)) return nullptr;
            const auto it = file_hashes_.find(canonical);
            return it == file_hashes_.end() ? nullptr : &it->second;
        }
        case IntelType::kFileName:
        case IntelType::kSoftware:
        case IntelType::kUserName: {
            const Table& table = type == IntelType::kFileName  ? file_names_
                                 : type == IntelType::kSoftware ? software_
                                                                : user_names_;
            const auto it = table.find(value);
            return it == table.end() ? nullptr : &it->second;
        }
        case IntelType::kSubnet: return find_subnet(value);
        case IntelType::kUrl: {
            if (urls_.empty()) return nullptr;
            const auto it = urls_.find(canonical_url(value));
            return it == urls_.end() ? nullptr : &it->second;
        }
        case IntelType::kEmail: {
            if (emails_.empty()) return nullptr;
            const auto it = emails_.find(canonical_email(value));
            return it == emails_.end() ? nullptr : &it->second;
        }
        case IntelType::kCertHash: {
            std::string canonical;
            if (cert_hashes_.empty() || !canonical_hex(value, 40, canonical)) return nullptr;
            const auto it = cert_hashes_.find(canonical);
            return it == cert_hashes_.end() ? nullptr : &it->second;
        }
    }
    return nullptr;
}

const Indicator* IntelStore::find_subnet(std::string_view addr) const {
    if (subnets_.empty()) return nullptr;
    const auto binary = parse_binary_addr(addr);
    if (!binary) return nullptr;
    const bool* lengths = binary->len == 4 ? v4_lengths_.data() : v6_lengths_.data();
    char key[17];
    for (std::size_t prefix = binary->len * 8 + 1; prefix-- > 0;) {
        if (!lengths[prefix]) continue;
        const std::size_t n = subnet_key(*binary, prefix, key);
        const auto it = subnets_.find(std::string_view(key, n));
        if (it != subnets_.end()) return &it->second;
    }
    return nullptr;
}

std::size_t IntelStore::size() const {
    return addrs_.size() + domains_.size() + file_hashes_.size() + file_names_.size() +
           urls_.size() + emails_.size() + cert_hashes_.size() + software_.size() +
           user_names_.size() + subnets_.size();
}

std::size_t IntelStore::count(IntelType type) const {
    // table_of only picks a member; the const_cast never writes.
    return const_cast<IntelStore*>(this)->table_of(type).size();
}

IntelStore::Table& IntelStore::table_of(IntelType type) {
    switch (type) {
        case IntelType::kAddr: return addrs_;
        case IntelType::kDomain: return domains_;
        case IntelType::kFileHash: return file_hashes_;
        case IntelType::kFileName: return file_names_;
        case IntelType::kSubnet: return subnets_;
        case IntelType::kUrl: return urls_;
        case IntelType::kEmail: return emails_;
        case IntelType::kCertHash: return cert_hashes_;
        case IntelType::kSoftware: return software_;
        case IntelType::kUserName: return user_names_;
    }
    return addrs_;
}

bool is_whitelisted(const Indicator& indicator) {
    const auto it = indicator.meta.find("meta.whitelist");
    return it != indicator.meta.end() && it->second == "T";
}

}  // namespace senningen::agent
