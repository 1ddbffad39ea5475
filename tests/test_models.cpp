// The models as graphs: SimpleCNN's parameters (count, names, shapes, order), its output shape,
// float/double and conv path agreement, and its whole graph gradient-checked end to end in
// double (every input element and every parameter element on the automatic path).
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "mcnn/check/gradcheck.hpp"
#include "mcnn/nn/models.hpp"
#include "mcnn/nn/registry.hpp"
#include "mcnn/ops/loss.hpp"
#include "mcnn/optim/sgd.hpp"
#include "mcnn/threads.hpp"
#include "support.hpp"

using namespace mcnn;
using namespace mcnn::test;

namespace {

// A batch of images uniform in [-1, 1) (CIFAR-10 normalised to [-1, 1]), drawn from a seed.
Tensor<double> random_images(int batch, std::uint64_t seed) {
    Rng rng(seed);
    return uniform(Shape{batch, 3, 32, 32}, rng);
}

template <class T>
Tensor<T> logits_of(SimpleCNN<T>& model, const Tensor<T>& images) {
    Tape<T> tape(Tape<T>::Mode::inference);
    return model.forward(tape.constant(images)).value();
}

// Largest |a - b| over the elements; +inf when the shapes differ.
template <class A, class B>
double max_abs_diff(const Tensor<A>& a, const Tensor<B>& b) {
    if (a.shape() != b.shape()) return INFINITY;
    double m = 0;
    for (std::size_t i = 0; i < a.numel(); ++i) m = std::max(m, std::abs(static_cast<double>(a[i]) - static_cast<double>(b[i])));
    return m;
}

/// Gradient check of SimpleCNN (double) with the softmax cross-entropy loss on a batch of 2.
GradCheckReport check_simple_cnn(ConvPath path, std::size_t max_elements, double* seconds) {
    Rng rng(21);
    SimpleCNN<double> model(rng, path);
    const std::vector<int> labels{3, 7};
    GradCheckOptions options;
    options.max_elements = max_elements;
    options.seed = 5;
    const auto start = std::chrono::steady_clock::now();
    GradCheckReport report = mcnn::gradcheck(
        [&](Tape<double>&, const std::vector<Var<double>>& in) { return softmax_cross_entropy(model.forward(in[0]), labels); },
        {{"images", random_images(2, 22)}}, model.parameters(), options);
    *seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return report;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(models)

BOOST_AUTO_TEST_CASE(simple_cnn_has_62006_parameters_named_and_shaped_in_order) {
    Rng rng(1);
    SimpleCNN<float> model(rng);
    BOOST_TEST(model.type_name() == "SimpleCNN");
    BOOST_TEST(model.parameter_count() == 62006u);
    const std::vector<std::pair<std::string, Shape>> expected{
        {"conv1.weight", {6, 3, 5, 5}}, {"conv1.bias", {6}}, {"conv2.weight", {16, 6, 5, 5}}, {"conv2.bias", {16}},
        {"fc1.weight", {120, 400}},     {"fc1.bias", {120}}, {"fc2.weight", {84, 120}},       {"fc2.bias", {84}},
        {"fc3.weight", {10, 84}},       {"fc3.bias", {10}}};
    const auto params = model.parameters();
    BOOST_TEST_REQUIRE(params.size() == expected.size());
    std::size_t total = 0;
    for (std::size_t k = 0; k < params.size(); ++k) {
        BOOST_TEST(params[k]->name == expected[k].first);
        BOOST_TEST(params[k]->value.shape() == expected[k].second, params[k]->name);
        BOOST_TEST(params[k]->grad.shape() == expected[k].second, params[k]->name);
        total += params[k]->value.numel();
    }
    BOOST_TEST(total == 62006u);
}

BOOST_AUTO_TEST_CASE(simple_cnn_maps_a_batch_to_b_by_10_logits) {
    Rng rng(2);
    SimpleCNN<float> model(rng);
    for (int batch : {1, 3}) {
        BOOST_TEST_CONTEXT("batch " << batch) {
            const Tensor<float> images = random_images(batch, 3).cast<float>();
            Tape<float> inference(Tape<float>::Mode::inference);
            const Var<float> y = model.forward(inference.constant(images));
            BOOST_TEST(y.shape() == (Shape{batch, 10}));
            BOOST_TEST(inference.size() == 0u);  // inference records nothing
            Tape<float> train;
            const Var<float> z = model.forward(train.constant(images));
            BOOST_TEST(z.shape() == (Shape{batch, 10}));
            BOOST_TEST(train.size() > 0u);
            BOOST_TEST(max_abs_diff(y.value(), z.value()) == 0.0);  // recording does not change values
            for (float v : y.value()) BOOST_TEST(std::isfinite(v));
        }
    }
    // the images of a batch are independent: image 1 of a batch of 3 gives the logits it gives alone
    const Tensor<float> three = random_images(3, 4).cast<float>();
    Tensor<float> second(Shape{1, 3, 32, 32});
    std::copy(three.begin() + 3 * 32 * 32, three.begin() + 6 * 32 * 32, second.begin());
    const Tensor<float> all = logits_of(model, three), one = logits_of(model, second);
    for (int c = 0; c < 10; ++c) BOOST_TEST(std::abs(all.at({1, c}) - one.at({0, c})) < 1e-6f);
}

BOOST_AUTO_TEST_CASE(the_same_seed_builds_the_same_model_and_another_seed_does_not) {
    Rng a(7), b(7), c(8);
    SimpleCNN<double> ma(a), mb(b), mc(c);
    const auto pa = ma.parameters(), pb = mb.parameters(), pc = mc.parameters();
    for (std::size_t k = 0; k < pa.size(); ++k) {
        BOOST_TEST(max_abs_diff(pa[k]->value, pb[k]->value) == 0.0, pa[k]->name);
        BOOST_TEST(max_abs_diff(pa[k]->value, pc[k]->value) > 0.0, pa[k]->name);
    }
}

BOOST_AUTO_TEST_CASE(float_and_double_models_from_one_seed_agree) {
    Rng rf(11), rd(11);
    SimpleCNN<float> mf(rf);
    SimpleCNN<double> md(rd);
    const auto pf = mf.parameters();
    const auto pd = md.parameters();
    for (std::size_t k = 0; k < pf.size(); ++k)  // drawn in double, then rounded: the same weights
        BOOST_TEST(max_abs_diff(pf[k]->value, pd[k]->value.cast<float>()) == 0.0, pf[k]->name);
    const Tensor<double> images = random_images(3, 12);
    const Tensor<float> yf = logits_of(mf, images.cast<float>());
    const Tensor<double> yd = logits_of(md, images);
    BOOST_TEST(max_abs_diff(yf, yd) < 1e-5, "float vs double logits differ by " << max_abs_diff(yf, yd));
    BOOST_TEST(max_abs_diff(yd, Tensor<double>(yd.shape())) > 1e-3);  // not trivially zero
}

// A whole training step (forward, loss, backward, SGD with momentum, twice) on 1, 2 and 3 threads:
// the batch is large enough that conv, bias, relu, pooling and the optimiser all split their work
// between threads (TunedCNN's first activations are 4 x 16 x 34 x 34 = 73,984 elements; 3 threads
// split 4 images unevenly). Sums may be added in another order, so results agree to rounding, not
// bit for bit.
BOOST_AUTO_TEST_CASE(a_training_step_does_not_depend_on_the_thread_count) {
    const Tensor<double> images = random_images(4, 31);
    const std::vector<int> labels{0, 3, 5, 7};
    for (const std::string name : {"tuned", "manual"}) {
        BOOST_TEST_CONTEXT(name) {
            auto step = [&](int threads) {
                const ThreadLimit limit(threads);
                Rng rng(32);
                auto model = make_model<double>(name, rng);
                Sgd<double> sgd(model->parameters(), SgdOptions{.lr = 0.01, .momentum = 0.9});
                std::vector<double> losses;
                for (int k = 0; k < 2; ++k) {
                    Tape<double> tape;
                    const Var<double> loss = softmax_cross_entropy(model->forward(tape.constant(images)), labels);
                    sgd.zero_grad();
                    tape.backward(loss);
                    sgd.step();
                    losses.push_back(loss.value()[0]);
                }
                std::vector<Tensor<double>> values;
                for (Parameter<double>* p : model->parameters()) values.push_back(p->value);
                return std::make_pair(losses, values);
            };
            const auto [loss1, values1] = step(1);
            for (int threads : {2, 3}) {
                const auto [loss_n, values_n] = step(threads);
                BOOST_TEST(std::abs(loss_n[1] - loss1[1]) < 1e-12, threads << " threads: loss " << loss_n[1] << " vs " << loss1[1]);
                for (std::size_t k = 0; k < values1.size(); ++k)
                    BOOST_TEST(max_abs_diff(values_n[k], values1[k]) < 1e-12, threads << " threads: parameter " << k);
            }
            BOOST_TEST(loss1[1] != loss1[0]);  // the first step changed the model
        }
    }
}

// SimpleCNN on each conv path gives the logits and gradients of the plain loops.
BOOST_AUTO_TEST_CASE(every_conv_path_gives_the_same_logits_and_gradients) {
    Rng r0(13);
    SimpleCNN<double> plain(r0, ConvPath::plain);
    const Tensor<double> images = random_images(3, 14);
    const std::vector<int> labels{0, 4, 9};
    const auto run = [&](SimpleCNN<double>& model) {
        for (Parameter<double>* p : model.parameters()) p->zero_grad();
        Tape<double> tape;
        const Var<double> x = tape.input(images);
        const Var<double> logits = model.forward(x);
        tape.backward(softmax_cross_entropy(logits, labels));
        return std::make_pair(logits.value(), x.grad());
    };
    const auto [yp, gxp] = run(plain);
    for (ConvPath path : {ConvPath::correlate2d, ConvPath::im2col, ConvPath::automatic}) {
        BOOST_TEST_CONTEXT(conv_path_name(path)) {
            Rng r(13);
            SimpleCNN<double> model(r, path);
            const auto [y, gx] = run(model);
            BOOST_TEST(max_abs_diff(y, yp) < 1e-12);
            BOOST_TEST(max_abs_diff(gx, gxp) < 1e-12);
            const auto pm = model.parameters(), pp = plain.parameters();
            for (std::size_t k = 0; k < pm.size(); ++k) BOOST_TEST(max_abs_diff(pm[k]->grad, pp[k]->grad) < 1e-12, pm[k]->name);
        }
    }

    // set_conv_path switches every conv layer
    Rng r1(13);
    SimpleCNN<double> model(r1, ConvPath::automatic);
    set_conv_path(model, ConvPath::plain);
    BOOST_TEST((model.conv1.spec().path == ConvPath::plain && model.conv2.spec().path == ConvPath::plain));
    BOOST_TEST(max_abs_diff(logits_of(model, images), yp) < 1e-12);

    // and in float
    Rng r3(15), r4(15);
    SimpleCNN<float> ff(r3, ConvPath::automatic), fp(r4, ConvPath::plain);
    BOOST_TEST(max_abs_diff(logits_of(ff, images.cast<float>()), logits_of(fp, images.cast<float>())) < 1e-5);
}

// Every element of the images and of all 62,006 parameters, central differences in double: 136,300
// forward passes of a batch of 2 (about 30 s in Release on 2 cores). An unoptimised build (Debug,
// sanitizers) is tens of times slower, so there the check samples 64 elements per tensor.
// Labelled "slow": leave it out with --run_test='!@slow'.
#ifdef NDEBUG
constexpr std::size_t full_check_max_elements = 0;
#else
constexpr std::size_t full_check_max_elements = 64;
#endif

BOOST_AUTO_TEST_CASE(simple_cnn_automatic_path_gradient_check_every_element, *boost::unit_test::label("slow")) {
    double seconds = 0;
    const GradCheckReport report = check_simple_cnn(ConvPath::automatic, full_check_max_elements, &seconds);
    BOOST_TEST_MESSAGE("SimpleCNN (automatic path) gradient check, "
                       << (full_check_max_elements
                               ? std::to_string(full_check_max_elements) + " elements per tensor (unoptimised build)"
                               : "every element")
                       << ": " << seconds << " s\n"
                       << report.table());
    BOOST_TEST(report.passed(), report.table());
    BOOST_TEST_REQUIRE(report.entries.size() == 11u);  // images + 10 parameters
    std::size_t checked = 0;
    for (const GradCheckEntry& e : report.entries) {
        const std::size_t want = full_check_max_elements ? std::min(full_check_max_elements, e.shape.numel()) : e.shape.numel();
        BOOST_TEST(e.checked == want, e.name);
        checked += e.checked;
    }
    if (full_check_max_elements == 0) BOOST_TEST(checked == 2u * 3 * 32 * 32 + 62006u);
    BOOST_TEST(std::isfinite(report.loss));
}

BOOST_AUTO_TEST_CASE(simple_cnn_correlate2d_path_gradient_check_sampled) {
    double seconds = 0;
    const GradCheckReport report = check_simple_cnn(ConvPath::correlate2d, 150, &seconds);
    BOOST_TEST_MESSAGE("SimpleCNN (correlate2d path) gradient check, 150 elements per tensor: " << seconds << " s\n"
                                                                                              << report.table());
    BOOST_TEST(report.passed(), report.table());
    BOOST_TEST_REQUIRE(report.entries.size() == 11u);
    for (const GradCheckEntry& e : report.entries) BOOST_TEST(e.checked == std::min<std::size_t>(150, e.shape.numel()), e.name);
}

BOOST_AUTO_TEST_CASE(tuned_and_manual_models_have_the_notebooks_shapes) {
    Rng rng(0);
    TunedCNN<float> tuned(rng);
    BOOST_TEST(tuned.parameter_count() == 1187978u);
    BOOST_TEST(tuned.conv3.weight.value.shape() == (Shape{128, 64, 5, 5}));
    BOOST_TEST(tuned.fc1.weight.value.shape() == (Shape{256, 3200}));
    ManualCNN<float> manual(rng);
    BOOST_TEST(manual.parameter_count() == 68288u);
    BOOST_TEST(manual.conv1.bias.value.shape() == (Shape{6, 28, 28}));
    BOOST_TEST(manual.conv2.bias.value.shape() == (Shape{16, 10, 10}));
    BOOST_TEST((manual.conv1.bias.value.array() == 0.0f).all());  // the notebook's untied bias starts at zero
    BOOST_TEST(manual.conv1.weight.value.array().abs().maxCoeff() <= std::sqrt(1.0f / 75.0f));
    BOOST_TEST((manual.conv1.spec().path == ConvPath::correlate2d));
    for (Module<float>* m : std::initializer_list<Module<float>*>{&tuned, &manual}) {
        Tape<float> tape(Tape<float>::Mode::inference);
        const Var<float> y = m->forward(tape.constant(random_images(3, 5).cast<float>()));
        BOOST_TEST(y.shape() == (Shape{3, 10}), m->type_name());
    }
    BOOST_TEST(make_model<float>("tuned", rng)->type_name() == "TunedCNN");
    BOOST_TEST(contains(error_of([&] { make_model<float>("resnet", rng); }), "simple, tuned, manual"));
}

// Every parameter of the two other models, sampled (their full checks take minutes).
BOOST_AUTO_TEST_CASE(tuned_and_manual_gradients_check_sampled) {
    for (const char* name : {"tuned", "manual"}) {
        Rng rng(31);
        auto model = make_model<double>(name, rng);
        const std::vector<int> labels{1, 8};
        GradCheckOptions options;
        options.max_elements = 12;
        const GradCheckReport r = mcnn::gradcheck(
            [&](Tape<double>&, const std::vector<Var<double>>& in) { return softmax_cross_entropy(model->forward(in[0]), labels); },
            {{"images", random_images(2, 32)}}, model->parameters(), options);
        BOOST_TEST(r.passed(), name << "\n" << r.table());
        BOOST_TEST(r.entries.size() == 1 + model->parameters().size());
    }
}

// Model options (registry.hpp's ModelOption): widths and dropout set from the command line or a
// search; the defaults build the notebook's models draw for draw; bad names and values refused.
BOOST_AUTO_TEST_CASE(model_options_set_widths_and_dropout_and_bad_ones_are_refused) {
    Rng a(0), b(0), c(0);
    auto plain = make_model<float>("simple", a);
    auto defaults = make_model<float>("simple", b, {{"conv1", 6}, {"fc2", 84}});
    BOOST_REQUIRE_EQUAL(plain->parameters().size(), defaults->parameters().size());
    for (std::size_t i = 0; i < plain->parameters().size(); ++i)
        BOOST_TEST(max_abs_diff(plain->parameters()[i]->value, defaults->parameters()[i]->value) == 0.0);
    auto wide = make_model<float>("simple", c, {{"conv1", 12}, {"fc1", 64}});
    auto& simple = dynamic_cast<SimpleCNN<float>&>(*wide);
    BOOST_TEST(simple.conv1.weight.value.shape() == (Shape{12, 3, 5, 5}));
    BOOST_TEST(simple.conv2.weight.value.shape() == (Shape{16, 12, 5, 5}));
    BOOST_TEST(simple.fc1.weight.value.shape() == (Shape{64, 400}));
    BOOST_TEST(simple.fc2.weight.value.shape() == (Shape{84, 64}));
    {
        Tape<float> tape(Tape<float>::Mode::inference);
        BOOST_TEST(wide->forward(tape.constant(random_images(3, 5).cast<float>())).shape() == (Shape{3, 10}));
    }
    Rng d(0);
    auto dropped = make_model<float>("tuned", d, {{"dropout", 0.5}, {"fc2", 128}});
    auto& tuned = dynamic_cast<TunedCNN<float>&>(*dropped);
    BOOST_TEST((tuned.drop1 && tuned.drop2 && tuned.drop3));
    BOOST_TEST(tuned.fc3.weight.value.shape() == (Shape{10, 128}));
    Rng e(0);
    BOOST_TEST(!dynamic_cast<TunedCNN<float>&>(*make_model<float>("tuned", e)).drop1);  // no dropout by default
    {  // training mode drops: two calls differ; evaluation does not
        Tape<float> tape;
        const Tensor<float> x = random_images(2, 6).cast<float>();
        const Tensor<float> y1 = dropped->forward(tape.constant(x)).value(), y2 = dropped->forward(tape.constant(x)).value();
        BOOST_TEST(max_abs_diff(y1, y2) > 0.0);
    }
    Rng f(0);
    CHECK_MESSAGE_HAS(error_of([&] { make_model<float>("simple", f, {{"depth", 3}}); }),
                      "model 'simple' has no option 'depth'; its options: conv1, conv2, fc1, fc2");
    CHECK_MESSAGE_HAS(error_of([&] { make_model<float>("simple", f, {{"conv1", 0}}); }), "option conv1 must be from 1 to 1024, got 0");
    CHECK_MESSAGE_HAS(error_of([&] { make_model<float>("simple", f, {{"conv1", 2.5}}); }), "option conv1 must be an integer, got 2.5");
    CHECK_MESSAGE_HAS(error_of([&] { make_model<float>("tuned", f, {{"dropout", 1}}); }), "option dropout must be from 0 to 0.95");
    CHECK_MESSAGE_HAS(error_of([&] { make_model<float>("manual", f, {{"conv1", 8}}); }), "model 'manual' has no options");
}

BOOST_AUTO_TEST_SUITE_END()
