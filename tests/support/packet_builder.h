// Builds frames byte by byte for decoder, flow and fuzz-seed tests: each layer is a function
// that wraps the layer above it, so a test says exactly which bytes it feeds in.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string_view>
#include <utility>
#include <vector>

namespace senningen::test {

using Bytes = std::vector<std::uint8_t>;

inline void put8(Bytes& b, std::uint8_t v) {
    b.push_back(v);
}

inline void put16(Bytes& b, std::uint16_t v) {
    b.push_back(static_cast<std::uint8_t>(v >> 8));
    b.push_back(static_cast<std::uint8_t>(v));
}

inline void put32(Bytes& b, std::uint32_t v) {
    put16(b, static_cast<std::uint16_t>(v >> 16));
    put16(b, static_cast<std::uint16_t>(v));
}

inline void put_le32(Bytes& b, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) {
        b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
    }
}

inline void append(Bytes& b, const Bytes& tail) {
    b.insert(b.end(), tail.begin(), tail.end());
}

inline Bytes text(std::string_view s) {
    return Bytes(s.begin(), s.end());
}

using Ipv4 = std::array<std::uint8_t, 4>;
using Ipv6 = std::array<std::uint8_t, 16>;

// The Internet checksum (RFC 1071) of the pieces, one after the other, as big-endian 16-bit
// words (each piece of even length but the last, whose odd byte is padded with a zero).
inline std::uint16_t internet_checksum(std::initializer_list<const Bytes*> pieces) {
    std::uint32_t sum = 0;
    for (const Bytes* piece : pieces) {
        for (std::size_t i = 0; i < piece->size(); i += 2) {
            const std::uint8_t low = i + 1 < piece->size() ? (*piece)[i + 1] : 0;
            sum += static_cast<std::uint32_t>(((*piece)[i] << 8) | low);
        }
    }
    while (sum > 0xffff) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return static_cast<std::uint16_t>(~sum);
}

// L4, a TCP or UDP header and payload from SRC to DST (both IPv4 or both IPv6), with its
// checksum filled in over the pseudo-header; other protocols' bytes as they are.
template <std::size_t N>
Bytes with_transport_checksum(const std::array<std::uint8_t, N>& src,
                              const std::array<std::uint8_t, N>& dst, std::uint8_t proto,
                              Bytes l4) {
    const std::size_t at = proto == 6 ? 16 : proto == 17 ? 6 : 0;
    if (at == 0 || l4.size() < at + 2) return l4;
    Bytes pseudo(src.begin(), src.end());
    pseudo.insert(pseudo.end(), dst.begin(), dst.end());
    if (N == 4) {
        put8(pseudo, 0);
        put8(pseudo, proto);
        put16(pseudo, static_cast<std::uint16_t>(l4.size()));
    } else {
        put32(pseudo, static_cast<std::uint32_t>(l4.size()));
        put32(pseudo, proto);
    }
    l4[at] = 0;
    l4[at + 1] = 0;
    std::uint16_t checksum = internet_checksum({&pseudo, &l4});
    if (proto == 17 && checksum == 0) checksum = 0xffff;  // UDP's zero means "none"
    l4[at] = static_cast<std::uint8_t>(checksum >> 8);
    l4[at + 1] = static_cast<std::uint8_t>(checksum);
    return l4;
}

inline Ipv6 ipv6(std::initializer_list<std::uint16_t> groups) {
    Ipv6 a{};
    std::size_t i = 0;
    for (std::uint16_t g : groups) {
        a[i++] = static_cast<std::uint8_t>(g >> 8);
        a[i++] = static_cast<std::uint8_t>(g);
    }
    return a;
}

inline Bytes tcp(std::uint16_t sport, std::uint16_t dport, std::uint32_t seq, std::uint32_t ack,
                 std::uint8_t flags, const Bytes& payload = {}, std::size_t option_bytes = 0) {
    Bytes b;
    put16(b, sport);
    put16(b, dport);
    put32(b, seq);
    put32(b, ack);
    put8(b, static_cast<std::uint8_t>(((20 + option_bytes) / 4) << 4));
    put8(b, flags);
    put16(b, 65535);  // window
    put16(b, 0);      // checksum: ipv4() and ipv6() fill it in
    put16(b, 0);      // urgent pointer
    for (std::size_t i = 0; i < option_bytes; ++i) {
        put8(b, 1);  // NOP
    }
    append(b, payload);
    return b;
}

inline Bytes udp(std::uint16_t sport, std::uint16_t dport, const Bytes& payload) {
    Bytes b;
    put16(b, sport);
    put16(b, dport);
    put16(b, static_cast<std::uint16_t>(8 + payload.size()));
    put16(b, 0);
    append(b, payload);
    return b;
}

struct Ipv4Options {
    std::size_t option_bytes = 0;  // a multiple of 4
    std::uint16_t frag_field = 0;  // flags and fragment offset, as on the wire
    int total_length_delta = 0;    // lie about the total length
    std::uint16_t id = 0x1234;     // identification
    // A TCP or UDP L4 gets its checksum filled in unless this is false (or the packet is a
    // fragment: a whole datagram's L4 is filled in with with_transport_checksum() first).
    bool transport_checksum = true;
};

inline Bytes ipv4(const Ipv4& src, const Ipv4& dst, std::uint8_t proto, const Bytes& l4,
                  const Ipv4Options& opt = {}) {
    Bytes b;
    const std::size_t header_len = 20 + opt.option_bytes;
    put8(b, static_cast<std::uint8_t>(0x40 | (header_len / 4)));
    put8(b, 0);
    put16(b, static_cast<std::uint16_t>(static_cast<int>(header_len + l4.size()) +
                                        opt.total_length_delta));
    put16(b, opt.id);
    put16(b, opt.frag_field);
    put8(b, 64);  // TTL
    put8(b, proto);
    put16(b, 0);  // checksum, filled in below
    b.insert(b.end(), src.begin(), src.end());
    b.insert(b.end(), dst.begin(), dst.end());
    for (std::size_t i = 0; i < opt.option_bytes; ++i) {
        put8(b, 1);  // NOP option
    }
    const auto checksum = internet_checksum({&b});
    b[10] = static_cast<std::uint8_t>(checksum >> 8);
    b[11] = static_cast<std::uint8_t>(checksum);
    const bool fragment = (opt.frag_field & 0x3fff) != 0;
    append(b,
           opt.transport_checksum && !fragment ? with_transport_checksum(src, dst, proto, l4) : l4);
    return b;
}

// FIRST_NEXT is the next-header value of the fixed header: the first extension header's type,
// or the transport protocol when EXT is empty. A TCP or UDP L4 after EXT gets its checksum
// filled in, unless EXT holds a fragment header or TRANSPORT_CHECKSUM is false.
inline Bytes ipv6(const Ipv6& src, const Ipv6& dst, std::uint8_t first_next, const Bytes& ext,
                  const Bytes& l4, bool transport_checksum = true) {
    std::uint8_t proto = first_next;
    for (std::size_t at = 0; at + 1 < ext.size() && proto != 44;) {
        const std::size_t len = proto == 51 ? (std::size_t{ext[at + 1]} + 2) * 4  // AH
                                            : (std::size_t{ext[at + 1]} + 1) * 8;
        proto = ext[at];
        at += len;
    }
    Bytes b;
    put32(b, 0x60000000);
    put16(b, static_cast<std::uint16_t>(ext.size() + l4.size()));
    put8(b, first_next);
    put8(b, 64);  // hop limit
    b.insert(b.end(), src.begin(), src.end());
    b.insert(b.end(), dst.begin(), dst.end());
    append(b, ext);
    append(b,
           transport_checksum && proto != 44 ? with_transport_checksum(src, dst, proto, l4) : l4);
    return b;
}

// A generic 8-byte-unit extension header (hop-by-hop, routing, destination options) whose
// body is padding.
inline Bytes ipv6_ext(std::uint8_t next, std::size_t units_beyond_first = 0) {
    Bytes b;
    put8(b, next);
    put8(b, static_cast<std::uint8_t>(units_beyond_first));
    for (std::size_t i = 0; i < 6 + 8 * units_beyond_first; ++i) {
        put8(b, 0);  // Pad1 / zeroed routing data
    }
    return b;
}

inline Bytes ipv6_fragment(std::uint8_t next, std::uint16_t offset_units, bool more) {
    Bytes b;
    put8(b, next);
    put8(b, 0);
    put16(b, static_cast<std::uint16_t>((offset_units << 3) | (more ? 1 : 0)));
    put32(b, 0xdeadbeef);  // identification
    return b;
}

inline Bytes ethernet(std::uint16_t ethertype, const Bytes& payload,
                      std::initializer_list<std::pair<std::uint16_t, std::uint16_t>> tags = {}) {
    Bytes b = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb};
    for (const auto& [tpid, vid] : tags) {
        put16(b, tpid);
        put16(b, vid);
    }
    put16(b, ethertype);
    append(b, payload);
    return b;
}

inline Bytes linux_sll(std::uint16_t protocol, const Bytes& payload) {
    Bytes b;
    put16(b, 0);  // packet type: to us
    put16(b, 1);  // ARPHRD_ETHER
    put16(b, 6);  // address length
    for (int i = 0; i < 8; ++i) {
        put8(b, static_cast<std::uint8_t>(i < 6 ? 0x10 + i : 0));
    }
    put16(b, protocol);
    append(b, payload);
    return b;
}

inline Bytes linux_sll2(std::uint16_t protocol, const Bytes& payload) {
    Bytes b;
    put16(b, protocol);
    put16(b, 0);  // reserved
    put32(b, 2);  // interface index
    put16(b, 1);  // ARPHRD_ETHER
    put8(b, 0);   // packet type
    put8(b, 6);   // address length
    for (int i = 0; i < 8; ++i) {
        put8(b, static_cast<std::uint8_t>(i < 6 ? 0x10 + i : 0));
    }
    append(b, payload);
    return b;
}

// BSD loopback: the address family as a 4-byte word, little-endian (DLT_NULL written on x86)
// or big-endian (DLT_LOOP, or DLT_NULL from a big-endian host).
inline Bytes bsd_loopback(std::uint32_t family, bool big_endian, const Bytes& payload) {
    Bytes b;
    if (big_endian) {
        put32(b, family);
    } else {
        put_le32(b, family);
    }
    append(b, payload);
    return b;
}

}  // namespace senningen::test
