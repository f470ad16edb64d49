// The streaming ZIP reader (see zip_reader.h). Deflate is zlib's (Inflater, raw).
#include "senningen/agent/files/zip_reader.h"

#include <algorithm>
#include <array>

namespace senningen::agent {
namespace {

constexpr std::uint32_t kLocalHeader = 0x04034b50;
constexpr std::uint32_t kCentralHeader = 0x02014b50;
constexpr std::uint32_t kEndOfCentral = 0x06054b50;
constexpr std::uint32_t kDescriptor = 0x08074b50;
constexpr std::size_t kLocalHeaderSize = 30;
constexpr std::uint16_t kFlagEncrypted = 0x0001;
constexpr std::uint16_t kFlagDescriptor = 0x0008;
constexpr std::uint16_t kStored = 0;
constexpr std::uint16_t kDeflated = 8;

std::uint16_t le16(const std::uint8_t* p) {
    return static_cast<std::uint16_t>(p[0] | (p[1] << 8));
}
std::uint32_t le32(const std::uint8_t* p) {
    return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
           (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
}
std::uint64_t le64(const std::uint8_t* p) {
    return le32(p) | (static_cast<std::uint64_t>(le32(p + 4)) << 32);
}

}  // namespace

ZipReader::ZipReader(Sink& sink, Limits limits) : sink_(sink), limits_(limits) {}

ZipReader::~ZipReader() = default;

bool ZipReader::looks_like_zip(std::span<const std::uint8_t> bytes) {
    return bytes.size() >= 4 && le32(bytes.data()) == kLocalHeader;
}

bool ZipReader::gather(std::span<const std::uint8_t>& in, std::size_t want) {
    const std::size_t take = std::min(in.size(), want > buf_.size() ? want - buf_.size() : 0);
    buf_.insert(buf_.end(), in.begin(), in.begin() + static_cast<std::ptrdiff_t>(take));
    in = in.subspan(take);
    return buf_.size() >= want;
}

void ZipReader::feed(std::span<const std::uint8_t> in) {
    while (!in.empty() && state_ != State::kStopped) {
        switch (state_) {
            case State::kHeader:
                // The signature first: what ends the members (a central directory header, or
                // the end record, 22 bytes) need not be as long as a local header.
                if (!gather(in, 4)) return;
                if (le32(buf_.data()) != kLocalHeader) {
                    const std::uint32_t sig = le32(buf_.data());
                    if (sig == kCentralHeader || sig == kEndOfCentral) {
                        state_ = State::kStopped;  // the members are all read
                    } else {
                        stop("zip_bad_header", "no local file header where the next member "
                                               "should start; the rest of the archive is not read");
                    }
                    return;
                }
                if (!gather(in, kLocalHeaderSize)) return;
                on_header();
                break;
            case State::kNames:
                if (!gather(in, kLocalHeaderSize + names_)) return;
                on_names();
                break;
            case State::kStored: stored(in); break;
            case State::kDeflate: deflated(in); break;
            case State::kSkip: {
                const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(left_, in.size()));
                in = in.subspan(n);
                left_ -= n;
                if (left_ == 0) after_member();
                break;
            }
            case State::kDescriptor: descriptor(in); break;
            case State::kStopped: return;
        }
    }
    // A header whose names need no bytes, or a member of no bytes, completes without input.
    if (state_ == State::kNames && buf_.size() >= kLocalHeaderSize + names_) on_names();
    if (state_ == State::kStored && left_ == 0) stored(in);
    if (state_ == State::kSkip && left_ == 0) after_member();
}

void ZipReader::on_header() {
    const std::uint8_t* h = buf_.data();
    flags_ = le16(h + 6);
    method_ = le16(h + 8);
    compressed_ = le32(h + 18);
    size_ = le32(h + 22);
    name_len_ = le16(h + 26);
    names_ = std::size_t{name_len_} + le16(h + 28);
    zip64_ = false;
    state_ = State::kNames;
}

void ZipReader::on_names() {
    const std::uint8_t* names = buf_.data() + kLocalHeaderSize;
    Member member;
    member.name.assign(reinterpret_cast<const char*>(names), name_len_);
    member.method = method_;
    // ZIP64: sizes of 0xFFFFFFFF are in the extra field 0x0001, uncompressed first.
    const bool big_size = size_ == 0xFFFFFFFFu;
    const bool big_compressed = compressed_ == 0xFFFFFFFFu;
    std::size_t pos = name_len_;
    while (pos + 4 <= names_) {
        const std::uint16_t id = le16(names + pos);
        const std::uint16_t len = le16(names + pos + 2);
        if (pos + 4 + len > names_) break;
        if (id == 0x0001) {
            zip64_ = true;
            std::size_t at = pos + 4;
            if (big_size && at + 8 <= pos + 4 + len) {
                size_ = le64(names + at);
                at += 8;
            }
            if (big_compressed && at + 8 <= pos + 4 + len) compressed_ = le64(names + at);
        }
        pos += 4 + std::size_t{len};
    }
    const bool deferred = (flags_ & kFlagDescriptor) != 0;
    sizes_known_ = !deferred || compressed_ != 0;
    member.size = sizes_known_ ? size_ : 0;
    member.size_known = sizes_known_;
    buf_.clear();

    const auto skip_or_stop = [&](std::string_view weird, const std::string& why) {
        sink_.problem(weird, why);
        if (!sizes_known_) {
            state_ = State::kStopped;
            return;
        }
        left_ = compressed_;
        state_ = State::kSkip;
    };
    if ((flags_ & kFlagEncrypted) != 0) {
        skip_or_stop("zip_encrypted_member", "member " + member.name + " is encrypted: not read");
        return;
    }
    if (method_ != kStored && method_ != kDeflated) {
        skip_or_stop("zip_unsupported_method", "member " + member.name + " uses compression method " +
                                                   std::to_string(method_) + ": not read");
        return;
    }
    if (method_ == kStored && !sizes_known_) {
        stop("zip_unknown_size", "stored member " + member.name +
                                     " gives no size: the rest of the archive is not read");
        return;
    }
    if (members_ >= limits_.max_members) {
        stop("zip_limit", "more than " + std::to_string(limits_.max_members) +
                              " members: the rest of the archive is not read");
        return;
    }
    ++members_;
    open_ = true;
    out_ = 0;
    left_ = compressed_;
    sink_.member_begin(member);
    if (method_ == kDeflated) {
        inflater_ = std::make_unique<Inflater>(Inflater::Format::kRaw);
        state_ = State::kDeflate;
    } else {
        state_ = State::kStored;
    }
}

bool ZipReader::emit(std::span<const std::uint8_t> bytes) {
    const std::uint64_t room =
        limits_.max_inflated > inflated_ ? limits_.max_inflated - inflated_ : 0;
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(room, bytes.size()));
    if (n > 0) sink_.member_data(bytes.first(n));
    inflated_ += n;
    out_ += n;
    if (n == bytes.size()) return true;
    stop("zip_limit", "more than " + std::to_string(limits_.max_inflated) +
                          " bytes out of one archive: the member is cut there and the rest "
                          "is not read");
    return false;
}

void ZipReader::stored(std::span<const std::uint8_t>& in) {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(left_, in.size()));
    const auto bytes = in.first(n);
    in = in.subspan(n);
    left_ -= n;
    if (!emit(bytes)) return;
    if (left_ == 0) {
        end_member(true, 0);
        after_member();
    }
}

void ZipReader::deflated(std::span<const std::uint8_t>& in) {
    const std::size_t avail =
        sizes_known_ ? static_cast<std::size_t>(std::min<std::uint64_t>(left_, in.size()))
                     : in.size();
    std::size_t used = 0;
    const Inflater::Status status = inflater_->inflate(
        in.first(avail), used, [this](std::span<const std::uint8_t> bytes) { return emit(bytes); });
    if (state_ == State::kStopped) return;  // a limit, in emit()
    in = in.subspan(used);
    if (sizes_known_) left_ -= used;
    if (status == Inflater::Status::kEnd) {
        end_member(true, 0);
        // Compressed bytes the header counted beyond the deflate stream's end are skipped.
        if (sizes_known_ && left_ > 0) {
            state_ = State::kSkip;
        } else {
            after_member();
        }
        return;
    }
    if (status == Inflater::Status::kError) {
        stop("zip_bad_deflate", "the deflate data of a member does not decode (" +
                                    inflater_->error() + "): the rest of the archive is not read");
        return;
    }
    if (sizes_known_ && left_ == 0) {
        stop("zip_bad_deflate", "a member's deflate data ends before its stream does: the "
                                "rest of the archive is not read");
    }
}

void ZipReader::descriptor(std::span<const std::uint8_t>& in) {
    if (!gather(in, 4)) return;
    const std::size_t sizes = zip64_ ? 16 : 8;
    // An optional signature, the CRC-32, then the two sizes.
    const std::size_t want = (le32(buf_.data()) == kDescriptor ? 8 : 4) + sizes;
    if (!gather(in, want)) return;
    buf_.clear();
    state_ = State::kHeader;
}

void ZipReader::end_member(bool complete, std::uint64_t missing) {
    if (!open_) return;
    open_ = false;
    // The inflater may be on the stack (a limit hit in its output): it goes with the next
    // member, or the reader.
    sink_.member_end(complete, missing);
}

void ZipReader::after_member() {
    buf_.clear();
    state_ = (flags_ & kFlagDescriptor) != 0 ? State::kDescriptor : State::kHeader;
}

void ZipReader::stop(std::string_view weird, std::string_view detail) {
    // A member cut here lacks what its header said it would have, or an unknown amount.
    const std::uint64_t missing = sizes_known_ && size_ > out_ ? size_ - out_ : 0;
    end_member(false, missing);
    sink_.problem(weird, detail);
    state_ = State::kStopped;
    buf_.clear();
    buf_.shrink_to_fit();
}

void ZipReader::gap(std::uint64_t bytes) {
    if (state_ == State::kStopped) return;
    if (open_) {
        stop("zip_gap", "a hole of " + std::to_string(bytes) +
                            " bytes in the archive: the member is cut there and the rest is "
                            "not read");
    } else {
        state_ = State::kStopped;
    }
}

void ZipReader::finish() {
    if (state_ == State::kStopped) return;
    if (open_) {
        stop("zip_truncated", "the archive ends inside a member");
        return;
    }
    state_ = State::kStopped;
}

}  // namespace senningen::agent
