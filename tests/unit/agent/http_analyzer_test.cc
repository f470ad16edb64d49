// HTTP/1.x analyzer: request/response pairing, framing (Content-Length, chunked, until close),
// pipelining, files (Content-Disposition, multipart), intel locations, and robustness against
// input cut at every byte or split at every byte.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdio>
#include <string>
#include <vector>

#include "analyzer_harness.h"

namespace senningen::agent {
namespace {

using test::AnalyzerRun;

const std::string kGet =
    "GET /dl/tool.exe HTTP/1.1\r\nHost: Files.Example:8080\r\nUser-Agent: EvilBot/1.0\r\n"
    "Referer: http://ref.example/page\r\nX-Forwarded-For: 203.0.113.9, 198.51.100.4\r\n\r\n";
const std::string kChunkedResponse =
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/octet-stream\r\n"
    "Content-Disposition: attachment; filename=\"tool v2.exe\"\r\n\r\n"
    "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n";

TEST(HttpAnalyzer, DetectsRequestsAndResponsesByContent) {
    auto bytes = [](std::string_view s) {
        return std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(s.data()),
                                             s.size());
    };
    const auto* spec = test::find_spec("http", kIpProtoTcp);
    ASSERT_NE(spec, nullptr);
    EXPECT_TRUE(spec->detect(bytes("GET / HTTP/1.1\r\n"), 0, 1234, 9999));
    EXPECT_TRUE(spec->detect(bytes("PROPFIND /x HTTP/1.1\r\n"), 0, 1234, 80));
    EXPECT_TRUE(spec->detect(bytes("HTTP/1.1 200 OK\r\n"), 1, 80, 1234));
    EXPECT_FALSE(spec->detect(bytes("GETX / HTTP/1.1\r\n"), 0, 1234, 80));
    EXPECT_FALSE(spec->detect(bytes("\x16\x03\x01\x00"), 0, 1234, 80));
}

TEST(HttpAnalyzer, ChunkedResponseBecomesANamedFile) {
    AnalyzerRun run("http", kIpProtoTcp, 8080);
    ASSERT_TRUE(run.ok());
    run.feed(0, kGet);
    run.feed(1, kChunkedResponse);
    run.end();
    ASSERT_EQ(run.host.files.size(), 1U);
    const auto& f = run.host.files[0];
    EXPECT_EQ(f.data, "hello, world");
    EXPECT_EQ(f.filename, "tool v2.exe");
    EXPECT_EQ(f.mime_type, "application/octet-stream");
    EXPECT_EQ(f.description, "Files.Example:8080/dl/tool.exe");
    EXPECT_FALSE(f.is_orig);
    EXPECT_TRUE(f.ended);
    const auto http = run.host.records_of("http");
    ASSERT_EQ(http.size(), 1U);
    EXPECT_NE(http[0].find("\"status_code\":200"), std::string::npos);
    EXPECT_NE(http[0].find("\"response_body_len\":12"), std::string::npos);
    EXPECT_NE(http[0].find("\"resp_filenames\":[\"tool v2.exe\"]"), std::string::npos);
    EXPECT_NE(http[0].find("\"resp_fuids\":[\"F1\"]"), std::string::npos);
    EXPECT_TRUE(run.host.weirds.empty());
}

// TEXT deflated by zlib: WINDOW_BITS as deflateInit2 takes them (MAX_WBITS zlib, +16 gzip,
// negative raw). FLUSH Z_FULL_FLUSH leaves the stream open (no final block, no trailer).
std::string compressed(const std::string& text, int window_bits, int flush = Z_FINISH) {
    z_stream zs{};
    EXPECT_EQ(deflateInit2(&zs, 6, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY), Z_OK);
    std::string out(deflateBound(&zs, text.size()) + 32, '\0');
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
    zs.avail_in = static_cast<uInt>(text.size());
    zs.next_out = reinterpret_cast<Bytef*>(out.data());
    zs.avail_out = static_cast<uInt>(out.size());
    EXPECT_EQ(deflate(&zs, flush), flush == Z_FINISH ? Z_STREAM_END : Z_OK);
    out.resize(zs.total_out);
    deflateEnd(&zs);
    return out;
}

std::string response_with(const std::string& encoding, const std::string& body, bool chunked) {
    std::string r = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: " +
                    encoding + "\r\n";
    if (!chunked) return r + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    r += "Transfer-Encoding: chunked\r\n\r\n";
    for (std::size_t at = 0; at < body.size(); at += 100) {
        const std::string part = body.substr(at, 100);
        char size[16];
        std::snprintf(size, sizeof size, "%zx", part.size());
        r += std::string(size) + "\r\n" + part + "\r\n";
    }
    return r + "0\r\n\r\n";
}

// A compressed body's file is what it inflates to (Zeek and Suricata decode gzip and deflate
// too), so hashes, YARA and the type see the page, not the compressed bytes; its length in the
// http record is the inflated one, as Zeek's response_body_len.
TEST(HttpAnalyzer, CompressedBodiesAreInflatedForTheirFile) {
    std::string page = "<html><script>var stage2 = 'ENCODED-BODY-MARKER';</script>";
    for (int i = 0; i < 200; ++i) page += "<p>line " + std::to_string(i) + "</p>";
    const struct {
        const char* encoding;
        int window_bits;
        bool chunked;
    } cases[] = {{"gzip", MAX_WBITS + 16, false}, {"x-gzip", MAX_WBITS + 16, true},
                 {"deflate", MAX_WBITS, true},     {"deflate", -MAX_WBITS, false}};
    for (const auto& c : cases) {
        SCOPED_TRACE(std::string(c.encoding) + " bits " + std::to_string(c.window_bits));
        const std::string body = compressed(page, c.window_bits);
        ASSERT_EQ(body.find("ENCODED-BODY-MARKER"), std::string::npos);
        AnalyzerRun run("http", kIpProtoTcp, 80);
        run.feed(0, kGet);
        // Split at every 7 bytes: the inflater takes its input in pieces.
        const std::string response = response_with(c.encoding, body, c.chunked);
        for (std::size_t at = 0; at < response.size(); at += 7) run.feed(1, response.substr(at, 7));
        run.end();
        ASSERT_EQ(run.host.files.size(), 1U);
        EXPECT_EQ(run.host.files[0].data, page);
        EXPECT_EQ(run.host.files[0].gap_bytes, 0U);
        const auto http = run.host.records_of("http");
        ASSERT_EQ(http.size(), 1U);
        EXPECT_NE(http[0].find("\"response_body_len\":" + std::to_string(page.size())),
                  std::string::npos);
        EXPECT_TRUE(run.host.weirds.empty());
    }
}

TEST(HttpAnalyzer, BrokenOrExplodingEncodingsAreWeirds) {
    // Declared gzip, sent plain: inspected as it is.
    AnalyzerRun plain("http", kIpProtoTcp, 80);
    plain.feed(0, kGet);
    plain.feed(1, response_with("gzip", "<html>not compressed at all</html>", false));
    plain.end();
    ASSERT_EQ(plain.host.files.size(), 1U);
    EXPECT_EQ(plain.host.files[0].data, "<html>not compressed at all</html>");
    EXPECT_EQ(plain.host.weirds, std::vector<std::string>{"http_bad_content_encoding"});

    // Good gzip that goes bad halfway (a block of the reserved type after a flushed one):
    // what inflated stays, the rest is missing.
    const std::string first_half = "<html>" + std::string(3000, 'y');
    std::string body = compressed(first_half, MAX_WBITS + 16, Z_FULL_FLUSH);
    body += '\x07' + std::string(500, 'g');  // BFINAL, BTYPE 11: no such block
    AnalyzerRun broken("http", kIpProtoTcp, 80);
    broken.feed(0, kGet);
    broken.feed(1, response_with("gzip", body, true));
    broken.end();
    ASSERT_EQ(broken.host.files.size(), 1U);
    EXPECT_EQ(broken.host.files[0].data, first_half);
    EXPECT_GT(broken.host.files[0].gap_bytes, 0U);
    EXPECT_EQ(broken.host.weirds, std::vector<std::string>{"http_bad_content_encoding"});

    // 100 MiB of zeros in about 100 KB: the file stops at 64 MiB, the rest is missing.
    const std::string bomb = compressed(std::string(100 << 20, '\0'), MAX_WBITS + 16);
    EXPECT_LT(bomb.size(), 200000U);
    AnalyzerRun exploding("http", kIpProtoTcp, 80);
    exploding.feed(0, kGet);
    exploding.feed(1, response_with("gzip", bomb, false));
    exploding.end();
    ASSERT_EQ(exploding.host.files.size(), 1U);
    EXPECT_EQ(exploding.host.files[0].data.size(), std::size_t{64} << 20);
    EXPECT_GT(exploding.host.files[0].gap_bytes, 0U);
    EXPECT_EQ(exploding.host.weirds, std::vector<std::string>{"http_decompression_limit"});

    // A body that ends before its compressed stream does: the file is what inflated.
    const std::string whole = compressed(std::string(20000, 'z'), MAX_WBITS + 16);
    AnalyzerRun cut("http", kIpProtoTcp, 80);
    cut.feed(0, kGet);
    cut.feed(1, response_with("gzip", whole.substr(0, whole.size() / 2), false));
    cut.end();
    ASSERT_EQ(cut.host.files.size(), 1U);
    EXPECT_EQ(cut.host.weirds, std::vector<std::string>{"http_content_encoding_truncated"});
}

TEST(HttpAnalyzer, IntelLocationsAsZeekNamesThem) {
    AnalyzerRun run("http", kIpProtoTcp, 8080);
    run.feed(0, kGet);
    EXPECT_TRUE(run.host.saw("HTTP::IN_HOST_HEADER", "Files.Example"));
    EXPECT_TRUE(run.host.saw("HTTP::IN_URL", "Files.Example:8080/dl/tool.exe"));
    EXPECT_TRUE(run.host.saw("HTTP::IN_USER_AGENT_HEADER", "EvilBot/1.0"));
    EXPECT_TRUE(run.host.saw("HTTP::IN_REFERRER_HEADER", "http://ref.example/page"));
    EXPECT_TRUE(run.host.saw("HTTP::IN_X_FORWARDED_FOR_HEADER", "203.0.113.9"));
    EXPECT_TRUE(run.host.saw("HTTP::IN_X_FORWARDED_FOR_HEADER", "198.51.100.4"));

    AnalyzerRun by_addr("http", kIpProtoTcp, 80);
    by_addr.feed(0, "GET /x HTTP/1.1\r\nHost: 192.0.2.7:80\r\n\r\n");
    ASSERT_FALSE(by_addr.host.observations.empty());
    EXPECT_EQ(by_addr.host.observations[0].type, IntelType::kAddr);
    EXPECT_EQ(by_addr.host.observations[0].value, "192.0.2.7");
    EXPECT_TRUE(by_addr.host.saw("HTTP::IN_URL", "192.0.2.7/x")) << "port 80 is not written";

    // Addresses read from headers take the intel store's form: an IPv4-mapped address is the
    // IPv4 address, IPv6 as inet_ntop writes it.
    AnalyzerRun forwarded("http", kIpProtoTcp, 80);
    forwarded.feed(0,
                   "GET / HTTP/1.1\r\nHost: h\r\n"
                   "X-Forwarded-For: ::ffff:203.0.113.9, 2001:DB8:0::1\r\n\r\n");
    EXPECT_TRUE(forwarded.host.saw("HTTP::IN_X_FORWARDED_FOR_HEADER", "203.0.113.9"));
    EXPECT_TRUE(forwarded.host.saw("HTTP::IN_X_FORWARDED_FOR_HEADER", "2001:db8::1"));
}

// Intel::USER_NAME: the user of Basic authorization, at HTTP::IN_AUTHORIZATION_HEADER, and in
// the record as Zeek's http.log username (the password never).
TEST(HttpAnalyzer, BasicAuthorizationUserIsSeenAndLoggedWithoutThePassword) {
    AnalyzerRun run("http", kIpProtoTcp, 80);
    // "operator:s3cret" and, after it, a scheme that names no user and a broken value.
    run.feed(
        0,
        "GET /hmi HTTP/1.1\r\nHost: hmi.plant\r\nAuthorization: Basic b3BlcmF0b3I6czNjcmV0\r\n\r\n"
        "GET /a HTTP/1.1\r\nHost: hmi.plant\r\nAuthorization: Bearer abc.def\r\n\r\n"
        "GET /b HTTP/1.1\r\nHost: hmi.plant\r\nAuthorization: Basic !!!!\r\n\r\n");
    run.end();
    EXPECT_TRUE(run.host.saw("HTTP::IN_AUTHORIZATION_HEADER", "operator"));
    std::size_t users = 0;
    for (const auto& o : run.host.observations) users += o.type == IntelType::kUserName ? 1 : 0;
    EXPECT_EQ(users, 1U);
    const auto http = run.host.records_of("http");
    ASSERT_EQ(http.size(), 3U);
    EXPECT_NE(http[0].find("\"username\":\"operator\""), std::string::npos) << http[0];
    EXPECT_EQ(http[0].find("s3cret"), std::string::npos);
    EXPECT_EQ(http[1].find("username"), std::string::npos);
    EXPECT_EQ(http[2].find("username"), std::string::npos);
}

TEST(HttpAnalyzer, PipelinedRequestsPairInOrder) {
    AnalyzerRun run("http", kIpProtoTcp, 80);
    run.feed(0,
             "GET /a HTTP/1.1\r\nHost: h\r\n\r\nHEAD /b HTTP/1.1\r\nHost: h\r\n\r\n"
             "GET /c HTTP/1.1\r\nHost: h\r\n\r\n");
    run.feed(1,
             "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"
             "HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n"  // HEAD: no body follows
             "HTTP/1.1 100 Continue\r\n\r\n"
             "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    run.end();
    const auto http = run.host.records_of("http");
    ASSERT_EQ(http.size(), 3U);
    EXPECT_NE(http[0].find("\"uri\":\"/a\""), std::string::npos);
    EXPECT_NE(http[0].find("\"response_body_len\":3"), std::string::npos);
    EXPECT_NE(http[1].find("\"method\":\"HEAD\""), std::string::npos);
    EXPECT_NE(http[1].find("\"response_body_len\":0"), std::string::npos);
    EXPECT_NE(http[2].find("\"status_code\":404"), std::string::npos);
    EXPECT_NE(http[2].find("\"trans_depth\":3"), std::string::npos);
    EXPECT_EQ(run.host.files.size(), 1U);
}

TEST(HttpAnalyzer, BodyUntilCloseAndRequestWithoutResponse) {
    AnalyzerRun run("http", kIpProtoTcp, 80);
    run.feed(0, "GET /old HTTP/1.0\r\n\r\nGET /never HTTP/1.0\r\n\r\n");
    run.feed(1, "HTTP/1.0 200 OK\r\n\r\nuntil the end");
    run.end();
    ASSERT_EQ(run.host.files.size(), 1U);
    EXPECT_EQ(run.host.files[0].data, "until the end");
    const auto http = run.host.records_of("http");
    ASSERT_EQ(http.size(), 2U);
    EXPECT_EQ(http[1].find("status_code"), std::string::npos);
}

TEST(HttpAnalyzer, MultipartUploadGivesOneFilePerNamedPart) {
    const std::string form =
        "--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n"
        "--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n"
        "Content-Type: text/plain\r\n\r\nfirst\r\nfile\r\n"
        "--XyZ\r\nContent-Disposition: form-data; name=\"g\"; filename*=UTF-8''na%C3%AFve.bin\r\n"
        "\r\n\x01\x02\r\n--XyZ--\r\n";
    AnalyzerRun run("http", kIpProtoTcp, 80);
    run.feed(0, "POST /up HTTP/1.1\r\nHost: h\r\nContent-Type: multipart/form-data; "
                "boundary=\"XyZ\"\r\nContent-Length: " +
                    std::to_string(form.size()) + "\r\n\r\n" + form);
    run.feed(1, "HTTP/1.1 204 No Content\r\n\r\n");
    run.end();
    ASSERT_EQ(run.host.files.size(), 2U);
    EXPECT_EQ(run.host.files[0].filename, "a.txt");
    EXPECT_EQ(run.host.files[0].data, "first\r\nfile");
    EXPECT_TRUE(run.host.files[0].is_orig);
    EXPECT_EQ(run.host.files[1].filename, "na\xc3\xafve.bin");
    EXPECT_EQ(run.host.files[1].data, "\x01\x02");
    const auto http = run.host.records_of("http");
    ASSERT_EQ(http.size(), 1U);
    EXPECT_NE(http[0].find("\"orig_filenames\":[\"a.txt\",\"na\xc3\xafve.bin\"]"), std::string::npos)
        << http[0];
}

// Parts are split as the body streams: at any segmentation the same files, a part of any size
// whole (no buffering of the body), the preamble and epilogue skipped.
TEST(HttpAnalyzer, MultipartPartsStreamWhateverTheirSizeAndSegmentation) {
    const std::string big(5 << 20, 'Z');  // over the 4 MiB the analyzer once buffered
    const std::string form =
        "preamble, ignored\r\n--b0undary\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n"
        "1\r\n--b0undary  \r\nContent-Disposition: form-data; name=\"f\"; filename=\"dump.bin\"\r\n"
        "\r\n" +
        big +
        "\r\n--b0undary\r\n\r\nno headers: not a file\r\n"
        "--b0undary\r\nContent-Disposition: form-data; name=\"g\"; filename=\"tail.txt\"\r\n\r\n"
        "ends with -\r\n-\r\n--b0undary--\r\nepilogue\r\n--b0undary\r\n";
    const std::string head =
        "POST /up HTTP/1.1\r\nHost: h\r\nContent-Type: multipart/form-data; "
        "boundary=b0undary\r\nContent-Length: " +
        std::to_string(form.size()) + "\r\n\r\n";
    for (const std::size_t step :
         {~std::size_t{0}, std::size_t{1}, std::size_t{7}, std::size_t{1460}}) {
        AnalyzerRun run("http", kIpProtoTcp, 80);
        if (step == 1) {
            // Byte by byte around the small parts only: 5 MiB single-byte feeds take too long.
            const std::size_t big_at = form.find(big);
            run.feed(0, head + form.substr(0, big_at), 1);
            run.feed(0, big);
            run.feed(0, form.substr(big_at + big.size()), 1);
        } else {
            run.feed(0, head + form, step);
        }
        run.feed(1, "HTTP/1.1 204 No Content\r\n\r\n");
        run.end();
        ASSERT_EQ(run.host.files.size(), 2U) << "step " << step;
        EXPECT_EQ(run.host.files[0].filename, "dump.bin");
        EXPECT_EQ(run.host.files[0].data.size(), big.size()) << "step " << step;
        EXPECT_TRUE(run.host.files[0].data == big) << "step " << step;
        EXPECT_EQ(run.host.files[1].filename, "tail.txt");
        EXPECT_EQ(run.host.files[1].data, "ends with -\r\n-") << "step " << step;
        EXPECT_TRUE(run.host.weirds.empty()) << "step " << step;
        const auto http = run.host.records_of("http");
        ASSERT_EQ(http.size(), 1U);
        EXPECT_NE(http[0].find("\"orig_filenames\":[\"dump.bin\",\"tail.txt\"]"),
                  std::string::npos);
    }
}

TEST(HttpAnalyzer, AMultipartBodyCutShortLeavesItsPartMissingBytes) {
    const std::string form =
        "--q\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.bin\"\r\n\r\n"
        "0123456789";
    AnalyzerRun run("http", kIpProtoTcp, 80);
    run.feed(0,
             "POST /up HTTP/1.1\r\nHost: h\r\nContent-Type: multipart/form-data; boundary=q\r\n"
             "Content-Length: " +
                 std::to_string(form.size() + 100) + "\r\n\r\n" + form);
    run.end();
    ASSERT_EQ(run.host.files.size(), 1U);
    EXPECT_EQ(run.host.files[0].data, "0123456789");
    EXPECT_EQ(run.host.files[0].gap_bytes, 100U);
    EXPECT_TRUE(run.host.files[0].ended);
}

TEST(HttpAnalyzer, SplitAtEveryByteGivesTheSameRecords) {
    AnalyzerRun whole("http", kIpProtoTcp, 8080);
    whole.feed(0, kGet);
    whole.feed(1, kChunkedResponse);
    whole.end();
    AnalyzerRun bytewise("http", kIpProtoTcp, 8080);
    bytewise.feed(0, kGet, 1);
    bytewise.feed(1, kChunkedResponse, 1);
    bytewise.end();
    EXPECT_EQ(whole.host.records, bytewise.host.records);
    ASSERT_EQ(bytewise.host.files.size(), 1U);
    EXPECT_EQ(bytewise.host.files[0].data, "hello, world");
}

TEST(HttpAnalyzer, TruncatedAtEveryOffsetNeverCrashesAndIsCounted) {
    const std::string response = kChunkedResponse;
    for (std::size_t cut = 0; cut < response.size(); ++cut) {
        AnalyzerRun run("http", kIpProtoTcp, 8080);
        run.feed(0, kGet);
        run.feed(1, response.substr(0, cut));
        run.end();
        // The request is always logged; a cut inside the body or headers is a weird.
        ASSERT_EQ(run.host.records_of("http").size(), 1U) << "cut at " << cut;
        if (cut > 0) {
            EXPECT_FALSE(run.host.weirds.empty()) << "cut at " << cut;
        }
    }
}

TEST(HttpAnalyzer, GarbageIsAWeirdNotACrash) {
    AnalyzerRun run("http", kIpProtoTcp, 80);
    run.feed(0, "GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
    run.feed(1, std::string("\x00\xff\xfe garbage\r\n\r\n", 16));
    run.feed(0, std::string(70000, 'A'));
    run.end();
    EXPECT_NE(std::find(run.host.weirds.begin(), run.host.weirds.end(), "http_bad_chunk_size"),
              run.host.weirds.end());
    EXPECT_NE(std::find(run.host.weirds.begin(), run.host.weirds.end(), "http_bad_status_line"),
              run.host.weirds.end());
}

TEST(HttpAnalyzer, OversizedHeaderBlockStopsTheDirection) {
    AnalyzerRun run("http", kIpProtoTcp, 80);
    run.feed(0, "GET / HTTP/1.1\r\nX-Big: " + std::string(70000, 'b'));
    EXPECT_NE(std::find(run.host.weirds.begin(), run.host.weirds.end(), "http_header_too_long"),
              run.host.weirds.end());
}

}  // namespace
}  // namespace senningen::agent
