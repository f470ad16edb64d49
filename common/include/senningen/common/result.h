// Result<T>: the return type of every fallible function in Senningen. It carries either a
// value or an Error whose code comes from a closed enum with pinned numbers (so codes can be
// logged, counted and documented) and whose message names the input and the problem.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace senningen::common {

// Pinned numbers: never renumber, only append.
enum class ErrorCode : std::uint8_t {
    kNone = 0,
    kInvalidArgument = 1,  // a caller passed something unusable
    kNotFound = 2,         // a file, record or key does not exist
    kIo = 3,               // reading or writing failed
    kParse = 4,            // input is syntactically broken
    kSchema = 5,           // input parses but violates the data model
    kTruncated = 6,        // input ends early
    kUnsupported = 7,      // well-formed but not something we handle (version, link type)
    kCompile = 8,          // a rule did not compile
    kUnavailable = 9,      // a peer or service cannot be reached
    kTimeout = 10,         // an operation ran out of time
    kDatabase = 11,        // the store refused an operation
    kInternal = 12,        // a broken invariant; a bug
    kDenied = 13,          // credentials were refused: unknown, expired, revoked, forged
};

std::string_view to_string(ErrorCode code);

struct Error {
    ErrorCode code = ErrorCode::kInternal;
    std::string message;
};

template <typename T>
class [[nodiscard]] Result {
public:
    Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
    Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

    bool ok() const { return v_.index() == 0; }
    explicit operator bool() const { return ok(); }

    T& value() & { return std::get<0>(v_); }
    const T& value() const& { return std::get<0>(v_); }
    T&& value() && { return std::get<0>(std::move(v_)); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }

    const Error& error() const { return std::get<1>(v_); }

private:
    std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
public:
    Result() = default;
    Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT

    bool ok() const { return ok_; }
    explicit operator bool() const { return ok_; }
    const Error& error() const { return error_; }

private:
    Error error_;
    bool ok_ = true;
};

inline Error make_error(ErrorCode code, std::string message) {
    return Error{code, std::move(message)};
}

}  // namespace senningen::common
