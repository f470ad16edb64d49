// The streaming ZIP reader: archives are built here byte by byte (local headers, stored and
// deflated members, data descriptors, ZIP64 sizes), deflate by zlib.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdint>
#include <string>
#include <vector>

#include "senningen/agent/files/zip_reader.h"

namespace senningen::agent {
namespace {

using Bytes = std::vector<std::uint8_t>;

void put16(Bytes& out, std::uint32_t v) {
    out.push_back(static_cast<std::uint8_t>(v));
    out.push_back(static_cast<std::uint8_t>(v >> 8));
}
void put32(Bytes& out, std::uint32_t v) {
    put16(out, v & 0xffff);
    put16(out, v >> 16);
}
void put64(Bytes& out, std::uint64_t v) {
    put32(out, static_cast<std::uint32_t>(v));
    put32(out, static_cast<std::uint32_t>(v >> 32));
}

Bytes deflate_raw(const std::string& text) {
    z_stream zs{};
    EXPECT_EQ(deflateInit2(&zs, 9, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
    Bytes out(deflateBound(&zs, text.size()) + 16);
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
    zs.avail_in = static_cast<uInt>(text.size());
    zs.next_out = out.data();
    zs.avail_out = static_cast<uInt>(out.size());
    EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
    out.resize(zs.total_out);
    deflateEnd(&zs);
    return out;
}

struct Entry {
    std::string name;
    std::string content;
    std::uint16_t method = 8;
    std::uint16_t flags = 0;
    bool descriptor_signature = true;
    bool zip64 = false;
};

// A local header, the member's data and, with flag bit 3, a data descriptor.
void add_entry(Bytes& zip, const Entry& e) {
    const Bytes data = e.method == 8 ? deflate_raw(e.content)
                                     : Bytes(e.content.begin(), e.content.end());
    const std::uint32_t crc = static_cast<std::uint32_t>(
        crc32(0, reinterpret_cast<const Bytef*>(e.content.data()),
              static_cast<uInt>(e.content.size())));
    const bool deferred = (e.flags & 0x0008) != 0;
    Bytes extra;
    if (e.zip64) {
        put16(extra, 0x0001);
        put16(extra, 16);
        put64(extra, e.content.size());
        put64(extra, data.size());
    }
    put32(zip, 0x04034b50);
    put16(zip, 20);
    put16(zip, e.flags);
    put16(zip, e.method);
    put32(zip, 0);  // time, date
    put32(zip, deferred ? 0 : crc);
    put32(zip, deferred ? 0 : e.zip64 ? 0xFFFFFFFFu : static_cast<std::uint32_t>(data.size()));
    put32(zip, deferred ? 0 : e.zip64 ? 0xFFFFFFFFu : static_cast<std::uint32_t>(e.content.size()));
    put16(zip, static_cast<std::uint32_t>(e.name.size()));
    put16(zip, static_cast<std::uint32_t>(extra.size()));
    zip.insert(zip.end(), e.name.begin(), e.name.end());
    zip.insert(zip.end(), extra.begin(), extra.end());
    zip.insert(zip.end(), data.begin(), data.end());
    if (deferred) {
        if (e.descriptor_signature) put32(zip, 0x08074b50);
        put32(zip, crc);
        put32(zip, static_cast<std::uint32_t>(data.size()));
        put32(zip, static_cast<std::uint32_t>(e.content.size()));
    }
}

// The start of a central directory: where a reader of the local entries stops.
void add_central_directory(Bytes& zip) {
    put32(zip, 0x02014b50);
    zip.resize(zip.size() + 42, 0);
}

struct Recorder : ZipReader::Sink {
    struct Got {
        std::string name;
        std::string content;
        bool size_known = false;
        bool ended = false;
        bool complete = false;
        std::uint64_t missing = 0;
    };
    std::vector<Got> members;
    std::vector<std::string> problems;

    void member_begin(const ZipReader::Member& m) override {
        EXPECT_TRUE(members.empty() || members.back().ended) << "members one at a time";
        members.push_back({m.name, "", m.size_known});
    }
    void member_data(std::span<const std::uint8_t> bytes) override {
        ASSERT_FALSE(members.empty());
        members.back().content.append(bytes.begin(), bytes.end());
    }
    void member_end(bool complete, std::uint64_t missing) override {
        ASSERT_FALSE(members.empty());
        members.back().ended = true;
        members.back().complete = complete;
        members.back().missing = missing;
    }
    void problem(std::string_view weird, std::string_view) override {
        problems.emplace_back(weird);
    }
};

// ZIP read whole, in one piece.
Recorder read_all(const Bytes& zip, ZipReader::Limits limits = {}) {
    Recorder r;
    ZipReader reader(r, limits);
    reader.feed(zip);
    reader.finish();
    EXPECT_TRUE(reader.stopped());
    EXPECT_EQ(reader.members(), r.members.size());
    return r;
}

std::string text_of(std::size_t n, char seed) {
    std::string out;
    for (std::size_t i = 0; i < n; ++i) out.push_back(static_cast<char>('a' + (seed + i * 7) % 26));
    return out;
}

TEST(ZipReader, StoredAndDeflatedMembersComeOutWhole) {
    Bytes zip;
    add_entry(zip, {"readme.txt", "stored as it is", 0});
    add_entry(zip, {"docs/manual.pdf", "%PDF-" + text_of(5000, 3)});
    add_entry(zip, {"empty", "", 0});
    add_central_directory(zip);
    ASSERT_TRUE(ZipReader::looks_like_zip(zip));

    const Recorder r = read_all(zip);
    ASSERT_EQ(r.members.size(), 3u);
    EXPECT_EQ(r.members[0].name, "readme.txt");
    EXPECT_EQ(r.members[0].content, "stored as it is");
    EXPECT_EQ(r.members[1].name, "docs/manual.pdf");
    EXPECT_EQ(r.members[1].content, "%PDF-" + text_of(5000, 3));
    EXPECT_EQ(r.members[2].content, "");
    for (const auto& m : r.members) {
        EXPECT_TRUE(m.ended && m.complete && m.size_known) << m.name;
    }
    EXPECT_TRUE(r.problems.empty());
}

// Traffic hands the archive over in pieces of any size: one byte at a time must give the same.
TEST(ZipReader, AnySplitOfTheBytesGivesTheSameMembers) {
    Bytes zip;
    add_entry(zip, {"a.bin", text_of(3000, 1)});
    add_entry(zip, {"b.txt", "second", 0});
    add_entry(zip, {"c.exe", "MZ" + text_of(20000, 2), 8, 0x0008});  // sizes in a descriptor
    add_entry(zip, {"d.txt", "no descriptor signature", 8, 0x0008, false});
    add_entry(zip, {"e.bin", text_of(100, 5), 8, 0, true, true});  // ZIP64 sizes
    add_central_directory(zip);
    for (const std::size_t step : {std::size_t{1}, std::size_t{7}, std::size_t{4096}}) {
        Recorder r;
        ZipReader reader(r, {});
        for (std::size_t at = 0; at < zip.size(); at += step) {
            reader.feed(std::span<const std::uint8_t>(zip).subspan(at, std::min(step, zip.size() - at)));
        }
        reader.finish();
        ASSERT_EQ(r.members.size(), 5u) << "step " << step;
        EXPECT_EQ(r.members[0].content, text_of(3000, 1));
        EXPECT_EQ(r.members[1].content, "second");
        EXPECT_EQ(r.members[2].content, "MZ" + text_of(20000, 2));
        EXPECT_FALSE(r.members[2].size_known);
        EXPECT_EQ(r.members[3].content, "no descriptor signature");
        EXPECT_EQ(r.members[4].content, text_of(100, 5));
        EXPECT_TRUE(r.members[4].size_known);
        for (const auto& m : r.members) EXPECT_TRUE(m.complete) << m.name;
        EXPECT_TRUE(r.problems.empty()) << "step " << step;
    }
}

TEST(ZipReader, EncryptedAndUnknownMethodsAreSkippedAndSaid) {
    Bytes zip;
    add_entry(zip, {"secret.doc", "ciphertext here", 0, 0x0001});
    add_entry(zip, {"old.bin", "imploded bytes", 6});
    add_entry(zip, {"after.txt", "still read", 0});
    const Recorder r = read_all(zip);
    ASSERT_EQ(r.members.size(), 1u);
    EXPECT_EQ(r.members[0].name, "after.txt");
    EXPECT_EQ(r.members[0].content, "still read");
    EXPECT_EQ(r.problems, (std::vector<std::string>{"zip_encrypted_member",
                                                    "zip_unsupported_method"}));
}

// A member of a few hundred bytes that inflates to megabytes: cut at the limit, reported as
// incomplete (its digests would be of a part), and the archive is read no further.
TEST(ZipReader, ArchiveBombsStopAtTheLimits) {
    Bytes zip;
    add_entry(zip, {"bomb.txt", std::string(4 << 20, 'A')});
    add_entry(zip, {"next.txt", "not reached", 0});
    EXPECT_LT(zip.size(), 10000u);
    Recorder r;
    ZipReader reader(r, {16, 1 << 20});
    reader.feed(zip);
    ASSERT_EQ(r.members.size(), 1u);
    EXPECT_EQ(r.members[0].content.size(), std::size_t{1} << 20);
    EXPECT_FALSE(r.members[0].complete);
    EXPECT_EQ(r.members[0].missing, (4u << 20) - (1u << 20));
    EXPECT_EQ(r.problems, std::vector<std::string>{"zip_limit"});
    EXPECT_TRUE(reader.stopped());

    Bytes many;
    for (int i = 0; i < 5; ++i) add_entry(many, {"f" + std::to_string(i), "x", 0});
    Recorder r2;
    ZipReader counted(r2, {3, 1 << 20});
    counted.feed(many);
    EXPECT_EQ(r2.members.size(), 3u);
    EXPECT_EQ(r2.problems, std::vector<std::string>{"zip_limit"});
}

TEST(ZipReader, BrokenArchivesStopWithTheReason) {
    Bytes zip;
    add_entry(zip, {"one.txt", "fine", 0});
    const Bytes junk = {'J', 'U', 'N', 'K', 0, 0, 0, 0};
    zip.insert(zip.end(), junk.begin(), junk.end());
    Recorder r;
    ZipReader reader(r, {});
    reader.feed(zip);
    EXPECT_EQ(r.members.size(), 1u);
    EXPECT_EQ(r.problems, std::vector<std::string>{"zip_bad_header"});

    // Deflate data that is not deflate.
    Bytes bad;
    put32(bad, 0x04034b50);
    put16(bad, 20);
    put16(bad, 0);
    put16(bad, 8);
    put32(bad, 0);
    put32(bad, 0);
    put32(bad, 8);
    put32(bad, 100);
    put16(bad, 1);
    put16(bad, 0);
    bad.push_back('x');
    for (int i = 0; i < 8; ++i) bad.push_back(0xff);
    Recorder r2;
    ZipReader deflate(r2, {});
    deflate.feed(bad);
    ASSERT_EQ(r2.members.size(), 1u);
    EXPECT_FALSE(r2.members[0].complete);
    EXPECT_EQ(r2.problems, std::vector<std::string>{"zip_bad_deflate"});

    // A stored member whose size is deferred to a descriptor cannot be delimited.
    Bytes unknown;
    add_entry(unknown, {"stored.bin", "?", 0, 0x0008});
    Recorder r3;
    ZipReader stored(r3, {});
    stored.feed(unknown);
    EXPECT_TRUE(r3.members.empty());
    EXPECT_EQ(r3.problems, std::vector<std::string>{"zip_unknown_size"});
}

TEST(ZipReader, HolesAndCutArchivesEndTheMemberIncomplete) {
    Bytes zip;
    add_entry(zip, {"big.txt", std::string(5000, 'z'), 0});
    Recorder r;
    ZipReader reader(r, {});
    reader.feed(std::span<const std::uint8_t>(zip).first(1000));
    reader.gap(2000);
    reader.feed(std::span<const std::uint8_t>(zip).subspan(3000));
    ASSERT_EQ(r.members.size(), 1u);
    EXPECT_FALSE(r.members[0].complete);
    EXPECT_GT(r.members[0].missing, 0u);
    EXPECT_EQ(r.problems, std::vector<std::string>{"zip_gap"});

    Recorder r2;
    ZipReader cut(r2, {});
    cut.feed(std::span<const std::uint8_t>(zip).first(zip.size() - 10));
    cut.finish();
    ASSERT_EQ(r2.members.size(), 1u);
    EXPECT_FALSE(r2.members[0].complete);
    EXPECT_EQ(r2.members[0].missing, 10u);
    EXPECT_EQ(r2.problems, std::vector<std::string>{"zip_truncated"});
}

TEST(ZipReader, OnlyLocalFileHeadersLookLikeZip) {
    EXPECT_TRUE(ZipReader::looks_like_zip(Bytes{'P', 'K', 3, 4, 20}));
    EXPECT_FALSE(ZipReader::looks_like_zip(Bytes{'P', 'K', 5, 6}));
    EXPECT_FALSE(ZipReader::looks_like_zip(Bytes{'P', 'K', 3}));
    EXPECT_FALSE(ZipReader::looks_like_zip(Bytes{'M', 'Z', 0, 0}));
}

}  // namespace
}  // namespace senningen::agent
