// Trains a registered model on CIFAR-10; with no flags the notebook's SimpleCNN run. See --help.
// The command lives in the library (mcnn/cli.hpp), so a program with its own models has it too.
#include "mcnn/cli.hpp"

int main(int argc, char** argv) { return mcnn::cli::run_main(mcnn::cli::train, argc, argv); }
