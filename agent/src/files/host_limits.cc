#include "senningen/agent/files/host_limits.h"

#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

namespace senningen::agent::files {

namespace {

// <linux/ioprio.h> is not shipped for user space on every distribution; the ABI is stable.
constexpr int kIoprioWhoProcess = 1;  // with pid 0: the calling thread
constexpr int kIoprioClassShift = 13;
constexpr int kIoprioClassIdle = 3;

std::int64_t clock_ns(clockid_t clock) {
    timespec ts{};
    clock_gettime(clock, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace

std::string lower_thread_priority(bool idle_io, bool idle_cpu) {
    std::string problems;
    if (idle_io) {
        const int value = kIoprioClassIdle << kIoprioClassShift;
        if (syscall(SYS_ioprio_set, kIoprioWhoProcess, 0, value) != 0) {
            problems += std::string("ioprio_set(idle): ") + std::strerror(errno);
        }
    }
    if (idle_cpu) {
        sched_param param{};
        if (sched_setscheduler(0, SCHED_IDLE, &param) != 0) {
            if (!problems.empty()) problems += "; ";
            problems += std::string("sched_setscheduler(SCHED_IDLE): ") + std::strerror(errno);
        }
    }
    return problems;
}

int current_io_class() {
    const long value = syscall(SYS_ioprio_get, kIoprioWhoProcess, 0);
    return value < 0 ? -1 : static_cast<int>(value >> kIoprioClassShift);
}

std::int64_t thread_cpu_ns() {
    return clock_ns(CLOCK_THREAD_CPUTIME_ID);
}
std::int64_t process_cpu_ns() {
    return clock_ns(CLOCK_PROCESS_CPUTIME_ID);
}

CpuPacer::CpuPacer(double percent) : percent_(percent) {}

void CpuPacer::begin() {
    if (percent_ < 100.0) cpu_at_begin_ns_ = thread_cpu_ns();
}

void CpuPacer::end() {
    if (percent_ >= 100.0 || percent_ <= 0.0) return;
    const std::int64_t used = thread_cpu_ns() - cpu_at_begin_ns_;
    // Working U at share p needs U * (100 / p - 1) of rest. Short rests are collected into one
    // sleep so that tiny files do not turn into a storm of tiny sleeps.
    debt_ += std::chrono::nanoseconds(
        static_cast<std::int64_t>(static_cast<double>(used) * (100.0 / percent_ - 1.0)));
    if (debt_ < std::chrono::milliseconds(5)) return;
    const auto before = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(debt_);
    const auto actual = std::chrono::duration_cast<std::chrono::nanoseconds>(
        std::chrono::steady_clock::now() - before);
    slept_ += actual;
    debt_ = std::max(std::chrono::nanoseconds(0), debt_ - actual);
}

void MemoryGate::acquire(std::uint64_t bytes) {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return in_use_ == 0 || in_use_ + bytes <= limit_; });
    in_use_ += bytes;
    peak_ = std::max(peak_, in_use_);
}

void MemoryGate::release(std::uint64_t bytes) {
    {
        std::lock_guard lock(mutex_);
        in_use_ -= std::min(in_use_, bytes);
    }
    cv_.notify_all();
}

std::uint64_t MemoryGate::in_use() const {
    std::lock_guard lock(mutex_);
    return in_use_;
}

std::uint64_t MemoryGate::peak() const {
    std::lock_guard lock(mutex_);
    return peak_;
}

}  // namespace senningen::agent::files
