// Picks the AlertStore backend from the collector's `db` setting (docs/collector.md):
//   sqlite:PATH                                      the embedded default, one host
//   postgresql://user:pass@host:port/dbname[?...]    shared by several collectors
//   (postgres:// is accepted as well, as libpq does)
#pragma once

#include <memory>
#include <string>

#include "senningen/collector/alert_store.h"
#include "senningen/common/result.h"

namespace senningen::collector {

// The form's problem, naming the setting, or an empty string when SPEC has a known form.
// Opens nothing: for reporting every configuration problem at once before starting.
std::string check_store_spec(const std::string& spec);

// Opens (creating and migrating as needed) the store SPEC names. A SPEC of no known form is
// kInvalidArgument; the backends' own errors otherwise.
common::Result<std::unique_ptr<AlertStore>> open_store(const std::string& spec);

// SPEC with any password masked, for logs.
std::string redact_store_spec(const std::string& spec);

}  // namespace senningen::collector
