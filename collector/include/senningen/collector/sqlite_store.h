// The SQLite backend of AlertStore: a single file, for one collector host. The schema is
// versioned (table schema_version) and migrated forward when the file is opened.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "senningen/collector/alert_store.h"
#include "senningen/common/result.h"

namespace senningen::collector {

// The schema version this build writes; a file with a newer version is refused (kUnsupported)
// rather than misread.
inline constexpr int kSqliteSchemaVersion = 9;

// Opens, or creates, the database file at path, switches it to WAL journal mode and applies
// the migrations it lacks. Errors: a path that cannot be opened => kDatabase naming the path
// and SQLite's message; ":memory:" or an empty path => kInvalidArgument (WAL and the separate
// reader connection need a real file).
struct SqliteOptions {
    // A free-text filter is answered by walking the alerts in the query's order, testing each
    // row's text with LIKE (quick when the text is common: the page fills after a few rows),
    // or by the trigram index's matches (quick when the text is rare). Each gets this long
    // in turn, then twice as long, and so on, until one finishes. Zero: the trigram index
    // at once. Either way the answer is the same.
    std::chrono::milliseconds text_scan_budget{5};
};

common::Result<std::unique_ptr<AlertStore>> open_sqlite_store(const std::string& path,
                                                              const SqliteOptions& options = {});

}  // namespace senningen::collector
