#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "packet_builder.h"
#include "senningen/agent/capture/pcap_file.h"
#include "senningen/agent/decode/packet.h"
#include "senningen/agent/flow/flow_table.h"

namespace senningen::agent {
namespace {

using test::Bytes;
using namespace tcp_flags;

std::string as_text(std::span<const std::uint8_t> bytes) {
    return std::string(bytes.begin(), bytes.end());
}

// Adds TEXT at SEQ to STREAM and keeps the bytes alive only for the call, as a capture
// buffer would be.
void add(TcpStream& stream, std::uint32_t seq, std::uint8_t flags, const std::string& text,
         ReassemblyCounters& counters) {
    const Bytes bytes(text.begin(), text.end());
    stream.add_segment(seq, flags, bytes, counters);
}

// As add(), with add_segment's verdict: the sequence number of the first byte that differed
// from the bytes already taken at its place.
std::optional<std::uint32_t> differs(TcpStream& stream, std::uint32_t seq, const std::string& text,
                                     ReassemblyCounters& counters) {
    const Bytes bytes(text.begin(), text.end());
    return stream.add_segment(seq, kAck, bytes, counters);
}

// ---- TcpStream ---------------------------------------------------------------------------

TEST(TcpStream, InOrderAfterSyn) {
    TcpStream s(1024);
    ReassemblyCounters c;
    add(s, 100, kSyn, "", c);
    add(s, 101, kAck, "abc", c);
    add(s, 104, kAck | kPsh, "def", c);
    EXPECT_EQ(as_text(s.data()), "abcdef");
    EXPECT_EQ(c.segments, 3u);
    EXPECT_EQ(c.out_of_order, 0u);
    EXPECT_EQ(c.retransmissions, 0u);
    EXPECT_FALSE(s.fin_seen());
    add(s, 107, kFin | kAck, "", c);
    EXPECT_TRUE(s.fin_seen());
}

// reserved() is what --stream-memory counts: the buffer's capacity, not only the bytes in
// use; and a discard that leaves a short tail gives the rest back (a kept tail must not pin
// the buffer the whole stream needed).
TEST(TcpStream, ReservedCountsCapacityAndShrinksWithADiscard) {
    TcpStream s(1 << 20);
    ReassemblyCounters c;
    add(s, 1000, kSyn, "", c);
    std::uint32_t seq = 1001;
    for (int i = 0; i < 40; ++i) {
        add(s, seq, kAck, std::string(100, 'a'), c);
        seq += 100;
    }
    ASSERT_EQ(s.data().size(), 4000U);
    EXPECT_GE(s.reserved(), 4000U);
    s.discard(s.size() - 256);
    EXPECT_EQ(s.data().size(), 256U);
    EXPECT_EQ(s.start(), 3744U);
    EXPECT_LE(s.reserved(), 2 * 256U + 64U) << "the buffer shrank with the discard";
    // Held out-of-order bytes count too.
    const std::size_t before = s.reserved();
    add(s, seq + 500, kAck, std::string(300, 'b'), c);
    EXPECT_GE(s.reserved(), before + 300U);
    s.release();
    EXPECT_EQ(s.reserved(), 0U);
}

TEST(TcpStream, WithoutSynTheFirstSegmentFixesTheStart) {
    TcpStream s(1024);
    ReassemblyCounters c;
    add(s, 5000, kAck, "", c);  // a bare ACK carries no bytes and fixes nothing
    add(s, 7000, kAck, "mid", c);
    add(s, 7003, kAck, "stream", c);
    EXPECT_EQ(as_text(s.data()), "midstream");
}

TEST(TcpStream, SynCarryingData) {
    TcpStream s(1024);
    ReassemblyCounters c;
    add(s, 9, kSyn, "fast", c);  // TCP Fast Open: the data starts at ISN + 1
    add(s, 14, kAck, "open", c);
    EXPECT_EQ(as_text(s.data()), "fastopen");
}

TEST(TcpStream, OutOfOrderIsHeldUntilTheHoleFills) {
    TcpStream s(1024);
    ReassemblyCounters c;
    add(s, 100, kSyn, "", c);
    add(s, 107, kAck, "ghi", c);
    add(s, 104, kAck, "def", c);
    EXPECT_EQ(as_text(s.data()), "") << "nothing is in order yet";
    EXPECT_EQ(c.out_of_order, 2u);
    add(s, 101, kAck, "abc", c);
    EXPECT_EQ(as_text(s.data()), "abcdefghi");
    add(s, 110, kAck, "jk", c);
    EXPECT_EQ(as_text(s.data()), "abcdefghijk");
}

TEST(TcpStream, RetransmissionsAreDroppedAndCounted) {
    TcpStream s(1024);
    ReassemblyCounters c;
    add(s, 0, kSyn, "", c);
    add(s, 1, kAck, "abc", c);
    add(s, 1, kAck, "abc", c);  // of delivered bytes
    add(s, 2, kAck, "b", c);
    add(s, 10, kAck, "xyz", c);
    add(s, 10, kAck, "xyz", c);  // of held bytes
    EXPECT_EQ(c.retransmissions, 3u);
    EXPECT_EQ(c.overlaps, 0u);
    EXPECT_EQ(as_text(s.data()), "abc");
    add(s, 4, kAck, "defghi", c);
    EXPECT_EQ(as_text(s.data()), "abcdefghixyz");
}

TEST(TcpStream, OverlapKeepsFirstSeenBytes) {
    TcpStream s(1024);
    ReassemblyCounters c;
    add(s, 0, kSyn, "", c);
    add(s, 1, kAck, "abcdef", c);
    // Starts inside delivered data: "XYZ" repeats bytes 4..6 with other content.
    add(s, 4, kAck, "XYZghi", c);
    EXPECT_EQ(as_text(s.data()), "abcdefghi");
    EXPECT_EQ(c.overlaps, 1u);

    // Held bytes win too: "klmn" (offsets 10..13) waits behind a hole at 9; then a segment
    // for offsets 8..15 repeats a delivered byte, fills the hole, disagrees with the held
    // bytes and brings two new ones.
    add(s, 11, kAck, "klmn", c);
    add(s, 9, kAck, "IJXXXXop", c);
    EXPECT_EQ(as_text(s.data()), "abcdefghiJklmnop");
    EXPECT_EQ(c.overlaps, 2u);

    // Partly covering a held segment, nowhere near delivered data.
    add(s, 21, kAck, "uvwx", c);
    add(s, 19, kAck, "stUVWXyz", c);
    EXPECT_EQ(c.overlaps, 3u);
    add(s, 17, kAck, "qr", c);
    EXPECT_EQ(as_text(s.data()), "abcdefghiJklmnopqrstuvwxyz");
    EXPECT_EQ(c.retransmissions, 0u);
}

// First copy wins, and a copy that disagrees says where: the evasion that sends a byte twice
// with two contents (Ptacek and Newsham) becomes a rexmit_inconsistency weird in the engine.
TEST(TcpStream, OverlapWithOtherBytesSaysWhere) {
    TcpStream s(1024);
    ReassemblyCounters c;
    add(s, 0, kSyn, "", c);
    add(s, 1, kAck, "abcdef", c);                     // seq 1..6
    EXPECT_EQ(differs(s, 1, "abcdef", c), std::nullopt) << "the same bytes again";
    EXPECT_EQ(differs(s, 3, "cdXf", c), 5u) << "all old: 'X' at seq 5 is not 'e'";
    EXPECT_EQ(differs(s, 4, "deZgh", c), 6u) << "old front, new tail";
    EXPECT_EQ(as_text(s.data()), "abcdefgh");

    // Against bytes held out of order: "klmn" (seq 11..14) waits behind a hole at 9..10.
    add(s, 11, kAck, "klmn", c);
    EXPECT_EQ(differs(s, 12, "lmN", c), 14u);
    EXPECT_EQ(differs(s, 9, "ijklmn", c), std::nullopt) << "fills the hole, agrees";
    EXPECT_EQ(as_text(s.data()), "abcdefghijklmn");
    EXPECT_EQ(differs(s, 9, "Ijk", c), 9u);
    EXPECT_EQ(c.inconsistent, 4u);
    EXPECT_EQ(as_text(s.data()), "abcdefghijklmn") << "the first copy stays";
}

// Only bytes still kept can be compared: not those the owner discarded, nor any once the
// depth is reached. After holes given up, the kept bytes are found at their true place.
TEST(TcpStream, OverlapsAreComparedWithWhatIsStillKept) {
    TcpStream s(1024);
    ReassemblyCounters c;
    add(s, 0, kSyn, "", c);
    add(s, 1, kAck, "abc", c);   // seq 1..3
    add(s, 7, kAck, "ghi", c);   // 4..6 never come
    add(s, 13, kAck, "mno", c);  // nor 10..12
    s.flush_gaps(c);
    ASSERT_EQ(as_text(s.data()), "abcghimno");
    EXPECT_EQ(differs(s, 2, "bX", c), 3u) << "before both holes";
    EXPECT_EQ(differs(s, 8, "hX", c), 9u) << "between them";
    EXPECT_EQ(differs(s, 14, "nX", c), 15u) << "after them";
    EXPECT_EQ(differs(s, 3, "cDEFg", c), std::nullopt) << "the hole's bytes were never kept";
    EXPECT_EQ(differs(s, 3, "cDEFG", c), 7u);

    s.discard(4);  // the owner is done with "abcg" (data offsets 0..3, seq 1..3 and 7)
    EXPECT_EQ(differs(s, 1, "XXX", c), std::nullopt);
    EXPECT_EQ(differs(s, 7, "XhX", c), 9u) << "seq 7 ('g') is gone, 9 ('i') is not";
    EXPECT_EQ(c.inconsistent, 5u);

    TcpStream shallow(4);
    add(shallow, 0, kSyn, "", c);
    add(shallow, 1, kAck, "abcdef", c);  // "abcd" kept, the depth reached
    EXPECT_EQ(differs(shallow, 1, "XXXX", c), std::nullopt);
    EXPECT_EQ(c.inconsistent, 5u);
}

TEST(TcpStream, GapIsCountedAndTheStreamGoesOn) {
    TcpStream s(1024);
    ReassemblyCounters c;
    add(s, 0, kSyn, "", c);
    add(s, 1, kAck, "abc", c);
    add(s, 7, kAck, "ghi", c);   // bytes 4..6 never arrive
    add(s, 13, kAck, "mno", c);  // and 10..12 neither
    EXPECT_EQ(as_text(s.data()), "abc");
    s.flush_gaps(c);
    EXPECT_EQ(c.gaps, 2u);
    EXPECT_EQ(as_text(s.data()), "abcghimno");
    add(s, 16, kAck, "pqr", c);
    EXPECT_EQ(as_text(s.data()), "abcghimnopqr");
    add(s, 4, kAck, "def", c);  // the lost bytes arrive after the gap was given up
    EXPECT_EQ(as_text(s.data()), "abcghimnopqr");
    EXPECT_EQ(c.retransmissions, 1u);
    s.flush_gaps(c);
    EXPECT_EQ(c.gaps, 2u) << "nothing waiting, nothing to count";
}

TEST(TcpStream, DiscardFreesTheFrontAndKeepsOffsets) {
    TcpStream s(1024);
    ReassemblyCounters c;
    add(s, 0, kSyn, "", c);
    add(s, 1, kAck, "abcdef", c);
    s.discard(4);
    EXPECT_EQ(s.start(), 4u);
    EXPECT_EQ(s.size(), 6u);
    EXPECT_EQ(as_text(s.data()), "ef");
    add(s, 7, kAck, "gh", c);
    EXPECT_EQ(as_text(s.data()), "efgh");
    s.discard(2);  // already gone: nothing changes
    EXPECT_EQ(as_text(s.data()), "efgh");
    s.discard(100);  // past the end: everything goes
    EXPECT_TRUE(s.data().empty());
    EXPECT_EQ(s.start(), 8u);
    add(s, 9, kAck, "ij", c);
    EXPECT_EQ(as_text(s.data()), "ij");
}

// With borrowing, an in-order segment into an empty stream is not copied: data() is the
// packet's own bytes until settle() copies what was not discarded. Everything else (a stream
// with bytes already, held segments, a hole) copies as before, in order.
TEST(TcpStream, BorrowedSegmentsAreCopiedOnlyWhenKeptPastTheirPacket) {
    TcpStream s(1024);
    s.set_borrowing(true);
    ReassemblyCounters c;
    add(s, 0, kSyn, "", c);
    Bytes packet = {'a', 'b', 'c', 'd', 'e', 'f'};
    s.add_segment(1, kAck, packet, c);
    EXPECT_EQ(s.data().data(), packet.data()) << "not copied";
    EXPECT_EQ(s.reserved(), 0U);
    s.discard(6);  // all parsed: nothing to copy
    s.settle();
    EXPECT_TRUE(s.data().empty());
    EXPECT_EQ(s.reserved(), 0U);

    packet = {'g', 'h', 'i', 'j'};
    s.add_segment(7, kAck, packet, c);
    s.discard(7);  // "g" parsed, "hij" kept
    EXPECT_EQ(as_text(s.data()), "hij");
    s.settle();
    packet.assign(packet.size(), 'x');  // the capture buffer is reused
    EXPECT_EQ(as_text(s.data()), "hij");
    EXPECT_EQ(s.start(), 7U);
    EXPECT_GE(s.reserved(), 3U);

    // Into a stream that holds bytes, a segment is appended (copied) after them.
    add(s, 11, kAck, "kl", c);
    EXPECT_EQ(as_text(s.data()), "hijkl");
    s.discard(100);

    // A borrowed segment followed in the same packet's processing by a flushed hole: the
    // borrowed bytes are copied first, so the order stays.
    packet = {'m', 'n'};
    s.add_segment(13, kAck, packet, c);
    add(s, 20, kAck, "z", c);  // ahead of a hole
    s.flush_gaps(c);
    packet.assign(packet.size(), 'x');
    EXPECT_EQ(as_text(s.data()), "mnz");
    EXPECT_EQ(s.size(), 15U);  // stored bytes: the hole is a gap, not data
    ASSERT_EQ(s.gaps().size(), 1U);
    EXPECT_EQ(s.gaps()[0].at, 14U);
    s.settle();
    EXPECT_EQ(as_text(s.data()), "mnz");

    // At the depth only the room left is borrowed.
    TcpStream d(4);
    d.set_borrowing(true);
    add(d, 0, kSyn, "", c);
    packet = {'1', '2', '3', '4', '5', '6'};
    d.add_segment(1, kAck, packet, c);
    EXPECT_EQ(as_text(d.data()), "1234");
    EXPECT_TRUE(d.depth_reached());
    d.release();
    EXPECT_TRUE(d.data().empty());
}

TEST(TcpStream, GapsSayWhereInTheDataTheyAre) {
    TcpStream s(1024);
    ReassemblyCounters c;
    add(s, 0, kSyn, "", c);
    add(s, 1, kAck, "abc", c);
    add(s, 7, kAck, "ghi", c);    // 3 bytes missing before "ghi"
    add(s, 15, kAck, "opq", c);   // 5 bytes missing before "opq"
    EXPECT_TRUE(s.gaps().empty()) << "a hole is not a gap until it is given up";
    s.flush_gaps(c);
    ASSERT_EQ(s.gaps().size(), 2u);
    EXPECT_EQ(s.gaps()[0].at, 3u);
    EXPECT_EQ(s.gaps()[0].bytes, 3u);
    EXPECT_EQ(s.gaps()[1].at, 6u);
    EXPECT_EQ(s.gaps()[1].bytes, 5u);
    EXPECT_EQ(as_text(s.data()), "abcghiopq");
}

TEST(TcpStream, SequenceWrapAround) {
    TcpStream s(1024);
    ReassemblyCounters c;
    const std::uint32_t isn = 0xFFFFFFF0u;
    add(s, isn, kSyn, "", c);
    const std::string part1 = "0123456789";  // seq 0xFFFFFFF1 .. 0xFFFFFFFA
    const std::string part2 = "abcdefghij";  // 0xFFFFFFFB .. 0x00000004: crosses zero
    const std::string part3 = "KLMNOPQRST";  // 0x00000005 .. 0x0000000E
    add(s, isn + 1 + 20, kAck, part3, c);    // wrapped: held out of order
    add(s, isn + 1, kAck, part1, c);
    EXPECT_EQ(as_text(s.data()), part1);
    add(s, isn + 1 + 10, kAck, part2, c);
    EXPECT_EQ(as_text(s.data()), part1 + part2 + part3);
    // Inside part2, after the wrap: a retransmission of "ij" that disagrees from seq 3.
    const Bytes zz{'z', 'z'};
    EXPECT_EQ(s.add_segment(3, kAck, zz, c), 3u);
    EXPECT_EQ(c.retransmissions, 1u);
    add(s, 0x0000000F, kAck, "!", c);
    EXPECT_EQ(as_text(s.data()), part1 + part2 + part3 + "!");
}

TEST(TcpStream, DepthLimitsStoredBytes) {
    TcpStream s(8);
    ReassemblyCounters c;
    add(s, 0, kSyn, "", c);
    add(s, 1, kAck, "abcdef", c);
    EXPECT_FALSE(s.depth_reached());
    add(s, 7, kAck, "ghijkl", c);
    EXPECT_TRUE(s.depth_reached());
    EXPECT_EQ(as_text(s.data()), "abcdefgh");
    EXPECT_EQ(c.bytes_beyond_depth, 4u);
    add(s, 13, kAck, "mn", c);
    EXPECT_EQ(c.bytes_beyond_depth, 6u);
    EXPECT_EQ(as_text(s.data()), "abcdefgh");
    add(s, 13, kAck, "mn", c);
    EXPECT_EQ(c.retransmissions, 1u) << "tracking goes on past the depth";
}

TEST(TcpStream, HeldBytesAreBoundedByDepth) {
    TcpStream s(16);
    ReassemblyCounters c;
    add(s, 0, kSyn, "", c);
    add(s, 1, kAck, "ab", c);
    add(s, 10, kAck, "0123456789", c);  // held: 10 of the 14 bytes of room
    add(s, 30, kAck, "ABCDEFGHIJ", c);  // would exceed the room: dropped, counted
    EXPECT_EQ(c.bytes_beyond_depth, 10u);
    s.flush_gaps(c);
    EXPECT_EQ(as_text(s.data()), "ab0123456789");
    EXPECT_EQ(c.gaps, 1u);
}

TEST(TcpStream, HeldSegmentCountIsBounded) {
    TcpStream s(1 << 20);
    ReassemblyCounters c;
    add(s, 0, kSyn, "", c);
    // 3000 one-byte segments, each behind its own hole: only so many are kept.
    for (std::uint32_t i = 0; i < 3000; ++i) {
        add(s, 3 + 2 * i, kAck, "x", c);
    }
    EXPECT_GT(c.bytes_beyond_depth, 0u);
    EXPECT_LT(c.bytes_beyond_depth, 3000u);
    s.flush_gaps(c);
    EXPECT_EQ(s.data().size(), 3000u - c.bytes_beyond_depth);
    EXPECT_EQ(c.gaps, s.data().size());
}

TEST(TcpStream, PassingTakesInOrderBytesPastTheDepth) {
    TcpStream s(8);
    s.set_passing(true);
    ReassemblyCounters c;
    add(s, 0, kSyn, "", c);
    add(s, 1, kAck, "abcdef", c);
    add(s, 7, kAck, "ghijkl", c);
    EXPECT_TRUE(s.depth_reached());
    EXPECT_EQ(as_text(s.data()), "abcdefghijkl") << "the segment across the depth is whole";
    s.discard(s.size());  // the owner took them
    add(s, 13, kAck, "mnop", c);
    EXPECT_EQ(as_text(s.data()), "mnop");
    EXPECT_EQ(s.start(), 12u);
    EXPECT_EQ(c.bytes_beyond_depth, 0u);
    // Out of order past the depth: held, then taken in order when the hole fills.
    add(s, 21, kAck, "uv", c);
    add(s, 17, kAck, "qrst", c);
    EXPECT_EQ(as_text(s.data()), "mnopqrstuv");
    EXPECT_EQ(c.gaps, 0u);
    EXPECT_EQ(s.seen_bytes(), 22u);
}

TEST(TcpStream, PassingGivesUpAHoleRatherThanDropTheStream) {
    TcpStream s(16);
    s.set_passing(true);
    ReassemblyCounters c;
    add(s, 0, kSyn, "", c);
    add(s, 1, kAck, "ab", c);
    s.discard(2);
    add(s, 10, kAck, "0123456789", c);  // held behind a 7-byte hole
    // Would hold 20 bytes, over the depth: the hole is given up and the stream goes on.
    add(s, 20, kAck, "ABCDEFGHIJ", c);
    EXPECT_EQ(as_text(s.data()), "0123456789ABCDEFGHIJ");
    EXPECT_EQ(c.gaps, 1u);
    EXPECT_EQ(c.bytes_beyond_depth, 0u);
    ASSERT_EQ(s.gaps().size(), 1u);
    EXPECT_EQ(s.gaps()[0].at, 2u);
    EXPECT_EQ(s.gaps()[0].bytes, 7u);
    EXPECT_EQ(s.missed_bytes(), 7u);
    // Without passing the same segment is dropped: the hole waits for the flow's end.
    TcpStream kept(16);
    ReassemblyCounters k;
    add(kept, 0, kSyn, "", k);
    add(kept, 1, kAck, "ab", k);
    add(kept, 10, kAck, "0123456789", k);
    add(kept, 20, kAck, "ABCDEFGHIJ", k);
    EXPECT_EQ(k.gaps, 0u);
    EXPECT_EQ(k.bytes_beyond_depth, 10u);
}

TEST(TcpStream, PassingStopsAfterTooManyHolesAndCannotStartAfterALoss) {
    TcpStream s(4);
    s.set_passing(true);
    ReassemblyCounters c;
    add(s, 0, kSyn, "", c);
    std::uint32_t seq = 1;
    // Each round: a 4-byte segment behind a 1-byte hole, then one that forces the hole out.
    for (std::size_t i = 0; i <= TcpStream::kMaxPassedGaps; ++i) {
        add(s, seq + 1, kAck, "wxyz", c);
        add(s, seq + 6, kAck, "v", c);
        s.discard(s.size());
        seq += 5;
    }
    EXPECT_FALSE(s.passing());
    EXPECT_EQ(s.gaps().size(), TcpStream::kMaxPassedGaps);
    const std::uint64_t before = c.bytes_beyond_depth;
    add(s, seq + 100, kAck, "late", c);  // past the depth, not passing: dropped
    EXPECT_GT(c.bytes_beyond_depth, before);
    TcpStream lost(4);
    ReassemblyCounters l;
    add(lost, 0, kSyn, "", l);
    add(lost, 1, kAck, "abcdef", l);  // two bytes past the depth dropped
    lost.set_passing(true);
    EXPECT_FALSE(lost.passing()) << "bytes were lost past the depth: nothing to pass on";
}

// ---- FlowTable ---------------------------------------------------------------------------

IpAddress v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
    IpAddress ip;
    ip.family = 4;
    ip.bytes[0] = a;
    ip.bytes[1] = b;
    ip.bytes[2] = c;
    ip.bytes[3] = d;
    return ip;
}

const IpAddress kClient = v4(192, 168, 1, 10);
const IpAddress kServer = v4(10, 0, 0, 1);

// Packets for the flow-table tests; the payload must outlive update(), so it is owned here.
struct Pkt {
    DecodedPacket d;
    std::string body;
};

DecodedPacket make(const IpAddress& src, std::uint16_t sport, const IpAddress& dst,
                   std::uint16_t dport, std::uint8_t flags, std::uint32_t seq,
                   const std::string& body, std::int64_t ts_ns, std::uint8_t proto = kIpProtoTcp) {
    DecodedPacket p;
    p.ts_ns = ts_ns;
    p.tcp_window = 65535;
    p.src = src;
    p.dst = dst;
    p.src_port = sport;
    p.dst_port = dport;
    p.ip_proto = proto;
    p.tcp_flags = flags;
    p.seq = seq;
    p.payload = std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(body.data()),
                                              body.size());
    return p;
}

constexpr std::int64_t kSecond = 1000000000;

TEST(FlowTable, FlowIdIsSymmetricStableAndNonZero) {
    const FlowEndpoint a{kClient, 40000};
    const FlowEndpoint b{kServer, 80};
    const std::uint64_t id = FlowTable::flow_id(kIpProtoTcp, a, b);
    EXPECT_NE(id, 0u);
    EXPECT_EQ(id, FlowTable::flow_id(kIpProtoTcp, b, a));
    EXPECT_NE(id, FlowTable::flow_id(kIpProtoUdp, a, b));
    // Pinned: ids must match across runs, builds and machines (no seeds, no std::hash).
    EXPECT_EQ(id, 0x374ad631b619f159ULL) << std::hex << "actual 0x" << id;
}

TEST(FlowTable, FlowIdsSpreadOverManyTuples) {
    std::set<std::uint64_t> ids;
    for (std::uint16_t port = 1; port <= 5000; ++port) {
        ids.insert(FlowTable::flow_id(kIpProtoTcp, {kClient, port}, {kServer, 443}));
        ids.insert(FlowTable::flow_id(kIpProtoUdp, {kClient, port}, {kServer, 443}));
        ids.insert(FlowTable::flow_id(kIpProtoTcp, {kClient, 8443}, {kServer, port}));
    }
    EXPECT_EQ(ids.size(), 15000u) << "no collisions among 15000 neighbouring tuples";
    EXPECT_EQ(ids.count(0), 0u);
}

TEST(FlowTable, OriginatorIsTheSynSender) {
    FlowTable table({});
    int dir = -1;
    const std::string none;
    // The responder's SYN-ACK happens to be captured second; the client's SYN decides.
    Flow& flow = table.update(make(kClient, 40000, kServer, 80, kSyn, 100, none, 1), dir);
    EXPECT_EQ(dir, 0);
    EXPECT_EQ(flow.orig.addr, kClient);
    EXPECT_EQ(flow.orig.port, 40000);
    EXPECT_EQ(flow.resp.addr, kServer);
    EXPECT_EQ(flow.id, FlowTable::flow_id(kIpProtoTcp, flow.orig, flow.resp));
    Flow& same = table.update(make(kServer, 80, kClient, 40000, kSyn | kAck, 900, none, 2), dir);
    EXPECT_EQ(&same, &flow);
    EXPECT_EQ(dir, 1);
    EXPECT_EQ(table.size(), 1u);
    EXPECT_EQ(table.counters().flows_created, 1u);
}

TEST(FlowTable, WithoutSynTheFirstSenderOriginatesUnlessItIsAServer) {
    FlowTable table({});
    int dir = -1;
    const std::string body = "data";
    Flow& flow = table.update(make(kServer, 7000, kClient, 40000, kAck, 5, body, 1), dir);
    EXPECT_EQ(dir, 0);
    EXPECT_EQ(flow.orig.addr, kServer);
    EXPECT_FALSE(flow.flipped);
    EXPECT_EQ(flow.bytes[0], 4u);
    EXPECT_EQ(flow.packets[0], 1u);
    EXPECT_EQ(conn_history(flow), "D");

    // Zeek's heuristic: picked up mid-stream from a server's port (IEC 104's 2404) to another
    // port, the sender is the responder.
    Flow& outstation = table.update(make(kServer, 2404, kClient, 1075, kAck, 5, body, 2), dir);
    EXPECT_EQ(dir, 1);
    EXPECT_TRUE(outstation.flipped);
    EXPECT_EQ(outstation.orig.addr, kClient);
    EXPECT_EQ(outstation.orig.port, 1075);
    EXPECT_EQ(outstation.packets[1], 1u);
    EXPECT_EQ(conn_history(outstation), "^d");
    // A SYN-ACK first, and a UDP answer first, alike.
    Flow& synack = table.update(make(kServer, 80, kClient, 6705, kSyn | kAck, 9, "", 3), dir);
    EXPECT_EQ(dir, 1);
    EXPECT_EQ(conn_history(synack), "^h");
    table.update(make(kServer, 53, kClient, 5353, 0, 0, "answer", 4, kIpProtoUdp), dir);
    EXPECT_EQ(dir, 1);
    // A bare SYN decides by itself, whatever its ports; two server ports flip nothing.
    Flow& syn = table.update(make(kServer, 502, kClient, 4446, kSyn, 0, "", 5), dir);
    EXPECT_EQ(dir, 0);
    EXPECT_FALSE(syn.flipped);
    Flow& both = table.update(make(kServer, 445, kClient, 80, kAck, 5, body, 6), dir);
    EXPECT_EQ(dir, 0);
    EXPECT_FALSE(both.flipped);
}

TEST(FlowTable, ReassemblesBothDirections) {
    FlowTable table({});
    int dir = -1;
    const std::string none;
    const std::string get = "GET / HTTP/1.1\r\n\r\n";
    const std::string ok1 = "HTTP/1.1 200 OK\r\n";
    const std::string ok2 = "\r\nbody";
    table.update(make(kClient, 40000, kServer, 80, kSyn, 100, none, 1), dir);
    table.update(make(kServer, 80, kClient, 40000, kSyn | kAck, 900, none, 2), dir);
    table.update(make(kClient, 40000, kServer, 80, kAck, 101, get, 3), dir);
    table.update(make(kServer, 80, kClient, 40000, kAck,
                      901 + static_cast<std::uint32_t>(ok1.size()), ok2, 4),
                 dir);
    Flow& flow = table.update(make(kServer, 80, kClient, 40000, kAck, 901, ok1, 5), dir);
    EXPECT_EQ(dir, 1);
    ASSERT_TRUE(flow.stream[0] && flow.stream[1]);
    EXPECT_EQ(as_text(flow.stream[0]->data()), get);
    EXPECT_EQ(as_text(flow.stream[1]->data()), ok1 + ok2);
    EXPECT_EQ(flow.packets[0], 2u);
    EXPECT_EQ(flow.packets[1], 3u);
    EXPECT_EQ(flow.bytes[1], ok1.size() + ok2.size());
    EXPECT_EQ(flow.first_ts_ns, 1);
    EXPECT_EQ(flow.last_ts_ns, 5);
    EXPECT_EQ(table.counters().reassembly.out_of_order, 1u);
}

TEST(FlowTable, UdpFlowsHaveNoStreams) {
    FlowTable table({});
    int dir = -1;
    const std::string q = "q";
    Flow& flow = table.update(make(kClient, 5353, kServer, 53, 0, 0, q, 1, kIpProtoUdp), dir);
    EXPECT_FALSE(flow.stream[0]);
    EXPECT_FALSE(flow.stream[1]);
    table.update(make(kServer, 53, kClient, 5353, 0, 0, q, 2, kIpProtoUdp), dir);
    EXPECT_EQ(dir, 1);
    EXPECT_EQ(table.size(), 1u);
}

TEST(FlowTable, RstClosesAndEndsTheFlow) {
    std::vector<std::string> ended;
    FlowTable table({}, [&](Flow& f) { ended.push_back(as_text(f.stream[0]->data())); });
    int dir = -1;
    const std::string none;
    const std::string body = "bye";
    table.update(make(kClient, 40000, kServer, 80, kSyn, 0, none, 1), dir);
    Flow& flow = table.update(make(kClient, 40000, kServer, 80, kRst | kAck, 1, body, 2), dir);
    EXPECT_TRUE(flow.closed);
    EXPECT_EQ(as_text(flow.stream[0]->data()), "bye") << "the closing packet is still readable";
    EXPECT_TRUE(ended.empty()) << "the end handler runs at the next call";

    // The next packet of the same 5-tuple starts a new flow with the same id.
    const std::uint64_t old_id = flow.id;
    Flow& next = table.update(make(kClient, 40000, kServer, 80, kSyn, 500, none, 3), dir);
    ASSERT_EQ(ended.size(), 1u);
    EXPECT_EQ(ended[0], "bye");
    EXPECT_FALSE(next.closed);
    EXPECT_EQ(next.id, old_id);
    EXPECT_EQ(next.packets[0], 1u);
    EXPECT_EQ(table.size(), 1u);
    EXPECT_EQ(table.counters().flows_created, 2u);
}

TEST(FlowTable, FinBothWaysCloses) {
    int ended = 0;
    FlowTable table({}, [&](Flow&) { ++ended; });
    int dir = -1;
    const std::string none;
    table.update(make(kClient, 40000, kServer, 80, kSyn, 0, none, 1), dir);
    table.update(make(kServer, 80, kClient, 40000, kSyn | kAck, 0, none, 2), dir);
    Flow& half = table.update(make(kClient, 40000, kServer, 80, kFin | kAck, 1, none, 3), dir);
    EXPECT_FALSE(half.closed) << "one FIN is a half close";
    Flow& done = table.update(make(kServer, 80, kClient, 40000, kFin | kAck, 1, none, 4), dir);
    EXPECT_TRUE(done.closed);
    table.flush_all();
    EXPECT_EQ(ended, 1) << "flush_all ends the closed flow exactly once";
    EXPECT_EQ(table.size(), 0u);
}

TEST(FlowTable, StrayPacketsAfterCloseJoinTheClosedFlow) {
    int ended = 0;
    FlowTable table({}, [&](Flow&) { ++ended; });
    int dir = -1;
    const std::string none;
    table.update(make(kClient, 40000, kServer, 80, kSyn, 0, none, 1), dir);
    table.update(make(kServer, 80, kClient, 40000, kSyn | kAck, 0, none, 2), dir);
    table.update(make(kClient, 40000, kServer, 80, kFin | kAck, 1, none, 3), dir);
    table.update(make(kServer, 80, kClient, 40000, kFin | kAck, 1, none, 4), dir);
    // The last ACK, and a late retransmission with data, arrive after both FINs.
    Flow& last = table.update(make(kClient, 40000, kServer, 80, kAck, 2, none, 5), dir);
    EXPECT_EQ(ended, 1) << "the end handler ran once, at the close";
    EXPECT_TRUE(last.ended);
    EXPECT_EQ(last.packets[0] + last.packets[1], 5u) << "the ACK joined the closed flow";
    Flow& late = table.update(make(kClient, 40000, kServer, 80, kAck, 1, "late", 6), dir);
    EXPECT_TRUE(late.stream[0]->data().empty()) << "no stream data after the end";
    EXPECT_EQ(table.counters().flows_created, 1u);
    table.flush_all();
    EXPECT_EQ(ended, 1) << "an ended flow is not ended twice";
}

TEST(FlowTable, ClosedFlowsLeaveAfterTheLinger) {
    int ended = 0;
    FlowTable table({.close_linger_ns = 1000}, [&](Flow&) { ++ended; });
    int dir = -1;
    const std::string none;
    table.update(make(kClient, 40000, kServer, 80, kSyn, 0, none, 1), dir);
    table.update(make(kClient, 40000, kServer, 80, kRst, 1, none, 2), dir);
    table.update(make(kClient, 40001, kServer, 80, kSyn, 0, none, 3), dir);
    EXPECT_EQ(table.size(), 2u) << "the reset flow lingers";
    table.update(make(kClient, 40001, kServer, 80, kAck, 1, none, 5000), dir);
    EXPECT_EQ(table.size(), 1u) << "and leaves once the linger is over";
    EXPECT_EQ(ended, 1);
    EXPECT_EQ(table.counters().flows_expired, 0u) << "leaving after a close is not an expiry";
}

TEST(FlowTable, EvictsLeastRecentlyUsedWhenFull) {
    std::vector<std::uint16_t> ended_ports;
    FlowTable table({.max_flows = 3}, [&](Flow& f) { ended_ports.push_back(f.orig.port); });
    int dir = -1;
    const std::string none;
    for (std::uint16_t port = 1; port <= 3; ++port) {
        table.update(make(kClient, port, kServer, 80, kSyn, 0, none, port), dir);
    }
    // Port 1 is the oldest, but a packet makes it the most recently used.
    table.update(make(kServer, 80, kClient, 1, kSyn | kAck, 0, none, 4), dir);
    table.update(make(kClient, 4, kServer, 80, kSyn, 0, none, 5), dir);
    EXPECT_EQ(table.size(), 3u);
    EXPECT_EQ(table.counters().flows_evicted, 1u);
    ASSERT_EQ(ended_ports.size(), 1u);
    EXPECT_EQ(ended_ports[0], 2);
    table.update(make(kClient, 5, kServer, 80, kSyn, 0, none, 6), dir);
    ASSERT_EQ(ended_ports.size(), 2u);
    EXPECT_EQ(ended_ports[1], 3);
}

TEST(FlowTable, ExpiresIdleFlowsByPacketTime) {
    std::vector<std::uint16_t> ended_ports;
    FlowTable table({.idle_timeout_ns = 10 * kSecond},
                    [&](Flow& f) { ended_ports.push_back(f.orig.port); });
    int dir = -1;
    const std::string none;
    table.update(make(kClient, 1, kServer, 80, kSyn, 0, none, 0), dir);
    table.update(make(kClient, 2, kServer, 80, kSyn, 0, none, 5 * kSecond), dir);
    table.update(make(kClient, 2, kServer, 80, kAck, 1, none, 10 * kSecond), dir);
    EXPECT_EQ(table.size(), 2u) << "exactly the timeout is not yet idle";
    table.update(make(kClient, 2, kServer, 80, kAck, 1, none, 12 * kSecond), dir);
    EXPECT_EQ(table.size(), 1u);
    EXPECT_EQ(table.counters().flows_expired, 1u);
    ASSERT_EQ(ended_ports.size(), 1u);
    EXPECT_EQ(ended_ports[0], 1);

    // A packet of an idle flow ends it and opens a fresh one.
    Flow& fresh = table.update(make(kClient, 2, kServer, 80, kAck, 1, none, 40 * kSecond), dir);
    EXPECT_EQ(table.counters().flows_expired, 2u);
    EXPECT_EQ(fresh.first_ts_ns, 40 * kSecond);
    // Time running backwards (merged captures) never expires anything early.
    table.update(make(kClient, 3, kServer, 80, kSyn, 0, none, 1 * kSecond), dir);
    EXPECT_EQ(table.size(), 2u);
}

TEST(FlowTable, AbsoluteTimeoutEndsALongConnectionAndGoesOnWithItsRoles) {
    std::vector<std::string> ended;
    FlowTable table({.idle_timeout_ns = 60 * kSecond, .absolute_timeout_ns = 100 * kSecond},
                    [&](Flow& f) { ended.push_back(as_text(f.stream[0]->data())); });
    int dir = -1;
    const std::string none;
    table.update(make(kClient, 502, kServer, 502, kSyn, 0, none, 0), dir);
    table.update(make(kServer, 502, kClient, 502, kSyn | kAck, 0, none, 1), dir);
    // A polling session: a request every 30 s, never idle, never closed.
    std::uint32_t seq = 1;
    for (std::int64_t t = 30; t < 100; t += 30) {
        table.update(make(kClient, 502, kServer, 502, kAck, seq, "poll", t * kSecond), dir);
        seq += 4;
    }
    EXPECT_TRUE(ended.empty());
    EXPECT_EQ(table.counters().flows_created, 1u);
    // The first packet past 100 s of age is the responder's: the flow ends, and a new one
    // starts with that packet, the client still its originator.
    Flow& next =
        table.update(make(kServer, 502, kClient, 502, kAck, 1, "resp", 100 * kSecond), dir);
    ASSERT_EQ(ended.size(), 1u);
    EXPECT_EQ(ended[0], "pollpollpoll") << "the old flow's stream had its end handler";
    EXPECT_EQ(table.counters().flows_timed_out, 1u);
    EXPECT_EQ(table.counters().flows_expired, 0u);
    EXPECT_EQ(table.counters().flows_created, 2u);
    EXPECT_EQ(dir, 1) << "the server answers, as in the flow before";
    EXPECT_EQ(next.orig.port, 502);
    EXPECT_TRUE(next.orig.addr == kClient);
    EXPECT_EQ(next.first_ts_ns, 100 * kSecond);
    table.update(make(kClient, 502, kServer, 502, kAck, seq, "poll", 130 * kSecond), dir);
    EXPECT_EQ(dir, 0);
    EXPECT_EQ(as_text(next.stream[0]->data()), "poll") << "the new flow picks the stream up";
    EXPECT_EQ(table.size(), 1u);

    // 0 turns it off.
    FlowTable forever({.absolute_timeout_ns = 0}, [&](Flow&) { ended.push_back("forever"); });
    forever.update(make(kClient, 1, kServer, 80, kSyn, 0, none, 0), dir);
    forever.update(make(kClient, 1, kServer, 80, kAck, 1, "x", 250 * kSecond), dir);
    EXPECT_EQ(forever.counters().flows_timed_out, 0u);
    EXPECT_EQ(ended.size(), 1u);
}

TEST(FlowTable, FlushAllEndsEveryFlowWithGapsFlushed) {
    std::vector<std::string> streams;
    FlowTable table({}, [&](Flow& f) { streams.push_back(as_text(f.stream[0]->data())); });
    int dir = -1;
    const std::string none;
    const std::string a = "abc";
    const std::string g = "ghi";
    table.update(make(kClient, 1, kServer, 80, kSyn, 0, none, 1), dir);
    table.update(make(kClient, 1, kServer, 80, kAck, 1, a, 2), dir);
    table.update(make(kClient, 1, kServer, 80, kAck, 7, g, 3), dir);
    table.update(make(kClient, 2, kServer, 80, kSyn, 0, none, 4), dir);
    table.flush_all();
    EXPECT_EQ(table.size(), 0u);
    ASSERT_EQ(streams.size(), 2u);
    EXPECT_EQ(streams[0], "abcghi") << "the owner's last look includes bytes after the hole";
    EXPECT_EQ(streams[1], "");
    EXPECT_EQ(table.counters().reassembly.gaps, 1u);
}

// ---- Real capture ------------------------------------------------------------------------

std::string sha256_hex(std::span<const std::uint8_t> bytes) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(bytes.data(), bytes.size(), digest, &len, EVP_sha256(), nullptr);
    static const char* kHex = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < len; ++i) {
        out.push_back(kHex[digest[i] >> 4]);
        out.push_back(kHex[digest[i] & 15]);
    }
    return out;
}

TEST(FlowTable, ReassemblesRealHttpDownload) {
    const std::filesystem::path path =
        std::filesystem::path(SENNINGEN_SHARED_DATA) / "pcaps/general/http-get-download/trace.pcap";
    if (!std::filesystem::exists(path)) {
        GTEST_SKIP() << "shared data not present: " << path;
    }
    auto file = PcapFile::open(path.string());
    ASSERT_TRUE(file) << file.error().message;
    std::string response;
    FlowTable table({}, [&](Flow& f) {
        if (f.resp.port == 80 && !f.stream[1]->data().empty()) {
            response = as_text(f.stream[1]->data());
        }
    });
    RawPacket raw;
    for (;;) {
        auto more = (*file)->next(raw);
        ASSERT_TRUE(more) << more.error().message;
        if (!*more) {
            break;
        }
        DecodedPacket p;
        p.ts_ns = raw.ts_ns;
        ASSERT_EQ(decode_packet((*file)->linktype(), {raw.data, raw.caplen}, p), DecodeStatus::kOk);
        int dir = -1;
        table.update(p, dir);
    }
    table.flush_all();
    const auto header_end = response.find("\r\n\r\n");
    ASSERT_NE(header_end, std::string::npos);
    const std::string body = response.substr(header_end + 4);
    EXPECT_EQ(body.size(), 4705u);
    EXPECT_EQ(sha256_hex({reinterpret_cast<const std::uint8_t*>(body.data()), body.size()}),
              "4e7c7ef0984119447e743e3ec77e1de52713e345cde03fe7df753a35849bed18");
    EXPECT_EQ(table.counters().reassembly.gaps, 0u);
    EXPECT_EQ(table.counters().reassembly.overlaps, 0u);
}

}  // namespace
}  // namespace senningen::agent
