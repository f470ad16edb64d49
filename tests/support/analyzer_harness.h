// Drives one protocol analyzer without the engine: a recording AnalyzerHost (records,
// observations, weirds, files with their bytes) and a flow to hand it. Analyzers are found in
// the explicit registry by name and transport, as the engine finds them.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "senningen/agent/analyzers/analyzer.h"

namespace senningen::test {

struct Observation {
    agent::IntelType type;
    std::string value;
    std::string where;
};

struct SeenFile {
    std::string source;
    bool is_orig = false;
    std::string filename;
    std::string mime_type;
    std::string description;
    std::string data;
    std::uint64_t gap_bytes = 0;
    bool ended = false;
};

class AnalyzerRecorder final : public agent::AnalyzerHost {
public:
    void record(std::string_view log, const agent::RecordFields& fields) override {
        records.emplace_back(std::string(log), std::string(fields.json()));
    }
    void observe(agent::IntelType type, std::string_view value, std::string_view where) override {
        observations.push_back({type, std::string(value), std::string(where)});
    }
    void event(const agent::ProtocolEvent& /*event*/) override {}
    void weird(std::string_view name, std::string_view /*detail*/) override {
        weirds.emplace_back(name);
    }
    std::uint64_t file_begin(const agent::FileStart& start) override {
        SeenFile f;
        f.source = std::string(start.source);
        f.is_orig = start.is_orig;
        f.filename = std::string(start.filename);
        f.mime_type = std::string(start.mime_type);
        f.description = std::string(start.description);
        files.push_back(std::move(f));
        return files.size();
    }
    void file_data(std::uint64_t file, std::span<const std::uint8_t> bytes) override {
        files.at(file - 1).data.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    }
    void file_gap(std::uint64_t file, std::uint64_t bytes) override {
        files.at(file - 1).gap_bytes += bytes;
    }
    std::string file_end(std::uint64_t file) override {
        files.at(file - 1).ended = true;
        return "F" + std::to_string(file);
    }

    bool saw(std::string_view where, std::string_view value) const {
        for (const auto& o : observations) {
            if (o.where == where && o.value == value) return true;
        }
        return false;
    }
    std::vector<std::string> records_of(std::string_view log) const {
        std::vector<std::string> out;
        for (const auto& [name, json] : records) {
            if (name == log) out.push_back(json);
        }
        return out;
    }

    std::vector<std::pair<std::string, std::string>> records;  // (log, JSON)
    std::vector<Observation> observations;
    std::vector<std::string> weirds;
    std::vector<SeenFile> files;
};

inline agent::Flow make_flow(std::uint8_t ip_proto, std::uint16_t server_port) {
    agent::Flow flow;
    flow.id = 42;
    flow.ip_proto = ip_proto;
    flow.orig.addr.family = 4;
    flow.orig.addr.bytes = {192, 0, 2, 1};
    flow.orig.port = 50000;
    flow.resp.addr.family = 4;
    flow.resp.addr.bytes = {192, 0, 2, 2};
    flow.resp.port = server_port;
    return flow;
}

inline const agent::AnalyzerSpec* find_spec(std::string_view name, std::uint8_t ip_proto) {
    for (const auto& spec : agent::analyzer_registry()) {
        if (spec.name == name && spec.ip_proto == ip_proto) return &spec;
    }
    return nullptr;
}

// One analyzer over one flow; feed() hands it bytes of a direction, in pieces of at most
// CHUNK bytes (so that every split point is exercised when CHUNK is 1).
class AnalyzerRun {
public:
    AnalyzerRun(std::string_view name, std::uint8_t ip_proto, std::uint16_t server_port)
        : flow_(make_flow(ip_proto, server_port)) {
        const auto* spec = find_spec(name, ip_proto);
        if (spec != nullptr) analyzer_ = spec->create();
    }
    bool ok() const { return analyzer_ != nullptr; }
    void feed(int direction, std::string_view bytes, std::size_t chunk = ~std::size_t{0}) {
        const auto* p = reinterpret_cast<const std::uint8_t*>(bytes.data());
        for (std::size_t off = 0; off < bytes.size(); off += chunk) {
            const std::size_t n = std::min(chunk, bytes.size() - off);
            analyzer_->data(agent::AnalyzerContext{flow_, direction, 0, host}, {p + off, n});
        }
    }
    void end() { analyzer_->end(agent::AnalyzerContext{flow_, 0, 0, host}); }
    void gap(int direction, std::uint64_t bytes) {
        analyzer_->gap(agent::AnalyzerContext{flow_, direction, 0, host}, bytes);
    }

    AnalyzerRecorder host;

private:
    agent::Flow flow_;
    std::unique_ptr<agent::Analyzer> analyzer_;
};

}  // namespace senningen::test
