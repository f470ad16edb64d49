// Link, network and transport decoding: Ethernet, 802.1Q/802.1ad (stacked), Linux cooked
// (SLL), raw IP and BSD loopback link types; IPv4 (options, fragments described for the
// Defragmenter), IPv6 (extension headers walked, fragments described); TCP and UDP. Zero-copy: the payload is a
// view into the captured frame. Malformed input is a result code to count, never an error
// path and never a crash.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>

namespace senningen::agent {

struct IpAddress {
    std::uint8_t family = 0;  // 4 or 6
    std::array<std::uint8_t, 16> bytes{};  // IPv4 uses the first 4 bytes

    std::string to_string() const;  // dotted quad, or RFC 5952 text for IPv6
    bool operator==(const IpAddress&) const = default;
    auto operator<=>(const IpAddress&) const = default;
};

// LINKTYPE_RAW: frames that are an IPv4 or IPv6 packet, nothing before it (what the
// Defragmenter hands back). pcap_datalink() normally maps it to DLT_RAW, but a caller that
// reads a file's header itself hands over this value.
inline constexpr int kLinktypeRaw = 101;

inline constexpr std::uint8_t kIpProtoTcp = 6;
inline constexpr std::uint8_t kIpProtoUdp = 17;

namespace tcp_flags {
inline constexpr std::uint8_t kFin = 0x01;
inline constexpr std::uint8_t kSyn = 0x02;
inline constexpr std::uint8_t kRst = 0x04;
inline constexpr std::uint8_t kPsh = 0x08;
inline constexpr std::uint8_t kAck = 0x10;
}  // namespace tcp_flags

struct DecodedPacket {
    std::int64_t ts_ns = 0;
    IpAddress src;
    IpAddress dst;
    std::uint8_t ip_proto = 0;  // 6, 17, or another protocol number
    std::uint16_t src_port = 0;
    std::uint16_t dst_port = 0;
    std::uint16_t vlan = 0;  // outermost VLAN id, 0 when untagged
    std::uint8_t tcp_flags = 0;
    std::uint16_t tcp_window = 0;  // as sent (unscaled)
    std::uint32_t seq = 0;
    std::uint32_t ack = 0;
    // The IP packet's length as its header gives it (IPv4 total length, IPv6 40 + payload
    // length; the captured length when the header says 0): Zeek's conn.log ip_bytes.
    std::uint32_t ip_len = 0;
    std::span<const std::uint8_t> payload;  // transport payload (bounded by IP length and caplen)
    // kOk: the TCP or UDP header and payload as captured, and the length the transport
    // checksum covers (TCP: what the IP header leaves; UDP: its length field). TRANSPORT is
    // shorter when the snap length cut the packet.
    std::span<const std::uint8_t> transport;
    std::uint32_t transport_len = 0;
    // The IPv4 header with its options or the fixed IPv6 header (kOk and kFragment).
    std::span<const std::uint8_t> ip_header;
    // kFragment only: PAYLOAD is the fragment's data (what was captured of it), FRAG_LEN the
    // data length its header claims, and ip_proto the protocol of the whole datagram.
    std::uint32_t frag_id = 0;      // IPv4 identification, IPv6 fragment header identification
    std::uint32_t frag_offset = 0;  // in bytes
    std::uint32_t frag_len = 0;
    bool frag_more = false;  // more fragments follow
};

// The Internet checksum (RFC 1071). internet_sum() adds BYTES to SUM as 32-bit words in memory
// order (an odd last byte padded with a zero); internet_fold() folds such a sum to 16 bits, in
// memory order too: the one's complement sum commutes with a byte swap, so no word is swapped.
// A region whose checksum field is filled in is correct when its sum folds to 0xffff.
std::uint64_t internet_sum(std::span<const std::uint8_t> bytes, std::uint64_t sum = 0);
std::uint16_t internet_fold(std::uint64_t sum);
// The IPv4 header checksum field to write for HEADER, whose checksum field is zero.
std::uint16_t ipv4_header_checksum(std::span<const std::uint8_t> header);

// What the checksums of a packet decode_packet() returned kOk for say: the IPv4 header's, and
// the TCP or UDP checksum over the pseudo-header, header and payload. A checksum is checked
// only when every byte it covers was captured (as Zeek does); a UDP checksum of zero over IPv4
// means none was computed (RFC 768), over IPv6 it is wrong (RFC 8200).
struct ChecksumVerdict {
    bool ip_bad = false;
    bool transport_bad = false;
    std::uint16_t ip_field = 0;  // when ip_bad: the IPv4 header's checksum field
    // When transport_bad: the field's value and the value it should have (network order).
    std::uint16_t transport_field = 0;
    std::uint16_t transport_expected = 0;
};
ChecksumVerdict verify_checksums(const DecodedPacket& packet);

enum class DecodeStatus : std::uint8_t {
    kOk = 0,
    kNotIp,            // ARP, LLDP, ...: not an error, just not ours
    kUnsupportedLink,  // a link type we do not decode
    kTruncated,        // the frame ends inside a header
    kMalformed,        // a header field is impossible (IHL < 5, bad version, ...)
    kFragment,         // an IP fragment, for the Defragmenter (frag_* fields)
    kOtherTransport,   // IP but neither TCP nor UDP (ICMP, ...): addresses are filled in
};

// Decodes one frame of link type LINKTYPE (a DLT_* value). On kOk every field is set; on
// kOtherTransport the addresses and ip_proto are set, on kFragment those and the frag_* fields.
DecodeStatus decode_packet(int linktype, std::span<const std::uint8_t> frame, DecodedPacket& out);

const char* to_string(DecodeStatus status);

}  // namespace senningen::agent
