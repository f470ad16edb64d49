#include "analyzers/dnp3/dnp3_analyzer.h"

#include <array>
#include <vector>


#include "analyzers/pdu_stream.h"

namespace senningen::agent {

namespace {

using detail::Bytes;
using detail::le16;

constexpr std::size_t kLinkHeader = 10;         // start, length, control, dest, src, CRC
constexpr std::size_t kMaxFrame = 292;          // length 255: 250 data bytes in 16 CRC blocks
constexpr std::size_t kMaxFragment = 4096;      // larger than any device's fragment size
constexpr std::size_t kMaxObjectsRecorded = 16;

// The DNP3 CRC: polynomial 0x3D65, bit-reversed (0xA6BC), initial 0, complemented, sent
// low byte first.
constexpr std::array<std::uint16_t, 256> make_crc_table() {
    std::array<std::uint16_t, 256> t{};
    for (unsigned i = 0; i < 256; ++i) {
        unsigned crc = i;
        for (int bit = 0; bit < 8; ++bit) crc = (crc & 1) ? (crc >> 1) ^ 0xA6BC : crc >> 1;
        t[i] = static_cast<std::uint16_t>(crc);
    }
    return t;
}
constexpr auto kCrcTable = make_crc_table();

bool crc_ok(Bytes block_and_crc) {
    const std::size_t n = block_and_crc.size() - 2;
    unsigned crc = 0;
    for (std::size_t i = 0; i < n; ++i) crc = (crc >> 8) ^ kCrcTable[(crc ^ block_and_crc[i]) & 0xff];
    crc = ~crc & 0xffff;
    return le16(block_and_crc, n) == crc;
}

std::size_t frame_size(unsigned length_field) {
    const std::size_t user = length_field - 5;
    return kLinkHeader + user + 2 * ((user + 15) / 16);
}

std::ptrdiff_t frame(Bytes b) {
    if (b.size() < 3) return detail::kNeedMore;
    if (b[0] != 0x05 || b[1] != 0x64 || b[2] < 5) return detail::kNotAPdu;
    return static_cast<std::ptrdiff_t>(frame_size(b[2]));
}

const char* function_name(unsigned fc) {
    static constexpr const char* kNames[] = {
        "confirm", "read", "write", "select", "operate", "direct_operate", "direct_operate_nr",
        "immediate_freeze", "immediate_freeze_nr", "freeze_clear", "freeze_clear_nr",
        "freeze_at_time", "freeze_at_time_nr", "cold_restart", "warm_restart",
        "initialize_data", "initialize_application", "start_application", "stop_application",
        "save_configuration", "enable_unsolicited", "disable_unsolicited", "assign_class",
        "delay_measure", "record_current_time", "open_file", "close_file", "delete_file",
        "get_file_info", "authenticate_file", "abort_file", "activate_config",
        "authenticate_req", "authenticate_req_no_ack"};
    if (fc < std::size(kNames)) return kNames[fc];
    switch (fc) {
        case 129: return "response";
        case 130: return "unsolicited_response";
        case 131: return "authenticate_resp";
        default: return "unknown";
    }
}

// Bytes per point of the objects this analyzer walks past; 0 for packed bits (one bit per
// point), -1 when unknown (the walk stops there; only the headers before it are reported).
int object_size(unsigned group, unsigned variation) {
    const unsigned gv = group << 8 | variation;
    switch (gv) {
        case 0x0101: case 0x0A01: case 0x5001: case 0x0C03: return 0;
        case 0x0102: case 0x0201: case 0x0A02: case 0x0401: case 0x0B01: return 1;
        case 0x0203: case 0x0402: return 3;
        case 0x0202: case 0x0B02: case 0x0D02: return 7;
        case 0x0C01: case 0x0C02: return 11;
        case 0x1401: case 0x1501: case 0x1601: case 0x1701: case 0x1E01: case 0x2001:
        case 0x2801: case 0x2803: case 0x2901: case 0x2903: case 0x1E05: case 0x2005:
            return 5;
        case 0x1402: case 0x1502: case 0x1602: case 0x1702: case 0x1E02: case 0x2002:
        case 0x2802: case 0x2902: return 3;
        case 0x1405: case 0x1505: case 0x1E03: return 4;
        case 0x1406: case 0x1506: case 0x1E04: case 0x3401: case 0x3402: case 0x2201: return 2;
        case 0x1E06: case 0x2006: case 0x2804: case 0x2904: return 9;
        case 0x2003: case 0x2007: return 11;
        case 0x2004: return 9;
        case 0x2008: return 15;
        case 0x3201: case 0x3203: case 0x3301: case 0x3302: return 6;
        case 0x2202: case 0x2203: return 4;
        default: return -1;
    }
}

// Does function FC carry object data in a request (or is every header bare, as in a READ)?
bool request_has_data(unsigned fc) {
    return (fc >= 2 && fc <= 6) || fc == 11 || fc == 12 || fc == 24 || (fc >= 25 && fc <= 33);
}

struct ObjectHeader {
    unsigned group = 0;
    unsigned variation = 0;
    unsigned qualifier = 0;
    std::uint64_t count = 0;
    bool ranged = false;
    std::uint32_t start = 0;
    std::uint32_t stop = 0;
};

enum class WalkStatus { kDone, kUnknownObject, kMalformed };

// Walks the object headers of an application fragment's body.
WalkStatus walk_objects(Bytes b, bool headers_only, std::vector<ObjectHeader>& out) {
    std::size_t at = 0;
    auto uint_at = [&](std::size_t width, std::uint32_t& v) {
        if (b.size() - at < width) return false;
        v = 0;
        for (std::size_t i = 0; i < width; ++i) v |= static_cast<std::uint32_t>(b[at + i]) << (8 * i);
        at += width;
        return true;
    };
    while (at < b.size()) {
        if (b.size() - at < 3) return WalkStatus::kMalformed;
        ObjectHeader h;
        h.group = b[at];
        h.variation = b[at + 1];
        h.qualifier = b[at + 2];
        at += 3;
        const unsigned prefix = (h.qualifier >> 4) & 7;
        const unsigned range = h.qualifier & 0xf;
        std::uint32_t a = 0;
        std::uint32_t z = 0;
        switch (range) {
            case 0: case 1: case 2: case 3: case 4: case 5: {
                const std::size_t w = (range % 3) == 0 ? 1 : (range % 3) == 1 ? 2 : 4;
                if (!uint_at(w, a) || !uint_at(w, z) || z < a) return WalkStatus::kMalformed;
                h.ranged = true;
                h.start = a;
                h.stop = z;
                h.count = static_cast<std::uint64_t>(z) - a + 1;
                break;
            }
            case 6: h.count = 0; break;
            case 7: case 8: case 9: case 0xB: {
                const std::size_t w = range == 8 ? 2 : range == 9 ? 4 : 1;
                if (!uint_at(w, a)) return WalkStatus::kMalformed;
                h.count = a;
                break;
            }
            default: return WalkStatus::kMalformed;
        }
        out.push_back(h);
        if (headers_only || range == 6) continue;
        // Object data: an optional prefix (index or size) before each point.
        const std::size_t prefix_width = prefix == 0 ? 0 : prefix <= 3 ? (1u << (prefix - 1))
                                         : prefix <= 6 ? (1u << (prefix - 4)) : 99;
        if (prefix_width == 99) return WalkStatus::kMalformed;
        const int size = object_size(h.group, h.variation);
        if (prefix >= 4) {  // each point says its own size
            for (std::uint64_t i = 0; i < h.count; ++i) {
                std::uint32_t len = 0;
                if (!uint_at(prefix_width, len) || b.size() - at < len) {
                    return WalkStatus::kMalformed;
                }
                at += len;
            }
            continue;
        }
        if (size < 0) return WalkStatus::kUnknownObject;
        if (size == 0) {
            if (prefix != 0) return WalkStatus::kUnknownObject;
            const std::uint64_t bytes = (h.count + 7) / 8;
            if (b.size() - at < bytes) return WalkStatus::kMalformed;
            at += static_cast<std::size_t>(bytes);
            continue;
        }
        const std::uint64_t each = prefix_width + static_cast<std::uint64_t>(size);
        if (h.count > (b.size() - at) / each) return WalkStatus::kMalformed;
        at += static_cast<std::size_t>(h.count * each);
    }
    return WalkStatus::kDone;
}

class Dnp3Analyzer final : public Analyzer {
public:
    void data(const AnalyzerContext& ctx, Bytes bytes) override {
        const int dir = ctx.direction & 1;
        auto handle = [&](Bytes f) { on_frame(ctx, f); };
        if (ctx.flow.ip_proto == kIpProtoUdp) {
            // Each datagram holds whole frames; nothing is carried to the next one.
            detail::PduStream once(kMaxFrame);
            if (!once.feed(bytes, frame, handle) || once.buffered() != 0) {
                ctx.host.weird("dnp3_bad_datagram", "UDP datagram is not a sequence of whole "
                                                    "DNP3 link frames");
            }
            return;
        }
        if (streams_[dir].broken()) return;
        if (!streams_[dir].feed(bytes, frame, handle)) {
            ctx.host.weird("dnp3_lost_framing", "bytes that do not start a DNP3 link frame "
                                                "(0x0564): the direction is no longer inspected");
        }
    }

    void gap(const AnalyzerContext& ctx, std::uint64_t /*bytes*/) override {
        const int dir = ctx.direction & 1;
        streams_[dir].resync();
        fragment_[dir].clear();  // an application fragment cut by the hole is not completed
        ctx.host.weird("dnp3_gap", "hole in the TCP stream: framing restarts after it");
    }

private:
    void on_frame(const AnalyzerContext& ctx, Bytes f) {
        const int dir = ctx.direction & 1;
        if (!crc_ok(f.first(kLinkHeader))) {
            ctx.host.weird("dnp3_header_crc", "DNP3 link header CRC does not match");
            return;
        }
        const unsigned control = f[3];
        const unsigned dest = le16(f, 4);
        const unsigned src = le16(f, 6);
        // User data: blocks of 16 bytes, each followed by its CRC.
        std::array<std::uint8_t, 250> user{};
        std::size_t user_len = 0;
        for (std::size_t at = kLinkHeader; at < f.size();) {
            const std::size_t block = std::min<std::size_t>(16, f.size() - at - 2);
            if (!crc_ok(f.subspan(at, block + 2))) {
                ctx.host.weird("dnp3_data_crc", "DNP3 user data block CRC does not match");
                return;
            }
            std::copy_n(f.begin() + static_cast<std::ptrdiff_t>(at), block, user.begin() + static_cast<std::ptrdiff_t>(user_len));
            user_len += block;
            at += block + 2;
        }
        const bool primary = control & 0x40;
        const unsigned link_fn = control & 0x0f;
        if (user_len == 0) {
            RecordFields rec;
            rec.set("direction", dir == 0 ? "request" : "response");
            rec.set("source", static_cast<int>(src));
            rec.set("destination", static_cast<int>(dest));
            rec.set("link_primary", primary);
            rec.set("link_function", static_cast<int>(link_fn));
            ctx.host.record("dnp3", rec);
            return;
        }
        // Transport segment: FIN, FIR and a 6-bit sequence number, then application bytes.
        const unsigned th = user[0];
        const bool fir = th & 0x40;
        const bool fin = th & 0x80;
        const unsigned seq = th & 0x3f;
        auto& frag = fragment_[dir];
        if (fir) {
            frag.clear();
        } else if (frag.empty() || ((next_seq_[dir]) & 0x3f) != seq) {
            ctx.host.weird("dnp3_transport_sequence",
                           "DNP3 transport segment out of sequence or without a first segment");
            frag.clear();
            return;
        }
        next_seq_[dir] = seq + 1;
        if (frag.size() + user_len - 1 > kMaxFragment) {
            ctx.host.weird("dnp3_fragment_too_large", "DNP3 application fragment over 4096 bytes");
            frag.clear();
            return;
        }
        frag.insert(frag.end(), user.begin() + 1, user.begin() + static_cast<std::ptrdiff_t>(user_len));
        if (!fin) return;
        on_fragment(ctx, Bytes(frag), src, dest, primary, link_fn);
        frag.clear();
    }

    // The link layer's facts are those of the frame that completed the fragment.
    void on_fragment(const AnalyzerContext& ctx, Bytes app, unsigned src, unsigned dest,
                     bool link_primary, unsigned link_fn) {
        if (app.size() < 2) {
            ctx.host.weird("dnp3_short_fragment", "DNP3 application fragment under 2 bytes");
            return;
        }
        const unsigned ac = app[0];
        const unsigned fc = app[1];
        const bool response = fc >= 129;
        RecordFields rec;
        rec.set("direction", response ? "response" : "request");
        rec.set("source", static_cast<int>(src));
        rec.set("destination", static_cast<int>(dest));
        rec.set("link_primary", link_primary);
        rec.set("link_function", static_cast<int>(link_fn));
        rec.set("function", static_cast<int>(fc));
        rec.set("function_name", function_name(fc));
        rec.set("application_sequence", static_cast<int>(ac & 0x0f));
        if (ac & 0x10) rec.set("unsolicited", true);
        std::size_t body = 2;
        if (response) {
            if (app.size() < 4) {
                ctx.host.weird("dnp3_short_fragment", "DNP3 response without its IIN bytes");
                return;
            }
            rec.set("iin", static_cast<int>(app[2] << 8 | app[3]));
            body = 4;
        }
        std::vector<ObjectHeader> objects;
        const bool headers_only = !response && !request_has_data(fc);
        const WalkStatus status = walk_objects(app.subspan(body), headers_only, objects);
        rec.begin_array("objects");
        std::string groups;
        for (std::size_t i = 0; i < objects.size() && i < kMaxObjectsRecorded; ++i) {
            const ObjectHeader& h = objects[i];
            rec.begin_object();
            rec.set("group", static_cast<int>(h.group));
            rec.set("variation", static_cast<int>(h.variation));
            rec.set("qualifier", detail::hex_byte(h.qualifier));
            if (h.ranged) {
                rec.set("start", static_cast<std::uint64_t>(h.start));
                rec.set("stop", static_cast<std::uint64_t>(h.stop));
            } else if ((h.qualifier & 0xf) != 6) {
                rec.set("count", h.count);
            }
            rec.end_object();
            if (!groups.empty()) groups += ',';
            groups += 'g' + std::to_string(h.group) + 'v' + std::to_string(h.variation);
        }
        rec.end_array();
        if (status == WalkStatus::kUnknownObject) rec.set("objects_incomplete", true);
        if (status == WalkStatus::kMalformed) {
            rec.set("malformed", true);
            ctx.host.weird("dnp3_malformed_objects", "DNP3 object header or data runs past the "
                                                     "end of the fragment");
        }
        ctx.host.record("dnp3", rec);
        if (response) return;
        ProtocolEvent ev{"dnp3", function_name(fc), {}};
        ev.facts = {{"function", std::to_string(fc)},
                    {"function_name", function_name(fc)},
                    {"source", std::to_string(src)},
                    {"destination", std::to_string(dest)}};
        if (!groups.empty()) ev.facts["objects"] = groups;
        ctx.host.event(ev);
    }

    detail::PduStream streams_[2] = {detail::PduStream(kMaxFrame), detail::PduStream(kMaxFrame)};
    std::vector<std::uint8_t> fragment_[2];
    unsigned next_seq_[2] = {0, 0};
};

}  // namespace

// A link header (0x05 0x64, a length of at least 5) whose CRC is right: 16 bits of checksum
// make this a strong test wherever the port says otherwise.
bool dnp3_detect(std::span<const std::uint8_t> first, int /*direction*/,
                 std::uint16_t /*src_port*/, std::uint16_t /*dst_port*/) {
    return first.size() >= kLinkHeader && first[0] == 0x05 && first[1] == 0x64 &&
           first[2] >= 5 && crc_ok(first.first(kLinkHeader));
}

std::unique_ptr<Analyzer> make_dnp3_analyzer() { return std::make_unique<Dnp3Analyzer>(); }

}  // namespace senningen::agent
