// tune: a hyper-parameter search over a registered model's training settings (mcnn/train/tune.hpp).
#include <omp.h>

#include <algorithm>
#include <filesystem>

#include <fmt/format.h>

#include "common.hpp"
#include "mcnn/cli.hpp"
#include "mcnn/train/tune.hpp"

namespace mcnn::cli {
namespace {

struct TuneFlags {
    TrainConfig config;
    std::vector<std::string> space;
    std::string method = "random";
    int trials = 0, grid_points = 3, eta = 3, min_epochs = 1, threads = 0;
    double budget_minutes = 0;
    std::uint64_t search_seed = 0;
    bool no_pruning = false, retrain_best = false, no_plots = false;
    std::string data_dir, search_dir, resume_dir;
    std::string program = "tune";
    std::vector<std::string> given;
};

/// The flags --resume takes besides itself: what a resumed search may change.
const std::vector<std::string> search_resume_flags{"--trials", "--budget-minutes", "--retrain-best", "--threads", "--data"};

tune::SearchOptions options_of(TuneFlags& f) {
    if (!f.resume_dir.empty()) {
        detail::refuse_on_resume(f.given, search_resume_flags, "the search's settings (search.json in its folder)");
        tune::SearchOptions o = tune::read_search_options(f.resume_dir);
        auto given = [&](const std::string& flag) { return std::find(f.given.begin(), f.given.end(), flag) != f.given.end(); };
        if (given("--trials")) o.trials = f.trials;
        if (given("--budget-minutes")) o.budget_minutes = f.budget_minutes;
        if (given("--retrain-best")) o.retrain_best = true;
        return o;
    }
    tune::SearchOptions o;
    o.base = f.config;
    o.base.plots = !f.no_plots;
    for (const std::string& text : f.space) o.space.push_back(tune::parse_dimension(text));
    o.method = f.method;
    o.grid_points = f.grid_points;
    o.trials = f.trials;
    o.budget_minutes = f.budget_minutes;
    o.seed = f.search_seed;
    o.pruning = {.enabled = !f.no_pruning, .eta = f.eta, .min_epochs = f.min_epochs};
    o.retrain_best = f.retrain_best;
    o.dir = f.search_dir.empty() ? std::filesystem::path("runs") / ("tune-" + o.base.model + "-" + detail::timestamp())
                                 : std::filesystem::path(f.search_dir);
    return o;
}

int run(TuneFlags& f) {
    if (launched_by_mpi())
        fail("tune runs its trials one after another in one process; start it without mpirun (train runs under mpirun)");
    if (std::find(f.given.begin(), f.given.end(), "--eval-every") != f.given.end())
        fail("--eval-every cannot be given to tune: every trial is validated after each epoch (its early stopping needs it)");
    tune::SearchOptions o = options_of(f);
    const ModelInfo& info = model_info(o.base.model);
    if (!detail::takes_cifar(info))
        fail("model '{}' takes examples of shape {} with {} classes, but CIFAR-10 has 3 x 32 x 32 images in 10 classes",
             o.base.model, info.input.str(), info.classes);
    tune::check_options(o);  // before the data is read
    omp_set_num_threads(detail::capped_threads(f.threads, "tune"));
    const auto dir = data::find_cifar10(f.data_dir);
    fmt::print("Loading CIFAR-10 from {}\n", dir.string());
    const data::Cifar10 cifar = data::load_cifar10(dir);
    fmt::print("tune: {} search of {} in {}: {}{}, {}{}\n", o.method, o.base.model, o.dir.string(),
               o.trials > 0 ? fmt::format("up to {} trials", o.trials) : o.method == "grid" ? "every point of the grid" : "trials",
               o.budget_minutes > 0 ? fmt::format(" within {} minutes", o.budget_minutes) : "",
               o.pruning.enabled ? fmt::format("ASHA eta {} from epoch {}", o.pruning.eta, o.pruning.min_epochs) : "no early stopping",
               o.retrain_best ? ", then the best retrained and tested" : "");
    const tune::SearchResult r = tune::run_search(o, cifar, !f.resume_dir.empty());
    if (r.stopped_by_signal) return detail::stopped_status(f.program, r.stopped_by_signal, "search", o.dir);
    return 0;
}

}  // namespace

int tune(int argc, char** argv) {
    CLI::App app{"Search a model's training settings on a validation split (random or grid search, hopeless trials "
                 "stopped early by ASHA), then optionally retrain the best on the whole training set and test it once.",
                 argv[0]};
    TuneFlags f;
    if (argc > 0 && argv[0]) f.program = argv[0];
    f.config.validation = 5000;
    f.config.report_every = 1000000;  // a trial's progress is its epochs' lines
    detail::add_training_options(app, f.config);
    app.add_option("--space", f.space, "a dimension of the search, NAME=KIND:ARGS, repeatable: log:LO:HI (log-uniform), "
                                       "linear:LO:HI, int:LO:HI, choice:A,B,... (e.g. --space lr=log:1e-4:0.1 --space "
                                       "optimizer=choice:sgd,adam). NAME is one of " +
                                           fmt::format("{}", fmt::join(tune::tunable_names(), ", ")) +
                                           ", or model.NAME for an option of the model (listed below); every other setting is the fixed flags' (train's flags)");
    app.add_option("--search", f.method, "random (samples drawn from --search-seed and the trial's number) or grid")
        ->capture_default_str()->check(CLI::IsMember({"random", "grid"}));
    detail::add_integer_flag(app, "--trials", f.trials, "the most trials (0: the whole grid, or random trials until the budget)", 0);
    detail::add_number_flag(app, "--budget-minutes", f.budget_minutes,
                            "no trial starts after this many minutes of search (0: no budget); the running one stops "
                            "at the end of its first epoch past it",
                            {.min = 0});
    detail::add_integer_flag(app, "--grid-points", f.grid_points, "grid: values per continuous dimension (log-spaced for log)", 2, 1000);
    detail::add_integer_flag(app, "--search-seed", f.search_seed, "seed of the random samples (every trial trains with --seed)", 0);
    detail::add_integer_flag(app, "--eta", f.eta, "ASHA: a trial goes on at a rung when in the best 1/eta so far", 2, 1000);
    detail::add_integer_flag(app, "--min-epochs", f.min_epochs, "ASHA: the first rung (then min-epochs * eta^k)", 1);
    app.add_flag("--no-pruning", f.no_pruning, "train every trial for all its epochs");
    app.add_flag("--retrain-best", f.retrain_best, "then train the best trial's settings on the whole training set and "
                                                   "evaluate the test set once");
    detail::add_data_option(app, f.data_dir);
    auto* dir_opt = app.add_option("--search-dir", f.search_dir, "the search folder (default: runs/tune-<model>-<date>-<time>)");
    app.add_option("--resume", f.resume_dir, "go on with the search in this folder (finished trials kept, the interrupted one "
                                             "resumed from its checkpoint); with it only --trials, --budget-minutes, "
                                             "--retrain-best, --threads, --data")
        ->excludes(dir_opt);
    detail::add_integer_flag(app, "--threads", f.threads, "OpenMP threads (0: every core)", 0);
    app.add_flag("--no-plots", f.no_plots, "draw no pictures (trials' curves.png, the search's)");
    app.footer("Writes to the search folder: search.json (the search and every trial, rewritten after each epoch), "
               "trial-NNN/ (each trial's run folder), results.csv, curves.png, accuracy-vs-hyperparameters.png, and with "
               "--retrain-best best-trial-NNN/. Trials never see the test set. Ctrl-C (SIGINT) or SIGTERM stops the "
               "running trial after its current step and saves it (exit 130 or 143; --resume goes on from there).\n\n" +
               detail::model_table());
    CLI11_PARSE(app, argc, argv);
    for (const CLI::Option* option : app.get_options())
        if (option->count() > 0) f.given.push_back(option->get_name());
    detail::keep_freed_memory();
    return detail::run_reporting_errors("tune", 1, [&] { return run(f); });
}

}  // namespace mcnn::cli
