// The training loop, run folder, checkpoints and resume, on a small synthetic CIFAR-like dataset
// whose classes differ by colour (so a few epochs learn it).
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <regex>

#include <sys/resource.h>

#include "../lib/src/train/memory.hpp"
#include "mcnn/nn/summary.hpp"
#include "mcnn/threads.hpp"
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

BOOST_AUTO_TEST_CASE(resume_without_checkpoint_is_an_error) {
    const TempDir tmp;
    const fs::path run = tmp.path / "run";  // a run folder that does not exist
    const std::string msg = error_of([&] { train(small_config(run), synthetic_cifar(), true, nullptr); });
    BOOST_TEST(contains(msg, "cannot resume"));
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
