#include "senningen/collector/cli.h"

int main(int argc, char** argv) { return senningen::collector::run_collector(argc, argv); }
