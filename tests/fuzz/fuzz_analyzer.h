// The shared body of the per-protocol analyzer fuzz targets. The input is a script of
// segments: one header byte (top bit: direction, 0 originator / 1 responder; low 7 bits: the
// segment length) then that many bytes; a zero-length segment is a one-byte gap. The analyzer
// named NAME gets every segment, then the end of the flow. Whatever it reports goes to a host
// that checks the contract (a file handle it was given, bytes only for open files).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <set>
#include <span>
#include <string_view>

#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include "senningen/agent/analyzers/analyzer.h"

namespace senningen::fuzz {

class CheckingHost final : public agent::AnalyzerHost {
public:
    // A record is one well-formed JSON object (every nested array and object ended).
    void record(std::string_view log, const agent::RecordFields& fields) override {
        if (log.empty()) std::abort();
        const std::string_view json = fields.json();
        rapidjson::MemoryStream in(json.data(), json.size());
        rapidjson::BaseReaderHandler<> handler;
        rapidjson::Reader reader;
        if (!reader.Parse(in, handler) || json.front() != '{') std::abort();
    }
    void observe(agent::IntelType, std::string_view, std::string_view where) override {
        if (where.find("::IN_") == std::string_view::npos) std::abort();
    }
    void event(const agent::ProtocolEvent&) override {}
    void weird(std::string_view name, std::string_view) override {
        if (name.empty()) std::abort();
    }
    std::uint64_t file_begin(const agent::FileStart&) override {
        open_.insert(++next_);
        return next_;
    }
    void file_data(std::uint64_t file, std::span<const std::uint8_t>) override {
        if (open_.count(file) == 0) std::abort();
    }
    void file_gap(std::uint64_t file, std::uint64_t) override {
        if (open_.count(file) == 0) std::abort();
    }
    std::string file_end(std::uint64_t file) override {
        if (open_.erase(file) == 0) std::abort();  // ended twice, or never begun
        return "F";
    }

private:
    std::set<std::uint64_t> open_;
    std::uint64_t next_ = 0;
};

inline int run_analyzer(std::string_view name, std::uint8_t ip_proto, const std::uint8_t* data,
                        std::size_t size) {
    const agent::AnalyzerSpec* spec = nullptr;
    for (const auto& s : agent::analyzer_registry()) {
        if (s.name == name && s.ip_proto == ip_proto) spec = &s;
    }
    if (spec == nullptr) std::abort();
    agent::Flow flow;
    flow.id = 1;
    flow.ip_proto = ip_proto;
    flow.resp.port = 80;
    CheckingHost host;
    std::unique_ptr<agent::Analyzer> analyzer = spec->create();
    std::size_t pos = 0;
    while (pos < size) {
        const int direction = data[pos] >> 7;
        const std::size_t len = data[pos] & 0x7f;
        ++pos;
        const agent::AnalyzerContext ctx{flow, direction, 0, host};
        if (len == 0) {
            analyzer->gap(ctx, 1);
            continue;
        }
        const std::size_t n = len < size - pos ? len : size - pos;
        analyzer->data(ctx, {data + pos, n});
        pos += n;
    }
    analyzer->end(agent::AnalyzerContext{flow, 0, 0, host});
    return 0;
}

}  // namespace senningen::fuzz
