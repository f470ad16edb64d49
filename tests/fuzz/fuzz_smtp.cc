// libFuzzer target: the "smtp" analyzer over TCP (see fuzz_analyzer.h for the input script).
#include "fuzz_analyzer.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return senningen::fuzz::run_analyzer("smtp", senningen::agent::kIpProtoTcp, data, size);
}
