// Tests of the tree walk (symlinks never followed, loops and escapes reported, exclusions) and
// of the inotify watcher with real directories: a dropped file fires well within a second,
// modify / move in / delete, new subdirectories, non-recursive roots, and a queue overflow
// answered with a rescan of the tree. Also the watch config parser.
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "senningen/agent/files/tree_walk.h"
#include "senningen/agent/files/watch_config.h"
#include "senningen/agent/files/watcher.h"

namespace senningen::agent::files {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

class TempTree : public ::testing::Test {
protected:
    void SetUp() override {
        root_ = fs::temp_directory_path() /
                ("senningen-watch-" + std::to_string(::getpid()) + "-" +
                 ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(root_);
        fs::create_directories(root_);
        root_ = fs::canonical(root_);
    }
    void TearDown() override {
        std::error_code ec;
        fs::remove_all(root_, ec);
    }
    std::string write(const fs::path& path, const std::string& content = "x") {
        fs::create_directories(path.parent_path());
        std::ofstream(path, std::ios::binary) << content;
        return path.string();
    }
    fs::path root_;
};

using TreeWalk = TempTree;

TEST_F(TreeWalk, SymlinksAreReportedNeverFollowed) {
    write(root_ / "a.txt");
    write(root_ / "sub" / "b.txt");
    fs::create_directory_symlink(root_ / "sub", root_ / "inside");  // target in the tree
    fs::create_directory_symlink("/etc", root_ / "escape");         // target outside
    fs::create_symlink(root_ / "loop2", root_ / "loop1");           // a loop of links
    fs::create_symlink(root_ / "loop1", root_ / "loop2");
    fs::create_directory_symlink(root_, root_ / "sub" / "up");  // an ancestor
    std::vector<std::string> files;
    std::map<std::string, std::string> skipped;
    WalkCallbacks cb;
    cb.file = [&](std::string p, std::uint64_t /*size*/) { files.push_back(std::move(p)); };
    cb.skip = [&](const std::string& p, Outcome o, const std::string& why) {
        EXPECT_EQ(o, Outcome::kSymlink) << p;
        skipped[fs::path(p).filename().string()] = why;
    };
    const WalkCounters c = walk_tree(root_.string(), WalkOptions{}, cb);
    std::sort(files.begin(), files.end());
    EXPECT_EQ(files, (std::vector<std::string>{(root_ / "a.txt").string(),
                                               (root_ / "sub" / "b.txt").string()}));
    EXPECT_EQ(c.directories, 2U);
    ASSERT_EQ(skipped.size(), 5U);
    EXPECT_NE(skipped["escape"].find("out of the tree"), std::string::npos) << skipped["escape"];
    EXPECT_NE(skipped["loop1"].find("loop"), std::string::npos) << skipped["loop1"];
    EXPECT_NE(skipped["inside"].find("scanned where it lives"), std::string::npos);
    EXPECT_NE(skipped["up"].find("scanned where it lives"), std::string::npos);
}

TEST_F(TreeWalk, FifoIsReportedAndExclusionsPruneTheTree) {
    write(root_ / "keep.bin");
    write(root_ / "app.log");
    write(root_ / "cache" / "deep" / "c.bin");
    ASSERT_EQ(::mkfifo((root_ / "pipe").c_str(), 0600), 0);
    std::vector<std::string> files;
    std::vector<std::pair<std::string, Outcome>> skipped;
    WalkCallbacks cb;
    cb.file = [&](std::string p, std::uint64_t /*size*/) { files.push_back(std::move(p)); };
    cb.skip = [&](const std::string& p, Outcome o, const std::string&) {
        skipped.emplace_back(p, o);
    };
    WalkOptions options;
    options.excludes = {"*.log", (root_ / "cache").string()};
    const WalkCounters c = walk_tree(root_.string(), options, cb);
    EXPECT_EQ(files, (std::vector<std::string>{(root_ / "keep.bin").string()}));
    ASSERT_EQ(skipped.size(), 1U);
    EXPECT_EQ(skipped[0].second, Outcome::kNotRegular);
    EXPECT_EQ(c.excluded, 2U);
    EXPECT_TRUE(is_excluded("/srv/x/cache/a", {"/srv/*/cache/*"}));
    EXPECT_FALSE(is_excluded("/srv/x/data.bin", {"*.log", "/tmp/*"}));
}

using WatcherTest = TempTree;

struct Fired {
    std::vector<std::pair<std::string, Clock::time_point>> files;
    std::vector<std::string> trees;
    bool has(const fs::path& p) const {
        return std::any_of(files.begin(), files.end(),
                           [&](const auto& f) { return f.first == p.string(); });
    }
};

// Polls until PRED holds or LIMIT passes.
template <typename Pred>
bool poll_until(Watcher& w, Pred pred, std::chrono::milliseconds limit = std::chrono::seconds(3)) {
    const auto end = Clock::now() + limit;
    while (Clock::now() < end) {
        w.poll(std::chrono::milliseconds(20));
        if (pred()) return true;
    }
    return false;
}

std::unique_ptr<Watcher> make_watcher(const fs::path& root, Fired& fired, bool recursive = true,
                                      int debounce_ms = 100) {
    WatcherOptions options;
    options.roots = {{root.string(), recursive}};
    options.debounce = std::chrono::milliseconds(debounce_ms);
    options.excludes = {"*.tmp"};
    return std::make_unique<Watcher>(
        options, [&fired](const std::string& p) { fired.files.emplace_back(p, Clock::now()); },
        [&fired](const std::string& d) { fired.trees.push_back(d); });
}

TEST_F(WatcherTest, DroppedFileFiresWellWithinASecond) {
    Fired fired;
    auto watcher = make_watcher(root_, fired);
    ASSERT_TRUE(watcher->start());
    const auto dropped = Clock::now();
    write(root_ / "dropper.exe", "MZ");
    ASSERT_TRUE(poll_until(*watcher, [&] { return fired.has(root_ / "dropper.exe"); }));
    const auto latency = fired.files[0].second - dropped;
    EXPECT_LT(latency, std::chrono::seconds(1));
    EXPECT_GE(latency, std::chrono::milliseconds(100));  // the debounce held it back
    EXPECT_EQ(fired.files.size(), 1U);                   // create + write + close: one trigger
}

TEST_F(WatcherTest, ModifyMoveInAndDelete) {
    const std::string existing = write(root_ / "project.cfg", "v1");
    const fs::path outside = root_.string() + "-outside";
    fs::create_directories(outside);
    write(outside / "incoming.bin", "payload");
    Fired fired;
    auto watcher = make_watcher(root_, fired);
    ASSERT_TRUE(watcher->start());

    std::ofstream(existing, std::ios::app) << "v2";  // modify
    ASSERT_TRUE(poll_until(*watcher, [&] { return fired.has(existing); }));

    fs::rename(outside / "incoming.bin", root_ / "incoming.bin");  // move in
    ASSERT_TRUE(poll_until(*watcher, [&] { return fired.has(root_ / "incoming.bin"); }));

    // Written and deleted within the debounce: nothing to scan, the removal is counted.
    write(root_ / "short-lived.bin");
    fs::remove(root_ / "short-lived.bin");
    write(root_ / "ignored.tmp");  // excluded
    ASSERT_TRUE(poll_until(*watcher, [&] { return watcher->counters().removed >= 1; }));
    poll_until(
        *watcher, [] { return false; }, std::chrono::milliseconds(300));
    EXPECT_FALSE(fired.has(root_ / "short-lived.bin"));
    EXPECT_FALSE(fired.has(root_ / "ignored.tmp"));
    EXPECT_EQ(watcher->pending(), 0U);
    fs::remove_all(outside);
}

TEST_F(WatcherTest, NewSubdirectoriesAreWatchedAndWalked) {
    Fired fired;
    auto watcher = make_watcher(root_, fired);
    ASSERT_TRUE(watcher->start());
    EXPECT_EQ(watcher->counters().watches, 1U);
    fs::create_directories(root_ / "new" / "deeper");
    ASSERT_TRUE(poll_until(*watcher, [&] { return watcher->counters().watches >= 3; }));
    EXPECT_FALSE(fired.trees.empty());  // files that landed before the watch get walked
    write(root_ / "new" / "deeper" / "tool.elf");
    ASSERT_TRUE(
        poll_until(*watcher, [&] { return fired.has(root_ / "new" / "deeper" / "tool.elf"); }));
}

TEST_F(WatcherTest, NonRecursiveRootIgnoresSubdirectories) {
    fs::create_directories(root_ / "sub");
    Fired fired;
    auto watcher = make_watcher(root_, fired, false);
    ASSERT_TRUE(watcher->start());
    EXPECT_EQ(watcher->counters().watches, 1U);
    write(root_ / "sub" / "x.bin");
    write(root_ / "top.bin");
    ASSERT_TRUE(poll_until(*watcher, [&] { return fired.has(root_ / "top.bin"); }));
    EXPECT_FALSE(fired.has(root_ / "sub" / "x.bin"));
}

TEST_F(WatcherTest, QueueOverflowRescansTheTree) {
    Fired fired;
    auto watcher = make_watcher(root_, fired);
    ASSERT_TRUE(watcher->start());
    // Nobody reads while more events arrive than the kernel queues (max_queued_events).
    long queued = 16384;
    std::ifstream("/proc/sys/fs/inotify/max_queued_events") >> queued;
    const long files = queued / 2 + 1000;  // each file: IN_CREATE and IN_CLOSE_WRITE
    for (long i = 0; i < files; ++i) {
        std::FILE* f = std::fopen((root_ / ("f" + std::to_string(i))).c_str(), "w");
        ASSERT_NE(f, nullptr);
        std::fclose(f);
    }
    ASSERT_TRUE(poll_until(*watcher, [&] { return watcher->counters().overflows >= 1; }));
    ASSERT_FALSE(fired.trees.empty());
    EXPECT_EQ(fired.trees.back(), root_.string());
}

TEST(InotifyLimits, MaxUserWatchesIsReadable) {
    EXPECT_GT(inotify_max_user_watches(), 0);
}

TEST(WatchConfig, ParsesEveryKey) {
    const std::string text =
        "# comment\n"
        "watch = /srv/scada\n"
        "watch_flat = /tmp\n"
        "exclude = *.log\n"
        "rules = sb=/etc/senningen/rules\n"
        "intel = /etc/senningen/intel.dat\n"
        "output = /var/log/x.jsonl\n"
        "collector = 10.0.0.1:9999\n"
        "agent_id = ews-7\n"
        "identity = /var/lib/senningen/agent\n"
        "queue = /var/lib/senningen/agent/files-queue.db\n"
        "insecure = no\n"
        "triggers = close_write, create\n"
        "debounce_ms = 250\n"
        "max_file_size = 16M\n"
        "mmap_threshold = 1M\n"
        "scan_on_start = false\n"
        "full_scan_interval = 12h\n"
        "cache_file = /var/lib/senningen/cache\n"
        "cache_save_interval = 10m\n"
        "threads = 2\n"
        "cpu_percent = 10\n"
        "io_idle = yes\n"
        "cpu_idle = no\n"
        "memory_limit = 64M\n"
        "file_timeout = 5\n";
    auto c = parse_watch_config(text, "t.conf");
    ASSERT_TRUE(c) << c.error().message;
    ASSERT_EQ(c->roots.size(), 2U);
    EXPECT_TRUE(c->roots[0].recursive);
    EXPECT_FALSE(c->roots[1].recursive);
    EXPECT_EQ(c->rules[0], "sb=/etc/senningen/rules");
    EXPECT_TRUE(c->triggers.close_write && c->triggers.create && !c->triggers.moved_to);
    EXPECT_EQ(c->debounce_ms, 250);
    EXPECT_EQ(c->max_file_size, 16ULL << 20);
    EXPECT_EQ(c->full_scan_interval_s, 12 * 3600);
    EXPECT_EQ(c->cache_save_interval_s, 600);
    EXPECT_FALSE(c->scan_on_start);
    EXPECT_FALSE(c->cpu_idle);
    EXPECT_EQ(c->threads, 2);
    EXPECT_EQ(c->memory_limit, 64ULL << 20);
    EXPECT_EQ(*c->collector, "10.0.0.1:9999");
    EXPECT_EQ(c->identity, "/var/lib/senningen/agent");
    EXPECT_EQ(c->queue, "/var/lib/senningen/agent/files-queue.db");
    EXPECT_FALSE(c->insecure);
}

TEST(WatchConfig, EveryProblemIsReportedAtOnceWithItsLine) {
    const std::string text =
        "watch = relative/path\n"
        "threads = 99\n"
        "triggers = close_write, on_tuesday\n"
        "colour = blue\n"
        "just words\n"
        "max_file_size = lots\n";
    auto c = parse_watch_config(text, "bad.conf");
    ASSERT_FALSE(c);
    const std::string& m = c.error().message;
    for (const char* expected :
         {"bad.conf:1: watch = 'relative/path' is not an absolute path",
          "bad.conf:2: threads = '99' is not 1..32", "bad.conf:3: unknown trigger 'on_tuesday'",
          "bad.conf:4: unknown key 'colour'", "bad.conf:5: expected 'key = value'",
          "bad.conf:6: max_file_size = 'lots' is not a size", "bad.conf: no 'watch'",
          "neither 'rules' nor 'intel'"}) {
        EXPECT_NE(m.find(expected), std::string::npos) << "missing: " << expected << "\nin:\n" << m;
    }
}

TEST(WatchConfig, ShippedTemplateDocumentsEveryKeyAndParses) {
    std::ifstream in(std::string(SENNINGEN_SOURCE_DIR) +
                     "/packaging/senningen-agent.conf.template");
    ASSERT_TRUE(in) << "packaging/senningen-agent.conf.template is missing";
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (const char* key : {"watch",         "watch_flat",
                            "exclude",       "triggers",
                            "debounce_ms",   "max_file_size",
                            "scan_on_start", "full_scan_interval",
                            "cache_file",    "cache_save_interval",
                            "rules",         "intel",
                            "output",        "collector",
                            "agent_id",      "tls_cert",
                            "tls_key",       "tls_ca",
                            "threads",       "cpu_percent",
                            "io_idle",       "cpu_idle",
                            "memory_limit",  "mmap_threshold",
                            "file_timeout",  "identity",
                            "insecure",      "queue"}) {
        const bool documented = text.find("\n" + std::string(key) + " =") != std::string::npos ||
                                text.find("\n#" + std::string(key) + " =") != std::string::npos;
        EXPECT_TRUE(documented) << key << " is not in the template";
    }
    // The defaults it states are the parser's defaults.
    auto parsed = parse_watch_config(text + "watch = /srv\nrules = /etc/r.yar\n", "template");
    ASSERT_TRUE(parsed) << parsed.error().message;
    const WatchConfig defaults;
    EXPECT_EQ(parsed->debounce_ms, defaults.debounce_ms);
    EXPECT_EQ(parsed->max_file_size, defaults.max_file_size);
    EXPECT_EQ(parsed->full_scan_interval_s, defaults.full_scan_interval_s);
    EXPECT_EQ(parsed->cache_save_interval_s, defaults.cache_save_interval_s);
    EXPECT_EQ(parsed->cpu_percent, defaults.cpu_percent);
    EXPECT_EQ(parsed->memory_limit, defaults.memory_limit);
    EXPECT_EQ(parsed->mmap_threshold, defaults.mmap_threshold);
    EXPECT_EQ(parsed->file_timeout_s, defaults.file_timeout_s);
    EXPECT_EQ(parsed->threads, defaults.threads);
    EXPECT_EQ(parsed->triggers.close_write, defaults.triggers.close_write);
    EXPECT_EQ(parsed->triggers.moved_to, defaults.triggers.moved_to);
    EXPECT_EQ(parsed->triggers.create, defaults.triggers.create);
}

}  // namespace
}  // namespace senningen::agent::files
