// Tests of roles, password hashing, secrets and the login limiter.
#include "senningen/collector/auth.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <set>
#include <thread>
#include <vector>

namespace senningen::collector {
namespace {

using namespace std::chrono_literals;
using Clock = LoginLimiter::Clock;

// Low so the tests are quick; the default is checked on its own once.
constexpr std::uint32_t kFast = kMinPbkdf2Iterations;

TEST(Roles, NamesRoundTripAndUnknownNamesAreRefused) {
    for (const Role r : {Role::kAnalyst, Role::kRuleAuthor, Role::kAdmin}) {
        EXPECT_EQ(parse_role(to_string(r)), r);
    }
    EXPECT_EQ(parse_role("Admin"), std::nullopt);
    EXPECT_EQ(parse_role("rule_author"), std::nullopt);
    EXPECT_EQ(parse_role(""), std::nullopt);
}

TEST(Roles, EachRoleHasExactlyItsPermissions) {
    struct Row {
        Permission p;
        bool analyst, author, admin;
    };
    const Row table[] = {
        {Permission::kReadAlerts, true, true, true},
        {Permission::kReadAgents, true, true, true},
        {Permission::kTriageAlerts, true, false, true},
        {Permission::kPublishRules, false, true, true},
        {Permission::kManageUsers, false, false, true},
    };
    for (const Row& row : table) {
        EXPECT_EQ(allows(Role::kAnalyst, row.p), row.analyst);
        EXPECT_EQ(allows(Role::kRuleAuthor, row.p), row.author);
        EXPECT_EQ(allows(Role::kAdmin, row.p), row.admin);
    }
}

TEST(Passwords, TheRightPasswordVerifiesAndNoOtherDoes) {
    auto stored = hash_password("correct horse battery", kFast);
    ASSERT_TRUE(stored) << stored.error().message;
    EXPECT_TRUE(verify_password("correct horse battery", *stored));
    EXPECT_FALSE(verify_password("correct horse batterY", *stored));
    EXPECT_FALSE(verify_password("correct horse battery ", *stored));
    EXPECT_FALSE(verify_password("", *stored));
}

TEST(Passwords, TheSamePasswordHashesDifferentlyEachTime) {
    auto a = hash_password("the same password", kFast);
    auto b = hash_password("the same password", kFast);
    ASSERT_TRUE(a && b);
    EXPECT_NE(*a, *b) << "salted";
    EXPECT_TRUE(verify_password("the same password", *a));
    EXPECT_TRUE(verify_password("the same password", *b));
}

TEST(Passwords, TheStoredFormIsPbkdf2WithItsParameters) {
    auto stored = hash_password("a long enough one", 1234);
    ASSERT_TRUE(stored);
    // scheme $ iterations $ 16-byte salt $ 32-byte key, hex.
    ASSERT_EQ(stored->rfind("pbkdf2-sha256$1234$", 0), 0U) << *stored;
    EXPECT_EQ(stored->size(), std::string("pbkdf2-sha256$1234$").size() + 32 + 1 + 64);
}

TEST(Passwords, MatchesAnIndependentPbkdf2Computation) {
    auto stored = hash_password("independent check", 2000);
    ASSERT_TRUE(stored);
    const std::string salt_hex = stored->substr(19, 32);
    const std::string key_hex = stored->substr(19 + 33);
    std::vector<unsigned char> salt;
    for (std::size_t i = 0; i < salt_hex.size(); i += 2) {
        salt.push_back(static_cast<unsigned char>(std::stoi(salt_hex.substr(i, 2), nullptr, 16)));
    }
    unsigned char key[32];
    const std::string pw = "independent check";
    ASSERT_EQ(PKCS5_PBKDF2_HMAC(pw.data(), static_cast<int>(pw.size()), salt.data(),
                                static_cast<int>(salt.size()), 2000, EVP_sha256(), 32, key),
              1);
    std::string hex;
    for (unsigned char c : key) {
        static constexpr char d[] = "0123456789abcdef";
        hex += d[c >> 4];
        hex += d[c & 0xf];
    }
    EXPECT_EQ(hex, key_hex);
}

TEST(Passwords, TooShortTooLongAndTooFewIterationsAreRefused) {
    auto short_pw = hash_password("elevenchars", kFast);
    ASSERT_FALSE(short_pw);
    EXPECT_EQ(short_pw.error().code, common::ErrorCode::kInvalidArgument);
    EXPECT_NE(short_pw.error().message.find("at least 12"), std::string::npos);
    EXPECT_TRUE(hash_password("twelve chars", kFast));
    auto long_pw = hash_password(std::string(kMaxPasswordLength + 1, 'x'), kFast);
    ASSERT_FALSE(long_pw);
    EXPECT_NE(long_pw.error().message.find("too long"), std::string::npos);
    auto weak = hash_password("a fine password", kMinPbkdf2Iterations - 1);
    ASSERT_FALSE(weak);
    EXPECT_NE(weak.error().message.find("iterations"), std::string::npos);
}

TEST(Passwords, MalformedStoredHashesNeverVerify) {
    auto good = hash_password("malformed tests", kFast);
    ASSERT_TRUE(good);
    const std::string& g = *good;
    const std::vector<std::string> bad = {
        "",
        "pbkdf2-sha256",
        "pbkdf2-sha256$$$",
        "pbkdf2-sha1" + g.substr(13),                   // another scheme
        "pbkdf2-sha256$10" + g.substr(g.find('$', 14)),  // below the minimum iterations
        "pbkdf2-sha256$x1000" + g.substr(g.find('$', 14)),
        g.substr(0, g.size() - 2),  // key cut short
        g + "00",                   // key too long
        g + "$extra",
        g.substr(0, g.size() - 1) + "G",  // not hex
        "plaintext password",
    };
    for (const auto& s : bad) {
        EXPECT_FALSE(verify_password("malformed tests", s)) << s;
        EXPECT_TRUE(needs_rehash(s)) << s;
    }
}

TEST(Passwords, WeakerHashesNeedARehash) {
    auto weak = hash_password("rehash me please", 2000);
    ASSERT_TRUE(weak);
    EXPECT_TRUE(needs_rehash(*weak, 3000));
    EXPECT_FALSE(needs_rehash(*weak, 2000));
}

TEST(Passwords, TheDefaultCostIsTheOwaspFigure) {
    auto stored = hash_password("default iterations");
    ASSERT_TRUE(stored);
    EXPECT_EQ(stored->rfind("pbkdf2-sha256$600000$", 0), 0U);
    EXPECT_TRUE(verify_password("default iterations", *stored));
    EXPECT_FALSE(needs_rehash(*stored));
}

TEST(Secrets, TokensAndSessionsAreDistinctPrefixedAndRandom) {
    std::set<std::string> seen;
    for (int i = 0; i < 200; ++i) {
        auto t = new_api_token();
        auto s = new_session_id();
        ASSERT_TRUE(t && s);
        EXPECT_EQ(t->rfind("snt_", 0), 0U);
        EXPECT_EQ(s->rfind("sns_", 0), 0U);
        EXPECT_EQ(t->size(), 4U + 64U);
        EXPECT_TRUE(seen.insert(*t).second);
        EXPECT_TRUE(seen.insert(*s).second);
    }
}

TEST(Secrets, DigestIsSha256Hex) {
    // SHA-256("abc"), FIPS 180-2 appendix B.1.
    EXPECT_EQ(secret_digest("abc"),
              "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_NE(secret_digest("snt_a"), secret_digest("snt_b"));
}

TEST(LoginLimiterTest, LocksOutAfterTheLimitAndLetsInAfterTheLockout) {
    LoginLimiter limiter({3, 60s, 120s, 100});
    const auto t0 = Clock::now();
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(limiter.retry_after("alice", t0 + i * 1s), std::nullopt);
        limiter.record_failure("alice", t0 + i * 1s);
    }
    auto wait = limiter.retry_after("alice", t0 + 3s);
    ASSERT_TRUE(wait.has_value());
    EXPECT_EQ(*wait, 119s) << "from the last failure at t0+2s";
    EXPECT_EQ(limiter.retry_after("bob", t0 + 3s), std::nullopt) << "keys are independent";
    EXPECT_TRUE(limiter.retry_after("alice", t0 + 121s).has_value());
    EXPECT_EQ(limiter.retry_after("alice", t0 + 122s), std::nullopt);
    EXPECT_EQ(limiter.refused(), 2U);
}

TEST(LoginLimiterTest, FailuresOutsideTheWindowDoNotAddUp) {
    LoginLimiter limiter({3, 60s, 120s, 100});
    const auto t0 = Clock::now();
    limiter.record_failure("carol", t0);
    limiter.record_failure("carol", t0 + 10s);
    limiter.record_failure("carol", t0 + 70s);  // the window began at t0: a new one starts
    EXPECT_EQ(limiter.retry_after("carol", t0 + 71s), std::nullopt);
    limiter.record_failure("carol", t0 + 72s);
    limiter.record_failure("carol", t0 + 73s);
    EXPECT_TRUE(limiter.retry_after("carol", t0 + 74s).has_value());
}

TEST(LoginLimiterTest, SuccessClearsTheCount) {
    LoginLimiter limiter({2, 60s, 60s, 100});
    const auto t0 = Clock::now();
    limiter.record_failure("dave", t0);
    limiter.record_success("dave");
    limiter.record_failure("dave", t0 + 1s);
    EXPECT_EQ(limiter.retry_after("dave", t0 + 2s), std::nullopt);
    EXPECT_EQ(limiter.tracked(), 1U);
}

TEST(LoginLimiterTest, MemoryStaysBoundedUnderAFloodOfKeys) {
    LoginLimiter limiter({5, 60s, 60s, 1000});
    const auto t0 = Clock::now();
    for (int i = 0; i < 20'000; ++i) {
        limiter.record_failure("198.51.100." + std::to_string(i), t0 + std::chrono::milliseconds(i));
        ASSERT_LE(limiter.tracked(), 1000U);
    }
    // The newest keys are the ones kept.
    for (int i = 0; i < 4; ++i) limiter.record_failure("198.51.100.19999", t0 + 30s);
    EXPECT_TRUE(limiter.retry_after("198.51.100.19999", t0 + 31s).has_value());
}

TEST(LoginLimiterTest, NoFailureIsLostBetweenThreads) {
    // Exactly the limit, recorded from four threads at once: a lost update would leave the key
    // one short of the lockout.
    LoginLimiter limiter({4000, 600s, 600s, 100000});
    const auto t0 = Clock::now();
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < 1000; ++i) {
                (void)limiter.retry_after("shared", t0);
                limiter.record_failure("shared", t0);
            }
        });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(limiter.tracked(), 1U);
    EXPECT_TRUE(limiter.retry_after("shared", t0 + 1s).has_value());
}

}  // namespace
}  // namespace senningen::collector
