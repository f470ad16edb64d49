// The inspection engine: packets in, alerts out. It decodes each frame, keeps flows and TCP
// streams, recognises the application protocol by content and hosts its analyzer, matches
// intel wherever an analyzer (or the flow itself: Conn::IN_ORIG / Conn::IN_RESP) sees a value,
// tracks the files protocols carry (hashes, intel, YARA, extraction: engine_files.cc), and runs
// YARA over UDP payloads and over each TCP direction's reassembled bytes (once, when the flow
// ends or the direction reaches its depth). Single-threaded; one engine per worker.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <map>
#include <span>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "senningen/agent/analyzers/analyzer.h"
#include "senningen/agent/capture/pcap_file.h"
#include "senningen/agent/decode/packet.h"
#include "senningen/agent/flow/defrag.h"
#include "senningen/agent/flow/flow_table.h"
#include "senningen/agent/intel/intel_store.h"
#include "senningen/agent/policy/policy.h"
#include "senningen/agent/scan/yara_rules.h"
#include "senningen/common/alert.h"

namespace senningen::agent {

struct EngineOptions {
    std::string agent_id = "agent";
    std::size_t stream_depth = 1 << 20;
    std::size_t max_flows = 65536;
    std::int64_t idle_timeout_ns = FlowTableOptions{}.idle_timeout_ns;
    std::int64_t absolute_timeout_ns = FlowTableOptions{}.absolute_timeout_ns;
    // Heap bytes of the TCP streams (buffer capacity, not just the bytes in use, and held
    // out-of-order segments) over all flows, held for the YARA scan at the end of each
    // direction. Beyond it, streams are scanned early and keep only a kScanOverlap tail
    // (counted in early_scans); without rules, bytes go as soon as the analyzer has them.
    std::size_t stream_memory = 64 << 20;
    int yara_timeout_seconds = 10;
    // Files from traffic (HTTP bodies, SMB writes): bytes of each file kept for YARA, and
    // optional extraction to a directory ("" = none), each file cut at extract_max_bytes.
    std::size_t file_scan_depth = 1 << 20;
    std::string extract_dir;
    std::uint64_t extract_max_bytes = 100ULL << 20;
    // The digests of every file (FileHash bits; Zeek's hash-all-files computes all three).
    // Those the intel's FILE_HASH indicators are given in are computed whatever this says.
    unsigned file_hashes = kAllFileHashes;
};

struct EngineCounters {
    std::uint64_t packets = 0;
    std::uint64_t bytes = 0;
    std::uint64_t decoded = 0;
    std::uint64_t not_ip = 0;
    std::uint64_t unsupported_link = 0;
    std::uint64_t truncated = 0;
    std::uint64_t malformed = 0;
    // IP fragments: those captured, and of them (DefragCounters) the overlapping ones and those
    // of datagrams given up; the datagrams reassembled from them and inspected.
    std::uint64_t fragments = 0;
    std::uint64_t fragment_overlaps = 0;
    std::uint64_t fragments_dropped = 0;
    std::uint64_t fragment_datagrams = 0;
    std::uint64_t other_transport = 0;
    // Packets whose checksum is wrong, inspected all the same: IPv4 headers (fragments' too),
    // TCP and UDP over header, payload and pseudo-header (where all of it was captured).
    std::uint64_t bad_ip_checksums = 0;
    std::uint64_t bad_tcp_checksums = 0;
    std::uint64_t bad_udp_checksums = 0;
    std::uint64_t analyzer_records = 0;
    std::uint64_t weirds = 0;
    std::uint64_t protocol_events = 0;
    std::uint64_t policy_alerts = 0;  // ICS policy rules that fired
    std::uint64_t yara_scans = 0;
    std::uint64_t yara_prefiltered = 0;  // of those, skipped: none of the rules' literals
    std::uint64_t early_scans = 0;  // stream scans ahead of the end, to stay in stream_memory
    std::uint64_t yara_errors = 0;
    std::uint64_t intel_hits = 0;
    std::uint64_t intel_whitelisted = 0;  // hits suppressed by meta.whitelist
    std::uint64_t files = 0;              // files from traffic
    std::uint64_t files_extracted = 0;
    std::uint64_t extract_errors = 0;
    std::uint64_t alerts = 0;
};

struct TrafficFile;  // a file being carried by a flow (engine_files.cc)
struct ZipMembers;   // a ZIP file's members, files of their own (engine_files.cc)
struct TrafficFileDeleter {
    void operator()(TrafficFile* file) const;
};

class Engine final : private AnalyzerHost {
public:
    using AlertSink = std::function<void(common::Alert&&)>;
    // One metadata record as an EVE-style JSON line (no newline).
    using RecordSink = std::function<void(const std::string&)>;

    // RULES and INTEL may be null (nothing of that kind to match). INTEL must outlive the
    // engine.
    Engine(EngineOptions options, std::shared_ptr<const YaraRules> rules,
           const IntelStore* intel, AlertSink sink);
    ~Engine();
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    // Metadata records (dns, http, ..., weird) go to SINK; without one they are not built.
    void set_record_sink(RecordSink sink) { record_sink_ = std::move(sink); }

    // ICS policy rules that judge the analyzers' ProtocolEvents (engine_policy.cc); null: none.
    void set_policy(std::shared_ptr<const Policy> policy) { policy_ = std::move(policy); }

    // Swaps rules, intel and policy between two packets (SIGHUP): flows, streams and analyzer
    // state stay. INTEL must outlive the engine or the next reload.
    void reload(std::shared_ptr<const YaraRules> rules, const IntelStore* intel,
                std::shared_ptr<const Policy> policy);

    // Intel hits as lines of Zeek's intel.log (tab separated, no newline; the header is the
    // caller's: intel_log_header()).
    void set_intel_log_sink(RecordSink sink) { intel_log_sink_ = std::move(sink); }

    void process(const RawPacket& packet, int linktype);
    // A datagram reassembled from IP fragments (a raw IP packet), by the worker pool's
    // Defragmenter or the engine's own: inspected as process() inspects a whole packet, but
    // not counted as a captured one. FACTS: what the Defragmenter knows of it (fragments
    // whose overlapping bytes differed make a fragment_inconsistency weird for its flow).
    void process_datagram(const RawPacket& datagram, const DatagramFacts& facts = {});

    // End of input: every flow ends, its streams are scanned.
    void finish();

    // With the fragment counts of the engine's own Defragmenter (one worker).
    EngineCounters counters() const;
    const FlowTableCounters& flow_counters() const { return flows_.counters(); }
    const ReassemblyCounters& flush_counters() const { return gap_counters_; }
    // Weird records by name.
    const std::map<std::string, std::uint64_t, std::less<>>& weirds() const { return weirds_; }

private:
    // A decoded packet (or reassembled datagram, with its FACTS) from its decode status on.
    void inspect(DecodeStatus status, DecodedPacket& packet,
                 const DatagramFacts* facts = nullptr);

    // Per-flow analyzer state, beside the flow table (which knows nothing of analyzers).
    struct FlowState {
        std::unique_ptr<Analyzer> analyzer;
        std::uint64_t delivered[2] = {0, 0};  // stream bytes already handed to the analyzer
        std::uint64_t files = 0;              // files the flow carried so far (for fuids)
        Flow* flow = nullptr;                 // owned by the flow table, valid while this is
        std::size_t held[2] = {0, 0};         // stream heap bytes, as counted in held_bytes_
        std::uint32_t gaps_told[2] = {0, 0};  // stream gaps already reported to the analyzer
        std::uint8_t detect_attempts = 0;
        std::uint8_t weirds_told = 0;  // the kWeird* bits: the flow's own weirds, once each
        // Rules limited to one alert per flow that fired; made at the first (most flows have
        // none: one pointer per flow instead of an empty vector's three).
        std::unique_ptr<std::vector<std::string>> policy_fired;
    };

    // AnalyzerHost, for the analyzer that is being called (current_).
    void record(std::string_view log, const RecordFields& fields) override;
    void observe(IntelType type, std::string_view value, std::string_view where) override;
    void event(const ProtocolEvent& event) override;
    void weird(std::string_view name, std::string_view detail) override;
    // Weirds about the flow's packets rather than its protocol, written once per flow (and
    // direction): the counters count every occurrence.
    static constexpr std::uint8_t kWeirdRexmitOrig = 1;  // << direction
    static constexpr std::uint8_t kWeirdFragment = 4;
    static constexpr std::uint8_t kWeirdBadIpChecksum = 8;
    static constexpr std::uint8_t kWeirdBadChecksum = 16;  // TCP or UDP
    // DETAIL() gives the record's detail, made only when the record is written: a packet of a
    // flow already told (every packet of an offloading host, say) builds no string.
    template <typename Detail>
    void flow_weird(Flow& flow, int direction, std::uint8_t kind, std::string_view name,
                    const Detail& detail, std::int64_t ts_ns);
    std::uint64_t file_begin(const FileStart& start) override;
    void file_data(std::uint64_t file, std::span<const std::uint8_t> bytes) override;
    void file_gap(std::uint64_t file, std::uint64_t bytes) override;
    std::string file_end(std::uint64_t file) override;

    // What an intel hit on a file adds to the alert and to intel.log.
    struct FileFacts {
        const common::FileContext* context = nullptr;
        std::string_view fuid;
        std::string_view mime_type;
        std::string_view description;
    };
    void end_files_of(const Flow& flow);
    void match_value(const Flow& flow, int direction, IntelType type, std::string_view value,
                     std::string_view where, std::int64_t ts_ns, const FileFacts* file);
    void write_intel_log(const Flow& flow, std::string_view seen, IntelType seen_type,
                         std::span<const Indicator* const> items,
                         std::span<const std::string> sources, std::string_view where,
                         std::int64_t ts_ns, const FileFacts* file);
    // YARA rules that fired on a flow direction already (stream or file): one alert each.
    bool first_yara_hit(const Flow& flow, int direction, const std::string& rule);

    FlowState& state_of(Flow& flow);
    void detect(Flow& flow, FlowState& state, int direction, const DecodedPacket& packet);
    void deliver_stream(Flow& flow, FlowState& state, int direction, std::int64_t ts_ns);
    AnalyzerContext context(const Flow& flow, int direction, std::int64_t ts_ns);

    void on_udp(Flow& flow, int direction, const DecodedPacket& packet);
    void on_tcp(Flow& flow, int direction, const DecodedPacket& packet);
    void on_flow_start(const Flow& flow, const DecodedPacket& packet);
    void on_flow_end(Flow& flow);
    // The flow's conn record (Zeek's conn.log), as it leaves the table (engine_conn.cc).
    void record_conn(const Flow& flow);
    // A record of current_flow_ at current_ts_ns_ whose fields are FIELDS_JSON (an object).
    void write_record(std::string_view log, std::string_view fields_json);
    void scan_stream(Flow& flow, int direction);
    // OFFSET: where BYTES start in the stream (match offsets are stream offsets). FILE: the
    // file from traffic BYTES are the head of, whose context the alerts carry.
    void scan_bytes(const Flow& flow, int direction, std::span<const std::uint8_t> bytes,
                    std::int64_t ts_ns, std::uint64_t offset = 0,
                    const common::FileContext* file = nullptr);
    // Frees stream bytes nobody needs any more, and keeps held_bytes_ within stream_memory.
    void trim_stream(Flow& flow, FlowState& state, int direction);
    void shed_stream_memory();
    // One observation of SEEN (of SEEN_TYPE) at WHERE that matched ITEMS (the most specific
    // first): one intel.log line and one alert.
    void intel_hit(const Flow& flow, int direction, std::string_view seen, IntelType seen_type,
                   std::span<const Indicator* const> items, std::string_view where,
                   std::int64_t ts_ns, const FileFacts* file = nullptr);
    common::Alert make_network_alert(const Flow& flow, int direction, std::int64_t ts_ns) const;
    void emit(common::Alert&& alert);

    EngineOptions options_;
    std::shared_ptr<const YaraRules> rules_;
    std::shared_ptr<const Policy> policy_;
    std::vector<std::size_t> policy_hits_;  // reused by event(): no allocation per event
    std::unique_ptr<YaraScanner> scanner_;
    const IntelStore* intel_;
    AlertSink sink_;
    EngineCounters counters_;
    ReassemblyCounters gap_counters_;
    RecordSink record_sink_;
    std::map<std::string, std::uint64_t, std::less<>> weirds_;
    std::unordered_map<std::uint64_t, FlowState> states_;  // by Flow::id
    RecordSink intel_log_sink_;
    std::unordered_map<std::uint64_t, std::unique_ptr<TrafficFile, TrafficFileDeleter>>
        files_;  // open files by handle
    std::uint64_t next_file_ = 0;
    friend struct ZipMembers;  // begins, feeds and ends the member files
    // Per flow id and direction, the YARA rules that already fired.
    std::unordered_map<std::uint64_t, std::vector<std::string>> yara_fired_[2];
    const Flow* current_flow_ = nullptr;  // the flow whose analyzer is running
    int current_direction_ = 0;
    std::int64_t current_ts_ns_ = 0;  // gaps found when a stream is flushed for scanning
    Defragmenter defrag_;
    FlowTable flows_;  // last: its end handler uses the members above while it is destroyed
    std::int64_t last_ts_ns_ = 0;
    std::size_t held_bytes_ = 0;  // heap bytes of TCP streams over all flows (reserved)
    std::size_t shed_floor_ = 0;  // held_bytes_ above which the next sweep runs, if over budget
};

// The header lines of Zeek's intel.log (#separator ... #types), each ending in a newline;
// OPEN is the "#open" time stamp text. intel_log_footer() is the "#close" line.
std::string intel_log_header(std::string_view open);
std::string intel_log_footer(std::string_view close);

// The engine's scanner: for buffers the engine owns (YaraScanner::set_heap_only).
std::unique_ptr<YaraScanner> make_stream_scanner(std::shared_ptr<const YaraRules> rules,
                                                 int timeout_seconds);

// Zeek's "C..." connection uid for a flow id: the same flow always gets the same uid.
std::string zeek_uid(std::uint64_t flow_id);

}  // namespace senningen::agent
