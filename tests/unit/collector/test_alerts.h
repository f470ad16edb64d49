// Valid alerts and a throw-away directory for the collector's store and API tests.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "senningen/common/alert.h"

namespace senningen::collector::test {

// 2026-11-28T10:00:00Z, the base of every timeline in these tests.
inline std::int64_t base_ns() {
    static const std::int64_t kBase = common::parse_timestamp("2026-11-28T10:00:00Z").value();
    return kBase;
}

inline constexpr std::int64_t kMinuteNs = 60'000'000'000;

inline common::Alert make_alert(const std::string& agent_id, std::int64_t timestamp_ns,
                                int severity) {
    common::Alert a;
    a.id = common::new_uuid();
    a.agent_id = agent_id;
    a.timestamp_ns = timestamp_ns;
    a.kind = common::AlertKind::kNetwork;
    a.source = common::RuleSource::kPolicy;
    a.rule = "SENNINGEN TEST modbus write to coil";
    a.category = "Policy violation";
    a.pack_version = "2026.11.1";
    a.severity = severity;
    common::NetworkContext n;
    n.flow_id = 1234567;
    n.src_ip = "10.0.0.5";
    n.src_port = 50123;
    n.dest_ip = "10.0.1.20";
    n.dest_port = 502;
    n.proto = "TCP";
    n.app_proto = "modbus";
    a.network = n;
    return a;
}

inline std::vector<std::string> ids_of(const std::vector<common::Alert>& alerts) {
    std::vector<std::string> ids;
    ids.reserve(alerts.size());
    for (const common::Alert& a : alerts) ids.push_back(a.id);
    return ids;
}

// A fresh directory under the system temp dir, removed with everything in it.
class TempDir {
public:
    TempDir()
        : path_(std::filesystem::temp_directory_path() /
                ("senningen-collector-test-" + common::new_uuid())) {
        std::filesystem::create_directories(path_);
    }
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    const std::filesystem::path& path() const { return path_; }
    std::string file(const std::string& name) const { return (path_ / name).string(); }

private:
    std::filesystem::path path_;
};

}  // namespace senningen::collector::test
