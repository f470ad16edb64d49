#include "senningen/common/log.h"

#include <atomic>
#include <cstdio>
#include <mutex>
#include <string>

#include "senningen/common/alert.h"

namespace senningen::common {

namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::mutex g_mutex;

const char* level_name(LogLevel level) {
    switch (level) {
        case LogLevel::kDebug: return "DEBUG";
        case LogLevel::kInfo: return "INFO";
        case LogLevel::kWarn: return "WARN";
        case LogLevel::kError: return "ERROR";
        case LogLevel::kOff: return "OFF";
    }
    return "?";
}
}  // namespace

void set_log_level(LogLevel level) { g_level.store(static_cast<int>(level)); }
LogLevel log_level() { return static_cast<LogLevel>(g_level.load()); }

void log_line(LogLevel level, std::string_view component, std::string_view message) {
    if (static_cast<int>(level) < g_level.load()) return;
    std::string ts = format_timestamp(now_ns());
    ts.resize(23);  // milliseconds are enough for a person
    const std::lock_guard<std::mutex> lock(g_mutex);
    std::fprintf(stderr, "%sZ %-5s [%.*s] %.*s\n", ts.c_str(), level_name(level),
                 static_cast<int>(component.size()), component.data(),
                 static_cast<int>(message.size()), message.data());
}

}  // namespace senningen::common
