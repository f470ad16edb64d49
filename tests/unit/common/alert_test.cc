#include "senningen/common/alert.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <set>
#include <thread>
#include <vector>

#include "alert_factory.h"

namespace senningen::common {
namespace {

TEST(Uuid, IsVersion7AndUnique) {
    std::set<std::string> seen;
    for (int i = 0; i < 1000; ++i) {
        const std::string id = new_uuid();
        ASSERT_TRUE(is_uuid(id)) << id;
        EXPECT_EQ(id[14], '7');
        EXPECT_NE(std::string("89ab").find(id[19]), std::string::npos) << id;
        EXPECT_TRUE(seen.insert(id).second);
    }
}

// Random bits come from a per-thread block of OpenSSL's bytes: threads must not share one,
// and a forked child must not hand out what its parent will (both would make equal ids).
TEST(Uuid, ThreadsAndForkedChildrenNeverRepeatAnId) {
    std::vector<std::vector<std::string>> per_thread(4);
    std::vector<std::thread> threads;
    for (auto& ids : per_thread) {
        threads.emplace_back([&ids] {
            for (int i = 0; i < 500; ++i) ids.push_back(new_uuid());
        });
    }
    for (auto& t : threads) t.join();
    std::set<std::string> seen;
    for (const auto& ids : per_thread) {
        for (const auto& id : ids) EXPECT_TRUE(seen.insert(id).second) << id;
    }

    (void)new_uuid();  // the block is filled; the child inherits the rest of it
    int out[2];
    ASSERT_EQ(::pipe(out), 0);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        std::string ids;
        for (int i = 0; i < 20; ++i) ids += new_uuid();
        const ssize_t wrote = ::write(out[1], ids.data(), ids.size());
        const bool ok = wrote == static_cast<ssize_t>(ids.size());
        ::_exit(ok ? 0 : 1);
    }
    ::close(out[1]);
    std::string from_child;
    char buf[256];
    for (ssize_t n = 0; (n = ::read(out[0], buf, sizeof buf)) > 0;) {
        from_child.append(buf, static_cast<std::size_t>(n));
    }
    ::close(out[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_EQ(from_child.size(), 20u * 36u);
    // The random parts are compared (after the 48-bit time): the two ran at different times.
    std::set<std::string> parent;
    for (int i = 0; i < 20; ++i) parent.insert(new_uuid().substr(14));
    for (std::size_t i = 0; i < 20; ++i) {
        const std::string id = from_child.substr(i * 36, 36);
        EXPECT_TRUE(is_uuid(id)) << id;
        EXPECT_EQ(parent.count(id.substr(14)), 0u) << id;
    }
}

TEST(Uuid, StartsWithTheTimeInMillisecondsSoThatLaterIdsSortLater) {
    const auto before_ms = static_cast<std::uint64_t>(now_ns() / 1'000'000);
    const std::string first = new_uuid();
    const auto after_ms = static_cast<std::uint64_t>(now_ns() / 1'000'000);
    const std::uint64_t stamped = std::stoull(first.substr(0, 8) + first.substr(9, 4), nullptr, 16);
    EXPECT_GE(stamped, before_ms);
    EXPECT_LE(stamped, after_ms);
    // Two milliseconds on, every id sorts after the first (within one millisecond the order
    // is random).
    const auto until = now_ns() + 2'000'000;
    while (now_ns() < until) {
    }
    for (int i = 0; i < 100; ++i) EXPECT_LT(first, new_uuid());
}

TEST(Uuid, RejectsNearMisses) {
    EXPECT_FALSE(is_uuid(""));
    EXPECT_FALSE(is_uuid("0123456789abcdef0123456789abcdef0123"));
    EXPECT_FALSE(is_uuid("0123456-89ab-4def-8123-456789abcdef0"));
    EXPECT_FALSE(is_uuid("01234567-89AB-4DEF-8123-456789ABCDEF"));  // uppercase
    EXPECT_TRUE(is_uuid("01234567-89ab-4def-8123-456789abcdef"));
}

TEST(Validate, AcceptsEachShape) {
    EXPECT_TRUE(validate(testing::network_alert()).ok());
    EXPECT_TRUE(validate(testing::intel_alert()).ok());
    EXPECT_TRUE(validate(testing::file_alert()).ok());
}

TEST(Validate, NamesWhatIsWrong) {
    Alert a = testing::network_alert();
    a.severity = 5;
    auto r = validate(a);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::kSchema);
    EXPECT_NE(r.error().message.find("severity 5"), std::string::npos);

    a = testing::network_alert();
    a.network.reset();
    EXPECT_NE(validate(a).error().message.find("network context"), std::string::npos);

    a = testing::file_alert();
    a.file.reset();
    EXPECT_NE(validate(a).error().message.find("file context"), std::string::npos);

    a = testing::intel_alert();
    a.intel.reset();
    EXPECT_NE(validate(a).error().message.find("intel context"), std::string::npos);

    a = testing::network_alert();
    a.id = "not-a-uuid";
    EXPECT_NE(validate(a).error().message.find("not-a-uuid"), std::string::npos);

    a = testing::network_alert();
    a.agent_id.clear();
    EXPECT_FALSE(validate(a).ok());
}

TEST(AddMatch, KeepsTheBounds) {
    Alert a = testing::network_alert();
    a.matches.clear();
    const std::string big(1000, 'x');
    for (std::size_t i = 0; i < kMaxStringMatches; ++i) {
        EXPECT_TRUE(add_match(a, "$s", i, big));
    }
    EXPECT_FALSE(add_match(a, "$s", 99, big));
    EXPECT_EQ(a.matches.size(), kMaxStringMatches);
    EXPECT_EQ(a.matches[0].data.size(), kMaxMatchExcerpt);
    EXPECT_EQ(a.matches[0].length, 1000u);
    EXPECT_TRUE(validate(a).ok());
}

TEST(Timestamp, FormatsNanosecondsInUtc) {
    EXPECT_EQ(format_timestamp(0), "1970-01-01T00:00:00.000000000Z");
    EXPECT_EQ(format_timestamp(1768467600123456789LL), "2026-01-15T09:00:00.123456789Z");
    EXPECT_EQ(format_timestamp(-1), "1969-12-31T23:59:59.999999999Z");
}

TEST(Timestamp, SameSecondAndNextSecondFormatAlike) {
    // The date and time of day are kept per second: a run of time stamps within one second,
    // then across a second, a day and back, must each be formatted from scratch alike.
    EXPECT_EQ(format_timestamp(1768467600000000001LL), "2026-01-15T09:00:00.000000001Z");
    EXPECT_EQ(format_timestamp(1768467600999999999LL), "2026-01-15T09:00:00.999999999Z");
    EXPECT_EQ(format_timestamp(1768467601000000000LL), "2026-01-15T09:00:01.000000000Z");
    EXPECT_EQ(format_timestamp(1768553999500000000LL), "2026-01-16T08:59:59.500000000Z");
    EXPECT_EQ(format_timestamp(1768467600123456789LL), "2026-01-15T09:00:00.123456789Z");
    EXPECT_EQ(format_timestamp(0), "1970-01-01T00:00:00.000000000Z");
}

TEST(Timestamp, ParsesWhatItFormatsAndCommonVariants) {
    for (std::int64_t ns : {0LL, 1LL, 1768467600123456789LL, 951782400000000000LL /*2000-02-29*/}) {
        auto r = parse_timestamp(format_timestamp(ns));
        ASSERT_TRUE(r.ok());
        EXPECT_EQ(*r, ns);
    }
    EXPECT_EQ(*parse_timestamp("2026-01-15T09:00:00Z"), 1768467600000000000LL);
    EXPECT_EQ(*parse_timestamp("2026-01-15T09:00:00.5+00:00"), 1768467600500000000LL);
    EXPECT_EQ(*parse_timestamp("2026-01-15T09:00:00.534255+0000"), 1768467600534255000LL);
}

TEST(Timestamp, RejectsGarbageWithTheText) {
    for (const char* bad : {"", "yesterday", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z",
                            "2026-01-15 09:00:00Z", "2026-01-15T09:00:00", "2026-01-15T09:00:00.Z",
                            "2026-01-15T09:00:00+01:00", "2026-01-15T25:00:00Z"}) {
        auto r = parse_timestamp(bad);
        ASSERT_FALSE(r.ok()) << bad;
        EXPECT_EQ(r.error().code, ErrorCode::kParse);
        EXPECT_NE(r.error().message.find(bad), std::string::npos);
    }
}

TEST(Enums, RoundTripAndRejectUnknown) {
    for (auto k : {AlertKind::kNetwork, AlertKind::kFile}) {
        EXPECT_EQ(*parse_alert_kind(to_string(k)), k);
    }
    for (auto s : {RuleSource::kYara, RuleSource::kIntel, RuleSource::kPolicy}) {
        EXPECT_EQ(*parse_rule_source(to_string(s)), s);
    }
    EXPECT_FALSE(parse_alert_kind("packet").ok());
    EXPECT_FALSE(parse_rule_source("sigma").ok());
}

}  // namespace
}  // namespace senningen::common
