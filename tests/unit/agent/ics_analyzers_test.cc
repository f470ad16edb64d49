#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "ics_frames.h"
#include "packet_builder.h"
#include "senningen/agent/analyzers/analyzer.h"
#include "senningen/agent/policy/policy.h"

namespace senningen::agent {
namespace {

using test::Bytes;
using test::IcsRecordingHost;

struct Harness {
    explicit Harness(std::string_view name, std::uint8_t proto = kIpProtoTcp) {
        flow.ip_proto = proto;
        flow.orig.port = 40000;
        flow.resp.port = 1;
        spec = find_analyzer(name, proto);
        if (spec) analyzer = spec->create();
    }
    void feed(int direction, std::span<const std::uint8_t> bytes) {
        analyzer->data(AnalyzerContext{flow, direction, 0, host}, bytes);
    }
    // Feeds BYTES one byte at a time: segmentation must not change what is reported.
    void trickle(int direction, const Bytes& bytes) {
        for (std::size_t i = 0; i < bytes.size(); ++i) feed(direction, {&bytes[i], 1});
    }
    Flow flow;
    const AnalyzerSpec* spec = nullptr;
    std::unique_ptr<Analyzer> analyzer;
    IcsRecordingHost host;
};

bool has_fact(const ProtocolEvent& e, const std::string& k, const std::string& v) {
    const auto it = e.facts.find(k);
    return it != e.facts.end() && it->second == v;
}

// Every prefix and every single-byte corruption of INPUT, fed whole and in both directions,
// must be survived. A prefix reports a prefix of what the whole input reports: whole PDUs
// inside it are judged, the cut one is not (no event from half a PDU).
void torture(std::string_view name, const Bytes& input, std::uint8_t proto = kIpProtoTcp) {
    Harness whole(name, proto);
    ASSERT_NE(whole.analyzer, nullptr);
    whole.feed(0, input);
    for (std::size_t cut = 0; cut < input.size(); ++cut) {
        Harness h(name, proto);
        h.feed(0, std::span(input.data(), cut));
        ASSERT_LE(h.host.events.size(), whole.host.events.size()) << name << " at " << cut;
        for (std::size_t i = 0; i < h.host.events.size(); ++i) {
            EXPECT_EQ(h.host.events[i].action, whole.host.events[i].action)
                << name << " cut at " << cut << " of " << input.size();
        }
    }
    for (std::size_t at = 0; at < input.size(); ++at) {
        for (std::uint8_t flip : {0x01, 0x80, 0xff}) {
            Bytes bad = input;
            bad[at] ^= flip;
            Harness h(name, proto);
            h.feed(0, bad);
            h.feed(1, bad);
            h.analyzer->end(AnalyzerContext{h.flow, 0, 0, h.host});
        }
    }
}

TEST(ModbusAnalyzer, DetectsByContentNotPort) {
    const Bytes adu = test::modbus_adu(1, 1, 3, {0x00, 0x10, 0x00, 0x02});
    EXPECT_NE(detect_analyzer(kIpProtoTcp, adu, 0, 40000, 80), nullptr);
    EXPECT_EQ(std::string(detect_analyzer(kIpProtoTcp, adu, 0, 1, 2)->name), "modbus");
    Bytes not_modbus = adu;
    not_modbus[3] = 1;  // protocol id 1
    const AnalyzerSpec* spec = detect_analyzer(kIpProtoTcp, not_modbus, 0, 1, 502);
    EXPECT_TRUE(spec == nullptr || spec->name != "modbus");
}

TEST(ModbusAnalyzer, WriteMultipleRegistersIsAWriteEventWithAddresses) {
    Harness h("modbus");
    h.trickle(0, test::modbus_adu(7, 3, 16, {0x00, 0x64, 0x00, 0x02, 0x04, 0, 1, 0, 2}));
    ASSERT_EQ(h.host.events.size(), 1u);
    const ProtocolEvent& e = h.host.events[0];
    EXPECT_EQ(e.action, "write");
    EXPECT_TRUE(has_fact(e, "function", "16"));
    EXPECT_TRUE(has_fact(e, "address", "100"));
    EXPECT_TRUE(has_fact(e, "quantity", "2"));
    EXPECT_TRUE(has_fact(e, "unit_id", "3"));
    ASSERT_EQ(h.host.records.size(), 1u);
    EXPECT_NE(h.host.records[0].second.find("\"function_name\":\"write_multiple_registers\""),
              std::string::npos);
}

TEST(ModbusAnalyzer, ExceptionResponseIsRecorded) {
    Harness h("modbus");
    h.feed(1, test::modbus_adu(7, 3, 0x83, {0x02}));
    ASSERT_EQ(h.host.records.size(), 1u);
    EXPECT_NE(h.host.records[0].second.find("\"exception\":\"illegal_data_address\""),
              std::string::npos);
    ASSERT_EQ(h.host.events.size(), 1u);
    EXPECT_EQ(h.host.events[0].action, "exception");
}

TEST(ModbusAnalyzer, InconsistentByteCountIsWeirdNotEvent) {
    Harness h("modbus");
    h.feed(0, test::modbus_adu(1, 1, 16, {0x00, 0x01, 0x00, 0x02, 0x09, 0, 1, 0, 2}));
    EXPECT_TRUE(h.host.events.empty());
    EXPECT_EQ(h.host.weirds, std::vector<std::string>{"modbus_malformed_pdu"});
}

TEST(ModbusAnalyzer, BadMbapStopsTheDirection) {
    Harness h("modbus");
    Bytes bad = test::modbus_adu(1, 1, 3, {0, 0, 0, 1});
    bad[2] = 0x12;
    h.feed(0, bad);
    h.feed(0, test::modbus_adu(2, 1, 6, {0, 0, 0, 1}));
    EXPECT_EQ(h.host.weirds, std::vector<std::string>{"modbus_bad_mbap"});
    EXPECT_TRUE(h.host.events.empty());
}

TEST(ModbusAnalyzer, SurvivesTruncationAndCorruptionAtEveryOffset) {
    Bytes in = test::modbus_adu(1, 1, 16, {0x00, 0x64, 0x00, 0x01, 0x02, 0, 1});
    test::append(in, test::modbus_adu(2, 1, 0x90, {0x04}));
    torture("modbus", in);
}

TEST(Dnp3Analyzer, DetectsOnTheEnipPortByItsCrc) {
    const Bytes f = test::dnp3_request(13, {});
    const AnalyzerSpec* spec = detect_analyzer(kIpProtoTcp, f, 0, 40000, 44818);
    ASSERT_NE(spec, nullptr);
    EXPECT_EQ(std::string(spec->name), "dnp3");
    Bytes bad = f;
    bad[8] ^= 1;  // header CRC
    spec = detect_analyzer(kIpProtoTcp, bad, 0, 40000, 20000);
    EXPECT_TRUE(spec == nullptr || spec->name != "dnp3");
}

TEST(Dnp3Analyzer, ColdRestartIsAnEvent) {
    Harness h("dnp3");
    h.trickle(0, test::dnp3_request(13, {}));
    ASSERT_EQ(h.host.events.size(), 1u);
    EXPECT_EQ(h.host.events[0].action, "cold_restart");
    EXPECT_TRUE(has_fact(h.host.events[0], "destination", "10"));
    EXPECT_TRUE(h.host.weirds.empty());
}

TEST(Dnp3Analyzer, ReadRequestListsObjectHeaders) {
    Harness h("dnp3");
    // class 1, 2, 3 and 0 data: g60v2..v4, v1, qualifier 0x06 (all)
    h.feed(0, test::dnp3_request(1, {60, 2, 6, 60, 3, 6, 60, 4, 6, 60, 1, 6}));
    ASSERT_EQ(h.host.events.size(), 1u);
    EXPECT_TRUE(has_fact(h.host.events[0], "objects", "g60v2,g60v3,g60v4,g60v1"));
    // The link layer of the frame that carried it (control 0xC4: primary, unconfirmed data).
    ASSERT_EQ(h.host.records.size(), 1u);
    EXPECT_NE(h.host.records[0].second.find("\"link_primary\":true,\"link_function\":4"),
              std::string::npos)
        << h.host.records[0].second;
}

TEST(Dnp3Analyzer, DirectOperateWalksPastCrobData) {
    Harness h("dnp3");
    // g12v1, qualifier 0x28 (2-byte count, 2-byte index prefix), one CROB of 11 bytes
    Bytes objs = {12, 1, 0x28, 1, 0, 5, 0, 0x03, 1, 0xE8, 3, 0, 0, 0, 0, 0, 0, 0};
    h.feed(0, test::dnp3_request(5, objs));
    ASSERT_EQ(h.host.events.size(), 1u);
    EXPECT_EQ(h.host.events[0].action, "direct_operate");
    EXPECT_TRUE(h.host.weirds.empty());
    EXPECT_EQ(h.host.records[0].second.find("malformed"), std::string::npos);
}

TEST(Dnp3Analyzer, MultiBlockFrameAndBadDataCrc) {
    Harness h("dnp3");
    Bytes objs;
    for (int i = 0; i < 10; ++i) test::append(objs, Bytes{60, 1, 6});  // 30 bytes: 3 blocks
    Bytes f = test::dnp3_request(1, objs);
    h.feed(0, f);
    EXPECT_EQ(h.host.events.size(), 1u);
    f[12] ^= 0x40;  // inside the first data block
    h.feed(0, f);
    EXPECT_EQ(h.host.events.size(), 1u);
    EXPECT_EQ(h.host.weirds, std::vector<std::string>{"dnp3_data_crc"});
}

TEST(Dnp3Analyzer, UdpDatagramsAndTruncation) {
    Harness h("dnp3", kIpProtoUdp);
    h.feed(0, test::dnp3_request(14, {}));
    ASSERT_EQ(h.host.events.size(), 1u);
    EXPECT_EQ(h.host.events[0].action, "warm_restart");
    torture("dnp3", test::dnp3_request(5, {12, 1, 0x28, 1, 0, 5, 0, 3, 1, 0xE8, 3, 0, 0, 0, 0, 0, 0, 0}));
    torture("dnp3", test::dnp3_request(13, {}), kIpProtoUdp);
}

TEST(S7commAnalyzer, DetectionWaitsForS7DataAfterConnectionSetUp) {
    const Bytes cr = test::cotp_cr();
    EXPECT_EQ(detect_analyzer(kIpProtoTcp, cr, 0, 40000, 102), nullptr);
    Bytes both = cr;
    test::append(both, test::tpkt_cotp_dt(test::s7_job({0xF0, 0, 0, 1, 0, 1, 0x01, 0xE0})));
    const AnalyzerSpec* spec = detect_analyzer(kIpProtoTcp, both, 0, 40000, 9999);
    ASSERT_NE(spec, nullptr);
    EXPECT_EQ(std::string(spec->name), "s7comm");
}

TEST(S7commAnalyzer, PlcStopAndBlockDownload) {
    Harness h("s7comm");
    Bytes in = test::cotp_cr();
    test::append(in, test::tpkt_cotp_dt(test::s7_job(test::s7_plc_stop())));
    test::append(in, test::tpkt_cotp_dt(test::s7_job(test::s7_download_block("_0800001P"))));
    h.trickle(0, in);
    ASSERT_EQ(h.host.events.size(), 2u);
    EXPECT_EQ(h.host.events[0].action, "plc_stop");
    EXPECT_EQ(h.host.events[1].action, "download_block");
    EXPECT_TRUE(has_fact(h.host.events[1], "block", "OB1"));
    torture("s7comm", in);
}

TEST(Iec104Analyzer, SingleCommandActivationIsAControlEvent) {
    Harness h("iec104");
    Bytes in = test::iec104_u(0x07);
    test::append(in, test::iec104_i(45, 6, 3, 4501, {0x01}));
    test::append(in, test::iec104_i(1, 3, 3, 100, {0x01}));  // monitor data: no event
    h.trickle(0, in);
    ASSERT_EQ(h.host.events.size(), 1u);
    EXPECT_EQ(h.host.events[0].action, "command");
    EXPECT_TRUE(has_fact(h.host.events[0], "ioa", "4501"));
    EXPECT_TRUE(has_fact(h.host.events[0], "type_name", "C_SC_NA_1"));
    EXPECT_EQ(h.host.records.size(), 3u);
    EXPECT_NE(detect_analyzer(kIpProtoTcp, test::iec104_u(0x07), 0, 1, 2), nullptr);
    torture("iec104", in);
}

TEST(EnipAnalyzer, CipStopAndUnconnectedSend) {
    Harness h("enip");
    Bytes reg;
    test::ics_put_le16(reg, 1);
    test::ics_put_le16(reg, 0);
    Bytes in = test::enip(0x0065, 0, reg);
    test::append(in, test::enip_rr(0x1234, test::cip_request(0x07, 0x8E, 1)));
    // Unconnected send to the connection manager wrapping a Set_Attribute_Single
    const Bytes inner = test::cip_request(0x10, 0x8B, 1, {0x30, 0x06, 0x2A});
    Bytes us = {0x0A, 0xF0};
    test::ics_put_le16(us, static_cast<std::uint16_t>(inner.size()));
    test::append(us, inner);
    test::append(us, Bytes{0x01, 0x00, 0x01, 0x00});
    test::append(in, test::enip_rr(0x1234, test::cip_request(0x52, 0x06, 1, us)));
    ASSERT_NE(detect_analyzer(kIpProtoTcp, in, 0, 40000, 1), nullptr);
    h.trickle(0, in);
    ASSERT_EQ(h.host.events.size(), 2u);
    EXPECT_EQ(h.host.events[0].action, "stop");
    EXPECT_TRUE(has_fact(h.host.events[0], "class", "0x8e"));
    EXPECT_EQ(h.host.events[1].action, "write");
    EXPECT_TRUE(has_fact(h.host.events[1], "service_name", "set_attribute_single"));
    torture("enip", in);
}

TEST(Policy, ReportsEveryProblemWithFileAndLine) {
    auto p = Policy::parse(
        "[rule a]\nprotocol = modbus\naction = write\nsrc_not_in = 10.0.0.300\n"
        "[rule b]\nprotocol = bacnet\nbogus = 1\n[list x]\nnot-an-address\n",
        "site.conf");
    ASSERT_FALSE(p);
    const std::string& m = p.error().message;
    EXPECT_NE(m.find("site.conf:4: '10.0.0.300'"), std::string::npos) << m;
    EXPECT_NE(m.find("site.conf:6: protocol 'bacnet'"), std::string::npos) << m;
    EXPECT_NE(m.find("site.conf:7: unknown key 'bogus'"), std::string::npos) << m;
    EXPECT_NE(m.find("site.conf:5: rule 'b' has no action"), std::string::npos) << m;
    EXPECT_NE(m.find("site.conf:9: 'not-an-address'"), std::string::npos) << m;
}

TEST(Policy, MatchesActionSourceListAndFacts) {
    auto p = Policy::parse(
        "[list masters]\n10.0.0.0/24 192.0.2.7\n"
        "[rule w]\nprotocol = modbus\naction = write\nsrc_not_in = @masters\n"
        "fact.unit_id = 1, 2\n",
        "p.conf");
    ASSERT_TRUE(p) << p.error().message;
    AddressBlock a, b, c;
    ASSERT_TRUE(parse_address_block("10.0.0.9", a));
    ASSERT_TRUE(parse_address_block("10.0.1.9", b));
    ASSERT_TRUE(parse_address_block("2001:db8::1", c));
    const ProtocolEvent write{"modbus", "write", {{"unit_id", "2"}}};
    const ProtocolEvent other_unit{"modbus", "write", {{"unit_id", "3"}}};
    const ProtocolEvent read{"modbus", "read", {{"unit_id", "2"}}};
    std::vector<std::size_t> hits;
    (*p)->evaluate(write, a.base, b.base, hits);
    EXPECT_TRUE(hits.empty());  // an allowed master
    (*p)->evaluate(write, b.base, a.base, hits);
    EXPECT_EQ(hits.size(), 1u);
    (*p)->evaluate(write, c.base, a.base, hits);
    EXPECT_EQ(hits.size(), 2u);  // IPv6 is not in an IPv4 list
    (*p)->evaluate(other_unit, b.base, a.base, hits);
    (*p)->evaluate(read, b.base, a.base, hits);
    EXPECT_EQ(hits.size(), 2u);
}

TEST(Policy, ShippedIcsPolicyLoads) {
    auto p = Policy::load_file(std::string(SENNINGEN_SOURCE_DIR) + "/rules/packs/ics/policy.conf");
    ASSERT_TRUE(p) << p.error().message;
    EXPECT_GE((*p)->rules().size(), 10u);
}

}  // namespace
}  // namespace senningen::agent
