// The collector's receiving end: alert batches from the transport go through validation into
// the store, and each batch is acknowledged to its agent only after the store committed it.
// A batch that the store could not take is not acknowledged, so the agent sends it again.
// Group commit: the batches that arrived while the previous transaction ran (from any number
// of agents, at most kMaxGroupAlerts alerts) are stored in one transaction and acknowledged
// together once it commits, so the cost of a commit is shared as load grows. The commits run
// on a thread of their own: while one group commits, the receiving thread decodes,
// authenticates and validates the next (at most one group waits; beyond that the receiving
// thread waits too, so a slow store slows the agents rather than growing memory).
// With a PeerVerifier every batch and heartbeat must carry a certificate issued by the CA, not
// revoked nor expired, and a valid signature; the agent id is the certificate's, never the
// message's (a message claiming another id is refused). Heartbeats keep the agents table; an
// agent that misses three is marked offline, which is recorded as an event.
// Metadata batches take the same way: authenticated, each record parsed and checked
// (collector/metadata.h; a bad record is refused and counted by reason, the batch's good ones
// are stored), stored in the group's commit and acknowledged after it, in the order the
// batches arrived. The commit thread also applies the metadata retention when it is idle.
#pragma once

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "senningen/collector/alert_store.h"
#include "senningen/common/identity.h"
#include "senningen/common/transport.h"

namespace senningen::collector {

// The most alerts stored in one transaction. Bounds the memory a group holds and the time a
// batch waits for the others of its group; beyond a few thousand alerts a bigger transaction
// saves little.
inline constexpr std::size_t kMaxGroupAlerts = 10000;

struct IngestCounters {
    std::uint64_t batches = 0;
    std::uint64_t transactions = 0;  // group commits, each of one or more batches
    std::uint64_t alerts_inserted = 0;
    std::uint64_t alerts_duplicate = 0;
    std::uint64_t alerts_rejected = 0;  // failed validation or claimed another agent's id
    std::uint64_t decode_failures = 0;  // messages that did not decode at all
    std::uint64_t store_errors = 0;     // batches the store refused (not acknowledged)
    std::uint64_t peers_connected = 0;
    std::uint64_t peers_lost = 0;
    std::uint64_t messages_refused = 0;  // credentials refused, or a claimed id not theirs
    std::uint64_t heartbeats = 0;
    std::uint64_t agents_marked_offline = 0;
    std::uint64_t metadata_batches = 0;
    std::uint64_t metadata_inserted = 0;
    std::uint64_t metadata_duplicate = 0;
    std::uint64_t metadata_refused = 0;  // records refused, all reasons
    // Records refused per reason, indexed by MetadataProblem (to_string() names them).
    std::array<std::uint64_t, kMetadataProblemCount> metadata_refused_by{};
    std::uint64_t metadata_store_errors = 0;  // metadata batches the store refused
    std::uint64_t metadata_pruned = 0;        // records deleted by the retention
};

class Ingest {
public:
    // VERIFIER null: insecure mode, agent ids are taken from the messages.
    Ingest(common::Transport& transport, AlertStore& store,
           common::PeerVerifier* verifier = nullptr);
    // Commits and acknowledges what was handed over, then stops the commit thread.
    ~Ingest();
    Ingest(const Ingest&) = delete;
    Ingest& operator=(const Ingest&) = delete;

    // Handles everything that arrives within TIMEOUT: heartbeats at once, alert batches up to
    // handing them to the commit thread (which acknowledges them once committed).
    void poll(std::chrono::milliseconds timeout);

    // Waits until every batch poll() took in is committed (or refused) and acknowledged.
    void flush();

    IngestCounters counters() const;

    // How much metadata the store keeps; set before the first poll(). Default: see
    // MetadataRetention.
    void set_metadata_retention(const MetadataRetention& retention);

private:
    // A batch that passed authentication, waiting in the group for the commit.
    struct Grouped {
        std::string agent_id;
        std::uint64_t batch_id = 0;
        std::uint64_t rejected = 0;
    };

    // Batches on their way to one transaction.
    struct Group {
        std::vector<Grouped> batches;                  // parallel to alerts and records
        std::vector<std::vector<common::Alert>> alerts;
        std::vector<std::vector<std::string>> records;  // empty when not sent
        std::vector<Grouped> metadata_batches;          // parallel to metadata
        std::vector<MetadataBatchIn> metadata;
        // The order the batches arrived in, which is the order of their acknowledgements:
        // (true, i) is metadata_batches[i], (false, i) batches[i].
        std::vector<std::pair<bool, std::size_t>> order;
        std::size_t size = 0;  // alerts and records in the group
        bool empty() const { return order.empty(); }
        void append(Group&& other);
    };

    void handle_batch(common::AlertBatch batch);
    void handle_metadata(common::MetadataBatch batch);
    // On the commit thread, when due: deletes what the retention does not keep.
    void prune_metadata_if_due();
    // Hands building_ to the commit thread, waiting while the group before it is still waiting.
    void hand_over();
    void run_committer();
    void commit(Group group);
    void handle_heartbeat(common::Heartbeat heartbeat);
    void check_liveness();
    // The agent id the message's credentials prove, or nullopt after logging the refusal.
    template <typename Message>
    std::optional<std::string> authenticate(const Message& message, const char* what,
                                            std::uint64_t number);

    common::Transport& transport_;
    AlertStore& store_;
    common::PeerVerifier* verifier_;
    const std::int64_t started_ns_;
    std::chrono::steady_clock::time_point next_liveness_check_{};
    Group building_;  // the polling thread's
    mutable std::mutex mutex_;
    IngestCounters counters_;
    // The hand-over to the commit thread.
    std::mutex commit_mutex_;
    std::condition_variable commit_changed_;
    Group next_;              // under commit_mutex_: handed over, not yet being committed
    bool committing_ = false;  // under commit_mutex_
    bool stopping_ = false;    // under commit_mutex_
    MetadataRetention retention_;                         // set before the first poll()
    std::chrono::steady_clock::time_point next_prune_{};  // the commit thread's
    std::thread committer_;    // last: starts once everything above is set
};

}  // namespace senningen::collector
