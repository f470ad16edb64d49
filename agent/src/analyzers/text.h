// Small text helpers shared by the line-oriented analyzers (HTTP, SMTP): ASCII case folding,
// trimming, header-name comparison. Header-only, no allocation unless a string is returned.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace senningen::agent::detail {

inline char ascii_lower(char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

inline bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
    }
    return true;
}

inline bool istarts_with(std::string_view text, std::string_view prefix) {
    return text.size() >= prefix.size() && iequals(text.substr(0, prefix.size()), prefix);
}

inline std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' ||
                          s.front() == '\n')) {
        s.remove_prefix(1);
    }
    while (!s.empty() &&
           (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
        s.remove_suffix(1);
    }
    return s;
}

inline std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = ascii_lower(c);
    return out;
}

inline std::span<const std::uint8_t> as_bytes(std::string_view text) {
    return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

inline std::string_view as_text(std::span<const std::uint8_t> bytes) {
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

// The value of parameter NAME in a header value such as
// 'attachment; filename="a b.txt"' or 'multipart/form-data; boundary=xyz'; quotes removed,
// backslash escapes inside quotes honoured. "" when absent.
inline std::string header_param(std::string_view value, std::string_view name) {
    std::size_t pos = 0;
    while (pos < value.size()) {
        const std::size_t semi = value.find(';', pos);
        if (semi == std::string_view::npos) return {};
        pos = semi + 1;
        while (pos < value.size() && (value[pos] == ' ' || value[pos] == '\t')) ++pos;
        const std::size_t eq = value.find('=', pos);
        if (eq == std::string_view::npos) return {};
        if (!iequals(trim(value.substr(pos, eq - pos)), name)) continue;
        std::size_t i = eq + 1;
        while (i < value.size() && (value[i] == ' ' || value[i] == '\t')) ++i;
        std::string out;
        if (i < value.size() && value[i] == '"') {
            for (++i; i < value.size() && value[i] != '"'; ++i) {
                if (value[i] == '\\' && i + 1 < value.size()) ++i;
                out.push_back(value[i]);
            }
            return out;
        }
        const std::size_t end = value.find(';', i);
        return std::string(trim(value.substr(i, end == std::string_view::npos ? end : end - i)));
    }
    return {};
}

// RFC 5987 / 6266: filename*=UTF-8''na%C3%AFve.txt -> the percent-decoded bytes.
inline std::string decode_ext_value(std::string_view value) {
    const std::size_t quote = value.find("''");
    if (quote != std::string_view::npos) value.remove_prefix(quote + 2);
    std::string out;
    auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        c = ascii_lower(c);
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        return -1;
    };
    for (std::size_t i = 0; i < value.size(); ++i) {
        if (value[i] == '%' && i + 2 < value.size() && hex(value[i + 1]) >= 0 &&
            hex(value[i + 2]) >= 0) {
            out.push_back(static_cast<char>(hex(value[i + 1]) * 16 + hex(value[i + 2])));
            i += 2;
        } else {
            out.push_back(value[i]);
        }
    }
    return out;
}

// The file name a Content-Disposition value gives (filename* preferred), or "".
inline std::string disposition_filename(std::string_view value) {
    std::string ext = header_param(value, "filename*");
    if (!ext.empty()) return decode_ext_value(ext);
    return header_param(value, "filename");
}

}  // namespace senningen::agent::detail
