#include "senningen/common/alert.h"

#include <openssl/rand.h>
#include <pthread.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace senningen::common {

namespace {

// Random bytes for ids, drawn from OpenSSL a block at a time: one RAND_bytes call per id (its
// locks and its fork check) cost more than the rest of making an alert. Each thread has its
// own block; a forked child throws away the block it inherited, so that parent and child never
// hand out the same bytes.
std::atomic<std::uint64_t> g_fork_generation{0};

void count_fork_in_child() { g_fork_generation.fetch_add(1, std::memory_order_relaxed); }

class RandomBlock {
public:
    bool take(unsigned char* out, std::size_t n) {
        static const bool registered = ::pthread_atfork(nullptr, nullptr, count_fork_in_child) == 0;
        const std::uint64_t generation =
            registered ? g_fork_generation.load(std::memory_order_relaxed) : generation_ + 1;
        if (generation != generation_ || used_ + n > bytes_.size()) {
            if (RAND_bytes(bytes_.data(), static_cast<int>(bytes_.size())) != 1) return false;
            used_ = 0;
            generation_ = generation;
        }
        std::memcpy(out, bytes_.data() + used_, n);
        used_ += n;
        return true;
    }

private:
    std::array<unsigned char, 640> bytes_{};
    std::size_t used_ = bytes_.size();
    std::uint64_t generation_ = 0;
};

}  // namespace

std::string_view to_string(AlertKind kind) {
    return kind == AlertKind::kNetwork ? "network" : "file";
}

std::string_view to_string(RuleSource source) {
    switch (source) {
        case RuleSource::kYara: return "yara";
        case RuleSource::kIntel: return "intel";
        case RuleSource::kPolicy: return "policy";
    }
    return "unknown";
}

Result<AlertKind> parse_alert_kind(std::string_view text) {
    if (text == "network") return AlertKind::kNetwork;
    if (text == "file") return AlertKind::kFile;
    return make_error(ErrorCode::kSchema,
                      "alert kind '" + std::string(text) + "' is neither 'network' nor 'file'");
}

Result<RuleSource> parse_rule_source(std::string_view text) {
    if (text == "yara") return RuleSource::kYara;
    if (text == "intel") return RuleSource::kIntel;
    if (text == "policy") return RuleSource::kPolicy;
    return make_error(ErrorCode::kSchema, "rule source '" + std::string(text) +
                                              "' is not one of 'yara', 'intel', 'policy'");
}

std::string new_uuid() {
    // RFC 9562 version 7: 48 bits of Unix time in milliseconds, then 74 random bits. Ids made
    // close in time sort close together, so a store's unique index on them takes each insert
    // near its right edge instead of on a random page (docs/adr/0002-time-ordered-alert-ids.md).
    std::array<unsigned char, 16> b{};
    const auto ms = static_cast<std::uint64_t>(now_ns() / 1'000'000);
    thread_local RandomBlock random;
    if (!random.take(b.data() + 6, 10)) {
        // OpenSSL's generator never fails once seeded; should it, a process-wide counter keeps
        // the ids unique within this process.
        static std::atomic<std::uint64_t> counter{0};
        const std::uint64_t c = ++counter;
        for (int i = 0; i < 8; ++i) {
            b[static_cast<std::size_t>(8 + i)] = static_cast<unsigned char>(c >> (8 * i));
        }
    }
    for (int i = 0; i < 6; ++i) {
        b[static_cast<std::size_t>(i)] = static_cast<unsigned char>(ms >> (8 * (5 - i)));
    }
    b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x70);  // version 7
    b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);  // RFC 9562 variant
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    out.reserve(36);
    for (std::size_t i = 0; i < b.size(); ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
        out.push_back(kHex[b[i] >> 4]);
        out.push_back(kHex[b[i] & 0x0f]);
    }
    return out;
}

bool is_uuid(std::string_view text) {
    if (text.size() != 36) return false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-') return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
    }
    return true;
}

Result<void> validate(const Alert& alert) {
    if (!is_uuid(alert.id)) {
        return make_error(ErrorCode::kSchema,
                          "alert id '" + alert.id + "' is not a lowercase UUID");
    }
    if (alert.agent_id.empty()) return make_error(ErrorCode::kSchema, "alert has no agent id");
    if (alert.rule.empty()) return make_error(ErrorCode::kSchema, "alert has no rule name");
    if (alert.severity < kSeverityMin || alert.severity > kSeverityMax) {
        return make_error(ErrorCode::kSchema, "alert severity " + std::to_string(alert.severity) +
                                                  " is outside 1..4");
    }
    if (alert.kind == AlertKind::kNetwork && !alert.network) {
        return make_error(ErrorCode::kSchema, "network alert has no network context");
    }
    if (alert.kind == AlertKind::kFile && !alert.file) {
        return make_error(ErrorCode::kSchema, "file alert has no file context");
    }
    if (alert.source == RuleSource::kIntel && !alert.intel) {
        return make_error(ErrorCode::kSchema, "intel alert has no intel context");
    }
    if (alert.matches.size() > kMaxStringMatches) {
        return make_error(ErrorCode::kSchema, "alert has " + std::to_string(alert.matches.size()) +
                                                  " string matches, more than " +
                                                  std::to_string(kMaxStringMatches));
    }
    for (const auto& m : alert.matches) {
        if (m.data.size() > kMaxMatchExcerpt) {
            return make_error(ErrorCode::kSchema, "match " + m.identifier + " keeps " +
                                                      std::to_string(m.data.size()) +
                                                      " bytes, more than " +
                                                      std::to_string(kMaxMatchExcerpt));
        }
    }
    return {};
}

bool add_match(Alert& alert, std::string identifier, std::uint64_t offset, std::string_view data) {
    if (alert.matches.size() >= kMaxStringMatches) return false;
    StringMatch m;
    m.identifier = std::move(identifier);
    m.offset = offset;
    m.length = static_cast<std::uint32_t>(data.size());
    m.data = std::string(data.substr(0, kMaxMatchExcerpt));
    alert.matches.push_back(std::move(m));
    return true;
}

std::string format_timestamp(std::int64_t ns) {
    std::int64_t secs = ns / 1000000000;
    std::int64_t frac = ns % 1000000000;
    if (frac < 0) {
        frac += 1000000000;
        secs -= 1;
    }
    // Records of one second share their date and time of day: gmtime and the formatting of
    // those six fields are done once per second and thread, the nanoseconds each time.
    thread_local std::int64_t cached_secs = 0;
    thread_local char cached[32] = {};
    thread_local std::size_t cached_len = 0;
    if (cached_len == 0 || secs != cached_secs) {
        const auto t = static_cast<std::time_t>(secs);
        std::tm tm{};
        gmtime_r(&t, &tm);
        const int n = std::snprintf(cached, sizeof cached, "%04d-%02d-%02dT%02d:%02d:%02d.",
                                    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                                    tm.tm_min, tm.tm_sec);
        cached_len = n > 0 ? std::min(static_cast<std::size_t>(n), sizeof cached - 1) : 0;
        cached_secs = secs;
    }
    std::string out;
    out.reserve(cached_len + 10);
    out.append(cached, cached_len);
    char digits[9];
    for (int i = 8; i >= 0; --i) {
        digits[i] = static_cast<char>('0' + frac % 10);
        frac /= 10;
    }
    out.append(digits, sizeof digits);
    out += 'Z';
    return out;
}

namespace {

bool read_int(std::string_view text, std::size_t pos, std::size_t len, int& out) {
    if (pos + len > text.size()) return false;
    const char* first = text.data() + pos;
    auto [ptr, ec] = std::from_chars(first, first + len, out);
    return ec == std::errc() && ptr == first + len;
}

}  // namespace

Result<std::int64_t> parse_timestamp(std::string_view text) {
    // YYYY-MM-DDTHH:MM:SS[.fraction](Z|+00:00|+0000)
    auto bad = [&] {
        return make_error(ErrorCode::kParse, "timestamp '" + std::string(text) +
                                                 "' is not YYYY-MM-DDTHH:MM:SS[.fraction]Z");
    };
    int year = 0, mon = 0, day = 0, hour = 0, min = 0, sec = 0;
    if (text.size() < 20 || text[4] != '-' || text[7] != '-' || text[10] != 'T' ||
        text[13] != ':' || text[16] != ':' || !read_int(text, 0, 4, year) ||
        !read_int(text, 5, 2, mon) || !read_int(text, 8, 2, day) || !read_int(text, 11, 2, hour) ||
        !read_int(text, 14, 2, min) || !read_int(text, 17, 2, sec)) {
        return bad();
    }
    if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60) {
        return bad();
    }
    std::size_t pos = 19;
    std::int64_t frac = 0;
    if (pos < text.size() && text[pos] == '.') {
        ++pos;
        int digits = 0;
        while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
            if (digits < 9) {
                frac = frac * 10 + (text[pos] - '0');
                ++digits;
            }
            ++pos;
        }
        if (digits == 0) return bad();
        for (; digits < 9; ++digits) frac *= 10;
    }
    const std::string_view zone = text.substr(pos);
    if (zone != "Z" && zone != "+00:00" && zone != "+0000") return bad();
    const std::chrono::year_month_day ymd{std::chrono::year{year},
                                          std::chrono::month{static_cast<unsigned>(mon)},
                                          std::chrono::day{static_cast<unsigned>(day)}};
    if (!ymd.ok()) return bad();
    const auto days = std::chrono::sys_days{ymd}.time_since_epoch().count();
    const std::int64_t secs = static_cast<std::int64_t>(days) * 86400 + hour * 3600 + min * 60 + sec;
    return secs * 1000000000 + frac;
}

std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

}  // namespace senningen::common
