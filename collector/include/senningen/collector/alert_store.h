// Where the collector keeps alerts: the ingest side inserts batches that arrived over Broker,
// the REST API queries them for analysts. One interface, several backends (SQLite now,
// PostgreSQL later), so that nothing above the store knows which database is underneath.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "senningen/collector/auth.h"
#include "senningen/collector/metadata.h"
#include "senningen/common/alert.h"
#include "senningen/common/result.h"
#include "senningen/common/wire.h"

namespace senningen::collector {

// The most alerts one query returns; a larger limit is refused, so that one request cannot
// make the server load the whole table.
inline constexpr std::size_t kMaxQueryLimit = 1000;

// The orders a query can return. Ties are broken by id ascending, so that every order is
// total and a keyset cursor (AlertPosition) never skips or repeats an alert. The severity
// orders put equal severities newest first.
enum class AlertSort : std::uint8_t {
    kTimeDesc = 0,  // newest first (the default)
    kTimeAsc = 1,
    kSeverityAsc = 2,   // 1 (critical) first
    kSeverityDesc = 3,  // 4 (low) first
};

// An address or a CIDR block as an inclusive range of 16-byte addresses; IPv4 is mapped into
// ::ffff:0:0/96, as the stores keep addresses (so 10.0.0.0/8 is ::ffff:10.0.0.0/104).
struct AddressRange {
    std::array<std::uint8_t, 16> low{};
    std::array<std::uint8_t, 16> high{};

    bool operator==(const AddressRange&) const = default;
};

// IP (IPv4 dotted quad or IPv6 text) as 16 bytes, IPv4 mapped; nullopt when it is not one.
std::optional<std::array<std::uint8_t, 16>> address_bytes(std::string_view ip);

// "10.0.0.5", "10.0.0.0/8", "2001:db8::/32", "::/0": one address or a block. kInvalidArgument
// naming TEXT for anything else, a prefix beyond 32 (IPv4) or 128 (IPv6), or an address with
// bits set beyond its prefix ("10.0.0.5/8": did you mean 10.0.0.0/8?).
common::Result<AddressRange> parse_address_range(std::string_view text);

// Where a page ended: the sort keys of its last alert. A query with `after` set continues
// just behind it in the query's order.
struct AlertPosition {
    std::int64_t timestamp_ns = 0;
    int severity = 0;
    std::string id;

    bool operator==(const AlertPosition&) const = default;
};

// The text the free-text filter searches in: the signature and the matched strings (as
// encode_match_data() shows them), one per line, ASCII letters lower-cased.
std::string alert_search_text(const common::Alert& alert);
// A free-text filter as the stores match it against alert_search_text(): lower-cased ASCII.
std::string normalize_search(std::string_view text);

// Free text shorter than this cannot use the trigram indexes, so it is refused.
inline constexpr std::size_t kMinSearchLength = 3;
inline constexpr std::size_t kMaxSearchLength = 256;

// Filters combine with AND; an unset or empty filter does not restrict.
struct AlertQuery {
    std::optional<std::int64_t> since_ns;  // inclusive: timestamp_ns >= since_ns
    std::optional<std::int64_t> until_ns;  // exclusive: timestamp_ns < until_ns (windows tile)
    std::vector<int> severities;           // any of these exact values, each 1..4
    std::optional<std::string> agent_id;   // exact match
    std::optional<std::string> alert_id;   // exact match
    std::optional<std::string> status;     // triage status; "new" includes never triaged
    std::optional<std::string> assignee;   // exact account name
    std::optional<std::string> rule;       // exact signature
    std::optional<std::string> source;     // exact rule source: "yara", "intel", "policy"
    std::optional<std::string> proto;      // transport protocol, ASCII case-insensitive
    std::optional<AddressRange> src;       // source address within the range
    std::optional<AddressRange> dest;      // destination address within the range
    std::optional<AddressRange> ip;        // either address within the range
    // Case-insensitive substring of the signature or a matched string; kMinSearchLength..
    // kMaxSearchLength bytes, no control characters.
    std::optional<std::string> text;
    AlertSort sort = AlertSort::kTimeDesc;
    std::optional<AlertPosition> after;    // keyset pagination: continue behind this alert
    std::size_t limit = 100;               // 1..kMaxQueryLimit

    // Defaulted, so that a filter added later takes part: rollup_answers() relies on it.
    bool operator==(const AlertQuery&) const = default;
};

// The triage workflow of docs/collector.md: every alert starts "new".
inline constexpr std::array<std::string_view, 5> kAlertStatuses = {
    "new", "in_progress", "escalated", "false_positive", "resolved"};
bool is_alert_status(std::string_view status);

// An alert's triage state; an alert never triaged is {"new", ""}.
struct AlertTriage {
    std::string status = "new";
    std::string assignee;  // an account name, or empty

    bool operator==(const AlertTriage&) const = default;
};

// What a triage update changes; unset fields stay as they are.
struct TriageChange {
    std::optional<std::string> status;
    std::optional<std::string> assignee;  // empty: unassign
};

struct AlertComment {
    std::int64_t time_ns = 0;
    std::string author;
    std::string text;

    bool operator==(const AlertComment&) const = default;
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

// An account of the API and web UI (docs/collector.md, "Accounts"). Names are unique; an
// account is disabled, never deleted, so that the audit log keeps naming someone who existed.
struct UserAccount {
    std::string name;
    Role role = Role::kAnalyst;
    std::string password_hash;  // hash_password()'s self-describing string
    std::int64_t created_ns = 0;
    bool disabled = false;

    bool operator==(const UserAccount&) const = default;
};

// One line of the audit log: who changed what, from which value to which.
struct AuditEntry {
    std::int64_t time_ns = 0;
    std::string actor;   // the account that acted
    std::string action;  // e.g. "user.add", "alert.status"
    std::string target;  // what was acted on: an account name, an alert id
    std::string old_value;
    std::string new_value;

    bool operator==(const AuditEntry&) const = default;
};

// The most characters of an account name, a token label or an audit value the store accepts.
inline constexpr std::size_t kMaxUserNameLength = 64;
inline constexpr std::size_t kMaxTokenLabelLength = 128;

// kInvalidArgument unless NAME is 1..kMaxUserNameLength of [A-Za-z0-9._@-], starting with a
// letter or digit; the message names the input.
common::Result<void> check_user_name(const std::string& name);

// kInvalidArgument for a query every backend refuses: limit 0 or above kMaxQueryLimit, a
// severity outside 1..4, free text of the wrong length or with control characters.
// Backends call it before building their SQL.
common::Result<void> check_query(const AlertQuery& q);

// Aggregation and grouping (docs/collector.md, "Aggregation and groups").
inline constexpr std::int64_t kHourNs = 3'600'000'000'000;
// The most buckets or groups one aggregation or grouping returns.
inline constexpr std::size_t kMaxAggregateLimit = 10000;

enum class AggregateBy { kRule, kAgent, kSeverity, kHour };
std::string_view to_string(AggregateBy by);
std::optional<AggregateBy> parse_aggregate_by(std::string_view text);

struct AggregateQuery {
    AlertQuery filter;  // which alerts count; its limit plays no part
    AggregateBy by = AggregateBy::kHour;
    // The most buckets: keys by count descending, or the newest hours (returned ascending).
    std::size_t limit = 100;  // 1..kMaxAggregateLimit
    // False forces counting over the alerts table; the tests compare both ways.
    bool use_rollup = true;
};

struct AggregateBucket {
    std::string key;           // the rule, agent id or severity ("1".."4"); empty by hour
    std::int64_t hour_ns = 0;  // by hour: the hour's first nanosecond, UTC
    std::uint64_t count = 0;
    std::array<std::uint64_t, 4> severity_counts{};  // by hour: alerts of severity 1..4

    bool operator==(const AggregateBucket&) const = default;
};

struct AggregateResult {
    std::vector<AggregateBucket> buckets;
    bool truncated = false;    // there were more buckets than the limit
    bool from_rollup = false;  // answered from the hourly counts rather than the alerts

    bool operator==(const AggregateResult&) const = default;
};

// The hour that holds TIMESTAMP_NS: floor division, also before 1970.
std::int64_t hour_start(std::int64_t timestamp_ns);

// Whether the hourly counts answer Q exactly: no filter but since/until on whole hours,
// severities and agent (and rule, once the list has it). Backends use them only then.
bool rollup_answers(const AggregateQuery& q);

// kInvalidArgument for a bad aggregation: check_query()'s problems, a limit outside
// 1..kMaxAggregateLimit.
common::Result<void> check_aggregate_query(const AggregateQuery& q);

// Related alerts: the same rule, agent and target (the destination address of a network
// alert, the file path of a file alert) in the same window. Windows are fixed buckets of
// window_ns counted from the Unix epoch, so a group never changes as alerts arrive elsewhere.
inline constexpr std::int64_t kMinGroupWindowNs = 60'000'000'000;            // a minute
inline constexpr std::int64_t kMaxGroupWindowNs = 30 * 24 * kHourNs;         // 30 days

struct GroupQuery {
    AlertQuery filter;  // which alerts take part; its limit plays no part
    std::int64_t window_ns = kHourNs;
    std::size_t limit = 100;  // the most groups, newest activity first; 1..kMaxAggregateLimit
};

struct AlertGroup {
    std::string rule;
    std::string agent_id;
    std::string target;  // destination address, file path, or empty
    std::int64_t window_start_ns = 0;
    std::uint64_t count = 0;
    std::int64_t first_ns = 0;
    std::int64_t last_ns = 0;
    int top_severity = 0;   // the most severe (lowest number) in the group
    std::string newest_id;  // the id of the newest alert (of those at last_ns, any one)
    std::array<std::uint64_t, kAlertStatuses.size()> status_counts{};  // kAlertStatuses order

    bool operator==(const AlertGroup&) const = default;
};

// kInvalidArgument for a bad grouping: check_query()'s problems, a window outside
// kMinGroupWindowNs..kMaxGroupWindowNs, a limit outside 1..kMaxAggregateLimit.
common::Result<void> check_group_query(const GroupQuery& q);

// What an alert's target is for grouping: file path for file alerts, else destination address.
std::string group_target(const common::Alert& alert);

// A batch for insert_validated(): ALERTS have all passed common::validate() (the caller
// checked them); RECORDS, when not null, holds each alert's record encoding
// (common/record_codec.h), parallel to ALERTS, as the agent signed and sent it.
struct ValidatedBatch {
    const std::vector<common::Alert>* alerts = nullptr;
    const std::vector<std::string>* records = nullptr;

    // RECORDS when it holds one encoding per alert, else null (the alerts are encoded).
    const std::vector<std::string>* usable_records() const {
        return records != nullptr && records->size() == alerts->size() ? records : nullptr;
    }
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

    // insert_batches() for the ingest, which has validated every alert already (once, where
    // it can count and log a bad one): not validated again. A backend that stores the
    // record encoding takes RECORDS as is. The default runs insert() once per batch.
    virtual common::Result<std::vector<InsertResult>> insert_validated(
        const std::vector<ValidatedBatch>& batches);

    // In q.sort's order (newest first by default: timestamp descending, then id ascending so
    // that equal timestamps have a stable order), behind q.after when set. A bad query (limit 0 or above kMaxQueryLimit, severity outside 1..4) is
    // kInvalidArgument. A stored row that no longer decodes is skipped and counted in
    // undecodable_rows(), never fatal.
    virtual common::Result<std::vector<common::Alert>> query(const AlertQuery& q) = 0;

    virtual common::Result<std::uint64_t> count() = 0;

    // Counts of the alerts Q's filter selects, per Q.by. Exact whether answered from the
    // hourly counts kept beside the alerts or by counting alerts. A backend without it
    // answers kUnsupported; a bad query is kInvalidArgument.
    virtual common::Result<AggregateResult> aggregate(const AggregateQuery& q);
    // Related alerts grouped (see GroupQuery), newest activity (last_ns) first.
    virtual common::Result<std::vector<AlertGroup>> groups(const GroupQuery& q);

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

    // Accounts, sessions and API tokens. A backend without them answers kUnsupported. Session
    // ids and tokens are never stored, only their secret_digest().
    //
    // Adds an account; kInvalidArgument for a bad name or one that exists already.
    virtual common::Result<void> add_user(const UserAccount& user);
    virtual common::Result<std::optional<UserAccount>> find_user(const std::string& name);
    virtual common::Result<std::vector<UserAccount>> users();  // by name
    // kNotFound for an unknown account. Disabling also ends the account's sessions.
    virtual common::Result<void> set_user_disabled(const std::string& name, bool disabled);
    virtual common::Result<void> set_password_hash(const std::string& name,
                                                   const std::string& password_hash);
    // A session for USER until EXPIRES_NS; expired sessions of every account are removed on
    // the way. kNotFound for an unknown account.
    virtual common::Result<void> add_session(const std::string& digest, const std::string& user,
                                             std::int64_t created_ns, std::int64_t expires_ns);
    // The account of an unexpired session of an enabled account, noting NOW_NS as last seen;
    // nullopt otherwise.
    virtual common::Result<std::optional<UserAccount>> session_user(const std::string& digest,
                                                                    std::int64_t now_ns);
    virtual common::Result<void> delete_session(const std::string& digest);
    // kNotFound for an unknown account.
    virtual common::Result<void> add_api_token(const std::string& digest, const std::string& user,
                                               const std::string& label, std::int64_t created_ns);
    // The account of a token of an enabled account, noting NOW_NS as last used; else nullopt.
    virtual common::Result<std::optional<UserAccount>> token_user(const std::string& digest,
                                                                  std::int64_t now_ns);
    virtual common::Result<void> append_audit(const AuditEntry& entry);
    // The entries about TARGET, oldest first, at most LIMIT (the newest LIMIT).
    virtual common::Result<std::vector<AuditEntry>> audit_entries(const std::string& target,
                                                                  std::size_t limit);

    // Triage. A backend without it answers kUnsupported.
    // The triage state of each of IDS that exists ({"new", ""} when never triaged).
    virtual common::Result<std::map<std::string, AlertTriage>> triage_of(
        const std::vector<std::string>& ids);
    // Applies CHANGE to every alert of IDS in one transaction, appending an audit entry (ACTOR,
    // AT_NS, "alert.status" or "alert.assignee", old and new value) per value that changes;
    // returns those entries. An id that is not stored fails the whole update (kNotFound naming
    // it); a status outside kAlertStatuses is kInvalidArgument.
    virtual common::Result<std::vector<AuditEntry>> update_triage(
        const std::vector<std::string>& ids, const TriageChange& change, const std::string& actor,
        std::int64_t at_ns);
    // Adds a comment (and an "alert.comment" audit entry); kNotFound for an unknown alert.
    virtual common::Result<void> add_comment(const std::string& alert_id,
                                             const AlertComment& comment);
    // The alert's comments, oldest first.
    virtual common::Result<std::vector<AlertComment>> comments(const std::string& alert_id);

    // Metadata records (collector/metadata.h). A backend without them answers kUnsupported.
    //
    // Stores BATCHES in one transaction (all or, on error, none), each record with its
    // indicator values, noting RECEIVED_NS as when it was stored. Idempotent on the agent and
    // the record's digest: a record stored already is counted as a duplicate. Result i
    // belongs to BATCHES[i].
    virtual common::Result<std::vector<MetadataInsertResult>> insert_metadata(
        const std::vector<MetadataBatchIn>& batches, std::int64_t received_ns);
    // The records holding Q.value among their indicator values, newest first (time stamp
    // descending, then id descending), behind Q.after when set; kInvalidArgument for a query
    // check_metadata_query() refuses.
    virtual common::Result<std::vector<StoredMetadata>> hunt_metadata(const MetadataQuery& q);
    // Deletes what RETENTION does not keep (as of NOW_NS), at most MAX_DELETE records per
    // call so that a large backlog does not hold the writer for long; returns how many.
    virtual common::Result<std::uint64_t> prune_metadata(const MetadataRetention& retention,
                                                         std::int64_t now_ns,
                                                         std::size_t max_delete);
    virtual common::Result<std::uint64_t> metadata_count();
};

}  // namespace senningen::collector
