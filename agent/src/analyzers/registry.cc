// The explicit list of analyzers (no self-registration): adding one is adding a line here.
#include <array>

#include "analyzers/dns/dns_analyzer.h"
#include "analyzers/http/http_analyzer.h"
#include "analyzers/smb/smb_analyzer.h"
#include "analyzers/smtp/smtp_analyzer.h"
#include "analyzers/tls/tls_analyzer.h"
#include "analyzers/dnp3/dnp3_analyzer.h"
#include "analyzers/enip/enip_analyzer.h"
#include "analyzers/iec104/iec104_analyzer.h"
#include "analyzers/modbus/modbus_analyzer.h"
#include "analyzers/s7comm/s7comm_analyzer.h"
#include "senningen/agent/analyzers/analyzer.h"

namespace senningen::agent {

namespace {

const std::array kRegistry = {
    AnalyzerSpec{"dns", kIpProtoUdp, &dns_detect_udp, &make_dns_analyzer},
    // IT: signatures that random bytes almost never pass (record headers, magic, text).
    AnalyzerSpec{"tls", kIpProtoTcp, &tls_detect, &make_tls_analyzer},
    AnalyzerSpec{"http", kIpProtoTcp, &http_detect, &make_http_analyzer},
    AnalyzerSpec{"smb", kIpProtoTcp, &smb_detect, &make_smb_analyzer},
    AnalyzerSpec{"smtp", kIpProtoTcp, &smtp_detect, &make_smtp_analyzer},
    AnalyzerSpec{"dns", kIpProtoTcp, &dns_detect_tcp, &make_dns_tcp_analyzer},
    // ICS: the strongest signatures first (DNP3 has a CRC), Modbus's weak MBAP test last.
    AnalyzerSpec{"dnp3", kIpProtoTcp, &dnp3_detect, &make_dnp3_analyzer},
    AnalyzerSpec{"dnp3", kIpProtoUdp, &dnp3_detect, &make_dnp3_analyzer},
    AnalyzerSpec{"iec104", kIpProtoTcp, &iec104_detect, &make_iec104_analyzer},
    AnalyzerSpec{"s7comm", kIpProtoTcp, &s7comm_detect, &make_s7comm_analyzer},
    AnalyzerSpec{"enip", kIpProtoTcp, &enip_detect, &make_enip_analyzer},
    AnalyzerSpec{"enip", kIpProtoUdp, &enip_detect, &make_enip_analyzer},
    AnalyzerSpec{"modbus", kIpProtoTcp, &modbus_detect, &make_modbus_analyzer},
};

}  // namespace

std::span<const AnalyzerSpec> analyzer_registry() { return kRegistry; }

const AnalyzerSpec* find_analyzer(std::string_view name, std::uint8_t ip_proto) {
    for (const AnalyzerSpec& spec : analyzer_registry()) {
        if (spec.name == name && spec.ip_proto == ip_proto) return &spec;
    }
    return nullptr;
}

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
