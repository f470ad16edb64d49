// The conn record (Zeek's conn.log): one per flow as it leaves the table, however it leaves
// (close and linger, idle timeout, eviction, end of capture), with Zeek's counts, state and
// history; and conn_state() over the TCP endpoint states Zeek distinguishes.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <string>
#include <vector>

#include <Poco/JSON/Parser.h>
#include <pcap/dlt.h>

#include "packet_builder.h"
#include "senningen/agent/engine/engine.h"
#include "senningen/agent/engine/worker_pool.h"

namespace senningen::agent {
namespace {

using test::Bytes;
using namespace tcp_flags;

const test::Ipv4 kClient{10, 1, 0, 1};
const test::Ipv4 kServer{10, 1, 0, 2};
constexpr std::int64_t kStart = 1'700'000'000'000'000'000;
constexpr std::int64_t kMs = 1'000'000;

Bytes tcp_frame(bool from_client, std::uint16_t client_port, std::uint32_t seq, std::uint8_t flags,
                const std::string& text) {
    const Bytes payload(text.begin(), text.end());
    const Bytes l4 = from_client ? test::tcp(client_port, 80, seq, 0, flags, payload)
                                 : test::tcp(80, client_port, seq, 0, flags, payload);
    return test::ethernet(0x0800, from_client ? test::ipv4(kClient, kServer, kIpProtoTcp, l4)
                                              : test::ipv4(kServer, kClient, kIpProtoTcp, l4));
}

Bytes udp_frame(bool from_client, const Bytes& payload) {
    const Bytes l4 = from_client ? test::udp(53000, 53, payload) : test::udp(53, 53000, payload);
    return test::ethernet(0x0800, from_client ? test::ipv4(kClient, kServer, kIpProtoUdp, l4)
                                              : test::ipv4(kServer, kClient, kIpProtoUdp, l4));
}

// An engine with a record sink that keeps the parsed records, fed frame by frame.
struct Capture {
    explicit Capture(EngineOptions options = {})
        : engine(std::move(options), nullptr, nullptr, {}) {
        engine.set_record_sink([this](const std::string& line) {
            records.push_back(Poco::JSON::Parser().parse(line).extract<Poco::JSON::Object::Ptr>());
        });
    }
    void feed(const Bytes& frame, std::int64_t ts) {
        const RawPacket raw{ts, frame.data(), static_cast<std::uint32_t>(frame.size()),
                            static_cast<std::uint32_t>(frame.size())};
        engine.process(raw, DLT_EN10MB);
    }
    std::vector<Poco::JSON::Object::Ptr> conns() const {
        std::vector<Poco::JSON::Object::Ptr> out;
        for (const auto& r : records) {
            if (r->getValue<std::string>("event_type") == "conn") out.push_back(r);
        }
        return out;
    }
    Engine engine;
    std::vector<Poco::JSON::Object::Ptr> records;
};

std::uint64_t count(const Poco::JSON::Object::Ptr& record, const std::string& field) {
    return record->getObject("conn")->getValue<std::uint64_t>(field);
}

std::string text(const Poco::JSON::Object::Ptr& record, const std::string& field) {
    return record->getObject("conn")->getValue<std::string>(field);
}

TEST(ConnRecord, HandshakeDataAndFinIsSfWithZeeksCounts) {
    Capture run;
    const std::string request = "GET /index.html HTTP/1.1\r\nHost: example.test\r\n\r\n";
    const std::string response = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    const auto req = static_cast<std::uint32_t>(request.size());
    const auto resp = static_cast<std::uint32_t>(response.size());
    std::int64_t ts = kStart;
    run.feed(tcp_frame(true, 40000, 1000, kSyn, ""), ts);
    run.feed(tcp_frame(false, 40000, 5000, kSyn | kAck, ""), ts += kMs);
    run.feed(tcp_frame(true, 40000, 1001, kAck, ""), ts += kMs);
    run.feed(tcp_frame(true, 40000, 1001, kAck | kPsh, request), ts += kMs);
    run.feed(tcp_frame(true, 40000, 1001, kAck | kPsh, request), ts += kMs);  // retransmitted
    run.feed(tcp_frame(false, 40000, 5001, kAck, ""), ts += kMs);
    run.feed(tcp_frame(false, 40000, 5001, kAck | kPsh, response), ts += kMs);
    run.feed(tcp_frame(true, 40000, 1001 + req, kFin | kAck, ""), ts += kMs);
    run.feed(tcp_frame(false, 40000, 5001 + resp, kFin | kAck, ""), ts += kMs);
    run.feed(tcp_frame(true, 40000, 1002 + req, kAck, ""), ts += kMs);  // the last ACK
    EXPECT_TRUE(run.conns().empty()) << "the closed flow lingers for its last packets";
    run.engine.finish();

    const auto conns = run.conns();
    ASSERT_EQ(conns.size(), 1U);
    const auto& c = conns[0];
    EXPECT_EQ(c->getValue<std::string>("timestamp"), common::format_timestamp(kStart))
        << "conn.log's ts is the first packet's";
    EXPECT_EQ(c->getValue<std::string>("proto"), "TCP");
    EXPECT_EQ(c->getValue<std::string>("src_ip"), "10.1.0.1");
    EXPECT_EQ(c->getValue<std::uint64_t>("flow_id"),
              run.records[0]->getValue<std::uint64_t>("flow_id"));
    EXPECT_EQ(text(c, "service"), "http");
    EXPECT_EQ(text(c, "conn_state"), "SF");
    EXPECT_EQ(text(c, "history"), "ShADTadFf") << "the resent request is a T, as in Zeek";
    EXPECT_EQ(text(c, "uid"), zeek_uid(c->getValue<std::uint64_t>("flow_id")));
    EXPECT_DOUBLE_EQ(c->getObject("conn")->getValue<double>("duration"), 0.009);
    EXPECT_EQ(count(c, "orig_pkts"), 6U);
    EXPECT_EQ(count(c, "resp_pkts"), 4U);
    EXPECT_EQ(count(c, "orig_bytes"), request.size()) << "a retransmission counts once";
    EXPECT_EQ(count(c, "resp_bytes"), response.size());
    EXPECT_EQ(count(c, "orig_ip_bytes"), 6 * 40 + 2 * request.size());
    EXPECT_EQ(count(c, "resp_ip_bytes"), 4 * 40 + response.size());
    EXPECT_EQ(count(c, "missed_bytes"), 0U);
    EXPECT_EQ(run.records.back()->getValue<std::string>("event_type"), "conn")
        << "after the flow's http record";
}

TEST(ConnRecord, UnansweredSynIsS0) {
    Capture run;
    run.feed(tcp_frame(true, 40001, 1000, kSyn, ""), kStart);
    run.feed(tcp_frame(true, 40001, 1000, kSyn, ""), kStart + 1000 * kMs);  // retried
    run.engine.finish();
    const auto conns = run.conns();
    ASSERT_EQ(conns.size(), 1U);
    EXPECT_EQ(text(conns[0], "conn_state"), "S0");
    EXPECT_EQ(text(conns[0], "history"), "S");
    EXPECT_EQ(count(conns[0], "orig_pkts"), 2U);
    EXPECT_EQ(count(conns[0], "resp_pkts"), 0U);
    EXPECT_EQ(count(conns[0], "orig_bytes"), 0U);
    EXPECT_FALSE(conns[0]->getObject("conn")->has("service")) << "no protocol recognised";
    EXPECT_FALSE(conns[0]->has("app_proto"));
}

TEST(ConnRecord, SynAnsweredByRstIsRej) {
    Capture run;
    run.feed(tcp_frame(true, 40002, 1000, kSyn, ""), kStart);
    run.feed(tcp_frame(false, 40002, 0, kRst | kAck, ""), kStart + kMs);
    run.engine.finish();
    const auto conns = run.conns();
    ASSERT_EQ(conns.size(), 1U);
    EXPECT_EQ(text(conns[0], "conn_state"), "REJ");
    EXPECT_EQ(text(conns[0], "history"), "Sr");
    EXPECT_EQ(count(conns[0], "resp_pkts"), 1U);
}

TEST(ConnRecord, UdpDnsIsSfWithServiceDns) {
    Capture run;
    // A DNS query for example.test (A) and its answer without records.
    const Bytes query = {0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
                         0x00, 0x00, 7,    'e',  'x',  'a',  'm',  'p',  'l',  'e',
                         4,    't',  'e',  's',  't',  0,    0x00, 0x01, 0x00, 0x01};
    Bytes answer = query;
    answer[2] = 0x81;
    answer[3] = 0x83;  // response, NXDOMAIN
    run.feed(udp_frame(true, query), kStart);
    run.feed(udp_frame(false, answer), kStart + 2 * kMs);
    run.engine.finish();
    const auto conns = run.conns();
    ASSERT_EQ(conns.size(), 1U);
    const auto& c = conns[0];
    EXPECT_EQ(c->getValue<std::string>("proto"), "UDP");
    EXPECT_EQ(c->getValue<std::string>("app_proto"), "dns");
    EXPECT_EQ(text(c, "service"), "dns");
    EXPECT_EQ(text(c, "conn_state"), "SF");
    EXPECT_EQ(text(c, "history"), "Dd");
    EXPECT_EQ(count(c, "orig_bytes"), query.size());
    EXPECT_EQ(count(c, "resp_bytes"), answer.size());
    EXPECT_EQ(count(c, "orig_ip_bytes"), 28 + query.size());
    EXPECT_EQ(count(c, "orig_pkts"), 1U);
    EXPECT_EQ(count(c, "resp_pkts"), 1U);
    EXPECT_DOUBLE_EQ(c->getObject("conn")->getValue<double>("duration"), 0.002);
}

TEST(ConnRecord, EvictedAndExpiredFlowsGetTheirRecordWhenTheyLeave) {
    EngineOptions options;
    options.max_flows = 2;
    Capture run(options);
    run.feed(tcp_frame(true, 41000, 1, kSyn, ""), kStart);
    run.feed(tcp_frame(true, 41001, 1, kSyn, ""), kStart + kMs);
    EXPECT_TRUE(run.conns().empty());
    run.feed(tcp_frame(true, 41002, 1, kSyn, ""), kStart + 2 * kMs);  // evicts the first
    auto conns = run.conns();
    ASSERT_EQ(conns.size(), 1U);
    EXPECT_EQ(conns[0]->getValue<int>("src_port"), 41000);
    EXPECT_EQ(conns[0]->getValue<std::string>("timestamp"), common::format_timestamp(kStart));

    // Past the idle timeout (300 s of packet time) the two others expire.
    run.feed(tcp_frame(true, 41003, 1, kSyn, ""), kStart + 400'000 * kMs);
    conns = run.conns();
    ASSERT_EQ(conns.size(), 3U);
    EXPECT_EQ(conns[1]->getValue<int>("src_port"), 41001);
    EXPECT_EQ(conns[2]->getValue<int>("src_port"), 41002);
    EXPECT_EQ(text(conns[2], "conn_state"), "S0");
    run.engine.finish();
    EXPECT_EQ(run.conns().size(), 4U) << "the end of the capture ends the last one";
}

TEST(ConnRecord, AStreamHoleIsMissedBytesAndCountsInTheSize) {
    Capture run;
    std::int64_t ts = kStart;
    run.feed(tcp_frame(true, 40003, 1000, kSyn, ""), ts);
    run.feed(tcp_frame(false, 40003, 5000, kSyn | kAck, ""), ts += kMs);
    run.feed(tcp_frame(true, 40003, 1001, kAck, std::string(100, 'a')), ts += kMs);
    // 50 bytes at 1101 are never seen.
    run.feed(tcp_frame(true, 40003, 1151, kAck, std::string(30, 'b')), ts += kMs);
    run.engine.finish();
    const auto conns = run.conns();
    ASSERT_EQ(conns.size(), 1U);
    EXPECT_EQ(count(conns[0], "missed_bytes"), 50U);
    EXPECT_EQ(count(conns[0], "orig_bytes"), 180U);
    EXPECT_EQ(text(conns[0], "conn_state"), "S1");
    EXPECT_EQ(text(conns[0], "history"), "ShD");
}

// Enough flows that each worker hands its end-of-input records over in several chunks.
std::vector<std::string> conn_lines_with_two_workers(int flows) {
    std::vector<std::string> lines;
    WorkerOutputs outputs;
    outputs.record = [&](const std::string& line) { lines.push_back(line); };
    WorkerPool pool(2, DLT_EN10MB, EngineOptions{}, nullptr, nullptr, nullptr, outputs);
    for (int i = 0; i < flows; ++i) {
        const Bytes frame = tcp_frame(true, static_cast<std::uint16_t>(20000 + i), 1, kSyn, "");
        pool.process({kStart + i, frame.data(), static_cast<std::uint32_t>(frame.size()),
                      static_cast<std::uint32_t>(frame.size())});
    }
    pool.finish();
    return lines;
}

TEST(ConnRecord, EveryWorkerWritesItsFlowsConnRecordsInChunksInAFixedOrder) {
    constexpr int kFlows = 20000;
    const std::vector<std::string> lines = conn_lines_with_two_workers(kFlows);
    std::vector<int> ports;
    for (const auto& line : lines) {
        const auto r = Poco::JSON::Parser().parse(line).extract<Poco::JSON::Object::Ptr>();
        if (r->getValue<std::string>("event_type") == "conn") {
            ports.push_back(r->getValue<int>("src_port"));
        }
    }
    ASSERT_EQ(ports.size(), static_cast<std::size_t>(kFlows));
    std::sort(ports.begin(), ports.end());
    for (int i = 0; i < kFlows; ++i) ASSERT_EQ(ports[static_cast<std::size_t>(i)], 20000 + i);
    EXPECT_EQ(conn_lines_with_two_workers(kFlows), lines) << "the merged order is fixed";
}

// ---- conn_state over the flow table ------------------------------------------------------

struct Table {
    FlowTable table{{}};
    std::string keep;  // the payload outlives update()
    int dir = -1;
    Flow* flow = nullptr;
    void send(bool from_client, std::uint8_t flags, std::uint32_t seq, const std::string& body = "",
              std::uint8_t proto = kIpProtoTcp, std::uint32_t ack = 0,
              std::uint16_t window = 65535) {  // a zero window is a W
        keep = body;
        DecodedPacket p;
        p.ts_ns = ++ts;
        p.tcp_window = window;
        p.ack = ack;
        IpAddress client;
        client.family = 4;
        client.bytes[0] = 10;
        client.bytes[3] = 1;
        IpAddress server = client;
        server.bytes[3] = 2;
        p.src = from_client ? client : server;
        p.dst = from_client ? server : client;
        p.src_port = from_client ? 40000 : 80;
        p.dst_port = from_client ? 80 : 40000;
        p.ip_proto = proto;
        p.tcp_flags = flags;
        p.seq = seq;
        p.payload = {reinterpret_cast<const std::uint8_t*>(keep.data()), keep.size()};
        flow = &table.update(p, dir);
    }
    std::int64_t ts = 0;
};

std::string state_of(const std::vector<std::pair<bool, std::uint8_t>>& packets,
                     const std::string& body_of_first_data = "x") {
    Table t;
    std::uint32_t seq[2] = {100, 900};
    for (const auto& [from_client, flags] : packets) {
        const int side = from_client ? 0 : 1;
        const bool data = flags == (kAck | kPsh);
        t.send(from_client, flags, seq[side], data ? body_of_first_data : "");
        if ((flags & kSyn) != 0) ++seq[side];
        if (data) seq[side] += static_cast<std::uint32_t>(body_of_first_data.size());
    }
    return std::string(conn_state(*t.flow)) + " " + conn_history(*t.flow);
}

constexpr bool C = true;   // from the client (originator)
constexpr bool S = false;  // from the server (responder)
constexpr std::uint8_t kData = kAck | kPsh;

TEST(ConnState, FollowsZeeksEndpointStates) {
    EXPECT_EQ(state_of({{C, kSyn}, {S, kSyn | kAck}, {C, kAck}}), "S1 ShA");
    EXPECT_EQ(state_of({{C, kSyn}, {S, kSyn | kAck}}), "S1 Sh");
    EXPECT_EQ(state_of({{C, kSyn}, {S, kSyn | kAck}, {C, kAck}, {C, kFin | kAck}}), "S2 ShAF");
    EXPECT_EQ(state_of({{C, kSyn}, {S, kSyn | kAck}, {C, kAck}, {S, kFin | kAck}}), "S3 ShAf");
    EXPECT_EQ(state_of({{C, kSyn}, {S, kSyn | kAck}, {C, kData}, {C, kRst}}), "RSTO ShDR");
    EXPECT_EQ(state_of({{C, kSyn}, {S, kSyn | kAck}, {C, kData}, {S, kRst}}), "RSTR ShDr");
    EXPECT_EQ(state_of({{C, kSyn}, {C, kRst}}), "RSTOS0 SR");
    EXPECT_EQ(state_of({{C, kSyn}, {C, kFin}}), "SH SF");
    EXPECT_EQ(state_of({{C, kData}, {S, kData}, {C, kAck}}), "OTH DdA") << "mid-stream";
    EXPECT_EQ(state_of({{C, kData}, {S, kData}, {C, kFin | kAck}, {S, kFin | kAck}}), "SF DdFf");
    EXPECT_EQ(state_of({{C, kSyn | kAck}, {S, kRst}}), "REJ Hr") << "a SYN-ACK scan";
    EXPECT_EQ(state_of({{C, kData}, {S, kRst}}), "RSTRH Dr");
    EXPECT_EQ(state_of({{C, kSyn | kFin}, {S, kRst | kAck}}), "REJ Qr");
}

TEST(ConnState, UdpIsS0UntilTheResponderAnswers) {
    Table t;
    t.send(C, 0, 0, "q", kIpProtoUdp);
    EXPECT_STREQ(conn_state(*t.flow), "S0");
    t.send(S, 0, 0, "a", kIpProtoUdp);
    EXPECT_STREQ(conn_state(*t.flow), "SF");
    EXPECT_EQ(conn_history(*t.flow), "Dd");
}

TEST(ConnHistory, EachKindOnceInTheOrderFirstSeenAllSixteenFit) {
    Table t;
    t.send(C, kSyn, 1);
    t.send(S, kSyn, 1);
    t.send(C, kSyn | kAck, 1);
    t.send(S, kSyn | kAck, 1);
    t.send(C, kAck, 2);
    t.send(S, kAck, 2);
    t.send(C, kAck, 2, "d");
    t.send(S, kAck, 2, "d");
    t.send(C, kSyn | kFin, 2);
    t.send(S, kSyn | kFin, 2);
    t.send(C, kFin | kAck, 3);
    t.send(S, kFin | kAck, 3);
    t.send(C, kRst, 4);  // the flow closes, and lingers: its history goes on
    t.send(S, kRst, 4);
    t.send(C, kFin | kRst, 4);
    t.send(S, kFin | kRst, 4);
    t.send(C, kAck, 5, "again");  // kinds already seen add nothing
    EXPECT_EQ(conn_history(*t.flow), "SsHhAaDdQqFfRrIi");
    EXPECT_EQ(std::popcount(t.flow->history_seen), 16);
    EXPECT_EQ(t.table.counters().flows_created, 1U);
}

// A handshake, client ISN 100 and server ISN 900: the streams start at 101 and 901.
void handshake(Table& t) {
    t.send(C, kSyn, 100, "", kIpProtoTcp, 0);
    t.send(S, kSyn | kAck, 900, "", kIpProtoTcp, 101);
    t.send(C, kAck, 101, "", kIpProtoTcp, 901);
}

TEST(ConnHistory, RetransmissionsAreTAtTheFirstTenthAndHundredth) {
    Table t;
    handshake(t);
    t.send(C, kData, 101, "0123456789", kIpProtoTcp, 901);
    EXPECT_EQ(conn_history(*t.flow), "ShAD") << "new data is no retransmission";
    t.send(C, kData, 101, "0123456789", kIpProtoTcp, 901);
    EXPECT_EQ(conn_history(*t.flow), "ShADT");
    for (int i = 2; i <= 9; ++i) t.send(C, kData, 105, "45", kIpProtoTcp, 901);
    EXPECT_EQ(conn_history(*t.flow), "ShADT") << "nine so far: one letter";
    t.send(C, kData, 105, "45", kIpProtoTcp, 901);
    EXPECT_EQ(conn_history(*t.flow), "ShADTT") << "the tenth";
    for (int i = 11; i <= 100; ++i) t.send(C, kData, 101, "0", kIpProtoTcp, 901);
    EXPECT_EQ(conn_history(*t.flow), "ShADTTT") << "the hundredth";
    // Data that goes further is none, even if it starts below: it carries new bytes.
    t.send(C, kData, 109, "89ab", kIpProtoTcp, 901);
    EXPECT_EQ(conn_history(*t.flow), "ShADTTT");
    t.send(S, kData, 901, "r", kIpProtoTcp, 113);
    t.send(S, kData, 901, "r", kIpProtoTcp, 113);
    EXPECT_EQ(conn_history(*t.flow), "ShADTTTdt");
}

TEST(ConnHistory, ZeroWindowsAreWUnlessInARstOrAfterThePeerClosed) {
    Table t;
    handshake(t);
    t.send(S, kAck, 901, "", kIpProtoTcp, 101, 0);
    EXPECT_EQ(conn_history(*t.flow), "ShAaw");
    t.send(S, kAck, 901, "", kIpProtoTcp, 101, 0);
    EXPECT_EQ(conn_history(*t.flow), "ShAaw") << "the second of ten adds nothing";
    t.send(C, kRst | kAck, 101, "", kIpProtoTcp, 901, 0);
    EXPECT_EQ(conn_history(*t.flow), "ShAawR") << "a RST's window means nothing";

    Table u;
    handshake(u);
    u.send(C, kFin | kAck, 101, "", kIpProtoTcp, 901);
    u.send(S, kAck, 901, "", kIpProtoTcp, 102, 0);
    EXPECT_EQ(conn_history(*u.flow), "ShAFa") << "no window matters once the peer closed";
}

TEST(ConnHistory, AcknowledgedDataNeverSeenIsAGapCountedOncePerHole) {
    Table t;
    handshake(t);
    t.send(C, kData, 101, "abcd", kIpProtoTcp, 901);
    t.send(S, kAck, 901, "", kIpProtoTcp, 105);
    EXPECT_EQ(conn_history(*t.flow), "ShADa") << "acknowledged what was seen";
    // The capture lost the client's bytes 105..108; the server acknowledges them.
    t.send(C, kData, 109, "ijkl", kIpProtoTcp, 901);
    t.send(S, kAck, 901, "", kIpProtoTcp, 113);
    EXPECT_EQ(conn_history(*t.flow), "ShADaG") << "the client's data had a hole: G";
    t.send(S, kAck, 901, "", kIpProtoTcp, 113);
    EXPECT_EQ(conn_history(*t.flow), "ShADaG") << "the same hole is counted once";
    // An acknowledgement in a FIN does not count (Zeek: not reliable at the end).
    t.send(S, kFin | kAck, 901, "", kIpProtoTcp, 200);
    EXPECT_EQ(conn_history(*t.flow), "ShADaGf");
    // Acknowledging the client's FIN (one sequence number past its data) is no gap.
    Table u;
    handshake(u);
    u.send(C, kFin | kAck, 101, "", kIpProtoTcp, 901);
    u.send(S, kAck, 901, "", kIpProtoTcp, 102);
    EXPECT_EQ(conn_history(*u.flow), "ShAFa");
}

TEST(ConnHistory, SynFinAndRstAgainWithAnotherSequenceNumber) {
    Table t;
    t.send(C, kSyn, 100);
    t.send(C, kSyn, 100);
    EXPECT_EQ(conn_history(*t.flow), "S") << "a SYN resent is the same SYN";
    t.send(C, kSyn, 5000);
    EXPECT_EQ(conn_history(*t.flow), "SS") << "a new sequence number: another attempt";
    t.send(S, kRst | kAck, 0, "", kIpProtoTcp, 5001);
    t.send(S, kRst | kAck, 0, "", kIpProtoTcp, 5001);
    EXPECT_EQ(conn_history(*t.flow), "SSr");
    t.send(S, kRst | kAck, 77, "", kIpProtoTcp, 5001);
    EXPECT_EQ(conn_history(*t.flow), "SSrr");

    Table u;
    handshake(u);
    u.send(C, kFin | kAck, 101, "", kIpProtoTcp, 901);
    u.send(C, kFin | kAck, 101, "", kIpProtoTcp, 901);
    EXPECT_EQ(conn_history(*u.flow), "ShAF") << "a FIN resent";
    u.send(C, kFin | kAck, 101, "late", kIpProtoTcp, 901);
    EXPECT_EQ(conn_history(*u.flow), "ShAFF") << "a FIN after other data";
}

TEST(ConnHistory, AtMostAHundredLetters) {
    Table t;
    handshake(t);
    for (std::uint32_t i = 0; i < 500; ++i) t.send(S, kRst, 1000 + i);
    const std::string history = conn_history(*t.flow);
    EXPECT_EQ(history.size(), HistoryMore::kMaxLetters);
    EXPECT_EQ(history.substr(0, 5), "ShArr");
}

}  // namespace
}  // namespace senningen::agent
