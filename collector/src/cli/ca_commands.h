// The collector's administration subcommands: ca init, enroll, revoke (docs/collector.md,
// "Enrollment"). run_collector() hands argv to run_ca_command() when argv[1] names one.
#pragma once

namespace senningen::collector {

inline constexpr const char* kDefaultCaDir = "/var/lib/senningen/ca";

bool is_ca_command(const char* arg);
int run_ca_command(int argc, char** argv);

}  // namespace senningen::collector
