#include "cli/user_commands.h"

#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "senningen/collector/alert_store.h"
#include "senningen/collector/auth.h"
#include "senningen/collector/cli.h"
#include "senningen/collector/open_store.h"
#include "senningen/common/alert.h"

namespace senningen::collector {

namespace {

constexpr const char* kUserUsage =
    "usage: senningen-collector user add NAME --role ROLE [--password-file FILE] [--db SPEC]\n"
    "       senningen-collector user token NAME [--label LABEL] [--db SPEC]\n"
    "       senningen-collector user list [--db SPEC]\n"
    "       senningen-collector user disable NAME [--db SPEC]\n"
    "\n"
    "  add      creates an account; ROLE is analyst, rule-author or admin. The password\n"
    "           (at least 12 characters) is read from FILE's first line, or from standard\n"
    "           input, never from the command line\n"
    "  token    prints a new API bearer token for NAME, once; only its digest is stored\n"
    "  list     the accounts: name, role, enabled or disabled, created\n"
    "  disable  disables NAME: its sessions end and its tokens stop working\n"
    "  --db     the collector's store (default sqlite:senningen.db), as for the collector\n";

int usage_error(const std::string& problem) {
    std::fprintf(stderr, "senningen-collector: %s\n", problem.c_str());
    std::fputs(kUserUsage, stderr);
    return kExitUsage;
}

int failed(const common::Error& e) {
    std::fprintf(stderr, "senningen-collector: %s\n", e.message.c_str());
    switch (e.code) {
        case common::ErrorCode::kInvalidArgument:
        case common::ErrorCode::kNotFound: return kExitUsage;
        default: return kExitIoError;
    }
}

// The first line of IN, without its line end.
bool read_line(std::istream& in, std::string& out) {
    if (!std::getline(in, out)) return false;
    if (!out.empty() && out.back() == '\r') out.pop_back();
    return true;
}

// From a terminal the password is typed without echo; from a pipe it is the first line.
bool read_password_from_stdin(std::string& out) {
    if (::isatty(STDIN_FILENO) == 0) return read_line(std::cin, out);
    std::fputs("password: ", stderr);
    termios old_mode{};
    const bool terminal = ::tcgetattr(STDIN_FILENO, &old_mode) == 0;
    if (terminal) {
        termios quiet = old_mode;
        quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
        ::tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
    }
    const bool ok = read_line(std::cin, out);
    if (terminal) ::tcsetattr(STDIN_FILENO, TCSANOW, &old_mode);
    std::fputs("\n", stderr);
    return ok;
}

// The change is made; an audit line that cannot be written is said, not fatal.
void audit(AlertStore& store, const AuditEntry& entry) {
    if (auto written = store.append_audit(entry); !written) {
        std::fprintf(stderr, "senningen-collector: warning: audit log: %s\n",
                     written.error().message.c_str());
    }
}

}  // namespace

bool is_user_command(const char* arg) { return std::strcmp(arg, "user") == 0; }

int run_user_command(int argc, char** argv) {
    if (argc < 3 || std::strcmp(argv[2], "--help") == 0 || std::strcmp(argv[2], "-h") == 0) {
        std::fputs(kUserUsage, argc < 3 ? stderr : stdout);
        return argc < 3 ? kExitUsage : kExitOk;
    }
    const std::string verb = argv[2];
    std::vector<std::string> positional;
    std::map<std::string, std::string> options = {{"--db", "sqlite:senningen.db"}};
    for (int i = 3; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--db" || arg == "--role" || arg == "--password-file" || arg == "--label") {
            if (i + 1 >= argc) return usage_error(arg + " needs a value");
            options[arg] = argv[++i];
        } else if (arg == "--password") {
            return usage_error("passwords are not taken on the command line (other users see "
                               "it in ps); use --password-file FILE or standard input");
        } else if (arg.starts_with("--")) {
            return usage_error("unknown option '" + arg + "'");
        } else {
            positional.push_back(arg);
        }
    }
    const bool needs_name = verb == "add" || verb == "token" || verb == "disable";
    if (verb != "list" && !needs_name) return usage_error("unknown user command '" + verb + "'");
    if (needs_name && positional.size() != 1) return usage_error("user " + verb + " needs NAME");
    if (!needs_name && !positional.empty()) return usage_error("user list takes no NAME");
    if (std::string problem = check_store_spec(options["--db"]); !problem.empty()) {
        return usage_error(problem);
    }
    const std::string name = needs_name ? positional.front() : std::string();
    if (needs_name) {
        if (auto ok = check_user_name(name); !ok) return usage_error(ok.error().message);
    }

    std::optional<Role> role;
    std::string password;
    if (verb == "add") {
        if (options.count("--role") == 0) return usage_error("user add needs --role ROLE");
        role = parse_role(options["--role"]);
        if (!role) {
            return usage_error("role '" + options["--role"] +
                               "' is not analyst, rule-author or admin");
        }
        if (options.count("--password-file") != 0) {
            std::ifstream file(options["--password-file"]);
            if (!file || !read_line(file, password)) {
                return usage_error("password file '" + options["--password-file"] +
                                   "' cannot be read or is empty");
            }
        } else if (!read_password_from_stdin(password)) {
            return usage_error("no password on standard input");
        }
    }

    auto store = open_store(options["--db"]);
    if (!store) return failed(store.error());
    AlertStore& s = **store;

    if (verb == "add") {
        auto hash = hash_password(password);
        if (!hash) return failed(hash.error());
        UserAccount user{name, *role, *hash, common::now_ns(), false};
        if (auto added = s.add_user(user); !added) return failed(added.error());
        audit(s, AuditEntry{user.created_ns, "cli", "user.add", name, "",
                                  std::string(to_string(*role))});
        std::printf("added %s (%s)\n", name.c_str(), std::string(to_string(*role)).c_str());
        return kExitOk;
    }
    if (verb == "token") {
        const std::string label = options.count("--label") ? options["--label"] : std::string();
        if (label.size() > kMaxTokenLabelLength) {
            return usage_error("label is longer than " + std::to_string(kMaxTokenLabelLength) +
                               " characters");
        }
        auto token = new_api_token();
        if (!token) return failed(token.error());
        const std::int64_t at = common::now_ns();
        if (auto added = s.add_api_token(secret_digest(*token), name, label, at); !added) {
            return failed(added.error());
        }
        audit(s, AuditEntry{at, "cli", "user.token", name, "", label});
        std::printf("%s\n", token->c_str());
        return kExitOk;
    }
    if (verb == "disable") {
        if (auto done = s.set_user_disabled(name, true); !done) return failed(done.error());
        audit(s, AuditEntry{common::now_ns(), "cli", "user.disable", name, "enabled",
                                  "disabled"});
        std::printf("disabled %s\n", name.c_str());
        return kExitOk;
    }
    auto users = s.users();
    if (!users) return failed(users.error());
    for (const UserAccount& u : *users) {
        std::printf("%-24s %-12s %-9s created %s\n", u.name.c_str(),
                    std::string(to_string(u.role)).c_str(), u.disabled ? "disabled" : "enabled",
                    common::format_timestamp(u.created_ns).c_str());
    }
    if (users->empty()) std::fputs("(no accounts)\n", stderr);
    return kExitOk;
}

}  // namespace senningen::collector
