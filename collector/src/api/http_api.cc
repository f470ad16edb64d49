// Poco glue for the REST API. Handlers stay thin: parse the request into an AlertQuery,
// ask the store, render JSON. Every exception stops here, at the Poco boundary, and becomes
// a problem document without its text: exception messages can carry paths and SQL, which
// are for the operator's log, not for the client.
#include "senningen/collector/http_api.h"

#include <Poco/Exception.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/JSON/Stringifier.h>
#include <Poco/JSONString.h>
#include <Poco/Net/MediaType.h>
#include <Poco/Net/NameValueCollection.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerRequestImpl.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/SecureServerSocket.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/ThreadPool.h>
#include <Poco/Timespan.h>
#include <Poco/URI.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <array>
#include <cerrno>
#include <initializer_list>
#include <map>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <cstdint>
#include <chrono>
#include <exception>
#include <functional>
#include <map>
#include <istream>
#include <mutex>
#include <optional>
#include <set>
#include <variant>
#include <vector>
#include <algorithm>
#include <sstream>
#include <string_view>
#include <utility>

#include "senningen/collector/static_files.h"
#include "senningen/common/json_codec.h"
#include "senningen/common/log.h"
#include "senningen/common/openssl_util.h"

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
constexpr std::string_view kLoginPath = "/api/v1/login";
constexpr std::string_view kLogoutPath = "/api/v1/logout";
constexpr std::string_view kMePath = "/api/v1/me";
constexpr std::string_view kUsersPath = "/api/v1/users";
constexpr std::string_view kSessionCookie = "senningen_session";
constexpr std::string_view kBearerPrefix = "Bearer ";
constexpr std::string_view kTokenPrefix = "snt_";
constexpr std::string_view kSessionPrefix = "sns_";
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
    std::vector<std::pair<std::string, std::string>> headers = {};  // Set-Cookie, Retry-After
    // Set for a streamed body (exports): called once the headers are out, with the chunked
    // body stream; false when it could not finish, and the connection is then cut so that the
    // client sees a truncated transfer rather than a complete-looking short one.
    std::function<bool(std::ostream&)> stream = {};
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

Reply method_not_allowed(const std::string& method, std::string_view path,
                         const std::string& allowed = "GET") {
    Reply reply =
        problem(HTTPResponse::HTTP_METHOD_NOT_ALLOWED,
                "method " + method + " is not allowed on " + std::string(path) + "; use " + allowed);
    reply.allow = allowed;
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

// A message that may carry request bytes, reduced to printable ASCII and cut (longer than
// echo()'s cut, since the message has text of its own around the value).
std::string printable(std::string_view message) {
    constexpr std::size_t kMaxMessageLength = 4 * kMaxEchoedLength;
    std::string out;
    for (std::size_t i = 0; i < message.size() && i < kMaxMessageLength; ++i) {
        const auto c = static_cast<unsigned char>(message[i]);
        out.push_back(c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '?');
    }
    if (message.size() > kMaxMessageLength) out += "...";
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

// --- the alert list's filters, sort and cursor, and the export ---------------------------

constexpr std::string_view kAlertParameterNames =
    "since, until, severity, agent, status, assignee, rule, source, proto, src, dest, ip, q, "
    "sort, limit, cursor";
constexpr std::size_t kMaxRuleLength = 1024;
constexpr std::size_t kMaxProtoLength = 32;

// rule (exact signature), source (yara, intel, policy), proto (e.g. TCP).
common::Result<void> parse_list_text_filter(const std::string& name, const std::string& value,
                                            AlertQuery& query) {
    if (name == "source") {
        if (!common::parse_rule_source(value)) {
            return bad_parameter(name, value, "is not one of yara, intel, policy");
        }
        query.source = value;
        return {};
    }
    const std::size_t max = name == "rule" ? kMaxRuleLength : kMaxProtoLength;
    if (value.empty()) return bad_parameter(name, value, "is empty");
    if (value.size() > max) {
        return bad_parameter(name, value, "is longer than " + std::to_string(max) + " bytes");
    }
    (name == "rule" ? query.rule : query.proto) = value;
    return {};
}

common::Result<void> parse_search_text(const std::string& value) {
    AlertQuery probe;
    probe.text = value;
    if (auto ok = check_query(probe); !ok) {
        return bad_parameter("q", value,
                             "is not free text of " + std::to_string(kMinSearchLength) + ".." +
                                 std::to_string(kMaxSearchLength) +
                                 " bytes without control characters");
    }
    return {};
}

constexpr std::array<std::pair<std::string_view, AlertSort>, 4> kSorts = {{
    {"-timestamp", AlertSort::kTimeDesc},
    {"timestamp", AlertSort::kTimeAsc},
    {"severity", AlertSort::kSeverityAsc},
    {"-severity", AlertSort::kSeverityDesc},
}};

common::Result<AlertSort> parse_sort(const std::string& value) {
    for (const auto& [name, sort] : kSorts) {
        if (value == name) return sort;
    }
    return bad_parameter("sort", value, "is not one of -timestamp, timestamp, severity, -severity");
}

// What a cursor is bound to: the filters and the sort, i.e. every parameter but the cursor,
// the page size and the export format, in a canonical order.
std::string cursor_binding(const Poco::URI::QueryParameters& parameters) {
    std::vector<std::string> parts;
    for (const auto& [name, value] : parameters) {
        if (name == "cursor" || name == "limit" || name == "format") continue;
        parts.push_back(name + "=" + value);
    }
    std::sort(parts.begin(), parts.end());
    std::string out;
    for (const std::string& p : parts) out += p + '\n';
    return out;
}

// The cursor's MAC: HMAC-SHA256 under the server's key of the position and the binding, cut
// to 128 bits. A cursor can then neither be forged nor moved to other filters.
std::string cursor_mac(const std::array<unsigned char, 32>& key, const std::string& position,
                       const std::string& binding) {
    const std::string message = position + '\0' + binding;
    std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
    unsigned int length = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
         reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac.data(),
         &length);
    return common::to_hex(mac.data(), std::min<std::size_t>(length, 16));
}

// "1.SORT.TIMESTAMP.SEVERITY.ID.MAC": opaque to clients, readable in a log.
std::string make_cursor(const std::array<unsigned char, 32>& key, const AlertQuery& query,
                        const common::Alert& last, const std::string& binding) {
    const std::string position = "1." + std::to_string(static_cast<int>(query.sort)) + "." +
                                 std::to_string(last.timestamp_ns) + "." +
                                 std::to_string(last.severity) + "." + last.id;
    return position + "." + cursor_mac(key, position, binding);
}

// A cursor is "POSITION.MAC": the position's dot-separated fields, signed with the server's
// key over the query it belongs to (BINDING). Opens CURSOR into FIELDS once its MAC is right.
enum class CursorCheck { kOk, kMalformed, kForeign };
CursorCheck open_cursor(const std::array<unsigned char, 32>& key, const std::string& cursor,
                        const std::string& binding, std::vector<std::string>& fields) {
    const std::size_t mac_dot = cursor.rfind('.');
    if (cursor.size() > 200 || mac_dot == std::string::npos) return CursorCheck::kMalformed;
    const std::string position = cursor.substr(0, mac_dot);
    const std::string mac = cursor.substr(mac_dot + 1);
    const std::string expected = cursor_mac(key, position, binding);
    if (mac.size() != expected.size() ||
        CRYPTO_memcmp(mac.data(), expected.data(), expected.size()) != 0) {
        return CursorCheck::kForeign;
    }
    std::istringstream in(position);
    for (std::string part; std::getline(in, part, '.');) fields.push_back(part);
    return CursorCheck::kOk;
}

common::Result<AlertPosition> parse_cursor(const std::array<unsigned char, 32>& key,
                                           const std::string& cursor, AlertSort sort,
                                           const std::string& binding) {
    auto refuse = [&](std::string_view why) -> common::Result<AlertPosition> {
        return bad_parameter("cursor", cursor, why);
    };
    std::vector<std::string> parts;
    switch (open_cursor(key, cursor, binding, parts)) {
        case CursorCheck::kMalformed: return refuse("is not a cursor of this API");
        case CursorCheck::kForeign:
            return refuse(
                "does not belong to these filters and this sort, or was altered, or "
                "comes from before the collector restarted; start again without it");
        case CursorCheck::kOk: break;
    }
    // Made by this server, so well-formed; checked all the same.
    AlertPosition out;
    int sort_number = -1;
    if (parts.size() != 5 || parts[0] != "1" || !parse_int(parts[1], sort_number) ||
        sort_number != static_cast<int>(sort) || !parse_int(parts[3], out.severity) ||
        !common::is_uuid(parts[4])) {
        return refuse("is not a cursor of this API");
    }
    const auto [end, ec] = std::from_chars(parts[2].data(), parts[2].data() + parts[2].size(),
                                           out.timestamp_ns);
    if (ec != std::errc() || end != parts[2].data() + parts[2].size()) {
        return refuse("is not a cursor of this API");
    }
    out.id = parts[4];
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
        } else if (name == "status") {
            if (!is_alert_status(value)) {
                return bad_parameter(name, value,
                                     "is not one of new, in_progress, escalated, "
                                     "false_positive, resolved");
            }
            query.status = value;
        } else if (name == "assignee") {
            if (value.empty() || value.size() > kMaxUserNameLength) {
                return bad_parameter(name, value, "is not an account name");
            }
            query.assignee = value;
        } else if (name == "rule" || name == "source" || name == "proto") {
            auto parsed = parse_list_text_filter(name, value, query);
            if (!parsed) return parsed.error();
        } else if (name == "src" || name == "dest" || name == "ip") {
            auto range = parse_address_range(value);
            if (!range) {
                return bad_parameter(name, value,
                                     "is not an IPv4 or IPv6 address or CIDR block (" +
                                         range.error().message + ")");
            }
            (name == "src" ? query.src : name == "dest" ? query.dest : query.ip) = *range;
        } else if (name == "q") {
            auto parsed = parse_search_text(value);
            if (!parsed) return parsed.error();
            query.text = value;
        } else if (name == "sort") {
            auto sort = parse_sort(value);
            if (!sort) return sort.error();
            query.sort = *sort;
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
                                  " is not known; the parameters are " +
                                  std::string(kAlertParameterNames));
        }
    }
    if (query.since_ns && query.until_ns && *query.until_ns < *query.since_ns) {
        return make_error(ErrorCode::kInvalidArgument,
                          "parameter 'until' is earlier than parameter 'since'");
    }
    return query;
}

struct ApiContext {
    ApiContext(AlertStore& s, ApiOptions o)
        : store(s), started(std::chrono::steady_clock::now()), options(std::move(o)),
          limiter(options.login_limits) {}

    AlertStore& store;
    std::chrono::steady_clock::time_point started;
    std::optional<detail::StaticFiles> web;  // the UI, when a web root is configured
    ApiOptions options;
    LoginLimiter limiter;
    // A hash to verify against when the account does not exist, so that an unknown name takes
    // as long as a wrong password; made on first use (it costs one full KDF run).
    std::once_flag dummy_once;
    std::string dummy_hash;
    // Signs list cursors (cursor_mac); random per start, so a restart ends old cursors.
    std::array<unsigned char, 32> cursor_key{};
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

Reply store_unavailable(std::string_view what, const common::Error& error) {
    common::log_error(kComponent, std::string(what) + ": " + error.message);
    return problem(HTTPResponse::HTTP_SERVICE_UNAVAILABLE,
                   "the store does not answer; details are in the collector's log");
}

Poco::JSON::Object::Ptr triage_json(const AlertTriage& t) {
    Poco::JSON::Object::Ptr o = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
    o->set("status", t.status);
    o->set("assignee", t.assignee);
    return o;
}

// The list's query: the filters of parse_alert_query and a cursor, checked against them.
common::Result<AlertQuery> parse_list_query(const ApiContext& context,
                                            const Poco::URI::QueryParameters& parameters) {
    Poco::URI::QueryParameters filters;
    std::optional<std::string> cursor;
    for (const auto& [name, value] : parameters) {
        if (name != "cursor") {
            filters.emplace_back(name, value);
        } else if (cursor) {
            return make_error(ErrorCode::kInvalidArgument,
                              "parameter 'cursor' is given more than once");
        } else {
            cursor = value;
        }
    }
    auto query = parse_alert_query(filters);
    if (!query) return query.error();
    if (cursor) {
        auto after = parse_cursor(context.cursor_key, *cursor, query->sort,
                                  cursor_binding(parameters));
        if (!after) return after.error();
        query->after = std::move(after).value();
    }
    return query;
}

Reply alerts(ApiContext& context, const Poco::URI& uri) {
    auto query = parse_list_query(context, uri.getQueryParameters());
    if (!query) return problem(HTTPResponse::HTTP_BAD_REQUEST, query.error().message);
    auto found = context.store.query(*query);
    if (!found) {
        common::log_error(kComponent, "alerts: " + found.error().message);
        return problem(HTTPResponse::HTTP_SERVICE_UNAVAILABLE,
                       "the alert store does not answer; details are in the collector's log");
    }
    Poco::JSON::Array::Ptr list = new Poco::JSON::Array;
    std::vector<std::string> ids;
    for (const common::Alert& alert : *found) {
        list->add(common::alert_to_json_object(alert));
        ids.push_back(alert.id);
    }
    // Triage state beside the alerts, keyed by id: the alert objects keep the EVE schema.
    auto triage = context.store.triage_of(ids);
    if (!triage) return store_unavailable("alerts", triage.error());
    Poco::JSON::Object::Ptr states = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
    for (const auto& [id, t] : *triage) states->set(id, triage_json(t));
    Poco::JSON::Object object(Poco::JSON_PRESERVE_KEY_ORDER);
    object.set("alerts", list);
    object.set("count", static_cast<Poco::UInt64>(found->size()));
    object.set("triage", states);
    // A full page may have a next one: the cursor continues behind its last alert.
    if (!found->empty() && found->size() == query->limit) {
        object.set("next_cursor", make_cursor(context.cursor_key, *query, found->back(),
                                              cursor_binding(uri.getQueryParameters())));
    } else {
        object.set("next_cursor", Poco::Dynamic::Var());
    }
    return json_reply(HTTPResponse::HTTP_OK, object);
}

// The list's filters plus the parameters of one aggregation or grouping (OWN, taken out
// before the rest goes to parse_alert_query(), so that every filter of the list applies).
struct SplitParameters {
    std::map<std::string, std::string> own;
    Poco::URI::QueryParameters rest;
};

common::Result<SplitParameters> split_parameters(const Poco::URI::QueryParameters& parameters,
                                                 std::initializer_list<std::string_view> own) {
    SplitParameters out;
    for (const auto& [name, value] : parameters) {
        if (std::find(own.begin(), own.end(), name) == own.end()) {
            out.rest.emplace_back(name, value);
        } else if (!out.own.emplace(name, value).second) {
            return make_error(ErrorCode::kInvalidArgument,
                              "parameter " + echo(name) + " is given more than once");
        }
    }
    return out;
}

common::Result<std::size_t> parse_bucket_limit(const std::map<std::string, std::string>& own) {
    const auto it = own.find("limit");
    if (it == own.end()) return kDefaultLimit;
    int limit = 0;
    if (!parse_int(it->second, limit) || limit < 1 ||
        static_cast<std::size_t>(limit) > kMaxAggregateLimit) {
        return bad_parameter("limit", it->second,
                             "is not an integer in 1.." + std::to_string(kMaxAggregateLimit));
    }
    return static_cast<std::size_t>(limit);
}

// "90s", "15m", "1h", "7d": a whole number and a unit.
common::Result<std::int64_t> parse_window(const std::string& value) {
    constexpr std::int64_t kSecondNs = 1'000'000'000;
    const auto bad = [&] {
        return bad_parameter("window", value,
                             "is not a duration of 1m..30d such as 15m, 1h or 1d (a whole "
                             "number and one of s, m, h, d)");
    };
    if (value.size() < 2) return bad();
    std::int64_t unit = 0;
    switch (value.back()) {
        case 's': unit = kSecondNs; break;
        case 'm': unit = 60 * kSecondNs; break;
        case 'h': unit = kHourNs; break;
        case 'd': unit = 24 * kHourNs; break;
        default: return bad();
    }
    int amount = 0;
    if (!parse_int(std::string_view(value).substr(0, value.size() - 1), amount)) return bad();
    const std::int64_t ns = static_cast<std::int64_t>(amount) * unit;
    if (ns < kMinGroupWindowNs || ns > kMaxGroupWindowNs) return bad();
    return ns;
}

// The aggregation's body, written out in one pass: as Poco::JSON objects, the 720 buckets of a
// month by hour cost more than the store's query (a map of Vars per bucket). Strings go through
// Poco's JSON string formatting (quotes, escapes); the rest are numbers, booleans and fixed keys.
std::string aggregate_body(const AggregateQuery& q, const AggregateResult& result) {
    std::ostringstream out;
    out << "{\"by\":";
    Poco::JSON::Stringifier::formatString(std::string(to_string(q.by)), out);
    out << ",\"buckets\":[";
    std::uint64_t total = 0;
    bool first = true;
    for (const AggregateBucket& b : result.buckets) {
        out << (first ? "{" : ",{");
        first = false;
        if (q.by == AggregateBy::kHour) {
            out << "\"hour\":";
            Poco::JSON::Stringifier::formatString(common::format_timestamp(b.hour_ns), out);
        } else if (q.by == AggregateBy::kSeverity) {
            int severity = 0;
            static_cast<void>(parse_int(b.key, severity));
            out << "\"key\":" << severity;
        } else {
            out << "\"key\":";
            Poco::JSON::Stringifier::formatString(b.key, out);
        }
        out << ",\"count\":" << b.count;
        if (q.by == AggregateBy::kHour) {
            out << ",\"severity\":{";
            for (std::size_t i = 0; i < b.severity_counts.size(); ++i) {
                out << (i == 0 ? "\"" : ",\"") << i + 1 << "\":" << b.severity_counts[i];
            }
            out << '}';
        }
        out << '}';
        total += b.count;
    }
    out << "],\"total\":" << total << ",\"truncated\":" << (result.truncated ? "true" : "false")
        << ",\"source\":\"" << (result.from_rollup ? "rollup" : "alerts") << "\"}";
    return out.str();
}

Reply aggregate(ApiContext& context, const Poco::URI& uri) {
    auto split = split_parameters(uri.getQueryParameters(), {"by", "limit"});
    if (!split) return problem(HTTPResponse::HTTP_BAD_REQUEST, split.error().message);
    auto filter = parse_alert_query(split->rest);
    if (!filter) return problem(HTTPResponse::HTTP_BAD_REQUEST, filter.error().message);
    AggregateQuery q;
    q.filter = std::move(filter).value();
    // Without "by": per hour, what the UI's chart asks for.
    if (const auto by = split->own.find("by"); by != split->own.end()) {
        const auto parsed_by = parse_aggregate_by(by->second);
        if (!parsed_by) {
            return problem(HTTPResponse::HTTP_BAD_REQUEST,
                           bad_parameter("by", by->second,
                                         "is not one of hour, rule, agent, severity")
                               .message);
        }
        q.by = *parsed_by;
    }
    auto limit = parse_bucket_limit(split->own);
    if (!limit) return problem(HTTPResponse::HTTP_BAD_REQUEST, limit.error().message);
    q.limit = *limit;
    auto result = context.store.aggregate(q);
    if (!result) {
        if (result.error().code == ErrorCode::kInvalidArgument) {
            return problem(HTTPResponse::HTTP_BAD_REQUEST, result.error().message);
        }
        return store_unavailable("aggregate", result.error());
    }
    return Reply{HTTPResponse::HTTP_OK, std::string(kJsonType), aggregate_body(q, *result), {}};
}

Reply alert_groups(ApiContext& context, const Poco::URI& uri) {
    auto split = split_parameters(uri.getQueryParameters(), {"window", "limit"});
    if (!split) return problem(HTTPResponse::HTTP_BAD_REQUEST, split.error().message);
    auto filter = parse_alert_query(split->rest);
    if (!filter) return problem(HTTPResponse::HTTP_BAD_REQUEST, filter.error().message);
    GroupQuery q;
    q.filter = std::move(filter).value();
    if (const auto w = split->own.find("window"); w != split->own.end()) {
        auto window = parse_window(w->second);
        if (!window) return problem(HTTPResponse::HTTP_BAD_REQUEST, window.error().message);
        q.window_ns = *window;
    }
    auto limit = parse_bucket_limit(split->own);
    if (!limit) return problem(HTTPResponse::HTTP_BAD_REQUEST, limit.error().message);
    q.limit = *limit;
    auto found = context.store.groups(q);
    if (!found) {
        if (found.error().code == ErrorCode::kInvalidArgument) {
            return problem(HTTPResponse::HTTP_BAD_REQUEST, found.error().message);
        }
        return store_unavailable("groups", found.error());
    }
    Poco::JSON::Array::Ptr list = new Poco::JSON::Array;
    for (const AlertGroup& g : *found) {
        Poco::JSON::Object::Ptr o = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
        o->set("rule", g.rule);
        o->set("agent", g.agent_id);
        o->set("target", g.target);
        o->set("window_start", common::format_timestamp(g.window_start_ns));
        o->set("window_end", common::format_timestamp(g.window_start_ns + q.window_ns));
        o->set("count", static_cast<Poco::UInt64>(g.count));
        o->set("first", common::format_timestamp(g.first_ns));
        o->set("last", common::format_timestamp(g.last_ns));
        o->set("severity", g.top_severity);
        o->set("newest_id", g.newest_id);
        Poco::JSON::Object::Ptr statuses = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
        for (std::size_t i = 0; i < kAlertStatuses.size(); ++i) {
            statuses->set(std::string(kAlertStatuses[i]),
                          static_cast<Poco::UInt64>(g.status_counts[i]));
        }
        o->set("statuses", statuses);
        list->add(o);
    }
    Poco::JSON::Object object(Poco::JSON_PRESERVE_KEY_ORDER);
    object.set("window_seconds", static_cast<Poco::Int64>(q.window_ns / 1'000'000'000));
    object.set("groups", list);
    object.set("count", static_cast<Poco::UInt64>(found->size()));
    return json_reply(HTTPResponse::HTTP_OK, object);
}

// --- exports ---------------------------------------------------------------------------

// The CSV export's columns (docs/collector.md, "GET /api/v1/alerts/export").
constexpr std::string_view kCsvHeader =
    "timestamp,id,agent,severity,signature,category,source,kind,pack,src_ip,src_port,dest_ip,"
    "dest_port,proto,app_proto,flow_id,file_path,file_sha256,intel_indicator,intel_type,"
    "matches,status,assignee\r\n";

// One CSV cell (RFC 4180): quoted when it holds a comma, a quote or a line break, quotes
// doubled. A cell a spreadsheet would take for a formula (starting with = + - @, a tab or a
// carriage return) gets a leading apostrophe, so that opening an export runs nothing.
void append_csv_cell(std::string& out, std::string_view text) {
    std::string cell;
    if (!text.empty() && std::string_view("=+-@\t\r").find(text.front()) != std::string_view::npos) {
        cell = "'";
    }
    cell += text;
    if (cell.find_first_of(",\"\r\n") == std::string::npos) {
        out += cell;
        return;
    }
    out += '"';
    for (char c : cell) {
        if (c == '"') out += '"';
        out += c;
    }
    out += '"';
}

std::string csv_row(const common::Alert& a, const AlertTriage& triage) {
    std::vector<std::string> cells = {common::format_timestamp(a.timestamp_ns),
                                      a.id,
                                      a.agent_id,
                                      std::to_string(a.severity),
                                      a.rule,
                                      a.category,
                                      std::string(common::to_string(a.source)),
                                      std::string(common::to_string(a.kind)),
                                      a.pack_version};
    if (a.network) {
        const common::NetworkContext& n = *a.network;
        cells.insert(cells.end(), {n.src_ip, std::to_string(n.src_port), n.dest_ip,
                                   std::to_string(n.dest_port), n.proto, n.app_proto,
                                   std::to_string(n.flow_id)});
    } else {
        cells.insert(cells.end(), 7, std::string());
    }
    cells.push_back(a.file ? a.file->path : "");
    cells.push_back(a.file ? a.file->sha256 : "");
    cells.push_back(a.intel ? a.intel->indicator : "");
    cells.push_back(a.intel ? a.intel->indicator_type : "");
    std::string matches;
    for (const common::StringMatch& m : a.matches) {
        if (!matches.empty()) matches += '\n';
        matches += m.identifier + "@" + std::to_string(m.offset) + " " +
                   common::encode_match_data(m.data);
    }
    cells.push_back(std::move(matches));
    cells.push_back(triage.status);
    cells.push_back(triage.assignee);
    std::string out;
    for (std::size_t i = 0; i < cells.size(); ++i) {
        if (i > 0) out += ',';
        append_csv_cell(out, cells[i]);
    }
    out += "\r\n";
    return out;
}

// Writes PAGE, then every further page of QUERY behind it, to OUT: one keyset page of at
// most kMaxQueryLimit alerts in memory at a time, each flushed as a chunk. False when the
// store failed or the client went away.
bool stream_export(ApiContext& context, AlertQuery query, std::vector<common::Alert> page,
                   bool csv, std::ostream& out) {
    if (csv) out << kCsvHeader;
    for (;;) {
        std::map<std::string, AlertTriage> triage;
        if (csv && !page.empty()) {
            std::vector<std::string> ids;
            ids.reserve(page.size());
            for (const common::Alert& a : page) ids.push_back(a.id);
            auto states = context.store.triage_of(ids);
            if (!states) {
                common::log_error(kComponent, "export: " + states.error().message);
                return false;
            }
            triage = std::move(states).value();
        }
        for (const common::Alert& a : page) {
            if (csv) {
                const auto t = triage.find(a.id);
                out << csv_row(a, t == triage.end() ? AlertTriage{} : t->second);
            } else {
                out << common::alert_to_json(a) << '\n';
            }
        }
        out.flush();
        if (!out) return false;
        // Only an empty page ends the export: a short one may only be short because a damaged
        // row was skipped (AlertStore::query), with more alerts behind it.
        if (page.empty()) return true;
        const common::Alert& last = page.back();
        query.after = AlertPosition{last.timestamp_ns, last.severity, last.id};
        auto next = context.store.query(query);
        if (!next) {
            common::log_error(kComponent, "export: " + next.error().message);
            return false;
        }
        page = std::move(next).value();
    }
}

Reply export_alerts(ApiContext& context, const Poco::URI& uri) {
    Poco::URI::QueryParameters filters;
    std::optional<std::string> format;
    for (const auto& [name, value] : uri.getQueryParameters()) {
        if (name == "limit" || name == "cursor") {
            return problem(HTTPResponse::HTTP_BAD_REQUEST,
                           "parameter " + echo(name) +
                               " is not for exports, which always hold every matching alert");
        }
        if (name != "format") {
            filters.emplace_back(name, value);
        } else if (format) {
            return problem(HTTPResponse::HTTP_BAD_REQUEST,
                           "parameter 'format' is given more than once");
        } else {
            format = value;
        }
    }
    if (format && *format != "eve" && *format != "csv") {
        return problem(HTTPResponse::HTTP_BAD_REQUEST,
                       "parameter 'format': " + echo(*format) + " is not one of eve, csv");
    }
    auto query = parse_alert_query(filters);
    if (!query) return problem(HTTPResponse::HTTP_BAD_REQUEST, query.error().message);
    query->limit = kMaxQueryLimit;
    // The first page before the headers: a store that does not answer is still a clean 503.
    auto first = context.store.query(*query);
    if (!first) return store_unavailable("export", first.error());
    const bool csv = format == "csv";
    Reply reply{HTTPResponse::HTTP_OK,
                csv ? "text/csv; charset=utf-8; header=present" : "application/x-ndjson",
                "",
                {}};
    std::string stamp = common::format_timestamp(common::now_ns()).substr(0, 19) + "Z";
    std::erase(stamp, '-');
    std::erase(stamp, ':');
    reply.headers.emplace_back("Content-Disposition",
                               "attachment; filename=\"senningen-alerts-" + stamp +
                                   (csv ? ".csv" : ".jsonl") + "\"");
    reply.stream = [&context, q = *query, page = std::move(first).value(),
                    csv](std::ostream& out) mutable {
        return stream_export(context, q, std::move(page), csv, out);
    };
    return reply;
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


std::string_view permission_name(Permission p) {
    switch (p) {
        case Permission::kReadAlerts: return "read-alerts";
        case Permission::kTriageAlerts: return "triage-alerts";
        case Permission::kReadAgents: return "read-agents";
        case Permission::kPublishRules: return "publish-rules";
        case Permission::kManageUsers: return "manage-users";
    }
    return "unknown";
}

constexpr std::array kAllPermissions = {Permission::kReadAlerts, Permission::kTriageAlerts,
                                        Permission::kReadAgents, Permission::kPublishRules,
                                        Permission::kManageUsers};

Reply unauthorized(ApiContext& context) {
    std::string detail =
        "log in (POST /api/v1/login) or send 'Authorization: Bearer snt_...'";
    // A collector without accounts cannot be logged into at all: say how to make the first.
    if (auto users = context.store.users(); users && users->empty()) {
        detail = "this collector has no accounts yet; an administrator adds the first with "
                 "'senningen-collector user add NAME --role admin'";
    }
    Reply reply = problem(HTTPResponse::HTTP_UNAUTHORIZED, detail);
    reply.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"senningen\"");
    return reply;
}

Reply forbidden(const UserAccount& user, Permission needed) {
    return problem(HTTPResponse::HTTP_FORBIDDEN,
                   "account '" + user.name + "' has role " + std::string(to_string(user.role)) +
                       ", which lacks the permission " + std::string(permission_name(needed)) +
                       " this resource needs");
}

std::string session_cookie(const ApiContext& context, const std::string& value,
                           std::int64_t max_age_s) {
    std::string cookie = std::string(kSessionCookie) + "=" + value +
                         "; HttpOnly; SameSite=Strict; Path=/; Max-Age=" + std::to_string(max_age_s);
    if (context.options.secure_cookie) cookie += "; Secure";
    return cookie;
}

std::optional<std::string> session_id_of(const Poco::Net::HTTPServerRequest& request) {
    Poco::Net::NameValueCollection cookies;
    request.getCookies(cookies);
    const std::string id = cookies.get(std::string(kSessionCookie), "");
    if (!id.starts_with(kSessionPrefix)) return std::nullopt;
    return id;
}

// The account behind the request's credentials: a bearer token wins over a cookie. nullopt
// when there are none or they are not valid.
common::Result<std::optional<UserAccount>> authenticate(ApiContext& context,
                                                        const Poco::Net::HTTPServerRequest& request) {
    const std::string authorization = request.get("Authorization", "");
    if (!authorization.empty()) {
        if (!authorization.starts_with(kBearerPrefix)) return std::optional<UserAccount>();
        const std::string token = authorization.substr(kBearerPrefix.size());
        if (!token.starts_with(kTokenPrefix)) return std::optional<UserAccount>();
        return context.store.token_user(secret_digest(token), common::now_ns());
    }
    if (auto id = session_id_of(request)) {
        return context.store.session_user(secret_digest(*id), common::now_ns());
    }
    return std::optional<UserAccount>();
}

enum class BodyStatus { kOk, kTooLarge };

BodyStatus read_body(ApiContext& context, Poco::Net::HTTPServerRequest& request,
                     std::string& body) {
    const std::size_t limit = context.options.max_body_bytes;
    if (request.hasContentLength() &&
        static_cast<std::uint64_t>(request.getContentLength64()) > limit) {
        return BodyStatus::kTooLarge;
    }
    std::istream& in = request.stream();
    std::vector<char> buffer(limit + 1);
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const auto got = static_cast<std::size_t>(in.gcount());
    if (got > limit) return BodyStatus::kTooLarge;
    body.assign(buffer.data(), got);
    return BodyStatus::kOk;
}

Reply too_large(const ApiContext& context) {
    return problem(HTTPResponse::HTTP_REQUESTENTITYTOOLARGE,
                   "the request body is larger than " +
                       std::to_string(context.options.max_body_bytes) + " bytes");
}

// A JSON object from the request body, or the reply that refuses it.
std::variant<Poco::JSON::Object::Ptr, Reply> json_body(ApiContext& context,
                                                       Poco::Net::HTTPServerRequest& request) {
    // The media type exactly (parameters such as charset allowed): a prefix test would take
    // "application/jsonx" for JSON.
    bool is_json = false;
    try {
        is_json = Poco::Net::MediaType(request.getContentType()).matches("application", "json");
    } catch (const Poco::Exception&) {  // NOLINT(bugprone-empty-catch): not JSON, answered below
    }
    if (!is_json) {
        return problem(HTTPResponse::HTTP_UNSUPPORTEDMEDIATYPE,
                       "the request body must be application/json");
    }
    std::string body;
    if (read_body(context, request, body) == BodyStatus::kTooLarge) return too_large(context);
    try {
        Poco::Dynamic::Var parsed = Poco::JSON::Parser().parse(body);
        if (parsed.type() == typeid(Poco::JSON::Object::Ptr)) {
            return parsed.extract<Poco::JSON::Object::Ptr>();
        }
    } catch (const Poco::Exception&) {  // NOLINT(bugprone-empty-catch): answered below
    }
    return problem(HTTPResponse::HTTP_BAD_REQUEST, "the request body is not a JSON object");
}

std::optional<std::string> string_field(const Poco::JSON::Object::Ptr& object,
                                        const std::string& name) {
    if (!object->has(name)) return std::nullopt;
    Poco::Dynamic::Var v = object->get(name);
    if (!v.isString()) return std::nullopt;
    return v.convert<std::string>();
}

Reply identity(const UserAccount& user) {
    Poco::JSON::Object object(Poco::JSON_PRESERVE_KEY_ORDER);
    object.set("user", user.name);
    object.set("role", std::string(to_string(user.role)));
    Poco::JSON::Array::Ptr permissions = new Poco::JSON::Array;
    for (Permission p : kAllPermissions) {
        if (allows(user.role, p)) permissions->add(std::string(permission_name(p)));
    }
    object.set("permissions", permissions);
    return json_reply(HTTPResponse::HTTP_OK, object);
}

Reply login(ApiContext& context, Poco::Net::HTTPServerRequest& request) {
    auto parsed = json_body(context, request);
    if (auto* refused = std::get_if<Reply>(&parsed)) return std::move(*refused);
    const auto& object = std::get<Poco::JSON::Object::Ptr>(parsed);
    const auto name = string_field(object, "name");
    const auto password = string_field(object, "password");
    if (!name || !password) {
        return problem(HTTPResponse::HTTP_BAD_REQUEST,
                       "the body needs string fields 'name' and 'password'");
    }
    const std::string name_key = "name:" + name->substr(0, kMaxUserNameLength + 1);
    const std::string address_key = "address:" + request.clientAddress().host().toString();
    const auto now = LoginLimiter::Clock::now();
    const auto wait_name = context.limiter.retry_after(name_key, now);
    const auto wait_address = context.limiter.retry_after(address_key, now);
    if (wait_name || wait_address) {
        const auto wait = std::max(wait_name.value_or(std::chrono::seconds(0)),
                                   wait_address.value_or(std::chrono::seconds(0)));
        common::log_warn(kComponent, "login of " + echo(*name) + " from " +
                                         request.clientAddress().host().toString() +
                                         " refused: too many failures");
        Reply reply = problem(HTTPResponse::HTTP_TOO_MANY_REQUESTS,
                              "too many failed logins; try again in " +
                                  std::to_string(wait.count()) + " seconds");
        reply.headers.emplace_back("Retry-After", std::to_string(wait.count()));
        return reply;
    }
    auto found = context.store.find_user(*name);
    if (!found) return store_unavailable("login", found.error());
    bool ok = false;
    if (*found && !(*found)->disabled) {
        ok = verify_password(*password, (*found)->password_hash);
    } else {
        std::call_once(context.dummy_once, [&] {
            auto made = hash_password("not a password of anyone");
            if (made) context.dummy_hash = *made;
        });
        static_cast<void>(verify_password(*password, context.dummy_hash));
    }
    if (!ok) {
        context.limiter.record_failure(name_key, now);
        context.limiter.record_failure(address_key, now);
        common::log_info(kComponent, "failed login of " + echo(*name) + " from " +
                                         request.clientAddress().host().toString());
        return problem(HTTPResponse::HTTP_UNAUTHORIZED, "the name or the password is wrong");
    }
    // Only the account's counter is cleared: one valid login must not wipe the address's
    // record of guesses at other accounts.
    context.limiter.record_success(name_key);
    const UserAccount& user = **found;
    if (needs_rehash(user.password_hash)) {
        if (auto rehashed = hash_password(*password)) {
            if (auto stored = context.store.set_password_hash(user.name, *rehashed); !stored) {
                common::log_warn(kComponent, "rehash of " + user.name + ": " +
                                                 stored.error().message);
            }
        }
    }
    auto id = new_session_id();
    if (!id) return store_unavailable("login", id.error());
    const std::int64_t at = common::now_ns();
    const std::int64_t lifetime_s = context.options.session_lifetime.count();
    if (auto added = context.store.add_session(secret_digest(*id), user.name, at,
                                               at + lifetime_s * 1'000'000'000);
        !added) {
        return store_unavailable("login", added.error());
    }
    common::log_info(kComponent, "login of " + user.name + " from " +
                                     request.clientAddress().host().toString());
    Reply reply = identity(user);
    reply.headers.emplace_back("Set-Cookie", session_cookie(context, *id, lifetime_s));
    return reply;
}

Reply list_users(ApiContext& context) {
    auto users = context.store.users();
    if (!users) return store_unavailable("users", users.error());
    Poco::JSON::Array::Ptr list = new Poco::JSON::Array;
    for (const UserAccount& u : *users) {
        Poco::JSON::Object::Ptr o = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
        o->set("name", u.name);
        o->set("role", std::string(to_string(u.role)));
        o->set("disabled", u.disabled);
        o->set("created", common::format_timestamp(u.created_ns));
        list->add(o);
    }
    Poco::JSON::Object object(Poco::JSON_PRESERVE_KEY_ORDER);
    object.set("users", list);
    object.set("count", static_cast<Poco::UInt64>(users->size()));
    return json_reply(HTTPResponse::HTTP_OK, object);
}

Reply logout(ApiContext& context, Poco::Net::HTTPServerRequest& request) {
    if (auto id = session_id_of(request)) {
        if (auto ended = context.store.delete_session(secret_digest(*id)); !ended) {
            return store_unavailable("logout", ended.error());
        }
    }
    Poco::JSON::Object object;
    object.set("logged_out", true);
    Reply reply = json_reply(HTTPResponse::HTTP_OK, object);
    reply.headers.emplace_back("Set-Cookie", session_cookie(context, "", 0));
    return reply;
}

constexpr std::size_t kMaxCommentLength = 4000;
constexpr std::size_t kAuditShown = 200;

Poco::JSON::Object::Ptr audit_json(const AuditEntry& e) {
    Poco::JSON::Object::Ptr o = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
    o->set("time", common::format_timestamp(e.time_ns));
    o->set("actor", e.actor);
    o->set("action", e.action);
    o->set("old", e.old_value);
    o->set("new", e.new_value);
    return o;
}

Reply alert_detail(ApiContext& context, const std::string& id) {
    AlertQuery q;
    q.alert_id = id;
    q.limit = 1;
    auto found = context.store.query(q);
    if (!found) return store_unavailable("alert", found.error());
    if (found->empty()) return problem(HTTPResponse::HTTP_NOT_FOUND, "there is no alert " + echo(id));
    auto triage = context.store.triage_of({id});
    auto comments = context.store.comments(id);
    auto audit = context.store.audit_entries(id, kAuditShown);
    if (!triage) return store_unavailable("alert", triage.error());
    if (!comments) return store_unavailable("alert", comments.error());
    if (!audit) return store_unavailable("alert", audit.error());
    const AlertTriage t = triage->count(id) ? triage->at(id) : AlertTriage{};
    Poco::JSON::Object object(Poco::JSON_PRESERVE_KEY_ORDER);
    object.set("alert", common::alert_to_json_object(found->front()));
    object.set("status", t.status);
    object.set("assignee", t.assignee);
    Poco::JSON::Array::Ptr comment_list = new Poco::JSON::Array;
    for (const AlertComment& c : *comments) {
        Poco::JSON::Object::Ptr o = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
        o->set("time", common::format_timestamp(c.time_ns));
        o->set("author", c.author);
        o->set("text", c.text);
        comment_list->add(o);
    }
    object.set("comments", comment_list);
    Poco::JSON::Array::Ptr audit_list = new Poco::JSON::Array;
    for (const AuditEntry& e : *audit) audit_list->add(audit_json(e));
    object.set("audit", audit_list);
    return json_reply(HTTPResponse::HTTP_OK, object);
}

// The change a PATCH or bulk body asks for, or the reply that refuses it.
std::variant<TriageChange, Reply> triage_change(ApiContext& context,
                                                const Poco::JSON::Object::Ptr& body) {
    TriageChange change;
    for (const std::string& key : body->getNames()) {
        if (key != "status" && key != "assignee" && key != "ids") {
            return problem(HTTPResponse::HTTP_BAD_REQUEST,
                           "field " + echo(key) + " is not known; use status, assignee");
        }
    }
    if (body->has("status")) {
        change.status = string_field(body, "status");
        if (!change.status || !is_alert_status(*change.status)) {
            return problem(HTTPResponse::HTTP_BAD_REQUEST,
                           "status must be one of new, in_progress, escalated, false_positive, "
                           "resolved");
        }
    }
    if (body->has("assignee")) {
        change.assignee = string_field(body, "assignee");
        if (!change.assignee) {
            return problem(HTTPResponse::HTTP_BAD_REQUEST,
                           "assignee must be an account name, or \"\" to unassign");
        }
        if (!change.assignee->empty()) {
            auto user = context.store.find_user(*change.assignee);
            if (!user) return store_unavailable("triage", user.error());
            if (!*user || (*user)->disabled) {
                return problem(HTTPResponse::HTTP_BAD_REQUEST,
                               "assignee " + echo(*change.assignee) + " is not an enabled account");
            }
        }
    }
    if (!change.status && !change.assignee) {
        return problem(HTTPResponse::HTTP_BAD_REQUEST, "the body needs status or assignee");
    }
    return change;
}

Reply apply_triage(ApiContext& context, const std::vector<std::string>& ids,
                   const TriageChange& change, const UserAccount& user) {
    auto done = context.store.update_triage(ids, change, user.name, common::now_ns());
    if (!done) {
        if (done.error().code == ErrorCode::kNotFound) {
            // The store's message names the id as the client sent it: made printable and cut
            // like every echo, or a byte that is not UTF-8 would make the answer invalid JSON.
            return problem(HTTPResponse::HTTP_NOT_FOUND, printable(done.error().message));
        }
        return store_unavailable("triage", done.error());
    }
    Poco::JSON::Array::Ptr list = new Poco::JSON::Array;
    for (const AuditEntry& e : *done) {
        Poco::JSON::Object::Ptr o = audit_json(e);
        o->set("alert", e.target);
        list->add(o);
    }
    Poco::JSON::Object object(Poco::JSON_PRESERVE_KEY_ORDER);
    object.set("updated", static_cast<Poco::UInt64>(ids.size()));
    object.set("changes", list);
    return json_reply(HTTPResponse::HTTP_OK, object);
}

Reply patch_alert(ApiContext& context, Poco::Net::HTTPServerRequest& request,
                  const std::string& id, const UserAccount& user) {
    auto parsed = json_body(context, request);
    if (auto* refused = std::get_if<Reply>(&parsed)) return std::move(*refused);
    const auto& body = std::get<Poco::JSON::Object::Ptr>(parsed);
    if (body->has("ids")) return problem(HTTPResponse::HTTP_BAD_REQUEST, "field 'ids' is for bulk");
    auto change = triage_change(context, body);
    if (auto* refused = std::get_if<Reply>(&change)) return std::move(*refused);
    return apply_triage(context, {id}, std::get<TriageChange>(change), user);
}

Reply bulk_triage(ApiContext& context, Poco::Net::HTTPServerRequest& request,
                  const UserAccount& user) {
    auto parsed = json_body(context, request);
    if (auto* refused = std::get_if<Reply>(&parsed)) return std::move(*refused);
    const auto& body = std::get<Poco::JSON::Object::Ptr>(parsed);
    Poco::JSON::Array::Ptr list = body->has("ids") ? body->getArray("ids") : nullptr;
    if (!list || list->size() == 0 || list->size() > kMaxQueryLimit) {
        return problem(HTTPResponse::HTTP_BAD_REQUEST,
                       "ids must be an array of 1.." + std::to_string(kMaxQueryLimit) +
                           " alert ids");
    }
    std::vector<std::string> ids;
    for (std::size_t i = 0; i < list->size(); ++i) {
        Poco::Dynamic::Var v = list->get(static_cast<unsigned>(i));
        if (!v.isString()) return problem(HTTPResponse::HTTP_BAD_REQUEST, "ids must be strings");
        ids.push_back(v.convert<std::string>());
    }
    auto change = triage_change(context, body);
    if (auto* refused = std::get_if<Reply>(&change)) return std::move(*refused);
    return apply_triage(context, ids, std::get<TriageChange>(change), user);
}

Reply post_comment(ApiContext& context, Poco::Net::HTTPServerRequest& request,
                   const std::string& id, const UserAccount& user) {
    auto parsed = json_body(context, request);
    if (auto* refused = std::get_if<Reply>(&parsed)) return std::move(*refused);
    const auto text = string_field(std::get<Poco::JSON::Object::Ptr>(parsed), "text");
    if (!text || text->empty() || text->size() > kMaxCommentLength) {
        return problem(HTTPResponse::HTTP_BAD_REQUEST,
                       "the body needs a string 'text' of 1.." + std::to_string(kMaxCommentLength) +
                           " bytes");
    }
    auto added = context.store.add_comment(id, AlertComment{common::now_ns(), user.name, *text});
    if (!added) {
        if (added.error().code == ErrorCode::kNotFound) {
            return problem(HTTPResponse::HTTP_NOT_FOUND, "there is no alert " + echo(id));
        }
        return store_unavailable("comment", added.error());
    }
    Poco::JSON::Object object;
    object.set("added", true);
    Reply reply = json_reply(HTTPResponse::HTTP_CREATED, object);
    return reply;
}

// GET /api/v1/metadata: the stored metadata records holding an indicator value (without one,
// every record the filters select; docs/collector.md, "Metadata and hunting"), newest first,
// a page at a time.
constexpr std::string_view kMetadataParameterNames =
    "value, type, agent, since, until, limit, cursor";

// "m1.TIMESTAMP.ID.MAC", signed as the alert list's cursors are.
std::string make_metadata_cursor(const std::array<unsigned char, 32>& key,
                                 const StoredMetadata& last, const std::string& binding) {
    const std::string position =
        "m1." + std::to_string(last.timestamp_ns) + "." + std::to_string(last.id);
    return position + "." + cursor_mac(key, position, binding);
}

common::Result<MetadataPosition> parse_metadata_cursor(const std::array<unsigned char, 32>& key,
                                                       const std::string& cursor,
                                                       const std::string& binding) {
    auto refuse = [&](std::string_view why) -> common::Result<MetadataPosition> {
        return bad_parameter("cursor", cursor, why);
    };
    std::vector<std::string> parts;
    switch (open_cursor(key, cursor, binding, parts)) {
        case CursorCheck::kMalformed: return refuse("is not a cursor of this API");
        case CursorCheck::kForeign:
            return refuse(
                "does not belong to these filters, or was altered, or comes from before "
                "the collector restarted; start again without it");
        case CursorCheck::kOk: break;
    }
    MetadataPosition out;
    auto number = [](const std::string& text, std::int64_t& v) {
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
        return ec == std::errc() && end == text.data() + text.size();
    };
    if (parts.size() != 3 || parts[0] != "m1" || !number(parts[1], out.timestamp_ns) ||
        !number(parts[2], out.id)) {
        return refuse("is not a cursor of this API");
    }
    return out;
}

common::Result<MetadataQuery> parse_metadata_query(const ApiContext& context,
                                                   const Poco::URI::QueryParameters& parameters) {
    MetadataQuery query;
    query.limit = kDefaultLimit;
    std::set<std::string> seen;
    for (const auto& [name, value] : parameters) {
        if (!seen.insert(name).second) {
            return make_error(ErrorCode::kInvalidArgument,
                              "parameter " + echo(name) + " is given more than once");
        }
        if (name == "value") {
            query.value = metadata_value(value);
            if (query.value.size() < kMinHuntValueLength ||
                query.value.size() > kMaxMetadataValueBytes) {
                return bad_parameter(name, value,
                                     "is not " + std::to_string(kMinHuntValueLength) + ".." +
                                         std::to_string(kMaxMetadataValueBytes) + " bytes");
            }
        } else if (name == "type") {
            const bool ok = !value.empty() && value.size() <= 32 &&
                            std::all_of(value.begin(), value.end(), [](char c) {
                                return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
                            });
            if (!ok) return bad_parameter(name, value, "is not a record type such as dns or http");
            query.type = value;
        } else if (name == "agent") {
            if (value.empty() || value.size() > kMaxAgentIdLength) {
                return bad_parameter(name, value, "is not an agent id");
            }
            query.agent_id = value;
        } else if (name == "since" || name == "until") {
            auto ns = common::parse_timestamp(value);
            if (!ns) {
                return bad_parameter(name, value,
                                     "is not an RFC 3339 UTC timestamp such as "
                                     "2026-11-28T10:00:00Z");
            }
            (name == "since" ? query.since_ns : query.until_ns) = *ns;
        } else if (name == "limit") {
            int limit = 0;
            if (!parse_int(value, limit) || limit < 1 ||
                static_cast<std::size_t>(limit) > kMaxHuntLimit) {
                return bad_parameter(name, value,
                                     "is not an integer in 1.." + std::to_string(kMaxHuntLimit));
            }
            query.limit = static_cast<std::size_t>(limit);
        } else if (name == "cursor") {
            auto after =
                parse_metadata_cursor(context.cursor_key, value, cursor_binding(parameters));
            if (!after) return after.error();
            query.after = *after;
        } else {
            return make_error(ErrorCode::kInvalidArgument,
                              "parameter " + echo(name) + " is not known; the parameters are " +
                                  std::string(kMetadataParameterNames));
        }
    }
    if (query.since_ns && query.until_ns && *query.until_ns < *query.since_ns) {
        return make_error(ErrorCode::kInvalidArgument,
                          "parameter 'until' is earlier than parameter 'since'");
    }
    return query;
}

Reply hunt_metadata(ApiContext& context, const Poco::URI& uri) {
    const Poco::URI::QueryParameters parameters = uri.getQueryParameters();
    auto query = parse_metadata_query(context, parameters);
    if (!query) return problem(HTTPResponse::HTTP_BAD_REQUEST, query.error().message);
    auto found = context.store.hunt_metadata(*query);
    if (!found) {
        if (found.error().code == ErrorCode::kInvalidArgument) {
            return problem(HTTPResponse::HTTP_BAD_REQUEST, found.error().message);
        }
        return store_unavailable("metadata", found.error());
    }
    Poco::JSON::Array::Ptr list = new Poco::JSON::Array;
    for (const StoredMetadata& m : *found) {
        Poco::JSON::Object::Ptr o = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
        o->set("id", static_cast<Poco::Int64>(m.id));
        o->set("agent", m.agent_id);
        o->set("timestamp", common::format_timestamp(m.timestamp_ns));
        o->set("received", common::format_timestamp(m.received_ns));
        o->set("type", m.type);
        o->set("uid", m.uid);
        o->set("flow_id", m.flow_id);
        // The record as the agent wrote it; it was checked to be a JSON object on the way in.
        try {
            Poco::JSON::Parser parser;
            o->set("record", parser.parse(m.json));
        } catch (const Poco::Exception&) {
            o->set("record_text", m.json);
        }
        list->add(o);
    }
    Poco::JSON::Object object(Poco::JSON_PRESERVE_KEY_ORDER);
    object.set("value", query->value);
    object.set("records", list);
    object.set("count", static_cast<Poco::UInt64>(found->size()));
    if (!found->empty() && found->size() == query->limit) {
        object.set("next_cursor", make_metadata_cursor(context.cursor_key, found->back(),
                                                       cursor_binding(parameters)));
    }
    return json_reply(HTTPResponse::HTTP_OK, object);
}

// The handlers behind the route table: each gets the request, its URI, the id a "{id}" in
// the route's path matched (else empty) and the account (nullptr on open routes).
using Handler = Reply (*)(ApiContext&, Poco::Net::HTTPServerRequest&, const Poco::URI&,
                          const std::string&, const UserAccount*);

Reply openapi_route(ApiContext& /*context*/, Poco::Net::HTTPServerRequest& /*request*/,
                    const Poco::URI& /*uri*/, const std::string& /*id*/,
                    const UserAccount* /*user*/) {
    return Reply{HTTPResponse::HTTP_OK, std::string(kJsonType), std::string(openapi_document()),
                 {}};
}
Reply health_route(ApiContext& context, Poco::Net::HTTPServerRequest& /*request*/,
                   const Poco::URI& /*uri*/, const std::string& /*id*/,
                   const UserAccount* /*user*/) {
    return health(context);
}
Reply login_route(ApiContext& context, Poco::Net::HTTPServerRequest& request,
                  const Poco::URI& /*uri*/, const std::string& /*id*/,
                  const UserAccount* /*user*/) {
    return login(context, request);
}
Reply logout_route(ApiContext& context, Poco::Net::HTTPServerRequest& request,
                   const Poco::URI& /*uri*/, const std::string& /*id*/,
                   const UserAccount* /*user*/) {
    return logout(context, request);
}
// Resources without parameters refuse any, as every other parameter the API does not know is
// refused: a client's typo must not pass for a filter that was applied.
std::optional<Reply> refuse_parameters(const Poco::URI& uri) {
    if (uri.getQueryParameters().empty()) return std::nullopt;
    return problem(HTTPResponse::HTTP_BAD_REQUEST, "this resource takes no parameters");
}
Reply me_route(ApiContext& /*context*/, Poco::Net::HTTPServerRequest& /*request*/,
               const Poco::URI& uri, const std::string& /*id*/, const UserAccount* user) {
    if (auto refused = refuse_parameters(uri)) return *refused;
    return identity(*user);
}
Reply users_route(ApiContext& context, Poco::Net::HTTPServerRequest& /*request*/,
                  const Poco::URI& uri, const std::string& /*id*/,
                  const UserAccount* /*user*/) {
    if (auto refused = refuse_parameters(uri)) return *refused;
    return list_users(context);
}
Reply alerts_route(ApiContext& context, Poco::Net::HTTPServerRequest& /*request*/,
                   const Poco::URI& uri, const std::string& /*id*/, const UserAccount* /*user*/) {
    return alerts(context, uri);
}
Reply aggregate_route(ApiContext& context, Poco::Net::HTTPServerRequest& /*request*/,
                      const Poco::URI& uri, const std::string& /*id*/,
                      const UserAccount* /*user*/) {
    return aggregate(context, uri);
}
Reply groups_route(ApiContext& context, Poco::Net::HTTPServerRequest& /*request*/,
                   const Poco::URI& uri, const std::string& /*id*/, const UserAccount* /*user*/) {
    return alert_groups(context, uri);
}
Reply export_route(ApiContext& context, Poco::Net::HTTPServerRequest& /*request*/,
                   const Poco::URI& uri, const std::string& /*id*/, const UserAccount* /*user*/) {
    return export_alerts(context, uri);
}
Reply bulk_route(ApiContext& context, Poco::Net::HTTPServerRequest& request,
                 const Poco::URI& /*uri*/, const std::string& /*id*/, const UserAccount* user) {
    return bulk_triage(context, request, *user);
}
Reply alert_detail_route(ApiContext& context, Poco::Net::HTTPServerRequest& /*request*/,
                         const Poco::URI& /*uri*/, const std::string& id,
                         const UserAccount* /*user*/) {
    return alert_detail(context, id);
}
Reply patch_alert_route(ApiContext& context, Poco::Net::HTTPServerRequest& request,
                        const Poco::URI& /*uri*/, const std::string& id, const UserAccount* user) {
    return patch_alert(context, request, id, *user);
}
Reply comment_route(ApiContext& context, Poco::Net::HTTPServerRequest& request,
                    const Poco::URI& /*uri*/, const std::string& id, const UserAccount* user) {
    return post_comment(context, request, id, *user);
}
Reply agents_route(ApiContext& context, Poco::Net::HTTPServerRequest& /*request*/,
                   const Poco::URI& uri, const std::string& /*id*/, const UserAccount* /*user*/) {
    return agents(context, uri);
}
Reply metadata_route(ApiContext& context, Poco::Net::HTTPServerRequest& /*request*/,
                     const Poco::URI& uri, const std::string& /*id*/, const UserAccount* /*user*/) {
    return hunt_metadata(context, uri);
}
Reply one_agent_route(ApiContext& context, Poco::Net::HTTPServerRequest& /*request*/,
                      const Poco::URI& /*uri*/, const std::string& id,
                      const UserAccount* /*user*/) {
    return one_agent(context, id);
}

// Who may use a route: anyone, any account, or an account whose role has the permission.
enum class Access { kOpen, kAccount, kPermission };

// Every resource and method the server has, in OpenAPI's path notation. A "{id}" stands for
// one non-empty path segment. Paths without "{id}" are matched first, so /api/v1/alerts/bulk
// is not taken for an alert id. api_routes() hands this list to the test that holds
// docs/api/openapi.json to it.
struct Route {
    std::string_view method;
    std::string_view path;
    Access access;
    Permission permission;  // with Access::kPermission only
    Handler handler;
};
constexpr std::string_view kIdPart = "{id}";
constexpr std::string_view kGet = "GET";
constexpr std::string_view kPost = "POST";
constexpr std::string_view kPatch = "PATCH";
constexpr std::array kRoutes = {
    Route{kGet, kHealthPath, Access::kOpen, Permission::kReadAlerts, health_route},
    Route{kGet, "/api/v1/openapi.json", Access::kOpen, Permission::kReadAlerts, openapi_route},
    Route{kPost, kLoginPath, Access::kOpen, Permission::kReadAlerts, login_route},
    Route{kPost, kLogoutPath, Access::kOpen, Permission::kReadAlerts, logout_route},
    Route{kGet, kMePath, Access::kAccount, Permission::kReadAlerts, me_route},
    Route{kGet, kUsersPath, Access::kPermission, Permission::kManageUsers, users_route},
    Route{kGet, kAlertsPath, Access::kPermission, Permission::kReadAlerts, alerts_route},
    Route{kPost, "/api/v1/alerts/bulk", Access::kPermission, Permission::kTriageAlerts, bulk_route},
    Route{kGet, "/api/v1/alerts/aggregate", Access::kPermission, Permission::kReadAlerts,
          aggregate_route},
    Route{kGet, "/api/v1/alerts/groups", Access::kPermission, Permission::kReadAlerts,
          groups_route},
    Route{kGet, "/api/v1/alerts/export", Access::kPermission, Permission::kReadAlerts,
          export_route},
    Route{kGet, "/api/v1/alerts/{id}", Access::kPermission, Permission::kReadAlerts,
          alert_detail_route},
    Route{kPatch, "/api/v1/alerts/{id}", Access::kPermission, Permission::kTriageAlerts,
          patch_alert_route},
    Route{kPost, "/api/v1/alerts/{id}/comments", Access::kPermission, Permission::kTriageAlerts,
          comment_route},
    Route{kGet, kAgentsPath, Access::kPermission, Permission::kReadAgents, agents_route},
    Route{kGet, "/api/v1/agents/{id}", Access::kPermission, Permission::kReadAgents,
          one_agent_route},
    Route{kGet, "/api/v1/metadata", Access::kPermission, Permission::kReadAlerts, metadata_route},
};

// Whether PATH is ROUTE_PATH; for a route path with "{id}", the part it matched in ID. An id
// is not empty; it may contain '/' only where "{id}" ends the route path (agent ids can).
bool path_matches(std::string_view route_path, const std::string& path, std::string& id) {
    const auto brace = route_path.find(kIdPart);
    if (brace == std::string_view::npos) return path == route_path;
    const std::string_view prefix = route_path.substr(0, brace);
    const std::string_view suffix = route_path.substr(brace + kIdPart.size());
    if (path.size() <= prefix.size() + suffix.size() || !path.starts_with(prefix) ||
        !path.ends_with(suffix)) {
        return false;
    }
    id = path.substr(prefix.size(), path.size() - prefix.size() - suffix.size());
    return suffix.empty() || id.find('/') == std::string::npos;
}

// The routes of the one path template PATH matches (one route per method), and the id it
// matched. Paths without "{id}" win; among templates, the longest fixed part wins, so that
// /api/v1/alerts/X/comments is not alert "X/comments".
std::vector<const Route*> routes_at(const std::string& path, std::string& id) {
    std::vector<const Route*> out;
    std::size_t best = 0;
    for (const Route& r : kRoutes) {
        std::string matched;
        if (!path_matches(r.path, path, matched)) continue;
        const bool templated = r.path.find(kIdPart) != std::string_view::npos;
        // Exact paths rank above every template.
        const std::size_t rank = templated ? r.path.size() - kIdPart.size() : SIZE_MAX;
        if (rank < best) continue;
        if (rank > best || (!out.empty() && out.front()->path != r.path)) out.clear();
        best = rank;
        out.push_back(&r);
        id = std::move(matched);
    }
    return out;
}

Reply route(ApiContext& context, Poco::Net::HTTPServerRequest& request) {
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
    std::string id;
    const std::vector<const Route*> matches = routes_at(path, id);
    const Route* chosen = nullptr;
    std::string allowed;
    for (const Route* r : matches) {
        if (r->method == request.getMethod()) chosen = r;
        allowed += (allowed.empty() ? "" : ", ") + std::string(r->method);
    }
    const bool open = !matches.empty() && std::all_of(matches.begin(), matches.end(), [](auto* r) {
        return r->access == Access::kOpen;
    });
    // A declared body above the limit is refused on every route, open ones included.
    if (request.hasContentLength() &&
        static_cast<std::uint64_t>(request.getContentLength64()) > context.options.max_body_bytes) {
        return too_large(context);
    }
    if (chosen != nullptr && chosen->access == Access::kOpen) {
        return chosen->handler(context, request, uri, id, nullptr);
    }
    if (open) return method_not_allowed(request.getMethod(), path, allowed);
    // Everything else under /api/ needs an account, also to learn what exists.
    auto who = authenticate(context, request);
    if (!who) return store_unavailable("authentication", who.error());
    if (!*who) return unauthorized(context);
    const UserAccount& user = **who;
    if (matches.empty()) {
        return problem(HTTPResponse::HTTP_NOT_FOUND, "there is no resource at " + echo(path));
    }
    if (chosen == nullptr) return method_not_allowed(request.getMethod(), path, allowed);
    if (chosen->access == Access::kPermission && !allows(user.role, chosen->permission)) {
        return forbidden(user, chosen->permission);
    }
    return chosen->handler(context, request, uri, id, &user);
}

// A streamed body, in chunks. When the stream cannot finish, the connection is shut down
// before the final empty chunk could be written: the client sees an incomplete transfer.
void send_stream(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response,
                 const Reply& reply) {
    response.setChunkedTransferEncoding(true);
    std::ostream& out = response.send();
    if (reply.stream(out)) return;
    common::log_warn(kComponent, "streamed response to " +
                                     request.clientAddress().toString() + " cut short");
    if (auto* impl = dynamic_cast<Poco::Net::HTTPServerRequestImpl*>(&request)) {
        try {
            impl->socket().shutdown();
        } catch (const Poco::Exception&) {  // NOLINT(bugprone-empty-catch): gone already
        }
    }
}

void send(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response,
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
    for (const auto& [name, value] : reply.headers) response.add(name, value);
    // A body left unread (or read only in part) would be parsed as the next request.
    if (request.hasContentLength() || request.getChunkedTransferEncoding()) {
        response.setKeepAlive(false);
    }
    if (reply.stream) {
        send_stream(request, response, reply);
        return;
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

// OpenSSL's reason for the last failure on this thread, and the queue emptied.
std::string openssl_reason() {
    const unsigned long code = ERR_peek_last_error();
    std::string reason = code != 0 ? ERR_reason_error_string(code) != nullptr
                                         ? ERR_reason_error_string(code)
                                         : "unknown OpenSSL error"
                                   : "no PEM data found";
    ERR_clear_error();
    return reason;
}

// FILE's bytes in a memory BIO, or the error naming WHAT ("HTTPS certificate") and FILE.
common::Result<common::BioPtr> read_pem_file(std::string_view what, const std::string& file) {
    std::FILE* f = std::fopen(file.c_str(), "rb");
    if (f == nullptr) {
        return make_error(ErrorCode::kInvalidArgument, std::string(what) + " '" + file +
                                                           "' cannot be read: " +
                                                           std::strerror(errno));
    }
    std::string bytes;
    char buffer[4096];
    std::size_t got = 0;
    while ((got = std::fread(buffer, 1, sizeof buffer, f)) > 0) bytes.append(buffer, got);
    const int read_errno = std::ferror(f) != 0 ? errno : 0;
    std::fclose(f);
    if (read_errno != 0) {
        return make_error(ErrorCode::kInvalidArgument, std::string(what) + " '" + file +
                                                           "' cannot be read: " +
                                                           std::strerror(read_errno));
    }
    common::BioPtr bio(BIO_new(BIO_s_mem()));
    if (!bio || BIO_write(bio.get(), bytes.data(), static_cast<int>(bytes.size())) !=
                    static_cast<int>(bytes.size())) {
        return make_error(ErrorCode::kInvalidArgument, "out of memory reading " + file);
    }
    return bio;
}

// The TLS context of an HTTPS server, after checking what Poco's Context would otherwise load
// without a word: each file is read and parsed on its own (so the error names the file), and
// the key must be the certificate's (OpenSSL drops a mismatched key silently when the
// certificate is loaded after it, and the server would then fail every handshake).
common::Result<Poco::Net::Context::Ptr> https_context(const ApiOptions& options) {
    const std::string& cert_file = options.https_certificate;
    const std::string& key_file = options.https_key;
    if (cert_file.empty() || key_file.empty()) {
        return make_error(ErrorCode::kInvalidArgument,
                          cert_file.empty() ? "HTTPS key '" + key_file + "' needs a certificate too"
                                            : "HTTPS certificate '" + cert_file +
                                                  "' needs a key too");
    }
    auto cert_bio = read_pem_file("HTTPS certificate", cert_file);
    if (!cert_bio) return cert_bio.error();
    common::X509Ptr cert(PEM_read_bio_X509(cert_bio->get(), nullptr, nullptr, nullptr));
    if (!cert) {
        return make_error(ErrorCode::kInvalidArgument, "HTTPS certificate '" + cert_file +
                                                           "' is not a PEM certificate (" +
                                                           openssl_reason() + ")");
    }
    auto key_bio = read_pem_file("HTTPS key", key_file);
    if (!key_bio) return key_bio.error();
    // No password callback: an encrypted key is refused rather than prompted for.
    static constexpr auto kNoPassword = [](char*, int, int, void*) { return 0; };
    common::PkeyPtr key(PEM_read_bio_PrivateKey(key_bio->get(), nullptr, kNoPassword, nullptr));
    if (!key) {
        return make_error(ErrorCode::kInvalidArgument,
                          "HTTPS key '" + key_file +
                              "' is not an unencrypted PEM private key (" + openssl_reason() +
                              ")");
    }
    if (X509_check_private_key(cert.get(), key.get()) != 1) {
        ERR_clear_error();
        return make_error(ErrorCode::kInvalidArgument, "HTTPS key '" + key_file +
                                                           "' does not belong to certificate '" +
                                                           cert_file + "'");
    }
    try {
        Poco::Net::Context::Params params;
        params.privateKeyFile = key_file;
        params.certificateFile = cert_file;
        params.verificationMode = Poco::Net::Context::VERIFY_NONE;  // browsers have no certificate
        params.loadDefaultCAs = false;
        // Forward secrecy and AEAD only for TLS 1.2; TLS 1.3 has its own (all good) suites.
        params.cipherList = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20";
        Poco::Net::Context::Ptr context =
            new Poco::Net::Context(Poco::Net::Context::TLS_SERVER_USE, params);
        context->requireMinimumProtocol(Poco::Net::Context::PROTO_TLSV1_2);
        return context;
    } catch (const Poco::Exception& e) {
        return make_error(ErrorCode::kInvalidArgument, "HTTPS certificate '" + cert_file +
                                                           "' and key '" + key_file +
                                                           "': " + e.displayText());
    }
}

}  // namespace

std::vector<std::string> api_routes() {
    std::vector<std::string> out;
    out.reserve(kRoutes.size());
    for (const Route& r : kRoutes) out.push_back(std::string(r.method) + " " + std::string(r.path));
    return out;
}

struct ApiServer::Impl {
    ApiOptions options;
    std::unique_ptr<ApiContext> context;  // holds a mutex and a limiter: not movable
    // Our own pool rather than Poco's default one, which other parts of the process may use.
    std::unique_ptr<Poco::ThreadPool> threads;
    std::unique_ptr<Poco::Net::HTTPServer> server;
};

ApiServer::ApiServer(AlertStore& store, ApiOptions options) : impl_(std::make_unique<Impl>()) {
    impl_->options = options;
    impl_->context = std::make_unique<ApiContext>(store, std::move(options));
}

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
    if (RAND_bytes(impl.context->cursor_key.data(),
                   static_cast<int>(impl.context->cursor_key.size())) != 1) {
        return make_error(ErrorCode::kInternal, "REST API: the CSPRNG gives no cursor key");
    }
    if (!impl.options.web_root.empty()) {
        auto web = detail::StaticFiles::load(impl.options.web_root);
        if (!web) return web.error();
        common::log_info(kComponent, "web UI: " + std::to_string(web->size()) + " files from " +
                                         impl.options.web_root);
        impl.context->web = std::move(web).value();
    }
    const bool https = !impl.options.https_certificate.empty() || !impl.options.https_key.empty();
    Poco::Net::Context::Ptr tls;
    if (https) {
        auto made = https_context(impl.options);
        if (!made) return made.error();
        tls = *made;
        // A cookie that travelled over HTTPS must never be sent over plain HTTP.
        impl.context->options.secure_cookie = true;
    }
    try {
        Poco::Net::ServerSocket socket =
            https ? Poco::Net::SecureServerSocket(tls) : Poco::Net::ServerSocket();
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
        impl.context->started = std::chrono::steady_clock::now();
        impl.server = std::make_unique<Poco::Net::HTTPServer>(new ApiHandlerFactory(*impl.context),
                                                              *impl.threads, socket, params);
        impl.server->start();
        if (https) common::log_info(kComponent, "HTTPS with " + impl.options.https_certificate);
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
