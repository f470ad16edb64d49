// The file-inspection subcommands of senningen-agent: `scan` (on demand, exits like `yara`)
// and `watch` (inotify, scheduled full scans, a config file). run_agent() dispatches to them
// when the first argument names them; docs/agent.md documents both.
#pragma once

namespace senningen::agent::files {

// Exit codes of `scan`, as the yara command line has them.
inline constexpr int kScanNoMatch = 0;
inline constexpr int kScanMatch = 1;
inline constexpr int kScanError = 2;

// ARGV[0] is the program name and ARGV[1] the subcommand's name.
int run_scan_command(int argc, char** argv);
int run_watch_command(int argc, char** argv);

}  // namespace senningen::agent::files
