// Every route of the API against every role and no credentials, over every store backend. The
// table below is the specification (docs/collector.md, "Accounts"), written out here rather than
// taken from the server's own route table, and it must name exactly the routes the server has.
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "api_accounts.h"
#include "api_fixture.h"
#include "test_alerts.h"

namespace senningen::collector {
namespace {

using test::base_ns;
using test::make_alert;

// Who may use a route: anyone, any account, or the roles listed.
enum class Who { kAnyone, kAnyAccount, kReaders, kTriagers, kAdmins };

struct RouteSpec {
    std::string method;
    std::string path;
    Who who;
    std::string body;  // for POST and PATCH: a valid request
};

// "{id}" is replaced by an alert id, or an agent id under /api/v1/agents/.
const std::vector<RouteSpec>& route_specs() {
    static const std::vector<RouteSpec> specs = {
        {"GET", "/api/v1/health", Who::kAnyone, ""},
        {"GET", "/api/v1/openapi.json", Who::kAnyone, ""},
        {"POST", "/api/v1/login", Who::kAnyone,
         R"({"name": "admin-1", "password": "correct horse battery"})"},
        {"POST", "/api/v1/logout", Who::kAnyone, ""},
        {"GET", "/api/v1/me", Who::kAnyAccount, ""},
        {"GET", "/api/v1/users", Who::kAdmins, ""},
        {"GET", "/api/v1/alerts", Who::kReaders, ""},
        {"GET", "/api/v1/alerts/aggregate", Who::kReaders, ""},
        {"GET", "/api/v1/alerts/groups", Who::kReaders, ""},
        {"GET", "/api/v1/alerts/export", Who::kReaders, ""},
        {"POST", "/api/v1/alerts/bulk", Who::kTriagers,
         R"({"ids": ["{id}"], "status": "in_progress"})"},
        {"GET", "/api/v1/alerts/{id}", Who::kReaders, ""},
        {"PATCH", "/api/v1/alerts/{id}", Who::kTriagers, R"({"status": "escalated"})"},
        {"POST", "/api/v1/alerts/{id}/comments", Who::kTriagers, R"({"text": "seen"})"},
        {"GET", "/api/v1/agents", Who::kReaders, ""},
        {"GET", "/api/v1/agents/{id}", Who::kReaders, ""},
        {"GET", "/api/v1/metadata", Who::kReaders, ""},
    };
    return specs;
}

bool may(Who who, std::optional<Role> role) {
    switch (who) {
        case Who::kAnyone: return true;
        case Who::kAnyAccount:
        case Who::kReaders: return role.has_value();
        case Who::kTriagers: return role == Role::kAnalyst || role == Role::kAdmin;
        case Who::kAdmins: return role == Role::kAdmin;
    }
    return false;
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
    for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
        text.replace(at, from.size(), to);
    }
    return text;
}

class RoleMatrixApiTest : public test::ApiTest {
protected:
    void SetUp() override {
        ApiTest::SetUp();
        if (IsSkipped() || HasFatalFailure()) return;
        alert_ = make_alert("plc-gw-1", base_ns(), 3);
        ASSERT_TRUE(store_->insert({alert_}).ok());
        common::Heartbeat hb;
        hb.agent_id = "plc-gw-1";
        ASSERT_TRUE(store_->record_heartbeat(hb, base_ns()).ok());
        tokens_[Role::kAnalyst] = test::add_token_account(*store_, "analyst-1", Role::kAnalyst);
        tokens_[Role::kRuleAuthor] =
            test::add_token_account(*store_, "author-1", Role::kRuleAuthor);
        tokens_[Role::kAdmin] = test::add_token_account(*store_, "admin-1", Role::kAdmin);
        start_server();
    }

    // SPEC's request with {id} filled in, as AUTHORIZATION (nobody if empty).
    test::ApiResponse send_spec(const RouteSpec& spec, const std::string& authorization) {
        const std::string id =
            spec.path.starts_with("/api/v1/agents/") ? std::string("plc-gw-1") : alert_.id;
        return send(spec.method, replace_all(spec.path, "{id}", id), authorization,
                    replace_all(spec.body, "{id}", alert_.id));
    }

    common::Alert alert_;
    std::map<Role, std::string> tokens_;
};

TEST_P(RoleMatrixApiTest, EveryRouteAnswersEachRoleAsSpecified) {
    // The table names exactly the server's routes: a new route needs its row here.
    std::set<std::string> specified;
    for (const RouteSpec& spec : route_specs()) specified.insert(spec.method + " " + spec.path);
    const std::vector<std::string> routes = api_routes();
    EXPECT_EQ(specified, std::set<std::string>(routes.begin(), routes.end()));

    // Refused callers first: what they were refused must not have changed anything.
    const std::vector<std::optional<Role>> callers = {std::nullopt, Role::kRuleAuthor,
                                                      Role::kAnalyst, Role::kAdmin};
    for (const auto& caller : callers) {
        for (const RouteSpec& spec : route_specs()) {
            SCOPED_TRACE(spec.method + " " + spec.path + " as " +
                         (caller ? std::string(to_string(*caller)) : std::string("nobody")));
            const test::ApiResponse r = send_spec(spec, caller ? tokens_[*caller] : "");
            if (may(spec.who, caller)) {
                EXPECT_GE(r.status, 200) << r.body;
                EXPECT_LT(r.status, 300) << r.body;
            } else {
                EXPECT_EQ(r.status, caller ? 403 : 401) << r.body;
                EXPECT_EQ(r.json()->getValue<int>("status"), r.status);
            }
        }
        if (!caller || *caller == Role::kRuleAuthor) {
            auto triage = store_->triage_of({alert_.id});
            ASSERT_TRUE(triage.ok());
            EXPECT_EQ(triage->at(alert_.id), AlertTriage{}) << "a refused change was applied";
            auto comments = store_->comments(alert_.id);
            ASSERT_TRUE(comments.ok());
            EXPECT_TRUE(comments->empty()) << "a refused comment was stored";
        }
    }
    // The allowed changes were applied: the admin's PATCH came last.
    auto triage = store_->triage_of({alert_.id});
    ASSERT_TRUE(triage.ok());
    EXPECT_EQ(triage->at(alert_.id).status, "escalated");
    auto comments = store_->comments(alert_.id);
    ASSERT_TRUE(comments.ok());
    EXPECT_EQ(comments->size(), 2U);  // the analyst's and the admin's
}

INSTANTIATE_TEST_SUITE_P(Backends, RoleMatrixApiTest, ::testing::ValuesIn(test::all_backends()),
                         test::backend_param_name);

}  // namespace
}  // namespace senningen::collector
