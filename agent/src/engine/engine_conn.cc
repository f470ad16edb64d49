// The conn record: one per flow as it leaves the table, with the facts of Zeek's conn.log
// under Zeek's names. The envelope's timestamp is the flow's first packet (conn.log's ts).
#include <cmath>

#include <Poco/JSON/Object.h>

#include "senningen/agent/engine/engine.h"

namespace senningen::agent {

void Engine::record_conn(const Flow& flow) {
    if (!record_sink_) return;  // nothing to build it for
    // record() writes the envelope of current_flow_ at current_ts_ns_; a flow can leave the
    // table while another is being handled (eviction, a reused 5-tuple), so they are put back.
    const Flow* const flow_before = current_flow_;
    const int direction_before = current_direction_;
    const std::int64_t ts_before = current_ts_ns_;
    current_flow_ = &flow;
    current_direction_ = 0;
    current_ts_ns_ = flow.first_ts_ns;

    const bool tcp = flow.ip_proto == kIpProtoTcp;
    // TCP sizes come from sequence numbers, as Zeek's do (a retransmission counts once, a hole
    // counts); UDP sizes are the datagrams' payloads.
    std::uint64_t size[2] = {flow.bytes[0], flow.bytes[1]};
    std::uint64_t missed = 0;
    if (tcp) {
        for (int dir = 0; dir < 2; ++dir) {
            if (!flow.stream[dir]) continue;
            size[dir] = flow.stream[dir]->seen_bytes();
            missed += flow.stream[dir]->missed_bytes();
        }
    }
    // Microseconds, as conn.log writes them (time stamps are nanoseconds here).
    const double duration =
        std::round(static_cast<double>(flow.last_ts_ns - flow.first_ts_ns) / 1000.0) / 1e6;

    Poco::JSON::Object::Ptr fields = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
    fields->set("uid", zeek_uid(flow.id));
    if (!flow.app_proto.empty()) fields->set("service", flow.app_proto);
    fields->set("duration", duration);
    fields->set("orig_bytes", size[0]);
    fields->set("resp_bytes", size[1]);
    fields->set("conn_state", std::string(conn_state(flow)));
    fields->set("missed_bytes", missed);
    fields->set("history", conn_history(flow));
    fields->set("orig_pkts", flow.packets[0]);
    fields->set("orig_ip_bytes", flow.ip_bytes[0]);
    fields->set("resp_pkts", flow.packets[1]);
    fields->set("resp_ip_bytes", flow.ip_bytes[1]);
    record("conn", fields);

    current_flow_ = flow_before;
    current_direction_ = direction_before;
    current_ts_ns_ = ts_before;
}

}  // namespace senningen::agent
