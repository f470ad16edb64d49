// DNS over UDP and over TCP (RFC 1035 4.2.2: each message behind a two-byte length): one
// "dns" record per message with the header flags, rcode, questions and answers. Query names
// are matched against Intel::DOMAIN at DNS::IN_REQUEST; in responses, answer addresses
// (A/AAAA) against Intel::ADDR and answer names (CNAME, NS, PTR, MX, SRV targets) against
// Intel::DOMAIN at DNS::IN_RESPONSE.
#pragma once

#include <memory>
#include <span>

#include "senningen/agent/analyzers/analyzer.h"

namespace senningen::agent {

bool dns_detect_udp(std::span<const std::uint8_t> first, int direction, std::uint16_t src_port,
                    std::uint16_t dst_port);
bool dns_detect_tcp(std::span<const std::uint8_t> first, int direction, std::uint16_t src_port,
                    std::uint16_t dst_port);
std::unique_ptr<Analyzer> make_dns_analyzer();
std::unique_ptr<Analyzer> make_dns_tcp_analyzer();

}  // namespace senningen::agent
