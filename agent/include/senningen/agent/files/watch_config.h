// The configuration of `senningen-agent watch`: "key = value" lines, '#' comments, list keys
// repeated. packaging/senningen-agent.conf.template documents every key and its default.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "senningen/agent/files/watcher.h"
#include "senningen/common/result.h"

namespace senningen::agent::files {

struct WatchConfig {
    std::vector<WatchRoot> roots;       // watch (recursive), watch_flat (not recursive)
    std::vector<std::string> excludes;  // exclude
    std::vector<std::string> rules;     // rules ([NS=]PATH)
    std::vector<std::string> intel;     // intel
    std::optional<std::string> output;  // output
    std::optional<std::string> collector;
    std::string agent_id;
    std::string identity;  // the directory `senningen-agent enroll` installed
    std::string tls_cert, tls_key, tls_ca;
    bool insecure = false;
    std::string queue;  // the durable queue's file; empty: in memory
    WatchTriggers triggers;  // triggers
    int debounce_ms = 500;
    std::uint64_t max_file_size = 64ULL << 20;
    std::uint64_t mmap_threshold = 4ULL << 20;
    bool scan_on_start = true;
    long long full_scan_interval_s = 86400;  // 0: no scheduled full scans
    std::string cache_file;                  // empty: the cache lives in memory only
    long long cache_save_interval_s = 300;
    int threads = 1;
    double cpu_percent = 25.0;
    bool io_idle = true;
    bool cpu_idle = true;
    std::uint64_t memory_limit = 256ULL << 20;
    int file_timeout_s = 30;
};

// Parses TEXT read from SOURCE (its name in messages). Every problem is reported at once, one
// per line as "SOURCE:LINE: problem", in a kParse error. Watch paths are not checked here.
common::Result<WatchConfig> parse_watch_config(const std::string& text, const std::string& source);
common::Result<WatchConfig> load_watch_config(const std::string& path);

}  // namespace senningen::agent::files
