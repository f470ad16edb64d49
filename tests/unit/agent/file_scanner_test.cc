// Tests of file inspection with real files the tests make: digests on both read paths, YARA
// externals and modules, the outcomes that are counted instead of failing (FIFO, symlink,
// oversize, vanished, permission denied as a non-root child), the host's files left
// untouched, libyara's match limit, intel by hash and name, and the scan cache.
#include "senningen/agent/files/file_scanner.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <thread>

#include "senningen/agent/files/host_limits.h"
#include "senningen/agent/files/scan_cache.h"
#include "senningen/agent/files/scan_pool.h"

namespace senningen::agent::files {
namespace {

namespace fs = std::filesystem;

const fs::path kSharedData = SENNINGEN_SHARED_DATA;

// The EICAR test string, assembled at run time so that this source file is not itself a hit.
std::string eicar() {
    return std::string("X5O!P%@AP[4\\PZX54(P^)7CC)7}$") + "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!" +
           "$H+H*";
}

class FileScannerTest : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() /
               ("senningen-files-" + std::to_string(::getpid()) + "-" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(dir_);
        fs::create_directories(dir_);
    }
    void TearDown() override {
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }
    std::string write(const std::string& name, const std::string& content) {
        const fs::path path = dir_ / name;
        fs::create_directories(path.parent_path());
        std::ofstream(path, std::ios::binary) << content;
        return path.string();
    }
    static std::shared_ptr<YaraRules> compile(const std::string& source) {
        auto rules = YaraRules::compile_string(source, file_yara_externals());
        EXPECT_TRUE(rules) << (rules ? "" : rules.error().message);
        return rules ? *rules : nullptr;
    }

    fs::path dir_;
};

constexpr const char* kEicarRule =
    "rule eicar_test { meta: severity = 1 category = \"Test file\" "
    "strings: $e = \"EICAR-STANDARD-ANTIVIRUS-TEST-FILE\" condition: $e }";

TEST_F(FileScannerTest, DigestsAreRightOnTheReadAndTheMmapPath) {
    const std::string path = write("abc.txt", "abc");
    FileScanOptions small;
    FileScanner reader(nullptr, nullptr, small);
    const FileScanResult read = reader.scan(path);
    ASSERT_EQ(read.outcome, Outcome::kScanned) << read.reason;
    EXPECT_FALSE(read.mapped);
    EXPECT_EQ(read.facts.sha256,
              "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(read.facts.sha1, "a9993e364706816aba3e25717850c26c9cd0d89d");
    EXPECT_EQ(read.facts.md5, "900150983cd24fb0d6963f7d28e17f72");
    EXPECT_EQ(read.facts.identity.size, 3U);
    EXPECT_EQ(read.facts.owner, "root");

    FileScanOptions mapped;
    mapped.mmap_threshold = 1;
    FileScanner mapper(nullptr, nullptr, mapped);
    const FileScanResult map = mapper.scan(path);
    ASSERT_EQ(map.outcome, Outcome::kScanned) << map.reason;
    EXPECT_TRUE(map.mapped);
    EXPECT_EQ(map.facts.sha256, read.facts.sha256);
    EXPECT_EQ(map.facts.sha1, read.facts.sha1);
    EXPECT_EQ(map.facts.md5, read.facts.md5);
}

// A mapped file that a writer truncates while it is scanned: the pages past the new end would
// raise SIGBUS. The test hook truncates right after mmap, before any page was touched, so the
// signal is certain, not a race: inside libyara (which scans first) when there are rules, in
// the digests when there are none. (Pages already touched may stay mapped after a truncation,
// depending on the kernel; then the after-scan fstat reports the change instead.)
TEST_F(FileScannerTest, FileTruncatedWhileMappedIsChangedNotACrash) {
    // The second rule reads the file's last byte, far past the truncation point.
    auto rules = compile(std::string(kEicarRule) +
                         "\nrule last_byte { condition: uint8(filesize - 1) == 0x2a }");
    ASSERT_TRUE(rules);
    const std::string content = eicar() + std::string(256 * 1024, 'x') + eicar();
    for (const bool with_rules : {true, false}) {
        SCOPED_TRACE(with_rules ? "SIGBUS in libyara" : "SIGBUS in the digests");
        const std::string tag = with_rules ? "yara" : "digests";
        const std::string path = write("shrinking-" + tag + ".bin", content);
        FileScanOptions options;
        options.mmap_threshold = 1;
        int truncations = 0;
        options.test_hook = [&](std::string_view at, const std::string& p) {
            if (at != "mapped" || p != path) return;
            ASSERT_EQ(::truncate(p.c_str(), 4096), 0);
            ++truncations;
        };
        FileScanner scanner(with_rules ? rules : nullptr, nullptr, options);
        const FileScanResult shrunk = scanner.scan(path);
        EXPECT_EQ(truncations, 1);
        EXPECT_TRUE(shrunk.mapped);
        EXPECT_EQ(shrunk.outcome, Outcome::kChanged);
        // libyara catches the SIGBUS in its own scan and fails it; the digests (hash-only
        // mode) fault in the agent's handler.
        EXPECT_NE(shrunk.reason.find(with_rules ? "modified while it was read (YARA: "
                                                : "truncated while it was scanned"),
                  std::string::npos)
            << shrunk.reason;
        EXPECT_NE(shrunk.reason.find("SIGBUS"), std::string::npos) << shrunk.reason;
        // What was scanned is no version of the file: neither digests nor matches are kept
        // (eicar_test matched in the first page before the fault).
        EXPECT_TRUE(shrunk.alerts.empty());
        EXPECT_TRUE(shrunk.facts.sha256.empty());

        // The same scanner (and YR_SCANNER) goes on: the next file is scanned normally.
        const std::string next = write("next-" + tag + ".bin", content);
        const FileScanResult fine = scanner.scan(next);
        ASSERT_EQ(fine.outcome, Outcome::kScanned) << fine.reason;
        EXPECT_FALSE(fine.facts.sha256.empty());
        if (with_rules) {
            ASSERT_EQ(fine.alerts.size(), 2U);
            EXPECT_EQ(fine.alerts[0].rule, "eicar_test");
            EXPECT_EQ(fine.alerts[1].rule, "last_byte");
        }
    }
}

TEST_F(FileScannerTest, EicarMatchBecomesAFileAlertWithContextAndStrings) {
    const std::string path = write("drop/test.com", "padding " + eicar());
    FileScanOptions options;
    options.agent_id = "ews-01";
    for (std::uint64_t threshold : {std::uint64_t{1} << 30, std::uint64_t{1}}) {
        options.mmap_threshold = threshold;
        FileScanner scanner(compile(kEicarRule), nullptr, options);
        const FileScanResult result = scanner.scan(path);
        ASSERT_EQ(result.outcome, Outcome::kScanned) << result.reason;
        ASSERT_EQ(result.alerts.size(), 1U);
        const common::Alert& alert = result.alerts[0];
        EXPECT_EQ(alert.kind, common::AlertKind::kFile);
        EXPECT_EQ(alert.rule, "eicar_test");
        EXPECT_EQ(alert.severity, 1);
        EXPECT_EQ(alert.category, "Test file");
        EXPECT_EQ(alert.agent_id, "ews-01");
        ASSERT_TRUE(alert.file.has_value());
        EXPECT_EQ(alert.file->path, path);
        EXPECT_EQ(alert.file->size, 8 + eicar().size());
        EXPECT_EQ(alert.file->sha256, result.facts.sha256);
        EXPECT_EQ(alert.file->md5.size(), 32U);
        ASSERT_EQ(alert.matches.size(), 1U);
        EXPECT_EQ(alert.matches[0].identifier, "$e");
        EXPECT_EQ(alert.matches[0].offset, 8 + 28U);
        EXPECT_TRUE(common::validate(alert)) << common::validate(alert).error().message;
    }
}

TEST_F(FileScannerTest, SharedEicarSamplesMatchAsExpected) {
    const fs::path samples = kSharedData / "samples";
    if (!fs::exists(samples / "eicar.com")) {
        GTEST_SKIP() << "no EICAR samples in " << samples << " (shared data absent)";
    }
    // The Yara-Rules EICAR rule, as in the shared set, is a plain string match.
    FileScanner scanner(compile(kEicarRule), nullptr, FileScanOptions{});
    for (const char* name : {"eicar.com", "eicar_crlf.txt", "eicar_in_text_fullword.txt",
                             "eicar_embedded_nonfullword.txt"}) {
        const FileScanResult result = scanner.scan((samples / name).string());
        ASSERT_EQ(result.outcome, Outcome::kScanned) << name << ": " << result.reason;
        EXPECT_EQ(result.alerts.size(), 1U) << name;
    }
    const FileScanResult benign = scanner.scan((samples / "benign.txt").string());
    EXPECT_TRUE(benign.alerts.empty());
}

TEST_F(FileScannerTest, ExternalsDescribeEachFile) {
    const std::string path = write("sub/Dropper.EXE", std::string("MZ\x90\0", 4) + "payload");
    auto rules = compile(
        "rule ext { condition: filename == \"Dropper.EXE\" and extension == \".exe\" and "
        "filepath contains \"/sub/Dropper.EXE\" and filetype == \"EXE\" and owner == \"root\" }");
    FileScanner scanner(rules, nullptr, FileScanOptions{});
    const FileScanResult hit = scanner.scan(path);
    ASSERT_EQ(hit.outcome, Outcome::kScanned) << hit.reason;
    EXPECT_EQ(hit.alerts.size(), 1U);
    // Another name: the same rules do not match, so the externals follow each file.
    const FileScanResult miss = scanner.scan(write("sub/other.bin", "MZ plain"));
    EXPECT_TRUE(miss.alerts.empty());
}

TEST_F(FileScannerTest, FiletypeIsToldByMagicThenExtension) {
    EXPECT_EQ(detect_filetype("\x7f"
                              "ELF\x02",
                              "x"),
              "ELF");
    EXPECT_EQ(detect_filetype("<?php echo", "x.txt"), "PHP");
    EXPECT_EQ(detect_filetype("@echo off", "run.BAT"), "BATCH");
    EXPECT_EQ(detect_filetype("hello", "notes"), "");
}

TEST_F(FileScannerTest, ModulesPeElfMathHashAreAvailable) {
    // A real ELF executable of the host, copied so the test owns it.
    const std::string path = (dir_ / "true.elf").string();
    fs::copy_file("/bin/true", path);
    FileScanner hasher(nullptr, nullptr, FileScanOptions{});
    const std::string md5 = hasher.scan(path).facts.md5;
    auto rules = compile(
        "import \"pe\"\nimport \"elf\"\nimport \"math\"\nimport \"hash\"\n"
        "rule mods { condition: not pe.is_pe and elf.number_of_sections > 0 "
        "and math.entropy(0, filesize) < 8.0 and hash.md5(0, filesize) == \"" +
        md5 + "\" }");
    FileScanner scanner(rules, nullptr, FileScanOptions{});
    const FileScanResult result = scanner.scan(path);
    ASSERT_EQ(result.outcome, Outcome::kScanned) << result.reason;
    EXPECT_EQ(result.alerts.size(), 1U);
}

TEST_F(FileScannerTest, TooManyMatchesOfOneStringDoesNotAbortOtherRules) {
    const std::string path = write("many.bin", std::string(1'100'000, 'A') + "TAIL-MARKER");
    auto rules = compile(
        "rule noisy { strings: $a = \"A\" condition: $a }\n"
        "rule tail { strings: $t = \"TAIL-MARKER\" condition: $t }");
    FileScanOptions options;
    options.fast_mode = false;  // fast mode would stop at the first "A"
    FileScanner scanner(rules, nullptr, options);
    const FileScanResult result = scanner.scan(path);
    ASSERT_EQ(result.outcome, Outcome::kScanned) << result.reason;
    std::set<std::string> rules_hit;
    for (const auto& a : result.alerts) rules_hit.insert(a.rule);
    EXPECT_EQ(rules_hit, (std::set<std::string>{"noisy", "tail"}));
}

TEST_F(FileScannerTest, FastModeKeepsVerdictsAndCountedStrings) {
    const std::string path = write("repeat.txt", "evil evil evil evil evil");
    auto rules = compile(
        "rule any_evil { strings: $e = \"evil\" condition: $e }\n"
        "rule five_evil { strings: $e = \"evil\" condition: #e == 5 }");
    FileScanner fast(rules, nullptr, FileScanOptions{});
    FileScanOptions all_options;
    all_options.fast_mode = false;
    FileScanner all(rules, nullptr, all_options);
    const FileScanResult f = fast.scan(path);
    const FileScanResult a = all.scan(path);
    ASSERT_EQ(f.alerts.size(), 2U);
    ASSERT_EQ(a.alerts.size(), 2U);
    for (std::size_t i = 0; i < 2; ++i) {
        EXPECT_EQ(f.alerts[i].rule, a.alerts[i].rule);
        // A counted string keeps every match; an uncounted one only needs the first.
        const std::size_t expected_fast = f.alerts[i].rule == "five_evil" ? 5U : 1U;
        EXPECT_EQ(f.alerts[i].matches.size(), expected_fast) << f.alerts[i].rule;
        EXPECT_EQ(a.alerts[i].matches.size(), 5U);
    }
}

TEST_F(FileScannerTest, FifoIsSkippedWithoutBlocking) {
    const std::string path = (dir_ / "pipe").string();
    ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
    FileScanner scanner(compile(kEicarRule), nullptr, FileScanOptions{});
    const auto t0 = std::chrono::steady_clock::now();
    const FileScanResult result = scanner.scan(path);
    // Opening a FIFO for reading would wait for a writer forever; seconds mean it did not.
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
    EXPECT_EQ(result.outcome, Outcome::kNotRegular);
    EXPECT_NE(result.reason.find("FIFO"), std::string::npos) << result.reason;
}

TEST_F(FileScannerTest, SymlinkIsNeverFollowed) {
    const std::string target = write("real.txt", eicar());
    const std::string link = (dir_ / "link.txt").string();
    fs::create_symlink(target, link);
    FileScanner scanner(compile(kEicarRule), nullptr, FileScanOptions{});
    const FileScanResult result = scanner.scan(link);
    EXPECT_EQ(result.outcome, Outcome::kSymlink);
    EXPECT_TRUE(result.alerts.empty());
}

TEST_F(FileScannerTest, OversizeAndVanishedAreOutcomesWithReasons) {
    FileScanOptions options;
    options.max_file_size = 10;
    FileScanner scanner(compile(kEicarRule), nullptr, options);
    const FileScanResult big = scanner.scan(write("big.bin", std::string(100, 'x')));
    EXPECT_EQ(big.outcome, Outcome::kTooLarge);
    EXPECT_NE(big.reason.find("100 bytes"), std::string::npos) << big.reason;
    EXPECT_TRUE(big.facts.sha256.empty());
    const FileScanResult gone = scanner.scan((dir_ / "was-here").string());
    EXPECT_EQ(gone.outcome, Outcome::kVanished);
    EXPECT_FALSE(gone.reason.empty());
}

TEST_F(FileScannerTest, PermissionDeniedAsAnUnprivilegedUser) {
    const std::string path = write("secret.bin", eicar());
    ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
    ASSERT_EQ(::chmod(dir_.c_str(), 0755), 0);
    auto rules = compile(kEicarRule);
    // Tests run as root, which no permission stops: the check runs in a child that drops to
    // "nobody" first, and reports the outcome through its exit status.
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(100);
        FileScanner scanner(rules, nullptr, FileScanOptions{});
        const FileScanResult result = scanner.scan(path);
        ::_exit(static_cast<int>(result.outcome));
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_NE(WEXITSTATUS(status), 100) << "could not drop privileges";
    EXPECT_EQ(WEXITSTATUS(status), static_cast<int>(Outcome::kPermissionDenied));
}

TEST_F(FileScannerTest, ScanningLeavesTheFileAndItsTimesUntouched) {
    const std::string path = write("keep.txt", "content " + eicar());
    timespec times[2] = {{1'000'000, 0}, {2'000'000, 0}};  // atime, mtime far in the past
    ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
    struct stat before {};
    ASSERT_EQ(::stat(path.c_str(), &before), 0);
    FileScanner scanner(compile(kEicarRule), nullptr, FileScanOptions{});
    ASSERT_EQ(scanner.scan(path).alerts.size(), 1U);
    struct stat after {};
    ASSERT_EQ(::stat(path.c_str(), &after), 0);
    EXPECT_EQ(after.st_atim.tv_sec, before.st_atim.tv_sec);  // O_NOATIME
    EXPECT_EQ(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
    EXPECT_EQ(after.st_ctim.tv_sec, before.st_ctim.tv_sec);
    EXPECT_EQ(after.st_size, before.st_size);
}

TEST_F(FileScannerTest, IntelMatchesFileHashAndFileName) {
    const std::string path = write("tools/mimikatz.exe", "not really mimikatz");
    FileScanner hasher(nullptr, nullptr, FileScanOptions{});
    const std::string sha1 = hasher.scan(path).facts.sha1;
    std::string upper = sha1;
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    const std::string intel_path =
        write("intel.dat", "#fields\tindicator\tindicator_type\tmeta.source\tmeta.severity\n" +
                               upper + "\tIntel::FILE_HASH\tfeed-a\t1\n" +
                               "mimikatz.exe\tIntel::FILE_NAME\tfeed-b\t-\n");
    IntelStore intel;
    IntelLoadStats stats;
    ASSERT_TRUE(intel.load_file(intel_path, stats));
    EXPECT_EQ(stats.loaded, 2U);
    FileScanner scanner(nullptr, &intel, FileScanOptions{});
    const FileScanResult result = scanner.scan(path);
    ASSERT_EQ(result.alerts.size(), 2U);
    std::set<std::string> types;
    for (const auto& a : result.alerts) {
        EXPECT_EQ(a.source, common::RuleSource::kIntel);
        EXPECT_EQ(a.kind, common::AlertKind::kFile);
        ASSERT_TRUE(a.intel.has_value());
        types.insert(a.intel->indicator_type);
        if (a.intel->indicator_type == "Intel::FILE_HASH") {
            EXPECT_EQ(a.intel->indicator, sha1);
            EXPECT_EQ(a.severity, 1);
            EXPECT_EQ(a.intel->where, "Files::IN_HASH");
        }
        EXPECT_TRUE(common::validate(a)) << common::validate(a).error().message;
    }
    EXPECT_EQ(types, (std::set<std::string>{"Intel::FILE_HASH", "Intel::FILE_NAME"}));
}

// The digests cost a tenth of a scan: computed where an alert, FILE_HASH intel, hash-only
// mode or always_digest asks for them, skipped otherwise; the bytes read count either way.
TEST_F(FileScannerTest, DigestsOnlyWhereSomethingUsesThem) {
    const std::string clean = write("clean.txt", "abc");
    const std::string bad = write("bad.txt", eicar());
    auto rules = compile(kEicarRule);
    ASSERT_TRUE(rules);
    constexpr const char* kAbcSha256 =
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    FileScanner plain(rules, nullptr, FileScanOptions{});
    const FileScanResult skipped = plain.scan(clean);
    ASSERT_EQ(skipped.outcome, Outcome::kScanned) << skipped.reason;
    EXPECT_TRUE(skipped.facts.sha256.empty());
    EXPECT_TRUE(skipped.facts.sha1.empty());
    EXPECT_TRUE(skipped.facts.md5.empty());
    EXPECT_EQ(skipped.bytes_read, 3U);
    const FileScanResult alerted = plain.scan(bad);
    ASSERT_EQ(alerted.alerts.size(), 1U);
    EXPECT_EQ(alerted.facts.sha256.size(), 64U);
    ASSERT_TRUE(alerted.alerts[0].file.has_value());
    EXPECT_EQ(alerted.alerts[0].file->sha256, alerted.facts.sha256);
    EXPECT_EQ(alerted.alerts[0].file->md5.size(), 32U);

    FileScanOptions all;
    all.always_digest = true;
    FileScanner always(rules, nullptr, all);
    EXPECT_EQ(always.scan(clean).facts.sha256, kAbcSha256);

    // FILE_HASH indicators (any, even of other files) need every file's digests; FILE_NAME
    // indicators alone do not, but a file they name gets them for its alert.
    const std::string hashes = write(
        "hashes.dat", "#fields\tindicator\tindicator_type\n"
                      "0000000000000000000000000000000000000000\tIntel::FILE_HASH\n");
    const std::string names =
        write("names.dat", "#fields\tindicator\tindicator_type\nclean.txt\tIntel::FILE_NAME\n");
    IntelStore by_hash, by_name;
    IntelLoadStats stats;
    ASSERT_TRUE(by_hash.load_file(hashes, stats));
    ASSERT_TRUE(by_name.load_file(names, stats));
    FileScanner hash_intel(rules, &by_hash, FileScanOptions{});
    EXPECT_EQ(hash_intel.scan(clean).facts.sha256, kAbcSha256);
    FileScanner name_intel(rules, &by_name, FileScanOptions{});
    const FileScanResult named = name_intel.scan(clean);
    ASSERT_EQ(named.alerts.size(), 1U);
    EXPECT_EQ(named.alerts[0].file->sha256, kAbcSha256);
    const std::string other = write("other.txt", "abc");
    EXPECT_TRUE(name_intel.scan(other).facts.sha256.empty());
}

TEST_F(FileScannerTest, CacheSkipsUnchangedCleanFilesOnly) {
    const std::string clean = write("clean.txt", "nothing here");
    const std::string bad = write("bad.txt", eicar());
    ScanCache cache("pack-1");
    FileScanner scanner(compile(kEicarRule), nullptr, FileScanOptions{}, &cache);
    EXPECT_EQ(scanner.scan(clean).outcome, Outcome::kScanned);
    EXPECT_EQ(scanner.scan(clean).outcome, Outcome::kCached);
    // A file that matched is scanned (and reported) again every time.
    EXPECT_EQ(scanner.scan(bad).alerts.size(), 1U);
    EXPECT_EQ(scanner.scan(bad).outcome, Outcome::kScanned);
    // Any change of content makes it new.
    std::ofstream(clean, std::ios::app) << " more";
    EXPECT_EQ(scanner.scan(clean).outcome, Outcome::kScanned);
    EXPECT_EQ(cache.size(), 2U);  // the old and the new identity of clean.txt
}

TEST_F(FileScannerTest, CachePersistsAndIsDroppedForAnotherPackOrDamage) {
    const std::string file = (dir_ / "cache").string();
    ScanCache first("pack-1");
    first.insert({1, 2, 3, 4, 5});
    first.insert({6, 7, 8, 9, 10});
    ASSERT_TRUE(first.save(file));

    ScanCache same("pack-1");
    ASSERT_TRUE(same.load(file));
    EXPECT_EQ(same.size(), 2U);
    EXPECT_TRUE(same.contains({6, 7, 8, 9, 10}));
    EXPECT_FALSE(same.contains({6, 7, 8, 9, 11}));

    ScanCache other("pack-2");
    std::string note;
    ASSERT_TRUE(other.load(file, &note));
    EXPECT_EQ(other.size(), 0U);
    EXPECT_NE(note.find("pack-1"), std::string::npos) << note;

    std::string text;
    {
        std::ifstream in(file);
        text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    text[text.find("\n1 ") + 1] = '9';  // one digit flipped
    std::ofstream(file, std::ios::trunc) << text;
    ScanCache damaged("pack-1");
    const auto loaded = damaged.load(file);
    ASSERT_FALSE(loaded);
    EXPECT_NE(loaded.error().message.find("checksum"), std::string::npos);
    EXPECT_EQ(damaged.size(), 0U);
    EXPECT_TRUE(ScanCache("pack-1").load((dir_ / "none").string()));  // absent: empty, fine
}

// The pool hands out urgent paths first, then the largest queued file, so that no thread is
// left alone with a big file at the end of a scan. The sink holds the only thread on its first
// file until everything else is queued: the order that follows is the queue's, not a race.
TEST_F(FileScannerTest, PoolTakesUrgentThenLargestFilesFirst) {
    std::mutex m;
    std::condition_variable cv;
    bool all_queued = false;
    std::vector<std::string> order;
    PoolOptions po;
    po.threads = 1;
    po.idle_cpu = false;
    ScanPool pool(nullptr, nullptr, FileScanOptions{}, po, nullptr, [&](FileScanResult&& r) {
        std::unique_lock lock(m);
        order.push_back(fs::path(r.facts.path).filename().string());
        if (order.size() == 1) {
            cv.notify_all();
            cv.wait(lock, [&] { return all_queued; });
        }
    });
    pool.submit(write("first", "1"), false, 1);
    {
        // The thread holds "first" before anything else is queued.
        std::unique_lock lock(m);
        cv.wait(lock, [&] { return !order.empty(); });
    }
    const std::pair<const char*, std::size_t> files[] = {
        {"ten", 10}, {"thousand", 1000}, {"hundred", 100}, {"five-thousand", 5000}};
    for (const auto& [name, size] : files) {
        pool.submit(write(name, std::string(size, 'x')), false, size);
    }
    pool.submit(write("urgent", "u"), true, 1);
    {
        std::lock_guard lock(m);
        all_queued = true;
    }
    cv.notify_all();
    pool.wait_idle();
    pool.stop();
    EXPECT_EQ(order, (std::vector<std::string>{"first", "urgent", "five-thousand", "thousand",
                                               "hundred", "ten"}));
}

TEST(HostLimits, ThreadGoesToTheIdleIoClass) {
    std::string problem;
    int io_class = -1;
    std::thread t([&] {
        problem = lower_thread_priority(true, false);
        io_class = current_io_class();
    });
    t.join();
    EXPECT_EQ(problem, "");
    EXPECT_EQ(io_class, 3);
}

TEST(HostLimits, PacerKeepsCpuShareNearTheBudget) {
    CpuPacer pacer(20.0);
    const auto t0 = std::chrono::steady_clock::now();
    const std::int64_t cpu0 = thread_cpu_ns();
    volatile std::uint64_t sink = 0;
    for (int unit = 0; unit < 20; ++unit) {
        pacer.begin();
        const std::int64_t start = thread_cpu_ns();
        while (thread_cpu_ns() - start < 5'000'000) sink = sink + 1;  // 5 ms of work
        pacer.end();
    }
    const double wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double cpu = static_cast<double>(thread_cpu_ns() - cpu0) / 1e9;
    EXPECT_LT(cpu / wall, 0.30) << "cpu " << cpu << " s over " << wall << " s";
    EXPECT_GT(pacer.slept().count(), 0);
}

TEST(HostLimits, MemoryGateBoundsBytesInFlight) {
    MemoryGate gate(100);
    gate.acquire(60);
    std::atomic<bool> second_in{false};
    std::thread t([&] {
        gate.acquire(60);
        second_in = true;
        gate.release(60);
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_FALSE(second_in.load());
    gate.release(60);
    t.join();
    EXPECT_TRUE(second_in.load());
    EXPECT_LE(gate.peak(), 100U);
    gate.acquire(500);  // larger than the budget: granted alone rather than never
    EXPECT_EQ(gate.in_use(), 500U);
    gate.release(500);
}

}  // namespace
}  // namespace senningen::agent::files
