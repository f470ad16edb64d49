// The values that the file-inspection options take, on the command line (`scan`, `watch`) and
// in the watch config alike, parsed in one place so that "64M" or "24h" mean the same in both.
#pragma once

#include <cstdint>
#include <string>

namespace senningen::agent::files {

// "4096", "64K", "64M", "1G" (also KB/KiB, ..., case-insensitive): bytes.
bool parse_size(const std::string& text, std::uint64_t& out);
// "90", "90s", "15m", "24h", "7d": seconds, at most 2^40.
bool parse_seconds(const std::string& text, long long& out);
// A whole decimal number in [LO, HI], nothing after it.
bool parse_int(const std::string& text, long long lo, long long hi, long long& out);
// true/yes/on/1 or false/no/off/0.
bool parse_bool(const std::string& text, bool& out);
// HOST:PORT with a port of 1..65535.
bool parse_host_port(const std::string& text);

}  // namespace senningen::agent::files
