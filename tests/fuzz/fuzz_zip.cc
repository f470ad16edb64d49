// libFuzzer target for the streaming ZIP reader (agent/src/files/zip_reader.cc), which reads
// archives carried by traffic. The first byte picks how the rest is cut into pieces (traffic
// hands an archive over in pieces of any size) and whether a hole is reported; small limits
// make the archive-bomb guards trip. Invariants abort, so the fuzzer reports them as crashes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "senningen/agent/files/zip_reader.h"

namespace {

using senningen::agent::ZipReader;

void check(bool condition) {
    if (!condition) std::abort();
}

struct Checker : ZipReader::Sink {
    bool open = false;
    std::uint64_t out = 0;
    std::size_t members = 0;
    void member_begin(const ZipReader::Member&) override {
        check(!open);
        open = true;
        ++members;
    }
    void member_data(std::span<const std::uint8_t> bytes) override {
        check(open && !bytes.empty());
        out += bytes.size();
    }
    void member_end(bool, std::uint64_t) override {
        check(open);
        open = false;
    }
    void problem(std::string_view weird, std::string_view detail) override {
        check(weird.starts_with("zip_") && !detail.empty());
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const std::uint8_t mode = data[0];
    std::span<const std::uint8_t> rest(data + 1, size - 1);
    const std::size_t step = std::size_t{1} + (mode & 0x3f);
    Checker sink;
    ZipReader reader(sink, {4, 1 << 16});
    std::size_t at = 0;
    while (at < rest.size()) {
        const std::size_t n = std::min(step, rest.size() - at);
        reader.feed(rest.subspan(at, n));
        at += n;
        if ((mode & 0x40) != 0 && at == n) reader.gap(100);  // a hole after the first piece
    }
    reader.finish();
    check(!sink.open);
    check(reader.stopped());
    check(sink.members <= 4 && sink.out <= (1 << 16));
    check(reader.members() == sink.members && reader.inflated() == sink.out);
    return 0;
}
