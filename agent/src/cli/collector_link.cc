#include "collector_link.h"

#include <unistd.h>

#include <algorithm>
#include <iterator>
#include <string>

#include "cli/enroll_command.h"
#include "senningen/agent/files/option_values.h"
#include "senningen/common/identity.h"

namespace senningen::agent::cli {

using common::ErrorCode;
using common::make_error;

const char* const kCollectorLinkUsage =
    "  --collector HOST:PORT    send alerts to this collector over Broker (default: the\n"
    "                           enrolled collector with --identity)\n"
    "  --collector-timeout SEC  give up waiting for the collector's acknowledgements (default 30)\n"
    "  --agent-id ID            this agent's id (default: the identity's agent, else the host\n"
    "                           name); a certificate must name it\n"
    "  --identity DIR           the identity 'senningen-agent enroll' installed: certificate,\n"
    "                           key, CA, agent id and collector address; batches are signed\n"
    "  --tls-cert FILE --tls-key FILE --tls-ca FILE\n"
    "                           the same certificates, file by file\n"
    "  --insecure               no certificates: unauthenticated link (tests and labs only)\n"
    "  --queue PATH             the durable queue (SQLite)\n"
    "  --queue-max N            queue capacity in records (default 1000000)\n"
    "  --queue-full POLICY      block (default: the producer waits) or drop-oldest\n"
    "  --queue-sync MODE        full (default: fsync every commit) or normal\n"
    "  --commit-interval MS     how often queued alerts are committed to disk (default 100)\n"
    "  --heartbeat SEC          heartbeat interval (default 30)\n";

bool parse_collector_flag(int argc, char** argv, int& i, CollectorLink& o,
                          std::vector<std::string>& problems) {
    const std::string arg = argv[i];
    if (arg == "--insecure") {
        o.insecure = true;
        return true;
    }
    static const char* const kValueFlags[] = {
        "--collector", "--collector-timeout", "--agent-id",   "--identity",
        "--tls-cert",  "--tls-key",           "--tls-ca",     "--queue",
        "--queue-max", "--queue-full",        "--queue-sync", "--commit-interval",
        "--heartbeat"};
    if (std::find(std::begin(kValueFlags), std::end(kValueFlags), arg) == std::end(kValueFlags)) {
        return false;
    }
    if (i + 1 >= argc) {
        problems.push_back(arg + " needs a value");
        return true;
    }
    const std::string v = argv[++i];
    long long n = 0;
    if (arg == "--collector") {
        o.collector = v;
    } else if (arg == "--collector-timeout") {
        if (files::parse_int(v, 1, 86400, n)) {
            o.collector_timeout_s = static_cast<int>(n);
        } else {
            problems.push_back("--collector-timeout '" + v + "' is not 1..86400 seconds");
        }
    } else if (arg == "--agent-id") {
        o.agent_id = v;
    } else if (arg == "--identity") {
        o.identity = v;
    } else if (arg == "--tls-cert") {
        o.tls.certificate = v;
    } else if (arg == "--tls-key") {
        o.tls.key = v;
    } else if (arg == "--tls-ca") {
        o.tls.ca_file = v;
    } else if (arg == "--queue") {
        o.queue = v;
    } else if (arg == "--queue-max") {
        if (!files::parse_int(v, 1, 1LL << 32, o.queue_max)) {
            problems.push_back("--queue-max '" + v + "' is not 1..4294967296 records");
        }
    } else if (arg == "--queue-full") {
        if (v == "block") {
            o.queue_full = QueueFullPolicy::kBlock;
        } else if (v == "drop-oldest") {
            o.queue_full = QueueFullPolicy::kDropOldest;
        } else {
            problems.push_back("--queue-full '" + v + "' is not block or drop-oldest");
        }
    } else if (arg == "--queue-sync") {
        if (v == "full") {
            o.queue_sync = QueueSync::kFull;
        } else if (v == "normal") {
            o.queue_sync = QueueSync::kNormal;
        } else {
            problems.push_back("--queue-sync '" + v + "' is not full or normal");
        }
    } else if (arg == "--commit-interval") {
        if (!files::parse_int(v, 1, 60000, o.commit_interval_ms)) {
            problems.push_back("--commit-interval '" + v + "' is not 1..60000 ms");
        }
    } else if (arg == "--heartbeat") {
        if (!files::parse_int(v, 1, 86400, o.heartbeat_s)) {
            problems.push_back("--heartbeat '" + v + "' is not 1..86400 seconds");
        }
    }
    return true;
}

// The identity brings the collector's address, the certificates and the agent id; without one
// a collector needs certificates or an explicit --insecure.
void resolve_collector_link(CollectorLink& o, QueueNeed queue,
                            std::vector<std::string>& problems) {
    if (!o.identity.empty()) {
        auto id = load_identity(o.identity);
        if (!id) {
            problems.push_back("--identity: " + id.error().message);
            return;
        }
        if (!o.collector) o.collector = id->collector;
        if (o.tls.enabled()) problems.push_back("--identity and --tls-cert exclude each other");
        o.tls = {id->certificate(), id->key(), id->ca()};
        if (!o.agent_id.empty() && o.agent_id != id->agent) {
            problems.push_back("--agent-id '" + o.agent_id + "' is not the enrolled agent '" +
                               id->agent + "' (the id comes from the certificate)");
        }
        o.agent_id = id->agent;
        if (queue == QueueNeed::kDurable && o.queue.empty()) o.queue = id->queue();
    }
    if (o.tls.enabled() && (o.tls.key.empty() || o.tls.ca_file.empty())) {
        problems.push_back("--tls-cert needs --tls-key and --tls-ca too");
    }
    if (o.collector) {
        if (!files::parse_host_port(*o.collector)) {
            problems.push_back("--collector '" + *o.collector + "' is not HOST:PORT");
        }
        if (!o.tls.enabled() && !o.insecure) {
            problems.push_back(
                "--collector needs an identity (--identity DIR after 'senningen-agent enroll "
                "BUNDLE'), or --tls-cert/--tls-key/--tls-ca, or --insecure");
        }
        if (o.insecure && o.tls.enabled()) {
            problems.push_back("--insecure and certificates exclude each other");
        }
        if (queue == QueueNeed::kDurable && o.queue.empty()) {
            problems.push_back("--collector needs --queue PATH (the durable queue; --identity "
                               "puts it in the identity directory)");
        }
    }
    if (o.agent_id.empty()) {
        char host[256] = {};
        o.agent_id = gethostname(host, sizeof host - 1) == 0 && host[0] ? host : "agent";
    }
}

common::Result<std::unique_ptr<Forwarder>> make_forwarder(const CollectorLink& link) {
    if (!link.collector) {
        return make_error(ErrorCode::kInvalidArgument, "no collector to forward alerts to");
    }
    const std::string& collector = *link.collector;
    const auto colon = collector.rfind(':');
    ForwarderOptions fo;
    fo.host = collector.substr(0, colon);
    fo.port = static_cast<std::uint16_t>(std::stoi(collector.substr(colon + 1)));
    fo.queue_path = link.queue;
    fo.max_pending_alerts = static_cast<std::size_t>(link.queue_max);
    fo.queue_policy = link.queue_full;
    fo.queue_sync = link.queue_sync;
    fo.commit_interval = std::chrono::milliseconds(link.commit_interval_ms);
    fo.heartbeat_interval = std::chrono::seconds(link.heartbeat_s);
    common::TransportOptions to;
    to.role = common::TransportRole::kAgent;
    to.agent_id = link.agent_id;
    to.tls = link.tls;
    to.insecure = link.insecure;
    to.threads = 2;
    std::shared_ptr<const common::Signer> signer;
    if (link.tls.enabled()) {
        auto loaded = common::Signer::load(link.tls.certificate, link.tls.key);
        if (!loaded) return loaded.error();
        if ((*loaded)->common_name() != link.agent_id) {
            return make_error(ErrorCode::kInvalidArgument,
                              "certificate " + link.tls.certificate + " names agent '" +
                                  (*loaded)->common_name() + "', not '" + link.agent_id +
                                  "' (the id comes from the certificate)");
        }
        signer = std::move(loaded).value();
    }
    auto transport = common::make_broker_transport(to);
    if (!transport) {
        return make_error(transport.error().code,
                          "collector " + collector + ": " + transport.error().message);
    }
    return std::make_unique<Forwarder>(std::move(transport).value(), fo, link.agent_id, signer);
}

}  // namespace senningen::agent::cli
