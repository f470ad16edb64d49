#include "senningen/collector/ingest.h"

#include <algorithm>
#include <utility>

#include "senningen/common/log.h"

namespace senningen::collector {

namespace {

// An agent is offline once this many heartbeats are overdue.
constexpr std::int64_t kMissedHeartbeats = 3;
constexpr std::chrono::seconds kLivenessCheckEvery{1};

}  // namespace

Ingest::Ingest(common::Transport& transport, AlertStore& store, common::PeerVerifier* verifier)
    : transport_(transport),
      store_(store),
      verifier_(verifier),
      started_ns_(common::now_ns()),
      committer_([this] { run_committer(); }) {}

Ingest::~Ingest() {
    hand_over();
    {
        const std::lock_guard lock(commit_mutex_);
        stopping_ = true;
    }
    commit_changed_.notify_all();
    committer_.join();
}

void Ingest::flush() {
    hand_over();
    std::unique_lock lock(commit_mutex_);
    commit_changed_.wait(lock, [&] { return next_.empty() && !committing_; });
}

void Ingest::hand_over() {
    if (building_.empty()) return;
    std::unique_lock lock(commit_mutex_);
    // Joins the waiting group while both fit in one transaction; otherwise waits for the
    // commit thread to take the waiting group.
    commit_changed_.wait(lock, [&] {
        return next_.empty() || next_.size + building_.size <= kMaxGroupAlerts;
    });
    if (next_.empty()) {
        next_ = std::exchange(building_, {});
    } else {
        for (std::size_t i = 0; i < building_.batches.size(); ++i) {
            next_.batches.push_back(std::move(building_.batches[i]));
            next_.alerts.push_back(std::move(building_.alerts[i]));
            next_.records.push_back(std::move(building_.records[i]));
        }
        next_.size += building_.size;
        building_ = {};
    }
    lock.unlock();
    commit_changed_.notify_all();
}

void Ingest::run_committer() {
    std::unique_lock lock(commit_mutex_);
    for (;;) {
        commit_changed_.wait(lock, [&] { return stopping_ || !next_.empty(); });
        if (next_.empty()) return;  // stopping, and everything handed over is committed
        Group group = std::exchange(next_, {});
        committing_ = true;
        lock.unlock();
        commit_changed_.notify_all();  // room for the next group
        commit(std::move(group));
        lock.lock();
        committing_ = false;
        commit_changed_.notify_all();
    }
}

template <typename Message>
std::optional<std::string> Ingest::authenticate(const Message& message, const char* what,
                                                std::uint64_t number) {
    if (!verifier_) return message.agent_id;  // insecure mode: taken on trust
    auto proven = verifier_->verify(message);
    std::string reason;
    if (!proven) {
        reason = proven.error().message;
    } else if (*proven != message.agent_id) {
        reason = "it claims agent '" + message.agent_id + "' but its certificate is agent '" +
                 *proven + "'";
    } else {
        return *proven;
    }
    const std::lock_guard<std::mutex> lock(mutex_);
    ++counters_.messages_refused;
    common::log_warn("ingest", std::string("refused ") + what + " " + std::to_string(number) +
                                   " claiming agent '" + message.agent_id + "': " + reason);
    return std::nullopt;
}

void Ingest::handle_heartbeat(common::Heartbeat heartbeat) {
    auto agent = authenticate(heartbeat, "heartbeat", heartbeat.sequence);
    if (!agent) return;
    heartbeat.agent_id = *agent;
    if (auto ok = store_.record_heartbeat(heartbeat, common::now_ns()); !ok) {
        common::log_error("ingest", "heartbeat of agent '" + *agent + "': " + ok.error().message);
        return;
    }
    const std::lock_guard<std::mutex> lock(mutex_);
    ++counters_.heartbeats;
}

void Ingest::check_liveness() {
    const auto now = std::chrono::steady_clock::now();
    if (now < next_liveness_check_) return;
    next_liveness_check_ = now + kLivenessCheckEvery;
    auto agents = store_.agents();
    if (!agents) return;  // a store without agents (or a failing one): nothing to watch
    const std::int64_t now_ns = common::now_ns();
    for (const AgentStatus& a : *agents) {
        if (a.state != "online") continue;
        // Heartbeats missed while this collector was down do not count against the agent.
        const std::int64_t since = std::max(a.last_seen_ns, started_ns_);
        const std::int64_t allowed =
            kMissedHeartbeats * static_cast<std::int64_t>(a.last.interval_s) * 1'000'000'000;
        if (now_ns - since <= allowed) continue;
        const std::string detail = "no heartbeat for " +
                                   std::to_string((now_ns - a.last_seen_ns) / 1'000'000'000) +
                                   " s (" + std::to_string(kMissedHeartbeats) + " missed, every " +
                                   std::to_string(a.last.interval_s) + " s)";
        if (auto ok = store_.set_agent_state(a.id, "offline", now_ns, detail); !ok) {
            common::log_error("ingest", "marking agent '" + a.id + "' offline: " +
                                            ok.error().message);
            continue;
        }
        common::log_warn("ingest", "agent '" + a.id + "' is offline: " + detail);
        const std::lock_guard<std::mutex> lock(mutex_);
        ++counters_.agents_marked_offline;
    }
}

IngestCounters Ingest::counters() const {
    const std::lock_guard<std::mutex> lock(mutex_);
    return counters_;
}

void Ingest::poll(std::chrono::milliseconds timeout) {
    for (auto& item : transport_.receive(timeout)) {
        if (auto* batch = std::get_if<common::AlertBatch>(&item)) {
            handle_batch(std::move(*batch));
        } else if (auto* hb = std::get_if<common::Heartbeat>(&item)) {
            handle_heartbeat(std::move(*hb));
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
    hand_over();
    check_liveness();
}

void Ingest::handle_batch(common::AlertBatch batch) {
    // Refused batches are not acknowledged: the agent keeps them, and an operator who fixes
    // the enrollment gets them delivered.
    if (!authenticate(batch, "batch", batch.batch_id)) return;
    // Every alert is validated here, once: the store is told so (insert_validated).
    std::uint64_t rejected = 0;
    const bool records = batch.has_records();
    std::size_t kept = 0;
    for (std::size_t i = 0; i < batch.alerts.size(); ++i) {
        const common::Alert& alert = batch.alerts[i];
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
        if (kept != i) {
            batch.alerts[kept] = std::move(batch.alerts[i]);
            if (records) batch.records[kept] = std::move(batch.records[i]);
        }
        ++kept;
    }
    batch.alerts.resize(kept);
    if (records) {
        batch.records.resize(kept);
    } else {
        batch.records.clear();
    }
    building_.size += batch.alerts.size();
    building_.batches.push_back(Grouped{std::move(batch.agent_id), batch.batch_id, rejected});
    building_.alerts.push_back(std::move(batch.alerts));
    building_.records.push_back(std::move(batch.records));
    if (building_.size >= kMaxGroupAlerts) hand_over();
}

// On the commit thread.
void Ingest::commit(Group g) {
    std::vector<ValidatedBatch> batches;
    batches.reserve(g.alerts.size());
    for (std::size_t i = 0; i < g.alerts.size(); ++i) {
        batches.push_back(
            ValidatedBatch{&g.alerts[i], g.records[i].empty() ? nullptr : &g.records[i]});
    }
    auto results = store_.insert_validated(batches);
    std::vector<Grouped>& group = g.batches;
    const std::lock_guard<std::mutex> lock(mutex_);
    counters_.batches += group.size();
    if (!results) {
        counters_.store_errors += group.size();
        common::log_error("ingest", "store refused a group of " + std::to_string(group.size()) +
                                        " batches, the first " +
                                        std::to_string(group.front().batch_id) + " from agent '" +
                                        group.front().agent_id +
                                        "' (not acknowledged, the agents will resend): " +
                                        results.error().message);
        return;
    }
    ++counters_.transactions;
    for (std::size_t i = 0; i < group.size(); ++i) {
        const InsertResult& r = (*results)[i];
        counters_.alerts_inserted += r.inserted;
        counters_.alerts_duplicate += r.duplicates;
        counters_.alerts_rejected += group[i].rejected;
        common::BatchAck ack;
        ack.agent_id = std::move(group[i].agent_id);
        ack.batch_id = group[i].batch_id;
        ack.inserted = r.inserted;
        ack.duplicates = r.duplicates;
        ack.rejected = group[i].rejected;
        transport_.send(ack);
    }
}

}  // namespace senningen::collector
