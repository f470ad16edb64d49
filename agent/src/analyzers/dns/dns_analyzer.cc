#include "analyzers/dns/dns_analyzer.h"


#include <vector>

#include "senningen/agent/decode/dns.h"

namespace senningen::agent {

namespace {

constexpr std::size_t kMaxTcpMessage = 65535;

// One DNS message, however it was framed.
void analyze_message(const AnalyzerContext& ctx, std::span<const std::uint8_t> bytes) {
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
    if (msg.answer_status == DnsParseStatus::kTruncated) {
        ctx.host.weird("dns_truncated_answer", "DNS answer section is cut short");
    } else if (msg.answer_status == DnsParseStatus::kMalformed) {
        ctx.host.weird("dns_malformed_answer", "DNS answer record does not parse");
    }
    RecordFields fields;
    fields.set("type", msg.is_response ? "answer" : "query");
    fields.set("id", static_cast<int>(msg.id));
    fields.set("opcode", static_cast<int>(msg.opcode));
    if (msg.is_response) {
        fields.set("rcode", static_cast<int>(msg.rcode));
        fields.set("rcode_name", dns_rcode_name(msg.rcode));
    }
    fields.set("aa", msg.aa);
    fields.set("tc", msg.tc);
    fields.set("rd", msg.rd);
    fields.set("ra", msg.ra);
    fields.begin_array("queries");
    for (const DnsQuestion& q : msg.questions) {
        fields.begin_object();
        fields.set("rrname", q.name);
        fields.set("rrtype", static_cast<int>(q.qtype));
        const std::string_view type_name = dns_type_name(q.qtype);
        if (!type_name.empty()) fields.set("rrtype_name", type_name);
        fields.end_object();
        if (!msg.is_response) ctx.host.observe(IntelType::kDomain, q.name, "DNS::IN_REQUEST");
    }
    fields.end_array();
    if (msg.is_response) {
        fields.begin_array("answers");
        for (const DnsAnswer& a : msg.answers) {
            fields.begin_object();
            fields.set("rrname", a.name);
            fields.set("rrtype", static_cast<int>(a.type));
            const std::string_view type_name = dns_type_name(a.type);
            if (!type_name.empty()) fields.set("rrtype_name", type_name);
            fields.set("ttl", static_cast<std::uint64_t>(a.ttl));
            if (!a.data.empty()) fields.set("rdata", a.data);
            fields.end_object();
            switch (a.type) {
                case 1:
                case 28: ctx.host.observe(IntelType::kAddr, a.data, "DNS::IN_RESPONSE"); break;
                case 2:
                case 5:
                case 12:
                case 15:
                case 33:
                    ctx.host.observe(IntelType::kDomain, a.data, "DNS::IN_RESPONSE");
                    break;
                default: break;
            }
        }
        fields.end_array();
    }
    ctx.host.record("dns", fields);
}

class DnsAnalyzer final : public Analyzer {
public:
    void data(const AnalyzerContext& ctx, std::span<const std::uint8_t> bytes) override {
        analyze_message(ctx, bytes);
    }
};

// TCP: messages behind a two-byte length, split across segments anyhow. At most one message
// (64 KiB) is buffered per direction.
class DnsTcpAnalyzer final : public Analyzer {
public:
    void data(const AnalyzerContext& ctx, std::span<const std::uint8_t> bytes) override {
        auto& dir = dirs_[ctx.direction & 1];
        if (dir.broken) return;
        while (!bytes.empty()) {
            if (dir.need == 0) {
                // Reading the length prefix (it may be split too).
                dir.prefix[dir.prefix_len++] = bytes[0];
                bytes = bytes.subspan(1);
                if (dir.prefix_len == 2) {
                    dir.need = (std::size_t{dir.prefix[0]} << 8) | dir.prefix[1];
                    dir.prefix_len = 0;
                    dir.buffer.clear();
                    if (dir.need < 12) {
                        ctx.host.weird("dns_tcp_bad_length",
                                       "DNS over TCP length prefix below the 12-byte header");
                        dir.broken = true;
                        return;
                    }
                }
                continue;
            }
            const std::size_t take = std::min(dir.need - dir.buffer.size(), bytes.size());
            if (dir.buffer.empty() && take == dir.need) {
                analyze_message(ctx, bytes.first(take));  // whole message in place: no copy
                dir.need = 0;
                bytes = bytes.subspan(take);
                continue;
            }
            dir.buffer.insert(dir.buffer.end(), bytes.begin(),
                              bytes.begin() + static_cast<std::ptrdiff_t>(take));
            bytes = bytes.subspan(take);
            if (dir.buffer.size() == dir.need) {
                analyze_message(ctx, dir.buffer);
                dir.need = 0;
                dir.buffer.clear();
            }
        }
    }

    void gap(const AnalyzerContext& ctx, std::uint64_t /*bytes*/) override {
        // The framing is lost with the bytes; nothing after a hole can be trusted.
        dirs_[ctx.direction & 1].broken = true;
        ctx.host.weird("dns_tcp_gap", "hole in a DNS over TCP stream");
    }

    void end(const AnalyzerContext& ctx) override {
        for (const auto& dir : dirs_) {
            if (!dir.broken && (dir.need != 0 || dir.prefix_len != 0)) {
                ctx.host.weird("dns_tcp_truncated", "DNS over TCP stream ends inside a message");
            }
        }
    }

private:
    struct Direction {
        std::uint8_t prefix[2] = {0, 0};
        std::size_t prefix_len = 0;
        std::size_t need = 0;  // length of the message being read, 0 between messages
        std::vector<std::uint8_t> buffer;
        bool broken = false;
    };
    Direction dirs_[2];
};

}  // namespace

bool dns_detect_udp(std::span<const std::uint8_t> first, int /*direction*/,
                    std::uint16_t /*src_port*/, std::uint16_t /*dst_port*/) {
    return looks_like_dns(first);
}

bool dns_detect_tcp(std::span<const std::uint8_t> first, int /*direction*/,
                    std::uint16_t /*src_port*/, std::uint16_t /*dst_port*/) {
    if (first.size() < 2 + 12) return false;
    const std::size_t len = (std::size_t{first[0]} << 8) | first[1];
    if (len < 12 || len > kMaxTcpMessage) return false;
    // The first message may not be complete yet: judge what there is of it.
    const auto message = first.subspan(2, std::min(len, first.size() - 2));
    return message.size() == len && looks_like_dns(message);
}

std::unique_ptr<Analyzer> make_dns_analyzer() { return std::make_unique<DnsAnalyzer>(); }
std::unique_ptr<Analyzer> make_dns_tcp_analyzer() { return std::make_unique<DnsTcpAnalyzer>(); }

}  // namespace senningen::agent
