#include "senningen/agent/cli.h"

int main(int argc, char** argv) { return senningen::agent::run_agent(argc, argv); }
