// The scan cache: which files were scanned clean under which rule pack, so that a rescan of an
// unchanged tree reads nothing. A file is identified by (device, inode, size, mtime, ctime);
// any write, truncate, chmod, rename over or replace changes one of them. The whole cache
// belongs to one rule pack version (rules and intel): another version empties it. Only clean
// files are kept, so a file that matched is scanned (and reported) again every time.
//
// Persisted as a small text file ending in a SHA-256 of its content; a file that is damaged,
// truncated or of another version is ignored (and said so), never trusted.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_set>

#include "senningen/common/result.h"

namespace senningen::agent::files {

struct FileIdentity {
    std::uint64_t dev = 0;
    std::uint64_t ino = 0;
    std::uint64_t size = 0;
    std::int64_t mtime_ns = 0;
    std::int64_t ctime_ns = 0;

    bool operator==(const FileIdentity&) const = default;
};

struct FileIdentityHash {
    std::size_t operator()(const FileIdentity& id) const;
};

class ScanCache {
public:
    explicit ScanCache(std::string pack_version) : version_(std::move(pack_version)) {}

    // Loads PATH. A missing file is an empty cache (ok). A file of another pack version is
    // ignored (ok, with NOTE saying so). A damaged file: kParse naming the file and the
    // problem; the cache stays empty.
    common::Result<void> load(const std::string& path, std::string* note = nullptr);
    // Writes PATH atomically (temporary file, fsync, rename).
    common::Result<void> save(const std::string& path) const;

    bool contains(const FileIdentity& id) const;
    void insert(const FileIdentity& id);
    std::size_t size() const;
    const std::string& version() const { return version_; }

private:
    std::string version_;
    mutable std::mutex mutex_;
    std::unordered_set<FileIdentity, FileIdentityHash> entries_;
};

}  // namespace senningen::agent::files
