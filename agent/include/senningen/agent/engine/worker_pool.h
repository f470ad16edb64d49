// Worker threads for network inspection. The capture thread hands packets to N engines, each on
// its own thread with its own flow table, analyzers, files and YARA scanner; the rules, intel
// and policy are shared read-only. Packets are sharded by a symmetric flow hash, so both
// directions of a flow meet the same engine. IP fragments are reassembled on the capture
// thread (a Defragmenter), and the whole datagram is sharded by its flow like any packet; a
// datagram that is neither TCP nor UDP goes by its address pair.
//
// Packets travel in batches (one per worker per "cycle" of up to kBatchPackets packets or
// kBatchBytes bytes) to keep synchronisation rare. Each worker owns a fixed set of batches that
// circulate capture -> worker -> merger -> capture, so memory is bounded and a slow worker
// makes the capture thread wait (back-pressure) instead of queueing without limit. The merger
// thread takes the workers' outputs (alerts, records, intel.log lines) cycle by cycle in worker
// order, so the merged output is deterministic for a given capture and worker count.
//
// With one worker there are no threads: the engine runs on the caller's thread and writes
// straight to the outputs.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "senningen/agent/engine/engine.h"

namespace senningen::agent {

// Where the merged output goes. Called from one thread at a time (the merger, or the caller's
// thread with one worker). RECORD and INTEL_LOG may be empty: the engines then do not build
// those lines.
struct WorkerOutputs {
    Engine::AlertSink alert;
    Engine::RecordSink record;
    Engine::RecordSink intel_log;
};

// The shard of a frame of link type LINKTYPE for N workers: both directions of a TCP or UDP
// flow give the same shard; fragments and other IP traffic by their address pair; frames that
// are not IP go to shard 0.
std::size_t shard_of(int linktype, std::span<const std::uint8_t> frame, std::size_t workers);

// The CPUs this process may run on: its affinity mask, cut by a cgroup v2 CPU quota
// (systemd's CPUQuota=, rounded up to whole CPUs). At least 1.
std::size_t available_cpus();
// A cgroup v2 cpu.max ("max 100000", "150000 100000"): the CPUs its quota amounts to, rounded
// up, or 0 when it sets none (or does not read as one).
std::size_t cpus_of_cpu_max(std::string_view cpu_max);
// --workers auto: two workers when the host has cores to spare (four CPUs or more: the two
// workers, the capture and merger threads, and the host's own work), one on a small host.
std::size_t auto_workers(std::size_t cpus);

EngineCounters& operator+=(EngineCounters& a, const EngineCounters& b);
FlowTableCounters& operator+=(FlowTableCounters& a, const FlowTableCounters& b);
ReassemblyCounters& operator+=(ReassemblyCounters& a, const ReassemblyCounters& b);

class WorkerPool {
public:
    static constexpr std::size_t kMaxWorkers = 16;
    static constexpr std::size_t kBatchPackets = 512;
    static constexpr std::size_t kBatchBytes = 1 << 20;  // per cycle, over all workers
    static constexpr std::size_t kBatchesPerWorker = 6;

    // WORKERS in 1..kMaxWorkers. INTEL may be null; it must outlive the pool (or the next
    // reload that replaces it). Threads start here.
    WorkerPool(std::size_t workers, int linktype, EngineOptions options,
               std::shared_ptr<const YaraRules> rules, std::shared_ptr<const IntelStore> intel,
               std::shared_ptr<const Policy> policy, WorkerOutputs outputs);
    ~WorkerPool();  // finishes if finish() was not called
    WorkerPool(const WorkerPool&) = delete;
    WorkerPool& operator=(const WorkerPool&) = delete;

    // The packet is copied; PACKET's data may be reused after the call.
    void process(const RawPacket& packet);

    // Hands the packets gathered so far to the workers now (a live capture calls this before
    // it waits for traffic, so that nothing lingers in a half-full batch).
    void flush();

    // Swaps rules, intel and policy in every engine after the packets given so far.
    void reload(std::shared_ptr<const YaraRules> rules, std::shared_ptr<const IntelStore> intel,
                std::shared_ptr<const Policy> policy);

    // End of input: every engine finishes its flows, all output is merged, threads end.
    void finish();

    std::size_t workers() const { return inline_engine_ ? 1 : workers_.size(); }
    // Seen by the capture side so far (any thread may read them).
    std::uint64_t packets() const { return packets_.load(std::memory_order_relaxed); }
    std::uint64_t bytes() const { return bytes_.load(std::memory_order_relaxed); }

    // Summed over the engines; valid after finish().
    EngineCounters counters() const;
    FlowTableCounters flow_counters() const;
    ReassemblyCounters flush_counters() const;
    std::map<std::string, std::uint64_t, std::less<>> weirds() const;

private:
    struct Batch;
    struct Queue;
    struct Worker;

    Batch& current(std::size_t worker);  // this cycle's batch of WORKER (waits for a free one)
    // Copies PACKET into SHARD's batch; DATAGRAM (or null): the facts of a datagram
    // reassembled from fragments, a raw IP packet.
    void enqueue(const RawPacket& packet, std::size_t shard, const DatagramFacts* datagram);
    void dispatch();                     // hands this cycle's batches to the workers
    void worker_main(Worker& worker);
    void merger_main();

    int linktype_;
    EngineOptions options_;
    WorkerOutputs outputs_;
    std::vector<std::unique_ptr<Worker>> workers_;
    std::unique_ptr<Engine> inline_engine_;  // one worker: no threads
    std::shared_ptr<const YaraRules> inline_rules_;
    std::shared_ptr<const IntelStore> inline_intel_;
    std::thread merger_;
    std::vector<Batch*> cycle_;  // per worker, this cycle's batch being filled (or null)
    std::size_t cycle_packets_ = 0;
    std::size_t cycle_bytes_ = 0;
    bool finished_ = false;
    // With worker threads, fragments are reassembled on the capture thread (the engines get
    // the datagrams): touched by it only, and read after finish().
    Defragmenter defrag_;
    std::atomic<std::uint64_t> packets_{0};
    std::atomic<std::uint64_t> bytes_{0};
};

}  // namespace senningen::agent
