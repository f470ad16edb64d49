// The REST API tests' common ground: a fresh store on each backend (store_backends.h), an
// ApiServer on a loopback port over it, and plain HTTP requests to that server.
//
//   class FooApiTest : public test::ApiTest {
//       void SetUp() override {
//           ApiTest::SetUp();                      // opens the store, or skips the test
//           if (IsSkipped() || HasFatalFailure()) return;
//           ... insert alerts, add accounts (authorization_ is what get() sends) ...
//           start_server();
//       }
//   };
#pragma once

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/StreamCopier.h>
#include <Poco/URI.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "senningen/collector/http_api.h"
#include "senningen/common/log.h"
#include "store_backends.h"

namespace senningen::collector::test {

using Parameters = std::vector<std::pair<std::string, std::string>>;

struct ApiResponse {
    int status = 0;
    std::string content_type;
    std::string allow;        // the Allow header (405 responses)
    std::string disposition;  // the Content-Disposition header (exports)
    bool chunked = false;
    std::string body;

    Poco::JSON::Object::Ptr json() const {
        return Poco::JSON::Parser().parse(body).extract<Poco::JSON::Object::Ptr>();
    }
    // A problem response's detail.
    std::string detail() const { return json()->getValue<std::string>("detail"); }
};

// PATH with PARAMETERS as its query string, percent-encoded.
inline std::string api_target(const std::string& path, const Parameters& parameters = {}) {
    Poco::URI uri(path);
    for (const auto& [name, value] : parameters) uri.addQueryParameter(name, value);
    return uri.getPathAndQuery();
}

// One request on SESSION (kept alive or not, as the caller made it): METHOD TARGET with the
// Authorization header AUTHORIZATION unless empty, and BODY as JSON unless empty.
inline ApiResponse api_request(Poco::Net::HTTPClientSession& session, const std::string& method,
                               const std::string& target, const std::string& authorization,
                               const std::string& body = {}) {
    Poco::Net::HTTPRequest req(method, target, Poco::Net::HTTPMessage::HTTP_1_1);
    if (!authorization.empty()) req.set("Authorization", authorization);
    if (!body.empty()) {
        req.setContentType("application/json");
        req.setContentLength(static_cast<std::streamsize>(body.size()));
    } else if (method != Poco::Net::HTTPRequest::HTTP_GET) {
        req.setContentLength(0);
    }
    session.sendRequest(req) << body;
    Poco::Net::HTTPResponse resp;
    std::istream& in = session.receiveResponse(resp);
    ApiResponse out;
    out.status = static_cast<int>(resp.getStatus());
    out.content_type = resp.getContentType();
    out.allow = resp.get("Allow", "");
    out.disposition = resp.get("Content-Disposition", "");
    out.chunked = resp.getChunkedTransferEncoding();
    Poco::StreamCopier::copyToString(in, out.body);
    return out;
}

// Checks R is an RFC 7807 problem response with STATUS whose detail contains DETAIL_PART.
inline void expect_problem(const ApiResponse& r, int status, const std::string& detail_part) {
    EXPECT_EQ(r.status, status) << r.body;
    EXPECT_EQ(r.content_type, "application/problem+json") << r.body;
    if (r.content_type != "application/problem+json") return;
    Poco::JSON::Object::Ptr p = r.json();
    EXPECT_EQ(p->getValue<std::string>("type"), "about:blank");
    EXPECT_EQ(p->getValue<int>("status"), status);
    EXPECT_FALSE(p->getValue<std::string>("title").empty());
    EXPECT_NE(p->getValue<std::string>("detail").find(detail_part), std::string::npos)
        << p->getValue<std::string>("detail");
}

// SetUp() (BackendTest's) opens a fresh store on the backend, or skips the test.
class ApiTest : public BackendTest {
protected:
    static void SetUpTestSuite() { common::set_log_level(common::LogLevel::kOff); }

    void TearDown() override {
        if (server_) server_->stop();
        server_.reset();
        BackendTest::TearDown();
    }

    // Starts the server over store_ on a free loopback port (port_).
    void start_server(const ApiOptions& options = {}) {
        server_ = std::make_unique<ApiServer>(*store_, options);
        auto port = server_->start();
        ASSERT_TRUE(port.ok()) << port.error().message;
        ASSERT_NE(*port, 0);
        port_ = *port;
    }

    // METHOD TARGET on a connection of its own, with AUTHORIZATION (none if empty) and BODY.
    ApiResponse send(const std::string& method, const std::string& target,
                     const std::string& authorization, const std::string& body = {}) {
        Poco::Net::HTTPClientSession session("127.0.0.1", port_);
        return api_request(session, method, target, authorization, body);
    }
    // GET TARGET with authorization_.
    ApiResponse get(const std::string& target) { return get(target, authorization_); }
    // GET TARGET with AUTHORIZATION (none if empty).
    ApiResponse get(const std::string& target, const std::string& authorization) {
        return send(Poco::Net::HTTPRequest::HTTP_GET, target, authorization);
    }

    std::unique_ptr<ApiServer> server_;
    std::uint16_t port_ = 0;
    std::string authorization_;  // what get(TARGET) sends
};

}  // namespace senningen::collector::test
