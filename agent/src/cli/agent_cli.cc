#include <poll.h>
#include <unistd.h>

#include <csignal>

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <iterator>
#include <optional>
#include <variant>
#include <string>
#include <string_view>
#include <vector>

#include "cli/collector_link.h"
#include "cli/enroll_command.h"
#include "senningen/agent/capture/pcap_file.h"
#include "senningen/agent/capture/pcap_live.h"
#include "senningen/agent/capture/privileges.h"
#include "senningen/agent/cli.h"
#include "senningen/agent/files/commands.h"
#include "senningen/agent/engine/engine.h"
#include "senningen/agent/engine/worker_pool.h"
#include "senningen/agent/forward/forwarder.h"
#include "senningen/agent/intel/intel_store.h"
#include "senningen/agent/scan/yara_rules.h"
#include "senningen/common/json_codec.h"
#include "senningen/common/log.h"

namespace senningen::agent {

namespace {

constexpr const char* kUsage =
    "usage: senningen-agent --read CAPTURE [options]\n"
    "       senningen-agent scan PATH... [options]   (see 'scan --help')\n"
    "       senningen-agent watch --config FILE      (see 'watch --help')\n"
    "       senningen-agent enroll BUNDLE [--dir DIR] (see 'enroll --help')\n"
    "\n"
    "Inspects a pcap or pcapng capture with YARA rules and Zeek-format intel, writes alerts\n"
    "as EVE-style JSON lines and, with --collector, sends them to a Senningen collector.\n"
    "\n"
    "  --read FILE              capture to read (pcap or pcapng, told by its magic bytes)\n"
    "  --interface IF           capture live on IF instead (non-blocking, poll)\n"
    "  --bpf FILTER             BPF filter for --interface\n"
    "  --snaplen BYTES          bytes kept of each frame (default 262144)\n"
    "  --promisc                promiscuous mode\n"
    "  --buffer-size BYTES      kernel capture buffer (default 33554432)\n"
    "  --stats-interval SEC     with --interface, a stats line (packets, kernel drops) every\n"
    "                           SEC seconds (default 300, Zeek's stats.log; 0: none)\n"
    "  --user NAME              drop root to NAME once the capture is open\n"
    "                           (SIGHUP reloads rules, intel and policy; SIGTERM flushes, exits)\n"
    "  --rules PATH             YARA rule file or directory (repeatable)\n"
    "  --intel FILE             Zeek intel file (repeatable)\n"
    "  --policy FILE            ICS policy rules (repeatable; a --rules directory's\n"
    "                           policy.conf is read too)\n"
    "  --output PATH|-          alert JSON lines to PATH, or - for stdout\n"
    "                           (default: stdout when no collector is named, else none)\n"
    "  --metadata-log PATH|-    protocol records (dns, ..., weird) as EVE-style JSON lines\n"
    "  --forward-metadata       also send those records to the collector (needs --collector;\n"
    "                           queued and acknowledged as alerts are, alerts first)\n"
    "  --intel-log PATH         intel hits in Zeek's intel.log format\n"
    "  --extract-dir DIR        write files carried by traffic (HTTP, SMB) into DIR\n"
    "  --extract-max-bytes N    cut each extracted file at N bytes (default 104857600)\n"
    "  --file-hashes LIST       digests of each file carried by traffic: md5,sha1,sha256\n"
    "                           (the default), a subset, or none; those the intel's\n"
    "                           FILE_HASH indicators are given in are computed anyway\n";

// After the collector flags (cli::kCollectorLinkUsage).
constexpr const char* kUsageTail =
    "  --stream-depth BYTES     bytes of each TCP direction inspected (default 1048576)\n"
    "  --workers N|auto         inspection threads, flows sharded by hash (max 16; default\n"
    "                           auto: 2 with 4 CPUs or more available, else 1)\n"
    "  --stream-memory BYTES    heap of the TCP streams held for YARA over all flows (their\n"
    "                           buffers' capacity, waiting segments) before streams are\n"
    "                           scanned early (default 67108864)\n"
    "  --max-flows N            flows tracked at once, over all workers (default 131072;\n"
    "                           the least recently used flow is evicted beyond it)\n"
    "  --idle-timeout SEC       a flow without packets for SEC seconds ends (default 300)\n"
    "  --absolute-timeout SEC   a flow older than SEC seconds ends at its next packet, which\n"
    "                           starts a new one (default 3600; 0: never)\n"
    "  --no-yara-prefilter      scan every stream, datagram and traffic file with every\n"
    "                           YARA rule, also those holding none of the rules' literals\n"
    "  --quiet                  only warnings and errors on stderr\n"
    "  --version, --help\n"
    "\n"
    "Exit codes: 0 done; 64 usage; 65 capture truncated or corrupt (what was read is\n"
    "processed); 66 input missing; 69 collector did not acknowledge every alert in time;\n"
    "74 output not writable; 78 rules do not compile or an intel file is unusable.\n";

struct Options {
    std::string capture;
    LiveCaptureOptions live;  // live.interface set: --interface instead of --read
    std::string run_as;       // --user
    std::vector<std::string> rules;
    std::vector<std::string> intel;
    std::vector<std::string> policies;
    std::optional<std::string> output;
    std::optional<std::string> metadata_log;
    bool forward_metadata = false;  // --forward-metadata: records to the collector too
    std::optional<std::string> intel_log;
    std::string extract_dir;
    std::uint64_t extract_max_bytes = 100ULL << 20;
    unsigned file_hashes = kAllFileHashes;
    cli::CollectorLink link;  // collector, identity, certificates, queue
    std::size_t stream_depth = 1 << 20;
    std::size_t workers = 0;  // 0: auto (auto_workers of the CPUs available)
    std::size_t max_flows = 131072;
    std::size_t stream_memory = 64 << 20;
    std::int64_t idle_timeout_ns = FlowTableOptions{}.idle_timeout_ns;
    std::int64_t absolute_timeout_ns = FlowTableOptions{}.absolute_timeout_ns;
    bool quiet = false;
    bool yara_prefilter = true;
    std::int64_t stats_interval_s = 300;  // --stats-interval: live capture's stats line; 0 off
};

constexpr long long kNanosPerSecond = 1'000'000'000;
constexpr long long kMaxTimeoutSeconds = 30LL * 24 * 3600;  // 30 days

// The --file-hashes names of the FileHash bits, in the order they are printed.
constexpr std::pair<FileHash, std::string_view> kFileHashNames[] = {
    {kFileHashMd5, "md5"}, {kFileHashSha1, "sha1"}, {kFileHashSha256, "sha256"}};

// "md5,sha1,sha256", a subset in any order, or "none": FileHash bits, or nullopt.
std::optional<unsigned> parse_file_hashes(const std::string& text) {
    if (text == "none") return 0u;
    unsigned bits = 0;
    for (std::size_t at = 0;;) {
        const std::size_t comma = text.find(',', at);
        const std::string_view name = std::string_view(text).substr(at, comma - at);
        const auto* known = std::find_if(std::begin(kFileHashNames), std::end(kFileHashNames),
                                         [&](const auto& entry) { return entry.second == name; });
        if (known == std::end(kFileHashNames)) return std::nullopt;
        bits |= known->first;
        if (comma == std::string::npos) return bits;
        at = comma + 1;
    }
}

// FileHash bits as "md5,sha1".
std::string file_hash_names(unsigned bits) {
    std::string out;
    for (const auto& [bit, name] : kFileHashNames) {
        if ((bits & bit) == 0) continue;
        if (!out.empty()) out += ',';
        out += name;
    }
    return out;
}

bool parse_number(const std::string& text, long long lo, long long hi, long long& out) {
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(text.c_str(), &end, 10);
    if (errno != 0 || end == text.c_str() || *end != '\0' || v < lo || v > hi) return false;
    out = v;
    return true;
}

// Returns the options, or the problems, every one of them at once.
std::variant<Options, std::vector<std::string>, int> parse_args(int argc, char** argv) {
    Options o;
    std::vector<std::string> problems;
    auto value = [&](int& i, const std::string& flag) -> std::optional<std::string> {
        if (i + 1 >= argc) {
            problems.push_back(flag + " needs a value");
            return std::nullopt;
        }
        return std::string(argv[++i]);
    };
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--help" || arg == "-h") {
            std::fputs(kUsage, stdout);
            std::fputs(cli::kCollectorLinkUsage, stdout);
            std::fputs(kUsageTail, stdout);
            return kExitOk;
        }
        if (arg == "--version") {
            std::puts("senningen-agent 0.1.0");
            return kExitOk;
        }
        if (arg == "--promisc") {
            o.live.promiscuous = true;
            continue;
        }
        if (arg == "--quiet" || arg == "-q") {
            o.quiet = true;
            continue;
        }
        if (arg == "--no-yara-prefilter") {
            o.yara_prefilter = false;
            continue;
        }
        if (arg == "--forward-metadata") {
            o.forward_metadata = true;
            continue;
        }
        if (cli::parse_collector_flag(argc, argv, i, o.link, problems)) continue;
        // clang-format off
        static const std::vector<std::string> kValueFlags = {
            "--read", "-r", "--interface", "-i", "--bpf", "--snaplen", "--buffer-size", "--user",
            "--rules", "--intel", "--policy", "--output", "-o", "--stream-depth", "--metadata-log",
            "--intel-log", "--extract-dir", "--extract-max-bytes", "--file-hashes", "--workers",
            "--max-flows", "--stream-memory", "--idle-timeout", "--absolute-timeout",
            "--stats-interval"};
        // clang-format on
        if (std::find(kValueFlags.begin(), kValueFlags.end(), arg) == kValueFlags.end()) {
            problems.push_back("unknown option '" + arg + "'");
            continue;
        }
        auto v = value(i, arg);
        if (!v) continue;
        long long n = 0;
        if (arg == "--read" || arg == "-r") {
            o.capture = *v;
        } else if (arg == "--rules") {
            o.rules.push_back(*v);
        } else if (arg == "--intel") {
            o.intel.push_back(*v);
        } else if (arg == "--policy") {
            o.policies.push_back(*v);
        } else if (arg == "--output" || arg == "-o") {
            o.output = *v;
        } else if (arg == "--metadata-log") {
            o.metadata_log = *v;
        } else if (arg == "--intel-log") {
            o.intel_log = *v;
        } else if (arg == "--extract-dir") {
            o.extract_dir = *v;
        } else if (arg == "--extract-max-bytes") {
            if (parse_number(*v, 1, 1LL << 40, n)) {
                o.extract_max_bytes = static_cast<std::uint64_t>(n);
            } else {
                problems.push_back("--extract-max-bytes '" + *v + "' is not 1..2^40 bytes");
            }
        } else if (arg == "--file-hashes") {
            if (const auto bits = parse_file_hashes(*v)) {
                o.file_hashes = *bits;
            } else {
                problems.push_back("--file-hashes '" + *v +
                                   "' is not a comma-separated list of md5, sha1 and sha256, "
                                   "or none");
            }
        } else if (arg == "--interface" || arg == "-i") {
            o.live.interface = *v;
        } else if (arg == "--bpf") {
            o.live.bpf = *v;
        } else if (arg == "--user") {
            o.run_as = *v;
        } else if (arg == "--snaplen") {
            if (parse_number(*v, 64, 262144, n)) {
                o.live.snaplen = static_cast<int>(n);
            } else {
                problems.push_back("--snaplen '" + *v + "' is not 64..262144 bytes");
            }
        } else if (arg == "--stats-interval") {
            if (parse_number(*v, 0, 86400, n)) {
                o.stats_interval_s = n;
            } else {
                problems.push_back("--stats-interval '" + *v + "' is not 0..86400 seconds");
            }
        } else if (arg == "--buffer-size") {
            if (parse_number(*v, 65536, 0x7fffffff, n)) {
                o.live.buffer_bytes = static_cast<int>(n);
            } else {
                problems.push_back("--buffer-size '" + *v + "' is not 65536..2147483647 bytes");
            }
        } else if (arg == "--stream-depth") {
            if (parse_number(*v, 0, 1LL << 30, n)) {
                o.stream_depth = static_cast<std::size_t>(n);
            } else {
                problems.push_back("--stream-depth '" + *v + "' is not 0..1073741824 bytes");
            }
        } else if (arg == "--stream-memory") {
            if (parse_number(*v, 65536, 1LL << 40, n)) {
                o.stream_memory = static_cast<std::size_t>(n);
            } else {
                problems.push_back("--stream-memory '" + *v + "' is not 65536..1099511627776 bytes");
            }
        } else if (arg == "--max-flows") {
            if (parse_number(*v, 16, 1LL << 26, n)) {
                o.max_flows = static_cast<std::size_t>(n);
            } else {
                problems.push_back("--max-flows '" + *v + "' is not 16..67108864");
            }
        } else if (arg == "--idle-timeout") {
            if (parse_number(*v, 1, kMaxTimeoutSeconds, n)) {
                o.idle_timeout_ns = n * kNanosPerSecond;
            } else {
                problems.push_back("--idle-timeout '" + *v + "' is not 1..2592000 seconds");
            }
        } else if (arg == "--absolute-timeout") {
            if (parse_number(*v, 0, kMaxTimeoutSeconds, n)) {
                o.absolute_timeout_ns = n * kNanosPerSecond;
            } else {
                problems.push_back("--absolute-timeout '" + *v + "' is not 0..2592000 seconds");
            }
        } else if (arg == "--workers") {
            if (*v == "auto") {
                o.workers = 0;
            } else if (parse_number(*v, 1, static_cast<long long>(WorkerPool::kMaxWorkers), n)) {
                o.workers = static_cast<std::size_t>(n);
            } else {
                problems.push_back("--workers '" + *v + "' is not 1.." +
                                   std::to_string(WorkerPool::kMaxWorkers) + " or auto");
            }
        }
    }
    if (o.capture.empty() == o.live.interface.empty()) {
        problems.push_back("one of --read CAPTURE or --interface IF is required");
    }
    if (o.capture.empty() && !o.live.interface.empty()) o.capture = "interface:" + o.live.interface;
    if (!o.live.bpf.empty() && o.live.interface.empty()) problems.push_back("--bpf needs --interface");
    cli::resolve_collector_link(o.link, cli::QueueNeed::kDurable, problems);
    if (o.forward_metadata && !o.link.collector) {
        problems.push_back("--forward-metadata needs a collector (--collector or --identity)");
    }
    if (!problems.empty()) return problems;
    if (!o.output && !o.link.collector) o.output = "-";
    return o;
}

// Names a capture file for the durable queue's progress mark: the same file (path, size,
// modification time) resumes where an interrupted run stopped queueing.
std::string capture_source_key(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return "capture:" + path;
    return "capture:" + path + ":" + std::to_string(st.st_size) + ":" +
           std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
}

// What the heartbeat reports while the main thread reads the capture.
// What the heartbeat reports, published by the packet thread for the forwarder's thread.
struct LiveCounters {
    std::atomic<std::uint64_t> packets{0};
    std::atomic<std::uint64_t> bytes{0};
    std::atomic<std::uint64_t> alerts{0};
    std::atomic<std::uint64_t> files_scanned{0};  // files carried by traffic, hashed and scanned
    std::atomic<std::uint64_t> kernel_drops{0};   // live capture: pcap_stats ps_drop
};

// Zeek's #open/#close stamp: local wall-clock time, "2026-01-15-09-00-00".
std::string zeek_log_time() {
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    localtime_r(&now, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%d-%H-%M-%S", &tm);
    return buf;
}

// SIGTERM/SIGINT end the capture (the engine flushes every flow, outputs are flushed, the
// collector drained); SIGHUP asks for a reload. Handlers only set flags.
struct LiveSignals {
    static inline volatile std::sig_atomic_t stop = 0;
    static inline volatile std::sig_atomic_t hup = 0;
    static void on_signal(int sig) {
        if (sig == SIGHUP) {
            hup = 1;
        } else {
            stop = 1;
        }
    }
    static void install() {
        struct sigaction sa {};
        sa.sa_handler = &on_signal;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = 0;  // no SA_RESTART: poll() returns at once
        sigaction(SIGTERM, &sa, nullptr);
        sigaction(SIGINT, &sa, nullptr);
        sigaction(SIGHUP, &sa, nullptr);
    }
    static bool stop_requested() { return stop != 0; }
    static bool take_reload() {
        if (!hup) return false;
        hup = 0;
        return true;
    }
};

std::string rate_text(double value, const char* unit) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.1f %s", value, unit);
    return buf;
}

// The intel files read into one new store, or the first file's error. The agent loads them on
// a thread of its own while the rules compile (at start and on SIGHUP): with a large rule pack
// and a large intel set each takes a second or more, and the two share nothing.
struct IntelFiles {
    std::shared_ptr<IntelStore> store = std::make_shared<IntelStore>();
    std::optional<common::Error> error;
    std::vector<std::pair<std::string, IntelLoadStats>> loaded;  // per file, in order
};

IntelFiles load_intel_files(const std::vector<std::string>& paths) {
    IntelFiles out;
    for (const auto& path : paths) {
        IntelLoadStats stats;
        if (auto loaded = out.store->load_file(path, stats); !loaded) {
            out.error = loaded.error();
            return out;
        }
        out.loaded.emplace_back(path, std::move(stats));
    }
    return out;
}

}  // namespace

int run_agent(int argc, char** argv) {
    // File inspection subcommands (agent/src/cli/scan_command.cc, watch_command.cc).
    if (argc >= 2 && std::strcmp(argv[1], "scan") == 0) return files::run_scan_command(argc, argv);
    if (argc >= 2 && std::strcmp(argv[1], "enroll") == 0) return run_enroll_command(argc, argv);
    if (argc >= 2 && std::strcmp(argv[1], "watch") == 0) {
        return files::run_watch_command(argc, argv);
    }
    auto parsed = parse_args(argc, argv);
    if (auto* code = std::get_if<int>(&parsed)) return *code;
    if (auto* problems = std::get_if<std::vector<std::string>>(&parsed)) {
        for (const auto& p : *problems) std::fprintf(stderr, "senningen-agent: %s\n", p.c_str());
        std::fputs("run 'senningen-agent --help' for usage\n", stderr);
        return kExitUsage;
    }
    Options& opt = std::get<Options>(parsed);
    if (opt.quiet) common::set_log_level(common::LogLevel::kWarn);
    if (opt.workers == 0) {
        const std::size_t cpus = available_cpus();
        opt.workers = auto_workers(cpus);
        common::log_info("agent", "--workers auto: " + std::to_string(opt.workers) +
                                      (opt.workers == 1 ? " inspection worker (" : " inspection workers (") +
                                      std::to_string(cpus) +
                                      (cpus == 1 ? " CPU available)" : " CPUs available)"));
    } else if (opt.workers > 1) {
        common::log_info("agent", std::to_string(opt.workers) + " inspection workers");
    }

    // Everything that can be wrong with the inputs is found before the first packet. The intel
    // loads meanwhile (the future waits for it on every way out).
    auto intel_job = std::async(std::launch::async, load_intel_files, std::cref(opt.intel));
    std::shared_ptr<YaraRules> rules;
    if (!opt.rules.empty()) {
        std::vector<RuleSourceFile> files;
        for (const auto& r : opt.rules) files.push_back({r, ""});
        auto compiled = YaraRules::compile_files(files, {}, {.prefilter = opt.yara_prefilter});
        if (!compiled) {
            std::fprintf(stderr, "senningen-agent: rules: %s\n",
                         compiled.error().message.c_str());
            return compiled.error().code == common::ErrorCode::kNotFound ? kExitNoInput
                                                                         : kExitConfig;
        }
        rules = std::move(compiled).value();
        common::log_info("agent", "loaded " + std::to_string(rules->rule_count()) +
                                      " YARA rules, pack " + rules->version());
        common::log_info("agent", std::string("YARA literal prefilter ") +
                                      (rules->prefilter() ? "on: " : "off: ") +
                                      (opt.yara_prefilter ? rules->prefilter_note()
                                                          : "turned off (--no-yara-prefilter)"));
    }
    IntelFiles intel_files = intel_job.get();
    if (intel_files.error) {
        std::fprintf(stderr, "senningen-agent: intel: %s\n", intel_files.error->message.c_str());
        return intel_files.error->code == common::ErrorCode::kNotFound ? kExitNoInput
                                                                       : kExitConfig;
    }
    for (const auto& [path, stats] : intel_files.loaded) {
        for (const auto& p : stats.problems) common::log_warn("intel", p + " (line skipped)");
        common::log_info("intel", path + ": " + std::to_string(stats.loaded) + " indicators, " +
                                      std::to_string(stats.skipped) + " lines skipped");
    }
    auto intel = std::move(intel_files.store);
    // The engine computes what the FILE_HASH indicators need whatever --file-hashes says.
    if (const unsigned forced = intel->file_hash_kinds() & ~opt.file_hashes; forced != 0) {
        common::log_info("agent", "--file-hashes: " + file_hash_names(forced) +
                                      " computed for every file all the same: the intel has "
                                      "FILE_HASH indicators in it");
    }

    std::shared_ptr<const Policy> policy;
    {
        auto loaded = load_policy_files(policy_files(opt.policies, opt.rules));
        if (!loaded) {
            std::fprintf(stderr, "senningen-agent: policy: %s\n",
                         loaded.error().message.c_str());
            return loaded.error().code == common::ErrorCode::kNotFound ? kExitNoInput
                                                                       : kExitConfig;
        }
        policy = std::move(loaded).value();
        if (policy) {
            common::log_info("agent", "loaded " + std::to_string(policy->rules().size()) +
                                          " ICS policy rules, " + policy->version());
        }
    }

    // Live capture: the handle is opened while still root; root is dropped before the first
    // packet, once every output is open too.
    std::unique_ptr<PcapLive> live_capture;
    if (!opt.live.interface.empty()) {
        auto opened = PcapLive::open(opt.live);
        if (!opened) {
            std::fprintf(stderr, "senningen-agent: %s\n", opened.error().message.c_str());
            return opened.error().code == common::ErrorCode::kParse ? kExitUsage : kExitNoInput;
        }
        live_capture = std::move(opened).value();
        common::log_info("agent", "capturing on " + opt.live.interface);
    }
    auto capture = live_capture ? common::Result<std::unique_ptr<PcapFile>>(nullptr)
                                : PcapFile::open(opt.capture);
    if (!capture) {
        std::fprintf(stderr, "senningen-agent: %s\n", capture.error().message.c_str());
        switch (capture.error().code) {
            case common::ErrorCode::kNotFound:
            case common::ErrorCode::kIo: return kExitNoInput;
            default: return kExitDataError;
        }
    }

    std::FILE* out = nullptr;
    bool close_out = false;
    if (opt.output && *opt.output != "-") {
        out = std::fopen(opt.output->c_str(), "w");
        if (!out) {
            std::fprintf(stderr, "senningen-agent: cannot write alerts to %s: %s\n",
                         opt.output->c_str(), std::strerror(errno));
            return kExitIoError;
        }
        close_out = true;
    } else if (opt.output) {
        out = stdout;
    }

    std::FILE* records = nullptr;
    if (opt.metadata_log) {
        records = *opt.metadata_log == "-" ? stdout : std::fopen(opt.metadata_log->c_str(), "w");
        if (!records) {
            std::fprintf(stderr, "senningen-agent: cannot write metadata to %s: %s\n",
                         opt.metadata_log->c_str(), std::strerror(errno));
            if (close_out) std::fclose(out);
            return kExitIoError;
        }
    }

    std::FILE* intel_log = nullptr;
    if (opt.intel_log) {
        intel_log = *opt.intel_log == "-" ? stdout : std::fopen(opt.intel_log->c_str(), "w");
        if (!intel_log) {
            std::fprintf(stderr, "senningen-agent: cannot write the intel log to %s: %s\n",
                         opt.intel_log->c_str(), std::strerror(errno));
            if (close_out) std::fclose(out);
            return kExitIoError;
        }
        std::fputs(intel_log_header(zeek_log_time()).c_str(), intel_log);
    }
    if (!opt.extract_dir.empty()) {
        std::error_code ec;
        std::filesystem::create_directories(opt.extract_dir, ec);
        if (ec || !std::filesystem::is_directory(opt.extract_dir, ec)) {
            std::fprintf(stderr, "senningen-agent: cannot use --extract-dir %s\n",
                         opt.extract_dir.c_str());
            if (close_out) std::fclose(out);
            return kExitIoError;
        }
    }

    LiveCounters live;
    std::uint64_t skip_alerts = 0;
    std::uint64_t alert_ordinal = 0;
    std::unique_ptr<Forwarder> forwarder;
    if (opt.link.collector) {
        auto made = cli::make_forwarder(opt.link);
        if (!made) {
            std::fprintf(stderr, "senningen-agent: %s\n", made.error().message.c_str());
            return kExitConfig;
        }
        forwarder = std::move(made).value();
        // A capture is a source: a run killed halfway resumes after the alerts it had queued.
        forwarder->set_source(capture_source_key(opt.capture));
        forwarder->set_stats_source([&live, pack = rules ? rules->version() : std::string()] {
            AgentStats st;
            st.packets = live.packets.load();
            st.bytes = live.bytes.load();
            st.alerts = live.alerts.load();
            st.files_scanned = live.files_scanned.load();
            st.kernel_drops = live.kernel_drops.load();
            st.pack_version = pack;
            return st;
        });
        if (auto opened = forwarder->open_queue(); !opened) {
            std::fprintf(stderr, "senningen-agent: %s\n", opened.error().message.c_str());
            return kExitIoError;
        }
        skip_alerts = forwarder->source_progress();
        if (skip_alerts > 0) {
            common::log_info("agent", "resuming " + opt.capture + ": its first " +
                                          std::to_string(skip_alerts) +
                                          " alerts were queued by an earlier run");
        }
        forwarder->start();
    }

    bool write_failed = false;
    EngineOptions eo;
    eo.agent_id = opt.link.agent_id;
    eo.stream_depth = opt.stream_depth;
    // Each worker's table holds its share: the shards are even, the total stays the limit.
    eo.max_flows = std::max<std::size_t>(opt.max_flows / opt.workers, 1);
    eo.idle_timeout_ns = opt.idle_timeout_ns;
    eo.absolute_timeout_ns = opt.absolute_timeout_ns;
    eo.stream_memory = opt.stream_memory / opt.workers;
    eo.extract_dir = opt.extract_dir;
    eo.extract_max_bytes = opt.extract_max_bytes;
    eo.file_hashes = opt.file_hashes;
    // The sinks run on one thread at a time: the merger's, or this one with one worker.
    WorkerOutputs outputs;
    outputs.alert = [&](common::Alert&& alert) {
        if (out && !write_failed) {
            const std::string line = common::alert_to_json(alert) + "\n";
            if (std::fwrite(line.data(), 1, line.size(), out) != line.size()) write_failed = true;
        }
        live.alerts.fetch_add(1, std::memory_order_relaxed);
        // Alerts an interrupted run had already queued are not queued twice (the merged order
        // is deterministic for a given capture and --workers).
        if (forwarder && alert_ordinal++ >= skip_alerts) forwarder->submit(std::move(alert));
    };

    bool intel_log_failed = false;
    if (intel_log) {
        outputs.intel_log = [&](const std::string& line) {
            if (intel_log_failed) return;
            if (std::fwrite(line.data(), 1, line.size(), intel_log) != line.size() ||
                std::fputc('\n', intel_log) == EOF) {
                intel_log_failed = true;
            }
        };
    }

    bool records_failed = false;
    // Metadata records for the collector: the same line as the metadata log's. A resumed
    // capture sends its records again; the collector keeps one copy of each (it stores a
    // record once per agent and content).
    const bool forward_records = forwarder && opt.forward_metadata;
    if (records || forward_records) {
        outputs.record = [&](const std::string& line) {
            if (forward_records) forwarder->submit_metadata(line);
            if (!records || records_failed) return;
            if (std::fwrite(line.data(), 1, line.size(), records) != line.size() ||
                std::fputc('\n', records) == EOF) {
                records_failed = true;
            }
        };
    }
    const int linktype = live_capture ? live_capture->linktype() : (*capture)->linktype();
    WorkerPool engine(opt.workers, linktype, eo, rules, opt.intel.empty() ? nullptr : intel,
                      policy, std::move(outputs));

    const auto started = std::chrono::steady_clock::now();
    int exit_code = kExitOk;
    RawPacket packet;
    if (!opt.run_as.empty()) {
        if (auto dropped = drop_privileges(opt.run_as); !dropped) {
            std::fprintf(stderr, "senningen-agent: %s\n", dropped.error().message.c_str());
            return kExitConfig;
        }
        common::log_info("agent", "running as " + opt.run_as);
    }
    LiveSignals::install();
    // SIGHUP: rules, intel and policy are read again on a thread of their own while the capture
    // goes on (a large rule pack compiles for seconds: the kernel buffer would fill meanwhile),
    // and swapped in between two packets once ready; on any problem the old ones stay and the
    // problem is logged. A SIGHUP during a reload makes one more after it.
    struct Reloaded {
        std::shared_ptr<YaraRules> rules;
        IntelFiles intel;
        std::shared_ptr<const Policy> policy;
        std::string problem;  // "rules: ...", "intel: ...", "policy: ..."; empty when all loaded
    };
    std::future<Reloaded> pending_reload;
    bool reload_again = false;
    auto start_reload = [&] {
        if (pending_reload.valid()) {
            reload_again = true;
            return;
        }
        common::log_info("agent", "reload: reading rules, intel and policy (the capture goes on)");
        pending_reload = std::async(std::launch::async, [&opt]() {
            Reloaded r;
            auto intel_reload =
                std::async(std::launch::async, load_intel_files, std::cref(opt.intel));
            if (!opt.rules.empty()) {
                std::vector<RuleSourceFile> files;
                for (const auto& path : opt.rules) files.push_back({path, ""});
                auto compiled =
                    YaraRules::compile_files(files, {}, {.prefilter = opt.yara_prefilter});
                if (!compiled) {
                    r.problem = "rules: " + compiled.error().message;
                } else {
                    r.rules = std::move(compiled).value();
                }
            }
            r.intel = intel_reload.get();
            if (r.problem.empty() && r.intel.error) r.problem = "intel: " + r.intel.error->message;
            if (r.problem.empty()) {
                auto loaded = load_policy_files(policy_files(opt.policies, opt.rules));
                if (!loaded) {
                    r.problem = "policy: " + loaded.error().message;
                } else {
                    r.policy = std::move(*loaded);
                }
            }
            return r;
        });
    };
    // On the packet thread: a reload that is ready is swapped in.
    auto finish_reload = [&] {
        if (!pending_reload.valid() ||
            pending_reload.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
            return;
        }
        Reloaded r = pending_reload.get();
        if (!r.problem.empty()) {
            common::log_warn("agent", "reload: " + r.problem);
        } else {
            // The engines hold the stores they use: the previous one is freed once each moved on.
            engine.reload(r.rules, opt.intel.empty() ? nullptr : std::move(r.intel.store),
                          r.policy);
            common::log_info("agent", "reloaded rules, intel and policy");
        }
        if (reload_again) {
            reload_again = false;
            start_reload();
        }
    };
    // The counters the heartbeat reports. pcap_stats is asked here, on the thread that reads
    // the handle, never on the forwarder's: libpcap handles are not thread-safe.
    // The engines' own counters are summed only once they finish (they run on worker
    // threads); until then the capture side's packet and byte counts are what is published.
    auto publish_counters = [&] {
        live.packets.store(engine.packets(), std::memory_order_relaxed);
        live.bytes.store(engine.bytes(), std::memory_order_relaxed);
        if (live_capture) {
            if (auto st = live_capture->stats()) {
                live.kernel_drops.store(st->dropped, std::memory_order_relaxed);
            }
        }
    };
    auto next_idle_publish = std::chrono::steady_clock::time_point{};
    // Every --stats-interval seconds of a live capture, a line with the packets and the
    // kernel's drops so far (as Zeek's stats.log): a sensor that drops says so while it runs,
    // not only at exit. The clock is read every 1024th packet, and whenever the link is idle.
    const auto stats_every = std::chrono::seconds(opt.stats_interval_s);
    auto next_stats = std::chrono::steady_clock::now() + stats_every;
    std::uint32_t stats_turns = 0;
    auto stats_line = [&](bool idle) {
        if (opt.stats_interval_s == 0 || !live_capture) return;
        if (!idle && (++stats_turns & 1023U) != 1) return;
        const auto now = std::chrono::steady_clock::now();
        if (now < next_stats) return;
        next_stats = now + stats_every;
        std::string line = "stats: " + std::to_string(engine.packets()) + " packets, " +
                           std::to_string(engine.bytes()) + " bytes";
        if (auto st = live_capture->stats()) {
            line += "; kernel: " + std::to_string(st->received) + " received, " +
                    std::to_string(st->dropped) + " dropped, " + std::to_string(st->if_dropped) +
                    " dropped by the interface";
        }
        common::log_info("agent", line);
    };
    auto next_packet = [&](RawPacket& p) -> common::Result<bool> {
        if (!live_capture) return (*capture)->next(p);
        while (!LiveSignals::stop_requested()) {
            if (LiveSignals::take_reload()) start_reload();
            finish_reload();
            stats_line(false);
            auto got = live_capture->next(p);
            if (!got) return got.error();
            if (*got == 1) return true;
            engine.flush();  // nothing waits in a half-full batch while the link is quiet
            // Idle: a quiet link still reports its last packets and its drops (at most ten
            // times a second: the buffer runs empty often between packets of a busy link).
            if (const auto t = std::chrono::steady_clock::now(); t >= next_idle_publish) {
                publish_counters();
                next_idle_publish = t + std::chrono::milliseconds(100);
            }
            stats_line(true);
            pollfd fd{live_capture->selectable_fd(), POLLIN, 0};
            ::poll(&fd, 1, 200);  // EINTR on a signal is fine: the loop looks at the flags
        }
        return false;
    };
    std::uint64_t packets_read = 0;
    for (;;) {
        if (LiveSignals::stop_requested()) break;
        auto more = next_packet(packet);
        if (!more) {
            std::fprintf(stderr, "senningen-agent: %s\n", more.error().message.c_str());
            exit_code = kExitDataError;
            break;
        }
        if (!*more) break;
        engine.process(packet);
        if ((++packets_read & 1023U) == 0) publish_counters();
    }
    engine.finish();
    publish_counters();
    live.files_scanned.store(engine.counters().files, std::memory_order_relaxed);
    if (forwarder && exit_code == kExitOk) forwarder->finish_source();
    if (live_capture) {
        if (auto st = live_capture->stats()) {
            common::log_info("agent", "kernel: " + std::to_string(st->received) + " received, " +
                                          std::to_string(st->dropped) + " dropped, " +
                                          std::to_string(st->if_dropped) +
                                          " dropped by the interface");
        }
    }
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

    if (out) std::fflush(out);
    if (write_failed || (out && std::ferror(out))) {
        std::fprintf(stderr, "senningen-agent: writing alerts to %s failed\n",
                     opt.output->c_str());
        exit_code = kExitIoError;
    }
    if (close_out) std::fclose(out);
    if (records) {
        if (std::fflush(records) != 0 || records_failed) {
            std::fprintf(stderr, "senningen-agent: writing metadata to %s failed\n",
                         opt.metadata_log->c_str());
            exit_code = kExitIoError;
        }
        if (records != stdout) std::fclose(records);
    }
    if (intel_log) {
        std::fputs(intel_log_footer(zeek_log_time()).c_str(), intel_log);
        if (std::fflush(intel_log) != 0 || intel_log_failed) {
            std::fprintf(stderr, "senningen-agent: writing the intel log to %s failed\n",
                         opt.intel_log->c_str());
            exit_code = kExitIoError;
        }
        if (intel_log != stdout) std::fclose(intel_log);
    }

    const EngineCounters c = engine.counters();
    const FlowTableCounters f = engine.flow_counters();
    common::log_info(
        "agent",
        opt.capture + ": " + std::to_string(c.packets) + " packets, " + std::to_string(c.bytes) +
            " bytes in " + rate_text(secs, "s") + "; " + std::to_string(c.alerts) +
            " alerts; flows " + std::to_string(f.flows_created) + " (" +
            std::to_string(f.flows_expired) + " idle, " + std::to_string(f.flows_timed_out) +
            " at the absolute timeout, " + std::to_string(f.flows_evicted) + " evicted); not IP " +
            std::to_string(c.not_ip) + ", truncated " + std::to_string(c.truncated) +
            ", malformed " + std::to_string(c.malformed) + ", fragments " +
            std::to_string(c.fragments) + " (" + std::to_string(c.fragment_datagrams) +
            " datagrams reassembled, " + std::to_string(c.fragments_dropped) + " dropped, " +
            std::to_string(c.fragment_overlaps) + " overlapping), bad checksums " +
            std::to_string(c.bad_ip_checksums + c.bad_tcp_checksums + c.bad_udp_checksums) +
            " (IP " + std::to_string(c.bad_ip_checksums) + ", TCP " +
            std::to_string(c.bad_tcp_checksums) + ", UDP " + std::to_string(c.bad_udp_checksums) +
            "), TCP gaps " + std::to_string(f.reassembly.gaps + engine.flush_counters().gaps) +
            ", TCP inconsistent overlaps " + std::to_string(f.reassembly.inconsistent) +
            ", YARA scans " + std::to_string(c.yara_scans) + " (" +
            std::to_string(c.yara_prefiltered) + " skipped by the prefilter), YARA errors " +
            std::to_string(c.yara_errors) + ", weird " + std::to_string(c.weirds));

    if (forwarder) {
        const auto deadline =
            std::chrono::steady_clock::now() + std::chrono::seconds(opt.link.collector_timeout_s);
        const bool all_acked = forwarder->drain(deadline);
        const ForwarderCounters fc = forwarder->counters();
        forwarder->stop();
        if (!all_acked) {
            std::fprintf(stderr,
                         "senningen-agent: collector %s acknowledged %llu of %llu alerts within "
                         "%d s; the rest were not delivered\n",
                         opt.link.collector->c_str(), static_cast<unsigned long long>(fc.alerts_acked),
                         static_cast<unsigned long long>(fc.alerts_submitted),
                         opt.link.collector_timeout_s);
            if (opt.forward_metadata) {
                std::fprintf(stderr,
                             "senningen-agent: and %llu of %llu metadata records; the rest stay "
                             "queued\n",
                             static_cast<unsigned long long>(fc.metadata_acked),
                             static_cast<unsigned long long>(fc.metadata_submitted));
            }
            if (exit_code == kExitOk) exit_code = kExitUnavailable;
        } else {
            common::log_info("agent", "collector acknowledged all " +
                                          std::to_string(fc.alerts_acked) + " alerts");
        }
        if (opt.forward_metadata) {
            common::log_info(
                "agent", "metadata records: " + std::to_string(fc.metadata_submitted) +
                             " queued, " + std::to_string(fc.metadata_acked) + " acknowledged, " +
                             std::to_string(fc.metadata_rejected) + " refused by the collector, " +
                             std::to_string(fc.metadata_dropped) + " not queued (queue full)");
        }
    }
    return exit_code;
}

}  // namespace senningen::agent
