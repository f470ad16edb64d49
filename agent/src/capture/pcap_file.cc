// Offline capture files through libpcap. The format is decided from the magic bytes before
// libpcap sees the file, so that a misnamed file is read correctly and garbage is refused with
// a message that says what the file actually starts with.
#include "senningen/agent/capture/pcap_file.h"

#include <fcntl.h>
#include <pcap/pcap.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string_view>
#include <utility>

namespace senningen::agent {
namespace {

using common::ErrorCode;
using common::make_error;

constexpr std::uint32_t kMagicMicro = 0xa1b2c3d4;
constexpr std::uint32_t kMagicMicroSwapped = 0xd4c3b2a1;
constexpr std::uint32_t kMagicNano = 0xa1b23c4d;
constexpr std::uint32_t kMagicNanoSwapped = 0x4d3cb2a1;
constexpr std::uint32_t kMagicPcapNg = 0x0a0d0d0a;  // a palindrome: the same in both orders
// libpcap reads a file through stdio, whose buffer is one page by default: 4 KiB reads are
// a system call per few packets, a tenth of the agent's time on a large capture.
constexpr std::size_t kReadBuffer = std::size_t{1} << 20;

pcap_t* as_pcap(void* handle) {
    return static_cast<pcap_t*>(handle);
}

// libpcap reports every short read, classic or pcapng, with "truncated" in its text; that is
// the one distinction callers act on (a capture cut off while being written is routine).
ErrorCode classify_pcap_error(std::string_view text) {
    if (text.find("truncated") != std::string_view::npos) {
        return ErrorCode::kTruncated;
    }
    if (text.find("unknown file format") != std::string_view::npos ||
        text.find("unsupported") != std::string_view::npos ||
        text.find("not supported") != std::string_view::npos) {
        return ErrorCode::kUnsupported;
    }
    return ErrorCode::kParse;
}

// Closes the descriptor on every path out of detect_capture_format().
class Fd {
public:
    explicit Fd(int fd) : fd_(fd) {}
    ~Fd() {
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    int get() const { return fd_; }

private:
    int fd_;
};

}  // namespace

common::Result<CaptureFormat> detect_capture_format(const std::string& path) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) {
        const int err = errno;
        return make_error(err == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo,
                          path + ": cannot open: " + std::strerror(err));
    }
    std::uint8_t magic[4] = {};
    std::size_t got = 0;
    while (got < sizeof magic) {
        const ssize_t n = ::read(fd.get(), magic + got, sizeof magic - got);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return make_error(ErrorCode::kIo, path + ": cannot read: " + std::strerror(errno));
        }
        if (n == 0) {
            break;
        }
        got += static_cast<std::size_t>(n);
    }
    if (got < sizeof magic) {
        return make_error(ErrorCode::kTruncated, path + ": " + std::to_string(got) +
                                                     " bytes, too short for a capture file header");
    }
    const std::uint32_t value = (std::uint32_t{magic[0]} << 24) | (std::uint32_t{magic[1]} << 16) |
                                (std::uint32_t{magic[2]} << 8) | std::uint32_t{magic[3]};
    switch (value) {
        case kMagicMicro:
        case kMagicMicroSwapped:
        case kMagicNano:
        case kMagicNanoSwapped: return CaptureFormat::kPcap;
        case kMagicPcapNg: return CaptureFormat::kPcapNg;
        default: break;
    }
    char hex[16];
    std::snprintf(hex, sizeof hex, "%02x %02x %02x %02x", magic[0], magic[1], magic[2], magic[3]);
    return make_error(ErrorCode::kUnsupported,
                      path + ": not a pcap or pcapng file (starts with " + hex + ")");
}

common::Result<std::unique_ptr<PcapFile>> PcapFile::open(const std::string& path) {
    auto format = detect_capture_format(path);
    if (!format) {
        return format.error();
    }
    std::FILE* file = std::fopen(path.c_str(), "rbe");
    if (file == nullptr) {
        const int err = errno;
        return make_error(err == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo,
                          path + ": cannot open: " + std::strerror(err));
    }
    auto buffer = std::make_unique_for_overwrite<char[]>(kReadBuffer);
    std::setvbuf(file, buffer.get(), _IOFBF, kReadBuffer);
    char errbuf[PCAP_ERRBUF_SIZE] = {};
    // On success the handle owns FILE (pcap_close closes it); on failure it is ours to close.
    pcap_t* handle =
        pcap_fopen_offline_with_tstamp_precision(file, PCAP_TSTAMP_PRECISION_NANO, errbuf);
    if (handle == nullptr) {
        std::fclose(file);
        return make_error(classify_pcap_error(errbuf),
                          path + ": cannot read capture: " + std::string(errbuf));
    }
    return std::unique_ptr<PcapFile>(new PcapFile(handle, std::move(buffer), path, *format));
}

PcapFile::PcapFile(void* handle, std::unique_ptr<char[]> buffer, std::string path,
                   CaptureFormat format)
    : buffer_(std::move(buffer)), handle_(handle), path_(std::move(path)), format_(format) {}

PcapFile::~PcapFile() {
    if (handle_ != nullptr) {
        pcap_close(as_pcap(handle_));
    }
}

common::Result<bool> PcapFile::next(RawPacket& packet) {
    pcap_pkthdr* header = nullptr;
    const u_char* data = nullptr;
    const int rc = pcap_next_ex(as_pcap(handle_), &header, &data);
    if (rc == 1) {
        ++packets_read_;
        // Opened with nanosecond precision: libpcap scales microsecond files up, and tv_usec
        // carries nanoseconds.
        packet.ts_ns = static_cast<std::int64_t>(header->ts.tv_sec) * 1000000000LL +
                       static_cast<std::int64_t>(header->ts.tv_usec);
        packet.data = data;
        packet.caplen = header->caplen;
        packet.len = header->len;
        return true;
    }
    if (rc == PCAP_ERROR_BREAK) {
        return false;  // clean end of file
    }
    const std::string text = rc == PCAP_ERROR
                                 ? pcap_geterr(as_pcap(handle_))
                                 : "unexpected pcap_next_ex result " + std::to_string(rc);
    return make_error(classify_pcap_error(text),
                      path_ + ": packet " + std::to_string(packets_read_ + 1) + ": " + text);
}

int PcapFile::linktype() const {
    return pcap_datalink(as_pcap(handle_));
}

}  // namespace senningen::agent
