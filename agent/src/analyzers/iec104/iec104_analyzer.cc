#include "analyzers/iec104/iec104_analyzer.h"

#include <string>

#include "analyzers/pdu_stream.h"

namespace senningen::agent {

namespace {

using detail::Bytes;
using detail::le16;

constexpr std::size_t kMaxApdu = 255;  // start byte, length (at most 253), body

std::ptrdiff_t frame(Bytes b) {
    if (b.size() < 2) return detail::kNeedMore;
    if (b[0] != 0x68 || b[1] < 4 || b[1] > 253) return detail::kNotAPdu;
    return static_cast<std::ptrdiff_t>(b[1] + 2);
}

const char* type_name(unsigned t) {
    switch (t) {
        case 1: return "M_SP_NA_1";
        case 2: return "M_SP_TA_1";
        case 3: return "M_DP_NA_1";
        case 4: return "M_DP_TA_1";
        case 5: return "M_ST_NA_1";
        case 7: return "M_BO_NA_1";
        case 9: return "M_ME_NA_1";
        case 10: return "M_ME_TA_1";
        case 11: return "M_ME_NB_1";
        case 13: return "M_ME_NC_1";
        case 15: return "M_IT_NA_1";
        case 21: return "M_ME_ND_1";
        case 30: return "M_SP_TB_1";
        case 31: return "M_DP_TB_1";
        case 32: return "M_ST_TB_1";
        case 33: return "M_BO_TB_1";
        case 34: return "M_ME_TD_1";
        case 35: return "M_ME_TE_1";
        case 36: return "M_ME_TF_1";
        case 37: return "M_IT_TB_1";
        case 45: return "C_SC_NA_1";
        case 46: return "C_DC_NA_1";
        case 47: return "C_RC_NA_1";
        case 48: return "C_SE_NA_1";
        case 49: return "C_SE_NB_1";
        case 50: return "C_SE_NC_1";
        case 51: return "C_BO_NA_1";
        case 58: return "C_SC_TA_1";
        case 59: return "C_DC_TA_1";
        case 60: return "C_RC_TA_1";
        case 61: return "C_SE_TA_1";
        case 62: return "C_SE_TB_1";
        case 63: return "C_SE_TC_1";
        case 64: return "C_BO_TA_1";
        case 70: return "M_EI_NA_1";
        case 100: return "C_IC_NA_1";
        case 101: return "C_CI_NA_1";
        case 102: return "C_RD_NA_1";
        case 103: return "C_CS_NA_1";
        case 104: return "C_TS_NA_1";
        case 105: return "C_RP_NA_1";
        case 106: return "C_CD_NA_1";
        case 107: return "C_TS_TA_1";
        case 110: return "P_ME_NA_1";
        case 111: return "P_ME_NB_1";
        case 112: return "P_ME_NC_1";
        case 113: return "P_AC_NA_1";
        case 120: return "F_FR_NA_1";
        case 121: return "F_SR_NA_1";
        case 122: return "F_SC_NA_1";
        case 123: return "F_LS_NA_1";
        case 124: return "F_AF_NA_1";
        case 125: return "F_SG_NA_1";
        case 126: return "F_DR_TA_1";
        case 127: return "F_SC_NB_1";
        default: return "unknown";
    }
}

const char* cause_name(unsigned c) {
    switch (c) {
        case 1: return "periodic";
        case 2: return "background";
        case 3: return "spontaneous";
        case 4: return "initialized";
        case 5: return "request";
        case 6: return "activation";
        case 7: return "activation_con";
        case 8: return "deactivation";
        case 9: return "deactivation_con";
        case 10: return "activation_term";
        case 11: return "return_remote";
        case 12: return "return_local";
        case 13: return "file_transfer";
        case 20: return "interrogated_station";
        case 37: return "counter_interrogated_general";
        case 44: return "unknown_type_id";
        case 45: return "unknown_cause";
        case 46: return "unknown_common_address";
        case 47: return "unknown_object_address";
        default:
            if (c >= 21 && c <= 36) return "interrogated_group";
            if (c >= 38 && c <= 41) return "counter_interrogated_group";
            return "unknown";
    }
}

// The policy action of a type id in the control direction, or nullptr for monitor data.
const char* control_action(unsigned t) {
    if (t >= 45 && t <= 47) return "command";
    if (t >= 58 && t <= 60) return "command";
    if ((t >= 48 && t <= 50) || (t >= 61 && t <= 63)) return "setpoint";
    if (t == 51 || t == 64) return "bitstring";
    switch (t) {
        case 100: return "interrogation";
        case 101: return "counter_interrogation";
        case 102: return "read";
        case 103: return "clock_sync";
        case 104: case 107: return "test";
        case 105: return "reset_process";
        case 106: return "delay_acquisition";
        case 110: case 111: case 112: case 113: return "parameter";
        default: return nullptr;
    }
}

const char* u_function(unsigned c1) {
    switch (c1) {
        case 0x07: return "STARTDT_act";
        case 0x0b: return "STARTDT_con";
        case 0x13: return "STOPDT_act";
        case 0x23: return "STOPDT_con";
        case 0x43: return "TESTFR_act";
        case 0x83: return "TESTFR_con";
        default: return nullptr;
    }
}

class Iec104Analyzer final : public Analyzer {
public:
    void data(const AnalyzerContext& ctx, Bytes bytes) override {
        const int dir = ctx.direction & 1;
        if (streams_[dir].broken()) return;
        if (!streams_[dir].feed(bytes, frame, [&](Bytes a) { on_apdu(ctx, a); })) {
            ctx.host.weird("iec104_lost_framing", "bytes that do not start an APDU (0x68, length "
                                                  "4..253): the direction is no longer inspected");
        }
    }

    void gap(const AnalyzerContext& ctx, std::uint64_t /*bytes*/) override {
        streams_[ctx.direction & 1].resync();
        ctx.host.weird("iec104_gap", "hole in the TCP stream: framing restarts after it");
    }

private:
    static void on_apdu(const AnalyzerContext& ctx, Bytes a) {
        const unsigned c1 = a[2];
        RecordFields rec;
        if ((c1 & 1) == 0) {
            rec.set("apci", "I");
            rec.set("send_seq", static_cast<int>(le16(a, 2) >> 1));
            rec.set("recv_seq", static_cast<int>(le16(a, 4) >> 1));
            on_asdu(ctx, a.subspan(6), rec);
            return;
        }
        if ((c1 & 3) == 1) {
            rec.set("apci", "S");
            rec.set("recv_seq", static_cast<int>(le16(a, 4) >> 1));
        } else {
            rec.set("apci", "U");
            const char* fn = u_function(c1);
            if (!fn) {
                ctx.host.weird("iec104_bad_u_frame", "U frame with none or several functions set");
                rec.set("malformed", true);
            } else {
                rec.set("u_function", fn);
            }
        }
        if (a.size() != 6) {
            ctx.host.weird("iec104_bad_length", "S or U frame longer than its control field");
        }
        ctx.host.record("iec104", rec);
    }

    static void on_asdu(const AnalyzerContext& ctx, Bytes asdu, RecordFields& rec) {
        // Type id, variable structure qualifier, cause (2 octets with the originator), common
        // address (2 octets): the parameters IEC 60870-5-104 fixes.
        if (asdu.size() < 6) {
            rec.set("malformed", true);
            ctx.host.record("iec104", rec);
            ctx.host.weird("iec104_short_asdu", "I frame with an ASDU under 6 bytes");
            return;
        }
        const unsigned type = asdu[0];
        const unsigned count = asdu[1] & 0x7f;
        const unsigned cause = asdu[2] & 0x3f;
        const unsigned common_address = le16(asdu, 4);
        rec.set("type_id", static_cast<int>(type));
        rec.set("type_name", type_name(type));
        rec.set("sequence", (asdu[1] & 0x80) != 0);
        rec.set("objects", static_cast<int>(count));
        rec.set("cause", static_cast<int>(cause));
        rec.set("cause_name", cause_name(cause));
        if (asdu[2] & 0x40) rec.set("negative", true);
        if (asdu[2] & 0x80) rec.set("test", true);
        rec.set("originator", static_cast<int>(asdu[3]));
        rec.set("common_address", static_cast<int>(common_address));
        std::string ioa;
        if (asdu.size() >= 9 && count > 0) {
            ioa = std::to_string(detail::le24(asdu, 6));
            rec.set("ioa", static_cast<int>(detail::le24(asdu, 6)));
        }
        ctx.host.record("iec104", rec);
        const char* action = control_action(type);
        // The commanding side's messages: activation and deactivation.
        if (!action || (cause != 6 && cause != 8)) return;
        ProtocolEvent ev{"iec104", action, {}};
        ev.facts = {{"type_id", std::to_string(type)},
                    {"type_name", type_name(type)},
                    {"cause", cause_name(cause)},
                    {"common_address", std::to_string(common_address)}};
        if (!ioa.empty()) ev.facts["ioa"] = ioa;
        ctx.host.event(ev);
    }

    detail::PduStream streams_[2] = {detail::PduStream(kMaxApdu), detail::PduStream(kMaxApdu)};
};

}  // namespace

// A whole first APDU (0x68, length 4..253) whose control field is a valid I, S or U format.
bool iec104_detect(std::span<const std::uint8_t> first, int /*direction*/,
                   std::uint16_t /*src_port*/, std::uint16_t /*dst_port*/) {
    if (first.size() < 6 || first[0] != 0x68) return false;
    const unsigned len = first[1];
    if (len < 4 || len > 253 || first.size() < len + 2u) return false;
    const unsigned c1 = first[2];
    if ((c1 & 1) == 0) return len >= 10 && (first[4] & 1) == 0 && first[6] >= 1 && first[6] <= 127;
    if ((c1 & 3) == 1) return len == 4 && c1 == 1 && first[3] == 0 && (first[4] & 1) == 0;
    return len == 4 && u_function(c1) != nullptr && first[3] == 0 && first[4] == 0 &&
           first[5] == 0;
}

std::unique_ptr<Analyzer> make_iec104_analyzer() { return std::make_unique<Iec104Analyzer>(); }

}  // namespace senningen::agent
