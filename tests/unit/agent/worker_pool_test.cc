// Worker threads: the shard of a packet is the same for both directions of a flow, and two
// workers give the same alerts, records and intel.log lines (as multisets) and the same summed
// counters as one, on the golden captures.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include <pcap/dlt.h>

#include "packet_builder.h"
#include "senningen/agent/capture/pcap_file.h"
#include "senningen/agent/engine/worker_pool.h"
#include "senningen/common/json_codec.h"

namespace senningen::agent {
namespace {

namespace fs = std::filesystem;
using test::Bytes;

Bytes tcp_frame(const test::Ipv4& src, std::uint16_t sport, const test::Ipv4& dst,
                std::uint16_t dport) {
    return test::ethernet(0x0800,
                          test::ipv4(src, dst, kIpProtoTcp, test::tcp(sport, dport, 1, 0, 0x10)));
}

TEST(WorkerPool, BothDirectionsOfAFlowShareAShard) {
    std::vector<std::size_t> seen(4, 0);
    for (std::uint16_t port = 1000; port < 1200; ++port) {
        const test::Ipv4 a{10, 0, 0, static_cast<std::uint8_t>(port & 0xff)};
        const test::Ipv4 b{192, 168, 1, 7};
        const Bytes there = tcp_frame(a, port, b, 502);
        const Bytes back = tcp_frame(b, 502, a, port);
        const std::size_t shard = shard_of(DLT_EN10MB, there, 4);
        EXPECT_EQ(shard, shard_of(DLT_EN10MB, back, 4)) << "port " << port;
        ASSERT_LT(shard, 4U);
        ++seen[shard];
    }
    // Many flows spread over every worker.
    for (std::size_t n : seen) EXPECT_GT(n, 20U);
}

TEST(WorkerPool, FragmentsAndNonIpHaveAStableShard) {
    const test::Ipv4 a{10, 0, 0, 1};
    const test::Ipv4 b{10, 0, 0, 2};
    test::Ipv4Options first;
    first.frag_field = 0x2000;  // more fragments, offset 0
    test::Ipv4Options later;
    later.frag_field = 0x0010;  // offset 128 bytes, no ports in it
    const Bytes f1 = test::ethernet(
        0x0800, test::ipv4(a, b, kIpProtoUdp, test::udp(5000, 53, Bytes(40, 1)), first));
    const Bytes f2 = test::ethernet(0x0800, test::ipv4(a, b, kIpProtoUdp, Bytes(40, 2), later));
    const Bytes f3 = test::ethernet(0x0800, test::ipv4(b, a, kIpProtoUdp, Bytes(40, 3), later));
    EXPECT_EQ(shard_of(DLT_EN10MB, f1, 8), shard_of(DLT_EN10MB, f2, 8));
    EXPECT_EQ(shard_of(DLT_EN10MB, f1, 8), shard_of(DLT_EN10MB, f3, 8));
    EXPECT_EQ(shard_of(DLT_EN10MB, test::ethernet(0x0806, Bytes(28, 0)), 8), 0U);
    EXPECT_EQ(shard_of(DLT_EN10MB, f1, 1), 0U);
}

struct Output {
    std::vector<std::string> alerts;
    std::vector<std::string> records;
    std::vector<std::string> intel;
    EngineCounters counters;
    FlowTableCounters flows;
};

Output run(const fs::path& capture, std::size_t workers, std::shared_ptr<const YaraRules> rules,
           std::shared_ptr<const IntelStore> intel) {
    Output out;
    WorkerOutputs sinks;
    sinks.alert = [&](common::Alert&& alert) {
        alert.id = "masked";
        out.alerts.push_back(common::alert_to_json(alert));
    };
    sinks.record = [&](const std::string& line) { out.records.push_back(line); };
    sinks.intel_log = [&](const std::string& line) { out.intel.push_back(line); };
    auto file = PcapFile::open(capture.string());
    EXPECT_TRUE(file) << capture;
    if (!file) return out;
    EngineOptions options;
    options.agent_id = "test";
    WorkerPool pool(workers, (*file)->linktype(), options, std::move(rules), std::move(intel),
                    nullptr, std::move(sinks));
    EXPECT_EQ(pool.workers(), workers);
    RawPacket packet;
    for (;;) {
        auto more = (*file)->next(packet);
        if (!more || !*more) break;
        pool.process(packet);
    }
    pool.finish();
    out.counters = pool.counters();
    out.flows = pool.flow_counters();
    std::sort(out.alerts.begin(), out.alerts.end());
    std::sort(out.records.begin(), out.records.end());
    std::sort(out.intel.begin(), out.intel.end());
    return out;
}

void expect_same(const fs::path& capture, const fs::path& rules_file,
                 const fs::path& intel_file) {
    std::shared_ptr<const YaraRules> rules;
    {
        auto compiled = YaraRules::compile_files({{rules_file.string(), ""}});
        ASSERT_TRUE(compiled) << compiled.error().message;
        rules = std::move(compiled).value();
    }
    std::shared_ptr<IntelStore> intel;
    {
        intel = std::make_shared<IntelStore>();
        IntelLoadStats stats;
        ASSERT_TRUE(intel->load_file(intel_file.string(), stats));
    }
    const Output one = run(capture, 1, rules, intel);
    const Output two = run(capture, 2, rules, intel);
    ASSERT_FALSE(one.alerts.empty() && one.records.empty()) << capture << ": nothing to compare";
    EXPECT_EQ(one.alerts, two.alerts) << capture;
    EXPECT_EQ(one.records, two.records) << capture;
    EXPECT_EQ(one.intel, two.intel) << capture;
    EXPECT_EQ(one.counters.packets, two.counters.packets);
    EXPECT_EQ(one.counters.bytes, two.counters.bytes);
    EXPECT_EQ(one.counters.alerts, two.counters.alerts);
    EXPECT_EQ(one.counters.analyzer_records, two.counters.analyzer_records);
    EXPECT_EQ(one.flows.flows_created, two.flows.flows_created);
    EXPECT_EQ(one.flows.reassembly.segments, two.flows.reassembly.segments);
}

const fs::path kRepo = fs::path(SENNINGEN_SOURCE_DIR);

TEST(WorkerPool, TwoWorkersMatchOneOnTheItAnalyzersCapture) {
    const fs::path dir = kRepo / "tests" / "golden" / "it-analyzers";
    expect_same(dir / "input.pcap", dir / "rules.yar", dir / "intel.dat");
}

TEST(WorkerPool, TwoWorkersMatchOneOnTheDemoCapture) {
    expect_same(kRepo / "tests" / "golden" / "demo" / "input.pcap",
                kRepo / "rules" / "packs" / "demo" / "demo.yar",
                kRepo / "rules" / "packs" / "demo" / "demo.intel");
}

// --workers auto: two workers when the host has cores to spare, one on a small host; a
// cgroup CPU quota (systemd's CPUQuota=) counts as the CPUs it amounts to.
TEST(WorkerPool, AutoWorkersFollowTheCpusAvailable) {
    EXPECT_EQ(auto_workers(1), 1U);
    EXPECT_EQ(auto_workers(2), 1U);
    EXPECT_EQ(auto_workers(3), 1U);
    EXPECT_EQ(auto_workers(4), 2U);
    EXPECT_EQ(auto_workers(64), 2U);
    EXPECT_EQ(cpus_of_cpu_max("max 100000\n"), 0U);
    EXPECT_EQ(cpus_of_cpu_max("150000 100000\n"), 2U);
    EXPECT_EQ(cpus_of_cpu_max("400000 100000"), 4U);
    EXPECT_EQ(cpus_of_cpu_max("50000 100000"), 1U);
    EXPECT_EQ(cpus_of_cpu_max(""), 0U);
    EXPECT_EQ(cpus_of_cpu_max("lots 100000"), 0U);
    EXPECT_EQ(cpus_of_cpu_max("100000 0"), 0U);
    const std::size_t cpus = available_cpus();
    EXPECT_GE(cpus, 1U);
    EXPECT_LE(cpus, static_cast<std::size_t>(sysconf(_SC_NPROCESSORS_CONF)));
}

}  // namespace
}  // namespace senningen::agent
