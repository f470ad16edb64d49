#include "senningen/collector/http_api.h"

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "api_accounts.h"
#include "api_fixture.h"
#include "senningen/common/log.h"
#include "test_alerts.h"

namespace senningen::collector {
namespace {

using common::Alert;
using common::ErrorCode;
using test::base_ns;
using test::ids_of;
using test::kMinuteNs;
using test::make_alert;

using Response = test::ApiResponse;
using test::expect_problem;

// The credentials every request sends; set before the first request of a test, then only read
// (also from the concurrency test's threads).
std::string g_authorization;  // NOLINT(cppcoreguidelines-avoid-non-const-global-variables)

Response request(Poco::Net::HTTPClientSession& session, const std::string& target,
                 const std::string& method = Poco::Net::HTTPRequest::HTTP_GET) {
    return test::api_request(session, method, target, g_authorization);
}

std::string alerts_target(const test::Parameters& parameters) {
    return test::api_target("/api/v1/alerts", parameters);
}

std::vector<std::string> alert_ids(const Response& response) {
    Poco::JSON::Array::Ptr list = response.json()->getArray("alerts");
    std::vector<std::string> ids;
    ids.reserve(list->size());
    for (std::size_t i = 0; i < list->size(); ++i) {
        Poco::JSON::Object::Ptr alert =
            list->getObject(static_cast<unsigned>(i))->getObject("alert");
        ids.push_back(alert->getValue<std::string>("id"));
    }
    return ids;
}

// Over every store backend (store_backends.h): the API must answer the same on each.
class HttpApiTest : public test::ApiTest {
protected:
    void SetUp() override {
        ApiTest::SetUp();
        if (IsSkipped() || HasFatalFailure()) return;
        // a0 oldest ... a4 newest, ten minutes apart (see the severities and agents below).
        alerts_ = {
            make_alert("sensor-a", base_ns() + 0 * kMinuteNs, 1),
            make_alert("sensor-a", base_ns() + 10 * kMinuteNs, 2),
            make_alert("sensor-b", base_ns() + 20 * kMinuteNs, 3),
            make_alert("sensor-b", base_ns() + 30 * kMinuteNs, 4),
            make_alert("sensor-c", base_ns() + 40 * kMinuteNs, 1),
        };
        ASSERT_TRUE(store_->insert(alerts_).ok());
        g_authorization = test::add_token_account(*store_);
        start_server();
        session_ = std::make_unique<Poco::Net::HTTPClientSession>("127.0.0.1", port_);
        session_->setKeepAlive(true);
    }

    void TearDown() override {
        session_.reset();
        ApiTest::TearDown();
    }

    // GET TARGET on the kept-alive connection, with g_authorization.
    Response get(const std::string& target) { return request(*session_, target); }

    std::vector<Alert> alerts_;
    std::unique_ptr<Poco::Net::HTTPClientSession> session_;
};

TEST_P(HttpApiTest, HealthReportsStatusAndAlertCount) {
    Response r = get("/api/v1/health");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.content_type, "application/json; charset=utf-8");
    Poco::JSON::Object::Ptr h = r.json();
    EXPECT_EQ(h->getValue<std::string>("status"), "ok");
    EXPECT_EQ(h->getValue<std::string>("version"), "0.1.0");
    EXPECT_EQ(h->getValue<std::string>("backend"), backend_->name());
    EXPECT_EQ(h->getValue<std::uint64_t>("alerts"), 5U);
    EXPECT_GE(h->getValue<std::int64_t>("uptime_seconds"), 0);
}

TEST_P(HttpApiTest, AlertsAreNewestFirstWithCount) {
    Response r = get("/api/v1/alerts");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.content_type, "application/json; charset=utf-8");
    EXPECT_EQ(r.json()->getValue<int>("count"), 5);
    EXPECT_EQ(alert_ids(r), ids_of({alerts_[4], alerts_[3], alerts_[2], alerts_[1], alerts_[0]}));
    // Each entry is the codec's EVE object.
    Poco::JSON::Object::Ptr first = r.json()->getArray("alerts")->getObject(0);
    EXPECT_EQ(first->getValue<std::string>("event_type"), "alert");
    EXPECT_EQ(first->getObject("agent")->getValue<std::string>("id"), "sensor-c");
    EXPECT_EQ(first->getValue<std::string>("timestamp"), "2026-11-28T10:40:00.000000000Z");
}

TEST_P(HttpApiTest, FiltersBySinceAndUntil) {
    Response r = get(alerts_target({{"since", "2026-11-28T10:10:00Z"}}));
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(alert_ids(r), ids_of({alerts_[4], alerts_[3], alerts_[2], alerts_[1]}));

    r = get(alerts_target({{"until", "2026-11-28T10:20:00Z"}}));
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(alert_ids(r), ids_of({alerts_[1], alerts_[0]}));

    r = get(alerts_target({{"since", "2026-11-28T10:10:00Z"}, {"until", "2026-11-28T10:30:00Z"}}));
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(alert_ids(r), ids_of({alerts_[2], alerts_[1]}));
}

TEST_P(HttpApiTest, FiltersBySeverityList) {
    Response r = get("/api/v1/alerts?severity=1,2");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(alert_ids(r), ids_of({alerts_[4], alerts_[1], alerts_[0]}));
    r = get("/api/v1/alerts?severity=4");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(alert_ids(r), ids_of({alerts_[3]}));
}

TEST_P(HttpApiTest, FiltersByAgent) {
    Response r = get("/api/v1/alerts?agent=sensor-a");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(alert_ids(r), ids_of({alerts_[1], alerts_[0]}));
}

TEST_P(HttpApiTest, LimitKeepsTheNewest) {
    Response r = get("/api/v1/alerts?limit=2");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.json()->getValue<int>("count"), 2);
    EXPECT_EQ(alert_ids(r), ids_of({alerts_[4], alerts_[3]}));
    r = get("/api/v1/alerts?limit=1000&severity=3&agent=sensor-b");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(alert_ids(r), ids_of({alerts_[2]}));
}

TEST_P(HttpApiTest, SeverityOutOfRangeIsAProblemNamingIt) {
    Response r = get("/api/v1/alerts?severity=7");
    expect_problem(r, 400, "parameter 'severity'");
    Poco::JSON::Object::Ptr p = r.json();
    EXPECT_EQ(p->getValue<std::string>("title"), "Bad Request");
    EXPECT_EQ(p->getValue<std::string>("detail"), "parameter 'severity': '7' is not one of 1..4");
}

TEST_P(HttpApiTest, BadParametersAreProblemsNamingTheParameter) {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"/api/v1/alerts?severity=1,,2", "'severity'"},
        {"/api/v1/alerts?severity=0", "'severity'"},
        {"/api/v1/alerts?severity=high", "'severity'"},
        {"/api/v1/alerts?severity=", "'severity'"},
        {"/api/v1/alerts?severity=+1", "'severity'"},
        {"/api/v1/alerts?limit=0", "'limit'"},
        {"/api/v1/alerts?limit=1001", "'limit'"},
        {"/api/v1/alerts?limit=-5", "'limit'"},
        {"/api/v1/alerts?limit=10abc", "'limit'"},
        {"/api/v1/alerts?limit=99999999999999999999", "'limit'"},
        {"/api/v1/alerts?since=yesterday", "'since'"},
        {"/api/v1/alerts?since=2026-11-28", "'since'"},
        {"/api/v1/alerts?until=2026-13-01T00:00:00Z", "'until'"},
        {"/api/v1/alerts?until=2026-11-28T10:00:00%2B02:00", "'until'"},
        {"/api/v1/alerts?agent=", "'agent'"},
        {"/api/v1/alerts?colour=red", "'colour'"},
        {"/api/v1/alerts?Severity=1", "'Severity'"},
        {"/api/v1/alerts?severity=1&severity=2", "'severity' is given more than once"},
        {"/api/v1/alerts?limit=5&limit=5", "'limit' is given more than once"},
        {"/api/v1/alerts?since=2026-11-28T11:00:00Z&until=2026-11-28T10:00:00Z", "'until'"},
    };
    for (const auto& [target, detail] : cases) {
        SCOPED_TRACE(target);
        expect_problem(get(target), 400, detail);
    }
}

TEST_P(HttpApiTest, LongParameterValuesAreCutInTheProblem) {
    const std::string agent(5000, 'x');
    Response r = get(alerts_target({{"agent", agent}}));
    expect_problem(r, 400, "'agent'");
    EXPECT_LT(r.body.size(), 500U);
}

TEST_P(HttpApiTest, UnknownPathIsA404Problem) {
    expect_problem(get("/api/v1/nothing"), 404, "/api/v1/nothing");
    expect_problem(get("/"), 404, "'/'");
    expect_problem(get("/api/v1/alerts/"), 404, "/api/v1/alerts/");
}

TEST_P(HttpApiTest, WrongMethodIsA405ProblemWithAllow) {
    for (const char* target : {"/api/v1/alerts", "/api/v1/health"}) {
        for (const std::string& method :
             {Poco::Net::HTTPRequest::HTTP_POST, Poco::Net::HTTPRequest::HTTP_DELETE,
              Poco::Net::HTTPRequest::HTTP_PUT}) {
            SCOPED_TRACE(method + " " + target);
            Response r = request(*session_, target, method);
            expect_problem(r, 405, method);
            EXPECT_EQ(r.allow, "GET");
        }
    }
}

TEST_P(HttpApiTest, SqlMetacharactersInAgentMatchNothingAndHarmNothing) {
    for (const char* agent : {"' OR '1'='1", "x'; DROP TABLE alerts; --", "sensor-a' --", "%", "_",
                              "\"sensor-a\"", "sensor-a\\"}) {
        SCOPED_TRACE(agent);
        Response r = get(alerts_target({{"agent", agent}}));
        ASSERT_EQ(r.status, 200) << r.body;
        EXPECT_EQ(r.json()->getValue<int>("count"), 0);
    }
    EXPECT_EQ(store_->count().value(), 5U);
    Response all = get("/api/v1/alerts");
    ASSERT_EQ(all.status, 200) << all.body;
    EXPECT_EQ(all.json()->getValue<int>("count"), 5);
}

TEST_P(HttpApiTest, ServesSeveralRequestsOnOneConnectionAndFromManyClients) {
    for (int i = 0; i < 3; ++i) EXPECT_EQ(get("/api/v1/health").status, 200);
    constexpr int kClients = 6;
    std::vector<std::thread> clients;
    clients.reserve(kClients);
    std::atomic<int> ok{0};
    for (int c = 0; c < kClients; ++c) {
        clients.emplace_back([&] {
            Poco::Net::HTTPClientSession session("127.0.0.1", port_);
            for (int i = 0; i < 5; ++i) {
                if (request(session, "/api/v1/alerts?severity=1").status == 200) ++ok;
            }
        });
    }
    for (auto& t : clients) t.join();
    EXPECT_EQ(ok.load(), kClients * 5);
}

TEST_P(HttpApiTest, PortInUseIsUnavailableNamingHostAndPort) {
    ApiOptions options;
    options.port = port_;
    ApiServer second(*store_, options);
    auto started = second.start();
    ASSERT_FALSE(started.ok());
    EXPECT_EQ(started.error().code, ErrorCode::kUnavailable);
    EXPECT_NE(started.error().message.find("127.0.0.1:" + std::to_string(port_)), std::string::npos)
        << started.error().message;
}

TEST_P(HttpApiTest, SecondStartIsRefusedAndStopIsIdempotent) {
    auto again = server_->start();
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.error().code, ErrorCode::kInvalidArgument);
    session_.reset();
    server_->stop();
    server_->stop();
    Poco::Net::HTTPClientSession late("127.0.0.1", port_);
    EXPECT_ANY_THROW(request(late, "/api/v1/health"));
}

// The OpenAPI document describes exactly the resources the server has, the server answers it
// byte for byte as committed, and every documented path answers (no 404) with the documented
// success status.
TEST_P(HttpApiTest, EveryRouteIsInTheOpenApiDocumentAndEveryDocumentedPathAnswers) {
    std::ifstream in(std::string(SENNINGEN_SOURCE_DIR) + "/docs/api/openapi.json",
                     std::ios::binary);
    ASSERT_TRUE(in) << "docs/api/openapi.json";
    const std::string committed((std::istreambuf_iterator<char>(in)),
                                std::istreambuf_iterator<char>());

    Response served = get("/api/v1/openapi.json");
    ASSERT_EQ(served.status, 200) << served.body;
    EXPECT_EQ(served.content_type, "application/json; charset=utf-8");
    EXPECT_EQ(served.body, committed);

    Poco::JSON::Object::Ptr doc = served.json();
    EXPECT_EQ(doc->getValue<std::string>("openapi").substr(0, 2), "3.");
    Poco::JSON::Object::Ptr paths = doc->getObject("paths");
    ASSERT_TRUE(paths);
    // "METHOD PATH" of every documented operation against the server's route table.
    std::set<std::string> documented;
    for (const auto& [path, item] : *paths) {
        for (const auto& [method, operation] : *paths->getObject(path)) {
            documented.insert(Poco::toUpper(method) + " " + path);
        }
    }
    const std::vector<std::string> routes = api_routes();
    EXPECT_EQ(documented, std::set<std::string>(routes.begin(), routes.end()));

    // Every GET answers 200 (with an agent and an alert to name), every operation documents a
    // success and a 405, and a method no route has gets 405 naming exactly the documented ones.
    common::Heartbeat hb;
    hb.agent_id = "plc-gw-1";
    ASSERT_TRUE(store_->record_heartbeat(hb, base_ns()).ok());
    for (const auto& [path, item] : *paths) {
        Poco::JSON::Object::Ptr operations = paths->getObject(path);
        std::string target = path;
        if (const auto brace = target.find("{id}"); brace != std::string::npos) {
            target.replace(brace, 4, path.starts_with("/api/v1/agents/") ? hb.agent_id
                                                                         : alerts_[0].id);
        }
        std::set<std::string> methods;
        for (const auto& [method, operation] : *operations) {
            methods.insert(Poco::toUpper(method));
            Poco::JSON::Object::Ptr responses =
                operations->getObject(method)->getObject("responses");
            ASSERT_TRUE(responses) << method << " " << path;
            EXPECT_TRUE(responses->has("200") || responses->has("201")) << method << " " << path;
            EXPECT_TRUE(responses->has("405")) << method << " " << path;
            if (method == "get") {
                Response r = get(target);
                EXPECT_EQ(r.status, 200) << target << ": " << r.body;
            }
        }
        Response other = request(*session_, target, Poco::Net::HTTPRequest::HTTP_DELETE);
        EXPECT_EQ(other.status, 405) << target;
        EXPECT_EQ(other.content_type, "application/problem+json") << target;
        std::set<std::string> allowed;
        std::istringstream allow(other.allow);
        for (std::string m; std::getline(allow >> std::ws, m, ',');) allowed.insert(m);
        EXPECT_EQ(allowed, methods) << target << ": Allow: " << other.allow;
    }
}

INSTANTIATE_TEST_SUITE_P(Backends, HttpApiTest, ::testing::ValuesIn(test::all_backends()),
                         test::backend_param_name);

// A store whose every call fails in a chosen way, to check what leaks to the client.
class BrokenStore final : public AlertStore {
public:
    enum class Mode { kError, kThrow };
    explicit BrokenStore(Mode mode) : mode_(mode) {}

    common::Result<InsertResult> insert(const std::vector<Alert>& /*alerts*/) override {
        return fail<InsertResult>();
    }
    common::Result<std::vector<Alert>> query(const AlertQuery& /*q*/) override {
        return fail<std::vector<Alert>>();
    }
    common::Result<std::uint64_t> count() override { return fail<std::uint64_t>(); }
    std::uint64_t undecodable_rows() const override { return 0; }
    std::string backend_name() const override { return "broken"; }
    // Credentials still work, so that the requests reach the failing calls.
    common::Result<std::optional<UserAccount>> token_user(const std::string& /*digest*/,
                                                          std::int64_t /*now_ns*/) override {
        return std::optional<UserAccount>(UserAccount{"tester", Role::kAdmin, "", 0, false});
    }

    static constexpr const char* kSecret = "/var/lib/secret/alerts.db: disk I/O error";

private:
    template <typename T>
    common::Result<T> fail() {
        if (mode_ == Mode::kThrow) throw std::runtime_error(kSecret);
        return common::make_error(ErrorCode::kDatabase, kSecret);
    }

    Mode mode_;
};

class HttpApiBrokenStoreTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() { common::set_log_level(common::LogLevel::kOff); }

    Response get_from(AlertStore& store, const std::string& target) {
        g_authorization = "Bearer snt_anything";
        ApiServer server(store, ApiOptions{});
        auto port = server.start();
        EXPECT_TRUE(port.ok()) << port.error().message;
        Poco::Net::HTTPClientSession session("127.0.0.1", port.ok() ? *port : 0);
        return request(session, target);
    }
};

TEST_F(HttpApiBrokenStoreTest, HealthIs503WithErrorStatusAndNoInternals) {
    BrokenStore store(BrokenStore::Mode::kError);
    Response r = get_from(store, "/api/v1/health");
    EXPECT_EQ(r.status, 503);
    EXPECT_EQ(r.content_type, "application/json; charset=utf-8");
    Poco::JSON::Object::Ptr h = r.json();
    EXPECT_EQ(h->getValue<std::string>("status"), "error");
    EXPECT_FALSE(h->getValue<std::string>("message").empty());
    EXPECT_EQ(r.body.find("secret"), std::string::npos) << r.body;
}

TEST_F(HttpApiBrokenStoreTest, AlertsStoreErrorIs503ProblemWithoutInternals) {
    BrokenStore store(BrokenStore::Mode::kError);
    Response r = get_from(store, "/api/v1/alerts");
    expect_problem(r, 503, "store");
    EXPECT_EQ(r.body.find("secret"), std::string::npos) << r.body;
}

TEST_F(HttpApiBrokenStoreTest, ExceptionInsideIsA500ProblemWithoutItsText) {
    BrokenStore store(BrokenStore::Mode::kThrow);
    for (const char* target : {"/api/v1/alerts", "/api/v1/health"}) {
        SCOPED_TRACE(target);
        Response r = get_from(store, target);
        expect_problem(r, 500, "log");
        EXPECT_EQ(r.body.find("secret"), std::string::npos) << r.body;
    }
}

}  // namespace
}  // namespace senningen::collector
