#pragma once
// fit(): the training loop for any model, optimiser and dataset. Per step: a batch, a fresh tape,
// forward, softmax cross-entropy, backward, the optimiser's step. Per report: the notebook's line
// ("[1,  2000] loss: 2.190") and a log row. Per epoch: evaluation, a checkpoint, the curves.
// With a run folder:
//   config.json             the caller's settings (FitOptions::config_json, when given)
//   summary.txt             the model summary
//   log.csv                 one row per report and per evaluation (see LogRow)
//   checkpoint.safetensors  parameters + optimiser state + progress, written atomically each epoch
//                           (and when a signal stops the run, in the middle of an epoch)
//   curves.png              loss and accuracy against step, redrawn during training
//   metrics.json            final metrics, per-class accuracy, confusion matrix, speed
//   .lock                   locked (flock) while a process trains in the folder; holds its PID
// With `resume`, fit continues the run in the folder from its checkpoint: the batch order of every
// epoch is a function of the seed and the epoch, so the result is the same as an unbroken run,
// also from a checkpoint saved in the middle of an epoch (it holds the batch to continue from).
//
// Signals (FitOptions::handle_signals): during the epochs, SIGINT or SIGTERM lets the step in
// progress finish, saves a checkpoint of that point (epoch, batch, the partly summed report) and
// returns with TrainResult::stopped_by_signal set (during an evaluation: after that epoch's
// checkpoint); a second signal ends the process at once.
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mcnn/data/augment.hpp"
#include "mcnn/data/dataset.hpp"
#include "mcnn/distributed.hpp"
#include "mcnn/nn/module.hpp"
#include "mcnn/optim/optimizer.hpp"
#include "mcnn/optim/schedule.hpp"
#include "mcnn/train/metrics.hpp"

namespace mcnn {

struct FitOptions {
    int epochs = 1;
    int batch = 32;
    std::uint64_t seed = 0;          // the batch order
    int report_every = 2000;         // batches between the notebook's loss reports
    std::size_t max_batches = 0;     // per epoch, 0 = all (quick runs and tests)
    int eval_batch = 500;
    /// Epochs between evaluations of eval_data (and the last epoch's); 0: none while training, the
    /// final report alone evaluates, once (a test set evaluated once per run, at its end).
    int eval_every = 1;
    std::string eval_name = "test";  // what the per-epoch evaluation set is ("validation", "test")
    /// A final report on this set after the last epoch, when it is not the evaluation set (the test
    /// set after validating on a held-out split); may be null.
    const data::Dataset* test = nullptr;

    std::filesystem::path run_dir;   // empty: no run folder (no checkpoints, curves or metrics)
    bool resume = false;             // continue the run in run_dir
    /// With resume: load the parameters only and start the optimiser's state afresh (needed when the
    /// checkpoint lacks it; the run then differs from an unbroken one).
    bool reset_optimizer = false;
    bool plots = true;               // draw curves.png
    std::string model_name = "model";  // stored in the checkpoint; resume refuses another model's
    std::string config_json;         // the caller's settings: written to config.json and the checkpoint
    std::string title;               // curves title; default: model name, optimiser, batch
    std::FILE* out = stdout;         // progress and reports (null: silent)
    /// While the epochs run, SIGINT and SIGTERM stop training after the step in progress (a
    /// checkpoint of that point is saved, see TrainResult::stopped_by_signal) instead of ending
    /// the process; the handlers found before are restored when fit returns. A signal the process
    /// ignores stays ignored. false: fit leaves the signals alone.
    bool handle_signals = true;
    /// Anomaly mode on every training step's tape (Tape::set_detect_anomaly): the first NaN or inf
    /// in a forward value or a gradient stops the run with AnomalyError naming the op, its place on
    /// the tape, the shapes and the element, and "at epoch E, batch B (step S)".
    bool detect_anomaly = false;
    /// Augmentation of every training batch after it is filled (default none: batches as filled),
    /// drawn from (seed, epoch, each example's index in train_data); see data/augment.hpp. Needs
    /// C x H x W examples.
    data::Augmentation augment;
    /// Test-time augmentation of the final report (options.test when given, else eval_data
    /// evaluated once more after the last epoch); the per-epoch evaluations stay plain (a view
    /// costs a whole evaluation). Needs C x H x W examples.
    Tta tta = Tta::none;
    /// Label smoothing eps of the training loss (softmax_cross_entropy's; the evaluations' loss
    /// stays plain cross-entropy).
    double label_smoothing = 0;
    /// The learning-rate schedule: before optimiser step s (0-based over the run, so a resumed run
    /// goes on where it was), fit sets optimizer.set_lr_factor(schedule.at_step(s, batches per epoch)).
    Schedule schedule;
    /// Data-parallel training (distributed.hpp): every rank calls fit with the same model, options
    /// and data; each computes its share of every batch (in `shards` parts), the gradients are
    /// summed over the ranks before each step. Rank 0 alone writes the run folder and prints; the
    /// others take its state (a new run's initial weights, a resumed run's checkpoint) before the
    /// first step. An exception on any rank ends the whole job (Communicator::abort). Every batch,
    /// the last one included, needs at least one row per part (ranks x shards).
    DataParallel parallel;
    /// Called after each evaluation of eval_data during the epochs (eval_every), once the epoch's
    /// checkpoint is saved, with the epoch (1-based) and the evaluation. Returning false stops the
    /// run there, before the next epoch (TrainResult::stopped_by_caller; no final report, the
    /// checkpoint holds the point reached and resume goes on from it). After the last epoch the
    /// return value is ignored. tune's early stopping of hopeless trials (tune.hpp) is this.
    std::function<bool(int epoch, const Evaluation&)> after_evaluation;
};

/// One line of log.csv.
struct LogRow {
    std::string kind;   // "train" (a report), "validation" or "test" (an evaluation)
    int epoch = 0;      // 1-based
    long step = 0;      // optimiser steps so far
    long images = 0;    // training images seen so far
    double loss = 0, accuracy = 0;
    double images_per_second = 0;  // training speed (train rows) or evaluation speed
    double elapsed = 0;            // seconds of training so far (evaluations excluded)
    double lr = 0;                 // the optimiser's current_lr() at the row (0 in logs older than the column)
};

struct TrainResult {
    Evaluation test;   // the last evaluation: of options.test when given, else of eval_data
    int epochs_done = 0;
    long steps = 0;
    long train_images = 0;
    double train_seconds = 0;  // time in training steps only
    double wall_seconds = 0;   // this invocation, everything included
    int processes = 1;             // ranks that trained together (FitOptions::parallel)
    double allreduce_seconds = 0;  // this invocation: time in the gradients' all-reduce
    double allreduce_bytes = 0;    // this invocation: gradient bytes each rank all-reduced
    std::vector<LogRow> log;
    /// SIGINT or SIGTERM when a signal stopped the run early (FitOptions::handle_signals): the run
    /// folder's checkpoint then holds the point reached (epochs_done whole epochs, plus
    /// batch_in_epoch batches of the next) and resume goes on from there; `test` is empty and
    /// metrics.json not written. 0 when the run went to the end.
    int stopped_by_signal = 0;
    std::size_t batch_in_epoch = 0;
    /// FitOptions::after_evaluation returned false after epoch `epochs_done`: the run stopped there
    /// (checkpoint saved, `test` empty, metrics.json not written).
    bool stopped_by_caller = false;
    double train_images_per_second() const { return train_seconds > 0 ? static_cast<double>(train_images) / train_seconds : 0; }
};

/// Trains `model` with `optimizer` (built over model.parameters()) on `train_data`, evaluating on
/// `eval_data` after every epoch. Throws before training when the datasets' example shapes differ,
/// the model cannot take them, or its output is not batch x classes; when the batch is larger than
/// the training set, or its step needs more memory than this process can get (an estimate from
/// the model's recorded values, against MemAvailable and ulimit -v); when the run folder already
/// holds a run (without resume) or holds none (with resume), or another process trains in it (its
/// lock names the PID); when the checkpoint's progress does not fit the run (epochs_done above
/// options.epochs, step or images beyond what its epochs can hold); and when a file cannot be
/// written (the message names it and the system's reason; the previous checkpoint stays as it was).
/// Throws when the run diverges: the loss, a parameter or the optimiser's state stops being finite
/// (checked after every epoch, before it is evaluated and saved). A non-finite checkpoint is never
/// written: the message names the first non-finite tensor and element, the epoch and step, and the
/// last good checkpoint, which is left as it was.
TrainResult fit(Module<float>& model, Optimizer<float>& optimizer, const data::Dataset& train_data,
                const data::Dataset& eval_data, const FitOptions& options);

/// One element that is not finite: the tensor's checkpoint name ("model/<param>" or an optimiser
/// state name) and shape, the element's flat index and its value.
struct NonFiniteValue {
    std::string tensor;
    Shape shape;
    std::size_t index = 0;
    float value = 0;
    /// "model/fc2.weight holds nan at element 17 (index [0, 17] of [84, 120])".
    std::string str() const;
};

/// The first NaN or infinity of `tensor` (called `name` in messages); nullopt when all are finite.
std::optional<NonFiniteValue> first_non_finite(const std::string& name, const Tensor<float>& tensor);
/// The first NaN or infinity among the model's parameters (in parameter order), then its buffers
/// ("model/<buffer>", e.g. batch norm's running statistics, in buffer order), then among the
/// optimiser's state (in state order; empty tensors hold nothing); nullopt when all are finite.
std::optional<NonFiniteValue> first_non_finite(Module<float>& model, Optimizer<float>* optimizer);

/// Saves / restores a model and its optimiser's state (tensors "model/<param>", "model/<buffer>" and the
/// optimiser's state names; `metadata` is stored beside them, with "model" = model_name, and
/// "optimizer_state_empty": a JSON list of the state tensors that were empty, so not stored).
/// Saving refuses a model or state holding NaN or infinity (nothing is written).
/// Loading checks everything before changing anything: every parameter and buffer present with its shape and
/// finite values; with an optimiser, every state tensor present (or listed as empty) with its shape
/// and finite values; no tensor the model and optimiser do not know ("model/..." always; others only
/// with an optimiser: without one, the state is not read); the model name (unless `model_name` is
/// empty). It fails naming the problem and the tensors, and leaves the model and optimiser as they were.
void save_checkpoint(const std::filesystem::path& path, Module<float>& model, Optimizer<float>* optimizer,
                     const std::string& model_name, const std::map<std::string, std::string>& metadata);
std::map<std::string, std::string> load_checkpoint(const std::filesystem::path& path, Module<float>& model,
                                                   Optimizer<float>* optimizer, const std::string& model_name);

/// Reads log.csv back (for resuming and plotting). Strict: a regular file (a FIFO is refused without
/// opening it), the exact header, 9 cells per row (or the header of logs written before the lr
/// column and 8 cells per row, read with lr 0), each a number in its column's range (the message
/// names the line and column); CRLF line endings are read as LF; a last line cut short by a crash
/// (no newline, does not parse) is skipped.
std::vector<LogRow> read_log(const std::filesystem::path& csv);

/// The rows of a log.csv held in memory (`text`, the whole file), with the same checks; `name` is
/// what messages call it (read_log = read the file + parse_log; fuzz/log.cpp calls this).
std::vector<LogRow> parse_log(std::string_view text, const std::string& name);

/// The text of a log.csv holding `rows` (header, then one line per row), as fit writes it.
std::string format_log(const std::vector<LogRow>& rows);

}  // namespace mcnn
