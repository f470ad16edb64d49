// A compact binary form of an Alert for the agent's on-disk queue, where the JSON codec costs
// more than the rest of the delivery path. Not a wire format: it never leaves the host, and a
// record carries a format byte so that a later build can still read an older queue.
//
//   byte 0: format (1); then every field of the Alert in declaration order: strings as a
//   4-byte little-endian length and the bytes, numbers as 8 bytes little-endian, each optional
//   context as a presence byte (0/1) and its fields, each list as a 4-byte count and items.
#pragma once

#include <string>
#include <string_view>

#include "senningen/common/alert.h"
#include "senningen/common/result.h"

namespace senningen::common {

inline constexpr unsigned char kRecordFormat = 1;

std::string encode_alert_record(const Alert& alert);

// kTruncated / kParse naming the field where the record stops making sense, kUnsupported for
// another format, or the model's own error when the decoded alert is not valid.
Result<Alert> decode_alert_record(std::string_view record);

}  // namespace senningen::common
