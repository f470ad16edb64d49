// What `scan` and `watch` share: loading rules (each --rules in its own namespace when named
// NS=PATH) with the file externals defined, loading intel, the pack version that keys the scan
// cache, and the alert output (JSON lines and/or the collector).
#pragma once

#include <atomic>
#include <cstdio>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "cli/collector_link.h"
#include "senningen/agent/files/scan_cache.h"
#include "senningen/agent/files/scan_pool.h"
#include "senningen/agent/files/tree_walk.h"
#include "senningen/agent/forward/forwarder.h"
#include "senningen/agent/intel/intel_store.h"
#include "senningen/agent/scan/yara_rules.h"
#include "senningen/common/alert.h"
#include "senningen/common/result.h"
#include "senningen/common/transport.h"

namespace senningen::agent::files::detail {

// "NS=PATH" puts PATH's rules in namespace NS; a plain PATH goes to the default namespace.
RuleSourceFile parse_rule_spec(const std::string& spec);

common::Result<std::shared_ptr<YaraRules>> load_file_rules(const std::vector<std::string>& specs,
                                                           bool partitions = true);
common::Result<void> load_intel(const std::vector<std::string>& paths, IntelStore& store);

// The rule pack version that keys the scan cache: the rules' version and a digest of the intel
// files (new FILE_HASH indicators must reach files scanned before).
std::string pack_version(const YaraRules* rules, const std::vector<std::string>& intel_paths);

// What a scan matches files against, loaded once: rules (with the file externals), intel,
// and the scan cache keyed on both (loaded from CACHE_FILE when it names one).
struct Inspection {
    std::shared_ptr<YaraRules> rules;  // null without rules
    std::unique_ptr<IntelStore> intel = std::make_unique<IntelStore>();
    bool has_intel = false;
    std::unique_ptr<ScanCache> cache;

    const IntelStore* intel_or_null() const { return has_intel ? intel.get() : nullptr; }
};

// Loads RULES, INTEL and the cache, logging as COMPONENT. An error names the input ("rules:
// ...", "intel: ...") with libyara's or the intel reader's code (kNotFound for a missing file,
// kCompile/kParse for a bad one). A damaged cache file is only a warning: it starts empty.
// PARTITIONS: rule partitions by file size and first bytes (YaraCompileOptions).
common::Result<Inspection> load_inspection(const std::vector<std::string>& rules,
                                           const std::vector<std::string>& intel,
                                           const std::string& cache_file, const char* component,
                                           bool partitions = true);

// Walks ROOT into POOL: files are submitted with their sizes, what is skipped is recorded.
WalkCounters walk_into(ScanPool& pool, const std::string& root, const WalkOptions& options,
                       const std::atomic<bool>* stop = nullptr);

// Logs one result as COMPONENT: problems (permission denied, vanished, changed, too large,
// timeout, error) as warnings with the reason, FIFOs and symlinks at debug level.
void log_result(const char* component, const FileScanResult& result);

// ", vanished 2, changed 1": the count of every outcome beyond scanned and cached that occurred.
std::string outcome_counts(const ScanTotals& totals);

class AlertOutput {
public:
    // OUTPUT: "-" for stdout, a path, or none. LINK (resolved): the collector, when it names
    // one, gets every alert in batches signed with LINK's identity, through LINK's durable
    // queue when it names one (else a queue in memory).
    static common::Result<std::unique_ptr<AlertOutput>> open(
        const std::optional<std::string>& output, const cli::CollectorLink& link);
    ~AlertOutput();

    void write(common::Alert&& alert);  // thread-safe
    // What the collector's heartbeats report (files scanned, alerts); no-op without one.
    void set_stats_source(std::function<AgentStats()> stats);
    // Flushes and, with a collector, waits up to TIMEOUT_S for every acknowledgement.
    // false when a write failed or the collector did not acknowledge (PROBLEM says which).
    bool finish(int timeout_s, std::string& problem);

private:
    AlertOutput() = default;
    std::mutex mutex_;
    std::FILE* file_ = nullptr;
    bool close_ = false;
    bool failed_ = false;
    std::string name_;
    std::string collector_;
    std::unique_ptr<Forwarder> forwarder_;
};

}  // namespace senningen::agent::files::detail
