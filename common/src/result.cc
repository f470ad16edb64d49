#include "senningen/common/result.h"

namespace senningen::common {

std::string_view to_string(ErrorCode code) {
    switch (code) {
        case ErrorCode::kNone: return "none";
        case ErrorCode::kInvalidArgument: return "invalid_argument";
        case ErrorCode::kNotFound: return "not_found";
        case ErrorCode::kIo: return "io";
        case ErrorCode::kParse: return "parse";
        case ErrorCode::kSchema: return "schema";
        case ErrorCode::kTruncated: return "truncated";
        case ErrorCode::kUnsupported: return "unsupported";
        case ErrorCode::kCompile: return "compile";
        case ErrorCode::kUnavailable: return "unavailable";
        case ErrorCode::kDenied: return "denied";
        case ErrorCode::kTimeout: return "timeout";
        case ErrorCode::kDatabase: return "database";
        case ErrorCode::kInternal: return "internal";
    }
    return "unknown";
}

}  // namespace senningen::common
