// The transport between agents and collectors, behind an interface so that Broker can be
// swapped one day (Zeek is moving its own cluster off it). The Broker implementation is
// make_broker_transport(); nothing outside common/ includes a Broker header.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "senningen/common/result.h"
#include "senningen/common/wire.h"

namespace senningen::common {

enum class TransportRole : std::uint8_t { kAgent, kCollector };

struct TlsOptions {
    std::string certificate;  // PEM; empty for none
    std::string key;
    std::string ca_file;
    bool enabled() const { return !certificate.empty(); }
};
// Without certificates the link is NOT authenticated: that needs TransportOptions::insecure,
// and the transport says so loudly in the log.

struct TransportOptions {
    TransportRole role = TransportRole::kAgent;
    std::string agent_id;  // the agent's own id (agents only): it subscribes to its acks
    TlsOptions tls;
    bool insecure = false;  // explicitly allow plain, unauthenticated peering (tests, labs)
    // Worker threads of the transport's scheduler; 0 leaves the library's default (one per
    // core). Agents use few: they move little and must leave the host its CPU.
    std::size_t threads = 0;
};

enum class PeerState : std::uint8_t { kConnected, kDisconnected, kUnreachable };

struct PeerEvent {
    PeerState state = PeerState::kDisconnected;
    std::string peer;     // "host:port" where known
    std::string message;  // the transport's own words
};

// A message that arrived but could not be decoded: counted and logged by the receiver.
struct DecodeFailure {
    std::string topic;
    std::string message;
};

using Inbound =
    std::variant<AlertBatch, MetadataBatch, BatchAck, Heartbeat, PeerEvent, DecodeFailure>;

class Transport {
public:
    virtual ~Transport() = default;

    // Accepts peers on HOST:PORT (0 picks a free port); the port actually bound, or
    // kUnavailable naming the address.
    virtual Result<std::uint16_t> listen(const std::string& host, std::uint16_t port) = 0;

    // Starts one connection attempt to HOST:PORT without blocking; the outcome arrives as a
    // PeerEvent from receive(). Retrying, with backoff, is the caller's policy.
    virtual void connect(const std::string& host, std::uint16_t port) = 0;

    virtual void send(const AlertBatch& batch) = 0;
    virtual void send(const MetadataBatch& batch) = 0;
    virtual void send(const BatchAck& ack) = 0;
    virtual void send(const Heartbeat& heartbeat) = 0;

    // Everything that arrived, waiting up to TIMEOUT for the first item.
    virtual std::vector<Inbound> receive(std::chrono::milliseconds timeout) = 0;

    // Peers connected now.
    virtual std::size_t peer_count() const = 0;

    // True once a connected peer has subscribed to what this side sends (alerts for an
    // agent): sending earlier would be dropped by the pub/sub layer.
    virtual bool ready_to_send() const = 0;
};

// kInvalidArgument when OPTIONS name no certificate and do not say insecure, or name a
// certificate without its key or CA.
Result<std::unique_ptr<Transport>> make_broker_transport(const TransportOptions& options);

}  // namespace senningen::common
