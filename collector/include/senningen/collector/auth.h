// Who may do what on the collector's API and web UI: roles and what each allows, password
// hashing with a slow KDF, random bearer tokens and session ids kept only as digests, and a
// limiter that slows password guessing. Storage of accounts and sessions is elsewhere (the
// store); everything here is pure and thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "senningen/common/result.h"

namespace senningen::collector {

// The roles of docs/collector.md, from least to most trusted. Pinned numbers: stored.
enum class Role : std::uint8_t {
    kAnalyst = 1,     // reviews and triages alerts, reads agents, exports
    kRuleAuthor = 2,  // reads alerts and agents, publishes rule packs and indicators
    kAdmin = 3,       // everything, including accounts
};

std::string_view to_string(Role role);                  // "analyst", "rule-author", "admin"
std::optional<Role> parse_role(std::string_view name);  // exact names only

// What an endpoint needs. Every route names one; a role either has it or the answer is 403.
enum class Permission : std::uint8_t {
    kReadAlerts,    // list, detail, aggregations, exports
    kTriageAlerts,  // status, assignee, comments, bulk actions
    kReadAgents,
    kPublishRules,  // rule packs and indicators
    kManageUsers,
};

bool allows(Role role, Permission permission);

// Password hashes are self-describing strings, "pbkdf2-sha256$ITERATIONS$SALT$KEY" (salt and
// key in lower-case hex), so the iteration count can rise later without invalidating what is
// stored: verify_password() reads it from the string and needs_rehash() says when a login
// should store a fresh hash.
inline constexpr std::uint32_t kDefaultPbkdf2Iterations = 600'000;  // OWASP 2023, SHA-256
inline constexpr std::uint32_t kMinPbkdf2Iterations = 1'000;        // tests may go this low
inline constexpr std::size_t kMinPasswordLength = 12;
inline constexpr std::size_t kMaxPasswordLength = 1024;  // a KDF over megabytes is a DoS

// kInvalidArgument when the password is too short or too long, or iterations is below the
// minimum; the message says which.
common::Result<std::string> hash_password(std::string_view password,
                                          std::uint32_t iterations = kDefaultPbkdf2Iterations);

// False for a wrong password and for a stored string that is not a hash this code made
// (never an exception); the key comparison takes the same time wherever they differ.
bool verify_password(std::string_view password, std::string_view stored);

bool needs_rehash(std::string_view stored, std::uint32_t iterations = kDefaultPbkdf2Iterations);

// A new secret for a bearer token or a session cookie: 32 random bytes from OpenSSL's CSPRNG
// in hex, after a prefix that says what it is ("snt_" tokens, "sns_" sessions) so that a
// leaked one is recognisable in a log or a repository. kInternal if the CSPRNG fails.
common::Result<std::string> new_api_token();
common::Result<std::string> new_session_id();

// What the store keeps instead of a token or session id: its SHA-256 in hex. A stolen
// database then holds nothing that logs anyone in.
std::string secret_digest(std::string_view secret);

// Slows password guessing, per key (an account name, a client address): after
// `max_failures` failures within `window`, further attempts are refused until `lockout` has
// passed since the last failure. A success clears the key. Memory stays bounded: at most
// `max_keys` keys are tracked; beyond that the stalest are forgotten first.
class LoginLimiter {
public:
    using Clock = std::chrono::steady_clock;

    struct Options {
        std::size_t max_failures = 5;
        std::chrono::seconds window{300};
        std::chrono::seconds lockout{300};
        std::size_t max_keys = 100'000;
    };

    LoginLimiter();
    explicit LoginLimiter(Options options);

    // When the key may try again: nullopt if now, else how long to wait (for Retry-After).
    std::optional<std::chrono::seconds> retry_after(const std::string& key, Clock::time_point now);
    void record_failure(const std::string& key, Clock::time_point now);
    void record_success(const std::string& key);

    std::size_t tracked() const;
    std::uint64_t refused() const;  // attempts refused since start, for the metrics

private:
    struct Entry {
        std::size_t failures = 0;
        Clock::time_point first_failure;
        Clock::time_point last_failure;
    };
    void prune(Clock::time_point now);

    Options options_;
    mutable std::mutex mutex_;
    std::unordered_map<std::string, Entry> entries_;
    std::uint64_t refused_ = 0;
};

}  // namespace senningen::collector
