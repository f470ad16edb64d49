// Accounts for the API tests: every /api/v1 resource but health and login needs credentials.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "senningen/collector/alert_store.h"
#include "senningen/collector/auth.h"

namespace senningen::collector::test {

inline constexpr const char* kTestPassword = "correct horse battery";

// Adds account NAME with ROLE (password kTestPassword, at the lowest KDF cost so tests stay
// fast) to STORE.
inline void add_account(AlertStore& store, const std::string& name, Role role) {
    auto hash = hash_password(kTestPassword, kMinPbkdf2Iterations);
    ASSERT_TRUE(hash.ok()) << hash.error().message;
    auto added = store.add_user(UserAccount{name, role, *hash, 0, false});
    ASSERT_TRUE(added.ok()) << added.error().message;
}

// Adds account NAME with ROLE and a token for it; returns the Authorization header value.
inline std::string add_token_account(AlertStore& store, const std::string& name = "tester",
                                     Role role = Role::kAdmin) {
    add_account(store, name, role);
    auto token = new_api_token();
    EXPECT_TRUE(token.ok());
    auto added = store.add_api_token(secret_digest(*token), name, "test", 0);
    EXPECT_TRUE(added.ok()) << added.error().message;
    return "Bearer " + *token;
}

}  // namespace senningen::collector::test
