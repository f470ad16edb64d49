// EtherNet/IP encapsulation (TCP and UDP) and the CIP requests it carries (service, class/instance path).
#pragma once

#include <memory>
#include <span>

#include "senningen/agent/analyzers/analyzer.h"

namespace senningen::agent {

bool enip_detect(std::span<const std::uint8_t> first, int direction, std::uint16_t src_port,
                 std::uint16_t dst_port);
std::unique_ptr<Analyzer> make_enip_analyzer();

}  // namespace senningen::agent
