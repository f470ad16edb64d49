// The protocol analyzer interface. An analyzer parses one application protocol of one flow:
// it gets the in-order bytes of each TCP direction as they are reassembled (or each UDP
// datagram), and reports what it understood to its host (the engine): metadata records for
// the log, values seen at Zeek intel locations, protocol events for the policy rules, files
// carried by the protocol, and "weirds" for malformed data. Malformed data is data: an
// analyzer counts it and goes on or gives up on the flow, it never throws or crashes.
//
// Analyzers are chosen by content, not port (a DNP3 capture may sit on the EtherNet/IP port):
// each AnalyzerSpec's detect() looks at the first payload of a flow. The registry is an
// explicit list in analyzers/registry.cc, tried in order.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "senningen/agent/analyzers/record_fields.h"
#include "senningen/agent/flow/flow_table.h"
#include "senningen/agent/intel/intel_store.h"

namespace senningen::agent {

// A protocol action that policy rules judge, e.g. {"modbus", "write", {{"function", "16"}}}.
struct ProtocolEvent {
    std::string protocol;  // "modbus", "s7comm", "dnp3", "iec104", "enip", ...
    std::string action;    // "write", "plc_stop", "program_download", "restart", ...
    std::map<std::string, std::string> facts;  // protocol facts that go into the alert
};

struct FileStart;  // below: a file the protocol carries

class AnalyzerHost {
public:
    virtual ~AnalyzerHost() = default;

    // One metadata record of log LOG ("dns", "http", "modbus", ...). The host adds the time
    // stamp, flow id and 5-tuple; FIELDS holds the protocol's own fields (the host reads
    // FIELDS.json() before it returns and keeps nothing of FIELDS).
    virtual void record(std::string_view log, const RecordFields& fields) = 0;

    // VALUE was seen at Zeek intel location WHERE ("DNS::IN_REQUEST", "HTTP::IN_HOST_HEADER",
    // ...): the host matches it against the intel of TYPE.
    virtual void observe(IntelType type, std::string_view value, std::string_view where) = 0;

    // A protocol action for the policy rules.
    virtual void event(const ProtocolEvent& event) = 0;

    // Malformed protocol data: NAME is a stable identifier ("dns_label_too_long"), DETAIL free
    // text. Counted per name and written as a "weird" record.
    virtual void weird(std::string_view name, std::string_view detail) = 0;

    // Files: the host hashes each file (MD5, SHA-1, SHA-256 in one pass), matches FILE_HASH and
    // FILE_NAME intel, scans it with YARA, may extract it, and writes a "files" record when it
    // ends. file_begin returns a handle (0: the host does not track files, the other calls
    // then do nothing); bytes come in order, a hole is a gap; file_end returns the file's id
    // (Zeek's fuid) for the protocol's own record. Files still open when the flow ends are
    // ended by the host. Hosts that do not track files keep these defaults.
    virtual std::uint64_t file_begin(const FileStart& start) {
        (void)start;
        return 0;
    }
    virtual void file_data(std::uint64_t file, std::span<const std::uint8_t> bytes) {
        (void)file;
        (void)bytes;
    }
    virtual void file_gap(std::uint64_t file, std::uint64_t bytes) {
        (void)file;
        (void)bytes;
    }
    virtual std::string file_end(std::uint64_t file) {
        (void)file;
        return {};
    }
};

// A file the protocol carries (an HTTP body, a multipart part, the data of an SMB write).
struct FileStart {
    std::string_view source;       // "HTTP", "SMB", ... (Zeek's files.log source)
    bool is_orig = false;          // sent by the originator
    std::string_view filename;     // from the protocol (Content-Disposition, SMB CREATE), or ""
    std::string_view mime_type;    // as the protocol declared it, or ""
    std::string_view description;  // Zeek's file_desc: the URL for HTTP, the share path for SMB
};

// What an analyzer sees of the moment it is called.
struct AnalyzerContext {
    const Flow& flow;
    int direction;  // 0: originator to responder, 1: responder to originator
    std::int64_t ts_ns;
    AnalyzerHost& host;
};

class Analyzer {
public:
    virtual ~Analyzer() = default;

    // The next in-order bytes of one TCP direction, or one whole UDP datagram.
    virtual void data(const AnalyzerContext& ctx, std::span<const std::uint8_t> bytes) = 0;

    // A hole of BYTES in the direction's stream: the analyzer resynchronises or gives up.
    virtual void gap(const AnalyzerContext& ctx, std::uint64_t bytes) {
        (void)ctx;
        (void)bytes;
    }

    // The flow ended (closed, expired, evicted or end of input).
    virtual void end(const AnalyzerContext& ctx) { (void)ctx; }
};

struct AnalyzerSpec {
    std::string_view name;  // the app_proto value, e.g. "dns"
    std::uint8_t ip_proto;  // kIpProtoTcp or kIpProtoUdp
    // FIRST is the first payload of the flow, sent by the side DIRECTION (0 originator).
    bool (*detect)(std::span<const std::uint8_t> first, int direction, std::uint16_t src_port,
                   std::uint16_t dst_port);
    std::unique_ptr<Analyzer> (*create)();
};

// Every analyzer, in the order detection tries them.
std::span<const AnalyzerSpec> analyzer_registry();

// The spec named NAME for IP_PROTO, or nullptr (tests, fuzz targets).
const AnalyzerSpec* find_analyzer(std::string_view name, std::uint8_t ip_proto);

// The spec whose detect() accepts FIRST, or nullptr.
const AnalyzerSpec* detect_analyzer(std::uint8_t ip_proto, std::span<const std::uint8_t> first,
                                    int direction, std::uint16_t src_port,
                                    std::uint16_t dst_port);

}  // namespace senningen::agent
