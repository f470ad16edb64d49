#include "senningen/agent/files/watch_config.h"

#include "senningen/agent/files/option_values.h"

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

namespace senningen::agent::files {

namespace {

std::string trim(const std::string& s) {
    std::size_t b = 0;
    std::size_t e = s.size();
    while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
    while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
    return s.substr(b, e - b);
}

}  // namespace

common::Result<WatchConfig> parse_watch_config(const std::string& text, const std::string& source) {
    WatchConfig c;
    std::vector<std::string> problems;
    std::istringstream in(text);
    std::string raw;
    int number = 0;
    bool triggers_set = false;
    while (std::getline(in, raw)) {
        ++number;
        const std::string line = trim(raw);
        if (line.empty() || line[0] == '#') continue;
        const std::string where = source + ":" + std::to_string(number) + ": ";
        const auto eq = line.find('=');
        if (eq == std::string::npos) {
            problems.push_back(where + "expected 'key = value', got '" + line + "'");
            continue;
        }
        const std::string key = trim(line.substr(0, eq));
        const std::string value = trim(line.substr(eq + 1));
        auto bad = [&](const std::string& what) {
            problems.push_back(where + key + " = '" + value + "' is not " + what);
        };
        long long n = 0;
        if (value.empty() && key != "output" && key != "cache_file" && key != "agent_id" &&
            key != "identity" && key != "queue") {
            problems.push_back(where + key + " has no value");
            continue;
        }
        if (key == "watch" || key == "watch_flat") {
            if (value[0] != '/') {
                bad("an absolute path");
            } else {
                c.roots.push_back({value, key == "watch"});
            }
        } else if (key == "exclude") {
            c.excludes.push_back(value);
        } else if (key == "rules") {
            c.rules.push_back(value);
        } else if (key == "intel") {
            c.intel.push_back(value);
        } else if (key == "output") {
            if (!value.empty()) c.output = value;
        } else if (key == "collector") {
            if (parse_host_port(value))
                c.collector = value;
            else
                bad("HOST:PORT");
        } else if (key == "agent_id") {
            c.agent_id = value;
        } else if (key == "identity") {
            c.identity = value;
        } else if (key == "insecure") {
            if (!parse_bool(value, c.insecure)) bad("true or false");
        } else if (key == "queue") {
            c.queue = value;
        } else if (key == "tls_cert") {
            c.tls_cert = value;
        } else if (key == "tls_key") {
            c.tls_key = value;
        } else if (key == "tls_ca") {
            c.tls_ca = value;
        } else if (key == "triggers") {
            triggers_set = true;
            c.triggers = WatchTriggers{false, false, false};
            std::istringstream parts(value);
            std::string part;
            while (std::getline(parts, part, ',')) {
                part = trim(part);
                if (part == "close_write")
                    c.triggers.close_write = true;
                else if (part == "moved_to")
                    c.triggers.moved_to = true;
                else if (part == "create")
                    c.triggers.create = true;
                else
                    problems.push_back(where + "unknown trigger '" + part +
                                       "' (close_write, moved_to, create)");
            }
        } else if (key == "debounce_ms") {
            if (parse_int(value, 0, 600000, n))
                c.debounce_ms = static_cast<int>(n);
            else
                bad("0..600000 milliseconds");
        } else if (key == "max_file_size") {
            if (!parse_size(value, c.max_file_size)) bad("a size (e.g. 4096, 64M, 1G)");
        } else if (key == "mmap_threshold") {
            if (!parse_size(value, c.mmap_threshold)) bad("a size (e.g. 4096, 64M, 1G)");
        } else if (key == "memory_limit") {
            if (!parse_size(value, c.memory_limit) || c.memory_limit < (1ULL << 20)) {
                bad("a size of at least 1M");
            }
        } else if (key == "scan_on_start") {
            if (!parse_bool(value, c.scan_on_start)) bad("true or false");
        } else if (key == "full_scan_interval") {
            if (!parse_seconds(value, c.full_scan_interval_s))
                bad("a duration (e.g. 3600, 90m, 24h, 7d; 0: never)");
        } else if (key == "cache_file") {
            c.cache_file = value;
        } else if (key == "cache_save_interval") {
            if (!parse_seconds(value, c.cache_save_interval_s) || c.cache_save_interval_s == 0) {
                bad("a duration of at least 1 s");
            }
        } else if (key == "threads") {
            if (parse_int(value, 1, 32, n))
                c.threads = static_cast<int>(n);
            else
                bad("1..32");
        } else if (key == "cpu_percent") {
            if (parse_int(value, 1, 3200, n))
                c.cpu_percent = static_cast<double>(n);
            else
                bad("1..3200 percent of one core");
        } else if (key == "io_idle") {
            if (!parse_bool(value, c.io_idle)) bad("true or false");
        } else if (key == "cpu_idle") {
            if (!parse_bool(value, c.cpu_idle)) bad("true or false");
        } else if (key == "file_timeout") {
            if (parse_int(value, 1, 3600, n))
                c.file_timeout_s = static_cast<int>(n);
            else
                bad("1..3600 seconds");
        } else {
            problems.push_back(where + "unknown key '" + key + "'");
        }
    }
    if (c.roots.empty()) problems.push_back(source + ": no 'watch' or 'watch_flat' path");
    if (c.rules.empty() && c.intel.empty()) {
        problems.push_back(source +
                           ": neither 'rules' nor 'intel': nothing to match files against");
    }
    if (triggers_set && !c.triggers.close_write && !c.triggers.moved_to && !c.triggers.create) {
        problems.push_back(source + ": 'triggers' names no trigger");
    }
    const bool any_tls = !c.tls_cert.empty() || !c.tls_key.empty() || !c.tls_ca.empty();
    if (any_tls && (c.tls_cert.empty() || c.tls_key.empty() || c.tls_ca.empty())) {
        problems.push_back(source + ": tls_cert, tls_key and tls_ca go together");
    }
    if (any_tls && !c.identity.empty()) {
        problems.push_back(source + ": identity and tls_cert/tls_key/tls_ca exclude each other");
    }
    if (!problems.empty()) {
        std::string all;
        for (const auto& p : problems) all += (all.empty() ? "" : "\n") + p;
        return common::make_error(common::ErrorCode::kParse, std::move(all));
    }
    return c;
}

common::Result<WatchConfig> load_watch_config(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return common::make_error(
            errno == ENOENT ? common::ErrorCode::kNotFound : common::ErrorCode::kIo,
            "cannot read config " + path + ": " + std::strerror(errno));
    }
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return parse_watch_config(text, path);
}

}  // namespace senningen::agent::files
