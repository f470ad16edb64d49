#include "senningen/collector/open_store.h"

#include <string_view>

#include "senningen/collector/postgres_store.h"
#include "senningen/collector/sqlite_store.h"

namespace senningen::collector {

namespace {

constexpr std::string_view kSqlitePrefix = "sqlite:";

bool is_postgres(const std::string& spec) {
    return spec.starts_with("postgresql://") || spec.starts_with("postgres://");
}

}  // namespace

std::string check_store_spec(const std::string& spec) {
    if (spec.starts_with(kSqlitePrefix) && spec.size() > kSqlitePrefix.size()) return {};
    if (is_postgres(spec)) return {};
    return "db '" + redact_store_spec(spec) +
           "' is neither sqlite:PATH nor postgresql://USER:PASSWORD@HOST:PORT/DBNAME";
}

common::Result<std::unique_ptr<AlertStore>> open_store(const std::string& spec) {
    if (std::string problem = check_store_spec(spec); !problem.empty()) {
        return common::make_error(common::ErrorCode::kInvalidArgument, problem);
    }
    if (is_postgres(spec)) return open_postgres_store(spec);
    return open_sqlite_store(spec.substr(kSqlitePrefix.size()));
}

std::string redact_store_spec(const std::string& spec) {
    // Any URL, also of a kind we refuse: its password must not reach a log either.
    return spec.find("://") != std::string::npos ? redact_conninfo(spec) : spec;
}

}  // namespace senningen::collector
