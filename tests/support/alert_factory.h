// Test helper: valid alerts of each shape, so tests state only what they vary.
#pragma once

#include <string>

#include "senningen/common/alert.h"

namespace senningen::testing {

inline common::Alert network_alert(std::string agent = "agent-1", int severity = 2) {
    common::Alert a;
    a.id = common::new_uuid();
    a.agent_id = std::move(agent);
    a.timestamp_ns = 1768467600123456789LL;  // 2026-01-15T09:00:00.123456789Z
    a.kind = common::AlertKind::kNetwork;
    a.source = common::RuleSource::kYara;
    a.rule = "demo_rule";
    a.category = "Malware download";
    a.pack_version = "sha256:0123456789abcdef";
    a.severity = severity;
    a.network = common::NetworkContext{18446744073709551557ULL, "192.0.2.20", 49200,
                                       "2001:db8::66", 80, "TCP", "http"};
    common::add_match(a, "$marker", 160, std::string_view("SENNINGEN|\x00\x01\xff", 13));
    return a;
}

inline common::Alert intel_alert(std::string agent = "agent-1") {
    common::Alert a = network_alert(std::move(agent), 2);
    a.source = common::RuleSource::kIntel;
    a.rule = "Intel hit: evil.example (Intel::DOMAIN) at DNS::IN_REQUEST";
    a.matches.clear();
    a.intel = common::IntelContext{"evil.example", "Intel::DOMAIN", "DNS::IN_REQUEST",
                                   {"cert-be", "cert-nl"}};
    return a;
}

inline common::Alert file_alert(std::string agent = "agent-1") {
    common::Alert a;
    a.id = common::new_uuid();
    a.agent_id = std::move(agent);
    a.timestamp_ns = 1768467600000000000LL;
    a.kind = common::AlertKind::kFile;
    a.source = common::RuleSource::kYara;
    a.rule = "eicar";
    a.category = "Test file";
    a.pack_version = "sha256:fedcba9876543210";
    a.severity = 4;
    a.file = common::FileContext{"/srv/scada/drop/eicar.com", 68,
                                 std::string(64, 'a'), std::string(40, 'b'), std::string(32, 'c')};
    return a;
}

}  // namespace senningen::testing
