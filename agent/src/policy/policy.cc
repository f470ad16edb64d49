#include "senningen/agent/policy/policy.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

namespace senningen::agent {

namespace {

constexpr std::string_view kProtocols[] = {"modbus", "dnp3", "s7comm", "iec104", "enip"};

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
        s.remove_suffix(1);
    }
    return s;
}

// "a, b c" -> {"a", "b", "c"}: commas and blanks both separate.
std::vector<std::string> split_list(std::string_view s) {
    std::vector<std::string> out;
    std::string cur;
    for (char c : s) {
        if (c == ',' || c == ' ' || c == '\t') {
            if (!cur.empty()) out.push_back(std::move(cur));
            cur.clear();
        } else {
            cur += c;
        }
    }
    if (!cur.empty()) out.push_back(std::move(cur));
    return out;
}

std::string fnv_hex(std::string_view text) {
    std::uint32_t h = 2166136261u;
    for (char c : text) {
        h ^= static_cast<std::uint8_t>(c);
        h *= 16777619u;
    }
    char buf[9];
    std::snprintf(buf, sizeof buf, "%08x", h);
    return buf;
}

bool in_any(const std::vector<AddressBlock>& blocks, const IpAddress& addr) {
    return std::any_of(blocks.begin(), blocks.end(),
                       [&](const AddressBlock& b) { return b.contains(addr); });
}

struct Section {
    enum class Kind { kNone, kList, kRule } kind = Kind::kNone;
    std::string name;
    int line = 0;
};

class Parser {
public:
    explicit Parser(std::string file) : file_(std::move(file)) {}

    void parse(std::string_view text) {
        int line_no = 0;
        std::size_t start = 0;
        while (start <= text.size()) {
            const std::size_t nl = text.find('\n', start);
            std::string_view line =
                text.substr(start, nl == std::string_view::npos ? text.size() - start : nl - start);
            ++line_no;
            on_line(trim(strip_comment(line)), line_no);
            if (nl == std::string_view::npos) break;
            start = nl + 1;
        }
        close_rule();
    }

    std::vector<std::string> problems;
    std::vector<PolicyRule> rules;

private:
    static std::string_view strip_comment(std::string_view line) {
        // '#' starts a comment anywhere except inside a message or category value.
        const std::size_t hash = line.find('#');
        if (hash == std::string_view::npos) return line;
        const std::size_t eq = line.find('=');
        if (eq != std::string_view::npos && eq < hash) {
            const std::string_view key = trim(line.substr(0, eq));
            if (key == "message" || key == "category") return line;
        }
        return line.substr(0, hash);
    }

    void problem(int line, const std::string& what) {
        problems.push_back(file_ + ":" + std::to_string(line) + ": " + what);
    }

    void on_line(std::string_view line, int n) {
        if (line.empty()) return;
        if (line.front() == '[') {
            close_rule();
            if (line.back() != ']') {
                problem(n, "section header without a closing ']'");
                section_ = {};
                return;
            }
            const auto words = split_list(line.substr(1, line.size() - 2));
            if (words.size() != 2 || (words[0] != "rule" && words[0] != "list")) {
                problem(n, "a section is [rule NAME] or [list NAME], not '" + std::string(line) +
                               "'");
                section_ = {};
                section_.kind = Section::Kind::kNone;
                skip_ = true;
                return;
            }
            skip_ = false;
            section_.name = words[1];
            section_.line = n;
            if (words[0] == "list") {
                section_.kind = Section::Kind::kList;
                if (lists_.count(words[1])) problem(n, "list '" + words[1] + "' defined twice");
                lists_[words[1]];
            } else {
                section_.kind = Section::Kind::kRule;
                if (!names_.insert(words[1]).second) {
                    problem(n, "rule '" + words[1] + "' defined twice");
                }
                rule_ = PolicyRule{};
                rule_.name = words[1];
                rule_.file = file_;
                rule_.line = n;
                have_protocol_ = false;
                have_action_ = false;
                enabled_ = true;
            }
            return;
        }
        if (skip_) return;
        switch (section_.kind) {
            case Section::Kind::kNone:
                problem(n, "'" + std::string(line) + "' outside any [rule] or [list] section");
                return;
            case Section::Kind::kList: {
                auto& list = lists_[section_.name];
                for (const auto& item : split_list(line)) {
                    AddressBlock b;
                    if (parse_address_block(item, b)) {
                        list.push_back(b);
                    } else {
                        problem(n, "'" + item + "' is not an address or CIDR block");
                    }
                }
                return;
            }
            case Section::Kind::kRule: on_rule_line(line, n); return;
        }
    }

    void on_rule_line(std::string_view line, int n) {
        const std::size_t eq = line.find('=');
        if (eq == std::string_view::npos) {
            problem(n, "expected 'key = value', got '" + std::string(line) + "'");
            return;
        }
        const std::string key(trim(line.substr(0, eq)));
        const std::string value(trim(line.substr(eq + 1)));
        if (value.empty()) {
            problem(n, "'" + key + "' has no value");
            return;
        }
        if (key == "protocol") {
            if (std::find(std::begin(kProtocols), std::end(kProtocols), value) ==
                std::end(kProtocols)) {
                problem(n, "protocol '" + value +
                               "' is not one of modbus, dnp3, s7comm, iec104, enip");
            }
            rule_.protocol = value;
            have_protocol_ = true;
        } else if (key == "action") {
            rule_.actions = split_list(value);
            if (rule_.actions.size() == 1 && rule_.actions[0] == "*") rule_.actions.clear();
            have_action_ = true;
        } else if (key == "src_in" || key == "src_not_in" || key == "dst_in" ||
                   key == "dst_not_in") {
            auto& target = key == "src_in"       ? rule_.src_in
                           : key == "src_not_in" ? rule_.src_not_in
                           : key == "dst_in"     ? rule_.dst_in
                                                 : rule_.dst_not_in;
            for (const auto& item : split_list(value)) {
                if (item.front() == '@') {
                    const auto it = lists_.find(item.substr(1));
                    if (it == lists_.end()) {
                        problem(n, "list '" + item.substr(1) + "' is not defined (above this line)");
                    } else {
                        target.insert(target.end(), it->second.begin(), it->second.end());
                    }
                    continue;
                }
                AddressBlock b;
                if (parse_address_block(item, b)) {
                    target.push_back(b);
                } else {
                    problem(n, "'" + item + "' is not an address, CIDR block or @list");
                }
            }
        } else if (key.rfind("fact.", 0) == 0 && key.size() > 5) {
            rule_.facts.emplace_back(key.substr(5), split_list(value));
        } else if (key == "severity") {
            if (value.size() == 1 && value[0] >= '1' && value[0] <= '4') {
                rule_.severity = value[0] - '0';
            } else if (value == "critical" || value == "high" || value == "medium" ||
                       value == "low") {
                rule_.severity = value == "critical" ? 1 : value == "high" ? 2
                                 : value == "medium" ? 3 : 4;
            } else {
                problem(n, "severity '" + value + "' is not 1..4 or critical/high/medium/low");
            }
        } else if (key == "category") {
            rule_.category = value;
        } else if (key == "message") {
            rule_.message = value;
        } else if (key == "limit") {
            if (value == "flow") {
                rule_.once_per_flow = true;
            } else if (value == "none") {
                rule_.once_per_flow = false;
            } else {
                problem(n, "limit '" + value + "' is not 'flow' or 'none'");
            }
        } else if (key == "enabled") {
            if (value == "yes" || value == "true") {
                enabled_ = true;
            } else if (value == "no" || value == "false") {
                enabled_ = false;
            } else {
                problem(n, "enabled '" + value + "' is not yes or no");
            }
        } else {
            problem(n, "unknown key '" + key +
                           "' (protocol, action, src_in, src_not_in, dst_in, dst_not_in, "
                           "fact.NAME, severity, category, message, limit, enabled)");
        }
    }

    void close_rule() {
        if (section_.kind != Section::Kind::kRule) return;
        if (!have_protocol_) problem(section_.line, "rule '" + rule_.name + "' has no protocol");
        if (!have_action_) problem(section_.line, "rule '" + rule_.name + "' has no action");
        if (rule_.message.empty()) rule_.message = rule_.name;
        if (enabled_) rules.push_back(std::move(rule_));
        section_ = {};
    }

    std::string file_;
    Section section_;
    bool skip_ = false;
    PolicyRule rule_;
    bool have_protocol_ = false;
    bool have_action_ = false;
    bool enabled_ = true;
    std::map<std::string, std::vector<AddressBlock>> lists_;
    std::set<std::string> names_;
};

}  // namespace

bool AddressBlock::contains(const IpAddress& addr) const {
    if (addr.family != base.family) return false;
    const int full = prefix / 8;
    for (int i = 0; i < full; ++i) {
        if (addr.bytes[static_cast<std::size_t>(i)] != base.bytes[static_cast<std::size_t>(i)]) {
            return false;
        }
    }
    const int rest = prefix % 8;
    if (rest == 0) return true;
    const auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
    const auto i = static_cast<std::size_t>(full);
    return (addr.bytes[i] & mask) == (base.bytes[i] & mask);
}

bool parse_address_block(std::string_view text, AddressBlock& out) {
    std::string addr(text);
    int prefix = -1;
    const std::size_t slash = addr.find('/');
    if (slash != std::string::npos) {
        const std::string bits = addr.substr(slash + 1);
        if (bits.empty() || bits.size() > 3 ||
            !std::all_of(bits.begin(), bits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
            return false;
        }
        prefix = std::stoi(bits);
        addr.resize(slash);
    }
    AddressBlock b;
    if (inet_pton(AF_INET, addr.c_str(), b.base.bytes.data()) == 1) {
        b.base.family = 4;
        if (prefix > 32) return false;
        b.prefix = prefix < 0 ? 32 : prefix;
    } else if (inet_pton(AF_INET6, addr.c_str(), b.base.bytes.data()) == 1) {
        b.base.family = 6;
        if (prefix > 128) return false;
        b.prefix = prefix < 0 ? 128 : prefix;
    } else {
        return false;
    }
    out = b;
    return true;
}

bool PolicyRule::matches(const ProtocolEvent& event, const IpAddress& src,
                         const IpAddress& dst) const {
    if (event.protocol != protocol) return false;
    if (!actions.empty() &&
        std::find(actions.begin(), actions.end(), event.action) == actions.end()) {
        return false;
    }
    if (!src_in.empty() && !in_any(src_in, src)) return false;
    if (!src_not_in.empty() && in_any(src_not_in, src)) return false;
    if (!dst_in.empty() && !in_any(dst_in, dst)) return false;
    if (!dst_not_in.empty() && in_any(dst_not_in, dst)) return false;
    for (const auto& [fact, values] : facts) {
        const auto it = event.facts.find(fact);
        if (it == event.facts.end()) return false;
        if (std::find(values.begin(), values.end(), it->second) == values.end()) return false;
    }
    return true;
}

common::Result<std::shared_ptr<Policy>> Policy::parse(std::string_view text,
                                                      const std::string& name) {
    Parser parser(name);
    parser.parse(text);
    if (!parser.problems.empty()) {
        std::string message;
        for (const auto& p : parser.problems) {
            if (!message.empty()) message += '\n';
            message += p;
        }
        return common::make_error(common::ErrorCode::kParse, message);
    }
    auto policy = std::make_shared<Policy>();
    policy->rules_ = std::move(parser.rules);
    const std::size_t slash = name.rfind('/');
    policy->version_ = "policy:" + (slash == std::string::npos ? name : name.substr(slash + 1)) +
                       ":" + fnv_hex(text);
    return policy;
}

common::Result<std::shared_ptr<Policy>> Policy::load_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return common::make_error(common::ErrorCode::kNotFound,
                                  path + ": cannot open the policy file");
    }
    std::ostringstream text;
    text << in.rdbuf();
    return parse(text.str(), path);
}

common::Result<std::shared_ptr<const Policy>> Policy::load_files(
    const std::vector<std::string>& paths) {
    if (paths.empty()) return std::shared_ptr<const Policy>();
    auto merged = std::make_shared<Policy>();
    std::string problems;
    std::set<std::string> names;
    std::string versions;
    for (const auto& path : paths) {
        auto one = load_file(path);
        if (!one) {
            if (one.error().code == common::ErrorCode::kNotFound) return one.error();
            if (!problems.empty()) problems += '\n';
            problems += one.error().message;
            continue;
        }
        for (auto& rule : (*one)->rules_) {
            if (!names.insert(rule.name).second) {
                if (!problems.empty()) problems += '\n';
                problems += rule.file + ":" + std::to_string(rule.line) + ": rule '" + rule.name +
                            "' is already defined in another policy file";
                continue;
            }
            merged->rules_.push_back(std::move(rule));
        }
        versions += (versions.empty() ? "" : "+") + (*one)->version_;
    }
    if (!problems.empty()) return common::make_error(common::ErrorCode::kParse, problems);
    merged->version_ = paths.size() == 1 ? versions : "policy:" + fnv_hex(versions);
    return std::shared_ptr<const Policy>(std::move(merged));
}

std::vector<std::string> policy_files(const std::vector<std::string>& policy_args,
                                      const std::vector<std::string>& rule_paths) {
    std::vector<std::string> out = policy_args;
    for (const auto& path : rule_paths) {
        std::error_code ec;
        if (!std::filesystem::is_directory(path, ec)) continue;
        const auto conf = std::filesystem::path(path) / "policy.conf";
        if (std::filesystem::is_regular_file(conf, ec) &&
            std::find(out.begin(), out.end(), conf.string()) == out.end()) {
            out.push_back(conf.string());
        }
    }
    return out;
}

void Policy::evaluate(const ProtocolEvent& event, const IpAddress& src, const IpAddress& dst,
                      std::vector<std::size_t>& hits) const {
    for (std::size_t i = 0; i < rules_.size(); ++i) {
        if (rules_[i].matches(event, src, dst)) hits.push_back(i);
    }
}

}  // namespace senningen::agent
