// Messages that cross the wire between agent and collector, independent of the transport
// that carries them. See docs/wire-protocol.md.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "senningen/common/alert.h"

namespace senningen::common {

// Bumped when a message changes incompatibly; receivers refuse versions they do not know.
inline constexpr std::uint64_t kWireVersion = 1;

inline constexpr const char* kTopicAlerts = "senningen/v1/alerts";
inline constexpr const char* kTopicAcksPrefix = "senningen/v1/acks/";  // + agent id

// A batch of alerts from one agent. batch_id grows per agent run; the collector acknowledges
// it after the alerts are committed to its store.
struct AlertBatch {
    std::string agent_id;
    std::uint64_t batch_id = 0;
    std::vector<Alert> alerts;

    bool operator==(const AlertBatch&) const = default;
};

struct BatchAck {
    std::string agent_id;
    std::uint64_t batch_id = 0;
    std::uint64_t inserted = 0;    // new alerts stored
    std::uint64_t duplicates = 0;  // alerts the store already had (a replay)
    std::uint64_t rejected = 0;    // alerts that failed validation, dropped with a log line

    bool operator==(const BatchAck&) const = default;
};

}  // namespace senningen::common
