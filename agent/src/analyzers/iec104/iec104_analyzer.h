// IEC 60870-5-104: APCI I/S/U frames and the ASDU (type id, cause of transmission, common address).
#pragma once

#include <memory>
#include <span>

#include "senningen/agent/analyzers/analyzer.h"

namespace senningen::agent {

bool iec104_detect(std::span<const std::uint8_t> first, int direction, std::uint16_t src_port,
                 std::uint16_t dst_port);
std::unique_ptr<Analyzer> make_iec104_analyzer();

}  // namespace senningen::agent
