// train: trains a registered model on CIFAR-10. With no flags: the notebook's SimpleCNN run (SGD
// lr 0.001, momentum 0.9, batch 4, 2 epochs).
#include <omp.h>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "common.hpp"
#include "mcnn/cli.hpp"
#include "mcnn/train/config.hpp"

namespace mcnn::cli {
namespace {

/// What the train command line holds besides the TrainConfig.
struct TrainFlags {
    TrainConfig config;
    std::string data_dir, run_dir, resume_dir;
    int threads = 0;
    bool no_plots = false, summary_only = false, detect_anomaly = false;
};

std::string timestamp() {
    const std::time_t now = std::time(nullptr);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", std::localtime(&now));
    return buf;
}

std::string read_text(const std::filesystem::path& path) {
    std::ifstream f(path);
    if (!f) fail("cannot read {}", path.string());
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

void add_training_options(CLI::App& app, TrainConfig& c) {
    detail::add_model_option(app, c.model, "model to train (its input must be CIFAR-10's 3 x 32 x 32)")->capture_default_str();
    app.add_option("--epochs", c.epochs, "passes over the training set")->capture_default_str()->check(CLI::PositiveNumber);
    app.add_option("--batch", c.batch, "images per mini-batch")->capture_default_str()->check(CLI::PositiveNumber);
    app.add_option("--lr", c.sgd.lr, "SGD learning rate")->capture_default_str()->check(CLI::PositiveNumber);
    app.add_option("--momentum", c.sgd.momentum, "SGD momentum")->capture_default_str()->check(CLI::NonNegativeNumber);
    app.add_option("--weight-decay", c.sgd.weight_decay, "L2 penalty added to the gradient")->capture_default_str()->check(CLI::NonNegativeNumber);
    app.add_flag("--nesterov", c.sgd.nesterov, "Nesterov momentum");
    app.add_option("--seed", c.seed, "seed for weights, shuffling and the validation split")->capture_default_str();
    app.add_option("--report-every", c.report_every, "batches between loss reports (the notebook: 2000)")
        ->capture_default_str()->check(CLI::PositiveNumber);
    app.add_option("--validation", c.validation, "training images held out to validate each epoch (0: test set)")
        ->capture_default_str();
    app.add_option("--conv", c.conv, "conv implementation: plain (the formulas' loops, slow), correlate2d (loops of the "
                                    "vectorised correlate2d), im2col (im2col + GEMM), automatic (im2col; correlate2d "
                                    "for layers with < 8 output channels), or auto: the model's default (correlate2d "
                                    "for manual, automatic for the others)")
        ->capture_default_str()->check(CLI::IsMember(conv_settings()));
    app.add_option("--normalization", c.normalization, "notebook: (x-0.5)/0.5; dataset: per-channel mean/std")
        ->capture_default_str()->check(CLI::IsMember({"notebook", "dataset"}));
    app.add_option("--max-batches", c.max_batches, "stop each epoch after this many batches (0: all)")->capture_default_str();
    app.add_option("--eval-batch", c.eval_batch, "images per batch when evaluating")->capture_default_str()->check(CLI::PositiveNumber);
}

void add_run_options(CLI::App& app, TrainFlags& f) {
    app.add_option("--data", f.data_dir, "CIFAR-10 folder (else $CIFAR10_DIR, ./data/cifar-10-batches-bin, "
                                         "../shared/cifar10/cifar-10-batches-bin)");
    auto* run_opt = app.add_option("--run-dir", f.run_dir, "run folder (default: runs/<model>-<date>-<time>)");
    app.add_option("--resume", f.resume_dir, "continue the run in this folder from its last checkpoint "
                                             "(its settings are kept; --epochs may raise the total)")
        ->excludes(run_opt);
    app.add_option("--threads", f.threads, "OpenMP threads (0: every core; a conv layer splits its images between them, "
                                           "and work too small to split stays on one)")
        ->capture_default_str()->check(CLI::NonNegativeNumber);
    app.add_flag("--no-plots", f.no_plots, "do not draw curves.png");
    app.add_flag("--summary", f.summary_only, "print the model summary and exit");
    app.add_flag("--detect-anomaly", f.detect_anomaly, "check every value and gradient of each training step and stop at "
                                                       "the first NaN or inf, naming the op that made it (slower)");
    app.footer("Writes to the run folder: config.json, summary.txt, log.csv, checkpoint.safetensors (each epoch), "
               "curves.png, metrics.json. Get the data with scripts/download-cifar10.sh.\n\n" + detail::model_table());
}

/// The run's settings: the command line's, or with --resume the run folder's (--epochs may raise them).
TrainConfig settings(TrainFlags& f, bool epochs_given) {
    TrainConfig c = f.config;
    c.plots = !f.no_plots;
    if (f.resume_dir.empty()) {
        c.run_dir = f.run_dir.empty() ? std::filesystem::path("runs") / (c.model + "-" + timestamp())
                                      : std::filesystem::path(f.run_dir);
    } else {
        c = TrainConfig::from_json(read_text(std::filesystem::path(f.resume_dir) / "config.json"));
        if (epochs_given) c.epochs = f.config.epochs;
        c.run_dir = f.resume_dir;
    }
    c.detect_anomaly = f.detect_anomaly;  // of this invocation, also with --resume (not in config.json)
    c.validate();
    return c;
}

int run(TrainFlags& f, bool epochs_given) {
    if (f.summary_only) {
        const TrainConfig& c = f.config;
        fmt::print("{}", detail::model_summary(c.model, c.conv, c.seed, model_info(c.model).input));
        return 0;
    }
    const TrainConfig c = settings(f, epochs_given);
    // A model that cannot train on CIFAR-10 fails here, naming itself, before the data is read.
    const ModelInfo& info = model_info(c.model);
    if (!detail::takes_cifar(info))
        fail("model '{}' takes examples of shape {} with {} classes, but CIFAR-10 has 3 x 32 x 32 images in 10 classes",
             c.model, info.input.str(), info.classes);
    Rng probe_rng(c.seed);
    (void)detail::checked_model<float>(c.model, probe_rng, info.input);
    omp_set_num_threads(f.threads > 0 ? f.threads : omp_get_num_procs());
    const auto dir = data::find_cifar10(f.data_dir);
    fmt::print("Loading CIFAR-10 from {}\n", dir.string());
    const data::Cifar10 cifar = data::load_cifar10(dir);
    train(c, cifar, !f.resume_dir.empty());
    return 0;
}

}  // namespace

int train(int argc, char** argv) {
    CLI::App app{"Train a CNN on CIFAR-10 with ManualCNN. Defaults reproduce the notebook's first run.", argv[0]};
    TrainFlags flags;
    add_training_options(app, flags.config);
    add_run_options(app, flags);
    CLI11_PARSE(app, argc, argv);
    detail::keep_freed_memory();
    return detail::run_reporting_errors("train", 1, [&] { return run(flags, app.count("--epochs") > 0); });
}

}  // namespace mcnn::cli
