// Messages that cross the wire between agent and collector, independent of the transport
// that carries them. See docs/wire-protocol.md.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "senningen/common/alert.h"

namespace senningen::common {

// Bumped when a message changes incompatibly; receivers refuse versions they do not know.
// 2: batches carry the sender's certificate and a signature; heartbeats. Heartbeats and
// acknowledgements are still at version 2.
inline constexpr std::uint64_t kWireVersion = 2;
// alert_batch alone moved on: 3 carries each alert as one string holding its record encoding
// (common/record_codec.h) instead of nested vectors, which Broker decodes far more cheaply.
// Collectors accept batches of both versions (agents of the previous release keep sending 2
// during a rolling upgrade); agents send 3.
inline constexpr std::uint64_t kAlertBatchWireVersion = 3;
inline constexpr std::uint64_t kOldestAlertBatchWireVersion = 2;

// metadata_batch is new in this release and starts at its own version 1.
inline constexpr std::uint64_t kMetadataBatchWireVersion = 1;

inline constexpr const char* kTopicAlerts = "senningen/v1/alerts";
inline constexpr const char* kTopicMetadata = "senningen/v1/metadata";
inline constexpr const char* kTopicHeartbeats = "senningen/v1/heartbeats";
inline constexpr const char* kTopicAcksPrefix = "senningen/v1/acks/";  // + agent id

// What proves who sent a message: the sender's certificate (PEM) and its signature, made with
// the certificate's key, over the message's canonical digest (common/identity.h). Both are
// empty when the deployment runs in insecure mode.
struct Credentials {
    std::string certificate;
    std::string signature;

    bool operator==(const Credentials&) const = default;
};

// A batch of alerts from one agent. batch_id grows per agent run; the collector acknowledges
// it after the alerts are committed to its store.
struct AlertBatch {
    std::string agent_id;
    std::uint64_t batch_id = 0;
    std::vector<Alert> alerts;
    Credentials credentials;
    // The alert_batch wire version it is sent in (or arrived in): the signature covers it.
    std::uint64_t wire_version = kAlertBatchWireVersion;
    // Each alert's record encoding (encode_alert_record), parallel to alerts, when at hand:
    // the agent's queue holds alerts in that form and a version 3 batch carries them so, and
    // the digest, the wire encoding and the collector's store use it as is instead of
    // encoding the alert again. Empty: made from alerts when needed. Not part of equality:
    // it is the same content as alerts.
    std::vector<std::string> records;

    bool has_records() const { return !records.empty() && records.size() == alerts.size(); }

    bool operator==(const AlertBatch& o) const {
        return agent_id == o.agent_id && batch_id == o.batch_id && alerts == o.alerts &&
               credentials == o.credentials && wire_version == o.wire_version;
    }
};

// A batch of metadata records (conn, dns, http, ... : the agent's --metadata-log lines, one
// EVE-style JSON object each) from one agent, acknowledged by a batch_ack like an alert batch.
// The agent does not parse them again: the collector checks each record as it stores it.
struct MetadataBatch {
    std::string agent_id;
    std::uint64_t batch_id = 0;
    std::vector<std::string> records;  // one JSON object each, without a line break
    Credentials credentials;
    std::uint64_t wire_version = kMetadataBatchWireVersion;

    bool operator==(const MetadataBatch&) const = default;
};

// The agent's periodic sign of life, with its counters (docs/wire-protocol.md).
struct Heartbeat {
    std::string agent_id;
    std::uint64_t sequence = 0;  // grows per agent run
    std::string version;         // the agent's software version
    std::uint64_t uptime_s = 0;
    std::string pack_version;      // rule pack in use, empty when none
    std::uint64_t interval_s = 30;  // when the next heartbeat is due
    std::uint64_t packets = 0;
    std::uint64_t kernel_drops = 0;
    std::uint64_t bytes = 0;
    std::uint64_t files_scanned = 0;
    std::uint64_t alerts = 0;
    std::uint64_t queue_depth = 0;
    std::uint64_t queue_oldest_age_s = 0;
    bool stopping = false;  // the last one of a clean shutdown: not "offline" but "stopped"
    Credentials credentials;

    bool operator==(const Heartbeat&) const = default;
};

struct BatchAck {
    std::string agent_id;
    std::uint64_t batch_id = 0;
    // Of an alert_batch's alerts, or of a metadata_batch's records:
    std::uint64_t inserted = 0;    // new alerts (records) stored
    std::uint64_t duplicates = 0;  // alerts (records) the store already had (a replay)
    std::uint64_t rejected = 0;    // failed validation, dropped with a log line

    bool operator==(const BatchAck&) const = default;
};

}  // namespace senningen::common
