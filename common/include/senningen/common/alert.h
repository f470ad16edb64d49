// The alert model shared by agent and collector. An Alert is one detection: a YARA rule, an
// intel indicator or a policy rule that fired on network traffic or on a file. Its id is a
// UUID chosen once, when the alert is made, so that retries and replays never duplicate it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "senningen/common/result.h"

namespace senningen::common {

enum class AlertKind : std::uint8_t { kNetwork = 0, kFile = 1 };
enum class RuleSource : std::uint8_t { kYara = 0, kIntel = 1, kPolicy = 2 };

std::string_view to_string(AlertKind kind);
std::string_view to_string(RuleSource source);
Result<AlertKind> parse_alert_kind(std::string_view text);
Result<RuleSource> parse_rule_source(std::string_view text);

// Severity follows Suricata: 1 is the most severe, 4 the least.
inline constexpr int kSeverityMin = 1;
inline constexpr int kSeverityMax = 4;

// Bounds that keep one alert small whatever a rule matched.
inline constexpr std::size_t kMaxStringMatches = 32;
inline constexpr std::size_t kMaxMatchExcerpt = 64;  // bytes of matched data kept per match

struct NetworkContext {
    std::uint64_t flow_id = 0;
    std::string src_ip;
    std::uint16_t src_port = 0;
    std::string dest_ip;
    std::uint16_t dest_port = 0;
    std::string proto;      // "TCP", "UDP", "ICMP", ...
    std::string app_proto;  // "http", "dns", "modbus", ... or empty when unknown

    bool operator==(const NetworkContext&) const = default;
};

struct FileContext {
    std::string path;
    std::uint64_t size = 0;
    std::string sha256;  // lowercase hex
    std::string sha1;    // optional, lowercase hex or empty
    std::string md5;     // optional, lowercase hex or empty

    bool operator==(const FileContext&) const = default;
};

struct IntelContext {
    std::string indicator;
    std::string indicator_type;  // Zeek's names: "Intel::ADDR", "Intel::DOMAIN", ...
    std::string where;           // Zeek's names: "Conn::IN_RESP", "DNS::IN_REQUEST", ...
    std::vector<std::string> sources;

    bool operator==(const IntelContext&) const = default;
};

struct StringMatch {
    std::string identifier;  // "$a"
    std::uint64_t offset = 0;
    std::string data;  // raw matched bytes, at most kMaxMatchExcerpt
    std::uint32_t length = 0;  // full length of the match, which data may truncate

    bool operator==(const StringMatch&) const = default;
};

struct Alert {
    std::string id;        // UUID, lowercase, 36 characters
    std::string agent_id;
    std::int64_t timestamp_ns = 0;  // nanoseconds since the Unix epoch, UTC
    AlertKind kind = AlertKind::kNetwork;
    RuleSource source = RuleSource::kYara;
    std::string rule;      // the signature name
    std::string category;  // free text, e.g. "Malware download"
    std::string pack_version;
    int severity = 3;

    std::optional<NetworkContext> network;
    std::optional<FileContext> file;
    std::optional<IntelContext> intel;
    std::vector<StringMatch> matches;

    bool operator==(const Alert&) const = default;
};

// A fresh UUID, version 7 (RFC 9562): time-ordered to the millisecond, 74 random bits.
std::string new_uuid();
bool is_uuid(std::string_view text);

// Checks every invariant of the model: id is a UUID, severity in range, the context that the
// kind requires is present, matches within bounds. Decoders call it so that nothing invalid
// gets past the wire.
Result<void> validate(const Alert& alert);

// Adds a match, keeping the bounds: at most kMaxStringMatches, each excerpt cut to
// kMaxMatchExcerpt bytes. Returns false when the match was dropped.
bool add_match(Alert& alert, std::string identifier, std::uint64_t offset, std::string_view data);

// "2026-11-28T10:57:27.123456789Z"
std::string format_timestamp(std::int64_t ns);
Result<std::int64_t> parse_timestamp(std::string_view text);
std::int64_t now_ns();

}  // namespace senningen::common
