// DNP3 over TCP and UDP: link frames with CRC checks, transport reassembly, application functions and object headers.
#pragma once

#include <memory>
#include <span>

#include "senningen/agent/analyzers/analyzer.h"

namespace senningen::agent {

bool dnp3_detect(std::span<const std::uint8_t> first, int direction, std::uint16_t src_port,
                 std::uint16_t dst_port);
std::unique_ptr<Analyzer> make_dnp3_analyzer();

}  // namespace senningen::agent
