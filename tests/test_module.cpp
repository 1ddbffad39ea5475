// Modules as plain C++: registration names parameters by path, in any order of registration;
// Sequential chains; train/eval mode; bad registrations are refused naming what was wrong; the
// model registry; and a user's model trained through fit() on in-memory data.
#include <boost/test/unit_test.hpp>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "mcnn/check/gradcheck.hpp"
#include "mcnn/data/dataset.hpp"
#include "mcnn/nn/layers.hpp"
#include "mcnn/nn/models.hpp"
#include "mcnn/nn/registry.hpp"
#include "mcnn/nn/summary.hpp"
#include "mcnn/ops/activation.hpp"
#include "mcnn/ops/elementwise.hpp"
#include "mcnn/ops/loss.hpp"
#include "mcnn/ops/pool.hpp"
#include "mcnn/ops/shape.hpp"
#include "mcnn/optim/sgd.hpp"
#include "mcnn/train/trainer.hpp"
#include "support.hpp"

using namespace mcnn;
using namespace mcnn::test;
namespace fs = std::filesystem;

namespace {

// A residual block: conv, relu, conv, plus the input.
template <class T>
struct Block : Module<T> {
    Conv2d<T> conv1, conv2;
    explicit Block(int channels, Rng& rng)
        : conv1({.in_channels = channels, .out_channels = channels, .kernel = 3, .padding = 1}, rng),
          conv2({.in_channels = channels, .out_channels = channels, .kernel = 3, .padding = 1}, rng) {
        this->register_modules({{"conv1", conv1}, {"conv2", conv2}});
    }
    Var<T> forward(const Var<T>& x) override { return add(x, conv2(relu(conv1(x)))); }
    std::string type_name() const override { return "Block"; }
};

// A small CNN with a nested block, for 3 x 8 x 8 inputs and 4 classes.
template <class T>
struct TinyNet : Module<T> {
    Conv2d<T> stem;
    Block<T> block1;
    Linear<T> head;
    explicit TinyNet(Rng& rng)
        : stem({.in_channels = 3, .out_channels = 4, .kernel = 3, .padding = 1}, rng), block1(4, rng), head(4 * 4 * 4, 4, rng) {
        this->register_modules({{"stem", stem}, {"block1", block1}, {"head", head}});
    }
    Var<T> forward(const Var<T>& x) override { return head(flatten(max_pool2d(block1(relu(stem(x))), 2))); }
    std::string type_name() const override { return "TinyNet"; }
};

std::vector<std::string> names_of(Module<float>& m) {
    std::vector<std::string> names;
    for (const Parameter<float>* p : m.parameters()) names.push_back(p->name);
    return names;
}

// A dataset of n images 3 x 8 x 8 whose class (of 4) is the brightest quadrant.
data::TensorDataset quadrant_images(int n, std::uint64_t seed) {
    Rng rng(seed);
    Tensor<float> x(Shape{n, 3, 8, 8});
    std::vector<int> labels;
    for (int i = 0; i < n; ++i) {
        const int c = i % 4;
        labels.push_back(c);
        for (int ch = 0; ch < 3; ++ch)
            for (int r = 0; r < 8; ++r)
                for (int col = 0; col < 8; ++col) {
                    const int quadrant = (r / 4) * 2 + col / 4;
                    x.at({i, ch, r, col}) = static_cast<float>(rng.uniform(-0.5, 0.5) + (quadrant == c ? 1.0 : 0.0));
                }
    }
    return data::TensorDataset(std::move(x), std::move(labels), 4, {"top-left", "top-right", "bottom-left", "bottom-right"});
}

}  // namespace

BOOST_AUTO_TEST_SUITE(module)

BOOST_AUTO_TEST_CASE(parameters_are_collected_by_path_in_registration_order) {
    Rng rng(1);
    TinyNet<float> net(rng);
    const std::vector<std::string> expected{"stem.weight", "stem.bias", "block1.conv1.weight", "block1.conv1.bias",
                                            "block1.conv2.weight", "block1.conv2.bias", "head.weight", "head.bias"};
    BOOST_TEST(names_of(net) == expected, boost::test_tools::per_element());
    BOOST_TEST(net.parameter_count() == (4u * 3 * 9 + 4) + 2 * (4u * 4 * 9 + 4) + (64u * 4 + 4));
    BOOST_TEST(net.block1.path() == "block1");
    BOOST_TEST(net.block1.conv2.path() == "block1.conv2");
    BOOST_TEST(net.path().empty());
    for (Parameter<float>* p : net.parameters()) BOOST_TEST(p->grad.shape() == p->value.shape(), p->name);
    std::vector<std::string> visited;
    net.visit([&](const std::string& path, Module<float>& m) { visited.push_back(path + ":" + m.type_name()); });
    const std::vector<std::string> modules{":TinyNet", "stem:Conv2d", "block1:Block", "block1.conv1:Conv2d",
                                           "block1.conv2:Conv2d", "head:Linear"};
    BOOST_TEST(visited == modules, boost::test_tools::per_element());
    BOOST_TEST(first_conv(net) == &net.stem);
}

BOOST_AUTO_TEST_CASE(names_follow_the_tree_whatever_the_order_of_registration) {
    // A parent registered into its own parent before it registers its children (top-down).
    struct Outer : Module<float> {
        Sequential<float> body;
        Var<float> forward(const Var<float>& x) override { return body(x); }
    };
    Rng rng(2);
    Outer outer;
    Sequential<float>& body = outer.body;
    struct Expose : Outer {
        using Module<float>::register_module;
    };
    static_cast<Expose&>(outer).register_module("body", body);
    body.emplace<Linear<float>>(3, 2, rng);
    body.emplace<ReLU<float>>();
    body.emplace<Linear<float>>(2, 2, rng, false);
    BOOST_TEST(names_of(outer) == (std::vector<std::string>{"body.0.weight", "body.0.bias", "body.2.weight"}),
               boost::test_tools::per_element());
    BOOST_TEST(body.size() == 3u);
    Tape<float> tape;
    const Var<float> y = outer(tape.constant(Tensor<float>(Shape{5, 3}, 1.0f)));
    BOOST_TEST(y.shape() == (Shape{5, 2}));
    BOOST_TEST(summary(outer, Shape{1, 3}, "outer").find("body.2.weight") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_sequential_chain_equals_the_same_ops_called_by_hand) {
    Rng a(3), b(3);
    Sequential<double> net;
    net.emplace<Conv2d<double>>(Conv2dSpec{.in_channels = 3, .out_channels = 2, .kernel = 3}, a);
    net.emplace<ReLU<double>>();
    net.emplace<MaxPool2d<double>>(2);
    net.emplace<Flatten<double>>();
    net.add(std::make_unique<Lambda<double>>("Tanh", [](const Var<double>& x) { return tanh(x); }), "squash");
    Conv2d<double> conv({.in_channels = 3, .out_channels = 2, .kernel = 3}, b);
    const Tensor<double> x = uniform(Shape{2, 3, 6, 6}, a);
    Tape<double> tape(Tape<double>::Mode::inference);
    const Tensor<double> chained = net(tape.constant(x)).value();
    const Tensor<double> by_hand = tanh(flatten(max_pool2d(relu(conv(tape.constant(x))), 2))).value();
    BOOST_TEST(chained.shape() == (Shape{2, 8}));
    check_equal(chained, by_hand, "Sequential vs by hand");
    BOOST_TEST(net[4].type_name() == "Tanh");
    BOOST_TEST(net.children()[4].name == "squash");
    Sequential<double> empty;
    BOOST_TEST(contains(error_of([&] { empty(tape.constant(x)); }), "no modules"));
}

BOOST_AUTO_TEST_CASE(train_and_eval_mode_reach_every_module_and_are_not_the_tape_mode) {
    Rng rng(4);
    TinyNet<float> net(rng);
    BOOST_TEST(net.is_training());
    net.eval();
    BOOST_TEST(!net.is_training());
    BOOST_TEST(!net.block1.conv2.is_training());
    net.block1.train();  // a subtree alone
    BOOST_TEST(net.block1.conv1.is_training());
    BOOST_TEST(!net.stem.is_training());
    // recording is the tape's business: a model in eval mode still records on a training tape
    net.eval();
    Tape<float> tape;
    const Var<float> y = net(tape.constant(Tensor<float>(Shape{1, 3, 8, 8}, 0.5f)));
    BOOST_TEST(y.requires_grad());
}

BOOST_AUTO_TEST_CASE(eval_mode_scope_restores_the_mode_it_found_also_on_an_exception) {
    Rng rng(4);
    TinyNet<float> net(rng);
    {
        const EvalModeScope<float> scope(net);
        BOOST_TEST(!net.block1.conv2.is_training());
    }
    BOOST_TEST(net.is_training());
    BOOST_TEST(net.block1.conv2.is_training());
    net.eval();
    { const EvalModeScope<float> scope(net); }
    BOOST_TEST(!net.is_training());  // an eval-mode model stays in eval mode
    net.train();
    try {
        const EvalModeScope<float> scope(net);
        fail("probe failed");
    } catch (const Error&) {
    }
    BOOST_TEST(net.stem.is_training());
}

BOOST_AUTO_TEST_CASE(bad_registrations_are_refused_naming_what_was_wrong) {
    struct Open : Module<float> {
        using Module<float>::register_module;
        using Module<float>::register_parameter;
        Var<float> forward(const Var<float>& x) override { return x; }
    };
    Rng rng(5);
    Open m;
    Parameter<float> p, q;
    p.value = Tensor<float>(Shape{2});
    q.value = Tensor<float>(Shape{3});
    m.register_parameter("w", p);
    BOOST_TEST(p.name == "w");
    BOOST_TEST(contains(error_of([&] { m.register_parameter("w", q); }), "named 'w' is already registered"));
    BOOST_TEST(contains(error_of([&] { m.register_parameter("a.b", q); }), "'a.b' is not a valid name"));
    BOOST_TEST(contains(error_of([&] { m.register_parameter("", q); }), "not a valid name"));
    Linear<float> fc(2, 2, rng);
    m.register_module("fc", fc);
    BOOST_TEST(contains(error_of([&] { m.register_module("w", fc); }), "already registered"));
    Open other;
    BOOST_TEST(contains(error_of([&] { other.register_module("fc", fc); }), "already registered as 'fc'"));
    BOOST_TEST(contains(error_of([&] { m.register_module("self", m); }), "inside itself"));
    // one parameter object under two names
    m.register_parameter("again", p);
    BOOST_TEST(contains(error_of([&] { (void)m.parameters(); }), "registered twice"));
}

BOOST_AUTO_TEST_CASE(the_registry_knows_the_built_in_models_and_takes_new_ones) {
    const auto names = model_names();
    BOOST_TEST_REQUIRE(names.size() >= 3u);
    BOOST_TEST(names[0] == "simple");
    BOOST_TEST(names[1] == "tuned");
    BOOST_TEST(names[2] == "manual");
    Rng rng(6);
    BOOST_TEST(make_model<float>("manual", rng)->type_name() == "ManualCNN");
    BOOST_TEST(contains(error_of([&] { (void)model_info("resnet"); }), "unknown model 'resnet'; known models: simple, tuned, manual"));

    register_model<TinyNet>("test-tiny", "a tiny net for the tests", Shape{3, 8, 8}, 4);
    const ModelInfo& info = model_info("test-tiny");
    BOOST_TEST(info.input == (Shape{3, 8, 8}));
    BOOST_TEST(make_model<double>("test-tiny", rng)->parameters().size() == 8u);
    check_model_shapes(*make_model<float>("test-tiny", rng), "test-tiny", info.input, info.classes);
    BOOST_TEST(contains(error_of([] { register_model<TinyNet>("test-tiny", "again"); }), "already registered"));
    BOOST_TEST(contains(error_of([] { register_model<TinyNet>("two words", ""); }), "not a valid model name"));
    // a model whose output is not batch x classes, and one that cannot take the input
    const std::string wrong_classes = error_of([&] { check_model_shapes(*make_model<float>("test-tiny", rng), "test-tiny", info.input, 10); });
    BOOST_TEST(contains(wrong_classes, "maps a batch of shape [2, 3, 8, 8] to [2, 4]"), wrong_classes);
    const std::string wrong_input = error_of([&] { check_model_shapes(*make_model<float>("test-tiny", rng), "test-tiny", Shape{1, 8, 8}, 4); });
    BOOST_TEST(contains(wrong_input, "cannot take a batch of shape [2, 1, 8, 8]"), wrong_input);
}

BOOST_AUTO_TEST_CASE(a_users_model_checks_its_gradients_through_the_registration) {
    Rng rng(7);
    TinyNet<double> net(rng);
    Rng data(8);
    const std::vector<int> labels{0, 3};
    GradCheckOptions options;
    options.max_elements = 10;
    const GradCheckReport r = gradcheck(
        [&](Tape<double>&, const std::vector<Var<double>>& in) { return softmax_cross_entropy(net(in[0]), labels); },
        {{"images", uniform(Shape{2, 3, 8, 8}, data)}}, net.parameters(), options);
    BOOST_TEST(r.passed(), r.table());
    BOOST_TEST(r.entries.size() == 9u);
    BOOST_TEST(r.entries[3].name == "block1.conv1.weight");
}

BOOST_AUTO_TEST_CASE(fit_trains_a_users_model_on_tensors_and_resumes_bit_exactly) {
    const TempDir tmp;
    const data::TensorDataset train_set = quadrant_images(96, 1), test_set = quadrant_images(40, 2);
    const auto run = [&](const fs::path& dir, int epochs, bool resume) {
        Rng rng(9);
        TinyNet<float> net(rng);
        Sgd<float> sgd(net.parameters(), {.lr = 0.05, .momentum = 0.9});
        FitOptions o;
        o.epochs = epochs;
        o.batch = 8;
        o.report_every = 6;
        o.plots = false;
        o.run_dir = dir;
        o.resume = resume;
        o.model_name = "tiny";
        o.out = nullptr;
        const TrainResult r = fit(net, sgd, train_set, test_set, o);
        return std::make_pair(r, net.head.weight.value);
    };
    const auto [straight, w_straight] = run(tmp.path / "straight", 4, false);
    BOOST_TEST(straight.steps == 4 * 12);
    BOOST_TEST(straight.test.count == 40u);
    BOOST_TEST(straight.test.accuracy > 80.0, "test accuracy " << straight.test.accuracy);
    BOOST_TEST(fs::exists(tmp.path / "straight" / "checkpoint.safetensors"));
    BOOST_TEST(fs::exists(tmp.path / "straight" / "metrics.json"));
    BOOST_TEST(contains(read_text(tmp.path / "straight" / "summary.txt"), "tiny model (TinyNet), input [-1, 3, 8, 8]"));
    BOOST_TEST(contains(read_text(tmp.path / "straight" / "metrics.json"), "bottom-right"));

    run(tmp.path / "broken", 2, false);  // stopped after 2 epochs, then resumed to 4
    const auto [resumed, w_resumed] = run(tmp.path / "broken", 4, true);
    BOOST_TEST(resumed.steps == straight.steps);
    check_equal(w_resumed, w_straight, "resumed weights are the unbroken run's, bit for bit");
    BOOST_TEST(resumed.log.size() == straight.log.size());
}

BOOST_AUTO_TEST_CASE(fit_refuses_data_the_model_cannot_take) {
    Rng rng(10);
    TinyNet<float> net(rng);
    Sgd<float> sgd(net.parameters(), {.lr = 0.01});
    FitOptions o;
    o.out = nullptr;
    o.model_name = "tiny";
    const data::TensorDataset good = quadrant_images(8, 3);
    const data::TensorDataset gray(Tensor<float>(Shape{8, 1, 8, 8}), std::vector<int>(8, 0), 4);
    const data::TensorDataset ten_classes(Tensor<float>(Shape{8, 3, 8, 8}), std::vector<int>(8, 9), 10);
    std::string msg = error_of([&] { fit(net, sgd, gray, gray, o); });
    BOOST_TEST(contains(msg, "model 'tiny' cannot take the training data's batches of shape [2, 1, 8, 8]"), msg);
    msg = error_of([&] { fit(net, sgd, ten_classes, ten_classes, o); });
    BOOST_TEST(contains(msg, "maps a batch of shape [2, 3, 8, 8] to [2, 4]; expected batch x classes = [2, 10]"), msg);
    msg = error_of([&] { fit(net, sgd, good, gray, o); });
    BOOST_TEST(contains(msg, "the test examples are [1, 8, 8]"), msg);
    o.epochs = 0;
    BOOST_TEST(contains(error_of([&] { fit(net, sgd, good, good, o); }), "epochs must be >= 1"));
    // TensorDataset checks its own inputs
    BOOST_TEST(contains(error_of([] { data::TensorDataset(Tensor<float>(Shape{2, 3}), {0}, 2); }), "2 examples ([2, 3]) but 1 labels"));
    BOOST_TEST(contains(error_of([] { data::TensorDataset(Tensor<float>(Shape{2, 3}), {0, 5}, 2); }), "label 5 of example 1"));
    Tensor<float> nan(Shape{2, 3});
    nan[4] = NAN;
    BOOST_TEST(contains(error_of([&] { data::TensorDataset(nan, {0, 1}, 2); }), "example 1 holds a non-finite value"));
}

// Docs that cannot drift: every code block of README.md marked "quoted from FILE" appears in FILE
// word for word (the example project that the install_example test builds and runs).
BOOST_AUTO_TEST_CASE(readme_code_quoted_from_the_example_is_the_examples_code) {
    const fs::path root = fs::path(MCNN_TEST_FIXTURES).parent_path().parent_path();
    const std::string readme = read_text(root / "README.md");
    const std::string marker = "<!-- quoted from ";
    int quotes = 0;
    for (std::size_t at = readme.find(marker); at != std::string::npos; at = readme.find(marker, at + 1)) {
        const std::size_t name_end = readme.find(" -->", at);
        const std::string file = readme.substr(at + marker.size(), name_end - at - marker.size());
        const std::size_t open = readme.find("```cpp\n", name_end), close = readme.find("\n```", open + 7);
        BOOST_TEST_REQUIRE((open != std::string::npos && close != std::string::npos), "no code block after the marker for " << file);
        const std::string code = readme.substr(open + 7, close - open - 7);
        const std::string source = read_text(root / file);
        BOOST_TEST_REQUIRE(!source.empty(), "cannot read " << file);
        BOOST_TEST(contains(source, code), "README's block quoted from " << file << " is not in it:\n" << code);
        ++quotes;
    }
    BOOST_TEST(quotes >= 2);
}

// The umbrella header is the one include a user needs: it must name every public header.
BOOST_AUTO_TEST_CASE(the_umbrella_header_includes_every_public_header) {
    const fs::path include = fs::path(MCNN_TEST_FIXTURES).parent_path().parent_path() / "lib" / "include";
    const std::string umbrella = read_text(include / "mcnn" / "mcnn.hpp");
    BOOST_TEST_REQUIRE(!umbrella.empty());
    int headers = 0;
    for (const auto& entry : fs::recursive_directory_iterator(include / "mcnn")) {
        if (entry.path().extension() != ".hpp" || entry.path().filename() == "mcnn.hpp") continue;
        const std::string name = fs::relative(entry.path(), include).generic_string();
        BOOST_TEST(contains(umbrella, "#include \"" + name + "\""), "mcnn/mcnn.hpp does not include " << name);
        ++headers;
    }
    BOOST_TEST(headers > 20);
}

BOOST_AUTO_TEST_SUITE_END()
