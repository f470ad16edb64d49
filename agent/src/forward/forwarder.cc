#include "senningen/agent/forward/forwarder.h"

#include <random>

#include "senningen/common/log.h"

namespace senningen::agent {

namespace {

constexpr std::chrono::milliseconds kTick{50};
// A connection attempt that has said nothing for this long is treated as failed.
constexpr std::chrono::seconds kAttemptTimeout{10};

std::string seconds_text(std::chrono::milliseconds ms) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f s", static_cast<double>(ms.count()) / 1000.0);
    return buf;
}

}  // namespace

Forwarder::Forwarder(std::unique_ptr<common::Transport> transport, ForwarderOptions options,
                     std::string agent_id)
    : transport_(std::move(transport)),
      options_(std::move(options)),
      agent_id_(std::move(agent_id)),
      backoff_(options_.initial_backoff) {}

Forwarder::~Forwarder() { stop(); }

void Forwarder::start() {
    if (worker_.joinable()) return;
    worker_ = std::thread([this] { run(); });
}

void Forwarder::stop() {
    {
        const std::lock_guard<std::mutex> lock(mutex_);
        stopping_ = true;
    }
    space_.notify_all();
    if (worker_.joinable()) worker_.join();
}

void Forwarder::submit(common::Alert alert) {
    std::unique_lock<std::mutex> lock(mutex_);
    space_.wait(lock, [&] { return pending_ < options_.max_pending_alerts || stopping_; });
    if (stopping_) return;
    queue_.push_back(std::move(alert));
    ++pending_;
    ++counters_.alerts_submitted;
}

bool Forwarder::drain(std::chrono::steady_clock::time_point deadline) {
    std::unique_lock<std::mutex> lock(mutex_);
    return space_.wait_until(lock, deadline, [&] { return pending_ == 0; });
}

ForwarderCounters Forwarder::counters() const {
    const std::lock_guard<std::mutex> lock(mutex_);
    return counters_;
}

bool Forwarder::connected() const { return connected_.load(); }

std::size_t Forwarder::pending() const {
    const std::lock_guard<std::mutex> lock(mutex_);
    return pending_;
}

void Forwarder::run() {
    for (;;) {
        {
            const std::lock_guard<std::mutex> lock(mutex_);
            if (stopping_) break;
        }
        const auto now = std::chrono::steady_clock::now();
        connect_if_due(now);
        handle_inbound();
        send_due(std::chrono::steady_clock::now());
    }
}

void Forwarder::connect_if_due(std::chrono::steady_clock::time_point now) {
    if (connected_) return;
    const std::string peer = options_.host + ":" + std::to_string(options_.port);
    if (attempt_outstanding_ && now - attempt_started_ > kAttemptTimeout) {
        attempt_outstanding_ = false;
        common::log_warn("forward", "collector " + peer + " did not answer within " +
                                        std::to_string(kAttemptTimeout.count()) + " s");
        next_attempt_ = now + backoff_;
    }
    if (attempt_outstanding_ || now < next_attempt_) return;
    {
        const std::lock_guard<std::mutex> lock(mutex_);
        ++counters_.connect_attempts;
    }
    if (counters_.connect_attempts == 1) {
        common::log_info("forward", "connecting to collector " + peer);
    }
    attempt_outstanding_ = true;
    attempt_started_ = now;
    transport_->connect(options_.host, options_.port);
}

void Forwarder::handle_inbound() {
    const std::string peer = options_.host + ":" + std::to_string(options_.port);
    for (auto& item : transport_->receive(kTick)) {
        if (auto* ev = std::get_if<common::PeerEvent>(&item)) {
            switch (ev->state) {
                case common::PeerState::kConnected: {
                    attempt_outstanding_ = false;
                    connected_ = true;
                    backoff_ = options_.initial_backoff;
                    common::log_info("forward", "connected to collector " + peer);
                    // Everything not yet acknowledged goes again on the new connection.
                    const std::lock_guard<std::mutex> lock(mutex_);
                    for (auto& [id, f] : in_flight_) f.sent = false;
                    break;
                }
                case common::PeerState::kDisconnected:
                case common::PeerState::kUnreachable: {
                    const bool was_connected = connected_;
                    connected_ = false;
                    attempt_outstanding_ = false;
                    // Exponential backoff with +-25% jitter, so that many agents that lost
                    // one collector do not come back in lock step.
                    static thread_local std::mt19937 rng{std::random_device{}()};
                    std::uniform_real_distribution<double> jitter(0.75, 1.25);
                    const auto wait = std::chrono::milliseconds(
                        static_cast<long>(static_cast<double>(backoff_.count()) * jitter(rng)));
                    next_attempt_ = std::chrono::steady_clock::now() + wait;
                    backoff_ = std::min(backoff_ * 2, options_.max_backoff);
                    common::log_warn("forward", std::string(was_connected
                                                                ? "lost collector "
                                                                : "collector unreachable: ") +
                                                    peer + " (" + ev->message +
                                                    "); retrying in " + seconds_text(wait));
                    break;
                }
            }
        } else if (auto* ack = std::get_if<common::BatchAck>(&item)) {
            const std::lock_guard<std::mutex> lock(mutex_);
            auto it = in_flight_.find(ack->batch_id);
            if (it == in_flight_.end() || ack->agent_id != agent_id_) continue;  // a late duplicate
            const std::size_t n = it->second.batch.alerts.size();
            in_flight_.erase(it);
            pending_ -= n;
            counters_.alerts_acked += n;
            counters_.alerts_rejected += ack->rejected;
            if (ack->rejected > 0) {
                common::log_warn("forward", "collector rejected " +
                                                std::to_string(ack->rejected) + " alerts of batch " +
                                                std::to_string(ack->batch_id));
            }
            space_.notify_all();
        } else if (auto* bad = std::get_if<common::DecodeFailure>(&item)) {
            const std::lock_guard<std::mutex> lock(mutex_);
            ++counters_.decode_failures;
            common::log_warn("forward", "undecodable message on " + bad->topic + ": " +
                                            bad->message);
        }
    }
}

void Forwarder::send_due(std::chrono::steady_clock::time_point now) {
    const std::lock_guard<std::mutex> lock(mutex_);
    while (!queue_.empty()) {
        InFlight f;
        f.batch.agent_id = agent_id_;
        f.batch.batch_id = next_batch_id_++;
        const std::size_t n = std::min(queue_.size(), options_.batch_size);
        f.batch.alerts.reserve(n);
        for (std::size_t i = 0; i < n; ++i) {
            f.batch.alerts.push_back(std::move(queue_.front()));
            queue_.pop_front();
        }
        in_flight_.emplace(f.batch.batch_id, std::move(f));
    }
    if (!connected_ || in_flight_.empty()) return;
    if (!transport_->ready_to_send()) {
        if (!logged_waiting_) {
            common::log_debug("forward", "waiting for the collector's subscription");
            logged_waiting_ = true;
        }
        return;
    }
    for (auto& [id, f] : in_flight_) {
        if (f.sent && now - f.sent_at < options_.resend_after) continue;
        if (f.sent) ++counters_.batches_resent;
        transport_->send(f.batch);
        f.sent = true;
        f.sent_at = now;
        ++counters_.batches_sent;
    }
}

}  // namespace senningen::agent
