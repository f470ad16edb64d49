#include <gtest/gtest.h>
#include <pcap/pcap.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "packet_builder.h"
#include "senningen/agent/capture/pcap_file.h"
#include "senningen/agent/decode/packet.h"

namespace senningen::agent {
namespace {

namespace fs = std::filesystem;
using common::ErrorCode;
using test::Bytes;

struct Frame {
    std::int64_t ts_sec = 0;
    std::int64_t ts_frac = 0;  // micro- or nanoseconds, as the file's precision says
    Bytes bytes;
    std::uint32_t wire_len = 0;  // 0: the captured length
};

Bytes tcp_frame(const std::string& payload) {
    return test::ethernet(
        0x0800, test::ipv4({10, 1, 1, 1}, {10, 2, 2, 2}, kIpProtoTcp,
                           test::tcp(1234, 80, 1, 1, tcp_flags::kAck, test::text(payload))));
}

class PcapFileTest : public ::testing::Test {
protected:
    void SetUp() override {
        std::string pattern = (fs::temp_directory_path() / "senningen-pcap-XXXXXX").string();
        ASSERT_NE(mkdtemp(pattern.data()), nullptr);
        dir_ = pattern;
    }
    void TearDown() override {
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }

    std::string write_bytes(const std::string& name, const Bytes& bytes) {
        const std::string path = (dir_ / name).string();
        std::ofstream out(path, std::ios::binary);
        out.write(reinterpret_cast<const char*>(bytes.data()),
                  static_cast<std::streamsize>(bytes.size()));
        return path;
    }

    // Writes FRAMES through libpcap itself, the way a capture tool would.
    std::string write_pcap(const std::string& name, int linktype, const std::vector<Frame>& frames,
                           bool nano = false) {
        const std::string path = (dir_ / name).string();
        pcap_t* dead = pcap_open_dead_with_tstamp_precision(
            linktype, 65535, nano ? PCAP_TSTAMP_PRECISION_NANO : PCAP_TSTAMP_PRECISION_MICRO);
        EXPECT_NE(dead, nullptr);
        pcap_dumper_t* dumper = pcap_dump_open(dead, path.c_str());
        EXPECT_NE(dumper, nullptr) << pcap_geterr(dead);
        for (const auto& f : frames) {
            pcap_pkthdr h{};
            h.ts.tv_sec = f.ts_sec;
            h.ts.tv_usec = f.ts_frac;
            h.caplen = static_cast<bpf_u_int32>(f.bytes.size());
            h.len = f.wire_len != 0 ? f.wire_len : h.caplen;
            pcap_dump(reinterpret_cast<u_char*>(dumper), &h, f.bytes.data());
        }
        pcap_dump_close(dumper);
        pcap_close(dead);
        return path;
    }

    fs::path dir_;
};

// A classic pcap file built byte by byte, in either byte order and precision.
Bytes handmade_pcap(bool big_endian, bool nano, std::uint32_t ts_sec, std::uint32_t ts_frac,
                    const Bytes& frame) {
    Bytes b;
    auto put32 = [&](std::uint32_t v) {
        if (big_endian) {
            test::put32(b, v);
        } else {
            test::put_le32(b, v);
        }
    };
    auto put16 = [&](std::uint16_t v) {
        if (big_endian) {
            test::put16(b, v);
        } else {
            test::put8(b, static_cast<std::uint8_t>(v));
            test::put8(b, static_cast<std::uint8_t>(v >> 8));
        }
    };
    put32(nano ? 0xa1b23c4d : 0xa1b2c3d4);
    put16(2);
    put16(4);
    put32(0);  // thiszone
    put32(0);  // sigfigs
    put32(65535);
    put32(DLT_EN10MB);
    put32(ts_sec);
    put32(ts_frac);
    put32(static_cast<std::uint32_t>(frame.size()));
    put32(static_cast<std::uint32_t>(frame.size()));
    test::append(b, frame);
    return b;
}

TEST_F(PcapFileTest, ClassicMagicInBothByteOrdersAndPrecisions) {
    const Bytes frame = tcp_frame("payload");
    struct Case {
        bool big_endian;
        bool nano;
        std::uint32_t frac;
        std::int64_t expected_ns;
        const char* magic_hex;
    };
    const Case cases[] = {
        {false, false, 123456, 1700000000123456000LL, "d4c3b2a1"},
        {true, false, 123456, 1700000000123456000LL, "a1b2c3d4"},
        {false, true, 123456789, 1700000000123456789LL, "4d3cb2a1"},
        {true, true, 123456789, 1700000000123456789LL, "a1b23c4d"},
    };
    for (const auto& c : cases) {
        const std::string path =
            write_bytes(std::string("capture-") + c.magic_hex,
                        handmade_pcap(c.big_endian, c.nano, 1700000000, c.frac, frame));
        auto format = detect_capture_format(path);
        ASSERT_TRUE(format) << format.error().message;
        EXPECT_EQ(*format, CaptureFormat::kPcap) << c.magic_hex;

        auto file = PcapFile::open(path);
        ASSERT_TRUE(file) << file.error().message;
        EXPECT_EQ((*file)->format(), CaptureFormat::kPcap);
        EXPECT_EQ((*file)->linktype(), DLT_EN10MB);
        RawPacket raw;
        auto more = (*file)->next(raw);
        ASSERT_TRUE(more) << more.error().message;
        ASSERT_TRUE(*more);
        EXPECT_EQ(raw.ts_ns, c.expected_ns) << c.magic_hex;
        ASSERT_EQ(raw.caplen, frame.size());
        EXPECT_EQ(Bytes(raw.data, raw.data + raw.caplen), frame);
        more = (*file)->next(raw);
        ASSERT_TRUE(more);
        EXPECT_FALSE(*more) << "clean end of file";
        EXPECT_EQ((*file)->packets_read(), 1u);
    }
}

TEST_F(PcapFileTest, PcapNgIsDetectedAndRead) {
    // Section header, interface description (Ethernet), one enhanced packet block.
    const Bytes frame = tcp_frame("ng");
    Bytes b;
    auto u32 = [&](std::uint32_t v) { test::put_le32(b, v); };
    u32(0x0a0d0d0a);
    u32(28);
    u32(0x1a2b3c4d);
    u32(0x00000001);  // version 1.0
    u32(0xffffffff);  // section length unknown
    u32(0xffffffff);
    u32(28);
    u32(1);
    u32(20);
    u32(DLT_EN10MB);  // link type and reserved
    u32(65535);
    u32(20);
    const std::uint64_t ts_us = 1700000000123456ULL;  // default resolution: microseconds
    const std::uint32_t padded = static_cast<std::uint32_t>((frame.size() + 3) & ~std::size_t{3});
    u32(6);
    u32(32 + padded);
    u32(0);
    u32(static_cast<std::uint32_t>(ts_us >> 32));
    u32(static_cast<std::uint32_t>(ts_us));
    u32(static_cast<std::uint32_t>(frame.size()));
    u32(static_cast<std::uint32_t>(frame.size()));
    test::append(b, frame);
    b.resize(b.size() + (padded - frame.size()), 0);
    u32(32 + padded);
    const std::string path = write_bytes("named-like-classic.pcap", b);

    auto format = detect_capture_format(path);
    ASSERT_TRUE(format) << format.error().message;
    EXPECT_EQ(*format, CaptureFormat::kPcapNg) << "the name says pcap, the bytes say pcapng";
    auto file = PcapFile::open(path);
    ASSERT_TRUE(file) << file.error().message;
    EXPECT_EQ((*file)->format(), CaptureFormat::kPcapNg);
    EXPECT_EQ((*file)->linktype(), DLT_EN10MB);
    RawPacket raw;
    auto more = (*file)->next(raw);
    ASSERT_TRUE(more && *more);
    EXPECT_EQ(raw.ts_ns, 1700000000123456000LL);
    EXPECT_EQ(Bytes(raw.data, raw.data + raw.caplen), frame);
}

TEST_F(PcapFileTest, GarbageIsRefusedShowingItsMagic) {
    const std::string path = write_bytes("notes.pcap", test::text("hello, world"));
    auto format = detect_capture_format(path);
    ASSERT_FALSE(format);
    EXPECT_EQ(format.error().code, ErrorCode::kUnsupported);
    EXPECT_NE(format.error().message.find("68 65 6c 6c"), std::string::npos)
        << format.error().message;
    EXPECT_NE(format.error().message.find(path), std::string::npos);
    auto file = PcapFile::open(path);
    ASSERT_FALSE(file);
    EXPECT_EQ(file.error().code, ErrorCode::kUnsupported);
}

TEST_F(PcapFileTest, EmptyAndTinyFilesAreTruncated) {
    for (const Bytes& content : {Bytes{}, Bytes{0xd4, 0xc3}, Bytes{0x0a, 0x0d, 0x0d}}) {
        const std::string path = write_bytes("tiny-" + std::to_string(content.size()), content);
        auto format = detect_capture_format(path);
        ASSERT_FALSE(format);
        EXPECT_EQ(format.error().code, ErrorCode::kTruncated) << content.size() << " bytes";
        EXPECT_NE(format.error().message.find(path), std::string::npos);
        auto file = PcapFile::open(path);
        ASSERT_FALSE(file);
        EXPECT_EQ(file.error().code, ErrorCode::kTruncated);
    }
}

TEST_F(PcapFileTest, GoodMagicButTruncatedFileHeader) {
    const Bytes whole = handmade_pcap(false, false, 1, 2, tcp_frame("x"));
    const std::string path =
        write_bytes("short-header.pcap", Bytes(whole.begin(), whole.begin() + 10));
    auto format = detect_capture_format(path);
    ASSERT_TRUE(format);
    auto file = PcapFile::open(path);
    ASSERT_FALSE(file);
    EXPECT_EQ(file.error().code, ErrorCode::kTruncated) << file.error().message;
    EXPECT_NE(file.error().message.find(path), std::string::npos);
}

TEST_F(PcapFileTest, MissingFileAndDirectory) {
    auto missing = PcapFile::open((dir_ / "absent.pcap").string());
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
    EXPECT_NE(missing.error().message.find("absent.pcap"), std::string::npos);

    auto directory = detect_capture_format(dir_.string());
    ASSERT_FALSE(directory);
    EXPECT_EQ(directory.error().code, ErrorCode::kIo);
}

TEST_F(PcapFileTest, ReadsWhatLibpcapWrote) {
    const std::vector<Frame> frames = {
        {100, 1, tcp_frame("one"), 0},
        {100, 999999, tcp_frame("two"), 0},
        {101, 0, tcp_frame("three"), 1500},  // snapped: more on the wire than captured
    };
    const std::string path = write_pcap("written.pcap", DLT_EN10MB, frames);
    auto file = PcapFile::open(path);
    ASSERT_TRUE(file) << file.error().message;
    EXPECT_EQ((*file)->path(), path);
    RawPacket raw;
    std::vector<std::int64_t> times;
    std::vector<std::string> payloads;
    for (;;) {
        auto more = (*file)->next(raw);
        ASSERT_TRUE(more) << more.error().message;
        if (!*more) {
            break;
        }
        times.push_back(raw.ts_ns);
        DecodedPacket p;
        ASSERT_EQ(decode_packet((*file)->linktype(), {raw.data, raw.caplen}, p), DecodeStatus::kOk);
        payloads.emplace_back(p.payload.begin(), p.payload.end());
        if (payloads.size() == 3) {
            EXPECT_EQ(raw.len, 1500u);
            EXPECT_EQ(raw.caplen, frames[2].bytes.size());
        }
    }
    EXPECT_EQ(times, (std::vector<std::int64_t>{100000001000LL, 100999999000LL, 101000000000LL}));
    EXPECT_EQ(payloads, (std::vector<std::string>{"one", "two", "three"}));
    EXPECT_EQ((*file)->packets_read(), 3u);
    auto again = (*file)->next(raw);
    ASSERT_TRUE(again);
    EXPECT_FALSE(*again) << "end of file is sticky";
}

TEST_F(PcapFileTest, EveryLinkTypeRoundTrips) {
    const Bytes ip =
        test::ipv4({10, 1, 1, 1}, {10, 2, 2, 2}, kIpProtoUdp, test::udp(1, 53, test::text("link")));
    const std::map<int, Bytes> frames = {
        {DLT_EN10MB, test::ethernet(0x0800, ip, {{0x8100, 5}})},
        {DLT_NULL, test::bsd_loopback(2, false, ip)},
        {DLT_LOOP, test::bsd_loopback(2, true, ip)},
        {DLT_RAW, ip},
        {DLT_IPV4, ip},
        {DLT_LINUX_SLL, test::linux_sll(0x0800, ip)},
        {DLT_LINUX_SLL2, test::linux_sll2(0x0800, ip)},
    };
    for (const auto& [linktype, frame] : frames) {
        const std::string path = write_pcap("link-" + std::to_string(linktype) + ".pcap", linktype,
                                            {{1, 0, frame, 0}}, true);
        auto file = PcapFile::open(path);
        ASSERT_TRUE(file) << file.error().message;
        EXPECT_EQ((*file)->linktype(), linktype) << pcap_datalink_val_to_name(linktype);
        RawPacket raw;
        auto more = (*file)->next(raw);
        ASSERT_TRUE(more && *more);
        DecodedPacket p;
        ASSERT_EQ(decode_packet((*file)->linktype(), {raw.data, raw.caplen}, p), DecodeStatus::kOk)
            << pcap_datalink_val_to_name(linktype);
        EXPECT_EQ(std::string(p.payload.begin(), p.payload.end()), "link");
        EXPECT_EQ(p.dst_port, 53);
    }
}

TEST_F(PcapFileTest, TruncatedCaptureNamesFileAndPacket) {
    const std::vector<Frame> frames = {
        {1, 0, tcp_frame("first"), 0},
        {2, 0, tcp_frame("second"), 0},
        {3, 0, tcp_frame("third"), 0},
    };
    const std::string path = write_pcap("whole.pcap", DLT_EN10MB, frames);
    std::ifstream in(path, std::ios::binary);
    const Bytes whole((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::size_t third_record = whole.size() - frames[2].bytes.size() - 16;
    // Cut inside the third record's header, and inside its data.
    for (std::size_t cut : {third_record + 3, third_record + 16 + 10, whole.size() - 1}) {
        const std::string cut_path =
            write_bytes("cut-" + std::to_string(cut) + ".pcap",
                        Bytes(whole.begin(), whole.begin() + static_cast<std::ptrdiff_t>(cut)));
        auto file = PcapFile::open(cut_path);
        ASSERT_TRUE(file) << file.error().message;
        RawPacket raw;
        for (int i = 0; i < 2; ++i) {
            auto more = (*file)->next(raw);
            ASSERT_TRUE(more && *more) << "packet " << i + 1;
        }
        auto third = (*file)->next(raw);
        ASSERT_FALSE(third) << "cut at " << cut;
        EXPECT_EQ(third.error().code, ErrorCode::kTruncated) << third.error().message;
        EXPECT_NE(third.error().message.find(cut_path), std::string::npos) << third.error().message;
        EXPECT_NE(third.error().message.find("packet 3"), std::string::npos)
            << third.error().message;
    }
}

// ---- Real captures -----------------------------------------------------------------------

fs::path shared_pcaps() {
    return fs::path(SENNINGEN_SHARED_DATA) / "pcaps";
}

CaptureFormat format_by_magic(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    char magic[4] = {};
    in.read(magic, 4);
    return magic[0] == 0x0a ? CaptureFormat::kPcapNg : CaptureFormat::kPcap;
}

TEST(PcapFileRealCaptures, MisnamedFilesAreDetectedByContent) {
    if (!fs::exists(shared_pcaps())) {
        GTEST_SKIP() << "shared data not present: " << shared_pcaps();
    }
    auto hart = detect_capture_format((shared_pcaps() / "ics/other/hart_ip.pcap").string());
    ASSERT_TRUE(hart) << hart.error().message;
    EXPECT_EQ(*hart, CaptureFormat::kPcapNg) << "pcapng despite its name";
    auto step7 =
        detect_capture_format((shared_pcaps() / "ics/s7comm/step7_s300_stop.pcapng").string());
    ASSERT_TRUE(step7) << step7.error().message;
    EXPECT_EQ(*step7, CaptureFormat::kPcap) << "classic pcap despite its name";
}

TEST(PcapFileRealCaptures, HttpDownloadDecodesCleanly) {
    const fs::path path = shared_pcaps() / "general/http-get-download/trace.pcap";
    if (!fs::exists(path)) {
        GTEST_SKIP() << "shared data not present: " << path;
    }
    auto file = PcapFile::open(path.string());
    ASSERT_TRUE(file) << file.error().message;
    std::map<DecodeStatus, int> statuses;
    RawPacket raw;
    std::int64_t last_ts = 0;
    for (;;) {
        auto more = (*file)->next(raw);
        ASSERT_TRUE(more) << more.error().message;
        if (!*more) {
            break;
        }
        EXPECT_GE(raw.ts_ns, last_ts);
        last_ts = raw.ts_ns;
        DecodedPacket p;
        ++statuses[decode_packet((*file)->linktype(), {raw.data, raw.caplen}, p)];
    }
    EXPECT_EQ((*file)->packets_read(), 14u);
    EXPECT_EQ(statuses[DecodeStatus::kOk], 14);
    EXPECT_EQ(statuses[DecodeStatus::kMalformed], 0);
    EXPECT_EQ(statuses[DecodeStatus::kTruncated], 0);
}

TEST(PcapFileRealCaptures, EveryCaptureReadsAndDecodes) {
    if (!fs::exists(shared_pcaps())) {
        GTEST_SKIP() << "shared data not present: " << shared_pcaps();
    }
    int files = 0;
    std::uint64_t packets = 0;
    std::uint64_t decoded = 0;
    for (const auto& entry : fs::recursive_directory_iterator(shared_pcaps())) {
        const std::string name = entry.path().filename().string();
        if (!entry.is_regular_file() || name.find(".pcap") == std::string::npos) {
            continue;
        }
        ++files;
        auto file = PcapFile::open(entry.path().string());
        ASSERT_TRUE(file) << file.error().message;
        EXPECT_EQ((*file)->format(), format_by_magic(entry.path())) << entry.path();
        RawPacket raw;
        for (;;) {
            auto more = (*file)->next(raw);
            ASSERT_TRUE(more) << more.error().message;
            if (!*more) {
                break;
            }
            DecodedPacket p;
            const DecodeStatus status =
                decode_packet((*file)->linktype(), {raw.data, raw.caplen}, p);
            decoded += status == DecodeStatus::kOk ? 1 : 0;
            // Zeek's general traces are clean; none of them may look broken to us.
            if (entry.path().string().find("/general/") != std::string::npos) {
                EXPECT_NE(status, DecodeStatus::kMalformed)
                    << entry.path() << " packet " << (*file)->packets_read();
                EXPECT_NE(status, DecodeStatus::kTruncated)
                    << entry.path() << " packet " << (*file)->packets_read();
            }
        }
        packets += (*file)->packets_read();
    }
    EXPECT_GT(files, 40);
    EXPECT_GT(packets, 1000u);
    EXPECT_GT(decoded, packets / 2);
    RecordProperty("files", files);
    RecordProperty("packets", static_cast<int>(packets));
}

}  // namespace
}  // namespace senningen::agent
