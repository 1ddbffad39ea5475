#pragma once
// The command-line tools as library functions, for any registered model (nn/registry.hpp). A
// program that registers its own model gets every tool with the same flags as ManualCNN's apps:
//
//   int main(int argc, char** argv) {
//       mcnn::register_model<TinyNet>("tiny", "a small CNN");
//       return mcnn::run_command_line(argc, argv);
//   }
//   $ prog train --model tiny --epochs 1      $ prog gradcheck --model tiny --max-elements 20
//   $ prog summary --model tiny --graph g.png $ prog visualize --model tiny --what kernels
//   $ prog bench --case tiny-b64 --threads 1
//
// Each command parses its own flags (--help lists them and the registered models), prints what
// it does, and returns the process's exit status: 0 on success, 1 when the work failed (a gradient
// check, a missing data folder, ...), non-zero on bad usage. The apps train, tune, gradcheck, visualize
// and bench are these functions behind a one-line main() (through run_main).
namespace mcnn {

/// Runs the command named by argv[1] (train, tune, gradcheck, summary, visualize, bench) with the
/// arguments after it. With no command or an unknown one: prints the usage (the commands and the
/// registered models) and returns 2; "help" or "--help" prints it and returns 0. Like run_main, it
/// first runs use_default_openmp_wait_policy(argv) (threads.hpp): pass main's own argv.
int run_command_line(int argc, char** argv);

namespace cli {

/// Each command's argv[0] is the name it shows in --help and messages ("train", or "prog train"
/// when run through run_command_line).

/// Trains a registered model on CIFAR-10 (train/config.hpp), writing a run folder; --resume goes on.
int train(int argc, char** argv);
/// Searches a model's training settings on a validation split (train/tune.hpp), writing a search
/// folder; --retrain-best trains the best on the whole training set; --resume goes on.
int tune(int argc, char** argv);
/// Numeric gradient checks in double: --node NAME|all (node cases), --model NAME (model + loss).
int gradcheck(int argc, char** argv);
/// Prints a model's summary for its registered input shape (or --input C,H,W); --graph FILE also
/// draws the tape of one training step (Graphviz: .png, .svg or .dot).
int summary(int argc, char** argv);
/// Draws a model's first conv layer (feature maps, gradients, kernels) and its predictions as PNGs.
int visualize(int argc, char** argv);
/// Times training steps (<model>-b<batch>) and inference (<model>-infer-b<batch>) split by node kind.
int bench(int argc, char** argv);

/// What the apps' main() returns: `command(argc, argv)` (one of the above, or run_command_line),
/// with any exception that still escapes it (an allocation failure while parsing the flags, ...)
/// printed as "<program>: error: <what>" and exit status 1, never an abort. The commands report
/// their own errors the same way. First it runs use_default_openmp_wait_policy(argv) (threads.hpp):
/// unless OMP_WAIT_POLICY or GOMP_SPINCOUNT is set, the program is executed again with idle
/// OpenMP threads sleeping rather than spinning.
int run_main(int (*command)(int, char**), int argc, char** argv);

}  // namespace cli
}  // namespace mcnn
