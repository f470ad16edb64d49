// The collector's account subcommands: user add, token, list, disable (docs/collector.md,
// "Accounts"). run_collector() hands argv to run_user_command() when argv[1] is "user".
#pragma once

namespace senningen::collector {

bool is_user_command(const char* arg);
int run_user_command(int argc, char** argv);

}  // namespace senningen::collector
