// FastNet (the "fast" model, airbench94's layout): its parameters, buffers and shapes, a sampled
// gradient check of a narrow FastNet in double, the whitening filters that init_from_data computes
// (they make the data's 2x2 patches uncorrelated), the dirac start of the block convs, the batch
// norm whose weight stays 1, and fit calling init_from_data on a new run only.
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "mcnn/check/gradcheck.hpp"
#include "mcnn/data/dataset.hpp"
#include "mcnn/nn/models.hpp"
#include "mcnn/nn/registry.hpp"
#include "mcnn/ops/loss.hpp"
#include "mcnn/ops/shape.hpp"
#include "mcnn/optim/sgd.hpp"
#include "mcnn/train/trainer.hpp"
#include "support.hpp"

using namespace mcnn;
using namespace mcnn::test;

namespace {

/// Images whose channels and neighbouring pixels are correlated (a smooth ramp shared by the three
/// channels in different amounts, plus noise), so whitening has something to undo.
Tensor<double> correlated_images(int batch, std::uint64_t seed) {
    Rng rng(seed);
    Tensor<double> x(Shape{batch, 3, 8, 8});
    for (int b = 0; b < batch; ++b) {
        const double tilt = rng.uniform(-1, 1), level = rng.uniform(-0.5, 0.5);
        for (int y = 0; y < 8; ++y)
            for (int w = 0; w < 8; ++w) {
                const double common = level + tilt * (y + w) / 8.0;
                for (int c = 0; c < 3; ++c) x.at({b, c, y, w}) = (1 + 0.5 * c) * common + 0.3 * rng.normal(0, 1);
            }
    }
    return x;
}

/// The 12 values of the 2x2 patch at (y, x) of image b, in the filters' order (channel, row, column).
std::vector<double> patch(const Tensor<double>& images, int b, int y, int x) {
    std::vector<double> p;
    for (int c = 0; c < 3; ++c)
        for (int i = 0; i < 2; ++i)
            for (int j = 0; j < 2; ++j) p.push_back(images.at({b, c, y + i, x + j}));
    return p;
}

/// A FastNet that wants `wanted` examples and counts init_from_data calls (for fit's contract).
struct CountingFastNet : FastNet<float> {
    CountingFastNet(Rng& rng, std::size_t wanted) : FastNet<float>(rng, FastNetSpec{.widths = {8, 8, 8}}), wanted(wanted) {}
    std::size_t data_init_examples() const override { return wanted; }
    void init_from_data(const Tensor<float>& examples) override {
        ++calls;
        examples_seen = examples.shape()[0];
        FastNet<float>::init_from_data(examples);
    }
    std::size_t wanted;
    int calls = 0, examples_seen = 0;
};

}  // namespace

BOOST_AUTO_TEST_SUITE(fast_net)

BOOST_AUTO_TEST_CASE(fast_net_has_airbench_shapes_parameters_and_buffers) {
    Rng rng(3);
    auto model = make_model<float>("fast", rng);
    BOOST_TEST(model->type_name() == "FastNet");
    // whitening bias 24; convs 24*64*9 + 64*64*9 + 64*256*9 + 3 * 256*256*9; batch-norm biases
    // 2 * (64 + 256 + 256); head 256 * 10 (no bias).
    const std::size_t expected = 24 + 9 * (24 * 64 + 64 * 64 + 64 * 256 + 3 * 256 * 256) + 2 * (64 + 256 + 256) + 2560;
    BOOST_TEST(model->parameter_count() == expected);
    BOOST_TEST(expected == 1971352u);
    std::vector<std::string> names;
    for (Parameter<float>* p : model->parameters()) names.push_back(p->name);
    const std::vector<std::string> want{"whiten_bias",         "block1.conv1.weight", "block1.norm1.bias",   "block1.conv2.weight",
                                        "block1.norm2.bias",   "block2.conv1.weight", "block2.norm1.bias",   "block2.conv2.weight",
                                        "block2.norm2.bias",   "block3.conv1.weight", "block3.norm1.bias",   "block3.conv2.weight",
                                        "block3.norm2.bias",   "head.weight"};
    BOOST_TEST(names == want, boost::test_tools::per_element());
    const auto buffers = model->buffers();
    BOOST_TEST_REQUIRE(buffers.size() == 13u);  // the whitening filters and 6 x 2 running statistics
    BOOST_TEST(buffers[0].name == "whiten_weight");
    BOOST_TEST((buffers[0].tensor->shape() == Shape{24, 3, 2, 2}));
    Tape<float> tape(Tape<float>::Mode::inference);
    model->eval();
    BOOST_TEST((model->forward(tape.constant(Tensor<float>(Shape{2, 3, 32, 32}))).shape() == Shape{2, 10}));
}

// Every parameter and the input, sampled, through whitening conv, GELU, three blocks (batch norm in
// training mode, max-pools of 2 and 3), the head and the 1/9 scale; a narrow net in double.
BOOST_AUTO_TEST_CASE(narrow_fast_net_gradients_check_sampled) {
    Rng rng(5);
    FastNet<double> model(rng, FastNetSpec{.widths = {4, 6, 8}});
    Rng data(6);
    const Tensor<double> images = uniform(Shape{3, 3, 32, 32}, data);
    model.init_from_data(images);  // whitening filters instead of random ones
    const std::vector<int> labels{2, 9, 4};
    GradCheckOptions options;
    options.max_elements = 10;
    options.seed = 7;
    const GradCheckReport r = mcnn::gradcheck(
        [&](Tape<double>&, const std::vector<Var<double>>& in) { return softmax_cross_entropy(model.forward(in[0]), labels, 0.2); },
        {{"images", images}}, model.parameters(), options);
    BOOST_TEST(r.passed(), r.table());
    BOOST_TEST(r.entries.size() == 1 + model.parameters().size());
}

// After init_from_data the first 12 filters w_i map the patches p to uncorrelated values:
// mean over patches of (w_i . p)(w_j . p) = 0 for i != j and l_i / (l_i + 5e-4) on the diagonal
// (l_i the eigenvalue, recovered here as 1 / |w_i|^2 - 5e-4); the other 12 are their negatives;
// eigenvalues come largest first.
// The automatic path (winograd for the 16-channel 3x3 layers with outputs of 4 x 4 and more,
// im2col for the others) and im2col give FastNet the same logits and gradients in float, and
// the plain loops agree with both in double.
BOOST_AUTO_TEST_CASE(fast_net_gives_the_same_gradients_on_every_conv_path) {
    const std::vector<int> labels{1, 4, 7};
    Rng data(9);
    const Tensor<double> images = uniform(Shape{3, 3, 32, 32}, data);
    auto gradients = [&]<class T>(ConvPath path, T) {
        Rng rng(10);
        FastNet<T> model(rng, FastNetSpec{.widths = {16, 16, 16}, .dirac = false});
        model.init_from_data(images.cast<T>());
        set_conv_path(model, path);
        Tape<T> tape;
        const Var<T> loss = softmax_cross_entropy(model.forward(tape.constant(images.cast<T>())), labels, 0.2);
        for (Parameter<T>* p : model.parameters()) p->zero_grad();
        tape.backward(loss);
        std::vector<Tensor<double>> out;
        for (Parameter<T>* p : model.parameters()) out.push_back(p->grad.template cast<double>());
        return out;
    };
    const auto plain = gradients(ConvPath::plain, 0.0);
    for (ConvPath path : {ConvPath::automatic, ConvPath::im2col, ConvPath::winograd}) {
        if (path == ConvPath::winograd) continue;  // the 2x2 whitening conv has no winograd path
        const auto fast = gradients(path, 0.0f);
        BOOST_TEST_REQUIRE(fast.size() == plain.size());
        for (std::size_t k = 0; k < plain.size(); ++k) {
            double scale = 0, diff = 0;
            for (std::size_t i = 0; i < plain[k].numel(); ++i) {
                scale = std::max(scale, std::abs(plain[k][i]));
                diff = std::max(diff, std::abs(plain[k][i] - fast[k][i]));
            }
            BOOST_TEST(diff <= 1e-4 * scale + 1e-7, conv_path_name(path) << ", parameter " << k << ": " << diff << " of " << scale);
        }
    }
}

BOOST_AUTO_TEST_CASE(whitening_filters_decorrelate_the_patches) {
    Rng rng(1);
    FastNet<double> model(rng, FastNetSpec{.widths = {4, 4, 4}});
    const Tensor<double> images = correlated_images(40, 2);
    model.init_from_data(images);
    const Tensor<double>& w = model.whiten_weight;
    std::vector<std::vector<double>> sums(12, std::vector<double>(12, 0.0));
    long count = 0;
    for (int b = 0; b < 40; ++b)
        for (int y = 0; y < 7; ++y)
            for (int x = 0; x < 7; ++x, ++count) {
                const std::vector<double> p = patch(images, b, y, x);
                std::vector<double> z(12, 0.0);
                for (int i = 0; i < 12; ++i)
                    for (int d = 0; d < 12; ++d) z[i] += w[static_cast<std::size_t>(i) * 12 + d] * p[d];
                for (int i = 0; i < 12; ++i)
                    for (int j = 0; j < 12; ++j) sums[i][j] += z[i] * z[j];
            }
    double previous = INFINITY;
    for (int i = 0; i < 12; ++i) {
        double norm2 = 0;
        for (int d = 0; d < 12; ++d) norm2 += w[static_cast<std::size_t>(i) * 12 + d] * w[static_cast<std::size_t>(i) * 12 + d];
        const double eigenvalue = 1 / norm2 - 5e-4;
        BOOST_TEST(eigenvalue <= previous * (1 + 1e-9), "filter " << i);
        previous = eigenvalue;
        for (int j = 0; j < 12; ++j) {
            const double cov = sums[i][j] / static_cast<double>(count);
            const double want = i == j ? eigenvalue / (eigenvalue + 5e-4) : 0.0;
            BOOST_TEST(std::abs(cov - want) < 1e-9, "filters " << i << ", " << j << ": " << cov << " vs " << want);
        }
        for (int d = 0; d < 12; ++d)
            BOOST_TEST(w[static_cast<std::size_t>(i + 12) * 12 + d] == -w[static_cast<std::size_t>(i) * 12 + d]);
    }
    BOOST_TEST(1 / (w[0] * w[0] + w[1] * w[1] + w[2] * w[2] + w[3] * w[3] + w[4] * w[4] + w[5] * w[5] + w[6] * w[6] + w[7] * w[7] +
                    w[8] * w[8] + w[9] * w[9] + w[10] * w[10] + w[11] * w[11]) > 10 * previous);  // the ramp outweighs the noise
}

BOOST_AUTO_TEST_CASE(init_from_data_refuses_other_shapes_and_non_finite_images) {
    Rng rng(1);
    FastNet<double> model(rng, FastNetSpec{.widths = {4, 4, 4}});
    const Tensor<double> before = model.whiten_weight;
    BOOST_TEST(contains(error_of([&] { model.init_from_data(Tensor<double>(Shape{2, 1, 8, 8})); }), "B x 3 x H x W"));
    BOOST_TEST(contains(error_of([&] { model.init_from_data(Tensor<double>(Shape{2, 3, 1, 8})); }), "[2, 3, 1, 8]"));
    Tensor<double> bad = correlated_images(2, 3);
    bad[17] = NAN;
    BOOST_TEST(contains(error_of([&] { model.init_from_data(bad); }), "NaN"));
    check_equal(model.whiten_weight, before, "whitening filters after refused calls");
}

BOOST_AUTO_TEST_CASE(block_convs_start_as_dirac_filters_and_the_rest_as_pytorch) {
    Rng rng(8);
    FastNet<float> model(rng);
    const Tensor<float>& w = model.block2.conv1.weight.value;  // 256 x 64 x 3 x 3
    for (int d = 0; d < 256; ++d) {
        double abs_sum = 0;
        for (int n = 0; n < 64; ++n)
            for (int i = 0; i < 3; ++i)
                for (int j = 0; j < 3; ++j) {
                    const float v = w.at({d, n, i, j});
                    abs_sum += std::abs(v);
                    if (d < 64) BOOST_TEST(v == (n == d && i == 1 && j == 1 ? 1.0f : 0.0f));
                    else BOOST_TEST(std::abs(v) <= 1 / std::sqrt(64.0 * 9));
                }
        if (d >= 64) BOOST_TEST(abs_sum > 0.5);
    }
    Rng again(8);
    FastNet<float> plain(again, FastNetSpec{.dirac = false});
    BOOST_TEST(plain.block2.conv1.weight.value.at({0, 0, 1, 1}) != 1.0f);
}

// airbench's batch norm: no weight parameter; the output is that of a norm with weight 1.
BOOST_AUTO_TEST_CASE(batch_norm_with_fixed_weight_learns_only_its_bias) {
    BatchNorm2d<double> fixed(3, BatchNormSpec{.learn_weight = false}), affine(3);
    const auto params = fixed.parameters();
    BOOST_TEST_REQUIRE(params.size() == 1u);
    BOOST_TEST(params[0]->name == "bias");
    BOOST_TEST(contains(fixed.describe(), "weight fixed at 1"));
    for (std::size_t c = 0; c < 3; ++c) fixed.bias.value[c] = affine.bias.value[c] = 0.25 * static_cast<double>(c);
    Rng rng(4);
    const Tensor<double> x = uniform(Shape{2, 3, 4, 4}, rng);
    Tape<double> t1, t2;
    const Var<double> y1 = fixed(t1.input(x)), y2 = affine(t2.input(x));
    check_close(y1.value(), y2.value(), "fixed-weight vs weight-1 batch norm");
    const Var<double> l1 = softmax_cross_entropy(flatten(y1), {0, 5}), l2 = softmax_cross_entropy(flatten(y2), {0, 5});
    for (Parameter<double>* p : fixed.parameters()) p->zero_grad();
    for (Parameter<double>* p : affine.parameters()) p->zero_grad();
    t1.backward(l1);
    t2.backward(l2);
    check_close(fixed.bias.grad, affine.bias.grad, "bias gradients");
}

BOOST_AUTO_TEST_CASE(fit_initialises_from_data_on_a_new_run_only) {
    TempDir tmp;
    const Tensor<float> images = correlated_images(12, 5).cast<float>();
    std::vector<int> labels;
    for (int i = 0; i < 12; ++i) labels.push_back(i % 10);
    // 8 x 8 images: FastNet's blocks take 8 -> 7 -> 3 -> 1 -> 0, too small; pad to 32 x 32.
    Tensor<float> big(Shape{12, 3, 32, 32});
    for (int b = 0; b < 12; ++b)
        for (int c = 0; c < 3; ++c)
            for (int y = 0; y < 32; ++y)
                for (int x = 0; x < 32; ++x) big.at({b, c, y, x}) = images.at({b, c, y % 8, x % 8});
    const data::TensorDataset set(big, labels, 10);
    auto run = [&](bool resume, std::size_t wanted) {
        Rng rng(0);
        CountingFastNet model(rng, wanted);
        Sgd<float> sgd(model.parameters(), {.lr = 0.01, .momentum = 0.9});
        FitOptions o;
        o.epochs = resume ? 2 : 1;
        o.batch = 4;
        o.eval_batch = 6;
        o.run_dir = tmp.path / "run";
        o.resume = resume;
        o.plots = false;
        o.model_name = "fast";
        o.out = nullptr;
        o.label_smoothing = 0.2;
        (void)fit(model, sgd, set, set, o);
        return std::make_pair(model.calls, model.examples_seen);
    };
    const auto [calls, seen] = run(false, 5);
    BOOST_TEST(calls == 1);
    BOOST_TEST(seen == 5);
    std::filesystem::remove_all(tmp.path / "run");
    BOOST_TEST(run(false, 5000).second == 12);  // as many as there are
    BOOST_TEST(run(true, 5).first == 0);  // the checkpoint holds the filters
    std::filesystem::remove_all(tmp.path / "run");
    BOOST_TEST(run(false, 0).first == 0);
}

BOOST_AUTO_TEST_CASE(fit_refuses_label_smoothing_outside_0_to_1) {
    Rng rng(0);
    FastNet<float> model(rng, FastNetSpec{.widths = {4, 4, 4}});
    Sgd<float> sgd(model.parameters(), {.lr = 0.01});
    const data::TensorDataset set(Tensor<float>(Shape{4, 3, 32, 32}), {0, 1, 2, 3}, 10);
    FitOptions o;
    o.batch = 2;
    o.out = nullptr;
    o.label_smoothing = 1.5;
    BOOST_TEST(contains(error_of([&] { (void)fit(model, sgd, set, set, o); }), "label smoothing must be in [0, 1], got 1.5"));
}

BOOST_AUTO_TEST_SUITE_END()
