#include "senningen/common/record_codec.h"

#include <cstdint>
#include <cstring>

namespace senningen::common {

namespace {

class Writer {
public:
    explicit Writer(std::string& out) : out_(out) {}
    void number(std::uint64_t v) {
        char b[8];
        for (char& c : b) {
            c = static_cast<char>(v & 0xff);
            v >>= 8;
        }
        out_.append(b, sizeof b);
    }
    void length(std::size_t n) {
        char b[4];
        auto v = static_cast<std::uint32_t>(n);
        for (char& c : b) {
            c = static_cast<char>(v & 0xff);
            v >>= 8;
        }
        out_.append(b, sizeof b);
    }
    void text(const std::string& s) {
        length(s.size());
        out_.append(s);
    }
    void flag(bool present) { out_.push_back(present ? '\1' : '\0'); }

private:
    std::string& out_;
};

class Reader {
public:
    explicit Reader(std::string_view in) : in_(in) {}
    bool number(const char* field, std::uint64_t& v) {
        if (!need(8, field)) return false;
        v = 0;
        for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(in_[pos_ + static_cast<std::size_t>(i)]);
        pos_ += 8;
        return true;
    }
    bool length(const char* field, std::uint32_t& n) {
        if (!need(4, field)) return false;
        n = 0;
        for (int i = 3; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(in_[pos_ + static_cast<std::size_t>(i)]);
        pos_ += 4;
        return true;
    }
    bool text(const char* field, std::string& s) {
        std::uint32_t n = 0;
        if (!length(field, n) || !need(n, field)) return false;
        s.assign(in_.substr(pos_, n));
        pos_ += n;
        return true;
    }
    bool flag(const char* field, bool& present) {
        if (!need(1, field)) return false;
        const char c = in_[pos_++];
        if (c != '\0' && c != '\1') {
            error_ = make_error(ErrorCode::kParse, std::string("queue record: ") + field +
                                                       " presence byte is neither 0 nor 1");
            return false;
        }
        present = c == '\1';
        return true;
    }
    bool done() const { return pos_ == in_.size(); }
    const Error& error() const { return error_; }

private:
    bool need(std::size_t n, const char* field) {
        if (in_.size() - pos_ >= n) return true;
        error_ = make_error(ErrorCode::kTruncated,
                            std::string("queue record ends inside ") + field + " at byte " +
                                std::to_string(pos_));
        return false;
    }

    std::string_view in_;
    std::size_t pos_ = 0;
    Error error_;
};

}  // namespace

std::string encode_alert_record(const Alert& a) {
    std::string out;
    out.reserve(256);
    out.push_back(static_cast<char>(kRecordFormat));
    Writer w(out);
    w.text(a.id);
    w.text(a.agent_id);
    w.number(static_cast<std::uint64_t>(a.timestamp_ns));
    w.number(static_cast<std::uint64_t>(a.kind));
    w.number(static_cast<std::uint64_t>(a.source));
    w.text(a.rule);
    w.text(a.category);
    w.text(a.pack_version);
    w.number(static_cast<std::uint64_t>(a.severity));
    w.flag(a.network.has_value());
    if (a.network) {
        w.number(a.network->flow_id);
        w.text(a.network->src_ip);
        w.number(a.network->src_port);
        w.text(a.network->dest_ip);
        w.number(a.network->dest_port);
        w.text(a.network->proto);
        w.text(a.network->app_proto);
    }
    w.flag(a.file.has_value());
    if (a.file) {
        w.text(a.file->path);
        w.number(a.file->size);
        w.text(a.file->sha256);
        w.text(a.file->sha1);
        w.text(a.file->md5);
    }
    w.flag(a.intel.has_value());
    if (a.intel) {
        w.text(a.intel->indicator);
        w.text(a.intel->indicator_type);
        w.text(a.intel->where);
        w.length(a.intel->sources.size());
        for (const auto& s : a.intel->sources) w.text(s);
    }
    w.length(a.matches.size());
    for (const auto& m : a.matches) {
        w.text(m.identifier);
        w.number(m.offset);
        w.number(m.length);
        w.text(m.data);
    }
    return out;
}

Result<Alert> decode_alert_record(std::string_view record) {
    if (record.empty()) return make_error(ErrorCode::kTruncated, "queue record is empty");
    if (static_cast<unsigned char>(record[0]) != kRecordFormat) {
        return make_error(ErrorCode::kUnsupported,
                          "queue record format " +
                              std::to_string(static_cast<unsigned char>(record[0])) +
                              " is not supported (this build reads " +
                              std::to_string(kRecordFormat) + ")");
    }
    Reader r(record.substr(1));
    Alert a;
    std::uint64_t n = 0;
    std::uint64_t kind = 0;
    std::uint64_t source = 0;
    std::uint64_t severity = 0;
    bool ok = r.text("id", a.id) && r.text("agent_id", a.agent_id) && r.number("timestamp", n) &&
              r.number("kind", kind) && r.number("source", source) && r.text("rule", a.rule) &&
              r.text("category", a.category) && r.text("pack_version", a.pack_version) &&
              r.number("severity", severity);
    if (!ok) return r.error();
    if (kind > 1 || source > 2 || severity > static_cast<std::uint64_t>(kSeverityMax)) {
        return make_error(ErrorCode::kParse, "queue record: kind, source or severity out of range");
    }
    a.timestamp_ns = static_cast<std::int64_t>(n);
    a.kind = static_cast<AlertKind>(kind);
    a.source = static_cast<RuleSource>(source);
    a.severity = static_cast<int>(severity);
    bool present = false;
    if (!r.flag("network", present)) return r.error();
    if (present) {
        NetworkContext c;
        std::uint64_t sp = 0;
        std::uint64_t dp = 0;
        if (!(r.number("flow_id", c.flow_id) && r.text("src_ip", c.src_ip) &&
              r.number("src_port", sp) && r.text("dest_ip", c.dest_ip) &&
              r.number("dest_port", dp) && r.text("proto", c.proto) &&
              r.text("app_proto", c.app_proto))) {
            return r.error();
        }
        if (sp > 65535 || dp > 65535) return make_error(ErrorCode::kParse, "queue record: port out of range");
        c.src_port = static_cast<std::uint16_t>(sp);
        c.dest_port = static_cast<std::uint16_t>(dp);
        a.network = std::move(c);
    }
    if (!r.flag("file", present)) return r.error();
    if (present) {
        FileContext f;
        if (!(r.text("path", f.path) && r.number("size", f.size) && r.text("sha256", f.sha256) &&
              r.text("sha1", f.sha1) && r.text("md5", f.md5))) {
            return r.error();
        }
        a.file = std::move(f);
    }
    if (!r.flag("intel", present)) return r.error();
    if (present) {
        IntelContext i;
        std::uint32_t count = 0;
        if (!(r.text("indicator", i.indicator) && r.text("indicator_type", i.indicator_type) &&
              r.text("where", i.where) && r.length("sources", count))) {
            return r.error();
        }
        for (std::uint32_t k = 0; k < count; ++k) {
            std::string s;
            if (!r.text("source", s)) return r.error();
            i.sources.push_back(std::move(s));
        }
        a.intel = std::move(i);
    }
    std::uint32_t matches = 0;
    if (!r.length("matches", matches)) return r.error();
    if (matches > kMaxStringMatches) {
        return make_error(ErrorCode::kParse, "queue record: " + std::to_string(matches) + " matches");
    }
    for (std::uint32_t k = 0; k < matches; ++k) {
        StringMatch m;
        std::uint64_t length = 0;
        if (!(r.text("match identifier", m.identifier) && r.number("match offset", m.offset) &&
              r.number("match length", length) && r.text("match data", m.data))) {
            return r.error();
        }
        if (length > UINT32_MAX) return make_error(ErrorCode::kParse, "queue record: match length");
        m.length = static_cast<std::uint32_t>(length);
        a.matches.push_back(std::move(m));
    }
    if (!r.done()) return make_error(ErrorCode::kParse, "queue record has trailing bytes");
    if (auto valid = validate(a); !valid) return valid.error();
    return a;
}

}  // namespace senningen::common
