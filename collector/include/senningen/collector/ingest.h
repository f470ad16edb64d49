// The collector's receiving end: alert batches from the transport go through validation into
// the store, and each batch is acknowledged to its agent only after the store committed it.
// A batch that the store could not take is not acknowledged, so the agent sends it again.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>

#include "senningen/collector/alert_store.h"
#include "senningen/common/transport.h"

namespace senningen::collector {

struct IngestCounters {
    std::uint64_t batches = 0;
    std::uint64_t alerts_inserted = 0;
    std::uint64_t alerts_duplicate = 0;
    std::uint64_t alerts_rejected = 0;  // failed validation or claimed another agent's id
    std::uint64_t decode_failures = 0;  // messages that did not decode at all
    std::uint64_t store_errors = 0;     // batches the store refused (not acknowledged)
    std::uint64_t peers_connected = 0;
    std::uint64_t peers_lost = 0;
};

class Ingest {
public:
    Ingest(common::Transport& transport, AlertStore& store);

    // Handles everything that arrives within TIMEOUT.
    void poll(std::chrono::milliseconds timeout);

    IngestCounters counters() const;

private:
    void handle_batch(const common::AlertBatch& batch);

    common::Transport& transport_;
    AlertStore& store_;
    mutable std::mutex mutex_;
    IngestCounters counters_;
};

}  // namespace senningen::collector
