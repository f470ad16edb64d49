#include "file_command_support.h"

#include <openssl/evp.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "senningen/agent/files/file_scanner.h"
#include "senningen/common/json_codec.h"
#include "senningen/common/log.h"

namespace senningen::agent::files::detail {

using common::ErrorCode;
using common::make_error;
using common::Result;

RuleSourceFile parse_rule_spec(const std::string& spec) {
    const auto eq = spec.find('=');
    if (eq == std::string::npos || eq == 0) return {spec, ""};
    std::error_code ec;
    if (std::filesystem::exists(spec, ec)) return {spec, ""};
    const std::string ns = spec.substr(0, eq);
    for (const char c : ns) {
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') {
            return {spec, ""};
        }
    }
    return {spec.substr(eq + 1), ns};
}

Result<std::shared_ptr<YaraRules>> load_file_rules(const std::vector<std::string>& specs,
                                                   bool partitions) {
    std::vector<RuleSourceFile> files;
    files.reserve(specs.size());
    for (const auto& spec : specs) files.push_back(parse_rule_spec(spec));
    YaraCompileOptions options;
    options.partitions = partitions;
    return YaraRules::compile_files(files, file_yara_externals(), options);
}

Result<void> load_intel(const std::vector<std::string>& paths, IntelStore& store) {
    for (const auto& path : paths) {
        IntelLoadStats stats;
        if (auto loaded = store.load_file(path, stats); !loaded) return loaded.error();
        for (const auto& p : stats.problems) common::log_warn("intel", p + " (line skipped)");
        common::log_info("intel", path + ": " + std::to_string(stats.loaded) + " indicators, " +
                                      std::to_string(stats.skipped) + " lines skipped");
    }
    return {};
}

std::string pack_version(const YaraRules* rules, const std::vector<std::string>& intel_paths) {
    std::string version = rules != nullptr ? rules->version() : "no-rules";
    if (intel_paths.empty()) return version;
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
    for (const auto& path : intel_paths) {
        std::ifstream in(path, std::ios::binary);
        const std::string text((std::istreambuf_iterator<char>(in)),
                               std::istreambuf_iterator<char>());
        EVP_DigestUpdate(ctx.get(), text.data(), text.size());
    }
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx.get(), digest, &len);
    static constexpr char kHex[] = "0123456789abcdef";
    version += "+intel:";
    for (unsigned int i = 0; i < 8 && i < len; ++i) {
        version.push_back(kHex[digest[i] >> 4]);
        version.push_back(kHex[digest[i] & 0x0f]);
    }
    return version;
}

Result<Inspection> load_inspection(const std::vector<std::string>& rules,
                                   const std::vector<std::string>& intel,
                                   const std::string& cache_file, const char* component,
                                   bool partitions) {
    Inspection in;
    if (!rules.empty()) {
        auto compiled = load_file_rules(rules, partitions);
        if (!compiled) return make_error(compiled.error().code, "rules: " + compiled.error().message);
        in.rules = std::move(compiled).value();
        common::log_info(component, "loaded " + std::to_string(in.rules->rule_count()) +
                                        " YARA rules, pack " + in.rules->version());
    }
    if (auto loaded = load_intel(intel, *in.intel); !loaded) {
        return make_error(loaded.error().code, "intel: " + loaded.error().message);
    }
    in.has_intel = !intel.empty();
    in.cache = std::make_unique<ScanCache>(pack_version(in.rules.get(), intel));
    if (!cache_file.empty()) {
        std::string note;
        if (auto loaded = in.cache->load(cache_file, &note); !loaded) {
            common::log_warn(component, loaded.error().message);
        }
        if (!note.empty()) common::log_info(component, note);
        common::log_info(component, "scan cache " + cache_file + ": " +
                                        std::to_string(in.cache->size()) + " files known clean");
    }
    return in;
}

WalkCounters walk_into(ScanPool& pool, const std::string& root, const WalkOptions& options,
                       const std::atomic<bool>* stop) {
    WalkCallbacks callbacks;
    callbacks.file = [&](std::string path, std::uint64_t size) {
        pool.submit(std::move(path), false, size);
    };
    callbacks.skip = [&](const std::string& path, Outcome outcome, const std::string& reason) {
        FileScanResult r;
        r.outcome = outcome;
        r.reason = reason;
        r.facts.path = path;
        pool.record(std::move(r));
    };
    return walk_tree(root, options, callbacks, stop);
}

void log_result(const char* component, const FileScanResult& result) {
    switch (result.outcome) {
        case Outcome::kScanned:
        case Outcome::kCached: break;
        case Outcome::kNotRegular:
        case Outcome::kSymlink:
            common::log_debug(component, result.facts.path + ": " + result.reason);
            break;
        default:
            common::log_warn(component, result.facts.path + ": " + result.reason + " (" +
                                            std::string(to_string(result.outcome)) + ")");
    }
}

std::string outcome_counts(const ScanTotals& totals) {
    std::string out;
    for (std::size_t i = 2; i < kOutcomeCount; ++i) {
        if (totals.outcomes[i] == 0) continue;
        out += ", " + std::string(to_string(static_cast<Outcome>(i))) + " " +
               std::to_string(totals.outcomes[i]);
    }
    return out;
}

Result<std::unique_ptr<AlertOutput>> AlertOutput::open(const std::optional<std::string>& output,
                                                       const cli::CollectorLink& link) {
    std::unique_ptr<AlertOutput> out(new AlertOutput());
    if (output && *output != "-") {
        out->file_ = std::fopen(output->c_str(), "a");
        if (out->file_ == nullptr) {
            return make_error(ErrorCode::kIo,
                              "cannot write alerts to " + *output + ": " + std::strerror(errno));
        }
        out->close_ = true;
        out->name_ = *output;
    } else if (output) {
        out->file_ = stdout;
        out->name_ = "stdout";
    }
    if (link.collector) {
        auto forwarder = cli::make_forwarder(link);
        if (!forwarder) return forwarder.error();
        if (!link.queue.empty()) {
            if (auto opened = (*forwarder)->open_queue(); !opened) return opened.error();
        }
        out->forwarder_ = std::move(forwarder).value();
        out->forwarder_->start();
        out->collector_ = *link.collector;
    }
    return out;
}

AlertOutput::~AlertOutput() {
    if (forwarder_) forwarder_->stop();
    if (close_ && file_ != nullptr) std::fclose(file_);
}

void AlertOutput::set_stats_source(std::function<AgentStats()> stats) {
    if (forwarder_) forwarder_->set_stats_source(std::move(stats));
}

void AlertOutput::write(common::Alert&& alert) {
    std::lock_guard lock(mutex_);
    if (file_ != nullptr && !failed_) {
        const std::string line = common::alert_to_json(alert) + "\n";
        // Line-buffered by hand: a watcher's alert must reach the file when it happens.
        if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() ||
            std::fflush(file_) != 0) {
            failed_ = true;
            common::log_error("files",
                              "writing alerts to " + name_ + " failed: " + std::strerror(errno));
        }
    }
    if (forwarder_) forwarder_->submit(std::move(alert));
}

bool AlertOutput::finish(int timeout_s, std::string& problem) {
    bool ok = true;
    {
        std::lock_guard lock(mutex_);
        if (file_ != nullptr && (std::fflush(file_) != 0 || std::ferror(file_) != 0)) {
            failed_ = true;
        }
        if (failed_) {
            problem = "writing alerts to " + name_ + " failed";
            ok = false;
        }
    }
    if (forwarder_) {
        const bool acked =
            forwarder_->drain(std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s));
        const ForwarderCounters fc = forwarder_->counters();
        if (!acked) {
            if (!problem.empty()) problem += "; ";
            problem += "collector " + collector_ + " acknowledged " +
                       std::to_string(fc.alerts_acked) + " of " +
                       std::to_string(fc.alerts_submitted) + " alerts within " +
                       std::to_string(timeout_s) + " s";
            ok = false;
        }
    }
    return ok;
}

}  // namespace senningen::agent::files::detail
