#pragma once
// Hyper-parameter search: trials of a registered model on a validation split, hopeless ones
// stopped early (ASHA), resumable, with a results table and pictures (build/apps/tune, cli.hpp).
//
// A search folder holds:
//   search.json        the search (space, method, seed, fixed settings) and every trial's state,
//                      rewritten atomically after each epoch of a trial
//   trial-NNN/         each trial's run folder (train's: config.json, log.csv, checkpoint, curves)
//   results.csv        the trials sorted by validation accuracy, with their values
//   curves.png         every trial's validation accuracy against epoch
//   accuracy-vs-hyperparameters.png  each trial's last validation accuracy against each dimension
//   best-trial-NNN/    with retrain_best: the best trial's settings trained on the whole training
//                      set, the test set evaluated once at the end
//
// A dimension is written NAME=KIND:ARGS on tune's command line (--space):
//   lr=log:1e-4:1e-1          log-uniform in [lo, hi] (lo > 0)
//   momentum=linear:0.5:0.99  uniform in [lo, hi]
//   batch=int:4:128           an integer, uniform in [lo, hi]
//   batch=choice:4,16,64      one of the values (numbers or names: optimizer=choice:sgd,adam)
//   model.conv1=int:4:32      an option the model declares (registry.hpp's ModelOption)
// Trial k's value of dimension d is a function of (seed, k, d) alone, the same with every standard
// library, so a search that is stopped and started again draws the same trials.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "mcnn/train/config.hpp"

namespace mcnn::tune {

enum class Kind { log, linear, integer, choice };

struct Dimension {
    std::string name;
    Kind kind = Kind::linear;
    double lo = 0, hi = 0;             // log, linear, integer
    std::vector<std::string> choices;  // choice
    /// "lr=log:0.0001:0.1" (what parse_dimension reads back).
    std::string str() const;
};

/// One value of a trial: a number, or a name for a choice of names.
struct Value {
    std::string name;  // the dimension
    std::string text;  // as written in config.json's field (a number's shortest round-trip text, or a name)
};

/// Reads NAME=KIND:ARGS; throws naming the text and what is wrong (unknown kind, lo >= hi, a log
/// bound <= 0, an empty choice, a name apply() does not know).
Dimension parse_dimension(const std::string& text);

/// Trial `trial`'s values (one per dimension, in order), drawn from (seed, trial) alone.
std::vector<Value> sample(const std::vector<Dimension>& space, std::uint64_t seed, std::uint64_t trial);

/// The grid: `points` values per continuous dimension (log-spaced for log, ends included; integers
/// rounded and repeated ones dropped), every choice of a choice; all combinations, the first
/// dimension varying slowest. Throws when points < 2 or the grid exceeds `max_trials`.
std::vector<std::vector<Value>> grid(const std::vector<Dimension>& space, int points, std::size_t max_trials);

/// Sets `value` in `config` (lr, momentum, weight_decay, batch, epochs, optimizer, schedule, warmup,
/// label_smoothing, lr_scale_1d, weight_decay_1d, beta1, beta2, crop_pad, cutout, flip, and
/// model.NAME: config.model_options[NAME], checked by the model when the config is); throws naming an unknown one and
/// the known names, or a value the field cannot hold.
void apply(TrainConfig& config, const Value& value);

/// The names apply() knows.
const std::vector<std::string>& tunable_names();

// ---- early stopping: asynchronous successive halving (ASHA) ----------------------------------------
// Rungs at min_epochs, min_epochs * eta, min_epochs * eta^2, ... epochs. A trial that reaches a rung
// goes on only when its validation accuracy there is among the best ceil(n / eta) of the n trials
// that have reached that rung so far, itself included; else it is stopped ("pruned"). Trials run
// one after another, so the first trial at a rung always goes on.

struct Pruning {
    bool enabled = true;
    int eta = 3;         // >= 2
    int min_epochs = 1;  // the first rung, >= 1
};

/// The rungs below `epochs` (a trial's last epoch is never a rung).
std::vector<int> rungs(const Pruning& pruning, int epochs);
/// Whether a trial with `accuracy` at a rung goes on, given the accuracies of the trials that
/// reached the rung before it (ties count in its favour).
bool promoted(double accuracy, const std::vector<double>& others, int eta);

// ---- the search -----------------------------------------------------------------------------------

struct SearchOptions {
    TrainConfig base;                  // every trial's settings before its values; base.validation > 0
    std::vector<Dimension> space;
    std::string method = "random";     // "random" (samples from seed) or "grid"
    int grid_points = 3;               // grid: values per continuous dimension
    int trials = 0;                    // the most trials; 0: the whole grid, or random trials until the budget
    double budget_minutes = 0;         // 0: none. No trial starts after it; the running one stops at
                                       // the end of its first epoch past it ("cut")
    std::uint64_t seed = 0;            // the random samples (every trial trains with base.seed: the
                                       // same validation split, initial weights and batch order)
    Pruning pruning;
    bool retrain_best = false;         // then train the best trial's settings on all 50,000 images
    std::filesystem::path dir;         // the search folder
    std::FILE* out = stdout;           // progress (null: silent)
};

struct Trial {
    int id = 0;                        // 1-based: folder trial-NNN
    std::vector<Value> values;         // one per dimension
    std::string status = "running";    // running, done, pruned, cut, failed
    int epochs = 0;                    // planned (base.epochs, or its own value)
    std::vector<double> accuracy, loss;  // validation, after each epoch done
    double seconds = 0;                // wall time, over every invocation
    std::string error;                 // failed: the message
    /// The validation accuracy after the last epoch done (NaN when none).
    double last_accuracy() const;
};

/// The best trial's settings trained on the whole training set, tested once.
struct Retrain {
    int trial = 0;
    std::string status = "running";    // running, done
    double test_accuracy = 0, test_loss = 0, seconds = 0;
};

struct SearchResult {
    std::vector<Trial> trials;         // by id
    std::optional<Retrain> best;
    double seconds = 0;                // the search's time over every invocation
    int stopped_by_signal = 0;         // SIGINT or SIGTERM stopped a trial (saved; resume goes on)
    /// The trials sorted by last validation accuracy, best first (ranked()).
    std::vector<const Trial*> ranked() const;
};

/// `trials` sorted by last validation accuracy, best first (those without one last; ties by id).
std::vector<const Trial*> ranked(const std::vector<Trial>& trials);

/// Throws naming the first setting of `options` that cannot work: the method, no validation split,
/// a random search with neither trials nor budget, ASHA's eta < 2, a dimension given twice, the
/// fixed settings (TrainConfig::validate), or a model.NAME dimension the model refuses at an end
/// or choice. run_search checks this first; the tune command before reading the data.
void check_options(const SearchOptions& options);

/// Runs a search in options.dir (created; refused when it already holds a search.json). With
/// `resume`, goes on with the search there: finished trials are kept, an interrupted one resumes
/// from its checkpoint (or starts again when it had none), then new trials as the options allow.
/// The options must then be the stored ones (read_search_options), where trials, budget_minutes,
/// retrain_best and out may differ. A trial whose training throws (it diverged, ...) is marked
/// failed with the message and the search goes on. Throws on bad options, a folder another
/// process searches in, or a search.json that does not read back.
SearchResult run_search(const SearchOptions& options, const data::Cifar10& data, bool resume);

/// The options stored in `dir`/search.json (out = stdout); throws naming the file and field.
SearchOptions read_search_options(const std::filesystem::path& dir);

/// results.csv's text: header, then one row per trial, best first.
std::string results_csv(const SearchResult& result, const std::vector<Dimension>& space);
/// The printed table (the same rows, aligned, the retrained best's test accuracy beside it).
std::string results_table(const SearchResult& result, const std::vector<Dimension>& space);

}  // namespace mcnn::tune
