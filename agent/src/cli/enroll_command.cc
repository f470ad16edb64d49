#include "cli/enroll_command.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "senningen/agent/cli.h"
#include "senningen/common/enrollment.h"

namespace senningen::agent {

namespace {

constexpr const char* kEnrollUsage =
    "usage: senningen-agent enroll BUNDLE [--dir DIR] [--owner USER]\n"
    "\n"
    "Installs the bundle made by 'senningen-collector enroll' into DIR (default\n"
    "/var/lib/senningen/agent): agent.key, agent.crt, ca.crt and agent.conf, each mode 0600,\n"
    "the directory 0700, owned by USER (default: the user 'senningen' when it exists). Then run\n"
    "the agent with --identity DIR. The bundle is checked first: the key must belong to the\n"
    "certificate, and the certificate must be the CA's and name the agent.\n";

common::Result<void> write_private(const std::string& path, const std::string& text, uid_t uid,
                                   gid_t gid, bool chown_it) {
    const std::string tmp = path + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    bool ok = fd >= 0 && ::fchmod(fd, 0600) == 0 && (!chown_it || ::fchown(fd, uid, gid) == 0) &&
              ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
              ::fsync(fd) == 0;
    const int saved = errno;
    if (fd >= 0) ::close(fd);
    if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
        return common::make_error(common::ErrorCode::kIo, "cannot write '" + path + "': " +
                                                              std::strerror(ok ? errno : saved));
    }
    return {};
}

}  // namespace

common::Result<InstalledIdentity> load_identity(const std::string& dir) {
    InstalledIdentity id;
    id.dir = dir;
    const std::string conf = dir + "/agent.conf";
    std::ifstream in(conf);
    if (!in) {
        return common::make_error(common::ErrorCode::kNotFound,
                                  "no enrolled identity: '" + conf +
                                      "' cannot be read (run 'senningen-agent enroll BUNDLE')");
    }
    std::string line;
    int n = 0;
    while (std::getline(in, line)) {
        ++n;
        if (line.empty() || line[0] == '#') continue;
        const auto eq = line.find(" = ");
        if (eq == std::string::npos) {
            return common::make_error(common::ErrorCode::kParse,
                                      conf + ":" + std::to_string(n) + ": not 'key = value'");
        }
        const std::string key = line.substr(0, eq);
        const std::string value = line.substr(eq + 3);
        if (key == "agent") {
            id.agent = value;
        } else if (key == "collector") {
            id.collector = value;
        } else {
            return common::make_error(common::ErrorCode::kParse,
                                      conf + ":" + std::to_string(n) + ": unknown key '" + key + "'");
        }
    }
    if (!common::is_valid_agent_name(id.agent) || id.collector.empty()) {
        return common::make_error(common::ErrorCode::kParse,
                                  conf + ": needs a valid 'agent' and a 'collector'");
    }
    return id;
}

int run_enroll_command(int argc, char** argv) {
    std::string bundle_path;
    std::string dir = kDefaultIdentityDir;
    std::string owner;
    std::vector<std::string> problems;
    for (int i = 2; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--help" || arg == "-h") {
            std::fputs(kEnrollUsage, stdout);
            return kExitOk;
        }
        if (arg == "--dir" || arg == "--owner") {
            if (i + 1 >= argc) {
                problems.push_back(arg + " needs a value");
                continue;
            }
            (arg == "--dir" ? dir : owner) = argv[++i];
        } else if (!arg.empty() && arg[0] == '-') {
            problems.push_back("unknown option '" + arg + "' for 'enroll'");
        } else if (bundle_path.empty()) {
            bundle_path = arg;
        } else {
            problems.push_back("only one BUNDLE, not also '" + arg + "'");
        }
    }
    if (bundle_path.empty()) problems.push_back("enroll needs the BUNDLE file");
    uid_t uid = 0;
    gid_t gid = 0;
    bool chown_it = false;
    const std::string user = owner.empty() ? "senningen" : owner;
    if (const passwd* pw = ::getpwnam(user.c_str())) {
        uid = pw->pw_uid;
        gid = pw->pw_gid;
        chown_it = true;
    } else if (!owner.empty()) {
        problems.push_back("--owner '" + owner + "' is not a user on this host");
    }
    if (!problems.empty()) {
        for (const auto& p : problems) std::fprintf(stderr, "senningen-agent: %s\n", p.c_str());
        std::fputs(kEnrollUsage, stderr);
        return kExitUsage;
    }

    std::ifstream in(bundle_path, std::ios::binary);
    if (!in) {
        std::fprintf(stderr, "senningen-agent: bundle '%s' cannot be read\n", bundle_path.c_str());
        return kExitNoInput;
    }
    std::ostringstream text;
    text << in.rdbuf();
    auto bundle = common::parse_bundle(text.str(), bundle_path);
    if (!bundle) {
        std::fprintf(stderr, "senningen-agent: %s\n", bundle.error().message.c_str());
        return kExitDataError;
    }
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec || ::chmod(dir.c_str(), 0700) != 0 ||
        (chown_it && ::chown(dir.c_str(), uid, gid) != 0)) {
        std::fprintf(stderr, "senningen-agent: cannot create '%s' with mode 0700: %s\n",
                     dir.c_str(), ec ? ec.message().c_str() : std::strerror(errno));
        return kExitIoError;
    }
    InstalledIdentity id{dir, bundle->agent, bundle->collector};
    for (const auto& [path, body] :
         {std::pair{id.key(), bundle->key_pem}, std::pair{id.certificate(), bundle->certificate_pem},
          std::pair{id.ca(), bundle->ca_pem},
          std::pair{dir + "/agent.conf", "# written by senningen-agent enroll\nagent = " +
                                             bundle->agent + "\ncollector = " + bundle->collector +
                                             "\n"}}) {
        if (auto ok = write_private(path, body, uid, gid, chown_it); !ok) {
            std::fprintf(stderr, "senningen-agent: %s\n", ok.error().message.c_str());
            return kExitIoError;
        }
    }
    std::printf("enrolled as agent '%s' for collector %s; identity in %s (mode 0600%s)\n",
                bundle->agent.c_str(), bundle->collector.c_str(), dir.c_str(),
                chown_it ? (", owner " + user).c_str() : "");
    std::printf("run: senningen-agent --identity %s --read CAPTURE ...\n", dir.c_str());
    return kExitOk;
}

}  // namespace senningen::agent
