// ICS policy rules: what the protocol analyzers report as ProtocolEvents ("modbus write",
// "s7comm plc_stop", ...) judged against a site's rules, e.g. "a Modbus write from a host that
// is not an allowed master". A policy file is a small INI-style text format (documented in
// docs/agent.md and in rules/packs/ics/policy.conf); a bad file is refused with
// every problem as FILE:LINE: message. A Policy is immutable once loaded, shared read-only by
// the workers, and replaced as a whole on reload.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "senningen/agent/analyzers/analyzer.h"
#include "senningen/agent/decode/packet.h"
#include "senningen/common/result.h"

namespace senningen::agent {

// An address or a CIDR block, IPv4 or IPv6.
struct AddressBlock {
    IpAddress base;
    int prefix = 0;  // bits that must match
    bool contains(const IpAddress& addr) const;
};

// Parses "10.0.0.5", "10.0.0.0/24", "2001:db8::/32"; false when TEXT is none of those.
bool parse_address_block(std::string_view text, AddressBlock& out);

struct PolicyRule {
    std::string name;  // the [rule NAME] section
    std::string protocol;
    std::vector<std::string> actions;  // empty: any action
    std::vector<AddressBlock> src_in, src_not_in, dst_in, dst_not_in;
    // fact name -> accepted values (any of them)
    std::vector<std::pair<std::string, std::vector<std::string>>> facts;
    int severity = 2;
    std::string category = "ICS policy violation";
    std::string message;       // the alert's signature text
    bool once_per_flow = true;  // limit = flow (default) or none
    std::string file;           // where it was defined, for messages
    int line = 0;

    // Whether EVENT sent from SRC to DST breaks this rule.
    bool matches(const ProtocolEvent& event, const IpAddress& src, const IpAddress& dst) const;
};

class Policy {
public:
    // Reads one policy file. Errors: kNotFound (no such file), kParse with every problem of
    // the file as "FILE:LINE: problem" lines.
    static common::Result<std::shared_ptr<Policy>> load_file(const std::string& path);
    // Parses TEXT as if it were the file NAME (for tests and for packs).
    static common::Result<std::shared_ptr<Policy>> parse(std::string_view text,
                                                         const std::string& name);

    // Reads every file of PATHS into one policy (rule names unique across them); every
    // problem of every file is reported at once. Null when PATHS is empty.
    static common::Result<std::shared_ptr<const Policy>> load_files(
        const std::vector<std::string>& paths);

    const std::vector<PolicyRule>& rules() const { return rules_; }
    // "policy:<file name>:<8 hex digits of a hash of the text>", the alerts' pack_version.
    const std::string& version() const { return version_; }

    // Indexes into rules() of every rule that EVENT from SRC to DST breaks, in file order.
    void evaluate(const ProtocolEvent& event, const IpAddress& src, const IpAddress& dst,
                  std::vector<std::size_t>& hits) const;

private:
    std::vector<PolicyRule> rules_;
    std::string version_;
};

// The policy files of a run: the --policy files, then policy.conf of each --rules directory
// that has one (a rule pack ships its policy beside its YARA rules).
std::vector<std::string> policy_files(const std::vector<std::string>& policy_args,
                                      const std::vector<std::string>& rule_paths);

inline common::Result<std::shared_ptr<const Policy>> load_policy_files(
    const std::vector<std::string>& paths) {
    return Policy::load_files(paths);
}

}  // namespace senningen::agent
