// Load benchmark of the durable, authenticated delivery path (tests/bench/ingest/README.md).
//
// A real senningen-collector process (mutual TLS, SQLite) and N simulated agents in this
// process, each a real Forwarder with its own Broker endpoint, enrolled certificate, signing
// key and on-disk queue. Each agent's producer submits alerts as fast as the queue's
// back-pressure lets it, for the given time. Then it reports, from the collector's store:
// alerts/s committed, p50/p99 latency from emit (the alert's time stamp) to commit (the row's
// received_ns), the collector's RSS, and the floor: the rows/s of a plain batched SQLite
// insert of the same rows, with the same journal settings, measured in the same run.
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "alert_factory.h"
#include "senningen/agent/forward/forwarder.h"
#include "senningen/collector/ca.h"
#include "senningen/common/log.h"

namespace {

using namespace senningen;
using Clock = std::chrono::steady_clock;

struct Args {
    std::string collector_bin;
    std::string workdir;
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

// Starts the collector; returns its pid and Broker port.
std::pair<pid_t, std::uint16_t> start_collector(const Args& a) {
    int out[2];
    if (::pipe(out) != 0) die("pipe");
    const pid_t pid = ::fork();
    if (pid == 0) {
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

// The floor: the same rows, copied with one prepared INSERT per row and one transaction per
// 500 rows (the agents' batch size), WAL and synchronous=NORMAL like the collector's store.
double plain_insert_rows_per_second(const std::string& from, const std::string& to) {
    sqlite3* src = nullptr;
    sqlite3* dst = nullptr;
    sqlite3_open_v2(from.c_str(), &src, SQLITE_OPEN_READONLY, nullptr);
    sqlite3_open(to.c_str(), &dst);
    sqlite3_exec(dst, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", nullptr, nullptr, nullptr);
    // Same table and indexes as the collector's schema (migration 1).
    sqlite3_exec(dst,
                 "CREATE TABLE alerts (id TEXT PRIMARY KEY NOT NULL, agent_id TEXT NOT NULL,"
                 " ts_ns INTEGER NOT NULL, severity INTEGER NOT NULL, kind TEXT NOT NULL,"
                 " source TEXT NOT NULL, rule TEXT NOT NULL, category TEXT NOT NULL,"
                 " pack TEXT NOT NULL, src_ip TEXT, src_port INTEGER, dest_ip TEXT,"
                 " dest_port INTEGER, proto TEXT, app_proto TEXT, flow_id INTEGER,"
                 " received_ns INTEGER NOT NULL, eve TEXT NOT NULL);"
                 "CREATE INDEX alerts_ts ON alerts (ts_ns);"
                 "CREATE INDEX alerts_agent_ts ON alerts (agent_id, ts_ns);"
                 "CREATE INDEX alerts_severity_ts ON alerts (severity, ts_ns);",
                 nullptr, nullptr, nullptr);
    sqlite3_stmt* rd = nullptr;
    sqlite3_prepare_v2(src, "SELECT * FROM alerts", -1, &rd, nullptr);
    std::vector<std::vector<std::string>> rows;
    std::vector<std::vector<bool>> nulls;
    while (sqlite3_step(rd) == SQLITE_ROW) {
        std::vector<std::string> row;
        std::vector<bool> isnull;
        for (int c = 0; c < 18; ++c) {
            const auto* t = sqlite3_column_text(rd, c);
            isnull.push_back(t == nullptr);
            row.emplace_back(t ? reinterpret_cast<const char*>(t) : "");
        }
        rows.push_back(std::move(row));
        nulls.push_back(std::move(isnull));
    }
    sqlite3_finalize(rd);
    sqlite3_close(src);
    sqlite3_stmt* ins = nullptr;
    sqlite3_prepare_v2(dst, "INSERT OR IGNORE INTO alerts VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                       -1, &ins, nullptr);
    const auto started = Clock::now();
    for (std::size_t i = 0; i < rows.size(); ++i) {
        if (i % 500 == 0) sqlite3_exec(dst, "BEGIN", nullptr, nullptr, nullptr);
        for (int c = 0; c < 18; ++c) {
            if (nulls[i][static_cast<std::size_t>(c)]) {
                sqlite3_bind_null(ins, c + 1);
            } else {
                const std::string& v = rows[i][static_cast<std::size_t>(c)];
                sqlite3_bind_text(ins, c + 1, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
            }
        }
        sqlite3_step(ins);
        sqlite3_reset(ins);
        if (i % 500 == 499 || i + 1 == rows.size()) sqlite3_exec(dst, "COMMIT", nullptr, nullptr, nullptr);
    }
    const double secs = std::chrono::duration<double>(Clock::now() - started).count();
    sqlite3_finalize(ins);
    sqlite3_close(dst);
    return rows.empty() ? 0.0 : static_cast<double>(rows.size()) / secs;
}

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
        } else if (k == "--agents") {
            a.agents = std::stoi(v);
        } else if (k == "--seconds") {
            a.seconds = std::stoi(v);
        } else {
            die("unknown option '" + k + "' (--collector BIN --workdir DIR --agents N --seconds S)");
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
        fo.queue_path = base + ".queue.db";
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
    const std::int64_t window_from = common::now_ns();
    std::vector<std::thread> producers;
    for (int i = 0; i < a.agents; ++i) {
        producers.emplace_back([&, i] {
            const std::string name = "bench-" + std::to_string(i);
            while (!stop.load(std::memory_order_relaxed)) {
                common::Alert alert = testing::network_alert(name);
                alert.timestamp_ns = common::now_ns();  // emit time
                forwarders[static_cast<std::size_t>(i)]->submit(std::move(alert));
                emitted.fetch_add(1, std::memory_order_relaxed);
            }
        });
    }
    std::this_thread::sleep_for(std::chrono::seconds(a.seconds));
    const std::int64_t window_to = common::now_ns();
    const std::string rss = rss_of(pid, "VmRSS:");
    const std::string hwm = rss_of(pid, "VmHWM:");
    stop = true;
    for (auto& f : forwarders) f->stop();  // unblocks producers waiting on a full queue
    for (auto& t : producers) t.join();
    forwarders.clear();
    ::kill(pid, SIGTERM);
    int status = 0;
    ::waitpid(pid, &status, 0);

    const Rows rows = read_results(a.workdir + "/collector.db", window_from, window_to);
    const double window_s = static_cast<double>(window_to - window_from) / 1e9;
    const double rate = static_cast<double>(rows.committed_in_window) / window_s;
    auto pct = [&](double p) {
        if (rows.latencies_ns.empty()) return 0.0;
        const auto k = static_cast<std::size_t>(p * static_cast<double>(rows.latencies_ns.size() - 1));
        return static_cast<double>(rows.latencies_ns[k]) / 1e6;
    };
    const double floor = plain_insert_rows_per_second(a.workdir + "/collector.db",
                                                      a.workdir + "/floor.db");
    std::printf("agents                     %d (threads, one Broker endpoint + TLS + durable queue each)\n", a.agents);
    std::printf("window                     %.1f s\n", window_s);
    std::printf("alerts emitted             %llu\n", static_cast<unsigned long long>(emitted.load()));
    std::printf("alerts committed           %llu\n", static_cast<unsigned long long>(rows.committed_in_window));
    std::printf("alerts/s committed         %.0f\n", rate);
    std::printf("latency emit->commit p50   %.1f ms\n", pct(0.50));
    std::printf("latency emit->commit p99   %.1f ms\n", pct(0.99));
    std::printf("collector RSS at end       %s (peak %s)\n", rss.c_str(), hwm.c_str());
    std::printf("plain batched insert floor %.0f rows/s (same rows, 500 per transaction)\n", floor);
    std::printf("ratio to floor             %.2f\n", floor > 0 ? rate / floor : 0.0);
    return 0;
}
