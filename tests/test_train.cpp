// The training loop, run folder, checkpoints and resume, on a small synthetic CIFAR-like dataset
// whose classes differ by colour (so a few epochs learn it).
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <regex>

#include "mcnn/nn/summary.hpp"
#include "mcnn/train/checkpoint.hpp"
#include "mcnn/nn/models.hpp"
#include "mcnn/train/config.hpp"
#include "support.hpp"

using namespace mcnn;
using namespace mcnn::test;
namespace fs = std::filesystem;

namespace {

// n images per class; class c has channel means that depend on c, plus noise.
data::Records synthetic(std::size_t per_class, std::uint64_t seed) {
    Rng rng(seed);
    data::Records d;
    for (std::size_t i = 0; i < per_class * data::class_count; ++i) {
        const int c = static_cast<int>(i % data::class_count);
        d.labels.push_back(static_cast<std::uint8_t>(c));
        for (int ch = 0; ch < 3; ++ch) {
            const double mean = 40 + 170 * ((c >> ch) & 1) + 8 * (c / 8) * (ch + 1);
            for (int p = 0; p < 1024; ++p)
                d.images.push_back(static_cast<std::uint8_t>(std::clamp(mean + rng.uniform(-30, 30), 0.0, 255.0)));
        }
    }
    return d;
}

data::Cifar10 synthetic_cifar() {
    data::Cifar10 c;
    c.train = synthetic(24, 1);
    c.test = synthetic(6, 2);
    for (int k = 0; k < data::class_count; ++k) c.class_names.push_back("class" + std::to_string(k));
    return c;
}

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
}

// config.json names the conv path ("plain", "correlate2d", "im2col", "automatic"); run folders
// written before the paths were renamed say "fast" (now automatic) and "reference" (correlate2d).
BOOST_AUTO_TEST_CASE(config_names_the_conv_path_and_reads_the_old_names) {
    TrainConfig c;
    for (const std::string setting : {"auto", "plain", "correlate2d", "im2col", "automatic"}) {
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
    { std::ofstream(broken / "log.csv", std::ios::app) << "train,2,999,9999,1.0,10.0,1.0,1.0\n"; }
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

BOOST_AUTO_TEST_SUITE_END()
