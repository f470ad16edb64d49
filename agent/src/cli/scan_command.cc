// `senningen-agent scan PATH...`: an on-demand scan that behaves like the yara command line
// (exit 0 no match, 1 match, 2 error), with hashes, intel, file context in every alert, the
// same host protections as the watcher, and a progress line when a person is watching.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "file_command_support.h"
#include "senningen/agent/files/commands.h"
#include "senningen/agent/files/host_limits.h"
#include "senningen/agent/files/option_values.h"
#include "senningen/agent/files/scan_pool.h"
#include "senningen/agent/files/tree_walk.h"
#include "senningen/common/log.h"

namespace senningen::agent::files {

namespace {

constexpr const char* kScanUsage =
    "usage: senningen-agent scan PATH... [options]\n"
    "\n"
    "Scans files and directory trees with YARA rules and Zeek-format intel (FILE_HASH,\n"
    "FILE_NAME). A file with an alert is hashed (SHA-256, SHA-1, MD5) from the bytes YARA\n"
    "saw; every file is when the intel has FILE_HASH indicators or there are no rules.\n"
    "\n"
    "  --rules [NS=]PATH        YARA rule file or directory, in namespace NS (repeatable)\n"
    "  --intel FILE             Zeek intel file (repeatable)\n"
    "  --output PATH|-          alert JSON lines to PATH, or - for stdout\n"
    "                           (default: stdout when no collector is named, else none)\n"
    "  --threads N              scanner threads, 1..32 (default 1)\n"
    "  --exclude GLOB           skip matching paths (repeatable; no '/': base name)\n"
    "  --no-recursive           do not descend into subdirectories\n"
    "  --max-size SIZE          skip larger files (default 64M; K, M, G suffixes)\n"
    "  --timeout SEC            YARA time limit per file (default 30)\n"
    "  --cache FILE             scan cache: skip files unchanged since a clean scan\n"
    "  --cpu PERCENT            CPU budget, percent of one core (default: no limit)\n"
    "  --all-strings            every occurrence of every matched string (YARA without fast\n"
    "                           mode; default: first occurrence unless a rule counts them)\n"
    "  --hash-all               hash every file read, not only where an alert needs it\n"
    "  --no-rule-partitions     scan every file with the full rule set (default: a set\n"
    "                           without the rules its size and first bytes rule out)\n"
    "  --quiet                  only warnings and errors on stderr\n"
    "  --help\n"
    "\n"
    "Alerts also go to a collector (batches signed with the agent's identity; the queue is in\n"
    "memory unless --queue names a file):\n";

constexpr const char* kScanUsageTail =
    "\n"
    "Exit codes: 0 no match; 1 at least one match; 2 error (bad option, a PATH that does\n"
    "not exist, rules that do not compile, output not writable).\n";

struct ScanOptions {
    std::vector<std::string> paths;
    std::vector<std::string> rules;
    std::vector<std::string> intel;
    std::vector<std::string> excludes;
    std::optional<std::string> output;
    std::optional<std::string> cache;
    cli::CollectorLink link;
    int threads = 1;
    bool recursive = true;
    std::uint64_t max_size = 64ULL << 20;
    int timeout_s = 30;
    double cpu_percent = 0;  // 0: no limit
    bool quiet = false;
    bool all_strings = false;
    bool hash_all = false;
    bool partitions = true;
};

std::optional<ScanOptions> parse_scan_args(int argc, char** argv, int& exit_code) {
    ScanOptions o;
    std::vector<std::string> problems;
    for (int i = 2; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--help" || arg == "-h") {
            std::fputs(kScanUsage, stdout);
            std::fputs(cli::kCollectorLinkUsage, stdout);
            std::fputs(kScanUsageTail, stdout);
            exit_code = kScanNoMatch;
            return std::nullopt;
        }
        if (arg == "--quiet" || arg == "-q") {
            o.quiet = true;
            continue;
        }
        if (arg == "--no-recursive") {
            o.recursive = false;
            continue;
        }
        if (arg == "--all-strings") {
            o.all_strings = true;
            continue;
        }
        if (arg == "--hash-all") {
            o.hash_all = true;
            continue;
        }
        if (arg == "--no-rule-partitions") {
            o.partitions = false;
            continue;
        }
        if (arg.rfind("-", 0) != 0 || arg == "-") {
            o.paths.push_back(arg);
            continue;
        }
        if (cli::parse_collector_flag(argc, argv, i, o.link, problems)) continue;
        static const std::vector<std::string> kValueFlags = {
            "--rules",   "--intel",    "--output",  "-o",    "--threads",
            "--exclude", "--max-size", "--timeout", "--cache", "--cpu"};
        if (std::find(kValueFlags.begin(), kValueFlags.end(), arg) == kValueFlags.end()) {
            problems.push_back("unknown option '" + arg + "'");
            continue;
        }
        if (i + 1 >= argc) {
            problems.push_back(arg + " needs a value");
            continue;
        }
        const std::string v = argv[++i];
        long long n = 0;
        if (arg == "--rules") {
            o.rules.push_back(v);
        } else if (arg == "--intel") {
            o.intel.push_back(v);
        } else if (arg == "--output" || arg == "-o") {
            o.output = v;
        } else if (arg == "--threads") {
            if (parse_int(v, 1, 32, n))
                o.threads = static_cast<int>(n);
            else
                problems.push_back("--threads '" + v + "' is not 1..32");
        } else if (arg == "--exclude") {
            o.excludes.push_back(v);
        } else if (arg == "--max-size") {
            if (!parse_size(v, o.max_size)) {
                problems.push_back("--max-size '" + v + "' is not a size (e.g. 4096, 64M, 1G)");
            }
        } else if (arg == "--timeout") {
            if (parse_int(v, 1, 3600, n))
                o.timeout_s = static_cast<int>(n);
            else
                problems.push_back("--timeout '" + v + "' is not 1..3600 seconds");
        } else if (arg == "--cache") {
            o.cache = v;
        } else if (arg == "--cpu") {
            if (parse_int(v, 1, 100 * 32, n))
                o.cpu_percent = static_cast<double>(n);
            else
                problems.push_back("--cpu '" + v + "' is not 1..3200 percent");
        }
    }
    if (o.paths.empty()) problems.push_back("at least one PATH to scan is required");
    cli::resolve_collector_link(o.link, cli::QueueNeed::kOptional, problems);
    if (!problems.empty()) {
        for (const auto& p : problems)
            std::fprintf(stderr, "senningen-agent scan: %s\n", p.c_str());
        std::fputs("run 'senningen-agent scan --help' for usage\n", stderr);
        exit_code = kScanError;
        return std::nullopt;
    }
    if (!o.output && !o.link.collector) o.output = "-";
    return o;
}

std::string human_bytes(double bytes) {
    const char* units[] = {"B", "KB", "MB", "GB", "TB"};
    int u = 0;
    while (bytes >= 1000.0 && u < 4) {
        bytes /= 1000.0;
        ++u;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f %s", bytes, units[u]);
    return buf;
}

// Seconds with two decimals: the CPU the scan took (all threads), which a benchmark on a busy
// machine compares when wall-clock time mostly says how busy the machine was.
std::string cpu_text(std::int64_t ns) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f", static_cast<double>(ns) / 1e9);
    return buf;
}

}  // namespace

int run_scan_command(int argc, char** argv) {
    int exit_code = kScanError;
    auto parsed = parse_scan_args(argc, argv, exit_code);
    if (!parsed) return exit_code;
    ScanOptions& opt = *parsed;
    if (opt.quiet) common::set_log_level(common::LogLevel::kWarn);

    // Every input is checked before the first file is read.
    std::vector<std::string> roots;
    bool missing = false;
    for (const auto& path : opt.paths) {
        auto canonical = canonical_path(path);
        if (!canonical) {
            std::fprintf(stderr, "senningen-agent scan: cannot scan %s\n",
                         canonical.error().message.c_str());
            missing = true;
            continue;
        }
        roots.push_back(*canonical);
    }
    if (missing) return kScanError;
    auto loaded = detail::load_inspection(opt.rules, opt.intel, opt.cache.value_or(""), "scan",
                                          opt.partitions);
    if (!loaded) {
        std::fprintf(stderr, "senningen-agent scan: %s\n", loaded.error().message.c_str());
        return kScanError;
    }
    detail::Inspection& inspection = *loaded;
    if (!inspection.rules && opt.intel.empty()) {
        common::log_warn("scan", "no --rules and no --intel: files are only hashed");
    }
    // Without --cache every file is read: the cache in memory is not used.
    ScanCache* cache = opt.cache ? inspection.cache.get() : nullptr;
    auto output = detail::AlertOutput::open(opt.output, opt.link);
    if (!output) {
        std::fprintf(stderr, "senningen-agent scan: %s\n", output.error().message.c_str());
        return kScanError;
    }

    FileScanOptions fso;
    fso.agent_id = opt.link.agent_id;
    fso.max_file_size = opt.max_size;
    fso.timeout_seconds = opt.timeout_s;
    fso.fast_mode = !opt.all_strings;
    fso.always_digest = opt.hash_all;
    PoolOptions po;
    po.threads = opt.threads;
    po.cpu_percent = opt.cpu_percent > 0 ? opt.cpu_percent : 1e9;
    // An on-demand scan is what the operator asked for now: idle I/O class still, but not the
    // idle CPU class, which could starve it behind any busy process.
    po.idle_io = true;
    po.idle_cpu = false;
    std::atomic<bool> matched{false};
    ScanPool pool(inspection.rules, inspection.intel_or_null(), fso, po, cache,
                  [&](FileScanResult&& result) {
                      detail::log_result("scan", result);
                      if (!result.alerts.empty()) matched = true;
                      for (auto& alert : result.alerts) (*output)->write(std::move(alert));
                  });

    // The progress line is for a person at a terminal, never for a log or a pipe.
    const bool progress = !opt.quiet && (isatty(STDERR_FILENO) == 1);
    const auto started = std::chrono::steady_clock::now();
    const std::int64_t cpu_started = process_cpu_ns();
    std::atomic<bool> done{false};
    std::mutex progress_mutex;
    std::condition_variable progress_cv;
    std::thread ticker;
    if (progress) {
        ticker = std::thread([&] {
            std::unique_lock lock(progress_mutex);
            while (!progress_cv.wait_for(lock, std::chrono::milliseconds(250),
                                         [&] { return done.load(); })) {
                const ScanTotals t = pool.totals();
                const double secs =
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - started)
                        .count();
                std::fprintf(stderr, "\r%llu files, %.0f files/s, %s/s, %llu matched   ",
                             static_cast<unsigned long long>(t.files),
                             static_cast<double>(t.files) / secs,
                             human_bytes(static_cast<double>(t.bytes_read) / secs).c_str(),
                             static_cast<unsigned long long>(t.matched_files));
            }
            std::fputs("\r\033[K", stderr);
        });
    }

    WalkOptions walk;
    walk.recursive = opt.recursive;
    walk.excludes = opt.excludes;
    std::uint64_t excluded = 0;
    for (const auto& root : roots) excluded += detail::walk_into(pool, root, walk).excluded;
    pool.wait_idle();
    pool.stop();
    done = true;
    progress_cv.notify_all();
    if (ticker.joinable()) ticker.join();

    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    const ScanTotals t = pool.totals();
    std::string summary = std::to_string(t.count(Outcome::kScanned)) + " files scanned (" +
                          human_bytes(static_cast<double>(t.bytes_read)) + ") in " +
                          std::to_string(secs).substr(0, std::to_string(secs).find('.') + 3) +
                          " s, " + human_bytes(static_cast<double>(t.bytes_read) / secs) + "/s; " +
                          std::to_string(t.matched_files) + " matched, " +
                          std::to_string(t.alerts) + " alerts; " +
                          std::to_string(t.count(Outcome::kCached)) + " unchanged (cache); " +
                          std::to_string(excluded) + " excluded" + detail::outcome_counts(t) +
                          "; CPU " + cpu_text(process_cpu_ns() - cpu_started) + " s";
    common::log_info("scan", summary);
    if (inspection.rules) common::log_info("scan", inspection.rules->partition_summary());

    int code = matched ? kScanMatch : kScanNoMatch;
    if (cache) {
        if (auto saved = cache->save(*opt.cache); !saved) {
            std::fprintf(stderr, "senningen-agent scan: %s\n", saved.error().message.c_str());
            code = kScanError;
        }
    }
    std::string problem;
    if (!(*output)->finish(opt.link.collector_timeout_s, problem)) {
        std::fprintf(stderr, "senningen-agent scan: %s\n", problem.c_str());
        code = kScanError;
    }
    return code;
}

}  // namespace senningen::agent::files
