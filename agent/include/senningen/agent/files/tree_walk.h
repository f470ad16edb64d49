// Walking a watched or scanned tree without ever leaving it: symlinks are never followed (a
// target inside the tree is reached where it lives; one outside is out of scope; a link that
// loops is reported as such), a directory reached twice (a bind mount of an ancestor) is a
// loop and not entered again, and excluded paths are not descended into.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "senningen/agent/files/file_scanner.h"

namespace senningen::agent::files {

// PATTERNS are globs (fnmatch): one without '/' is matched against the base name, one with
// '/' against the whole path, where '*' also matches '/' (so "/var/cache/*" covers the tree).
bool is_excluded(std::string_view path, const std::vector<std::string>& patterns);

struct WalkOptions {
    bool recursive = true;
    std::vector<std::string> excludes;
};

struct WalkCallbacks {
    // A regular file (lstat) to be scanned, with its size as listed (so that a scan can take
    // the largest files first).
    std::function<void(std::string path, std::uint64_t size)> file;
    // Something not handed on, with why: kSymlink, kNotRegular, kPermissionDenied (a directory
    // that cannot be listed), kVanished, kError (a loop, other errors).
    std::function<void(const std::string& path, Outcome outcome, const std::string& reason)> skip;
    std::function<void(const std::string& dir)> directory;  // each directory entered (watches)
};

struct WalkCounters {
    std::uint64_t directories = 0;
    std::uint64_t files = 0;
    std::uint64_t excluded = 0;
    std::uint64_t skipped = 0;
};

// Walks ROOT (a directory, or a single file). Stops early when STOP becomes true.
WalkCounters walk_tree(const std::string& root, const WalkOptions& options,
                       const WalkCallbacks& callbacks, const std::atomic<bool>* stop = nullptr);

// DIR + "/" + NAME, without doubling the slash of the root directory.
std::string join_path(const std::string& dir, const char* name);

// The canonical absolute form of PATH (realpath), or an error naming PATH and the problem.
common::Result<std::string> canonical_path(const std::string& path);

}  // namespace senningen::agent::files
