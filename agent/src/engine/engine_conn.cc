// The conn record: one per flow as it leaves the table, with the facts of Zeek's conn.log
// under Zeek's names. The envelope's timestamp is the flow's first packet (conn.log's ts).
//
// Its fields are written straight into a reused buffer, numbers by std::to_chars and texts
// escaped by Poco, as the envelope is: through a Poco object (a Var per field, a map, a
// stringify pass) one record per flow cost about 8 µs, 8% of a one-worker run over the
// network benchmark's capture.
#include <charconv>
#include <string>

#include <Poco/JSONString.h>

#include "senningen/agent/engine/engine.h"

namespace senningen::agent {
namespace {

void append_number(std::string& to, std::uint64_t value) {
    char buf[24];
    const auto end = std::to_chars(buf, buf + sizeof buf, value).ptr;
    to.append(buf, end);
}

void append_text(std::string& to, const std::string& value) {
    to += Poco::toJSON(value, Poco::JSON_WRAP_STRINGS);
}

// Seconds with six decimals (conn.log's precision) from nanoseconds.
void append_seconds(std::string& to, std::int64_t ns) {
    const auto us = static_cast<std::uint64_t>(ns < 0 ? 0 : (ns + 500) / 1000);
    append_number(to, us / 1000000);
    to += '.';
    const std::uint64_t frac = us % 1000000;
    char digits[6];
    std::uint64_t rest = frac;
    for (int i = 5; i >= 0; --i) {
        digits[i] = static_cast<char>('0' + rest % 10);
        rest /= 10;
    }
    to.append(digits, sizeof digits);
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

    thread_local std::string fields;
    fields.clear();
    fields += "{\"uid\":";
    append_text(fields, zeek_uid(flow.id));
    if (!flow.app_proto.empty()) {
        fields += ",\"service\":";
        append_text(fields, flow.app_proto);
    }
    fields += ",\"duration\":";
    append_seconds(fields, flow.last_ts_ns - flow.first_ts_ns);
    fields += ",\"orig_bytes\":";
    append_number(fields, size[0]);
    fields += ",\"resp_bytes\":";
    append_number(fields, size[1]);
    fields += ",\"conn_state\":\"";
    fields += conn_state(flow);  // one of Zeek's codes: letters and digits only
    fields += "\",\"missed_bytes\":";
    append_number(fields, missed);
    fields += ",\"history\":\"";
    fields += conn_history(flow);  // letters only
    fields += "\",\"orig_pkts\":";
    append_number(fields, flow.packets[0]);
    fields += ",\"orig_ip_bytes\":";
    append_number(fields, flow.ip_bytes[0]);
    fields += ",\"resp_pkts\":";
    append_number(fields, flow.packets[1]);
    fields += ",\"resp_ip_bytes\":";
    append_number(fields, flow.ip_bytes[1]);
    fields += '}';
    write_record("conn", fields);

    current_flow_ = flow_before;
    current_ts_ns_ = ts_before;
}

}  // namespace senningen::agent
