// Keeping the host first: the scanner threads run in the idle I/O class and the idle CPU
// scheduling class, spend at most a budgeted share of one core (enforced by pacing, so the
// budget holds even on an otherwise idle machine), and hold at most a bounded number of file
// bytes in read buffers at once. Critical processes of the host never wait on the agent.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>

namespace senningen::agent::files {

// Puts the calling thread in the idle I/O priority class (ioprio_set) and, when
// IDLE_CPU is true, in the SCHED_IDLE scheduling class. Returns what could not be done, or an
// empty string (neither failure is fatal: the pacing still bounds the agent).
std::string lower_thread_priority(bool idle_io, bool idle_cpu);

// The I/O priority class of the calling thread as ioprio_get reports it (3 = idle); for tests.
int current_io_class();

// Paces one thread so that its CPU time stays within PERCENT of the wall-clock time: after
// each unit of work it sleeps long enough for the share to hold. 100 or more disables it.
class CpuPacer {
public:
    explicit CpuPacer(double percent);
    void begin();  // before a unit of work
    void end();    // after it: sleeps as needed
    std::chrono::nanoseconds slept() const { return slept_; }

private:
    double percent_;
    std::int64_t cpu_at_begin_ns_ = 0;
    std::chrono::nanoseconds debt_{0};
    std::chrono::nanoseconds slept_{0};
};

std::int64_t thread_cpu_ns();
std::int64_t process_cpu_ns();

// A byte budget shared by the scanner threads for file data held in memory. acquire() waits
// while the budget is spent; a single request larger than the whole budget is granted alone
// (when nothing else is held) so that it cannot wait forever.
class MemoryGate {
public:
    explicit MemoryGate(std::uint64_t limit_bytes) : limit_(limit_bytes) {}
    void acquire(std::uint64_t bytes);
    void release(std::uint64_t bytes);
    std::uint64_t in_use() const;
    std::uint64_t peak() const;
    std::uint64_t limit() const { return limit_; }

private:
    std::uint64_t limit_;
    mutable std::mutex mutex_;
    std::condition_variable cv_;
    std::uint64_t in_use_ = 0;
    std::uint64_t peak_ = 0;
};

}  // namespace senningen::agent::files
