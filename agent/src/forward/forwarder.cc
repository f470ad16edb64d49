#include "senningen/agent/forward/forwarder.h"

#include <algorithm>
#include <random>

#include "senningen/common/log.h"

namespace senningen::agent {

namespace {

constexpr std::chrono::milliseconds kTick{50};
// Alerts staged in memory before the producer waits for the next commit.
constexpr std::size_t kMaxStaged = 20000;
// With the block policy, metadata records may fill at most this share of the queue: the rest
// stays free for alerts. Beyond it new metadata is not queued (counted), rather than making
// the packet path, which produces the alerts too, wait.
constexpr std::size_t kMetadataSharePercent = 90;
// Time for Broker to put the last heartbeat on the wire before the endpoint goes away.
constexpr std::chrono::milliseconds kFarewellGrace{200};

std::string seconds_text(std::chrono::milliseconds ms) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f s", static_cast<double>(ms.count()) / 1000.0);
    return buf;
}

}  // namespace

Forwarder::Forwarder(std::unique_ptr<common::Transport> transport, ForwarderOptions options,
                     std::string agent_id, std::shared_ptr<const common::Signer> signer)
    : transport_(std::move(transport)),
      options_(std::move(options)),
      agent_id_(std::move(agent_id)),
      signer_(std::move(signer)),
      // Batch ids are unique across runs too, so that an acknowledgement from an earlier run
      // can never match a batch of this one.
      next_batch_id_(static_cast<std::uint64_t>(common::now_ns() / 1000)),
      backoff_(options_.initial_backoff),
      attempt_timeout_(options_.connect_timeout) {}

Forwarder::~Forwarder() { stop(); }

void Forwarder::set_source(std::string source) { source_ = std::move(source); }

void Forwarder::finish_source() {
    const std::lock_guard<std::mutex> lock(mutex_);
    source_finished_ = true;
}

void Forwarder::set_stats_source(std::function<AgentStats()> stats) {
    const std::lock_guard<std::mutex> lock(stats_mutex_);
    stats_ = std::move(stats);
}

std::uint64_t Forwarder::source_progress() const {
    const std::lock_guard<std::mutex> lock(mutex_);
    return source_resumed_at_;
}

void Forwarder::start() {
    if (worker_.joinable()) return;
    if (!queue_) {
        if (auto opened = open_queue(); !opened) {
            common::log_error("forward", opened.error().message +
                                             "; alerts are kept IN MEMORY ONLY and are lost if "
                                             "the agent stops before they are acknowledged");
            options_.queue_path.clear();
            if (auto fallback = open_queue(); !fallback) {
                common::log_error("forward", fallback.error().message);
                return;
            }
        }
    }
    worker_ = std::thread([this] { run(); });
}

common::Result<void> Forwarder::open_queue() {
    DurableQueueOptions qo;
    qo.max_entries = options_.max_pending_alerts;
    qo.policy = options_.queue_policy;
    qo.sync = options_.queue_sync;
    const std::string path = options_.queue_path.empty() ? ":memory:" : options_.queue_path;
    auto queue = DurableQueue::open(path, qo);
    if (!queue) return queue.error();
    queue_ = std::move(queue).value();
    if (!source_.empty()) {
        auto progress = queue_->progress(source_);
        if (!progress) return progress.error();
        source_resumed_at_ = source_count_ = staged_progress_ = *progress;
    }
    queue_depth_ = queue_->depth();
    if (queue_depth_ > 0) {
        common::log_info("forward", "queue " + path + " holds " + std::to_string(queue_depth_) +
                                        " unacknowledged alerts from an earlier run; they go first");
    }
    return {};
}

void Forwarder::stop() {
    {
        const std::lock_guard<std::mutex> lock(mutex_);
        stopping_ = true;
    }
    space_.notify_all();
    if (!worker_.joinable()) return;
    worker_.join();
    // The worker is gone: the queue is this thread's now.
    if (source_finished_ && !source_.empty() && queue_ && queue_->depth() == 0) {
        if (auto cleared = queue_->clear_progress(source_); !cleared) {
            common::log_warn("forward", cleared.error().message);
        }
    }
}

void Forwarder::submit(common::Alert alert) {
    std::unique_lock<std::mutex> lock(mutex_);
    space_.wait(lock, [&] {
        if (stopping_) return true;
        if (staged_.size() >= kMaxStaged) return false;
        return options_.queue_policy != QueueFullPolicy::kBlock ||
               staged_.size() + committing_ + queue_depth_ < options_.max_pending_alerts;
    });
    if (stopping_) return;
    staged_.push_back(std::move(alert));
    if (!source_.empty()) staged_progress_ = ++source_count_;
    ++counters_.alerts_submitted;
}

void Forwarder::submit_metadata(std::string line) {
    std::unique_lock<std::mutex> lock(mutex_);
    // Waits only for the staging area (cleared by the next commit), never for the collector:
    // the packet path produces the alerts too, and they must not wait behind metadata.
    space_.wait(lock, [&] { return stopping_ || staged_metadata_.size() < kMaxStaged; });
    if (stopping_) return;
    const std::size_t limit = options_.max_pending_alerts * kMetadataSharePercent / 100;
    if (options_.queue_policy == QueueFullPolicy::kBlock &&
        staged_.size() + staged_metadata_.size() + committing_ + queue_depth_ >= limit) {
        // Not queued (so not lost once accepted): counted, and logged now and then.
        if (counters_.metadata_dropped++ % 10000 == 0) {
            common::log_warn("forward", "queue " + std::to_string(kMetadataSharePercent) +
                                            "% full: metadata records are not queued until the "
                                            "collector catches up (" +
                                            std::to_string(counters_.metadata_dropped) +
                                            " so far); alerts still are");
        }
        return;
    }
    staged_metadata_.push_back(std::move(line));
    ++counters_.metadata_submitted;
}

bool Forwarder::drain(std::chrono::steady_clock::time_point deadline) {
    std::unique_lock<std::mutex> lock(mutex_);
    return space_.wait_until(lock, deadline, [&] {
        return staged_.empty() && staged_metadata_.empty() && committing_ == 0 && queue_depth_ == 0;
    });
}

ForwarderCounters Forwarder::counters() const {
    const std::lock_guard<std::mutex> lock(mutex_);
    return counters_;
}

bool Forwarder::connected() const { return connected_.load(); }

std::size_t Forwarder::pending() const {
    const std::lock_guard<std::mutex> lock(mutex_);
    return staged_.size() + staged_metadata_.size() + committing_ + queue_depth_;
}

void Forwarder::run() {
    for (;;) {
        bool stopping = false;
        {
            const std::lock_guard<std::mutex> lock(mutex_);
            stopping = stopping_;
        }
        if (stopping) {
            commit_staged(true);  // what was submitted is on disk before the agent exits
            delete_acked(true);
            heartbeat_if_due(std::chrono::steady_clock::now(), true);
            break;
        }
        connect_if_due(std::chrono::steady_clock::now());
        handle_inbound();
        commit_staged(false);
        delete_acked(false);
        // Asking the endpoint for its peers' subscriptions is a round trip to Broker's core
        // actor (two thread switches), which every turn of this loop made it pay; so it asks
        // only until the answer is yes, and again after each change of connection.
        if (!connected_) {
            ready_ = false;
        } else if (!ready_) {
            ready_ = transport_->ready_to_send();
        }
        const auto now = std::chrono::steady_clock::now();
        send_due(now);
        heartbeat_if_due(now, false);
    }
}

void Forwarder::commit_staged(bool force) {
    std::vector<common::Alert> batch;
    std::vector<std::string> metadata;
    std::uint64_t progress = 0;
    const auto now = std::chrono::steady_clock::now();
    {
        const std::lock_guard<std::mutex> lock(mutex_);
        if (staged_.empty() && staged_metadata_.empty()) return;
        if (!force && now - last_commit_ < options_.commit_interval &&
            staged_.size() < kMaxStaged / 2 && staged_metadata_.size() < kMaxStaged / 2) {
            return;
        }
        batch.swap(staged_);
        metadata.swap(staged_metadata_);
        progress = staged_progress_;
        // Still counted against the limit while it is written: between the swap and the
        // queue's new depth the alerts are in neither staged_ nor queue_depth_.
        committing_ = batch.size() + metadata.size();
    }
    auto appended = queue_->append(batch, metadata, source_, progress);
    const std::lock_guard<std::mutex> lock(mutex_);
    last_commit_ = now;
    committing_ = 0;
    if (!appended) {
        // Kept staged (in order) and tried again at the next commit; the producer waits when
        // the staging area fills, so a broken disk slows the agent rather than losing alerts.
        ++counters_.queue_errors;
        common::log_error("forward", appended.error().message);
        staged_.insert(staged_.begin(), std::make_move_iterator(batch.begin()),
                       std::make_move_iterator(batch.end()));
        staged_metadata_.insert(staged_metadata_.begin(), std::make_move_iterator(metadata.begin()),
                                std::make_move_iterator(metadata.end()));
        return;
    }
    if (appended->dropped > 0) {
        counters_.queue_dropped += appended->dropped;
        common::log_warn("forward", "queue full (" + std::to_string(options_.max_pending_alerts) +
                                        " records): dropped the " +
                                        std::to_string(appended->dropped) +
                                        " oldest; " + std::to_string(counters_.queue_dropped) +
                                        " dropped so far");
    }
    queue_depth_ = queue_->depth();
    space_.notify_all();
}

void Forwarder::delete_acked(bool force) {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> metadata_ranges;
    {
        const std::lock_guard<std::mutex> lock(mutex_);
        if (acked_ranges_.empty() && acked_metadata_ranges_.empty()) return;
        // Deleting is what lets drain() finish, so a fully acknowledged queue goes at once.
        const bool all_acked = in_flight_.empty() && acked_pending_ >= queue_depth_;
        if (!force && !all_acked &&
            std::chrono::steady_clock::now() - last_delete_ < options_.commit_interval) {
            return;
        }
        ranges.swap(acked_ranges_);
        metadata_ranges.swap(acked_metadata_ranges_);
        acked_pending_ = 0;
    }
    auto removed = queue_->remove(ranges, RecordKind::kAlert);
    auto removed_metadata = queue_->remove(metadata_ranges, RecordKind::kMetadata);
    const std::lock_guard<std::mutex> lock(mutex_);
    last_delete_ = std::chrono::steady_clock::now();
    queue_depth_ = queue_->depth();
    for (const auto* r : {&removed, &removed_metadata}) {
        if (!*r) {
            ++counters_.queue_errors;
            common::log_error("forward", r->error().message);
            // The records stay and are replayed by the next run: duplicates, never loss.
        }
    }
    if (!removed || !removed_metadata) return;
    queue_depth_ = queue_->depth();
    space_.notify_all();
}

void Forwarder::connect_if_due(std::chrono::steady_clock::time_point now) {
    if (connected_) return;
    const std::string peer = options_.host + ":" + std::to_string(options_.port);
    if (attempt_outstanding_ && now - attempt_started_ > attempt_timeout_) {
        attempt_outstanding_ = false;
        const auto waited = attempt_timeout_;
        attempt_timeout_ = std::min(attempt_timeout_ * 2,
                                    std::max(options_.max_connect_timeout, options_.connect_timeout));
        common::log_warn("forward", "collector " + peer + " did not answer within " +
                                        seconds_text(waited) + "; the next attempt waits " +
                                        seconds_text(attempt_timeout_));
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
                    ready_ = false;  // the new peer's subscription is yet to be seen
                    backoff_ = options_.initial_backoff;
                    attempt_timeout_ = options_.connect_timeout;
                    next_heartbeat_ = {};  // say hello at once
                    common::log_info("forward", "connected to collector " + peer);
                    // Everything not yet acknowledged goes again on the new connection.
                    const std::lock_guard<std::mutex> lock(mutex_);
                    for (auto& [id, f] : in_flight_) {
                        f.sent = false;
                        f.resends = 0;
                    }
                    break;
                }
                case common::PeerState::kDisconnected:
                case common::PeerState::kUnreachable: {
                    const bool was_connected = connected_;
                    connected_ = false;
                    ready_ = false;
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
            const std::size_t n = it->second.is_metadata ? it->second.metadata.records.size()
                                                         : it->second.batch.alerts.size();
            // Timed from the first copy: the collector answers an agent's batches in the
            // order they arrive, so the first acknowledgement is the first copy's. (Timing
            // from the last copy, or only batches sent once as TCP does, would never learn
            // of a collector slower than resend_after: every batch would be resent.)
            note_ack_time(std::chrono::steady_clock::now() - it->second.first_sent_at);
            for (auto& [other_id, other] : in_flight_) {
                if (other.sent && other.sent_order < it->second.first_sent_order) {
                    other.overtaken = true;
                }
            }
            // The range is ours, never the ack's: an ack can only release what we sent.
            acked_pending_ += n;
            if (it->second.is_metadata) {
                acked_metadata_ranges_.emplace_back(it->second.first_seq, it->second.last_seq);
                in_flight_.erase(it);
                counters_.metadata_acked += n;
                counters_.metadata_rejected += ack->rejected;
                if (ack->rejected > 0) {
                    common::log_warn("forward", "collector rejected " +
                                                    std::to_string(ack->rejected) +
                                                    " metadata records of batch " +
                                                    std::to_string(ack->batch_id));
                }
                space_.notify_all();
                continue;
            }
            acked_ranges_.emplace_back(it->second.first_seq, it->second.last_seq);
            in_flight_.erase(it);
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

void Forwarder::fill_window() {
    std::size_t alert_batches = 0;
    for (const auto& [id, f] : in_flight_) alert_batches += f.is_metadata ? 0 : 1;
    while (alert_batches < options_.max_batches_in_flight) {
        auto rows = queue_->read_after(last_read_seq_, options_.batch_size);
        if (!rows) {
            ++counters_.queue_errors;
            common::log_error("forward", rows.error().message);
            return;
        }
        if (rows->empty()) break;
        ++alert_batches;
        InFlight f;
        f.first_seq = last_read_seq_ + 1;
        f.last_seq = rows->back().seq;
        last_read_seq_ = f.last_seq;
        f.batch.agent_id = agent_id_;
        f.batch.batch_id = next_batch_id_++;
        f.batch.alerts.reserve(rows->size());
        f.batch.records.reserve(rows->size());
        for (auto& r : *rows) {
            f.batch.alerts.push_back(std::move(r.alert));
            // Signed and sent as stored (wire version 3): no second encoding.
            f.batch.records.push_back(std::move(r.record));
        }
        if (signer_) {
            if (auto signed_ok = signer_->sign(f.batch); !signed_ok) {
                ++counters_.queue_errors;
                common::log_error("forward", "cannot sign batch: " + signed_ok.error().message);
            }
        }
        in_flight_.emplace(f.batch.batch_id, std::move(f));
    }
    // Metadata only once every queued alert is on the wire: alerts never wait behind it.
    if (alert_batches < options_.max_batches_in_flight) fill_metadata_window();
}

void Forwarder::fill_metadata_window() {
    std::size_t metadata_batches = 0;
    for (const auto& [id, f] : in_flight_) metadata_batches += f.is_metadata ? 1 : 0;
    while (metadata_batches < options_.max_metadata_batches_in_flight) {
        auto rows = queue_->read_metadata_after(last_metadata_seq_, options_.batch_size);
        if (!rows) {
            ++counters_.queue_errors;
            common::log_error("forward", rows.error().message);
            return;
        }
        if (rows->empty()) return;
        InFlight f;
        f.is_metadata = true;
        f.first_seq = last_metadata_seq_ + 1;
        f.metadata.agent_id = agent_id_;
        f.metadata.batch_id = next_batch_id_++;
        std::size_t bytes = 0;
        for (auto& r : *rows) {
            // At least one record per batch, however large (the collector refuses oversize
            // ones by name, and acknowledges them so that they leave the queue).
            if (!f.metadata.records.empty() &&
                bytes + r.line.size() > options_.max_metadata_batch_bytes) {
                break;
            }
            bytes += r.line.size();
            f.last_seq = r.seq;
            f.metadata.records.push_back(std::move(r.line));
        }
        last_metadata_seq_ = f.last_seq;
        if (signer_) {
            if (auto signed_ok = signer_->sign(f.metadata); !signed_ok) {
                ++counters_.queue_errors;
                common::log_error("forward",
                                  "cannot sign metadata batch: " + signed_ok.error().message);
            }
        }
        in_flight_.emplace(f.metadata.batch_id, std::move(f));
        ++metadata_batches;
    }
}

void Forwarder::send_due(std::chrono::steady_clock::time_point now) {
    if (!connected_) return;
    if (!ready_) {
        if (!logged_waiting_) {
            common::log_debug("forward", "waiting for the collector's subscription");
            logged_waiting_ = true;
        }
        return;
    }
    const std::lock_guard<std::mutex> lock(mutex_);
    fill_window();
    for (auto& [id, f] : in_flight_) {
        // A live connection loses nothing (TCP); resending is the safety net for a peer that
        // died unnoticed, so each resend waits twice as long as the last (up to 32 x): a slow
        // collector must not be buried under copies of what it is still working on.
        //
        // The wait is the larger of resend_after and the time acknowledgements take now: a
        // busy collector answers late, and resending to it only adds to its work (measured:
        // with a fixed 3 s, four batches in ten were sent twice under load). A batch overtaken
        // by a later one was lost or refused, and waits resend_after only.
        const int doublings = std::min(f.resends, 5);
        const auto base = f.overtaken ? std::chrono::duration_cast<std::chrono::microseconds>(
                                            options_.resend_after)
                                      : resend_timeout();
        if (f.sent && now - f.sent_at < base * (1 << doublings)) continue;
        if (f.sent) {
            ++counters_.batches_resent;
            ++f.resends;
        }
        if (f.is_metadata) {
            transport_->send(f.metadata);
            ++counters_.metadata_batches_sent;
        } else {
            transport_->send(f.batch);
        }
        f.sent_order = ++send_count_;
        if (!f.sent) {
            f.first_sent_order = f.sent_order;
            f.first_sent_at = now;
        }
        f.sent = true;
        f.sent_at = now;
        f.overtaken = false;
        ++counters_.batches_sent;
    }
}

void Forwarder::note_ack_time(std::chrono::steady_clock::duration took) {
    const auto r = std::chrono::duration_cast<std::chrono::microseconds>(took);
    if (ack_time_avg_.count() == 0) {
        ack_time_avg_ = r;
        ack_time_dev_ = r / 2;
        return;
    }
    const auto diff = r > ack_time_avg_ ? r - ack_time_avg_ : ack_time_avg_ - r;
    ack_time_dev_ = (ack_time_dev_ * 3 + diff) / 4;
    ack_time_avg_ = (ack_time_avg_ * 7 + r) / 8;
}

std::chrono::microseconds Forwarder::resend_timeout() const {
    constexpr std::chrono::microseconds kMost = std::chrono::seconds(60);
    const auto floor = std::chrono::duration_cast<std::chrono::microseconds>(options_.resend_after);
    return std::clamp(ack_time_avg_ + ack_time_dev_ * 4, floor, std::max(floor, kMost));
}

void Forwarder::heartbeat_if_due(std::chrono::steady_clock::time_point now, bool stopping) {
    if (!connected_ || !(stopping ? transport_->ready_to_send() : ready_)) return;
    if (!stopping && now < next_heartbeat_) return;
    next_heartbeat_ = now + options_.heartbeat_interval;
    common::Heartbeat hb;
    hb.agent_id = agent_id_;
    hb.sequence = ++heartbeat_seq_;
    hb.version = options_.agent_version;
    hb.uptime_s = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::seconds>(now - started_).count());
    hb.interval_s = static_cast<std::uint64_t>(std::max<long long>(
        1, static_cast<long long>(options_.heartbeat_interval.count())));
    hb.stopping = stopping;
    std::function<AgentStats()> stats;
    {
        const std::lock_guard<std::mutex> lock(stats_mutex_);
        stats = stats_;
    }
    if (stats) {
        const AgentStats s = stats();
        hb.packets = s.packets;
        hb.kernel_drops = s.kernel_drops;
        hb.bytes = s.bytes;
        hb.files_scanned = s.files_scanned;
        hb.alerts = s.alerts;
        hb.pack_version = s.pack_version;
    }
    {
        const std::lock_guard<std::mutex> lock(mutex_);
        hb.queue_depth = staged_.size() + staged_metadata_.size() + committing_ + queue_depth_;
        ++counters_.heartbeats_sent;
    }
    if (auto oldest = queue_->oldest_ns(); oldest && *oldest > 0) {
        hb.queue_oldest_age_s =
            static_cast<std::uint64_t>(std::max<std::int64_t>(0, common::now_ns() - *oldest) /
                                       1'000'000'000);
    }
    if (signer_) {
        if (auto ok = signer_->sign(hb); !ok) {
            common::log_error("forward", "cannot sign heartbeat: " + ok.error().message);
            return;
        }
    }
    transport_->send(hb);
    if (stopping) std::this_thread::sleep_for(kFarewellGrace);
}

}  // namespace senningen::agent
