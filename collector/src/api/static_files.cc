#include "senningen/collector/static_files.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>

namespace senningen::collector::detail {

namespace {

namespace fs = std::filesystem;
using common::ErrorCode;
using common::make_error;

// The types the UI uses; anything else in the folder is not served.
std::string_view content_type_for(const fs::path& path) {
    const std::string ext = path.extension().string();
    if (ext == ".html") return "text/html; charset=utf-8";
    if (ext == ".js" || ext == ".mjs") return "text/javascript; charset=utf-8";
    if (ext == ".css") return "text/css; charset=utf-8";
    if (ext == ".svg") return "image/svg+xml";
    if (ext == ".png") return "image/png";
    if (ext == ".ico") return "image/x-icon";
    if (ext == ".json") return "application/json; charset=utf-8";
    if (ext == ".woff2") return "font/woff2";
    if (ext == ".txt") return "text/plain; charset=utf-8";
    return {};
}

}  // namespace

common::Result<StaticFiles> StaticFiles::load(const std::string& root) {
    std::error_code ec;
    if (!fs::is_directory(root, ec)) {
        return make_error(ErrorCode::kNotFound, "web root " + root + " is not a directory");
    }
    StaticFiles out;
    std::size_t total = 0;
    // The iterator does not follow directory symlinks by default; file symlinks are skipped
    // below, so everything served really lives under root.
    fs::recursive_directory_iterator it(root, fs::directory_options::none, ec);
    if (ec) return make_error(ErrorCode::kIo, "web root " + root + ": " + ec.message());
    for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (ec) return make_error(ErrorCode::kIo, "web root " + root + ": " + ec.message());
        const fs::directory_entry& entry = *it;
        if (entry.is_symlink(ec) || !entry.is_regular_file(ec)) continue;
        const std::string_view type = content_type_for(entry.path());
        if (type.empty()) continue;
        if (out.files_.size() >= kMaxFiles) {
            return make_error(ErrorCode::kInvalidArgument,
                              "web root " + root + " holds more than " +
                                  std::to_string(kMaxFiles) + " files to serve");
        }
        std::ifstream in(entry.path(), std::ios::binary);
        std::string body((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        if (!in.good() && !in.eof()) {
            return make_error(ErrorCode::kIo, "cannot read " + entry.path().string());
        }
        total += body.size();
        if (total > kMaxBytes) {
            return make_error(ErrorCode::kInvalidArgument,
                              "web root " + root + " holds more than " +
                                  std::to_string(kMaxBytes / (1024 * 1024)) + " MiB to serve");
        }
        const std::string key = "/" + fs::relative(entry.path(), root, ec).generic_string();
        out.files_[key] = StaticFile{std::string(type), std::move(body)};
    }
    if (out.files_.find("/index.html") == out.files_.end()) {
        return make_error(ErrorCode::kNotFound, "web root " + root + " has no index.html");
    }
    return out;
}

const StaticFile* StaticFiles::find(std::string_view path) const {
    if (path == "/") path = "/index.html";
    const auto it = files_.find(path);
    return it == files_.end() ? nullptr : &it->second;
}

}  // namespace senningen::collector::detail
