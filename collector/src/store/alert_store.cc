#include "senningen/collector/alert_store.h"

#include <arpa/inet.h>

#include <charconv>

#include "senningen/common/json_codec.h"

namespace senningen::collector {

namespace {

common::Error no_agents(const AlertStore& store) {
    return common::make_error(common::ErrorCode::kUnsupported,
                              "the " + store.backend_name() + " store does not keep agents");
}

common::Error no_accounts(const AlertStore& store) {
    return common::make_error(common::ErrorCode::kUnsupported,
                              "the " + store.backend_name() + " store does not keep accounts");
}

}  // namespace

bool is_alert_status(std::string_view status) {
    for (std::string_view s : kAlertStatuses) {
        if (s == status) return true;
    }
    return false;
}

std::optional<std::array<std::uint8_t, 16>> address_bytes(std::string_view ip) {
    // inet_pton wants a terminated string; an address is at most 45 characters.
    if (ip.empty() || ip.size() > 45) return std::nullopt;
    const std::string text(ip);
    std::array<std::uint8_t, 16> out{};
    if (text.find(':') == std::string::npos) {
        if (inet_pton(AF_INET, text.c_str(), out.data() + 12) != 1) return std::nullopt;
        out[10] = 0xff;
        out[11] = 0xff;
        return out;
    }
    if (inet_pton(AF_INET6, text.c_str(), out.data()) != 1) return std::nullopt;
    return out;
}

common::Result<AddressRange> parse_address_range(std::string_view text) {
    auto bad = [&](const std::string& why) -> common::Result<AddressRange> {
        return common::make_error(common::ErrorCode::kInvalidArgument,
                                  "'" + std::string(text.substr(0, 64)) + "' " + why);
    };
    const std::size_t slash = text.find('/');
    const std::string_view address = text.substr(0, slash);
    const auto bytes = address_bytes(address);
    if (!bytes) return bad("is not an IPv4 or IPv6 address or CIDR block");
    const bool v4 = address.find(':') == std::string_view::npos;
    const int width = v4 ? 32 : 128;
    int prefix = width;
    if (slash != std::string_view::npos) {
        const std::string_view digits = text.substr(slash + 1);
        const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), prefix);
        if (digits.empty() || digits.front() == '-' || digits.front() == '+' || ec != std::errc() ||
            end != digits.data() + digits.size() || prefix < 0 || prefix > width) {
            return bad("has a prefix length outside 0.." + std::to_string(width));
        }
    }
    // In the 16-byte space an IPv4 block sits below the 96 bits of ::ffff:0:0/96.
    const int bits = v4 ? 96 + prefix : prefix;
    AddressRange range{*bytes, *bytes};
    for (int i = bits; i < 128; ++i) {
        const auto mask = static_cast<std::uint8_t>(0x80U >> (i % 8));
        if ((range.low[i / 8] & mask) != 0) {
            return bad("has bits set beyond its prefix length; the block starts at a lower "
                       "address");
        }
        range.high[i / 8] = static_cast<std::uint8_t>(range.high[i / 8] | mask);
    }
    return range;
}

namespace {

char ascii_lower(char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

}  // namespace

std::string normalize_search(std::string_view text) {
    std::string out(text);
    for (char& c : out) c = ascii_lower(c);
    return out;
}

std::string alert_search_text(const common::Alert& alert) {
    std::string out = normalize_search(alert.rule);
    for (const common::StringMatch& m : alert.matches) {
        out += '\n';
        out += normalize_search(common::encode_match_data(m.data));
    }
    return out;
}

common::Result<void> check_query(const AlertQuery& q) {
    if (q.limit == 0 || q.limit > kMaxQueryLimit) {
        return common::make_error(common::ErrorCode::kInvalidArgument,
                                  "query limit " + std::to_string(q.limit) + " is outside 1.." +
                                      std::to_string(kMaxQueryLimit));
    }
    for (int s : q.severities) {
        if (s < common::kSeverityMin || s > common::kSeverityMax) {
            return common::make_error(common::ErrorCode::kInvalidArgument,
                                      "query severity " + std::to_string(s) + " is outside 1..4");
        }
    }
    if (q.text) {
        if (q.text->size() < kMinSearchLength || q.text->size() > kMaxSearchLength) {
            return common::make_error(common::ErrorCode::kInvalidArgument,
                                      "query text must be " + std::to_string(kMinSearchLength) +
                                          ".." + std::to_string(kMaxSearchLength) + " bytes");
        }
        for (char c : *q.text) {
            if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
                return common::make_error(common::ErrorCode::kInvalidArgument,
                                          "query text contains a control character");
            }
        }
    }
    return {};
}

std::string_view to_string(AggregateBy by) {
    switch (by) {
        case AggregateBy::kRule: return "rule";
        case AggregateBy::kAgent: return "agent";
        case AggregateBy::kSeverity: return "severity";
        case AggregateBy::kHour: return "hour";
    }
    return "hour";
}

std::optional<AggregateBy> parse_aggregate_by(std::string_view text) {
    for (AggregateBy by :
         {AggregateBy::kRule, AggregateBy::kAgent, AggregateBy::kSeverity, AggregateBy::kHour}) {
        if (to_string(by) == text) return by;
    }
    return std::nullopt;
}

std::int64_t hour_start(std::int64_t timestamp_ns) {
    const std::int64_t rem = timestamp_ns % kHourNs;
    return timestamp_ns - (rem < 0 ? rem + kHourNs : rem);
}

bool rollup_answers(const AggregateQuery& q) {
    auto whole_hour = [](const std::optional<std::int64_t>& t) {
        return !t || hour_start(*t) == *t;
    };
    if (!whole_hour(q.filter.since_ns) || !whole_hour(q.filter.until_ns)) return false;
    // Everything the rollup can filter on is cleared; whatever is left (any other filter,
    // including ones added to AlertQuery later) means counting the alerts themselves.
    AlertQuery rest = q.filter;
    rest.since_ns.reset();
    rest.until_ns.reset();
    rest.severities.clear();
    rest.agent_id.reset();
    rest.limit = AlertQuery{}.limit;
    // The order and the page position of a list do not change what is counted.
    rest.sort = AlertQuery{}.sort;
    rest.after.reset();
    return rest == AlertQuery{};
}

namespace {

common::Result<void> check_bucket_limit(std::size_t limit) {
    if (limit == 0 || limit > kMaxAggregateLimit) {
        return common::make_error(common::ErrorCode::kInvalidArgument,
                                  "limit " + std::to_string(limit) + " is outside 1.." +
                                      std::to_string(kMaxAggregateLimit));
    }
    return {};
}

// check_query() without its limit, which aggregations do not use.
common::Result<void> check_filter(AlertQuery filter) {
    filter.limit = 1;
    return check_query(filter);
}

}  // namespace

common::Result<void> check_aggregate_query(const AggregateQuery& q) {
    if (auto ok = check_filter(q.filter); !ok) return ok;
    return check_bucket_limit(q.limit);
}

common::Result<void> check_group_query(const GroupQuery& q) {
    if (auto ok = check_filter(q.filter); !ok) return ok;
    if (q.window_ns < kMinGroupWindowNs || q.window_ns > kMaxGroupWindowNs) {
        return common::make_error(common::ErrorCode::kInvalidArgument,
                                  "group window of " + std::to_string(q.window_ns) +
                                      " ns is outside one minute..30 days");
    }
    return check_bucket_limit(q.limit);
}

std::string group_target(const common::Alert& alert) {
    if (alert.kind == common::AlertKind::kFile && alert.file) return alert.file->path;
    if (alert.network) return alert.network->dest_ip;
    return {};
}

common::Result<void> check_user_name(const std::string& name) {
    auto bad = [&](const std::string& why) -> common::Result<void> {
        return common::make_error(common::ErrorCode::kInvalidArgument,
                                  "account name '" + name.substr(0, kMaxUserNameLength) + "' " + why);
    };
    if (name.empty()) return bad("is empty");
    if (name.size() > kMaxUserNameLength) {
        return bad("is longer than " + std::to_string(kMaxUserNameLength) + " characters");
    }
    auto alnum = [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    };
    if (!alnum(name.front())) return bad("does not start with a letter or digit");
    for (char c : name) {
        if (!alnum(c) && c != '.' && c != '_' && c != '@' && c != '-') {
            return bad("has a character outside A-Z a-z 0-9 . _ @ -");
        }
    }
    return {};
}

// Out of line so that the vtable has one home.
AlertStore::~AlertStore() = default;

common::Result<std::vector<InsertResult>> AlertStore::insert_batches(
    const std::vector<std::vector<common::Alert>>& batches) {
    // Everything is validated first, so that an invalid alert stores nothing here either.
    for (std::size_t k = 0; k < batches.size(); ++k) {
        for (std::size_t i = 0; i < batches[k].size(); ++i) {
            if (auto valid = common::validate(batches[k][i]); !valid) {
                return common::make_error(common::ErrorCode::kInvalidArgument,
                                          "alert " + std::to_string(i) + " of the batch " +
                                              std::to_string(k) + " of the group ('" +
                                              batches[k][i].id + "'): " + valid.error().message);
            }
        }
    }
    std::vector<InsertResult> results;
    results.reserve(batches.size());
    for (const auto& batch : batches) {
        auto r = insert(batch);
        if (!r) return r.error();
        results.push_back(*r);
    }
    return results;
}

common::Result<std::vector<InsertResult>> AlertStore::insert_validated(
    const std::vector<ValidatedBatch>& batches) {
    std::vector<InsertResult> results;
    results.reserve(batches.size());
    for (const ValidatedBatch& batch : batches) {
        auto r = insert(*batch.alerts);
        if (!r) return r.error();
        results.push_back(*r);
    }
    return results;
}

common::Result<AggregateResult> AlertStore::aggregate(const AggregateQuery&) {
    return common::make_error(common::ErrorCode::kUnsupported,
                              "the " + backend_name() + " store does not aggregate");
}

common::Result<std::vector<AlertGroup>> AlertStore::groups(const GroupQuery&) {
    return common::make_error(common::ErrorCode::kUnsupported,
                              "the " + backend_name() + " store does not group alerts");
}

common::Result<void> AlertStore::record_heartbeat(const common::Heartbeat&, std::int64_t) {
    return no_agents(*this);
}

common::Result<void> AlertStore::set_agent_state(const std::string&, const std::string&,
                                                 std::int64_t, const std::string&) {
    return no_agents(*this);
}

common::Result<std::vector<AgentStatus>> AlertStore::agents() { return no_agents(*this); }

common::Result<std::optional<AgentStatus>> AlertStore::agent(const std::string&) {
    return no_agents(*this);
}

common::Result<std::vector<AgentEvent>> AlertStore::agent_events(const std::string&, std::size_t) {
    return no_agents(*this);
}

common::Result<void> AlertStore::add_user(const UserAccount&) { return no_accounts(*this); }
common::Result<std::optional<UserAccount>> AlertStore::find_user(const std::string&) {
    return no_accounts(*this);
}
common::Result<std::vector<UserAccount>> AlertStore::users() { return no_accounts(*this); }
common::Result<void> AlertStore::set_user_disabled(const std::string&, bool) {
    return no_accounts(*this);
}
common::Result<void> AlertStore::set_password_hash(const std::string&, const std::string&) {
    return no_accounts(*this);
}
common::Result<void> AlertStore::add_session(const std::string&, const std::string&, std::int64_t,
                                             std::int64_t) {
    return no_accounts(*this);
}
common::Result<std::optional<UserAccount>> AlertStore::session_user(const std::string&,
                                                                    std::int64_t) {
    return no_accounts(*this);
}
common::Result<void> AlertStore::delete_session(const std::string&) { return no_accounts(*this); }
common::Result<void> AlertStore::add_api_token(const std::string&, const std::string&,
                                               const std::string&, std::int64_t) {
    return no_accounts(*this);
}
common::Result<std::optional<UserAccount>> AlertStore::token_user(const std::string&,
                                                                  std::int64_t) {
    return no_accounts(*this);
}
common::Result<void> AlertStore::append_audit(const AuditEntry&) { return no_accounts(*this); }
common::Result<std::vector<AuditEntry>> AlertStore::audit_entries(const std::string&,
                                                                  std::size_t) {
    return no_accounts(*this);
}

common::Result<std::map<std::string, AlertTriage>> AlertStore::triage_of(
    const std::vector<std::string>&) {
    return no_accounts(*this);
}
common::Result<std::vector<AuditEntry>> AlertStore::update_triage(const std::vector<std::string>&,
                                                                  const TriageChange&,
                                                                  const std::string&,
                                                                  std::int64_t) {
    return no_accounts(*this);
}
common::Result<void> AlertStore::add_comment(const std::string&, const AlertComment&) {
    return no_accounts(*this);
}
common::Result<std::vector<AlertComment>> AlertStore::comments(const std::string&) {
    return no_accounts(*this);
}

namespace {

common::Error no_metadata(const AlertStore& store) {
    return common::make_error(common::ErrorCode::kUnsupported,
                              "the " + store.backend_name() + " store keeps no metadata records");
}

}  // namespace

common::Result<std::vector<MetadataInsertResult>> AlertStore::insert_metadata(
    const std::vector<MetadataBatchIn>&, std::int64_t) {
    return no_metadata(*this);
}

common::Result<std::vector<StoredMetadata>> AlertStore::hunt_metadata(const MetadataQuery&) {
    return no_metadata(*this);
}

common::Result<std::uint64_t> AlertStore::prune_metadata(const MetadataRetention&, std::int64_t,
                                                         std::size_t) {
    return no_metadata(*this);
}

common::Result<std::uint64_t> AlertStore::metadata_count() {
    return no_metadata(*this);
}

}  // namespace senningen::collector
