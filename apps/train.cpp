// Trains a CIFAR-10 model. With no flags: the notebook's SimpleCNN run (SGD lr 0.001, momentum 0.9,
// batch 4, 2 epochs). See --help.
#include <malloc.h>
#include <omp.h>

#include <chrono>
#include <ctime>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "mcnn/nn/layers.hpp"
#include "mcnn/nn/registry.hpp"
#include "mcnn/nn/summary.hpp"
#include "mcnn/train/config.hpp"

using namespace mcnn;

namespace {

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

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"Train a CNN on CIFAR-10 with ManualCNN. Defaults reproduce the notebook's first run."};
    TrainConfig c;
    std::string data_dir, run_dir, resume_dir;
    int threads = 0;
    bool no_plots = false, summary_only = false;
    app.add_option("--model", c.model, "model to train: " + fmt::format("{}", fmt::join(model_names(), ", ")))
        ->capture_default_str();
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
    app.add_option("--data", data_dir, "CIFAR-10 folder (else $CIFAR10_DIR, ./data/cifar-10-batches-bin, "
                                       "../shared/cifar10/cifar-10-batches-bin)");
    app.add_option("--run-dir", run_dir, "run folder (default: runs/<model>-<date>-<time>)");
    auto* resume_opt = app.add_option("--resume", resume_dir, "continue the run in this folder from its last checkpoint "
                                                              "(its settings are kept; --epochs may raise the total)");
    app.add_option("--threads", threads, "OpenMP threads (0: every core; a conv layer splits its images between them, "
                                         "and work too small to split stays on one)")
        ->capture_default_str()->check(CLI::NonNegativeNumber);
    app.add_flag("--no-plots", no_plots, "do not draw curves.png");
    app.add_flag("--summary", summary_only, "print the model summary and exit");
    resume_opt->excludes(app.get_option("--run-dir"));
    app.footer("Writes to the run folder: config.json, summary.txt, log.csv, checkpoint.safetensors (each epoch), "
               "curves.png, metrics.json. Get the data with scripts/download-cifar10.sh.");
    CLI11_PARSE(app, argc, argv);

    // Keep freed blocks for reuse instead of handing them back to the kernel: a training step
    // allocates the same large buffers every time, and fresh pages cost a fault each.
    mallopt(M_MMAP_THRESHOLD, 512 << 20);
    mallopt(M_TRIM_THRESHOLD, 1024 << 20);
    try {
        c.plots = !no_plots;
        if (summary_only) {
            Rng rng(c.seed);
            auto model = make_model<float>(c.model, rng);
            if (c.conv != "auto") set_conv_path(*model, conv_path_from_name(c.conv));
            std::vector<int> input{1};
            for (int d : model_info(c.model).input.dims()) input.push_back(d);
            fmt::print("{}", summary(*model, Shape(input), c.model));
            return 0;
        }
        const bool resume = !resume_dir.empty();
        if (resume) {
            const int epochs = c.epochs;
            const bool epochs_given = app.count("--epochs") > 0;
            c = TrainConfig::from_json(read_text(std::filesystem::path(resume_dir) / "config.json"));
            if (epochs_given) c.epochs = epochs;
            c.run_dir = resume_dir;
        } else {
            c.run_dir = run_dir.empty() ? std::filesystem::path("runs") / (c.model + "-" + timestamp()) : std::filesystem::path(run_dir);
        }
        c.validate();
        omp_set_num_threads(threads > 0 ? threads : omp_get_num_procs());
        const auto dir = data::find_cifar10(data_dir);
        fmt::print("Loading CIFAR-10 from {}\n", dir.string());
        const data::Cifar10 cifar = data::load_cifar10(dir);
        train(c, cifar, resume);
        return 0;
    } catch (const Error& e) {
        fmt::print(stderr, "train: error: {}\n", e.what());
        return 1;
    } catch (const std::filesystem::filesystem_error& e) {
        fmt::print(stderr, "train: error: {}\n", e.what());
        return 1;
    }
}
