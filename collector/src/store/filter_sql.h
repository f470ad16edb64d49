// The alert list's filters, order and query plan as SQL both stores run: fixed fragments with
// "?" placeholders and their values in order (SQLite binds them as they are, PostgreSQL numbers
// them $1, $2, ...). Only the free-text filter differs between the stores (an FTS5 trigram
// index or a LIKE walk in SQLite, a pg_trgm-indexed LIKE in PostgreSQL), so each store adds
// that condition itself. Internal to the store.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "senningen/collector/alert_store.h"

namespace senningen::collector::detail {

// A placeholder's value: a number, a text, or a 16-byte address (src_bin, dest_bin).
using FilterValue = std::variant<std::int64_t, std::string, std::array<std::uint8_t, 16>>;

struct FilterSql {
    std::string sql;  // filters: empty, or " WHERE ... AND ..."; list_sql(): the statement
    std::vector<FilterValue> params;

    // Appends CONDITION to the WHERE clause; its values go to params after it.
    void add(std::string_view condition);

    // Adds CONDITION with the one value VALUE holds, when it holds one.
    template <class T>
    void add_if(std::string_view condition, const std::optional<T>& value) {
        if (!value) return;
        add(condition);
        params.emplace_back(*value);
    }
};

// Q's filters but the free text, and with KEYSET the position a page continues behind (a
// later sort key, or the same keys and a larger id). The list, aggregation and grouping all
// use them, so every filter of the list applies to each.
FilterSql filter_sql(const AlertQuery& q, bool keyset);

// The free text as a LIKE pattern over search_text (normalize_search()'s form): a substring,
// LIKE's own characters escaped with a backslash.
std::string like_pattern(std::string_view text);

// " ORDER BY ..." for SORT: the list's order, ties broken by id.
std::string_view order_by(AlertSort sort);

// Adds the free-text condition of Q (when it has one) to a statement's filters.
using TextCondition = std::function<void(const AlertQuery& q, FilterSql& filters)>;

// The list query for Q selecting COLUMNS of its rows, filters, order and limit included, with
// TEXT adding the free-text condition. Several severities in time order are answered as one
// query per severity, each the newest LIMIT from the (severity, ts_ns) index, merged, instead of
// sorting every matching row of the range (docs/collector.md, "Store"; 120 ms against 1 ms on a
// million alerts).
FilterSql list_sql(const AlertQuery& q, std::string_view columns, const TextCondition& text);

}  // namespace senningen::collector::detail
