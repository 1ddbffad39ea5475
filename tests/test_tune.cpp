// tune (mcnn/train/tune.hpp). tune_space: parsing and its errors, samples within bounds and
// reproducible, the grid, applying values to a TrainConfig. tune_search: ASHA's rule, a tiny search
// end to end (killed by SIGTERM in its second trial and resumed: the same trials, statuses and
// validation curves as an unbroken search), the best retrained and tested once, failures, the budget.
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <cmath>
#include <csignal>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "mcnn/nn/models.hpp"
#include "mcnn/nn/registry.hpp"
#include "mcnn/train/tune.hpp"
#include "support.hpp"

using namespace mcnn;
using namespace mcnn::test;

BOOST_AUTO_TEST_SUITE(tune_space)

BOOST_AUTO_TEST_CASE(dimensions_parse_and_refuse_bad_text) {
    const tune::Dimension lr = tune::parse_dimension("lr=log:1e-4:0.1");
    BOOST_TEST(lr.name == "lr");
    BOOST_TEST((lr.kind == tune::Kind::log));
    BOOST_TEST(lr.lo == 1e-4);
    BOOST_TEST(lr.hi == 0.1);
    BOOST_TEST(lr.str() == "lr=log:0.0001:0.1");
    BOOST_TEST(tune::parse_dimension(lr.str()).str() == lr.str());
    BOOST_TEST(tune::parse_dimension("optimizer=choice:sgd,adam").choices == (std::vector<std::string>{"sgd", "adam"}));
    CHECK_MESSAGE_HAS(error_of([] { tune::parse_dimension("lr"); }), "expected NAME=KIND:ARGS");
    CHECK_MESSAGE_HAS(error_of([] { tune::parse_dimension("colour=linear:0:1"); }), "unknown name 'colour'; tune knows");
    CHECK_MESSAGE_HAS(error_of([] { tune::parse_dimension("lr=cubic:0:1"); }), "unknown kind 'cubic'");
    CHECK_MESSAGE_HAS(error_of([] { tune::parse_dimension("lr=log:0:1"); }), "a log scale needs LO > 0, got 0");
    CHECK_MESSAGE_HAS(error_of([] { tune::parse_dimension("momentum=linear:0.9:0.5"); }), "LO must be below HI");
    CHECK_MESSAGE_HAS(error_of([] { tune::parse_dimension("batch=int:1.5:8"); }), "int bounds must be integers");
    CHECK_MESSAGE_HAS(error_of([] { tune::parse_dimension("momentum=linear:0.5:2"); }), "tune: momentum");
    CHECK_MESSAGE_HAS(error_of([] { tune::parse_dimension("optimizer=choice:sgd,rmsprop"); }), "'rmsprop' is not one of sgd, adam, adamw");
    CHECK_MESSAGE_HAS(error_of([] { tune::parse_dimension("optimizer=choice:sgd,,adam"); }), "an empty choice");
}

BOOST_AUTO_TEST_CASE(samples_stay_in_bounds_and_depend_on_seed_and_trial_only) {
    const std::vector<tune::Dimension> space{tune::parse_dimension("lr=log:1e-4:1e-1"), tune::parse_dimension("batch=int:4:6"),
                                             tune::parse_dimension("optimizer=choice:sgd,adam,adamw")};
    std::set<std::string> batches, optimizers;
    double lowest = 1, highest = 0;
    for (std::uint64_t t = 0; t < 300; ++t) {
        const std::vector<tune::Value> v = tune::sample(space, 7, t);
        BOOST_REQUIRE_EQUAL(v.size(), 3u);
        const double lr = std::stod(v[0].text);
        BOOST_TEST((lr >= 1e-4 && lr <= 1e-1));
        lowest = std::min(lowest, lr);
        highest = std::max(highest, lr);
        batches.insert(v[1].text);
        optimizers.insert(v[2].text);
        BOOST_TEST(tune::sample(space, 7, t)[0].text == v[0].text);  // the same trial again: the same values
    }
    BOOST_TEST(lowest < 3e-4);  // log-uniform: a sixth of the draws fall in each decade's half
    BOOST_TEST(highest > 3e-2);
    BOOST_TEST((batches == std::set<std::string>{"4", "5", "6"}));
    BOOST_TEST(optimizers.size() == 3u);
    BOOST_TEST(tune::sample(space, 8, 0)[0].text != tune::sample(space, 7, 0)[0].text);
}

BOOST_AUTO_TEST_CASE(the_grid_is_every_combination) {
    const std::vector<tune::Dimension> space{tune::parse_dimension("lr=log:1e-3:1e-1"), tune::parse_dimension("batch=int:4:5"),
                                             tune::parse_dimension("optimizer=choice:sgd,adam")};
    const auto trials = tune::grid(space, 3, 100);
    BOOST_REQUIRE_EQUAL(trials.size(), 3u * 2u * 2u);  // batch 4, 4.5 -> 5, 5: repeats dropped
    BOOST_TEST(trials[0][0].text == "0.001");
    BOOST_TEST(std::abs(std::stod(trials[4][0].text) - 0.01) < 1e-12);  // the log scale's middle
    BOOST_TEST(trials[11][0].text == "0.1");
    BOOST_TEST(trials[1][2].text == "adam");  // the last dimension varies fastest
    CHECK_MESSAGE_HAS(error_of([&] { tune::grid(space, 3, 11); }), "more than 11 trials");
    CHECK_MESSAGE_HAS(error_of([&] { tune::grid(space, 1, 100); }), "at least 2 points");
}

BOOST_AUTO_TEST_CASE(values_set_the_config) {
    TrainConfig c;
    tune::apply(c, {"lr", "0.02"});
    tune::apply(c, {"momentum", "0.8"});
    tune::apply(c, {"batch", "32"});
    tune::apply(c, {"optimizer", "adamw"});
    tune::apply(c, {"label_smoothing", "0.1"});
    BOOST_TEST(c.sgd.lr == 0.02);
    BOOST_TEST(c.sgd.momentum == 0.8);
    BOOST_TEST(c.batch == 32);
    BOOST_TEST(c.optimizer == "adamw");
    BOOST_TEST(c.label_smoothing == 0.1);
    CHECK_MESSAGE_HAS(error_of([&] { tune::apply(c, {"batch", "0"}); }), "tune: batch");
    CHECK_MESSAGE_HAS(error_of([&] { tune::apply(c, {"depth", "3"}); }), "unknown setting 'depth'");
}

BOOST_AUTO_TEST_SUITE_END()

namespace {

namespace fs = std::filesystem;

// Training forward passes (batches of 8) of every SignalNet so far; at number raise_at the
// process sends itself SIGTERM (0: never). fit lets that step finish and saves the point reached.
std::atomic<long> training_forwards{0};
std::atomic<long> raise_at{0};

template <class T>
struct SignalNet : SimpleCNN<T> {
    explicit SignalNet(Rng& rng) : SimpleCNN<T>(rng) {}
    Var<T> forward(const Var<T>& x) override {
        if (x.value().shape()[0] == 8 && ++training_forwards == raise_at) std::raise(SIGTERM);
        return SimpleCNN<T>::forward(x);
    }
};

void register_signal_net() {
    static const bool once = [] {
        register_model<SignalNet>("tune-signal", "SimpleCNN that sends SIGTERM at a chosen training step (tests)");
        return true;
    }();
    (void)once;
}

tune::SearchOptions tiny_search(const fs::path& dir) {
    register_signal_net();
    tune::SearchOptions o;
    o.base.model = "tune-signal";
    o.base.epochs = 3;
    o.base.batch = 8;
    o.base.sgd = {.lr = 0.01, .momentum = 0.9};
    o.base.validation = 40;  // of the 240 synthetic training images: 25 batches of 8 per epoch
    o.base.report_every = 1000;
    o.base.eval_batch = 50;
    o.base.plots = false;
    o.space = {tune::parse_dimension("lr=log:0.001:0.1"), tune::parse_dimension("momentum=linear:0.5:0.9")};
    o.trials = 3;
    o.seed = 5;
    o.pruning = {.enabled = true, .eta = 2, .min_epochs = 1};
    o.dir = dir;
    o.out = nullptr;
    return o;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(tune_search)

BOOST_AUTO_TEST_CASE(asha_rungs_and_promotions) {
    BOOST_TEST((tune::rungs({.enabled = true, .eta = 3, .min_epochs = 1}, 30) == std::vector<int>{1, 3, 9, 27}));
    BOOST_TEST((tune::rungs({.enabled = true, .eta = 3, .min_epochs = 1}, 27) == std::vector<int>{1, 3, 9}));  // not the last epoch
    BOOST_TEST((tune::rungs({.enabled = true, .eta = 2, .min_epochs = 2}, 10) == std::vector<int>{2, 4, 8}));
    BOOST_TEST(tune::rungs({.enabled = false, .eta = 3, .min_epochs = 1}, 30).empty());
    BOOST_TEST(tune::promoted(10, {}, 3));              // the first at a rung goes on
    BOOST_TEST(!tune::promoted(50, {60}, 3));           // 2 reached it: the best 1 goes on
    BOOST_TEST(tune::promoted(60, {50}, 3));
    BOOST_TEST(tune::promoted(50, {50}, 3));            // ties count in its favour
    BOOST_TEST(tune::promoted(50, {60, 40, 30}, 3));    // 4 reached it: the best ceil(4/3) = 2 go on
    BOOST_TEST(!tune::promoted(40, {60, 50, 30}, 3));
    BOOST_TEST(tune::promoted(40, {60, 50, 30, 20}, 2));  // eta 2: the best 3 of 5
    BOOST_TEST(!tune::promoted(40, {60, 50, 30, 20}, 3));  // eta 3: the best 2 of 5
}

BOOST_AUTO_TEST_CASE(a_killed_search_resumes_to_the_unbroken_result) {
    const data::Cifar10 cifar = synthetic_cifar();
    TempDir tmp("tune");
    training_forwards = 0;
    raise_at = 0;
    const tune::SearchResult unbroken = tune::run_search(tiny_search(tmp.path / "unbroken"), cifar, false);
    BOOST_REQUIRE_EQUAL(unbroken.trials.size(), 3u);
    BOOST_TEST(unbroken.stopped_by_signal == 0);
    BOOST_TEST(unbroken.trials[0].status == "done");  // the first trial at every rung goes on
    BOOST_TEST(unbroken.trials[0].accuracy.size() == 3u);
    for (const tune::Trial& t : unbroken.trials) {
        BOOST_TEST((t.status == "done" || t.status == "pruned"));
        BOOST_TEST(t.accuracy.size() == (t.status == "done" ? 3u : 1u));  // eta 2 from epoch 1: rungs 1, 2
        // a trial never sees the test set: its log holds validation rows only, its config says so
        const std::string log = read_text(tmp.path / "unbroken" / fmt::format("trial-{:03}", t.id) / "log.csv");
        BOOST_TEST(log.find("\ntest,") == std::string::npos);
        BOOST_TEST(log.find("\nvalidation,") != std::string::npos);
        const auto config = nlohmann::json::parse(read_text(tmp.path / "unbroken" / fmt::format("trial-{:03}", t.id) / "config.json"));
        BOOST_TEST(config["final_test"] == false);
        BOOST_TEST(config["validation"] == 40);
    }

    // The same search, SIGTERM in the second trial's second epoch (trial 1: 3 epochs of 25 batches).
    training_forwards = 0;
    raise_at = 3 * 25 + 25 + 7;
    const tune::SearchResult stopped = tune::run_search(tiny_search(tmp.path / "killed"), cifar, false);
    raise_at = 0;
    BOOST_TEST(stopped.stopped_by_signal == SIGTERM);
    BOOST_REQUIRE_EQUAL(stopped.trials.size(), 2u);
    BOOST_TEST(stopped.trials[0].status == "done");
    BOOST_TEST(stopped.trials[1].status == "running");
    BOOST_TEST(fs::exists(tmp.path / "killed" / "trial-002" / "checkpoint.safetensors"));

    tune::SearchOptions again = tune::read_search_options(tmp.path / "killed");
    again.out = nullptr;
    const tune::SearchResult resumed = tune::run_search(again, cifar, true);
    BOOST_TEST(resumed.stopped_by_signal == 0);
    BOOST_REQUIRE_EQUAL(resumed.trials.size(), unbroken.trials.size());
    for (std::size_t i = 0; i < unbroken.trials.size(); ++i) {
        const tune::Trial &a = unbroken.trials[i], &b = resumed.trials[i];
        BOOST_TEST(a.status == b.status);
        BOOST_TEST(a.accuracy == b.accuracy, boost::test_tools::per_element());  // bit for bit
        // the epochs before the stop are read back from the trial's log.csv, where losses have 6 decimals
        for (std::size_t e = 0; e < a.loss.size() && e < b.loss.size(); ++e) BOOST_TEST(std::abs(a.loss[e] - b.loss[e]) <= 5e-7);
        BOOST_TEST(a.loss.size() == b.loss.size());
        for (std::size_t d = 0; d < a.values.size(); ++d) BOOST_TEST(a.values[d].text == b.values[d].text);
    }
    // results.csv: the same rows but for the seconds
    auto without_seconds = [](const std::string& csv) {
        std::string out;
        std::istringstream in(csv);
        for (std::string line; std::getline(in, line);) {
            std::vector<std::string> cells;
            std::istringstream row(line);
            for (std::string c; std::getline(row, c, ',');) cells.push_back(c);
            cells.erase(cells.begin() + 7);
            for (const std::string& c : cells) out += c + ",";
            out += "\n";
        }
        return out;
    };
    BOOST_TEST(without_seconds(read_text(tmp.path / "killed" / "results.csv")) ==
               without_seconds(read_text(tmp.path / "unbroken" / "results.csv")));
}

BOOST_AUTO_TEST_CASE(the_best_is_retrained_and_tested_once_and_a_failed_trial_does_not_stop_the_search) {
    const data::Cifar10 cifar = synthetic_cifar();
    TempDir tmp("tune");
    tune::SearchOptions o = tiny_search(tmp.path / "grid");
    o.method = "grid";
    o.space = {tune::parse_dimension("lr=choice:0.01,1e6")};  // the second diverges
    o.trials = 0;                                             // the whole grid
    o.retrain_best = true;
    const tune::SearchResult r = tune::run_search(o, cifar, false);
    BOOST_REQUIRE_EQUAL(r.trials.size(), 2u);
    BOOST_TEST(r.trials[0].status == "done");
    BOOST_TEST(r.trials[1].status == "failed");
    CHECK_MESSAGE_HAS(r.trials[1].error, "diverged");
    BOOST_REQUIRE(r.best.has_value());
    BOOST_TEST(r.best->trial == 1);
    BOOST_TEST(r.best->status == "done");
    const fs::path best = tmp.path / "grid" / "best-trial-001";
    const auto config = nlohmann::json::parse(read_text(best / "config.json"));
    BOOST_TEST(config["validation"] == 0);  // the whole training set
    BOOST_TEST(config["lr"] == 0.01);
    const auto metrics = nlohmann::json::parse(read_text(best / "metrics.json"));
    BOOST_TEST(metrics["test_accuracy"].get<double>() == r.best->test_accuracy);
    BOOST_TEST(metrics["test_images"] == 60);
    const std::string log = read_text(best / "log.csv");
    std::size_t test_rows = 0;
    for (std::size_t at = log.find("\ntest,"); at != std::string::npos; at = log.find("\ntest,", at + 1)) ++test_rows;
    BOOST_TEST(test_rows == 1u);  // the test set once, at the end
    // the table ranks the failed trial last and shows the retrained test accuracy
    const std::string table = tune::results_table(r, o.space);
    CHECK_MESSAGE_HAS(table, "best trial 1 retrained on the whole training set: test accuracy");
    const std::string csv = tune::results_csv(r, o.space);
    BOOST_TEST(csv.find("1,1,done,3,3,") != std::string::npos);
    BOOST_TEST(csv.find("2,2,failed,0,3,,,") != std::string::npos);
    // resumed afterwards: nothing left to do, the best is not retrained again
    tune::SearchOptions again = tune::read_search_options(tmp.path / "grid");
    again.out = nullptr;
    const tune::SearchResult same = tune::run_search(again, cifar, true);
    BOOST_TEST(same.best->test_accuracy == r.best->test_accuracy);
    BOOST_TEST(same.trials.size() == 2u);
}

BOOST_AUTO_TEST_CASE(the_budget_cuts_the_running_trial_and_starts_no_other) {
    const data::Cifar10 cifar = synthetic_cifar();
    TempDir tmp("tune");
    // a search stopped by SIGTERM in its first trial's first epoch, then resumed with a budget that
    // is already spent: the interrupted trial goes on until its epoch ends, then it is cut
    training_forwards = 0;
    raise_at = 10;
    const tune::SearchResult stopped = tune::run_search(tiny_search(tmp.path / "budget"), cifar, false);
    raise_at = 0;
    BOOST_REQUIRE_EQUAL(stopped.trials.size(), 1u);
    BOOST_TEST(stopped.trials[0].status == "running");
    tune::SearchOptions again = tune::read_search_options(tmp.path / "budget");
    again.out = nullptr;
    again.budget_minutes = 1e-9;
    const tune::SearchResult r = tune::run_search(again, cifar, true);
    BOOST_REQUIRE_EQUAL(r.trials.size(), 1u);
    BOOST_TEST(r.trials[0].status == "cut");
    BOOST_TEST(r.trials[0].accuracy.size() == 1u);
    BOOST_TEST(r.seconds >= stopped.seconds);  // the search's time adds up over the invocations
}

BOOST_AUTO_TEST_CASE(bad_searches_are_refused) {
    const data::Cifar10 cifar = synthetic_cifar();
    TempDir tmp("tune");
    tune::SearchOptions o = tiny_search(tmp.path / "s");
    o.base.validation = 0;
    CHECK_MESSAGE_HAS(error_of([&] { tune::run_search(o, cifar, false); }), "validation split");
    o = tiny_search(tmp.path / "s");
    o.trials = 0;
    CHECK_MESSAGE_HAS(error_of([&] { tune::run_search(o, cifar, false); }), "needs a number of trials or a budget");
    o = tiny_search(tmp.path / "s");
    o.space.push_back(o.space[0]);
    CHECK_MESSAGE_HAS(error_of([&] { tune::run_search(o, cifar, false); }), "dimension 'lr' is given twice");
    o = tiny_search(tmp.path / "s");
    o.base.model = "simple";
    o.space = {tune::parse_dimension("model.depth=int:1:3")};
    CHECK_MESSAGE_HAS(error_of([&] { tune::run_search(o, cifar, false); }), "has no option 'depth'; its options: conv1");
    o.space = {tune::parse_dimension("model.conv1=int:0:8")};
    CHECK_MESSAGE_HAS(error_of([&] { tune::run_search(o, cifar, false); }), "option conv1 must be from 1 to 1024, got 0");
    BOOST_TEST(!fs::exists(tmp.path / "s"));  // refused before anything is written
    o = tiny_search(tmp.path / "s");
    o.trials = 1;
    o.base.epochs = 1;
    tune::run_search(o, cifar, false);
    CHECK_MESSAGE_HAS(error_of([&] { tune::run_search(o, cifar, false); }), "already holds a search");
    tune::SearchOptions changed = tune::read_search_options(tmp.path / "s");
    changed.seed = 6;
    CHECK_MESSAGE_HAS(error_of([&] { tune::run_search(changed, cifar, true); }), "differ from the stored ones");
    CHECK_MESSAGE_HAS(error_of([&] { tune::run_search(tiny_search(tmp.path / "none"), cifar, true); }), "search.json");
    {
        std::ofstream(tmp.path / "s" / "search.json") << "{\"format\": \"mcnn-tune 1\", \"search\": {}}";
    }
    CHECK_MESSAGE_HAS(error_of([&] { tune::read_search_options(tmp.path / "s"); }), "field 'method' is missing");
}

BOOST_AUTO_TEST_CASE(a_search_over_the_models_own_options) {
    const data::Cifar10 cifar = synthetic_cifar();
    TempDir tmp("tune");
    tune::SearchOptions o = tiny_search(tmp.path / "widths");
    o.base.model = "simple";
    o.base.epochs = 1;
    o.method = "grid";
    o.trials = 0;
    o.space = {tune::parse_dimension("model.conv1=choice:4,8")};
    const tune::SearchResult r = tune::run_search(o, cifar, false);
    BOOST_REQUIRE_EQUAL(r.trials.size(), 2u);
    for (int id : {1, 2}) {
        BOOST_TEST(r.trials[static_cast<std::size_t>(id - 1)].status == "done");
        const auto config = nlohmann::json::parse(read_text(tmp.path / "widths" / fmt::format("trial-{:03}", id) / "config.json"));
        BOOST_TEST(config["model_options"]["conv1"] == 4 * id);
        CHECK_MESSAGE_HAS(read_text(tmp.path / "widths" / fmt::format("trial-{:03}", id) / "summary.txt"),
                          fmt::format("[-1, {}, 28, 28]", 4 * id));  // conv1.s output
    }
}

BOOST_AUTO_TEST_SUITE_END()
