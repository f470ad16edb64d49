// Poco glue for the REST API. Handlers stay thin: parse the request into an AlertQuery,
// ask the store, render JSON. Every exception stops here, at the Poco boundary, and becomes
// a problem document without its text: exception messages can carry paths and SQL, which
// are for the operator's log, not for the client.
#include "senningen/collector/http_api.h"

#include <Poco/Exception.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSONString.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/ThreadPool.h>
#include <Poco/Timespan.h>
#include <Poco/URI.h>

#include <array>
#include <charconv>
#include <chrono>
#include <exception>
#include <optional>
#include <set>
#include <sstream>
#include <string_view>
#include <utility>

#include "senningen/collector/static_files.h"
#include "senningen/common/json_codec.h"
#include "senningen/common/log.h"

namespace senningen::collector {

namespace {

using common::ErrorCode;
using common::make_error;
using Poco::Net::HTTPResponse;

constexpr std::string_view kComponent = "api";
constexpr std::string_view kVersion = SENNINGEN_VERSION;
constexpr std::string_view kHealthPath = "/api/v1/health";
constexpr std::string_view kAlertsPath = "/api/v1/alerts";
constexpr std::string_view kAgentsPath = "/api/v1/agents";
constexpr std::size_t kAgentEventsShown = 50;
constexpr std::string_view kJsonType = "application/json; charset=utf-8";
constexpr std::string_view kProblemType = "application/problem+json";

constexpr std::size_t kDefaultLimit = 100;
constexpr std::size_t kMaxAgentIdLength = 256;
// Request values are echoed in problem details so the client sees what was refused; cut, so
// that a huge parameter does not come back as a huge error.
constexpr std::size_t kMaxEchoedLength = 64;

constexpr int kListenBacklog = 64;
constexpr int kMaxQueuedConnections = 64;
constexpr int kThreadIdleSeconds = 60;
constexpr Poco::Timespan::TimeDiff kSocketTimeoutSeconds = 10;
constexpr Poco::Timespan::TimeDiff kKeepAliveTimeoutSeconds = 5;
// How long an idle dispatcher thread waits for work. Poco's default is 10 s, and a thread that
// starts waiting just as the server stops is not woken: stop() would then hang that long.
constexpr Poco::Timespan::TimeDiff kDispatcherIdleMilliseconds = 500;

// What one request answers; built without touching the response, so that an exception while
// building it can still be turned into a clean 500.
struct Reply {
    HTTPResponse::HTTPStatus status = HTTPResponse::HTTP_OK;
    std::string content_type;
    std::string body;
    std::string allow;  // for 405 only
};

std::string stringify(const Poco::JSON::Object& object) {
    std::ostringstream out;
    object.stringify(out);
    return out.str();
}

Reply json_reply(HTTPResponse::HTTPStatus status, const Poco::JSON::Object& object) {
    return Reply{status, std::string(kJsonType), stringify(object), {}};
}

Reply problem(HTTPResponse::HTTPStatus status, const std::string& detail) {
    Poco::JSON::Object object(Poco::JSON_PRESERVE_KEY_ORDER);
    object.set("type", "about:blank");
    object.set("title", HTTPResponse::getReasonForStatus(status));
    object.set("status", static_cast<int>(status));
    object.set("detail", detail);
    return Reply{status, std::string(kProblemType), stringify(object), {}};
}

Reply method_not_allowed(const std::string& method, std::string_view path) {
    Reply reply =
        problem(HTTPResponse::HTTP_METHOD_NOT_ALLOWED,
                "method " + method + " is not allowed on " + std::string(path) + "; use GET");
    reply.allow = "GET";
    return reply;
}

// Quoted, cut and reduced to printable ASCII: it goes into a JSON string and an operator's
// terminal, and a cut may fall inside a UTF-8 sequence.
std::string echo(std::string_view value) {
    std::string out = "'";
    for (std::size_t i = 0; i < value.size() && i < kMaxEchoedLength; ++i) {
        const auto c = static_cast<unsigned char>(value[i]);
        out.push_back(c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '?');
    }
    if (value.size() > kMaxEchoedLength) out += "...";
    out += "'";
    return out;
}

common::Error bad_parameter(std::string_view name, std::string_view value,
                            std::string_view problem_text) {
    return make_error(ErrorCode::kInvalidArgument, "parameter " + echo(name) + ": " + echo(value) +
                                                       " " + std::string(problem_text));
}

// Exact decimal, nothing else: no sign, no blanks, no trailing text.
bool parse_int(std::string_view text, int& out) {
    if (text.empty() || text.front() < '0' || text.front() > '9') return false;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc() && end == text.data() + text.size();
}

common::Result<std::vector<int>> parse_severities(std::string_view value) {
    std::vector<int> out;
    std::size_t start = 0;
    while (true) {
        const std::size_t comma = value.find(',', start);
        const std::string_view token = value.substr(
            start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
        int severity = 0;
        if (!parse_int(token, severity) || severity < common::kSeverityMin ||
            severity > common::kSeverityMax) {
            return bad_parameter("severity", token, "is not one of 1..4");
        }
        out.push_back(severity);
        if (comma == std::string_view::npos) break;
        start = comma + 1;
    }
    return out;
}

common::Result<AlertQuery> parse_alert_query(const Poco::URI::QueryParameters& parameters) {
    AlertQuery query;
    query.limit = kDefaultLimit;
    std::set<std::string> seen;
    for (const auto& [name, value] : parameters) {
        // A repeated filter has no single obvious meaning (AND? OR? last wins?): refuse it.
        if (!seen.insert(name).second) {
            return make_error(ErrorCode::kInvalidArgument,
                              "parameter " + echo(name) + " is given more than once");
        }
        if (name == "since" || name == "until") {
            auto ns = common::parse_timestamp(value);
            if (!ns) {
                return bad_parameter(name, value,
                                     "is not an RFC 3339 UTC timestamp such as "
                                     "2026-11-28T10:00:00Z");
            }
            (name == "since" ? query.since_ns : query.until_ns) = *ns;
        } else if (name == "severity") {
            auto severities = parse_severities(value);
            if (!severities) return severities.error();
            query.severities = std::move(severities).value();
        } else if (name == "agent") {
            if (value.empty()) return bad_parameter(name, value, "is empty");
            if (value.size() > kMaxAgentIdLength) {
                return bad_parameter(
                    name, value, "is longer than " + std::to_string(kMaxAgentIdLength) + " bytes");
            }
            query.agent_id = value;
        } else if (name == "limit") {
            int limit = 0;
            if (!parse_int(value, limit) || limit < 1 ||
                static_cast<std::size_t>(limit) > kMaxQueryLimit) {
                return bad_parameter(name, value,
                                     "is not an integer in 1.." + std::to_string(kMaxQueryLimit));
            }
            query.limit = static_cast<std::size_t>(limit);
        } else {
            return make_error(ErrorCode::kInvalidArgument,
                              "parameter " + echo(name) +
                                  " is not known; the parameters are since, until, severity, "
                                  "agent, limit");
        }
    }
    if (query.since_ns && query.until_ns && *query.until_ns < *query.since_ns) {
        return make_error(ErrorCode::kInvalidArgument,
                          "parameter 'until' is earlier than parameter 'since'");
    }
    return query;
}

struct ApiContext {
    AlertStore& store;
    std::chrono::steady_clock::time_point started;
    std::optional<detail::StaticFiles> web;  // the UI, when a web root is configured
};

Reply health(ApiContext& context) {
    Poco::JSON::Object object(Poco::JSON_PRESERVE_KEY_ORDER);
    auto count = context.store.count();
    if (!count) {
        common::log_error(kComponent, "health: " + count.error().message);
        object.set("status", "error");
        object.set("version", std::string(kVersion));
        object.set("backend", context.store.backend_name());
        object.set("message", "the alert store does not answer (" +
                                  std::string(common::to_string(count.error().code)) +
                                  " error; details in the collector's log)");
        return json_reply(HTTPResponse::HTTP_SERVICE_UNAVAILABLE, object);
    }
    const auto uptime = std::chrono::duration_cast<std::chrono::seconds>(
        std::chrono::steady_clock::now() - context.started);
    object.set("status", "ok");
    object.set("version", std::string(kVersion));
    object.set("backend", context.store.backend_name());
    object.set("alerts", static_cast<Poco::UInt64>(*count));
    object.set("uptime_seconds", static_cast<Poco::Int64>(uptime.count()));
    return json_reply(HTTPResponse::HTTP_OK, object);
}

Reply alerts(ApiContext& context, const Poco::URI& uri) {
    auto query = parse_alert_query(uri.getQueryParameters());
    if (!query) return problem(HTTPResponse::HTTP_BAD_REQUEST, query.error().message);
    auto found = context.store.query(*query);
    if (!found) {
        common::log_error(kComponent, "alerts: " + found.error().message);
        return problem(HTTPResponse::HTTP_SERVICE_UNAVAILABLE,
                       "the alert store does not answer; details are in the collector's log");
    }
    Poco::JSON::Array::Ptr list = new Poco::JSON::Array;
    for (const common::Alert& alert : *found) list->add(common::alert_to_json_object(alert));
    Poco::JSON::Object object(Poco::JSON_PRESERVE_KEY_ORDER);
    object.set("alerts", list);
    object.set("count", static_cast<Poco::UInt64>(found->size()));
    return json_reply(HTTPResponse::HTTP_OK, object);
}

Poco::JSON::Object::Ptr agent_json(const AgentStatus& a) {
    Poco::JSON::Object::Ptr o = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
    const common::Heartbeat& h = a.last;
    auto u64 = [](std::uint64_t v) { return static_cast<Poco::UInt64>(v); };
    o->set("id", a.id);
    o->set("state", a.state);
    o->set("state_since", common::format_timestamp(a.state_since_ns));
    o->set("first_seen", common::format_timestamp(a.first_seen_ns));
    o->set("last_heartbeat", common::format_timestamp(a.last_seen_ns));
    o->set("heartbeat_interval_seconds", u64(h.interval_s));
    o->set("version", h.version);
    o->set("uptime_seconds", u64(h.uptime_s));
    o->set("rule_pack", h.pack_version);
    Poco::JSON::Object::Ptr c = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
    c->set("packets", u64(h.packets));
    c->set("kernel_drops", u64(h.kernel_drops));
    c->set("bytes", u64(h.bytes));
    c->set("files_scanned", u64(h.files_scanned));
    c->set("alerts", u64(h.alerts));
    c->set("queue_depth", u64(h.queue_depth));
    c->set("queue_oldest_age_seconds", u64(h.queue_oldest_age_s));
    o->set("counters", c);
    return o;
}

Reply agents(ApiContext& context, const Poco::URI& uri) {
    if (!uri.getQueryParameters().empty()) {
        return problem(HTTPResponse::HTTP_BAD_REQUEST, "this resource takes no parameters");
    }
    auto found = context.store.agents();
    if (!found) {
        common::log_error(kComponent, "agents: " + found.error().message);
        return problem(HTTPResponse::HTTP_SERVICE_UNAVAILABLE,
                       "the store does not answer; details are in the collector's log");
    }
    Poco::JSON::Array::Ptr list = new Poco::JSON::Array;
    for (const AgentStatus& a : *found) list->add(agent_json(a));
    Poco::JSON::Object object(Poco::JSON_PRESERVE_KEY_ORDER);
    object.set("agents", list);
    object.set("count", static_cast<Poco::UInt64>(found->size()));
    return json_reply(HTTPResponse::HTTP_OK, object);
}

Reply one_agent(ApiContext& context, const std::string& id) {
    if (id.empty() || id.size() > kMaxAgentIdLength) {
        return problem(HTTPResponse::HTTP_NOT_FOUND, "there is no agent " + echo(id));
    }
    auto found = context.store.agent(id);
    auto events = context.store.agent_events(id, kAgentEventsShown);
    if (!found || !events) {
        common::log_error(kComponent, "agent " + id + ": " +
                                          (found ? events.error().message : found.error().message));
        return problem(HTTPResponse::HTTP_SERVICE_UNAVAILABLE,
                       "the store does not answer; details are in the collector's log");
    }
    if (!*found) return problem(HTTPResponse::HTTP_NOT_FOUND, "there is no agent " + echo(id));
    Poco::JSON::Object::Ptr object = agent_json(**found);
    Poco::JSON::Array::Ptr list = new Poco::JSON::Array;
    for (const AgentEvent& e : *events) {
        Poco::JSON::Object::Ptr ev = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
        ev->set("time", common::format_timestamp(e.time_ns));
        ev->set("event", e.event);
        ev->set("detail", e.detail);
        list->add(ev);
    }
    object->set("events", list);
    return json_reply(HTTPResponse::HTTP_OK, *object);
}

Reply openapi(ApiContext& /*context*/, const Poco::URI& /*uri*/, const std::string& /*id*/) {
    return Reply{HTTPResponse::HTTP_OK, std::string(kJsonType), std::string(openapi_document()),
                 {}};
}

Reply health_route(ApiContext& context, const Poco::URI& /*uri*/, const std::string& /*id*/) {
    return health(context);
}
Reply alerts_route(ApiContext& context, const Poco::URI& uri, const std::string& /*id*/) {
    return alerts(context, uri);
}
Reply agents_route(ApiContext& context, const Poco::URI& uri, const std::string& /*id*/) {
    return agents(context, uri);
}
Reply one_agent_route(ApiContext& context, const Poco::URI& /*uri*/, const std::string& id) {
    return one_agent(context, id);
}

// Every resource the server has, in OpenAPI's path notation; all answer GET only. A path
// ending in "{id}" matches any path below its prefix, the rest being the id. api_routes()
// hands this list to the test that holds docs/api/openapi.json to it.
struct Route {
    std::string_view path;
    Reply (*handler)(ApiContext&, const Poco::URI&, const std::string&);
};
constexpr std::string_view kIdSuffix = "{id}";
constexpr std::array kRoutes = {
    Route{kHealthPath, health_route},
    Route{kAlertsPath, alerts_route},
    Route{kAgentsPath, agents_route},
    Route{"/api/v1/agents/{id}", one_agent_route},
    Route{"/api/v1/openapi.json", openapi},
};

Reply route(ApiContext& context, const Poco::Net::HTTPServerRequest& request) {
    Poco::URI uri;
    try {
        uri = Poco::URI(request.getURI());
        // Decodes the query now, so a malformed escape is a 400 here and not a 500 later.
        static_cast<void>(uri.getQueryParameters());
    } catch (const Poco::SyntaxException&) {
        return problem(HTTPResponse::HTTP_BAD_REQUEST,
                       "the request target " + echo(request.getURI()) + " is not a valid URI");
    }
    const std::string& path = uri.getPath();
    const bool get = request.getMethod() == Poco::Net::HTTPRequest::HTTP_GET;
    if (!path.starts_with("/api/") && context.web) {
        const detail::StaticFile* file = context.web->find(path);
        if (!file) return problem(HTTPResponse::HTTP_NOT_FOUND, "there is no page at " + echo(path));
        if (!get) return method_not_allowed(request.getMethod(), path);
        return Reply{HTTPResponse::HTTP_OK, file->content_type, file->body, {}};
    }
    for (const Route& r : kRoutes) {
        std::string id;
        if (r.path.ends_with(kIdSuffix)) {
            const std::string_view prefix = r.path.substr(0, r.path.size() - kIdSuffix.size());
            if (!path.starts_with(prefix)) continue;
            id = path.substr(prefix.size());
        } else if (path != r.path) {
            continue;
        }
        if (!get) return method_not_allowed(request.getMethod(), path);
        return r.handler(context, uri, id);
    }
    return problem(HTTPResponse::HTTP_NOT_FOUND, "there is no resource at " + echo(path));
}

void send(const Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response,
          const Reply& reply) {
    response.setStatusAndReason(reply.status);
    response.setContentType(reply.content_type);
    response.set("Cache-Control", "no-store");
    response.set("X-Content-Type-Options", "nosniff");
    // The UI loads nothing from elsewhere and runs no inline script; nothing may frame it.
    response.set("Content-Security-Policy",
                 "default-src 'self'; img-src 'self' data:; object-src 'none'; "
                 "base-uri 'none'; form-action 'self'; frame-ancestors 'none'");
    response.set("X-Frame-Options", "DENY");
    response.set("Referrer-Policy", "no-referrer");
    if (!reply.allow.empty()) response.set("Allow", reply.allow);
    // No handler reads a request body; one left unread would be parsed as the next request.
    if (request.hasContentLength() || request.getChunkedTransferEncoding()) {
        response.setKeepAlive(false);
    }
    response.setContentLength64(static_cast<Poco::Int64>(reply.body.size()));
    response.sendBuffer(reply.body.data(), reply.body.size());
}

class ApiHandler final : public Poco::Net::HTTPRequestHandler {
public:
    explicit ApiHandler(ApiContext& context) : context_(context) {}

    void handleRequest(Poco::Net::HTTPServerRequest& request,
                       Poco::Net::HTTPServerResponse& response) override {
        Reply reply;
        try {
            reply = route(context_, request);
        } catch (const Poco::Exception& e) {
            reply = internal_error(e.displayText());
        } catch (const std::exception& e) {
            reply = internal_error(e.what());
        } catch (...) {
            reply = internal_error("unknown exception");
        }
        try {
            if (!response.sent()) send(request, response, reply);
        } catch (const Poco::Exception& e) {
            // Most likely the client went away; nothing can be answered any more.
            common::log_debug(kComponent, "response not sent: " + e.displayText());
        } catch (...) {
            common::log_debug(kComponent, "response not sent");
        }
    }

private:
    static Reply internal_error(const std::string& what) {
        common::log_error(kComponent, "request failed: " + what);
        return problem(HTTPResponse::HTTP_INTERNAL_SERVER_ERROR,
                       "the request could not be served; details are in the collector's log");
    }

    ApiContext& context_;
};

class ApiHandlerFactory final : public Poco::Net::HTTPRequestHandlerFactory {
public:
    explicit ApiHandlerFactory(ApiContext& context) : context_(context) {}

    Poco::Net::HTTPRequestHandler* createRequestHandler(
        const Poco::Net::HTTPServerRequest& /*request*/) override {
        return new ApiHandler(context_);  // Poco takes ownership
    }

private:
    ApiContext& context_;
};

}  // namespace

std::vector<std::string> api_routes() {
    std::vector<std::string> out;
    out.reserve(kRoutes.size());
    for (const Route& r : kRoutes) out.emplace_back(r.path);
    return out;
}

struct ApiServer::Impl {
    ApiOptions options;
    ApiContext context;
    // Our own pool rather than Poco's default one, which other parts of the process may use.
    std::unique_ptr<Poco::ThreadPool> threads;
    std::unique_ptr<Poco::Net::HTTPServer> server;
};

ApiServer::ApiServer(AlertStore& store, ApiOptions options)
    : impl_(std::make_unique<Impl>(
          Impl{std::move(options), ApiContext{store, std::chrono::steady_clock::now(), std::nullopt}, {}, {}})) {}

ApiServer::~ApiServer() {
    stop();
}

common::Result<std::uint16_t> ApiServer::start() {
    Impl& impl = *impl_;
    const std::string where = impl.options.host + ":" + std::to_string(impl.options.port);
    if (impl.server) {
        return make_error(ErrorCode::kInvalidArgument,
                          "REST API on " + where + " is already started");
    }
    if (impl.options.max_threads < 1) {
        return make_error(
            ErrorCode::kInvalidArgument,
            "REST API max_threads " + std::to_string(impl.options.max_threads) + " is below 1");
    }
    if (!impl.options.web_root.empty()) {
        auto web = detail::StaticFiles::load(impl.options.web_root);
        if (!web) return web.error();
        common::log_info(kComponent, "web UI: " + std::to_string(web->size()) + " files from " +
                                         impl.options.web_root);
        impl.context.web = std::move(web).value();
    }
    try {
        Poco::Net::ServerSocket socket;
        // reuseAddress lets a restarted collector bind through TIME_WAIT. reusePort stays off:
        // Poco's two-argument bind() turns it on too, and then a port held by another process
        // would be shared silently instead of being an error.
        socket.bind(Poco::Net::SocketAddress(impl.options.host, impl.options.port),
                    /*reuseAddress=*/true, /*reusePort=*/false);
        socket.listen(kListenBacklog);

        Poco::Net::HTTPServerParams::Ptr params = new Poco::Net::HTTPServerParams;
        params->setMaxThreads(impl.options.max_threads);
        params->setMaxQueued(kMaxQueuedConnections);
        params->setTimeout(Poco::Timespan(kSocketTimeoutSeconds, 0));
        params->setKeepAlive(true);
        params->setKeepAliveTimeout(Poco::Timespan(kKeepAliveTimeoutSeconds, 0));
        params->setThreadIdleTime(Poco::Timespan(kDispatcherIdleMilliseconds * 1000));

        impl.threads = std::make_unique<Poco::ThreadPool>(
            "senningen-api", 1, impl.options.max_threads, kThreadIdleSeconds);
        impl.context.started = std::chrono::steady_clock::now();
        impl.server = std::make_unique<Poco::Net::HTTPServer>(new ApiHandlerFactory(impl.context),
                                                              *impl.threads, socket, params);
        impl.server->start();
        return socket.address().port();
    } catch (const Poco::Exception& e) {
        impl.server.reset();
        impl.threads.reset();
        return make_error(ErrorCode::kUnavailable,
                          "REST API cannot listen on " + where + ": " + e.displayText());
    }
}

void ApiServer::stop() {
    Impl& impl = *impl_;
    if (!impl.server) return;
    try {
        impl.server->stopAll(/*abortCurrent=*/true);
        // Handlers run on this pool: once it is idle none of them can touch the store.
        impl.threads->joinAll();
    } catch (const Poco::Exception& e) {
        common::log_warn(kComponent, "stopping: " + e.displayText());
    }
    impl.server.reset();
    impl.threads.reset();
}

}  // namespace senningen::collector
