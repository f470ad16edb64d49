#include "analyzers/smb/smb_analyzer.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

namespace senningen::agent {

namespace {

constexpr std::size_t kHeaderLen = 64;
constexpr std::size_t kMaxMessage = 2 << 20;  // larger messages are skipped, counted
constexpr std::size_t kMaxPending = 1024;     // requests awaiting a response
constexpr std::size_t kMaxOpenFiles = 1024;

constexpr std::uint16_t kTreeConnect = 3;
constexpr std::uint16_t kCreate = 5;
constexpr std::uint16_t kClose = 6;
constexpr std::uint16_t kRead = 8;
constexpr std::uint16_t kWrite = 9;

constexpr std::uint32_t kStatusPending = 0x00000103;

std::uint16_t le16(const std::uint8_t* p) { return static_cast<std::uint16_t>(p[0] | (p[1] << 8)); }
std::uint32_t le32(const std::uint8_t* p) {
    return std::uint32_t{p[0]} | (std::uint32_t{p[1]} << 8) | (std::uint32_t{p[2]} << 16) |
           (std::uint32_t{p[3]} << 24);
}
std::uint64_t le64(const std::uint8_t* p) {
    return std::uint64_t{le32(p)} | (std::uint64_t{le32(p + 4)} << 32);
}

// UTF-16LE (what SMB2 names are) to UTF-8; unpaired surrogates become U+FFFD.
std::string utf16le_to_utf8(std::span<const std::uint8_t> in) {
    std::string out;
    auto put = [&](std::uint32_t cp) {
        if (cp < 0x80) {
            out.push_back(static_cast<char>(cp));
        } else if (cp < 0x800) {
            out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
            out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
        } else if (cp < 0x10000) {
            out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
            out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
            out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
        } else {
            out.push_back(static_cast<char>(0xf0 | (cp >> 18)));
            out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
            out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
            out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
        }
    };
    for (std::size_t i = 0; i + 1 < in.size(); i += 2) {
        const std::uint32_t u = le16(in.data() + i);
        if (u >= 0xd800 && u < 0xdc00 && i + 3 < in.size()) {
            const std::uint32_t low = le16(in.data() + i + 2);
            if (low >= 0xdc00 && low < 0xe000) {
                put(0x10000 + ((u - 0xd800) << 10) + (low - 0xdc00));
                i += 2;
                continue;
            }
        }
        put(u >= 0xd800 && u < 0xe000 ? 0xfffd : u);
    }
    return out;
}

using FileId = std::string;  // the 16 bytes of an SMB2_FILEID

struct Pending {
    std::uint16_t command = 0;
    std::string name;  // CREATE: the name; TREE_CONNECT: the share path
    FileId file;       // READ
    std::uint64_t offset = 0;
    std::uint32_t length = 0;
};

struct Transfer {
    std::uint64_t handle = 0;
    std::uint64_t next = 0;  // the offset expected next
};

struct OpenFile {
    std::string name;
    std::string tree;
    Transfer transfers[2];  // [0] written (client to server), [1] read
};

class SmbAnalyzer final : public Analyzer {
public:
    void data(const AnalyzerContext& ctx, std::span<const std::uint8_t> bytes) override {
        Direction& d = dirs_[ctx.direction & 1];
        while (!bytes.empty() && !d.broken) {
            if (d.skip > 0) {
                const std::size_t n =
                    static_cast<std::size_t>(std::min<std::uint64_t>(d.skip, bytes.size()));
                d.skip -= n;
                bytes = bytes.subspan(n);
                continue;
            }
            if (d.need == 0) {
                // The 4-byte direct-hosting header (a zero type byte, a 24-bit length).
                d.prefix[d.prefix_len++] = bytes[0];
                bytes = bytes.subspan(1);
                if (d.prefix_len < 4) continue;
                d.prefix_len = 0;
                if (d.prefix[0] != 0) {
                    ctx.host.weird("smb_bad_framing", "NetBIOS session message type is not 0");
                    d.broken = true;
                    return;
                }
                const std::size_t len = (std::size_t{d.prefix[1]} << 16) |
                                        (std::size_t{d.prefix[2]} << 8) | d.prefix[3];
                if (len == 0) continue;
                if (len > kMaxMessage) {
                    ctx.host.weird("smb_message_too_large", std::to_string(len) + " bytes");
                    d.skip = len;
                    continue;
                }
                d.need = len;
                d.buffer.clear();
                continue;
            }
            const std::size_t take = std::min(d.need - d.buffer.size(), bytes.size());
            if (d.buffer.empty() && take == d.need) {
                message(ctx, bytes.first(take));  // whole message in place: no copy
                bytes = bytes.subspan(take);
                d.need = 0;
                continue;
            }
            d.buffer.insert(d.buffer.end(), bytes.begin(),
                            bytes.begin() + static_cast<std::ptrdiff_t>(take));
            bytes = bytes.subspan(take);
            if (d.buffer.size() == d.need) {
                message(ctx, d.buffer);
                d.need = 0;
                d.buffer.clear();
            }
        }
    }

    void gap(const AnalyzerContext& ctx, std::uint64_t /*bytes*/) override {
        dirs_[ctx.direction & 1].broken = true;
        ctx.host.weird("smb_gap", "hole in an SMB stream; the direction is no longer parsed");
    }

    void end(const AnalyzerContext& ctx) override {
        for (auto& [id, file] : files_) close_transfers(ctx, file);
        files_.clear();
    }

private:
    struct Direction {
        std::uint8_t prefix[4] = {0, 0, 0, 0};
        std::size_t prefix_len = 0;
        std::size_t need = 0;
        std::uint64_t skip = 0;
        std::vector<std::uint8_t> buffer;
        bool broken = false;
    };

    // One direct-hosting message: one or more compounded SMB2 messages.
    void message(const AnalyzerContext& ctx, std::span<const std::uint8_t> msg) {
        if (msg.size() >= 4 && msg[0] == 0xff && msg[1] == 'S' && msg[2] == 'M' && msg[3] == 'B') {
            if (!smb1_reported_) ctx.host.weird("smb1_not_parsed", "SMB1 message");
            smb1_reported_ = true;
            return;
        }
        if (msg.size() >= 4 && msg[0] == 0xfd && msg[1] == 'S' && msg[2] == 'M' && msg[3] == 'B') {
            if (!encrypted_reported_) ctx.host.weird("smb_encrypted", "SMB3 transform header");
            encrypted_reported_ = true;
            return;
        }
        std::size_t pos = 0;
        for (int guard = 0; guard < 64; ++guard) {
            const auto one = msg.subspan(pos);
            if (one.size() < kHeaderLen || one[0] != 0xfe || one[1] != 'S' || one[2] != 'M' ||
                one[3] != 'B' || le16(one.data() + 4) != kHeaderLen) {
                ctx.host.weird("smb_bad_header", "not an SMB2 header");
                return;
            }
            const std::uint32_t next = le32(one.data() + 20);
            if (next == 0) return smb2(ctx, one);
            // Checked before the message is parsed: a NextCommand shorter than a header would
            // hand smb2() a message without room for its own header.
            if (next < kHeaderLen || next >= one.size() || (next & 7) != 0) {
                ctx.host.weird("smb_bad_next_command", "compound offset out of range");
                return;
            }
            smb2(ctx, one.first(next));
            pos += next;
        }
    }

    void smb2(const AnalyzerContext& ctx, std::span<const std::uint8_t> m) {
        const std::uint32_t status = le32(m.data() + 8);
        const std::uint16_t command = le16(m.data() + 12);
        const bool response = (le32(m.data() + 16) & 1) != 0;
        const std::uint64_t message_id = le64(m.data() + 24);
        const std::uint32_t tree_id = le32(m.data() + 36);
        const auto body = m.subspan(kHeaderLen);
        if (!response) {
            request(ctx, m, command, message_id, tree_id, body);
            return;
        }
        if (status == kStatusPending) return;  // an interim response; the real one follows
        const auto it = pending_.find(message_id);
        if (it == pending_.end()) return;
        const Pending p = std::move(it->second);
        pending_.erase(it);
        if (p.command != command) return;
        switch (command) {
            case kTreeConnect:
                if (status == 0) trees_[tree_id] = p.name;
                break;
            case kCreate: {
                RecordFields r;
                r.set("command", "open");
                r.set("name", p.name);
                const auto tree = trees_.find(tree_id);
                if (tree != trees_.end()) r.set("tree", tree->second);
                r.set("status", status_text(status));
                if (status == 0 && body.size() >= 80 && files_.size() < kMaxOpenFiles) {
                    OpenFile& f = files_[FileId(reinterpret_cast<const char*>(body.data() + 64), 16)];
                    f.name = p.name;
                    f.tree = tree != trees_.end() ? tree->second : "";
                    r.set("size", le64(body.data() + 48));
                } else if (status == 0) {
                    ctx.host.weird("smb_bad_create_response", "CREATE response too short");
                }
                ctx.host.record("smb", r);
                break;
            }
            case kRead: {
                if (status != 0 || body.size() < 16) break;
                const std::size_t offset = body[2];
                const std::uint32_t length = le32(body.data() + 4);
                const auto fit = files_.find(p.file);
                record_io(ctx, "read", fit != files_.end() ? fit->second.name : "", p.offset,
                          length);
                if (offset < kHeaderLen || offset > m.size() || length > m.size() - offset) {
                    ctx.host.weird("smb_bad_read_response", "data outside the message");
                    break;
                }
                if (fit != files_.end()) {
                    transfer(ctx, fit->second, 1, p.offset, m.subspan(offset, length));
                }
                break;
            }
            default: break;
        }
    }

    void request(const AnalyzerContext& ctx, std::span<const std::uint8_t> m,
                 std::uint16_t command, std::uint64_t message_id, std::uint32_t tree_id,
                 std::span<const std::uint8_t> body) {
        Pending p;
        p.command = command;
        switch (command) {
            case kTreeConnect: {
                if (body.size() < 8) return weird_short(ctx, "TREE_CONNECT");
                const std::size_t off = le16(body.data() + 4);
                const std::size_t len = le16(body.data() + 6);
                if (off < kHeaderLen || off > m.size() || len > m.size() - off) {
                    return weird_short(ctx, "TREE_CONNECT");
                }
                p.name = utf16le_to_utf8(m.subspan(off, len));
                break;
            }
            case kCreate: {
                if (body.size() < 56) return weird_short(ctx, "CREATE");
                const std::size_t off = le16(body.data() + 44);
                const std::size_t len = le16(body.data() + 46);
                if (len > 0 && (off < kHeaderLen || off > m.size() || len > m.size() - off)) {
                    return weird_short(ctx, "CREATE");
                }
                p.name = len > 0 ? utf16le_to_utf8(m.subspan(off, len)) : "";
                if (!p.name.empty()) {
                    // The last path component, as Zeek's smb-filenames.zeek looks up: a
                    // FILE_NAME indicator is a base name ("payload.exe", not "tools\payload.exe").
                    const std::size_t slash = p.name.find_last_of('\\');
                    const std::string_view base = slash == std::string::npos
                                                      ? std::string_view(p.name)
                                                      : std::string_view(p.name).substr(slash + 1);
                    if (!base.empty()) {
                        ctx.host.observe(IntelType::kFileName, base, "SMB::IN_FILE_NAME");
                    }
                }
                break;
            }
            case kRead: {
                if (body.size() < 32) return weird_short(ctx, "READ");
                p.length = le32(body.data() + 4);
                p.offset = le64(body.data() + 8);
                p.file = FileId(reinterpret_cast<const char*>(body.data() + 16), 16);
                break;
            }
            case kWrite: {
                if (body.size() < 32) return weird_short(ctx, "WRITE");
                const std::size_t off = le16(body.data() + 2);
                const std::uint32_t length = le32(body.data() + 4);
                const std::uint64_t offset = le64(body.data() + 8);
                const FileId id(reinterpret_cast<const char*>(body.data() + 16), 16);
                const auto fit = files_.find(id);
                record_io(ctx, "write", fit != files_.end() ? fit->second.name : "", offset,
                          length);
                if (off < kHeaderLen || off > m.size() || length > m.size() - off) {
                    ctx.host.weird("smb_bad_write_request", "data outside the message");
                    return;
                }
                if (fit != files_.end()) transfer(ctx, fit->second, 0, offset, m.subspan(off, length));
                return;
            }
            case kClose: {
                if (body.size() < 24) return weird_short(ctx, "CLOSE");
                const FileId id(reinterpret_cast<const char*>(body.data() + 8), 16);
                const auto fit = files_.find(id);
                if (fit == files_.end()) return;
                RecordFields r;
                r.set("command", "close");
                r.set("name", fit->second.name);
                close_transfers(ctx, fit->second);
                ctx.host.record("smb", r);
                files_.erase(fit);
                return;
            }
            default: return;
        }
        (void)tree_id;
        if (pending_.size() >= kMaxPending) pending_.erase(pending_.begin());
        pending_[message_id] = std::move(p);
    }

    void weird_short(const AnalyzerContext& ctx, const char* command) {
        ctx.host.weird("smb_bad_request", std::string(command) + " request too short");
    }

    static void record_io(const AnalyzerContext& ctx, const char* command, const std::string& name,
                          std::uint64_t offset, std::uint32_t length) {
        RecordFields r;
        r.set("command", command);
        r.set("name", name);
        r.set("offset", offset);
        r.set("length", static_cast<std::uint64_t>(length));
        ctx.host.record("smb", r);
    }

    // Sequential data goes to the host's file; a jump forward is a hole, a jump back (a
    // rewrite) cannot be followed by a hash and is counted.
    static void transfer(const AnalyzerContext& ctx, OpenFile& f, int kind, std::uint64_t offset,
                         std::span<const std::uint8_t> data) {
        Transfer& t = f.transfers[kind];
        if (data.empty()) return;
        if (t.handle == 0) {
            const std::string desc = f.tree.empty() ? f.name : f.tree + "\\" + f.name;
            t.handle = ctx.host.file_begin(FileStart{"SMB", kind == 0, f.name, "", desc});
            if (t.handle == 0) t.handle = kUntracked;
            t.next = 0;
        }
        if (t.handle == kUntracked) return;
        if (offset < t.next) {
            ctx.host.weird("smb_file_rewrite", "a read or write goes back in the file");
            return;
        }
        if (offset > t.next) ctx.host.file_gap(t.handle, offset - t.next);
        ctx.host.file_data(t.handle, data);
        t.next = offset + data.size();
    }

    static void close_transfers(const AnalyzerContext& ctx, OpenFile& f) {
        for (Transfer& t : f.transfers) {
            if (t.handle != 0 && t.handle != kUntracked) ctx.host.file_end(t.handle);
            t = Transfer{};
        }
    }

    static std::string status_text(std::uint32_t status) {
        switch (status) {
            case 0: return "STATUS_SUCCESS";
            case 0xc0000022: return "STATUS_ACCESS_DENIED";
            case 0xc0000034: return "STATUS_OBJECT_NAME_NOT_FOUND";
            case 0xc0000035: return "STATUS_OBJECT_NAME_COLLISION";
            case 0xc000003a: return "STATUS_OBJECT_PATH_NOT_FOUND";
            case 0xc0000043: return "STATUS_SHARING_VIOLATION";
            default: {
                char buf[16];
                std::snprintf(buf, sizeof buf, "0x%08x", status);
                return buf;
            }
        }
    }

    static constexpr std::uint64_t kUntracked = ~std::uint64_t{0};

    Direction dirs_[2];
    std::map<std::uint64_t, Pending> pending_;  // by message id
    std::map<FileId, OpenFile> files_;
    std::map<std::uint32_t, std::string> trees_;  // share path by tree id
    bool smb1_reported_ = false;
    bool encrypted_reported_ = false;
};

}  // namespace

bool smb_detect(std::span<const std::uint8_t> first, int /*direction*/,
                std::uint16_t /*src_port*/, std::uint16_t /*dst_port*/) {
    // Direct hosting header, then an SMB2 header (or an SMB1 negotiate that leads to SMB2).
    if (first.size() < 8 || first[0] != 0) return false;
    const std::size_t len =
        (std::size_t{first[1]} << 16) | (std::size_t{first[2]} << 8) | first[3];
    if (len < 4) return false;
    const bool smb2 = first[4] == 0xfe && first[5] == 'S' && first[6] == 'M' && first[7] == 'B';
    const bool smb1 = first[4] == 0xff && first[5] == 'S' && first[6] == 'M' && first[7] == 'B';
    return smb2 || smb1;
}

std::unique_ptr<Analyzer> make_smb_analyzer() { return std::make_unique<SmbAnalyzer>(); }

}  // namespace senningen::agent
