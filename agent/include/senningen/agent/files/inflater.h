// zlib's inflate behind a small streaming interface, for what traffic carries compressed: the
// deflated members of ZIP archives (raw deflate) and HTTP bodies sent with Content-Encoding
// gzip or deflate.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

namespace senningen::agent {

class Inflater {
public:
    enum class Format {
        kRaw,   // deflate data alone (ZIP members; HTTP "deflate" sent without its zlib header)
        kZlib,  // RFC 1950 (HTTP "deflate" as the RFC has it)
        kGzip,  // RFC 1952, members one after another (HTTP "gzip", "x-gzip")
    };
    enum class Status {
        kMore,   // all the input was taken (or OUT asked to stop): more may follow
        kEnd,    // the stream ended; CONSUMED says where (kGzip: what follows the last member
                 // is not a member)
        kError,  // the data does not decode: error() says why; nothing more is taken
    };
    // Receives each piece of output; returns false to stop (inflate() then returns kMore).
    using Output = std::function<bool(std::span<const std::uint8_t>)>;

    explicit Inflater(Format format);
    ~Inflater();
    Inflater(const Inflater&) = delete;
    Inflater& operator=(const Inflater&) = delete;

    // Inflates IN; CONSUMED: how many of its bytes were used.
    Status inflate(std::span<const std::uint8_t> in, std::size_t& consumed, const Output& out);
    const std::string& error() const { return error_; }
    // The stream came to its end (kGzip: at least one member did, and nothing since).
    bool finished() const { return ended_ || between_members_; }
    std::uint64_t total_out() const { return total_out_; }

    // Which Format an HTTP body's first bytes, declared "deflate", are: servers send either.
    static Format http_deflate_format(std::span<const std::uint8_t> head);

private:
    struct Stream;
    std::unique_ptr<Stream> stream_;
    Format format_;
    bool ended_ = false;
    bool between_members_ = false;  // kGzip: a member ended, another may follow
    std::string error_;
    std::uint64_t total_out_ = 0;
};

}  // namespace senningen::agent
