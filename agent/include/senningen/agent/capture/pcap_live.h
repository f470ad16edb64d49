// Live packet source: one network interface through libpcap, in non-blocking mode so that the
// caller waits in poll() on selectable_fd() (a blocking handle in immediate mode never returns
// from pcap_dispatch once traffic stops). Wraps pcap_t once, in RAII; nanosecond time stamps
// where the platform offers them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "senningen/agent/capture/pcap_file.h"
#include "senningen/common/result.h"

namespace senningen::agent {

struct LiveCaptureOptions {
    std::string interface;
    std::string bpf;                 // "" = everything
    int snaplen = 262144;            // whole segments, even GRO/TSO-sized ones on lo/veth
    bool promiscuous = false;
    int buffer_bytes = 32 << 20;     // kernel ring; bursts are absorbed here
};

struct LiveCaptureStats {
    std::uint64_t received = 0;       // pcap_stats ps_recv (counts twice on lo)
    std::uint64_t dropped = 0;        // ps_drop: no room in the buffer
    std::uint64_t if_dropped = 0;     // ps_ifdrop: dropped by the interface or driver
};

class PcapLive {
public:
    // Errors: kNotFound (no such interface), kDenied (no permission: run as root or with
    // CAP_NET_RAW), kParse (the BPF filter does not compile, with libpcap's message),
    // kIo (anything else libpcap refuses).
    static common::Result<std::unique_ptr<PcapLive>> open(const LiveCaptureOptions& options);
    ~PcapLive();
    PcapLive(const PcapLive&) = delete;
    PcapLive& operator=(const PcapLive&) = delete;

    // 1 and fills PACKET, 0 when no packet is waiting right now, or an Error.
    common::Result<int> next(RawPacket& packet);
    // The descriptor to poll() for readability between next() calls returning 0.
    int selectable_fd() const;
    int linktype() const;
    common::Result<LiveCaptureStats> stats() const;

private:
    explicit PcapLive(void* handle) : handle_(handle) {}
    void* handle_;  // pcap_t*
};

}  // namespace senningen::agent
