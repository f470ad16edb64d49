// Fills a collector store with generated alerts for the API benchmark (tests/bench/api/README.md).
//
//   senningen_bench_generate --db SPEC --count N [--agents 300] [--rules 3000] [--days 30]
//                            [--end RFC3339] [--seed S] [--batch 10000] [--writers W]
//   senningen_bench_generate --schema-version sqlite|postgresql
//
// The alerts go in through AlertStore::insert_batches, the collector's own ingest path, so the
// rows, indexes and any table the store maintains beside them are what a real collector would
// have written. They are realistic in shape: hundreds of agents, thousands of rules of which a
// few are noisy (a skewed pick), every severity, network alerts (IPv4 and IPv6, TCP and UDP,
// several application protocols; YARA, intel and policy rules) and file alerts (paths and
// hashes), time stamps in ascending order spread over the last DAYS days before END. It prints
// the rows/s it reached, the figure the benchmark reports for the generator.
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "senningen/collector/open_store.h"
#include "senningen/collector/postgres_store.h"
#include "senningen/collector/sqlite_store.h"
#include "senningen/common/alert.h"
#include "senningen/common/log.h"

namespace {

using namespace senningen;
using Clock = std::chrono::steady_clock;

constexpr std::int64_t kNsPerSecond = 1'000'000'000;
constexpr std::int64_t kNsPerDay = 86'400 * kNsPerSecond;

struct Args {
    std::string db;
    std::uint64_t count = 0;
    int agents = 300;
    int rules = 3000;
    int days = 30;
    std::int64_t end_ns = 0;
    std::uint64_t seed = 1;
    std::size_t batch = 10'000;
    int writers = 1;
};

[[noreturn]] void usage(const std::string& problem) {
    std::fprintf(stderr,
                 "senningen_bench_generate: %s\n"
                 "usage: senningen_bench_generate --db SPEC --count N [--agents N] [--rules N]\n"
                 "           [--days N] [--end RFC3339] [--seed N] [--batch N] [--writers N]\n"
                 "       senningen_bench_generate --schema-version sqlite|postgresql\n",
                 problem.c_str());
    std::exit(64);
}

std::uint64_t number(const char* flag, const char* text, std::uint64_t min, std::uint64_t max) {
    char* end = nullptr;
    errno = 0;
    const unsigned long long v = std::strtoull(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || text[0] == '-' || v < min || v > max) {
        usage(std::string(flag) + " '" + text + "' is not an integer in " + std::to_string(min) +
              ".." + std::to_string(max));
    }
    return v;
}

// One rule of the generated rule set: its name, category, severity and what it fires on.
struct Rule {
    std::string name;
    std::string category;
    int severity = 3;
    common::AlertKind kind = common::AlertKind::kNetwork;
    common::RuleSource source = common::RuleSource::kYara;
    std::string app_proto;
};

constexpr std::array kFamilies = {"emotet",   "qakbot",   "cobalt_strike", "icedid",  "trickbot",
                                  "asyncrat", "remcos",   "agenttesla",    "lokibot", "formbook",
                                  "sliver",   "mimikatz", "industroyer",   "triton",  "havex"};
constexpr std::array kCategories = {
    "Malware download", "Command and control",    "Credential theft", "Lateral movement",
    "Exfiltration",     "ICS protocol violation", "Policy violation", "Scanning"};
constexpr std::array kAppProtos = {"http", "dns", "tls", "smb", "modbus", "dnp3", "", "ssh"};
constexpr std::array kSites = {"hq", "plant-a", "plant-b", "dc1", "dc2", "lab", "branch"};
constexpr std::array kRoles = {"ws", "srv", "plc-gw", "hmi", "jump", "db"};
// Folder and extension of a file alert's path; the name between them is made per alert.
constexpr std::array<std::pair<const char*, const char*>, 4> kPaths = {
    {{"/home/operator/Downloads/invoice_", ".exe"},
     {"/srv/share/drop/", ".dll"},
     {"/var/tmp/.cache/", ".so"},
     {"/srv/scada/projects/", ".zip"}}};

std::vector<Rule> make_rules(int count, std::mt19937_64& rng) {
    std::vector<Rule> rules;
    rules.reserve(static_cast<std::size_t>(count));
    std::uniform_real_distribution<double> u(0, 1);
    for (int i = 0; i < count; ++i) {
        Rule r;
        const double s = u(rng);  // 5% critical, 15% high, 40% medium, 40% low
        r.severity = s < 0.05 ? 1 : s < 0.20 ? 2 : s < 0.60 ? 3 : 4;
        r.category = kCategories[static_cast<std::size_t>(i) % kCategories.size()];
        const char* family = kFamilies[rng() % kFamilies.size()];
        const double k = u(rng);
        if (k < 0.2) {
            r.kind = common::AlertKind::kFile;
            r.source = common::RuleSource::kYara;
            r.name = std::string("file_") + family + "_" + std::to_string(i);
        } else if (k < 0.4) {
            r.source = common::RuleSource::kIntel;
            r.name = "Intel hit: " + std::string(family) + "-" + std::to_string(i) +
                     ".example (Intel::DOMAIN) at DNS::IN_REQUEST";
            r.app_proto = "dns";
        } else if (k < 0.65) {
            r.source = common::RuleSource::kPolicy;
            r.name = "policy_" + std::to_string(i) + "_unexpected_" +
                     kAppProtos[static_cast<std::size_t>(i) % kAppProtos.size()];
            r.app_proto = kAppProtos[static_cast<std::size_t>(i) % kAppProtos.size()];
        } else {
            r.name = std::string("net_") + family + "_" + std::to_string(i);
            r.app_proto = kAppProtos[rng() % kAppProtos.size()];
        }
        rules.push_back(std::move(r));
    }
    return rules;
}

std::vector<std::string> make_agents(int count) {
    std::vector<std::string> agents;
    char name[64];
    for (int i = 0; i < count; ++i) {
        std::snprintf(name, sizeof name, "%s-%s-%03d",
                      kSites[static_cast<std::size_t>(i) % kSites.size()],
                      kRoles[static_cast<std::size_t>(i / 7) % kRoles.size()], i);
        agents.emplace_back(name);
    }
    return agents;
}

std::string hex(std::mt19937_64& rng, std::size_t digits) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out(digits, '0');
    std::uint64_t bits = 0;
    for (std::size_t i = 0; i < digits; ++i) {
        if (i % 16 == 0) bits = rng();
        out[i] = kHex[bits & 0xf];
        bits >>= 4;
    }
    return out;
}

std::string ipv4(std::uint32_t a, std::uint32_t b, std::uint32_t c, std::uint32_t d) {
    char text[16];
    std::snprintf(text, sizeof text, "%u.%u.%u.%u", a, b, c, d);
    return text;
}

// Makes alerts N..N+COUNT-1 of the run; alert i's time stamp is fixed by i alone, so that the
// rows are in time order whatever the batch size.
class Generator {
public:
    explicit Generator(const Args& args)
        : args_(args),
          rng_(args.seed),
          agents_(make_agents(args.agents)),
          rules_(make_rules(args.rules, rng_)),
          start_ns_(args.end_ns - static_cast<std::int64_t>(args.days) * kNsPerDay),
          step_ns_(static_cast<double>(args.end_ns - start_ns_) /
                   static_cast<double>(std::max<std::uint64_t>(args.count, 1))) {}

    void fill(std::uint64_t first, std::size_t count, std::vector<common::Alert>& out) {
        out.clear();
        out.reserve(count);
        for (std::size_t k = 0; k < count; ++k) out.push_back(make(first + k));
    }

private:
    common::Alert make(std::uint64_t i) {
        std::uniform_real_distribution<double> u(0, 1);
        common::Alert a;
        a.id = common::new_uuid();
        // A skewed pick: the first rules and agents are the noisy ones, as on a real network.
        const double pr = u(rng_);
        const auto rule_index =
            static_cast<std::size_t>(pr * pr * pr * static_cast<double>(rules_.size()));
        const Rule& rule = rules_[std::min(rule_index, rules_.size() - 1)];
        const double pa = u(rng_);
        const auto agent_index =
            static_cast<std::size_t>(pa * pa * static_cast<double>(agents_.size()));
        a.agent_id = agents_[std::min(agent_index, agents_.size() - 1)];
        a.timestamp_ns = start_ns_ + static_cast<std::int64_t>(step_ns_ * static_cast<double>(i));
        a.kind = rule.kind;
        a.source = rule.source;
        a.rule = rule.name;
        a.category = rule.category;
        a.pack_version = "sha256:3f9a1c0e7b2d4a65";
        a.severity = rule.severity;
        if (rule.kind == common::AlertKind::kFile) {
            const auto& [folder, extension] = kPaths[rng_() % kPaths.size()];
            const std::string path = folder + std::string(kFamilies[rng_() % kFamilies.size()]) +
                                     "_" + std::to_string(rng_() % 100000) + extension;
            a.file = common::FileContext{path, 1024 + rng_() % (8u << 20), hex(rng_, 64),
                                         hex(rng_, 40), hex(rng_, 32)};
            common::add_match(a, "$mz", 0, std::string_view("MZ\x90\x00", 4));
            common::add_match(a, "$cfg", rng_() % 4096, rule.name);
            return a;
        }
        common::NetworkContext n;
        n.flow_id = rng_();
        const std::uint64_t host = rng_();
        if (host % 5 == 0) {  // one in five flows is IPv6
            char src[48];
            char dst[48];
            std::snprintf(src, sizeof src, "fd00:5e:%x::%x",
                          static_cast<unsigned>(host >> 8 & 0xff),
                          static_cast<unsigned>(host >> 16 & 0xffff));
            std::snprintf(dst, sizeof dst, "2001:db8:%x::%x",
                          static_cast<unsigned>(host >> 32 & 0xfff),
                          static_cast<unsigned>(host >> 44 & 0xffff));
            n.src_ip = src;
            n.dest_ip = dst;
        } else {
            n.src_ip = ipv4(10, host >> 8 & 0xff, host >> 16 & 0xff, 1 + (host >> 24 & 0xfd));
            n.dest_ip = (host >> 32) % 3 == 0
                            ? ipv4(192, 168, host >> 40 & 0xff, 1 + (host >> 48 & 0xfd))
                            : ipv4(198, 51, 100, 1 + (host >> 40 & 0xfd));
        }
        n.src_port = static_cast<std::uint16_t>(32768 + rng_() % 28000);
        const std::string& app = rule.app_proto;
        n.app_proto = app;
        n.proto = app == "dns" ? "UDP" : "TCP";
        n.dest_port = app == "http"     ? 80
                      : app == "dns"    ? 53
                      : app == "tls"    ? 443
                      : app == "smb"    ? 445
                      : app == "modbus" ? 502
                      : app == "dnp3"   ? 20000
                      : app == "ssh"    ? 22
                                        : static_cast<std::uint16_t>(1024 + rng_() % 60000);
        a.network = n;
        if (rule.source == common::RuleSource::kIntel) {
            const auto at = rule.name.find(" (");
            a.intel = common::IntelContext{rule.name.substr(11, at - 11),
                                           "Intel::DOMAIN",
                                           "DNS::IN_REQUEST",
                                           {"cert-eu", "misp-local"}};
        } else if (rule.source == common::RuleSource::kYara) {
            common::add_match(a, "$beacon", rng_() % 1500, "GET /submit.php?id=" + hex(rng_, 12));
        }
        return a;
    }

    const Args& args_;
    std::mt19937_64 rng_;
    std::vector<std::string> agents_;
    std::vector<Rule> rules_;
    std::int64_t start_ns_;
    double step_ns_;
};

Args parse(int argc, char** argv) {
    Args a;
    for (int i = 1; i < argc; ++i) {
        const std::string flag = argv[i];
        if (flag == "--schema-version") {
            if (i + 1 >= argc) usage("--schema-version needs sqlite or postgresql");
            const std::string which = argv[++i];
            if (which != "sqlite" && which != "postgresql") usage("--schema-version: " + which);
            std::printf("%d\n", which == "sqlite" ? collector::kSqliteSchemaVersion
                                                  : collector::kPostgresSchemaVersion);
            std::exit(0);
        }
        if (i + 1 >= argc) usage(flag + " needs a value");
        const char* v = argv[++i];
        if (flag == "--db") {
            a.db = v;
        } else if (flag == "--count") {
            a.count = number("--count", v, 1, 1'000'000'000);
        } else if (flag == "--agents") {
            a.agents = static_cast<int>(number("--agents", v, 1, 100'000));
        } else if (flag == "--rules") {
            a.rules = static_cast<int>(number("--rules", v, 1, 1'000'000));
        } else if (flag == "--days") {
            a.days = static_cast<int>(number("--days", v, 1, 3650));
        } else if (flag == "--seed") {
            a.seed = number("--seed", v, 0, UINT64_MAX);
        } else if (flag == "--batch") {
            a.batch = number("--batch", v, 1, 1'000'000);
        } else if (flag == "--writers") {
            a.writers = static_cast<int>(number("--writers", v, 1, 16));
        } else if (flag == "--end") {
            auto end = common::parse_timestamp(v);
            if (!end) usage(std::string("--end '") + v + "': " + end.error().message);
            a.end_ns = *end;
        } else {
            usage("unknown option '" + flag + "'");
        }
    }
    if (a.db.empty() || a.count == 0) usage("--db and --count are required");
    if (a.end_ns == 0) {
        const std::int64_t hour = 3600 * kNsPerSecond;
        a.end_ns = (common::now_ns() / hour + 1) * hour;  // the end of the current hour
    }
    return a;
}

}  // namespace

int main(int argc, char** argv) {
    const Args args = parse(argc, argv);
    common::set_log_level(common::LogLevel::kWarn);
    auto opened = collector::open_store(args.db);
    if (!opened) {
        std::fprintf(stderr, "senningen_bench_generate: %s\n", opened.error().message.c_str());
        return 74;
    }
    collector::AlertStore& store = **opened;

    // One thread makes batches, WRITERS threads insert them (more than one only helps a
    // backend with several connections, PostgreSQL); a short queue bounds the memory.
    Generator generator(args);
    std::mutex mutex;
    std::condition_variable changed;
    std::deque<std::vector<common::Alert>> ready;
    bool made_all = false;
    std::atomic<bool> failed{false};
    std::atomic<std::uint64_t> stored{0};
    const std::size_t max_ready = static_cast<std::size_t>(args.writers) + 1;

    const auto started = Clock::now();
    std::thread maker([&] {
        for (std::uint64_t first = 0; first < args.count && !failed; first += args.batch) {
            std::vector<common::Alert> batch;
            generator.fill(
                first,
                static_cast<std::size_t>(std::min<std::uint64_t>(args.batch, args.count - first)),
                batch);
            std::unique_lock lock(mutex);
            changed.wait(lock, [&] { return ready.size() < max_ready || failed; });
            ready.push_back(std::move(batch));
            changed.notify_all();
        }
        std::lock_guard lock(mutex);
        made_all = true;
        changed.notify_all();
    });
    std::vector<std::thread> writers;
    for (int w = 0; w < args.writers; ++w) {
        writers.emplace_back([&] {
            std::uint64_t next_report = 1'000'000;
            while (true) {
                std::vector<std::vector<common::Alert>> group(1);
                {
                    std::unique_lock lock(mutex);
                    changed.wait(lock, [&] { return !ready.empty() || made_all || failed; });
                    if (ready.empty() || failed) return;
                    group[0] = std::move(ready.front());
                    ready.pop_front();
                    changed.notify_all();
                }
                auto done = store.insert_batches(group);
                if (!done) {
                    std::fprintf(stderr, "senningen_bench_generate: %s\n",
                                 done.error().message.c_str());
                    failed = true;
                    changed.notify_all();
                    return;
                }
                const std::uint64_t total = stored += done->front().inserted;
                if (args.writers == 1 && total >= next_report) {
                    const double s = std::chrono::duration<double>(Clock::now() - started).count();
                    std::fprintf(stderr, "  %" PRIu64 " rows, %.0f rows/s\n", total,
                                 static_cast<double>(total) / s);
                    next_report += 1'000'000;
                }
            }
        });
    }
    maker.join();
    for (auto& w : writers) w.join();
    if (failed) return 1;
    const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
    auto count = store.count();
    std::printf("generated %" PRIu64
                " alerts in %.1f s: %.0f rows/s (%s, %d writer(s)); store "
                "holds %" PRIu64 "; time stamps until %s\n",
                stored.load(), seconds, static_cast<double>(stored.load()) / seconds,
                store.backend_name().c_str(), args.writers, count ? *count : 0,
                common::format_timestamp(args.end_ns).c_str());
    return 0;
}
