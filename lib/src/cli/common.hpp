#pragma once
// What the commands of cli.hpp share: the registered models as flags and help text, models built
// and checked from the registry, error reporting. Private to the library (CLI11 stays inside).
#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "mcnn/distributed.hpp"
#include "mcnn/nn/registry.hpp"
#include "mcnn/train/config.hpp"

namespace mcnn::cli::detail {

/// "simple, tuned, manual, ...": the registered models, read from the registry at run time.
std::string model_list();
/// One line per registered model: name, input shape, classes, description (for --help footers).
std::string model_table();
/// A CLI11 check that a value names a registered model; else the registry's message, which names
/// the value and lists the registered models.
CLI::Validator registered_model();
/// Adds `--model` bound to `name`, described as `what` followed by the registered models.
CLI::Option* add_model_option(CLI::App& app, std::string& name, const std::string& what);

// ---- numeric flags -----------------------------------------------------------------------------
// CLI11's own conversions wrap "-1" around for unsigned fields, read "010" as octal and print
// ranges with 300-digit numbers; these read the whole text strictly (util/strict.hpp) instead. A
// bad value stops the parse like any CLI11 error (exit status 105), with a message such as
// "--batch must be an integer >= 1, got '0'" or "--lr must be a finite number > 0, got 'nan'".

/// The values a floating-point flag allows: [min, max], or (min, max] when `above_min`.
struct NumberRange {
    double min = -std::numeric_limits<double>::infinity();
    double max = std::numeric_limits<double>::infinity();
    bool above_min = false;
    /// "> 0", ">= 0", "from 0 to 1", or "" when any finite number will do.
    std::string text() const;
};

/// `text` (all of it, base 10) as an integer in [min, max]; else throws mcnn::Error
/// "<flag> must be an integer >= 1, got '0'".
long long flag_integer(const std::string& text, const std::string& flag, long long min, long long max);
/// `text` (all of it) as a finite number within `range`; else throws mcnn::Error
/// "<flag> must be a finite number > 0, got 'inf'".
double flag_number(const std::string& text, const std::string& flag, const NumberRange& range);

/// The largest value of Int that strict parsing can give (long long's, for 64-bit unsigned types).
template <class Int>
constexpr long long max_of() {
    return static_cast<long long>(std::min<unsigned long long>(std::numeric_limits<Int>::max(),
                                                               std::numeric_limits<long long>::max()));
}

/// Adds `flag` whose values go to `set` after flag_integer accepted them; --help shows the range
/// and `default_text`. The typed add_integer_flag below is what commands use.
CLI::Option* add_integer_flag_to(CLI::App& app, const std::string& flag, std::function<void(long long)> set,
                                 const std::string& default_text, const std::string& help, long long min, long long max);

/// Adds `flag` bound to `value`, an integer in [min, max] read with flag_integer; --help shows the
/// range and `value` as the default.
template <class Int>
CLI::Option* add_integer_flag(CLI::App& app, const std::string& flag, Int& value, const std::string& help, long long min,
                              long long max = max_of<Int>()) {
    return add_integer_flag_to(app, flag, [&value](long long v) { value = static_cast<Int>(v); }, std::to_string(value),
                               help, min, max);
}
/// The same for a list (`--threads 1 2`): every value in [min, max]. The given values replace `values`.
CLI::Option* add_integer_list_flag(CLI::App& app, const std::string& flag, std::vector<int>& values,
                                   const std::string& help, long long min, long long max);
/// Adds --model-option NAME=VALUE (repeatable): each value, a finite number, goes to options[NAME];
/// the model checks the names and ranges (ModelInfo::resolve).
CLI::Option* add_model_option_flag(CLI::App& app, ModelOptions& options);
/// Adds --data bound to `dir`: the CIFAR-10 folder (else data::find_cifar10's search order).
CLI::Option* add_data_option(CLI::App& app, std::string& dir);
/// Adds `flag` bound to `value`, a finite number within `range` read with flag_number.
CLI::Option* add_number_flag(CLI::App& app, const std::string& flag, double& value, const std::string& help,
                             const NumberRange& range);

/// The OpenMP thread count for `requested` threads (0: every core): at most the machine's cores
/// (omp_get_num_procs()), since more threads only wait on each other. Prints a one-line notice to
/// stderr ("<command>: --threads 1000 is more than the 2 cores of this machine: using 2") when capping.
int capped_threads(int requested, const std::string& command);

/// The MPI world when mpirun started this process (distributed.hpp's mpi_world), else null; throws
/// when a launcher started it but ManualCNN was built without MPI (each process would train alone).
std::unique_ptr<Communicator> mpi_world_for(const std::string& command);

/// B x example: a batch of `batch` examples of shape `example` (C x H x W).
Shape batch_of(int batch, const Shape& example);
/// Whether the model takes CIFAR-10's examples: 3 x 32 x 32 in, 10 classes out.
bool takes_cifar(const ModelInfo& info);
/// Parses "C,H,W" (1 to 3 positive sizes, commas or 'x' between them); throws naming the text.
Shape parse_example_shape(const std::string& text);

/// Model `name` from the registry with `options`, initialised from `rng`, after checking that it maps a batch of
/// `example` to batch x classes (the error names the model and both shapes).
template <class T>
std::unique_ptr<Module<T>> checked_model(const std::string& name, Rng& rng, const Shape& example, const ModelOptions& options = {});

/// The summary text of model `name` for a batch of one `example`, conv layers set to `conv`
/// ("auto" keeps the model's own paths). Shared by `summary` and `train --summary`.
std::string model_summary(const std::string& name, const std::string& conv, std::uint64_t seed, const Shape& example,
                          const ModelOptions& options = {});

/// The train command's flags that set `c` (model, epochs, batch, optimiser, schedule, augmentation,
/// ...; not the run's folder, threads or data); tune takes the same flags as fixed settings.
void add_training_options(CLI::App& app, TrainConfig& c);

/// "20261130-214501": the local time, for default folder names.
std::string timestamp();

/// With --resume the settings are the stored ones: throws when `given` (the flags on the command
/// line) holds one outside `allowed` and --resume, saying what keeps the settings (`kept`, e.g.
/// "the run's settings (config.json in the run folder)") and which flags may be given.
void refuse_on_resume(const std::vector<std::string>& given, const std::vector<std::string>& allowed, const std::string& kept,
                      const std::string& note = "");

/// After SIGINT or SIGTERM stopped `what` ("run", "search"): says on stderr how it goes on
/// ("<program>: stopped by SIGTERM; the run goes on with: <program> --resume DIR"; nothing when
/// `say` is false) and returns the shell's status for a process ended by the signal, 128 + signal.
int stopped_status(const std::string& program, int signal, const std::string& what, const std::filesystem::path& dir, bool say = true);

/// Keeps freed memory blocks for reuse instead of handing them back to the kernel: a training step
/// allocates the same large buffers every time, and fresh pages cost a fault each.
void keep_freed_memory();

/// Runs `body` and returns its status. No exception leaves it: an mcnn::Error, a filesystem error
/// or any std::exception is printed to stderr as "<command>: error: <what>", an allocation failure
/// as "<command>: error: out of memory while running <command> ..." with the memory the process
/// could have (train/memory.hpp); each gives `error_status`.
int run_reporting_errors(const std::string& command, int error_status, const std::function<int()>& body);

/// The bench command. It runs each case in a process of its own: this program (/proc/self/exe)
/// followed by `command_words` (none for the bench app; {"bench"} through run_command_line).
int bench(int argc, char** argv, const std::vector<std::string>& command_words);

}  // namespace mcnn::cli::detail
