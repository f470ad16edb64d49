// libFuzzer target: the enip analyzer (see fuzz_analyzer.h).
#include "fuzz_analyzer.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return senningen::fuzz::run_analyzer("enip", senningen::agent::kIpProtoTcp, data, size);
}
