#include "senningen/agent/files/option_values.h"

#include <cctype>
#include <cerrno>
#include <cstdlib>

namespace senningen::agent::files {

namespace {

// A leading decimal number and its unit (what follows it).
bool split_number(const std::string& text, unsigned long long& value, std::string& unit) {
    if (text.empty() || !std::isdigit(static_cast<unsigned char>(text[0]))) return false;
    char* end = nullptr;
    errno = 0;
    value = std::strtoull(text.c_str(), &end, 10);
    if (errno != 0) return false;
    unit = end;
    return true;
}

}  // namespace

bool parse_size(const std::string& text, std::uint64_t& out) {
    unsigned long long v = 0;
    std::string unit;
    if (!split_number(text, v, unit)) return false;
    for (char& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    std::uint64_t mult = 0;
    if (unit.empty() || unit == "B") mult = 1;
    if (unit == "K" || unit == "KB" || unit == "KIB") mult = 1ULL << 10;
    if (unit == "M" || unit == "MB" || unit == "MIB") mult = 1ULL << 20;
    if (unit == "G" || unit == "GB" || unit == "GIB") mult = 1ULL << 30;
    if (mult == 0 || v > (~0ULL) / mult) return false;
    out = v * mult;
    return true;
}

bool parse_seconds(const std::string& text, long long& out) {
    unsigned long long v = 0;
    std::string unit;
    if (!split_number(text, v, unit)) return false;
    long long mult = 0;
    if (unit.empty() || unit == "s") mult = 1;
    if (unit == "m") mult = 60;
    if (unit == "h") mult = 3600;
    if (unit == "d") mult = 86400;
    constexpr unsigned long long kMax = 1ULL << 40;
    if (mult == 0 || v > kMax / static_cast<unsigned long long>(mult)) return false;
    out = static_cast<long long>(v) * mult;
    return true;
}

bool parse_int(const std::string& text, long long lo, long long hi, long long& out) {
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(text.c_str(), &end, 10);
    if (errno != 0 || end == text.c_str() || *end != '\0' || v < lo || v > hi) return false;
    out = v;
    return true;
}

bool parse_bool(const std::string& text, bool& out) {
    if (text == "true" || text == "yes" || text == "on" || text == "1") {
        out = true;
        return true;
    }
    if (text == "false" || text == "no" || text == "off" || text == "0") {
        out = false;
        return true;
    }
    return false;
}

bool parse_host_port(const std::string& text) {
    const auto colon = text.rfind(':');
    long long port = 0;
    return colon != std::string::npos && colon != 0 &&
           parse_int(text.substr(colon + 1), 1, 65535, port);
}

}  // namespace senningen::agent::files
