// DNS header and question reader. Names are walked with every length checked against the
// message and the RFC 1035 limits, and compression pointers may only point backwards and only
// a bounded number of times, so a hostile message can neither loop nor read out of bounds.
#include "senningen/agent/decode/dns.h"

#include <utility>

namespace senningen::agent {
namespace {

constexpr std::size_t kHeaderLen = 12;
constexpr std::size_t kMaxNameWireLen = 255;  // RFC 1035 2.3.4, including the root byte
// A legitimate name needs at most one pointer per label it shares; 127 labels is the most a
// 255-byte name can have.
constexpr int kMaxPointerJumps = 127;

std::uint16_t be16(const std::uint8_t* p) {
    return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}

char to_lower_ascii(std::uint8_t c) {
    return static_cast<char>(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
}

// Reads the name at OFFSET. On kOk, OFFSET is the first byte after the name as written (after
// the first pointer, if any). NAME may be null to validate without allocating.
DnsParseStatus read_name(std::span<const std::uint8_t> msg, std::size_t& offset,
                         std::string* name) {
    std::size_t pos = offset;
    std::size_t resume = 0;  // where parsing continues after the name; set at the first pointer
    bool jumped = false;
    int jumps = 0;
    std::size_t wire_len = 1;  // the terminating root label
    if (name != nullptr) {
        name->clear();
    }
    for (;;) {
        if (pos >= msg.size()) {
            return DnsParseStatus::kTruncated;
        }
        const std::uint8_t len = msg[pos];
        const std::uint8_t kind = len & 0xc0;
        if (kind == 0xc0) {
            if (pos + 1 >= msg.size()) {
                return DnsParseStatus::kTruncated;
            }
            const std::size_t target = (std::size_t{len & 0x3fu} << 8) | msg[pos + 1];
            // Pointers refer to an earlier occurrence (RFC 1035 4.1.4); allowing only backward
            // jumps plus a jump budget rules out loops of any shape.
            if (target >= pos || ++jumps > kMaxPointerJumps) {
                return DnsParseStatus::kMalformed;
            }
            if (!jumped) {
                resume = pos + 2;
                jumped = true;
            }
            pos = target;
            continue;
        }
        if (kind != 0) {
            return DnsParseStatus::kMalformed;  // 0x40/0x80: extended label types, long dead
        }
        if (len == 0) {
            offset = jumped ? resume : pos + 1;
            return DnsParseStatus::kOk;
        }
        wire_len += std::size_t{len} + 1;
        if (wire_len > kMaxNameWireLen) {
            return DnsParseStatus::kMalformed;
        }
        if (pos + 1 + len > msg.size()) {
            return DnsParseStatus::kTruncated;
        }
        if (name != nullptr) {
            if (!name->empty()) {
                name->push_back('.');
            }
            for (std::size_t i = 0; i < len; ++i) {
                name->push_back(to_lower_ascii(msg[pos + 1 + i]));
            }
        }
        pos += 1 + std::size_t{len};
    }
}

struct Header {
    std::uint16_t id;
    std::uint16_t flags;
    std::uint16_t qdcount;
    std::uint16_t ancount;
    std::uint16_t nscount;
    std::uint16_t arcount;
};

Header read_header(const std::uint8_t* p) {
    return Header{be16(p), be16(p + 2), be16(p + 4), be16(p + 6), be16(p + 8), be16(p + 10)};
}

}  // namespace

DnsParseStatus parse_dns(std::span<const std::uint8_t> data, DnsMessage& out) {
    out.questions.clear();
    if (data.size() < kHeaderLen) {
        return DnsParseStatus::kTruncated;
    }
    const Header h = read_header(data.data());
    out.id = h.id;
    out.is_response = (h.flags & 0x8000) != 0;
    out.opcode = static_cast<std::uint8_t>((h.flags >> 11) & 0x0f);
    out.rcode = static_cast<std::uint8_t>(h.flags & 0x0f);

    std::size_t offset = kHeaderLen;
    for (std::uint16_t i = 0; i < h.qdcount; ++i) {
        DnsQuestion question;
        const DnsParseStatus status = read_name(data, offset, &question.name);
        if (status != DnsParseStatus::kOk) {
            return status;
        }
        if (offset + 4 > data.size()) {
            return DnsParseStatus::kTruncated;
        }
        question.qtype = be16(data.data() + offset);
        question.qclass = be16(data.data() + offset + 2);
        offset += 4;
        out.questions.push_back(std::move(question));
    }
    return DnsParseStatus::kOk;
}

bool looks_like_dns(std::span<const std::uint8_t> data) {
    if (data.size() < kHeaderLen) {
        return false;
    }
    const Header h = read_header(data.data());
    const auto opcode = static_cast<std::uint8_t>((h.flags >> 11) & 0x0f);
    // QUERY, IQUERY, STATUS, NOTIFY, UPDATE, DSO; the rest are unassigned.
    if (opcode == 3 || opcode > 6) {
        return false;
    }
    if ((h.flags & 0x0040) != 0) {
        return false;  // the Z bit must be zero (RFC 1035, RFC 6895)
    }
    // Real traffic asks one question (a handful for mDNS); a header of random bytes rarely
    // does.
    if (h.qdcount == 0 || h.qdcount > 16) {
        return false;
    }
    std::size_t offset = kHeaderLen;
    for (std::uint16_t i = 0; i < h.qdcount; ++i) {
        if (read_name(data, offset, nullptr) != DnsParseStatus::kOk || offset + 4 > data.size()) {
            return false;
        }
        const std::uint16_t qtype = be16(data.data() + offset);
        // mDNS borrows the top bit of the class for "unicast response wanted".
        const std::uint16_t qclass = be16(data.data() + offset + 2) & 0x7fff;
        if (qtype == 0 ||
            (qclass != 1 && qclass != 3 && qclass != 4 && qclass != 254 && qclass != 255)) {
            return false;
        }
        offset += 4;
    }
    // Every resource record takes at least 11 bytes (root name, type, class, TTL, rdlength).
    const std::size_t records = std::size_t{h.ancount} + h.nscount + h.arcount;
    return records * 11 <= data.size() - offset;
}

}  // namespace senningen::agent
