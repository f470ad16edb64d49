// Fuzzes the collector's reader of metadata records (collector/metadata.h): what agents send
// in metadata_batch messages is parsed and checked there. It must never crash, and a record it
// accepts must come out with its type, a digest and bounded, distinct values.
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>
#include <variant>

#include "senningen/collector/metadata.h"

namespace {

void check(bool condition) {
    if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace senningen::collector;
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    auto parsed = parse_metadata_record(text);
    if (const auto* bad = std::get_if<MetadataParseError>(&parsed)) {
        check(!bad->message.empty());
        check(static_cast<std::size_t>(bad->problem) < kMetadataProblemCount);
        return 0;
    }
    const ParsedMetadata& m = std::get<ParsedMetadata>(parsed);
    check(!m.type.empty() && m.type.size() <= 32);
    check(m.digest.size() == 64);
    check(m.json == text);
    check(m.values.size() <= kMaxMetadataValues);
    const std::set<std::string> distinct(m.values.begin(), m.values.end());
    check(distinct.size() == m.values.size());
    for (const std::string& v : m.values) check(!v.empty() && v.size() <= kMaxMetadataValueBytes);
    return 0;
}
