// Numerical gradient checks: --node NAME|all, or --model NAME. See --help.
// The command lives in the library (mcnn/cli.hpp), so a program with its own models has it too.
#include "mcnn/cli.hpp"

int main(int argc, char** argv) { return mcnn::cli::run_main(mcnn::cli::gradcheck, argc, argv); }
