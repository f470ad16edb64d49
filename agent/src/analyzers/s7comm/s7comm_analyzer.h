// S7comm over ISO-on-TCP (TPKT + COTP): ROSCTR, job functions (read/write var, PLC stop, block up/download), user data.
#pragma once

#include <memory>
#include <span>

#include "senningen/agent/analyzers/analyzer.h"

namespace senningen::agent {

bool s7comm_detect(std::span<const std::uint8_t> first, int direction, std::uint16_t src_port,
                 std::uint16_t dst_port);
std::unique_ptr<Analyzer> make_s7comm_analyzer();

}  // namespace senningen::agent
