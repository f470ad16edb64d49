#include "senningen/common/json_codec.h"

#include <Poco/Dynamic/Var.h>
#include <Poco/Exception.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Parser.h>

#include <cstdio>
#include <limits>
#include <sstream>

namespace senningen::common {

namespace {

bool printable(unsigned char c) { return c >= 0x20 && c < 0x7f && c != '|'; }

}  // namespace

std::string encode_match_data(std::string_view bytes) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    bool in_hex = false;
    for (const char ch : bytes) {
        const auto c = static_cast<unsigned char>(ch);
        if (printable(c)) {
            if (in_hex) {
                out.push_back('|');
                in_hex = false;
            }
            out.push_back(ch);
        } else {
            if (!in_hex) {
                out.push_back('|');
                in_hex = true;
            } else {
                out.push_back(' ');
            }
            out.push_back(kHex[c >> 4]);
            out.push_back(kHex[c & 0x0f]);
        }
    }
    if (in_hex) out.push_back('|');
    return out;
}

Result<std::string> decode_match_data(std::string_view text) {
    std::string out;
    std::size_t i = 0;
    auto hex_value = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    while (i < text.size()) {
        if (text[i] != '|') {
            out.push_back(text[i++]);
            continue;
        }
        const std::size_t close = text.find('|', i + 1);
        if (close == std::string_view::npos) {
            return make_error(ErrorCode::kParse, "match data: unterminated |hex| run at offset " +
                                                     std::to_string(i));
        }
        std::string_view run = text.substr(i + 1, close - i - 1);
        std::size_t j = 0;
        while (j < run.size()) {
            if (run[j] == ' ') {
                ++j;
                continue;
            }
            if (j + 1 >= run.size() || hex_value(run[j]) < 0 || hex_value(run[j + 1]) < 0) {
                return make_error(ErrorCode::kParse, "match data: bad hex byte in |" +
                                                         std::string(run) + "|");
            }
            out.push_back(static_cast<char>(hex_value(run[j]) * 16 + hex_value(run[j + 1])));
            j += 2;
        }
        i = close + 1;
    }
    return out;
}

Poco::JSON::Object::Ptr alert_to_json_object(const Alert& alert) {
    Poco::JSON::Object::Ptr root = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
    root->set("timestamp", format_timestamp(alert.timestamp_ns));
    root->set("event_type", "alert");
    if (alert.network) {
        const NetworkContext& n = *alert.network;
        root->set("flow_id", n.flow_id);
        root->set("src_ip", n.src_ip);
        root->set("src_port", static_cast<int>(n.src_port));
        root->set("dest_ip", n.dest_ip);
        root->set("dest_port", static_cast<int>(n.dest_port));
        root->set("proto", n.proto);
        if (!n.app_proto.empty()) root->set("app_proto", n.app_proto);
    }
    Poco::JSON::Object::Ptr a = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
    a->set("id", alert.id);
    a->set("signature", alert.rule);
    a->set("category", alert.category);
    a->set("severity", alert.severity);
    a->set("source", std::string(to_string(alert.source)));
    a->set("kind", std::string(to_string(alert.kind)));
    a->set("pack", alert.pack_version);
    root->set("alert", a);
    if (alert.intel) {
        Poco::JSON::Object::Ptr i = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
        i->set("indicator", alert.intel->indicator);
        i->set("indicator_type", alert.intel->indicator_type);
        i->set("where", alert.intel->where);
        Poco::JSON::Array::Ptr sources = new Poco::JSON::Array;
        for (const auto& s : alert.intel->sources) sources->add(s);
        i->set("sources", sources);
        root->set("intel", i);
    }
    if (alert.file) {
        Poco::JSON::Object::Ptr f = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
        f->set("path", alert.file->path);
        f->set("size", alert.file->size);
        f->set("sha256", alert.file->sha256);
        if (!alert.file->sha1.empty()) f->set("sha1", alert.file->sha1);
        if (!alert.file->md5.empty()) f->set("md5", alert.file->md5);
        root->set("file", f);
    }
    if (!alert.matches.empty()) {
        Poco::JSON::Array::Ptr matches = new Poco::JSON::Array;
        for (const auto& m : alert.matches) {
            Poco::JSON::Object::Ptr o = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
            o->set("identifier", m.identifier);
            o->set("offset", m.offset);
            o->set("length", m.length);
            o->set("data", encode_match_data(m.data));
            matches->add(o);
        }
        root->set("matches", matches);
    }
    Poco::JSON::Object::Ptr agent = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
    agent->set("id", alert.agent_id);
    root->set("agent", agent);
    return root;
}

std::string alert_to_json(const Alert& alert) {
    std::ostringstream out;
    alert_to_json_object(alert)->stringify(out);
    return out.str();
}

namespace {

// Typed field access that turns every missing or mistyped field into a message naming it.
class Reader {
public:
    Reader(const Poco::JSON::Object& object, std::string where)
        : object_(object), where_(std::move(where)) {}

    bool has(const std::string& key) const { return object_.has(key) && !object_.isNull(key); }

    Result<std::string> string(const std::string& key) const {
        if (!has(key)) return missing(key);
        const Poco::Dynamic::Var v = object_.get(key);
        if (!v.isString()) return mistyped(key, "a string");
        return v.extract<std::string>();
    }

    Result<std::string> optional_string(const std::string& key) const {
        if (!has(key)) return std::string();
        return string(key);
    }

    // An integer within [lo, hi].
    Result<std::int64_t> integer(const std::string& key, std::int64_t lo, std::int64_t hi) const {
        if (!has(key)) return missing(key);
        const Poco::Dynamic::Var v = object_.get(key);
        if (!v.isInteger()) return mistyped(key, "an integer");
        std::int64_t n = 0;
        try {
            if (!v.isSigned()) {
                const auto u = v.convert<std::uint64_t>();
                if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
                    return out_of_range(key, std::to_string(u), lo, hi);
                }
                n = static_cast<std::int64_t>(u);
            } else {
                n = v.convert<std::int64_t>();
            }
        } catch (const Poco::Exception&) {
            return mistyped(key, "an integer");
        }
        if (n < lo || n > hi) return out_of_range(key, std::to_string(n), lo, hi);
        return n;
    }

    Result<std::uint64_t> unsigned64(const std::string& key) const {
        if (!has(key)) return missing(key);
        const Poco::Dynamic::Var v = object_.get(key);
        if (!v.isInteger()) return mistyped(key, "an integer");
        try {
            if (v.isSigned() && v.convert<std::int64_t>() < 0) {
                return make_error(ErrorCode::kSchema, where_ + key + " is negative");
            }
            return v.convert<std::uint64_t>();
        } catch (const Poco::Exception&) {
            return mistyped(key, "an integer");
        }
    }

    Result<Poco::JSON::Object::Ptr> object(const std::string& key) const {
        if (!has(key)) return missing(key);
        Poco::JSON::Object::Ptr o = object_.getObject(key);
        if (o.isNull()) return mistyped(key, "an object");
        return o;
    }

    Result<Poco::JSON::Array::Ptr> array(const std::string& key) const {
        if (!has(key)) return missing(key);
        Poco::JSON::Array::Ptr a = object_.getArray(key);
        if (a.isNull()) return mistyped(key, "an array");
        return a;
    }

    const std::string& where() const { return where_; }

private:
    Error missing(const std::string& key) const {
        return make_error(ErrorCode::kSchema, "field '" + where_ + key + "' is missing");
    }
    Error mistyped(const std::string& key, const char* what) const {
        return make_error(ErrorCode::kSchema, "field '" + where_ + key + "' is not " + what);
    }
    Error out_of_range(const std::string& key, const std::string& value, std::int64_t lo,
                       std::int64_t hi) const {
        return make_error(ErrorCode::kSchema, "field '" + where_ + key + "' is " + value +
                                                  ", outside " + std::to_string(lo) + ".." +
                                                  std::to_string(hi));
    }

    const Poco::JSON::Object& object_;
    std::string where_;
};

#define SENNINGEN_TRY(var, expr)                    \
    auto var##_result = (expr);                     \
    if (!var##_result) return var##_result.error(); \
    auto var = std::move(var##_result).value()

}  // namespace

Result<Alert> alert_from_json_object(const Poco::JSON::Object& object) {
    Alert alert;
    const Reader root(object, "");
    if (root.has("event_type")) {
        SENNINGEN_TRY(event_type, root.string("event_type"));
        if (event_type != "alert") {
            return make_error(ErrorCode::kSchema,
                              "field 'event_type' is '" + event_type + "', not 'alert'");
        }
    }
    SENNINGEN_TRY(ts_text, root.string("timestamp"));
    SENNINGEN_TRY(ts, parse_timestamp(ts_text));
    alert.timestamp_ns = ts;

    SENNINGEN_TRY(a_obj, root.object("alert"));
    const Reader a(*a_obj, "alert.");
    SENNINGEN_TRY(id, a.string("id"));
    alert.id = std::move(id);
    SENNINGEN_TRY(signature, a.string("signature"));
    alert.rule = std::move(signature);
    SENNINGEN_TRY(category, a.optional_string("category"));
    alert.category = std::move(category);
    SENNINGEN_TRY(severity, a.integer("severity", kSeverityMin, kSeverityMax));
    alert.severity = static_cast<int>(severity);
    SENNINGEN_TRY(source_text, a.string("source"));
    SENNINGEN_TRY(source, parse_rule_source(source_text));
    alert.source = source;
    SENNINGEN_TRY(kind_text, a.string("kind"));
    SENNINGEN_TRY(kind, parse_alert_kind(kind_text));
    alert.kind = kind;
    SENNINGEN_TRY(pack, a.optional_string("pack"));
    alert.pack_version = std::move(pack);

    if (root.has("src_ip") || root.has("flow_id")) {
        NetworkContext n;
        SENNINGEN_TRY(flow_id, root.unsigned64("flow_id"));
        n.flow_id = flow_id;
        SENNINGEN_TRY(src_ip, root.string("src_ip"));
        n.src_ip = std::move(src_ip);
        SENNINGEN_TRY(src_port, root.integer("src_port", 0, 65535));
        n.src_port = static_cast<std::uint16_t>(src_port);
        SENNINGEN_TRY(dest_ip, root.string("dest_ip"));
        n.dest_ip = std::move(dest_ip);
        SENNINGEN_TRY(dest_port, root.integer("dest_port", 0, 65535));
        n.dest_port = static_cast<std::uint16_t>(dest_port);
        SENNINGEN_TRY(proto, root.string("proto"));
        n.proto = std::move(proto);
        SENNINGEN_TRY(app_proto, root.optional_string("app_proto"));
        n.app_proto = std::move(app_proto);
        alert.network = std::move(n);
    }
    if (root.has("intel")) {
        SENNINGEN_TRY(i_obj, root.object("intel"));
        const Reader i(*i_obj, "intel.");
        IntelContext intel;
        SENNINGEN_TRY(indicator, i.string("indicator"));
        intel.indicator = std::move(indicator);
        SENNINGEN_TRY(indicator_type, i.string("indicator_type"));
        intel.indicator_type = std::move(indicator_type);
        SENNINGEN_TRY(where, i.string("where"));
        intel.where = std::move(where);
        if (i.has("sources")) {
            SENNINGEN_TRY(sources, i.array("sources"));
            for (std::size_t k = 0; k < sources->size(); ++k) {
                const Poco::Dynamic::Var v = sources->get(static_cast<unsigned>(k));
                if (!v.isString()) {
                    return make_error(ErrorCode::kSchema, "field 'intel.sources[" +
                                                              std::to_string(k) +
                                                              "]' is not a string");
                }
                intel.sources.push_back(v.extract<std::string>());
            }
        }
        alert.intel = std::move(intel);
    }
    if (root.has("file")) {
        SENNINGEN_TRY(f_obj, root.object("file"));
        const Reader f(*f_obj, "file.");
        FileContext file;
        SENNINGEN_TRY(path, f.string("path"));
        file.path = std::move(path);
        SENNINGEN_TRY(size, f.unsigned64("size"));
        file.size = size;
        SENNINGEN_TRY(sha256, f.string("sha256"));
        file.sha256 = std::move(sha256);
        SENNINGEN_TRY(sha1, f.optional_string("sha1"));
        file.sha1 = std::move(sha1);
        SENNINGEN_TRY(md5, f.optional_string("md5"));
        file.md5 = std::move(md5);
        alert.file = std::move(file);
    }
    if (root.has("matches")) {
        SENNINGEN_TRY(matches, root.array("matches"));
        if (matches->size() > kMaxStringMatches) {
            return make_error(ErrorCode::kSchema, "field 'matches' has " +
                                                      std::to_string(matches->size()) +
                                                      " entries, more than " +
                                                      std::to_string(kMaxStringMatches));
        }
        for (std::size_t k = 0; k < matches->size(); ++k) {
            Poco::JSON::Object::Ptr m_obj = matches->getObject(static_cast<unsigned>(k));
            const std::string where = "matches[" + std::to_string(k) + "].";
            if (m_obj.isNull()) {
                return make_error(ErrorCode::kSchema, "field '" + where + "' is not an object");
            }
            const Reader m(*m_obj, where);
            StringMatch match;
            SENNINGEN_TRY(identifier, m.string("identifier"));
            match.identifier = std::move(identifier);
            SENNINGEN_TRY(offset, m.unsigned64("offset"));
            match.offset = offset;
            SENNINGEN_TRY(length, m.integer("length", 0, std::numeric_limits<std::uint32_t>::max()));
            match.length = static_cast<std::uint32_t>(length);
            SENNINGEN_TRY(data_text, m.string("data"));
            auto data = decode_match_data(data_text);
            if (!data) {
                return make_error(ErrorCode::kSchema,
                                  "field '" + where + "data': " + data.error().message);
            }
            match.data = std::move(data).value();
            alert.matches.push_back(std::move(match));
        }
    }
    SENNINGEN_TRY(agent_obj, root.object("agent"));
    const Reader agent(*agent_obj, "agent.");
    SENNINGEN_TRY(agent_id, agent.string("id"));
    alert.agent_id = std::move(agent_id);

    if (auto ok = validate(alert); !ok) return ok.error();
    return alert;
}

Result<Alert> alert_from_json(std::string_view text) {
    Poco::Dynamic::Var parsed;
    try {
        Poco::JSON::Parser parser;
        parsed = parser.parse(std::string(text));
    } catch (const Poco::Exception& e) {
        return make_error(ErrorCode::kParse, "alert JSON does not parse: " + e.displayText());
    } catch (const std::exception& e) {
        return make_error(ErrorCode::kParse, std::string("alert JSON does not parse: ") + e.what());
    }
    Poco::JSON::Object::Ptr object;
    try {
        object = parsed.extract<Poco::JSON::Object::Ptr>();
    } catch (const Poco::Exception&) {
        return make_error(ErrorCode::kSchema, "alert JSON is not an object");
    }
    if (object.isNull()) return make_error(ErrorCode::kSchema, "alert JSON is not an object");
    return alert_from_json_object(*object);
}

}  // namespace senningen::common
