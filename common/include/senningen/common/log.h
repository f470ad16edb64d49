// Logging for operators: one line per event on stderr, "TIME LEVEL [component] message".
// Never used on the packet path (count there, report counters). The level can be raised with
// set_log_level() so that tests and the demo stay quiet.
#pragma once

#include <string_view>

namespace senningen::common {

enum class LogLevel : int { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

void set_log_level(LogLevel level);
LogLevel log_level();
void log_line(LogLevel level, std::string_view component, std::string_view message);

inline void log_debug(std::string_view c, std::string_view m) { log_line(LogLevel::kDebug, c, m); }
inline void log_info(std::string_view c, std::string_view m) { log_line(LogLevel::kInfo, c, m); }
inline void log_warn(std::string_view c, std::string_view m) { log_line(LogLevel::kWarn, c, m); }
inline void log_error(std::string_view c, std::string_view m) { log_line(LogLevel::kError, c, m); }

}  // namespace senningen::common
