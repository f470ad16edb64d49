// Flow table and TCP reassembly. Memory is bounded everywhere an attacker controls the input:
// the number of flows (LRU eviction), the bytes kept per direction (depth), and the bytes and
// segments held out of order.
#include "senningen/agent/flow/flow_table.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <iterator>
#include <utility>

namespace senningen::agent {
namespace {

// Out-of-order segments held per direction, whatever their size: many one-byte segments would
// otherwise cost far more in map nodes than the depth limit suggests.
constexpr std::size_t kMaxPendingSegments = 1024;

// Keys tried for one 5-tuple before the table gives up on probing and evicts.
constexpr std::uint64_t kMaxProbes = 8;

// Signed distance from B to A in sequence space (RFC 1982 style).
std::int64_t seq_diff(std::uint32_t a, std::uint32_t b) {
    return static_cast<std::int32_t>(a - b);
}

// The splitmix64 finaliser: a bijection with full avalanche, so chaining it over the words of
// the key gives a well-spread hash without a seed that would differ between runs.
std::uint64_t mix64(std::uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

std::uint64_t load64(const std::uint8_t* p) {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) {
        v = (v << 8) | p[i];
    }
    return v;
}

bool endpoint_less(const FlowEndpoint& a, const FlowEndpoint& b) {
    if (a.addr != b.addr) {
        return a.addr < b.addr;
    }
    return a.port < b.port;
}

bool same_tuple(const Flow& flow, std::uint8_t ip_proto, const FlowEndpoint& src,
                const FlowEndpoint& dst) {
    return flow.ip_proto == ip_proto &&
           ((flow.orig == src && flow.resp == dst) || (flow.orig == dst && flow.resp == src));
}

// The history kind (an index into kConnHistoryLetters) of a packet, or -1 for none (a TCP
// segment with no flag Zeek's history records). Zeek's rules: more than one of SYN, FIN and
// RST is Q (I for FIN+RST); one of them is its letter, data or not; otherwise data is D and a
// bare ACK is A.
int history_kind(const DecodedPacket& packet) {
    if (packet.ip_proto != kIpProtoTcp) return 3;  // UDP: every datagram is D
    const std::uint8_t f = packet.tcp_flags;
    const bool syn = (f & tcp_flags::kSyn) != 0;
    const bool fin = (f & tcp_flags::kFin) != 0;
    const bool rst = (f & tcp_flags::kRst) != 0;
    const int set = int{syn} + int{fin} + int{rst};
    if (set > 1) return fin && rst ? 7 : 6;
    if (syn) return (f & tcp_flags::kAck) != 0 ? 1 : 0;
    if (fin) return 4;
    if (rst) return 5;
    if (!packet.payload.empty()) return 3;
    if ((f & tcp_flags::kAck) != 0) return 2;
    return -1;
}

// Kinds (indices into kConnHistoryLetters) and HistoryMore::known bits.
constexpr int kKindSyn = 0;
constexpr int kKindSynAck = 1;
constexpr int kKindFin = 4;
constexpr int kKindRst = 5;
constexpr int kKindFinRst = 7;
constexpr std::uint8_t kKnownSyn = 1;  // << side, for each
constexpr std::uint8_t kKnownFin = 4;
constexpr std::uint8_t kKnownRst = 16;
constexpr std::uint8_t kKnownGap = 64;
enum Scaled { kRetransmission = 0, kZeroWindow = 1, kContentGap = 2 };
constexpr char kScaledLetters[] = "TWG";

char letter_of(int kind, int direction) {
    const char upper = kConnHistoryLetters[kind];
    return direction == 0 ? upper : static_cast<char>(upper - 'A' + 'a');
}

HistoryMore& more_of(Flow& flow) {
    if (!flow.history_more) flow.history_more = std::make_unique<HistoryMore>();
    return *flow.history_more;
}

// Appends LETTER to the history: to the compact form while the letters are each kind's first
// (at most 16), else to HistoryMore::letters, where the whole history moves at the first
// letter the compact form cannot hold.
void add_letter(Flow& flow, char letter, int compact_code) {
    HistoryMore* more = flow.history_more.get();
    if (compact_code >= 0 && (more == nullptr || more->letters.empty())) {
        const int n = std::popcount(flow.history_seen);
        flow.history |= std::uint64_t{static_cast<unsigned>(compact_code)} << (4 * n);
        return;
    }
    HistoryMore& m = more_of(flow);
    if (m.letters.empty()) m.letters = conn_history(flow);
    if (m.letters.size() < HistoryMore::kMaxLetters) m.letters += letter;
}

// A T, W or G event of SIDE: a letter at the 1st, 10th, 100th, ... one (Zeek's scaled entries).
void scaled_event(Flow& flow, int side, Scaled what) {
    std::uint32_t& count = more_of(flow).count[side][what];
    if (count == UINT32_MAX) return;
    ++count;
    std::uint32_t power = 1;
    while (power < count && power <= UINT32_MAX / 10) power *= 10;
    if (power != count) return;
    const char upper = kScaledLetters[what];
    add_letter(flow, side == 0 ? upper : static_cast<char>(upper - 'A' + 'a'), -1);
}

// S, H, F or R seen before from this side: again, as Zeek, when its sequence number differs
// from the last one of its kind (F: the sequence number after its data). The first SYN's and
// FIN's come from the stream; a RST's is kept from the first (remember_rst).
void repeated_kind(Flow& flow, int direction, int kind, std::uint32_t seq) {
    const TcpStream* stream = flow.stream[direction] ? &*flow.stream[direction] : nullptr;
    std::uint8_t base = kKnownRst;
    std::optional<std::uint32_t> previous;
    if (kind == kKindFin) {
        base = kKnownFin;
        if (stream) previous = stream->first_fin_end();
    } else if (kind != kKindRst) {
        base = kKnownSyn;
        if (stream) previous = stream->first_syn_seq();
    }
    const auto bit = static_cast<std::uint8_t>(base << direction);
    const auto last_of = [&](HistoryMore& m) -> std::uint32_t& {
        return (kind == kKindFin   ? m.last_fin
                : kind == kKindRst ? m.last_rst
                                   : m.last_syn)[direction];
    };
    if (HistoryMore* more = flow.history_more.get(); more && (more->known & bit) != 0) {
        previous = last_of(*more);
    }
    if (!previous || *previous == seq) return;
    add_letter(flow, letter_of(kind, direction), -1);
    HistoryMore& m = more_of(flow);
    last_of(m) = seq;
    m.known = static_cast<std::uint8_t>(m.known | bit);
}

// A side's first RST: its sequence number, which the next RST is compared with.
void remember_rst(Flow& flow, int direction, std::uint32_t seq) {
    HistoryMore& m = more_of(flow);
    m.last_rst[direction] = seq;
    m.known = static_cast<std::uint8_t>(m.known | (kKnownRst << direction));
}

// Zeek's history, as each packet comes (before its segment reaches the stream): a few
// instructions for most packets, the kind and one bit test; the rest only for TCP.
void note_history(Flow& flow, int direction, const DecodedPacket& packet) {
    const int kind = history_kind(packet);
    if (kind >= 0) {
        const unsigned code = static_cast<unsigned>(kind + 8 * direction);
        const auto bit = static_cast<std::uint16_t>(1U << code);
        if ((flow.history_seen & bit) == 0) {
            add_letter(flow, letter_of(kind, direction), static_cast<int>(code));
            flow.history_seen = static_cast<std::uint16_t>(flow.history_seen | bit);
            if (kind == kKindRst) remember_rst(flow, direction, packet.seq);
        } else if (kind == kKindSyn || kind == kKindSynAck || kind == kKindRst) {
            repeated_kind(flow, direction, kind, packet.seq);
        } else if (kind == kKindFin) {
            repeated_kind(flow, direction, kind,
                          packet.seq + static_cast<std::uint32_t>(packet.payload.size()));
        }
    }
    if (packet.ip_proto != kIpProtoTcp || !flow.stream[direction]) return;
    const std::uint8_t f = packet.tcp_flags;
    const bool rst = (f & tcp_flags::kRst) != 0;
    const unsigned self = (flow.history_seen >> (8 * direction)) & 0xffU;
    const unsigned peer = (flow.history_seen >> (8 * (1 - direction))) & 0xffU;
    const bool self_reset = (self & ((1U << kKindRst) | (1U << kKindFinRst))) != 0;
    // T: data that ends at or below the highest sequence number this side sent (the side that
    // sent a RST is not trusted any more; a RST or SYN with data is no retransmission).
    const TcpStream& own = *flow.stream[direction];
    if (!packet.payload.empty() && own.started() && !rst && (f & tcp_flags::kSyn) == 0 &&
        !self_reset) {
        const std::uint32_t end = packet.seq + static_cast<std::uint32_t>(packet.payload.size());
        if (seq_diff(end, own.high_seq()) <= 0) scaled_event(flow, direction, kRetransmission);
    }
    // W: a zero window, unless in a RST, after this side reset or after the peer closed.
    if (packet.tcp_window == 0 && !rst && !self_reset && (peer & (1U << kKindFin)) == 0) {
        scaled_event(flow, direction, kZeroWindow);
    }
    // G: the peer's data acknowledged beyond what was seen of it in order (past its FIN, if
    // it sent one), counted once per acknowledgement that goes further; not from a FIN or a
    // RST (Zeek: gaps those reveal at the very end are not reliable), not past the depth.
    const int other = 1 - direction;
    if ((f & tcp_flags::kAck) == 0 || (f & (tcp_flags::kFin | tcp_flags::kRst)) != 0 ||
        !flow.stream[other]) {
        return;
    }
    const TcpStream& theirs = *flow.stream[other];
    if (!theirs.started() || theirs.depth_reached()) return;
    const std::int64_t beyond =
        seq_diff(packet.ack, theirs.next_seq()) - (theirs.fin_seen() ? 1 : 0);
    if (beyond <= 0) return;
    const auto gap_bit = static_cast<std::uint8_t>(kKnownGap << other);
    HistoryMore* more = flow.history_more.get();
    if (more != nullptr && (more->known & gap_bit) != 0 &&
        seq_diff(packet.ack, more->gap_acked[other]) <= 0) {
        return;  // this hole was counted
    }
    HistoryMore& m = more_of(flow);
    m.gap_acked[other] = packet.ack;
    m.known = static_cast<std::uint8_t>(m.known | gap_bit);
    scaled_event(flow, other, kContentGap);
}

}  // namespace

// ---- TcpStream ---------------------------------------------------------------------------

std::optional<std::uint32_t> TcpStream::add_segment(std::uint32_t seq, std::uint8_t flags,
                                                    std::span<const std::uint8_t> payload_in,
                                                    ReassemblyCounters& counters) {
    std::span<const std::uint8_t> payload = payload_in;
    ++counters.segments;
    std::uint32_t data_seq = seq;
    if ((flags & tcp_flags::kSyn) != 0) {
        data_seq = seq + 1;  // the SYN occupies one sequence number
        if (!started_) {
            next_seq_ = data_seq;
            high_seq_ = data_seq;
            started_ = true;
            started_by_syn_ = true;
        }
    }
    if ((flags & tcp_flags::kFin) != 0) {
        if (!fin_seen_) fin_end_ = seq + static_cast<std::uint32_t>(payload.size());
        fin_seen_ = true;
    }
    if (payload.empty()) {
        return std::nullopt;
    }
    if (!started_) {
        next_seq_ = data_seq;
        high_seq_ = data_seq;
        started_ = true;
    }
    const std::uint32_t data_end = data_seq + static_cast<std::uint32_t>(payload.size());
    if (seq_diff(data_end, high_seq_) > 0) high_seq_ = data_end;

    // Work in 64-bit offsets relative to the stream start from here on: no more modulo.
    const std::int64_t rel = static_cast<std::int64_t>(base_) + seq_diff(data_seq, next_seq_);
    const std::int64_t end = rel + static_cast<std::int64_t>(payload.size());
    std::optional<std::uint32_t> differs;
    const auto note = [&](std::optional<std::uint32_t> at) {
        if (at && !differs) {
            differs = at;
            ++counters.inconsistent;
        }
    };
    if (end <= static_cast<std::int64_t>(base_)) {
        ++counters.retransmissions;
        note(differs_from_kept(rel, payload));
        return differs;
    }
    // A front that repeats bytes already delivered is cut off: delivered bytes stay as they are.
    const bool overlapped = rel < static_cast<std::int64_t>(base_);
    if (overlapped) note(differs_from_kept(rel, payload));
    const std::uint64_t start = overlapped ? base_ : static_cast<std::uint64_t>(rel);
    payload = payload.subspan(start - static_cast<std::uint64_t>(rel));
    const auto stop = static_cast<std::uint64_t>(end);
    // This segment's bytes [from, to) against those of a segment held at HELD_AT.
    const auto differs_from_held = [&](std::uint64_t held_at, std::span<const std::uint8_t> held,
                                       std::uint64_t from,
                                       std::uint64_t to) -> std::optional<std::uint32_t> {
        const auto n = static_cast<std::size_t>(to - from);
        const auto mine = payload.subspan(static_cast<std::size_t>(from - start), n);
        const auto theirs = held.subspan(static_cast<std::size_t>(from - held_at), n);
        const auto [a, b] = std::mismatch(mine.begin(), mine.end(), theirs.begin());
        if (a == mine.end()) return std::nullopt;
        return seq_at(from + static_cast<std::uint64_t>(a - mine.begin()));
    };

    if (passing_ && start > base_ && !nothing_held() &&
        (payload.size() > room() || disorder_->pending.size() >= kMaxPendingSegments)) {
        // The held bytes would go over the depth: the hole before them is given up, and the
        // segment is taken again after it.
        flush_gaps(counters);
        --counters.segments;
        if (differs) --counters.inconsistent;
        return add_segment(seq, flags, payload_in, counters);
    }
    if (start == base_ && nothing_held()) {
        if (overlapped) {
            ++counters.overlaps;
        }
        append(payload, counters, borrowing_);
        return differs;
    }
    if (start > base_) {
        ++counters.out_of_order;  // ahead of a hole: held until the hole fills or is flushed
    }

    // First wins: only the parts of [start, stop) that no held segment covers are kept.
    std::uint64_t cursor = start;
    std::uint64_t covered = 0;
    Pending& pending = disorder().pending;
    auto it = pending.upper_bound(start);
    if (it != pending.begin()) {
        auto prev = std::prev(it);
        const std::uint64_t prev_end = prev->first + prev->second.size();
        if (prev_end > cursor) {
            const std::uint64_t next = std::min(prev_end, stop);
            note(differs_from_held(prev->first, prev->second, cursor, next));
            covered += next - cursor;
            cursor = next;
        }
    }
    while (cursor < stop && it != pending.end() && it->first < stop) {
        if (it->first > cursor) {
            hold(cursor, payload.subspan(cursor - start, it->first - cursor), counters);
        }
        const std::uint64_t it_end = it->first + it->second.size();
        const std::uint64_t next = std::min(it_end, stop);
        note(differs_from_held(it->first, it->second, std::max(cursor, it->first), next));
        covered += next - std::max(cursor, it->first);
        cursor = std::max(cursor, next);
        ++it;
    }
    if (cursor < stop) {
        hold(cursor, payload.subspan(cursor - start), counters);
    }
    if (covered == stop - start && !overlapped) {
        ++counters.retransmissions;
    } else if (covered > 0 || overlapped) {
        ++counters.overlaps;
    }
    drain_pending(counters);
    return differs;
}

std::optional<std::uint32_t> TcpStream::differs_from_kept(
    std::int64_t at, std::span<const std::uint8_t> bytes) const {
    // Past the depth nothing more is kept, and where the kept bytes sit in sequence space is
    // no longer known (the bytes beyond it advance base_ as the holes given up do).
    if (depth_reached() && !passing_) return std::nullopt;
    const std::int64_t to = std::min<std::int64_t>(at + static_cast<std::int64_t>(bytes.size()),
                                                   static_cast<std::int64_t>(base_));
    const std::span<const std::uint8_t> kept = data();
    // The kept bytes are pieces between the holes given up: piece K runs from data offset
    // gaps[K-1].at (0 for the first) to gaps[K].at (size() for the last), and sits in sequence
    // space after all the holes before it.
    const std::span<const StreamGap> holes = gaps();
    std::uint64_t piece_begin = 0;
    std::uint64_t shift = 0;  // bytes of the holes before this piece
    for (std::size_t k = 0; k <= holes.size(); ++k) {
        const std::uint64_t piece_end = k < holes.size() ? holes[k].at : size();
        const auto lo = static_cast<std::int64_t>(std::max(piece_begin, start()) + shift);
        const auto hi = static_cast<std::int64_t>(piece_end + shift);
        const std::int64_t from = std::max(at, lo);
        const std::int64_t stop = std::min(to, hi);
        if (from < stop) {
            const auto n = static_cast<std::size_t>(stop - from);
            const auto mine = bytes.subspan(static_cast<std::size_t>(from - at), n);
            const auto theirs = kept.subspan(
                static_cast<std::size_t>(static_cast<std::uint64_t>(from) - shift - start()), n);
            const auto [a, b] = std::mismatch(mine.begin(), mine.end(), theirs.begin());
            if (a != mine.end()) {
                return seq_at(static_cast<std::uint64_t>(from) +
                              static_cast<std::uint64_t>(a - mine.begin()));
            }
        }
        if (k < holes.size()) {
            piece_begin = piece_end;
            shift += holes[k].bytes;
        }
    }
    return std::nullopt;
}

void TcpStream::settle() {
    if (borrowed_.empty()) return;
    data_.assign(borrowed_.begin(), borrowed_.end());
    borrowed_ = {};
}

void TcpStream::append(std::span<const std::uint8_t> bytes, ReassemblyCounters& counters,
                       bool may_borrow) {
    const std::size_t room = depth_ > size() ? static_cast<std::size_t>(depth_ - size()) : 0;
    const std::size_t keep = passing_ ? bytes.size() : std::min(room, bytes.size());
    if (keep < bytes.size()) lost_ = true;
    if (may_borrow && data_.empty() && borrowed_.empty()) {
        borrowed_ = bytes.first(keep);  // the packet's own bytes, until settle()
    } else {
        settle();  // borrowed bytes come first
        data_.insert(data_.end(), bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(keep));
    }
    counters.bytes_beyond_depth += bytes.size() - keep;
    base_ += bytes.size();
    next_seq_ += static_cast<std::uint32_t>(bytes.size());
}

void TcpStream::hold(std::uint64_t offset, std::span<const std::uint8_t> bytes,
                     ReassemblyCounters& counters) {
    if (offset == base_) {
        append(bytes, counters);
        return;
    }
    // Whatever is held ends up in data_ at the latest at flush time, so held bytes can never
    // usefully exceed the room left under the depth.
    const std::size_t free = room();
    Disorder& held = disorder();
    if (bytes.size() > free || held.pending.size() >= kMaxPendingSegments) {
        counters.bytes_beyond_depth += bytes.size();
        return;
    }
    held.pending.emplace(offset, std::vector<std::uint8_t>(bytes.begin(), bytes.end()));
    held.pending_bytes += bytes.size();
}

void TcpStream::drain_pending(ReassemblyCounters& counters) {
    while (!nothing_held() && disorder_->pending.begin()->first <= base_) {
        auto node = disorder_->pending.extract(disorder_->pending.begin());
        disorder_->pending_bytes -= node.mapped().size();
        const std::uint64_t offset = node.key();
        std::span<const std::uint8_t> bytes = node.mapped();
        const std::uint64_t bytes_end = offset + bytes.size();
        if (bytes_end > base_) {
            append(bytes.subspan(base_ - offset), counters);
        }
    }
}

void TcpStream::flush_gaps(ReassemblyCounters& counters) {
    while (!nothing_held()) {
        const std::uint64_t offset = disorder_->pending.begin()->first;
        if (offset > base_) {
            ++counters.gaps;
            if (passing_ || size() < depth_) {
                disorder_->gaps.push_back({size(), offset - base_});
                if (passing_ && disorder_->gaps.size() >= kMaxPassedGaps) passing_ = false;
            }
            next_seq_ += static_cast<std::uint32_t>(offset - base_);
            base_ = offset;
        }
        drain_pending(counters);
    }
}

void TcpStream::discard(std::uint64_t offset) {
    if (offset <= dropped_) return;
    if (!borrowed_.empty()) {  // then data_ is empty
        const auto n =
            static_cast<std::size_t>(std::min<std::uint64_t>(offset - dropped_, borrowed_.size()));
        dropped_ += n;
        borrowed_ = borrowed_.subspan(n);
        return;
    }
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(offset - dropped_, data_.size()));
    dropped_ += n;
    if (n == data_.size()) {
        std::vector<std::uint8_t>().swap(data_);  // the memory goes back: the point of discarding
        return;
    }
    data_.erase(data_.begin(), data_.begin() + static_cast<std::ptrdiff_t>(n));
    // The capacity is what the memory budget counts: a tail kept after a discard must not sit
    // in the buffer the whole stream once needed.
    if (data_.capacity() > 2 * data_.size() + 64) data_.shrink_to_fit();
}

std::size_t TcpStream::reserved() const {
    // A std::map node carries three pointers, a colour and the vector header besides the key.
    constexpr std::size_t kNodeOverhead = 72;
    return data_.capacity() +
           (disorder_ ? sizeof(Disorder) + disorder_->pending_bytes +
                            disorder_->pending.size() * kNodeOverhead +
                            disorder_->gaps.capacity() * sizeof(StreamGap)
                      : 0);
}

void TcpStream::release() {
    dropped_ += data_.size() + borrowed_.size();
    borrowed_ = {};
    std::vector<std::uint8_t>().swap(data_);
    // The gap list (rare, a few entries) stays for missed_bytes() in the conn record.
    if (disorder_ && disorder_->gaps.empty()) {
        disorder_.reset();
    } else if (disorder_) {
        Pending().swap(disorder_->pending);
        disorder_->pending_bytes = 0;
    }
}

std::uint64_t TcpStream::seen_bytes() const {
    if (!started_) return 0;
    const std::int64_t ahead = seq_diff(high_seq_, next_seq_);
    return base_ + static_cast<std::uint64_t>(std::max<std::int64_t>(ahead, 0));
}

std::uint64_t TcpStream::missed_bytes() const {
    std::uint64_t missed = 0;
    for (const StreamGap& gap : gaps()) missed += gap.bytes;
    return missed;
}

// ---- FlowTable ---------------------------------------------------------------------------

FlowTable::FlowTable(FlowTableOptions options, FlowEndHandler on_end)
    : options_(options), on_end_(std::move(on_end)) {
    options_.max_flows = std::max<std::size_t>(options_.max_flows, 1);
}

bool is_likely_server_port(std::uint16_t port) {
    // DNS, SMTP, HTTP, S7comm (ISO-TSAP), TLS, SMB, submission, Modbus, EtherNet/IP (I/O,
    // explicit), IEC 104, HTTP alternate, DNP3.
    static constexpr std::uint16_t kPorts[] = {25,   53,   80,    102,   139,  443,
                                               445,  502,  587,   2222,  2404, 8080,
                                               20000, 44818};
    return std::binary_search(std::begin(kPorts), std::end(kPorts), port);
}

std::uint64_t FlowTable::flow_id(std::uint8_t ip_proto, const FlowEndpoint& a,
                                 const FlowEndpoint& b) {
    const FlowEndpoint& lo = endpoint_less(b, a) ? b : a;
    const FlowEndpoint& hi = endpoint_less(b, a) ? a : b;

    // proto, family, and per endpoint 16 address bytes and the port: 40 bytes, 5 words.
    std::uint8_t key[40] = {};
    key[0] = ip_proto;
    key[1] = lo.addr.family;
    key[2] = hi.addr.family;
    std::memcpy(key + 4, lo.addr.bytes.data(), 16);
    key[20] = static_cast<std::uint8_t>(lo.port >> 8);
    key[21] = static_cast<std::uint8_t>(lo.port);
    key[22] = static_cast<std::uint8_t>(hi.port >> 8);
    key[23] = static_cast<std::uint8_t>(hi.port);
    std::memcpy(key + 24, hi.addr.bytes.data(), 16);

    std::uint64_t h = 0x53656e6e696e6765ULL;  // "Senninge": fixed, so ids match across runs
    for (std::size_t i = 0; i < sizeof key; i += 8) {
        h = mix64(h ^ load64(key + i));
    }
    return h != 0 ? h : 1;
}

Flow& FlowTable::find_or_create(const DecodedPacket& packet, const FlowEndpoint& src,
                                const FlowEndpoint& dst) {
    const std::uint64_t id = flow_id(packet.ip_proto, src, dst);
    std::uint64_t free_key = 0;
    std::pair<FlowEndpoint, FlowEndpoint> roles{src, dst};  // originator, responder
    // Zeek's heuristic: a first packet that is not a bare SYN, from a server's port to another
    // port, came from the responder.
    const bool bare_syn = (packet.tcp_flags & (tcp_flags::kSyn | tcp_flags::kAck)) == tcp_flags::kSyn;
    bool flipped = !(packet.ip_proto == kIpProtoTcp && bare_syn) &&
                   is_likely_server_port(src.port) && !is_likely_server_port(dst.port);
    if (flipped) roles = {dst, src};
    for (std::uint64_t i = 0; i < kMaxProbes; ++i) {
        const std::uint64_t key = id + i;
        if (key == 0) {
            continue;  // 0 means "no flow" to callers
        }
        auto it = flows_.find(key);
        if (it == flows_.end()) {
            if (free_key == 0) {
                free_key = key;  // keep probing: the tuple may sit further on
            }
            continue;
        }
        if (same_tuple(it->second, packet.ip_proto, src, dst)) {
            Flow& found = it->second;
            const bool too_old = options_.absolute_timeout_ns > 0 && !found.ended &&
                                 packet.ts_ns - found.first_ts_ns >= options_.absolute_timeout_ns;
            if (!(found.ended && bare_syn) && !too_old) {
                return found;
            }
            if (too_old) {
                // The connection goes on in a new flow, its roles kept.
                ++counters_.flows_timed_out;
                roles = {found.orig, found.resp};
                flipped = found.flipped;
            }
            // Past the absolute timeout, or a new connection reusing the 5-tuple of one that
            // closed: a new flow replaces it.
            end_flow(key);
            if (free_key == 0) free_key = key;
            break;
        }
    }
    if (free_key == 0) {
        // Every probed key holds another tuple: astronomically unlikely, but never unsafe.
        ++counters_.flows_evicted;
        end_flow(id);
        free_key = id;
    }
    if (flows_.size() >= options_.max_flows && lru_tail_ != nullptr) {
        ++counters_.flows_evicted;
        end_flow(lru_tail_->id);
    }

    Flow& flow = flows_.try_emplace(free_key).first->second;
    flow.id = free_key;
    flow.ip_proto = packet.ip_proto;
    flow.orig = roles.first;
    flow.resp = roles.second;
    flow.flipped = flipped;
    flow.first_ts_ns = packet.ts_ns;
    flow.last_ts_ns = packet.ts_ns;
    if (packet.ip_proto == kIpProtoTcp) {
        flow.stream[0].emplace(options_.stream_depth);
        flow.stream[1].emplace(options_.stream_depth);
    }
    ++counters_.flows_created;
    lru_push_front(flow);
    return flow;
}

Flow& FlowTable::update(const DecodedPacket& packet, int& direction) {
    if (closing_id_ != 0) {
        finish_flow(closing_id_);
    }
    last_expire_ns_ = std::max(last_expire_ns_, packet.ts_ns);
    expire(last_expire_ns_);

    const FlowEndpoint src{packet.src, packet.src_port};
    const FlowEndpoint dst{packet.dst, packet.dst_port};
    Flow& flow = find_or_create(packet, src, dst);
    if (lru_head_ != &flow) {
        lru_unlink(flow);
        lru_push_front(flow);
    }

    direction = flow.orig == src ? 0 : 1;
    ++flow.packets[direction];
    flow.bytes[direction] += packet.payload.size();
    flow.ip_bytes[direction] += packet.ip_len;
    note_history(flow, direction, packet);
    flow.last_ts_ns = std::max(flow.last_ts_ns, packet.ts_ns);

    inconsistent_seq_.reset();
    if (flow.stream[direction] && !flow.ended) {
        inconsistent_seq_ = flow.stream[direction]->add_segment(packet.seq, packet.tcp_flags,
                                                                packet.payload, counters_.reassembly);
        const bool rst = (packet.tcp_flags & tcp_flags::kRst) != 0;
        if (rst || (flow.stream[0]->fin_seen() && flow.stream[1]->fin_seen())) {
            flow.closed = true;
            closing_id_ = flow.id;
        }
    }
    return flow;
}

void FlowTable::expire(std::int64_t now_ns) {
    // The flows are linked in order of use and packet time only moves forward here, so the
    // idle flows sit at the back.
    while (lru_tail_ != nullptr) {
        const Flow& flow = *lru_tail_;
        const std::uint64_t key = flow.id;
        const std::int64_t timeout =
            flow.ended ? std::min(options_.close_linger_ns, options_.idle_timeout_ns)
                       : options_.idle_timeout_ns;
        if (now_ns - flow.last_ts_ns <= timeout) {
            break;
        }
        if (!flow.ended) ++counters_.flows_expired;
        end_flow(key);
    }
}

void FlowTable::end_flow(std::uint64_t id) {
    auto it = flows_.find(id);
    if (it == flows_.end()) {
        return;
    }
    // Out of the table first, so that the handler sees a consistent table: the node, flow and
    // all, is the handle's until the end of this call.
    auto node = flows_.extract(it);
    Flow* flow = &node.mapped();
    lru_unlink(*flow);
    if (closing_id_ == id) {
        closing_id_ = 0;
    }
    if (!flow->ended) {  // else its end handler ran when it closed
        for (auto& stream : flow->stream) {
            if (stream) {
                stream->flush_gaps(counters_.reassembly);
            }
        }
        if (on_end_) {
            on_end_(*flow);
        }
    }
    if (on_removed_) {
        on_removed_(*flow);
    }
}

void FlowTable::finish_flow(std::uint64_t id) {
    if (closing_id_ == id) {
        closing_id_ = 0;
    }
    auto it = flows_.find(id);
    if (it == flows_.end() || it->second.ended) {
        return;
    }
    Flow& flow = it->second;
    for (auto& stream : flow.stream) {
        if (stream) {
            stream->flush_gaps(counters_.reassembly);
        }
    }
    flow.ended = true;
    if (on_end_) {
        on_end_(flow);
    }
    for (auto& stream : flow.stream) {
        if (stream) {
            stream->release();
        }
    }
}

void FlowTable::lru_push_front(Flow& flow) {
    flow.lru_prev = nullptr;
    flow.lru_next = lru_head_;
    if (lru_head_ != nullptr) lru_head_->lru_prev = &flow;
    lru_head_ = &flow;
    if (lru_tail_ == nullptr) lru_tail_ = &flow;
}

void FlowTable::lru_unlink(Flow& flow) {
    (flow.lru_prev != nullptr ? flow.lru_prev->lru_next : lru_head_) = flow.lru_next;
    (flow.lru_next != nullptr ? flow.lru_next->lru_prev : lru_tail_) = flow.lru_prev;
    flow.lru_prev = nullptr;
    flow.lru_next = nullptr;
}

void FlowTable::flush_all() {
    closing_id_ = 0;
    while (lru_tail_ != nullptr) {
        end_flow(lru_tail_->id);
    }
}

}  // namespace senningen::agent
