#include "senningen/agent/files/scan_cache.h"

#include <fcntl.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>
#include <vector>

namespace senningen::agent::files {

using common::ErrorCode;
using common::make_error;
using common::Result;

namespace {

constexpr std::string_view kMagic = "senningen-scan-cache 1\n";

std::string sha256_hex(std::string_view text) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(text.data(), text.size(), digest, &len, EVP_sha256(), nullptr);
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < len; ++i) {
        out.push_back(kHex[digest[i] >> 4]);
        out.push_back(kHex[digest[i] & 0x0f]);
    }
    return out;
}

}  // namespace

std::size_t FileIdentityHash::operator()(const FileIdentity& id) const {
    std::uint64_t h = 1469598103934665603ULL;
    for (std::uint64_t v : {id.dev, id.ino, id.size, static_cast<std::uint64_t>(id.mtime_ns),
                            static_cast<std::uint64_t>(id.ctime_ns)}) {
        h = (h ^ v) * 1099511628211ULL;
        h ^= h >> 29;
    }
    return static_cast<std::size_t>(h);
}

Result<void> ScanCache::load(const std::string& path, std::string* note) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        if (errno == ENOENT) return {};
        return make_error(ErrorCode::kIo,
                          "cannot read scan cache " + path + ": " + std::strerror(errno));
    }
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto bad = [&](const std::string& why) {
        return make_error(ErrorCode::kParse, "scan cache " + path + " ignored: " + why);
    };
    if (text.compare(0, kMagic.size(), kMagic) != 0) return bad("not a scan cache file");
    const auto sum_at = text.rfind("sha256 ");
    if (sum_at == std::string::npos || text.back() != '\n') return bad("truncated (no checksum)");
    const std::string expected = text.substr(sum_at + 7, text.size() - sum_at - 8);
    if (sha256_hex(std::string_view(text).substr(0, sum_at)) != expected) {
        return bad("checksum mismatch (damaged)");
    }
    std::istringstream lines(text.substr(kMagic.size(), sum_at - kMagic.size()));
    std::string line;
    std::getline(lines, line);
    if (line.rfind("version ", 0) != 0) return bad("no version line");
    if (line.substr(8) != version_) {
        if (note)
            *note = "scan cache " + path + " is for rule pack " + line.substr(8) + ", now " +
                    version_ + ": every file is scanned again";
        return {};
    }
    std::unordered_set<FileIdentity, FileIdentityHash> loaded;
    std::size_t number = 2;
    while (std::getline(lines, line)) {
        ++number;
        FileIdentity id;
        unsigned long long dev = 0, ino = 0, size = 0;
        long long mtime = 0, ctime = 0;
        if (std::sscanf(line.c_str(), "%llu %llu %llu %lld %lld", &dev, &ino, &size, &mtime,
                        &ctime) != 5) {
            return bad("line " + std::to_string(number) + " is not five numbers");
        }
        id.dev = dev;
        id.ino = ino;
        id.size = size;
        id.mtime_ns = mtime;
        id.ctime_ns = ctime;
        loaded.insert(id);
    }
    std::lock_guard lock(mutex_);
    entries_ = std::move(loaded);
    return {};
}

Result<void> ScanCache::save(const std::string& path) const {
    std::string text(kMagic);
    text += "version " + version_ + "\n";
    {
        std::lock_guard lock(mutex_);
        text.reserve(text.size() + entries_.size() * 64);
        char buf[128];
        for (const auto& id : entries_) {
            std::snprintf(buf, sizeof buf, "%llu %llu %llu %lld %lld\n",
                          static_cast<unsigned long long>(id.dev),
                          static_cast<unsigned long long>(id.ino),
                          static_cast<unsigned long long>(id.size),
                          static_cast<long long>(id.mtime_ns), static_cast<long long>(id.ctime_ns));
            text += buf;
        }
    }
    text += "sha256 " + sha256_hex(text) + "\n";
    const std::string tmp = path + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        return make_error(ErrorCode::kIo,
                          "cannot write scan cache " + tmp + ": " + std::strerror(errno));
    }
    std::size_t done = 0;
    while (done < text.size()) {
        const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            const int err = errno;
            ::close(fd);
            ::unlink(tmp.c_str());
            return make_error(ErrorCode::kIo,
                              "cannot write scan cache " + tmp + ": " + std::strerror(err));
        }
        done += static_cast<std::size_t>(n);
    }
    if (::fsync(fd) != 0 || ::close(fd) != 0 || ::rename(tmp.c_str(), path.c_str()) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        return make_error(ErrorCode::kIo,
                          "cannot write scan cache " + path + ": " + std::strerror(err));
    }
    return {};
}

bool ScanCache::contains(const FileIdentity& id) const {
    std::lock_guard lock(mutex_);
    return entries_.count(id) != 0;
}

void ScanCache::insert(const FileIdentity& id) {
    std::lock_guard lock(mutex_);
    entries_.insert(id);
}

std::size_t ScanCache::size() const {
    std::lock_guard lock(mutex_);
    return entries_.size();
}

}  // namespace senningen::agent::files
