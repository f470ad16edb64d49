// Files carried by traffic (HTTP bodies, SMB reads and writes) and Zeek's intel.log.
//
// A file is hashed (MD5, SHA-1, SHA-256, or those of them the options and the intel's
// FILE_HASH indicators ask for) as its bytes arrive, in one pass; its first
// file_scan_depth bytes are kept for YARA, which runs once when the file ends, as do the
// FILE_HASH / FILE_NAME intel lookups (Files::IN_HASH, Files::IN_NAME). With an extraction
// directory the bytes are also written to DIR/<fuid>[-<name>], cut at extract_max_bytes.
//
// A file that is a ZIP archive is also read as one (ZipReader) while it streams: each member
// becomes a file of its own (source "ZIP", parent_fuid the archive's), hashed, looked up and
// scanned like any file. Members are not opened in turn: one level, as Zeek's ZIP analyzer.
#include <openssl/evp.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "senningen/agent/engine/engine.h"
#include "senningen/agent/files/zip_reader.h"

namespace senningen::agent {

namespace {

constexpr std::size_t kMimeProbe = 16;

struct EvpCtxDeleter {
    void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};
using EvpCtx = std::unique_ptr<EVP_MD_CTX, EvpCtxDeleter>;

// OpenSSL 3 looks a digest up (locks, name compares) on every EVP_DigestInit_ex given the
// legacy EVP_md5() & co.; fetched once here, shared read-only by every engine thread. Kept
// for the life of the process.
struct Digests {
    const EVP_MD* md5 = EVP_MD_fetch(nullptr, "MD5", nullptr);
    const EVP_MD* sha1 = EVP_MD_fetch(nullptr, "SHA1", nullptr);
    const EVP_MD* sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
};
const Digests& digests() {
    static const Digests fetched;  // thread-safe initialisation
    return fetched;
}

struct FileCloser {
    void operator()(std::FILE* f) const { std::fclose(f); }
};

std::string to_hex(const unsigned char* data, unsigned len) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out;
    out.reserve(len * 2);
    for (unsigned i = 0; i < len; ++i) {
        out.push_back(kDigits[data[i] >> 4]);
        out.push_back(kDigits[data[i] & 0x0f]);
    }
    return out;
}

// A few magic numbers, for files whose protocol declared no type (Zeek uses libmagic; these
// are the types that matter for alert triage).
std::string sniff_mime(std::span<const std::uint8_t> head) {
    auto starts = [&](std::string_view magic) {
        return head.size() >= magic.size() &&
               std::equal(magic.begin(), magic.end(), head.begin(),
                          [](char a, std::uint8_t b) { return static_cast<std::uint8_t>(a) == b; });
    };
    if (starts("MZ")) return "application/x-dosexec";
    if (starts("\x7f" "ELF")) return "application/x-executable";
    if (starts("%PDF-")) return "application/pdf";
    if (starts("PK\x03\x04")) return "application/zip";
    if (starts("\x89PNG")) return "image/png";
    if (head.size() >= 12 && starts("RIFF") &&
        std::string_view(reinterpret_cast<const char*>(head.data()) + 8, 4) == "WEBP") {
        return "image/webp";
    }
    if (starts("GIF8")) return "image/gif";
    if (starts("\xff\xd8\xff")) return "image/jpeg";
    if (starts("\x1f\x8b")) return "application/gzip";
    if (starts("<!DOCTYPE html") || starts("<html") || starts("<HTML")) return "text/html";
    if (head.empty()) return "";
    const bool text = std::all_of(head.begin(), head.end(), [](std::uint8_t c) {
        return c == '\t' || c == '\n' || c == '\r' || (c >= 0x20 && c < 0x7f);
    });
    return text ? "text/plain" : "";
}

// Zeek's log escaping: tabs, backslashes and non-printable bytes as \xNN.
std::string zeek_escape(std::string_view text) {
    if (text.empty()) return "(empty)";
    std::string out;
    char buf[5];
    for (const char c : text) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u >= 0x7f || c == '\\' || c == ',') {
            std::snprintf(buf, sizeof buf, "\\x%02x", u);
            out += buf;
        } else {
            out.push_back(c);
        }
    }
    return out;
}

std::string zeek_time(std::int64_t ns) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%lld.%06lld", static_cast<long long>(ns / 1000000000),
                  static_cast<long long>((ns % 1000000000) / 1000));
    return buf;
}

// Keeps a name safe as one path component.
std::string safe_component(std::string_view name) {
    const std::size_t slash = name.find_last_of("/\\");
    if (slash != std::string_view::npos) name.remove_prefix(slash + 1);
    std::string out;
    for (const char c : name.substr(0, 100)) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
        out.push_back(ok ? c : '_');
    }
    if (out.empty() || out == "." || out == "..") return {};
    return out;
}

}  // namespace

struct ZipMembers;

struct TrafficFile {
    std::uint64_t flow_id = 0;
    int direction = 0;
    std::string fuid;
    std::string source;
    std::string filename;
    std::string declared_mime;
    std::string description;
    std::int64_t first_ts_ns = 0;
    std::uint64_t seen_bytes = 0;
    std::uint64_t missing_bytes = 0;
    EvpCtx md5, sha1, sha256;
    bool digests_ok = true;
    std::vector<std::uint8_t> head;  // for YARA and the type probe
    bool head_cut = false;
    std::unique_ptr<std::FILE, FileCloser> extract;
    std::string extract_name;
    std::uint64_t extracted = 0;
    bool extract_cutoff = false;
    std::string parent_fuid;  // of the archive a ZIP member came out of
    std::unique_ptr<ZipMembers> zip;  // reads the file as a ZIP archive, when it is one
};

// The sink of a ZIP archive's reader: each member a file of the engine's, in the archive's flow
// and direction. Called while the archive's bytes are handed over, so within the flow's context.
struct ZipMembers final : ZipReader::Sink {
    ZipMembers(Engine& owner, const TrafficFile& file)
        : engine(owner), archive(file), reader(*this, ZipReader::Limits{}) {}

    void member_begin(const ZipReader::Member& member) override {
        const FileStart start{"ZIP", archive.direction == 0, member.name, {},
                              archive.description};
        handle = engine.file_begin(start);
        const auto it = engine.files_.find(handle);
        if (it != engine.files_.end()) it->second->parent_fuid = archive.fuid;
    }
    void member_data(std::span<const std::uint8_t> bytes) override {
        engine.file_data(handle, bytes);
    }
    void member_end(bool complete, std::uint64_t missing) override {
        const auto it = engine.files_.find(handle);
        if (it != engine.files_.end() && !complete) {
            it->second->missing_bytes += missing;
            it->second->digests_ok = false;  // the digests of part of a member mean nothing
        }
        engine.file_end(handle);
        handle = 0;
    }
    void problem(std::string_view weird, std::string_view detail) override {
        engine.weird(weird, archive.fuid + ": " + std::string(detail));
    }

    Engine& engine;
    const TrafficFile& archive;
    ZipReader reader;
    std::uint64_t handle = 0;  // the member being read
};

void TrafficFileDeleter::operator()(TrafficFile* file) const { delete file; }

std::string zeek_uid(std::uint64_t flow_id) {
    static constexpr char kAlphabet[] =
        "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    std::string out = "C";
    std::uint64_t v = flow_id;
    do {
        out.push_back(kAlphabet[v % 62]);
        v /= 62;
    } while (v != 0);
    return out;
}

std::string intel_log_header(std::string_view open) {
    std::string out =
        "#separator \\x09\n"
        "#set_separator\t,\n"
        "#empty_field\t(empty)\n"
        "#unset_field\t-\n"
        "#path\tintel\n";
    out += "#open\t" + std::string(open) + "\n";
    out +=
        "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tseen.indicator\t"
        "seen.indicator_type\tseen.where\tseen.node\tmatched\tsources\tfuid\tfile_mime_type\t"
        "file_desc\n"
        "#types\ttime\tstring\taddr\tport\taddr\tport\tstring\tenum\tenum\tstring\tset[enum]\t"
        "set[string]\tstring\tstring\tstring\n";
    return out;
}

std::string intel_log_footer(std::string_view close) {
    return "#close\t" + std::string(close) + "\n";
}

void Engine::write_intel_log(const Flow& flow, std::string_view seen, IntelType seen_type,
                             std::span<const Indicator* const> items,
                             std::span<const std::string> sources, std::string_view where,
                             std::int64_t ts_ns, const FileFacts* file) {
    if (!intel_log_sink_) return;
    // One line per observation, as Zeek's: the value seen and its type, the types of every
    // item it matched (an address and the subnets holding it), and all their sources.
    std::string matched;
    for (std::size_t i = 0; i < items.size(); ++i) {
        const std::string_view type = to_string(items[i]->type);
        bool repeated = false;
        for (std::size_t j = 0; j < i; ++j) repeated = repeated || items[j]->type == items[i]->type;
        if (repeated) continue;
        if (!matched.empty()) matched.push_back(',');
        matched += type;
    }
    std::string source_list;
    for (const std::string& s : sources) {
        if (!source_list.empty()) source_list.push_back(',');
        source_list += zeek_escape(s);
    }
    if (source_list.empty()) source_list = "(empty)";
    const auto opt = [](std::string_view v) { return v.empty() ? std::string("-") : zeek_escape(v); };
    std::string line = zeek_time(ts_ns);
    line += '\t' + zeek_uid(flow.id);
    line += '\t' + flow.orig.addr.to_string();
    line += '\t' + std::to_string(flow.orig.port);
    line += '\t' + flow.resp.addr.to_string();
    line += '\t' + std::to_string(flow.resp.port);
    line += '\t' + zeek_escape(seen);
    line += '\t' + std::string(to_string(seen_type));
    line += '\t' + std::string(where);
    line += '\t' + opt(options_.agent_id);
    line += '\t' + matched;
    line += '\t' + source_list;
    line += '\t' + opt(file ? file->fuid : std::string_view{});
    line += '\t' + opt(file ? file->mime_type : std::string_view{});
    line += '\t' + opt(file ? file->description : std::string_view{});
    intel_log_sink_(line);
}

bool Engine::first_yara_hit(const Flow& flow, int direction, const std::string& rule) {
    auto& fired = yara_fired_[direction & 1][flow.id];
    if (std::find(fired.begin(), fired.end(), rule) != fired.end()) return false;
    fired.push_back(rule);
    return true;
}

std::uint64_t Engine::file_begin(const FileStart& start) {
    if (current_flow_ == nullptr) return 0;
    std::unique_ptr<TrafficFile, TrafficFileDeleter> file(new TrafficFile);
    const std::uint64_t handle = ++next_file_;
    file->flow_id = current_flow_->id;
    file->direction = start.is_orig ? 0 : 1;
    // Deterministic ids (same capture, same ids) keep golden output stable: from the flow and
    // the file's place in it, so that they do not depend on how flows are spread over workers.
    const std::uint64_t ordinal = ++states_[current_flow_->id].files;
    file->fuid = "F" + zeek_uid(current_flow_->id * 31 + ordinal).substr(1);
    file->source = std::string(start.source);
    file->filename = std::string(start.filename);
    file->declared_mime = std::string(start.mime_type);
    file->description = std::string(start.description);
    file->first_ts_ns = current_ts_ns_;
    // The digests are most of the agent's work on bulk transfers (MD5 alone runs at under
    // 1 GB/s): only those asked for, and those the intel needs to match a FILE_HASH.
    const unsigned kinds = options_.file_hashes | (intel_ ? intel_->file_hash_kinds() : 0u);
    const auto begin_digest = [&](EvpCtx& ctx, unsigned kind, const EVP_MD* md) {
        if ((kinds & kind) == 0) return;
        ctx.reset(EVP_MD_CTX_new());
        // A digest OpenSSL cannot give (a FIPS provider without MD5) fails the file's digests:
        // a file is reported with every digest it was asked for, or with none.
        if (md == nullptr || !ctx || EVP_DigestInit_ex(ctx.get(), md, nullptr) != 1) {
            file->digests_ok = false;
        }
    };
    begin_digest(file->md5, kFileHashMd5, digests().md5);
    begin_digest(file->sha1, kFileHashSha1, digests().sha1);
    begin_digest(file->sha256, kFileHashSha256, digests().sha256);
    ++counters_.files;
    files_.emplace(handle, std::move(file));
    return handle;
}

void Engine::file_data(std::uint64_t handle, std::span<const std::uint8_t> bytes) {
    const auto it = files_.find(handle);
    if (it == files_.end() || bytes.empty()) return;
    TrafficFile& f = *it->second;
    f.seen_bytes += bytes.size();
    if (f.digests_ok) {
        for (EVP_MD_CTX* ctx : {f.md5.get(), f.sha1.get(), f.sha256.get()}) {
            if (ctx != nullptr && EVP_DigestUpdate(ctx, bytes.data(), bytes.size()) != 1) {
                f.digests_ok = false;
            }
        }
    }
    // Without rules only the type probe needs the head: a 2-64 KB copy of every body for
    // nothing was a good part of the per-file cost.
    const std::size_t depth = scanner_ ? options_.file_scan_depth : kMimeProbe;
    const std::size_t room = depth > f.head.size() ? depth - f.head.size() : 0;
    const std::size_t keep = std::min(room, bytes.size());
    f.head.insert(f.head.end(), bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(keep));
    if (keep < bytes.size()) f.head_cut = true;

    // A ZIP archive's members, as the archive streams (not those of a member: one level).
    // The file's start is looked at once, when the head first holds its 4 bytes.
    if (f.zip) {
        f.zip->reader.feed(bytes);
    } else if (f.head.size() - keep < 4 && f.head.size() >= 4 && f.source != "ZIP") {
        if (ZipReader::looks_like_zip(f.head)) {
            // The head holds every byte so far (it is at least kMimeProbe long), then the
            // rest of this call's bytes that it did not take.
            f.zip = std::make_unique<ZipMembers>(*this, f);
            f.zip->reader.feed(f.head);
            f.zip->reader.feed(bytes.subspan(keep));
        }
    }

    if (options_.extract_dir.empty() || f.extract_cutoff) return;
    if (!f.extract) {
        const std::string name = safe_component(f.filename);
        f.extract_name = f.fuid + (name.empty() ? "" : "-" + name);
        const auto path = std::filesystem::path(options_.extract_dir) / f.extract_name;
        f.extract.reset(std::fopen(path.c_str(), "wb"));
        if (!f.extract) {
            ++counters_.extract_errors;
            f.extract_cutoff = true;
            f.extract_name.clear();
            return;
        }
        ++counters_.files_extracted;
    }
    const std::uint64_t left = options_.extract_max_bytes - f.extracted;
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(left, bytes.size()));
    if (n > 0 && std::fwrite(bytes.data(), 1, n, f.extract.get()) != n) ++counters_.extract_errors;
    f.extracted += n;
    if (n < bytes.size()) {
        f.extract_cutoff = true;
        f.extract.reset();
    }
}

void Engine::file_gap(std::uint64_t handle, std::uint64_t bytes) {
    const auto it = files_.find(handle);
    if (it == files_.end()) return;
    // The digests of a file with a hole are meaningless: they are not reported.
    it->second->missing_bytes += bytes;
    if (it->second->zip) it->second->zip->reader.gap(bytes);
}

std::string Engine::file_end(std::uint64_t handle) {
    const auto it = files_.find(handle);
    if (it == files_.end()) return {};
    std::unique_ptr<TrafficFile, TrafficFileDeleter> owned = std::move(it->second);
    files_.erase(it);
    TrafficFile& f = *owned;
    f.extract.reset();
    // A member still open ends before its archive (as in Zeek's files.log).
    if (f.zip) f.zip->reader.finish();

    common::FileContext context;
    context.size = f.seen_bytes;
    if (f.digests_ok && f.missing_bytes == 0) {
        unsigned char digest[EVP_MAX_MD_SIZE];
        unsigned len = 0;
        for (const auto& [ctx, out] : {std::pair{f.md5.get(), &context.md5},
                                       std::pair{f.sha1.get(), &context.sha1},
                                       std::pair{f.sha256.get(), &context.sha256}}) {
            if (ctx != nullptr && EVP_DigestFinal_ex(ctx, digest, &len) == 1) {
                *out = to_hex(digest, len);
            }
        }
    }
    context.path = !f.filename.empty()      ? f.filename
                   : !f.description.empty() ? f.description
                                            : f.fuid;
    std::string mime = sniff_mime(std::span<const std::uint8_t>(f.head).first(
        std::min(f.head.size(), kMimeProbe)));
    if (mime.empty() || (mime == "text/plain" && !f.declared_mime.empty())) {
        mime = f.declared_mime;
    }

    const Flow* flow = current_flow_;
    if (flow != nullptr && flow->id == f.flow_id) {
        const FileFacts facts{&context, f.fuid, mime, f.description};
        const std::int64_t ts = current_ts_ns_;
        for (const std::string* hash : {&context.md5, &context.sha1, &context.sha256}) {
            match_value(*flow, f.direction, IntelType::kFileHash, *hash, "Files::IN_HASH", ts,
                        &facts);
        }
        if (!f.filename.empty()) {
            match_value(*flow, f.direction, IntelType::kFileName, f.filename, "Files::IN_NAME",
                        ts, &facts);
            // A name with a path (SMB "dir\\tool.exe") is also tried by its last component.
            const std::size_t slash = f.filename.find_last_of("/\\");
            if (slash != std::string::npos && slash + 1 < f.filename.size()) {
                match_value(*flow, f.direction, IntelType::kFileName,
                            std::string_view(f.filename).substr(slash + 1), "Files::IN_NAME",
                            ts, &facts);
            }
        }
        // Offsets in the alerts are offsets in the file.
        scan_bytes(*flow, f.direction, f.head, ts, 0, &context);
        if (record_sink_) {
            RecordFields r;
            r.set("fuid", f.fuid);
            r.set("source", f.source);
            r.set("is_orig", f.direction == 0);
            if (!f.filename.empty()) r.set("filename", f.filename);
            if (!f.parent_fuid.empty()) r.set("parent_fuid", f.parent_fuid);
            if (!mime.empty()) r.set("mime_type", mime);
            if (!f.description.empty()) r.set("description", f.description);
            r.set("duration", static_cast<double>(ts - f.first_ts_ns) / 1e9);
            r.set("seen_bytes", f.seen_bytes);
            r.set("missing_bytes", f.missing_bytes);
            if (!context.md5.empty()) r.set("md5", context.md5);
            if (!context.sha1.empty()) r.set("sha1", context.sha1);
            if (!context.sha256.empty()) r.set("sha256", context.sha256);
            if (!f.extract_name.empty()) {
                r.set("extracted", f.extract_name);
                r.set("extracted_cutoff", f.extract_cutoff);
                r.set("extracted_size", f.extracted);
            }
            record("files", r);
        }
    }
    return f.fuid;
}

void Engine::end_files_of(const Flow& flow) {
    std::vector<std::uint64_t> open;
    for (const auto& [handle, file] : files_) {
        if (file->flow_id == flow.id) open.push_back(handle);
    }
    if (open.empty()) return;
    std::sort(open.begin(), open.end());
    context(flow, 0, flow.last_ts_ns);
    for (const std::uint64_t handle : open) file_end(handle);
    current_flow_ = nullptr;
}

}  // namespace senningen::agent
