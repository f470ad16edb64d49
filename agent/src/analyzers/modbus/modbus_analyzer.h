// Modbus/TCP: MBAP-framed requests and responses (function, unit, addresses, exceptions).
#pragma once

#include <memory>
#include <span>

#include "senningen/agent/analyzers/analyzer.h"

namespace senningen::agent {

bool modbus_detect(std::span<const std::uint8_t> first, int direction, std::uint16_t src_port,
                 std::uint16_t dst_port);
std::unique_ptr<Analyzer> make_modbus_analyzer();

}  // namespace senningen::agent
