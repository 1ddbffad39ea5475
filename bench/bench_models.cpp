// The speed benchmark: training steps and inference of the registered models, split by node kind
// (see lib/src/cli/bench.cpp and bench --help). The command lives in the library (mcnn/cli.hpp).
#include "mcnn/cli.hpp"

int main(int argc, char** argv) { return mcnn::cli::run_main(mcnn::cli::bench, argc, argv); }
