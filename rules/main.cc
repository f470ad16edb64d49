#include "senningen/rules/cli.h"

int main(int argc, char** argv) { return senningen::rules::run_rules_tool(argc, argv); }
