// Scanner threads: paths in through a bounded queue, one FileScanner (and YR_SCANNER) per
// thread, results out through one callback (called by one thread at a time). The queue hands
// out urgent paths first, then the largest file queued: with the largest files first, no
// thread is left alone with a big file at the end of a scan while the others idle. Each thread
// lowers its own priority (idle I/O class, optionally SCHED_IDLE) and paces itself to its share
// of the CPU budget; file buffers are bounded by a shared MemoryGate.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <queue>
#include <string>
#include <thread>
#include <vector>

#include "senningen/agent/files/file_scanner.h"
#include "senningen/agent/files/host_limits.h"

namespace senningen::agent::files {

struct PoolOptions {
    int threads = 1;
    double cpu_percent = 100.0;  // of one core, for all threads together; >= 100 * threads: off
    bool idle_io = true;
    bool idle_cpu = true;
    std::uint64_t memory_limit = 256ULL << 20;  // bytes of file data in read buffers at once
    std::size_t queue_limit = 4096;
};

struct ScanTotals {
    std::array<std::uint64_t, kOutcomeCount> outcomes{};
    std::uint64_t files = 0;       // results of every kind
    std::uint64_t bytes_read = 0;  // of files actually read
    std::uint64_t matched_files = 0;
    std::uint64_t alerts = 0;
    std::uint64_t mapped_files = 0;

    std::uint64_t count(Outcome o) const { return outcomes[static_cast<std::size_t>(o)]; }
};

class ScanPool {
public:
    using ResultSink = std::function<void(FileScanResult&&)>;

    ScanPool(std::shared_ptr<const YaraRules> rules, const IntelStore* intel,
             FileScanOptions scan_options, PoolOptions pool_options, ScanCache* cache,
             ResultSink sink);
    ~ScanPool();
    ScanPool(const ScanPool&) = delete;
    ScanPool& operator=(const ScanPool&) = delete;

    // Queues PATH of SIZE bytes (as listed; 0 when unknown); waits while the queue is full.
    // URGENT puts it before everything else (a file an event just named goes before the rest
    // of a full scan); among the others the largest goes first.
    void submit(std::string path, bool urgent = false, std::uint64_t size = 0);
    void wait_idle();  // until the queue is empty and no thread is scanning
    void stop();       // drops what is queued and joins the threads

    // A result of the tree walk (not scanned), counted like a scan result and passed on.
    void record(FileScanResult&& result);

    ScanTotals totals() const;
    std::uint64_t peak_buffered_bytes() const { return gate_.peak(); }
    const std::vector<std::string>& priority_problems() const { return priority_problems_; }

private:
    void worker(int index);
    void deliver(FileScanResult&& result);

    std::shared_ptr<const YaraRules> rules_;
    const IntelStore* intel_;
    FileScanOptions scan_options_;
    PoolOptions options_;
    ScanCache* cache_;
    ResultSink sink_;
    MemoryGate gate_;

    mutable std::mutex mutex_;
    std::condition_variable work_cv_;
    std::condition_variable space_cv_;
    std::condition_variable idle_cv_;
    struct Queued {
        std::uint64_t size = 0;
        std::uint64_t order = 0;  // submission order breaks ties: equal sizes go first in, first out
        std::string path;
        bool operator<(const Queued& o) const {
            return size != o.size ? size < o.size : order > o.order;
        }
    };
    std::size_t queued() const { return urgent_.size() + by_size_.size(); }
    std::deque<std::string> urgent_;
    std::priority_queue<Queued> by_size_;
    std::uint64_t submitted_ = 0;
    int busy_ = 0;
    bool stopping_ = false;

    mutable std::mutex sink_mutex_;
    ScanTotals totals_;
    std::vector<std::string> priority_problems_;
    std::vector<std::thread> threads_;
};

}  // namespace senningen::agent::files
