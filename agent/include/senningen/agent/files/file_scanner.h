// File inspection: one path in; its facts (size, mtime, owner, SHA-256, SHA-1, MD5) and its
// YARA and intel alerts out. The file is read once, with read() into a buffer the scanner
// keeps (no page faults, no zero-fill, no munmap per file) when small and mmap() when large,
// and the hashes and YARA see the same bytes. The digests cost about a tenth of a scan, so
// they are computed only where something uses them: for a file with an alert (its file
// context carries them), when the intel has FILE_HASH indicators, in hash-only mode (no
// rules, no intel), or always with FileScanOptions::always_digest. The scan cache needs none:
// it is keyed on (device, inode, size, mtime, ctime). A mapped file truncated while it is scanned
// would raise SIGBUS: the pages past its new end read as zeros instead and the file counts
// as changed during the scan. The scanner never writes, locks or
// follows a symlink, and opens with O_NOATIME where the kernel permits it. Anything that keeps
// a file from being scanned (a FIFO, permission denied, a file that vanished or changed while
// it was read, the size cap) is an Outcome with a reason: data to count, not an error path.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <unordered_map>
#include <string>
#include <string_view>
#include <vector>

#include "senningen/agent/files/host_limits.h"
#include "senningen/agent/files/scan_cache.h"
#include "senningen/agent/intel/intel_store.h"
#include "senningen/agent/scan/yara_rules.h"
#include "senningen/common/alert.h"

namespace senningen::agent::files {

enum class Outcome : std::uint8_t {
    kScanned = 0,           // read, hashed, matched against rules and intel
    kCached = 1,            // unchanged since a clean scan under the same pack: not read
    kNotRegular = 2,        // FIFO, socket, device or directory: never opened
    kSymlink = 3,           // never followed
    kTooLarge = 4,          // over max_file_size: not read
    kPermissionDenied = 5,  // open() said EACCES/EPERM
    kVanished = 6,          // gone between listing and opening
    kChanged = 7,           // size, mtime or ctime changed while it was read (alerts still kept)
    kTimeout = 8,           // YARA gave up after the per-file timeout (hashes, intel still done)
    kError = 9,             // any other I/O or YARA failure, with its reason
};
inline constexpr std::size_t kOutcomeCount = 10;
std::string_view to_string(Outcome outcome);

struct FileFacts {
    std::string path;
    FileIdentity identity;
    std::uint32_t uid = 0;
    std::string owner;              // the user name, or the uid as text when it has none
    std::string sha256, sha1, md5;  // lowercase hex; empty when not read or not needed
};

struct FileScanResult {
    Outcome outcome = Outcome::kScanned;
    std::string reason;  // for every outcome but kScanned/kCached: what happened
    FileFacts facts;
    bool mapped = false;  // read through mmap
    std::uint64_t bytes_read = 0;  // bytes YARA (and the digests) went over
    std::vector<common::Alert> alerts;
};

struct FileScanOptions {
    std::string agent_id = "agent";
    std::uint64_t max_file_size = 64ULL << 20;  // larger files are not read
    std::uint64_t mmap_threshold = 4ULL << 20;  // files this large or larger are mapped
    int timeout_seconds = 30;                   // per file, for YARA
    // YARA's fast mode (see YaraScanner::set_fast_mode): the same rules match, each string
    // shows its first match only unless a rule counts it.
    bool fast_mode = true;
    // Digests for every file read, not only where an alert or the intel needs them.
    bool always_digest = false;
    // Tests only: called on the mapped path with "mapped" (after mmap, before YARA and the
    // digests touch a page), so that a test can truncate the file at that moment.
    std::function<void(std::string_view stage, const std::string& path)> test_hook;
};

// The external variables the file scanner defines for each file, all strings (as
// signature-base and THOR define them): filename ("cmd.exe"), filepath (the full path),
// extension (".exe", lower case, empty when none), filetype ("EXE", "ELF", "MACH-O", "PHP",
// "ZIP", "PDF", "SCRIPT", ..., told by the first bytes, else by the extension; empty when
// unknown) and owner (the owner's user name). Rules must be compiled with these defined.
YaraExternals file_yara_externals();

// The filetype external for DATA (the file's first bytes) named NAME.
std::string detect_filetype(std::string_view data, std::string_view name);

class FileScanner {
public:
    // RULES and INTEL may be null (hashes only). CACHE and GATE may be null.
    FileScanner(std::shared_ptr<const YaraRules> rules, const IntelStore* intel,
                FileScanOptions options, ScanCache* cache = nullptr, MemoryGate* gate = nullptr);

    FileScanResult scan(const std::string& path);

private:
    void match(const std::string& path, std::string_view data, FileScanResult& result);
    const std::string& owner_of(std::uint32_t uid);

    std::shared_ptr<const YaraRules> rules_;
    std::unique_ptr<YaraScanner> yara_;
    const IntelStore* intel_;
    FileScanOptions options_;
    ScanCache* cache_;
    MemoryGate* gate_;
    // The read buffer, kept between files (up to kKeptBuffer bytes).
    std::unique_ptr<char[]> buffer_;
    std::size_t buffer_size_ = 0;
    // User names by uid: getpwuid_r reads /etc/passwd (or asks NSS) on every call. Entries
    // are dropped after a minute so that a renamed user is seen.
    std::unordered_map<std::uint32_t, std::string> owners_;
    std::chrono::steady_clock::time_point owners_since_{};
};

}  // namespace senningen::agent::files
