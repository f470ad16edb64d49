// Worker threads: sharding, batches, the merger (see worker_pool.h for the design).
#include "senningen/agent/engine/worker_pool.h"

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <mutex>
#include <string>
#include <utility>

namespace senningen::agent {
namespace {

// At the end of the input every flow of a worker ends at once, each with its conn record:
// the outputs go to the merger in chunks of this many records, instead of all in the last
// batch (100,000 flows held about 7 MB more at their peak with two workers).
constexpr std::size_t kFinishChunkRecords = 1024;

// Named threads show up as such in top -H, perf and gdb ("snn-worker-0", "snn-merger"). The
// kernel keeps 15 characters; a name that does not fit is simply not set.
void name_thread(std::thread& thread, const std::string& name) {
    pthread_setname_np(thread.native_handle(), name.c_str());
}

}  // namespace

namespace {

// The shard of a decoded frame (see shard_of).
std::size_t shard_of_decoded(DecodeStatus status, const DecodedPacket& packet,
                             std::size_t workers) {
    if (workers <= 1) return 0;
    std::uint64_t hash = 0;
    switch (status) {
        case DecodeStatus::kOk:
            hash = FlowTable::flow_id(packet.ip_proto, {packet.src, packet.src_port},
                                      {packet.dst, packet.dst_port});
            break;
        case DecodeStatus::kFragment:
        case DecodeStatus::kOtherTransport:
            // Addresses only: a later fragment carries no ports.
            hash = FlowTable::flow_id(0, {packet.src, 0}, {packet.dst, 0});
            break;
        default: return 0;
    }
    return static_cast<std::size_t>(hash % workers);
}

}  // namespace

std::size_t cpus_of_cpu_max(std::string_view cpu_max) {
    // "$MAX $PERIOD": MAX is "max" without a quota.
    const std::size_t space = cpu_max.find(' ');
    if (space == std::string_view::npos) return 0;
    std::uint64_t quota = 0;
    std::uint64_t period = 0;
    const std::string_view q = cpu_max.substr(0, space);
    std::string_view p = cpu_max.substr(space + 1);
    while (!p.empty() && (p.back() == '\n' || p.back() == ' ')) p.remove_suffix(1);
    const auto [qe, qerr] = std::from_chars(q.data(), q.data() + q.size(), quota);
    const auto [pe, perr] = std::from_chars(p.data(), p.data() + p.size(), period);
    if (qerr != std::errc() || qe != q.data() + q.size() || perr != std::errc() ||
        pe != p.data() + p.size() || quota == 0 || period == 0) {
        return 0;
    }
    return static_cast<std::size_t>((quota + period - 1) / period);
}

std::size_t available_cpus() {
    std::size_t cpus = 1;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        cpus = std::max(1, CPU_COUNT(&set));
    } else {
        cpus = std::max<long>(1, sysconf(_SC_NPROCESSORS_ONLN));
    }
    // The process's own cgroup (v2: the "0::" line of /proc/self/cgroup), else the root's.
    std::string path = "/sys/fs/cgroup/cpu.max";
    if (std::ifstream in("/proc/self/cgroup"); in) {
        for (std::string line; std::getline(in, line);) {
            if (line.starts_with("0::")) {
                path = "/sys/fs/cgroup" + line.substr(3) + "/cpu.max";
                break;
            }
        }
    }
    if (std::ifstream in(path); in) {
        std::string text;
        std::getline(in, text);
        const std::size_t quota = cpus_of_cpu_max(text);
        if (quota > 0) cpus = std::min(cpus, quota);
    }
    return cpus;
}

std::size_t auto_workers(std::size_t cpus) { return cpus >= 4 ? 2 : 1; }

std::size_t shard_of(int linktype, std::span<const std::uint8_t> frame, std::size_t workers) {
    if (workers <= 1) return 0;
    DecodedPacket packet;
    return shard_of_decoded(decode_packet(linktype, frame, packet), packet, workers);
}

ReassemblyCounters& operator+=(ReassemblyCounters& a, const ReassemblyCounters& b) {
    a.segments += b.segments;
    a.out_of_order += b.out_of_order;
    a.retransmissions += b.retransmissions;
    a.overlaps += b.overlaps;
    a.gaps += b.gaps;
    a.bytes_beyond_depth += b.bytes_beyond_depth;
    a.inconsistent += b.inconsistent;
    return a;
}

FlowTableCounters& operator+=(FlowTableCounters& a, const FlowTableCounters& b) {
    a.flows_created += b.flows_created;
    a.flows_evicted += b.flows_evicted;
    a.flows_expired += b.flows_expired;
    a.flows_timed_out += b.flows_timed_out;
    a.reassembly += b.reassembly;
    return a;
}

EngineCounters& operator+=(EngineCounters& a, const EngineCounters& b) {
    a.packets += b.packets;
    a.bytes += b.bytes;
    a.decoded += b.decoded;
    a.not_ip += b.not_ip;
    a.unsupported_link += b.unsupported_link;
    a.truncated += b.truncated;
    a.malformed += b.malformed;
    a.fragments += b.fragments;
    a.fragment_datagrams += b.fragment_datagrams;
    a.fragment_overlaps += b.fragment_overlaps;
    a.fragments_dropped += b.fragments_dropped;
    a.bad_ip_checksums += b.bad_ip_checksums;
    a.bad_tcp_checksums += b.bad_tcp_checksums;
    a.bad_udp_checksums += b.bad_udp_checksums;
    a.other_transport += b.other_transport;
    a.analyzer_records += b.analyzer_records;
    a.weirds += b.weirds;
    a.protocol_events += b.protocol_events;
    a.policy_alerts += b.policy_alerts;
    a.yara_scans += b.yara_scans;
    a.yara_prefiltered += b.yara_prefiltered;
    a.early_scans += b.early_scans;
    a.yara_errors += b.yara_errors;
    a.intel_hits += b.intel_hits;
    a.intel_whitelisted += b.intel_whitelisted;
    a.files += b.files;
    a.files_extracted += b.files_extracted;
    a.extract_errors += b.extract_errors;
    a.alerts += b.alerts;
    return a;
}

struct WorkerPool::Batch {
    struct Item {
        std::int64_t ts_ns;
        std::size_t offset;  // into bytes
        std::uint32_t caplen;
        std::uint32_t len;
        bool datagram;  // reassembled from fragments: a raw IP packet
        DatagramFacts facts;  // of a datagram
    };
    // Input: packets, then (optionally) a reload, then (optionally) the end.
    std::vector<std::uint8_t> bytes;
    std::vector<Item> items;
    bool reload = false;
    std::shared_ptr<const YaraRules> rules;
    std::shared_ptr<const IntelStore> intel;
    std::shared_ptr<const Policy> policy;
    bool finish = false;
    // Output only, handed over while the worker ends its flows: more of the same worker's
    // output follows in its next batch (the merger takes that before the next worker's).
    bool more = false;
    // Output of the worker, taken by the merger.
    std::vector<common::Alert> alerts;
    std::vector<std::string> records;
    std::vector<std::string> intel_lines;

    void clear() {
        bytes.clear();
        items.clear();
        reload = false;
        rules.reset();
        intel.reset();
        policy.reset();
        finish = false;
        more = false;
        alerts.clear();
        records.clear();
        intel_lines.clear();
    }
};

// Never holds more than the worker's kBatchesPerWorker batches: the bound is the batch count.
struct WorkerPool::Queue {
    std::mutex mutex;
    std::condition_variable ready;
    std::deque<Batch*> items;

    void push(Batch* batch) {
        {
            const std::lock_guard lock(mutex);
            items.push_back(batch);
        }
        ready.notify_one();
    }
    Batch* pop() {
        std::unique_lock lock(mutex);
        ready.wait(lock, [this] { return !items.empty(); });
        Batch* batch = items.front();
        items.pop_front();
        return batch;
    }
};

struct WorkerPool::Worker {
    std::vector<std::unique_ptr<Batch>> owned;
    Queue free;  // capture side takes from here
    Queue in;    // to the worker
    Queue out;   // to the merger
    // Touched by the worker thread only while it runs; by others after join().
    std::shared_ptr<const YaraRules> rules;
    std::shared_ptr<const IntelStore> intel;
    std::shared_ptr<const Policy> policy;
    std::unique_ptr<Engine> engine;
    Batch* output = nullptr;  // the batch whose outputs the engine's sinks fill
    bool finishing = false;   // in Engine::finish(): outputs go out in chunks
    std::thread thread;
};

WorkerPool::WorkerPool(std::size_t workers, int linktype, EngineOptions options,
                       std::shared_ptr<const YaraRules> rules,
                       std::shared_ptr<const IntelStore> intel,
                       std::shared_ptr<const Policy> policy, WorkerOutputs outputs)
    : linktype_(linktype), options_(std::move(options)), outputs_(std::move(outputs)) {
    workers = std::clamp<std::size_t>(workers, 1, kMaxWorkers);
    if (workers == 1) {
        inline_rules_ = rules;
        inline_intel_ = intel;
        inline_engine_ = std::make_unique<Engine>(options_, std::move(rules), intel.get(),
                                                  outputs_.alert);
        inline_engine_->set_policy(std::move(policy));
        if (outputs_.record) inline_engine_->set_record_sink(outputs_.record);
        if (outputs_.intel_log) inline_engine_->set_intel_log_sink(outputs_.intel_log);
        return;
    }
    cycle_.assign(workers, nullptr);
    for (std::size_t i = 0; i < workers; ++i) {
        auto worker = std::make_unique<Worker>();
        worker->rules = rules;
        worker->intel = intel;
        worker->policy = policy;
        for (std::size_t b = 0; b < kBatchesPerWorker; ++b) {
            worker->owned.push_back(std::make_unique<Batch>());
            worker->free.push(worker->owned.back().get());
        }
        workers_.push_back(std::move(worker));
    }
    for (auto& worker : workers_) {
        Worker* w = worker.get();
        w->thread = std::thread([this, w] { worker_main(*w); });
        name_thread(w->thread, "snn-worker-" + std::to_string(&worker - workers_.data()));
    }
    merger_ = std::thread([this] { merger_main(); });
    name_thread(merger_, "snn-merger");
}

WorkerPool::~WorkerPool() { finish(); }

void WorkerPool::worker_main(Worker& w) {
    // The engine (and its YR_SCANNER) is made and used on this thread only.
    w.engine = std::make_unique<Engine>(options_, w.rules, w.intel.get(),
                                        [&w](common::Alert&& alert) {
                                            w.output->alerts.push_back(std::move(alert));
                                        });
    w.engine->set_policy(w.policy);
    if (outputs_.record) {
        w.engine->set_record_sink([&w](const std::string& line) {
            w.output->records.push_back(line);
            if (!w.finishing || w.output->records.size() < kFinishChunkRecords) return;
            // The capture thread has dispatched its last batches, so the worker's free batches
            // are its own; the merger returns them as it writes this worker's chunks.
            Batch* chunk = w.free.pop();
            chunk->alerts.swap(w.output->alerts);
            chunk->records.swap(w.output->records);
            chunk->intel_lines.swap(w.output->intel_lines);
            chunk->more = true;
            w.out.push(chunk);
        });
    }
    if (outputs_.intel_log) {
        w.engine->set_intel_log_sink(
            [&w](const std::string& line) { w.output->intel_lines.push_back(line); });
    }
    for (;;) {
        Batch* batch = w.in.pop();
        w.output = batch;
        for (const Batch::Item& item : batch->items) {
            const RawPacket packet{item.ts_ns, batch->bytes.data() + item.offset, item.caplen,
                                   item.len};
            if (item.datagram) {
                w.engine->process_datagram(packet, item.facts);
            } else {
                w.engine->process(packet, linktype_);
            }
        }
        if (batch->reload) {
            w.engine->reload(batch->rules, batch->intel.get(), batch->policy);
            w.rules = std::move(batch->rules);
            w.intel = std::move(batch->intel);  // the previous store is released here
            w.policy = std::move(batch->policy);
        }
        const bool last = batch->finish;
        if (last) {
            w.finishing = true;
            w.engine->finish();
        }
        w.output = nullptr;
        w.out.push(batch);
        if (last) return;
    }
}

void WorkerPool::merger_main() {
    for (;;) {
        bool last = false;
        // Cycle by cycle, worker by worker: the same capture always merges the same way.
        for (auto& worker : workers_) {
            bool more = true;
            while (more) {
                Batch* batch = worker->out.pop();
                for (auto& alert : batch->alerts) {
                    if (outputs_.alert) outputs_.alert(std::move(alert));
                }
                for (const auto& line : batch->records) outputs_.record(line);
                for (const auto& line : batch->intel_lines) outputs_.intel_log(line);
                more = batch->more;
                if (!more) last = batch->finish;
                batch->clear();
                worker->free.push(batch);
            }
        }
        if (last) return;  // every worker got its end in the same cycle
    }
}

WorkerPool::Batch& WorkerPool::current(std::size_t worker) {
    if (cycle_[worker] == nullptr) cycle_[worker] = workers_[worker]->free.pop();
    return *cycle_[worker];
}

void WorkerPool::process(const RawPacket& packet) {
    packets_.fetch_add(1, std::memory_order_relaxed);
    bytes_.fetch_add(packet.len, std::memory_order_relaxed);
    if (inline_engine_) {
        inline_engine_->process(packet, linktype_);
        return;
    }
    DecodedPacket decoded;
    const DecodeStatus status = decode_packet(linktype_, {packet.data, packet.caplen}, decoded);
    if (status != DecodeStatus::kFragment) {
        enqueue(packet, shard_of_decoded(status, decoded, workers_.size()), nullptr);
        return;
    }
    // Fragments are reassembled here, so that the datagram goes to the worker of its flow
    // (sharded by its ports, which only the first fragment carries).
    const auto whole = defrag_.add(decoded, packet.ts_ns);
    if (whole.empty()) return;
    DecodedPacket inner;
    const DecodeStatus inner_status = decode_packet(kLinktypeRaw, whole, inner);
    const auto size = static_cast<std::uint32_t>(whole.size());
    enqueue(RawPacket{packet.ts_ns, whole.data(), size, size},
            shard_of_decoded(inner_status, inner, workers_.size()), &defrag_.last());
}

void WorkerPool::enqueue(const RawPacket& packet, std::size_t shard,
                         const DatagramFacts* datagram) {
    Batch& batch = current(shard);
    batch.items.push_back({packet.ts_ns, batch.bytes.size(), packet.caplen, packet.len,
                           datagram != nullptr, datagram != nullptr ? *datagram : DatagramFacts{}});
    batch.bytes.insert(batch.bytes.end(), packet.data, packet.data + packet.caplen);
    ++cycle_packets_;
    cycle_bytes_ += packet.caplen;
    if (cycle_packets_ >= kBatchPackets || cycle_bytes_ >= kBatchBytes) dispatch();
}

void WorkerPool::dispatch() {
    // Every worker gets a batch each cycle, empty or not: the merger takes them in turn.
    for (std::size_t i = 0; i < workers_.size(); ++i) {
        current(i);
        workers_[i]->in.push(cycle_[i]);
        cycle_[i] = nullptr;
    }
    cycle_packets_ = 0;
    cycle_bytes_ = 0;
}

void WorkerPool::flush() {
    if (!inline_engine_ && !finished_ && cycle_packets_ > 0) dispatch();
}

void WorkerPool::reload(std::shared_ptr<const YaraRules> rules,
                        std::shared_ptr<const IntelStore> intel,
                        std::shared_ptr<const Policy> policy) {
    if (finished_) return;
    if (inline_engine_) {
        inline_engine_->reload(rules, intel.get(), std::move(policy));
        inline_rules_ = std::move(rules);
        inline_intel_ = std::move(intel);
        return;
    }
    for (std::size_t i = 0; i < workers_.size(); ++i) {
        Batch& batch = current(i);
        batch.reload = true;
        batch.rules = rules;
        batch.intel = intel;
        batch.policy = policy;
    }
    dispatch();
}

void WorkerPool::finish() {
    if (finished_) return;
    finished_ = true;
    if (inline_engine_) {
        inline_engine_->finish();
        return;
    }
    defrag_.flush();
    for (std::size_t i = 0; i < workers_.size(); ++i) current(i).finish = true;
    dispatch();
    for (auto& worker : workers_) worker->thread.join();
    merger_.join();
}

EngineCounters WorkerPool::counters() const {
    if (inline_engine_) return inline_engine_->counters();
    EngineCounters sum;
    for (const auto& w : workers_) {
        if (w->engine) sum += w->engine->counters();
    }
    // The fragments never reached the engines, only the datagrams made of them: the engines
    // counted those as inspected, not as captured packets.
    sum.packets = packets_.load(std::memory_order_relaxed);
    sum.bytes = bytes_.load(std::memory_order_relaxed);
    sum.fragments += defrag_.counters().fragments;
    sum.fragment_datagrams += defrag_.counters().datagrams;
    sum.fragment_overlaps += defrag_.counters().overlaps;
    sum.fragments_dropped += defrag_.counters().dropped;
    sum.bad_ip_checksums += defrag_.counters().bad_checksums;
    return sum;
}

FlowTableCounters WorkerPool::flow_counters() const {
    if (inline_engine_) return inline_engine_->flow_counters();
    FlowTableCounters sum;
    for (const auto& w : workers_) {
        if (w->engine) sum += w->engine->flow_counters();
    }
    return sum;
}

ReassemblyCounters WorkerPool::flush_counters() const {
    if (inline_engine_) return inline_engine_->flush_counters();
    ReassemblyCounters sum;
    for (const auto& w : workers_) {
        if (w->engine) sum += w->engine->flush_counters();
    }
    return sum;
}

std::map<std::string, std::uint64_t, std::less<>> WorkerPool::weirds() const {
    if (inline_engine_) return inline_engine_->weirds();
    std::map<std::string, std::uint64_t, std::less<>> sum;
    for (const auto& w : workers_) {
        if (!w->engine) continue;
        for (const auto& [name, n] : w->engine->weirds()) sum[name] += n;
    }
    return sum;
}

}  // namespace senningen::agent
