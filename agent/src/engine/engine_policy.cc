// The policy side of the engine: ProtocolEvents from the ICS analyzers judged against the
// loaded Policy, each broken rule an alert (source "policy") with the protocol facts; and the
// reload of rules, intel and policy between packets.
#include <algorithm>
#include <string>

#include "senningen/agent/engine/engine.h"

namespace senningen::agent {

void Engine::event(const ProtocolEvent& event) {
    ++counters_.protocol_events;
    if (!policy_ || current_flow_ == nullptr) return;
    const Flow& flow = *current_flow_;
    // The side that sent the event's message is its source: a command comes from the master.
    const FlowEndpoint& src = current_direction_ == 0 ? flow.orig : flow.resp;
    const FlowEndpoint& dst = current_direction_ == 0 ? flow.resp : flow.orig;
    policy_hits_.clear();
    policy_->evaluate(event, src.addr, dst.addr, policy_hits_);
    if (policy_hits_.empty()) return;
    const auto state = states_.find(flow.id);
    for (const std::size_t index : policy_hits_) {
        const PolicyRule& rule = policy_->rules()[index];
        if (rule.once_per_flow && state != states_.end()) {
            auto& fired_list = state->second.policy_fired;
            if (!fired_list) fired_list = std::make_unique<std::vector<std::string>>();
            auto& fired = *fired_list;
            if (std::find(fired.begin(), fired.end(), rule.name) != fired.end()) continue;
            fired.push_back(rule.name);
        }
        common::Alert alert = make_network_alert(flow, current_direction_, current_ts_ns_);
        alert.source = common::RuleSource::kPolicy;
        // The signature names the rule and carries the protocol facts, sorted by name (the
        // facts map is ordered), so that analysts and the collector can filter on them.
        std::string facts = event.protocol + " " + event.action;
        for (const auto& [key, value] : event.facts) facts += " " + key + "=" + value;
        alert.rule = rule.message + " [" + rule.name + ": " + facts + "]";
        alert.category = rule.category;
        alert.severity = rule.severity;
        alert.pack_version = policy_->version();
        ++counters_.policy_alerts;
        emit(std::move(alert));
    }
}

void Engine::reload(std::shared_ptr<const YaraRules> rules, const IntelStore* intel,
                    std::shared_ptr<const Policy> policy) {
    rules_ = std::move(rules);
    scanner_ = rules_ ? make_stream_scanner(rules_, options_.yara_timeout_seconds) : nullptr;
    intel_ = intel;
    policy_ = std::move(policy);
}

}  // namespace senningen::agent
