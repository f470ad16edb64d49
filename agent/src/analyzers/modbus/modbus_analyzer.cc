#include "analyzers/modbus/modbus_analyzer.h"

#include "analyzers/pdu_stream.h"

namespace senningen::agent {

namespace {

using detail::be16;
using detail::Bytes;

constexpr std::size_t kMbapLen = 7;       // transaction, protocol, length, unit id
constexpr std::size_t kMaxAdu = 6 + 254;  // MBAP length counts unit id + PDU, at most 254

const char* function_name(unsigned fc) {
    switch (fc) {
        case 1: return "read_coils";
        case 2: return "read_discrete_inputs";
        case 3: return "read_holding_registers";
        case 4: return "read_input_registers";
        case 5: return "write_single_coil";
        case 6: return "write_single_register";
        case 7: return "read_exception_status";
        case 8: return "diagnostics";
        case 11: return "get_comm_event_counter";
        case 12: return "get_comm_event_log";
        case 15: return "write_multiple_coils";
        case 16: return "write_multiple_registers";
        case 17: return "report_server_id";
        case 20: return "read_file_record";
        case 21: return "write_file_record";
        case 22: return "mask_write_register";
        case 23: return "read_write_multiple_registers";
        case 24: return "read_fifo_queue";
        case 43: return "encapsulated_interface_transport";
        case 90: return "umas";
        default: return "unknown";
    }
}

const char* exception_name(unsigned code) {
    switch (code) {
        case 1: return "illegal_function";
        case 2: return "illegal_data_address";
        case 3: return "illegal_data_value";
        case 4: return "server_device_failure";
        case 5: return "acknowledge";
        case 6: return "server_device_busy";
        case 8: return "memory_parity_error";
        case 10: return "gateway_path_unavailable";
        case 11: return "gateway_target_failed_to_respond";
        default: return "unknown";
    }
}

// The policy action of a request: what a rule author writes ("write", "read", ...).
const char* request_action(unsigned fc, unsigned subfunction) {
    switch (fc) {
        case 1: case 2: case 3: case 4: case 7: case 20: case 24: return "read";
        case 5: case 6: case 15: case 16: case 21: case 22: case 23: return "write";
        case 8:
            if (subfunction == 1) return "restart_communications";
            if (subfunction == 4) return "force_listen_only";
            return "diagnostics";
        case 43: return "device_identification";
        default: return "other";
    }
}

std::ptrdiff_t frame(Bytes b) {
    if (b.size() < 6) return detail::kNeedMore;
    if (be16(b, 2) != 0) return detail::kNotAPdu;  // protocol id is always 0 for Modbus
    const unsigned length = be16(b, 4);
    if (length < 2 || length > 254) return detail::kNotAPdu;
    return static_cast<std::ptrdiff_t>(6 + length);
}

class ModbusAnalyzer final : public Analyzer {
public:
    void data(const AnalyzerContext& ctx, Bytes bytes) override {
        auto& stream = streams_[ctx.direction & 1];
        if (stream.broken()) return;
        if (!stream.feed(bytes, frame, [&](Bytes adu) { on_adu(ctx, adu); })) {
            ctx.host.weird("modbus_bad_mbap",
                           "MBAP header with a protocol id other than 0 or a length outside "
                           "2..254: the direction is no longer inspected");
        }
    }

    void gap(const AnalyzerContext& ctx, std::uint64_t /*bytes*/) override {
        streams_[ctx.direction & 1].resync();
        ctx.host.weird("modbus_gap", "hole in the TCP stream: framing restarts after it");
    }

private:
    void on_adu(const AnalyzerContext& ctx, Bytes adu) {
        // Requests and responses look alike; the client is the originator, unless the capture
        // missed the handshake and the originator is the side on Modbus's port.
        const bool flipped = ctx.flow.orig.port == 502 && ctx.flow.resp.port != 502;
        const bool request = (ctx.direction == 0) != flipped;
        const unsigned tid = be16(adu, 0);
        const unsigned unit = adu[6];
        const Bytes pdu = adu.subspan(kMbapLen);
        const unsigned raw_fc = pdu[0];
        const unsigned fc = raw_fc & 0x7f;
        RecordFields rec;
        rec.set("direction", request ? "request" : "response");
        rec.set("transaction_id", static_cast<int>(tid));
        rec.set("unit_id", static_cast<int>(unit));
        rec.set("function", static_cast<int>(fc));
        rec.set("function_name", function_name(fc));
        // Only requests and exceptions make a policy event: a response's facts were built and
        // dropped for every ADU.
        ProtocolEvent ev{"modbus", "", {}};
        if (request || (raw_fc & 0x80) != 0) {
            ev.facts = {{"function", std::to_string(fc)},
                        {"function_name", function_name(fc)},
                        {"unit_id", std::to_string(unit)},
                        {"transaction_id", std::to_string(tid)}};
        }
        const Bytes body = pdu.subspan(1);
        bool malformed = false;
        if (raw_fc & 0x80) {
            if (body.empty()) {
                malformed = true;
            } else {
                rec.set("exception_code", static_cast<int>(body[0]));
                rec.set("exception", exception_name(body[0]));
                ev.action = "exception";
                ev.facts["exception"] = exception_name(body[0]);
            }
        } else if (request) {
            unsigned sub = 0;
            malformed = !describe_request(fc, body, rec, ev, sub);
            ev.action = request_action(fc, sub);
        } else {
            malformed = !describe_response(fc, body, rec);
        }
        if (malformed) {
            rec.set("malformed", true);
            ctx.host.weird("modbus_malformed_pdu",
                           std::string("PDU of function ") + std::to_string(fc) +
                               " too short or inconsistent");
        }
        ctx.host.record("modbus", rec);
        if (!ev.action.empty() && !malformed) ctx.host.event(ev);
    }

    static bool describe_request(unsigned fc, Bytes body, RecordFields& rec,
                                 ProtocolEvent& ev, unsigned& sub) {
        auto set = [&](const char* key, unsigned v) {
            rec.set(key, static_cast<int>(v));
            ev.facts[key] = std::to_string(v);
        };
        switch (fc) {
            case 1: case 2: case 3: case 4:
                if (body.size() != 4) return false;
                set("address", be16(body, 0));
                set("quantity", be16(body, 2));
                return true;
            case 5: case 6:
                if (body.size() != 4) return false;
                set("address", be16(body, 0));
                set("value", be16(body, 2));
                set("quantity", 1);
                return true;
            case 15: case 16: {
                if (body.size() < 5) return false;
                const unsigned quantity = be16(body, 2);
                set("address", be16(body, 0));
                set("quantity", quantity);
                const unsigned count = body[4];
                const unsigned want = fc == 15 ? (quantity + 7) / 8 : quantity * 2;
                return count == want && body.size() == 5u + count;
            }
            case 22:
                if (body.size() != 6) return false;
                set("address", be16(body, 0));
                set("and_mask", be16(body, 2));
                set("or_mask", be16(body, 4));
                return true;
            case 23: {
                if (body.size() < 9) return false;
                set("read_address", be16(body, 0));
                set("read_quantity", be16(body, 2));
                set("address", be16(body, 4));
                set("quantity", be16(body, 6));
                return body.size() == 9u + body[8];
            }
            case 8:
                if (body.size() < 2) return false;
                sub = be16(body, 0);
                set("subfunction", sub);
                return true;
            case 43:
                if (body.empty()) return false;
                set("mei_type", body[0]);
                return true;
            default: return true;
        }
    }

    static bool describe_response(unsigned fc, Bytes body, RecordFields& rec) {
        switch (fc) {
            case 1: case 2: case 3: case 4: case 23:
                if (body.empty() || body.size() != 1u + body[0]) return false;
                rec.set("byte_count", static_cast<int>(body[0]));
                return true;
            case 5: case 6: case 15: case 16:
                if (body.size() != 4) return false;
                rec.set("address", static_cast<int>(be16(body, 0)));
                rec.set(fc <= 6 ? "value" : "quantity", static_cast<int>(be16(body, 2)));
                return true;
            default: return true;
        }
    }

    detail::PduStream streams_[2] = {detail::PduStream(kMaxAdu), detail::PduStream(kMaxAdu)};
};

}  // namespace

bool public_function(unsigned fc) {
    return (fc >= 1 && fc <= 8) || fc == 11 || fc == 12 || (fc >= 15 && fc <= 17) ||
           (fc >= 20 && fc <= 24) || fc == 43;
}

// MBAP headers are weak evidence (protocol id 0 and a small length), so detection wants the
// whole first payload to be well-framed ADUs: every header complete, protocol id 0, a length
// of 2..254, and a public function code (any code when the payload is exactly one ADU). A
// lone partial ADU at the end is allowed when its header is whole.
bool modbus_detect(std::span<const std::uint8_t> first, int /*direction*/,
                   std::uint16_t /*src_port*/, std::uint16_t /*dst_port*/) {
    if (first.size() < 8) return false;
    std::size_t at = 0;
    int adus = 0;
    while (first.size() - at >= 8 && adus < 8) {
        const Bytes adu = first.subspan(at);
        const unsigned length = be16(adu, 4);
        if (be16(adu, 2) != 0 || length < 2 || length > 254) return false;
        const unsigned fc = adu[7] & 0x7f;
        // A payload that is exactly one ADU is strong framing evidence (16 zero bits and a
        // 16-bit length that matches): any function code then, as scanners probe them all.
        const bool exact = adus == 0 && length + 6 == first.size();
        if (!public_function(fc) && !exact) return false;
        ++adus;
        at += 6 + length;
        if (at >= first.size()) return true;
    }
    return adus > 0;  // the rest is a partial ADU shorter than a header plus function
}

std::unique_ptr<Analyzer> make_modbus_analyzer() { return std::make_unique<ModbusAnalyzer>(); }

}  // namespace senningen::agent
