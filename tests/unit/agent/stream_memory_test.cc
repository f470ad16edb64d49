// The bytes held for YARA stream scans are bounded: beyond EngineOptions::stream_memory the
// engine scans streams early and keeps only their tail, and still finds every match, at its
// stream offset. Without rules nothing is held once the analyzer has it.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <pcap/dlt.h>

#include "packet_builder.h"
#include "senningen/agent/engine/engine.h"

namespace senningen::agent {
namespace {

using test::Bytes;
using namespace tcp_flags;

// FLOWS connections of a protocol no analyzer claims (so that YARA sees the marker only in
// the stream, not in a file), all open at once (no FIN until finish()); each server sends
// 3200 bytes with the marker at stream offset 100.
EngineCounters run(std::size_t stream_memory, std::size_t flows, bool with_rules,
                   std::vector<common::Alert>& alerts) {
    std::shared_ptr<const YaraRules> rules;
    if (with_rules) {
        auto compiled = YaraRules::compile_string(
            "rule marker { strings: $a = \"EVIL-MARKER-1234\" condition: $a }");
        EXPECT_TRUE(compiled);
        rules = std::move(compiled).value();
    }
    EngineOptions options;
    options.stream_memory = stream_memory;
    Engine engine(options, rules, nullptr,
                  [&](common::Alert&& a) { alerts.push_back(std::move(a)); });
    std::int64_t ts = 1'700'000'000'000'000'000;
    auto send = [&](std::size_t flow, bool from_client, std::uint32_t seq, std::uint8_t flags,
                    const std::string& text) {
        const test::Ipv4 client{10, 2, static_cast<std::uint8_t>(flow >> 8),
                                static_cast<std::uint8_t>(flow)};
        const test::Ipv4 server{10, 3, 0, 1};
        const Bytes payload(text.begin(), text.end());
        const Bytes l4 = from_client ? test::tcp(40000, 9999, seq, 0, flags, payload)
                                     : test::tcp(9999, 40000, seq, 0, flags, payload);
        const Bytes frame = test::ethernet(
            0x0800, from_client ? test::ipv4(client, server, kIpProtoTcp, l4)
                                : test::ipv4(server, client, kIpProtoTcp, l4));
        ts += 1000;
        engine.process({ts, frame.data(), static_cast<std::uint32_t>(frame.size()),
                        static_cast<std::uint32_t>(frame.size())},
                       DLT_EN10MB);
    };
    std::string response(3200, 'x');
    response.replace(100, 16, "EVIL-MARKER-1234");
    for (std::size_t f = 0; f < flows; ++f) {
        send(f, true, 1000, kSyn, "");
        send(f, false, 5000, kSyn | kAck, "");
        send(f, true, 1001, kAck | kPsh, "HELLO\r\n");
        for (std::uint32_t at = 0; at < response.size(); at += 800) {
            send(f, false, 5001 + at, kAck, response.substr(at, 800));
        }
    }
    engine.finish();
    return engine.counters();
}

TEST(StreamMemory, EarlyScansKeepEveryMatchWithinTheBudget) {
    std::vector<common::Alert> alerts;
    // 40 flows of ~3 KB each would hold ~120 KB; the budget is 16 KB.
    const EngineCounters c = run(16 * 1024, 40, true, alerts);
    EXPECT_GT(c.early_scans, 0U);
    ASSERT_EQ(alerts.size(), 40U) << "one alert per flow, early scan or not";
    for (const auto& a : alerts) {
        ASSERT_FALSE(a.matches.empty());
        EXPECT_EQ(a.matches[0].offset, 100U) << "a stream offset";
    }
}

TEST(StreamMemory, WithinTheBudgetStreamsAreScannedOnceAtTheEnd) {
    std::vector<common::Alert> alerts;
    const EngineCounters c = run(64 << 20, 40, true, alerts);
    EXPECT_EQ(c.early_scans, 0U);
    EXPECT_EQ(alerts.size(), 40U);
}

TEST(StreamMemory, WithoutRulesNothingIsScanned) {
    std::vector<common::Alert> alerts;
    const EngineCounters c = run(16 * 1024, 40, false, alerts);
    EXPECT_EQ(c.early_scans, 0U);
    EXPECT_TRUE(alerts.empty());
}

}  // namespace
}  // namespace senningen::agent
