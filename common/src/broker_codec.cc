#include "senningen/common/broker_codec.h"

#include <broker/data.hh>

#include <chrono>
#include <limits>

#include "senningen/common/record_codec.h"

namespace senningen::common {

namespace {

// Field positions are part of the wire format (docs/wire-protocol.md): append, never reorder.
enum AlertField : std::size_t {
    kId, kAgentId, kTimestamp, kKind, kSource, kRule, kCategory, kPack, kSeverity,
    kNetwork, kFile, kIntel, kMatches, kAlertFieldCount
};

broker::data opt_string(const std::string& s) { return s; }

broker::data encode_network(const std::optional<NetworkContext>& n) {
    if (!n) return broker::data{};
    return broker::vector{broker::count{n->flow_id}, n->src_ip, broker::count{n->src_port},
                          n->dest_ip, broker::count{n->dest_port}, n->proto, n->app_proto};
}

broker::data encode_file(const std::optional<FileContext>& f) {
    if (!f) return broker::data{};
    return broker::vector{f->path, broker::count{f->size}, f->sha256, f->sha1, f->md5};
}

broker::data encode_intel(const std::optional<IntelContext>& i) {
    if (!i) return broker::data{};
    broker::vector sources;
    for (const auto& s : i->sources) sources.emplace_back(s);
    return broker::vector{i->indicator, i->indicator_type, i->where, std::move(sources)};
}

// Reads typed elements out of a broker::vector, naming the element on any mismatch.
class VecReader {
public:
    VecReader(const broker::data& d, std::string what) : what_(std::move(what)) {
        vec_ = broker::get_if<broker::vector>(d);
    }
    bool is_vector() const { return vec_ != nullptr; }
    std::size_t size() const { return vec_ ? vec_->size() : 0; }
    const broker::data& at(std::size_t i) const { return (*vec_)[i]; }
    bool is_none(std::size_t i) const { return broker::get_if<broker::none>(at(i)) != nullptr; }

    Error error(std::size_t i, const std::string& problem) const {
        return make_error(ErrorCode::kSchema,
                          what_ + " element " + std::to_string(i) + " " + problem);
    }

    Result<std::string> string(std::size_t i) const {
        if (i >= size()) return error(i, "is missing");
        const auto* s = broker::get_if<std::string>(at(i));
        if (!s) return error(i, "is not a string");
        return *s;
    }
    Result<std::uint64_t> count(std::size_t i, std::uint64_t max =
                                                   std::numeric_limits<std::uint64_t>::max()) const {
        if (i >= size()) return error(i, "is missing");
        const auto* c = broker::get_if<broker::count>(at(i));
        if (!c) return error(i, "is not a count");
        if (*c > max) return error(i, "is " + std::to_string(*c) + ", above " + std::to_string(max));
        return *c;
    }
    Result<std::int64_t> timestamp(std::size_t i) const {
        if (i >= size()) return error(i, "is missing");
        const auto* t = broker::get_if<broker::timestamp>(at(i));
        if (!t) return error(i, "is not a timestamp");
        return std::chrono::duration_cast<std::chrono::nanoseconds>(t->time_since_epoch()).count();
    }

    const std::string& what() const { return what_; }

private:
    const broker::vector* vec_ = nullptr;
    std::string what_;
};

#define SENNINGEN_TRY(var, expr)                    \
    auto var##_result = (expr);                     \
    if (!var##_result) return var##_result.error(); \
    auto var = std::move(var##_result).value()

Result<NetworkContext> decode_network(const broker::data& d) {
    const VecReader r(d, "alert network context");
    if (!r.is_vector() || r.size() < 7) {
        return make_error(ErrorCode::kSchema, "alert network context is not a 7-element vector");
    }
    NetworkContext n;
    SENNINGEN_TRY(flow_id, r.count(0));
    n.flow_id = flow_id;
    SENNINGEN_TRY(src_ip, r.string(1));
    n.src_ip = std::move(src_ip);
    SENNINGEN_TRY(src_port, r.count(2, 65535));
    n.src_port = static_cast<std::uint16_t>(src_port);
    SENNINGEN_TRY(dest_ip, r.string(3));
    n.dest_ip = std::move(dest_ip);
    SENNINGEN_TRY(dest_port, r.count(4, 65535));
    n.dest_port = static_cast<std::uint16_t>(dest_port);
    SENNINGEN_TRY(proto, r.string(5));
    n.proto = std::move(proto);
    SENNINGEN_TRY(app_proto, r.string(6));
    n.app_proto = std::move(app_proto);
    return n;
}

Result<FileContext> decode_file(const broker::data& d) {
    const VecReader r(d, "alert file context");
    if (!r.is_vector() || r.size() < 5) {
        return make_error(ErrorCode::kSchema, "alert file context is not a 5-element vector");
    }
    FileContext f;
    SENNINGEN_TRY(path, r.string(0));
    f.path = std::move(path);
    SENNINGEN_TRY(size, r.count(1));
    f.size = size;
    SENNINGEN_TRY(sha256, r.string(2));
    f.sha256 = std::move(sha256);
    SENNINGEN_TRY(sha1, r.string(3));
    f.sha1 = std::move(sha1);
    SENNINGEN_TRY(md5, r.string(4));
    f.md5 = std::move(md5);
    return f;
}

Result<IntelContext> decode_intel(const broker::data& d) {
    const VecReader r(d, "alert intel context");
    if (!r.is_vector() || r.size() < 4) {
        return make_error(ErrorCode::kSchema, "alert intel context is not a 4-element vector");
    }
    IntelContext i;
    SENNINGEN_TRY(indicator, r.string(0));
    i.indicator = std::move(indicator);
    SENNINGEN_TRY(type, r.string(1));
    i.indicator_type = std::move(type);
    SENNINGEN_TRY(where, r.string(2));
    i.where = std::move(where);
    const VecReader sources(r.at(3), "alert intel sources");
    if (!sources.is_vector()) return r.error(3, "is not a vector");
    for (std::size_t k = 0; k < sources.size(); ++k) {
        SENNINGEN_TRY(s, sources.string(k));
        i.sources.push_back(std::move(s));
    }
    return i;
}

}  // namespace

broker::data to_broker(const Alert& alert) {
    broker::vector matches;
    for (const auto& m : alert.matches) {
        matches.emplace_back(broker::vector{m.identifier, broker::count{m.offset},
                                            broker::count{m.length}, m.data});
    }
    broker::vector v(kAlertFieldCount);
    v[kId] = alert.id;
    v[kAgentId] = alert.agent_id;
    v[kTimestamp] = broker::timestamp{std::chrono::nanoseconds{alert.timestamp_ns}};
    v[kKind] = broker::count{static_cast<std::uint64_t>(alert.kind)};
    v[kSource] = broker::count{static_cast<std::uint64_t>(alert.source)};
    v[kRule] = alert.rule;
    v[kCategory] = opt_string(alert.category);
    v[kPack] = opt_string(alert.pack_version);
    v[kSeverity] = broker::count{static_cast<std::uint64_t>(alert.severity)};
    v[kNetwork] = encode_network(alert.network);
    v[kFile] = encode_file(alert.file);
    v[kIntel] = encode_intel(alert.intel);
    v[kMatches] = std::move(matches);
    return v;
}

Result<Alert> alert_from_broker(const broker::data& data) {
    const VecReader r(data, "alert");
    if (!r.is_vector()) return make_error(ErrorCode::kSchema, "alert is not a vector");
    if (r.size() < kAlertFieldCount) {
        return make_error(ErrorCode::kSchema, "alert has " + std::to_string(r.size()) +
                                                  " elements, expected at least " +
                                                  std::to_string(kAlertFieldCount));
    }
    Alert a;
    SENNINGEN_TRY(id, r.string(kId));
    a.id = std::move(id);
    SENNINGEN_TRY(agent_id, r.string(kAgentId));
    a.agent_id = std::move(agent_id);
    SENNINGEN_TRY(ts, r.timestamp(kTimestamp));
    a.timestamp_ns = ts;
    SENNINGEN_TRY(kind, r.count(kKind, 1));
    a.kind = static_cast<AlertKind>(kind);
    SENNINGEN_TRY(source, r.count(kSource, 2));
    a.source = static_cast<RuleSource>(source);
    SENNINGEN_TRY(rule, r.string(kRule));
    a.rule = std::move(rule);
    SENNINGEN_TRY(category, r.string(kCategory));
    a.category = std::move(category);
    SENNINGEN_TRY(pack, r.string(kPack));
    a.pack_version = std::move(pack);
    SENNINGEN_TRY(severity, r.count(kSeverity, kSeverityMax));
    a.severity = static_cast<int>(severity);
    if (!r.is_none(kNetwork)) {
        SENNINGEN_TRY(n, decode_network(r.at(kNetwork)));
        a.network = std::move(n);
    }
    if (!r.is_none(kFile)) {
        SENNINGEN_TRY(f, decode_file(r.at(kFile)));
        a.file = std::move(f);
    }
    if (!r.is_none(kIntel)) {
        SENNINGEN_TRY(i, decode_intel(r.at(kIntel)));
        a.intel = std::move(i);
    }
    const VecReader matches(r.at(kMatches), "alert matches");
    if (!matches.is_vector()) return r.error(kMatches, "is not a vector");
    if (matches.size() > kMaxStringMatches) {
        return make_error(ErrorCode::kSchema, "alert has " + std::to_string(matches.size()) +
                                                  " matches, more than " +
                                                  std::to_string(kMaxStringMatches));
    }
    for (std::size_t k = 0; k < matches.size(); ++k) {
        const VecReader m(matches.at(k), "alert match " + std::to_string(k));
        if (!m.is_vector() || m.size() < 4) {
            return make_error(ErrorCode::kSchema,
                              "alert match " + std::to_string(k) + " is not a 4-element vector");
        }
        StringMatch sm;
        SENNINGEN_TRY(identifier, m.string(0));
        sm.identifier = std::move(identifier);
        SENNINGEN_TRY(offset, m.count(1));
        sm.offset = offset;
        SENNINGEN_TRY(length, m.count(2, std::numeric_limits<std::uint32_t>::max()));
        sm.length = static_cast<std::uint32_t>(length);
        SENNINGEN_TRY(bytes, m.string(3));
        sm.data = std::move(bytes);
        a.matches.push_back(std::move(sm));
    }
    if (auto ok = validate(a); !ok) return ok.error();
    return a;
}

broker::data to_broker(const AlertBatch& batch) {
    broker::vector alerts;
    alerts.reserve(batch.alerts.size());
    if (batch.wire_version == 2) {
        for (const auto& a : batch.alerts) alerts.push_back(to_broker(a));
    } else if (batch.has_records()) {
        for (const auto& r : batch.records) alerts.emplace_back(r);
    } else {
        for (const auto& a : batch.alerts) alerts.emplace_back(encode_alert_record(a));
    }
    // Built element by element: a braced list would copy every alert once more.
    broker::vector v;
    v.reserve(7);
    v.emplace_back(std::string("alert_batch"));
    v.emplace_back(broker::count{batch.wire_version});
    v.emplace_back(batch.agent_id);
    v.emplace_back(broker::count{batch.batch_id});
    v.emplace_back(std::move(alerts));
    v.emplace_back(batch.credentials.certificate);
    v.emplace_back(batch.credentials.signature);
    return v;
}

namespace {

// The message's wire version, when it is one of OLDEST..NEWEST.
Result<std::uint64_t> check_header(const VecReader& r, const char* tag,
                                   std::uint64_t oldest = kWireVersion,
                                   std::uint64_t newest = kWireVersion) {
    if (!r.is_vector() || r.size() < 2) {
        return make_error(ErrorCode::kSchema, std::string("message is not a '") + tag +
                                                  "' vector with a tag and a version");
    }
    auto t = r.string(0);
    if (!t || *t != tag) {
        return make_error(ErrorCode::kSchema, std::string("message tag is not '") + tag + "'");
    }
    auto version = r.count(1);
    if (!version) return version.error();
    if (*version < oldest || *version > newest) {
        const std::string speaks = oldest == newest ? std::to_string(newest)
                                                    : std::to_string(oldest) + " to " +
                                                          std::to_string(newest);
        return make_error(ErrorCode::kUnsupported, std::string("'") + tag + "' wire version " +
                                                       std::to_string(*version) +
                                                       " is not supported (this build speaks " +
                                                       speaks + ")");
    }
    return *version;
}

}  // namespace

Result<AlertBatch> batch_from_broker(const broker::data& data) {
    const VecReader r(data, "alert_batch");
    auto version = check_header(r, "alert_batch", kOldestAlertBatchWireVersion,
                                kAlertBatchWireVersion);
    if (!version) return version.error();
    AlertBatch batch;
    batch.wire_version = *version;
    SENNINGEN_TRY(agent_id, r.string(2));
    batch.agent_id = std::move(agent_id);
    SENNINGEN_TRY(batch_id, r.count(3));
    batch.batch_id = batch_id;
    if (r.size() < 5) return r.error(4, "is missing");
    const VecReader alerts(r.at(4), "alert_batch alerts");
    if (!alerts.is_vector()) return r.error(4, "is not a vector");
    batch.alerts.reserve(alerts.size());
    if (batch.wire_version >= 3) batch.records.reserve(alerts.size());
    for (std::size_t k = 0; k < alerts.size(); ++k) {
        if (batch.wire_version >= 3) {
            // Version 3: the alert's record encoding in one string, kept beside the decoded
            // alert (what was signed, and what the collector stores as the body).
            const auto* record = broker::get_if<std::string>(alerts.at(k));
            if (record == nullptr) {
                return make_error(ErrorCode::kSchema, "alert " + std::to_string(k) +
                                                          " of batch is not a string (wire "
                                                          "version 3 carries encoded alerts)");
            }
            auto a = decode_alert_record(*record);
            if (!a) {
                return make_error(a.error().code,
                                  "alert " + std::to_string(k) + " of batch: " + a.error().message);
            }
            batch.alerts.push_back(std::move(a).value());
            batch.records.push_back(*record);
            continue;
        }
        auto a = alert_from_broker(alerts.at(k));
        if (!a) {
            return make_error(a.error().code,
                              "alert " + std::to_string(k) + " of batch: " + a.error().message);
        }
        batch.alerts.push_back(std::move(a).value());
    }
    SENNINGEN_TRY(certificate, r.string(5));
    batch.credentials.certificate = std::move(certificate);
    SENNINGEN_TRY(signature, r.string(6));
    batch.credentials.signature = std::move(signature);
    return batch;
}

broker::data to_broker(const MetadataBatch& batch) {
    broker::vector records;
    records.reserve(batch.records.size());
    for (const auto& r : batch.records) records.emplace_back(r);
    broker::vector v;
    v.reserve(7);
    v.emplace_back(std::string("metadata_batch"));
    v.emplace_back(broker::count{batch.wire_version});
    v.emplace_back(batch.agent_id);
    v.emplace_back(broker::count{batch.batch_id});
    v.emplace_back(std::move(records));
    v.emplace_back(batch.credentials.certificate);
    v.emplace_back(batch.credentials.signature);
    return v;
}

Result<MetadataBatch> metadata_batch_from_broker(const broker::data& data) {
    const VecReader r(data, "metadata_batch");
    auto version =
        check_header(r, "metadata_batch", kMetadataBatchWireVersion, kMetadataBatchWireVersion);
    if (!version) return version.error();
    MetadataBatch batch;
    batch.wire_version = *version;
    SENNINGEN_TRY(agent_id, r.string(2));
    batch.agent_id = std::move(agent_id);
    SENNINGEN_TRY(batch_id, r.count(3));
    batch.batch_id = batch_id;
    if (r.size() < 5) return r.error(4, "is missing");
    const VecReader records(r.at(4), "metadata_batch records");
    if (!records.is_vector()) return r.error(4, "is not a vector");
    batch.records.reserve(records.size());
    for (std::size_t k = 0; k < records.size(); ++k) {
        // The records' content is checked by the collector, record by record, as it stores
        // them: one bad record must not cost the batch its good ones.
        SENNINGEN_TRY(record, records.string(k));
        batch.records.push_back(std::move(record));
    }
    SENNINGEN_TRY(certificate, r.string(5));
    batch.credentials.certificate = std::move(certificate);
    SENNINGEN_TRY(signature, r.string(6));
    batch.credentials.signature = std::move(signature);
    return batch;
}

broker::data to_broker(const BatchAck& ack) {
    return broker::vector{std::string("batch_ack"), broker::count{kWireVersion}, ack.agent_id,
                          broker::count{ack.batch_id}, broker::count{ack.inserted},
                          broker::count{ack.duplicates}, broker::count{ack.rejected}};
}

Result<BatchAck> ack_from_broker(const broker::data& data) {
    const VecReader r(data, "batch_ack");
    if (auto ok = check_header(r, "batch_ack"); !ok) return ok.error();
    BatchAck ack;
    SENNINGEN_TRY(agent_id, r.string(2));
    ack.agent_id = std::move(agent_id);
    SENNINGEN_TRY(batch_id, r.count(3));
    ack.batch_id = batch_id;
    SENNINGEN_TRY(inserted, r.count(4));
    ack.inserted = inserted;
    SENNINGEN_TRY(duplicates, r.count(5));
    ack.duplicates = duplicates;
    SENNINGEN_TRY(rejected, r.count(6));
    ack.rejected = rejected;
    return ack;
}

namespace {

// Heartbeat field positions after the tag and version (docs/wire-protocol.md).
enum HeartbeatField : std::size_t {
    kHbAgentId = 2, kHbSequence, kHbVersion, kHbUptime, kHbPack, kHbInterval, kHbPackets,
    kHbKernelDrops, kHbBytes, kHbFilesScanned, kHbAlerts, kHbQueueDepth, kHbQueueOldest,
    kHbStopping, kHbCertificate, kHbSignature, kHbFieldCount
};

}  // namespace

broker::data to_broker(const Heartbeat& hb) {
    broker::vector v(kHbFieldCount);
    v[0] = std::string("heartbeat");
    v[1] = broker::count{kWireVersion};
    v[kHbAgentId] = hb.agent_id;
    v[kHbSequence] = broker::count{hb.sequence};
    v[kHbVersion] = hb.version;
    v[kHbUptime] = broker::count{hb.uptime_s};
    v[kHbPack] = hb.pack_version;
    v[kHbInterval] = broker::count{hb.interval_s};
    v[kHbPackets] = broker::count{hb.packets};
    v[kHbKernelDrops] = broker::count{hb.kernel_drops};
    v[kHbBytes] = broker::count{hb.bytes};
    v[kHbFilesScanned] = broker::count{hb.files_scanned};
    v[kHbAlerts] = broker::count{hb.alerts};
    v[kHbQueueDepth] = broker::count{hb.queue_depth};
    v[kHbQueueOldest] = broker::count{hb.queue_oldest_age_s};
    v[kHbStopping] = broker::count{hb.stopping ? 1U : 0U};
    v[kHbCertificate] = hb.credentials.certificate;
    v[kHbSignature] = hb.credentials.signature;
    return v;
}

Result<Heartbeat> heartbeat_from_broker(const broker::data& data) {
    const VecReader r(data, "heartbeat");
    if (auto ok = check_header(r, "heartbeat"); !ok) return ok.error();
    Heartbeat hb;
    SENNINGEN_TRY(agent_id, r.string(kHbAgentId));
    hb.agent_id = std::move(agent_id);
    SENNINGEN_TRY(sequence, r.count(kHbSequence));
    hb.sequence = sequence;
    SENNINGEN_TRY(version, r.string(kHbVersion));
    hb.version = std::move(version);
    SENNINGEN_TRY(uptime, r.count(kHbUptime));
    hb.uptime_s = uptime;
    SENNINGEN_TRY(pack, r.string(kHbPack));
    hb.pack_version = std::move(pack);
    // An interval of 0 would make every agent offline at once; a day is the sane upper end.
    SENNINGEN_TRY(interval, r.count(kHbInterval, 86400));
    if (interval == 0) return r.error(kHbInterval, "is 0; a heartbeat interval is 1..86400 s");
    hb.interval_s = interval;
    SENNINGEN_TRY(packets, r.count(kHbPackets));
    hb.packets = packets;
    SENNINGEN_TRY(drops, r.count(kHbKernelDrops));
    hb.kernel_drops = drops;
    SENNINGEN_TRY(bytes, r.count(kHbBytes));
    hb.bytes = bytes;
    SENNINGEN_TRY(files, r.count(kHbFilesScanned));
    hb.files_scanned = files;
    SENNINGEN_TRY(alerts, r.count(kHbAlerts));
    hb.alerts = alerts;
    SENNINGEN_TRY(depth, r.count(kHbQueueDepth));
    hb.queue_depth = depth;
    SENNINGEN_TRY(oldest, r.count(kHbQueueOldest));
    hb.queue_oldest_age_s = oldest;
    SENNINGEN_TRY(stopping, r.count(kHbStopping, 1));
    hb.stopping = stopping == 1;
    SENNINGEN_TRY(certificate, r.string(kHbCertificate));
    hb.credentials.certificate = std::move(certificate);
    SENNINGEN_TRY(signature, r.string(kHbSignature));
    hb.credentials.signature = std::move(signature);
    return hb;
}

}  // namespace senningen::common
