// What `scan` and `watch` share: loading rules (each --rules in its own namespace when named
// NS=PATH) with the file externals defined, loading intel, the pack version that keys the scan
// cache, and the alert output (JSON lines and/or the collector).
#pragma once

#include <cstdio>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "senningen/agent/forward/forwarder.h"
#include "senningen/agent/intel/intel_store.h"
#include "senningen/agent/scan/yara_rules.h"
#include "senningen/common/alert.h"
#include "senningen/common/result.h"
#include "senningen/common/transport.h"

namespace senningen::agent::files::detail {

// "NS=PATH" puts PATH's rules in namespace NS; a plain PATH goes to the default namespace.
RuleSourceFile parse_rule_spec(const std::string& spec);

common::Result<std::shared_ptr<YaraRules>> load_file_rules(const std::vector<std::string>& specs);
common::Result<void> load_intel(const std::vector<std::string>& paths, IntelStore& store);

// The rule pack version that keys the scan cache: the rules' version and a digest of the intel
// files (new FILE_HASH indicators must reach files scanned before).
std::string pack_version(const YaraRules* rules, const std::vector<std::string>& intel_paths);

bool parse_size(const std::string& text, std::uint64_t& out);  // "64M", "1G", "4096"
bool parse_seconds(const std::string& text, long long& out);   // "90", "15m", "24h", "7d"
bool parse_host_port(const std::string& text);

class AlertOutput {
public:
    // OUTPUT: "-" for stdout, a path, or none. COLLECTOR: HOST:PORT or none.
    static common::Result<std::unique_ptr<AlertOutput>> open(
        const std::optional<std::string>& output, const std::optional<std::string>& collector,
        const std::string& agent_id, const common::TlsOptions& tls);
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
