// Fuzzes the two alert decoders that read input from outside the process: the JSON codec
// (the API and the agent's output) and the Broker codec (what arrives from the network).
// Whatever they accept must be a valid alert that re-encodes to the same alert.
#include <broker/data.hh>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "senningen/common/broker_codec.h"
#include "senningen/common/json_codec.h"

namespace {

void check(bool condition) {
    if (!condition) std::abort();
}

// Builds a broker::data tree from bytes: a tiny stack machine so that the fuzzer can reach
// nested vectors of every type the codec reads.
broker::data build(const std::uint8_t*& p, const std::uint8_t* end, int depth) {
    if (p >= end) return broker::data{};
    const std::uint8_t op = *p++;
    auto take = [&](std::size_t n) {
        const std::size_t k = std::min<std::size_t>(n, static_cast<std::size_t>(end - p));
        std::string s(reinterpret_cast<const char*>(p), k);
        p += k;
        return s;
    };
    switch (op % 6) {
        case 0: return broker::data{};
        case 1: return broker::data{take(op / 6)};
        case 2: {
            std::uint64_t v = 0;
            for (char c : take(8)) v = (v << 8) | static_cast<std::uint8_t>(c);
            return broker::data{broker::count{v}};
        }
        case 3: {
            std::uint64_t v = 0;
            for (char c : take(8)) v = (v << 8) | static_cast<std::uint8_t>(c);
            return broker::data{broker::timestamp{std::chrono::nanoseconds{
                static_cast<std::int64_t>(v >> 2)}}};
        }
        case 4: return broker::data{std::string(36, 'a')};
        default: {
            broker::vector v;
            if (depth < 4) {
                const std::size_t n = op / 6 % 16;
                for (std::size_t i = 0; i < n && p < end; ++i) v.push_back(build(p, end, depth + 1));
            }
            return broker::data{std::move(v)};
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace senningen::common;
    if (size == 0) return 0;
    const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
    if (data[0] & 1) {
        auto alert = alert_from_json(text);
        if (alert) {
            check(validate(*alert).ok());
            auto again = alert_from_json(alert_to_json(*alert));
            check(again.ok() && *again == *alert);
        }
    } else {
        const std::uint8_t* p = data + 1;
        const broker::data d = build(p, data + size, 0);
        if (auto alert = alert_from_broker(d)) {
            check(validate(*alert).ok());
            auto again = alert_from_broker(to_broker(*alert));
            check(again.ok() && *again == *alert);
        }
        (void)batch_from_broker(d);
        (void)ack_from_broker(d);
    }
    return 0;
}
