// Metadata records on the collector: the agents' protocol records (conn, dns, http, tls,
// files, smtp, smb, modbus, dnp3, s7, iec104, ...: one EVE-style JSON object each, as an
// agent's --metadata-log writes them), forwarded in metadata_batch messages, kept for a
// bounded time and searched for an indicator ("hunting": was this address, domain, URL, hash,
// e-mail address or file name seen before the indicator was known?).
//
// Each record is parsed once, at ingest (Poco::JSON), and checked; the values worth hunting
// for (addresses, DNS names, HTTP hosts and URLs, TLS names, hashes, e-mail addresses, file
// names: kIndicatorKeys in metadata.cc) are extracted, normalised (metadata_value()) and kept
// in an index beside the record, so that a hunt is an index lookup, never a scan of the JSON.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "senningen/common/result.h"

namespace senningen::collector {

// The largest record the collector takes (its JSON text); a larger one is refused.
inline constexpr std::size_t kMaxMetadataRecordBytes = 64 * 1024;
// The most indexed values of one record, and the longest value indexed (longer ones are kept
// in the JSON but cannot be hunted for).
inline constexpr std::size_t kMaxMetadataValues = 256;
inline constexpr std::size_t kMaxMetadataValueBytes = 512;
// Hunt values shorter than this are refused: they would match too much to be an indicator.
inline constexpr std::size_t kMinHuntValueLength = 3;

// Why a record was refused: a closed list with pinned numbers and names, counted per reason
// by the ingest (IngestCounters::metadata_refused) and named in its log line.
enum class MetadataProblem : std::uint8_t {
    kNotJson = 0,       // "not_json": does not parse as JSON
    kNotObject = 1,     // "not_object": parses, but is not a JSON object
    kOversize = 2,      // "oversize": longer than kMaxMetadataRecordBytes
    kBadEventType = 3,  // "bad_event_type": event_type missing, not a string, not a short
                        // lower-case name, or "alert"
    kBadTimestamp = 4,  // "bad_timestamp": timestamp missing, not a string, not RFC 3339
    kBadField = 5,      // "bad_field": flow_id, uid or an address of the wrong type
};
inline constexpr std::size_t kMetadataProblemCount = 6;
std::string_view to_string(MetadataProblem problem);

// A record checked and taken apart for storing.
struct ParsedMetadata {
    std::int64_t timestamp_ns = 0;
    std::string type;     // event_type: "conn", "dns", ...
    std::string uid;      // conn.uid, files.fuid; empty when the record has none
    std::string flow_id;  // the agent's flow id as decimal text; empty when none
    std::string json;     // the record as the agent sent it
    std::string digest;   // SHA-256 of json, hex: a record is stored once per agent and digest
    std::vector<std::string> values;  // indicator values, normalised, without repeats

    bool operator==(const ParsedMetadata&) const = default;
};

struct MetadataParseError {
    MetadataProblem problem = MetadataProblem::kNotJson;
    std::string message;  // names the problem and where
};

// Parses and checks one record. Never throws.
std::variant<ParsedMetadata, MetadataParseError> parse_metadata_record(std::string_view json);

// A value as it is indexed and hunted for: surrounding white space and one pair of angle
// brackets removed ("<a@b.example>"), one trailing dot of a DNS name removed, ASCII letters
// lower-cased. Empty when nothing is left.
std::string metadata_value(std::string_view text);

// The agents' batches for one transaction: RECORDS parsed and checked.
struct MetadataBatchIn {
    std::string agent_id;
    std::vector<ParsedMetadata> records;
};

struct MetadataInsertResult {
    std::size_t inserted = 0;
    std::size_t duplicates = 0;  // the agent sent this record before (a replay, a resume)

    bool operator==(const MetadataInsertResult&) const = default;
};

// A stored record as a hunt returns it.
struct StoredMetadata {
    std::int64_t id = 0;  // the store's, growing in insertion order
    std::string agent_id;
    std::int64_t timestamp_ns = 0;
    std::int64_t received_ns = 0;
    std::string type;
    std::string uid;
    std::string flow_id;
    std::string json;

    bool operator==(const StoredMetadata&) const = default;
};

// Where a page of a hunt ended: newest first, ties by id descending.
struct MetadataPosition {
    std::int64_t timestamp_ns = 0;
    std::int64_t id = 0;

    bool operator==(const MetadataPosition&) const = default;
};

inline constexpr std::size_t kMaxHuntLimit = 1000;

struct MetadataQuery {
    // metadata_value() of the indicator; empty: every record (the newest first), as the other
    // filters select them.
    std::string value;
    std::optional<std::string> type;       // exact event_type
    std::optional<std::string> agent_id;   // exact
    std::optional<std::int64_t> since_ns;  // inclusive, on the record's timestamp
    std::optional<std::int64_t> until_ns;  // exclusive
    std::optional<MetadataPosition> after;
    std::size_t limit = 100;  // 1..kMaxHuntLimit
};

// kInvalidArgument for a hunt every backend refuses: a value (when not empty) shorter than
// kMinHuntValueLength or longer than kMaxMetadataValueBytes, a limit outside 1..kMaxHuntLimit.
common::Result<void> check_metadata_query(const MetadataQuery& q);

// How much metadata the store keeps (docs/collector.md, "Metadata and hunting"). Zero: no
// bound of that kind. Records older than max_age_ns (counted from when the collector stored
// them, not from their own time stamps: a capture of last year is kept as long as one of
// today) and, beyond max_rows, the oldest stored are deleted with their index entries.
struct MetadataRetention {
    std::uint64_t max_rows = 10'000'000;
    std::int64_t max_age_ns = 30LL * 24 * 3'600'000'000'000;
};

}  // namespace senningen::collector
