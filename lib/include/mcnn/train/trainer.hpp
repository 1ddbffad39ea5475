#pragma once
// The training loop: batches, a fresh tape per step, SGD, the notebook's reports, evaluation after
// every epoch, and a run folder:
//   config.json             the settings of the run (what --resume reads back)
//   summary.txt             the model summary
//   log.csv                 one row per report and per evaluation (see LogRow)
//   checkpoint.safetensors  parameters + SGD momentum + progress, written atomically each epoch
//   curves.png              loss and accuracy against step, redrawn during training
//   metrics.json            final test metrics, per-class accuracy, confusion matrix, speed
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "mcnn/data/cifar10.hpp"
#include "mcnn/optim/sgd.hpp"
#include "mcnn/train/metrics.hpp"

namespace mcnn {

struct TrainConfig {
    std::string model = "simple";
    int epochs = 2;
    int batch = 4;
    SgdOptions sgd{.lr = 0.001, .momentum = 0.9};
    std::uint64_t seed = 0;          // weights, shuffling and the validation split
    int report_every = 2000;         // batches between the notebook's loss reports
    std::size_t validation = 0;      // training images held out for per-epoch validation (0: use test)
    ConvPath conv = ConvPath::automatic;
    std::string normalization = "notebook";  // "notebook": (x - 0.5) / 0.5; "dataset": per-channel mean/std
    std::size_t max_batches = 0;     // per epoch, 0 = all (quick runs and tests)
    int eval_batch = 500;
    bool plots = true;
    std::filesystem::path run_dir;

    std::string to_json() const;
    /// Parses what to_json wrote; throws naming the field that is missing or wrong.
    static TrainConfig from_json(const std::string& text);
    /// Throws on settings that cannot work (epochs < 1, batch < 1, unknown model, ...).
    void validate() const;
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
    Evaluation test;
    int epochs_done = 0;
    long steps = 0;
    long train_images = 0;
    double train_seconds = 0;  // time in training steps only
    double wall_seconds = 0;   // this invocation, everything included
    std::vector<LogRow> log;
    double train_images_per_second() const { return train_seconds > 0 ? static_cast<double>(train_images) / train_seconds : 0; }
};

/// Trains as `config` says on `data`, writing the run folder. With `resume`, continues the run in
/// config.run_dir from its checkpoint (parameters, momentum, epoch and step restored; the batch
/// order of every epoch is a function of the seed and the epoch, so it is the same as unbroken).
TrainResult train(const TrainConfig& config, const data::Cifar10& data, bool resume, std::FILE* out = stdout);

/// Saves / restores a model and its optimiser (tensors "model/<param>" and "sgd/momentum/<param>";
/// `metadata` is stored beside them). Loading checks that every parameter is present with its
/// shape and fails naming the first that is not.
void save_checkpoint(const std::filesystem::path& path, Model<float>& model, Sgd<float>& sgd,
                     const std::map<std::string, std::string>& metadata);
std::map<std::string, std::string> load_checkpoint(const std::filesystem::path& path, Model<float>& model, Sgd<float>* sgd);

/// Reads log.csv back (for resuming and plotting).
std::vector<LogRow> read_log(const std::filesystem::path& csv);

}  // namespace mcnn
