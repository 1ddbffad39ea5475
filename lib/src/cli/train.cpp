// train: trains a registered model on CIFAR-10. With no flags: the notebook's SimpleCNN run (SGD
// lr 0.001, momentum 0.9, batch 4, 2 epochs).
#include <omp.h>

#include <algorithm>
#include <ctime>
#include <filesystem>

#include <fmt/format.h>

#include "common.hpp"
#include "mcnn/cli.hpp"
#include "mcnn/train/config.hpp"
#include "../util/files.hpp"

namespace mcnn::cli {
namespace {

/// What the train command line holds besides the TrainConfig.
struct TrainFlags {
    TrainConfig config;
    std::string data_dir, run_dir, resume_dir;
    int threads = 0, shards = 1;
    std::string reduction = "fast";
    bool no_plots = false, summary_only = false, reset_optimizer = false, detect_anomaly = false;
    std::string program = "train";  // how this command was started (argv[0]), for the resume hint
    std::vector<std::string> given;  // the flags on the command line ("--lr", ...)
    bool was_given(const std::string& flag) const { return std::find(given.begin(), given.end(), flag) != given.end(); }
};

/// The flags --resume takes besides itself: they do not change what the run computes. Every other
/// flag is refused with --resume, never silently ignored.
const std::vector<std::string> resume_flags{"--epochs",          "--eval-batch",     "--threads", "--data",  "--no-plots",
                                            "--reset-optimizer", "--detect-anomaly", "--shards",  "--reduce"};

/// A run folder's config.json: a regular file (a FIFO would block the reader) of at most 1 MiB.
std::string read_run_config(const std::filesystem::path& run_dir) {
    try {
        return files::read_regular_file(run_dir / "config.json", "the run's settings", std::uint64_t(1) << 20);
    } catch (const Error& e) {
        fail("cannot resume {}: {}", run_dir.string(), e.what());
    }
}

}  // namespace

namespace detail {

/// --crop-pad, --crop-padding, --flip, --cutout, --tta (data/augment.hpp, train/metrics.hpp).
void add_augmentation_options(CLI::App& app, TrainConfig& c) {
    using detail::add_integer_flag;
    add_integer_flag(app, "--crop-pad", c.augment.crop_pad, "augmentation: translate each training image by up to this "
                                                            "many pixels each way (random crop of the padded image; 0: none)", 0);
    app.add_option_function<std::string>("--crop-padding", [&c](const std::string& v) { c.augment.padding = data::padding_from_name(v); },
                                         "what --crop-pad uncovers: reflect (mirrored pixels) or zero")
        ->default_str("reflect")->check(CLI::IsMember({"reflect", "zero"}));
    app.add_option_function<std::string>("--flip", [&c](const std::string& v) { c.augment.flip = data::flip_mode_from_name(v); },
                                         "augmentation: horizontal flips, none, random (each image, each epoch, 1/2) or "
                                         "alternate (airbench: each image flipped every other epoch, from a random start)")
        ->default_str("none")->check(CLI::IsMember({"none", "random", "alternate"}));
    add_integer_flag(app, "--cutout", c.augment.cutout, "augmentation: zero a random square of this side in each "
                                                        "training image (0: none)", 0);
    app.add_option_function<std::string>("--tta", [&c](const std::string& v) { c.tta = tta_from_name(v); },
                                         "test-time augmentation of the final evaluation: none, flip (mean of the logits of "
                                         "the image and its mirror) or flip-translate (airbench94: the image and its mirror "
                                         "1/4 each, shifted by (-1,-1) and (+1,+1) with their mirrors 1/8 each)")
        ->default_str("none")->check(CLI::IsMember({"none", "flip", "flip-translate"}));
}

/// --optimizer, its settings, the 1-D parameters' group and the learning-rate schedule.
void add_optimizer_options(CLI::App& app, TrainConfig& c) {
    using detail::add_number_flag;
    const detail::NumberRange positive{.min = 0, .above_min = true}, non_negative{.min = 0};
    app.add_option("--optimizer", c.optimizer, "sgd (PyTorch's SGD), adam or adamw (PyTorch's Adam and AdamW)")
        ->capture_default_str()->check(CLI::IsMember(optimizer_names()));
    app.add_flag("--decoupled-weight-decay", c.sgd.decoupled_weight_decay, "SGD: p -= lr * wd * p apart from the gradient");
    add_number_flag(app, "--beta1", c.beta1, "Adam(W) beta1", non_negative);
    add_number_flag(app, "--beta2", c.beta2, "Adam(W) beta2", non_negative);
    add_number_flag(app, "--eps", c.eps, "Adam(W) eps (added to sqrt(v))", positive);
    add_number_flag(app, "--lr-scale-1d", c.lr_scale_1d, "learning-rate multiplier of 1-D parameters (biases, batch norm)", positive);
    app.add_option("--group-1d", c.group_1d, "the parameters --lr-scale-1d and --weight-decay-1d apply to: a name pattern, "
                                             "'*' for any run of characters (\"*norm*.bias\"); default: every 1-D parameter");
    add_number_flag(app, "--weight-decay-1d", c.weight_decay_1d, "weight decay of 1-D parameters (default: --weight-decay)",
                    non_negative);
    detail::add_integer_flag(app, "--lookahead", c.lookahead_every, "lookahead of the weights and batch-norm statistics every this many "
                                                            "steps (airbench: 5; 0: none); see --lookahead-start", 0);
    add_number_flag(app, "--lookahead-start", c.lookahead_start, "epochs before the lookahead's first pull (airbench: 3)",
                    non_negative);
    add_number_flag(app, "--label-smoothing", c.label_smoothing, "label smoothing of the training loss (PyTorch's; airbench: 0.2)",
                    detail::NumberRange{.min = 0, .max = 1});
    app.add_option("--schedule", c.schedule, "learning-rate schedule: none (constant, after --warmup if given), warmup-cosine, "
                                             "onecycle (--start-factor up to 1 at epoch --warmup, down to --final-factor), step "
                                             "(x --step-gamma every --step-every epochs)")
        ->capture_default_str()->check(CLI::IsMember(schedule_names()));
    add_number_flag(app, "--warmup", c.warmup, "epochs of linear warm-up (onecycle: the peak's epoch; fractions allowed)", non_negative);
    add_number_flag(app, "--schedule-epochs", c.schedule_epochs, "the schedule's length in epochs (default: --epochs)", non_negative);
    add_number_flag(app, "--start-factor", c.start_factor, "onecycle: the lr factor at the start", non_negative);
    add_number_flag(app, "--final-factor", c.final_factor, "warmup-cosine, onecycle: the lr factor at the end", non_negative);
    add_number_flag(app, "--step-every", c.step_every, "step: epochs between decays", positive);
    add_number_flag(app, "--step-gamma", c.step_gamma, "step: the factor of each decay", positive);
}

void add_training_options(CLI::App& app, TrainConfig& c) {
    using detail::add_integer_flag, detail::add_number_flag;
    const detail::NumberRange positive{.min = 0, .above_min = true}, non_negative{.min = 0};
    detail::add_model_option(app, c.model, "model to train (its input must be CIFAR-10's 3 x 32 x 32)")->capture_default_str();
    add_model_option_flag(app, c.model_options);
    add_integer_flag(app, "--epochs", c.epochs, "passes over the training set", 1);
    add_integer_flag(app, "--batch", c.batch, "images per mini-batch, at most the training set (checked with the memory "
                                              "it needs before the first step)", 1);
    add_number_flag(app, "--lr", c.sgd.lr, "base learning rate (of SGD, Adam or AdamW)", positive);
    add_number_flag(app, "--momentum", c.sgd.momentum, "SGD momentum", non_negative);
    add_number_flag(app, "--weight-decay", c.sgd.weight_decay, "weight decay: SGD and Adam add wd * p to the gradient (L2); "
                                                               "AdamW and SGD with --decoupled-weight-decay shrink p by lr * wd * p",
                    non_negative);
    app.add_flag("--nesterov", c.sgd.nesterov, "Nesterov momentum (SGD)");
    add_optimizer_options(app, c);
    add_integer_flag(app, "--seed", c.seed, "seed for weights, shuffling and the validation split", 0);
    add_integer_flag(app, "--report-every", c.report_every, "batches between loss reports (the notebook: 2000)", 1);
    add_integer_flag(app, "--validation", c.validation, "training images held out to validate each epoch (0: test set)", 0);
    app.add_option("--conv", c.conv, "conv implementation: plain (the formulas' loops, slow), correlate2d (loops of the "
                                    "vectorised correlate2d), im2col (im2col + GEMM), winograd (Winograd F(4x4,3x3) and "
                                    "F(4x4,5x5); models with only 3x3 and 5x5 stride-1 convs), automatic (im2col; correlate2d "
                                    "for layers with < 8 output channels, winograd for stride-1 layers with >= 16 channels "
                                    "in and out and outputs of 4x4 or more), or auto: the model's default (correlate2d "
                                    "for manual, automatic for the others)")
        ->capture_default_str()->check(CLI::IsMember(conv_settings()));
    app.add_option("--normalization", c.normalization, "notebook: (x-0.5)/0.5; dataset: per-channel mean/std")
        ->capture_default_str()->check(CLI::IsMember({"notebook", "dataset"}));
    add_integer_flag(app, "--max-batches", c.max_batches, "stop each epoch after this many batches (0: all)", 0);
    add_integer_flag(app, "--eval-batch", c.eval_batch, "images per batch when evaluating", 1);
    add_integer_flag(app, "--eval-every", c.eval_every, "epochs between evaluations of the test (or validation) set; 0: "
                                                        "the test set only once, after the last epoch", 0);
    add_augmentation_options(app, c);
}

}  // namespace detail

namespace {

void add_run_options(CLI::App& app, TrainFlags& f) {
    detail::add_data_option(app, f.data_dir);
    auto* run_opt = app.add_option("--run-dir", f.run_dir, "run folder (default: runs/<model>-<date>-<time>)");
    app.add_option("--resume", f.resume_dir, "continue the run in this folder from its last checkpoint "
                                             "(its settings are kept: with it only --epochs for a new total, --eval-batch, "
                                             "--threads, --data, --no-plots, --reset-optimizer, --detect-anomaly, --shards, --reduce)")
        ->excludes(run_opt);
    detail::add_integer_flag(app, "--threads", f.threads,
                             "OpenMP threads (0: every core; more than the cores is capped to them, with a notice; a conv "
                             "layer splits its images between them, and work too small to split stays on one)", 0);
    detail::add_integer_flag(app, "--shards", f.shards,
                             "compute each process's share of a batch in this many parts one after another, their gradients "
                             "summed (gradient accumulation: the memory of one part; with batch norm each part normalises "
                             "with its own statistics)", 1);
    app.add_option("--reduce", f.reduction, "under mpirun: how the ranks' gradients are summed, fast (MPI_Allreduce) or ordered "
                                            "(in rank order: N processes then end bit for bit where 1 process with --shards N "
                                            "does, for models without batch norm)")
        ->capture_default_str()->check(CLI::IsMember({"fast", "ordered"}));
    app.add_flag("--no-plots", f.no_plots, "do not draw curves.png");
    app.add_flag("--reset-optimizer", f.reset_optimizer, "with --resume: load the parameters only and start the "
                                                         "optimiser's state afresh (for a checkpoint that lacks it; "
                                                         "the run then differs from an unbroken one)");
    app.add_flag("--summary", f.summary_only, "print the model summary and exit");
    app.add_flag("--detect-anomaly", f.detect_anomaly, "check every value and gradient of each training step and stop at "
                                                       "the first NaN or inf, naming the op that made it (slower)");
    app.footer("Writes to the run folder: config.json, summary.txt, log.csv, checkpoint.safetensors (each epoch), "
               "curves.png, metrics.json. Ctrl-C (SIGINT) or SIGTERM stops after the current step and saves that point "
               "(exit 130 or 143; --resume goes on from there, as if never stopped); a second one stops at once. "
               "Get the data with scripts/download-cifar10.sh.\n\n" + detail::model_table());
}

/// The run's settings: the command line's, or with --resume the run folder's, where --epochs sets a
/// new total and --eval-batch, --no-plots apply (said on the output).
TrainConfig settings(TrainFlags& f) {
    TrainConfig c = f.config;
    c.plots = !f.no_plots;
    if (f.resume_dir.empty()) {
        c.run_dir = f.run_dir.empty() ? std::filesystem::path("runs") / (c.model + "-" + detail::timestamp())
                                      : std::filesystem::path(f.run_dir);
    } else {
        c = TrainConfig::from_json(read_run_config(f.resume_dir));
        if (f.was_given("--epochs")) c.epochs = f.config.epochs;
        if (f.was_given("--eval-batch") && c.eval_batch != f.config.eval_batch) {
            fmt::print("Resuming with --eval-batch {} (the run evaluated in batches of {})\n", f.config.eval_batch, c.eval_batch);
            c.eval_batch = f.config.eval_batch;
        }
        if (f.no_plots && c.plots) fmt::print("Resuming with --no-plots: curves.png is no longer drawn\n");
        if (f.no_plots) c.plots = false;
        c.reset_optimizer = f.reset_optimizer;
        c.run_dir = f.resume_dir;
    }
    c.detect_anomaly = f.detect_anomaly;  // of this invocation, also with --resume (not in config.json)
    c.validate();
    return c;
}

int run(TrainFlags& f, Communicator* world) {
    if (!f.resume_dir.empty())
        detail::refuse_on_resume(f.given, resume_flags, "the run's settings (config.json in the run folder)",
                                 " (--epochs sets a new total)");
    if (f.reset_optimizer && f.resume_dir.empty()) fail("--reset-optimizer applies with --resume only");
    if (f.summary_only) {
        const TrainConfig& c = f.config;
        fmt::print("{}", detail::model_summary(c.model, c.conv, c.seed, model_info(c.model).input, c.model_options));
        return 0;
    }
    const TrainConfig c = settings(f);
    // A model that cannot train on CIFAR-10 fails here, naming itself, before the data is read.
    const ModelInfo& info = model_info(c.model);
    if (!detail::takes_cifar(info))
        fail("model '{}' takes examples of shape {} with {} classes, but CIFAR-10 has 3 x 32 x 32 images in 10 classes",
             c.model, info.input.str(), info.classes);
    Rng probe_rng(c.seed);
    (void)detail::checked_model<float>(c.model, probe_rng, info.input, c.model_options);
    omp_set_num_threads(detail::capped_threads(f.threads, "train"));
    const DataParallel parallel{world, reduction_from_name(f.reduction), f.shards};
    const bool leader = parallel.rank() == 0;
    const auto dir = data::find_cifar10(f.data_dir);
    if (leader) fmt::print("Loading CIFAR-10 from {}\n", dir.string());
    const data::Cifar10 cifar = data::load_cifar10(dir);
    const TrainResult result = train(c, cifar, !f.resume_dir.empty(), leader ? stdout : nullptr, parallel);
    if (result.stopped_by_signal) return detail::stopped_status(f.program, result.stopped_by_signal, "run", c.run_dir, leader);
    return 0;
}

}  // namespace

int train(int argc, char** argv) {
    CLI::App app{"Train a CNN on CIFAR-10 with ManualCNN. Defaults reproduce the notebook's first run.", argv[0]};
    TrainFlags flags;
    if (argc > 0 && argv[0]) flags.program = argv[0];
    detail::add_training_options(app, flags.config);
    add_run_options(app, flags);
    CLI11_PARSE(app, argc, argv);
    for (const CLI::Option* option : app.get_options())
        if (option->count() > 0) flags.given.push_back(option->get_name());
    detail::keep_freed_memory();
    std::unique_ptr<Communicator> world;
    const int status = detail::run_reporting_errors("train", 1, [&] {
        world = detail::mpi_world_for("train");
        return run(flags, world && world->size() > 1 ? world.get() : nullptr);
    });
    // The other ranks would wait for this one for ever: an error ends the whole job.
    if (status == 1 && world && world->size() > 1) world->abort(fmt::format("train: rank {} failed (its error is above)", world->rank()));
    return status;
}

}  // namespace mcnn::cli
