#include "senningen/collector/metadata.h"

#include <Poco/Exception.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <openssl/evp.h>

#include <algorithm>
#include <exception>
#include <set>

#include "senningen/common/alert.h"
#include "senningen/common/openssl_util.h"

namespace senningen::collector {

namespace {

using common::ErrorCode;
using common::make_error;

constexpr std::array<std::string_view, kMetadataProblemCount> kProblemNames = {
    "not_json", "not_object", "oversize", "bad_event_type", "bad_timestamp", "bad_field"};

// The keys, at any depth, whose string values are indexed for hunting: the fields of the
// agent's records that hold addresses, DNS names, URLs, hashes, e-mail addresses, file names
// and the like (docs/collector.md lists them by record type). Other values (counts, flags,
// states, methods, codes) are kept in the JSON only.
constexpr std::array<std::string_view, 37> kIndicatorKeys = {"src_ip",
                                                             "dest_ip",
                                                             "rrname",
                                                             "rdata",
                                                             "host",
                                                             "uri",
                                                             "referrer",
                                                             "user_agent",
                                                             "sni",
                                                             "cn",
                                                             "subject",
                                                             "issuer",
                                                             "san_dns",
                                                             "san_email",
                                                             "serial",
                                                             "md5",
                                                             "sha1",
                                                             "sha256",
                                                             "ja3_hash",
                                                             "ja3s_hash",
                                                             "filename",
                                                             "orig_filenames",
                                                             "resp_filenames",
                                                             "name",
                                                             "tree",
                                                             "mail_from",
                                                             "rcpt_to",
                                                             "from",
                                                             "to",
                                                             "cc",
                                                             "helo",
                                                             "msg_id",
                                                             "fuid",
                                                             "reply_to",
                                                             "path",
                                                             "x_originating_ip",
                                                             "username"};

// Nesting beyond this is not walked for values (the agent's records are 3 deep at most).
constexpr int kMaxWalkDepth = 16;

bool is_indicator_key(const std::string& key) {
    return std::find(kIndicatorKeys.begin(), kIndicatorKeys.end(), key) != kIndicatorKeys.end();
}

bool is_type_name(const std::string& s) {
    if (s.empty() || s.size() > 32 || s == "alert") return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    });
}

std::string sha256_hex(std::string_view text) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(text.data(), text.size(), md, &n, EVP_sha256(), nullptr);
    return common::to_hex(md, n);
}

class ValueSet {
public:
    void add(std::string_view raw) {
        if (out_.size() >= kMaxMetadataValues) return;
        std::string v = metadata_value(raw);
        if (v.empty() || v.size() > kMaxMetadataValueBytes) return;
        if (seen_.insert(v).second) out_.push_back(std::move(v));
        // "Name <a@b.example>": the address in the brackets too.
        const auto open = raw.rfind('<');
        const auto close = raw.rfind('>');
        if (open != std::string_view::npos && close != std::string_view::npos && open > 0 &&
            close > open + 1) {
            add(raw.substr(open, close - open + 1));
        }
    }
    std::vector<std::string> take() { return std::move(out_); }

private:
    std::set<std::string> seen_;
    std::vector<std::string> out_;
};

bool is_file_name_key(std::string_view key) {
    return key == "filename" || key == "orig_filenames" || key == "resp_filenames" || key == "name";
}

// Adds TEXT, the value of KEY, and the forms an indicator list gives instead: a host without
// its port ("files.example:8080"), a file name without its directories ("tools\\x.exe").
void add_value(std::string_view key, const std::string& text, ValueSet& values) {
    values.add(text);
    if (key == "host") {
        const auto colon = text.find(':');
        if (colon != std::string::npos && colon > 0 &&
            text.find(':', colon + 1) == std::string::npos) {
            values.add(text.substr(0, colon));
        }
    } else if (is_file_name_key(key)) {
        const auto slash = text.find_last_of("/\\");
        if (slash != std::string::npos && slash + 1 < text.size())
            values.add(text.substr(slash + 1));
    }
}

// KEY: the member name VALUE is under (an array's items inherit it); empty at the root.
void walk(const Poco::Dynamic::Var& value, std::string_view key, int depth, ValueSet& values) {
    if (depth > kMaxWalkDepth || value.isEmpty()) return;
    if (value.type() == typeid(Poco::JSON::Object::Ptr)) {
        const auto object = value.extract<Poco::JSON::Object::Ptr>();
        if (!object) return;
        for (const auto& [name, child] : *object) walk(child, name, depth + 1, values);
    } else if (value.type() == typeid(Poco::JSON::Array::Ptr)) {
        const auto array = value.extract<Poco::JSON::Array::Ptr>();
        if (!array) return;
        for (const auto& child : *array) walk(child, key, depth + 1, values);
    } else if (!key.empty() && is_indicator_key(std::string(key)) && value.isString()) {
        add_value(key, value.extract<std::string>(), values);
    }
}

// The string member KEY of OBJECT: nullopt when absent, an error when not a string.
std::optional<std::optional<std::string>> string_member(const Poco::JSON::Object& object,
                                                        const std::string& key) {
    if (!object.has(key) || object.isNull(key)) return std::optional<std::string>();
    const Poco::Dynamic::Var v = object.get(key);
    if (!v.isString()) return std::nullopt;
    return std::optional<std::string>(v.extract<std::string>());
}

std::variant<ParsedMetadata, MetadataParseError> parse(std::string_view json) {
    auto refuse = [](MetadataProblem p, std::string message) {
        return MetadataParseError{p, std::string(to_string(p)) + ": " + std::move(message)};
    };
    if (json.size() > kMaxMetadataRecordBytes) {
        return refuse(MetadataProblem::kOversize, "record of " + std::to_string(json.size()) +
                                                      " bytes, more than " +
                                                      std::to_string(kMaxMetadataRecordBytes));
    }
    Poco::Dynamic::Var root;
    try {
        Poco::JSON::Parser parser;
        root = parser.parse(std::string(json));
    } catch (const Poco::Exception& e) {
        return refuse(MetadataProblem::kNotJson, e.displayText());
    } catch (const std::exception& e) {
        return refuse(MetadataProblem::kNotJson, e.what());
    }
    if (root.type() != typeid(Poco::JSON::Object::Ptr)) {
        return refuse(MetadataProblem::kNotObject, "the record is not a JSON object");
    }
    const auto object = root.extract<Poco::JSON::Object::Ptr>();
    if (!object) return refuse(MetadataProblem::kNotObject, "the record is null");
    ParsedMetadata out;
    const auto type = string_member(*object, "event_type");
    if (!type || !*type || !is_type_name(**type)) {
        return refuse(MetadataProblem::kBadEventType,
                      "event_type must be a lower-case name of 1..32 characters, not 'alert'");
    }
    out.type = **type;
    const auto ts = string_member(*object, "timestamp");
    if (!ts || !*ts) return refuse(MetadataProblem::kBadTimestamp, "timestamp is not a string");
    auto parsed_ts = common::parse_timestamp(**ts);
    if (!parsed_ts) return refuse(MetadataProblem::kBadTimestamp, parsed_ts.error().message);
    out.timestamp_ns = *parsed_ts;
    for (const char* key : {"src_ip", "dest_ip"}) {
        if (!string_member(*object, key)) {
            return refuse(MetadataProblem::kBadField, std::string(key) + " is not a string");
        }
    }
    if (object->has("flow_id") && !object->isNull("flow_id")) {
        const Poco::Dynamic::Var flow = object->get("flow_id");
        if (!flow.isInteger())
            return refuse(MetadataProblem::kBadField, "flow_id is not an integer");
        out.flow_id = flow.isSigned() ? std::to_string(flow.convert<Poco::Int64>())
                                      : std::to_string(flow.convert<Poco::UInt64>());
    }
    // The record's own object (conn, files, ...) holds its uid.
    if (const auto inner = object->getObject(out.type)) {
        for (const char* key : {"uid", "fuid"}) {
            const auto uid = string_member(*inner, key);
            if (!uid)
                return refuse(MetadataProblem::kBadField,
                              out.type + "." + key + " is not a string");
            if (*uid && out.uid.empty()) out.uid = **uid;
        }
    }
    ValueSet values;
    walk(root, "", 0, values);
    // An HTTP request's URL, as an indicator list would give it.
    if (out.type == "http") {
        if (const auto http = object->getObject("http")) {
            const auto host = string_member(*http, "host");
            const auto uri = string_member(*http, "uri");
            if (host && *host && uri && *uri && !(*host)->empty()) {
                values.add("http://" + **host + **uri);
                values.add(**host + **uri);
                // The URL without the path's query string, as indicator lists often give it.
                const auto query = (*uri)->find('?');
                if (query != std::string::npos) {
                    values.add("http://" + **host + (*uri)->substr(0, query));
                }
            }
        }
    }
    if (out.type == "conn" && !out.uid.empty()) values.add(out.uid);
    out.values = values.take();
    out.json = std::string(json);
    out.digest = sha256_hex(json);
    return out;
}

}  // namespace

std::string_view to_string(MetadataProblem problem) {
    const auto i = static_cast<std::size_t>(problem);
    return i < kProblemNames.size() ? kProblemNames[i] : "unknown";
}

std::variant<ParsedMetadata, MetadataParseError> parse_metadata_record(std::string_view json) {
    try {
        return parse(json);
    } catch (const Poco::Exception& e) {
        // A value of an unexpected type met by an extract<>: the record is refused, not fatal.
        return MetadataParseError{
            MetadataProblem::kBadField,
            std::string(to_string(MetadataProblem::kBadField)) + ": " + e.displayText()};
    } catch (const std::exception& e) {
        return MetadataParseError{
            MetadataProblem::kBadField,
            std::string(to_string(MetadataProblem::kBadField)) + ": " + e.what()};
    }
}

std::string metadata_value(std::string_view text) {
    auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
    while (!text.empty() && space(text.front())) text.remove_prefix(1);
    while (!text.empty() && space(text.back())) text.remove_suffix(1);
    if (text.size() >= 2 && text.front() == '<' && text.back() == '>') {
        text = text.substr(1, text.size() - 2);
    }
    // "example.com." is the DNS name example.com; a lone "." stays.
    if (text.size() > 1 && text.back() == '.' && text.find('/') == std::string_view::npos) {
        text.remove_suffix(1);
    }
    std::string out(text);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    return out;
}

common::Result<void> check_metadata_query(const MetadataQuery& q) {
    if (!q.value.empty() &&
        (q.value.size() < kMinHuntValueLength || q.value.size() > kMaxMetadataValueBytes)) {
        return make_error(ErrorCode::kInvalidArgument,
                          "the value to hunt for must be " + std::to_string(kMinHuntValueLength) +
                              ".." + std::to_string(kMaxMetadataValueBytes) + " bytes");
    }
    if (q.limit == 0 || q.limit > kMaxHuntLimit) {
        return make_error(
            ErrorCode::kInvalidArgument,
            "limit " + std::to_string(q.limit) + " is not 1.." + std::to_string(kMaxHuntLimit));
    }
    return {};
}

}  // namespace senningen::collector
