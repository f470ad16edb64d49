#include "senningen/collector/ingest.h"

#include "senningen/common/log.h"

namespace senningen::collector {

Ingest::Ingest(common::Transport& transport, AlertStore& store)
    : transport_(transport), store_(store) {}

IngestCounters Ingest::counters() const {
    const std::lock_guard<std::mutex> lock(mutex_);
    return counters_;
}

void Ingest::poll(std::chrono::milliseconds timeout) {
    for (auto& item : transport_.receive(timeout)) {
        if (const auto* batch = std::get_if<common::AlertBatch>(&item)) {
            handle_batch(*batch);
        } else if (const auto* ev = std::get_if<common::PeerEvent>(&item)) {
            const std::lock_guard<std::mutex> lock(mutex_);
            if (ev->state == common::PeerState::kConnected) {
                ++counters_.peers_connected;
                common::log_info("ingest", "agent connected from " + ev->peer);
            } else {
                ++counters_.peers_lost;
                common::log_info("ingest", "agent " + ev->peer + " went away: " + ev->message);
            }
        } else if (const auto* bad = std::get_if<common::DecodeFailure>(&item)) {
            const std::lock_guard<std::mutex> lock(mutex_);
            ++counters_.decode_failures;
            common::log_warn("ingest", "dropped an undecodable message on " + bad->topic + ": " +
                                           bad->message);
        }
    }
}

void Ingest::handle_batch(const common::AlertBatch& batch) {
    std::vector<common::Alert> valid;
    valid.reserve(batch.alerts.size());
    std::uint64_t rejected = 0;
    for (const auto& alert : batch.alerts) {
        if (alert.agent_id != batch.agent_id) {
            ++rejected;
            common::log_warn("ingest", "batch " + std::to_string(batch.batch_id) + " from agent '" +
                                           batch.agent_id + "' carries alert " + alert.id +
                                           " claiming agent '" + alert.agent_id + "': rejected");
            continue;
        }
        if (auto ok = common::validate(alert); !ok) {
            ++rejected;
            common::log_warn("ingest", "alert " + alert.id + " from agent '" + batch.agent_id +
                                           "' rejected: " + ok.error().message);
            continue;
        }
        valid.push_back(alert);
    }
    auto result = store_.insert(valid);
    const std::lock_guard<std::mutex> lock(mutex_);
    ++counters_.batches;
    if (!result) {
        ++counters_.store_errors;
        common::log_error("ingest", "store refused batch " + std::to_string(batch.batch_id) +
                                        " from agent '" + batch.agent_id +
                                        "' (not acknowledged, the agent will resend): " +
                                        result.error().message);
        return;
    }
    counters_.alerts_inserted += result->inserted;
    counters_.alerts_duplicate += result->duplicates;
    counters_.alerts_rejected += rejected;
    common::BatchAck ack;
    ack.agent_id = batch.agent_id;
    ack.batch_id = batch.batch_id;
    ack.inserted = result->inserted;
    ack.duplicates = result->duplicates;
    ack.rejected = rejected;
    transport_.send(ack);
}

}  // namespace senningen::collector
