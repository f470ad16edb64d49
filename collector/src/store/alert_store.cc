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
