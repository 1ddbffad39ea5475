#pragma once
// What the commands of cli.hpp share: the registered models as flags and help text, models built
// and checked from the registry, error reporting. Private to the library (CLI11 stays inside).
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "mcnn/nn/registry.hpp"

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

/// B x example: a batch of `batch` examples of shape `example` (C x H x W).
Shape batch_of(int batch, const Shape& example);
/// Whether the model takes CIFAR-10's examples: 3 x 32 x 32 in, 10 classes out.
bool takes_cifar(const ModelInfo& info);
/// Parses "C,H,W" (1 to 3 positive sizes, commas or 'x' between them); throws naming the text.
Shape parse_example_shape(const std::string& text);

/// Model `name` from the registry, initialised from `rng`, after checking that it maps a batch of
/// `example` to batch x classes (the error names the model and both shapes).
template <class T>
std::unique_ptr<Module<T>> checked_model(const std::string& name, Rng& rng, const Shape& example);

/// The summary text of model `name` for a batch of one `example`, conv layers set to `conv`
/// ("auto" keeps the model's own paths). Shared by `summary` and `train --summary`.
std::string model_summary(const std::string& name, const std::string& conv, std::uint64_t seed, const Shape& example);

/// Keeps freed memory blocks for reuse instead of handing them back to the kernel: a training step
/// allocates the same large buffers every time, and fresh pages cost a fault each.
void keep_freed_memory();

/// Runs `body` and returns its status; an mcnn::Error or a filesystem error is printed to stderr
/// as "<command>: error: <what>" and gives `error_status`.
int run_reporting_errors(const std::string& command, int error_status, const std::function<int()>& body);

/// The bench command. It runs each case in a process of its own: this program (/proc/self/exe)
/// followed by `command_words` (none for the bench app; {"bench"} through run_command_line).
int bench(int argc, char** argv, const std::vector<std::string>& command_words);

}  // namespace mcnn::cli::detail
