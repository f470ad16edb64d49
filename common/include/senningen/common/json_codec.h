// The one JSON encoding of an alert, in the style of Suricata's EVE:
//   {"timestamp": "...", "event_type": "alert", "src_ip": ..., "src_port": ..., "dest_ip": ...,
//    "dest_port": ..., "proto": ..., "app_proto": ..., "flow_id": ...,
//    "alert": {"id", "signature", "category", "severity", "source", "pack", "kind"},
//    "intel": {...}, "file": {...}, "matches": [...], "agent": {"id": ...}}
// The schema is docs/schema/alert.schema.json; tests validate against it.
#pragma once

#include <string>
#include <string_view>

#include <Poco/JSON/Object.h>

#include "senningen/common/alert.h"
#include "senningen/common/result.h"

namespace senningen::common {

Poco::JSON::Object::Ptr alert_to_json_object(const Alert& alert);
std::string alert_to_json(const Alert& alert);  // one line, no trailing newline

// Parses what alert_to_json wrote. A syntax error, a missing or mistyped field or a value out
// of range is an Error (kParse or kSchema) whose message names the field.
Result<Alert> alert_from_json(std::string_view text);
Result<Alert> alert_from_json_object(const Poco::JSON::Object& object);

// Matched bytes are shown as printable text where they are printable ASCII and as
// "|xx xx|" hex runs otherwise (Snort/Suricata content notation); the round trip is exact.
std::string encode_match_data(std::string_view bytes);
Result<std::string> decode_match_data(std::string_view text);

}  // namespace senningen::common
