// SMB2 analyzer: CREATE names, reads and writes paired to their file, files handed to the
// host, compounded messages, and cut or corrupted input.
#include <gtest/gtest.h>

#include <string>

#include "analyzer_harness.h"

namespace senningen::agent {
namespace {

using test::AnalyzerRun;

std::string le16(unsigned v) { return {static_cast<char>(v & 0xff), static_cast<char>(v >> 8)}; }
std::string le32(std::uint32_t v) { return le16(v & 0xffff) + le16(v >> 16); }
std::string le64(std::uint64_t v) { return le32(static_cast<std::uint32_t>(v)) + le32(v >> 32); }
std::string utf16(const std::string& ascii) {
    std::string out;
    for (char c : ascii) out += std::string{c, '\0'};
    return out;
}

std::string header(unsigned command, std::uint64_t message_id, bool response,
                   std::uint32_t next = 0) {
    return "\xfeSMB" + le16(64) + le16(1) + le32(0) + le16(command) + le16(1) +
           le32(response ? 1 : 0) + le32(next) + le64(message_id) + le32(0) + le32(7) +
           le64(0x99) + std::string(16, '\0');
}
std::string frame(const std::string& msg) {
    return std::string(1, '\0') + static_cast<char>(msg.size() >> 16) +
           static_cast<char>((msg.size() >> 8) & 0xff) + static_cast<char>(msg.size() & 0xff) + msg;
}

const std::string kFileId = "0123456789abcdef";

std::string create_request(std::uint64_t id, const std::string& name) {
    const std::string n = utf16(name);
    return header(5, id, false) + le16(57) + std::string(2, '\0') + le32(2) + le64(0) + le64(0) +
           le32(0x12019f) + le32(0x80) + le32(7) + le32(5) + le32(0x40) + le16(64 + 56) +
           le16(n.size()) + le32(0) + le32(0) + n;
}
std::string create_response(std::uint64_t id) {
    return header(5, id, true) + le16(89) + std::string(2, '\0') + le32(2) + std::string(40, '\0') +
           le64(1234) + le32(0x80) + le32(0) + kFileId + le32(0) + le32(0);
}
std::string write_request(std::uint64_t id, std::uint64_t offset, const std::string& data) {
    return header(9, id, false) + le16(49) + le16(64 + 48) + le32(data.size()) + le64(offset) +
           kFileId + le32(0) + le32(0) + le16(0) + le16(0) + le32(0) + data;
}
std::string close_request(std::uint64_t id) {
    return header(6, id, false) + le16(24) + le16(0) + le32(0) + kFileId;
}

TEST(SmbAnalyzer, OpenWriteCloseMakesANamedFile) {
    AnalyzerRun run("smb", kIpProtoTcp, 445);
    ASSERT_TRUE(run.ok());
    run.feed(0, frame(create_request(1, "dir\\tool.exe")));
    // The base name, as Zeek's smb-filenames.zeek looks up.
    EXPECT_TRUE(run.host.saw("SMB::IN_FILE_NAME", "tool.exe"));
    EXPECT_FALSE(run.host.saw("SMB::IN_FILE_NAME", "dir\\tool.exe"));
    run.feed(1, frame(create_response(1)));
    run.feed(0, frame(write_request(2, 0, "MZpart1-")), 5);
    run.feed(0, frame(write_request(3, 8, "part2")));
    run.feed(0, frame(write_request(4, 100, "after a hole")));
    run.feed(0, frame(close_request(5)));
    run.end();
    ASSERT_EQ(run.host.files.size(), 1U);
    const auto& f = run.host.files[0];
    EXPECT_EQ(f.filename, "dir\\tool.exe");
    EXPECT_EQ(f.data, "MZpart1-part2after a hole");
    EXPECT_EQ(f.gap_bytes, 100U - 13U);
    EXPECT_TRUE(f.ended);
    EXPECT_TRUE(f.is_orig);
    const auto smb = run.host.records_of("smb");
    ASSERT_EQ(smb.size(), 5U);  // open, three writes, close
    EXPECT_NE(smb[0].find("\"command\":\"open\""), std::string::npos);
    EXPECT_NE(smb[0].find("\"size\":1234"), std::string::npos);
    EXPECT_NE(smb[4].find("\"command\":\"close\""), std::string::npos);
}

TEST(SmbAnalyzer, CompoundedMessagesAreFollowed) {
    std::string first = create_request(1, "a.txt");
    const std::string second = close_request(2);
    first.resize((first.size() + 7) & ~std::size_t{7}, '\0');  // 8-byte aligned
    const std::string with_next = header(5, 1, false, static_cast<std::uint32_t>(first.size())) +
                                  first.substr(64);
    AnalyzerRun run("smb", kIpProtoTcp, 445);
    run.feed(0, frame(with_next + second));
    EXPECT_TRUE(run.host.saw("SMB::IN_FILE_NAME", "a.txt"));
    EXPECT_TRUE(run.host.weirds.empty());
}

TEST(SmbAnalyzer, CutOrCorruptedAtEveryOffsetNeverCrashes) {
    const std::string stream = frame(create_request(1, "x.bin")) +
                               frame(write_request(2, 0, "data")) + frame(close_request(3));
    for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
        AnalyzerRun run("smb", kIpProtoTcp, 445);
        run.feed(0, stream.substr(0, cut));
        run.end();
    }
    std::size_t weird_runs = 0;
    for (std::size_t i = 0; i < stream.size(); ++i) {
        std::string bad = stream;
        bad[i] = static_cast<char>(bad[i] ^ 0xff);
        AnalyzerRun run("smb", kIpProtoTcp, 445);
        run.feed(0, bad);
        run.end();
        if (!run.host.weirds.empty()) ++weird_runs;
    }
    EXPECT_GT(weird_runs, 10U);
}

TEST(SmbAnalyzer, Smb1AndEncryptedAreCountedNotParsed) {
    AnalyzerRun run("smb", kIpProtoTcp, 445);
    run.feed(0, frame("\xffSMB" + std::string(60, '\0')));
    run.feed(0, frame("\xfdSMB" + std::string(60, '\0')));
    EXPECT_EQ(run.host.weirds, (std::vector<std::string>{"smb1_not_parsed", "smb_encrypted"}));
}

}  // namespace
}  // namespace senningen::agent
