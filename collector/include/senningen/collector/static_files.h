// The web UI's files, read once when the API starts and served from memory. A request path is
// only ever a key into this map, never joined to a directory, so no request can reach a file
// outside the web root (no "..", no symlink, no encoded separator trick can work).
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <string_view>

#include "senningen/common/result.h"

namespace senningen::collector::detail {

struct StaticFile {
    std::string content_type;
    std::string body;
};

class StaticFiles {
public:
    // Limits that keep a misconfigured web root (say, "/") from filling memory.
    static constexpr std::size_t kMaxFiles = 256;
    static constexpr std::size_t kMaxBytes = 16 * 1024 * 1024;

    // Every regular file below root whose extension has a known content type; symlinks and
    // other extensions are skipped. kNotFound if root is not a directory or holds no
    // index.html; kInvalidArgument past the limits; kIo if a file cannot be read.
    static common::Result<StaticFiles> load(const std::string& root);

    // "/" means "/index.html". nullptr if there is no such file.
    const StaticFile* find(std::string_view path) const;
    std::size_t size() const { return files_.size(); }

private:
    std::map<std::string, StaticFile, std::less<>> files_;  // "/app.js" -> file
};

}  // namespace senningen::collector::detail
