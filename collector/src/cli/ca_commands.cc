#include "cli/ca_commands.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <sys/stat.h>
#include <map>
#include <string>
#include <unistd.h>
#include <vector>

#include "senningen/collector/ca.h"
#include "senningen/collector/cli.h"
#include "senningen/common/enrollment.h"

namespace senningen::collector {

namespace {

constexpr const char* kCaUsage =
    "usage: senningen-collector ca init [--dir DIR] [--days N]\n"
    "       senningen-collector enroll --agent NAME [--days N] [--dir DIR]\n"
    "                                  [--collector HOST:PORT] [--output FILE]\n"
    "       senningen-collector revoke --agent NAME [--dir DIR]\n"
    "\n"
    "  ca init    creates the CA, the collector's certificate and an empty revocation list in\n"
    "             DIR (default /var/lib/senningen/ca; CA valid N days, default 3650)\n"
    "  enroll     issues agent NAME a certificate valid N days (default 365) and writes one\n"
    "             bundle file (key, certificate, CA certificate, collector address), mode\n"
    "             0600, to FILE (default NAME.bundle); install it with\n"
    "             'senningen-agent enroll FILE'. --collector is the address agents dial\n"
    "             (default 127.0.0.1:9999)\n"
    "  revoke     revokes every certificate of agent NAME; the running collector refuses it\n"
    "             from its next message on\n";

int usage_error(const std::vector<std::string>& problems) {
    for (const auto& p : problems) std::fprintf(stderr, "senningen-collector: %s\n", p.c_str());
    std::fputs(kCaUsage, stderr);
    return kExitUsage;
}

int failed(const common::Error& e) {
    std::fprintf(stderr, "senningen-collector: %s\n", e.message.c_str());
    switch (e.code) {
        case common::ErrorCode::kInvalidArgument: return kExitUsage;
        case common::ErrorCode::kIo: return kExitIoError;
        default: return kExitConfig;
    }
}

bool parse_days(const std::string& text, int& out) {
    char* end = nullptr;
    errno = 0;
    const long v = std::strtol(text.c_str(), &end, 10);
    if (errno != 0 || end == text.c_str() || *end != '\0' || v < 1 || v > 36500) return false;
    out = static_cast<int>(v);
    return true;
}

}  // namespace

bool is_ca_command(const char* arg) {
    const std::string a = arg;
    return a == "ca" || a == "enroll" || a == "revoke";
}

int run_ca_command(int argc, char** argv) {
    std::string command = argv[1];
    int first = 2;
    if (command == "ca") {
        if (argc < 3 || std::string(argv[2]) != "init") {
            return usage_error({"'ca' needs the subcommand 'init'"});
        }
        command = "ca init";
        first = 3;
    }
    std::map<std::string, std::string> values;
    std::vector<std::string> problems;
    static const std::map<std::string, std::vector<std::string>> kAllowed = {
        {"ca init", {"--dir", "--days"}},
        {"enroll", {"--agent", "--days", "--dir", "--collector", "--output"}},
        {"revoke", {"--agent", "--dir"}}};
    const auto& allowed = kAllowed.at(command);
    for (int i = first; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--help" || arg == "-h") {
            std::fputs(kCaUsage, stdout);
            return kExitOk;
        }
        if (std::find(allowed.begin(), allowed.end(), arg) == allowed.end()) {
            problems.push_back("unknown option '" + arg + "' for '" + command + "'");
            continue;
        }
        if (i + 1 >= argc) {
            problems.push_back(arg + " needs a value");
            continue;
        }
        values[arg] = argv[++i];
    }
    const std::string dir = values.count("--dir") ? values["--dir"] : kDefaultCaDir;
    int days = command == "ca init" ? 3650 : 365;
    if (values.count("--days") && !parse_days(values["--days"], days)) {
        problems.push_back("--days '" + values["--days"] + "' is not 1..36500");
    }
    if (command != "ca init" && !values.count("--agent")) {
        problems.push_back(command + " needs --agent NAME");
    }
    if (!problems.empty()) return usage_error(problems);

    if (command == "ca init") {
        if (auto r = init_ca(dir, days); !r) return failed(r.error());
        const CaPaths p{dir};
        std::printf("created CA %s, collector certificate %s, revocation list %s\n",
                    p.ca_certificate().c_str(), p.collector_certificate().c_str(),
                    p.crl().c_str());
        std::printf("run the collector with --ca-dir %s\n", dir.c_str());
        return kExitOk;
    }
    const std::string agent = values["--agent"];
    if (command == "revoke") {
        auto r = revoke_agent(dir, agent);
        if (!r) return failed(r.error());
        std::printf("revoked %zu certificate(s) of agent '%s'; %s updated\n", *r, agent.c_str(),
                    CaPaths{dir}.crl().c_str());
        return kExitOk;
    }
    const std::string collector =
        values.count("--collector") ? values["--collector"] : "127.0.0.1:9999";
    if (collector.rfind(':') == std::string::npos || collector.rfind(':') == 0) {
        return usage_error({"--collector '" + collector + "' is not HOST:PORT"});
    }
    const std::string output = values.count("--output") ? values["--output"] : agent + ".bundle";
    const std::int64_t now = std::time(nullptr);
    auto issued = issue_agent_certificate(dir, agent, now - 60,
                                          now + static_cast<std::int64_t>(days) * 86400);
    if (!issued) return failed(issued.error());
    common::EnrollmentBundle bundle{agent, collector, issued->key_pem, issued->certificate_pem,
                                    issued->ca_pem};
    const std::string text = common::format_bundle(bundle);
    const int fd = ::open(output.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || ::fchmod(fd, 0600) != 0 ||
        ::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
        std::fprintf(stderr, "senningen-collector: cannot write bundle '%s': %s\n", output.c_str(),
                     std::strerror(errno));
        if (fd >= 0) ::close(fd);
        return kExitIoError;
    }
    ::close(fd);
    std::printf("issued agent '%s' certificate %s (valid %d days); bundle %s (mode 0600)\n",
                agent.c_str(), issued->serial.c_str(), days, output.c_str());
    return kExitOk;
}

}  // namespace senningen::collector
