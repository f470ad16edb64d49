// DNS header and question reader. Names are walked with every length checked against the
// message and the RFC 1035 limits, and compression pointers may only point backwards and only
// a bounded number of times, so a hostile message can neither loop nor read out of bounds.
#include "senningen/agent/decode/dns.h"

#include <arpa/inet.h>
#include <netinet/in.h>

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

// Reads one resource record at OFFSET into ANSWER.
DnsParseStatus read_answer(std::span<const std::uint8_t> msg, std::size_t& offset,
                           DnsAnswer& answer) {
    const DnsParseStatus name_status = read_name(msg, offset, &answer.name);
    if (name_status != DnsParseStatus::kOk) return name_status;
    if (offset + 10 > msg.size()) return DnsParseStatus::kTruncated;
    const std::uint8_t* p = msg.data() + offset;
    answer.type = be16(p);
    answer.rclass = be16(p + 2);
    answer.ttl = (std::uint32_t{p[4]} << 24) | (std::uint32_t{p[5]} << 16) |
                 (std::uint32_t{p[6]} << 8) | p[7];
    const std::size_t rdlength = be16(p + 8);
    offset += 10;
    if (offset + rdlength > msg.size()) return DnsParseStatus::kTruncated;
    const std::size_t rdata = offset;
    const std::size_t end = offset + rdlength;
    offset = end;
    answer.data.clear();
    // A name inside RDATA must end inside RDATA.
    auto rdata_name = [&](std::size_t at) {
        std::size_t pos = at;
        const DnsParseStatus st = read_name(msg, pos, &answer.data);
        if (st == DnsParseStatus::kOk && pos > end) return DnsParseStatus::kMalformed;
        return st;
    };
    char text[INET6_ADDRSTRLEN] = {};
    switch (answer.type) {
        case 1:  // A
            if (rdlength != 4) return DnsParseStatus::kMalformed;
            inet_ntop(AF_INET, msg.data() + rdata, text, sizeof text);
            answer.data = text;
            return DnsParseStatus::kOk;
        case 28:  // AAAA
            if (rdlength != 16) return DnsParseStatus::kMalformed;
            inet_ntop(AF_INET6, msg.data() + rdata, text, sizeof text);
            answer.data = text;
            return DnsParseStatus::kOk;
        case 2:   // NS
        case 5:   // CNAME
        case 12:  // PTR
        case 6:   // SOA: the primary name server first
            return rdata_name(rdata);
        case 15:  // MX: preference, exchange
            if (rdlength < 3) return DnsParseStatus::kMalformed;
            return rdata_name(rdata + 2);
        case 33:  // SRV: priority, weight, port, target
            if (rdlength < 7) return DnsParseStatus::kMalformed;
            return rdata_name(rdata + 6);
        case 16: {  // TXT: character strings
            std::size_t pos = rdata;
            while (pos < end) {
                const std::size_t len = msg[pos];
                if (pos + 1 + len > end) return DnsParseStatus::kMalformed;
                if (!answer.data.empty()) answer.data.push_back(' ');
                answer.data.append(reinterpret_cast<const char*>(msg.data() + pos + 1), len);
                pos += 1 + len;
            }
            return DnsParseStatus::kOk;
        }
        default: return DnsParseStatus::kOk;
    }
}

}  // namespace

std::string_view dns_type_name(std::uint16_t type) {
    switch (type) {
        case 1: return "A";
        case 2: return "NS";
        case 5: return "CNAME";
        case 6: return "SOA";
        case 12: return "PTR";
        case 13: return "HINFO";
        case 15: return "MX";
        case 16: return "TXT";
        case 28: return "AAAA";
        case 33: return "SRV";
        case 35: return "NAPTR";
        case 41: return "OPT";
        case 43: return "DS";
        case 46: return "RRSIG";
        case 47: return "NSEC";
        case 48: return "DNSKEY";
        case 64: return "SVCB";
        case 65: return "HTTPS";
        case 255: return "*";
        default: return "";
    }
}

std::string_view dns_rcode_name(std::uint8_t rcode) {
    static constexpr std::string_view kNames[] = {
        "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED",
        "YXDOMAIN", "YXRRSET", "NXRRSET", "NOTAUTH", "NOTZONE"};
    return rcode < std::size(kNames) ? kNames[rcode] : "unknown";
}

DnsParseStatus parse_dns(std::span<const std::uint8_t> data, DnsMessage& out) {
    out.questions.clear();
    out.answers.clear();
    out.answer_status = DnsParseStatus::kOk;
    if (data.size() < kHeaderLen) {
        return DnsParseStatus::kTruncated;
    }
    const Header h = read_header(data.data());
    out.id = h.id;
    out.is_response = (h.flags & 0x8000) != 0;
    out.opcode = static_cast<std::uint8_t>((h.flags >> 11) & 0x0f);
    out.rcode = static_cast<std::uint8_t>(h.flags & 0x0f);
    out.aa = (h.flags & 0x0400) != 0;
    out.tc = (h.flags & 0x0200) != 0;
    out.rd = (h.flags & 0x0100) != 0;
    out.ra = (h.flags & 0x0080) != 0;

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
    for (std::uint16_t i = 0; i < h.ancount; ++i) {
        DnsAnswer answer;
        const DnsParseStatus status = read_answer(data, offset, answer);
        if (status != DnsParseStatus::kOk) {
            out.answer_status = status;
            break;
        }
        out.answers.push_back(std::move(answer));
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
    // A response without its question (mDNS announcements): the first answer must parse and
    // carry a known class.
    if (h.qdcount == 0) {
        if ((h.flags & 0x8000) == 0 || h.ancount == 0 || h.ancount > 64) {
            return false;
        }
        std::size_t at = kHeaderLen;
        DnsAnswer first;
        if (read_answer(data, at, first) != DnsParseStatus::kOk) {
            return false;
        }
        const std::uint16_t rclass = first.rclass & 0x7fff;
        const std::size_t rest = std::size_t{h.ancount} - 1 + h.nscount + h.arcount;
        return (rclass == 1 || rclass == 3 || rclass == 4 || rclass == 255) &&
               rest * 11 <= data.size() - at;
    }
    // Real traffic asks one question (a handful for mDNS); a header of random bytes rarely
    // does.
    if (h.qdcount > 16) {
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
