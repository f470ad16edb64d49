#include "senningen/agent/scan/yara_rules.h"

#include <openssl/evp.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>
#include <new>
#include <string_view>
#include <system_error>
#include <utility>

// Last: <yara.h> defines function-like macros (get_string, module, parent, ...) that would
// break any header included after it.
#include <yara.h>

namespace senningen::agent {

using common::ErrorCode;
using common::make_error;
using common::Result;

namespace {

int g_yara_init_status = ERROR_SUCCESS;
std::once_flag g_yara_once;

void finalize_yara() {
    yr_finalize();
}

// ensure_yara_initialized() cannot report failure through its signature, so the compile and
// scan entry points ask for the status instead.
int yara_init_status() {
    ensure_yara_initialized();
    return g_yara_init_status;
}

Result<void> check_yara_ready() {
    const int status = yara_init_status();
    if (status != ERROR_SUCCESS) {
        return make_error(ErrorCode::kInternal,
                          "libyara failed to initialise (error " + std::to_string(status) + ")");
    }
    return {};
}

struct CompilerDeleter {
    void operator()(YR_COMPILER* compiler) const { yr_compiler_destroy(compiler); }
};
using CompilerPtr = std::unique_ptr<YR_COMPILER, CompilerDeleter>;

struct RulesDeleter {
    void operator()(YR_RULES* rules) const { yr_rules_destroy(rules); }
};
using RulesPtr = std::unique_ptr<YR_RULES, RulesDeleter>;

struct FileCloser {
    void operator()(std::FILE* file) const { std::fclose(file); }
};
using FilePtr = std::unique_ptr<std::FILE, FileCloser>;

// Receives libyara's compile messages. While good files are replayed into a fresh compiler
// (see compile_sources) their messages were already seen once, so they are muted.
struct ErrorSink {
    std::vector<std::string> errors;
    bool muted = false;
};

void on_compile_message(int error_level, const char* file_name, int line_number,
                        const YR_RULE* /*rule*/, const char* message, void* user_data) {
    auto* sink = static_cast<ErrorSink*>(user_data);
    // Warnings (slow strings, deprecated syntax) do not stop a rule set from loading.
    if (sink->muted || error_level != YARA_ERROR_LEVEL_ERROR) return;
    try {
        std::string line = file_name != nullptr ? file_name : "<string>";
        line += ':';
        line += std::to_string(line_number);
        line += ": ";
        line += message != nullptr ? message : "unknown error";
        sink->errors.push_back(std::move(line));
    } catch (const std::bad_alloc&) {
        // Exceptions must not unwind through libyara's C frames; a lost message under memory
        // pressure still leaves the error count, which compile_sources checks.
    }
}

std::string error_name(int code) {
    switch (code) {
        case ERROR_INSUFFICIENT_MEMORY: return "out of memory";
        case ERROR_COULD_NOT_OPEN_FILE: return "could not open file";
        case ERROR_TOO_MANY_SCAN_THREADS: return "too many concurrent scans of one rule set";
        case ERROR_TOO_MANY_MATCHES: return "too many matches";
        case ERROR_CALLBACK_ERROR: return "the match callback failed";
        case ERROR_TOO_MANY_RE_FIBERS: return "a regular expression needs too many fibers";
        case ERROR_INTERNAL_FATAL_ERROR: return "internal fatal error";
        case ERROR_INVALID_ARGUMENT: return "invalid argument";
        case ERROR_INVALID_EXTERNAL_VARIABLE_TYPE: return "external variable has another type";
        default: return "error " + std::to_string(code);
    }
}

int define_external(YR_COMPILER* compiler, const std::string& name,
                    const YaraExternalValue& value) {
    const char* id = name.c_str();
    if (const auto* b = std::get_if<bool>(&value)) {
        return yr_compiler_define_boolean_variable(compiler, id, *b ? 1 : 0);
    }
    if (const auto* i = std::get_if<std::int64_t>(&value)) {
        return yr_compiler_define_integer_variable(compiler, id, *i);
    }
    if (const auto* d = std::get_if<double>(&value)) {
        return yr_compiler_define_float_variable(compiler, id, *d);
    }
    return yr_compiler_define_string_variable(compiler, id, std::get<std::string>(value).c_str());
}

Result<CompilerPtr> new_compiler(const YaraExternals& externals, ErrorSink& sink) {
    YR_COMPILER* raw = nullptr;
    const int rc = yr_compiler_create(&raw);
    if (rc != ERROR_SUCCESS) {
        return make_error(ErrorCode::kInternal, "cannot create a YARA compiler: " + error_name(rc));
    }
    CompilerPtr compiler(raw);
    yr_compiler_set_callback(compiler.get(), on_compile_message, &sink);
    for (const auto& [name, value] : externals) {
        const int drc = define_external(compiler.get(), name, value);
        if (drc != ERROR_SUCCESS) {
            return make_error(ErrorCode::kInvalidArgument,
                              "cannot define YARA external '" + name + "': " + error_name(drc));
        }
    }
    return compiler;
}

std::string short_sha256(std::span<const std::string> sources) {
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    bool ok = ctx != nullptr && EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) == 1;
    for (const auto& source : sources) {
        ok = ok && EVP_DigestUpdate(ctx.get(), source.data(), source.size()) == 1;
    }
    ok = ok && EVP_DigestFinal_ex(ctx.get(), digest, &digest_len) == 1;
    if (!ok) return "sha256:unavailable";
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out = "sha256:";
    for (unsigned int i = 0; i < 8 && i < digest_len; ++i) {
        out.push_back(kHex[digest[i] >> 4]);
        out.push_back(kHex[digest[i] & 0x0f]);
    }
    return out;
}

Result<RulesPtr> take_rules(YR_COMPILER* compiler) {
    YR_RULES* raw = nullptr;
    const int rc = yr_compiler_get_rules(compiler, &raw);
    if (rc != ERROR_SUCCESS) {
        return make_error(ErrorCode::kInternal, "cannot build YARA rules: " + error_name(rc));
    }
    return RulesPtr(raw);
}

common::Error compile_error(const std::vector<std::string>& messages) {
    std::string all;
    for (const auto& m : messages) {
        if (!all.empty()) all += '\n';
        all += m;
    }
    return make_error(ErrorCode::kCompile, std::move(all));
}

std::size_t count_rules(YR_RULES* rules) {
    std::size_t count = 0;
    const YR_RULE* rule = nullptr;
    yr_rules_foreach(rules, rule) {
        ++count;
    }
    return count;
}

struct Source {
    std::string path;
    std::string ns;
    std::string text;
};

bool is_rule_file(const std::filesystem::path& path) {
    const auto ext = path.extension();
    return ext == ".yar" || ext == ".yara";
}

Result<void> read_source(const std::string& path, std::string& out) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return make_error(ErrorCode::kIo, "cannot read YARA rule file " + path);
    out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (in.bad()) return make_error(ErrorCode::kIo, "error reading YARA rule file " + path);
    return {};
}

// Expands directories and reads every file once, so that the version hash describes exactly
// the text that was compiled.
Result<std::vector<Source>> collect_sources(const std::vector<RuleSourceFile>& files) {
    namespace fs = std::filesystem;
    std::vector<Source> sources;
    for (const auto& file : files) {
        std::error_code ec;
        const fs::file_status status = fs::status(file.path, ec);
        if (ec || !fs::exists(status)) {
            return make_error(ErrorCode::kNotFound,
                              "YARA rule path " + file.path + " does not exist");
        }
        std::vector<std::string> paths;
        if (fs::is_directory(status)) {
            fs::recursive_directory_iterator it(file.path, ec);
            for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
                if (it->is_regular_file(ec) && is_rule_file(it->path())) {
                    paths.push_back(it->path().string());
                }
            }
            if (ec) {
                return make_error(ErrorCode::kIo, "cannot list YARA rule directory " + file.path +
                                                      ": " + ec.message());
            }
            if (paths.empty()) {
                return make_error(ErrorCode::kNotFound, "YARA rule directory " + file.path +
                                                            " has no *.yar or *.yara file");
            }
            std::sort(paths.begin(), paths.end());
        } else {
            paths.push_back(file.path);
        }
        for (auto& path : paths) {
            Source source{std::move(path), file.ns, {}};
            if (auto read = read_source(source.path, source.text); !read) return read.error();
            sources.push_back(std::move(source));
        }
    }
    return sources;
}

int add_source(YR_COMPILER* compiler, const Source& source) {
    // yr_compiler_add_file rather than _add_string: it names the file in error messages and
    // resolves relative `include` directives against the file's directory.
    FilePtr file(std::fopen(source.path.c_str(), "rb"));
    if (!file) return -1;
    return yr_compiler_add_file(
        compiler, file.get(), source.ns.empty() ? nullptr : source.ns.c_str(), source.path.c_str());
}

}  // namespace

void ensure_yara_initialized() {
    std::call_once(g_yara_once, [] {
        g_yara_init_status = yr_initialize();
        if (g_yara_init_status == ERROR_SUCCESS) std::atexit(finalize_yara);
    });
}

YaraRules::YaraRules(void* rules, std::size_t count, std::string version)
    : rules_(rules), rule_count_(count), version_(std::move(version)) {}

YaraRules::~YaraRules() {
    if (rules_ != nullptr) yr_rules_destroy(static_cast<YR_RULES*>(rules_));
}

Result<std::shared_ptr<YaraRules>> YaraRules::compile_files(
    const std::vector<RuleSourceFile>& files) {
    return compile_files(files, YaraExternals{});
}

Result<std::shared_ptr<YaraRules>> YaraRules::compile_files(
    const std::vector<RuleSourceFile>& files, const YaraExternals& externals) {
    if (auto ready = check_yara_ready(); !ready) return ready.error();
    auto sources = collect_sources(files);
    if (!sources) return sources.error();

    // libyara refuses further input once a file failed, yet every problem should be reported
    // at once. So after a failing file, a fresh compiler is loaded again with the files that
    // compiled (a later file may use their rules) and carries on with the next file.
    ErrorSink sink;
    auto compiler = new_compiler(externals, sink);
    if (!compiler) return compiler.error();
    std::vector<const Source*> good;
    for (const auto& source : *sources) {
        const std::size_t before = sink.errors.size();
        const int errors = add_source(compiler->get(), source);
        if (errors == 0) {
            good.push_back(&source);
            continue;
        }
        if (errors < 0) {
            sink.errors.push_back(source.path + ":0: cannot open the file");
        } else if (sink.errors.size() == before) {
            sink.errors.push_back(source.path + ":0: " + std::to_string(errors) +
                                  " compile errors (messages lost)");
        }
        compiler = new_compiler(externals, sink);
        if (!compiler) return compiler.error();
        sink.muted = true;
        for (const Source* ok : good) {
            if (add_source(compiler->get(), *ok) != 0) {
                sink.muted = false;
                sink.errors.push_back(ok->path + ":0: compiled once but not when reloaded");
                return compile_error(sink.errors);
            }
        }
        sink.muted = false;
    }
    if (!sink.errors.empty()) return compile_error(sink.errors);
    std::vector<std::string> texts;
    texts.reserve(sources->size());
    for (auto& source : *sources) texts.push_back(std::move(source.text));
    auto rules = take_rules(compiler->get());
    if (!rules) return rules.error();
    const std::size_t count = count_rules(rules->get());
    return std::shared_ptr<YaraRules>(new YaraRules(rules->release(), count, short_sha256(texts)));
}

Result<std::shared_ptr<YaraRules>> YaraRules::compile_string(const std::string& source) {
    return compile_string(source, YaraExternals{});
}

Result<std::shared_ptr<YaraRules>> YaraRules::compile_string(const std::string& source,
                                                             const YaraExternals& externals) {
    if (auto ready = check_yara_ready(); !ready) return ready.error();
    ErrorSink sink;
    auto compiler = new_compiler(externals, sink);
    if (!compiler) return compiler.error();
    const int errors = yr_compiler_add_string(compiler->get(), source.c_str(), nullptr);
    if (errors != 0) {
        if (sink.errors.empty()) {
            sink.errors.push_back("<string>:0: " + std::to_string(errors) +
                                  " compile errors (messages lost)");
        }
        return compile_error(sink.errors);
    }
    auto rules = take_rules(compiler->get());
    if (!rules) return rules.error();
    const std::size_t count = count_rules(rules->get());
    return std::shared_ptr<YaraRules>(
        new YaraRules(rules->release(), count, short_sha256(std::span(&source, 1))));
}

namespace {

struct ScanState {
    std::vector<YaraMatch>* out = nullptr;
    bool failed = false;  // an allocation failed inside the callback
};

std::string meta_text(const YR_META* meta) {
    switch (meta->type) {
        case META_TYPE_INTEGER: return std::to_string(meta->integer);
        case META_TYPE_BOOLEAN: return meta->integer != 0 ? "true" : "false";
        default: return meta->string != nullptr ? meta->string : "";
    }
}

// libyara 4.2 keeps YR_MATCH records in a packed arena, so they are not always aligned for
// their type (UBSan reports it): every record is copied out with memcpy before it is read.
YR_MATCH load_match(const YR_MATCH* p) {
    YR_MATCH m;
    std::memcpy(&m, p, sizeof m);
    return m;
}

// The first match at or after P that is not private (the skip yr_string_matches_foreach
// makes), or nullptr.
const YR_MATCH* first_public(const YR_MATCH* p) {
    while (p != nullptr) {
        const YR_MATCH m = load_match(p);
        if (!m.is_private) return p;
        p = m.next;
    }
    return nullptr;
}

// Takes matches in turn from each string, so that one string that matches everywhere does
// not crowd the others out of the bounded list an analyst gets to see.
void collect_strings(YR_SCAN_CONTEXT* context, const YR_RULE* rule,
                     std::vector<common::StringMatch>& out) {
    std::vector<std::pair<const YR_STRING*, const YR_MATCH*>> cursors;
    const YR_STRING* string = nullptr;
    yr_rule_strings_foreach(rule, string) {
        if (const YR_MATCH* match = first_public(context->matches[string->idx].head)) {
            cursors.emplace_back(string, match);
        }
    }
    while (out.size() < common::kMaxStringMatches && !cursors.empty()) {
        for (auto it = cursors.begin();
             it != cursors.end() && out.size() < common::kMaxStringMatches;) {
            const YR_MATCH match = load_match(it->second);
            common::StringMatch m;
            m.identifier = it->first->identifier;
            m.offset = static_cast<std::uint64_t>(match.base + match.offset);
            m.length = static_cast<std::uint32_t>(match.match_length);
            const auto kept = std::min<std::size_t>(static_cast<std::size_t>(match.data_length),
                                                    common::kMaxMatchExcerpt);
            m.data.assign(reinterpret_cast<const char*>(match.data), kept);
            out.push_back(std::move(m));
            const YR_MATCH* next = first_public(match.next);
            if (next == nullptr) {
                it = cursors.erase(it);
            } else {
                it->second = next;
                ++it;
            }
        }
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
        return a.offset != b.offset ? a.offset < b.offset : a.identifier < b.identifier;
    });
}

int on_scan_message(YR_SCAN_CONTEXT* context, int message, void* message_data, void* user_data) {
    auto* state = static_cast<ScanState*>(user_data);
    // TOO_MANY_MATCHES: continuing makes libyara stop collecting that one string and scan on;
    // the string's first million matches still count, and the other rules still run.
    if (message != CALLBACK_MSG_RULE_MATCHING) return CALLBACK_CONTINUE;
    const auto* rule = static_cast<const YR_RULE*>(message_data);
    try {
        YaraMatch match;
        match.rule = rule->identifier;
        match.ns = rule->ns != nullptr && rule->ns->name != nullptr ? rule->ns->name : "";
        const char* tag = nullptr;
        yr_rule_tags_foreach(rule, tag) {
            match.tags.emplace_back(tag);
        }
        const YR_META* meta = nullptr;
        yr_rule_metas_foreach(rule, meta) {
            match.meta.emplace(meta->identifier, meta_text(meta));
        }
        collect_strings(context, rule, match.strings);
        state->out->push_back(std::move(match));
    } catch (const std::bad_alloc&) {
        // Exceptions must not cross libyara's C frames.
        state->failed = true;
        return CALLBACK_ERROR;
    }
    return CALLBACK_CONTINUE;
}

}  // namespace

YaraScanner::YaraScanner(std::shared_ptr<const YaraRules> rules, int timeout_seconds)
    : rules_(std::move(rules)), scanner_(nullptr), timeout_seconds_(timeout_seconds) {
    if (rules_ == nullptr || rules_->handle() == nullptr) return;
    YR_SCANNER* raw = nullptr;
    if (yr_scanner_create(static_cast<YR_RULES*>(rules_->handle()), &raw) != ERROR_SUCCESS) {
        return;
    }
    yr_scanner_set_timeout(raw, timeout_seconds);
    yr_scanner_set_flags(raw, SCAN_FLAGS_REPORT_RULES_MATCHING);
    scanner_ = raw;
}

YaraScanner::~YaraScanner() {
    if (scanner_ != nullptr) yr_scanner_destroy(static_cast<YR_SCANNER*>(scanner_));
}

Result<std::vector<YaraMatch>> YaraScanner::scan(std::span<const std::uint8_t> data) {
    if (scanner_ == nullptr) {
        return make_error(ErrorCode::kInternal, rules_ == nullptr
                                                    ? "YARA scanner has no rules"
                                                    : "YARA scanner could not be created");
    }
    auto* scanner = static_cast<YR_SCANNER*>(scanner_);
    std::vector<YaraMatch> matches;
    ScanState state{&matches};
    yr_scanner_set_callback(scanner, on_scan_message, &state);
    const int rc = yr_scanner_scan_mem(scanner, data.data(), data.size());
    if (rc == ERROR_SUCCESS) return matches;
    if (rc == ERROR_SCAN_TIMEOUT) {
        return make_error(ErrorCode::kTimeout, "YARA scan of " + std::to_string(data.size()) +
                                                   " bytes timed out after " +
                                                   std::to_string(timeout_seconds_) + " s");
    }
    std::string message = "YARA scan of " + std::to_string(data.size()) + " bytes failed: " +
                          (state.failed ? std::string("out of memory") : error_name(rc));
    if (const YR_RULE* rule = yr_scanner_last_error_rule(scanner); rule != nullptr) {
        message += std::string(" (rule ") + rule->identifier + ")";
    }
    return make_error(ErrorCode::kInternal, std::move(message));
}

void YaraScanner::set_fast_mode(bool on) {
    if (scanner_ == nullptr) return;
    yr_scanner_set_flags(static_cast<YR_SCANNER*>(scanner_),
                         SCAN_FLAGS_REPORT_RULES_MATCHING | (on ? SCAN_FLAGS_FAST_MODE : 0));
}

Result<void> YaraScanner::set_external(const std::string& name, const YaraExternalValue& value) {
    if (scanner_ == nullptr) return make_error(ErrorCode::kInternal, "YARA scanner not created");
    auto* scanner = static_cast<YR_SCANNER*>(scanner_);
    const char* id = name.c_str();
    int rc = ERROR_SUCCESS;
    if (const auto* b = std::get_if<bool>(&value)) {
        rc = yr_scanner_define_boolean_variable(scanner, id, *b ? 1 : 0);
    } else if (const auto* i = std::get_if<std::int64_t>(&value)) {
        rc = yr_scanner_define_integer_variable(scanner, id, *i);
    } else if (const auto* d = std::get_if<double>(&value)) {
        rc = yr_scanner_define_float_variable(scanner, id, *d);
    } else {
        rc = yr_scanner_define_string_variable(scanner, id, std::get<std::string>(value).c_str());
    }
    if (rc != ERROR_SUCCESS) {
        return make_error(ErrorCode::kInvalidArgument,
                          "cannot set YARA external '" + name + "': " + error_name(rc));
    }
    return {};
}

int severity_from_meta(const std::map<std::string, std::string>& meta, int fallback) {
    const auto it = meta.find("severity");
    if (it == meta.end()) return fallback;
    const std::string& v = it->second;
    int n = 0;
    const auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec == std::errc() && ptr == v.data() + v.size() && n >= common::kSeverityMin &&
        n <= common::kSeverityMax) {
        return n;
    }
    if (v == "critical") return 1;
    if (v == "high") return 2;
    if (v == "medium") return 3;
    if (v == "low" || v == "info") return 4;
    return fallback;
}

}  // namespace senningen::agent
