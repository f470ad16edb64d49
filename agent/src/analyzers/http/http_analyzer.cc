#include "analyzers/http/http_analyzer.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>

#include <algorithm>
#include <charconv>
#include <list>
#include <string>
#include <variant>
#include <vector>

#include "analyzers/text.h"
#include "senningen/agent/files/inflater.h"

namespace senningen::agent {

namespace {

using detail::as_bytes;
using detail::as_text;
using detail::iequals;
using detail::trim;

constexpr std::size_t kMaxHeaderBlock = 64 * 1024;  // request/status line plus headers
constexpr std::size_t kMaxChunkLine = 1024;
constexpr std::size_t kMaxPending = 64;              // pipelined requests awaiting a response
constexpr std::size_t kMaxPartHeaders = 16 << 10;    // a multipart part's header block
constexpr std::size_t kMaxFilesPerTransaction = 16;
// A body sent with Content-Encoding gzip or deflate is inflated for its file up to this many
// bytes (a compression bomb stops there).
constexpr std::uint64_t kMaxDecodedBody = 64ULL << 20;

constexpr std::string_view kMethods[] = {"GET",     "POST",  "HEAD",    "PUT",
                                         "DELETE",  "OPTIONS", "CONNECT", "PATCH",
                                         "TRACE",   "PROPFIND", "PROPPATCH", "MKCOL",
                                         "COPY",    "MOVE",  "LOCK",    "UNLOCK",
                                         "SEARCH",  "REPORT"};

bool is_method(std::string_view token) {
    return std::find(std::begin(kMethods), std::end(kMethods), token) != std::end(kMethods);
}

// The user name of "Basic <base64 of user:password>" (decoded by OpenSSL), "" for any other
// scheme or a value that does not decode.
std::string basic_user(std::string_view value) {
    value = trim(value);
    if (value.size() < 7 || !iequals(value.substr(0, 6), "basic ")) return {};
    std::string_view b64 = trim(value.substr(6));
    if (b64.empty() || b64.size() > 1024 || b64.size() % 4 != 0) return {};
    std::string out(b64.size() / 4 * 3, '\0');
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(b64.data()),
                                  static_cast<int>(b64.size()));
    if (n < 0) return {};
    out.resize(static_cast<std::size_t>(n));
    while (!out.empty() && out.back() == '\0') out.pop_back();  // the padding's bytes
    const std::size_t colon = out.find(':');
    if (colon == std::string::npos || colon == 0) return {};
    out.resize(colon);
    const bool printable = std::all_of(out.begin(), out.end(), [](char c) {
        return static_cast<unsigned char>(c) >= 0x20 && c != 0x7f;
    });
    return printable ? out : std::string();
}

// "host:8080" -> "host"; "[2001:db8::1]:80" -> "2001:db8::1"; a bare IPv6 address stays.
std::string strip_port(std::string_view host) {
    if (!host.empty() && host.front() == '[') {
        const std::size_t close = host.find(']');
        return std::string(host.substr(1, close == std::string_view::npos ? host.size() - 1
                                                                          : close - 1));
    }
    const std::size_t colon = host.rfind(':');
    if (colon != std::string_view::npos && host.find(':') == colon &&
        colon + 1 < host.size() &&
        std::all_of(host.begin() + static_cast<std::ptrdiff_t>(colon) + 1, host.end(),
                    [](char c) { return c >= '0' && c <= '9'; })) {
        return std::string(host.substr(0, colon));
    }
    return std::string(host);
}

std::string mime_of(std::string_view content_type) {
    const std::size_t semi = content_type.find(';');
    return detail::lower(trim(content_type.substr(0, semi)));
}

struct Transaction {
    int depth = 0;
    std::string method;
    std::string uri;
    std::string version;
    std::string host;
    std::string user_agent;
    std::string referrer;
    std::string username;  // of Basic authorization (Zeek's http.log username; no password)
    std::uint64_t request_body_len = 0;
    std::vector<std::string> orig_fuids, orig_filenames, orig_mime_types;
    bool has_response = false;
    int status_code = 0;
    std::string status_msg;
    std::uint64_t response_body_len = 0;
    std::vector<std::string> resp_fuids, resp_filenames, resp_mime_types;
};

enum class State : std::uint8_t {
    kHeaders,     // start line and header block
    kBody,        // Content-Length bytes left
    kChunkSize,   // a chunk-size line
    kChunkData,   // chunk bytes left
    kChunkEnd,    // the CRLF after a chunk
    kTrailer,     // trailer lines up to an empty one
    kUntilClose,  // a response body that ends with the connection
    kStopped,     // upgraded, tunnelled, or unparseable: nothing more is read
};

struct Message {
    std::string content_type;
    std::string disposition;
    std::string encoding;  // Content-Encoding, lower case
    bool chunked = false;
    bool has_length = false;
    std::uint64_t length = 0;
};

class HttpAnalyzer final : public Analyzer {
public:
    void data(const AnalyzerContext& ctx, std::span<const std::uint8_t> bytes) override {
        Direction& d = dirs_[ctx.direction & 1];
        while (!bytes.empty() && d.state != State::kStopped) {
            switch (d.state) {
                case State::kHeaders: bytes = read_headers(ctx, d, bytes); break;
                case State::kBody: {
                    const std::size_t n =
                        static_cast<std::size_t>(std::min<std::uint64_t>(d.left, bytes.size()));
                    body(ctx, d, bytes.first(n));
                    bytes = bytes.subspan(n);
                    d.left -= n;
                    if (d.left == 0) end_message(ctx, d);
                    break;
                }
                case State::kChunkSize:
                case State::kTrailer:
                case State::kChunkEnd: bytes = read_chunk_line(ctx, d, bytes); break;
                case State::kChunkData: {
                    const std::size_t n =
                        static_cast<std::size_t>(std::min<std::uint64_t>(d.left, bytes.size()));
                    body(ctx, d, bytes.first(n));
                    bytes = bytes.subspan(n);
                    d.left -= n;
                    if (d.left == 0) d.state = State::kChunkEnd;
                    break;
                }
                case State::kUntilClose:
                    body(ctx, d, bytes);
                    bytes = {};
                    break;
                case State::kStopped: break;
            }
        }
    }

    void gap(const AnalyzerContext& ctx, std::uint64_t bytes) override {
        Direction& d = dirs_[ctx.direction & 1];
        file_missing(ctx, d, bytes);
        ctx.host.weird("http_gap", "hole in an HTTP stream; the direction is no longer parsed");
        if (d.state != State::kHeaders) end_message(ctx, d);
        d.state = State::kStopped;
    }

    void end(const AnalyzerContext& ctx) override {
        for (int dir = 0; dir < 2; ++dir) {
            Direction& d = dirs_[dir];
            const AnalyzerContext c{ctx.flow, dir, ctx.ts_ns, ctx.host};
            if (d.state == State::kUntilClose) {
                end_message(c, d);
            } else if (d.state == State::kBody || d.state == State::kChunkData ||
                       d.state == State::kChunkSize || d.state == State::kChunkEnd ||
                       d.state == State::kTrailer) {
                c.host.weird("http_body_truncated", "connection ends inside an HTTP body");
                // What the message still owed never came: the file is incomplete (missing
                // bytes, no digests), not a whole file of that size.
                if (d.state == State::kBody || d.state == State::kChunkData) {
                    file_missing(c, d, d.left);
                }
                end_message(c, d);
            } else if (d.state == State::kHeaders && !d.header.empty()) {
                c.host.weird("http_headers_truncated", "connection ends inside HTTP headers");
            }
        }
        // Requests that never got a response are logged as they are.
        while (!pending_.empty()) {
            emit(ctx, pending_.front());
            pending_.pop_front();
        }
    }

private:
    struct Direction {
        State state = State::kHeaders;
        std::string header;  // the header block being collected
        std::string line;    // a chunk-size or trailer line being collected
        std::uint64_t left = 0;
        std::uint64_t file = 0;  // host file handle of the body, 0 if none
        std::string filename;
        std::string mime;
        // A multipart/form-data request body, split into parts as it streams: each part that
        // names a file is a file of its own, whatever its size. Only what may still be a
        // delimiter or is a part's header block is held.
        struct Multipart {
            enum class Phase : std::uint8_t { kPreamble, kAfterDelimiter, kHeaders, kData, kDone };
            std::string delimiter;  // "\r\n--" + boundary: a body is read as if it began with CRLF
            std::string held = "\r\n";
            Phase phase = Phase::kPreamble;
            std::uint64_t file = 0;  // the current part's file, 0 if it names none
            std::size_t files = 0;
            bool seen_delimiter = false;
        };
        // A body sent with Content-Encoding gzip or deflate: its file is what it inflates to,
        // as Zeek's and Suricata's are.
        struct Decoder {
            std::unique_ptr<Inflater> inflater;  // made at the first byte (deflate: which kind)
            bool gzip = false;
            bool failed = false;  // stopped: bad data or the limit; the rest is missing
        };
        // Either, made for such a body only: every other direction carries one pointer (each
        // pointer more per direction would be 1.6 MB over 100,000 open HTTP flows).
        std::unique_ptr<std::variant<Multipart, Decoder>> special;
        Multipart* multipart() { return special ? std::get_if<Multipart>(special.get()) : nullptr; }
        Decoder* decoder() { return special ? std::get_if<Decoder>(special.get()) : nullptr; }
        Transaction* txn = nullptr;  // the transaction this message belongs to
    };

    std::span<const std::uint8_t> read_headers(const AnalyzerContext& ctx, Direction& d,
                                               std::span<const std::uint8_t> bytes) {
        // Blank lines between messages are tolerated (RFC 9112 2.2).
        if (d.header.empty()) {
            while (!bytes.empty() && (bytes[0] == '\r' || bytes[0] == '\n')) {
                bytes = bytes.subspan(1);
            }
            if (bytes.empty()) return bytes;
        }
        // A block that arrives whole is parsed where it lies; only one split across
        // deliveries is collected (and the collection freed once it is parsed: a kept
        // capacity per direction and flow added up to a good part of the per-flow memory).
        if (d.header.empty()) {
            const std::string_view text =
                as_text(bytes.first(std::min(bytes.size(), kMaxHeaderBlock)));
            const auto [end, end_len] = find_block_end(text, 0);
            if (end != std::string_view::npos) {
                parse_block(ctx, d, text.substr(0, end));
                return bytes.subspan(end + end_len);
            }
        }
        // Find the end of the header block, looking back over what was collected already.
        const std::size_t before = d.header.size();
        const std::size_t look_from = before >= 3 ? before - 3 : 0;
        const std::size_t room = kMaxHeaderBlock - std::min(kMaxHeaderBlock, before);
        const std::size_t take = std::min(room, bytes.size());
        d.header.append(as_text(bytes.first(take)));
        const auto [end, end_len] = find_block_end(d.header, look_from);
        if (end == std::string_view::npos) {
            if (d.header.size() >= kMaxHeaderBlock) {
                ctx.host.weird("http_header_too_long", "HTTP header block over 64 KiB");
                d.state = State::kStopped;
                std::string().swap(d.header);
            }
            return bytes.subspan(take);
        }
        const std::size_t block_end = end + end_len;  // bytes of the block in d.header
        const std::size_t consumed = block_end - before;
        std::string block = std::move(d.header);
        d.header = std::string();
        block.resize(end);
        parse_block(ctx, d, block);
        return bytes.subspan(consumed);
    }

    // Where the header block in TEXT ends (the first empty line, LF or CRLF), looking from
    // FROM on: the offset of the line feed before the empty line and the length of the
    // terminator from there, or npos.
    static std::pair<std::size_t, std::size_t> find_block_end(std::string_view text,
                                                              std::size_t from) {
        for (std::size_t i = text.find('\n', from); i != std::string_view::npos;
             i = text.find('\n', i + 1)) {
            if (i + 1 < text.size() && text[i + 1] == '\n') return {i, 2};
            if (i + 2 < text.size() && text[i + 1] == '\r' && text[i + 2] == '\n') return {i, 3};
        }
        return {std::string_view::npos, 0};
    }

    void parse_block(const AnalyzerContext& ctx, Direction& d, std::string_view block) {
        if (ctx.direction == 0) {
            parse_request(ctx, d, block);
        } else {
            parse_response(ctx, d, block);
        }
    }

    // Splits a header block into its start line and (name, value) pairs, unfolding
    // continuation lines.
    static std::string_view split_block(std::string_view block,
                                        std::vector<std::pair<std::string_view, std::string>>& out) {
        std::size_t eol = block.find('\n');
        const std::string_view start = trim(block.substr(0, eol));
        while (eol != std::string_view::npos) {
            const std::size_t from = eol + 1;
            eol = block.find('\n', from);
            std::string_view line =
                block.substr(from, eol == std::string_view::npos ? std::string_view::npos
                                                                 : eol - from);
            if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
            if (line.empty()) continue;
            if ((line[0] == ' ' || line[0] == '\t') && !out.empty()) {
                out.back().second += ' ';
                out.back().second += trim(line);
                continue;
            }
            const std::size_t colon = line.find(':');
            if (colon == std::string_view::npos) continue;
            out.emplace_back(trim(line.substr(0, colon)), std::string(trim(line.substr(colon + 1))));
        }
        return start;
    }

    static Message framing(const std::vector<std::pair<std::string_view, std::string>>& headers,
                           const AnalyzerContext& ctx) {
        Message m;
        for (const auto& [name, value] : headers) {
            if (iequals(name, "content-length")) {
                std::uint64_t n = 0;
                const auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
                if (ec == std::errc() && ptr == value.data() + value.size()) {
                    m.has_length = true;
                    m.length = n;
                } else {
                    ctx.host.weird("http_bad_content_length", value);
                }
            } else if (iequals(name, "transfer-encoding")) {
                if (detail::lower(value).find("chunked") != std::string::npos) m.chunked = true;
            } else if (iequals(name, "content-type")) {
                m.content_type = value;
            } else if (iequals(name, "content-disposition")) {
                m.disposition = value;
            } else if (iequals(name, "content-encoding")) {
                m.encoding = detail::lower(trim(value));
            }
        }
        return m;
    }

    void parse_request(const AnalyzerContext& ctx, Direction& d, std::string_view block) {
        std::vector<std::pair<std::string_view, std::string>> headers;
        const std::string_view start = split_block(block, headers);
        const std::size_t sp1 = start.find(' ');
        const std::size_t sp2 = start.rfind(' ');
        if (sp1 == std::string_view::npos || !is_method(start.substr(0, sp1))) {
            ctx.host.weird("http_bad_request_line", start.substr(0, 80));
            d.state = State::kStopped;
            return;
        }
        if (pending_.size() >= kMaxPending) {
            ctx.host.weird("http_too_many_pending", "over 64 requests without a response");
            emit(ctx, pending_.front());
            pending_.pop_front();
        }
        Transaction& t = pending_.emplace_back();
        t.depth = ++depth_;
        t.method = std::string(start.substr(0, sp1));
        if (sp2 > sp1 && start.substr(sp2 + 1).starts_with("HTTP/")) {
            t.uri = std::string(start.substr(sp1 + 1, sp2 - sp1 - 1));
            t.version = std::string(start.substr(sp2 + 6));
        } else {
            t.uri = std::string(start.substr(sp1 + 1));  // HTTP/0.9
            t.version = "0.9";
        }
        for (const auto& [name, value] : headers) {
            if (iequals(name, "host")) {
                t.host = value;
            } else if (iequals(name, "user-agent")) {
                t.user_agent = value;
            } else if (iequals(name, "referer")) {
                t.referrer = value;
            } else if (iequals(name, "authorization")) {
                t.username = basic_user(value);
            } else if (iequals(name, "x-forwarded-for")) {
                std::string_view rest = value;
                while (!rest.empty()) {
                    const std::size_t comma = rest.find(',');
                    if (const auto one = canonical_addr(trim(rest.substr(0, comma)))) {
                        ctx.host.observe(IntelType::kAddr, *one, "HTTP::IN_X_FORWARDED_FOR_HEADER");
                    }
                    if (comma == std::string_view::npos) break;
                    rest.remove_prefix(comma + 1);
                }
            }
        }
        observe_request(ctx, t);
        const Message m = framing(headers, ctx);
        d.txn = &t;
        if (m.chunked) {
            start_body(ctx, d, m);
            d.state = State::kChunkSize;
        } else if (m.has_length && m.length > 0) {
            start_body(ctx, d, m);
            d.left = m.length;
            d.state = State::kBody;
        } else {
            d.txn = nullptr;
            d.state = State::kHeaders;
        }
    }

    void observe_request(const AnalyzerContext& ctx, const Transaction& t) {
        const std::string host = strip_port(t.host);
        if (const auto ip = canonical_addr(host)) {
            ctx.host.observe(IntelType::kAddr, *ip, "HTTP::IN_HOST_HEADER");
        } else if (!host.empty()) {
            ctx.host.observe(IntelType::kDomain, host, "HTTP::IN_HOST_HEADER");
        }
        ctx.host.observe(IntelType::kUrl, url_of(ctx, t), "HTTP::IN_URL");
        if (!t.username.empty()) {
            ctx.host.observe(IntelType::kUserName, t.username, "HTTP::IN_AUTHORIZATION_HEADER");
        }
        if (!t.user_agent.empty()) {
            ctx.host.observe(IntelType::kSoftware, t.user_agent, "HTTP::IN_USER_AGENT_HEADER");
        }
        if (!t.referrer.empty()) {
            ctx.host.observe(IntelType::kUrl, t.referrer, "HTTP::IN_REFERRER_HEADER");
        }
    }

    // As Zeek's HTTP::build_url: host (or the server's address), ":port" unless 80, the URI.
    static std::string url_of(const AnalyzerContext& ctx, const Transaction& t) {
        std::string_view uri = t.uri;
        const std::size_t scheme = uri.find("://");
        if (scheme != std::string_view::npos && scheme < 8) {
            return std::string(uri.substr(scheme + 3));  // absolute form (proxies)
        }
        std::string host = strip_port(t.host);
        if (host.empty()) host = ctx.flow.resp.addr.to_string();
        if (ctx.flow.resp.port != 80) host += ":" + std::to_string(ctx.flow.resp.port);
        return host + std::string(uri);
    }

    void parse_response(const AnalyzerContext& ctx, Direction& d, std::string_view block) {
        std::vector<std::pair<std::string_view, std::string>> headers;
        const std::string_view start = split_block(block, headers);
        if (!start.starts_with("HTTP/") || start.size() < 12) {
            ctx.host.weird("http_bad_status_line", start.substr(0, 80));
            d.state = State::kStopped;
            return;
        }
        const std::size_t sp1 = start.find(' ');
        int code = 0;
        const std::string_view code_text = start.substr(sp1 + 1, 3);
        const auto [ptr, ec] = std::from_chars(code_text.data(), code_text.data() + 3, code);
        if (ec != std::errc() || ptr != code_text.data() + 3 || code < 100 || code > 999) {
            ctx.host.weird("http_bad_status_line", start.substr(0, 80));
            d.state = State::kStopped;
            return;
        }
        if (code >= 100 && code < 200 && code != 101) {
            d.state = State::kHeaders;  // interim response: the real one follows
            return;
        }
        if (pending_.empty()) {
            ctx.host.weird("http_response_without_request", start.substr(0, 80));
            Transaction& t = pending_.emplace_back();
            t.depth = ++depth_;
        }
        Transaction& t = pending_.front();
        t.has_response = true;
        t.status_code = code;
        t.version = std::string(start.substr(5, sp1 - 5));
        t.status_msg = sp1 + 5 <= start.size() ? std::string(trim(start.substr(sp1 + 5))) : "";
        const Message m = framing(headers, ctx);
        d.txn = &t;
        const bool no_body = t.method == "HEAD" || code == 204 || code == 304;
        if (code == 101 || (t.method == "CONNECT" && code >= 200 && code < 300)) {
            finish_transaction(ctx);
            d.txn = nullptr;
            dirs_[0].state = State::kStopped;  // another protocol follows
            d.state = State::kStopped;
            return;
        }
        if (no_body || (!m.chunked && m.has_length && m.length == 0)) {
            d.txn = nullptr;
            finish_transaction(ctx);
            d.state = State::kHeaders;
        } else if (m.chunked) {
            start_body(ctx, d, m);
            d.state = State::kChunkSize;
        } else if (m.has_length) {
            start_body(ctx, d, m);
            d.left = m.length;
            d.state = State::kBody;
        } else {
            start_body(ctx, d, m);
            d.state = State::kUntilClose;
        }
    }

    void start_body(const AnalyzerContext& ctx, Direction& d, const Message& m) {
        d.filename = detail::disposition_filename(m.disposition);
        d.mime = mime_of(m.content_type);
        d.special.reset();
        d.file = 0;
        if (m.encoding == "gzip" || m.encoding == "x-gzip" || m.encoding == "deflate") {
            d.special = std::make_unique<std::variant<Direction::Multipart, Direction::Decoder>>(
                std::in_place_type<Direction::Decoder>);
            d.decoder()->gzip = m.encoding != "deflate";
            return;
        }
        if (ctx.direction == 0 && d.mime == "multipart/form-data") {
            std::string boundary = detail::header_param(m.content_type, "boundary");
            if (!boundary.empty()) {
                d.special = std::make_unique<std::variant<Direction::Multipart, Direction::Decoder>>(
                    std::in_place_type<Direction::Multipart>);
                d.multipart()->delimiter = "\r\n--" + boundary;
                return;
            }
        }
        // The file starts lazily, at the first body byte: empty bodies are not files.
    }

    void body(const AnalyzerContext& ctx, Direction& d, std::span<const std::uint8_t> bytes) {
        if (bytes.empty() || d.txn == nullptr) return;
        if (d.decoder() != nullptr) {
            decode(ctx, d, bytes);
            return;
        }
        deliver(ctx, d, bytes);
    }

    // An encoded body's bytes, inflated on their way to the file.
    void decode(const AnalyzerContext& ctx, Direction& d, std::span<const std::uint8_t> bytes) {
        Direction::Decoder& dec = *d.decoder();
        if (dec.failed) {
            file_missing(ctx, d, bytes.size());
            return;
        }
        if (!dec.inflater) {
            dec.inflater = std::make_unique<Inflater>(
                dec.gzip ? Inflater::Format::kGzip : Inflater::http_deflate_format(bytes));
        }
        std::uint64_t room = kMaxDecodedBody - std::min(kMaxDecodedBody, dec.inflater->total_out());
        bool limited = false;
        std::size_t used = 0;
        const Inflater::Status status =
            dec.inflater->inflate(bytes, used, [&](std::span<const std::uint8_t> out) {
                const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(room, out.size()));
                if (n > 0) deliver(ctx, d, out.first(n));
                room -= n;
                if (n == out.size()) return true;
                limited = true;
                return false;
            });
        if (limited) {
            ctx.host.weird("http_decompression_limit",
                           "a " + std::string(dec.gzip ? "gzip" : "deflate") +
                               " body inflates beyond 64 MiB: its file is cut there");
            dec.failed = true;
            file_missing(ctx, d, bytes.size() - used);
            return;
        }
        if (status != Inflater::Status::kError) return;
        if (dec.inflater->total_out() == 0) {
            // Not what the header says (nothing came out of the first bytes): the body is
            // inspected as it is, as if it had no Content-Encoding.
            ctx.host.weird("http_bad_content_encoding",
                           "body declared " + std::string(dec.gzip ? "gzip" : "deflate") +
                               " does not inflate (" + dec.inflater->error() +
                               "): inspected as sent");
            d.special.reset();
            deliver(ctx, d, bytes);
            return;
        }
        ctx.host.weird("http_bad_content_encoding",
                       "body stops inflating (" + dec.inflater->error() + "): the rest is missing");
        dec.failed = true;
        file_missing(ctx, d, bytes.size() - used);
    }

    // BYTES of the direction's file (if it has one: the body's, or the multipart part's being
    // read) that will never come.
    static void file_missing(const AnalyzerContext& ctx, Direction& d, std::uint64_t bytes) {
        if (Direction::Multipart* mp = d.multipart()) {
            if (mp->file != 0 && mp->file != kUntracked) ctx.host.file_gap(mp->file, bytes);
            return;
        }
        if (d.file != 0 && d.file != kUntracked) ctx.host.file_gap(d.file, bytes);
    }

    // Body bytes as the message means them (inflated when it was encoded): counted, and the
    // file's (or the multipart buffer's).
    void deliver(const AnalyzerContext& ctx, Direction& d, std::span<const std::uint8_t> bytes) {
        if (ctx.direction == 0) {
            d.txn->request_body_len += bytes.size();
        } else {
            d.txn->response_body_len += bytes.size();
        }
        if (Direction::Multipart* multipart = d.multipart()) {
            multipart_data(ctx, *multipart, *d.txn, bytes);
            return;
        }
        if (d.file == 0) {
            const std::string url = url_of(ctx, *d.txn);
            d.file = ctx.host.file_begin(FileStart{"HTTP", ctx.direction == 0, d.filename, d.mime,
                                                   url});
            if (d.file == 0) d.file = kUntracked;
        }
        if (d.file != kUntracked) ctx.host.file_data(d.file, bytes);
    }

    void end_message(const AnalyzerContext& ctx, Direction& d) {
        Transaction* t = d.txn;
        d.state = State::kHeaders;
        d.txn = nullptr;
        if (t == nullptr) return;
        const bool orig = ctx.direction == 0;
        auto& fuids = orig ? t->orig_fuids : t->resp_fuids;
        auto& names = orig ? t->orig_filenames : t->resp_filenames;
        auto& mimes = orig ? t->orig_mime_types : t->resp_mime_types;
        const Direction::Decoder* dec = d.decoder();
        if (dec != nullptr && dec->inflater && !dec->failed && !dec->inflater->finished()) {
            ctx.host.weird("http_content_encoding_truncated",
                           "the body ends before its compressed stream: the file is what "
                           "inflated");
        }
        if (Direction::Multipart* mp = d.multipart()) {
            end_multipart(ctx, *mp, *t);
        } else if (d.file != 0) {
            if (d.file != kUntracked) {
                fuids.push_back(ctx.host.file_end(d.file));
                if (!d.filename.empty()) names.push_back(d.filename);
                if (!d.mime.empty()) mimes.push_back(d.mime);
            }
            d.file = 0;
        }
        // The message's buffers go with it: an idle keep-alive connection holds nothing for
        // its last body.
        d.special.reset();
        std::string().swap(d.filename);
        std::string().swap(d.mime);
        if (!orig) finish_transaction(ctx);
    }

    // A multipart body's bytes (RFC 2046 5.1.1): the preamble is skipped, each part's header
    // block read (Content-Disposition: form-data; name=..; filename=".." makes the part a
    // file), its data streamed to that file up to the next delimiter, the epilogue skipped.
    void multipart_data(const AnalyzerContext& ctx, Direction::Multipart& mp, Transaction& t,
                        std::span<const std::uint8_t> bytes) {
        using Phase = Direction::Multipart::Phase;
        if (mp.phase == Phase::kDone) return;
        mp.held.append(as_text(bytes));
        const std::string_view delimiter = mp.delimiter;
        for (;;) {
            const std::string_view held = mp.held;
            switch (mp.phase) {
                case Phase::kPreamble:
                case Phase::kData: {
                    const std::size_t at = held.find(delimiter);
                    // Without a delimiter, all but what could be the start of one is data.
                    const std::size_t take = at != std::string_view::npos ? at
                                             : held.size() >= delimiter.size()
                                                 ? held.size() - (delimiter.size() - 1)
                                                 : 0;
                    if (mp.phase == Phase::kData && mp.file != 0 && mp.file != kUntracked) {
                        ctx.host.file_data(mp.file, as_bytes(held.substr(0, take)));
                    }
                    if (at == std::string_view::npos) {
                        mp.held.erase(0, take);
                        return;
                    }
                    if (mp.phase == Phase::kData) end_part(ctx, mp, t);
                    mp.seen_delimiter = true;
                    mp.held.erase(0, at + delimiter.size());
                    mp.phase = Phase::kAfterDelimiter;
                    break;
                }
                case Phase::kAfterDelimiter: {
                    if (held.size() < 2) return;
                    if (held.starts_with("--")) {  // the close delimiter: the epilogue follows
                        mp.phase = Phase::kDone;
                        std::string().swap(mp.held);
                        return;
                    }
                    const std::size_t eol = held.find("\r\n");  // after transport padding
                    if (eol == std::string_view::npos) {
                        if (held.size() > 1024) return multipart_broken(ctx, mp, "delimiter line");
                        return;
                    }
                    mp.held.erase(0, eol + 2);
                    mp.phase = Phase::kHeaders;
                    break;
                }
                case Phase::kHeaders: {
                    // An empty block is the CRLF at once; otherwise it ends with an empty line.
                    const std::size_t end = held.starts_with("\r\n") ? 0 : held.find("\r\n\r\n");
                    if (end == std::string_view::npos) {
                        if (held.size() > kMaxPartHeaders) {
                            return multipart_broken(ctx, mp, "part header block over 16 KiB");
                        }
                        return;
                    }
                    start_part(ctx, mp, t, held.substr(0, end));
                    mp.held.erase(0, end == 0 ? 2 : end + 4);
                    mp.phase = Phase::kData;
                    break;
                }
                case Phase::kDone: return;
            }
        }
    }

    void start_part(const AnalyzerContext& ctx, Direction::Multipart& mp, Transaction& t,
                    std::string_view headers) {
        std::string filename;
        std::string mime;
        std::size_t eol = 0;
        while (eol < headers.size()) {
            std::size_t stop = headers.find("\r\n", eol);
            if (stop == std::string_view::npos) stop = headers.size();
            const std::string_view line = headers.substr(eol, stop - eol);
            const std::size_t colon = line.find(':');
            if (colon != std::string_view::npos) {
                const std::string_view name = trim(line.substr(0, colon));
                const std::string_view value = trim(line.substr(colon + 1));
                if (iequals(name, "content-disposition")) {
                    filename = detail::disposition_filename(value);
                } else if (iequals(name, "content-type")) {
                    mime = mime_of(value);
                }
            }
            eol = stop + 2;
        }
        mp.file = 0;
        if (filename.empty() || mp.files >= kMaxFilesPerTransaction) return;
        ++mp.files;
        mp.file = ctx.host.file_begin(FileStart{"HTTP", true, filename, mime, url_of(ctx, t)});
        if (mp.file == 0) mp.file = kUntracked;
        t.orig_filenames.push_back(std::move(filename));
        if (!mime.empty()) t.orig_mime_types.push_back(std::move(mime));
    }

    void end_part(const AnalyzerContext& ctx, Direction::Multipart& mp, Transaction& t) {
        if (mp.file != 0 && mp.file != kUntracked)
            t.orig_fuids.push_back(ctx.host.file_end(mp.file));
        mp.file = 0;
    }

    void multipart_broken(const AnalyzerContext& ctx, Direction::Multipart& mp,
                          std::string_view what) {
        ctx.host.weird("http_multipart_malformed", "multipart body: " + std::string(what));
        mp.phase = Direction::Multipart::Phase::kDone;
        std::string().swap(mp.held);
    }

    // The body ended: a part still open ends with it (its data is what came, and the bytes
    // held as a possible delimiter are its own after all).
    void end_multipart(const AnalyzerContext& ctx, Direction::Multipart& mp, Transaction& t) {
        if (mp.phase == Direction::Multipart::Phase::kData) {
            if (mp.file != 0 && mp.file != kUntracked) {
                ctx.host.file_data(mp.file, as_bytes(std::string_view(mp.held)));
            }
            end_part(ctx, mp, t);
        }
        if (!mp.seen_delimiter && mp.held.size() > 2) {
            ctx.host.weird("http_multipart_no_boundary", "multipart body without its boundary");
        }
    }

    std::span<const std::uint8_t> read_chunk_line(const AnalyzerContext& ctx, Direction& d,
                                                  std::span<const std::uint8_t> bytes) {
        const auto nl = std::find(bytes.begin(), bytes.end(), std::uint8_t{'\n'});
        const std::size_t n = static_cast<std::size_t>(nl - bytes.begin());
        const std::size_t take = std::min(n, kMaxChunkLine + 1 - std::min(kMaxChunkLine, d.line.size()));
        d.line.append(as_text(bytes.first(take)));
        if (nl == bytes.end()) {
            if (d.line.size() > kMaxChunkLine) {
                ctx.host.weird("http_chunk_line_too_long", "chunk-size or trailer line over 1 KiB");
                end_message(ctx, d);
                d.state = State::kStopped;
            }
            return {};
        }
        const std::string_view line = trim(d.line);
        std::span<const std::uint8_t> rest = bytes.subspan(n + 1);
        switch (d.state) {
            case State::kChunkEnd:
                // The CRLF that closes a chunk: anything else is tolerated, and counted.
                if (!line.empty()) ctx.host.weird("http_chunk_missing_crlf", line.substr(0, 40));
                d.state = State::kChunkSize;
                break;
            case State::kChunkSize: {
                const std::string_view hex = trim(line.substr(0, line.find(';')));
                std::uint64_t size = 0;
                const auto [ptr, ec] = std::from_chars(hex.data(), hex.data() + hex.size(), size, 16);
                if (hex.empty() || ec != std::errc() || ptr != hex.data() + hex.size()) {
                    ctx.host.weird("http_bad_chunk_size", line.substr(0, 40));
                    end_message(ctx, d);
                    d.state = State::kStopped;
                    break;
                }
                if (size == 0) {
                    d.state = State::kTrailer;
                } else {
                    d.left = size;
                    d.state = State::kChunkData;
                }
                break;
            }
            case State::kTrailer:
                if (line.empty()) end_message(ctx, d);
                break;
            default: break;
        }
        d.line.clear();
        return rest;
    }

    void finish_transaction(const AnalyzerContext& ctx) {
        if (pending_.empty()) return;
        emit(ctx, pending_.front());
        pending_.pop_front();
        // The request direction may still point into the transaction just removed.
        if (dirs_[0].txn != nullptr &&
            std::none_of(pending_.begin(), pending_.end(),
                         [&](const Transaction& t) { return &t == dirs_[0].txn; })) {
            dirs_[0].txn = nullptr;
        }
    }

    static void emit(const AnalyzerContext& ctx, const Transaction& t) {
        RecordFields r;
        r.set("trans_depth", t.depth);
        if (!t.method.empty()) r.set("method", t.method);
        // Without the port, as Zeek's http.log (the URL keeps it).
        if (!t.host.empty()) r.set("host", strip_port(t.host));
        if (!t.uri.empty()) r.set("uri", t.uri);
        if (!t.referrer.empty()) r.set("referrer", t.referrer);
        if (!t.version.empty()) r.set("version", t.version);
        if (!t.user_agent.empty()) r.set("user_agent", t.user_agent);
        if (!t.username.empty()) r.set("username", t.username);
        r.set("request_body_len", t.request_body_len);
        r.set("response_body_len", t.response_body_len);
        if (t.has_response) {
            r.set("status_code", t.status_code);
            r.set("status_msg", t.status_msg);
        }
        auto list = [&](const char* name, const std::vector<std::string>& values) {
            if (values.empty()) return;
            r.set(name, values);
        };
        list("orig_fuids", t.orig_fuids);
        list("orig_filenames", t.orig_filenames);
        list("orig_mime_types", t.orig_mime_types);
        list("resp_fuids", t.resp_fuids);
        list("resp_filenames", t.resp_filenames);
        list("resp_mime_types", t.resp_mime_types);
        ctx.host.record("http", r);
    }

    static constexpr std::uint64_t kUntracked = ~std::uint64_t{0};

    Direction dirs_[2];
    // A list: references stay valid, and an idle connection holds no block (a deque keeps
    // its map and a block from construction on).
    std::list<Transaction> pending_;
    int depth_ = 0;
};

}  // namespace

bool http_detect(std::span<const std::uint8_t> first, int direction, std::uint16_t /*src_port*/,
                 std::uint16_t /*dst_port*/) {
    const std::string_view text = as_text(first.first(std::min<std::size_t>(first.size(), 16)));
    if (direction == 1) return text.starts_with("HTTP/1.") || text.starts_with("HTTP/0.9");
    const std::size_t sp = text.find(' ');
    return sp != std::string_view::npos && is_method(text.substr(0, sp));
}

std::unique_ptr<Analyzer> make_http_analyzer() { return std::make_unique<HttpAnalyzer>(); }

}  // namespace senningen::agent
