// Tests of the web UI's static files: what is served, with which type and headers, and that
// no request path reaches outside the web root.
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/StreamCopier.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "senningen/collector/static_files.h"
#include "senningen/collector/http_api.h"
#include "senningen/collector/sqlite_store.h"
#include "senningen/common/log.h"
#include "test_alerts.h"

namespace senningen::collector {
namespace {

namespace fs = std::filesystem;
using detail::StaticFiles;

void write(const fs::path& path, const std::string& text) {
    fs::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << text;
}

class WebUiTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() { common::set_log_level(common::LogLevel::kOff); }

    void SetUp() override {
        root_ = fs::path(dir_.file("web"));
        write(root_ / "index.html", "<!doctype html><title>t</title>");
        write(root_ / "app.js", "console.log(1);");
        write(root_ / "css" / "style.css", "body{}");
        write(root_ / "notes.md", "not served: unknown type");
        write(dir_.file("secret.txt"), "outside the root");
        fs::create_symlink(dir_.file("secret.txt"), root_ / "link.txt");
    }

    // GET (or METHOD) TARGET against a server over ROOT; returns status, type, body, CSP.
    struct Reply {
        int status = 0;
        std::string type, body, csp, frame;
    };
    Reply fetch(const std::string& target, const std::string& method = "GET") {
        if (!server_) {
            auto opened = open_sqlite_store(dir_.file("alerts.db"));
            EXPECT_TRUE(opened.ok());
            store_ = std::move(opened).value();
            ApiOptions o;
            o.web_root = root_.string();
            server_ = std::make_unique<ApiServer>(*store_, o);
            auto port = server_->start();
            EXPECT_TRUE(port.ok()) << port.error().message;
            port_ = *port;
        }
        Poco::Net::HTTPClientSession session("127.0.0.1", port_);
        Poco::Net::HTTPRequest req(method, target, Poco::Net::HTTPMessage::HTTP_1_1);
        session.sendRequest(req);
        Poco::Net::HTTPResponse resp;
        std::istream& in = session.receiveResponse(resp);
        Reply r;
        r.status = static_cast<int>(resp.getStatus());
        r.type = resp.getContentType();
        r.csp = resp.get("Content-Security-Policy", "");
        r.frame = resp.get("X-Frame-Options", "");
        Poco::StreamCopier::copyToString(in, r.body);
        return r;
    }

    void TearDown() override {
        if (server_) server_->stop();
    }

    test::TempDir dir_;
    fs::path root_;
    std::unique_ptr<AlertStore> store_;
    std::unique_ptr<ApiServer> server_;
    std::uint16_t port_ = 0;
};

TEST_F(WebUiTest, LoadsKnownTypesAndSkipsTheRest) {
    auto files = StaticFiles::load(root_.string());
    ASSERT_TRUE(files) << files.error().message;
    EXPECT_EQ(files->size(), 3U) << "index.html, app.js, css/style.css; not .md, not the symlink";
    ASSERT_NE(files->find("/"), nullptr);
    EXPECT_EQ(files->find("/")->content_type, "text/html; charset=utf-8");
    ASSERT_NE(files->find("/css/style.css"), nullptr);
    EXPECT_EQ(files->find("/css/style.css")->body, "body{}");
    EXPECT_EQ(files->find("/notes.md"), nullptr);
    EXPECT_EQ(files->find("/link.txt"), nullptr);
}

TEST_F(WebUiTest, AMissingRootOrIndexIsAClearError) {
    auto missing = StaticFiles::load(dir_.file("nope"));
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code, common::ErrorCode::kNotFound);
    EXPECT_NE(missing.error().message.find("nope"), std::string::npos);
    fs::remove(root_ / "index.html");
    auto no_index = StaticFiles::load(root_.string());
    ASSERT_FALSE(no_index);
    EXPECT_NE(no_index.error().message.find("no index.html"), std::string::npos);
    // The server refuses to start on it rather than serving nothing.
    auto opened = open_sqlite_store(dir_.file("alerts.db"));
    ASSERT_TRUE(opened.ok());
    ApiOptions o;
    o.web_root = root_.string();
    ApiServer server(**opened, o);
    auto port = server.start();
    ASSERT_FALSE(port);
    EXPECT_EQ(port.error().code, common::ErrorCode::kNotFound);
}

TEST_F(WebUiTest, ServesTheUiWithTypesAndSecurityHeaders) {
    Reply index = fetch("/");
    EXPECT_EQ(index.status, 200);
    EXPECT_EQ(index.type, "text/html; charset=utf-8");
    EXPECT_EQ(index.body, "<!doctype html><title>t</title>");
    EXPECT_NE(index.csp.find("default-src 'self'"), std::string::npos);
    EXPECT_NE(index.csp.find("frame-ancestors 'none'"), std::string::npos);
    EXPECT_EQ(index.frame, "DENY");
    Reply js = fetch("/app.js");
    EXPECT_EQ(js.status, 200);
    EXPECT_EQ(js.type, "text/javascript; charset=utf-8");
    // The API is still the API.
    Reply health = fetch("/api/v1/health");
    EXPECT_EQ(health.status, 200);
    EXPECT_NE(health.body.find("\"status\":\"ok\""), std::string::npos);
}

TEST_F(WebUiTest, NoPathReachesOutsideTheRoot) {
    for (const std::string target :
         {"/../secret.txt", "/%2e%2e/secret.txt", "/css/../../secret.txt", "//etc/passwd",
          "/link.txt", "/notes.md", "/css", "/css/", "/index.html%00.js", "/..%2fsecret.txt"}) {
        Reply r = fetch(target);
        EXPECT_EQ(r.status, 404) << target;
        EXPECT_EQ(r.body.find("outside the root"), std::string::npos) << target;
    }
}

TEST_F(WebUiTest, OnlyGetIsAllowedOnPages) {
    EXPECT_EQ(fetch("/app.js", "DELETE").status, 405);
    EXPECT_EQ(fetch("/app.js", "POST").status, 405);
}

}  // namespace
}  // namespace senningen::collector
