// Watching directories with inotify, directly (Poco's DirectoryWatcher keeps a thread and a
// full directory listing per watched directory, which does not scale to 100,000 files).
// One inotify instance per configured root, so that a queue overflow names the tree to scan
// again. Recursive roots get a watch on every directory, and new subdirectories get theirs as
// they appear (and are walked, since files may land in them before the watch exists). File
// events are debounced: a path fires once it has been quiet for the debounce interval. When
// the kernel's watch limit (fs.inotify.max_user_watches) is reached the agent says so, names
// the limit and the directory, and goes on: the scheduled full scans still cover that part.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "senningen/common/result.h"

namespace senningen::agent::files {

struct WatchRoot {
    std::string path;  // canonical (absolute, no symlinks)
    bool recursive = true;
};

struct WatchTriggers {
    bool close_write = true;  // a file opened for writing was closed
    bool moved_to = true;     // a file was moved (renamed) into a watched directory
    bool create = false;      // a file was created (it may still be being written)
};

struct WatcherOptions {
    std::vector<WatchRoot> roots;
    std::vector<std::string> excludes;  // globs, as is_excluded()
    WatchTriggers triggers;
    std::chrono::milliseconds debounce{500};
};

struct WatcherCounters {
    std::uint64_t watches = 0;         // directories watched now
    std::uint64_t watch_failures = 0;  // directories that could not be watched
    std::uint64_t limit_reached = 0;   // of those, because of max_user_watches
    std::uint64_t events = 0;
    std::uint64_t overflows = 0;    // IN_Q_OVERFLOW, each answered with a rescan
    std::uint64_t files_fired = 0;  // debounced file triggers handed on
    std::uint64_t removed = 0;      // deleted or moved away (pending triggers dropped)
    std::uint64_t directories_added = 0;
};

// fs.inotify.max_user_watches, or -1 when it cannot be read.
long inotify_max_user_watches();

class Watcher {
public:
    using FileFn = std::function<void(const std::string& path)>;
    using TreeFn = std::function<void(const std::string& dir)>;

    // ON_FILE: a file to scan. ON_TREE: a directory tree to walk and scan (a new
    // subdirectory, or a whole root after a queue overflow).
    Watcher(WatcherOptions options, FileFn on_file, TreeFn on_tree);
    ~Watcher();
    Watcher(const Watcher&) = delete;
    Watcher& operator=(const Watcher&) = delete;

    // Creates the inotify instances and the watches. A root that is not a directory, or an
    // instance that cannot be created: an Error naming the root. Directories that cannot be
    // watched are counted and logged, not fatal.
    common::Result<void> start();

    // Waits at most MAX_WAIT for events (less when a debounced file falls due), handles what
    // arrived, and hands on the files that are due.
    void poll(std::chrono::milliseconds max_wait);

    WatcherCounters counters() const { return counters_; }
    std::size_t pending() const { return pending_.size(); }

private:
    struct Instance {
        WatchRoot root;
        int fd = -1;
        std::unordered_map<int, std::string> dirs;  // watch descriptor -> directory
    };

    void add_tree(Instance& instance, const std::string& dir);
    bool add_watch(Instance& instance, const std::string& dir);
    void read_events(Instance& instance);
    void fire_due(std::chrono::steady_clock::time_point now);

    WatcherOptions options_;
    FileFn on_file_;
    TreeFn on_tree_;
    std::vector<std::unique_ptr<Instance>> instances_;
    std::map<std::string, std::chrono::steady_clock::time_point> pending_;
    WatcherCounters counters_;
    bool limit_logged_ = false;
};

}  // namespace senningen::agent::files
