// Sends alerts to the collector and makes sure they arrive: alerts are batched, each batch is
// kept until the collector acknowledges it (after committing it to its store) and is resent
// after a timeout or a reconnect. The collector's insert is idempotent on the alert id, so a
// resend never duplicates. Connection attempts back off exponentially, with jitter, and each
// failure is logged. The pending set is bounded: submit() blocks when it is full, so a slow
// or absent collector slows the producer instead of growing memory. (The durable on-disk
// queue that survives a crash builds on this.)
#pragma once

#include <chrono>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "senningen/common/transport.h"

namespace senningen::agent {

struct ForwarderOptions {
    std::string host = "127.0.0.1";
    std::uint16_t port = 9999;
    std::size_t batch_size = 500;
    std::size_t max_pending_alerts = 100000;
    std::chrono::milliseconds resend_after{3000};
    std::chrono::milliseconds initial_backoff{500};
    std::chrono::milliseconds max_backoff{30000};
};

struct ForwarderCounters {
    std::uint64_t alerts_submitted = 0;
    std::uint64_t alerts_acked = 0;
    std::uint64_t batches_sent = 0;
    std::uint64_t batches_resent = 0;
    std::uint64_t connect_attempts = 0;
    std::uint64_t decode_failures = 0;
    std::uint64_t alerts_rejected = 0;  // the collector said it dropped them as invalid
};

class Forwarder {
public:
    Forwarder(std::unique_ptr<common::Transport> transport, ForwarderOptions options,
              std::string agent_id);
    ~Forwarder();
    Forwarder(const Forwarder&) = delete;
    Forwarder& operator=(const Forwarder&) = delete;

    void start();
    void submit(common::Alert alert);

    // Waits until every submitted alert is acknowledged (true) or DEADLINE passes (false).
    bool drain(std::chrono::steady_clock::time_point deadline);
    void stop();

    ForwarderCounters counters() const;
    bool connected() const;
    std::size_t pending() const;  // submitted, not yet acknowledged

private:
    struct InFlight {
        common::AlertBatch batch;
        std::chrono::steady_clock::time_point sent_at{};
        bool sent = false;
    };

    void run();
    void handle_inbound();
    void connect_if_due(std::chrono::steady_clock::time_point now);
    void send_due(std::chrono::steady_clock::time_point now);

    std::unique_ptr<common::Transport> transport_;
    ForwarderOptions options_;
    std::string agent_id_;

    mutable std::mutex mutex_;
    std::condition_variable space_;  // signalled when pending shrinks
    std::deque<common::Alert> queue_;  // submitted, not yet in a batch
    std::map<std::uint64_t, InFlight> in_flight_;
    std::size_t pending_ = 0;
    ForwarderCounters counters_;
    bool stopping_ = false;

    // Owned by the worker thread.
    std::atomic<bool> connected_{false};
    std::uint64_t next_batch_id_ = 1;
    std::chrono::milliseconds backoff_{0};
    std::chrono::steady_clock::time_point next_attempt_{};
    bool attempt_outstanding_ = false;
    std::chrono::steady_clock::time_point attempt_started_{};
    bool logged_waiting_ = false;

    std::thread worker_;
};

}  // namespace senningen::agent
