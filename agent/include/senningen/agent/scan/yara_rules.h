// The YARA wrapper. YaraRules owns a compiled YR_RULES (shared read-only between threads);
// YaraScanner owns one YR_SCANNER (one per thread). <yara.h> is included only in the .cc
// files: its macros break other headers.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "senningen/common/alert.h"
#include "senningen/agent/scan/literal_prefilter.h"
#include "senningen/agent/scan/rule_gates.h"
#include "senningen/common/result.h"

namespace senningen::agent {

// Calls yr_initialize() on first use and yr_finalize() at exit; safe from any thread.
void ensure_yara_initialized();

struct RuleSourceFile {
    std::string path;
    std::string ns;  // YARA namespace; empty for "default"
};

// An external variable, as `yarac -d NAME=VALUE` defines it. Rules that read file names or
// paths (signature-base's filename, filepath, extension, ...) do not compile without them.
using YaraExternalValue = std::variant<bool, std::int64_t, double, std::string>;
using YaraExternals = std::map<std::string, YaraExternalValue>;

struct YaraMatch {
    std::string rule;
    std::string ns;  // as YARA names it: "default" when the source file gave none
    std::vector<std::string> tags;
    std::map<std::string, std::string> meta;  // integers and booleans as text; first one wins
    std::vector<common::StringMatch> strings;  // bounded as in common::add_match
};

// Rule partitions (compile_files with partitions on; the file scanner uses them): a file is
// scanned with a rule set compiled without the rules, and the terms of top-level `or`s, that
// its size and first bytes rule out (see rule_gates.h), which matches exactly what the full
// set matches and costs less per file: fewer strings to confirm, fewer conditions to evaluate,
// and no module that nothing left uses (each scan builds every imported module's objects; for
// pe, hundreds, most of what a scan of a small file costs). A set is made for a kind of file:
// its size tier (under or over 1 MiB) and which of the rules' header gates it satisfies. It
// serves every file it is right for (as large, satisfying no gate its kind fails). A kind no
// set serves gets its own when its kPartitionDemand-th file comes (files before that, and rare
// kinds, use the full set: a compile costs about as much as scanning a few hundred small
// files), compiled on a thread of its own (one at a time, so no scanner waits), at most
// kMaxPartitions of them. Global rules,
// rules another condition names, and every rule of a rule set with `include` are never left
// out. A set that fails to compile is logged once and its files use the full set.
struct YaraCompileOptions {
    bool partitions = false;
    // Build the literal prefilter (literal_prefilter.h): only heap-only (stream) scanners use
    // it, so the file scanner and the rule tool leave it off and compile no second set.
    bool prefilter = false;
};
inline constexpr std::size_t kMaxPartitions = 16;
inline constexpr int kPartitionDemand = 32;

// The alert severity a rule's metadata asks for: meta "severity" as 1..4 or as critical, high,
// medium, low/info; FALLBACK when absent or unreadable.
int severity_from_meta(const std::map<std::string, std::string>& meta, int fallback);

class YaraRules {
public:
    // Compiles every file (a directory adds each *.yar and *.yara inside, recursively, sorted
    // by name). On any compile error: kCompile with every message as "FILE:LINE: message",
    // one per line. A missing path, or a directory without rule files: kNotFound.
    static common::Result<std::shared_ptr<YaraRules>> compile_files(
        const std::vector<RuleSourceFile>& files);
    static common::Result<std::shared_ptr<YaraRules>> compile_files(
        const std::vector<RuleSourceFile>& files, const YaraExternals& externals,
        YaraCompileOptions options = {});
    // Compiles rule text (tests, rule tool): errors as "<string>:LINE: message".
    static common::Result<std::shared_ptr<YaraRules>> compile_string(const std::string& source);
    static common::Result<std::shared_ptr<YaraRules>> compile_string(
        const std::string& source, const YaraExternals& externals,
        YaraCompileOptions options = {});

    ~YaraRules();
    YaraRules(const YaraRules&) = delete;
    YaraRules& operator=(const YaraRules&) = delete;

    std::size_t rule_count() const { return rule_count_; }
    // "sha256:" and the first 16 hex digits of the SHA-256 over the sources, in order.
    const std::string& version() const { return version_; }
    void* handle() const { return rules_; }  // YR_RULES*

    // The rule set to scan SIZE bytes starting with HEAD with: id 0 and handle() without
    // partitions, else a partition's (ids are small and stable, below kMaxPartitions + 1).
    struct Selection {
        void* handle = nullptr;  // YR_RULES*
        std::size_t id = 0;
    };
    Selection select(std::uint64_t size, std::span<const std::uint8_t> head) const;
    bool partitioned() const { return partitions_ != nullptr; }
    // "N partitions compiled (rules left out: a..b), M files scanned with one", for the log.
    std::string partition_summary() const;

    struct Partitions;  // defined in the .cc

    // The literal prefilter of these rules (literal_prefilter.h), or null; the rules that are
    // not prefiltered, compiled on their own (YR_RULES*), or null when every rule is; for the
    // log, what the prefilter covers or why there is none.
    const LiteralPrefilter* prefilter() const { return prefilter_.get(); }
    void* prefilter_rest() const { return prefilter_rest_; }
    const std::string& prefilter_note() const { return prefilter_note_; }
    // The rules left for a buffer starting with HEAD (YR_RULES*):
    // prefilter_rest(), or, for a buffer that fails the header gates (rule_gates.h:
    // `uint16(0) == 0x5a4d`) of every rule left and `or` term of one that has some, the rules
    // left without those and without the modules only they import (an `import "pe"` builds the module's objects on every scan, most of what a small
    // buffer's scan costs); null when no rule is left to scan it with.
    void* prefilter_rest_for(std::span<const std::uint8_t> head) const;

private:
    YaraRules(void* rules, std::size_t count, std::string version);
    // TEXTS: (namespace, text) of every source, in compile order.
    void build_prefilter(std::span<const std::pair<std::string, std::string>> texts,
                         const YaraExternals& externals);
    void build_ungated_rest(std::span<const std::pair<std::string, std::string>> texts,
                            const std::vector<RuleSourceGates>& gates,
                            const std::vector<std::vector<bool>>& prefiltered,
                            const std::set<std::string>& referenced,
                            const YaraExternals& externals);
    void* rules_;
    std::size_t rule_count_;
    std::string version_;
    std::unique_ptr<Partitions> partitions_;
    std::unique_ptr<LiteralPrefilter> prefilter_;
    void* prefilter_rest_ = nullptr;  // YR_RULES*
    void* prefilter_rest_ungated_ = nullptr;  // YR_RULES*: see prefilter_rest_for
    bool rest_ungated_empty_ = false;         // every rule left is gated
    // The header gates of the rules left and of their `or` terms that the ungated set leaves
    // out: a buffer that passes all of one of them needs prefilter_rest_.
    std::vector<std::vector<HeaderGate>> rest_checks_;
    std::string ungated_note_;                // for prefilter_note_
    std::string prefilter_note_;
};

class YaraScanner {
public:
    explicit YaraScanner(std::shared_ptr<const YaraRules> rules, int timeout_seconds = 10);
    ~YaraScanner();
    YaraScanner(const YaraScanner&) = delete;
    YaraScanner& operator=(const YaraScanner&) = delete;

    // Scans DATA; every matching rule, with its matched strings (at most kMaxStringMatches per
    // rule, taken in turn from each of its strings). A timeout is kTimeout; other libyara
    // failures are kInternal naming the code. A string with more matches than libyara keeps
    // (1,000,000) does not abort the scan: its further matches are dropped and the scan goes on.
    common::Result<std::vector<YaraMatch>> scan(std::span<const std::uint8_t> data);

    // Overrides, for the following scans, an external the rules were compiled with (e.g. the
    // file name for each scanned file). Unknown NAME or a different type: kInvalidArgument.
    common::Result<void> set_external(const std::string& name, const YaraExternalValue& value);

    // Fast mode (libyara's SCAN_FLAGS_FAST_MODE): once a string matched, its further
    // occurrences are not searched for, unless a rule counts them or asks for their offsets
    // (#s, @s, !s), which YARA's compiler notes. Which rules match does not change; an alert
    // shows fewer matched strings. File scans use it; off by default.
    void set_fast_mode(bool on);

    // The data given to scan() is always this process's own heap memory, never a mapped file
    // that could shrink under the scan: libyara's guard against SIGBUS/SIGSEGV, which installs
    // and restores two signal handlers around every scan (system calls that cost more than a
    // small stream's scan and that two workers' scans contend on), is left out. Network
    // streams and files from traffic set it; the file scanner, which maps files, does not.
    // A heap-only scanner also consults the rules' literal prefilter, when they have one: a
    // buffer holding none of the prefiltered rules' literals is scanned with the other rules
    // only, or not at all when there are none; the matches are the same. prefiltered() counts
    // those scans.
    void set_heap_only(bool on);
    std::uint64_t prefiltered() const { return prefiltered_; }

private:
    void* scanner_for(const YaraRules::Selection& selection);
    void apply_flags();  // flags_ to every scanner made so far

    std::shared_ptr<const YaraRules> rules_;
    void* scanner_;  // YR_SCANNER* of the full set; null when libyara could not create it
    int timeout_seconds_;
    int flags_;
    // Scanners of partitions by id (index id - 1), created on first use, and the externals
    // last set, which each of them gets before it scans.
    std::vector<void*> partition_scanners_;
    std::vector<std::pair<std::string, YaraExternalValue>> externals_;
    std::unique_ptr<LiteralPrefilter::Scratch> prefilter_scratch_;  // heap-only scanners
    // YR_SCANNER*s of prefilter_rest() and of the ungated rules left, made on first use.
    void* rest_scanner_ = nullptr;
    void* rest_ungated_scanner_ = nullptr;
    std::uint64_t prefiltered_ = 0;
};

}  // namespace senningen::agent
