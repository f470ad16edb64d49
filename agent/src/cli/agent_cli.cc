#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>
#include <variant>
#include <string>
#include <vector>

#include "senningen/agent/capture/pcap_file.h"
#include "senningen/agent/cli.h"
#include "senningen/agent/engine/engine.h"
#include "senningen/agent/forward/forwarder.h"
#include "senningen/agent/intel/intel_store.h"
#include "senningen/agent/scan/yara_rules.h"
#include "senningen/common/json_codec.h"
#include "senningen/common/log.h"

namespace senningen::agent {

namespace {

constexpr const char* kUsage =
    "usage: senningen-agent --read CAPTURE [options]\n"
    "\n"
    "Inspects a pcap or pcapng capture with YARA rules and Zeek-format intel, writes alerts\n"
    "as EVE-style JSON lines and, with --collector, sends them to a Senningen collector.\n"
    "\n"
    "  --read FILE              capture to read (pcap or pcapng, told by its magic bytes)\n"
    "  --rules PATH             YARA rule file or directory (repeatable)\n"
    "  --intel FILE             Zeek intel file (repeatable)\n"
    "  --output PATH|-          alert JSON lines to PATH, or - for stdout\n"
    "                           (default: stdout when no collector is named, else none)\n"
    "  --metadata-log PATH|-    protocol records (dns, ..., weird) as EVE-style JSON lines\n"
    "  --collector HOST:PORT    send alerts to this collector over Broker\n"
    "  --collector-timeout SEC  give up waiting for the collector's acknowledgements (default 30)\n"
    "  --agent-id ID            this agent's id (default: the host name)\n"
    "  --tls-cert FILE --tls-key FILE --tls-ca FILE\n"
    "                           certificates for the Broker connection\n"
    "  --stream-depth BYTES     bytes of each TCP direction inspected (default 1048576)\n"
    "  --quiet                  only warnings and errors on stderr\n"
    "  --version, --help\n"
    "\n"
    "Exit codes: 0 done; 64 usage; 65 capture truncated or corrupt (what was read is\n"
    "processed); 66 input missing; 69 collector did not acknowledge every alert in time;\n"
    "74 output not writable; 78 rules do not compile or an intel file is unusable.\n";

struct Options {
    std::string capture;
    std::vector<std::string> rules;
    std::vector<std::string> intel;
    std::optional<std::string> output;
    std::optional<std::string> metadata_log;
    std::optional<std::string> collector;
    int collector_timeout_s = 30;
    std::string agent_id;
    common::TlsOptions tls;
    std::size_t stream_depth = 1 << 20;
    bool quiet = false;
};

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
            return kExitOk;
        }
        if (arg == "--version") {
            std::puts("senningen-agent 0.1.0");
            return kExitOk;
        }
        if (arg == "--quiet" || arg == "-q") {
            o.quiet = true;
            continue;
        }
        static const std::vector<std::string> kValueFlags = {
            "--read", "-r", "--rules", "--intel", "--output", "-o", "--collector",
            "--collector-timeout", "--agent-id", "--tls-cert", "--tls-key", "--tls-ca",
            "--stream-depth", "--metadata-log"};
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
        } else if (arg == "--output" || arg == "-o") {
            o.output = *v;
        } else if (arg == "--collector") {
            o.collector = *v;
        } else if (arg == "--metadata-log") {
            o.metadata_log = *v;
        } else if (arg == "--collector-timeout") {
            if (parse_number(*v, 1, 86400, n)) {
                o.collector_timeout_s = static_cast<int>(n);
            } else {
                problems.push_back("--collector-timeout '" + *v + "' is not 1..86400 seconds");
            }
        } else if (arg == "--agent-id") {
            o.agent_id = *v;
        } else if (arg == "--tls-cert") {
            o.tls.certificate = *v;
        } else if (arg == "--tls-key") {
            o.tls.key = *v;
        } else if (arg == "--tls-ca") {
            o.tls.ca_file = *v;
        } else if (arg == "--stream-depth") {
            if (parse_number(*v, 0, 1LL << 30, n)) {
                o.stream_depth = static_cast<std::size_t>(n);
            } else {
                problems.push_back("--stream-depth '" + *v + "' is not 0..1073741824 bytes");
            }
        }
    }
    if (o.capture.empty()) problems.push_back("--read CAPTURE is required");
    if (o.collector) {
        long long port = 0;
        const auto colon = o.collector->rfind(':');
        if (colon == std::string::npos || colon == 0 ||
            !parse_number(o.collector->substr(colon + 1), 1, 65535, port)) {
            problems.push_back("--collector '" + *o.collector + "' is not HOST:PORT");
        }
    }
    if (o.tls.enabled() && (o.tls.key.empty() || o.tls.ca_file.empty())) {
        problems.push_back("--tls-cert needs --tls-key and --tls-ca too");
    }
    if (!problems.empty()) return problems;
    if (o.agent_id.empty()) {
        char host[256] = {};
        o.agent_id = gethostname(host, sizeof host - 1) == 0 && host[0] ? host : "agent";
    }
    if (!o.output && !o.collector) o.output = "-";
    return o;
}

std::string rate_text(double value, const char* unit) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.1f %s", value, unit);
    return buf;
}

}  // namespace

int run_agent(int argc, char** argv) {
    auto parsed = parse_args(argc, argv);
    if (auto* code = std::get_if<int>(&parsed)) return *code;
    if (auto* problems = std::get_if<std::vector<std::string>>(&parsed)) {
        for (const auto& p : *problems) std::fprintf(stderr, "senningen-agent: %s\n", p.c_str());
        std::fputs("run 'senningen-agent --help' for usage\n", stderr);
        return kExitUsage;
    }
    Options& opt = std::get<Options>(parsed);
    if (opt.quiet) common::set_log_level(common::LogLevel::kWarn);

    // Everything that can be wrong with the inputs is found before the first packet.
    std::shared_ptr<YaraRules> rules;
    if (!opt.rules.empty()) {
        std::vector<RuleSourceFile> files;
        for (const auto& r : opt.rules) files.push_back({r, ""});
        auto compiled = YaraRules::compile_files(files);
        if (!compiled) {
            std::fprintf(stderr, "senningen-agent: rules: %s\n",
                         compiled.error().message.c_str());
            return compiled.error().code == common::ErrorCode::kNotFound ? kExitNoInput
                                                                         : kExitConfig;
        }
        rules = std::move(compiled).value();
        common::log_info("agent", "loaded " + std::to_string(rules->rule_count()) +
                                      " YARA rules, pack " + rules->version());
    }
    IntelStore intel;
    for (const auto& path : opt.intel) {
        IntelLoadStats stats;
        auto loaded = intel.load_file(path, stats);
        if (!loaded) {
            std::fprintf(stderr, "senningen-agent: intel: %s\n", loaded.error().message.c_str());
            return loaded.error().code == common::ErrorCode::kNotFound ? kExitNoInput
                                                                       : kExitConfig;
        }
        for (const auto& p : stats.problems) common::log_warn("intel", p + " (line skipped)");
        common::log_info("intel", path + ": " + std::to_string(stats.loaded) + " indicators, " +
                                      std::to_string(stats.skipped) + " lines skipped");
    }

    auto capture = PcapFile::open(opt.capture);
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

    std::unique_ptr<Forwarder> forwarder;
    if (opt.collector) {
        const auto colon = opt.collector->rfind(':');
        ForwarderOptions fo;
        fo.host = opt.collector->substr(0, colon);
        fo.port = static_cast<std::uint16_t>(std::stoi(opt.collector->substr(colon + 1)));
        common::TransportOptions to;
        to.role = common::TransportRole::kAgent;
        to.agent_id = opt.agent_id;
        to.tls = opt.tls;
        forwarder = std::make_unique<Forwarder>(common::make_broker_transport(to), fo,
                                                opt.agent_id);
        forwarder->start();
    }

    bool write_failed = false;
    EngineOptions eo;
    eo.agent_id = opt.agent_id;
    eo.stream_depth = opt.stream_depth;
    Engine engine(eo, rules, opt.intel.empty() ? nullptr : &intel, [&](common::Alert&& alert) {
        if (out && !write_failed) {
            const std::string line = common::alert_to_json(alert) + "\n";
            if (std::fwrite(line.data(), 1, line.size(), out) != line.size()) write_failed = true;
        }
        if (forwarder) forwarder->submit(std::move(alert));
    });

    bool records_failed = false;
    if (records) {
        engine.set_record_sink([&](const std::string& line) {
            if (records_failed) return;
            if (std::fwrite(line.data(), 1, line.size(), records) != line.size() ||
                std::fputc('\n', records) == EOF) {
                records_failed = true;
            }
        });
    }

    const auto started = std::chrono::steady_clock::now();
    int exit_code = kExitOk;
    RawPacket packet;
    const int linktype = (*capture)->linktype();
    for (;;) {
        auto more = (*capture)->next(packet);
        if (!more) {
            std::fprintf(stderr, "senningen-agent: %s\n", more.error().message.c_str());
            exit_code = kExitDataError;
            break;
        }
        if (!*more) break;
        engine.process(packet, linktype);
    }
    engine.finish();
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
    if (records) {
        if (std::fflush(records) != 0 || records_failed) {
            std::fprintf(stderr, "senningen-agent: writing metadata to %s failed\n",
                         opt.metadata_log->c_str());
            exit_code = kExitIoError;
        }
        if (records != stdout) std::fclose(records);
    }

    const EngineCounters& c = engine.counters();
    const FlowTableCounters& f = engine.flow_counters();
    common::log_info(
        "agent",
        opt.capture + ": " + std::to_string(c.packets) + " packets, " + std::to_string(c.bytes) +
            " bytes in " + rate_text(secs, "s") + "; " + std::to_string(c.alerts) +
            " alerts; flows " + std::to_string(f.flows_created) + "; not IP " +
            std::to_string(c.not_ip) + ", truncated " + std::to_string(c.truncated) +
            ", malformed " + std::to_string(c.malformed) + ", fragments " +
            std::to_string(c.fragments) + ", TCP gaps " +
            std::to_string(f.reassembly.gaps + engine.flush_counters().gaps) +
            ", YARA errors " + std::to_string(c.yara_errors) + ", weird " +
            std::to_string(c.weirds));

    if (forwarder) {
        const auto deadline =
            std::chrono::steady_clock::now() + std::chrono::seconds(opt.collector_timeout_s);
        const bool all_acked = forwarder->drain(deadline);
        const ForwarderCounters fc = forwarder->counters();
        forwarder->stop();
        if (!all_acked) {
            std::fprintf(stderr,
                         "senningen-agent: collector %s acknowledged %llu of %llu alerts within "
                         "%d s; the rest were not delivered\n",
                         opt.collector->c_str(), static_cast<unsigned long long>(fc.alerts_acked),
                         static_cast<unsigned long long>(fc.alerts_submitted),
                         opt.collector_timeout_s);
            if (exit_code == kExitOk) exit_code = kExitUnavailable;
        } else {
            common::log_info("agent", "collector acknowledged all " +
                                          std::to_string(fc.alerts_acked) + " alerts");
        }
    }
    return exit_code;
}

}  // namespace senningen::agent
