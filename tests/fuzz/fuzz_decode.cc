// libFuzzer target for everything that parses untrusted packet bytes in the agent: the link,
// network and transport decoders under every link type, the DNS reader, and TCP reassembly in
// a tiny flow table, and IP fragment reassembly. The same input is read three ways: as one
// captured frame, as a script of TCP/UDP segments (so that arbitrary orders, overlaps and
// wrap-arounds reach reassembly), and as a script of IP fragments.
// Invariants that must hold for any input abort, so the fuzzer reports them as crashes.
#include <pcap/dlt.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "senningen/agent/decode/dns.h"
#include "senningen/agent/decode/packet.h"
#include "senningen/agent/flow/defrag.h"
#include "senningen/agent/flow/flow_table.h"

namespace {

using namespace senningen::agent;

constexpr std::size_t kDepth = 512;

void check(bool condition) {
    if (!condition) {
        std::abort();
    }
}

void check_flow(const Flow& flow) {
    check(flow.id != 0);
    for (const auto& stream : flow.stream) {
        if (stream) {
            check(stream->data().size() <= kDepth);
        }
    }
}

FlowTableOptions tiny_table() {
    FlowTableOptions options;
    options.max_flows = 3;  // four scripted flows: eviction happens
    options.stream_depth = kDepth;
    options.idle_timeout_ns = 1000;
    return options;
}

void fuzz_frame(std::span<const std::uint8_t> input) {
    static constexpr int kLinkTypes[] = {DLT_EN10MB, DLT_NULL, DLT_LOOP,      DLT_RAW,       101,
                                         DLT_IPV4,   DLT_IPV6, DLT_LINUX_SLL, DLT_LINUX_SLL2};
    FlowTable table(tiny_table(), [](Flow& flow) { check_flow(flow); });
    std::int64_t ts = 0;
    for (int linktype : kLinkTypes) {
        DecodedPacket packet;
        packet.ts_ns = ts++;
        const DecodeStatus status = decode_packet(linktype, input, packet);
        check(to_string(status) != nullptr);
        if (status != DecodeStatus::kOk) {
            continue;
        }
        // Zero-copy means the payload must lie inside the frame.
        check(packet.payload.empty() ||
              (packet.payload.data() >= input.data() &&
               packet.payload.data() + packet.payload.size() <= input.data() + input.size()));
        check(packet.src.family == 4 || packet.src.family == 6);
        check(!packet.src.to_string().empty());
        // The checksums read only what was captured: the transport view lies in the frame.
        check(packet.transport.empty() ||
              (packet.transport.data() >= input.data() &&
               packet.transport.data() + packet.transport.size() <= input.data() + input.size()));
        const ChecksumVerdict checksums = verify_checksums(packet);
        check(!checksums.transport_bad || packet.transport.size() >= packet.transport_len);
        if (packet.ip_proto == kIpProtoUdp) {
            DnsMessage message;
            (void)parse_dns(packet.payload, message);
            (void)looks_like_dns(packet.payload);
        }
        int direction = -1;
        check_flow(table.update(packet, direction));
        check(direction == 0 || direction == 1);
    }
    table.flush_all();
    check(table.size() == 0);
}

void fuzz_dns(std::span<const std::uint8_t> input) {
    DnsMessage message;
    if (parse_dns(input, message) == DnsParseStatus::kOk) {
        for (const auto& question : message.questions) {
            check(question.name.size() <= 253);
        }
    }
    (void)looks_like_dns(input);
}

// Script records: flags, selector, signed 16-bit sequence delta, length, then the bytes.
// The selector picks one of four flows, the direction, the protocol and how far time moves.
void fuzz_reassembly(std::span<const std::uint8_t> input) {
    FlowTable table(tiny_table(), [](Flow& flow) { check_flow(flow); });
    constexpr std::uint32_t kIsn = 0xFFFFFF00u;  // close to the wrap
    std::int64_t ts = 0;
    std::size_t pos = 0;
    while (input.size() - pos >= 5) {
        const std::uint8_t flags = input[pos];
        const std::uint8_t selector = input[pos + 1];
        const auto delta = static_cast<std::int16_t>(
            static_cast<std::uint16_t>(input[pos + 2] << 8) | input[pos + 3]);
        std::size_t len = input[pos + 4];
        pos += 5;
        if (len > input.size() - pos) {
            len = input.size() - pos;
        }
        DecodedPacket packet;
        const bool reply = (selector & 0x04) != 0;
        IpAddress client;
        client.family = 4;
        client.bytes = {10, 0, 0, static_cast<std::uint8_t>(1 + (selector & 0x03))};
        IpAddress server;
        server.family = 4;
        server.bytes = {10, 0, 0, 100};
        packet.src = reply ? server : client;
        packet.dst = reply ? client : server;
        packet.src_port = reply ? 80 : 40000;
        packet.dst_port = reply ? 40000 : 80;
        packet.ip_proto = (selector & 0x80) != 0 ? kIpProtoUdp : kIpProtoTcp;
        packet.tcp_flags = flags;
        packet.seq = kIsn + static_cast<std::uint32_t>(static_cast<std::int32_t>(delta));
        ts += (selector >> 3) & 0x0f;  // up to 15 per record against a timeout of 1000
        packet.ts_ns = ts * 100;
        packet.payload = input.subspan(pos, len);
        pos += len;
        int direction = -1;
        Flow& flow = table.update(packet, direction);
        check_flow(flow);
        check(direction == (reply ? 1 : 0) || flow.orig.addr == server);
        check(table.size() <= 3);
        check(!table.inconsistent_seq() || flow.ip_proto == kIpProtoTcp);
        // CWR, which the table ignores, makes the owner discard half of what the direction
        // keeps: later overlaps are then compared with what is left only.
        auto& stream = flow.stream[direction];
        if ((flags & 0x80) != 0 && stream && !flow.ended) {
            stream->settle();
            stream->discard(stream->start() + stream->data().size() / 2);
        }
    }
    table.flush_all();
    const auto& counters = table.counters();
    check(counters.flows_created >= counters.flows_evicted + counters.flows_expired);
}

// Script records for the Defragmenter: selector (bit 0 more fragments, bit 1 IPv6, bit 2 cut
// by the snap length, bits 3-4 the datagram, bits 5-7 time), 16-bit offset in 8-byte units,
// length, then the bytes. Whatever completes must decode as a whole packet.
void fuzz_fragments(std::span<const std::uint8_t> input) {
    static constexpr std::uint8_t kV4Header[20] = {0x45, 0, 0, 0, 0, 1, 0x20, 0, 64, 17, 0, 0,
                                                   192, 0, 2, 1, 192, 0, 2, 2};
    static constexpr std::uint8_t kV6Header[40] = {0x60, 0, 0, 0, 0, 0, 44, 64, 0x20, 0x01,
                                                   0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                                   1, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0,
                                                   0, 0, 0, 0, 0, 2};
    Defragmenter defrag;
    std::int64_t ts = 0;
    std::size_t pos = 0;
    std::uint64_t fed = 0;
    while (input.size() - pos >= 4) {
        const std::uint8_t selector = input[pos];
        const std::uint32_t units = static_cast<std::uint32_t>(input[pos + 1] << 8 | input[pos + 2]);
        std::size_t len = input[pos + 3];
        pos += 4;
        if (len > input.size() - pos) len = input.size() - pos;
        const bool v6 = (selector & 0x02) != 0;
        DecodedPacket fragment;
        fragment.src.family = fragment.dst.family = v6 ? 6 : 4;
        fragment.src.bytes[0] = 1;
        fragment.dst.bytes[0] = 2;
        fragment.ip_proto = kIpProtoUdp;
        fragment.frag_id = (selector >> 3) & 0x03;
        fragment.frag_offset = (units & 0x1fff) * 8;
        fragment.frag_more = (selector & 0x01) != 0;
        fragment.frag_len = static_cast<std::uint32_t>(len + ((selector & 0x04) != 0 ? 3 : 0));
        fragment.ip_header = v6 ? std::span<const std::uint8_t>(kV6Header)
                                : std::span<const std::uint8_t>(kV4Header);
        fragment.payload = input.subspan(pos, len);
        pos += len;
        ts += std::int64_t{(selector >> 5) & 0x07} * 5'000'000'000;  // past the timeout at times
        const auto whole = defrag.add(fragment, ts);
        ++fed;
        if (!whole.empty()) {
            check(defrag.last().differing_fragments <= fed);
            check(defrag.last().ip_id == fragment.frag_id);
            check(defrag.last().bad_checksum_fragments <= fed);
            DecodedPacket packet;
            check(decode_packet(101, whole, packet) != DecodeStatus::kFragment);
            // The reassembled IPv4 header gets a checksum of its own.
            check(packet.src.family != 4 || !verify_checksums(packet).ip_bad);
            check(whole.size() >= fragment.ip_header.size());
        }
        check(defrag.pending() <= Defragmenter::kMaxDatagrams);
        check(defrag.held_bytes() <= Defragmenter::kMaxBytes);
    }
    defrag.flush();
    check(defrag.pending() == 0 && defrag.held_bytes() == 0);
    check(defrag.counters().dropped <= fed);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const std::uint8_t> input(data, size);
    fuzz_frame(input);
    fuzz_dns(input);
    fuzz_reassembly(input);
    fuzz_fragments(input);
    return 0;
}
