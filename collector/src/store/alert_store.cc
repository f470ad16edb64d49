#include "senningen/collector/alert_store.h"

namespace senningen::collector {

namespace {

common::Error no_agents(const AlertStore& store) {
    return common::make_error(common::ErrorCode::kUnsupported,
                              "the " + store.backend_name() + " store does not keep agents");
}

}  // namespace

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

}  // namespace senningen::collector
