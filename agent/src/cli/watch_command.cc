// `senningen-agent watch --config FILE`: the long-running file inspection. inotify triggers
// (debounced) scans of written and moved-in files, a full scan runs at start and on a
// schedule (the cache makes it cheap), and everything runs in the host's idle classes within
// a CPU budget. SIGINT/SIGTERM stop it cleanly: the cache is saved and alerts are flushed.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cli/collector_link.h"
#include "file_command_support.h"
#include "senningen/agent/cli.h"
#include "senningen/agent/files/commands.h"
#include "senningen/agent/files/option_values.h"
#include "senningen/agent/files/scan_pool.h"
#include "senningen/agent/files/tree_walk.h"
#include "senningen/agent/files/watch_config.h"
#include "senningen/agent/files/watcher.h"
#include "senningen/common/log.h"

namespace senningen::agent::files {

namespace {

constexpr const char* kWatchUsage =
    "usage: senningen-agent watch --config FILE [--output PATH|-] [--run-for SEC] [--quiet]\n"
    "                             [collector options]\n"
    "\n"
    "Watches the directories the config names (inotify) and scans written, created or\n"
    "moved-in files with YARA and intel; full scans at start and on a schedule. The config\n"
    "keys are documented in packaging/senningen-agent.conf.template. --output and the\n"
    "collector options override the config; --run-for stops after SEC seconds (tests, trials).\n"
    "\n"
    "Collector options (batches are signed with the agent's identity):\n";

constexpr const char* kWatchUsageTail =
    "\n"
    "Exit codes: 0 stopped by SIGINT/SIGTERM or --run-for; 64 bad command line; 66 config,\n"
    "rule or intel file missing; 69 collector did not acknowledge every alert at exit;\n"
    "74 output not writable; 78 bad config or rules that do not compile.\n";

std::atomic<bool> g_stop{false};

void on_stop_signal(int /*sig*/) {
    g_stop = true;
}

// The collector settings of the config file, overridden by those given on the command line.
cli::CollectorLink collector_link_of(const WatchConfig& cfg, const cli::CollectorLink& given) {
    cli::CollectorLink link;
    link.collector = given.collector ? given.collector : cfg.collector;
    link.agent_id = !given.agent_id.empty() ? given.agent_id : cfg.agent_id;
    const bool given_credentials =
        !given.identity.empty() || given.tls.enabled() || given.insecure;
    if (given_credentials) {
        link.identity = given.identity;
        link.tls = given.tls;
        link.insecure = given.insecure;
    } else {
        link.identity = cfg.identity;
        link.tls = {cfg.tls_cert, cfg.tls_key, cfg.tls_ca};
        link.insecure = cfg.insecure;
    }
    link.queue = !given.queue.empty() ? given.queue : cfg.queue;
    // The config has no keys for these: the command line (or the defaults) decides.
    link.collector_timeout_s = given.collector_timeout_s;
    link.queue_max = given.queue_max;
    link.queue_full = given.queue_full;
    link.queue_sync = given.queue_sync;
    link.commit_interval_ms = given.commit_interval_ms;
    link.heartbeat_s = given.heartbeat_s;
    return link;
}

}  // namespace

int run_watch_command(int argc, char** argv) {
    std::string config_path;
    std::optional<std::string> output;
    cli::CollectorLink cli_link;  // collector options given on the command line
    long long run_for_s = 0;
    bool quiet = false;
    std::vector<std::string> problems;
    for (int i = 2; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--help" || arg == "-h") {
            std::fputs(kWatchUsage, stdout);
            std::fputs(cli::kCollectorLinkUsage, stdout);
            std::fputs(kWatchUsageTail, stdout);
            return kExitOk;
        }
        if (arg == "--quiet" || arg == "-q") {
            quiet = true;
            continue;
        }
        if (cli::parse_collector_flag(argc, argv, i, cli_link, problems)) continue;
        if (arg != "--config" && arg != "--output" && arg != "--run-for") {
            problems.push_back("unknown option '" + arg + "'");
            continue;
        }
        if (i + 1 >= argc) {
            problems.push_back(arg + " needs a value");
            continue;
        }
        const std::string v = argv[++i];
        if (arg == "--config") config_path = v;
        if (arg == "--output") output = v;
        if (arg == "--run-for" && (!parse_seconds(v, run_for_s) || run_for_s == 0)) {
            problems.push_back("--run-for '" + v + "' is not a duration of at least 1 s");
        }
    }
    if (config_path.empty()) problems.push_back("--config FILE is required");
    if (!problems.empty()) {
        for (const auto& p : problems)
            std::fprintf(stderr, "senningen-agent watch: %s\n", p.c_str());
        std::fputs("run 'senningen-agent watch --help' for usage\n", stderr);
        return kExitUsage;
    }
    if (quiet) common::set_log_level(common::LogLevel::kWarn);

    auto loaded = load_watch_config(config_path);
    if (!loaded) {
        std::fprintf(stderr, "senningen-agent watch: %s\n", loaded.error().message.c_str());
        return loaded.error().code == common::ErrorCode::kParse ? kExitConfig : kExitNoInput;
    }
    WatchConfig& cfg = *loaded;
    if (output) cfg.output = output;
    cli::CollectorLink link = collector_link_of(cfg, cli_link);
    cli::resolve_collector_link(link, cli::QueueNeed::kOptional, problems);
    if (!problems.empty()) {
        for (const auto& p : problems)
            std::fprintf(stderr, "senningen-agent watch: %s\n", p.c_str());
        return kExitConfig;
    }
    if (!cfg.output && !link.collector) cfg.output = "-";
    for (auto& root : cfg.roots) {
        auto canonical = canonical_path(root.path);
        if (!canonical) {
            problems.push_back("watch path " + canonical.error().message);
            continue;
        }
        root.path = *canonical;
    }
    if (!problems.empty()) {
        for (const auto& p : problems)
            std::fprintf(stderr, "senningen-agent watch: %s\n", p.c_str());
        return kExitNoInput;
    }

    auto loaded_inspection = detail::load_inspection(cfg.rules, cfg.intel, cfg.cache_file, "watch");
    if (!loaded_inspection) {
        const common::Error& e = loaded_inspection.error();
        std::fprintf(stderr, "senningen-agent watch: %s\n", e.message.c_str());
        return e.code == common::ErrorCode::kNotFound ? kExitNoInput : kExitConfig;
    }
    detail::Inspection& inspection = *loaded_inspection;
    ScanCache& cache = *inspection.cache;
    auto out = detail::AlertOutput::open(cfg.output, link);
    if (!out) {
        std::fprintf(stderr, "senningen-agent watch: %s\n", out.error().message.c_str());
        return kExitIoError;
    }

    // Heartbeat counters, shared with the forwarder's thread (which may outlive the pool).
    struct Scanned {
        std::atomic<std::uint64_t> files{0};
        std::atomic<std::uint64_t> alerts{0};
    };
    auto scanned = std::make_shared<Scanned>();
    (*out)->set_stats_source([scanned, pack = detail::pack_version(inspection.rules.get(), cfg.intel)] {
        AgentStats st;
        st.files_scanned = scanned->files.load(std::memory_order_relaxed);
        st.alerts = scanned->alerts.load(std::memory_order_relaxed);
        st.pack_version = pack;
        return st;
    });

    FileScanOptions fso;
    fso.agent_id = link.agent_id;
    fso.max_file_size = cfg.max_file_size;
    fso.mmap_threshold = cfg.mmap_threshold;
    fso.timeout_seconds = cfg.file_timeout_s;
    PoolOptions po;
    po.threads = cfg.threads;
    po.cpu_percent = cfg.cpu_percent;
    po.idle_io = cfg.io_idle;
    po.idle_cpu = cfg.cpu_idle;
    po.memory_limit = cfg.memory_limit;
    ScanPool pool(
        inspection.rules, inspection.intel_or_null(), fso, po, &cache,
        [&](FileScanResult&& result) {
            if (result.outcome == Outcome::kScanned) {
                scanned->files.fetch_add(1, std::memory_order_relaxed);
            }
            scanned->alerts.fetch_add(result.alerts.size(), std::memory_order_relaxed);
            detail::log_result("watch", result);
            for (auto& alert : result.alerts) {
                common::log_info("watch", result.facts.path + ": alert " + alert.rule);
                (*out)->write(std::move(alert));
            }
        });
    for (const auto& p : pool.priority_problems()) {
        if (!p.empty()) common::log_warn("watch", "could not lower the scanner's priority: " + p);
    }

    WalkOptions walk_excluding;
    walk_excluding.excludes = cfg.excludes;
    auto scan_tree = [&](const std::string& dir, bool recursive) {
        WalkOptions w = walk_excluding;
        w.recursive = recursive;
        detail::walk_into(pool, dir, w, &g_stop);
    };

    // Tree walks (full scans, new subdirectories, overflow rescans) run on their own thread,
    // so that the main thread keeps reading inotify events (and the queue does not overflow)
    // while a large tree is walked.
    using Clock = std::chrono::steady_clock;
    struct WalkRequest {
        std::string dir;
        bool recursive = true;
        bool full_scan_begins = false;    // the first root of a full scan
        const char* full_scan = nullptr;  // on the last: "start-up" / "scheduled"
    };
    std::mutex walk_mutex;
    std::condition_variable walk_cv;
    std::deque<WalkRequest> walks;
    bool walker_stop = false;
    auto request_walk = [&](WalkRequest r) {
        {
            std::lock_guard lock(walk_mutex);
            walks.push_back(std::move(r));
        }
        walk_cv.notify_one();
    };
    auto request_full_scan = [&](const char* why) {
        for (std::size_t i = 0; i < cfg.roots.size(); ++i) {
            request_walk({cfg.roots[i].path, cfg.roots[i].recursive, i == 0,
                          i + 1 == cfg.roots.size() ? why : nullptr});
        }
    };
    std::thread walker([&] {
        ScanTotals full_scan_base;
        auto full_scan_started = Clock::now();
        for (;;) {
            WalkRequest r;
            {
                std::unique_lock lock(walk_mutex);
                walk_cv.wait(lock, [&] { return walker_stop || !walks.empty(); });
                if (walker_stop) return;
                r = std::move(walks.front());
                walks.pop_front();
            }
            if (r.full_scan_begins) {
                full_scan_base = pool.totals();
                full_scan_started = Clock::now();
            }
            scan_tree(r.dir, r.recursive);
            if (r.full_scan == nullptr || g_stop) continue;
            pool.wait_idle();
            const ScanTotals after = pool.totals();
            common::log_info(
                "watch", std::string(r.full_scan) + " full scan: " +
                             std::to_string(after.count(Outcome::kScanned) -
                                            full_scan_base.count(Outcome::kScanned)) +
                             " files scanned, " +
                             std::to_string(after.count(Outcome::kCached) -
                                            full_scan_base.count(Outcome::kCached)) +
                             " unchanged, " + std::to_string(after.alerts - full_scan_base.alerts) +
                             " alerts in " +
                             std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                Clock::now() - full_scan_started)
                                                .count()) +
                             " ms");
            if (!cfg.cache_file.empty()) {
                if (auto saved = cache.save(cfg.cache_file); !saved) {
                    common::log_warn("watch", saved.error().message);
                }
            }
        }
    });
    auto stop_walker = [&] {
        {
            std::lock_guard lock(walk_mutex);
            walker_stop = true;
        }
        walk_cv.notify_all();
        if (walker.joinable()) walker.join();
    };

    WatcherOptions wo;
    wo.roots = cfg.roots;
    wo.excludes = cfg.excludes;
    wo.triggers = cfg.triggers;
    wo.debounce = std::chrono::milliseconds(cfg.debounce_ms);
    // Triggered files go to the front of the scan queue: a drop is scanned before the rest of
    // a full scan.
    Watcher watcher(
        wo, [&](const std::string& path) { pool.submit(path, true); },
        [&](const std::string& dir) {
            bool recursive = true;
            for (const auto& r : cfg.roots) {
                if (r.path == dir) recursive = r.recursive;
            }
            request_walk({dir, recursive, false, nullptr});
        });
    if (auto started = watcher.start(); !started) {
        std::fprintf(stderr, "senningen-agent watch: %s\n", started.error().message.c_str());
        stop_walker();
        return kExitNoInput;
    }
    const WatcherCounters wc = watcher.counters();
    common::log_info("watch",
                     "watching " + std::to_string(wc.watches) + " directories under " +
                         std::to_string(cfg.roots.size()) + " paths" +
                         (wc.watch_failures != 0
                              ? " (" + std::to_string(wc.watch_failures) + " could not be watched)"
                              : std::string()));

    struct sigaction action {};
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, nullptr);
    sigaction(SIGTERM, &action, nullptr);

    const auto started = Clock::now();
    auto start_full_scan = [&](const char* why) { request_full_scan(why); };
    // The watches exist before the first full scan starts, so nothing written meanwhile is
    // missed; a file both scanned and triggered is simply found in the cache the second time.
    if (cfg.scan_on_start) start_full_scan("start-up");
    common::log_info("watch", "ready");
    auto next_full = Clock::now() + std::chrono::seconds(cfg.full_scan_interval_s);
    auto next_save = Clock::now() + std::chrono::seconds(cfg.cache_save_interval_s);
    while (!g_stop) {
        if (run_for_s > 0 && Clock::now() - started >= std::chrono::seconds(run_for_s)) break;
        watcher.poll(std::chrono::milliseconds(1000));
        const auto now = Clock::now();
        if (cfg.full_scan_interval_s > 0 && now >= next_full) {
            start_full_scan("scheduled");
            next_full = Clock::now() + std::chrono::seconds(cfg.full_scan_interval_s);
        }
        if (!cfg.cache_file.empty() && now >= next_save) {
            if (auto saved = cache.save(cfg.cache_file); !saved) {
                common::log_warn("watch", saved.error().message);
            }
            next_save = now + std::chrono::seconds(cfg.cache_save_interval_s);
        }
    }
    // In this order: a walker waiting for room in the scan queue is released by the pool's
    // stop, and the walks end at their next directory.
    g_stop = true;
    pool.stop();
    stop_walker();
    const ScanTotals t = pool.totals();
    const WatcherCounters w = watcher.counters();
    std::string summary = "stopping: " + std::to_string(t.count(Outcome::kScanned)) +
                          " files scanned, " + std::to_string(t.alerts) + " alerts; inotify " +
                          std::to_string(w.events) + " events, " + std::to_string(w.overflows) +
                          " overflows, " + std::to_string(w.watches) + " watches" +
                          detail::outcome_counts(t);
    common::log_info("watch", summary);
    int code = kExitOk;
    if (!cfg.cache_file.empty()) {
        if (auto saved = cache.save(cfg.cache_file); !saved) {
            common::log_warn("watch", saved.error().message);
        }
    }
    std::string problem;
    if (!(*out)->finish(link.collector_timeout_s, problem)) {
        std::fprintf(stderr, "senningen-agent watch: %s\n", problem.c_str());
        code = problem.rfind("collector", 0) == 0 ? kExitUnavailable : kExitIoError;
    }
    return code;
}

}  // namespace senningen::agent::files
