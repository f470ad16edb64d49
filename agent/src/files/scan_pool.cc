#include "senningen/agent/files/scan_pool.h"

#include <algorithm>
#include <utility>

namespace senningen::agent::files {

ScanPool::ScanPool(std::shared_ptr<const YaraRules> rules, const IntelStore* intel,
                   FileScanOptions scan_options, PoolOptions pool_options, ScanCache* cache,
                   ResultSink sink)
    : rules_(std::move(rules)),
      intel_(intel),
      scan_options_(std::move(scan_options)),
      options_(pool_options),
      cache_(cache),
      sink_(std::move(sink)),
      gate_(pool_options.memory_limit) {
    const int n = std::max(1, options_.threads);
    priority_problems_.resize(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) threads_.emplace_back([this, i] { worker(i); });
}

ScanPool::~ScanPool() {
    stop();
}

void ScanPool::submit(std::string path, bool urgent, std::uint64_t size) {
    std::unique_lock lock(mutex_);
    space_cv_.wait(lock, [&] { return stopping_ || queued() < options_.queue_limit; });
    if (stopping_) return;
    if (urgent) {
        urgent_.push_back(std::move(path));
    } else {
        by_size_.push(Queued{size, submitted_++, std::move(path)});
    }
    work_cv_.notify_one();
}

void ScanPool::wait_idle() {
    std::unique_lock lock(mutex_);
    idle_cv_.wait(lock, [&] { return stopping_ || (queued() == 0 && busy_ == 0); });
}

void ScanPool::stop() {
    {
        std::lock_guard lock(mutex_);
        if (stopping_ && threads_.empty()) return;
        stopping_ = true;
        urgent_.clear();
        by_size_ = {};
    }
    work_cv_.notify_all();
    space_cv_.notify_all();
    idle_cv_.notify_all();
    for (auto& t : threads_) {
        if (t.joinable()) t.join();
    }
    threads_.clear();
}

void ScanPool::record(FileScanResult&& result) {
    deliver(std::move(result));
}

ScanTotals ScanPool::totals() const {
    std::lock_guard lock(sink_mutex_);
    return totals_;
}

void ScanPool::deliver(FileScanResult&& result) {
    std::lock_guard lock(sink_mutex_);
    ++totals_.outcomes[static_cast<std::size_t>(result.outcome)];
    ++totals_.files;
    totals_.bytes_read += result.bytes_read;
    if (result.mapped) ++totals_.mapped_files;
    if (!result.alerts.empty()) ++totals_.matched_files;
    totals_.alerts += result.alerts.size();
    if (sink_) sink_(std::move(result));
}

void ScanPool::worker(int index) {
    const std::string problem = lower_thread_priority(options_.idle_io, options_.idle_cpu);
    {
        std::lock_guard lock(sink_mutex_);
        priority_problems_[static_cast<std::size_t>(index)] = problem;
    }
    const double share = options_.cpu_percent / static_cast<double>(std::max(1, options_.threads));
    CpuPacer pacer(share);
    FileScanner scanner(rules_, intel_, scan_options_, cache_, &gate_);
    for (;;) {
        std::string path;
        {
            std::unique_lock lock(mutex_);
            work_cv_.wait(lock, [&] { return stopping_ || queued() != 0; });
            if (stopping_) return;
            if (!urgent_.empty()) {
                path = std::move(urgent_.front());
                urgent_.pop_front();
            } else {
                // top() is const: the path is copied out rather than moved (a short string).
                path = by_size_.top().path;
                by_size_.pop();
            }
            ++busy_;
        }
        space_cv_.notify_one();
        pacer.begin();
        FileScanResult result = scanner.scan(path);
        deliver(std::move(result));
        pacer.end();
        {
            std::lock_guard lock(mutex_);
            --busy_;
            if (queued() == 0 && busy_ == 0) idle_cv_.notify_all();
        }
    }
}

}  // namespace senningen::agent::files
