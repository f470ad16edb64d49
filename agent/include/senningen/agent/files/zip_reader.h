// A streaming reader of ZIP archives carried by traffic: each member (stored or deflated) comes
// out as its bytes arrive, from the local file headers alone, as Zeek's ZIP analyzer reads an
// archive in transit (the central directory, which could say more, comes last).
//
// What it does with what it cannot read, each told to the sink as a weird:
// - an encrypted member, or one compressed by another method than deflate, is skipped when its
//   header gives its size (zip_encrypted_member, zip_unsupported_method); otherwise reading
//   stops, as it does for a stored member of unknown size (zip_unknown_size);
// - bytes that are no header (zip_bad_header) and deflate data that does not decode
//   (zip_bad_deflate) stop reading;
// - limits against archive bombs: at most Limits::max_members members and
//   Limits::max_inflated bytes out of the whole archive; beyond either the member being read is
//   cut there and reading stops (zip_limit).
// A reader that stopped ignores the rest of the archive.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "senningen/agent/files/inflater.h"

namespace senningen::agent {

class ZipReader {
public:
    struct Limits {
        std::size_t max_members = 1024;
        std::uint64_t max_inflated = 64ULL << 20;
    };

    struct Member {
        std::string name;
        std::uint16_t method = 0;  // 0 stored, 8 deflate
        // The uncompressed size the local header gives (0 when it defers to a data
        // descriptor: size_known false).
        std::uint64_t size = 0;
        bool size_known = false;
    };

    class Sink {
    public:
        virtual ~Sink() = default;
        virtual void member_begin(const Member& member) = 0;
        virtual void member_data(std::span<const std::uint8_t> bytes) = 0;
        // COMPLETE: the member's bytes all came (its digests mean something); otherwise it
        // was cut (a hole, a limit, bad data, the archive's end) and MISSING is what its header
        // said was still to come (0 when it did not say).
        virtual void member_end(bool complete, std::uint64_t missing) = 0;
        virtual void problem(std::string_view weird, std::string_view detail) = 0;
    };

    ZipReader(Sink& sink, Limits limits);
    ~ZipReader();
    ZipReader(const ZipReader&) = delete;
    ZipReader& operator=(const ZipReader&) = delete;

    // The archive's next bytes, in order.
    void feed(std::span<const std::uint8_t> bytes);
    // BYTES of the archive are lost here: the member being read ends, reading stops.
    void gap(std::uint64_t bytes);
    // The archive ends: a member still open ends (zip_truncated), reading stops.
    void finish();

    bool stopped() const { return state_ == State::kStopped; }
    std::size_t members() const { return members_; }
    std::uint64_t inflated() const { return inflated_; }

    // Whether BYTES, the start of a file, are a ZIP archive's (a local file header).
    static bool looks_like_zip(std::span<const std::uint8_t> bytes);

private:
    enum class State { kHeader, kNames, kStored, kDeflate, kSkip, kDescriptor, kStopped };

    // Takes up to N bytes of IN into buf_ until it holds WANT: whether it does now.
    bool gather(std::span<const std::uint8_t>& in, std::size_t want);
    void on_header();
    void on_names();
    void stored(std::span<const std::uint8_t>& in);
    void deflated(std::span<const std::uint8_t>& in);
    void descriptor(std::span<const std::uint8_t>& in);
    // Member data, within the limits: false when the limit stopped reading.
    bool emit(std::span<const std::uint8_t> bytes);
    void end_member(bool complete, std::uint64_t missing);
    void after_member();  // the descriptor, or the next header
    void stop(std::string_view weird, std::string_view detail);

    Sink& sink_;
    Limits limits_;
    State state_ = State::kHeader;
    std::vector<std::uint8_t> buf_;  // a header or its names being gathered
    // From the local header being read.
    std::uint16_t flags_ = 0;
    std::uint16_t method_ = 0;
    std::uint64_t compressed_ = 0;  // the compressed size, when the header gives it
    std::uint64_t size_ = 0;
    bool sizes_known_ = false;  // not deferred to a data descriptor (flag bit 3)
    bool zip64_ = false;
    std::size_t names_ = 0;  // file name and extra field lengths
    std::uint16_t name_len_ = 0;
    // The member being read.
    bool open_ = false;
    std::uint64_t left_ = 0;  // stored / skipped bytes to come, or compressed bytes to come
    std::uint64_t out_ = 0;   // bytes of the member given to the sink
    std::unique_ptr<Inflater> inflater_;
    std::size_t members_ = 0;
    std::uint64_t inflated_ = 0;  // member bytes out of the whole archive
};

}  // namespace senningen::agent
