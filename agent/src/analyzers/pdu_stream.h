// Helpers shared by the binary (ICS) analyzers: bounds-checked integer reads, and a framer
// that cuts one direction's byte stream into PDUs whatever the TCP segmentation was. The
// framer keeps at most one partial PDU per direction (bounded by the protocol's largest PDU),
// and hands whole PDUs that sit inside one delivery to the analyzer without copying them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace senningen::agent::detail {

using Bytes = std::span<const std::uint8_t>;

inline std::uint16_t be16(Bytes b, std::size_t at) {
    return static_cast<std::uint16_t>((b[at] << 8) | b[at + 1]);
}
inline std::uint16_t le16(Bytes b, std::size_t at) {
    return static_cast<std::uint16_t>(b[at] | (b[at + 1] << 8));
}
inline std::uint32_t le32(Bytes b, std::size_t at) {
    return static_cast<std::uint32_t>(b[at]) | (static_cast<std::uint32_t>(b[at + 1]) << 8) |
           (static_cast<std::uint32_t>(b[at + 2]) << 16) |
           (static_cast<std::uint32_t>(b[at + 3]) << 24);
}
inline std::uint32_t le24(Bytes b, std::size_t at) {
    return static_cast<std::uint32_t>(b[at]) | (static_cast<std::uint32_t>(b[at + 1]) << 8) |
           (static_cast<std::uint32_t>(b[at + 2]) << 16);
}

inline std::string hex_byte(unsigned v) {
    static constexpr char kHex[] = "0123456789abcdef";
    return std::string{'0', 'x', kHex[(v >> 4) & 0xf], kHex[v & 0xf]};
}

inline std::string hex32(std::uint32_t v) {
    std::string s = "0x";
    for (int shift = 28; shift >= 0; shift -= 4) s += "0123456789abcdef"[(v >> shift) & 0xf];
    return s;
}

// What a framing function says about the bytes at the start of a buffer.
inline constexpr std::ptrdiff_t kNeedMore = 0;
inline constexpr std::ptrdiff_t kNotAPdu = -1;

class PduStream {
public:
    explicit PduStream(std::size_t max_pdu) : max_pdu_(max_pdu) {}

    // FRAME(Bytes) -> the length of the PDU at the start (> 0), kNeedMore or kNotAPdu.
    // HANDLE(Bytes) gets each whole PDU. Returns false when the stream lost its framing (a
    // PDU that cannot be one, or longer than max_pdu): the caller reports it and gives up.
    template <class Frame, class Handle>
    bool feed(Bytes bytes, Frame&& frame, Handle&& handle) {
        if (broken_) return false;
        if (buf_.empty()) {
            const std::size_t used = run(bytes, frame, handle);
            if (broken_) return false;
            buf_.assign(bytes.begin() + static_cast<std::ptrdiff_t>(used), bytes.end());
        } else {
            buf_.insert(buf_.end(), bytes.begin(), bytes.end());
            const std::size_t used = run(Bytes(buf_), frame, handle);
            if (broken_) return false;
            buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(used));
        }
        if (buf_.size() > max_pdu_) broken_ = true;
        return !broken_;
    }

    // A hole in the stream: the partial PDU is dropped and the stream counts as broken.
    void lose() {
        buf_.clear();
        broken_ = true;
    }
    // A hole in the stream (a TCP gap): the partial PDU is dropped and framing restarts with
    // the bytes after the hole. The framing functions check every header, so bytes that are
    // not a PDU start break the stream as usual; a hole between PDUs (whole segments missed)
    // loses nothing else.
    void resync() {
        if (!broken_) buf_.clear();
    }
    bool broken() const { return broken_; }
    std::size_t buffered() const { return buf_.size(); }

private:
    template <class Frame, class Handle>
    std::size_t run(Bytes data, Frame& frame, Handle& handle) {
        std::size_t at = 0;
        while (at < data.size()) {
            const std::ptrdiff_t n = frame(data.subspan(at));
            if (n == kNeedMore) break;
            if (n < 0 || static_cast<std::size_t>(n) > max_pdu_) {
                broken_ = true;
                break;
            }
            if (static_cast<std::size_t>(n) > data.size() - at) break;  // waits for the rest
            handle(data.subspan(at, static_cast<std::size_t>(n)));
            at += static_cast<std::size_t>(n);
        }
        return at;
    }

    std::size_t max_pdu_;
    std::vector<std::uint8_t> buf_;
    bool broken_ = false;
};

}  // namespace senningen::agent::detail
