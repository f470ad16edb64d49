#include "senningen/agent/engine/engine.h"

#include <algorithm>

#include <rapidjson/writer.h>

#include "senningen/agent/decode/dns.h"
#include "senningen/common/openssl_util.h"

namespace senningen::agent {

namespace {

constexpr int kMaxDetectAttempts = 4;  // payload packets looked at before giving up on a flow
// Bytes a stream scanned early keeps, so that a string cut by the early scan is still found
// whole by the next one (rules' strings are short).
constexpr std::size_t kScanOverlap = 256;

// "0x1c46", for checksums in weird records.
std::string hex16(std::uint16_t value) {
    const unsigned char bytes[2] = {static_cast<unsigned char>(value >> 8),
                                    static_cast<unsigned char>(value)};
    return "0x" + common::to_hex(bytes, 2);
}

const char* proto_name(std::uint8_t ip_proto) {
    switch (ip_proto) {
        case kIpProtoTcp: return "TCP";
        case kIpProtoUdp: return "UDP";
        default: return "IP";
    }
}

// A RapidJSON output stream that appends to a std::string (the record sink takes one).
struct StringOut {
    using Ch = char;
    std::string* to;
    void Put(char c) { to->push_back(c); }
    void Flush() {}
};

}  // namespace

Engine::Engine(EngineOptions options, std::shared_ptr<const YaraRules> rules,
               const IntelStore* intel, AlertSink sink)
    : options_(std::move(options)),
      rules_(std::move(rules)),
      intel_(intel),
      sink_(std::move(sink)),
      flows_(FlowTableOptions{.max_flows = options_.max_flows,
                              .stream_depth = options_.stream_depth,
                              .idle_timeout_ns = options_.idle_timeout_ns,
                              .absolute_timeout_ns = options_.absolute_timeout_ns},
             [this](Flow& flow) { on_flow_end(flow); }) {
    if (rules_) scanner_ = make_stream_scanner(rules_, options_.yara_timeout_seconds);
    flows_.set_removed_handler([this](const Flow& flow) { record_conn(flow); });
}

Engine::~Engine() = default;

std::unique_ptr<YaraScanner> make_stream_scanner(std::shared_ptr<const YaraRules> rules,
                                                 int timeout_seconds) {
    auto scanner = std::make_unique<YaraScanner>(std::move(rules), timeout_seconds);
    scanner->set_heap_only(true);  // streams, datagrams and file heads: our own buffers
    return scanner;
}

void Engine::process(const RawPacket& raw, int linktype) {
    ++counters_.packets;
    counters_.bytes += raw.len;
    last_ts_ns_ = raw.ts_ns;
    DecodedPacket packet;
    const DecodeStatus status = decode_packet(linktype, {raw.data, raw.caplen}, packet);
    packet.ts_ns = raw.ts_ns;
    if (status == DecodeStatus::kFragment) {
        const auto whole = defrag_.add(packet, raw.ts_ns);
        if (!whole.empty()) {
            const auto size = static_cast<std::uint32_t>(whole.size());
            process_datagram(RawPacket{raw.ts_ns, whole.data(), size, size}, defrag_.last());
        }
        return;
    }
    inspect(status, packet);
}

void Engine::process_datagram(const RawPacket& datagram, const DatagramFacts& facts) {
    last_ts_ns_ = datagram.ts_ns;
    DecodedPacket packet;
    const DecodeStatus status =
        decode_packet(kLinktypeRaw, {datagram.data, datagram.caplen}, packet);
    packet.ts_ns = datagram.ts_ns;
    inspect(status, packet, &facts);
}

EngineCounters Engine::counters() const {
    EngineCounters out = counters_;
    out.fragments = defrag_.counters().fragments;
    out.fragment_datagrams = defrag_.counters().datagrams;
    out.fragment_overlaps = defrag_.counters().overlaps;
    out.fragments_dropped = defrag_.counters().dropped;
    out.bad_ip_checksums += defrag_.counters().bad_checksums;
    return out;
}

void Engine::inspect(DecodeStatus status, DecodedPacket& packet, const DatagramFacts* facts) {
    switch (status) {
        case DecodeStatus::kOk: break;
        case DecodeStatus::kNotIp: ++counters_.not_ip; return;
        case DecodeStatus::kUnsupportedLink: ++counters_.unsupported_link; return;
        case DecodeStatus::kTruncated: ++counters_.truncated; return;
        case DecodeStatus::kMalformed: ++counters_.malformed; return;
        // A reassembled datagram is never one; counted as malformed should that change.
        case DecodeStatus::kFragment: ++counters_.malformed; return;
        case DecodeStatus::kOtherTransport: ++counters_.other_transport; return;
    }
    if (packet.ip_proto != kIpProtoTcp && packet.ip_proto != kIpProtoUdp) {
        ++counters_.other_transport;
        return;
    }
    ++counters_.decoded;
    // Counted, and inspected all the same: Zeek's -C, for captures taken where the network
    // card fills the checksums in (the capturing host's own packets show them wrong).
    const bool udp = packet.ip_proto == kIpProtoUdp;
    const ChecksumVerdict checksums = verify_checksums(packet);
    if (checksums.ip_bad) ++counters_.bad_ip_checksums;
    if (checksums.transport_bad) {
        ++(udp ? counters_.bad_udp_checksums : counters_.bad_tcp_checksums);
    }
    int direction = 0;
    Flow& flow = flows_.update(packet, direction);
    // A closed flow lingers only to absorb its last ACKs and retransmissions: its analyzer
    // and streams are gone, nothing is inspected twice.
    if (flow.ended) return;
    if (flow.packets[0] + flow.packets[1] == 1) on_flow_start(flow, packet);
    // "N fragment(s) of IP datagram id X", of a datagram reassembled from fragments.
    const auto fragments_of = [facts](std::uint32_t n) {
        return std::to_string(n) + " fragment(s) of IP datagram id " + std::to_string(facts->ip_id);
    };
    const char* side = direction == 0 ? "originator" : "responder";
    if (facts != nullptr && facts->differing_fragments > 0) {
        flow_weird(flow, direction, kWeirdFragment, "fragment_inconsistency", [&] {
            return fragments_of(facts->differing_fragments) +
                   " overlapped earlier ones with other bytes; the first copy is inspected";
        }, packet.ts_ns);
    }
    if (checksums.ip_bad || (facts != nullptr && facts->bad_checksum_fragments > 0)) {
        flow_weird(flow, direction, kWeirdBadIpChecksum, "bad_IP_checksum", [&] {
            return (checksums.ip_bad
                        ? "IPv4 header checksum " + hex16(checksums.ip_field) + " is wrong"
                        : fragments_of(facts->bad_checksum_fragments) +
                              " had a wrong IPv4 header checksum") +
                   "; inspected all the same";
        }, packet.ts_ns);
    }
    if (checksums.transport_bad) {
        flow_weird(flow, direction, kWeirdBadChecksum, udp ? "bad_UDP_checksum" : "bad_TCP_checksum",
                   [&] {
                       return std::string(side) + " sent checksum " +
                              hex16(checksums.transport_field) + ", should be " +
                              hex16(checksums.transport_expected) + "; inspected all the same";
                   },
                   packet.ts_ns);
    }
    if (const auto seq = flows_.inconsistent_seq()) {
        flow_weird(flow, direction, static_cast<std::uint8_t>(kWeirdRexmitOrig << direction),
                   "rexmit_inconsistency", [&] {
                       return std::string(side) +
                              " resent other bytes for data already taken, from sequence "
                              "number " +
                              std::to_string(*seq) + "; the first copy is inspected";
                   },
                   packet.ts_ns);
    }
    if (packet.ip_proto == kIpProtoUdp) {
        on_udp(flow, direction, packet);
    } else {
        on_tcp(flow, direction, packet);
    }
}

void Engine::finish() {
    defrag_.flush();
    flows_.flush_all();
}

void Engine::on_flow_start(const Flow& flow, const DecodedPacket& packet) {
    if (!intel_) return;
    // Zeek's names: the originator's address is seen IN_ORIG, the responder's IN_RESP.
    match_value(flow, 0, IntelType::kAddr, flow.orig.addr.to_string(), "Conn::IN_ORIG",
                packet.ts_ns, nullptr);
    match_value(flow, 0, IntelType::kAddr, flow.resp.addr.to_string(), "Conn::IN_RESP",
                packet.ts_ns, nullptr);
}

Engine::FlowState& Engine::state_of(Flow& flow) {
    if (flow.owner_state != nullptr) return *static_cast<FlowState*>(flow.owner_state);
    FlowState& state = states_[flow.id];  // a node map: the address stays valid
    state.flow = &flow;
    flow.owner_state = &state;
    // on_tcp() settles the packet's stream before it returns, so segments parsed at once
    // need no copy of their own. With a scanner every byte waits for its scan anyway:
    // borrowing would only move the copy (and the allocation's place in the heap).
    for (auto& stream : flow.stream) {
        if (stream) stream->set_borrowing(scanner_ == nullptr);
    }
    return state;
}

AnalyzerContext Engine::context(const Flow& flow, int direction, std::int64_t ts_ns) {
    current_flow_ = &flow;
    current_direction_ = direction;
    current_ts_ns_ = ts_ns;
    return AnalyzerContext{flow, direction, ts_ns, *this};
}

void Engine::detect(Flow& flow, FlowState& state, int direction, const DecodedPacket& packet) {
    if (state.analyzer || state.detect_attempts >= kMaxDetectAttempts) return;
    std::span<const std::uint8_t> first = packet.payload;
    if (flow.ip_proto == kIpProtoTcp && flow.stream[direction]) {
        first = flow.stream[direction]->data();  // in order, from the start of the stream
    }
    if (first.empty()) return;
    ++state.detect_attempts;
    if (const AnalyzerSpec* spec = detect_analyzer(flow.ip_proto, first, direction,
                                                   packet.src_port, packet.dst_port)) {
        state.analyzer = spec->create();
        flow.app_proto = spec->name;
        // The analyzer parses the whole connection, past the stream depth (which then bounds
        // what is held, and what a stream's YARA scan sees): a Modbus write or a PLC stop
        // after the first megabyte is seen, and a file is hashed to its end.
        for (auto& stream : flow.stream) {
            if (stream) stream->set_passing(true);
        }
    }
}

void Engine::on_udp(Flow& flow, int direction, const DecodedPacket& packet) {
    if (packet.payload.empty()) return;
    FlowState& state = state_of(flow);
    detect(flow, state, direction, packet);
    if (state.analyzer) {
        state.analyzer->data(context(flow, direction, packet.ts_ns), packet.payload);
        current_flow_ = nullptr;
    }
    scan_bytes(flow, direction, packet.payload, packet.ts_ns);
}

void Engine::deliver_stream(Flow& flow, FlowState& state, int direction, std::int64_t ts_ns) {
    const auto& stream = flow.stream[direction];
    if (!stream || !state.analyzer) return;
    const std::span<const std::uint8_t> all = stream->data();
    const std::uint64_t begin = stream->start();  // what was delivered may be discarded
    const std::uint64_t end = stream->size();
    const std::span<const StreamGap> gaps = stream->gaps();
    // The bytes up to each hole, the hole (Analyzer::gap), and so on to the end of the data.
    for (;;) {
        std::uint32_t& told = state.gaps_told[direction];
        const StreamGap* gap = told < gaps.size() ? &gaps[told] : nullptr;
        const std::uint64_t limit = gap ? gap->at : end;
        if (limit > state.delivered[direction]) {
            const auto fresh =
                all.subspan(static_cast<std::size_t>(state.delivered[direction] - begin),
                            static_cast<std::size_t>(limit - state.delivered[direction]));
            state.delivered[direction] = limit;
            state.analyzer->data(context(flow, direction, ts_ns), fresh);
            current_flow_ = nullptr;
        }
        if (!gap) break;
        ++told;
        state.analyzer->gap(context(flow, direction, ts_ns), gap->bytes);
        current_flow_ = nullptr;
    }
}

void Engine::on_tcp(Flow& flow, int direction, const DecodedPacket& packet) {
    FlowState& state = state_of(flow);
    if (!packet.payload.empty()) detect(flow, state, direction, packet);
    deliver_stream(flow, state, direction, packet.ts_ns);
    const auto& stream = flow.stream[direction];
    if (stream && !flow.scanned[direction] && stream->depth_reached()) {
        scan_stream(flow, direction);
    }
    if (stream) {
        trim_stream(flow, state, direction);
        flow.stream[direction]->settle();  // what the stream still needs becomes its own
    }
}

void Engine::trim_stream(Flow& flow, FlowState& state, int direction) {
    TcpStream& stream = *flow.stream[direction];
    if (!state.analyzer && state.detect_attempts < kMaxDetectAttempts) return;  // detecting
    // What the analyzer has had (everything, without one) is no longer needed for parsing.
    const std::uint64_t parsed = state.analyzer ? state.delivered[direction] : stream.size();
    if (!scanner_ || flow.scanned[direction]) stream.discard(parsed);
    stream.settle();
    const std::size_t held = stream.reserved();
    held_bytes_ = held_bytes_ - state.held[direction] + held;
    state.held[direction] = held;
    if (scanner_ && held_bytes_ > std::max(options_.stream_memory, shed_floor_)) {
        shed_stream_memory();
    }
}

void Engine::shed_stream_memory() {
    // Down to half the budget, so that this sweep is rare: each direction holding more than
    // the overlap is scanned now and keeps only its tail (and what the analyzer has not had).
    const std::size_t target = options_.stream_memory / 2;
    for (auto& [id, state] : states_) {
        if (held_bytes_ <= target) break;
        if (state.flow == nullptr) continue;
        Flow& flow = *state.flow;
        for (int dir = 0; dir < 2; ++dir) {
            if (!flow.stream[dir] || state.held[dir] <= kScanOverlap) continue;
            TcpStream& stream = *flow.stream[dir];
            const std::uint64_t parsed = state.analyzer ? state.delivered[dir] : stream.size();
            const std::uint64_t keep_from = std::min(parsed, stream.size() - kScanOverlap);
            if (keep_from <= stream.start()) continue;
            ++counters_.early_scans;
            scan_bytes(flow, dir, stream.data(), flow.last_ts_ns, stream.start());
            stream.discard(keep_from);
            const std::size_t held = stream.reserved();
            held_bytes_ = held_bytes_ - state.held[dir] + held;
            state.held[dir] = held;
        }
    }
    // Bytes no analyzer has had yet cannot go: when the sweep could not reach its target, the
    // next one waits for an eighth of the budget more, instead of sweeping every flow again
    // on every packet.
    shed_floor_ = held_bytes_ > target ? held_bytes_ + options_.stream_memory / 8 : 0;
}

void Engine::on_flow_end(Flow& flow) {
    auto it = states_.find(flow.id);
    if (flow.ip_proto == kIpProtoTcp) {
        for (int dir = 0; dir < 2; ++dir) {
            // The table flushed the streams' gaps: whatever waited behind a hole is delivered.
            if (it != states_.end()) deliver_stream(flow, it->second, dir, flow.last_ts_ns);
            if (flow.stream[dir] && !flow.scanned[dir]) scan_stream(flow, dir);
        }
    }
    if (it != states_.end()) {
        held_bytes_ -= it->second.held[0] + it->second.held[1];
        if (it->second.analyzer) {
            it->second.analyzer->end(context(flow, 0, flow.last_ts_ns));
            current_flow_ = nullptr;
        }
        states_.erase(it);
        flow.owner_state = nullptr;
    }
    end_files_of(flow);
    yara_fired_[0].erase(flow.id);
    yara_fired_[1].erase(flow.id);
}

void Engine::record(std::string_view log, const RecordFields& fields) {
    ++counters_.analyzer_records;
    if (!record_sink_ || current_flow_ == nullptr) return;
    write_record(log, fields.json());
}

void Engine::write_record(std::string_view log, std::string_view fields_json) {
    const Flow& flow = *current_flow_;
    // EVE layout, oriented originator -> responder as Zeek's id.* fields are. RapidJSON's
    // Writer writes the envelope straight into a reused buffer; the fields are already a
    // finished object (RecordFields), which the writer takes as a raw value.
    thread_local std::string out;
    thread_local StringOut out_stream{&out};
    thread_local rapidjson::Writer<StringOut> writer(out_stream);
    const auto key = [](std::string_view k) {
        writer.Key(k.data(), static_cast<rapidjson::SizeType>(k.size()));
    };
    const auto text = [](std::string_view value) {
        writer.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
    };
    out.clear();
    writer.Reset(out_stream);
    writer.StartObject();
    key("timestamp");
    text(common::format_timestamp(current_ts_ns_));
    key("flow_id");
    writer.Uint64(flow.id);
    key("event_type");
    text(log);
    key("src_ip");
    text(flow.orig.addr.to_string());
    key("src_port");
    writer.Uint(flow.orig.port);
    key("dest_ip");
    text(flow.resp.addr.to_string());
    key("dest_port");
    writer.Uint(flow.resp.port);
    key("proto");
    text(proto_name(flow.ip_proto));
    if (!flow.app_proto.empty()) {
        key("app_proto");
        text(flow.app_proto);
    }
    key(log);
    writer.RawValue(fields_json.data(), fields_json.size(), rapidjson::kObjectType);
    writer.EndObject();
    record_sink_(out);
}

void Engine::observe(IntelType type, std::string_view value, std::string_view where) {
    if (!intel_ || current_flow_ == nullptr) return;
    match_value(*current_flow_, current_direction_, type, value, where, current_ts_ns_, nullptr);
}

void Engine::match_value(const Flow& flow, int direction, IntelType type,
                         std::string_view value, std::string_view where, std::int64_t ts_ns,
                         const FileFacts* file) {
    if (!intel_ || value.empty()) return;
    // Every indicator the value matches, as Zeek's Intel::seen gathers them: an address is
    // also looked up in every listed subnet that holds it (the longest first).
    std::array<const Indicator*, 130> items;
    std::size_t n = 0;
    if (const Indicator* hit = intel_->find(type, value)) items[n++] = hit;
    if (type == IntelType::kAddr && intel_->count(IntelType::kSubnet) > 0) {
        std::array<const Indicator*, 129> subnets;
        const std::size_t k = intel_->find_subnets(value, subnets);
        for (std::size_t i = 0; i < k; ++i) items[n++] = subnets[i];
    }
    if (n == 0) return;
    // Any whitelisted one silences the observation (Zeek's whitelist.zeek).
    for (std::size_t i = 0; i < n; ++i) {
        if (is_whitelisted(*items[i])) {
            ++counters_.intel_whitelisted;
            return;
        }
    }
    // A URL is seen without its scheme, as Zeek's seen scripts strip it (a Referer has one).
    std::string_view seen = value;
    if (type == IntelType::kUrl) {
        const std::size_t scheme = seen.find("://");
        if (scheme != std::string_view::npos && scheme < 16) seen.remove_prefix(scheme + 3);
    }
    intel_hit(flow, direction, seen, type, std::span<const Indicator* const>(items.data(), n),
              where, ts_ns, file);
}

void Engine::weird(std::string_view name, std::string_view detail) {
    ++counters_.weirds;
    auto it = weirds_.find(name);
    if (it == weirds_.end()) it = weirds_.emplace(std::string(name), 0).first;
    ++it->second;
    if (!record_sink_) return;
    RecordFields fields;
    fields.set("name", name);
    fields.set("detail", detail);
    record("weird", fields);
}

template <typename Detail>
void Engine::flow_weird(Flow& flow, int direction, std::uint8_t kind, std::string_view name,
                        const Detail& detail, std::int64_t ts_ns) {
    FlowState& state = state_of(flow);
    if ((state.weirds_told & kind) != 0) return;
    state.weirds_told = static_cast<std::uint8_t>(state.weirds_told | kind);
    context(flow, direction, ts_ns);  // the record's flow and time
    weird(name, detail());
    current_flow_ = nullptr;
}

void Engine::scan_stream(Flow& flow, int direction) {
    flow.scanned[direction] = true;
    TcpStream& stream = *flow.stream[direction];
    stream.flush_gaps(gap_counters_);
    scan_bytes(flow, direction, stream.data(), flow.last_ts_ns, stream.start());
}

void Engine::scan_bytes(const Flow& flow, int direction, std::span<const std::uint8_t> bytes,
                        std::int64_t ts_ns, std::uint64_t offset,
                        const common::FileContext* file) {
    if (!scanner_ || bytes.empty()) return;
    ++counters_.yara_scans;
    const std::uint64_t skipped = scanner_->prefiltered();
    auto matches = scanner_->scan(bytes);
    counters_.yara_prefiltered += scanner_->prefiltered() - skipped;
    if (!matches) {
        ++counters_.yara_errors;
        return;
    }
    for (auto& m : *matches) {
        if (!first_yara_hit(flow, direction, m.rule)) continue;
        common::Alert alert = make_network_alert(flow, direction, ts_ns);
        alert.source = common::RuleSource::kYara;
        alert.rule = m.rule;
        const auto cat = m.meta.find("category");
        alert.category = cat != m.meta.end() ? cat->second : "YARA match";
        alert.severity = severity_from_meta(m.meta, 3);
        alert.pack_version = rules_->version();
        alert.matches = std::move(m.strings);
        for (auto& s : alert.matches) s.offset += offset;
        if (file != nullptr) alert.file = *file;
        emit(std::move(alert));
    }
}

void Engine::intel_hit(const Flow& flow, int direction, std::string_view seen, IntelType seen_type,
                       std::span<const Indicator* const> items, std::string_view where,
                       std::int64_t ts_ns, const FileFacts* file) {
    ++counters_.intel_hits;
    std::vector<std::string> sources;  // of every item, each once, in the items' order
    for (const Indicator* item : items) {
        for (std::string_view source : item->sources) {
            if (std::find(sources.begin(), sources.end(), source) == sources.end()) {
                sources.emplace_back(source);
            }
        }
    }
    write_intel_log(flow, seen, seen_type, items, sources, where, ts_ns, file);
    // The alert names the most specific item (the value itself, else the longest subnet) and
    // takes its category and severity.
    const Indicator& indicator = *items.front();
    common::Alert alert = make_network_alert(flow, direction, ts_ns);
    if (file && file->context) alert.file = *file->context;
    alert.source = common::RuleSource::kIntel;
    const std::string type(to_string(indicator.type));
    const std::string value(indicator.value);
    alert.rule = "Intel hit: " + value + " (" + type + ") at " + std::string(where);
    const auto cat = indicator.meta.find("meta.category");
    alert.category = cat != indicator.meta.end() ? std::string(cat->second) : "Known bad indicator";
    const auto sev = indicator.meta.find("meta.severity");
    alert.severity = sev != indicator.meta.end()
                         ? severity_from_meta({{"severity", std::string(sev->second)}}, 2)
                         : 2;
    alert.pack_version = "intel";
    alert.intel = common::IntelContext{value, type, std::string(where), std::move(sources)};
    emit(std::move(alert));
}

common::Alert Engine::make_network_alert(const Flow& flow, int direction,
                                         std::int64_t ts_ns) const {
    common::Alert alert;
    alert.id = common::new_uuid();
    alert.agent_id = options_.agent_id;
    alert.timestamp_ns = ts_ns;
    alert.kind = common::AlertKind::kNetwork;
    // As in Suricata's EVE, source and destination follow the direction of the data that
    // matched: a match in a server's response names the server as the source.
    const FlowEndpoint& src = direction == 0 ? flow.orig : flow.resp;
    const FlowEndpoint& dst = direction == 0 ? flow.resp : flow.orig;
    common::NetworkContext net;
    net.flow_id = flow.id;
    net.src_ip = src.addr.to_string();
    net.src_port = src.port;
    net.dest_ip = dst.addr.to_string();
    net.dest_port = dst.port;
    net.proto = proto_name(flow.ip_proto);
    net.app_proto = std::string(flow.app_proto);
    alert.network = std::move(net);
    return alert;
}

void Engine::emit(common::Alert&& alert) {
    ++counters_.alerts;
    if (sink_) sink_(std::move(alert));
}

}  // namespace senningen::agent
