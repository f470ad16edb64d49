#include <cstdio>
#include <string>
#include <vector>

#include "senningen/agent/scan/yara_rules.h"
#include "senningen/rules/cli.h"

namespace senningen::rules {

namespace {

constexpr const char* kUsage =
    "usage: senningen-rules check PATH...\n"
    "       senningen-rules version PATH...\n"
    "\n"
    "check    compiles the YARA files (a directory adds its *.yar and *.yara files) as the\n"
    "         agent does and reports every error as FILE:LINE: message\n"
    "version  prints the pack version that alerts from these rules carry\n"
    "\n"
    "Exit codes: 0 the rules compile; 1 some do not; 64 usage; 66 a path does not exist.\n";

}  // namespace

int run_rules_tool(int argc, char** argv) {
    if (argc >= 2 && (std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h")) {
        std::fputs(kUsage, stdout);
        return kExitOk;
    }
    if (argc >= 2 && std::string(argv[1]) == "--version") {
        std::puts("senningen-rules 0.1.0");
        return kExitOk;
    }
    if (argc < 3) {
        std::fputs(kUsage, stderr);
        return kExitUsage;
    }
    const std::string command = argv[1];
    if (command != "check" && command != "version") {
        std::fprintf(stderr, "senningen-rules: unknown command '%s'\n", command.c_str());
        std::fputs(kUsage, stderr);
        return kExitUsage;
    }
    std::vector<agent::RuleSourceFile> files;
    for (int i = 2; i < argc; ++i) files.push_back({argv[i], ""});
    auto compiled = agent::YaraRules::compile_files(files);
    if (!compiled) {
        std::fprintf(stderr, "%s\n", compiled.error().message.c_str());
        return compiled.error().code == common::ErrorCode::kNotFound ? kExitNoInput
                                                                     : kExitRuleErrors;
    }
    if (command == "version") {
        std::printf("%s\n", (*compiled)->version().c_str());
    } else {
        std::printf("ok: %zu rules compile, pack version %s\n", (*compiled)->rule_count(),
                    (*compiled)->version().c_str());
    }
    return kExitOk;
}

}  // namespace senningen::rules
