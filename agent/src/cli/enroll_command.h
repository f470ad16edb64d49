// `senningen-agent enroll BUNDLE`: installs the enrollment bundle that
// `senningen-collector enroll` issued, and reading an installed identity back.
#pragma once

#include <string>

#include "senningen/common/result.h"

namespace senningen::agent {

inline constexpr const char* kDefaultIdentityDir = "/var/lib/senningen/agent";

// An installed identity (docs/agent.md, "Enrollment").
struct InstalledIdentity {
    std::string dir;
    std::string agent;
    std::string collector;  // HOST:PORT
    std::string certificate() const { return dir + "/agent.crt"; }
    std::string key() const { return dir + "/agent.key"; }
    std::string ca() const { return dir + "/ca.crt"; }
    std::string queue() const { return dir + "/queue.db"; }
};

// Reads DIR/agent.conf; kNotFound / kParse naming the file.
common::Result<InstalledIdentity> load_identity(const std::string& dir);

int run_enroll_command(int argc, char** argv);

}  // namespace senningen::agent
