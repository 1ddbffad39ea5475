// A model's layers, shapes and parameters; --graph FILE draws one training step. See --help.
// The command lives in the library (mcnn/cli.hpp), so a program with its own models has it too.
#include "mcnn/cli.hpp"

int main(int argc, char** argv) { return mcnn::cli::run_main(mcnn::cli::summary, argc, argv); }
