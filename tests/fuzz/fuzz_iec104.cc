// libFuzzer target: the iec104 analyzer (see fuzz_analyzer.h).
#include "fuzz_analyzer.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return senningen::fuzz::run_analyzer("iec104", senningen::agent::kIpProtoTcp, data, size);
}
