// Login, sessions, tokens and permissions of the REST API, over a real SQLite store and a real
// server: what needs credentials, what a role may do, the cookie's attributes, rate limiting.
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/StreamCopier.h>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "api_accounts.h"
#include "senningen/collector/http_api.h"
#include "senningen/collector/sqlite_store.h"
#include "senningen/common/log.h"
#include "test_alerts.h"

namespace senningen::collector {
namespace {

struct Reply {
    int status = 0;
    std::string body;
    std::string set_cookie;
    std::string retry_after;
    std::string www_authenticate;

    Poco::JSON::Object::Ptr json() const {
        return Poco::JSON::Parser().parse(body).extract<Poco::JSON::Object::Ptr>();
    }
    std::string detail() const { return json()->getValue<std::string>("detail"); }
};

class AuthApiTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() { common::set_log_level(common::LogLevel::kOff); }

    void SetUp() override {
        auto opened = open_sqlite_store(dir_.file("alerts.db"));
        ASSERT_TRUE(opened.ok()) << opened.error().message;
        store_ = std::move(opened).value();
    }
    void TearDown() override {
        if (server_) server_->stop();
    }
    static ApiOptions three_failures() {
        ApiOptions options;
        options.login_limits.max_failures = 3;
        return options;
    }
    void start(const ApiOptions& options = three_failures()) {
        server_ = std::make_unique<ApiServer>(*store_, options);
        auto port = server_->start();
        ASSERT_TRUE(port.ok()) << port.error().message;
        port_ = *port;
    }

    Reply send(const std::string& method, const std::string& target,
               const std::map<std::string, std::string>& headers = {},
               const std::string& body = "") {
        Poco::Net::HTTPClientSession session("127.0.0.1", port_);
        Poco::Net::HTTPRequest req(method, target, Poco::Net::HTTPMessage::HTTP_1_1);
        for (const auto& [k, v] : headers) req.set(k, v);
        if (!body.empty() || method == "POST") req.setContentLength64(static_cast<Poco::Int64>(body.size()));
        session.sendRequest(req) << body;
        Poco::Net::HTTPResponse resp;
        Reply r;
        Poco::StreamCopier::copyToString(session.receiveResponse(resp), r.body);
        r.status = static_cast<int>(resp.getStatus());
        r.set_cookie = resp.get("Set-Cookie", "");
        r.retry_after = resp.get("Retry-After", "");
        r.www_authenticate = resp.get("WWW-Authenticate", "");
        return r;
    }
    Reply login(const std::string& name, const std::string& password) {
        Poco::JSON::Object o;
        o.set("name", name);
        o.set("password", password);
        std::ostringstream body;
        o.stringify(body);
        return send("POST", "/api/v1/login", {{"Content-Type", "application/json"}}, body.str());
    }
    // "senningen_session=sns_..." from a Set-Cookie value.
    static std::string cookie_of(const std::string& set_cookie) {
        return set_cookie.substr(0, set_cookie.find(';'));
    }

    test::TempDir dir_;
    std::unique_ptr<AlertStore> store_;
    std::unique_ptr<ApiServer> server_;
    std::uint16_t port_ = 0;
};

TEST_F(AuthApiTest, WithoutAccountsEverythingButHealthIs401SayingHowToAddOne) {
    start();
    EXPECT_EQ(send("GET", "/api/v1/health").status, 200);
    Reply r = send("GET", "/api/v1/alerts");
    EXPECT_EQ(r.status, 401) << r.body;
    EXPECT_NE(r.detail().find("user add NAME --role admin"), std::string::npos) << r.body;
    EXPECT_EQ(r.www_authenticate, "Bearer realm=\"senningen\"");
}

TEST_F(AuthApiTest, EveryProtectedResourceNeedsCredentials) {
    test::add_account(*store_, "ann", Role::kAnalyst);
    start();
    for (const char* target : {"/api/v1/alerts", "/api/v1/agents", "/api/v1/agents/x",
                               "/api/v1/me", "/api/v1/users", "/api/v1/nothing-here"}) {
        Reply r = send("GET", target);
        EXPECT_EQ(r.status, 401) << target;
        EXPECT_NE(r.detail().find("log in"), std::string::npos) << r.body;
    }
    for (const std::string& bad : {std::string("Bearer snt_0000"), std::string("Bearer sns_x"),
                                   std::string("Basic YW5uOng="), std::string("snt_x")}) {
        EXPECT_EQ(send("GET", "/api/v1/alerts", {{"Authorization", bad}}).status, 401) << bad;
    }
    EXPECT_EQ(send("GET", "/api/v1/alerts", {{"Cookie", "senningen_session=sns_forged"}}).status,
              401);
}

TEST_F(AuthApiTest, LoginSetsAStrictHttpOnlyCookieThatAuthenticates) {
    test::add_account(*store_, "ann", Role::kAnalyst);
    start();
    Reply r = login("ann", test::kTestPassword);
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.json()->getValue<std::string>("user"), "ann");
    EXPECT_EQ(r.json()->getValue<std::string>("role"), "analyst");
    EXPECT_TRUE(r.set_cookie.starts_with("senningen_session=sns_")) << r.set_cookie;
    EXPECT_NE(r.set_cookie.find("; HttpOnly"), std::string::npos);
    EXPECT_NE(r.set_cookie.find("; SameSite=Strict"), std::string::npos);
    EXPECT_NE(r.set_cookie.find("; Path=/"), std::string::npos);
    EXPECT_EQ(r.set_cookie.find("Secure"), std::string::npos) << "plain HTTP by default";
    const std::string cookie = cookie_of(r.set_cookie);

    Reply me = send("GET", "/api/v1/me", {{"Cookie", cookie}});
    ASSERT_EQ(me.status, 200) << me.body;
    EXPECT_EQ(me.json()->getValue<std::string>("user"), "ann");
    auto permissions = me.json()->getArray("permissions");
    ASSERT_EQ(permissions->size(), 3U);
    EXPECT_EQ(permissions->getElement<std::string>(0), "read-alerts");
    EXPECT_EQ(send("GET", "/api/v1/alerts", {{"Cookie", cookie}}).status, 200);

    // The store keeps only the digest of the session id.
    const std::string id = cookie.substr(cookie.find('=') + 1);
    EXPECT_TRUE(store_->session_user(secret_digest(id), common::now_ns()).value().has_value());
    EXPECT_FALSE(store_->session_user(id, common::now_ns()).value().has_value());
}

TEST_F(AuthApiTest, SecureCookieOptionMarksTheCookieSecure) {
    test::add_account(*store_, "ann", Role::kAnalyst);
    ApiOptions options;
    options.secure_cookie = true;
    start(options);
    Reply r = login("ann", test::kTestPassword);
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_NE(r.set_cookie.find("; Secure"), std::string::npos) << r.set_cookie;
}

TEST_F(AuthApiTest, LogoutEndsTheSession) {
    test::add_account(*store_, "ann", Role::kAnalyst);
    start();
    const std::string cookie = cookie_of(login("ann", test::kTestPassword).set_cookie);
    ASSERT_EQ(send("GET", "/api/v1/me", {{"Cookie", cookie}}).status, 200);
    Reply out = send("POST", "/api/v1/logout", {{"Cookie", cookie}});
    EXPECT_EQ(out.status, 200) << out.body;
    EXPECT_NE(out.set_cookie.find("Max-Age=0"), std::string::npos) << out.set_cookie;
    EXPECT_EQ(send("GET", "/api/v1/me", {{"Cookie", cookie}}).status, 401);
}

TEST_F(AuthApiTest, WrongPasswordUnknownOrDisabledAccountAreTheSame401) {
    test::add_account(*store_, "ann", Role::kAnalyst);
    test::add_account(*store_, "old", Role::kAdmin);
    ASSERT_TRUE(store_->set_user_disabled("old", true).ok());
    ApiOptions options;
    options.login_limits.max_failures = 10;
    start(options);
    const std::string wrong = login("ann", "not the password at all").detail();
    EXPECT_EQ(login("ann", "not the password at all").status, 401);
    EXPECT_EQ(login("nobody", test::kTestPassword).detail(), wrong);
    Reply disabled = login("old", test::kTestPassword);
    EXPECT_EQ(disabled.status, 401);
    EXPECT_EQ(disabled.detail(), wrong);
    EXPECT_TRUE(disabled.set_cookie.empty());
}

TEST_F(AuthApiTest, RepeatedFailuresAre429WithRetryAfterEvenForTheRightPassword) {
    test::add_account(*store_, "ann", Role::kAnalyst);
    start();  // three failures allowed
    for (int i = 0; i < 3; ++i) EXPECT_EQ(login("ann", "wrong password " + std::to_string(i)).status, 401);
    Reply r = login("ann", test::kTestPassword);
    EXPECT_EQ(r.status, 429) << r.body;
    EXPECT_GT(std::stoi(r.retry_after), 0);
    EXPECT_TRUE(r.set_cookie.empty());
}

TEST_F(AuthApiTest, ClientAddressIsLimitedAcrossAccountNames) {
    test::add_account(*store_, "ann", Role::kAnalyst);
    start();
    for (const char* name : {"a1", "a2", "a3"}) EXPECT_EQ(login(name, "guess guess guess").status, 401);
    // Same address, an account never guessed at: refused too.
    EXPECT_EQ(login("ann", test::kTestPassword).status, 429);
}

TEST_F(AuthApiTest, MalformedLoginsAreClearErrors) {
    test::add_account(*store_, "ann", Role::kAnalyst);
    start();
    EXPECT_EQ(send("POST", "/api/v1/login", {{"Content-Type", "application/json"}}, "{").status, 400);
    EXPECT_EQ(send("POST", "/api/v1/login", {{"Content-Type", "application/json"}}, "[1]").status,
              400);
    Reply missing = send("POST", "/api/v1/login", {{"Content-Type", "application/json"}},
                         "{\"name\":\"ann\"}");
    EXPECT_EQ(missing.status, 400);
    EXPECT_NE(missing.detail().find("password"), std::string::npos);
    EXPECT_EQ(send("POST", "/api/v1/login", {{"Content-Type", "text/plain"}}, "{}").status, 415);
    Reply get = send("GET", "/api/v1/login");
    EXPECT_EQ(get.status, 405);
}

TEST_F(AuthApiTest, BodiesOverTheLimitAre413) {
    test::add_account(*store_, "ann", Role::kAnalyst);
    ApiOptions options;
    options.max_body_bytes = 1024;
    start(options);
    const std::string big = "{\"name\":\"" + std::string(2000, 'a') + "\",\"password\":\"x\"}";
    Reply r = send("POST", "/api/v1/login", {{"Content-Type", "application/json"}}, big);
    EXPECT_EQ(r.status, 413) << r.body;
    EXPECT_NE(r.detail().find("1024"), std::string::npos);
}

TEST_F(AuthApiTest, RoleWithoutThePermissionIs403NamingIt) {
    const std::string analyst = test::add_token_account(*store_, "ann", Role::kAnalyst);
    const std::string admin = test::add_token_account(*store_, "root", Role::kAdmin);
    start();
    Reply r = send("GET", "/api/v1/users", {{"Authorization", analyst}});
    EXPECT_EQ(r.status, 403) << r.body;
    EXPECT_NE(r.detail().find("manage-users"), std::string::npos) << r.body;
    Reply ok = send("GET", "/api/v1/users", {{"Authorization", admin}});
    ASSERT_EQ(ok.status, 200) << ok.body;
    EXPECT_EQ(ok.json()->getValue<int>("count"), 2);
    EXPECT_EQ(ok.body.find("pbkdf2"), std::string::npos) << "no hashes leave the server";
}

TEST_F(AuthApiTest, DisablingAnAccountStopsItsTokenAndSession) {
    const std::string token = test::add_token_account(*store_, "ann", Role::kAnalyst);
    start();
    const std::string cookie = cookie_of(login("ann", test::kTestPassword).set_cookie);
    ASSERT_EQ(send("GET", "/api/v1/alerts", {{"Authorization", token}}).status, 200);
    ASSERT_TRUE(store_->set_user_disabled("ann", true).ok());
    EXPECT_EQ(send("GET", "/api/v1/alerts", {{"Authorization", token}}).status, 401);
    EXPECT_EQ(send("GET", "/api/v1/alerts", {{"Cookie", cookie}}).status, 401);
}

TEST_F(AuthApiTest, LoginRehashesAWeakStoredHash) {
    test::add_account(*store_, "ann", Role::kAnalyst);  // at the minimum cost
    start();
    ASSERT_EQ(login("ann", test::kTestPassword).status, 200);
    const std::string stored = store_->find_user("ann").value()->password_hash;
    EXPECT_FALSE(needs_rehash(stored)) << stored;
    EXPECT_TRUE(verify_password(test::kTestPassword, stored));
}


// Triage over the API.

class TriageApiTest : public AuthApiTest {
protected:
    void SetUp() override {
        AuthApiTest::SetUp();
        alerts_ = {test::make_alert("sensor-a", test::base_ns(), 1),
                   test::make_alert("sensor-a", test::base_ns() + test::kMinuteNs, 2),
                   test::make_alert("sensor-b", test::base_ns() + 2 * test::kMinuteNs, 3)};
        ASSERT_TRUE(store_->insert(alerts_).ok());
        analyst_ = {{"Authorization", test::add_token_account(*store_, "ann", Role::kAnalyst)},
                    {"Content-Type", "application/json"}};
        author_ = {{"Authorization", test::add_token_account(*store_, "rita", Role::kRuleAuthor)},
                   {"Content-Type", "application/json"}};
        start();
    }
    std::vector<std::string> listed(const std::string& query) {
        Reply r = send("GET", "/api/v1/alerts" + query, analyst_);
        EXPECT_EQ(r.status, 200) << r.body;
        std::vector<std::string> ids;
        auto list = r.json()->getArray("alerts");
        for (std::size_t i = 0; i < list->size(); ++i) {
            ids.push_back(list->getObject(static_cast<unsigned>(i))
                              ->getObject("alert")
                              ->getValue<std::string>("id"));
        }
        return ids;
    }

    std::vector<common::Alert> alerts_;
    std::map<std::string, std::string> analyst_;
    std::map<std::string, std::string> author_;
};

TEST_F(TriageApiTest, PatchChangesStatusAndAssigneeAndTheDetailShowsTheAuditTrail) {
    const std::string id = alerts_[1].id;
    Reply r = send("PATCH", "/api/v1/alerts/" + id, analyst_,
                   R"({"status":"in_progress","assignee":"ann"})");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.json()->getArray("changes")->size(), 2U);
    ASSERT_EQ(send("POST", "/api/v1/alerts/" + id + "/comments", analyst_,
                   R"({"text":"scanner from the lab"})").status, 201);

    Reply detail = send("GET", "/api/v1/alerts/" + id, analyst_);
    ASSERT_EQ(detail.status, 200) << detail.body;
    auto d = detail.json();
    EXPECT_EQ(d->getObject("alert")->getObject("alert")->getValue<std::string>("id"), id);
    EXPECT_EQ(d->getValue<std::string>("status"), "in_progress");
    EXPECT_EQ(d->getValue<std::string>("assignee"), "ann");
    auto comments = d->getArray("comments");
    ASSERT_EQ(comments->size(), 1U);
    EXPECT_EQ(comments->getObject(0)->getValue<std::string>("author"), "ann");
    EXPECT_EQ(comments->getObject(0)->getValue<std::string>("text"), "scanner from the lab");
    auto audit = d->getArray("audit");
    ASSERT_EQ(audit->size(), 3U);
    auto first = audit->getObject(0);
    EXPECT_EQ(first->getValue<std::string>("actor"), "ann");
    EXPECT_EQ(first->getValue<std::string>("action"), "alert.status");
    EXPECT_EQ(first->getValue<std::string>("old"), "new");
    EXPECT_EQ(first->getValue<std::string>("new"), "in_progress");
    EXPECT_EQ(audit->getObject(2)->getValue<std::string>("action"), "alert.comment");

    // The list carries the triage state beside the alerts, and filters on it.
    Reply list = send("GET", "/api/v1/alerts", analyst_);
    EXPECT_EQ(list.json()->getObject("triage")->getObject(id)->getValue<std::string>("status"),
              "in_progress");
    EXPECT_EQ(listed("?status=in_progress"), (std::vector<std::string>{id}));
    EXPECT_EQ(listed("?assignee=ann"), (std::vector<std::string>{id}));
    EXPECT_EQ(listed("?status=new"), (std::vector<std::string>{alerts_[2].id, alerts_[0].id}));
    EXPECT_EQ(send("GET", "/api/v1/alerts?status=closed", analyst_).status, 400);
}

TEST_F(TriageApiTest, BulkUpdatesEveryIdOrNone) {
    Reply r = send("POST", "/api/v1/alerts/bulk", analyst_,
                   R"({"ids":[")" + alerts_[0].id + R"(","missing"],"status":"resolved"})");
    EXPECT_EQ(r.status, 404) << r.body;
    EXPECT_NE(r.detail().find("missing"), std::string::npos);
    EXPECT_EQ(listed("?status=resolved").size(), 0U);
    Reply ok = send("POST", "/api/v1/alerts/bulk", analyst_,
                    R"({"ids":[")" + alerts_[0].id + R"(",")" + alerts_[2].id +
                        R"("],"status":"false_positive"})");
    ASSERT_EQ(ok.status, 200) << ok.body;
    EXPECT_EQ(listed("?status=false_positive"),
              (std::vector<std::string>{alerts_[2].id, alerts_[0].id}));
    EXPECT_EQ(send("POST", "/api/v1/alerts/bulk", analyst_, R"({"ids":[],"status":"new"})").status,
              400);
}

TEST_F(TriageApiTest, BadChangesAreRefusedNamingTheProblem) {
    const std::string target = "/api/v1/alerts/" + alerts_[0].id;
    EXPECT_EQ(send("PATCH", target, analyst_, R"({"status":"closed"})").status, 400);
    Reply nobody = send("PATCH", target, analyst_, R"({"assignee":"nobody"})");
    EXPECT_EQ(nobody.status, 400);
    EXPECT_NE(nobody.detail().find("nobody"), std::string::npos);
    EXPECT_EQ(send("PATCH", target, analyst_, R"({"colour":"red"})").status, 400);
    EXPECT_EQ(send("PATCH", target, analyst_, R"({})").status, 400);
    EXPECT_EQ(send("PATCH", "/api/v1/alerts/missing", analyst_, R"({"status":"resolved"})").status,
              404);
    EXPECT_EQ(send("GET", "/api/v1/alerts/missing", analyst_).status, 404);
    EXPECT_EQ(send("POST", target + "/comments", analyst_, R"({"text":""})").status, 400);
    EXPECT_EQ(send("DELETE", target, analyst_).status, 405);
}

TEST_F(TriageApiTest, RuleAuthorsReadButCannotTriage) {
    const std::string target = "/api/v1/alerts/" + alerts_[0].id;
    EXPECT_EQ(send("GET", target, author_).status, 200);
    Reply r = send("PATCH", target, author_, R"({"status":"resolved"})");
    EXPECT_EQ(r.status, 403) << r.body;
    EXPECT_NE(r.detail().find("triage-alerts"), std::string::npos);
    EXPECT_EQ(send("POST", target + "/comments", author_, R"({"text":"x"})").status, 403);
    EXPECT_EQ(send("POST", "/api/v1/alerts/bulk", author_,
                   R"({"ids":[")" + alerts_[0].id + R"("],"status":"resolved"})").status,
              403);
    EXPECT_EQ(store_->audit_entries(alerts_[0].id, 10).value().size(), 0U);
}

}  // namespace
}  // namespace senningen::collector
