#include "senningen/collector/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <vector>

#include "senningen/common/openssl_util.h"

namespace senningen::collector {

namespace {

constexpr std::string_view kHashScheme = "pbkdf2-sha256";
constexpr std::size_t kSaltBytes = 16;
constexpr std::size_t kKeyBytes = 32;
constexpr std::size_t kSecretBytes = 32;

using common::to_hex;

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;  // upper case is not what to_hex() writes: not ours
}

std::optional<std::vector<unsigned char>> from_hex(std::string_view text) {
    if (text.empty() || text.size() % 2 != 0) return std::nullopt;
    std::vector<unsigned char> out(text.size() / 2);
    for (std::size_t i = 0; i < out.size(); ++i) {
        const int hi = hex_value(text[2 * i]);
        const int lo = hex_value(text[2 * i + 1]);
        if (hi < 0 || lo < 0) return std::nullopt;
        out[i] = static_cast<unsigned char>(hi << 4 | lo);
    }
    return out;
}

// RAND_bytes fails only when the CSPRNG cannot be seeded; no secret is made then.
bool random_bytes(unsigned char* out, std::size_t n) {
    return RAND_bytes(out, static_cast<int>(n)) == 1;
}

common::Error no_randomness() {
    return common::make_error(common::ErrorCode::kInternal,
                              "OpenSSL's random generator failed: no secret can be made");
}

bool pbkdf2(std::string_view password, const unsigned char* salt, std::size_t salt_len,
            std::uint32_t iterations, unsigned char* key, std::size_t key_len) {
    return PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()), salt,
                             static_cast<int>(salt_len), static_cast<int>(iterations),
                             EVP_sha256(), static_cast<int>(key_len), key) == 1;
}

struct ParsedHash {
    std::uint32_t iterations = 0;
    std::vector<unsigned char> salt;
    std::vector<unsigned char> key;
};

// "pbkdf2-sha256$ITERATIONS$SALT$KEY", or nothing.
std::optional<ParsedHash> parse_hash(std::string_view stored) {
    std::array<std::string_view, 4> parts;
    for (std::size_t i = 0; i < parts.size(); ++i) {
        const auto dollar = stored.find('$');
        if (i + 1 < parts.size()) {
            if (dollar == std::string_view::npos) return std::nullopt;
            parts[i] = stored.substr(0, dollar);
            stored.remove_prefix(dollar + 1);
        } else {
            if (dollar != std::string_view::npos) return std::nullopt;
            parts[i] = stored;
        }
    }
    if (parts[0] != kHashScheme) return std::nullopt;
    ParsedHash h;
    const auto* end = parts[1].data() + parts[1].size();
    const auto [ptr, ec] = std::from_chars(parts[1].data(), end, h.iterations);
    if (ec != std::errc() || ptr != end || h.iterations < kMinPbkdf2Iterations) {
        return std::nullopt;
    }
    auto salt = from_hex(parts[2]);
    auto key = from_hex(parts[3]);
    if (!salt || !key || key->size() != kKeyBytes) return std::nullopt;
    h.salt = std::move(*salt);
    h.key = std::move(*key);
    return h;
}

common::Result<std::string> new_secret(std::string_view prefix) {
    std::array<unsigned char, kSecretBytes> bytes{};
    if (!random_bytes(bytes.data(), bytes.size())) return no_randomness();
    return std::string(prefix) + to_hex(bytes.data(), bytes.size());
}

}  // namespace

std::string_view to_string(Role role) {
    switch (role) {
        case Role::kAnalyst: return "analyst";
        case Role::kRuleAuthor: return "rule-author";
        case Role::kAdmin: return "admin";
    }
    return "unknown";
}

std::optional<Role> parse_role(std::string_view name) {
    for (const Role r : {Role::kAnalyst, Role::kRuleAuthor, Role::kAdmin}) {
        if (to_string(r) == name) return r;
    }
    return std::nullopt;
}

bool allows(Role role, Permission permission) {
    switch (permission) {
        case Permission::kReadAlerts:
        case Permission::kReadAgents:
            return true;  // every role reads: a rule author checks what a rule fires on
        case Permission::kTriageAlerts:
            return role == Role::kAnalyst || role == Role::kAdmin;
        case Permission::kPublishRules:
            return role == Role::kRuleAuthor || role == Role::kAdmin;
        case Permission::kManageUsers:
            return role == Role::kAdmin;
    }
    return false;
}

common::Result<std::string> hash_password(std::string_view password, std::uint32_t iterations) {
    if (password.size() < kMinPasswordLength) {
        return common::make_error(common::ErrorCode::kInvalidArgument,
                                  "password is too short: at least " +
                                      std::to_string(kMinPasswordLength) + " characters");
    }
    if (password.size() > kMaxPasswordLength) {
        return common::make_error(common::ErrorCode::kInvalidArgument,
                                  "password is too long: at most " +
                                      std::to_string(kMaxPasswordLength) + " characters");
    }
    if (iterations < kMinPbkdf2Iterations) {
        return common::make_error(common::ErrorCode::kInvalidArgument,
                                  "PBKDF2 iterations " + std::to_string(iterations) +
                                      " is below the minimum of " +
                                      std::to_string(kMinPbkdf2Iterations));
    }
    std::array<unsigned char, kSaltBytes> salt{};
    if (!random_bytes(salt.data(), salt.size())) return no_randomness();
    std::array<unsigned char, kKeyBytes> key{};
    if (!pbkdf2(password, salt.data(), salt.size(), iterations, key.data(), key.size())) {
        return common::make_error(common::ErrorCode::kInternal, "OpenSSL's PBKDF2 failed");
    }
    return std::string(kHashScheme) + "$" + std::to_string(iterations) + "$" +
           to_hex(salt.data(), salt.size()) + "$" + to_hex(key.data(), key.size());
}

bool verify_password(std::string_view password, std::string_view stored) {
    if (password.size() > kMaxPasswordLength) return false;
    const auto h = parse_hash(stored);
    if (!h) return false;
    std::array<unsigned char, kKeyBytes> key{};
    if (!pbkdf2(password, h->salt.data(), h->salt.size(), h->iterations, key.data(),
                key.size())) {
        return false;
    }
    return CRYPTO_memcmp(key.data(), h->key.data(), key.size()) == 0;
}

bool needs_rehash(std::string_view stored, std::uint32_t iterations) {
    const auto h = parse_hash(stored);
    return !h || h->iterations < iterations || h->salt.size() != kSaltBytes;
}

common::Result<std::string> new_api_token() { return new_secret("snt_"); }
common::Result<std::string> new_session_id() { return new_secret("sns_"); }

std::string secret_digest(std::string_view secret) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
    unsigned int n = 0;
    EVP_Digest(secret.data(), secret.size(), md.data(), &n, EVP_sha256(), nullptr);
    return to_hex(md.data(), n);
}

LoginLimiter::LoginLimiter() : LoginLimiter(Options{}) {}
LoginLimiter::LoginLimiter(Options options) : options_(options) {}

std::optional<std::chrono::seconds> LoginLimiter::retry_after(const std::string& key,
                                                              Clock::time_point now) {
    const std::lock_guard<std::mutex> lock(mutex_);
    const auto it = entries_.find(key);
    if (it == entries_.end()) return std::nullopt;
    const Entry& e = it->second;
    if (e.failures >= options_.max_failures) {
        const auto until = e.last_failure + options_.lockout;
        if (now < until) {
            ++refused_;
            // Rounded up, so that a client that waits exactly this long is let in.
            const auto left = std::chrono::ceil<std::chrono::seconds>(until - now);
            return std::max(left, std::chrono::seconds(1));
        }
        entries_.erase(it);  // the lockout has passed: a clean slate
        return std::nullopt;
    }
    if (now - e.first_failure > options_.window) entries_.erase(it);
    return std::nullopt;
}

void LoginLimiter::record_failure(const std::string& key, Clock::time_point now) {
    const std::lock_guard<std::mutex> lock(mutex_);
    auto it = entries_.find(key);
    if (it == entries_.end()) {
        if (entries_.size() >= options_.max_keys) prune(now);
        it = entries_.emplace(key, Entry{0, now, now}).first;
    }
    Entry& e = it->second;
    if (e.failures < options_.max_failures && now - e.first_failure > options_.window) {
        e.failures = 0;
        e.first_failure = now;
    }
    ++e.failures;
    e.last_failure = now;
}

void LoginLimiter::record_success(const std::string& key) {
    const std::lock_guard<std::mutex> lock(mutex_);
    entries_.erase(key);
}

std::size_t LoginLimiter::tracked() const {
    const std::lock_guard<std::mutex> lock(mutex_);
    return entries_.size();
}

std::uint64_t LoginLimiter::refused() const {
    const std::lock_guard<std::mutex> lock(mutex_);
    return refused_;
}

// Called with the lock held when the table is full. Entries whose window and lockout have both
// passed go first; if that frees too little, the stalest tenth goes, so that a flood of new
// keys costs one linear pass per max_keys/10 insertions rather than one per insertion.
void LoginLimiter::prune(Clock::time_point now) {
    const auto keep_for = std::max(options_.window, options_.lockout);
    std::erase_if(entries_, [&](const auto& kv) { return now - kv.second.last_failure > keep_for; });
    if (entries_.size() < options_.max_keys) return;
    std::vector<Clock::time_point> ages;
    ages.reserve(entries_.size());
    for (const auto& [k, e] : entries_) ages.push_back(e.last_failure);
    const std::size_t drop = std::max<std::size_t>(1, entries_.size() / 10);
    std::nth_element(ages.begin(), ages.begin() + static_cast<std::ptrdiff_t>(drop - 1),
                     ages.end());
    const auto cutoff = ages[drop - 1];
    std::size_t dropped = 0;
    std::erase_if(entries_, [&](const auto& kv) {
        if (dropped < drop && kv.second.last_failure <= cutoff) {
            ++dropped;
            return true;
        }
        return false;
    });
}

}  // namespace senningen::collector
