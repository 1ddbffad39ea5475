#pragma once
// A training run described by settings (the train command line, config.json) and run on CIFAR-10:
// the model from the registry, SGD, the data split and normalisation, then fit().
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "mcnn/data/cifar10.hpp"
#include "mcnn/nn/registry.hpp"
#include "mcnn/ops/correlate2d.hpp"
#include "mcnn/optim/adam.hpp"
#include "mcnn/optim/schedule.hpp"
#include "mcnn/optim/sgd.hpp"
#include "mcnn/train/trainer.hpp"

namespace mcnn {

struct TrainConfig {
    std::string model = "simple";    // a registered model (registry.hpp)
    ModelOptions model_options;      // its options (ModelOption; those not given: the defaults);
                                     // config.json: model_options, optional
    int epochs = 2;
    int batch = 4;
    SgdOptions sgd{.lr = 0.001, .momentum = 0.9};
    std::uint64_t seed = 0;          // weights, shuffling and the validation split
    int report_every = 2000;         // batches between the notebook's loss reports
    std::size_t validation = 0;      // training images held out for per-epoch validation (0: use test)
    bool final_test = true;          // with validation: the test set once after the last epoch (tune's
                                     // trials: false, the test set is never seen); config.json: optional
    std::string conv = "auto";       // conv path of every conv layer (conv_settings()): "auto" keeps the model's own
    std::string normalization = "notebook";  // "notebook": (x - 0.5) / 0.5; "dataset": per-channel mean/std
    std::size_t max_batches = 0;     // per epoch, 0 = all (quick runs and tests)
    int eval_batch = 500;
    bool plots = true;
    std::filesystem::path run_dir;
    bool reset_optimizer = false;    // with resume: parameters only, the optimiser starts afresh (not in the JSON)
    bool detect_anomaly = false;     // FitOptions::detect_anomaly; a run-time switch, not in config.json
    data::Augmentation augment;      // of the training batches (FitOptions::augment); config.json: crop_pad,
                                     // crop_padding, flip, cutout (each optional: older files mean none)
    Tta tta = Tta::none;             // of the final report (FitOptions::tta); config.json: tta (optional)
    // Optimiser and schedule (config.json files written before these fields read with these defaults).
    // sgd.lr and sgd.weight_decay are every optimiser's; momentum, dampening and nesterov SGD's only;
    // sgd.decoupled_weight_decay: SGD's decay p -= lr wd p (Adam: L2 in the gradient; AdamW: decoupled).
    std::string optimizer = "sgd";   // "sgd", "adam" or "adamw"
    double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // Adam and AdamW
    double lr_scale_1d = 1;          // learning-rate multiplier of 1-D parameters (biases, batch-norm)
    double weight_decay_1d = -1;     // weight decay of 1-D parameters; < 0: the optimiser's
    std::string schedule = "none";   // "none", "warmup-cosine", "onecycle", "step" (see schedule_of)
    double warmup = 0;               // epochs of linear warm-up (onecycle: the peak's epoch)
    double schedule_epochs = 0;      // the schedule's length in epochs; 0: the run's epochs when it starts
    double start_factor = 0.2;       // onecycle: the factor at epoch 0
    double final_factor = 0;         // warmup-cosine, onecycle: the factor at the schedule's end
    double step_every = 1, step_gamma = 0.1;  // step: x gamma every this many epochs
    std::string group_1d = "";       // which parameters lr_scale_1d / weight_decay_1d apply to: a name
                                     // pattern ('*' any run, name_matches); empty: every 1-D parameter
    double label_smoothing = 0;      // of the training loss (FitOptions::label_smoothing)
    int eval_every = 1;              // epochs between evaluations (FitOptions::eval_every; 0: the end only)
    int lookahead_every = 0;         // steps between lookahead pulls (optim/lookahead.hpp); 0: none
    double lookahead_start = 3;      // epochs before the first pull
    double lookahead_base = 0.95, lookahead_power = 3;  // rho = base^every (step / run's steps)^power

    std::string to_json() const;
    /// Parses what to_json wrote; throws naming the field that is missing or wrong.
    static TrainConfig from_json(const std::string& text);
    /// Throws on settings that cannot work (epochs < 1, batch < 1, unknown model, ...).
    void validate() const;
};

/// The schedule `c` describes (c.schedule, warmup, schedule_epochs or epochs, ...); throws naming the
/// setting when they do not fit (e.g. a warm-up not shorter than the schedule).
Schedule schedule_of(const TrainConfig& c);
/// The optimiser `c` describes over `params` (with the 1-D parameter group when it changes anything).
std::unique_ptr<Optimizer<float>> optimizer_of(const TrainConfig& c, std::vector<Parameter<float>*> params);
/// The optimiser names TrainConfig::optimizer takes: sgd, adam, adamw; and the schedules.
const std::vector<std::string>& optimizer_names();
const std::vector<std::string>& schedule_names();

/// The conv settings of a run: "auto" (every conv layer keeps the path its model gave it), then
/// the names of the paths (conv_path_names()).
std::vector<std::string> conv_settings();
/// Checks a conv setting; run folders written before the paths were renamed say "fast" and
/// "reference", read as "automatic" and "correlate2d". Throws listing the settings.
std::string normalized_conv_setting(const std::string& setting);

/// Trains as `config` says on `data`, writing the run folder (config.run_dir). With `resume`,
/// continues the run there from its checkpoint. The model must take 3 x 32 x 32 images. With
/// `parallel`, this process is one rank of a data-parallel run (FitOptions::parallel).
/// `after_evaluation` is FitOptions::after_evaluation (tune's early stopping).
TrainResult train(const TrainConfig& config, const data::Cifar10& data, bool resume, std::FILE* out = stdout,
                  const DataParallel& parallel = {},
                  const std::function<bool(int epoch, const Evaluation&)>& after_evaluation = {});

}  // namespace mcnn
