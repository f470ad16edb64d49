#include "senningen/agent/files/tree_walk.h"

#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <set>
#include <utility>

namespace senningen::agent::files {

namespace {

struct DirCloser {
    void operator()(DIR* dir) const { closedir(dir); }
};

bool inside(std::string_view path, std::string_view root) {
    if (root == "/") return true;
    return path.size() >= root.size() && path.compare(0, root.size(), root) == 0 &&
           (path.size() == root.size() || path[root.size()] == '/');
}


}  // namespace

bool is_excluded(std::string_view path, const std::vector<std::string>& patterns) {
    if (patterns.empty()) return false;
    const std::string full(path);
    const auto slash = full.rfind('/');
    const std::string base = slash == std::string::npos ? full : full.substr(slash + 1);
    for (const auto& pattern : patterns) {
        const bool whole = pattern.find('/') != std::string::npos;
        if (fnmatch(pattern.c_str(), whole ? full.c_str() : base.c_str(), 0) == 0) return true;
    }
    return false;
}

// Appends rather than concatenating temporaries: GCC 12 at -O3 warns (-Wrestrict, a false
// positive) about "/" + std::string(name).
std::string join_path(const std::string& dir, const char* name) {
    std::string path;
    path.reserve(dir.size() + 1 + std::strlen(name));
    if (dir != "/") path += dir;
    path += '/';
    path += name;
    return path;
}

common::Result<std::string> canonical_path(const std::string& path) {
    char resolved[PATH_MAX];
    if (::realpath(path.c_str(), resolved) == nullptr) {
        return common::make_error(
            errno == ENOENT ? common::ErrorCode::kNotFound : common::ErrorCode::kIo,
            path + ": " + std::strerror(errno));
    }
    return std::string(resolved);
}

WalkCounters walk_tree(const std::string& root, const WalkOptions& options, const WalkCallbacks& cb,
                       const std::atomic<bool>* stop) {
    WalkCounters counters;
    auto skip = [&](const std::string& path, Outcome outcome, const std::string& reason) {
        ++counters.skipped;
        if (cb.skip) cb.skip(path, outcome, reason);
    };
    struct stat st {};
    if (::lstat(root.c_str(), &st) != 0) {
        skip(root, errno == ENOENT ? Outcome::kVanished : Outcome::kError,
             std::string("lstat: ") + std::strerror(errno));
        return counters;
    }
    if (!S_ISDIR(st.st_mode)) {
        if (S_ISREG(st.st_mode)) {
            ++counters.files;
            if (cb.file) cb.file(root, static_cast<std::uint64_t>(st.st_size));
        } else if (S_ISLNK(st.st_mode)) {
            skip(root, Outcome::kSymlink, "symbolic link (never followed)");
        } else {
            skip(root, Outcome::kNotRegular, "FIFO, socket or device (skipped, never read)");
        }
        return counters;
    }

    std::set<std::pair<dev_t, ino_t>> seen;
    std::vector<std::string> stack;
    stack.push_back(root);
    while (!stack.empty()) {
        if (stop != nullptr && stop->load()) break;
        const std::string dir = std::move(stack.back());
        stack.pop_back();
        const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
            const int err = errno;
            skip(dir,
                 err == EACCES || err == EPERM ? Outcome::kPermissionDenied
                 : err == ENOENT               ? Outcome::kVanished
                                               : Outcome::kError,
                 std::string("cannot open directory: ") + std::strerror(err));
            continue;
        }
        struct stat dst {};
        if (::fstat(fd, &dst) != 0 || !seen.emplace(dst.st_dev, dst.st_ino).second) {
            ::close(fd);
            skip(dir, Outcome::kError, "directory loop (already visited; a bind mount?)");
            continue;
        }
        std::unique_ptr<DIR, DirCloser> handle(::fdopendir(fd));
        if (!handle) {
            ::close(fd);
            skip(dir, Outcome::kError, std::string("fdopendir: ") + std::strerror(errno));
            continue;
        }
        ++counters.directories;
        if (cb.directory) cb.directory(dir);
        std::vector<std::string> subdirs;
        while (dirent* entry = ::readdir(handle.get())) {
            const char* name = entry->d_name;
            if (std::strcmp(name, ".") == 0 || std::strcmp(name, "..") == 0) continue;
            std::string path = join_path(dir, name);
            if (is_excluded(path, options.excludes)) {
                ++counters.excluded;
                continue;
            }
            unsigned char type = entry->d_type;
            struct stat est {};
            bool have_stat = false;
            if (type == DT_UNKNOWN) {
                have_stat = true;
                if (::fstatat(dirfd(handle.get()), name, &est, AT_SYMLINK_NOFOLLOW) != 0) {
                    skip(path, Outcome::kVanished, "vanished while the directory was listed");
                    continue;
                }
                type = S_ISREG(est.st_mode)   ? DT_REG
                       : S_ISDIR(est.st_mode) ? DT_DIR
                       : S_ISLNK(est.st_mode) ? DT_LNK
                                              : DT_FIFO;
            }
            if (type == DT_REG) {
                if (!have_stat &&
                    ::fstatat(dirfd(handle.get()), name, &est, AT_SYMLINK_NOFOLLOW) != 0) {
                    skip(path, Outcome::kVanished, "vanished while the directory was listed");
                    continue;
                }
                ++counters.files;
                if (cb.file) cb.file(std::move(path), static_cast<std::uint64_t>(est.st_size));
            } else if (type == DT_DIR) {
                if (options.recursive) subdirs.push_back(std::move(path));
            } else if (type == DT_LNK) {
                char resolved[PATH_MAX];
                if (::realpath(path.c_str(), resolved) == nullptr) {
                    skip(path, Outcome::kSymlink,
                         errno == ELOOP ? "symlink loop (not followed)"
                                        : std::string("dangling symlink: ") + std::strerror(errno));
                } else if (!inside(resolved, root)) {
                    skip(path, Outcome::kSymlink,
                         std::string("symlink leads out of the tree to ") + resolved +
                             " (not followed)");
                } else {
                    skip(path, Outcome::kSymlink,
                         std::string("symlink to ") + resolved +
                             " (not followed; the target is scanned where it lives)");
                }
            } else {
                skip(path, Outcome::kNotRegular, "FIFO, socket or device (skipped, never read)");
            }
        }
        // Reverse so that the stack visits subdirectories in listing order.
        for (auto it = subdirs.rbegin(); it != subdirs.rend(); ++it) {
            stack.push_back(std::move(*it));
        }
    }
    return counters;
}

}  // namespace senningen::agent::files
