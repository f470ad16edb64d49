// senningen-rules: the rule author's tool. For now it checks that rule files compile exactly as
// the agent will compile them and prints the pack version the agent's alerts will carry; pack
// signing and linting arrive with the rule-pack issue.
#pragma once

namespace senningen::rules {

inline constexpr int kExitOk = 0;
inline constexpr int kExitRuleErrors = 1;  // at least one rule does not compile
inline constexpr int kExitUsage = 64;
inline constexpr int kExitNoInput = 66;    // a path does not exist

int run_rules_tool(int argc, char** argv);

}  // namespace senningen::rules
