#include "analyzers/s7comm/s7comm_analyzer.h"

#include <string>

#include "analyzers/pdu_stream.h"

namespace senningen::agent {

namespace {

using detail::be16;
using detail::Bytes;

constexpr std::size_t kMaxTpkt = 65535;
constexpr std::size_t kMaxS7Pdu = 8192;  // COTP DT fragments of one S7 PDU, joined
constexpr std::uint8_t kS7 = 0x32;
constexpr std::uint8_t kS7Plus = 0x72;

std::ptrdiff_t frame(Bytes b) {
    if (b.size() < 4) return detail::kNeedMore;
    if (b[0] != 3 || b[1] != 0) return detail::kNotAPdu;
    const unsigned len = be16(b, 2);
    if (len < 7) return detail::kNotAPdu;
    return static_cast<std::ptrdiff_t>(len);
}

const char* rosctr_name(unsigned r) {
    switch (r) {
        case 1: return "job";
        case 2: return "ack";
        case 3: return "ack_data";
        case 7: return "userdata";
        default: return "unknown";
    }
}

const char* function_name(unsigned fc) {
    switch (fc) {
        case 0x00: return "cpu_services";
        case 0x04: return "read_var";
        case 0x05: return "write_var";
        case 0x1a: return "request_download";
        case 0x1b: return "download_block";
        case 0x1c: return "download_ended";
        case 0x1d: return "start_upload";
        case 0x1e: return "upload";
        case 0x1f: return "end_upload";
        case 0x28: return "pi_service";
        case 0x29: return "plc_stop";
        case 0xf0: return "setup_communication";
        default: return "unknown";
    }
}

const char* userdata_group(unsigned g) {
    switch (g) {
        case 1: return "mode_transition";
        case 2: return "cyclic_data";
        case 3: return "block";
        case 4: return "cpu";
        case 5: return "security";
        case 6: return "programmer";
        case 7: return "time";
        default: return "unknown";
    }
}

const char* area_name(unsigned a) {
    switch (a) {
        case 0x81: return "inputs";
        case 0x82: return "outputs";
        case 0x83: return "flags";
        case 0x84: return "db";
        case 0x85: return "instance_db";
        case 0x1c: return "counter";
        case 0x1d: return "timer";
        default: return "other";
    }
}

// "_0800001P" -> "OB1": the file name S7 uses for blocks in up/download.
std::string block_name(std::string_view file) {
    if (file.size() < 8 || file[0] != '_') return "";
    const std::string_view type = file.substr(1, 2);
    const char* name = type == "08" ? "OB" : type == "0A" ? "DB" : type == "0B" ? "SDB"
                     : type == "0C" ? "FC" : type == "0D" ? "SFC" : type == "0E" ? "FB"
                     : type == "0F" ? "SFB" : nullptr;
    if (!name) return "";
    std::string number(file.substr(3, 5));
    while (number.size() > 1 && number[0] == '0') number.erase(0, 1);
    for (char c : number) {
        if (c < '0' || c > '9') return "";
    }
    return name + number;
}

std::string printable(Bytes b) {
    std::string s;
    for (std::uint8_t c : b) s += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '.';
    return s;
}

class S7Analyzer final : public Analyzer {
public:
    void data(const AnalyzerContext& ctx, Bytes bytes) override {
        const int dir = ctx.direction & 1;
        if (streams_[dir].broken()) return;
        if (!streams_[dir].feed(bytes, frame, [&](Bytes t) { on_tpkt(ctx, t); })) {
            ctx.host.weird("s7_bad_tpkt", "bytes that are not a TPKT header (version 3): the "
                                          "direction is no longer inspected");
        }
    }

    void gap(const AnalyzerContext& ctx, std::uint64_t /*bytes*/) override {
        const int dir = ctx.direction & 1;
        streams_[dir].resync();
        pdu_[dir].clear();  // a COTP-fragmented PDU cut by the hole is not completed
        ctx.host.weird("s7_gap", "hole in the TCP stream: framing restarts after it");
    }

private:
    void on_tpkt(const AnalyzerContext& ctx, Bytes t) {
        const int dir = ctx.direction & 1;
        const unsigned li = t[4];
        if (li < 1 || 5u + li > t.size()) {
            ctx.host.weird("cotp_bad_length", "COTP header length runs past the TPKT");
            return;
        }
        const unsigned type = t[5] & 0xf0;
        if (type != 0xf0) return;  // CR, CC, DR, ...: connection set-up, nothing to judge
        if (li < 2) {
            ctx.host.weird("cotp_bad_length", "COTP data TPDU without its EOT byte");
            return;
        }
        const bool eot = t[6] & 0x80;
        const Bytes payload = t.subspan(5 + li);
        auto& pdu = pdu_[dir];
        if (!eot || !pdu.empty()) {
            if (pdu.size() + payload.size() > kMaxS7Pdu) {
                ctx.host.weird("s7_pdu_too_large", "S7 PDU over 8192 bytes across COTP data");
                pdu.clear();
                return;
            }
            pdu.insert(pdu.end(), payload.begin(), payload.end());
            if (!eot) return;
            on_s7(ctx, Bytes(pdu));
            pdu.clear();
            return;
        }
        on_s7(ctx, payload);
    }

    void on_s7(const AnalyzerContext& ctx, Bytes p) {
        if (p.empty()) return;
        if (p[0] == kS7Plus) {
            on_s7_plus(ctx, p);
            return;
        }
        if (p[0] != kS7) {
            ctx.host.weird("s7_unknown_protocol", "COTP data that is neither S7comm nor S7comm-plus");
            return;
        }
        if (p.size() < 10) {
            ctx.host.weird("s7_short_header", "S7comm header under 10 bytes");
            return;
        }
        const unsigned rosctr = p[1];
        const unsigned header = (rosctr == 2 || rosctr == 3) ? 12 : 10;
        const unsigned plen = be16(p, 6);
        const unsigned dlen = be16(p, 8);
        if (p.size() < header || p.size() < header + plen + dlen) {
            ctx.host.weird("s7_bad_length", "S7comm parameter and data lengths run past the PDU");
            return;
        }
        const Bytes param = p.subspan(header, plen);
        RecordFields rec;
        rec.set("rosctr", rosctr_name(rosctr));
        rec.set("pdu_ref", static_cast<int>(be16(p, 4)));
        if (header == 12 && (p[10] || p[11])) {
            rec.set("error_class", static_cast<int>(p[10]));
            rec.set("error_code", static_cast<int>(p[11]));
        }
        ProtocolEvent ev{"s7comm", "", {}};
        if (rosctr == 7) {
            describe_userdata(param, rec, ev);
        } else if (!param.empty()) {
            const unsigned fc = param[0];
            rec.set("function", detail::hex_byte(fc));
            rec.set("function_name", function_name(fc));
            if (rosctr == 1) ev.action = describe_job(fc, param, rec, ev);
        }
        ctx.host.record("s7comm", rec);
        if (!ev.action.empty()) {
            ev.facts["rosctr"] = rosctr_name(rosctr);
            ctx.host.event(ev);
        }
    }

    static std::string describe_job(unsigned fc, Bytes param, RecordFields& rec,
                                    ProtocolEvent& ev) {
        ev.facts["function"] = detail::hex_byte(fc);
        ev.facts["function_name"] = function_name(fc);
        switch (fc) {
            case 0x04:
            case 0x05: {
                if (param.size() < 2) return fc == 4 ? "read" : "write";
                rec.set("item_count", static_cast<int>(param[1]));
                ev.facts["item_count"] = std::to_string(param[1]);
                // The first item in S7ANY form names the area, block and address.
                if (param.size() >= 14 && param[2] == 0x12 && param[4] == 0x10) {
                    const unsigned area = param[10];
                    rec.set("area", area_name(area));
                    ev.facts["area"] = area_name(area);
                    if (area == 0x84) {
                        rec.set("db", static_cast<int>(be16(param, 8)));
                        ev.facts["db"] = std::to_string(be16(param, 8));
                    }
                    const unsigned bit_address = (param[11] << 16) | (param[12] << 8) | param[13];
                    rec.set("address", static_cast<int>(bit_address >> 3));
                    ev.facts["address"] = std::to_string(bit_address >> 3);
                }
                return fc == 4 ? "read" : "write";
            }
            case 0x1a: case 0x1b: case 0x1c: case 0x1d: case 0x1e: case 0x1f: {
                if (param.size() > 9 && param.size() >= 9u + param[8]) {
                    const std::string file = printable(param.subspan(9, param[8]));
                    rec.set("filename", file);
                    const std::string block = block_name(file);
                    if (!block.empty()) {
                        rec.set("block", block);
                        ev.facts["block"] = block;
                    }
                }
                return function_name(fc);
            }
            case 0x28: {
                // function, 7 bytes, parameter block length, parameter block, name length, name
                std::string service;
                if (param.size() >= 10) {
                    const std::size_t block_len = be16(param, 8);
                    const std::size_t at = 10 + block_len;
                    if (param.size() > at && param.size() >= at + 1 + param[at]) {
                        service = printable(param.subspan(at + 1, param[at]));
                    }
                }
                rec.set("pi_service", service);
                ev.facts["pi_service"] = service;
                if (service == "P_PROGRAM") return "plc_start";
                if (service == "_INSE") return "block_insert";
                if (service == "_DELE") return "block_delete";
                if (service == "_GARB") return "compress_memory";
                if (service == "_MODU") return "copy_ram_to_rom";
                return "pi_service";
            }
            case 0x29: return "plc_stop";
            case 0xf0: return "setup_communication";
            default: return "other";
        }
    }

    static void describe_userdata(Bytes param, RecordFields& rec, ProtocolEvent& ev) {
        if (param.size() < 8 || param[0] != 0 || param[1] != 1 || param[2] != 0x12) return;
        const unsigned type = param[5] >> 4;  // 4 request, 8 response
        const unsigned group = param[5] & 0x0f;
        const unsigned sub = param[6];
        rec.set("userdata_type", type == 4 ? "request" : type == 8 ? "response" : "push");
        rec.set("userdata_group", userdata_group(group));
        rec.set("subfunction", static_cast<int>(sub));
        if (type != 4) return;
        ev.action = std::string("userdata_") + userdata_group(group);
        ev.facts["userdata_group"] = userdata_group(group);
        ev.facts["subfunction"] = std::to_string(sub);
    }

    static void on_s7_plus(const AnalyzerContext& ctx, Bytes p) {
        RecordFields rec;
        rec.set("protocol", "s7comm_plus");
        if (p.size() >= 2) rec.set("version", static_cast<int>(p[1]));
        if (p.size() >= 10) {
            rec.set("opcode", detail::hex_byte(p[4]));
            rec.set("function", static_cast<int>(be16(p, 8)));
        }
        ctx.host.record("s7comm", rec);
    }

    detail::PduStream streams_[2] = {detail::PduStream(kMaxTpkt), detail::PduStream(kMaxTpkt)};
    std::vector<std::uint8_t> pdu_[2];
};

}  // namespace

// TPKT + COTP where a data TPDU carries S7comm (0x32) or S7comm-plus (0x72). Connection
// set-up alone (CR/CC) is not enough, as MMS and other ISO protocols use it too: detection
// waits for the first data TPDU, and the analyzer then reads the direction from its start.
bool s7comm_detect(std::span<const std::uint8_t> first, int /*direction*/,
                   std::uint16_t /*src_port*/, std::uint16_t /*dst_port*/) {
    std::size_t at = 0;
    while (first.size() - at >= 7) {
        const Bytes t = first.subspan(at);
        if (t[0] != 3 || t[1] != 0) return false;
        const unsigned len = be16(t, 2);
        const unsigned li = t[4];
        if (len < 7 || li < 1 || 5u + li > len) return false;
        if ((t[5] & 0xf0) == 0xf0) {
            return li >= 2 && t.size() > 5u + li &&
                   (t[5 + li] == kS7 || t[5 + li] == kS7Plus);
        }
        if (len > t.size()) return false;
        at += len;
    }
    return false;
}

std::unique_ptr<Analyzer> make_s7comm_analyzer() { return std::make_unique<S7Analyzer>(); }

}  // namespace senningen::agent
