// Searches a registered model's training settings on a validation split (random or grid, ASHA early
// stopping, resumable), then optionally retrains the best and tests it once. See --help.
#include "mcnn/cli.hpp"

int main(int argc, char** argv) { return mcnn::cli::run_main(mcnn::cli::tune, argc, argv); }
