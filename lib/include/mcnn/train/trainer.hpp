#pragma once
// fit(): the training loop for any model, optimiser and dataset. Per step: a batch, a fresh tape,
// forward, softmax cross-entropy, backward, the optimiser's step. Per report: the notebook's line
// ("[1,  2000] loss: 2.190") and a log row. Per epoch: evaluation, a checkpoint, the curves.
// With a run folder:
//   config.json             the caller's settings (FitOptions::config_json, when given)
//   summary.txt             the model summary
//   log.csv                 one row per report and per evaluation (see LogRow)
//   checkpoint.safetensors  parameters + optimiser state + progress, written atomically each epoch
//   curves.png              loss and accuracy against step, redrawn during training
//   metrics.json            final metrics, per-class accuracy, confusion matrix, speed
// With `resume`, fit continues the run in the folder from its checkpoint: the batch order of every
// epoch is a function of the seed and the epoch, so the result is the same as an unbroken run.
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "mcnn/data/dataset.hpp"
#include "mcnn/nn/module.hpp"
#include "mcnn/optim/optimizer.hpp"
#include "mcnn/train/metrics.hpp"

namespace mcnn {

struct FitOptions {
    int epochs = 1;
    int batch = 32;
    std::uint64_t seed = 0;          // the batch order
    int report_every = 2000;         // batches between the notebook's loss reports
    std::size_t max_batches = 0;     // per epoch, 0 = all (quick runs and tests)
    int eval_batch = 500;
    std::string eval_name = "test";  // what the per-epoch evaluation set is ("validation", "test")
    /// A final report on this set after the last epoch, when it is not the evaluation set (the test
    /// set after validating on a held-out split); may be null.
    const data::Dataset* test = nullptr;

    std::filesystem::path run_dir;   // empty: no run folder (no checkpoints, curves or metrics)
    bool resume = false;             // continue the run in run_dir
    bool plots = true;               // draw curves.png
    std::string model_name = "model";  // stored in the checkpoint; resume refuses another model's
    std::string config_json;         // the caller's settings: written to config.json and the checkpoint
    std::string title;               // curves title; default: model name, optimiser, batch
    std::FILE* out = stdout;         // progress and reports (null: silent)
    /// Anomaly mode on every training step's tape (Tape::set_detect_anomaly): the first NaN or inf
    /// in a forward value or a gradient stops the run with AnomalyError naming the op, its place on
    /// the tape, the shapes and the element, and "at epoch E, batch B (step S)".
    bool detect_anomaly = false;
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
};

struct TrainResult {
    Evaluation test;   // the last evaluation: of options.test when given, else of eval_data
    int epochs_done = 0;
    long steps = 0;
    long train_images = 0;
    double train_seconds = 0;  // time in training steps only
    double wall_seconds = 0;   // this invocation, everything included
    std::vector<LogRow> log;
    double train_images_per_second() const { return train_seconds > 0 ? static_cast<double>(train_images) / train_seconds : 0; }
};

/// Trains `model` with `optimizer` (built over model.parameters()) on `train_data`, evaluating on
/// `eval_data` after every epoch. Throws before training when the datasets' example shapes differ,
/// the model cannot take them, or its output is not batch x classes; when the run folder already
/// holds a run (without resume) or holds none (with resume); and when the loss stops being finite.
TrainResult fit(Module<float>& model, Optimizer<float>& optimizer, const data::Dataset& train_data,
                const data::Dataset& eval_data, const FitOptions& options);

/// Saves / restores a model and its optimiser's state (tensors "model/<param>" and the
/// optimiser's state names; `metadata` is stored beside them, with "model" = model_name).
/// Loading checks everything before changing anything: every parameter present with its shape,
/// the state's shapes, the model name (unless `model_name` is empty); it fails naming the first
/// problem and leaves the model as it was.
void save_checkpoint(const std::filesystem::path& path, Module<float>& model, Optimizer<float>* optimizer,
                     const std::string& model_name, const std::map<std::string, std::string>& metadata);
std::map<std::string, std::string> load_checkpoint(const std::filesystem::path& path, Module<float>& model,
                                                   Optimizer<float>* optimizer, const std::string& model_name);

/// Reads log.csv back (for resuming and plotting).
std::vector<LogRow> read_log(const std::filesystem::path& csv);

}  // namespace mcnn
