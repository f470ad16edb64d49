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
#include "senningen/common/wire.h"

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

// What the collector knows about one agent, from its heartbeats (docs/collector.md).
struct AgentStatus {
    std::string id;
    std::string state;  // "online", "offline" (3 heartbeats missed) or "stopped" (said goodbye)
    std::int64_t first_seen_ns = 0;
    std::int64_t last_seen_ns = 0;  // last heartbeat received
    std::int64_t state_since_ns = 0;
    common::Heartbeat last;  // the last heartbeat's fields (credentials not kept)

    bool operator==(const AgentStatus&) const = default;
};

// A change of an agent's state, kept for analysts: "online", "offline", "stopped".
struct AgentEvent {
    std::int64_t time_ns = 0;
    std::string agent_id;
    std::string event;
    std::string detail;

    bool operator==(const AgentEvent&) const = default;
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

    // Group commit: several batches (from one or several agents) in one transaction, which is
    // what lets ingest keep up with many agents (docs/collector.md, "Store"). Result i belongs
    // to BATCHES[i]; an id repeated across the batches counts as a duplicate where it comes
    // second, as within one batch. Every alert must pass common::validate(), or the call fails
    // with kInvalidArgument and stores nothing. On error, callers acknowledge none of the
    // batches: the agents resend them and the idempotent insert absorbs whatever a backend
    // had stored. The default validates everything, then runs insert() once per batch (one
    // transaction each, so a database error can leave earlier batches stored); backends
    // override it with a single transaction.
    virtual common::Result<std::vector<InsertResult>> insert_batches(
        const std::vector<std::vector<common::Alert>>& batches);

    // Newest first: timestamp descending, then id ascending so that equal timestamps have a
    // stable order. A bad query (limit 0 or above kMaxQueryLimit, severity outside 1..4) is
    // kInvalidArgument. A stored row that no longer decodes is skipped and counted in
    // undecodable_rows(), never fatal.
    virtual common::Result<std::vector<common::Alert>> query(const AlertQuery& q) = 0;

    virtual common::Result<std::uint64_t> count() = 0;

    // Rows query() has skipped since the store was opened because they did not decode.
    virtual std::uint64_t undecodable_rows() const = 0;

    virtual std::string backend_name() const = 0;

    // Agents. A backend without them answers kUnsupported.
    // Records a heartbeat received at RECEIVED_NS: the agent is "online" (or "stopped" when
    // the heartbeat says so); a change of state is also recorded as an AgentEvent.
    virtual common::Result<void> record_heartbeat(const common::Heartbeat& heartbeat,
                                                  std::int64_t received_ns);
    // Sets an agent's state (and records the event) unless it is in that state already;
    // kNotFound for an agent never seen.
    virtual common::Result<void> set_agent_state(const std::string& agent_id,
                                                 const std::string& state, std::int64_t at_ns,
                                                 const std::string& detail);
    // Every agent, by id.
    virtual common::Result<std::vector<AgentStatus>> agents();
    virtual common::Result<std::optional<AgentStatus>> agent(const std::string& agent_id);
    // An agent's events, newest first, at most LIMIT.
    virtual common::Result<std::vector<AgentEvent>> agent_events(const std::string& agent_id,
                                                                 std::size_t limit);
};

}  // namespace senningen::collector
