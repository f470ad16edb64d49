// A DNS message reader: the header, the questions and the answer section (A, AAAA, CNAME,
// NS, PTR, MX, TXT, SRV, SOA rendered as text), with compression pointers followed safely
// (bounded jumps, no loops). TCP framing is the analyzer's business.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace senningen::agent {

struct DnsQuestion {
    std::string name;  // lowercase, dot-separated, no trailing dot; "" for the root
    std::uint16_t qtype = 0;
    std::uint16_t qclass = 0;
};

struct DnsAnswer {
    std::string name;  // owner name, as DnsQuestion::name
    std::uint16_t type = 0;
    std::uint16_t rclass = 0;
    std::uint32_t ttl = 0;
    // A/AAAA: the address; CNAME/NS/PTR: the name; MX: the exchange; SRV: the target;
    // SOA: the primary name server; TXT: the strings joined by spaces; else "" (see type).
    std::string data;
};

enum class DnsParseStatus : std::uint8_t { kOk, kTruncated, kMalformed };

struct DnsMessage {
    std::uint16_t id = 0;
    bool is_response = false;
    std::uint8_t opcode = 0;
    std::uint8_t rcode = 0;
    bool aa = false;  // authoritative answer
    bool tc = false;  // truncated (the sender's flag)
    bool rd = false;  // recursion desired
    bool ra = false;  // recursion available
    std::vector<DnsQuestion> questions;
    std::vector<DnsAnswer> answers;  // the answer section
    // How reading the answer section went: parse_dns returns kOk once the header and the
    // questions are good, so a cut answer section does not hide the query.
    DnsParseStatus answer_status = DnsParseStatus::kOk;
};

// Zeek's names: "A", "AAAA", "CNAME", ...; "" for a type without one here.
std::string_view dns_type_name(std::uint16_t type);
// "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", ...
std::string_view dns_rcode_name(std::uint8_t rcode);

// Parses a DNS message carried over UDP (no length prefix).
DnsParseStatus parse_dns(std::span<const std::uint8_t> data, DnsMessage& out);

// True when DATA is plausibly a DNS message: header counts sane and the questions parse.
// Used to recognise DNS by content on any port.
bool looks_like_dns(std::span<const std::uint8_t> data);

}  // namespace senningen::agent
