// The senningen-collector command line; main.cc is a thin wrapper over run_collector().
#pragma once

namespace senningen::collector {

inline constexpr int kExitOk = 0;
inline constexpr int kExitUsage = 64;        // bad command line
inline constexpr int kExitUnavailable = 69;  // cannot listen on an address
inline constexpr int kExitIoError = 74;      // the database cannot be opened
inline constexpr int kExitConfig = 78;       // the config file is unreadable or wrong

int run_collector(int argc, char** argv);

}  // namespace senningen::collector
