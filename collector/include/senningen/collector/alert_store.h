// Where the collector keeps alerts: the ingest side inserts batches that arrived over Broker,
// the REST API queries them for analysts. One interface, several backends (SQLite now,
// PostgreSQL later), so that nothing above the store knows which database is underneath.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "senningen/common/alert.h"
#include "senningen/common/result.h"

namespace senningen::collector {

// The most alerts one query returns; a larger limit is refused, so that one request cannot
// make the server load the whole table.
inline constexpr std::size_t kMaxQueryLimit = 1000;

// Filters combine with AND; an unset or empty filter does not restrict.
struct AlertQuery {
    std::optional<std::int64_t> since_ns;  // inclusive: timestamp_ns >= since_ns
    std::optional<std::int64_t> until_ns;  // exclusive: timestamp_ns < until_ns (windows tile)
    std::vector<int> severities;           // any of these exact values, each 1..4
    std::optional<std::string> agent_id;   // exact match
    std::size_t limit = 100;               // 1..kMaxQueryLimit
};

struct InsertResult {
    std::size_t inserted = 0;
    std::size_t duplicates = 0;  // ids already stored, or repeated within the batch

    bool operator==(const InsertResult&) const = default;
};

// Implementations are safe to call from several threads at once: the ingest thread inserts
// while HTTP worker threads query and count.
class AlertStore {
public:
    virtual ~AlertStore();

    // Stores the batch in one transaction: all of it or, on error, none of it. Idempotent on
    // the alert id: an id already stored is counted as a duplicate and its stored copy is kept,
    // so a replay after a lost acknowledgement inserts nothing twice. Every alert must pass
    // common::validate(); one that does not fails the whole batch with kInvalidArgument.
    virtual common::Result<InsertResult> insert(const std::vector<common::Alert>& alerts) = 0;

    // Newest first: timestamp descending, then id ascending so that equal timestamps have a
    // stable order. A bad query (limit 0 or above kMaxQueryLimit, severity outside 1..4) is
    // kInvalidArgument. A stored row that no longer decodes is skipped and counted in
    // undecodable_rows(), never fatal.
    virtual common::Result<std::vector<common::Alert>> query(const AlertQuery& q) = 0;

    virtual common::Result<std::uint64_t> count() = 0;

    // Rows query() has skipped since the store was opened because they did not decode.
    virtual std::uint64_t undecodable_rows() const = 0;

    virtual std::string backend_name() const = 0;
};

}  // namespace senningen::collector
