// Link, network and transport decoding. Every read goes through a bounds check against the
// captured bytes; lengths claimed by headers only ever shrink the view, never grow it.
#include "senningen/agent/decode/packet.h"

#include <arpa/inet.h>
#include <pcap/dlt.h>

#include <charconv>
#include <cstring>

namespace senningen::agent {
namespace {

using Bytes = std::span<const std::uint8_t>;

constexpr std::uint16_t kEtherTypeIpv4 = 0x0800;
constexpr std::uint16_t kEtherTypeIpv6 = 0x86dd;
constexpr std::uint16_t kEtherTypeVlan = 0x8100;
constexpr std::uint16_t kEtherTypeQinQ = 0x88a8;
constexpr std::uint16_t kEtherTypeQinQOld = 0x9100;  // pre-802.1ad vendor tag, still seen

// BSD loopback address families: the capturing OS decides the number for IPv6.
constexpr std::uint32_t kBsdAfInet = 2;
constexpr std::uint32_t kBsdAfInet6Bsd = 24;
constexpr std::uint32_t kBsdAfInet6FreeBsd = 28;
constexpr std::uint32_t kBsdAfInet6Darwin = 30;

constexpr std::uint8_t kIpv6HopByHop = 0;
constexpr std::uint8_t kIpv6Routing = 43;
constexpr std::uint8_t kIpv6Fragment = 44;
constexpr std::uint8_t kIpv6DestOpts = 60;
constexpr std::uint8_t kIpv6Mobility = 135;
constexpr std::uint8_t kIpv6Hip = 139;
constexpr std::uint8_t kIpv6Shim6 = 140;
constexpr std::uint8_t kIpProtoAh = 51;

// Far more than any real stack emits; a frame with more is treated as hostile.
constexpr int kMaxVlanTags = 8;
constexpr int kMaxIpv6ExtHeaders = 16;

std::uint16_t be16(const std::uint8_t* p) {
    return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}

std::uint32_t be32(const std::uint8_t* p) {
    return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
           std::uint32_t{p[3]};
}

std::uint32_t le32(const std::uint8_t* p) {
    return (std::uint32_t{p[3]} << 24) | (std::uint32_t{p[2]} << 16) | (std::uint32_t{p[1]} << 8) |
           std::uint32_t{p[0]};
}

// TRANSPORT is what the IP header claims (the view may be shorter when the snap length cut
// the frame). A header that does not fit the claim is malformed; one that fits the claim but
// not the captured bytes is truncated.
DecodeStatus decode_transport(Bytes transport, std::size_t claimed, DecodedPacket& out) {
    if (out.ip_proto == kIpProtoTcp) {
        if (claimed < 20) {
            return DecodeStatus::kMalformed;
        }
        if (transport.size() < 20) {
            return DecodeStatus::kTruncated;
        }
        const std::uint8_t* h = transport.data();
        const std::size_t header_len = std::size_t{static_cast<std::uint8_t>(h[12] >> 4)} * 4;
        if (header_len < 20 || header_len > claimed) {
            return DecodeStatus::kMalformed;
        }
        if (header_len > transport.size()) {
            return DecodeStatus::kTruncated;
        }
        out.src_port = be16(h);
        out.dst_port = be16(h + 2);
        out.seq = be32(h + 4);
        out.ack = be32(h + 8);
        out.tcp_flags = h[13];
        out.tcp_window = be16(h + 14);
        out.payload = transport.subspan(header_len);
        out.transport = transport;
        out.transport_len = static_cast<std::uint32_t>(claimed);
        return DecodeStatus::kOk;
    }
    if (out.ip_proto == kIpProtoUdp) {
        if (claimed < 8) {
            return DecodeStatus::kMalformed;
        }
        if (transport.size() < 8) {
            return DecodeStatus::kTruncated;
        }
        const std::uint8_t* h = transport.data();
        const std::size_t udp_len = be16(h + 4);
        if (udp_len < 8 || udp_len > claimed) {
            return DecodeStatus::kMalformed;
        }
        out.src_port = be16(h);
        out.dst_port = be16(h + 2);
        const std::size_t end = udp_len < transport.size() ? udp_len : transport.size();
        out.payload = transport.subspan(8, end - 8);
        out.transport = transport.first(end);
        out.transport_len = static_cast<std::uint32_t>(udp_len);
        return DecodeStatus::kOk;
    }
    return DecodeStatus::kOtherTransport;
}

DecodeStatus decode_ipv4(Bytes ip, DecodedPacket& out) {
    if (ip.size() < 20) {
        return DecodeStatus::kTruncated;
    }
    const std::uint8_t* h = ip.data();
    if ((h[0] >> 4) != 4) {
        return DecodeStatus::kMalformed;
    }
    const std::size_t header_len = std::size_t{static_cast<std::uint8_t>(h[0] & 0x0f)} * 4;
    if (header_len < 20) {
        return DecodeStatus::kMalformed;
    }
    std::size_t total_len = be16(h + 2);
    // Captures taken on a host with segmentation offload show total length 0 for segments
    // larger than 64 KiB; the captured length is then the only length there is.
    if (total_len == 0) {
        total_len = ip.size();
    }
    if (total_len < header_len) {
        return DecodeStatus::kMalformed;
    }
    if (ip.size() < header_len) {
        return DecodeStatus::kTruncated;
    }
    out.ip_len = static_cast<std::uint32_t>(total_len);
    out.src.family = 4;
    out.dst.family = 4;
    std::memcpy(out.src.bytes.data(), h + 12, 4);
    std::memcpy(out.dst.bytes.data(), h + 16, 4);
    out.ip_proto = h[9];

    // Ethernet pads short frames: the IP total length, not the frame, ends the packet.
    const std::size_t end = total_len < ip.size() ? total_len : ip.size();
    out.ip_header = ip.first(header_len);
    const std::uint16_t frag = be16(h + 6);
    if ((frag & 0x3fff) != 0) {  // more-fragments flag or a non-zero offset
        out.frag_id = be16(h + 4);
        out.frag_offset = std::uint32_t{static_cast<std::uint16_t>(frag & 0x1fff)} * 8;
        out.frag_more = (frag & 0x2000) != 0;
        out.frag_len = static_cast<std::uint32_t>(total_len - header_len);
        out.payload = ip.subspan(header_len, end - header_len);
        return DecodeStatus::kFragment;
    }
    return decode_transport(ip.subspan(header_len, end - header_len), total_len - header_len, out);
}

DecodeStatus decode_ipv6(Bytes ip, DecodedPacket& out) {
    if (ip.size() < 40) {
        return DecodeStatus::kTruncated;
    }
    const std::uint8_t* h = ip.data();
    if ((h[0] >> 4) != 6) {
        return DecodeStatus::kMalformed;
    }
    std::size_t payload_len = be16(h + 4);
    // 0 is a jumbogram or an offloaded segment: trust the captured length, as for IPv4.
    if (payload_len == 0) {
        payload_len = ip.size() - 40;
    }
    out.ip_len = static_cast<std::uint32_t>(40 + payload_len);
    out.src.family = 6;
    out.dst.family = 6;
    std::memcpy(out.src.bytes.data(), h + 8, 16);
    std::memcpy(out.dst.bytes.data(), h + 24, 16);
    out.ip_header = ip.first(40);

    const std::size_t avail = ip.size() - 40;
    Bytes rest = ip.subspan(40, payload_len < avail ? payload_len : avail);
    std::size_t claimed = payload_len;
    std::uint8_t next = h[6];
    out.ip_proto = next;

    for (int i = 0; i <= kMaxIpv6ExtHeaders; ++i) {
        std::size_t ext_len = 0;
        bool fragment = false;
        switch (next) {
            case kIpv6HopByHop:
            case kIpv6Routing:
            case kIpv6DestOpts:
            case kIpv6Mobility:
            case kIpv6Hip:
            case kIpv6Shim6:
                if (claimed < 2) {
                    return DecodeStatus::kMalformed;
                }
                if (rest.size() < 2) {
                    return DecodeStatus::kTruncated;
                }
                ext_len = (std::size_t{rest[1]} + 1) * 8;
                break;
            case kIpProtoAh:
                if (claimed < 2) {
                    return DecodeStatus::kMalformed;
                }
                if (rest.size() < 2) {
                    return DecodeStatus::kTruncated;
                }
                ext_len = (std::size_t{rest[1]} + 2) * 4;  // AH counts 32-bit words
                break;
            case kIpv6Fragment:
                ext_len = 8;
                fragment = true;
                break;
            default: out.ip_proto = next; return decode_transport(rest, claimed, out);
        }
        if (ext_len > claimed) {
            return DecodeStatus::kMalformed;
        }
        if (ext_len > rest.size()) {
            return DecodeStatus::kTruncated;
        }
        const std::uint8_t following = rest[0];
        if (fragment) {
            const std::uint16_t offset_flags = be16(rest.data() + 2);
            // An atomic fragment (offset 0, no more fragments) is a whole packet (RFC 6946).
            if ((offset_flags & 0xfff9) != 0) {
                out.ip_proto = following;
                out.frag_id = be32(rest.data() + 4);
                out.frag_offset = std::uint32_t{static_cast<std::uint16_t>(offset_flags & 0xfff8)};
                out.frag_more = (offset_flags & 1) != 0;
                out.frag_len = static_cast<std::uint32_t>(claimed - 8);
                out.payload = rest.subspan(8);
                return DecodeStatus::kFragment;
            }
        }
        next = following;
        out.ip_proto = next;
        rest = rest.subspan(ext_len);
        claimed -= ext_len;
    }
    return DecodeStatus::kMalformed;  // more extension headers than any sane stack sends
}

DecodeStatus decode_ip_by_version(Bytes ip, DecodedPacket& out) {
    if (ip.empty()) {
        return DecodeStatus::kTruncated;
    }
    switch (ip[0] >> 4) {
        case 4: return decode_ipv4(ip, out);
        case 6: return decode_ipv6(ip, out);
        default: return DecodeStatus::kMalformed;
    }
}

// ETHERTYPE was read just before PAYLOAD; VLAN tags are peeled off here so that every link
// type carrying an EtherType (Ethernet, both SLL versions) shares one path.
DecodeStatus decode_ethertype(std::uint16_t ethertype, Bytes payload, DecodedPacket& out) {
    for (int tags = 0;; ++tags) {
        if (ethertype != kEtherTypeVlan && ethertype != kEtherTypeQinQ &&
            ethertype != kEtherTypeQinQOld) {
            break;
        }
        if (tags == kMaxVlanTags) {
            return DecodeStatus::kMalformed;
        }
        if (payload.size() < 4) {
            return DecodeStatus::kTruncated;
        }
        if (tags == 0) {
            out.vlan = be16(payload.data()) & 0x0fff;
        }
        ethertype = be16(payload.data() + 2);
        payload = payload.subspan(4);
    }
    switch (ethertype) {
        case kEtherTypeIpv4: return decode_ipv4(payload, out);
        case kEtherTypeIpv6: return decode_ipv6(payload, out);
        default: return DecodeStatus::kNotIp;  // ARP, LLDP, 802.3 length fields, ...
    }
}

DecodeStatus decode_bsd_loopback(Bytes frame, bool network_order, DecodedPacket& out) {
    if (frame.size() < 4) {
        return DecodeStatus::kTruncated;
    }
    std::uint32_t family = network_order ? be32(frame.data()) : le32(frame.data());
    // DLT_NULL is in the byte order of the capturing host, which the file does not tell us;
    // families are small numbers, so a huge value means the other order.
    if (!network_order && family > 0xffff) {
        family = be32(frame.data());
    }
    const Bytes ip = frame.subspan(4);
    switch (family) {
        case kBsdAfInet: return decode_ipv4(ip, out);
        case kBsdAfInet6Bsd:
        case kBsdAfInet6FreeBsd:
        case kBsdAfInet6Darwin: return decode_ipv6(ip, out);
        default: return DecodeStatus::kNotIp;
    }
}

}  // namespace

DecodeStatus decode_packet(int linktype, std::span<const std::uint8_t> frame, DecodedPacket& out) {
    const std::int64_t ts_ns = out.ts_ns;
    out = DecodedPacket{};
    out.ts_ns = ts_ns;

    switch (linktype) {
        case DLT_EN10MB:
            if (frame.size() < 14) {
                return DecodeStatus::kTruncated;
            }
            return decode_ethertype(be16(frame.data() + 12), frame.subspan(14), out);
        case DLT_NULL: return decode_bsd_loopback(frame, false, out);
        case DLT_LOOP: return decode_bsd_loopback(frame, true, out);
        case DLT_RAW:
        case kLinktypeRaw: return decode_ip_by_version(frame, out);
        case DLT_IPV4: return decode_ipv4(frame, out);
        case DLT_IPV6: return decode_ipv6(frame, out);
        case DLT_LINUX_SLL:
            // packet type, ARPHRD type, address length, 8 address bytes, protocol
            if (frame.size() < 16) {
                return DecodeStatus::kTruncated;
            }
            return decode_ethertype(be16(frame.data() + 14), frame.subspan(16), out);
        case DLT_LINUX_SLL2:
            // protocol first, then reserved, ifindex, ARPHRD, packet type, address
            if (frame.size() < 20) {
                return DecodeStatus::kTruncated;
            }
            return decode_ethertype(be16(frame.data()), frame.subspan(20), out);
        default: return DecodeStatus::kUnsupportedLink;
    }
}

const char* to_string(DecodeStatus status) {
    switch (status) {
        case DecodeStatus::kOk: return "ok";
        case DecodeStatus::kNotIp: return "not_ip";
        case DecodeStatus::kUnsupportedLink: return "unsupported_link";
        case DecodeStatus::kTruncated: return "truncated";
        case DecodeStatus::kMalformed: return "malformed";
        case DecodeStatus::kFragment: return "fragment";
        case DecodeStatus::kOtherTransport: return "other_transport";
    }
    return "unknown";
}

std::string IpAddress::to_string() const {
    if (family == 4) {
        // The dotted quad by to_chars: glibc's inet_ntop formats IPv4 with sprintf, and every
        // record and alert writes two addresses.
        std::string out;
        out.reserve(15);
        for (std::size_t i = 0; i < 4; ++i) {
            if (i > 0) out += '.';
            char digits[3];
            out.append(digits, std::to_chars(digits, digits + sizeof digits, bytes[i]).ptr);
        }
        return out;
    }
    char text[INET6_ADDRSTRLEN] = {};
    if (family == 6) {
        // glibc's inet_ntop follows RFC 5952: lowercase, longest zero run (first on a tie)
        // compressed, a single zero field left alone.
        inet_ntop(AF_INET6, bytes.data(), text, sizeof text);
    }
    return text;
}

// ---- checksums --------------------------------------------------------------------------

std::uint64_t internet_sum(std::span<const std::uint8_t> bytes, std::uint64_t sum) {
    const std::uint8_t* p = bytes.data();
    std::size_t n = bytes.size();
    // 32-bit words into a 64-bit sum: no carry is lost before 2^32 words (16 GiB).
    for (; n >= 4; p += 4, n -= 4) {
        std::uint32_t word = 0;
        std::memcpy(&word, p, 4);
        sum += word;
    }
    if (n >= 2) {
        std::uint16_t half = 0;
        std::memcpy(&half, p, 2);
        sum += half;
        p += 2;
        n -= 2;
    }
    if (n == 1) {
        const std::uint8_t last[2] = {*p, 0};
        std::uint16_t half = 0;
        std::memcpy(&half, last, 2);
        sum += half;
    }
    return sum;
}

std::uint16_t internet_fold(std::uint64_t sum) {
    while ((sum >> 16) != 0) sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<std::uint16_t>(sum);
}

std::uint16_t ipv4_header_checksum(std::span<const std::uint8_t> header) {
    const auto field = static_cast<std::uint16_t>(~internet_fold(internet_sum(header)));
    std::uint8_t bytes[2];
    std::memcpy(bytes, &field, 2);  // memory order to network order
    return be16(bytes);
}

ChecksumVerdict verify_checksums(const DecodedPacket& packet) {
    ChecksumVerdict verdict;
    if (packet.src.family == 4 && packet.ip_header.size() >= 20) {
        verdict.ip_bad = internet_fold(internet_sum(packet.ip_header)) != 0xffff;
        if (verdict.ip_bad) verdict.ip_field = be16(packet.ip_header.data() + 10);
    }
    const bool udp = packet.ip_proto == kIpProtoUdp;
    if ((packet.ip_proto != kIpProtoTcp && !udp) || packet.transport_len < (udp ? 8U : 20U) ||
        packet.transport.size() < packet.transport_len) {
        return verdict;  // not all of it was captured
    }
    const std::span<const std::uint8_t> covered = packet.transport.first(packet.transport_len);
    const std::size_t at = udp ? 6 : 16;  // the checksum field
    const std::uint16_t field = be16(covered.data() + at);
    if (udp && field == 0 && packet.src.family == 4) return verdict;  // none computed
    // The pseudo-header: addresses, protocol, length (RFC 793, RFC 768, RFC 8200 8.1).
    std::uint8_t pseudo[40];
    std::size_t pseudo_len = 0;
    const std::size_t address = packet.src.family == 4 ? 4 : 16;
    std::memcpy(pseudo, packet.src.bytes.data(), address);
    std::memcpy(pseudo + address, packet.dst.bytes.data(), address);
    const std::uint32_t len = packet.transport_len;
    if (address == 4) {
        const std::uint8_t tail[4] = {0, packet.ip_proto, static_cast<std::uint8_t>(len >> 8),
                                      static_cast<std::uint8_t>(len)};
        std::memcpy(pseudo + 8, tail, 4);
        pseudo_len = 12;
    } else {
        const std::uint8_t tail[8] = {static_cast<std::uint8_t>(len >> 24),
                                      static_cast<std::uint8_t>(len >> 16),
                                      static_cast<std::uint8_t>(len >> 8),
                                      static_cast<std::uint8_t>(len),
                                      0,
                                      0,
                                      0,
                                      packet.ip_proto};
        std::memcpy(pseudo + 32, tail, 8);
        pseudo_len = 40;
    }
    const std::uint64_t sum = internet_sum(covered, internet_sum({pseudo, pseudo_len}));
    if (internet_fold(sum) == 0xffff) return verdict;
    verdict.transport_bad = true;
    verdict.transport_field = field;
    // The sum without the field (the field's one's complement added takes it out), then the
    // value it should have been; UDP writes a computed zero as 0xffff.
    std::uint16_t field_mem = 0;
    std::memcpy(&field_mem, covered.data() + at, 2);
    const std::uint16_t without = internet_fold(sum + static_cast<std::uint16_t>(~field_mem));
    auto expected_mem = static_cast<std::uint16_t>(~without);
    std::uint8_t bytes[2];
    std::memcpy(bytes, &expected_mem, 2);
    verdict.transport_expected = be16(bytes);
    if (udp && verdict.transport_expected == 0) verdict.transport_expected = 0xffff;
    return verdict;
}

}  // namespace senningen::agent
