// The notebook's pictures of a model's first conv layer and predictions as PNGs. See --help.
// The command lives in the library (mcnn/cli.hpp), so a program with its own models has it too.
#include "mcnn/cli.hpp"

int main(int argc, char** argv) { return mcnn::cli::run_main(mcnn::cli::visualize, argc, argv); }
