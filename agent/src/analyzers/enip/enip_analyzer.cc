#include "analyzers/enip/enip_analyzer.h"

#include <string>
#include <vector>

#include "analyzers/pdu_stream.h"

namespace senningen::agent {

namespace {

using detail::Bytes;
using detail::le16;
using detail::le32;

constexpr std::size_t kHeader = 24;
constexpr std::size_t kMaxEncap = kHeader + 65535;
constexpr int kMaxNesting = 2;           // unconnected send / multiple service packet inside
constexpr std::size_t kMaxCipRecorded = 16;

const char* command_name(unsigned c) {
    switch (c) {
        case 0x0000: return "nop";
        case 0x0004: return "list_services";
        case 0x0063: return "list_identity";
        case 0x0064: return "list_interfaces";
        case 0x0065: return "register_session";
        case 0x0066: return "unregister_session";
        case 0x006f: return "send_rr_data";
        case 0x0070: return "send_unit_data";
        case 0x0072: return "indicate_status";
        case 0x0073: return "cancel";
        default: return nullptr;
    }
}

std::ptrdiff_t frame(Bytes b) {
    if (b.size() < 4) return detail::kNeedMore;
    if (!command_name(le16(b, 0))) return detail::kNotAPdu;
    return static_cast<std::ptrdiff_t>(kHeader + le16(b, 2));
}

std::string service_name(unsigned s, unsigned cls) {
    switch (s) {
        case 0x01: return "get_attributes_all";
        case 0x02: return "set_attributes_all";
        case 0x03: return "get_attribute_list";
        case 0x04: return "set_attribute_list";
        case 0x05: return "reset";
        case 0x06: return "start";
        case 0x07: return "stop";
        case 0x08: return "create";
        case 0x09: return "delete";
        case 0x0a: return "multiple_service_packet";
        case 0x0d: return "apply_attributes";
        case 0x0e: return "get_attribute_single";
        case 0x10: return "set_attribute_single";
        case 0x11: return "find_next_object_instance";
        case 0x15: return "restore";
        case 0x16: return "save";
        case 0x17: return "nop";
        case 0x18: return "get_member";
        case 0x19: return "set_member";
        default: break;
    }
    if (cls == 0x06) {  // the connection manager
        switch (s) {
            case 0x4e: return "forward_close";
            case 0x52: return "unconnected_send";
            case 0x54: return "forward_open";
            case 0x5b: return "large_forward_open";
            default: break;
        }
    } else {  // Logix symbolic access, the most common class-specific services
        switch (s) {
            case 0x4c: return "read_tag";
            case 0x4d: return "write_tag";
            case 0x4e: return "read_modify_write_tag";
            case 0x52: return "read_tag_fragmented";
            case 0x53: return "write_tag_fragmented";
            case 0x55: return "get_instance_attribute_list";
            default: break;
        }
    }
    return "service_" + detail::hex_byte(s);
}

std::string action_of(const std::string& service) {
    if (service == "stop" || service == "start" || service == "reset" || service == "create" ||
        service == "delete" || service == "restore" || service == "forward_open" ||
        service == "large_forward_open" || service == "forward_close") {
        return service;
    }
    if (service.rfind("set_", 0) == 0 || service.rfind("write_", 0) == 0 ||
        service == "read_modify_write_tag" || service == "apply_attributes") {
        return "write";
    }
    if (service.rfind("get_", 0) == 0 || service.rfind("read_", 0) == 0) return "read";
    return "";
}

struct CipPath {
    int cls = -1;
    int instance = -1;
    int attribute = -1;
    std::string tag;
};

// EPATH logical and symbolic segments; anything else ends the walk (the rest is not needed).
void parse_path(Bytes p, CipPath& out) {
    std::size_t at = 0;
    while (at < p.size()) {
        const unsigned seg = p[at];
        auto value = [&](std::size_t width, int& v) {
            const std::size_t off = width == 1 ? 1 : 2;  // 16-bit values follow a pad byte
            if (p.size() - at < off + width) return false;
            v = width == 1 ? p[at + 1] : le16(p, at + 2);
            at += off + width;
            return true;
        };
        bool ok = true;
        switch (seg) {
            case 0x20: ok = value(1, out.cls); break;
            case 0x21: ok = value(2, out.cls); break;
            case 0x24: ok = value(1, out.instance); break;
            case 0x25: ok = value(2, out.instance); break;
            case 0x30: ok = value(1, out.attribute); break;
            case 0x31: ok = value(2, out.attribute); break;
            case 0x91: {
                if (p.size() - at < 2) return;
                const std::size_t n = p[at + 1];
                if (p.size() - at < 2 + n) return;
                if (!out.tag.empty()) out.tag += '.';
                for (std::size_t i = 0; i < n; ++i) {
                    const std::uint8_t c = p[at + 2 + i];
                    out.tag += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '.';
                }
                at += 2 + n + (n & 1);
                break;
            }
            default: return;
        }
        if (!ok) return;
    }
}

class EnipAnalyzer final : public Analyzer {
public:
    void data(const AnalyzerContext& ctx, Bytes bytes) override {
        auto handle = [&](Bytes e) { on_encap(ctx, e); };
        if (ctx.flow.ip_proto == kIpProtoUdp) {
            detail::PduStream once(kMaxEncap);
            if (!once.feed(bytes, frame, handle) || once.buffered() != 0) {
                ctx.host.weird("enip_bad_datagram",
                               "UDP datagram is not a sequence of whole encapsulation packets");
            }
            return;
        }
        const int dir = ctx.direction & 1;
        if (streams_[dir].broken()) return;
        if (!streams_[dir].feed(bytes, frame, handle)) {
            ctx.host.weird("enip_unknown_command", "encapsulation header with an unknown "
                                                   "command: the direction is no longer inspected");
        }
    }

    void gap(const AnalyzerContext& ctx, std::uint64_t /*bytes*/) override {
        streams_[ctx.direction & 1].resync();
        ctx.host.weird("enip_gap", "hole in the TCP stream: framing restarts after it");
    }

private:
    // One CIP message of the record's "cip" list. The list follows "malformed", which is
    // known only once every item is walked: the items wait here, the record is written after.
    struct CipItem {
        bool response = false;
        unsigned service = 0;
        int general_status = 0;  // responses
        std::string service_name;  // requests, and the path below
        CipPath path;
    };
    struct Pending {
        std::vector<CipItem> cip;
        std::size_t recorded = 0;
    };

    void on_encap(const AnalyzerContext& ctx, Bytes e) {
        const unsigned command = le16(e, 0);
        const std::uint32_t session = le32(e, 4);
        const std::uint32_t status = le32(e, 8);
        RecordFields rec;
        rec.set("command", command_name(command));
        rec.set("session", detail::hex32(session));
        rec.set("status", static_cast<std::uint64_t>(status));
        rec.set("length", static_cast<int>(e.size() - kHeader));
        if (command == 0x6f || command == 0x70) {
            Pending pending;
            if (!walk_items(ctx, e.subspan(kHeader), command == 0x70, pending)) {
                rec.set("malformed", true);
                ctx.host.weird("enip_bad_items", "common packet format items run past the "
                                                 "encapsulation length");
            }
            if (!pending.cip.empty()) write_cip(rec, pending.cip);
        } else if (ctx.direction == 0 && (command == 0x63 || command == 0x04 || command == 0x64)) {
            // Discovery requests: the first step of most ICS reconnaissance.
            ctx.host.event(ProtocolEvent{"enip", command_name(command),
                                         {{"command", command_name(command)}}});
        }
        ctx.host.record("enip", rec);
    }

    bool walk_items(const AnalyzerContext& ctx, Bytes d, bool connected, Pending& pending) {
        if (d.size() < 8) return false;
        const unsigned count = le16(d, 6);
        std::size_t at = 8;
        for (unsigned i = 0; i < count; ++i) {
            if (d.size() - at < 4) return false;
            const unsigned type = le16(d, at);
            const std::size_t len = le16(d, at + 2);
            at += 4;
            if (d.size() - at < len) return false;
            Bytes item = d.subspan(at, len);
            at += len;
            if (type == 0x00b1 && connected && item.size() >= 2) item = item.subspan(2);
            if (type == 0x00b2 || type == 0x00b1) on_cip(ctx, item, pending, 0);
        }
        return true;
    }

    void on_cip(const AnalyzerContext& ctx, Bytes m, Pending& pending, int depth) {
        if (m.size() < 2) {
            ctx.host.weird("cip_short_message", "CIP message under 2 bytes");
            return;
        }
        const unsigned service = m[0] & 0x7f;
        const bool response = m[0] & 0x80;
        CipItem item;
        item.service = service;
        if (response) {
            if (m.size() < 4) {
                ctx.host.weird("cip_short_message", "CIP response without its status");
                return;
            }
            item.response = true;
            item.general_status = m[2];
            add(pending, std::move(item));
            return;
        }
        const std::size_t path_len = 2u * m[1];
        if (m.size() < 2 + path_len) {
            ctx.host.weird("cip_bad_path", "CIP request path runs past the message");
            return;
        }
        CipPath path;
        parse_path(m.subspan(2, path_len), path);
        const Bytes body = m.subspan(2 + path_len);
        const std::string name = service_name(service, static_cast<unsigned>(path.cls));
        item.service_name = name;
        item.path = path;
        add(pending, std::move(item));

        const std::string action = action_of(name);
        if (!action.empty()) {
            ProtocolEvent ev{"enip", action, {{"service", detail::hex_byte(service)},
                                              {"service_name", name}}};
            if (path.cls >= 0) ev.facts["class"] = detail::hex_byte(static_cast<unsigned>(path.cls));
            if (path.instance >= 0) ev.facts["instance"] = std::to_string(path.instance);
            if (!path.tag.empty()) ev.facts["tag"] = path.tag;
            ctx.host.event(ev);
        }
        if (depth >= kMaxNesting) return;
        if (name == "unconnected_send" && body.size() >= 4) {
            const std::size_t n = le16(body, 2);
            if (body.size() - 4 >= n) on_cip(ctx, body.subspan(4, n), pending, depth + 1);
        } else if (service == 0x0a && body.size() >= 2) {
            const unsigned count = le16(body, 0);
            if (body.size() < 2 + 2u * count) return;
            for (unsigned i = 0; i < count && i < kMaxCipRecorded; ++i) {
                const std::size_t start = le16(body, 2 + 2 * i);
                const std::size_t end = i + 1 < count ? le16(body, 4 + 2 * i) : body.size();
                if (start >= end || end > body.size()) {
                    ctx.host.weird("cip_bad_multiple_service", "service offset outside the packet");
                    return;
                }
                on_cip(ctx, body.subspan(start, end - start), pending, depth + 1);
            }
        }
    }

    static void add(Pending& pending, CipItem&& item) {
        if (pending.recorded++ < kMaxCipRecorded) pending.cip.push_back(std::move(item));
    }

    static void write_cip(RecordFields& rec, const std::vector<CipItem>& items) {
        rec.begin_array("cip");
        for (const CipItem& item : items) {
            rec.begin_object();
            if (item.response) {
                rec.set("response", true);
                rec.set("service", detail::hex_byte(item.service));
                rec.set("general_status", item.general_status);
            } else {
                rec.set("service", detail::hex_byte(item.service));
                rec.set("service_name", item.service_name);
                if (item.path.cls >= 0) rec.set("class", item.path.cls);
                if (item.path.instance >= 0) rec.set("instance", item.path.instance);
                if (item.path.attribute >= 0) rec.set("attribute", item.path.attribute);
                if (!item.path.tag.empty()) rec.set("tag", item.path.tag);
            }
            rec.end_object();
        }
        rec.end_array();
    }

    detail::PduStream streams_[2] = {detail::PduStream(kMaxEncap), detail::PduStream(kMaxEncap)};
};

}  // namespace

// An encapsulation header with a known command, options 0, a length that fits the first
// payload, and (from the originator) status 0.
bool enip_detect(std::span<const std::uint8_t> first, int direction, std::uint16_t /*src_port*/,
                 std::uint16_t /*dst_port*/) {
    if (first.size() < kHeader || !command_name(le16(first, 0))) return false;
    if (le32(first, 20) != 0) return false;
    if (kHeader + le16(first, 2) > first.size()) return false;
    if (direction == 0 && le32(first, 8) != 0) return false;
    const unsigned command = le16(first, 0);
    // RegisterSession carries protocol version 1 and options 0.
    if (command == 0x65) return le16(first, 2) == 4 && first.size() >= 28 && le16(first, 24) == 1;
    return command != 0;  // a NOP alone says too little
}

std::unique_ptr<Analyzer> make_enip_analyzer() { return std::make_unique<EnipAnalyzer>(); }

}  // namespace senningen::agent
