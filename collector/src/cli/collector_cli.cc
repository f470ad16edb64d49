#include <Poco/AutoPtr.h>
#include <Poco/Exception.h>
#include <Poco/Util/IniFileConfiguration.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "cli/ca_commands.h"
#include "cli/user_commands.h"
#include "senningen/collector/ca.h"
#include "senningen/collector/cli.h"
#include "senningen/collector/http_api.h"
#include "senningen/collector/ingest.h"
#include "senningen/collector/open_store.h"
#include "senningen/common/identity.h"
#include "senningen/common/log.h"

namespace senningen::collector {

namespace {

constexpr const char* kUsage =
    "usage: senningen-collector [--config FILE] [--listen HOST:PORT] [--http HOST:PORT]\n"
    "                           [--db sqlite:PATH | --db postgresql://...]\n"
    "                           [--ca-dir DIR | --tls-cert F --tls-key F\n"
    "                           --tls-ca F [--tls-crl F] | --insecure]\n"
    "                           [--https-cert FILE --https-key FILE]\n"
    "       senningen-collector ca init | enroll | revoke ...   (see 'ca --help')\n"
    "       senningen-collector user add | token | list | disable ... (see 'user --help')\n"
    "\n"
    "Receives alerts from agents over Broker, stores them, and serves them over HTTP.\n"
    "\n"
    "  --config FILE        INI file with a [collector] section: listen, http, db, ca_dir,\n"
    "                       tls_cert, tls_key, tls_ca, tls_crl, insecure, web_root,\n"
    "                       log_level, secure_cookie, https_cert, https_key,\n"
    "                       metadata_max_rows, metadata_max_age_days\n"
    "                       (command-line options win)\n"
    "  --listen HOST:PORT   Broker address for agents (default 127.0.0.1:9999; port 0 = any)\n"
    "  --http HOST:PORT     REST API address (default 127.0.0.1:8080; port 0 = any)\n"
    "  --db sqlite:PATH     alert store in a SQLite file (default sqlite:senningen.db)\n"
    "  --db postgresql://USER:PASSWORD@HOST:PORT/DBNAME\n"
    "                       alert store in PostgreSQL; several collectors may share one\n"
    "                       (the schema is created and migrated at start either way)\n"
    "  --ca-dir DIR         the CA made by 'ca init': the collector's certificate, the CA and\n"
    "                       the revocation list (agents must present certificates it issued)\n"
    "  --tls-cert/--tls-key/--tls-ca/--tls-crl FILE   the same, file by file\n"
    "  --insecure           no certificates: plain, unauthenticated peering (tests, labs)\n"
    "  --web-root DIR       serve the web UI from DIR at the REST API's address\n"
    "                       (default " SENNINGEN_WEB_ROOT
    " when it exists; 'none' for no UI)\n"
    "  --https-cert FILE    serve the REST API and web UI over HTTPS (TLS 1.2 or newer)\n"
    "  --https-key FILE     with this certificate (PEM, chain after it) and its key (PEM,\n"
    "                       unencrypted); the login cookie is then Secure\n"
    "  --secure-cookie      mark the login cookie Secure (clients reach the API over HTTPS\n"
    "                       through a TLS proxy)\n"
    "  --metadata-max-rows N     keep at most N metadata records (agents' --forward-metadata;\n"
    "                       default 10000000; 0: no bound), the oldest stored go first\n"
    "  --metadata-max-age-days D keep metadata records D days after they were stored\n"
    "                       (default 30; 0: no bound)\n"
    "  --quiet              only warnings and errors on stderr\n"
    "\n"
    "The API and UI need an account: add one with 'senningen-collector user add NAME\n"
    "--role admin --db SPEC' (see 'user --help'); until then they answer 401.\n"
    "\n"
    "Once both addresses are bound it prints one line to stdout:\n"
    "  ready broker=HOST:PORT http=HOST:PORT\n"
    "SIGINT or SIGTERM stop it cleanly.\n"
    "Exit codes: 0 stopped; 64 usage; 69 an address cannot be bound; 74 the database cannot\n"
    "be opened; 78 the configuration is wrong.\n";

volatile std::sig_atomic_t g_stop = 0;
extern "C" void on_signal(int) { g_stop = 1; }

struct HostPort {
    std::string host;
    std::uint16_t port = 0;
};

std::optional<HostPort> parse_host_port(const std::string& text) {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0) return std::nullopt;
    char* end = nullptr;
    const std::string port_text = text.substr(colon + 1);
    const long port = std::strtol(port_text.c_str(), &end, 10);
    if (port_text.empty() || *end != '\0' || port < 0 || port > 65535) return std::nullopt;
    std::string host = text.substr(0, colon);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
    }
    return HostPort{host, static_cast<std::uint16_t>(port)};
}

struct Settings {
    std::map<std::string, std::string> values = {{"listen", "127.0.0.1:9999"},
                                                 {"http", "127.0.0.1:8080"},
                                                 {"db", "sqlite:senningen.db"},
                                                 {"tls_cert", ""},
                                                 {"tls_key", ""},
                                                 {"tls_ca", ""},
                                                 {"tls_crl", ""},
                                                 {"ca_dir", ""},
                                                 {"insecure", "false"},
                                                 {"web_root", ""},
                                                 {"log_level", "info"},
                                                 {"secure_cookie", "false"},
                                                 {"https_cert", ""},
                                                 {"https_key", ""},
                                                 {"metadata_max_rows", "10000000"},
                                                 {"metadata_max_age_days", "30"}};
};

// Reads FILE's [collector] section into SETTINGS; every problem is collected.
void read_config(const std::string& file, Settings& settings, std::vector<std::string>& problems) {
    if (!std::filesystem::exists(file)) {
        problems.push_back("config " + file + ": no such file");
        return;
    }
    try {
        Poco::AutoPtr<Poco::Util::IniFileConfiguration> ini(
            new Poco::Util::IniFileConfiguration(file));
        Poco::Util::AbstractConfiguration::Keys sections;
        ini->keys(sections);
        for (const auto& section : sections) {
            if (section != "collector") {
                problems.push_back("config " + file + ": unknown section or key '" + section +
                                   "' (expected a [collector] section)");
            }
        }
        Poco::Util::AbstractConfiguration::Keys keys;
        ini->keys("collector", keys);
        for (const auto& key : keys) {
            if (settings.values.count(key) == 0) {
                problems.push_back("config " + file + ": unknown key 'collector." + key + "'");
                continue;
            }
            settings.values[key] = ini->getString("collector." + key);
        }
    } catch (const Poco::Exception& e) {
        problems.push_back("config " + file + ": " + e.displayText());
    }
}

}  // namespace

int run_collector(int argc, char** argv) {
    if (argc > 1 && is_ca_command(argv[1])) return run_ca_command(argc, argv);
    if (argc > 1 && is_user_command(argv[1])) return run_user_command(argc, argv);
    Settings settings;
    std::map<std::string, std::string> overrides;
    std::vector<std::string> problems;
    std::optional<std::string> config_file;
    static const std::map<std::string, std::string> kFlags = {
        {"--listen", "listen"},
        {"--http", "http"},
        {"--db", "db"},
        {"--tls-cert", "tls_cert"},
        {"--tls-key", "tls_key"},
        {"--tls-ca", "tls_ca"},
        {"--tls-crl", "tls_crl"},
        {"--ca-dir", "ca_dir"},
        {"--web-root", "web_root"},
        {"--https-cert", "https_cert"},
        {"--https-key", "https_key"},
        {"--metadata-max-rows", "metadata_max_rows"},
        {"--metadata-max-age-days", "metadata_max_age_days"}};
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--help" || arg == "-h") {
            std::fputs(kUsage, stdout);
            return kExitOk;
        }
        if (arg == "--version") {
            std::puts("senningen-collector 0.1.0");
            return kExitOk;
        }
        if (arg == "--quiet" || arg == "-q") {
            overrides["log_level"] = "warn";
            continue;
        }
        if (arg == "--secure-cookie") {
            overrides["secure_cookie"] = "true";
            continue;
        }
        if (arg == "--insecure") {
            overrides["insecure"] = "true";
            continue;
        }
        const bool is_config = arg == "--config" || arg == "-c";
        const auto flag = kFlags.find(arg);
        if (!is_config && flag == kFlags.end()) {
            problems.push_back("unknown option '" + arg + "'");
            continue;
        }
        if (i + 1 >= argc) {
            problems.push_back(arg + " needs a value");
            continue;
        }
        const std::string value = argv[++i];
        if (is_config) {
            config_file = value;
        } else {
            overrides[flag->second] = value;
        }
    }
    if (config_file) read_config(*config_file, settings, problems);
    for (const auto& [k, v] : overrides) settings.values[k] = v;

    const auto& s = settings.values;
    const auto listen = parse_host_port(s.at("listen"));
    if (!listen) problems.push_back("listen '" + s.at("listen") + "' is not HOST:PORT");
    const auto http = parse_host_port(s.at("http"));
    if (!http) problems.push_back("http '" + s.at("http") + "' is not HOST:PORT");
    const std::string db = s.at("db");
    if (std::string problem = check_store_spec(db); !problem.empty()) {
        problems.push_back(problem);
    }
    const std::string& level = s.at("log_level");
    if (level == "debug") {
        common::set_log_level(common::LogLevel::kDebug);
    } else if (level == "info") {
        common::set_log_level(common::LogLevel::kInfo);
    } else if (level == "warn") {
        common::set_log_level(common::LogLevel::kWarn);
    } else if (level == "error") {
        common::set_log_level(common::LogLevel::kError);
    } else {
        problems.push_back("log_level '" + level + "' is not debug, info, warn or error");
    }
    common::TlsOptions tls{s.at("tls_cert"), s.at("tls_key"), s.at("tls_ca")};
    std::string crl = s.at("tls_crl");
    if (!s.at("ca_dir").empty()) {
        if (tls.enabled()) problems.push_back("ca_dir and tls_cert exclude each other");
        const CaPaths ca{s.at("ca_dir")};
        tls = {ca.collector_certificate(), ca.collector_key(), ca.ca_certificate()};
        crl = ca.crl();
    }
    const std::string& insecure_text = s.at("insecure");
    if (insecure_text != "true" && insecure_text != "false") {
        problems.push_back("insecure '" + insecure_text + "' is not true or false");
    }
    const bool insecure = insecure_text == "true";
    const std::string& secure_cookie = s.at("secure_cookie");
    if (secure_cookie != "true" && secure_cookie != "false") {
        problems.push_back("secure_cookie '" + secure_cookie + "' is not true or false");
    }
    if (tls.enabled() && (tls.key.empty() || tls.ca_file.empty())) {
        problems.push_back("tls_cert needs tls_key and tls_ca too");
    }
    if (tls.enabled() && insecure) problems.push_back("insecure and certificates exclude each other");
    if (!tls.enabled() && !insecure) {
        problems.push_back("no certificates: give --ca-dir DIR (made by 'senningen-collector ca "
                           "init'), or --tls-cert/--tls-key/--tls-ca, or --insecure explicitly");
    }
    for (const std::string& f : {tls.certificate, tls.key, tls.ca_file, crl}) {
        if (!f.empty() && !std::filesystem::exists(f)) {
            problems.push_back("certificate file '" + f + "' does not exist");
        }
    }
    // HTTPS for the REST API: both files or neither. Whether they are readable, PEM and a
    // pair is checked when the server starts (exit 78 naming the file).
    const std::string& https_cert = s.at("https_cert");
    const std::string& https_key = s.at("https_key");
    if (https_cert.empty() != https_key.empty()) {
        problems.push_back(https_cert.empty() ? "https_key needs https_cert too"
                                              : "https_cert needs https_key too");
    }
    for (const std::string& f : {https_cert, https_key}) {
        if (!f.empty() && !std::filesystem::exists(f)) {
            problems.push_back("HTTPS file '" + f + "' does not exist");
        }
    }
    // The metadata retention (docs/collector.md, "Metadata and hunting").
    MetadataRetention retention;
    auto whole_number = [&](const std::string& key, std::uint64_t most, std::uint64_t& out) {
        const std::string& text = s.at(key);
        char* end = nullptr;
        errno = 0;
        const unsigned long long n = std::strtoull(text.c_str(), &end, 10);
        if (text.empty() || text[0] == '-' || *end != '\0' || errno != 0 || n > most) {
            problems.push_back(key + " '" + text + "' is not 0.." + std::to_string(most));
            return;
        }
        out = n;
    };
    whole_number("metadata_max_rows", 1ULL << 40, retention.max_rows);
    std::uint64_t max_age_days = 30;
    whole_number("metadata_max_age_days", 36500, max_age_days);
    retention.max_age_ns = static_cast<std::int64_t>(max_age_days) * 24 * 3'600'000'000'000;
    if (!problems.empty()) {
        for (const auto& p : problems) std::fprintf(stderr, "senningen-collector: %s\n", p.c_str());
        std::fputs("run 'senningen-collector --help' for usage\n", stderr);
        return config_file ? kExitConfig : kExitUsage;
    }

    auto store = open_store(db);
    if (!store) {
        std::fprintf(stderr, "senningen-collector: %s\n", store.error().message.c_str());
        return kExitIoError;
    }

    if (auto accounts = (*store)->users(); accounts && accounts->empty()) {
        common::log_warn("collector",
                         "no accounts yet: the REST API and web UI answer 401 until an "
                         "administrator adds one: senningen-collector user add NAME --role admin "
                         "--db " + redact_store_spec(db));
    }

    // The REST API starts before the Broker transport: a configuration it refuses (HTTPS files,
    // the web root) then ends the process before a Broker endpoint exists, whose shutdown
    // without a subscriber can hang.
    ApiOptions api_options;
    api_options.host = http->host;
    api_options.port = http->port;
    api_options.secure_cookie = secure_cookie == "true";
    api_options.https_certificate = https_cert;
    api_options.https_key = https_key;
    // The packaged UI is served unless the operator names another folder or turns it off; a
    // folder named explicitly must be usable, the default may be absent (a build tree).
    const std::string& web_root = s.at("web_root");
    if (web_root.empty()) {
        if (std::filesystem::exists(SENNINGEN_WEB_ROOT "/index.html")) {
            api_options.web_root = SENNINGEN_WEB_ROOT;
        }
    } else if (web_root != "none") {
        api_options.web_root = web_root;
    }
    ApiServer api(**store, api_options);
    auto http_port = api.start();
    if (!http_port) {
        std::fprintf(stderr, "senningen-collector: %s\n", http_port.error().message.c_str());
        // An unusable web root is a configuration problem; an address in use is not.
        return http_port.error().code == common::ErrorCode::kUnavailable ? kExitUnavailable
                                                                          : kExitConfig;
    }

    common::TransportOptions to;
    to.role = common::TransportRole::kCollector;
    to.tls = tls;
    to.insecure = insecure;
    std::unique_ptr<common::PeerVerifier> verifier;
    if (tls.enabled()) {
        auto made = common::PeerVerifier::create(tls.ca_file, crl);
        if (!made) {
            std::fprintf(stderr, "senningen-collector: %s\n", made.error().message.c_str());
            return kExitConfig;
        }
        verifier = std::move(made).value();
        common::log_info("collector", "mutual TLS: CA " + tls.ca_file + ", revocation list " +
                                          (crl.empty() ? std::string("none") : crl));
    } else {
        common::log_warn("collector",
                         "INSECURE MODE: agents are not authenticated and their ids are taken "
                         "from their messages; anyone who can reach the Broker port can send "
                         "alerts. Never run this way in production.");
    }
    auto made_transport = common::make_broker_transport(to);
    if (!made_transport) {
        std::fprintf(stderr, "senningen-collector: %s\n", made_transport.error().message.c_str());
        return kExitConfig;
    }
    auto transport = std::move(made_transport).value();
    auto broker_port = transport->listen(listen->host, listen->port);
    if (!broker_port) {
        std::fprintf(stderr, "senningen-collector: %s\n", broker_port.error().message.c_str());
        return kExitUnavailable;
    }

    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    common::log_info("collector", "store " + redact_store_spec(db) + " (" + (*store)->backend_name() + ")");
    common::log_info("collector", "agents: Broker on " + listen->host + ":" +
                                      std::to_string(*broker_port) + "; REST API on " +
                                      (https_cert.empty() ? "http://" : "https://") +
                                      http->host + ":" + std::to_string(*http_port) + "/api/v1/");
    std::printf("ready broker=%s:%u http=%s:%u\n", listen->host.c_str(), *broker_port,
                http->host.c_str(), *http_port);
    std::fflush(stdout);

    Ingest ingest(*transport, **store, verifier.get());
    ingest.set_metadata_retention(retention);
    while (!g_stop) ingest.poll(std::chrono::milliseconds(200));
    ingest.flush();  // commit and acknowledge what was taken in

    const IngestCounters c = ingest.counters();
    common::log_info("collector", "stopping: " + std::to_string(c.batches) + " batches in " +
                                      std::to_string(c.transactions) + " transactions, " +
                                      std::to_string(c.alerts_inserted) + " alerts stored, " +
                                      std::to_string(c.alerts_duplicate) + " duplicates, " +
                                      std::to_string(c.alerts_rejected) + " rejected, " +
                                      std::to_string(c.decode_failures) + " undecodable; " +
                                      std::to_string(c.metadata_inserted) + " metadata records " +
                                      "stored, " + std::to_string(c.metadata_refused) + " refused");
    api.stop();
    return kExitOk;
}

}  // namespace senningen::collector
