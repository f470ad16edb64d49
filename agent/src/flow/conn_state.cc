// Zeek's conn.log history and conn_state from what the flow table keeps per flow: which kinds
// of packet each side sent, in the order first seen (Flow::history), and the streams' sizes.
//
// Zeek derives conn_state from each endpoint's TCP state at the end (its state machine in
// TCPSessionAdapter) and the function conn_state() of base/protocols/conn/main.zeek. Here the
// endpoint states are inferred from the history instead of being tracked packet by packet:
// the same for the usual sequences (handshake, data, FIN or RST from either side, SYN without
// answer, rejected SYN, mid-stream pick-up), coarser for odd ones: a RST always leaves an
// endpoint reset and a FIN closed whatever came after, SYN+FIN and SYN+RST (both Q) count as a
// SYN, and the order of the handshake's packets is not checked.
#include <bit>
#include <cstdint>
#include <string>

#include "senningen/agent/flow/flow_table.h"

namespace senningen::agent {
namespace {

enum class Endpoint { kInactive, kSynSent, kSynAckSent, kPartial, kEstablished, kClosed, kReset };

// Bits of one side's history (Flow::history_seen shifted down for the responder).
constexpr unsigned kS = 1U << 0;
constexpr unsigned kH = 1U << 1;
constexpr unsigned kA = 1U << 2;
constexpr unsigned kD = 1U << 3;
constexpr unsigned kF = 1U << 4;
constexpr unsigned kR = 1U << 5;
constexpr unsigned kQ = 1U << 6;
constexpr unsigned kI = 1U << 7;

Endpoint originator_state(unsigned self, unsigned peer) {
    if ((self & (kR | kI)) != 0) return Endpoint::kReset;
    if ((self & kF) != 0) return Endpoint::kClosed;
    const bool peer_answered = (peer & (kH | kS)) != 0;  // a SYN-ACK (or a simultaneous open)
    if ((self & (kS | kQ)) != 0) return peer_answered ? Endpoint::kEstablished : Endpoint::kSynSent;
    if ((self & kH) != 0) return Endpoint::kSynAckSent;
    // Without its SYN, an ACK after the peer's SYN-ACK establishes (Zeek: the SYN was missed).
    if ((self & (kA | kD)) != 0) return peer_answered ? Endpoint::kEstablished : Endpoint::kPartial;
    return Endpoint::kInactive;
}

Endpoint responder_state(unsigned self, Endpoint originator) {
    if ((self & (kR | kI)) != 0) return Endpoint::kReset;
    if ((self & kF) != 0) return Endpoint::kClosed;
    // Zeek sets a responder established by its SYN-ACK, whatever the originator did.
    if ((self & (kH | kS | kQ)) != 0) return Endpoint::kEstablished;
    if ((self & kD) != 0) return Endpoint::kPartial;
    // A bare ACK of a SYN not yet answered does not make a partial connection (Zeek).
    if ((self & kA) != 0) {
        return originator == Endpoint::kSynSent ? Endpoint::kInactive : Endpoint::kPartial;
    }
    return Endpoint::kInactive;
}

bool inactive(Endpoint e) {
    return e == Endpoint::kInactive || e == Endpoint::kPartial;
}

// Zeek's RSTOS0 test, the history matching ^?S[^HAFGIQ]*R.*: the originator's SYN first, and
// its next letter among H A F G I Q R (upper case: the originator's) an R.
bool syn_then_reset(const std::string& history) {
    if (history.empty() || history[0] != 'S') return false;
    for (std::size_t i = 1; i < history.size(); ++i) {
        const char c = history[i];
        if (c == 'R') return true;
        if (c == 'H' || c == 'A' || c == 'F' || c == 'G' || c == 'I' || c == 'Q') return false;
    }
    return false;
}

}  // namespace

std::uint64_t conn_payload_bytes(const Flow& flow, int direction) {
    const auto& stream = flow.stream[direction];
    return stream ? stream->seen_bytes() : flow.bytes[direction];
}

std::string conn_history(const Flow& flow) {
    if (flow.history_more && !flow.history_more->letters.empty()) return flow.history_more->letters;
    std::string out;
    const int n = std::popcount(flow.history_seen);
    out.reserve(static_cast<std::size_t>(n) + 1);
    if (flow.flipped) out += '^';
    for (int i = 0; i < n; ++i) {
        const auto code = static_cast<unsigned>((flow.history >> (4 * i)) & 0xfU);
        const char letter = kConnHistoryLetters[code & 7U];
        out += code >= 8 ? static_cast<char>(letter - 'A' + 'a') : letter;
    }
    return out;
}

const char* conn_state(const Flow& flow) {
    if (flow.ip_proto != kIpProtoTcp) {
        const bool orig = flow.packets[0] > 0;
        const bool resp = flow.packets[1] > 0;
        if (orig) return resp ? "SF" : "S0";
        return resp ? "SHR" : "OTH";
    }
    const unsigned orig_bits = flow.history_seen & 0xffU;
    const unsigned resp_bits = (flow.history_seen >> 8) & 0xffU;
    const Endpoint os = originator_state(orig_bits, resp_bits);
    const Endpoint rs = responder_state(resp_bits, os);
    if (rs == Endpoint::kReset) {
        if (os == Endpoint::kSynSent || os == Endpoint::kSynAckSent ||
            (os == Endpoint::kReset && conn_payload_bytes(flow, 0) == 0 && conn_payload_bytes(flow, 1) == 0)) {
            return "REJ";
        }
        return inactive(os) ? "RSTRH" : "RSTR";
    }
    if (os == Endpoint::kReset) {
        if (inactive(rs)) return syn_then_reset(conn_history(flow)) ? "RSTOS0" : "OTH";
        return "RSTO";
    }
    if (os == Endpoint::kClosed && rs == Endpoint::kClosed) return "SF";
    if (os == Endpoint::kClosed) return inactive(rs) ? "SH" : "S2";
    if (rs == Endpoint::kClosed) return inactive(os) ? "SHR" : "S3";
    if (os == Endpoint::kSynSent && rs == Endpoint::kInactive) return "S0";
    if (os == Endpoint::kEstablished && rs == Endpoint::kEstablished) return "S1";
    return "OTH";
}

}  // namespace senningen::agent
