// Sends alerts to the collector and makes sure they arrive. submit() stages an alert; the
// worker appends staged alerts to the DurableQueue on disk (one transaction per commit
// interval: the fsync batching), reads them back in order into batches, signs each batch with
// the agent's enrolled key and keeps it until the collector acknowledges it (after committing
// it to its store); only then are its records deleted from the queue. A batch is resent after
// a timeout or a reconnect; the collector's insert is idempotent on the alert id, so a resend
// never duplicates. After a crash the next run replays what the queue holds. Connection
// attempts back off exponentially, with jitter. Memory is bounded (a window of batches in
// flight, a bounded staging area); a full queue blocks the producer or drops the oldest
// records, by policy. Every heartbeat interval a signed heartbeat with counters goes out.
#pragma once

#include <chrono>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "senningen/agent/forward/durable_queue.h"
#include "senningen/common/identity.h"
#include "senningen/common/transport.h"

namespace senningen::agent {

struct ForwarderOptions {
    std::string host = "127.0.0.1";
    std::uint16_t port = 9999;
    std::size_t batch_size = 500;
    // The durable queue: its file (empty: an in-memory queue that does not survive the
    // process, for tests), capacity, full policy and sync mode.
    std::string queue_path;
    std::size_t max_pending_alerts = 1'000'000;
    QueueFullPolicy queue_policy = QueueFullPolicy::kBlock;
    QueueSync queue_sync = QueueSync::kFull;
    std::chrono::milliseconds commit_interval{100};  // staged alerts reach disk this often
    std::size_t max_batches_in_flight = 16;
    // Metadata batches (submit_metadata) in flight at once, on top of the alert batches. Few:
    // an alert queued behind them waits for at most this many metadata batches on the wire.
    std::size_t max_metadata_batches_in_flight = 2;
    // A metadata batch holds at most batch_size records and at most this many bytes of them.
    std::size_t max_metadata_batch_bytes = 4 << 20;
    std::chrono::seconds heartbeat_interval{30};
    std::string agent_version = "0.1.0";
    std::chrono::milliseconds resend_after{3000};
    std::chrono::milliseconds initial_backoff{500};
    std::chrono::milliseconds max_backoff{30000};
    // A connection attempt (TCP and the TLS handshake) that gives no answer within this is
    // given up and made again; each time one is given up the wait doubles, up to the most, so
    // that a host too loaded to finish a handshake in the first wait still connects.
    std::chrono::milliseconds connect_timeout{10000};
    std::chrono::milliseconds max_connect_timeout{160000};
};

struct ForwarderCounters {
    std::uint64_t alerts_submitted = 0;
    std::uint64_t alerts_acked = 0;
    std::uint64_t batches_sent = 0;
    std::uint64_t batches_resent = 0;
    std::uint64_t connect_attempts = 0;
    std::uint64_t decode_failures = 0;
    std::uint64_t alerts_rejected = 0;  // the collector said it dropped them as invalid
    std::uint64_t queue_dropped = 0;    // deleted unsent because the queue was full
    std::uint64_t queue_errors = 0;
    std::uint64_t heartbeats_sent = 0;
    std::uint64_t metadata_submitted = 0;
    std::uint64_t metadata_acked = 0;
    std::uint64_t metadata_rejected = 0;  // the collector refused them (malformed, oversize)
    std::uint64_t metadata_batches_sent = 0;
    // Not queued: with the block policy the queue was 90% full (metadata's share).
    std::uint64_t metadata_dropped = 0;
};

// What the heartbeat reports besides the forwarder's own numbers; the caller provides it.
struct AgentStats {
    std::uint64_t packets = 0;
    std::uint64_t kernel_drops = 0;
    std::uint64_t bytes = 0;
    std::uint64_t files_scanned = 0;
    std::uint64_t alerts = 0;
    std::string pack_version;
};

class Forwarder {
public:
    // SIGNER null: insecure mode, messages go unsigned. A queue that cannot be opened is
    // reported by start().
    Forwarder(std::unique_ptr<common::Transport> transport, ForwarderOptions options,
              std::string agent_id, std::shared_ptr<const common::Signer> signer = nullptr);
    ~Forwarder();
    Forwarder(const Forwarder&) = delete;
    Forwarder& operator=(const Forwarder&) = delete;

    // Opens the durable queue (after set_source()); kDatabase naming the file on failure.
    // Callers that need durability call it and stop on error; start() calls it otherwise and,
    // if it fails, logs the error and falls back to a queue in memory.
    common::Result<void> open_queue();
    void start();
    void submit(common::Alert alert);
    // Queues a metadata record (one JSON object, the metadata log's line without its line
    // break) for the collector, durably and acknowledged as alerts are. Alerts go first: they
    // are read and sent on a cursor of their own, only max_metadata_batches_in_flight
    // metadata batches are ever on the wire, and with the block policy metadata may fill only
    // 90% of the queue: beyond it a record is not queued (counted in metadata_dropped) and
    // this returns at once, so a metadata backlog never makes the producer, or an alert, wait.
    // With drop-oldest the queue drops its oldest metadata first, as ever.
    void submit_metadata(std::string line);

    // Before start(): counts each submit() against SOURCE (e.g. a capture file), durably, in
    // the same transaction as the alerts. After start(), source_progress() says how many
    // alerts of SOURCE earlier runs had already queued: a restarted producer skips those.
    void set_source(std::string source);
    std::uint64_t source_progress() const;
    // The source was read to its end: once all of it is acknowledged, stop() forgets its
    // progress, so that reading it again later is a new inspection, not a resume.
    void finish_source();

    // Called on the worker thread for each heartbeat, so it must be thread-safe; may be set
    // or replaced (nullptr: none) at any time, also while the forwarder runs.
    void set_stats_source(std::function<AgentStats()> stats);

    // Waits until every submitted alert is acknowledged (true) or DEADLINE passes (false).
    bool drain(std::chrono::steady_clock::time_point deadline);
    void stop();

    ForwarderCounters counters() const;
    bool connected() const;
    std::size_t pending() const;  // submitted, not yet acknowledged

private:
    struct InFlight {
        common::AlertBatch batch;
        bool is_metadata = false;  // then metadata is the batch sent, not batch
        common::MetadataBatch metadata;
        std::uint64_t first_seq = 0;
        std::uint64_t last_seq = 0;
        std::chrono::steady_clock::time_point sent_at{};
        std::chrono::steady_clock::time_point first_sent_at{};  // on this connection
        // Order of sending (send_count_) of the last copy and of the first on this connection.
        std::uint64_t sent_order = 0;
        std::uint64_t first_sent_order = 0;
        bool sent = false;
        int resends = 0;  // on this connection: each doubles the wait before the next
        // A batch sent after this one's last copy was acknowledged first. The collector
        // answers an agent's batches in the order they arrive, so this one was lost or refused.
        bool overtaken = false;
    };

    void run();
    void handle_inbound();
    void connect_if_due(std::chrono::steady_clock::time_point now);
    void send_due(std::chrono::steady_clock::time_point now);
    void commit_staged(bool force);
    void delete_acked(bool force);
    void note_ack_time(std::chrono::steady_clock::duration took);
    // How long an unacknowledged batch waits before it is sent again (before doubling).
    std::chrono::microseconds resend_timeout() const;
    void fill_window();
    void fill_metadata_window();
    void heartbeat_if_due(std::chrono::steady_clock::time_point now, bool stopping);

    std::unique_ptr<common::Transport> transport_;
    ForwarderOptions options_;
    std::string agent_id_;
    std::shared_ptr<const common::Signer> signer_;
    std::unique_ptr<DurableQueue> queue_;

    mutable std::mutex mutex_;
    std::condition_variable space_;  // signalled when pending shrinks
    std::vector<common::Alert> staged_;  // submitted, not yet on disk
    std::vector<std::string> staged_metadata_;  // the same for metadata records
    std::uint64_t staged_progress_ = 0;  // source progress once staged_ is on disk
    std::size_t queue_depth_ = 0;        // mirror of queue_->depth() for other threads
    std::size_t committing_ = 0;         // taken from staged_, being written to the queue
    std::map<std::uint64_t, InFlight> in_flight_;
    ForwarderCounters counters_;
    bool stopping_ = false;
    std::string source_;
    std::uint64_t source_count_ = 0;
    std::uint64_t source_resumed_at_ = 0;
    bool source_finished_ = false;
    std::mutex stats_mutex_;  // guards stats_ only, never held while it runs
    std::function<AgentStats()> stats_;

    // Owned by the worker thread.
    std::uint64_t last_read_seq_ = 0;
    std::uint64_t last_metadata_seq_ = 0;  // the metadata cursor
    // Acknowledged ranges not yet deleted: deleted together once per commit interval. A crash
    // before that replays them, which the collector's idempotent insert absorbs.
    std::vector<std::pair<std::uint64_t, std::uint64_t>> acked_ranges_;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> acked_metadata_ranges_;
    std::size_t acked_pending_ = 0;  // records in acked_ranges_
    std::uint64_t send_count_ = 0;
    // How long acknowledgements take, smoothed as TCP does for its retransmission timer
    // (RFC 6298), timed from first copies: a batch is resent only when its acknowledgement is
    // late for this collector as it is now, not merely older than resend_after.
    std::chrono::microseconds ack_time_avg_{0};
    std::chrono::microseconds ack_time_dev_{0};
    bool ready_ = false;             // the collector's subscription seen on this connection
    std::chrono::steady_clock::time_point last_commit_{};
    std::chrono::steady_clock::time_point last_delete_{};
    std::chrono::steady_clock::time_point next_heartbeat_{};
    std::uint64_t heartbeat_seq_ = 0;
    const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();

    // Owned by the worker thread.
    std::atomic<bool> connected_{false};
    std::uint64_t next_batch_id_ = 1;
    std::chrono::milliseconds backoff_{0};
    std::chrono::milliseconds attempt_timeout_{0};
    std::chrono::steady_clock::time_point next_attempt_{};
    bool attempt_outstanding_ = false;
    std::chrono::steady_clock::time_point attempt_started_{};
    bool logged_waiting_ = false;

    std::thread worker_;
};

}  // namespace senningen::agent
