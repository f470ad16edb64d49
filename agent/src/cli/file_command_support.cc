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

Result<std::shared_ptr<YaraRules>> load_file_rules(const std::vector<std::string>& specs) {
    std::vector<RuleSourceFile> files;
    files.reserve(specs.size());
    for (const auto& spec : specs) files.push_back(parse_rule_spec(spec));
    return YaraRules::compile_files(files, file_yara_externals());
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

bool parse_size(const std::string& text, std::uint64_t& out) {
    if (text.empty() || !std::isdigit(static_cast<unsigned char>(text[0]))) return false;
    char* end = nullptr;
    errno = 0;
    const unsigned long long v = std::strtoull(text.c_str(), &end, 10);
    if (errno != 0) return false;
    std::string unit(end);
    for (char& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    std::uint64_t mult = 1;
    if (unit.empty() || unit == "B")
        mult = 1;
    else if (unit == "K" || unit == "KB" || unit == "KIB")
        mult = 1ULL << 10;
    else if (unit == "M" || unit == "MB" || unit == "MIB")
        mult = 1ULL << 20;
    else if (unit == "G" || unit == "GB" || unit == "GIB")
        mult = 1ULL << 30;
    else
        return false;
    if (v > (~0ULL) / mult) return false;
    out = v * mult;
    return true;
}

bool parse_seconds(const std::string& text, long long& out) {
    if (text.empty() || !std::isdigit(static_cast<unsigned char>(text[0]))) return false;
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(text.c_str(), &end, 10);
    if (errno != 0 || v < 0) return false;
    const std::string unit(end);
    long long mult = 1;
    if (unit.empty() || unit == "s")
        mult = 1;
    else if (unit == "m")
        mult = 60;
    else if (unit == "h")
        mult = 3600;
    else if (unit == "d")
        mult = 86400;
    else
        return false;
    if (v > (1LL << 40) / mult) return false;
    out = v * mult;
    return true;
}

bool parse_host_port(const std::string& text) {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 >= text.size()) return false;
    char* end = nullptr;
    const long port = std::strtol(text.c_str() + colon + 1, &end, 10);
    return *end == '\0' && port >= 1 && port <= 65535;
}

Result<std::unique_ptr<AlertOutput>> AlertOutput::open(const std::optional<std::string>& output,
                                                       const std::optional<std::string>& collector,
                                                       const std::string& agent_id,
                                                       const common::TlsOptions& tls) {
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
    if (collector) {
        const auto colon = collector->rfind(':');
        ForwarderOptions fo;
        fo.host = collector->substr(0, colon);
        fo.port = static_cast<std::uint16_t>(std::stoi(collector->substr(colon + 1)));
        common::TransportOptions to;
        to.role = common::TransportRole::kAgent;
        to.agent_id = agent_id;
        to.tls = tls;
        auto transport = common::make_broker_transport(to);
        if (!transport) {
            return make_error(transport.error().code,
                              "collector " + *collector + ": " + transport.error().message);
        }
        out->forwarder_ = std::make_unique<Forwarder>(std::move(transport).value(), fo, agent_id);
        out->forwarder_->start();
        out->collector_ = *collector;
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
