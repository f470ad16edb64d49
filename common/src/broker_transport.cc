// Transport on Zeek Broker 1.4. Broker's pub/sub is fire-and-forget and buffers without limit
// while a peer is away, so reliability is the caller's job (batches are acknowledged by the
// collector and resent by the agent until they are); this class only moves messages.
#include <poll.h>

#include <broker/broker.hh>
#include <broker/endpoint.hh>
#include <broker/status_subscriber.hh>
#include <broker/subscriber.hh>

#include "senningen/common/broker_codec.h"
#include "senningen/common/log.h"
#include "senningen/common/transport.h"

namespace senningen::common {

namespace {

broker::configuration make_config(const TransportOptions& options) {
    broker::broker_options opts;
    opts.ignore_broker_conf = true;  // never pick up a stray broker.conf from the cwd
    opts.forward = false;            // a collector must not relay one agent's data to another
    broker::configuration cfg{opts};
    // CAF's default work-stealing workers poll for work before they block, sleeping 50 us
    // between polls: each worker then makes thousands of syscalls a second under a steady
    // trickle of messages, which on a virtual machine costs more than the messages (measured:
    // most of the collector's CPU, and with twenty agents on one host most of the host's).
    // The sharing policy's workers wait on a condition variable instead, as Zeek's do.
    cfg.set("scheduler.policy", caf::atom("sharing"));
    if (options.threads > 0) cfg.set("scheduler.max-threads", options.threads);
    if (options.tls.enabled()) {
        cfg.openssl_certificate = options.tls.certificate;
        cfg.openssl_key = options.tls.key;
        cfg.openssl_cafile = options.tls.ca_file;
    }
    return cfg;
}

std::vector<broker::topic> subscriptions(const TransportOptions& options) {
    if (options.role == TransportRole::kCollector) {
        return {broker::topic{kTopicAlerts}, broker::topic{kTopicHeartbeats},
                broker::topic{kTopicMetadata}};
    }
    return {broker::topic{std::string(kTopicAcksPrefix) + options.agent_id}};
}

std::string peer_text(const broker::status& s) {
    if (const auto* info = s.context<broker::endpoint_info>(); info && info->network) {
        return info->network->address + ":" + std::to_string(info->network->port);
    }
    return "";
}

class BrokerTransport final : public Transport {
public:
    explicit BrokerTransport(const TransportOptions& options)
        : options_(options),
          endpoint_(make_config(options)),
          status_(endpoint_.make_status_subscriber(true)),
          messages_(endpoint_.make_subscriber(subscriptions(options), 1024)) {
        if (!options.tls.enabled()) {
            log_warn("transport",
                     "INSECURE MODE: no certificates, the Broker link is encrypted but NOT "
                     "authenticated and agent ids are taken on trust; never run this way in "
                     "production (enroll the agent instead)");
        }
    }

    Result<std::uint16_t> listen(const std::string& host, std::uint16_t port) override {
        const std::uint16_t bound = endpoint_.listen(host, port);
        if (bound == 0) {
            return make_error(ErrorCode::kUnavailable,
                              "cannot listen on " + host + ":" + std::to_string(port) +
                                  " (address in use or not local)");
        }
        return bound;
    }

    void connect(const std::string& host, std::uint16_t port) override {
        // retry 0: one attempt; the caller owns the backoff policy. Never the blocking peer():
        // it hangs forever when a TLS handshake fails.
        endpoint_.peer_nosync(host, port, broker::timeout::seconds(0));
    }

    void send(const AlertBatch& batch) override {
        endpoint_.publish(broker::topic{kTopicAlerts}, to_broker(batch));
    }

    void send(const MetadataBatch& batch) override {
        endpoint_.publish(broker::topic{kTopicMetadata}, to_broker(batch));
    }

    void send(const BatchAck& ack) override {
        endpoint_.publish(broker::topic{std::string(kTopicAcksPrefix) + ack.agent_id},
                          to_broker(ack));
    }

    void send(const Heartbeat& heartbeat) override {
        endpoint_.publish(broker::topic{kTopicHeartbeats}, to_broker(heartbeat));
    }

    std::vector<Inbound> receive(std::chrono::milliseconds timeout) override {
        std::vector<Inbound> out;
        drain(out);
        if (!out.empty() || timeout.count() <= 0) return out;
        pollfd fds[2] = {{status_.fd(), POLLIN, 0}, {messages_.fd(), POLLIN, 0}};
        ::poll(fds, 2, static_cast<int>(timeout.count()));
        drain(out);
        return out;
    }

    std::size_t peer_count() const override {
        std::size_t n = 0;
        for (const auto& p : endpoint_.peers()) {
            if (p.status == broker::peer_status::peered) ++n;
        }
        return n;
    }

    bool ready_to_send() const override {
        const std::string wanted = options_.role == TransportRole::kAgent
                                       ? std::string(kTopicAlerts)
                                       : std::string(kTopicAcksPrefix);
        for (const auto& t : endpoint_.peer_subscriptions()) {
            const std::string& prefix = t.string();
            if (wanted.compare(0, prefix.size(), prefix) == 0 || prefix.rfind(wanted, 0) == 0) {
                return true;
            }
        }
        return false;
    }

private:
    void drain(std::vector<Inbound>& out) {
        for (auto& item : status_.poll()) {
            if (const auto* s = caf::get_if<broker::status>(&item)) {
                PeerEvent ev;
                ev.peer = peer_text(*s);
                ev.message = s->message() ? *s->message() : to_string(*s);
                switch (s->code()) {
                    case broker::sc::peer_added: ev.state = PeerState::kConnected; break;
                    case broker::sc::peer_removed:
                    case broker::sc::peer_lost: ev.state = PeerState::kDisconnected; break;
                    default: continue;  // discovery chatter
                }
                out.emplace_back(std::move(ev));
            } else if (const auto* e = caf::get_if<broker::error>(&item)) {
                PeerEvent ev;
                ev.state = PeerState::kUnreachable;
                ev.message = caf::to_string(*e);
                out.emplace_back(std::move(ev));
            }
        }
        for (auto& msg : messages_.poll()) {
            const std::string topic = broker::get_topic(msg).string();
            const broker::data& data = broker::get_data(msg);
            if (options_.role == TransportRole::kCollector && topic == kTopicHeartbeats) {
                auto hb = heartbeat_from_broker(data);
                if (hb) {
                    out.emplace_back(std::move(hb).value());
                } else {
                    out.emplace_back(DecodeFailure{topic, hb.error().message});
                }
            } else if (options_.role == TransportRole::kCollector && topic == kTopicMetadata) {
                auto batch = metadata_batch_from_broker(data);
                if (batch) {
                    out.emplace_back(std::move(batch).value());
                } else {
                    out.emplace_back(DecodeFailure{topic, batch.error().message});
                }
            } else if (options_.role == TransportRole::kCollector) {
                auto batch = batch_from_broker(data);
                if (batch) {
                    out.emplace_back(std::move(batch).value());
                } else {
                    out.emplace_back(DecodeFailure{topic, batch.error().message});
                }
            } else {
                auto ack = ack_from_broker(data);
                if (ack) {
                    out.emplace_back(std::move(ack).value());
                } else {
                    out.emplace_back(DecodeFailure{topic, ack.error().message});
                }
            }
        }
    }

    TransportOptions options_;
    broker::endpoint endpoint_;
    broker::status_subscriber status_;
    broker::subscriber messages_;
};

}  // namespace

Result<std::unique_ptr<Transport>> make_broker_transport(const TransportOptions& options) {
    const TlsOptions& tls = options.tls;
    if (!tls.enabled() && !options.insecure) {
        return make_error(ErrorCode::kInvalidArgument,
                          "no certificate configured for the Broker link; enroll (certificate, "
                          "key and CA) or set insecure explicitly");
    }
    if (tls.enabled() && (tls.key.empty() || tls.ca_file.empty())) {
        return make_error(ErrorCode::kInvalidArgument,
                          "certificate '" + tls.certificate + "' needs its key and the CA too");
    }
    return std::unique_ptr<Transport>(std::make_unique<BrokerTransport>(options));
}

}  // namespace senningen::common
