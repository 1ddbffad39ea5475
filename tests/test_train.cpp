// The training loop, run folder, checkpoints and resume, on a small synthetic CIFAR-like dataset
// whose classes differ by colour (so a few epochs learn it).
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <regex>
#include <thread>

#include <sys/resource.h>

#include "../lib/src/train/memory.hpp"
#include "mcnn/nn/summary.hpp"
#include "mcnn/threads.hpp"
#include "mcnn/train/checkpoint.hpp"
#include "mcnn/nn/models.hpp"
#include "mcnn/train/config.hpp"
#include "support.hpp"

#include <nlohmann/json.hpp>

using namespace mcnn;
using namespace mcnn::test;
namespace fs = std::filesystem;

namespace {

TrainConfig small_config(const fs::path& dir) {
    TrainConfig c;
    c.epochs = 3;
    c.batch = 8;
    c.sgd = {.lr = 0.01, .momentum = 0.9};
    c.report_every = 10;
    c.plots = false;
    c.eval_batch = 50;
    c.run_dir = dir;
    return c;
}

std::string read(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), {}};
}

void write(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::binary | std::ios::trunc) << text; }

/// The error of `f`, run while a FIFO stands at `fifo`. Should `f` open the FIFO and wait for a writer,
/// a writer comes after a second and leaves at once, so that the test fails instead of hanging.
std::string error_with_fifo(const fs::path& fifo, const std::function<void()>& f) {
    const int made = ::mkfifo(fifo.c_str(), 0600);
    const int err = errno;
    BOOST_TEST_REQUIRE(made == 0, "cannot make a FIFO at " << fifo << ": " << std::strerror(err));
    std::atomic<bool> done{false}, waited{false};
    std::thread unblock([&] {
        for (int i = 0; i < 20 && !done; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
        if (done) return;
        const int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);  // succeeds only when a reader waits
        if (fd >= 0) {
            waited = true;
            ::close(fd);
        }
    });
    const std::string msg = error_of(f);
    done = true;
    unblock.join();
    BOOST_TEST(!waited, "something opened the FIFO " << fifo << " and waited on it");
    return msg;
}

/// Where a PoisonedSgd writes a non-finite value: element `index` of `parameter` (or of its momentum
/// buffer) after its `at`-th step (0: never).
struct Poison {
    long at = 0;
    std::string parameter;
    bool in_momentum = false;
    float value = std::numeric_limits<float>::quiet_NaN();
    std::size_t index = 0;
};

/// SGD (lr 0.01, momentum 0.9) with a divergence at a chosen step, which the loss does not show yet.
struct PoisonedSgd : Sgd<float> {
    PoisonedSgd(std::vector<Parameter<float>*> params, const Poison& poison)
        : Sgd<float>(std::move(params), {.lr = 0.01, .momentum = 0.9}), poison(poison) {}
    void step() override {
        Sgd<float>::step();
        if (++steps != poison.at) return;
        for (std::size_t i = 0; i < params_.size(); ++i)
            if (params_[i]->name == poison.parameter)
                (poison.in_momentum ? momentum_buffers()[i] : params_[i]->value)[poison.index] = poison.value;
    }
    Poison poison;
    long steps = 0;
};

/// fit() on the synthetic data with small_config's settings (30 batches of 8 per epoch).
struct SyntheticFit {
    data::Cifar10 cifar = synthetic_cifar();
    data::CifarDataset train_set{cifar.train, data::Normalization::notebook(), cifar.class_names};
    data::CifarDataset test_set{cifar.test, data::Normalization::notebook(), cifar.class_names};

    /// Trains a SimpleCNN of seed 0 with a PoisonedSgd.
    TrainResult run(const fs::path& dir, int epochs, bool resume, const Poison& poison = {}) {
        Rng rng(0);
        SimpleCNN<float> model(rng);
        PoisonedSgd sgd(model.parameters(), poison);
        FitOptions o;
        o.epochs = epochs;
        o.batch = 8;
        o.report_every = 10;
        o.eval_batch = 50;
        o.run_dir = dir;
        o.resume = resume;
        o.plots = false;
        o.model_name = "simple";
        o.out = nullptr;
        return fit(model, sgd, train_set, test_set, o);
    }
};

/// A copy of the checkpoint at `path` with metadata `key` set to `value` (erased when empty).
void set_metadata(const fs::path& path, const std::string& key, const std::string& value) {
    TensorFile f = load_safetensors(path);
    if (value.empty())
        f.metadata.erase(key);
    else
        f.metadata[key] = value;
    save_safetensors(path, f);
}

std::size_t test_rows(const std::vector<LogRow>& log) {
    return static_cast<std::size_t>(std::count_if(log.begin(), log.end(), [](const LogRow& r) { return r.kind == "test"; }));
}

}  // namespace

BOOST_AUTO_TEST_SUITE(training)

BOOST_AUTO_TEST_CASE(summary_counts_every_parameter) {
    Rng rng(0);
    SimpleCNN<float> model(rng);
    const std::string s = summary(model, Shape{1, 3, 32, 32}, "simple");
    BOOST_TEST(contains(s, "Total parameters: 62,006"));
    BOOST_TEST(contains(s, "[-1, 6, 28, 28]"));
    BOOST_TEST(contains(s, "[-1, 16, 5, 5]"));
    BOOST_TEST(contains(s, "48,120"));  // fc1: 400 * 120 + 120
    BOOST_TEST(contains(s, "fc3.weight, fc3.bias"));
    BOOST_TEST(!contains(s, "note:"));  // the graph reads exactly the declared parameters
}

BOOST_AUTO_TEST_CASE(config_round_trips_and_rejects_bad_fields) {
    TrainConfig c;
    c.model = "simple";
    c.epochs = 7;
    c.sgd.lr = 0.0007;
    c.conv = "plain";
    c.validation = 5000;
    const TrainConfig back = TrainConfig::from_json(c.to_json());
    BOOST_TEST(back.epochs == 7);
    BOOST_TEST(back.sgd.lr == 0.0007);
    BOOST_TEST(back.conv == "plain");
    BOOST_TEST(back.validation == 5000u);
    BOOST_TEST(contains(error_of([] { TrainConfig::from_json("{"); }), "not valid JSON"));
    BOOST_TEST(contains(error_of([] { TrainConfig::from_json("{}"); }), "'model'"));
    c.epochs = 0;
    c.run_dir = "x";
    BOOST_TEST(contains(error_of([&] { c.validate(); }), "epochs"));
    c.epochs = 1;
    c.model = "resnet";
    BOOST_TEST(contains(error_of([&] { c.validate(); }), "unknown model 'resnet'"));

    // model options and final_test: round trip; absent from older files (the defaults); checked by the model
    c.model = "simple";
    c.model_options = {{"conv1", 12}, {"fc1", 64}};
    c.final_test = false;
    const TrainConfig with_options = TrainConfig::from_json(c.to_json());
    BOOST_TEST((with_options.model_options == ModelOptions{{"conv1", 12}, {"fc1", 64}}));
    BOOST_TEST(!with_options.final_test);
    BOOST_TEST(!contains(TrainConfig().to_json(), "model_options"));
    nlohmann::json older = nlohmann::json::parse(TrainConfig().to_json());
    older.erase("final_test");
    BOOST_TEST(TrainConfig::from_json(older.dump()).final_test);
    c.model_options = {{"width", 3}};
    BOOST_TEST(contains(error_of([&] { c.validate(); }), "model 'simple' has no option 'width'"));
    older["model_options"] = {{"conv1", "wide"}};
    BOOST_TEST(contains(error_of([&] { TrainConfig::from_json(older.dump()); }), "field 'model_options' 'conv1'"));
}

// The optimiser and schedule settings: round trip, old config.json files (without the fields) read
// with the old defaults (SGD, no schedule), what each setting builds, and clear refusals.
BOOST_AUTO_TEST_CASE(config_optimizer_and_schedule_fields) {
    TrainConfig c;
    c.run_dir = "x";
    c.epochs = 10;
    c.optimizer = "adamw";
    c.sgd = {.lr = 0.003, .momentum = 0, .weight_decay = 0.1};
    c.beta2 = 0.99;
    c.schedule = "onecycle";
    c.warmup = 2;
    c.lr_scale_1d = 64;
    c.weight_decay_1d = 0;
    TrainConfig back = TrainConfig::from_json(c.to_json());
    back.run_dir = "x";  // not in config.json
    BOOST_TEST(back.optimizer == "adamw");
    BOOST_TEST(back.beta2 == 0.99);
    BOOST_TEST(back.schedule == "onecycle");
    BOOST_TEST(back.schedule_epochs == 10.0);  // the run's length when written: --epochs on resume keeps it
    BOOST_TEST(back.lr_scale_1d == 64.0);
    BOOST_TEST(back.weight_decay_1d == 0.0);
    back.validate();
    BOOST_TEST(std::abs(schedule_of(back).at(1) - 0.6) < 1e-15);  // 0.2 -> 1 by epoch 2
    Rng rng(1);
    SimpleCNN<float> model(rng);
    const auto opt = optimizer_of(back, model.parameters());
    BOOST_TEST(contains(opt->describe(), "AdamW lr 0.003 betas 0.9 0.99"));
    BOOST_TEST(contains(opt->describe(), "1-D parameters lr x64, weight decay 0"));
    BOOST_TEST(opt->settings()[1].lr_scale == 64.0);  // conv1.bias
    BOOST_TEST(opt->settings()[0].lr_scale == 1.0);   // conv1.weight

    // a config.json from before these fields: SGD as it was, constant lr
    nlohmann::json old_json = nlohmann::json::parse(TrainConfig().to_json());
    for (const char* key : {"optimizer", "decoupled_weight_decay", "beta1", "beta2", "eps", "lr_scale_1d", "weight_decay_1d", "schedule",
                            "warmup", "schedule_epochs", "start_factor", "final_factor", "step_every", "step_gamma"})
        BOOST_TEST(old_json.erase(key) == 1u, key);
    const std::string old = old_json.dump(2);
    BOOST_TEST(!contains(old, "schedule"));
    const TrainConfig from_old = TrainConfig::from_json(old);
    BOOST_TEST(from_old.optimizer == "sgd");
    BOOST_TEST(from_old.schedule == "none");
    BOOST_TEST(!from_old.sgd.decoupled_weight_decay);
    BOOST_TEST(dynamic_cast<Sgd<float>*>(optimizer_of(from_old, model.parameters()).get()) != nullptr);
    BOOST_TEST((schedule_of(from_old).kind() == Schedule::Kind::constant));

    const auto refused = [&](auto change, const std::string& message) {
        TrainConfig bad = c;
        change(bad);
        BOOST_TEST(contains(error_of([&] { bad.validate(); }), message), message);
    };
    refused([](TrainConfig& b) { b.optimizer = "rmsprop"; }, "unknown optimizer 'rmsprop'; known: sgd, adam, adamw");
    refused([](TrainConfig& b) { b.schedule = "linear"; }, "unknown schedule 'linear'; known: none, warmup-cosine");
    refused([](TrainConfig& b) { b.sgd.nesterov = true; }, "adamw: Nesterov momentum, dampening and decoupled weight decay are SGD settings");
    refused([](TrainConfig& b) { b.warmup = 10; }, "schedule 'onecycle' (warm-up 10 epochs, over 10 epochs)");
    refused([](TrainConfig& b) { b.beta1 = 1; }, "AdamW: betas must be in [0, 1)");
    refused([](TrainConfig& b) { b.lr_scale_1d = 0; }, "1-D parameters' lr scale");
    refused([](TrainConfig& b) { b.schedule = "step"; b.step_gamma = 0; }, "gamma must be > 0");
}

// Numbers in config.json are read strictly: an integer field takes only a JSON integer within its
// range (no truncation of 4.5, no wrap-around of 1e12 or 2^32 + 4, no undefined float-to-int
// conversion of 1e300), a floating-point field only a finite number within its range; each refusal
// names the field and the value.
BOOST_AUTO_TEST_CASE(config_numbers_are_strict) {
    const std::string good = TrainConfig().to_json();
    const auto with = [&](const std::string& key, const std::string& raw) {
        const std::regex field("\"" + key + "\": [^,\n]*");
        BOOST_TEST_REQUIRE(std::regex_search(good, field), key);
        return std::regex_replace(good, field, "\"" + key + "\": " + raw);
    };
    BOOST_TEST(TrainConfig::from_json(with("batch", "64")).batch == 64);
    BOOST_TEST(TrainConfig::from_json(with("seed", "9223372036854775807")).seed == 9223372036854775807ull);
    BOOST_TEST(TrainConfig::from_json(with("lr", "1")).sgd.lr == 1.0);  // an integer is a number too
    struct Case {
        std::string key, raw, message;
    };
    const std::vector<Case> cases = {
        {"batch", "1e12", "field 'batch' must be an integer >= 1, got 1000000000000.0"},
        {"batch", "1000000000000", "field 'batch' must be an integer >= 1, got 1000000000000"},
        {"batch", "4294967300", "field 'batch' must be an integer >= 1, got 4294967300"},
        {"batch", "4.5", "field 'batch' must be an integer >= 1, got 4.5"},
        {"batch", "4.0", "field 'batch' must be an integer >= 1, got 4.0"},
        {"batch", "0", "field 'batch' must be an integer >= 1, got 0"},
        {"batch", "\"4\"", "field 'batch' must be an integer >= 1, got \"4\""},
        {"epochs", "1e300", "field 'epochs' must be an integer >= 1, got 1e+300"},
        {"epochs", "-3", "field 'epochs' must be an integer >= 1, got -3"},
        {"report_every", "true", "field 'report_every' must be an integer >= 1, got true"},
        {"eval_batch", "2147483648", "field 'eval_batch' must be an integer >= 1, got 2147483648"},
        {"seed", "-1", "field 'seed' must be an integer >= 0, got -1"},
        {"seed", "18446744073709551615", "field 'seed' must be an integer >= 0, got 18446744073709551615"},
        {"validation", "-1", "field 'validation' must be an integer >= 0, got -1"},
        {"max_batches", "-1", "field 'max_batches' must be an integer >= 0, got -1"},
        {"lr", "0", "field 'lr' must be a finite number > 0, got 0"},
        {"lr", "-0.1", "field 'lr' must be a finite number >= 0, got -0.1"},
        {"lr", "\"0.1\"", "field 'lr' must be a finite number >= 0, got \"0.1\""},
        {"momentum", "-0.5", "field 'momentum' must be a finite number >= 0, got -0.5"},
        {"weight_decay", "null", "field 'weight_decay' must be a finite number >= 0, got null"},
        {"dampening", "[]", "field 'dampening' must be a finite number >= 0, got []"},
        {"nesterov", "1", "field 'nesterov' has the wrong type (1)"},
    };
    for (const Case& c : cases) {
        const std::string text = with(c.key, c.raw);
        const std::string msg = error_of([&] { TrainConfig::from_json(text); });
        BOOST_TEST(contains(msg, "run config: " + c.message), c.key << " = " << c.raw << ": " << msg);
    }
    BOOST_TEST(contains(error_of([] { TrainConfig::from_json("[1, 2]"); }), "run config: not a JSON object (array)"));
    // A number beyond double's range never reaches the fields: the JSON parser refuses it.
    const std::string huge = error_of([&] { TrainConfig::from_json(with("lr", "1e999")); });
    BOOST_TEST(contains(huge, "run config: not valid JSON"), huge);
    BOOST_TEST(contains(huge, "1e999"), huge);

    // validate() gives readable ranges for settings made in code.
    TrainConfig c;
    c.run_dir = "x";
    c.sgd.lr = std::nan("");
    BOOST_TEST(contains(error_of([&] { c.validate(); }), "lr must be a finite number > 0, got nan"));
    c.sgd.lr = 0.1;
    c.sgd.momentum = std::numeric_limits<double>::infinity();
    BOOST_TEST(contains(error_of([&] { c.validate(); }), "momentum must be a finite number >= 0, got inf"));
    c.sgd.momentum = 0.9;
    c.sgd.weight_decay = -1;
    BOOST_TEST(contains(error_of([&] { c.validate(); }), "weight decay must be a finite number >= 0, got -1"));
    c.sgd.weight_decay = 0;
    c.batch = 0;
    BOOST_TEST(contains(error_of([&] { c.validate(); }), "batch must be an integer >= 1, got 0"));
}

// config.json names the conv path ("plain", "correlate2d", "im2col", "winograd", "automatic"); run folders
// written before the paths were renamed say "fast" (now automatic) and "reference" (correlate2d).
BOOST_AUTO_TEST_CASE(config_names_the_conv_path_and_reads_the_old_names) {
    TrainConfig c;
    for (const std::string setting : {"auto", "plain", "correlate2d", "im2col", "winograd", "automatic"}) {
        c.conv = setting;
        const std::string text = c.to_json();
        BOOST_TEST(contains(text, fmt::format("\"conv\": \"{}\"", setting)), text);
        BOOST_TEST(TrainConfig::from_json(text).conv == setting);
    }
    c.conv = "plain";
    const std::string text = c.to_json(), field = "\"conv\": \"plain\"";
    BOOST_TEST_REQUIRE(contains(text, field));
    const auto with_conv = [&](const std::string& name) {
        std::string t = text;
        t.replace(t.find(field), field.size(), "\"conv\": \"" + name + "\"");
        return t;
    };
    BOOST_TEST(TrainConfig::from_json(with_conv("fast")).conv == "automatic");
    BOOST_TEST(TrainConfig::from_json(with_conv("reference")).conv == "correlate2d");
    const std::string msg = error_of([&] { TrainConfig::from_json(with_conv("sideways")); });
    BOOST_TEST(contains(msg, "conv setting 'sideways'"), msg);
}

BOOST_AUTO_TEST_CASE(short_run_learns_and_writes_the_run_folder) {
    const TempDir tmp;
    const fs::path run = tmp.path / "run";  // not there yet: train creates it
    const data::Cifar10 cifar = synthetic_cifar();
    std::FILE* devnull = std::fopen("/dev/null", "w");
    const TrainResult r = train(small_config(run), cifar, false, devnull);
    std::fclose(devnull);
    // the loss falls: first report vs last report
    std::vector<double> losses;
    for (const LogRow& row : r.log)
        if (row.kind == "train") losses.push_back(row.loss);
    BOOST_REQUIRE(losses.size() >= 3u);
    BOOST_TEST(losses.back() < 0.6 * losses.front());
    BOOST_TEST(r.test.accuracy > 50.0);  // chance is 10 %
    BOOST_TEST(r.test.count == 60u);
    BOOST_TEST(r.steps == 3 * 30);
    BOOST_TEST(r.train_images == 3 * 240);
    for (const char* f : {"config.json", "summary.txt", "log.csv", "checkpoint.safetensors", "metrics.json"})
        BOOST_TEST(fs::exists(run / f), f);
    BOOST_TEST(!fs::exists(run / "checkpoint.safetensors.tmp"));
    const std::vector<LogRow> log = read_log(run / "log.csv");
    BOOST_TEST(log.size() == r.log.size());
    BOOST_TEST(std::count_if(log.begin(), log.end(), [](const LogRow& x) { return x.kind == "test"; }) == 3);
    BOOST_TEST(contains(read(run / "metrics.json"), "\"confusion\""));
    // a second run into the same folder is refused: nothing is overwritten
    BOOST_TEST(contains(error_of([&] { train(small_config(run), cifar, false, nullptr); }), "--resume"));
}

BOOST_AUTO_TEST_CASE(resume_continues_exactly_where_the_checkpoint_left) {
    const data::Cifar10 cifar = synthetic_cifar();
    std::FILE* devnull = std::fopen("/dev/null", "w");
    const TempDir tmp;
    const fs::path straight = tmp.path / "straight", broken = tmp.path / "broken";  // train creates them
    const TrainResult full = train(small_config(straight), cifar, false, devnull);

    TrainConfig first = small_config(broken);
    first.epochs = 1;  // the "interrupted" run: one epoch, then stop
    train(first, cifar, false, devnull);
    // a half-written log line from the lost epoch must be dropped on resume
    { std::ofstream(broken / "log.csv", std::ios::app) << "train,2,999,9999,1.0,10.0,1.0,1.0,0.01\n"; }
    const TrainResult resumed = train(small_config(broken), cifar, true, devnull);
    std::fclose(devnull);

    BOOST_TEST(resumed.steps == full.steps);
    BOOST_TEST(resumed.test.accuracy == full.test.accuracy);
    BOOST_TEST(resumed.test.loss == full.test.loss, boost::test_tools::tolerance(1e-6));
    const TensorFile a = load_safetensors(straight / "checkpoint.safetensors");
    const TensorFile b = load_safetensors(broken / "checkpoint.safetensors");
    BOOST_REQUIRE(a.tensors.size() == b.tensors.size());
    for (std::size_t i = 0; i < a.tensors.size(); ++i) {
        BOOST_TEST(a.tensors[i].first == b.tensors[i].first);
        const double diff = (a.tensors[i].second.array() - b.tensors[i].second.array()).abs().maxCoeff();
        BOOST_TEST(diff <= 1e-6, a.tensors[i].first << " differs by " << diff);
    }
    const std::vector<LogRow> log = read_log(broken / "log.csv");
    BOOST_TEST(std::none_of(log.begin(), log.end(), [](const LogRow& r) { return r.step == 999; }));
    BOOST_TEST(log.size() == full.log.size());
}

// Adam's moments and step count and the schedule's position (the step) come back from the
// checkpoint: a resumed AdamW + warm-up-cosine run ends bit for bit where an unbroken one does,
// and the log's lr column follows the schedule.
BOOST_AUTO_TEST_CASE(resume_with_adamw_and_a_schedule_is_bit_exact) {
    const data::Cifar10 cifar = synthetic_cifar();
    std::FILE* devnull = std::fopen("/dev/null", "w");
    const TempDir tmp;
    const auto config = [&](const fs::path& dir) {
        TrainConfig c = small_config(dir);
        c.optimizer = "adamw";
        c.sgd = {.lr = 0.002, .weight_decay = 0.05};
        c.schedule = "warmup-cosine";
        c.warmup = 0.5;
        c.lr_scale_1d = 4;
        c.weight_decay_1d = 0;
        return c;
    };
    const TrainResult full = train(config(tmp.path / "straight"), cifar, false, devnull);
    TrainConfig first = config(tmp.path / "broken");
    first.epochs = 1;
    first.schedule_epochs = 3;  // the schedule of the whole run (as config.json keeps it)
    train(first, cifar, false, devnull);
    const TrainResult resumed = train(config(tmp.path / "broken"), cifar, true, devnull);
    std::fclose(devnull);
    BOOST_TEST(resumed.steps == full.steps);
    const TensorFile a = load_safetensors(tmp.path / "straight" / "checkpoint.safetensors");
    const TensorFile b = load_safetensors(tmp.path / "broken" / "checkpoint.safetensors");
    BOOST_TEST_REQUIRE(a.tensors.size() == b.tensors.size());
    BOOST_TEST(a.contains("adam/step"));
    BOOST_TEST(a.at("adam/step")[0] == static_cast<float>(full.steps));
    for (std::size_t i = 0; i < a.tensors.size(); ++i) {
        BOOST_TEST(a.tensors[i].first == b.tensors[i].first);
        BOOST_TEST(std::equal(a.tensors[i].second.begin(), a.tensors[i].second.end(), b.tensors[i].second.begin()),
                   a.tensors[i].first << " differs");
    }
    // the lr column: base lr x the schedule at the report's last step (step - 1, 0-based)
    const long per_epoch = full.steps / 3;
    const Schedule schedule = Schedule::warmup_cosine(0.5, 3);
    const std::vector<LogRow> log = read_log(tmp.path / "broken" / "log.csv");
    int train_rows = 0;
    for (const LogRow& r : log)
        if (r.kind == "train") {
            ++train_rows;
            const double expected = 0.002 * schedule.at_step(r.step - 1, per_epoch);
            BOOST_TEST(std::abs(r.lr - expected) <= 1e-5 * expected + 1e-12, "step " << r.step << ": lr " << r.lr << " vs " << expected);
        }
    BOOST_TEST(train_rows >= 6);
}

// The lookahead's slow weights and step count come back from the checkpoint: a resumed run with
// lookahead (pulls every 2 steps from half an epoch on, BatchNorm-free SimpleCNN: parameters only)
// ends bit for bit where an unbroken one does, and the pulls changed the run.
BOOST_AUTO_TEST_CASE(resume_with_lookahead_is_bit_exact) {
    const data::Cifar10 cifar = synthetic_cifar();
    std::FILE* devnull = std::fopen("/dev/null", "w");
    const TempDir tmp;
    const auto config = [&](const fs::path& dir, int every) {
        TrainConfig c = small_config(dir);
        c.lookahead_every = every;
        c.lookahead_start = 0.5;
        return c;
    };
    const TrainResult full = train(config(tmp.path / "straight", 2), cifar, false, devnull);
    const TrainResult plain = train(config(tmp.path / "plain", 0), cifar, false, devnull);
    TrainConfig first = config(tmp.path / "broken", 2);
    first.epochs = 1;
    first.schedule_epochs = 3;  // the run's length, as config.json keeps it
    train(first, cifar, false, devnull);
    const TrainResult resumed = train(config(tmp.path / "broken", 2), cifar, true, devnull);
    std::fclose(devnull);
    BOOST_TEST(resumed.steps == full.steps);
    const TensorFile a = load_safetensors(tmp.path / "straight" / "checkpoint.safetensors");
    const TensorFile b = load_safetensors(tmp.path / "broken" / "checkpoint.safetensors");
    const TensorFile p = load_safetensors(tmp.path / "plain" / "checkpoint.safetensors");
    BOOST_TEST_REQUIRE(a.tensors.size() == b.tensors.size());
    BOOST_TEST(a.contains("lookahead/step"));
    BOOST_TEST(a.at("lookahead/step")[0] == static_cast<float>(full.steps));
    BOOST_TEST(a.contains("lookahead/p0"));
    for (std::size_t i = 0; i < a.tensors.size(); ++i) {
        BOOST_TEST(a.tensors[i].first == b.tensors[i].first);
        BOOST_TEST(std::equal(a.tensors[i].second.begin(), a.tensors[i].second.end(), b.tensors[i].second.begin()),
                   a.tensors[i].first << " differs");
    }
    BOOST_TEST(!std::equal(a.at("model/fc3.weight").begin(), a.at("model/fc3.weight").end(), p.at("model/fc3.weight").begin()));
    // after the last step (a pull: 90 steps, every 2) the weights are the slow weights (fc3.weight: parameter 8)
    BOOST_TEST(std::equal(a.at("model/fc3.weight").begin(), a.at("model/fc3.weight").end(), a.at("lookahead/p8").begin()));
}

BOOST_AUTO_TEST_CASE(checkpoint_round_trip_and_bad_checkpoints) {
    const TempDir tmp;
    const fs::path path = tmp.path / "c.safetensors";
    Rng rng(3);
    SimpleCNN<float> model(rng);
    Sgd<float> sgd(model.parameters(), {.lr = 0.1, .momentum = 0.9});
    for (auto* p : model.parameters()) p->grad.fill(0.5f);
    sgd.step();  // creates momentum buffers
    save_checkpoint(path, model, &sgd, "simple", {{"epochs_done", "4"}});

    Rng other(99);
    SimpleCNN<float> copy(other);
    Sgd<float> sgd2(copy.parameters(), {.lr = 0.1, .momentum = 0.9});
    const auto meta = load_checkpoint(path, copy, &sgd2, "simple");
    BOOST_TEST(meta.at("epochs_done") == "4");
    for (std::size_t i = 0; i < model.parameters().size(); ++i) {
        BOOST_TEST((model.parameters()[i]->value.array() == copy.parameters()[i]->value.array()).all());
        BOOST_TEST((sgd.momentum_buffers()[i].array() == sgd2.momentum_buffers()[i].array()).all());
    }
    // truncated: the error says so and the model is left as it was
    const std::string bytes = read(path);
    { std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes.substr(0, bytes.size() - 100); }
    Rng r3(5);
    SimpleCNN<float> target(r3);
    const Tensor<float> before = target.fc1.weight.value;
    BOOST_TEST(contains(error_of([&] { load_checkpoint(path, target, nullptr, "simple"); }), "truncated"));
    BOOST_TEST((target.fc1.weight.value.array() == before.array()).all());
    // a tensor file that is not a checkpoint, and one with a wrong shape
    TensorFile foreign;
    foreign.tensors.emplace_back("x", Tensor<float>(Shape{2}));
    save_safetensors(path, foreign);
    BOOST_TEST(contains(error_of([&] { load_checkpoint(path, target, nullptr, "simple"); }), "not a ManualCNN checkpoint"));
    TensorFile wrong = load_safetensors([&] {
        save_checkpoint(path, model, &sgd, "simple", {});
        return path;
    }());
    for (auto& [name, t] : wrong.tensors)
        if (name == "model/fc2.weight") t = Tensor<float>(Shape{84, 121});
    save_safetensors(path, wrong);
    const std::string msg = error_of([&] { load_checkpoint(path, target, nullptr, "simple"); });
    BOOST_TEST(contains(msg, "fc2.weight"));
    BOOST_TEST(contains(msg, "[84, 121]"));
    BOOST_TEST(contains(msg, "[84, 120]"));
}

// Results depend on the thread count through float rounding: a resume with another count says so.
BOOST_AUTO_TEST_CASE(resume_with_another_thread_count_says_it_is_not_bit_exact) {
    const data::Cifar10 cifar = synthetic_cifar();
    const TempDir tmp;
    TrainConfig c = small_config(tmp.path / "run");
    c.epochs = 1;
    {
        const ThreadLimit one(1);
        train(c, cifar, false, nullptr);
    }
    const auto resume_output = [&](int threads) {
        const ThreadLimit limit(threads);
        c.epochs += 1;
        std::FILE* out = std::tmpfile();
        train(c, cifar, true, out);
        std::rewind(out);
        std::string text(8192, '\0');
        text.resize(std::fread(text.data(), 1, text.size(), out));
        std::fclose(out);
        return text;
    };
    CHECK_MESSAGE_HAS(resume_output(2), "note: the run so far used 1 threads and goes on with 2");
    BOOST_TEST(!contains(resume_output(2), "note: the run so far used"));  // the same count: no note
}

// FitOptions::detect_anomaly: a parameter that is NaN before the first step stops the run at that
// step, naming the parameter and where in training; a run that diverges stops at the first op that
// made a NaN or inf, with the step it happened in.
BOOST_AUTO_TEST_CASE(detect_anomaly_stops_the_run_at_the_first_non_finite_value_naming_the_step) {
    const data::Cifar10 cifar = synthetic_cifar();
    Rng rng(7);
    SimpleCNN<float> model(rng);
    Parameter<float>& bad = model.fc2.weight;
    bad.value[5] = std::numeric_limits<float>::quiet_NaN();
    Sgd<float> sgd(model.parameters(), {.lr = 0.01, .momentum = 0.9});
    const data::Normalization norm = data::Normalization::notebook();
    const data::CifarDataset train_set(cifar.train, norm), test_set(cifar.test, norm);
    FitOptions o;
    o.batch = 8;
    o.out = nullptr;
    o.detect_anomaly = true;
    std::string msg = error_of([&] { fit(model, sgd, train_set, test_set, o); });
    CHECK_MESSAGE_HAS(msg, "detect_anomaly: forward: the parameter 'fc2.weight' [84, 120]");
    CHECK_MESSAGE_HAS(msg, "element 5 is nan (set outside the tape: by the last optimiser step, or when it was loaded)");
    CHECK_MESSAGE_HAS(msg, "; at epoch 1, batch 1 (step 1)");

    // lr 10 diverges within the first epoch: the first non-finite value is named, with its op
    const TempDir tmp;
    TrainConfig c = small_config(tmp.path / "with");
    c.sgd.lr = 10;
    c.detect_anomaly = true;
    msg = error_of([&] { train(c, cifar, false, nullptr); });
    BOOST_TEST(std::regex_search(msg, std::regex("^detect_anomaly: (forward|backward) of '[a-z_0-9]+' \\(tape entry [0-9]+ of "
                                                 "[0-9]+.*: element [0-9]+ is -?(nan|inf).*; at epoch 1, batch [0-9]+ \\(step [0-9]+\\)$")),
               msg);
    c.detect_anomaly = false;  // the same run without: the loss check stops it, later or as late
    c.run_dir = tmp.path / "without";
    CHECK_MESSAGE_HAS(error_of([&] { train(c, cifar, false, nullptr); }), "diverged");
}

BOOST_AUTO_TEST_CASE(resume_without_checkpoint_is_an_error) {
    const TempDir tmp;
    const fs::path run = tmp.path / "run";  // a run folder that does not exist
    const std::string msg = error_of([&] { train(small_config(run), synthetic_cifar(), true, nullptr); });
    BOOST_TEST(contains(msg, "cannot resume"));
}

// A run whose weights stop being finite (the loss may still look fine) stops before its next
// evaluation and checkpoint; the last good checkpoint stays byte for byte as it was.
BOOST_AUTO_TEST_CASE(diverged_run_stops_and_keeps_the_last_good_checkpoint) {
    const TempDir tmp;
    const fs::path run = tmp.path / "run", ckpt = run / "checkpoint.safetensors";
    SyntheticFit f;
    f.run(run, 1, false);
    const std::string good = read(ckpt);
    // resumed for epochs 2-3; its 30th step (step 60, the last of epoch 2) puts a NaN into fc2.weight
    std::string msg = error_of([&] { f.run(run, 3, true, {.at = 30, .parameter = "fc2.weight", .index = 125}); });
    CHECK_MESSAGE_HAS(msg, "training diverged in epoch 2 (step 60): model/fc2.weight holds nan at element 125 (index [1, 5] of [84, 120])");
    CHECK_MESSAGE_HAS(msg, fmt::format("the last good checkpoint, {} (after epoch 1, step 30), is left as it was", ckpt.string()));
    BOOST_TEST(read(ckpt) == good);
    BOOST_TEST(test_rows(read_log(run / "log.csv")) == 1u);  // epoch 2 was not evaluated
    BOOST_TEST(!fs::exists(run / "checkpoint.safetensors.tmp"));

    // a NaN in a weight that makes the next loss NaN: the loss check names the tensor and the checkpoint too
    msg = error_of([&] { f.run(run, 3, true, {.at = 5, .parameter = "fc3.bias"}); });
    CHECK_MESSAGE_HAS(msg, "training diverged: loss is nan at epoch 2, batch 6 (step 36); model/");
    CHECK_MESSAGE_HAS(msg, "holds nan at element");
    CHECK_MESSAGE_HAS(msg, "(after epoch 1, step 30), is left as it was");
    BOOST_TEST(read(ckpt) == good);
}

BOOST_AUTO_TEST_CASE(diverged_optimizer_state_is_never_saved) {
    const TempDir tmp;
    const fs::path run = tmp.path / "run";
    SyntheticFit f;
    const std::string msg = error_of([&] {
        const float inf = std::numeric_limits<float>::infinity();
        f.run(run, 2, false, {.at = 30, .parameter = "fc1.bias", .in_momentum = true, .value = inf, .index = 4});
    });
    CHECK_MESSAGE_HAS(msg, "training diverged in epoch 1 (step 30): sgd/momentum/fc1.bias holds inf at element 4 (index [4] of [120])");
    CHECK_MESSAGE_HAS(msg, "no checkpoint was written (none was good)");
    BOOST_TEST(!fs::exists(run / "checkpoint.safetensors"));
    BOOST_TEST(!fs::exists(run / "checkpoint.safetensors.tmp"));
}

// The progress in a checkpoint's metadata is read strictly and must fit the run; a refused resume
// changes nothing in the run folder.
BOOST_AUTO_TEST_CASE(resume_checks_the_checkpoint_progress) {
    const data::Cifar10 cifar = synthetic_cifar();
    const TempDir tmp;
    const fs::path run = tmp.path / "run", ckpt = run / "checkpoint.safetensors";
    TrainConfig first = small_config(run);
    first.epochs = 1;  // 30 steps of 8 images
    train(first, cifar, false, nullptr);
    const std::string good = read(ckpt), log = read(run / "log.csv");
    const std::string step_range = "checkpoint metadata 'step' (epochs_done 1, 30 batches each) must be an integer from 1 to 30";
    const std::string images_range = "checkpoint metadata 'images' (step 30, batch 8) must be an integer from 30 to 240";
    const std::string seconds = "checkpoint metadata 'train_seconds' must be a finite number >= 0";
    const std::vector<std::tuple<std::string, std::string, std::string>> cases{
        {"step", "-100", step_range + ", got '-100'"},
        {"step", "31", step_range},
        {"step", "0", step_range},
        {"step", "9223372036854775807", step_range},
        {"step", "99999999999999999999", step_range},
        {"step", "30.0", step_range},
        {"step", " 30", step_range},
        {"step", "", "metadata lacks 'step'"},
        {"epochs_done", "2147483647", "checkpoint metadata 'epochs_done' is 2147483647, more than the run's 3 epochs"},
        {"epochs_done", "2147483648", "checkpoint metadata 'epochs_done' must be an integer >= 0, got '2147483648'"},
        {"epochs_done", "-1", "checkpoint metadata 'epochs_done' must be an integer >= 0, got '-1'"},
        {"epochs_done", "1e0", "'epochs_done' must be an integer"},
        {"images", "241", images_range},
        {"images", "29", images_range},
        {"train_seconds", "nan", seconds},
        {"train_seconds", "-1", seconds},
        {"train_seconds", "1e999", seconds},
        {"train_seconds", "", "metadata lacks 'train_seconds'"}};
    for (const auto& [key, value, expected] : cases) {
        BOOST_TEST_CONTEXT(key << " = '" << value << "'") {
            write(ckpt, good);
            set_metadata(ckpt, key, value);
            const std::string changed = read(ckpt);
            CHECK_MESSAGE_HAS(error_of([&] { train(small_config(run), cifar, true, nullptr); }), expected);
            BOOST_TEST(read(ckpt) == changed);
            BOOST_TEST(read(run / "log.csv") == log);
        }
    }
    // a finished run resumed with its own total trains nothing; with fewer epochs than done it is refused
    write(ckpt, good);
    BOOST_TEST(train(first, cifar, true, nullptr).steps == 30);
    set_metadata(ckpt, "epochs_done", "2");
    set_metadata(ckpt, "step", "60");
    CHECK_MESSAGE_HAS(error_of([&] { train(first, cifar, true, nullptr); }),
                      "'epochs_done' is 2, more than the run's 1 epochs; resume with --epochs 2 or more");
}

BOOST_AUTO_TEST_CASE(missing_optimizer_state_needs_reset_optimizer) {
    const data::Cifar10 cifar = synthetic_cifar();
    const TempDir tmp;
    const fs::path run = tmp.path / "run", ckpt = run / "checkpoint.safetensors";
    TrainConfig c = small_config(run);
    c.epochs = 1;
    train(c, cifar, false, nullptr);
    TensorFile f = load_safetensors(ckpt);
    std::erase_if(f.tensors, [](const auto& t) { return t.first.starts_with("sgd/"); });
    save_safetensors(ckpt, f);
    const std::string without_state = read(ckpt);
    c.epochs = 2;
    const std::string msg = error_of([&] { train(c, cifar, true, nullptr); });
    CHECK_MESSAGE_HAS(msg, "the optimiser's state is missing 10 of its 10 tensors");
    CHECK_MESSAGE_HAS(msg, "--reset-optimizer");
    BOOST_TEST(read(ckpt) == without_state);

    c.reset_optimizer = true;
    std::FILE* out = std::tmpfile();
    const TrainResult r = train(c, cifar, true, out);
    std::rewind(out);
    std::string text(4096, '\0');
    text.resize(std::fread(text.data(), 1, text.size(), out));
    std::fclose(out);
    BOOST_TEST(r.steps == 60);
    CHECK_MESSAGE_HAS(text, "The optimiser's state starts afresh (reset)");
    BOOST_TEST(load_safetensors(ckpt).contains("sgd/momentum/fc1.weight"));  // saved again after epoch 2
    // not without resume
    CHECK_MESSAGE_HAS(error_of([&] { train(c, cifar, false, nullptr); }), "applies to a resumed run only");
}

BOOST_AUTO_TEST_CASE(log_csv_is_read_strictly) {
    const TempDir tmp;
    const fs::path csv = tmp.path / "log.csv";
    const std::string header = "kind,epoch,step,images,loss,accuracy,images_per_s,elapsed_s";
    const std::string rows = "train,1,10,80,2.302585,10.0000,1200.5,0.067\ntest,1,30,240,1.9,35.0000,5000.0,0.2\n";
    write(csv, header + "\n" + rows);
    const std::vector<LogRow> lf = read_log(csv);
    BOOST_TEST_REQUIRE(lf.size() == 2u);
    BOOST_TEST(lf[0].kind == "train");
    BOOST_TEST(lf[0].step == 10);
    BOOST_TEST(lf[0].loss == 2.302585);
    BOOST_TEST(lf[1].accuracy == 35.0);
    // CRLF line endings read as LF
    std::string crlf;
    for (const char c : header + "\n" + rows) crlf += c == '\n' ? std::string("\r\n") : std::string(1, c);
    write(csv, crlf);
    const std::vector<LogRow> back = read_log(csv);
    BOOST_TEST_REQUIRE(back.size() == 2u);
    BOOST_TEST(back[1].elapsed == 0.2);
    BOOST_TEST(back[1].kind == "test");
    // a header that differs is shown with what cannot be seen written out
    write(csv, "\xef\xbb\xbf" + header + "\n" + rows);
    CHECK_MESSAGE_HAS(error_of([&] { read_log(csv); }), "unexpected header '\\xef\\xbb\\xbfkind,epoch,");
    write(csv, "kind,epoch,step,images,loss,accuracy,images_per_s,elapsed_s\t\n" + rows);
    CHECK_MESSAGE_HAS(error_of([&] { read_log(csv); }), "elapsed_s\\t', expected '" + header + ",lr'");
    // each cell strictly, naming the line and the column
    const auto error_in = [&](const std::string& row) {
        write(csv, header + "\n" + rows + row + "\n");
        return error_of([&] { read_log(csv); });
    };
    CHECK_MESSAGE_HAS(error_in("train,2,12x,96,1.0,1.0,1.0,1.0"), "log.csv line 4, column 'step' must be an integer >= 0, got '12x'");
    CHECK_MESSAGE_HAS(error_in("train,2,-100,96,1.0,1.0,1.0,1.0"), "column 'step' must be an integer >= 0, got '-100'");
    CHECK_MESSAGE_HAS(error_in("train,99999999999,40,96,1.0,1.0,1.0,1.0"), "column 'epoch' must be an integer >= 1");
    CHECK_MESSAGE_HAS(error_in("train,2,40,9223372036854775808,1.0,1.0,1.0,1.0"), "column 'images'");
    CHECK_MESSAGE_HAS(error_in("train,2,40,320,nan,1.0,1.0,1.0"), "column 'loss' must be a finite number >= 0, got 'nan'");
    CHECK_MESSAGE_HAS(error_in("train,2,40,320,1.0,100.5,1.0,1.0"), "column 'accuracy' must be a finite number from 0 to 100");
    CHECK_MESSAGE_HAS(error_in("train,2,40,320,1.0,1.0,1.0"), "line 4: expected 8 columns");
    CHECK_MESSAGE_HAS(error_in(",2,40,320,1.0,1.0,1.0,1.0"), "line 4: the column 'kind' is empty");
    CHECK_MESSAGE_HAS(error_in("train,2,40,320,1.0,1.0,1.0,1.0,0.1"), "line 4: expected 8 columns");  // no lr in an old log
    // the current log: 9 columns, the last the learning rate (the old 8-column logs above read with lr 0)
    BOOST_TEST(lf[1].lr == 0.0);
    const std::string lr_rows = "train,1,10,80,2.302585,10.0000,1200.5,0.067,0.05\ntest,1,30,240,1.9,35.0000,5000.0,0.2,2.5e-05\n";
    write(csv, header + ",lr\n" + lr_rows);
    const std::vector<LogRow> with_lr = read_log(csv);
    BOOST_TEST_REQUIRE(with_lr.size() == 2u);
    BOOST_TEST(with_lr[0].lr == 0.05);
    BOOST_TEST(with_lr[1].lr == 2.5e-05);
    BOOST_TEST(format_log(with_lr) == header + ",lr\n" + "train,1,10,80,2.302585,10.0000,1200.5,0.067,0.05\ntest,1,30,240,1.900000,35.0000,5000.0,0.200,2.5e-05\n");
    write(csv, header + ",lr\n" + lr_rows + "train,2,40,320,1.0,1.0,1.0,1.0\n");
    CHECK_MESSAGE_HAS(error_of([&] { read_log(csv); }), "line 4: expected 9 columns");
    write(csv, header + ",lr\n" + lr_rows + "train,2,40,320,1.0,1.0,1.0,1.0,-0.1\n");
    CHECK_MESSAGE_HAS(error_of([&] { read_log(csv); }), "line 4, column 'lr' must be a finite number >= 0");
    // a last line cut short by a crash (no newline) is skipped; one that is complete is read
    write(csv, header + "\n" + rows + "train,2,4");
    BOOST_TEST(read_log(csv).size() == 2u);
    write(csv, header + "\n" + rows + "train,2,40,320,1.0,1.0,1.0,1.0");
    BOOST_TEST(read_log(csv).size() == 3u);
    write(csv, "");
    CHECK_MESSAGE_HAS(error_of([&] { read_log(csv); }), "empty, expected the header");
    // not a regular file: refused at once, without waiting on a FIFO
    fs::remove(csv);
    CHECK_MESSAGE_HAS(error_with_fifo(csv, [&] { read_log(csv); }), "is a FIFO (named pipe), not a regular file");
    fs::remove(csv);
    fs::create_directory(csv);
    CHECK_MESSAGE_HAS(error_of([&] { read_log(csv); }), "is a folder, not a regular file");
}

// A FIFO in place of the checkpoint or the log is refused at once when resuming.
BOOST_AUTO_TEST_CASE(resume_refuses_files_that_are_not_regular) {
    const data::Cifar10 cifar = synthetic_cifar();
    const TempDir tmp;
    const fs::path run = tmp.path / "run";
    TrainConfig c = small_config(run);
    c.epochs = 1;
    c.max_batches = 2;
    train(c, cifar, false, nullptr);
    for (const char* name : {"checkpoint.safetensors", "log.csv"}) {
        BOOST_TEST_CONTEXT(name) {
            const fs::path file = run / name, kept = tmp.path / name;
            fs::rename(file, kept);
            CHECK_MESSAGE_HAS(error_with_fifo(file, [&] { train(c, cifar, true, nullptr); }), "is a FIFO (named pipe), not a regular file");
            fs::remove(file);
            fs::rename(kept, file);
        }
    }
    c.epochs = 2;
    BOOST_TEST(train(c, cifar, true, nullptr).steps == 4);
}

// ---- resources: batch size and memory, checked before the first step ------------------------------

BOOST_AUTO_TEST_CASE(batch_larger_than_the_training_set_is_refused) {
    const TempDir tmp;
    TrainConfig c = small_config(tmp.path / "run");
    c.batch = 241;  // the synthetic set has 240 training images
    const std::string msg = error_of([&] { train(c, synthetic_cifar(), false, nullptr); });
    BOOST_TEST(contains(msg, "fit: batch 241 is larger than the training set (240 examples): use a batch of at most 240"), msg);
    BOOST_TEST(!fs::exists(tmp.path / "run" / "config.json"));  // refused before the run folder was written
    c.batch = 240;  // the whole set in one batch is fine
    c.epochs = 1;
    BOOST_TEST(train(c, synthetic_cifar(), false, nullptr).steps == 1);
}

BOOST_AUTO_TEST_CASE(memory_figures_from_proc_files) {
    const std::string meminfo = "MemTotal:       24683656 kB\nMemFree:         1000 kB\nMemAvailable:   21301596 kB\n";
    BOOST_TEST(memory::mem_available_of(meminfo) == 21301596ull * 1024);
    BOOST_TEST(memory::mem_available_of("MemTotal: 5 kB\n") == 0u);
    BOOST_TEST(memory::mem_available_of("MemAvailable: lots kB\n") == 0u);
    BOOST_TEST(memory::mem_available_of("MemAvailableX: 5 kB\n") == 0u);
    BOOST_TEST(memory::vm_size_of("Name:\tx\nVmPeak:\t  900 kB\nVmSize:\t  812 kB\n") == 812ull * 1024);
    // the machine's own figures are there on Linux
    const memory::Available a = memory::available();
    BOOST_TEST(a.known);
    BOOST_TEST(a.bytes > 0u);
    BOOST_TEST(contains(memory::limits_text(), "this machine has "));
    BOOST_TEST(memory::human_bytes(12'345'678'901) == "12.3 GB");
    BOOST_TEST(memory::human_bytes(512'000'000) == "512 MB");
}

// SimpleCNN's training step records, per image: conv1, its bias and relu (3 x 6 x 28 x 28), pool
// (6 x 14 x 14), conv2, bias, relu (3 x 16 x 10 x 10), pool and flatten (2 x 400), fc1 and relu
// (2 x 120), fc2 and relu (2 x 84), fc3 (10). The input is a constant: not recorded.
BOOST_AUTO_TEST_CASE(memory_estimate_counts_the_recorded_values) {
    Rng rng(0);
    SimpleCNN<float> model(rng);
    const std::uint64_t expected = 3 * 4704 + 1176 + 3 * 1600 + 2 * 400 + 2 * 120 + 2 * 84 + 10;
    BOOST_TEST(memory::recorded_floats_per_example(model, Shape{3, 32, 32}) == expected);
    BOOST_TEST(model.is_training());  // the probe leaves the mode as it was
    model.eval();
    BOOST_TEST(memory::recorded_floats_per_example(model, Shape{3, 32, 32}) == expected);
    BOOST_TEST(!model.is_training());
    // linear in the batch; saturates instead of wrapping around
    const std::uint64_t one = memory::training_step_bytes(expected, 1);
    BOOST_TEST(one >= expected * 8);  // at least the values and their gradients
    BOOST_TEST(memory::training_step_bytes(expected, 1000) == 1000 * one);
    BOOST_TEST(memory::training_step_bytes(expected, UINT64_MAX / 2) == UINT64_MAX);
}

BOOST_AUTO_TEST_CASE(memory_check_names_both_figures) {
    const memory::Available small{9'100'000'000, true, "this machine has 9.1 GB available"};
    const std::string msg = error_of([&] { memory::check_fits(12'300'000'000, 100000, small); });
    BOOST_TEST(msg == "batch 100000 needs about 12.3 GB for activations and gradients; this machine has 9.1 GB available: "
                      "use a smaller --batch");
    memory::check_fits(9'000'000'000, 100000, small);  // fits
    memory::check_fits(UINT64_MAX, 100000, memory::Available{});  // nothing known: nothing refused
}

#if !defined(__SANITIZE_ADDRESS__)
// With an address-space limit (ulimit -v) too small for the step, fit refuses before the first
// step, naming the limit. (Not under AddressSanitizer, which maps terabytes of shadow memory.)
BOOST_AUTO_TEST_CASE(fit_refuses_a_batch_the_memory_cannot_hold) {
    const TempDir tmp;
    TrainConfig c = small_config(tmp.path / "run");
    c.batch = 240;  // SimpleCNN: 240 x 21,306 recorded floats, tens of megabytes
    const data::Cifar10 cifar = synthetic_cifar();
    std::string msg;
    {
        rlimit old{};
        BOOST_TEST_REQUIRE(::getrlimit(RLIMIT_AS, &old) == 0);
        const std::uint64_t used = memory::vm_size_of([] {
            std::ifstream in("/proc/self/status");
            return std::string(std::istreambuf_iterator<char>(in), {});
        }());
        BOOST_TEST_REQUIRE(used > 0u);
        const ThreadLimit one_thread(1);  // no thread is started under the limit
        rlimit tight = old;
        tight.rlim_cur = static_cast<rlim_t>(used + 20'000'000);  // 20 MB left
        BOOST_TEST_REQUIRE(::setrlimit(RLIMIT_AS, &tight) == 0);
        msg = error_of([&] { train(c, cifar, false, nullptr); });
        const std::string limits = memory::limits_text();
        BOOST_TEST_REQUIRE(::setrlimit(RLIMIT_AS, &old) == 0);
        BOOST_TEST(contains(limits, "the address-space limit (ulimit -v) is "), limits);
    }
    BOOST_TEST(contains(msg, "batch 240 needs about "), msg);
    BOOST_TEST(contains(msg, " MB for activations and gradients; the address-space limit (ulimit -v, "), msg);
    BOOST_TEST(contains(msg, "use a smaller --batch"), msg);
}
#endif

BOOST_AUTO_TEST_SUITE_END()
