// IP fragment reassembly: fragments in any order make the datagram they came from (IPv4 and
// IPv6), overlaps keep the first copy and are counted, and what cannot be completed (too old,
// too many, too large, cut by the snap length, contradicting ends) is dropped and counted.
// Through the engine and the worker pool, a fragmented DNS query meets its unfragmented
// answer in one flow, with one worker or two.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include <pcap/dlt.h>

#include "packet_builder.h"
#include "senningen/agent/engine/worker_pool.h"
#include "senningen/agent/flow/defrag.h"

namespace senningen::agent {
namespace {

using test::Bytes;

constexpr std::int64_t kSecond = 1'000'000'000;
const test::Ipv4 kClient{192, 0, 2, 10};
const test::Ipv4 kServer{198, 51, 100, 53};

// The IPv4 fragment of L4 bytes [BEGIN, END) (offsets multiples of 8), as a raw IP frame.
Bytes v4_fragment(const Bytes& l4, std::size_t begin, std::size_t end, std::uint16_t id = 7) {
    test::Ipv4Options opt;
    opt.id = id;
    opt.frag_field = static_cast<std::uint16_t>((end < l4.size() ? 0x2000 : 0) | (begin / 8));
    return test::ipv4(kClient, kServer, kIpProtoUdp, Bytes(l4.begin() + begin, l4.begin() + end),
                      opt);
}

DecodedPacket decoded(const Bytes& frame, DecodeStatus expect = DecodeStatus::kFragment) {
    DecodedPacket p;
    EXPECT_EQ(decode_packet(kLinktypeRaw, frame, p), expect);
    return p;
}

Bytes pattern(std::size_t n, std::uint8_t seed) {
    Bytes b(n);
    for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(seed + i * 7);
    return b;
}

TEST(Defragmenter, FragmentsInAnyOrderMakeTheDatagram) {
    const Bytes l4 = test::udp(5353, 53, pattern(100, 1));  // 108 bytes
    const std::vector<Bytes> frames = {v4_fragment(l4, 0, 40), v4_fragment(l4, 40, 80),
                                       v4_fragment(l4, 80, 108)};
    for (const std::vector<int>& order : {std::vector{0, 1, 2}, std::vector{2, 0, 1},
                                          std::vector{1, 2, 0}}) {
        Defragmenter defrag;
        std::vector<std::uint8_t> whole;
        for (std::size_t i = 0; i < order.size(); ++i) {
            const auto out = defrag.add(decoded(frames[order[i]]), kSecond);
            EXPECT_EQ(out.empty(), i + 1 < order.size()) << "fragment " << i;
            whole.assign(out.begin(), out.end());
        }
        DecodedPacket p = decoded(whole, DecodeStatus::kOk);
        EXPECT_EQ(p.ip_proto, kIpProtoUdp);
        EXPECT_EQ(p.src_port, 5353);
        EXPECT_EQ(p.dst_port, 53);
        EXPECT_EQ(Bytes(p.payload.begin(), p.payload.end()), pattern(100, 1));
        EXPECT_EQ(p.ip_len, 20U + 108U);
        // A valid header: the checksum over it sums to 0xffff.
        std::uint32_t sum = 0;
        for (std::size_t i = 0; i < 20; i += 2) sum += (whole[i] << 8) | whole[i + 1];
        while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
        EXPECT_EQ(sum, 0xffffU);
        EXPECT_EQ(defrag.counters().datagrams, 1U);
        EXPECT_EQ(defrag.pending(), 0U);
        EXPECT_EQ(defrag.held_bytes(), 0U);
    }
}

TEST(Defragmenter, OverlapsKeepTheFirstCopyAndDifferingOnesAreCounted) {
    const Bytes l4 = test::udp(1000, 2000, pattern(56, 3));  // 64 bytes
    Bytes forged = l4;
    for (std::size_t i = 16; i < 40; ++i) forged[i] ^= 0xff;
    Defragmenter defrag;
    EXPECT_TRUE(defrag.add(decoded(v4_fragment(l4, 0, 24)), 0).empty());
    // The same bytes again: a retransmission, not an overlap to count.
    EXPECT_TRUE(defrag.add(decoded(v4_fragment(l4, 0, 24)), 0).empty());
    EXPECT_EQ(defrag.counters().overlaps, 0U);
    // [16, 40) with other bytes where [16, 24) is already held.
    EXPECT_TRUE(defrag.add(decoded(v4_fragment(forged, 16, 40)), 0).empty());
    EXPECT_EQ(defrag.counters().overlaps, 1U);
    const auto out = defrag.add(decoded(v4_fragment(l4, 40, 64)), 0);
    ASSERT_FALSE(out.empty());
    Bytes expect = l4;
    std::copy(forged.begin() + 24, forged.begin() + 40, expect.begin() + 24);
    EXPECT_EQ(Bytes(out.begin() + 20, out.end()), expect);
}

TEST(Defragmenter, Ipv6FragmentsMakeTheDatagram) {
    const test::Ipv6 a = test::ipv6({0x2001, 0xdb8, 0, 0, 0, 0, 0, 1});
    const test::Ipv6 b = test::ipv6({0x2001, 0xdb8, 0, 0, 0, 0, 0, 2});
    const Bytes l4 = test::udp(40000, 53, pattern(60, 9));  // 68 bytes
    const Bytes first = test::ipv6(a, b, 44, test::ipv6_fragment(kIpProtoUdp, 0, true),
                                   Bytes(l4.begin(), l4.begin() + 32));
    const Bytes second = test::ipv6(a, b, 44, test::ipv6_fragment(kIpProtoUdp, 4, false),
                                    Bytes(l4.begin() + 32, l4.end()));
    Defragmenter defrag;
    EXPECT_TRUE(defrag.add(decoded(second), 0).empty());
    const auto out = defrag.add(decoded(first), 0);
    ASSERT_EQ(out.size(), 40U + 68U);
    const Bytes whole(out.begin(), out.end());  // the decoded packet points into it
    DecodedPacket p = decoded(whole, DecodeStatus::kOk);
    EXPECT_EQ(p.src.family, 6);
    EXPECT_EQ(p.dst_port, 53);
    EXPECT_EQ(Bytes(p.payload.begin(), p.payload.end()), pattern(60, 9));
}

TEST(Defragmenter, AnOldDatagramExpiresAndIsCounted) {
    const Bytes l4 = test::udp(1, 2, pattern(40, 0));  // 48 bytes
    Defragmenter defrag;
    EXPECT_TRUE(defrag.add(decoded(v4_fragment(l4, 0, 24)), 0).empty());
    // 31 s later the first fragment is gone: the rest alone is no datagram.
    EXPECT_TRUE(defrag.add(decoded(v4_fragment(l4, 24, 48)), 31 * kSecond).empty());
    EXPECT_EQ(defrag.counters().dropped, 1U);
    EXPECT_EQ(defrag.pending(), 1U);
    defrag.flush();
    EXPECT_EQ(defrag.counters().dropped, 2U);
    EXPECT_EQ(defrag.pending(), 0U);
    EXPECT_EQ(defrag.counters().datagrams, 0U);
}

TEST(Defragmenter, TheOldestGoesWhenTheTableIsFull) {
    const Bytes l4 = test::udp(1, 2, pattern(40, 0));
    Defragmenter defrag;
    for (std::size_t i = 0; i <= Defragmenter::kMaxDatagrams; ++i) {
        const auto id = static_cast<std::uint16_t>(i);
        EXPECT_TRUE(defrag.add(decoded(v4_fragment(l4, 0, 24, id)),
                               static_cast<std::int64_t>(i)).empty());
    }
    EXPECT_EQ(defrag.pending(), Defragmenter::kMaxDatagrams);
    EXPECT_EQ(defrag.counters().dropped, 1U);
    // Datagram 1 is still there and completes; datagram 0 went.
    EXPECT_FALSE(defrag.add(decoded(v4_fragment(l4, 24, 48, 1)), 5000).empty());
    EXPECT_TRUE(defrag.add(decoded(v4_fragment(l4, 24, 48, 0)), 5000).empty());
}

TEST(Defragmenter, ImpossibleFragmentsDropTheirDatagram) {
    const Bytes l4 = test::udp(1, 2, pattern(40, 0));
    {  // Beyond the 65,535 bytes an IPv4 packet can hold.
        Defragmenter defrag;
        test::Ipv4Options opt;
        opt.frag_field = 8188;  // offset 65,504: 20 + 65,504 + 48 > 65,535
        EXPECT_TRUE(defrag.add(decoded(test::ipv4(kClient, kServer, kIpProtoUdp, l4, opt)), 0)
                        .empty());
        EXPECT_EQ(defrag.counters().dropped, 1U);
        EXPECT_EQ(defrag.pending(), 0U);
    }
    {  // Cut by the snap length: its bytes are not all there.
        Defragmenter defrag;
        EXPECT_TRUE(defrag.add(decoded(v4_fragment(l4, 0, 24)), 0).empty());
        Bytes cut = v4_fragment(l4, 24, 48);
        cut.resize(cut.size() - 5);
        EXPECT_TRUE(defrag.add(decoded(cut), 0).empty());
        EXPECT_EQ(defrag.counters().dropped, 2U);
        EXPECT_EQ(defrag.pending(), 0U);
    }
    {  // Each fragment fits beside its own 20-byte header, the whole not beside the first
       // fragment's 60-byte one.
        Defragmenter defrag;
        test::Ipv4Options first;
        first.option_bytes = 40;
        first.frag_field = 0x2000;
        EXPECT_TRUE(defrag.add(decoded(test::ipv4(kClient, kServer, kIpProtoUdp, l4, first)), 0)
                        .empty());
        test::Ipv4Options last;
        last.frag_field = static_cast<std::uint16_t>((65512 - 48) / 8);  // ends at 65,512
        EXPECT_TRUE(
            defrag.add(decoded(test::ipv4(kClient, kServer, kIpProtoUdp, l4, last)), 0).empty());
        EXPECT_EQ(defrag.pending(), 1U);
        Bytes middle(65512 - 48 - 48, 0x55);
        test::Ipv4Options mid;
        mid.frag_field = static_cast<std::uint16_t>(0x2000 | (48 / 8));
        // The middle is too long for one frame, so its bytes come in 1,480-byte pieces.
        for (std::size_t at = 0; at < middle.size(); at += 1480) {
            const std::size_t n = std::min<std::size_t>(1480, middle.size() - at);
            mid.frag_field = static_cast<std::uint16_t>(0x2000 | ((48 + at) / 8));
            EXPECT_TRUE(defrag
                            .add(decoded(test::ipv4(kClient, kServer, kIpProtoUdp,
                                                    Bytes(middle.begin() + at,
                                                          middle.begin() + at + n),
                                                    mid)),
                                 0)
                            .empty());
        }
        EXPECT_EQ(defrag.pending(), 0U);
        EXPECT_EQ(defrag.counters().datagrams, 0U);
        EXPECT_GT(defrag.counters().dropped, 40U);
    }
    {  // Two last fragments that disagree on where the datagram ends.
        Defragmenter defrag;
        EXPECT_TRUE(defrag.add(decoded(v4_fragment(l4, 24, 48)), 0).empty());
        const Bytes longer = test::udp(1, 2, pattern(48, 0));  // 56 bytes
        EXPECT_TRUE(defrag.add(decoded(v4_fragment(longer, 24, 56)), 0).empty());
        EXPECT_EQ(defrag.counters().dropped, 2U);
        EXPECT_EQ(defrag.pending(), 0U);
    }
}

// A DNS query split over two IPv4 fragments, then its answer whole.
std::vector<Bytes> dns_exchange() {
    Bytes query = {0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
    for (const std::string label : {"fragmented", "example"}) {
        query.push_back(static_cast<std::uint8_t>(label.size()));
        query.insert(query.end(), label.begin(), label.end());
    }
    query.insert(query.end(), {0x00, 0x00, 0x01, 0x00, 0x01});
    Bytes answer = query;
    answer[2] = 0x81;
    answer[3] = 0x80;
    answer[7] = 0x01;  // one answer
    answer.insert(answer.end(), {0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x0e, 0x10,
                                 0x00, 0x04, 192, 0, 2, 77});
    const Bytes l4 = test::udp(33000, 53, query);
    test::Ipv4Options first;
    first.frag_field = 0x2000;
    test::Ipv4Options second;
    second.frag_field = 16 / 8;
    return {test::ethernet(0x0800, test::ipv4(kClient, kServer, kIpProtoUdp,
                                              Bytes(l4.begin(), l4.begin() + 16), first)),
            test::ethernet(0x0800, test::ipv4(kClient, kServer, kIpProtoUdp,
                                              Bytes(l4.begin() + 16, l4.end()), second)),
            test::ethernet(0x0800, test::ipv4(kServer, kClient, kIpProtoUdp,
                                              test::udp(53, 33000, answer)))};
}

TEST(Defragmenter, AFragmentedQueryMeetsItsAnswerInOneFlow) {
    for (const std::size_t workers : {1U, 2U}) {
        std::vector<std::string> records;
        WorkerOutputs outputs;
        outputs.record = [&](const std::string& line) { records.push_back(line); };
        EngineOptions options;
        WorkerPool pool(workers, DLT_EN10MB, options, nullptr, nullptr, nullptr,
                        std::move(outputs));
        std::int64_t ts = kSecond;
        for (const Bytes& frame : dns_exchange()) {
            const auto size = static_cast<std::uint32_t>(frame.size());
            pool.process(RawPacket{ts += 1000, frame.data(), size, size});
        }
        pool.finish();
        const EngineCounters c = pool.counters();
        EXPECT_EQ(c.packets, 3U) << workers << " workers";
        EXPECT_EQ(c.fragments, 2U);
        EXPECT_EQ(c.fragment_datagrams, 1U);
        EXPECT_EQ(c.fragments_dropped, 0U);
        EXPECT_EQ(pool.flow_counters().flows_created, 1U) << "query and answer, one flow";
        const auto has = [&](const std::string& needle) {
            return std::count_if(records.begin(), records.end(), [&](const std::string& r) {
                return r.find(needle) != std::string::npos;
            });
        };
        EXPECT_EQ(has("\"event_type\":\"dns\""), 2) << "the query and the answer";
        EXPECT_EQ(has("fragmented.example"), 2);
        EXPECT_EQ(has("192.0.2.77"), 1);
        EXPECT_EQ(has("\"orig_pkts\":1"), 1) << "the datagram counts once in its flow";
    }
}

}  // namespace
}  // namespace senningen::agent
