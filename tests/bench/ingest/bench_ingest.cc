// Load benchmark of the durable, authenticated delivery path (tests/bench/ingest/README.md).
//
// A real senningen-collector process (mutual TLS, SQLite) and N simulated agents in this
// process, each a real Forwarder with its own Broker endpoint, enrolled certificate, signing
// key and on-disk queue. Each agent's producer submits alerts as fast as the queue's
// back-pressure lets it, for the given time. Then it reports, from the collector's store:
// alerts/s committed, p50/p99 latency from emit (the alert's time stamp) to commit (the row's
// received_ns) and from emit to acknowledgement (seen by the agents), the CPU time the
// collector used per alert, its RSS, and the floor: the rows/s of a plain batched SQLite
// insert of the same rows into the same table, with the same settings, in the same run.
#include <signal.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "alert_factory.h"
#include "senningen/agent/forward/forwarder.h"
#include "senningen/collector/ca.h"
#include "senningen/collector/ingest.h"
#include "senningen/common/log.h"

namespace {

using namespace senningen;
using Clock = std::chrono::steady_clock;

struct Args {
    std::string collector_bin;
    std::string workdir;
    std::string queue_dir;  // the agents' durable queues; default: inside workdir
    int agents = 20;
    int seconds = 60;
};

[[noreturn]] void die(const std::string& what) {
    std::fprintf(stderr, "bench_ingest: %s\n", what.c_str());
    std::exit(1);
}

std::string rss_of(pid_t pid, const char* field) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(field, 0) == 0) {
            const auto b = line.find_first_not_of(" \t", std::strlen(field));
            return line.substr(b);
        }
    }
    return "?";
}

// User + system CPU seconds a process has used so far (/proc/PID/stat fields 14 and 15).
double cpu_seconds_of(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto close = text.rfind(')');  // the command name may hold spaces
    if (close == std::string::npos) return 0;
    std::istringstream fields(text.substr(close + 2));
    std::string f;
    unsigned long long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && fields >> f; ++i) {
        if (i == 14) utime = std::stoull(f);
        if (i == 15) stime = std::stoull(f);
    }
    return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

double own_cpu_seconds() {
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
    return s(ru.ru_utime) + s(ru.ru_stime);
}

// Starts the collector in a session of its own, as a daemon runs: with the kernel's automatic
// group scheduling, the hundred-odd threads of the simulated agents then share the CPU with
// it group against group rather than thread against thread. Returns its pid and Broker port.
std::pair<pid_t, std::uint16_t> start_collector(const Args& a) {
    int out[2];
    if (::pipe(out) != 0) die("pipe");
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::setsid();
        ::dup2(out[1], 1);
        ::close(out[0]);
        const std::string ca = a.workdir + "/ca";
        const std::string db = "sqlite:" + a.workdir + "/collector.db";
        ::execl(a.collector_bin.c_str(), a.collector_bin.c_str(), "--ca-dir", ca.c_str(),
                "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--db", db.c_str(), "--quiet",
                static_cast<char*>(nullptr));
        std::_Exit(127);
    }
    ::close(out[1]);
    std::string line;
    char c = 0;
    while (::read(out[0], &c, 1) == 1 && c != '\n') line += c;
    const auto at = line.find("broker=127.0.0.1:");
    if (at == std::string::npos) die("collector did not start: '" + line + "'");
    return {pid, static_cast<std::uint16_t>(std::stoi(line.substr(at + 17)))};
}

struct Rows {
    std::uint64_t committed_in_window = 0;
    std::vector<std::int64_t> latencies_ns;
};

Rows read_results(const std::string& db_path, std::int64_t from_ns, std::int64_t to_ns) {
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
        die("cannot open " + db_path);
    }
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db, "SELECT received_ns - ts_ns FROM alerts WHERE received_ns >= ? AND received_ns < ?",
                       -1, &st, nullptr);
    sqlite3_bind_int64(st, 1, from_ns);
    sqlite3_bind_int64(st, 2, to_ns);
    Rows r;
    while (sqlite3_step(st) == SQLITE_ROW) r.latencies_ns.push_back(sqlite3_column_int64(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
    r.committed_in_window = r.latencies_ns.size();
    std::sort(r.latencies_ns.begin(), r.latencies_ns.end());
    return r;
}

// The floor: a plain batched insert of the same rows, as fast as SQLite takes them here. The
// table and its indexes are created from the collector's own schema (read from its file), the
// connection gets the collector's settings (WAL, synchronous=NORMAL, the same page cache), and
// a transaction holds as many rows as the collector's largest group. The rows are read into
// memory first, so the clock runs over the inserts only; at most kFloorRows of them.
constexpr std::size_t kFloorRows = 500000;
constexpr int kCollectorCacheKiB = 64 * 1024;  // collector/src/store/sqlite_store.cc

using Value = std::variant<std::monostate, std::int64_t, double, std::string>;

struct Floor {
    double rows_per_s = 0;
    std::size_t rows = 0;
};

Floor plain_insert_floor(const std::string& from, const std::string& to) {
    sqlite3* src = nullptr;
    sqlite3* dst = nullptr;
    if (sqlite3_open_v2(from.c_str(), &src, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK ||
        sqlite3_open(to.c_str(), &dst) != SQLITE_OK) {
        die("floor: cannot open the databases");
    }
    const std::string pragmas = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                                " PRAGMA cache_size=-" + std::to_string(kCollectorCacheKiB) + ";";
    sqlite3_exec(dst, pragmas.c_str(), nullptr, nullptr, nullptr);
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(src, "SELECT sql FROM sqlite_master WHERE tbl_name = 'alerts' AND sql IS NOT NULL"
                            " ORDER BY type = 'index'", -1, &st, nullptr);
    while (sqlite3_step(st) == SQLITE_ROW) {
        const auto* sql = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
        if (sqlite3_exec(dst, sql, nullptr, nullptr, nullptr) != SQLITE_OK) {
            die(std::string("floor: ") + sqlite3_errmsg(dst));
        }
    }
    sqlite3_finalize(st);

    sqlite3_prepare_v2(src, "SELECT * FROM alerts ORDER BY rowid LIMIT ?", -1, &st, nullptr);
    sqlite3_bind_int64(st, 1, static_cast<sqlite3_int64>(kFloorRows));
    const int columns = sqlite3_column_count(st);
    std::vector<Value> values;
    std::size_t rows = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        for (int c = 0; c < columns; ++c) {
            switch (sqlite3_column_type(st, c)) {
                case SQLITE_INTEGER: values.emplace_back(std::int64_t{sqlite3_column_int64(st, c)}); break;
                case SQLITE_FLOAT: values.emplace_back(sqlite3_column_double(st, c)); break;
                case SQLITE_NULL: values.emplace_back(std::monostate{}); break;
                default: {
                    const auto* p = static_cast<const char*>(sqlite3_column_blob(st, c));
                    values.emplace_back(std::string(p ? p : "", static_cast<std::size_t>(sqlite3_column_bytes(st, c))));
                }
            }
        }
        ++rows;
    }
    sqlite3_finalize(st);
    sqlite3_close(src);
    // Texts go back as texts and blobs as blobs: the declared column types say which.
    std::vector<bool> is_blob(static_cast<std::size_t>(columns), false);
    sqlite3_prepare_v2(dst, "SELECT * FROM alerts", -1, &st, nullptr);
    for (int c = 0; c < columns; ++c) {
        const char* type = sqlite3_column_decltype(st, c);
        is_blob[static_cast<std::size_t>(c)] = type && std::string(type) == "BLOB";
    }
    sqlite3_finalize(st);

    std::string sql = "INSERT OR IGNORE INTO alerts VALUES (?";
    for (int c = 1; c < columns; ++c) sql += ", ?";
    sql += ")";
    sqlite3_stmt* ins = nullptr;
    if (sqlite3_prepare_v2(dst, sql.c_str(), -1, &ins, nullptr) != SQLITE_OK) {
        die(std::string("floor: ") + sqlite3_errmsg(dst));
    }
    const std::size_t per_txn = collector::kMaxGroupAlerts;
    const auto started = Clock::now();
    for (std::size_t r = 0; r < rows; ++r) {
        if (r % per_txn == 0) sqlite3_exec(dst, "BEGIN", nullptr, nullptr, nullptr);
        for (int c = 0; c < columns; ++c) {
            const Value& v = values[r * static_cast<std::size_t>(columns) + static_cast<std::size_t>(c)];
            if (const auto* i = std::get_if<std::int64_t>(&v)) {
                sqlite3_bind_int64(ins, c + 1, *i);
            } else if (const auto* d = std::get_if<double>(&v)) {
                sqlite3_bind_double(ins, c + 1, *d);
            } else if (const auto* t = std::get_if<std::string>(&v)) {
                if (is_blob[static_cast<std::size_t>(c)]) {
                    sqlite3_bind_blob(ins, c + 1, t->data(), static_cast<int>(t->size()), SQLITE_STATIC);
                } else {
                    sqlite3_bind_text(ins, c + 1, t->data(), static_cast<int>(t->size()), SQLITE_STATIC);
                }
            } else {
                sqlite3_bind_null(ins, c + 1);
            }
        }
        if (sqlite3_step(ins) != SQLITE_DONE) die(std::string("floor: ") + sqlite3_errmsg(dst));
        sqlite3_reset(ins);
        if (r % per_txn == per_txn - 1 || r + 1 == rows) {
            sqlite3_exec(dst, "COMMIT", nullptr, nullptr, nullptr);
        }
    }
    const double secs = std::chrono::duration<double>(Clock::now() - started).count();
    sqlite3_finalize(ins);
    sqlite3_close(dst);
    return {rows == 0 ? 0.0 : static_cast<double>(rows) / secs, rows};
}

// Emit-to-acknowledgement latency, seen from the agents: each producer notes the emit time of
// every kSampleEvery-th alert with its ordinal, and a sampler notes when the forwarder's count
// of acknowledged alerts passes that ordinal (its queue delivers in order). An agent hears
// the acknowledgement after the collector committed, so this is an upper bound of emit to
// commit, measured outside the collector.
constexpr std::uint64_t kSampleEvery = 97;

struct AckProbe {
    std::mutex mutex;
    std::deque<std::pair<std::uint64_t, std::int64_t>> waiting;  // ordinal, emit ns
    std::vector<std::int64_t> latencies_ns;
};

}  // namespace

int main(int argc, char** argv) {
    Args a;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string k = argv[i];
        const std::string v = argv[i + 1];
        if (k == "--collector") {
            a.collector_bin = v;
        } else if (k == "--workdir") {
            a.workdir = v;
        } else if (k == "--queue-dir") {
            a.queue_dir = v;
        } else if (k == "--agents") {
            a.agents = std::stoi(v);
        } else if (k == "--seconds") {
            a.seconds = std::stoi(v);
        } else {
            die("unknown option '" + k +
                "' (--collector BIN --workdir DIR [--queue-dir DIR] --agents N --seconds S)");
        }
    }
    if (a.collector_bin.empty() || a.workdir.empty()) die("--collector BIN and --workdir DIR are required");
    common::set_log_level(common::LogLevel::kError);
    std::filesystem::create_directories(a.workdir);
    const std::string ca = a.workdir + "/ca";
    if (auto ok = collector::init_ca(ca, 30); !ok) die(ok.error().message);
    const auto [pid, port] = start_collector(a);

    const std::int64_t now_s = std::time(nullptr);
    std::vector<std::unique_ptr<agent::Forwarder>> forwarders;
    for (int i = 0; i < a.agents; ++i) {
        const std::string name = "bench-" + std::to_string(i);
        auto issued = collector::issue_agent_certificate(ca, name, now_s - 60, now_s + 86400);
        if (!issued) die(issued.error().message);
        const std::string base = a.workdir + "/" + name;
        std::ofstream(base + ".crt") << issued->certificate_pem;
        std::ofstream(base + ".key") << issued->key_pem;
        auto signer = common::Signer::load(base + ".crt", base + ".key");
        if (!signer) die(signer.error().message);
        common::TransportOptions to;
        to.role = common::TransportRole::kAgent;
        to.agent_id = name;
        to.tls = {base + ".crt", base + ".key", collector::CaPaths{ca}.ca_certificate()};
        to.threads = 2;  // as senningen-agent does
        agent::ForwarderOptions fo;
        fo.port = port;
        fo.queue_path = (a.queue_dir.empty() ? a.workdir : a.queue_dir) + "/" + name + ".queue.db";
        // Back-pressure: a producer waits once two batches of its own are unacknowledged, so it
        // sends as fast as acknowledgements allow instead of filling a deep queue.
        fo.max_pending_alerts = 1000;
        auto f = std::make_unique<agent::Forwarder>(common::make_broker_transport(to).value(), fo,
                                                    name, std::move(signer).value());
        if (auto opened = f->open_queue(); !opened) die(opened.error().message);
        f->start();
        forwarders.push_back(std::move(f));
    }
    // Every agent connected before the clock starts.
    const auto connect_deadline = Clock::now() + std::chrono::seconds(30);
    while (Clock::now() < connect_deadline &&
           !std::all_of(forwarders.begin(), forwarders.end(), [](auto& f) { return f->connected(); })) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }

    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> emitted{0};
    std::vector<AckProbe> probes(static_cast<std::size_t>(a.agents));
    const std::int64_t window_from = common::now_ns();
    const double collector_cpu_from = cpu_seconds_of(pid);
    const double agents_cpu_from = own_cpu_seconds();
    std::vector<std::thread> producers;
    for (int i = 0; i < a.agents; ++i) {
        producers.emplace_back([&, i] {
            const std::string name = "bench-" + std::to_string(i);
            auto& forwarder = *forwarders[static_cast<std::size_t>(i)];
            AckProbe& probe = probes[static_cast<std::size_t>(i)];
            const std::uint64_t already = forwarder.counters().alerts_submitted;
            for (std::uint64_t n = 1; !stop.load(std::memory_order_relaxed); ++n) {
                common::Alert alert = testing::network_alert(name);
                alert.timestamp_ns = common::now_ns();  // emit time
                if (n % kSampleEvery == 0) {
                    const std::lock_guard<std::mutex> lock(probe.mutex);
                    probe.waiting.emplace_back(already + n, alert.timestamp_ns);
                }
                forwarder.submit(std::move(alert));
                emitted.fetch_add(1, std::memory_order_relaxed);
            }
        });
    }
    std::thread sampler([&] {
        const auto until = Clock::now() + std::chrono::seconds(a.seconds);
        while (Clock::now() < until) {
            for (std::size_t i = 0; i < probes.size(); ++i) {
                const std::uint64_t acked = forwarders[i]->counters().alerts_acked;
                const std::int64_t t = common::now_ns();
                const std::lock_guard<std::mutex> lock(probes[i].mutex);
                auto& w = probes[i].waiting;
                while (!w.empty() && w.front().first <= acked) {
                    probes[i].latencies_ns.push_back(t - w.front().second);
                    w.pop_front();
                }
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
    });
    std::this_thread::sleep_for(std::chrono::seconds(a.seconds));
    sampler.join();
    const std::int64_t window_to = common::now_ns();
    const double collector_cpu = cpu_seconds_of(pid) - collector_cpu_from;
    const double agents_cpu = own_cpu_seconds() - agents_cpu_from;
    const std::string rss = rss_of(pid, "VmRSS:");
    const std::string hwm = rss_of(pid, "VmHWM:");
    stop = true;
    for (auto& f : forwarders) f->stop();  // unblocks producers waiting on a full queue
    for (auto& t : producers) t.join();
    std::uint64_t batches_sent = 0;
    std::uint64_t batches_resent = 0;
    for (auto& f : forwarders) {
        batches_sent += f->counters().batches_sent;
        batches_resent += f->counters().batches_resent;
    }
    std::vector<std::int64_t> ack_latencies;
    for (auto& p : probes) {
        ack_latencies.insert(ack_latencies.end(), p.latencies_ns.begin(), p.latencies_ns.end());
    }
    std::sort(ack_latencies.begin(), ack_latencies.end());
    forwarders.clear();
    ::kill(pid, SIGTERM);
    int status = 0;
    ::waitpid(pid, &status, 0);

    const Rows rows = read_results(a.workdir + "/collector.db", window_from, window_to);
    const double window_s = static_cast<double>(window_to - window_from) / 1e9;
    const double rate = static_cast<double>(rows.committed_in_window) / window_s;
    auto pct = [](const std::vector<std::int64_t>& sorted, double p) {
        if (sorted.empty()) return 0.0;
        const auto k = static_cast<std::size_t>(p * static_cast<double>(sorted.size() - 1));
        return static_cast<double>(sorted[k]) / 1e6;
    };
    const Floor floor_run = plain_insert_floor(a.workdir + "/collector.db", a.workdir + "/floor.db");
    const double committed = static_cast<double>(rows.committed_in_window);
    std::printf("agents                     %d (threads, one Broker endpoint + TLS + durable queue each)\n", a.agents);
    std::printf("agents' queues             %s (sync full, 100 ms commits)\n",
                (a.queue_dir.empty() ? a.workdir : a.queue_dir).c_str());
    std::printf("window                     %.1f s\n", window_s);
    std::printf("batches sent (resent)      %llu (%llu)\n", static_cast<unsigned long long>(batches_sent),
                static_cast<unsigned long long>(batches_resent));
    std::printf("alerts emitted             %llu\n", static_cast<unsigned long long>(emitted.load()));
    std::printf("alerts committed           %llu\n", static_cast<unsigned long long>(rows.committed_in_window));
    std::printf("alerts/s committed         %.0f\n", rate);
    std::printf("latency emit->commit p50   %.1f ms (commit = the row's received_ns)\n", pct(rows.latencies_ns, 0.50));
    std::printf("latency emit->commit p99   %.1f ms\n", pct(rows.latencies_ns, 0.99));
    std::printf("latency emit->ack p50      %.1f ms (%zu samples, seen by the agents)\n", pct(ack_latencies, 0.50), ack_latencies.size());
    std::printf("latency emit->ack p99      %.1f ms\n", pct(ack_latencies, 0.99));
    std::printf("collector CPU              %.1f s in the window, %.1f us per alert committed\n", collector_cpu,
                committed > 0 ? collector_cpu * 1e6 / committed : 0.0);
    std::printf("agents' CPU (this process) %.1f s in the window, %.1f us per alert committed\n", agents_cpu,
                committed > 0 ? agents_cpu * 1e6 / committed : 0.0);
    std::printf("collector RSS at end       %s (peak %s)\n", rss.c_str(), hwm.c_str());
    std::printf("plain batched insert floor %.0f rows/s (%zu of the same rows, same table, indexes and settings, %zu per transaction)\n",
                floor_run.rows_per_s, floor_run.rows, collector::kMaxGroupAlerts);
    std::printf("ratio to floor             %.2f\n", floor_run.rows_per_s > 0 ? rate / floor_run.rows_per_s : 0.0);
    return 0;
}
