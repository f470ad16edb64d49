#include "analyzers/dns/dns_analyzer.h"

#include <Poco/JSON/Array.h>

#include "senningen/agent/decode/dns.h"

namespace senningen::agent {

namespace {

class DnsAnalyzer final : public Analyzer {
public:
    void data(const AnalyzerContext& ctx, std::span<const std::uint8_t> bytes) override {
        DnsMessage msg;
        switch (parse_dns(bytes, msg)) {
            case DnsParseStatus::kOk: break;
            case DnsParseStatus::kTruncated:
                ctx.host.weird("dns_truncated", "DNS message ends inside a header or name");
                return;
            case DnsParseStatus::kMalformed:
                ctx.host.weird("dns_malformed", "DNS message does not parse");
                return;
        }
        Poco::JSON::Object::Ptr fields = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
        fields->set("type", msg.is_response ? "answer" : "query");
        fields->set("id", static_cast<int>(msg.id));
        fields->set("opcode", static_cast<int>(msg.opcode));
        if (msg.is_response) fields->set("rcode", static_cast<int>(msg.rcode));
        Poco::JSON::Array::Ptr queries = new Poco::JSON::Array;
        for (const DnsQuestion& q : msg.questions) {
            Poco::JSON::Object::Ptr item = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
            item->set("rrname", q.name);
            item->set("rrtype", static_cast<int>(q.qtype));
            queries->add(item);
            if (!msg.is_response) ctx.host.observe(IntelType::kDomain, q.name, "DNS::IN_REQUEST");
        }
        fields->set("queries", queries);
        ctx.host.record("dns", fields);
    }
};

}  // namespace

bool dns_detect_udp(std::span<const std::uint8_t> first, int /*direction*/,
                    std::uint16_t /*src_port*/, std::uint16_t /*dst_port*/) {
    return looks_like_dns(first);
}

std::unique_ptr<Analyzer> make_dns_analyzer() { return std::make_unique<DnsAnalyzer>(); }

}  // namespace senningen::agent
