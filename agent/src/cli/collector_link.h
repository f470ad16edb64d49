// How every mode of senningen-agent (capture, `scan`, `watch`) reaches a collector: the
// options (an enrolled identity, or certificates file by file, or --insecure; the durable queue
// and its policies), the checks on them, and the Forwarder they make, which signs every batch
// and heartbeat with the identity's key. One place, so that the modes cannot drift apart.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "senningen/agent/forward/forwarder.h"
#include "senningen/common/result.h"
#include "senningen/common/transport.h"

namespace senningen::agent::cli {

struct CollectorLink {
    std::optional<std::string> collector;  // HOST:PORT
    int collector_timeout_s = 30;
    std::string agent_id;
    std::string identity;  // the directory `senningen-agent enroll` installed
    common::TlsOptions tls;
    bool insecure = false;
    std::string queue;  // the durable queue's file
    long long queue_max = 1'000'000;
    QueueFullPolicy queue_full = QueueFullPolicy::kBlock;
    QueueSync queue_sync = QueueSync::kFull;
    long long commit_interval_ms = 100;
    long long heartbeat_s = 30;
};

// The usage lines of the flags below, for a subcommand's --help.
extern const char* const kCollectorLinkUsage;

// When ARGV[I] is one of --collector, --collector-timeout, --agent-id, --identity,
// --tls-cert, --tls-key, --tls-ca, --insecure, --queue, --queue-max, --queue-full,
// --queue-sync, --commit-interval or --heartbeat: takes it (and its value, advancing I) into
// LINK and returns true; a bad value goes to PROBLEMS.
bool parse_collector_flag(int argc, char** argv, int& i, CollectorLink& link,
                          std::vector<std::string>& problems);

// Which queue a collector needs.
enum class QueueNeed : std::uint8_t {
    kDurable,      // the capture mode: --queue, or the identity's DIR/queue.db
    kOptional,     // `scan`, `watch`: --queue (or the config's queue) when given, else in memory
};

// After parsing: an identity supplies the collector, the certificates, the agent id (and, with
// kDurable, the queue); then every inconsistency goes to PROBLEMS (credentials missing or
// contradicting each other, a collector that is not HOST:PORT, a missing queue). Finally the
// agent id defaults to the host name.
void resolve_collector_link(CollectorLink& link, QueueNeed queue, std::vector<std::string>& problems);

// The Forwarder for LINK (which names a collector): loads the certificate and key as the
// signer (the certificate must name LINK.agent_id) and makes the Broker transport. Neither
// started nor its queue opened (a caller may set_source() first). Errors name the file or the
// collector; all of them are configuration problems.
common::Result<std::unique_ptr<Forwarder>> make_forwarder(const CollectorLink& link);

}  // namespace senningen::agent::cli
