// The streaming inflater (see inflater.h).
#include "senningen/agent/files/inflater.h"

#include <zlib.h>

#include <algorithm>

namespace senningen::agent {
namespace {

constexpr std::size_t kOutChunk = 16 * 1024;

int window_bits(Inflater::Format format) {
    switch (format) {
        case Inflater::Format::kRaw: return -MAX_WBITS;
        case Inflater::Format::kZlib: return MAX_WBITS;
        case Inflater::Format::kGzip: return MAX_WBITS + 16;
    }
    return -MAX_WBITS;
}

}  // namespace

struct Inflater::Stream {
    z_stream zs{};
    bool ready = false;
    std::array<std::uint8_t, kOutChunk> out{};

    explicit Stream(int bits) { ready = inflateInit2(&zs, bits) == Z_OK; }
    ~Stream() {
        if (ready) inflateEnd(&zs);
    }
    Stream(const Stream&) = delete;
    Stream& operator=(const Stream&) = delete;
};

Inflater::Inflater(Format format)
    : stream_(std::make_unique<Stream>(window_bits(format))), format_(format) {
    if (!stream_->ready) error_ = "zlib could not start inflating";
}

Inflater::~Inflater() = default;

Inflater::Format Inflater::http_deflate_format(std::span<const std::uint8_t> head) {
    // A zlib header: compression method 8, a window of at most 32 KiB, and a check that makes
    // the first two bytes a multiple of 31 (RFC 1950).
    if (head.size() >= 2 && (head[0] & 0x0f) == 8 && (head[0] >> 4) <= 7 &&
        ((head[0] << 8) | head[1]) % 31 == 0) {
        return Format::kZlib;
    }
    return Format::kRaw;
}

Inflater::Status Inflater::inflate(std::span<const std::uint8_t> in, std::size_t& consumed,
                                   const Output& out) {
    consumed = 0;
    if (!error_.empty()) return Status::kError;
    if (ended_) return Status::kEnd;
    z_stream& zs = stream_->zs;
    while (consumed < in.size() || zs.avail_out == 0) {
        if (between_members_) {
            if (consumed == in.size()) return Status::kMore;
            // Another gzip member may follow the last (RFC 1952 2.2); anything else after a
            // member is ignored, as browsers do.
            if (in[consumed] != 0x1f || inflateReset(&zs) != Z_OK) {
                ended_ = true;
                return Status::kEnd;
            }
            between_members_ = false;
        }
        const std::size_t avail = std::min<std::size_t>(in.size() - consumed, 1U << 30);
        zs.next_in = const_cast<Bytef*>(in.data() + consumed);  // zlib only reads it
        zs.avail_in = static_cast<uInt>(avail);
        zs.next_out = stream_->out.data();
        zs.avail_out = static_cast<uInt>(stream_->out.size());
        const int rc = ::inflate(&zs, Z_NO_FLUSH);
        consumed += avail - zs.avail_in;
        const std::size_t produced = stream_->out.size() - zs.avail_out;
        total_out_ += produced;
        if (produced > 0 && !out({stream_->out.data(), produced})) return Status::kMore;
        if (rc == Z_STREAM_END) {
            if (format_ == Format::kGzip) {
                between_members_ = true;
                if (consumed < in.size()) continue;
                return Status::kMore;
            }
            ended_ = true;
            return Status::kEnd;
        }
        if (rc == Z_BUF_ERROR) return Status::kMore;  // nothing more to do with this input
        if (rc != Z_OK) {
            error_ = zs.msg != nullptr ? zs.msg : "zlib error " + std::to_string(rc);
            return Status::kError;
        }
        if (zs.avail_out != 0 && consumed == in.size()) break;
    }
    return Status::kMore;
}

}  // namespace senningen::agent
