#include "senningen/agent/scan/yara_rules.h"

#include <openssl/evp.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <set>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>

#include "senningen/agent/scan/rule_gates.h"
#include "senningen/common/log.h"

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
        // libyara catches SIGBUS/SIGSEGV while it scans: a mapped file that shrank.
        case ERROR_COULD_NOT_MAP_FILE: return "the data could not be read (SIGBUS: a mapped file shrank)";
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

// The rules COMPILER made, taken through libyara's own save and load (what yarac and
// yr_rules_load do), the compiler destroyed in between. The compiler hands out rules in the
// arena it grew while compiling, a 1 MiB buffer per section, touched as it grew: 200 rules
// held 9 MB resident. A loaded copy's arena is the rules' own size (0.8 MB for the same
// rules). A rule set that cannot make the round trip is used as compiled.
Result<RulesPtr> take_rules(CompilerPtr& compiler) {
    YR_RULES* raw = nullptr;
    const int rc = yr_compiler_get_rules(compiler.get(), &raw);
    if (rc != ERROR_SUCCESS) {
        return make_error(ErrorCode::kInternal, "cannot build YARA rules: " + error_name(rc));
    }
    RulesPtr compiled(raw);
    std::string saved;
    YR_STREAM out{};
    out.user_data = &saved;
    out.write = [](const void* ptr, std::size_t size, std::size_t count, void* user) {
        static_cast<std::string*>(user)->append(static_cast<const char*>(ptr), size * count);
        return count;
    };
    if (yr_rules_save_stream(compiled.get(), &out) != ERROR_SUCCESS) return compiled;
    // The rules and the compiler share the arena: it goes when both are gone, before the
    // copy is loaded, so that the two are never resident at once.
    compiled.reset();
    compiler.reset();
    struct Reader {
        const std::string* bytes;
        std::size_t offset = 0;
    } reader{&saved};
    YR_STREAM in{};
    in.user_data = &reader;
    in.read = [](void* ptr, std::size_t size, std::size_t count, void* user) {
        auto& r = *static_cast<Reader*>(user);
        if (size == 0) return std::size_t{0};
        const std::size_t n = std::min(count, (r.bytes->size() - r.offset) / size);
        std::memcpy(ptr, r.bytes->data() + r.offset, n * size);
        r.offset += n * size;
        return n;
    };
    YR_RULES* loaded = nullptr;
    const int load_rc = yr_rules_load_stream(&in, &loaded);
    if (load_rc != ERROR_SUCCESS) {
        return make_error(ErrorCode::kInternal,
                          "cannot load the compiled YARA rules back: " + error_name(load_rc));
    }
    return RulesPtr(loaded);
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

struct YaraRules::Partitions {
    struct Entry {
        enum class State : std::uint8_t { kCounting, kCompiling, kReady, kFull };
        State state = State::kCounting;
        int demand = 0;
        std::size_t id = 0;  // when kReady
    };

    std::vector<Source> sources;
    std::vector<RuleSourceGates> gates;        // per source
    std::vector<std::vector<bool>> removable;  // per source, per rule
    std::vector<HeaderGate> headers;           // every distinct header gate
    YaraExternals externals;

    mutable std::mutex mutex;
    std::map<std::string, Entry> entries;  // by key: tier byte, then satisfied gates
    std::vector<RulesPtr> sets;            // id - 1
    // What each set was compiled for: a set serves any file at least as large (tier) whose
    // satisfied header gates are among the set's: everything it left out fails for that file.
    std::vector<std::pair<std::size_t, std::vector<bool>>> made_for;
    std::vector<std::size_t> dropped;      // rules left out, per set
    std::uint64_t files_partitioned = 0;
    std::int64_t compile_cpu_ns = 0;  // all partitions, on the threads that compiled them
    bool warned = false;
    bool compiling = false;
    std::vector<std::thread> compilers;  // joined before anything above goes

    Partitions() = default;
    Partitions(const Partitions&) = delete;
    Partitions& operator=(const Partitions&) = delete;
    ~Partitions() {
        for (auto& t : compilers) t.join();
    }
};

namespace {

constexpr std::uint64_t kTiers[] = {0, 1 << 20};

std::int64_t thread_cpu_ns() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}
constexpr std::size_t kMaxHeaderGates = 255;  // a key names them in one byte each

std::unique_ptr<YaraRules::Partitions> make_partitions(std::vector<Source> sources,
                                                       const YaraExternals& externals) {
    auto p = std::make_unique<YaraRules::Partitions>();
    p->externals = externals;
    std::set<std::string> referenced;
    for (const auto& source : sources) {
        auto gates = analyse_rule_gates(source.text);
        if (!gates) {
            // What YARA accepted but this reader cannot follow: nothing of it is changed.
            common::log_info("yara", source.path + ": rule partitions leave this file whole (" +
                                         gates.error().message + ")");
            p->gates.emplace_back();
            continue;
        }
        // `include` pulls in text this reader never saw: no partitions at all.
        if (gates->has_include) return nullptr;
        referenced.insert(gates->referenced.begin(), gates->referenced.end());
        p->gates.push_back(std::move(*gates));
    }
    auto note = [&](const std::vector<HeaderGate>& gates) {
        for (const auto& gate : gates) {
            if (std::find(p->headers.begin(), p->headers.end(), gate) == p->headers.end() &&
                p->headers.size() < kMaxHeaderGates) {
                p->headers.push_back(gate);
            }
        }
    };
    for (const auto& gates : p->gates) {
        std::vector<bool> removable;
        for (const auto& rule : gates.rules) {
            note(rule.headers);
            for (const auto& d : rule.disjuncts) note(d.headers);
            removable.push_back(!rule.global && !referenced.contains(rule.name));
        }
        p->removable.push_back(std::move(removable));
    }
    p->sources = std::move(sources);
    return p;
}

// The file a key stands for: at least TIER bytes, the header gates in SATISFIED hold.
struct KeyFile {
    std::uint64_t tier;
    const std::vector<HeaderGate>* headers;
    const std::vector<bool>* satisfied;

    // False when a gate rules the file out. A gate beyond kMaxHeaderGates is taken to hold.
    bool may_pass(const std::optional<std::uint64_t>& max_size,
                  const std::vector<HeaderGate>& gates) const {
        if (max_size && *max_size < tier) return false;
        for (const auto& gate : gates) {
            const auto it = std::find(headers->begin(), headers->end(), gate);
            if (it != headers->end() && !(*satisfied)[static_cast<std::size_t>(it - headers->begin())]) {
                return false;
            }
        }
        return true;
    }
};

// What a set for KEY changes in each source: rules left out, disjuncts found false.
struct SourceCuts {
    std::vector<bool> drop;
    std::vector<std::vector<bool>> falsified;  // per rule, per disjunct
};

std::vector<SourceCuts> cuts_for(const YaraRules::Partitions& p, const KeyFile& key,
                                 std::size_t& changes) {
    std::vector<SourceCuts> cuts(p.gates.size());
    changes = 0;
    for (std::size_t s = 0; s < p.gates.size(); ++s) {
        const auto& rules = p.gates[s].rules;
        cuts[s].drop.assign(rules.size(), false);
        cuts[s].falsified.resize(rules.size());
        for (std::size_t r = 0; r < rules.size(); ++r) {
            const RuleGates& rule = rules[r];
            bool can_match = key.may_pass(rule.max_size, rule.headers);
            if (can_match && !rule.disjuncts.empty()) {
                can_match = false;
                for (const auto& d : rule.disjuncts) {
                    const bool pass = key.may_pass(d.max_size, d.headers);
                    cuts[s].falsified[r].push_back(!pass);
                    can_match = can_match || pass;
                    changes += pass ? 0 : 1;
                }
            }
            if (!can_match && p.removable[s][r]) {
                cuts[s].drop[r] = true;
                ++changes;
            }
        }
    }
    return cuts;
}

Result<RulesPtr> compile_partition(const YaraRules::Partitions& p,
                                   const std::vector<SourceCuts>& cuts) {
    std::vector<std::string> texts;
    std::vector<RuleSourceGates> left;  // what the specialised texts hold
    std::set<std::string> unused;       // modules imported that no condition left uses
    for (std::size_t s = 0; s < p.sources.size(); ++s) {
        texts.push_back(specialise(p.sources[s].text, p.gates[s], cuts[s].drop,
                                   cuts[s].falsified));
        auto gates = analyse_rule_gates(texts.back());
        if (!gates) {
            return make_error(ErrorCode::kInternal, p.sources[s].path +
                                                        " specialised for a partition: " +
                                                        gates.error().message);
        }
        for (const auto& import : gates->imports) unused.insert(import.module);
        left.push_back(std::move(*gates));
    }
    for (const auto& gates : left) {
        for (const auto& id : gates.referenced) unused.erase(id);
    }
    ErrorSink sink;
    auto compiler = new_compiler(p.externals, sink);
    if (!compiler) return compiler.error();
    for (std::size_t s = 0; s < p.sources.size(); ++s) {
        const Source& source = p.sources[s];
        // No scan with this set loads a module that nothing in it uses.
        const std::string text = without_imports(texts[s], left[s], unused);
        const int errors = yr_compiler_add_string(compiler->get(), text.c_str(),
                                                  source.ns.empty() ? nullptr : source.ns.c_str());
        if (errors != 0) {
            const std::string first = sink.errors.empty() ? "no message" : sink.errors.front();
            return make_error(ErrorCode::kCompile,
                              source.path + " specialised for a partition: " + first);
        }
    }
    return take_rules(*compiler);
}

}  // namespace

void compile_kind(YaraRules::Partitions& p, const std::string& key, std::size_t tier,
                  const std::vector<bool>& satisfied);

YaraRules::Selection YaraRules::select(std::uint64_t size,
                                       std::span<const std::uint8_t> head) const {
    const Selection full{rules_, 0};
    if (!partitions_) return full;
    Partitions& p = *partitions_;
    std::size_t tier = 0;
    while (tier + 1 < std::size(kTiers) && size >= kTiers[tier + 1]) ++tier;
    std::vector<bool> satisfied(p.headers.size());
    std::string key(1, static_cast<char>(tier));
    for (std::size_t g = 0; g < p.headers.size(); ++g) {
        satisfied[g] = p.headers[g].holds(head);
        if (satisfied[g]) key.push_back(static_cast<char>(g));
    }
    {
        std::lock_guard lock(p.mutex);
        Partitions::Entry& e = p.entries[key];
        switch (e.state) {
            case Partitions::Entry::State::kReady:
                ++p.files_partitioned;
                return Selection{p.sets[e.id - 1].get(), e.id};
            case Partitions::Entry::State::kFull:
            case Partitions::Entry::State::kCompiling: return full;
            case Partitions::Entry::State::kCounting: break;
        }
        for (std::size_t id = 1; id <= p.made_for.size(); ++id) {
            const auto& [set_tier, set_satisfied] = p.made_for[id - 1];
            bool serves = set_tier <= tier;
            for (std::size_t g = 0; serves && g < satisfied.size(); ++g) {
                serves = !satisfied[g] || set_satisfied[g];
            }
            if (serves) {
                ++p.files_partitioned;
                return Selection{p.sets[id - 1].get(), id};
            }
        }
        if (++e.demand < kPartitionDemand) return full;
        if (p.sets.size() >= kMaxPartitions) {
            e.state = Partitions::Entry::State::kFull;
            return full;
        }
        // One compile at a time, on its own thread: no scanner thread waits for one (a compile
        // late in a scan would leave the other scanners idle). This kind asks again with its
        // next file.
        if (p.compiling) return full;
        e.state = Partitions::Entry::State::kCompiling;
        p.compiling = true;
        try {
            p.compilers.emplace_back(
                [&p, key, tier, satisfied] { compile_kind(p, key, tier, satisfied); });
        } catch (const std::system_error&) {
            e.state = Partitions::Entry::State::kFull;  // no thread: the full set serves
            p.compiling = false;
        }
    }
    return full;
}

void compile_kind(YaraRules::Partitions& p, const std::string& key, std::size_t tier,
                  const std::vector<bool>& satisfied) {
    const std::int64_t cpu_before = thread_cpu_ns();
    std::size_t changes = 0;
    const KeyFile file{kTiers[tier], &p.headers, &satisfied};
    const auto cuts = cuts_for(p, file, changes);
    Result<RulesPtr> compiled = make_error(ErrorCode::kNone, "");
    if (changes != 0) compiled = compile_partition(p, cuts);
    std::lock_guard lock(p.mutex);
    p.compiling = false;
    p.compile_cpu_ns += thread_cpu_ns() - cpu_before;
    YaraRules::Partitions::Entry& e = p.entries[key];
    if (changes == 0 || !compiled) {
        e.state = YaraRules::Partitions::Entry::State::kFull;
        if (changes != 0 && !p.warned) {
            p.warned = true;
            common::log_warn("yara", "a rule partition did not compile, its files use the full "
                                     "rule set: " + compiled.error().message);
        }
        return;
    }
    std::size_t dropped = 0;
    for (const auto& c : cuts) {
        dropped += static_cast<std::size_t>(std::count(c.drop.begin(), c.drop.end(), true));
    }
    p.sets.push_back(std::move(*compiled));
    p.made_for.emplace_back(tier, satisfied);
    p.dropped.push_back(dropped);
    e.state = YaraRules::Partitions::Entry::State::kReady;
    e.id = p.sets.size();
}

std::string YaraRules::partition_summary() const {
    if (!partitions_) return "rule partitions off";
    std::lock_guard lock(partitions_->mutex);
    const auto& d = partitions_->dropped;
    std::string out = std::to_string(d.size()) + " rule partitions";
    if (!d.empty()) {
        out += " (" + std::to_string(*std::min_element(d.begin(), d.end())) + ".." +
               std::to_string(*std::max_element(d.begin(), d.end())) + " of " +
               std::to_string(rule_count_) + " rules left out)";
    }
    char cpu[32];
    std::snprintf(cpu, sizeof cpu, "%.2f", static_cast<double>(partitions_->compile_cpu_ns) / 1e9);
    out += ", compiled in " + std::string(cpu) + " s CPU; " +
           std::to_string(partitions_->files_partitioned) + " files scanned with one";
    return out;
}

void ensure_yara_initialized() {
    std::call_once(g_yara_once, [] {
        g_yara_init_status = yr_initialize();
        if (g_yara_init_status == ERROR_SUCCESS) std::atexit(finalize_yara);
    });
}

YaraRules::YaraRules(void* rules, std::size_t count, std::string version)
    : rules_(rules), rule_count_(count), version_(std::move(version)) {}

void YaraRules::build_prefilter(std::span<const std::pair<std::string, std::string>> texts,
                                const YaraExternals& externals) {
    // What the texts say of each rule, and which rules any condition names.
    std::vector<RuleSourceGates> gates;
    std::set<std::string> referenced;
    for (const auto& [ns, text] : texts) {
        auto analysed = analyse_rule_gates(text);
        if (!analysed) {
            prefilter_note_ = "a rule text this reader cannot follow (" +
                              analysed.error().message + ")";
            return;
        }
        if (analysed->has_include) {
            prefilter_note_ = "the rules use include";
            return;
        }
        referenced.insert(analysed->referenced.begin(), analysed->referenced.end());
        gates.push_back(std::move(*analysed));
    }
    std::map<std::string, const YR_RULE*> compiled_rules;  // by key
    const YR_RULE* compiled = nullptr;
    yr_rules_foreach(static_cast<YR_RULES*>(rules_), compiled) {
        compiled_rules.emplace(yara_rule_key(compiled), compiled);
    }
    std::vector<RulePatterns> candidates;
    std::vector<std::vector<std::string>> reasons;  // per text, per rule: empty when a candidate
    std::size_t analysed_rules = 0;
    for (std::size_t t = 0; t < texts.size(); ++t) {
        const std::string ns = texts[t].first.empty() ? "default" : texts[t].first;
        reasons.emplace_back();
        for (const RuleGates& rule : gates[t].rules) {
            ++analysed_rules;
            const auto found = compiled_rules.find(ns + ":" + rule.name);
            std::string reason;
            RulePatterns patterns;
            if (found == compiled_rules.end()) {
                reason = "rule " + rule.name + " is not among the compiled rules";
            } else if (!rule.needs_string) {
                reason = "rule " + rule.name + " can match without any of its strings";
            } else if (rule.global || referenced.contains(rule.name)) {
                reason = "rule " + rule.name + " is global or named by a condition";
            } else {
                patterns.key = found->first;
                reason = rule_patterns(found->second, rule, texts[t].second, patterns.patterns);
            }
            if (reason.empty()) candidates.push_back(std::move(patterns));
            reasons.back().push_back(std::move(reason));
        }
    }
    if (analysed_rules != compiled_rules.size()) {
        prefilter_note_ = std::to_string(compiled_rules.size()) + " rules compiled but " +
                          std::to_string(analysed_rules) + " read from the text";
        return;
    }
    std::string first_reason;
    const auto first_left = [&] {
        for (const auto& per_text : reasons) {
            for (const auto& r : per_text) {
                if (!r.empty()) return r;
            }
        }
        return std::string();
    };
    if (candidates.empty()) {
        prefilter_note_ = "no rule can be prefiltered (" + first_left() + ")";
        return;
    }
    std::string why_not;
    std::map<std::string, std::string> refused;  // by Hyperscan
    auto prefilter = LiteralPrefilter::build(candidates, refused, why_not);
    if (!prefilter) {
        prefilter_note_ = why_not;
        return;
    }
    std::set<std::string> keys;           // prefiltered
    std::vector<std::vector<bool>> drop;  // per text, per rule: prefiltered
    for (std::size_t t = 0; t < texts.size(); ++t) {
        const std::string ns = texts[t].first.empty() ? "default" : texts[t].first;
        drop.emplace_back();
        for (std::size_t r = 0; r < gates[t].rules.size(); ++r) {
            std::string& reason = reasons[t][r];
            const std::string key = ns + ":" + gates[t].rules[r].name;
            if (reason.empty()) {
                if (const auto it = refused.find(key); it != refused.end()) {
                    reason = "rule " + gates[t].rules[r].name + ": " + it->second;
                }
            }
            drop.back().push_back(reason.empty());
            if (reason.empty()) keys.insert(key);
        }
    }
    first_reason = first_left();
    const std::size_t rule_total = compiled_rules.size();
    if (keys.size() < rule_total) {
        // The rules left: the texts with the prefiltered ones blanked out.
        ErrorSink sink;
        auto compiler = new_compiler(externals, sink);
        if (!compiler) {
            prefilter_note_ = "cannot compile the rules left: " + compiler.error().message;
            return;
        }
        for (std::size_t t = 0; t < texts.size(); ++t) {
            const std::string text = specialise(texts[t].second, gates[t], drop[t]);
            const std::string& ns = texts[t].first;
            if (yr_compiler_add_string(compiler->get(), text.c_str(),
                                       ns.empty() ? nullptr : ns.c_str()) != 0) {
                prefilter_note_ = "cannot compile the rules left: " +
                                  (sink.errors.empty() ? std::string("no message")
                                                       : sink.errors.front());
                return;
            }
        }
        auto rest = take_rules(*compiler);
        if (!rest) {
            prefilter_note_ = "cannot compile the rules left: " + rest.error().message;
            return;
        }
        prefilter_rest_ = rest->release();
        build_ungated_rest(texts, gates, drop, referenced, externals);
    }
    prefilter_note_ = std::to_string(prefilter->literal_count()) + " literals and " +
                      std::to_string(prefilter->expression_count()) +
                      " regular expressions or hex strings of " + std::to_string(keys.size()) +
                      " of " + std::to_string(rule_total) + " rules";
    if (keys.size() < rule_total) {
        prefilter_note_ += "; the other " + std::to_string(rule_total - keys.size()) +
                           " always scanned (first: " + first_reason + ")" + ungated_note_;
    }
    prefilter_ = std::move(prefilter);
}

void YaraRules::build_ungated_rest(std::span<const std::pair<std::string, std::string>> texts,
                                   const std::vector<RuleSourceGates>& gates,
                                   const std::vector<std::vector<bool>>& prefiltered,
                                   const std::set<std::string>& referenced,
                                   const YaraExternals& externals) {
    // For buffers that fail every header gate (`uint16(0) == 0x5a4d`) of the rules left: those
    // rules, and the `or` terms so gated, go (as in the file scanner's partitions), and with
    // them the modules only they use. Header gates only: most stream buffers pass a size gate
    // (`filesize < 300KB`), and one such rule would send every buffer to the full rest. Global
    // rules and rules another condition names stay.
    std::vector<std::vector<bool>> drop = prefiltered;
    std::vector<std::vector<std::vector<bool>>> falsified(texts.size());
    std::vector<std::vector<HeaderGate>> checks;
    std::size_t left = 0;
    for (std::size_t t = 0; t < texts.size(); ++t) {
        falsified[t].resize(gates[t].rules.size());
        for (std::size_t r = 0; r < gates[t].rules.size(); ++r) {
            const RuleGates& rule = gates[t].rules[r];
            if (drop[t][r]) continue;
            const bool removable = !rule.global && !referenced.contains(rule.name);
            if (!rule.headers.empty() && removable) {
                drop[t][r] = true;
                checks.push_back(rule.headers);
                continue;
            }
            ++left;
            for (const Disjunct& d : rule.disjuncts) {
                falsified[t][r].push_back(!d.headers.empty());
                if (!d.headers.empty()) checks.push_back(d.headers);
            }
        }
    }
    if (checks.empty()) return;  // prefilter_rest_ serves every buffer
    if (left == 0) {
        ungated_note_ = "; all of them only for buffers that pass their header gates";
        rest_checks_ = std::move(checks);
        rest_ungated_empty_ = true;
        return;
    }
    std::vector<std::string> specialised;
    std::vector<RuleSourceGates> kept;
    std::set<std::string> unused;  // modules imported that no condition kept uses
    for (std::size_t t = 0; t < texts.size(); ++t) {
        specialised.push_back(specialise(texts[t].second, gates[t], drop[t], falsified[t]));
        auto analysed = analyse_rule_gates(specialised.back());
        if (!analysed) return;
        for (const auto& import : analysed->imports) unused.insert(import.module);
        kept.push_back(std::move(*analysed));
    }
    for (const auto& k : kept) {
        for (const auto& id : k.referenced) unused.erase(id);
    }
    ErrorSink sink;
    auto compiler = new_compiler(externals, sink);
    if (!compiler) return;
    for (std::size_t t = 0; t < texts.size(); ++t) {
        const std::string text = without_imports(specialised[t], kept[t], unused);
        const std::string& ns = texts[t].first;
        if (yr_compiler_add_string(compiler->get(), text.c_str(),
                                   ns.empty() ? nullptr : ns.c_str()) != 0) {
            ungated_note_ = "; the rules left without their header-gated parts do not compile (" +
                            (sink.errors.empty() ? std::string("no message")
                                                 : sink.errors.front()) +
                            ")";
            return;
        }
    }
    auto rest = take_rules(*compiler);
    if (!rest) return;
    prefilter_rest_ungated_ = rest->release();
    ungated_note_ = "; " + std::to_string(checks.size()) +
                    " rules or terms of them only for buffers that pass their header gates";
    rest_checks_ = std::move(checks);
}

void* YaraRules::prefilter_rest_for(std::span<const std::uint8_t> head) const {
    if (prefilter_rest_ == nullptr || rest_checks_.empty()) return prefilter_rest_;
    for (const auto& gates : rest_checks_) {
        if (std::all_of(gates.begin(), gates.end(),
                        [&](const HeaderGate& g) { return g.holds(head); })) {
            return prefilter_rest_;
        }
    }
    return rest_ungated_empty_ ? nullptr : prefilter_rest_ungated_;
}

YaraRules::~YaraRules() {
    if (rules_ != nullptr) yr_rules_destroy(static_cast<YR_RULES*>(rules_));
    if (prefilter_rest_ != nullptr) yr_rules_destroy(static_cast<YR_RULES*>(prefilter_rest_));
    if (prefilter_rest_ungated_ != nullptr) {
        yr_rules_destroy(static_cast<YR_RULES*>(prefilter_rest_ungated_));
    }
}

Result<std::shared_ptr<YaraRules>> YaraRules::compile_files(
    const std::vector<RuleSourceFile>& files) {
    return compile_files(files, YaraExternals{});
}

Result<std::shared_ptr<YaraRules>> YaraRules::compile_files(
    const std::vector<RuleSourceFile>& files, const YaraExternals& externals,
    YaraCompileOptions options) {
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
    for (const auto& source : *sources) texts.push_back(source.text);
    auto rules = take_rules(*compiler);
    if (!rules) return rules.error();
    const std::size_t count = count_rules(rules->get());
    std::shared_ptr<YaraRules> out(new YaraRules(rules->release(), count, short_sha256(texts)));
    if (options.prefilter) {
        std::vector<std::pair<std::string, std::string>> named;
        for (const auto& source : *sources) named.emplace_back(source.ns, source.text);
        out->build_prefilter(named, externals);
    } else {
        out->prefilter_note_ = "not asked for";
    }
    if (options.partitions) out->partitions_ = make_partitions(std::move(*sources), externals);
    return out;
}

Result<std::shared_ptr<YaraRules>> YaraRules::compile_string(const std::string& source) {
    return compile_string(source, YaraExternals{});
}

Result<std::shared_ptr<YaraRules>> YaraRules::compile_string(const std::string& source,
                                                             const YaraExternals& externals,
                                                             YaraCompileOptions options) {
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
    auto rules = take_rules(*compiler);
    if (!rules) return rules.error();
    const std::size_t count = count_rules(rules->get());
    std::shared_ptr<YaraRules> out(
        new YaraRules(rules->release(), count, short_sha256(std::span(&source, 1))));
    if (options.prefilter) {
        const std::pair<std::string, std::string> named("", source);
        out->build_prefilter(std::span(&named, 1), externals);
    } else {
        out->prefilter_note_ = "not asked for";
    }
    return out;
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

namespace {

YR_SCANNER* new_scanner(void* rules, int timeout_seconds, int flags) {
    YR_SCANNER* raw = nullptr;
    if (yr_scanner_create(static_cast<YR_RULES*>(rules), &raw) != ERROR_SUCCESS) return nullptr;
    yr_scanner_set_timeout(raw, timeout_seconds);
    yr_scanner_set_flags(raw, flags);
    return raw;
}

int define_scanner_external(YR_SCANNER* scanner, const std::string& name,
                            const YaraExternalValue& value) {
    const char* id = name.c_str();
    if (const auto* b = std::get_if<bool>(&value)) {
        return yr_scanner_define_boolean_variable(scanner, id, *b ? 1 : 0);
    }
    if (const auto* i = std::get_if<std::int64_t>(&value)) {
        return yr_scanner_define_integer_variable(scanner, id, *i);
    }
    if (const auto* d = std::get_if<double>(&value)) {
        return yr_scanner_define_float_variable(scanner, id, *d);
    }
    return yr_scanner_define_string_variable(scanner, id, std::get<std::string>(value).c_str());
}

}  // namespace

YaraScanner::YaraScanner(std::shared_ptr<const YaraRules> rules, int timeout_seconds)
    : rules_(std::move(rules)),
      scanner_(nullptr),
      timeout_seconds_(timeout_seconds),
      flags_(SCAN_FLAGS_REPORT_RULES_MATCHING) {
    if (rules_ == nullptr || rules_->handle() == nullptr) return;
    scanner_ = new_scanner(rules_->handle(), timeout_seconds, flags_);
}

YaraScanner::~YaraScanner() {
    if (scanner_ != nullptr) yr_scanner_destroy(static_cast<YR_SCANNER*>(scanner_));
    for (void* rest : {rest_scanner_, rest_ungated_scanner_}) {
        if (rest != nullptr) yr_scanner_destroy(static_cast<YR_SCANNER*>(rest));
    }
    for (void* s : partition_scanners_) {
        if (s != nullptr) yr_scanner_destroy(static_cast<YR_SCANNER*>(s));
    }
}

void* YaraScanner::scanner_for(const YaraRules::Selection& selection) {
    if (selection.id == 0) return scanner_;
    if (partition_scanners_.size() < selection.id) partition_scanners_.resize(selection.id);
    void*& slot = partition_scanners_[selection.id - 1];
    if (slot == nullptr) slot = new_scanner(selection.handle, timeout_seconds_, flags_);
    if (slot == nullptr) return scanner_;  // could not create one: the full set does the work
    // The externals of this file, as the full set's scanner already has them.
    for (const auto& [name, value] : externals_) {
        if (define_scanner_external(static_cast<YR_SCANNER*>(slot), name, value) !=
            ERROR_SUCCESS) {
            return scanner_;
        }
    }
    return slot;
}

Result<std::vector<YaraMatch>> YaraScanner::scan(std::span<const std::uint8_t> data) {
    if (scanner_ == nullptr) {
        return make_error(ErrorCode::kInternal, rules_ == nullptr
                                                    ? "YARA scanner has no rules"
                                                    : "YARA scanner could not be created");
    }
    auto* scanner = static_cast<YR_SCANNER*>(scanner_);
    if (rules_->partitioned()) {
        const auto head = data.first(std::min<std::size_t>(4, data.size()));
        scanner = static_cast<YR_SCANNER*>(scanner_for(rules_->select(data.size(), head)));
    }
    std::vector<YaraMatch> matches;
    if (prefilter_scratch_ && !rules_->prefilter()->may_match(data, *prefilter_scratch_)) {
        // None of the prefiltered rules can match: the rest decide, or nothing is to scan.
        const auto head = data.first(std::min<std::size_t>(4, data.size()));
        void* rest = rules_->prefilter_rest_for(head);
        if (rest == nullptr) {
            ++prefiltered_;
            return matches;
        }
        void*& slot = rest == rules_->prefilter_rest() ? rest_scanner_ : rest_ungated_scanner_;
        if (slot == nullptr) {
            slot = new_scanner(rest, timeout_seconds_, flags_);
            for (const auto& [name, value] : externals_) {
                if (slot != nullptr &&
                    define_scanner_external(static_cast<YR_SCANNER*>(slot), name, value) !=
                        ERROR_SUCCESS) {
                    yr_scanner_destroy(static_cast<YR_SCANNER*>(slot));
                    slot = nullptr;
                }
            }
        }
        if (slot != nullptr) {
            ++prefiltered_;
            scanner = static_cast<YR_SCANNER*>(slot);
        }
    }
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
    flags_ = (flags_ & ~SCAN_FLAGS_FAST_MODE) | (on ? SCAN_FLAGS_FAST_MODE : 0);
    apply_flags();
}

void YaraScanner::set_heap_only(bool on) {
    flags_ = (flags_ & ~SCAN_FLAGS_NO_TRYCATCH) | (on ? SCAN_FLAGS_NO_TRYCATCH : 0);
    apply_flags();
    // Hyperscan reads the buffer without libyara's guard: our own heap memory only.
    prefilter_scratch_.reset();
    if (on && rules_ != nullptr && rules_->prefilter() != nullptr) {
        prefilter_scratch_ = rules_->prefilter()->make_scratch();
    }
}

void YaraScanner::apply_flags() {
    if (scanner_ != nullptr) yr_scanner_set_flags(static_cast<YR_SCANNER*>(scanner_), flags_);
    for (void* rest : {rest_scanner_, rest_ungated_scanner_}) {
        if (rest != nullptr) yr_scanner_set_flags(static_cast<YR_SCANNER*>(rest), flags_);
    }
    for (void* s : partition_scanners_) {
        if (s != nullptr) yr_scanner_set_flags(static_cast<YR_SCANNER*>(s), flags_);
    }
}

Result<void> YaraScanner::set_external(const std::string& name, const YaraExternalValue& value) {
    if (scanner_ == nullptr) return make_error(ErrorCode::kInternal, "YARA scanner not created");
    const int rc = define_scanner_external(static_cast<YR_SCANNER*>(scanner_), name, value);
    if (rc != ERROR_SUCCESS) {
        return make_error(ErrorCode::kInvalidArgument,
                          "cannot set YARA external '" + name + "': " + error_name(rc));
    }
    for (void** rest : {&rest_scanner_, &rest_ungated_scanner_}) {
        if (*rest != nullptr &&
            define_scanner_external(static_cast<YR_SCANNER*>(*rest), name, value) !=
                ERROR_SUCCESS) {
            yr_scanner_destroy(static_cast<YR_SCANNER*>(*rest));  // made again on next use
            *rest = nullptr;
        }
    }
    if (rules_->partitioned() || rules_->prefilter_rest() != nullptr) {
        auto it = std::find_if(externals_.begin(), externals_.end(),
                               [&](const auto& e) { return e.first == name; });
        if (it == externals_.end()) {
            externals_.emplace_back(name, value);
        } else {
            it->second = value;
        }
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
