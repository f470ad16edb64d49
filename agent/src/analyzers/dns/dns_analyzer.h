// DNS over UDP: queries (matched against Intel::DOMAIN at DNS::IN_REQUEST) and one "dns"
// record per message.
#pragma once

#include <memory>
#include <span>

#include "senningen/agent/analyzers/analyzer.h"

namespace senningen::agent {

bool dns_detect_udp(std::span<const std::uint8_t> first, int direction, std::uint16_t src_port,
                    std::uint16_t dst_port);
std::unique_ptr<Analyzer> make_dns_analyzer();

}  // namespace senningen::agent
