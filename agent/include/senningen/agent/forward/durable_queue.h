// The agent's on-disk store-and-forward queue: every alert (and metadata record) is appended
// here before it is sent, and deleted only once the collector acknowledged it, so a crash, a
// reboot or a long outage loses nothing. SQLite in WAL mode; appends are grouped into one
// transaction per commit interval (the caller's fsync batching), and with sync "full" each
// commit is on disk before the call returns.
//
// Bounded: at most max_entries records. When full, policy kBlock makes the producer wait
// (back-pressure: nothing is dropped), policy kDropOldest deletes the oldest records to make
// room, metadata before alerts, and counts what it dropped.
//
// A source's progress (how many records of, say, a capture file were appended) is kept in the
// same transaction as the records, so that a restarted agent resumes exactly after what it
// had queued, neither losing nor repeating anything.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "senningen/common/alert.h"
#include "senningen/common/result.h"

namespace senningen::agent {

enum class RecordKind : std::uint8_t { kAlert = 0, kMetadata = 1 };
enum class QueueFullPolicy : std::uint8_t { kBlock, kDropOldest };
enum class QueueSync : std::uint8_t { kFull, kNormal };

struct DurableQueueOptions {
    std::size_t max_entries = 1'000'000;
    QueueFullPolicy policy = QueueFullPolicy::kBlock;
    QueueSync sync = QueueSync::kFull;
};

struct QueuedAlert {
    std::uint64_t seq = 0;
    common::Alert alert;
    std::string record;  // the alert as stored (common/record_codec.h): what is signed and sent
};

// A metadata record as queued: the JSON line the agent wrote to its metadata log.
struct QueuedMetadata {
    std::uint64_t seq = 0;
    std::string line;
};

struct AppendResult {
    std::size_t appended = 0;
    std::size_t dropped = 0;  // old records deleted to make room (kDropOldest)
};

class DurableQueue {
public:
    ~DurableQueue();
    DurableQueue(const DurableQueue&) = delete;
    DurableQueue& operator=(const DurableQueue&) = delete;

    // Opens or creates the queue at PATH (":memory:" for a queue that does not survive the
    // process, for tests). kDatabase naming the path when it cannot be opened.
    static common::Result<std::unique_ptr<DurableQueue>> open(const std::string& path,
                                                              DurableQueueOptions options);

    // Appends ALERTS in one transaction and sets SOURCE's progress to PROGRESS (SOURCE empty:
    // none). With kBlock, the caller must not append more than free() records.
    common::Result<AppendResult> append(const std::vector<common::Alert>& alerts,
                                        const std::string& source, std::uint64_t progress);
    // The same with METADATA records (kMetadata) appended in the same transaction, after the
    // alerts.
    common::Result<AppendResult> append(const std::vector<common::Alert>& alerts,
                                        const std::vector<std::string>& metadata,
                                        const std::string& source, std::uint64_t progress);

    // Up to MAX alerts with seq > AFTER, in order.
    common::Result<std::vector<QueuedAlert>> read_after(std::uint64_t after, std::size_t max);
    // Up to MAX metadata records with seq > AFTER, in order. Alerts and metadata are read (and
    // sent) on cursors of their own, so that a metadata backlog never delays an alert.
    common::Result<std::vector<QueuedMetadata>> read_metadata_after(std::uint64_t after,
                                                                    std::size_t max);

    // Deletes the acknowledged records of KIND with seq FIRST..LAST (inclusive); returns how
    // many existed. Records of the other kind in that range stay.
    common::Result<std::size_t> remove(std::uint64_t first, std::uint64_t last,
                                       RecordKind kind = RecordKind::kAlert);
    // The same for many ranges in one transaction (one sync instead of one per range).
    common::Result<std::size_t> remove(
        const std::vector<std::pair<std::uint64_t, std::uint64_t>>& ranges,
        RecordKind kind = RecordKind::kAlert);

    // The progress last appended for SOURCE, 0 when none.
    common::Result<std::uint64_t> progress(const std::string& source);
    // Forgets SOURCE's progress: it was read to its end and everything of it delivered.
    common::Result<void> clear_progress(const std::string& source);

    std::size_t depth() const { return depth_; }  // records of both kinds
    std::size_t metadata_depth() const { return metadata_depth_; }
    std::size_t free() const { return depth_ >= options_.max_entries ? 0 : options_.max_entries - depth_; }
    // Enqueue time of the oldest record, 0 when empty.
    common::Result<std::int64_t> oldest_ns();
    const DurableQueueOptions& options() const { return options_; }

private:
    struct Db;
    DurableQueue(std::unique_ptr<Db> db, std::string path, DurableQueueOptions options,
                 std::size_t depth, std::size_t metadata_depth);
    void note_removed(std::size_t n, RecordKind kind);

    std::unique_ptr<Db> db_;
    std::string path_;
    DurableQueueOptions options_;
    std::size_t depth_ = 0;
    std::size_t metadata_depth_ = 0;
};

}  // namespace senningen::agent
