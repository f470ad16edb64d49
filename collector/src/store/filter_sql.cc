#include "filter_sql.h"

#include <utility>

namespace senningen::collector::detail {

namespace {

std::string ascii_upper(std::string text) {
    for (char& c : text) {
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    }
    return text;
}

}  // namespace

void FilterSql::add(std::string_view condition) {
    sql += sql.empty() ? " WHERE " : " AND ";
    sql += condition;
}

FilterSql filter_sql(const AlertQuery& q, bool keyset) {
    FilterSql out;
    auto& params = out.params;
    if (q.since_ns) {
        out.add("ts_ns >= ?");
        params.emplace_back(*q.since_ns);
    }
    if (q.until_ns) {
        out.add("ts_ns < ?");
        params.emplace_back(*q.until_ns);
    }
    if (!q.severities.empty()) {
        std::string in = "severity IN (?";
        for (std::size_t i = 1; i < q.severities.size(); ++i) in += ", ?";
        out.add(in + ")");
        for (int sev : q.severities) params.emplace_back(std::int64_t{sev});
    }
    out.add_if("agent_id = ?", q.agent_id);
    out.add_if("id = ?", q.alert_id);
    out.add_if(
        "COALESCE((SELECT status FROM alert_triage t WHERE t.alert_id = alerts.id),"
        " 'new') = ?",
        q.status);
    out.add_if(
        "EXISTS (SELECT 1 FROM alert_triage t WHERE t.alert_id = alerts.id"
        " AND t.assignee = ?)",
        q.assignee);
    out.add_if("rule = ?", q.rule);
    out.add_if("source = ?", q.source);
    if (q.proto) {
        out.add("upper(proto) = ?");
        params.emplace_back(ascii_upper(*q.proto));
    }
    if (q.src) {
        out.add("src_bin BETWEEN ? AND ?");
        params.emplace_back(q.src->low);
        params.emplace_back(q.src->high);
    }
    if (q.dest) {
        out.add("dest_bin BETWEEN ? AND ?");
        params.emplace_back(q.dest->low);
        params.emplace_back(q.dest->high);
    }
    if (q.ip) {
        out.add("(src_bin BETWEEN ? AND ? OR dest_bin BETWEEN ? AND ?)");
        params.emplace_back(q.ip->low);
        params.emplace_back(q.ip->high);
        params.emplace_back(q.ip->low);
        params.emplace_back(q.ip->high);
    }
    if (keyset && q.after) {
        const AlertPosition& p = *q.after;
        const std::string time_part = q.sort == AlertSort::kTimeAsc
                                          ? "(ts_ns > ? OR (ts_ns = ? AND id > ?))"
                                          : "(ts_ns < ? OR (ts_ns = ? AND id > ?))";
        if (q.sort == AlertSort::kSeverityAsc || q.sort == AlertSort::kSeverityDesc) {
            out.add(
                std::string(q.sort == AlertSort::kSeverityAsc ? "(severity > ?" : "(severity < ?") +
                " OR (severity = ? AND " + time_part + "))");
            params.emplace_back(std::int64_t{p.severity});
            params.emplace_back(std::int64_t{p.severity});
        } else {
            out.add(time_part);
        }
        params.emplace_back(p.timestamp_ns);
        params.emplace_back(p.timestamp_ns);
        params.emplace_back(p.id);
    }
    return out;
}

std::string like_pattern(std::string_view text) {
    std::string pattern = "%";
    for (char c : normalize_search(text)) {
        if (c == '%' || c == '_' || c == '\\') pattern += '\\';
        pattern += c;
    }
    pattern += '%';
    return pattern;
}

std::string_view order_by(AlertSort sort) {
    switch (sort) {
        case AlertSort::kTimeAsc: return " ORDER BY ts_ns ASC, id ASC";
        case AlertSort::kSeverityAsc: return " ORDER BY severity ASC, ts_ns DESC, id ASC";
        case AlertSort::kSeverityDesc: return " ORDER BY severity DESC, ts_ns DESC, id ASC";
        case AlertSort::kTimeDesc: break;
    }
    return " ORDER BY ts_ns DESC, id ASC";
}

FilterSql list_sql(const AlertQuery& q, std::string_view columns, const TextCondition& text) {
    const auto limit = static_cast<std::int64_t>(q.limit);
    auto filtered = [&](const AlertQuery& part) {
        FilterSql f = filter_sql(part, true);
        text(part, f);
        return f;
    };
    FilterSql out;
    const bool split = q.severities.size() > 1 &&
                       (q.sort == AlertSort::kTimeDesc || q.sort == AlertSort::kTimeAsc);
    if (split) {
        // SELECT * FROM (...) around each part: SQLite allows ORDER BY and LIMIT only at the end
        // of a compound statement, and PostgreSQL wants each subquery named.
        out.sql = "SELECT " + std::string(columns) + " FROM (";
        for (std::size_t k = 0; k < q.severities.size(); ++k) {
            AlertQuery one = q;
            one.severities = {q.severities[k]};
            FilterSql part = filtered(one);
            out.sql += std::string(k == 0 ? "" : " UNION ALL ") + "SELECT * FROM (SELECT " +
                       std::string(columns) + ", ts_ns, id FROM alerts" + part.sql +
                       std::string(order_by(q.sort)) + " LIMIT ?) AS part" + std::to_string(k);
            out.params.insert(out.params.end(), std::make_move_iterator(part.params.begin()),
                              std::make_move_iterator(part.params.end()));
            out.params.emplace_back(limit);
        }
        out.sql += ") AS per_severity";
    } else {
        FilterSql all = filtered(q);
        out.sql = "SELECT " + std::string(columns) + " FROM alerts" + all.sql;
        out.params = std::move(all.params);
    }
    out.sql += std::string(order_by(q.sort)) + " LIMIT ?";
    out.params.emplace_back(limit);
    return out;
}

}  // namespace senningen::collector::detail
