// The explicit list of analyzers (no self-registration): adding one is adding a line here.
#include <array>

#include "analyzers/dns/dns_analyzer.h"
#include "senningen/agent/analyzers/analyzer.h"

namespace senningen::agent {

namespace {

const std::array kRegistry = {
    AnalyzerSpec{"dns", kIpProtoUdp, &dns_detect_udp, &make_dns_analyzer},
};

}  // namespace

std::span<const AnalyzerSpec> analyzer_registry() { return kRegistry; }

const AnalyzerSpec* detect_analyzer(std::uint8_t ip_proto, std::span<const std::uint8_t> first,
                                    int direction, std::uint16_t src_port,
                                    std::uint16_t dst_port) {
    for (const AnalyzerSpec& spec : analyzer_registry()) {
        if (spec.ip_proto == ip_proto && spec.detect(first, direction, src_port, dst_port)) {
            return &spec;
        }
    }
    return nullptr;
}

}  // namespace senningen::agent
