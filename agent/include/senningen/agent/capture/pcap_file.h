// Offline packet source: a pcap or pcapng file, the format told by its magic bytes (never by
// its name). Wraps pcap_t once, in RAII.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "senningen/common/result.h"

namespace senningen::agent {

struct RawPacket {
    std::int64_t ts_ns = 0;  // capture time, nanoseconds since the epoch
    const std::uint8_t* data = nullptr;  // valid until the next call to next()
    std::uint32_t caplen = 0;  // bytes captured
    std::uint32_t len = 0;     // bytes on the wire
};

enum class CaptureFormat : std::uint8_t { kPcap, kPcapNg };

// Reads the first four bytes of PATH: kPcap for the four classic magics (micro/nano, either
// byte order), kPcapNg for a section header block. Errors: kNotFound (no such file), kIo,
// kTruncated (fewer than 4 bytes), kUnsupported (another magic; the message shows it in hex).
common::Result<CaptureFormat> detect_capture_format(const std::string& path);

class PcapFile {
public:
    // Opens PATH after detect_capture_format() accepted it; nanosecond time stamps.
    static common::Result<std::unique_ptr<PcapFile>> open(const std::string& path);
    ~PcapFile();
    PcapFile(const PcapFile&) = delete;
    PcapFile& operator=(const PcapFile&) = delete;

    // true and fills PACKET; false at a clean end of file; an Error (kTruncated, naming the
    // file and the packet number) when the file ends in the middle of a record.
    common::Result<bool> next(RawPacket& packet);

    int linktype() const;  // DLT_* of the file (the first interface for pcapng)
    CaptureFormat format() const { return format_; }
    const std::string& path() const { return path_; }
    std::uint64_t packets_read() const { return packets_read_; }

private:
    PcapFile(void* handle, std::unique_ptr<char[]> buffer, std::string path,
             CaptureFormat format);
    // The stdio buffer libpcap reads through: freed after pcap_close() closed the FILE.
    std::unique_ptr<char[]> buffer_;
    void* handle_;  // pcap_t*, kept opaque so that <pcap.h> stays out of this header
    std::string path_;
    CaptureFormat format_;
    std::uint64_t packets_read_ = 0;
};

}  // namespace senningen::agent
