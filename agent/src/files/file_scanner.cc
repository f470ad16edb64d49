#include "senningen/agent/files/file_scanner.h"

#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstring>
#include <mutex>
#include <optional>
#include <utility>

namespace senningen::agent::files {

namespace {

constexpr std::size_t kTypeProbe = 16;

std::int64_t ns_of(const timespec& ts) {
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

FileIdentity identity_of(const struct stat& st) {
    return FileIdentity{
        static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino),
        static_cast<std::uint64_t>(st.st_size), ns_of(st.st_mtim), ns_of(st.st_ctim)};
}

std::string owner_name(uid_t uid) {
    passwd pw{};
    passwd* found = nullptr;
    char buf[1024];
    if (getpwuid_r(uid, &pw, buf, sizeof buf, &found) == 0 && found != nullptr) {
        return found->pw_name;
    }
    return std::to_string(uid);
}

std::string_view base_name(std::string_view path) {
    const auto slash = path.rfind('/');
    return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

std::string lower_extension(std::string_view name) {
    const auto dot = name.rfind('.');
    if (dot == std::string_view::npos || dot == 0) return {};
    std::string ext(name.substr(dot));
    for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return ext;
}

// One pass over the bytes feeds all three digests, a chunk at a time so that each chunk is
// still in the CPU's cache for the second and third digest.
class Hashes {
public:
    Hashes() {
        const EVP_MD* kinds[3] = {EVP_sha256(), EVP_sha1(), EVP_md5()};
        for (int i = 0; i < 3; ++i) {
            ctx_[i] = EVP_MD_CTX_new();
            ok_ = ok_ && ctx_[i] != nullptr && EVP_DigestInit_ex(ctx_[i], kinds[i], nullptr) == 1;
        }
    }
    ~Hashes() {
        for (auto* c : ctx_) EVP_MD_CTX_free(c);
    }
    Hashes(const Hashes&) = delete;
    Hashes& operator=(const Hashes&) = delete;

    void update(const char* data, std::size_t size) {
        constexpr std::size_t kChunk = 128 << 10;
        for (std::size_t at = 0; at < size; at += kChunk) {
            const std::size_t n = std::min(kChunk, size - at);
            for (auto* c : ctx_) ok_ = ok_ && EVP_DigestUpdate(c, data + at, n) == 1;
        }
    }
    bool finish(FileFacts& facts) {
        std::string* out[3] = {&facts.sha256, &facts.sha1, &facts.md5};
        for (int i = 0; i < 3 && ok_; ++i) {
            unsigned char digest[EVP_MAX_MD_SIZE];
            unsigned int len = 0;
            ok_ = EVP_DigestFinal_ex(ctx_[i], digest, &len) == 1;
            static constexpr char kHex[] = "0123456789abcdef";
            out[i]->clear();
            for (unsigned int j = 0; j < len; ++j) {
                out[i]->push_back(kHex[digest[j] >> 4]);
                out[i]->push_back(kHex[digest[j] & 0x0f]);
            }
        }
        return ok_;
    }

private:
    EVP_MD_CTX* ctx_[3] = {nullptr, nullptr, nullptr};
    bool ok_ = true;
};

// A mapped file that shrinks while it is scanned raises SIGBUS when a page past its new end is
// touched. Inside its scan libyara installs its own handler for the time of the scan (it
// fails the scan with ERROR_COULD_NOT_MAP_FILE); everywhere else, in the digests, this
// handler, on the faulting thread, maps zero pages over the rest of that thread's mapping and
// returns: the access is retried and reads zeros, the pass ends normally, and the scanner
// reports the file as changed. A SIGBUS outside a guarded mapping goes to the handler that was
// there before (or the default: the process dies).
struct BusGuardState {
    std::uintptr_t begin = 0;
    std::uintptr_t end = 0;  // page-rounded
    volatile std::sig_atomic_t faulted = 0;
};
thread_local BusGuardState* t_bus_guard = nullptr;
struct sigaction g_previous_bus {};
std::uintptr_t g_page_size = 4096;

void on_sigbus(int sig, siginfo_t* info, void* context) {
    BusGuardState* guard = t_bus_guard;
    const auto addr = reinterpret_cast<std::uintptr_t>(info->si_addr);
    if (guard != nullptr && addr >= guard->begin && addr < guard->end) {
        const std::uintptr_t page = addr & ~(g_page_size - 1);
        void* zeros = mmap(reinterpret_cast<void*>(page), guard->end - page, PROT_READ,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        if (zeros != MAP_FAILED) {
            guard->faulted = 1;
            return;
        }
    }
    if ((g_previous_bus.sa_flags & SA_SIGINFO) != 0 && g_previous_bus.sa_sigaction != nullptr) {
        g_previous_bus.sa_sigaction(sig, info, context);
        return;
    }
    if (g_previous_bus.sa_handler != SIG_DFL && g_previous_bus.sa_handler != SIG_IGN) {
        g_previous_bus.sa_handler(sig);
        return;
    }
    // Returning re-executes the access, which now kills the process as SIGBUS always did.
    signal(sig, SIG_DFL);
}

void install_sigbus_guard() {
    static std::once_flag once;
    std::call_once(once, [] {
        const long page = sysconf(_SC_PAGESIZE);
        if (page > 0) g_page_size = static_cast<std::uintptr_t>(page);
        struct sigaction action {};
        action.sa_sigaction = on_sigbus;
        action.sa_flags = SA_SIGINFO;
        sigemptyset(&action.sa_mask);
        sigaction(SIGBUS, &action, &g_previous_bus);
    });
}

// Guards one mapping on the calling thread for its lifetime (which must end before munmap).
class BusGuard {
public:
    BusGuard(const void* addr, std::size_t size) {
        state_.begin = reinterpret_cast<std::uintptr_t>(addr);
        state_.end = state_.begin + ((size + g_page_size - 1) & ~(g_page_size - 1));
        t_bus_guard = &state_;
    }
    ~BusGuard() { t_bus_guard = nullptr; }
    BusGuard(const BusGuard&) = delete;
    BusGuard& operator=(const BusGuard&) = delete;
    bool faulted() const { return state_.faulted != 0; }

private:
    BusGuardState state_;
};

// Read buffers up to this size stay with the scanner for the next file.
constexpr std::size_t kKeptBuffer = 8 << 20;

struct Fd {
    int fd = -1;
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
};

struct Mapping {
    void* addr = MAP_FAILED;
    std::size_t size = 0;
    ~Mapping() {
        if (addr != MAP_FAILED) munmap(addr, size);
    }
};

// Bytes held against the scanner threads' shared budget while a file is in the buffer.
class MemoryHold {
public:
    MemoryHold(MemoryGate* gate, std::uint64_t bytes) : gate_(gate), bytes_(bytes) {
        if (gate_ != nullptr) gate_->acquire(bytes_);
    }
    ~MemoryHold() {
        if (gate_ != nullptr) gate_->release(bytes_);
    }
    MemoryHold(const MemoryHold&) = delete;
    MemoryHold& operator=(const MemoryHold&) = delete;

private:
    MemoryGate* gate_;
    std::uint64_t bytes_;
};

bool same_content_stamp(const struct stat& a, const struct stat& b) {
    return a.st_size == b.st_size && ns_of(a.st_mtim) == ns_of(b.st_mtim) &&
           ns_of(a.st_ctim) == ns_of(b.st_ctim);
}

}  // namespace

std::string_view to_string(Outcome outcome) {
    switch (outcome) {
        case Outcome::kScanned: return "scanned";
        case Outcome::kCached: return "cached";
        case Outcome::kNotRegular: return "not_regular";
        case Outcome::kSymlink: return "symlink";
        case Outcome::kTooLarge: return "too_large";
        case Outcome::kPermissionDenied: return "permission_denied";
        case Outcome::kVanished: return "vanished";
        case Outcome::kChanged: return "changed";
        case Outcome::kTimeout: return "timeout";
        case Outcome::kError: return "error";
    }
    return "unknown";
}

YaraExternals file_yara_externals() {
    return YaraExternals{{"filename", std::string()},
                         {"filepath", std::string()},
                         {"extension", std::string()},
                         {"filetype", std::string()},
                         {"owner", std::string()}};
}

std::string detect_filetype(std::string_view data, std::string_view name) {
    auto starts = [&](std::string_view magic) { return data.substr(0, magic.size()) == magic; };
    if (starts("MZ")) return "EXE";
    if (starts("\x7f"
               "ELF"))
        return "ELF";
    if (starts("\xfe\xed\xfa\xce") || starts("\xfe\xed\xfa\xcf") || starts("\xce\xfa\xed\xfe") ||
        starts("\xcf\xfa\xed\xfe") || starts("\xca\xfe\xba\xbe")) {
        return "MACH-O";
    }
    if (starts("MDMP")) return "MDMP";
    if (starts("PK\x03\x04")) return "ZIP";
    if (starts("Rar!")) return "RAR";
    if (starts("%PDF")) return "PDF";
    if (starts("GIF8")) return "GIF";
    if (starts("\x89PNG")) return "PNG";
    if (starts("\xff\xd8\xff")) return "JPEG";
    if (starts("\x1f\x8b")) return "GZIP";
    if (starts("<?php")) return "PHP";
    if (starts("#!")) return "SCRIPT";
    const std::string ext = lower_extension(name);
    if (ext == ".bat" || ext == ".cmd") return "BATCH";
    if (ext == ".php") return "PHP";
    if (ext == ".asp" || ext == ".aspx") return "ASP";
    if (ext == ".jsp") return "JSP";
    if (ext == ".ps1") return "POWERSHELL";
    if (ext == ".vbs") return "VBS";
    return {};
}

FileScanner::FileScanner(std::shared_ptr<const YaraRules> rules, const IntelStore* intel,
                         FileScanOptions options, ScanCache* cache, MemoryGate* gate)
    : rules_(std::move(rules)),
      intel_(intel),
      options_(std::move(options)),
      cache_(cache),
      gate_(gate) {
    if (rules_) {
        yara_ = std::make_unique<YaraScanner>(rules_, options_.timeout_seconds);
        yara_->set_fast_mode(options_.fast_mode);
    }
    install_sigbus_guard();
}

FileScanResult FileScanner::scan(const std::string& path) {
    FileScanResult result;
    result.facts.path = path;
    auto finish = [&](Outcome outcome, std::string reason) {
        result.outcome = outcome;
        result.reason = std::move(reason);
        return std::move(result);
    };

    // An unchanged clean file is told by lstat() alone (the identity the cache is keyed on):
    // a rescan opens nothing. Anything else goes the long way below, which checks again.
    if (cache_ != nullptr) {
        struct stat early {};
        if (::lstat(path.c_str(), &early) == 0 && S_ISREG(early.st_mode) &&
            static_cast<std::uint64_t>(early.st_size) <= options_.max_file_size &&
            cache_->contains(identity_of(early))) {
            result.facts.identity = identity_of(early);
            result.facts.uid = early.st_uid;
            return finish(Outcome::kCached, {});
        }
    }

    // O_NOFOLLOW: a symlink is never opened. O_NONBLOCK: a FIFO swapped in after the listing
    // cannot make open() wait for a writer. O_NOATIME: reading leaves no trace in atime.
    constexpr int kFlags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY;
    Fd fd;
    fd.fd = ::open(path.c_str(), kFlags | O_NOATIME);
    if (fd.fd < 0 && errno == EPERM) fd.fd = ::open(path.c_str(), kFlags);  // not the owner
    if (fd.fd < 0) {
        const int err = errno;
        switch (err) {
            case EACCES:
            case EPERM: return finish(Outcome::kPermissionDenied, "permission denied");
            case ENOENT:
            case ENOTDIR: return finish(Outcome::kVanished, "vanished before it was opened");
            case ELOOP: return finish(Outcome::kSymlink, "symbolic link (never followed)");
            case ENXIO: return finish(Outcome::kNotRegular, "socket or FIFO without a writer");
            default: return finish(Outcome::kError, std::string("open: ") + std::strerror(err));
        }
    }
    struct stat before {};
    if (::fstat(fd.fd, &before) != 0) {
        return finish(Outcome::kError, std::string("fstat: ") + std::strerror(errno));
    }
    result.facts.identity = identity_of(before);
    result.facts.uid = before.st_uid;
    if (!S_ISREG(before.st_mode)) {
        const char* what = S_ISFIFO(before.st_mode)   ? "FIFO"
                           : S_ISSOCK(before.st_mode) ? "socket"
                           : S_ISCHR(before.st_mode)  ? "character device"
                           : S_ISBLK(before.st_mode)  ? "block device"
                           : S_ISDIR(before.st_mode)  ? "directory"
                                                      : "not a regular file";
        return finish(Outcome::kNotRegular, std::string(what) + " (skipped, never read)");
    }
    const auto size = static_cast<std::uint64_t>(before.st_size);
    if (size > options_.max_file_size) {
        return finish(Outcome::kTooLarge, std::to_string(size) + " bytes is over the cap of " +
                                              std::to_string(options_.max_file_size));
    }
    if (cache_ != nullptr && cache_->contains(result.facts.identity)) {
        return finish(Outcome::kCached, {});
    }
    result.facts.owner = owner_of(before.st_uid);

    std::optional<Hashes> hashes;  // only when the digests are needed
    Mapping mapping;
    std::optional<BusGuard> guard;
    std::string_view data;
    std::optional<MemoryHold> hold;
    if (size >= options_.mmap_threshold && size > 0) {
        mapping.size = static_cast<std::size_t>(size);
        mapping.addr = mmap(nullptr, mapping.size, PROT_READ, MAP_PRIVATE, fd.fd, 0);
        if (mapping.addr == MAP_FAILED) {
            return finish(Outcome::kError, std::string("mmap: ") + std::strerror(errno));
        }
        madvise(mapping.addr, mapping.size, MADV_SEQUENTIAL);
        madvise(mapping.addr, mapping.size, MADV_WILLNEED);
        result.mapped = true;
        guard.emplace(mapping.addr, mapping.size);
        data = std::string_view(static_cast<const char*>(mapping.addr), mapping.size);
        if (options_.test_hook) options_.test_hook("mapped", path);
    } else {
        // One byte more than the size tells a file that grows while it is read.
        const std::size_t want = static_cast<std::size_t>(size) + 1;
        hold.emplace(gate_, want);
        if (buffer_size_ < want) {
            buffer_.reset();  // the old buffer goes before the new one is taken
            buffer_size_ = std::max<std::size_t>(want, 64 << 10);
            buffer_.reset(new char[buffer_size_]);
        }
        std::size_t got = 0;
        while (got < want) {
            const ssize_t n = ::read(fd.fd, buffer_.get() + got, want - got);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) {
                return finish(Outcome::kError, std::string("read: ") + std::strerror(errno));
            }
            if (n == 0) break;
            got += static_cast<std::size_t>(n);
        }
        if (got != size) {
            return finish(Outcome::kChanged, "size changed while it was read (" +
                                                 std::to_string(size) + " bytes listed, " +
                                                 std::to_string(got) + (got > size ? "+" : "") +
                                                 " read)");
        }
        data = std::string_view(buffer_.get(), got);
    }
    // YARA first, then the digests over the same bytes (now in the CPU's caches or the page
    // cache), when anything uses them. Either may be the first to touch a page of a file
    // truncated meanwhile.
    match(path, data, result);
    const std::string name(base_name(path));
    const Indicator* name_hit =
        intel_ != nullptr ? intel_->find(IntelType::kFileName, name) : nullptr;
    const bool digests = options_.always_digest || (!rules_ && intel_ == nullptr) ||
                         !result.alerts.empty() || name_hit != nullptr ||
                         (intel_ != nullptr && intel_->count(IntelType::kFileHash) != 0);
    if (digests) {
        hashes.emplace();
        hashes->update(data.data(), data.size());
    }
    result.bytes_read = data.size();
    const bool truncated = guard && guard->faulted();
    guard.reset();
    hold.reset();
    if (buffer_size_ > kKeptBuffer) {
        buffer_.reset();
        buffer_size_ = 0;
    }
    if (truncated) {
        // What YARA and the digests saw is no version of the file: pages past its new end
        // read as zeros. Nothing of it is reported; the watcher sees the write and rescans.
        return finish(Outcome::kChanged,
                      "truncated while it was scanned (" + std::to_string(size) +
                          " bytes mapped; SIGBUS caught, digests and matches discarded)");
    }
    if (hashes && !hashes->finish(result.facts)) {
        return finish(Outcome::kError, "OpenSSL could not compute the digests");
    }
    // Intel alerts need the digests, which exist only now.
    if (intel_ != nullptr) {
        const std::pair<IntelType, const std::string*> probes[] = {
            {IntelType::kFileHash, &result.facts.sha256},
            {IntelType::kFileHash, &result.facts.sha1},
            {IntelType::kFileHash, &result.facts.md5},
            {IntelType::kFileName, &name},
        };
        for (const auto& [type, value] : probes) {
            if (value->empty()) continue;  // digests not computed: no FILE_HASH indicators
            const Indicator* hit =
                type == IntelType::kFileName ? name_hit : intel_->find(type, *value);
            if (hit == nullptr) continue;
            common::Alert alert;
            alert.source = common::RuleSource::kIntel;
            const std::string type_name(to_string(type));
            const auto cat = hit->meta.find("meta.category");
            alert.category = cat != hit->meta.end() ? std::string(cat->second) : "Known bad file";
            const auto sev = hit->meta.find("meta.severity");
            alert.severity = sev != hit->meta.end()
                                 ? severity_from_meta({{"severity", std::string(sev->second)}}, 2)
                                 : 2;
            alert.pack_version = "intel";
            const char* where = type == IntelType::kFileName ? "Files::IN_NAME" : "Files::IN_HASH";
            const std::string indicator(hit->value);
            alert.rule = "Intel hit: " + indicator + " (" + type_name + ") at " + where;
            alert.intel = common::IntelContext{indicator, type_name, where, hit->source_list()};
            result.alerts.push_back(std::move(alert));
        }
    }
    for (auto& alert : result.alerts) {
        alert.id = common::new_uuid();
        alert.agent_id = options_.agent_id;
        alert.timestamp_ns = common::now_ns();
        alert.kind = common::AlertKind::kFile;
        alert.file = common::FileContext{path, size, result.facts.sha256, result.facts.sha1,
                                         result.facts.md5};
    }

    struct stat after {};
    if (::fstat(fd.fd, &after) != 0 || !same_content_stamp(before, after)) {
        // A YARA failure (libyara catches a SIGBUS of a shrinking mapped file itself) says how.
        const bool yara_failed =
            result.outcome == Outcome::kError || result.outcome == Outcome::kTimeout;
        return finish(Outcome::kChanged,
                      yara_failed ? "modified while it was read (YARA: " + result.reason + ")"
                                  : std::string("modified while it was read"));
    }
    if (result.outcome == Outcome::kTimeout || result.outcome == Outcome::kError) {
        return result;
    }
    if (cache_ != nullptr && result.alerts.empty()) cache_->insert(result.facts.identity);
    return finish(Outcome::kScanned, {});
}

const std::string& FileScanner::owner_of(std::uint32_t uid) {
    const auto now = std::chrono::steady_clock::now();
    if (now - owners_since_ > std::chrono::minutes(1) || owners_.size() > 4096) {
        owners_.clear();
        owners_since_ = now;
    }
    auto it = owners_.find(uid);
    if (it == owners_.end()) it = owners_.emplace(uid, owner_name(uid)).first;
    return it->second;
}

void FileScanner::match(const std::string& path, std::string_view data, FileScanResult& result) {
    if (!yara_) return;
    const std::string_view name = base_name(path);
    static_cast<void>(yara_->set_external("filename", std::string(name)));
    static_cast<void>(yara_->set_external("filepath", path));
    static_cast<void>(yara_->set_external("extension", lower_extension(name)));
    static_cast<void>(
        yara_->set_external("filetype", detect_filetype(data.substr(0, kTypeProbe), name)));
    static_cast<void>(yara_->set_external("owner", result.facts.owner));
    auto matches =
        yara_->scan(std::span(reinterpret_cast<const std::uint8_t*>(data.data()), data.size()));
    if (!matches) {
        result.outcome = matches.error().code == common::ErrorCode::kTimeout ? Outcome::kTimeout
                                                                             : Outcome::kError;
        result.reason = matches.error().message;
        return;
    }
    for (auto& m : *matches) {
        common::Alert alert;
        alert.source = common::RuleSource::kYara;
        alert.rule = m.ns.empty() || m.ns == "default" ? m.rule : m.ns + ":" + m.rule;
        const auto cat = m.meta.find("category");
        alert.category = cat != m.meta.end() ? cat->second : "YARA match";
        alert.severity = severity_from_meta(m.meta, 3);
        alert.pack_version = rules_->version();
        alert.matches = std::move(m.strings);
        result.alerts.push_back(std::move(alert));
    }
}

}  // namespace senningen::agent::files
