// A minimal DNS message reader: the header and the question names, with compression
// pointers followed safely (bounded jumps, no loops). Enough for intel on query names; the
// full DNS analyzer (answers, rcode, TCP framing) builds on it.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace senningen::agent {

struct DnsQuestion {
    std::string name;  // lowercase, dot-separated, no trailing dot; "" for the root
    std::uint16_t qtype = 0;
    std::uint16_t qclass = 0;
};

struct DnsMessage {
    std::uint16_t id = 0;
    bool is_response = false;
    std::uint8_t opcode = 0;
    std::uint8_t rcode = 0;
    std::vector<DnsQuestion> questions;
};

enum class DnsParseStatus : std::uint8_t { kOk, kTruncated, kMalformed };

// Parses a DNS message carried over UDP (no length prefix).
DnsParseStatus parse_dns(std::span<const std::uint8_t> data, DnsMessage& out);

// True when DATA is plausibly a DNS message: header counts sane and the questions parse.
// Used to recognise DNS by content on any port.
bool looks_like_dns(std::span<const std::uint8_t> data);

}  // namespace senningen::agent
