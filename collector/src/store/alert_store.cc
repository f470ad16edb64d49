#include "senningen/collector/alert_store.h"

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

}  // namespace senningen::collector
