#include "senningen/agent/analyzers/record_fields.h"

#include <charconv>
#include <cmath>
#include <cstring>

namespace senningen::agent {

RecordFields::RecordFields()
    : pool_(arena_, sizeof arena_, kOverflowChunk), writer_(text_out_, &pool_, kLevelDepth) {
    writer_.StartObject();
}

void RecordFields::Text::grow() {
    const auto size = static_cast<std::size_t>(end_ - begin_);
    const std::size_t capacity = 2 * static_cast<std::size_t>(limit_ - begin_);
    auto block = std::make_unique_for_overwrite<char[]>(capacity);
    std::memcpy(block.get(), begin_, size);
    heap_ = std::move(block);
    begin_ = heap_.get();
    end_ = begin_ + size;
    limit_ = begin_ + capacity;
}

void RecordFields::set(std::string_view key, const std::vector<std::string>& values) {
    begin_array(key);
    for (const auto& v : values) text_(v);
    end_array();
}

void RecordFields::set_number_text(std::string_view key, std::string_view number) {
    key_(key);
    writer_.RawValue(number.data(), number.size(), rapidjson::kNumberType);
}

// Not RapidJSON's Double(): it writes 0 as "0.0" and, being Grisu2, not always the shortest
// digits (0.1 + 0.2 as 0.30000000000000007), where Poco wrote "0" and 0.30000000000000004.
// std::to_chars gives the shortest digits that read back as VALUE; the notation is Poco's
// (double-conversion's shortest mode with decimal exponents -15 to 14 written out).
void RecordFields::add(double value) {
    if (!std::isfinite(value)) {
        writer_.Null();  // JSON has no NaN or infinity
        return;
    }
    if (value == 0) value = 0;  // no "-0"
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof buf, value, std::chars_format::scientific);
    const std::string_view sci(buf, static_cast<std::size_t>(r.ptr - buf));
    const auto e = sci.find('e');
    int exponent = 0;
    std::from_chars(sci.data() + e + (sci[e + 1] == '+' ? 2 : 1), sci.data() + sci.size(),
                    exponent);
    if (value != 0 && (exponent < -15 || exponent >= 15)) {
        writer_.RawValue(sci.data(), sci.size(), rapidjson::kNumberType);
        return;
    }
    r = std::to_chars(buf, buf + sizeof buf, value, std::chars_format::fixed);
    writer_.RawValue(buf, static_cast<std::size_t>(r.ptr - buf), rapidjson::kNumberType);
}

std::string_view RecordFields::json() const {
    if (!closed_) {
        writer_.EndObject();
        closed_ = true;
    }
    return text_out_.view();
}

}  // namespace senningen::agent
