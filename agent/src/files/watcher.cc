#include "senningen/agent/files/watcher.h"

#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <utility>

#include "senningen/agent/files/tree_walk.h"
#include "senningen/common/log.h"

namespace senningen::agent::files {

namespace {

constexpr std::uint32_t kDirMask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE |
                                   IN_MOVED_FROM | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR |
                                   IN_DONT_FOLLOW | IN_EXCL_UNLINK;


}  // namespace

long inotify_max_user_watches() {
    std::ifstream in("/proc/sys/fs/inotify/max_user_watches");
    long value = -1;
    if (in >> value) return value;
    return -1;
}

Watcher::Watcher(WatcherOptions options, FileFn on_file, TreeFn on_tree)
    : options_(std::move(options)), on_file_(std::move(on_file)), on_tree_(std::move(on_tree)) {}

Watcher::~Watcher() {
    for (auto& instance : instances_) {
        if (instance->fd >= 0) ::close(instance->fd);
    }
}

common::Result<void> Watcher::start() {
    for (const auto& root : options_.roots) {
        struct stat st {};
        if (::stat(root.path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
            return common::make_error(common::ErrorCode::kNotFound,
                                      "watch path " + root.path + " is not a directory");
        }
        auto instance = std::make_unique<Instance>();
        instance->root = root;
        instance->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (instance->fd < 0) {
            const int err = errno;
            std::string message =
                "cannot watch " + root.path + ": inotify_init1: " + std::strerror(err);
            if (err == EMFILE) {
                message +=
                    " (the limit fs.inotify.max_user_instances is reached; raise it "
                    "with sysctl)";
            }
            return common::make_error(common::ErrorCode::kUnavailable, std::move(message));
        }
        add_tree(*instance, root.path);
        instances_.push_back(std::move(instance));
    }
    return {};
}

bool Watcher::add_watch(Instance& instance, const std::string& dir) {
    const int wd = inotify_add_watch(instance.fd, dir.c_str(), kDirMask);
    if (wd < 0) {
        const int err = errno;
        ++counters_.watch_failures;
        if (err == ENOSPC) {
            ++counters_.limit_reached;
            if (!limit_logged_) {
                limit_logged_ = true;
                const long limit = inotify_max_user_watches();
                common::log_warn(
                    "watch",
                    "cannot watch " + dir +
                        ": the kernel's inotify watch limit "
                        "fs.inotify.max_user_watches (" +
                        std::to_string(limit) +
                        ") is reached; raise it, e.g. sysctl fs.inotify.max_user_watches=" +
                        std::to_string(limit > 0 ? limit * 2 : 524288) +
                        ". Directories without a watch are covered only by the scheduled full "
                        "scans (further ones are counted, not logged)");
            }
        } else if (err != ENOENT) {
            common::log_warn("watch", "cannot watch " + dir + ": " + std::strerror(err));
        }
        return false;
    }
    if (instance.dirs.emplace(wd, dir).second) ++counters_.watches;
    return true;
}

void Watcher::add_tree(Instance& instance, const std::string& dir) {
    if (!instance.root.recursive) {
        add_watch(instance, dir);
        return;
    }
    WalkOptions walk;
    walk.recursive = true;
    walk.excludes = options_.excludes;
    WalkCallbacks callbacks;
    callbacks.directory = [&](const std::string& d) { add_watch(instance, d); };
    walk_tree(dir, walk, callbacks);
}

void Watcher::poll(std::chrono::milliseconds max_wait) {
    auto now = std::chrono::steady_clock::now();
    auto wait = max_wait;
    for (const auto& [path, due] : pending_) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(due - now);
        wait = std::max(std::chrono::milliseconds(0),
                        std::min(wait, left + std::chrono::milliseconds(1)));
    }
    std::vector<pollfd> fds;
    for (const auto& instance : instances_) fds.push_back({instance->fd, POLLIN, 0});
    const int ready = ::poll(fds.data(), fds.size(), static_cast<int>(wait.count()));
    if (ready > 0) {
        for (std::size_t i = 0; i < fds.size(); ++i) {
            if ((fds[i].revents & POLLIN) != 0) read_events(*instances_[i]);
        }
    }
    fire_due(std::chrono::steady_clock::now());
}

void Watcher::read_events(Instance& instance) {
    alignas(inotify_event) char buffer[64 * 1024];
    for (;;) {
        const ssize_t n = ::read(instance.fd, buffer, sizeof buffer);
        if (n <= 0) return;  // EAGAIN: drained
        const auto now = std::chrono::steady_clock::now();
        for (ssize_t at = 0; at < n;) {
            inotify_event event{};
            std::memcpy(&event, buffer + at, sizeof event);
            const char* name = buffer + at + sizeof(inotify_event);
            at += static_cast<ssize_t>(sizeof(inotify_event) + event.len);
            ++counters_.events;
            if ((event.mask & IN_Q_OVERFLOW) != 0) {
                // Events were lost: nothing is known about what changed in this tree, so all of
                // it is walked again (the cache keeps that cheap) and its watches renewed.
                ++counters_.overflows;
                common::log_warn("watch", "inotify queue overflow for " + instance.root.path +
                                              ": rescanning that tree");
                add_tree(instance, instance.root.path);
                if (on_tree_) on_tree_(instance.root.path);
                continue;
            }
            if ((event.mask & IN_IGNORED) != 0) {
                if (instance.dirs.erase(event.wd) != 0 && counters_.watches > 0) {
                    --counters_.watches;
                }
                continue;
            }
            const auto dir = instance.dirs.find(event.wd);
            if (dir == instance.dirs.end() || event.len == 0) continue;
            const std::string path = join_path(dir->second, name);
            if (is_excluded(path, options_.excludes)) continue;
            if ((event.mask & IN_ISDIR) != 0) {
                if ((event.mask & (IN_CREATE | IN_MOVED_TO)) != 0 && instance.root.recursive) {
                    ++counters_.directories_added;
                    add_tree(instance, path);
                    if (on_tree_) on_tree_(path);
                }
                continue;
            }
            if ((event.mask & (IN_DELETE | IN_MOVED_FROM)) != 0) {
                pending_.erase(path);
                ++counters_.removed;
                continue;
            }
            const bool trigger =
                ((event.mask & IN_CLOSE_WRITE) != 0 && options_.triggers.close_write) ||
                ((event.mask & IN_MOVED_TO) != 0 && options_.triggers.moved_to) ||
                ((event.mask & IN_CREATE) != 0 && options_.triggers.create);
            if (trigger) pending_[path] = now + options_.debounce;
        }
    }
}

void Watcher::fire_due(std::chrono::steady_clock::time_point now) {
    for (auto it = pending_.begin(); it != pending_.end();) {
        if (it->second > now) {
            ++it;
            continue;
        }
        const std::string path = it->first;
        it = pending_.erase(it);
        ++counters_.files_fired;
        if (on_file_) on_file_(path);
    }
}

}  // namespace senningen::agent::files
