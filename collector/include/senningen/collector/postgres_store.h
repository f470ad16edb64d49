// The PostgreSQL backend of AlertStore: one database shared by several collectors, which is
// how a CERT outgrows one machine (docs/collector.md, "Scaling out"). The schema is versioned
// (table schema_version) and migrated forward at start, under an advisory lock so that two
// collectors starting together do not both migrate.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "senningen/collector/alert_store.h"
#include "senningen/common/result.h"

namespace senningen::collector {

// The schema version this build writes; a database with a newer version is refused
// (kUnsupported) rather than misread.
inline constexpr int kPostgresSchemaVersion = 7;

struct PostgresOptions {
    // At most this many connections at once; a call waits up to acquire_timeout_ms for one.
    std::size_t max_connections = 10;
    int acquire_timeout_ms = 5000;
    // Bounds how long opening a connection may take (libpq's connect_timeout), unless the
    // connection string sets its own.
    int connect_timeout_s = 5;
};

// Connects with CONNINFO, anything libpq accepts: a URL (postgresql://user:pass@host:port/db)
// or "key=value" pairs; applies the migrations the database lacks. Errors: a malformed
// CONNINFO => kInvalidArgument; a server that cannot be reached or refuses the login =>
// kDatabase with libpq's message; a newer schema => kUnsupported. Messages name the database
// with its password masked (redact_conninfo).
//
// Connections come from a pool. A connection that breaks (the server restarted) fails the call
// that was using it with kDatabase; the pool then drops every idle connection, so the next call
// connects afresh.
common::Result<std::unique_ptr<AlertStore>> open_postgres_store(
    const std::string& conninfo, const PostgresOptions& options = {});

// CONNINFO as libpq parses it, in the "key='value' ..." form Poco's connector takes (it does
// not read URLs). kInvalidArgument for a malformed CONNINFO.
common::Result<std::string> postgres_keyword_string(const std::string& conninfo);

// CONNINFO with any password replaced by "***", for logs and error messages.
std::string redact_conninfo(const std::string& conninfo);

}  // namespace senningen::collector
