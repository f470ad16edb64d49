#include "senningen/collector/ingest.h"

#include <algorithm>
#include <utility>

#include "senningen/common/log.h"

namespace senningen::collector {

namespace {

// An agent is offline once this many heartbeats are overdue.
constexpr std::int64_t kMissedHeartbeats = 3;
constexpr std::chrono::seconds kLivenessCheckEvery{1};
// The metadata retention runs this often, deleting at most kPruneChunk records each time (a
// chunk takes the SQLite writer for a fraction of a second), sooner while it has more to do.
constexpr std::chrono::seconds kPruneEvery{10};
constexpr std::size_t kPruneChunk = 20000;

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

void Ingest::set_metadata_retention(const MetadataRetention& retention) {
    const std::lock_guard lock(commit_mutex_);
    retention_ = retention;
}

void Ingest::Group::append(Group&& other) {
    const std::size_t alert_base = batches.size();
    const std::size_t metadata_base = metadata_batches.size();
    for (std::size_t i = 0; i < other.batches.size(); ++i) {
        batches.push_back(std::move(other.batches[i]));
        alerts.push_back(std::move(other.alerts[i]));
        records.push_back(std::move(other.records[i]));
    }
    for (std::size_t i = 0; i < other.metadata_batches.size(); ++i) {
        metadata_batches.push_back(std::move(other.metadata_batches[i]));
        metadata.push_back(std::move(other.metadata[i]));
    }
    for (const auto& [is_metadata, i] : other.order) {
        order.emplace_back(is_metadata, i + (is_metadata ? metadata_base : alert_base));
    }
    size += other.size;
    other = {};
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
        next_.append(std::move(building_));
        building_ = {};
    }
    lock.unlock();
    commit_changed_.notify_all();
}

void Ingest::run_committer() {
    std::unique_lock lock(commit_mutex_);
    for (;;) {
        if (!commit_changed_.wait_for(lock, kLivenessCheckEvery,
                                      [&] { return stopping_ || !next_.empty(); })) {
            lock.unlock();
            prune_metadata_if_due();
            lock.lock();
            continue;
        }
        if (next_.empty()) return;  // stopping, and everything handed over is committed
        Group group = std::exchange(next_, {});
        committing_ = true;
        lock.unlock();
        commit_changed_.notify_all();  // room for the next group
        commit(std::move(group));
        // Under steady load the thread is never idle: the retention runs between commits too.
        prune_metadata_if_due();
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
        } else if (auto* metadata = std::get_if<common::MetadataBatch>(&item)) {
            handle_metadata(std::move(*metadata));
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
    building_.order.emplace_back(false, building_.batches.size());
    building_.batches.push_back(Grouped{std::move(batch.agent_id), batch.batch_id, rejected});
    building_.alerts.push_back(std::move(batch.alerts));
    building_.records.push_back(std::move(batch.records));
    if (building_.size >= kMaxGroupAlerts) hand_over();
}

void Ingest::handle_metadata(common::MetadataBatch batch) {
    // Refused credentials: not acknowledged, as an alert batch.
    if (!authenticate(batch, "metadata batch", batch.batch_id)) return;
    MetadataBatchIn in;
    in.agent_id = std::move(batch.agent_id);
    in.records.reserve(batch.records.size());
    std::array<std::uint64_t, kMetadataProblemCount> refused{};
    std::uint64_t rejected = 0;
    std::string first_problem;
    for (const std::string& record : batch.records) {
        auto parsed = parse_metadata_record(record);
        if (auto* bad = std::get_if<MetadataParseError>(&parsed)) {
            ++rejected;
            ++refused[static_cast<std::size_t>(bad->problem)];
            if (first_problem.empty()) first_problem = bad->message;
            continue;
        }
        in.records.push_back(std::move(std::get<ParsedMetadata>(parsed)));
    }
    if (rejected > 0) {
        // One line per batch, not per record: a broken agent must not flood the log.
        common::log_warn("ingest", "metadata batch " + std::to_string(batch.batch_id) +
                                       " from agent '" + in.agent_id + "': refused " +
                                       std::to_string(rejected) + " of " +
                                       std::to_string(batch.records.size()) +
                                       " records, the first " + first_problem);
        const std::lock_guard<std::mutex> lock(mutex_);
        counters_.metadata_refused += rejected;
        for (std::size_t i = 0; i < refused.size(); ++i)
            counters_.metadata_refused_by[i] += refused[i];
    }
    building_.size += in.records.size();
    building_.order.emplace_back(true, building_.metadata_batches.size());
    building_.metadata_batches.push_back(Grouped{in.agent_id, batch.batch_id, rejected});
    building_.metadata.push_back(std::move(in));
    if (building_.size >= kMaxGroupAlerts) hand_over();
}

void Ingest::prune_metadata_if_due() {
    const auto now = std::chrono::steady_clock::now();
    if (now < next_prune_) return;
    MetadataRetention retention;
    {
        const std::lock_guard lock(commit_mutex_);
        retention = retention_;
    }
    auto pruned = store_.prune_metadata(retention, common::now_ns(), kPruneChunk);
    if (!pruned) {
        next_prune_ = now + kPruneEvery;
        if (pruned.error().code != common::ErrorCode::kUnsupported) {
            common::log_error("ingest", "metadata retention: " + pruned.error().message);
        }
        return;
    }
    // A full chunk: there is more to delete, so again at the next idle moment.
    next_prune_ = *pruned >= kPruneChunk ? now : now + kPruneEvery;
    if (*pruned == 0) return;
    common::log_info("ingest",
                     "metadata retention deleted " + std::to_string(*pruned) + " records");
    const std::lock_guard<std::mutex> lock(mutex_);
    counters_.metadata_pruned += *pruned;
}

// On the commit thread.
void Ingest::commit(Group g) {
    std::vector<Grouped>& group = g.batches;
    common::Result<std::vector<InsertResult>> results = std::vector<InsertResult>{};
    if (!group.empty()) {
        std::vector<ValidatedBatch> batches;
        batches.reserve(g.alerts.size());
        for (std::size_t i = 0; i < g.alerts.size(); ++i) {
            batches.push_back(
                ValidatedBatch{&g.alerts[i], g.records[i].empty() ? nullptr : &g.records[i]});
        }
        results = store_.insert_validated(batches);
    }
    common::Result<std::vector<MetadataInsertResult>> metadata_results =
        std::vector<MetadataInsertResult>{};
    if (!g.metadata.empty())
        metadata_results = store_.insert_metadata(g.metadata, common::now_ns());
    const std::lock_guard<std::mutex> lock(mutex_);
    counters_.batches += group.size();
    counters_.metadata_batches += g.metadata_batches.size();
    if (!results) {
        counters_.store_errors += group.size();
        common::log_error("ingest", "store refused a group of " + std::to_string(group.size()) +
                                        " batches, the first " +
                                        std::to_string(group.front().batch_id) + " from agent '" +
                                        group.front().agent_id +
                                        "' (not acknowledged, the agents will resend): " +
                                        results.error().message);
    } else if (!group.empty()) {
        ++counters_.transactions;
    }
    if (!metadata_results) {
        counters_.metadata_store_errors += g.metadata_batches.size();
        common::log_error("ingest", "store refused " + std::to_string(g.metadata_batches.size()) +
                                        " metadata batches, the first " +
                                        std::to_string(g.metadata_batches.front().batch_id) +
                                        " from agent '" + g.metadata_batches.front().agent_id +
                                        "' (not acknowledged, the agents will resend): " +
                                        metadata_results.error().message);
    } else if (!g.metadata.empty()) {
        ++counters_.transactions;
    }
    // Acknowledged in the order they arrived: an agent takes an acknowledgement that overtakes
    // an earlier batch's as a sign that the earlier one was lost.
    for (const auto& [is_metadata, i] : g.order) {
        common::BatchAck ack;
        if (is_metadata) {
            if (!metadata_results) continue;
            const MetadataInsertResult& r = (*metadata_results)[i];
            counters_.metadata_inserted += r.inserted;
            counters_.metadata_duplicate += r.duplicates;
            ack.agent_id = std::move(g.metadata_batches[i].agent_id);
            ack.batch_id = g.metadata_batches[i].batch_id;
            ack.inserted = r.inserted;
            ack.duplicates = r.duplicates;
            ack.rejected = g.metadata_batches[i].rejected;
        } else {
            if (!results) continue;
            const InsertResult& r = (*results)[i];
            counters_.alerts_inserted += r.inserted;
            counters_.alerts_duplicate += r.duplicates;
            counters_.alerts_rejected += group[i].rejected;
            ack.agent_id = std::move(group[i].agent_id);
            ack.batch_id = group[i].batch_id;
            ack.inserted = r.inserted;
            ack.duplicates = r.duplicates;
            ack.rejected = group[i].rejected;
        }
        transport_.send(ack);
    }
}

}  // namespace senningen::collector
