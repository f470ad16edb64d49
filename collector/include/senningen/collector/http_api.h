// The collector's REST API for CERT analysts: health, login and alert queries over HTTP/1.1
// (or HTTPS when a certificate is configured),
// JSON in the EVE shape of common/json_codec.h, errors as RFC 7807 problem documents. It
// serves whatever AlertStore it is given and keeps Poco out of this header. Every path
// outside /api/ is the web UI's static files, when a web root is configured.
//
//   GET  /api/v1/health                 open
//   POST /api/v1/login, /api/v1/logout  open (login is rate limited)
//   GET  /api/v1/openapi.json           open (docs/api/openapi.json, compiled in)
//   GET  /api/v1/me                     any account
//   GET  /api/v1/alerts?since=&until=&severity=&agent=&status=&assignee=&rule=&source=&proto=
//        &src=&dest=&ip=&q=&sort=&limit=&cursor=    (a page; next_cursor continues it)
//   GET  /api/v1/alerts/export?format=eve|csv&(the same filters and sort)   (streamed)
//   GET  /api/v1/alerts/{id}             (detail, comments, audit)  Permission::kReadAlerts
//   PATCH /api/v1/alerts/{id}, POST /api/v1/alerts/{id}/comments,
//   POST /api/v1/alerts/bulk                                        Permission::kTriageAlerts
//   GET  /api/v1/agents, /api/v1/agents/{id}                       Permission::kReadAgents
//   GET  /api/v1/users                                             Permission::kManageUsers
//
// Everything but health, login, logout and the OpenAPI document needs a session cookie (from
// login) or an "Authorization: Bearer snt_..." token (from 'senningen-collector user token');
// without one the answer is 401, with a role that lacks the route's Permission 403.
// The reference for clients is docs/collector.md ("REST API") and the OpenAPI document.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "senningen/collector/alert_store.h"
#include "senningen/collector/auth.h"
#include "senningen/common/result.h"

namespace senningen::collector {

struct ApiOptions {
    std::string host = "127.0.0.1";  // loopback unless the operator opens it up
    std::uint16_t port = 0;          // 0 picks a free port; start() says which
    int max_threads = 8;             // concurrent requests served; more wait in a queue
    // The web UI's folder (index.html, scripts, styles), read once at start() and served at
    // every path outside /api/. Empty: no UI, only the API.
    std::string web_root;
    // A login's session lasts this long (absolute, not sliding).
    std::chrono::seconds session_lifetime{8 * 3600};
    // Marks the session cookie Secure: set it when clients reach the API over HTTPS (a TLS
    // proxy in front), or browsers send the cookie over plain HTTP too. Serving HTTPS itself
    // (below) implies it.
    bool secure_cookie = false;
    // HTTPS: the server's certificate (PEM; the chain may follow it in the same file) and its
    // private key (PEM, unencrypted). With both set the API and the UI are served over TLS 1.2
    // or newer only, and the session cookie is Secure. start() refuses a missing or unreadable
    // file, one that is not PEM, a key that is not the certificate's, or only one of the two.
    std::string https_certificate;
    std::string https_key;
    // A larger request body is refused with 413 before it is read.
    std::size_t max_body_bytes = 64 * 1024;
    // Failed logins per account name and per client address (docs/collector.md).
    LoginLimiter::Options login_limits;
};

// Every method and resource the server answers, as "METHOD PATH" with the path in OpenAPI's
// notation ("GET /api/v1/agents/{id}").
std::vector<std::string> api_routes();

// docs/api/openapi.json as it was at build time; the server answers it at /api/v1/openapi.json.
std::string_view openapi_document();

class ApiServer {
public:
    // The store must outlive the server, or at least its stop().
    ApiServer(AlertStore& store, ApiOptions options);
    ~ApiServer();  // stops

    ApiServer(const ApiServer&) = delete;
    ApiServer& operator=(const ApiServer&) = delete;

    // Binds and starts serving; returns the port actually bound. A port already in use or an
    // address that cannot be bound => kUnavailable naming host:port; a second start(),
    // max_threads < 1 or an unusable HTTPS certificate or key => kInvalidArgument naming the
    // file and the problem.
    common::Result<std::uint16_t> start();

    // Stops accepting, aborts open keep-alive connections and waits for running requests:
    // once it returns, the server no longer touches the store. Idempotent.
    void stop();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace senningen::collector
