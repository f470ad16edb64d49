// The conn record: one per flow as it leaves the table, with the facts of Zeek's conn.log
// under Zeek's names. The envelope's timestamp is the flow's first packet (conn.log's ts).
//
// Its fields are written by RecordFields (RapidJSON's streaming writer), as analyzers' records
// are: through a Poco object (a Var per field, a map, a stringify pass) one record per flow
// cost about 8 µs, 8% of a one-worker run over the network benchmark's capture.
#include <charconv>
#include <span>
#include <string_view>

#include "senningen/agent/engine/engine.h"

namespace senningen::agent {
namespace {

// Seconds with six decimals (conn.log's precision) from nanoseconds, written into BUF.
std::string_view seconds_text(std::int64_t ns, std::span<char, 32> buf) {
    const auto us = static_cast<std::uint64_t>(ns < 0 ? 0 : (ns + 500) / 1000);
    char* end = std::to_chars(buf.data(), buf.data() + buf.size() - 7, us / 1000000).ptr;
    *end++ = '.';
    std::uint64_t rest = us % 1000000;
    for (int i = 5; i >= 0; --i) {
        end[i] = static_cast<char>('0' + rest % 10);
        rest /= 10;
    }
    return {buf.data(), static_cast<std::size_t>(end + 6 - buf.data())};
}

}  // namespace

void Engine::record_conn(const Flow& flow) {
    if (!record_sink_) return;  // nothing to build it for
    // write_record() writes the envelope of current_flow_ at current_ts_ns_; a flow can leave
    // the table while another is being handled (eviction, a reused 5-tuple): put them back.
    const Flow* const flow_before = current_flow_;
    const std::int64_t ts_before = current_ts_ns_;
    current_flow_ = &flow;
    current_ts_ns_ = flow.first_ts_ns;

    const std::uint64_t size[2] = {conn_payload_bytes(flow, 0), conn_payload_bytes(flow, 1)};
    std::uint64_t missed = 0;
    for (const auto& stream : flow.stream) {
        if (stream) missed += stream->missed_bytes();
    }

    RecordFields fields;
    fields.set("uid", zeek_uid(flow.id));
    if (!flow.app_proto.empty()) fields.set("service", flow.app_proto);
    char seconds[32];
    fields.set_number_text("duration",
                           seconds_text(flow.last_ts_ns - flow.first_ts_ns, seconds));
    fields.set("orig_bytes", size[0]);
    fields.set("resp_bytes", size[1]);
    fields.set("conn_state", conn_state(flow));
    fields.set("missed_bytes", missed);
    fields.set("history", conn_history(flow));
    fields.set("orig_pkts", flow.packets[0]);
    fields.set("orig_ip_bytes", flow.ip_bytes[0]);
    fields.set("resp_pkts", flow.packets[1]);
    fields.set("resp_ip_bytes", flow.ip_bytes[1]);
    write_record("conn", fields.json());

    current_flow_ = flow_before;
    current_ts_ns_ = ts_before;
}

}  // namespace senningen::agent
