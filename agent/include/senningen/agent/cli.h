// The senningen-agent command line. main.cc is a thin wrapper over run_agent() so that the
// whole command can be exercised from tests.
#pragma once

namespace senningen::agent {

// Exit codes (sysexits.h numbers, documented in docs/agent.md).
inline constexpr int kExitOk = 0;
inline constexpr int kExitUsage = 64;        // bad command line
inline constexpr int kExitDataError = 65;    // a capture is truncated or corrupt (what was read is processed)
inline constexpr int kExitNoInput = 66;      // a capture, rule or intel file is missing or unreadable
inline constexpr int kExitUnavailable = 69;  // the collector never acknowledged every alert in time
inline constexpr int kExitIoError = 74;      // the alert output cannot be written
inline constexpr int kExitConfig = 78;       // rules do not compile, an intel file has no header

int run_agent(int argc, char** argv);

}  // namespace senningen::agent
