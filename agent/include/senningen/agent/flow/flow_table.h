// Flows and TCP reassembly. A flow is both directions of one 5-tuple; the originator is the
// side that sent the first packet, unless that packet is not a bare SYN and goes from a
// server's port to another port (Zeek's heuristic, is_likely_server_port): then it is the
// responder, and the flow is flipped. Each TCP direction is
// reassembled in sequence order into a bounded buffer (the depth, 1 MiB by default):
// out-of-order segments wait, retransmissions are dropped, overlaps keep the first-seen bytes
// ("first wins", as Windows and Suricata's default do), a hole that a later FIN/RST or the
// end of the flow leaves is a counted gap after which the stream goes on. Sequence numbers are
// compared modulo 2^32, so wrap-around works.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "senningen/agent/decode/packet.h"

namespace senningen::agent {

struct ReassemblyCounters {
    std::uint64_t segments = 0;
    std::uint64_t out_of_order = 0;
    std::uint64_t retransmissions = 0;
    std::uint64_t overlaps = 0;
    std::uint64_t gaps = 0;
    std::uint64_t bytes_beyond_depth = 0;
    // Segments whose overlapping bytes differed from the copy already taken (first copy wins):
    // an evasion attempt (Ptacek and Newsham's insertion) or a broken stack.
    std::uint64_t inconsistent = 0;
};

// A hole skipped by flush_gaps(): BYTES were never seen before stream offset AT.
struct StreamGap {
    std::uint64_t at;
    std::uint64_t bytes;
};

// One direction of a TCP connection.
class TcpStream {
public:
    explicit TcpStream(std::size_t depth) : depth_(depth) {}

    // Adds a segment. SYN sets the initial sequence number (the first data byte is ISN+1);
    // without a SYN the first segment seen fixes the start. Where the segment overlaps bytes
    // already taken, those stay (first copy wins) and are compared: returns the sequence
    // number of the first byte that differs, if one does. Only bytes still kept are compared
    // (held out of order, not yet discarded by the owner, before the depth).
    std::optional<std::uint32_t> add_segment(std::uint32_t seq, std::uint8_t flags,
                                             std::span<const std::uint8_t> payload,
                                             ReassemblyCounters& counters);

    // Flushes segments still waiting behind a hole: the hole is counted as a gap and the
    // waiting bytes are appended in order (so the stream goes on after the gap).
    void flush_gaps(ReassemblyCounters& counters);

    // The in-order bytes kept, from stream offset start() to size() (at most depth bytes in
    // all): everything unless the owner discard()ed a front it no longer needs.
    std::span<const std::uint8_t> data() const {
        return borrowed_.empty() ? std::span<const std::uint8_t>(data_) : borrowed_;
    }
    std::uint64_t start() const { return dropped_; }
    std::uint64_t size() const { return dropped_ + data_.size() + borrowed_.size(); }

    // With borrowing on, an in-order segment that finds the stream empty is not copied: data()
    // points into the packet until settle(), which copies whatever the owner has not
    // discard()ed by then. The owner turns it on only if it calls settle() before the
    // packet's memory goes (the engine: at the end of each TCP packet), and so saves the
    // allocation and copy of every segment it parses at once.
    void set_borrowing(bool on) { borrowing_ = on; }
    void settle();
    bool depth_reached() const { return size() >= depth_; }
    // With passing on (the direction has an analyzer, which parses the whole stream as Zeek's
    // do), the depth bounds the bytes this direction holds out of order, not the stream:
    // in-order bytes past the depth are still appended, for the owner to take and discard;
    // out-of-order ones wait while they stay under the depth, and a hole whose held bytes
    // would go over it is given up (a gap, recorded past the depth too) so that the stream
    // goes on. Passing stops for good after kMaxPassedGaps holes (a stream full of holes is
    // not worth following), and cannot start once bytes past the depth were dropped.
    void set_passing(bool on) {
        if (!on || !lost_) passing_ = on;
    }
    bool passing() const { return passing_; }
    // Frees the bytes before stream offset OFFSET (the owner has parsed and scanned them). The
    // buffer shrinks with them, so that what is freed really goes back to the allocator.
    void discard(std::uint64_t offset);
    // Heap bytes this direction holds: the buffer's capacity (not just the bytes in use), the
    // held out-of-order segments and an estimate of their map nodes' overhead, the gap list.
    std::size_t reserved() const;
    bool fin_seen() const { return fin_seen_; }
    // For the conn history (Zeek's rules for T, G and repeated letters): whether a segment
    // fixed the start, the next in-order sequence number expected, one past the highest data
    // byte seen, the sequence number of the SYN that started the stream, and one past the data
    // of the first FIN.
    bool started() const { return started_; }
    std::uint32_t next_seq() const { return next_seq_; }
    std::uint32_t high_seq() const { return high_seq_; }
    std::optional<std::uint32_t> first_syn_seq() const {
        if (!started_by_syn_) return std::nullopt;
        return static_cast<std::uint32_t>(seq_at(0) - 1);
    }
    std::optional<std::uint32_t> first_fin_end() const {
        if (!fin_seen_) return std::nullopt;
        return fin_end_;
    }
    // Bytes of sequence space this direction's data covered, from its first data byte to one
    // past the highest byte seen: holes and bytes past the depth included, retransmissions
    // once, SYN and FIN not counted (Zeek's conn.log orig_bytes/resp_bytes, which Zeek takes
    // from sequence numbers too; it also counts data the peer acknowledged but that was never
    // seen, which this does not).
    std::uint64_t seen_bytes() const;
    // Bytes in the holes flush_gaps() skipped within the depth (Zeek's missed_bytes).
    std::uint64_t missed_bytes() const;
    static constexpr std::size_t kMaxPassedGaps = 64;
    // The holes flush_gaps() skipped, at their stream offsets, in order (holes beyond the
    // depth are only counted). An analyzer is told of each at its place in the stream (Analyzer::gap()).
    std::span<const StreamGap> gaps() const {
        return disorder_ ? std::span<const StreamGap>(disorder_->gaps)
                         : std::span<const StreamGap>();
    }

    // Frees the bytes (data, held segments) once the owner has had its last look: a closed
    // flow lingers in the table without its streams' memory. The gap list (rare, a few
    // entries) stays for missed_bytes() in the flow's conn record, made when it leaves.
    void release();

private:
    // 64-bit relative offset -> bytes. Keyed 64-bit so that a stream skipping gaps past 4 GiB
    // still orders correctly. Made when a segment first waits: most streams never need it.
    using Pending = std::map<std::uint64_t, std::vector<std::uint8_t>>;
    // What only a stream out of order needs, behind one pointer made when first needed: most
    // streams never do, and a TcpStream is in every TCP flow twice.
    struct Disorder {
        Pending pending;
        std::size_t pending_bytes = 0;  // bounded by the room left under depth_
        std::vector<StreamGap> gaps;    // the holes flush_gaps() skipped
    };

    std::size_t depth_;
    std::uint32_t next_seq_ = 0;  // sequence number of the next byte expected
    // One past the highest data byte any segment carried (for seen_bytes()): the bytes past
    // the depth are not kept, but the count goes on.
    std::uint32_t high_seq_ = 0;
    // Flags in one byte: a TcpStream is in every TCP flow twice (100,000 flows at once).
    bool started_ : 1 = false;
    bool fin_seen_ : 1 = false;
    bool borrowing_ : 1 = false;
    bool started_by_syn_ : 1 = false;
    bool passing_ : 1 = false;
    bool lost_ : 1 = false;  // in-order bytes past the depth were dropped (not passing)
    std::uint32_t fin_end_ = 0;  // the first FIN's sequence number plus its data's length
    std::vector<std::uint8_t> data_;
    std::span<const std::uint8_t> borrowed_;  // packet bytes after data_ (then empty), or none
    std::uint64_t dropped_ = 0;  // bytes discarded from the front of data_
    std::unique_ptr<Disorder> disorder_;
    std::uint64_t base_ = 0;         // 64-bit relative offset of next_seq_ (wrap-safe)

    bool nothing_held() const { return !disorder_ || disorder_->pending.empty(); }
    // The sequence number of the first byte of BYTES (at relative offset AT, which may be
    // before the stream's start) that differs from the in-order bytes kept at its place.
    std::optional<std::uint32_t> differs_from_kept(std::int64_t at,
                                                   std::span<const std::uint8_t> bytes) const;
    std::uint32_t seq_at(std::uint64_t offset) const {  // of a relative offset
        return next_seq_ + static_cast<std::uint32_t>(offset - base_);
    }
    // Bytes that may still be held out of order: the depth less what is held and (unless
    // passing, where the owner takes in-order bytes as they come) the stream so far.
    std::size_t room() const {
        const std::uint64_t used =
            (passing_ ? 0 : size()) + (disorder_ ? disorder_->pending_bytes : 0);
        return depth_ > used ? static_cast<std::size_t>(depth_ - used) : 0;
    }
    Disorder& disorder() {
        if (!disorder_) disorder_ = std::make_unique<Disorder>();
        return *disorder_;
    }
    // MAY_BORROW: BYTES are the current packet's (never a held segment's, which is freed).
    void append(std::span<const std::uint8_t> bytes, ReassemblyCounters& counters,
                bool may_borrow = false);
    void hold(std::uint64_t offset, std::span<const std::uint8_t> bytes,
              ReassemblyCounters& counters);
    void drain_pending(ReassemblyCounters& counters);
};

struct FlowEndpoint {
    IpAddress addr;
    std::uint16_t port = 0;
    bool operator==(const FlowEndpoint&) const = default;
};

// The kinds of packet Zeek's conn.log history records, each once per direction in the order
// first seen: S a SYN, H a SYN-ACK, A a pure ACK, D data (any UDP packet), F a FIN, R a RST,
// Q SYN+FIN or SYN+RST, I FIN+RST. Upper case for the originator, lower for the responder.
// A flow whose roles Zeek's heuristic flipped (Flow::flipped) starts with ^. C (bad checksum)
// is not tracked, as in Zeek with -C: the engine counts a wrong checksum and writes a weird
// record instead.
inline constexpr char kConnHistoryLetters[] = "SHADFRQI";

// What a flow's history needs beyond the compact form (Flow::history): made at the first
// event that needs it, which most flows never see. Zeek's rules:
// - S, H, F and R again when the sequence number (F: plus the data length) differs from the
//   last one of that kind from that side;
// - T (data wholly below the highest sequence number the side sent: a retransmission),
//   W (a zero window, not in a RST, while neither the peer has closed nor the side reset) and
//   G (the peer acknowledges data never seen: a content gap; not from a FIN or RST), each at
//   the 1st, 10th, 100th, ... time per side.
// Once a letter does not fit the compact form, the whole history moves to `letters`, at most
// kMaxLetters long (a side resetting with ever new sequence numbers cannot grow it further).
struct HistoryMore {
    static constexpr std::size_t kMaxLetters = 100;
    std::string letters;             // the history, once it has moved here (else empty)
    std::uint32_t count[2][3] = {};  // [side][T, W, G]
    std::uint32_t last_syn[2] = {};  // S and H: the last sequence number, once repeated
    std::uint32_t last_fin[2] = {};
    std::uint32_t last_rst[2] = {};
    std::uint32_t gap_acked[2] = {};  // G: how far the peer's acknowledgements were counted
    std::uint8_t known = 0;           // bits: last_syn, last_fin, last_rst, gap_acked set, << side
};

struct Flow {
    std::uint64_t id = 0;  // stable for the 5-tuple: the same in both directions and runs
    FlowEndpoint orig;  // originator
    FlowEndpoint resp;  // responder
    // The small members together, where the endpoints leave room before the next 8 bytes.
    std::uint8_t ip_proto = 0;
    bool closed = false;  // FIN from both sides, or RST
    bool ended = false;   // the end handler ran; the flow lingers to absorb stray packets
    bool scanned[2] = {false, false};  // owner's flag: this direction was inspected already
    // The first packet came from the responder, by Zeek's heuristic (is_likely_server_port):
    // the history starts with ^.
    bool flipped = false;
    // The history kinds seen: bit K (kConnHistoryLetters[K]) for the originator, bit 8 + K
    // for the responder.
    std::uint16_t history_seen = 0;
    std::int64_t first_ts_ns = 0;
    std::int64_t last_ts_ns = 0;
    std::uint64_t packets[2] = {0, 0};  // [0] orig->resp, [1] resp->orig
    std::uint64_t bytes[2] = {0, 0};    // transport payload, retransmissions included
    std::uint64_t ip_bytes[2] = {0, 0};  // IP header and all after it, as the IP header says
    // The history in order: the bit numbers of history_seen as they were first set, 4 bits
    // each, the first in the lowest bits (at most 16, so 64 bits always hold them).
    std::uint64_t history = 0;
    std::unique_ptr<HistoryMore> history_more;  // null for most flows
    // The analyzer's name (AnalyzerSpec::name, a literal of the registry's), once one has
    // recognised the protocol: a view, not a string of its own in every flow.
    std::string_view app_proto;
    // TCP only: [0] orig->resp, [1] resp->orig. In the flow, not behind a pointer of its own:
    // one allocation per flow instead of three.
    std::optional<TcpStream> stream[2];
    // The owner's per-flow state (the engine's), opaque to the table: found from the flow
    // without a second hash lookup per packet. The owner clears it when it drops the state.
    void* owner_state = nullptr;
    Flow* lru_prev = nullptr;  // the table's order of use (FlowTable only)
    Flow* lru_next = nullptr;
};

// Zeek's conn.log orig_bytes (DIRECTION 0) or resp_bytes (1): for TCP from sequence numbers,
// as Zeek's (a retransmission counts once, a hole counts); for UDP the datagrams' payloads.
std::uint64_t conn_payload_bytes(const Flow& flow, int direction);

// Zeek's conn.log history of FLOW: the letters of kConnHistoryLetters in the order first seen.
std::string conn_history(const Flow& flow);

// Ports a server listens on, for Zeek's heuristic that makes the sender of a connection's first
// packet its responder: when that packet is not a bare SYN (a SYN-ACK, data picked up
// mid-stream, any UDP datagram), comes from such a port and goes to a port that is not one.
// The well-known ports of the agent's analyzers (DNS, HTTP, TLS, SMTP, SMB, Modbus, DNP3,
// S7comm, IEC 104, EtherNet/IP), as Zeek's likely_server_ports holds its analyzers' ports.
bool is_likely_server_port(std::uint16_t port);

// Zeek's conn.log conn_state of FLOW (S0, S1, SF, REJ, S2, S3, RSTO, RSTR, RSTOS0, RSTRH, SH,
// SHR, OTH), from each side's endpoint state as the packets in its history leave it
// (conn_state.cc says how that follows Zeek's TCP state machine, and where it is coarser).
const char* conn_state(const Flow& flow);

struct FlowTableOptions {
    std::size_t max_flows = 65536;
    std::size_t stream_depth = 1 << 20;  // bytes per direction
    std::int64_t idle_timeout_ns = 300LL * 1000000000LL;
    // A flow older than this (from its first packet) is ended at its next packet, which starts
    // a new flow with the same originator and responder (0: never): a connection that lasts
    // for days, as SCADA polling does, gets a record and its analysis (stream depth, YARA
    // scan) anew every period, like NetFlow's active timeout.
    std::int64_t absolute_timeout_ns = 3600LL * 1000000000LL;
    // How long a closed TCP flow stays in the table after its end handler ran, so that the
    // last ACK and retransmitted FINs join it instead of starting a new flow (Zeek waits 5 s
    // too). A SYN on the same 5-tuple replaces it at once.
    std::int64_t close_linger_ns = 5LL * 1000000000LL;
};

struct FlowTableCounters {
    std::uint64_t flows_created = 0;
    std::uint64_t flows_evicted = 0;  // pushed out because the table was full
    std::uint64_t flows_expired = 0;  // idle timeout
    std::uint64_t flows_timed_out = 0;  // absolute timeout
    ReassemblyCounters reassembly;
};

class FlowTable {
public:
    // Called once for every flow that leaves the table (closed, expired, evicted or at
    // flush_all), before it is destroyed: the owner's last look at its streams.
    using FlowEndHandler = std::function<void(Flow&)>;
    // Called once for every flow as it goes out of the table, after its end handler: at once,
    // or, for a closed flow, when its linger ends (the last ACKs, a RST after the FINs
    // counted). The flow's final tally, for its conn record.
    using FlowRemovedHandler = std::function<void(const Flow&)>;

    explicit FlowTable(FlowTableOptions options, FlowEndHandler on_end = {});

    // Finds or creates the flow of PACKET (TCP or UDP, status kOk), updates counters and, for
    // TCP, feeds the payload to the right stream. DIRECTION is 0 when the packet goes from
    // originator to responder, 1 otherwise. Expires idle flows as time advances.
    // The reference stays valid until the next update() or flush_all(). A flow this packet
    // closed (closed == true) is ended at the start of that next call, so the caller still
    // sees the closing packet's data before the end handler takes its last look; it then
    // lingers (ended == true, no more stream data) for close_linger_ns.
    Flow& update(const DecodedPacket& packet, int& direction);
    // After update(): the sequence number of the first byte of its segment that differed from
    // the bytes the direction had already taken there (TcpStream::add_segment), if one did.
    std::optional<std::uint32_t> inconsistent_seq() const { return inconsistent_seq_; }

    void set_removed_handler(FlowRemovedHandler on_removed) { on_removed_ = std::move(on_removed); }

    // Ends every flow (end of capture): FlowEndHandler runs for each.
    void flush_all();

    std::size_t size() const { return flows_.size(); }
    const FlowTableCounters& counters() const { return counters_; }

    // The flow id of a 5-tuple: a 64-bit hash of the endpoints in canonical order, so both
    // directions share it. Never 0.
    static std::uint64_t flow_id(std::uint8_t ip_proto, const FlowEndpoint& a,
                                 const FlowEndpoint& b);

private:
    void end_flow(std::uint64_t id);     // the end handler (once), then out of the table
    void finish_flow(std::uint64_t id);  // the end handler, staying in the table to linger
    void expire(std::int64_t now_ns);
    Flow& find_or_create(const DecodedPacket& packet, const FlowEndpoint& src,
                         const FlowEndpoint& dst);

    FlowTableOptions options_;
    FlowEndHandler on_end_;
    FlowRemovedHandler on_removed_;
    // Keyed by flow id; on a (vanishingly rare) id collision the newcomer takes the next free
    // key within a short probe window, so Flow::id is the key, not always flow_id(). The flow
    // lives in the map's node (whose address never changes): one allocation per flow.
    std::unordered_map<std::uint64_t, Flow> flows_;
    // Every flow in the table, most recently used first, linked through the flows themselves
    // (a list node of its own per flow cost an allocation and 32 bytes).
    Flow* lru_head_ = nullptr;
    Flow* lru_tail_ = nullptr;
    void lru_push_front(Flow& flow);
    void lru_unlink(Flow& flow);
    FlowTableCounters counters_;
    std::optional<std::uint32_t> inconsistent_seq_;  // of the last update()
    std::int64_t last_expire_ns_ = 0;  // packet-time clock: the latest time stamp seen
    std::uint64_t closing_id_ = 0;     // a flow closed by the last packet, ended next call
};

}  // namespace senningen::agent
