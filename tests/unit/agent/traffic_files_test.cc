// Files from traffic through the whole engine: one-pass MD5/SHA-1/SHA-256 agree with the
// reference digests of the shared http-get-download capture (and so with Zeek's files.log),
// extraction honours its size cap, and intel hits on files carry the file's facts.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <Poco/JSON/Parser.h>

#include "senningen/agent/capture/pcap_file.h"
#include "senningen/agent/engine/engine.h"

namespace senningen::agent {
namespace {

namespace fs = std::filesystem;

struct CaptureRun {
    std::vector<Poco::JSON::Object::Ptr> records;
    std::vector<common::Alert> alerts;
    std::vector<std::string> intel_log;
};

CaptureRun run_capture(const std::string& path, EngineOptions options, const IntelStore* intel) {
    CaptureRun run;
    Engine engine(std::move(options), nullptr, intel,
                  [&](common::Alert&& a) { run.alerts.push_back(std::move(a)); });
    engine.set_record_sink([&](const std::string& line) {
        run.records.push_back(Poco::JSON::Parser().parse(line).extract<Poco::JSON::Object::Ptr>());
    });
    engine.set_intel_log_sink([&](const std::string& line) { run.intel_log.push_back(line); });
    auto file = PcapFile::open(path);
    EXPECT_TRUE(file) << path;
    if (!file) return run;
    RawPacket packet;
    while (true) {
        auto more = (*file)->next(packet);
        if (!more || !*more) break;
        engine.process(packet, (*file)->linktype());
    }
    engine.finish();
    return run;
}

std::vector<Poco::JSON::Object::Ptr> files_of(const CaptureRun& run) {
    std::vector<Poco::JSON::Object::Ptr> out;
    for (const auto& r : run.records) {
        if (r->getValue<std::string>("event_type") == "files") out.push_back(r->getObject("files"));
    }
    return out;
}

const std::string kDownload =
    std::string(SENNINGEN_SHARED_DATA) + "/pcaps/general/http-get-download/trace.pcap";
const std::string kGolden =
    std::string(SENNINGEN_SOURCE_DIR) + "/tests/golden/it-analyzers/input.pcap";

TEST(TrafficFiles, HttpBodyDigestsMatchTheReference) {
    if (!fs::exists(kDownload)) GTEST_SKIP() << "shared corpus not present: " << kDownload;
    const CaptureRun run = run_capture(kDownload, EngineOptions{}, nullptr);
    const auto files = files_of(run);
    ASSERT_EQ(files.size(), 1U);
    EXPECT_EQ(files[0]->getValue<std::uint64_t>("seen_bytes"), 4705U);
    EXPECT_EQ(files[0]->getValue<std::string>("md5"), "397168fd09991a0e712254df7bc639ac");
    EXPECT_EQ(files[0]->getValue<std::string>("sha1"), "1dd7ac0398df6cbc0696445a91ec681facf4dc47");
    EXPECT_EQ(files[0]->getValue<std::string>("sha256"),
              "4e7c7ef0984119447e743e3ec77e1de52713e345cde03fe7df753a35849bed18");
    EXPECT_EQ(files[0]->getValue<std::string>("source"), "HTTP");
    EXPECT_EQ(files[0]->getValue<std::string>("mime_type"), "text/plain");
}

TEST(TrafficFiles, ExtractionWritesFilesAndCutsAtTheCap) {
    const fs::path dir = fs::temp_directory_path() / ("senningen-extract-" + std::to_string(getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    EngineOptions options;
    options.extract_dir = dir.string();
    options.extract_max_bytes = 100;
    const CaptureRun run = run_capture(kGolden, options, nullptr);
    const auto files = files_of(run);
    ASSERT_FALSE(files.empty());
    std::size_t cut = 0;
    for (const auto& f : files) {
        ASSERT_TRUE(f->has("extracted"));
        const fs::path path = dir / f->getValue<std::string>("extracted");
        ASSERT_TRUE(fs::exists(path)) << path;
        const auto seen = f->getValue<std::uint64_t>("seen_bytes");
        EXPECT_EQ(fs::file_size(path), std::min<std::uint64_t>(seen, 100));
        EXPECT_EQ(f->getValue<bool>("extracted_cutoff"), seen > 100);
        if (seen > 100) ++cut;
    }
    EXPECT_GT(cut, 0U) << "the capture has files over 100 bytes";
    // Names are sanitised: no path separators leave the directory.
    for (const auto& entry : fs::directory_iterator(dir)) {
        EXPECT_EQ(entry.path().parent_path(), dir);
    }
    fs::remove_all(dir);
}

TEST(TrafficFiles, FileIntelHitsCarryTheFileAndGoToIntelLog) {
    const fs::path dir = fs::temp_directory_path() / ("senningen-fintel-" + std::to_string(getpid()));
    fs::create_directories(dir);
    const fs::path intel_path = dir / "intel.dat";
    std::ofstream(intel_path) << "#fields\tindicator\tindicator_type\tmeta.source\n"
                                 "report-Q3.pdf\tIntel::FILE_NAME\tunit\n";
    IntelStore intel;
    IntelLoadStats stats;
    ASSERT_TRUE(intel.load_file(intel_path.string(), stats));
    const CaptureRun run = run_capture(kGolden, EngineOptions{}, &intel);
    ASSERT_EQ(run.alerts.size(), 1U);
    const common::Alert& alert = run.alerts[0];
    ASSERT_TRUE(alert.intel);
    EXPECT_EQ(alert.intel->where, "Files::IN_NAME");
    ASSERT_TRUE(alert.file);
    EXPECT_EQ(alert.file->path, "report-Q3.pdf");
    EXPECT_EQ(alert.file->sha256.size(), 64U);
    ASSERT_TRUE(common::validate(alert));
    ASSERT_EQ(run.intel_log.size(), 1U);
    // Zeek's intel.log columns: 15 of them, the file's id, type and description at the end.
    std::vector<std::string> cols;
    std::size_t start = 0;
    const std::string& line = run.intel_log[0];
    for (std::size_t tab; (tab = line.find('\t', start)) != std::string::npos; start = tab + 1) {
        cols.push_back(line.substr(start, tab - start));
    }
    cols.push_back(line.substr(start));
    ASSERT_EQ(cols.size(), 15U);
    EXPECT_EQ(cols[6], "report-Q3.pdf");
    EXPECT_EQ(cols[7], "Intel::FILE_NAME");
    EXPECT_EQ(cols[8], "Files::IN_NAME");
    EXPECT_EQ(cols[11], "unit");
    EXPECT_EQ(cols[12].front(), 'F');
    EXPECT_EQ(cols[13], "application/pdf");
    fs::remove_all(dir);
}

// Zeek's Intel::seen: an observation matches every item it can (an address, and each listed
// subnet holding it) and makes one intel.log line and one alert; any whitelisted item silences
// it; every type but addresses and subnets is compared without case.
TEST(TrafficFiles, AnObservationIsOneLineOverEveryItemItMatched) {
    const fs::path dir = fs::temp_directory_path() / ("senningen-seen-" + std::to_string(getpid()));
    fs::create_directories(dir);
    const fs::path intel_path = dir / "intel.dat";
    std::ofstream(intel_path) << "#fields\tindicator\tindicator_type\tmeta.source\tmeta.whitelist\n"
                                 "192.0.2.50\tIntel::ADDR\tunitA\t-\n"
                                 "192.0.2.50/31\tIntel::SUBNET\tunitB\t-\n"
                                 "198.51.100.0/24\tIntel::SUBNET\tunitC\t-\n"
                                 "198.51.0.0/16\tIntel::SUBNET\tunitD\tT\n"
                                 "REPORT-q3.PDF\tIntel::FILE_NAME\tunitE\t-\n";
    IntelStore intel;
    IntelLoadStats stats;
    ASSERT_TRUE(intel.load_file(intel_path.string(), stats));
    const CaptureRun run = run_capture(kGolden, EngineOptions{}, &intel);
    const auto columns = [](const std::string& line) {
        std::vector<std::string> cols;
        std::size_t start = 0;
        for (std::size_t tab; (tab = line.find('\t', start)) != std::string::npos;
             start = tab + 1) {
            cols.push_back(line.substr(start, tab - start));
        }
        cols.push_back(line.substr(start));
        return cols;
    };
    std::vector<std::vector<std::string>> lines;
    for (const auto& line : run.intel_log) lines.push_back(columns(line));
    ASSERT_EQ(lines.size(), 2U) << "198.51.100.0/24 is silenced by the whitelisted /16";
    EXPECT_EQ(run.alerts.size(), 2U);
    // The file name as it was seen, matched without case.
    EXPECT_EQ(lines[0][6], "report-Q3.pdf");
    EXPECT_EQ(lines[0][8], "Files::IN_NAME");
    EXPECT_EQ(lines[0][10], "Intel::FILE_NAME");
    // The SMB client (later in the capture): its address and the /31 holding it, in one line.
    EXPECT_EQ(lines[1][6], "192.0.2.50");
    EXPECT_EQ(lines[1][7], "Intel::ADDR");
    EXPECT_EQ(lines[1][8], "Conn::IN_ORIG");
    EXPECT_EQ(lines[1][10], "Intel::ADDR,Intel::SUBNET");
    EXPECT_EQ(lines[1][11], "unitA,unitB");
    for (const auto& alert : run.alerts) ASSERT_TRUE(common::validate(alert));
    fs::remove_all(dir);
}

// Every file of CAPTURE run with FILE_HASHES (and INTEL): which of md5/sha1/sha256 it has.
std::vector<std::string> digest_names(const CaptureRun& run) {
    std::vector<std::string> out;
    for (const auto& f : files_of(run)) {
        std::string names;
        for (const char* name : {"md5", "sha1", "sha256"}) {
            if (f->has(name)) names += std::string(names.empty() ? "" : ",") + name;
        }
        out.push_back(names);
    }
    return out;
}

TEST(TrafficFiles, OnlyTheDigestsAskedForAreComputed) {
    const CaptureRun all = run_capture(kGolden, EngineOptions{}, nullptr);
    const auto all_files = files_of(all);
    ASSERT_FALSE(all_files.empty());
    for (const auto& names : digest_names(all)) EXPECT_EQ(names, "md5,sha1,sha256");

    EngineOptions sha256_only;
    sha256_only.file_hashes = kFileHashSha256;
    const CaptureRun some = run_capture(kGolden, sha256_only, nullptr);
    const auto some_files = files_of(some);
    ASSERT_EQ(some_files.size(), all_files.size());
    for (const auto& names : digest_names(some)) EXPECT_EQ(names, "sha256");
    for (std::size_t i = 0; i < some_files.size(); ++i) {
        EXPECT_EQ(some_files[i]->getValue<std::string>("sha256"),
                  all_files[i]->getValue<std::string>("sha256"));
    }

    EngineOptions none;
    none.file_hashes = 0;
    const CaptureRun bare = run_capture(kGolden, none, nullptr);
    ASSERT_EQ(files_of(bare).size(), all_files.size());
    for (const auto& names : digest_names(bare)) EXPECT_EQ(names, "");
}

TEST(TrafficFiles, FileHashIntelGetsItsDigestWhateverTheOptionsSay) {
    // The MD5 of one of the capture's files, then that MD5 as an indicator, with no digests
    // asked for: the intel's own need still computes MD5, and only MD5.
    const auto files = files_of(run_capture(kGolden, EngineOptions{}, nullptr));
    ASSERT_FALSE(files.empty());
    const std::string md5 = files.back()->getValue<std::string>("md5");
    const fs::path dir = fs::temp_directory_path() / ("senningen-fhash-" + std::to_string(getpid()));
    fs::create_directories(dir);
    const fs::path intel_path = dir / "intel.dat";
    std::ofstream(intel_path) << "#fields\tindicator\tindicator_type\tmeta.source\n"
                              << md5 << "\tIntel::FILE_HASH\tunit\n";
    IntelStore intel;
    IntelLoadStats stats;
    ASSERT_TRUE(intel.load_file(intel_path.string(), stats));
    EXPECT_EQ(intel.file_hash_kinds(), unsigned{kFileHashMd5});
    EngineOptions none;
    none.file_hashes = 0;
    const CaptureRun run = run_capture(kGolden, none, &intel);
    for (const auto& names : digest_names(run)) EXPECT_EQ(names, "md5");
    // One hit per file with those bytes (the capture carries some files twice).
    const auto same = std::count_if(files.begin(), files.end(), [&](const auto& f) {
        return f->template getValue<std::string>("md5") == md5;
    });
    ASSERT_EQ(run.alerts.size(), static_cast<std::size_t>(same));
    for (const common::Alert& alert : run.alerts) {
        ASSERT_TRUE(alert.intel);
        EXPECT_EQ(alert.intel->where, "Files::IN_HASH");
        EXPECT_EQ(alert.intel->indicator, md5);
    }
    fs::remove_all(dir);
}

TEST(TrafficFiles, IntelLogHeaderHasZeeksFields) {
    const std::string header = intel_log_header("2026-01-01-00-00-00");
    EXPECT_NE(header.find("#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\t"
                          "seen.indicator\tseen.indicator_type\tseen.where\tseen.node\tmatched\t"
                          "sources\tfuid\tfile_mime_type\tfile_desc\n"),
              std::string::npos);
    EXPECT_NE(header.find("#path\tintel\n"), std::string::npos);
    EXPECT_EQ(zeek_uid(1).front(), 'C');
    EXPECT_EQ(zeek_uid(12345), zeek_uid(12345));
    EXPECT_NE(zeek_uid(12345), zeek_uid(12346));
}

}  // namespace
}  // namespace senningen::agent
