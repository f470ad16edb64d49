// IP fragment reassembly, IPv4 and IPv6, before flows see the packets: a datagram's fragments
// (in any order) become one raw IP packet that is decoded and inspected as if it had arrived
// whole, so that splitting a request or a DNS query into fragments hides nothing.
//
// Policy, as documented in docs/agent.md:
// - A datagram is keyed on (addresses, protocol, identification) and kept at most kTimeoutNs
//   of capture time from its first fragment (Linux's ipfrag_time), then dropped (checked at
//   every fragment, oldest first).
// - Overlapping bytes keep the first copy seen (as TCP reassembly does); a fragment whose
//   overlapping bytes differ is counted (an evasion attempt or a broken stack), and the
//   datagram's facts say how many did (the engine writes a weird for its flow).
// - A datagram larger than an IP packet can be, a fragment cut short by the snap length, and a
//   second "last fragment" that disagrees on the length drop the datagram.
// - Memory is bounded: at most kMaxDatagrams datagrams and kMaxBytes of their data; beyond
//   either, the oldest datagram is dropped. Every dropped fragment is counted.
// The reassembled IPv4 packet has the first fragment's header (options included) with the
// fragment fields cleared, the total length and checksum set; the IPv6 packet has the fixed
// header with the fragment's next header (the unfragmentable extension headers are not kept).
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <span>
#include <tuple>
#include <utility>
#include <vector>

#include "senningen/agent/decode/packet.h"

namespace senningen::agent {

struct DefragCounters {
    std::uint64_t fragments = 0;  // given to add()
    std::uint64_t datagrams = 0;  // reassembled and handed back
    std::uint64_t overlaps = 0;   // fragments whose overlapping bytes differed from earlier ones
    std::uint64_t dropped = 0;    // fragments of datagrams given up (expired, evicted, invalid)
    std::uint64_t bad_checksums = 0;  // IPv4 fragments whose header checksum is wrong
};

// What the Defragmenter tells of a datagram it hands back, for the flow's weird record.
struct DatagramFacts {
    std::uint32_t ip_id = 0;                // identification (IPv4: 16 bits, IPv6: 32)
    std::uint32_t differing_fragments = 0;  // whose overlapping bytes differed from earlier ones
    std::uint32_t bad_checksum_fragments = 0;  // IPv4 fragments whose header checksum is wrong
};

class Defragmenter {
public:
    static constexpr std::int64_t kTimeoutNs = 30'000'000'000;
    static constexpr std::size_t kMaxDatagrams = 4096;
    static constexpr std::size_t kMaxBytes = 16 << 20;

    // FRAGMENT was decoded as DecodeStatus::kFragment at capture time TS_NS. When it completes
    // its datagram, returns the whole IP packet (a LINKTYPE_RAW frame), valid until the next
    // call; otherwise an empty span.
    std::span<const std::uint8_t> add(const DecodedPacket& fragment, std::int64_t ts_ns);

    // End of input: the datagrams still incomplete are dropped (and counted).
    void flush();

    // Of the datagram add() last handed back.
    const DatagramFacts& last() const { return last_; }
    const DefragCounters& counters() const { return counters_; }
    std::size_t pending() const { return datagrams_.size(); }
    std::size_t held_bytes() const { return held_; }

private:
    // family, protocol, identification, source, destination
    using Key = std::tuple<std::uint8_t, std::uint8_t, std::uint32_t, IpAddress, IpAddress>;
    struct Datagram {
        std::int64_t first_ts_ns = 0;
        std::vector<std::uint8_t> header;  // from the fragment at offset 0
        std::vector<std::uint8_t> data;    // the payload, each fragment at its offset
        std::vector<std::pair<std::uint32_t, std::uint32_t>> have;  // [begin, end), sorted, merged
        std::int64_t total = -1;  // payload length, once the last fragment has come
        std::uint64_t fragments = 0;
        std::uint32_t differing = 0;  // fragments whose overlapping bytes differed
        std::uint32_t bad_checksums = 0;  // fragments whose IPv4 header checksum is wrong
    };

    using Datagrams = std::map<Key, Datagram>;
    void drop(Datagrams::iterator it);
    void forget(Datagrams::iterator it);  // erases it from both maps
    void expire(std::int64_t ts_ns);
    // Drops the oldest datagrams (never KEEP) until a new datagram fits (NEW_SLOT) and BYTES
    // more of data do.
    void make_room(bool new_slot, std::size_t bytes, const Key* keep);

    Datagrams datagrams_;
    std::set<std::pair<std::int64_t, Key>> by_age_;  // (first fragment's time, key)
    std::size_t held_ = 0;  // bytes of data over all datagrams
    std::vector<std::uint8_t> out_;
    DatagramFacts last_;
    DefragCounters counters_;
};

}  // namespace senningen::agent
