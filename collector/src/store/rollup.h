// What the SQLite and PostgreSQL stores share for aggregation: the hourly counts kept beside
// the alerts (the "rollup"), the SQL that reads them, and turning rows into results. Internal
// to the store; docs/collector.md ("Aggregation and groups") says why the rollup exists.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "senningen/collector/alert_store.h"

namespace senningen::collector::detail {

inline constexpr std::int64_t kMinuteNs = 60'000'000'000;

inline std::int64_t floor_to(std::int64_t t, std::int64_t unit) {
    const std::int64_t rem = t % unit;
    return t - (rem < 0 ? rem + unit : rem);
}
inline std::int64_t ceil_to(std::int64_t t, std::int64_t unit) {
    const std::int64_t f = floor_to(t, unit);
    return f == t ? t : f + unit;
}

// One row of alert_counts: alerts of one hour, severity, agent and rule.
struct RollupKey {
    std::int64_t hour_ns = 0;
    int severity = 0;
    std::string agent_id;
    std::string rule;

    auto operator<=>(const RollupKey&) const = default;
};

// Counts of the alerts an insert transaction stored, made in memory first so that a batch of
// thousands becomes a handful of upserts. Keys are sorted: every writer updates rows in the
// same order, so two collectors on one PostgreSQL cannot deadlock on them.
struct RollupDelta {
    std::map<RollupKey, std::uint64_t> counts;
    std::map<std::pair<std::int64_t, int>, std::uint64_t> hour_counts;    // (hour, severity)
    std::map<std::pair<std::int64_t, int>, std::uint64_t> minute_counts;  // (minute, severity)

    void add(const common::Alert& alert) {
        const std::int64_t hour = hour_start(alert.timestamp_ns);
        ++counts[RollupKey{hour, alert.severity, alert.agent_id, alert.rule}];
        ++hour_counts[{hour, alert.severity}];
        ++minute_counts[{floor_to(alert.timestamp_ns, kMinuteNs), alert.severity}];
    }
    bool empty() const { return counts.empty(); }
};

// The minute of an alerts row, likewise.
inline constexpr std::string_view kMinuteOfRowSql =
    "(ts_ns - (((ts_ns % 60000000000) + 60000000000) % 60000000000))";

// The hour of an alerts row, in SQL that SQLite and PostgreSQL both read (% truncates toward
// zero in both, hence the double modulo for times before 1970).
inline constexpr std::string_view kHourOfRowSql =
    "(ts_ns - (((ts_ns % 3600000000000) + 3600000000000) % 3600000000000))";

// One row of a keyed aggregation (rule, agent, severity as text) or of an hourly one.
struct KeyRow {
    std::string key;
    std::uint64_t count = 0;
};
struct HourRow {
    std::int64_t hour_ns = 0;
    int severity = 0;
    std::uint64_t count = 0;
};

// Rows ordered by count descending, at most LIMIT + 1 of them (the extra one says truncated).
inline AggregateResult keyed_result(std::vector<KeyRow> rows, std::size_t limit,
                                    bool from_rollup) {
    AggregateResult out;
    out.from_rollup = from_rollup;
    out.truncated = rows.size() > limit;
    if (out.truncated) rows.resize(limit);
    for (KeyRow& r : rows) {
        AggregateBucket b;
        b.key = std::move(r.key);
        b.count = r.count;
        out.buckets.push_back(std::move(b));
    }
    return out;
}

// Rows ordered by hour descending: the newest LIMIT hours, returned ascending.
inline AggregateResult hourly_result(const std::vector<HourRow>& rows, std::size_t limit,
                                     bool from_rollup) {
    AggregateResult out;
    out.from_rollup = from_rollup;
    for (const HourRow& r : rows) {
        if (out.buckets.empty() || out.buckets.back().hour_ns != r.hour_ns) {
            if (out.buckets.size() == limit) {
                out.truncated = true;
                break;
            }
            AggregateBucket b;
            b.hour_ns = r.hour_ns;
            out.buckets.push_back(b);
        }
        AggregateBucket& b = out.buckets.back();
        b.count += r.count;
        if (r.severity >= common::kSeverityMin && r.severity <= common::kSeverityMax) {
            b.severity_counts[static_cast<std::size_t>(r.severity - 1)] += r.count;
        }
    }
    std::reverse(out.buckets.begin(), out.buckets.end());
    return out;
}

// The rollup's SQL for Q (rollup_answers(Q) must hold), with PLACEHOLDER(i) making the i-th
// placeholder ("?" or "$i"); the values to bind, in order, go to BIND_INTS / the agent.
// Hourly and per-severity counts without an agent filter read alert_hour_counts (a few rows
// per hour); the others alert_counts.
struct RollupSql {
    std::string sql;
    std::vector<std::int64_t> ints;     // bound first, in order
    std::optional<std::string> agent;   // bound last when set
};

template <typename Placeholder>
RollupSql rollup_sql(const AggregateQuery& q, Placeholder placeholder, std::string_view collate) {
    const AlertQuery& f = q.filter;
    const bool coarse = !f.agent_id && (q.by == AggregateBy::kHour || q.by == AggregateBy::kSeverity);
    // A range on whole minutes that are not whole hours: the per-minute totals (see
    // minute_rollup_answers()).
    const bool by_minute = !rollup_answers(q);
    const std::string time_col = by_minute ? "minute" : "hour";
    RollupSql out;
    int n = 0;
    std::string where;
    auto cond = [&](const std::string& c) { where += (where.empty() ? " WHERE " : " AND ") + c; };
    if (f.since_ns) {
        cond(time_col + " >= " + placeholder(++n));
        out.ints.push_back(*f.since_ns);
    }
    if (f.until_ns) {
        cond(time_col + " < " + placeholder(++n));
        out.ints.push_back(*f.until_ns);
    }
    if (!f.severities.empty()) {
        std::string in = "severity IN (";
        for (std::size_t i = 0; i < f.severities.size(); ++i) {
            in += (i == 0 ? "" : ", ") + placeholder(++n);
            out.ints.push_back(f.severities[i]);
        }
        cond(in + ")");
    }
    if (f.agent_id) {
        cond("agent_id = " + placeholder(++n));
        out.agent = *f.agent_id;
    }
    const std::string table = by_minute ? " FROM alert_minute_counts"
                              : coarse  ? " FROM alert_hour_counts"
                                        : " FROM alert_counts";
    switch (q.by) {
        case AggregateBy::kHour:
            // alert_hour_counts has one row per hour and severity already (its key): read in
            // key order, with nothing to add up or sort.
            out.sql = coarse && !by_minute
                          ? "SELECT hour, severity, n" + table + where +
                                " ORDER BY hour DESC, severity DESC"
                          : "SELECT hour, severity, SUM(n)" + table + where +
                                " GROUP BY hour, severity ORDER BY hour DESC, severity DESC";
            break;
        case AggregateBy::kSeverity:
            out.sql = "SELECT severity, SUM(n)" + table + where +
                      " GROUP BY severity ORDER BY SUM(n) DESC, severity LIMIT " +
                      std::to_string(q.limit + 1);
            break;
        case AggregateBy::kRule:
        case AggregateBy::kAgent: {
            const std::string col = q.by == AggregateBy::kRule ? "rule" : "agent_id";
            out.sql = "SELECT " + col + ", SUM(n)" + table + where + " GROUP BY " + col +
                      " ORDER BY SUM(n) DESC, " + col + std::string(collate) + " LIMIT " +
                      std::to_string(q.limit + 1);
            break;
        }
    }
    return out;
}

// The SELECT list and grouping of an aggregation over the alerts table; WHERE (the list's
// filters) goes between FROM_ALERTS and the tail.
struct ScanSql {
    std::string head;  // "SELECT ... FROM alerts"
    std::string tail;  // " GROUP BY ... ORDER BY ... [LIMIT n]"
};

inline ScanSql scan_sql(const AggregateQuery& q, std::string_view collate) {
    switch (q.by) {
        case AggregateBy::kHour:
            return {"SELECT " + std::string(kHourOfRowSql) + ", severity, count(*) FROM alerts",
                    " GROUP BY 1, 2 ORDER BY 1 DESC"};
        case AggregateBy::kSeverity:
            return {"SELECT severity, count(*) FROM alerts",
                    " GROUP BY severity ORDER BY count(*) DESC, severity LIMIT " +
                        std::to_string(q.limit + 1)};
        case AggregateBy::kRule:
        case AggregateBy::kAgent: {
            const std::string col = q.by == AggregateBy::kRule ? "rule" : "agent_id";
            return {"SELECT " + col + ", count(*) FROM alerts",
                    " GROUP BY " + col + " ORDER BY count(*) DESC, " + col + std::string(collate) +
                        " LIMIT " + std::to_string(q.limit + 1)};
        }
    }
    return {};
}

// Grouping related alerts (GroupQuery): the innermost query reads alerts with the list's WHERE
// (inserted between GROUP_HEAD and GROUP_TAIL); W1..W3 and the final LIMIT are placeholders
// the caller makes. ROW_NUMBER picks the newest alert of each group, ties broken by id as the
// list orders them.
inline std::string group_sql(const std::string& where, const std::string& w1,
                             const std::string& w2, const std::string& w3,
                             const std::string& limit, std::string_view collate) {
    std::string status_sums;
    for (std::string_view s : kAlertStatuses) {
        status_sums += ", SUM(CASE WHEN st = '" + std::string(s) + "' THEN 1 ELSE 0 END)";
    }
    const std::string c(collate);
    return "SELECT rule, agent_id, target, w, count(*), MIN(ts_ns), MAX(ts_ns), MIN(severity),"
           " MAX(CASE WHEN rn = 1 THEN id END)" +
           status_sums +
           " FROM (SELECT m.*, ROW_NUMBER() OVER (PARTITION BY rule, agent_id, target, w"
           " ORDER BY ts_ns DESC, id ASC) AS rn"
           " FROM (SELECT id, rule, agent_id, COALESCE(target, '') AS target, ts_ns, severity,"
           " (ts_ns - (((ts_ns % " + w1 + ") + " + w2 + ") % " + w3 + ")) AS w,"
           " COALESCE((SELECT status FROM alert_triage s WHERE s.alert_id = alerts.id), 'new')"
           " AS st FROM alerts" + where + ") AS m) AS r"
           " GROUP BY rule, agent_id, target, w"
           " ORDER BY MAX(ts_ns) DESC, rule" + c + ", agent_id" + c + ", target" + c +
           ", w DESC LIMIT " + limit;
}

// Whether the per-minute totals answer Q: counts by severity of a range on whole minutes,
// with no filter but severity (alert_minute_counts has no agent or rule).
inline bool minute_rollup_answers(const AggregateQuery& q) {
    if (q.by != AggregateBy::kSeverity || q.filter.agent_id) return false;
    const auto& f = q.filter;
    if (!f.since_ns || !f.until_ns || floor_to(*f.since_ns, kMinuteNs) != *f.since_ns ||
        floor_to(*f.until_ns, kMinuteNs) != *f.until_ns) {
        return false;
    }
    AggregateQuery rest = q;
    rest.filter.since_ns.reset();
    rest.filter.until_ns.reset();
    return rollup_answers(rest);
}

// A range whose ends fall inside hours (since 10:20:07, until 16:45): the whole hours come
// from the hourly totals; inside the edge hours, whole minutes come from the per-minute totals
// (without an agent filter) and only the seconds at the very ends are counted over the
// alerts, so a range picked to the second stays fast. Returns nullopt when Q is not of that
// kind; RUN(part) answers one part (an AggregateQuery with use_rollup saying how). Exact:
// parts cover disjoint times; keyed parts are merged from complete lists, and when one is cut
// off at kMaxAggregateLimit keys the whole query is counted over the alerts.
template <typename Run>
std::optional<common::Result<AggregateResult>> aggregate_in_parts(const AggregateQuery& q,
                                                                  Run run) {
    if (!q.use_rollup || rollup_answers(q) || minute_rollup_answers(q)) return std::nullopt;
    AggregateQuery base = q;
    base.filter.since_ns.reset();
    base.filter.until_ns.reset();
    if (!rollup_answers(base)) return std::nullopt;  // another filter than time
    const AlertQuery& f = q.filter;
    if (f.since_ns && f.until_ns && *f.since_ns >= *f.until_ns) return std::nullopt;  // empty
    const bool keyed = q.by == AggregateBy::kRule || q.by == AggregateBy::kAgent;
    const bool minutes = !f.agent_id && !keyed;
    std::vector<AggregateQuery> parts;
    auto range = [&](std::optional<std::int64_t> from, std::optional<std::int64_t> to) {
        AggregateQuery part = base;
        part.filter.since_ns = from;
        part.filter.until_ns = to;
        // Keys are merged across parts: each part lists all of them (up to the cap).
        if (q.by != AggregateBy::kHour) part.limit = kMaxAggregateLimit;
        return part;
    };
    // [FROM, TO) inside one hour: by hour it is counted per severity (one bucket). Naming every
    // severity (every stored alert has one of 1..4) lets SQLite count from its (severity, time)
    // index alone, without reading the alert rows.
    auto edge = [&](std::int64_t from, std::int64_t to) {
        auto piece = [&](std::int64_t a, std::int64_t b, bool rollup) {
            if (a >= b) return;
            AggregateQuery part = range(a, b);
            part.use_rollup = rollup;
            if (!keyed) {
                part.by = AggregateBy::kSeverity;
                part.limit = kMaxAggregateLimit;
                if (!rollup && minutes && part.filter.severities.empty()) {
                    part.filter.severities = {1, 2, 3, 4};
                }
            }
            parts.push_back(part);
        };
        const std::int64_t m1 = ceil_to(from, kMinuteNs);
        const std::int64_t m2 = floor_to(to, kMinuteNs);
        if (!minutes || m1 >= m2) {
            piece(from, to, false);
            return;
        }
        piece(from, m1, false);
        piece(m1, m2, true);
        piece(m2, to, false);
    };
    const std::optional<std::int64_t> h1 =
        f.since_ns ? std::optional(ceil_to(*f.since_ns, kHourNs)) : std::nullopt;
    const std::optional<std::int64_t> h2 =
        f.until_ns ? std::optional(hour_start(*f.until_ns)) : std::nullopt;
    if (!h1 || !h2 || *h1 < *h2) {
        parts.push_back(range(h1, h2));  // the whole hours
        if (f.since_ns && *h1 != *f.since_ns) edge(*f.since_ns, *h1);
        if (f.until_ns && *h2 != *f.until_ns) edge(*h2, *f.until_ns);
    } else if (*f.since_ns < *h2) {  // across one hour boundary, no whole hour
        edge(*f.since_ns, *h2);
        edge(*h2, *f.until_ns);
    } else {  // inside one hour
        edge(*f.since_ns, *f.until_ns);
    }
    AggregateResult out;
    out.from_rollup = std::any_of(parts.begin(), parts.end(),
                                  [](const AggregateQuery& p) { return p.use_rollup; });
    if (!out.from_rollup) return std::nullopt;  // nothing to gain: count the alerts at once
    std::map<std::string, std::uint64_t> sums;
    std::map<std::int64_t, AggregateBucket> hours;
    for (const AggregateQuery& part : parts) {
        auto r = run(part);
        if (!r) return common::Result<AggregateResult>(r.error());
        if ((keyed || q.by == AggregateBy::kSeverity) && r->truncated) {
            AggregateQuery scan = q;
            scan.use_rollup = false;
            return run(scan);
        }
        out.truncated = out.truncated || r->truncated;
        const bool per_severity = q.by == AggregateBy::kHour && part.by == AggregateBy::kSeverity;
        for (AggregateBucket& b : r->buckets) {
            if (q.by != AggregateBy::kHour) {
                sums[b.key] += b.count;
            } else if (per_severity) {
                AggregateBucket& hour = hours[hour_start(*part.filter.since_ns)];
                hour.hour_ns = hour_start(*part.filter.since_ns);
                const int severity = b.key.empty() ? 0 : b.key[0] - '0';
                if (severity < common::kSeverityMin || severity > common::kSeverityMax) continue;
                hour.severity_counts[static_cast<std::size_t>(severity - 1)] += b.count;
                hour.count += b.count;
            } else {
                hours[b.hour_ns] = b;  // whole hours: no other part has them
            }
        }
    }
    if (q.by != AggregateBy::kHour) {
        for (auto& [key, count] : sums) {
            AggregateBucket b;
            b.key = key;
            b.count = count;
            out.buckets.push_back(std::move(b));
        }
        // Most first, ties by key (bytewise, as the SQL orders them; severities are digits).
        std::stable_sort(out.buckets.begin(), out.buckets.end(),
                         [](const auto& a, const auto& b) { return a.count > b.count; });
        if (out.buckets.size() > q.limit) {
            out.buckets.resize(q.limit);
            out.truncated = true;
        }
    } else {
        for (auto& [hour, b] : hours) {
            if (b.count > 0) out.buckets.push_back(b);
        }
        if (out.buckets.size() > q.limit) {
            out.buckets.erase(out.buckets.begin(),
                              out.buckets.end() - static_cast<std::ptrdiff_t>(q.limit));
            out.truncated = true;
        }
    }
    return common::Result<AggregateResult>(std::move(out));
}

}  // namespace senningen::collector::detail
