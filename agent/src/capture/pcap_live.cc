#include "senningen/agent/capture/pcap_live.h"

#include <pcap/pcap.h>

#include <cstring>

namespace senningen::agent {

namespace {

pcap_t* as_pcap(void* h) { return static_cast<pcap_t*>(h); }

common::Error live_error(const std::string& iface, int status, pcap_t* p) {
    const std::string detail = p ? pcap_geterr(p) : "";
    const std::string what = "capture on " + iface + ": " + pcap_statustostr(status) +
                             (detail.empty() ? "" : " (" + detail + ")");
    switch (status) {
        case PCAP_ERROR_NO_SUCH_DEVICE: return common::make_error(common::ErrorCode::kNotFound, what);
        case PCAP_ERROR_PERM_DENIED:
        case PCAP_ERROR_PROMISC_PERM_DENIED:
            return common::make_error(common::ErrorCode::kDenied,
                                      what + "; run as root or with CAP_NET_RAW");
        default: return common::make_error(common::ErrorCode::kIo, what);
    }
}

}  // namespace

common::Result<std::unique_ptr<PcapLive>> PcapLive::open(const LiveCaptureOptions& options) {
    char errbuf[PCAP_ERRBUF_SIZE] = {};
    pcap_t* p = pcap_create(options.interface.c_str(), errbuf);
    if (!p) {
        return common::make_error(common::ErrorCode::kIo,
                                  "capture on " + options.interface + ": " + errbuf);
    }
    std::unique_ptr<PcapLive> live(new PcapLive(p));
    pcap_set_snaplen(p, options.snaplen);
    pcap_set_promisc(p, options.promiscuous ? 1 : 0);
    pcap_set_buffer_size(p, options.buffer_bytes);
    pcap_set_immediate_mode(p, 1);  // latency: alerts should not wait for a full buffer
    if (pcap_set_tstamp_precision(p, PCAP_TSTAMP_PRECISION_NANO) != 0) {
        // Microseconds then; next() scales whatever precision the handle has.
    }
    const int status = pcap_activate(p);
    if (status < 0) return live_error(options.interface, status, p);
    if (!options.bpf.empty()) {
        bpf_program program{};
        if (pcap_compile(p, &program, options.bpf.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0) {
            return common::make_error(common::ErrorCode::kParse,
                                      "--bpf '" + options.bpf + "': " + pcap_geterr(p));
        }
        const int set = pcap_setfilter(p, &program);
        pcap_freecode(&program);
        if (set != 0) return live_error(options.interface, set, p);
    }
    if (pcap_setnonblock(p, 1, errbuf) != 0) {
        return common::make_error(common::ErrorCode::kIo,
                                  "capture on " + options.interface + ": " + errbuf);
    }
    if (pcap_get_selectable_fd(p) < 0) {
        return common::make_error(common::ErrorCode::kUnsupported,
                                  "capture on " + options.interface + ": no selectable descriptor");
    }
    return live;
}

PcapLive::~PcapLive() {
    if (handle_) pcap_close(as_pcap(handle_));
}

common::Result<int> PcapLive::next(RawPacket& packet) {
    pcap_pkthdr* header = nullptr;
    const std::uint8_t* data = nullptr;
    const int rc = pcap_next_ex(as_pcap(handle_), &header, &data);
    if (rc == 1) {
        const bool nano = pcap_get_tstamp_precision(as_pcap(handle_)) == PCAP_TSTAMP_PRECISION_NANO;
        packet.ts_ns = static_cast<std::int64_t>(header->ts.tv_sec) * 1000000000LL +
                       static_cast<std::int64_t>(header->ts.tv_usec) * (nano ? 1 : 1000);
        packet.data = data;
        packet.caplen = header->caplen;
        packet.len = header->len;
        return 1;
    }
    if (rc == 0) return 0;
    return common::make_error(common::ErrorCode::kIo,
                              std::string("capture: ") + pcap_geterr(as_pcap(handle_)));
}

int PcapLive::selectable_fd() const { return pcap_get_selectable_fd(as_pcap(handle_)); }

int PcapLive::linktype() const { return pcap_datalink(as_pcap(handle_)); }

common::Result<LiveCaptureStats> PcapLive::stats() const {
    pcap_stat s{};
    if (pcap_stats(as_pcap(handle_), &s) != 0) {
        return common::make_error(common::ErrorCode::kIo,
                                  std::string("pcap_stats: ") + pcap_geterr(as_pcap(handle_)));
    }
    return LiveCaptureStats{s.ps_recv, s.ps_drop, s.ps_ifdrop};
}

}  // namespace senningen::agent
