// Batch norm (batch_norm2d node, BatchNorm2d layer) and module buffers: values against numbers
// worked out by hand, the fast path against the plain loops, running statistics as PyTorch keeps
// them, eval mode, refusals of bad input, and buffers saved in checkpoints and restored on resume.
// (The numeric gradient check and the backward contract run on the registry's cases in
// node_gradients and nonfinite.)
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "mcnn/data/dataset.hpp"
#include "mcnn/nn/layers.hpp"
#include "mcnn/nn/summary.hpp"
#include "mcnn/ops/activation.hpp"
#include "mcnn/ops/elementwise.hpp"
#include "mcnn/ops/norm.hpp"
#include "mcnn/ops/pool.hpp"
#include "mcnn/ops/shape.hpp"
#include "mcnn/optim/sgd.hpp"
#include "mcnn/threads.hpp"
#include "mcnn/train/checkpoint.hpp"
#include "mcnn/train/trainer.hpp"
#include "support.hpp"

using namespace mcnn;
using namespace mcnn::test;
namespace fs = std::filesystem;

namespace {

// A 2 x 2 x 2 x 2 batch: channel 0 holds 1..8 (mean 4.5, biased var 5.25, unbiased 6), channel 1
// holds -1, 0, 0, 1, 2, 2, -2, -2 (mean 0, biased var 18/8, unbiased 18/7).
template <class T>
Tensor<T> small_batch() {
    return Tensor<T>(Shape{2, 2, 2, 2}, std::vector<T>{1, 2, 3, 4, -1, 0, 0, 1, 5, 6, 7, 8, 2, 2, -2, -2});
}

// (x - mean[c]) / sqrt(var[c] + eps) * w[c] + b[c] for `small_batch`'s layout, in double.
template <class T>
Tensor<T> normalised(const Tensor<T>& x, const double (&mean)[2], const double (&var)[2], const double (&w)[2], const double (&b)[2],
                     double eps) {
    Tensor<T> y(x.shape());
    for (std::size_t i = 0; i < x.numel(); ++i) {
        const std::size_t c = (i / 4) % 2;
        y[i] = static_cast<T>((static_cast<double>(x[i]) - mean[c]) / std::sqrt(var[c] + eps) * w[c] + b[c]);
    }
    return y;
}

// sum(y), as weighted_sum with weights 1.
template <class T>
Var<T> sum(const Var<T>& y) {
    return weighted_sum(y, Tensor<T>(y.shape(), T(1)));
}

template <class T>
Tensor<T> values(std::vector<T> v) {
    const int n = static_cast<int>(v.size());
    return Tensor<T>(Shape{n}, std::move(v));
}

// x -> conv 3->4 -> batch norm -> relu -> max-pool 2 -> linear: a small model with buffers.
struct BnNet : Module<float> {
    Conv2d<float> conv;
    BatchNorm2d<float> bn;
    Linear<float> head;
    explicit BnNet(Rng& rng)
        : conv({.in_channels = 3, .out_channels = 4, .kernel = 3, .padding = 1, .bias = BiasKind::none}, rng), bn(4),
          head(4 * 4 * 4, 4, rng) {
        register_modules({{"conv", conv}, {"bn", bn}, {"head", head}});
    }
    Var<float> forward(const Var<float>& x) override { return head(flatten(max_pool2d(relu(bn(conv(x))), 2))); }
    std::string type_name() const override { return "BnNet"; }
};

// n images 3 x 8 x 8 whose class (of 4) is the brightest quadrant, offset and scaled so that the
// batch statistics are far from 0 and 1.
data::TensorDataset bright_quadrants(int n, std::uint64_t seed) {
    Rng rng(seed);
    Tensor<float> x(Shape{n, 3, 8, 8});
    std::vector<int> labels;
    for (int i = 0; i < n; ++i) {
        labels.push_back(i % 4);
        for (int ch = 0; ch < 3; ++ch)
            for (int r = 0; r < 8; ++r)
                for (int col = 0; col < 8; ++col)
                    x.at({i, ch, r, col}) = static_cast<float>(3 + 2 * (rng.uniform(-0.5, 0.5) + ((r / 4) * 2 + col / 4 == i % 4)));
    }
    return data::TensorDataset(std::move(x), std::move(labels), 4);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(batch_norm)

BOOST_AUTO_TEST_CASE_TEMPLATE(train_mode_normalises_with_the_batch_statistics, T, scalar_types) {
    Tape<T> tape;
    const Var<T> x = tape.input(small_batch<T>());
    Parameter<T> w("w", values<T>({2, 0.5})), b("b", values<T>({0.5, -1}));
    Tensor<T> running_mean(Shape{2}), running_var(Shape{2}, T(1));
    const Var<T> y = batch_norm2d(x, tape.param(w), tape.param(b), {&running_mean, &running_var}, {.training = true});
    check_close(y.value(), normalised(small_batch<T>(), {4.5, 0}, {5.25, 2.25}, {2, 0.5}, {0.5, -1}, 1e-5), "y");
    // running = 0.9 running + 0.1 batch, with the unbiased variance
    check_close(running_mean, values<T>({0.45, 0}), "running mean after one step");
    check_close(running_var, values<T>({T(0.9 + 0.6), T(0.9 + 0.1 * 18.0 / 7.0)}), "running var after one step");

    // L = sum(y): sum_c xhat = 0, so dL/dx = 0; dL/dw = sum xhat = 0; dL/db = N = 8
    tape.backward(sum(y));
    check_close(x.grad(), Tensor<T>(x.shape()), false, 1e-5, "dL/dx of sum(y)");
    check_close(w.grad, Tensor<T>(Shape{2}), false, 1e-5, "dL/dw of sum(y)");
    check_close(b.grad, values<T>({8, 8}), "dL/db of sum(y)");
}

BOOST_AUTO_TEST_CASE_TEMPLATE(the_layer_keeps_running_statistics_over_two_steps_and_uses_them_in_eval, T, scalar_types) {
    BatchNorm2d<T> bn(2, {.momentum = 0.25, .eps = 1e-3});
    bn.weight.value = values<T>({2, 0.5});
    bn.bias.value = values<T>({0.5, -1});
    const Tensor<T> first = small_batch<T>();
    Tensor<T> second = small_batch<T>();
    for (T& v : second) v = 2 * v + 1;  // channel 0: mean 10, unbiased var 24; channel 1: mean 1, unbiased var 72/7
    for (const Tensor<T>* batch : {&first, static_cast<const Tensor<T>*>(&second)}) {
        Tape<T> tape;
        (void)bn(tape.input(*batch));
    }
    const double mean0 = 0.75 * (0.75 * 0 + 0.25 * 4.5) + 0.25 * 10, mean1 = 0.75 * 0 + 0.25 * 1;
    const double var0 = 0.75 * (0.75 * 1 + 0.25 * 6) + 0.25 * 24, var1 = 0.75 * (0.75 * 1 + 0.25 * 18.0 / 7) + 0.25 * 72.0 / 7;
    check_close(bn.running_mean, values<T>({T(mean0), T(mean1)}), "running mean after two steps");
    check_close(bn.running_var, values<T>({T(var0), T(var1)}), "running var after two steps");

    bn.eval();
    Tape<T> tape(Tape<T>::Mode::inference);
    const Tensor<T> y = bn(tape.constant(small_batch<T>())).value();
    check_close(y, normalised(small_batch<T>(), {mean0, mean1}, {var0, var1}, {2, 0.5}, {0.5, -1}, 1e-3), "eval output");
    check_close(bn.running_mean, values<T>({T(mean0), T(mean1)}), "eval leaves the running mean");
}

BOOST_AUTO_TEST_CASE_TEMPLATE(eval_mode_gradients_are_those_of_a_per_channel_affine_map, T, scalar_types) {
    Tape<T> tape;
    const Var<T> x = tape.input(small_batch<T>());
    Parameter<T> w("w", values<T>({2, 0.5})), b("b", values<T>({0.5, -1}));
    Tensor<T> mean = values<T>({1, -1}), var = values<T>({3, 0.25});
    tape.backward(sum(batch_norm2d(x, tape.param(w), tape.param(b), {&mean, &var}, {.training = false, .eps = 1e-5})));
    const double inv0 = 1 / std::sqrt(3 + 1e-5), inv1 = 1 / std::sqrt(0.25 + 1e-5);
    Tensor<T> gx(x.shape());
    for (std::size_t i = 0; i < gx.numel(); ++i) gx[i] = static_cast<T>((i / 4) % 2 == 0 ? 2 * inv0 : 0.5 * inv1);
    check_close(x.grad(), gx, "dx = w / sqrt(var + eps)");
    // dw = sum (x - mean) / sqrt(var + eps): channel 0 sums 36 - 8, channel 1 sums 0 + 8
    check_close(w.grad, values<T>({T(28 * inv0), T(8 * inv1)}), "dw");
    check_close(b.grad, values<T>({8, 8}), "db");
}

// The fast path (Eigen, channels split between threads) against the plain loops, forward and
// backward, both modes, affine or not; and bit-identical results for 1 and 2 threads.
BOOST_AUTO_TEST_CASE_TEMPLATE(fast_path_equals_the_plain_loops, T, scalar_types) {
    std::mt19937 gen(5);
    const Shape xs{5, 7, 9, 11};
    const Tensor<T> x0 = uniform<T>(xs, gen), gy = uniform<T>(xs, gen);
    Tensor<T> w0 = uniform<T>(Shape{7}, gen), b0 = uniform<T>(Shape{7}, gen);
    for (bool training : {true, false})
        for (bool affine : {true, false}) {
            BOOST_TEST_CONTEXT("training " << training << ", affine " << affine) {
                Tensor<T> mean = uniform<T>(Shape{7}, gen), var = uniform<T>(Shape{7}, gen);
                for (T& v : var) v = v * v + T(0.5);
                const auto run = [&](int threads, Tensor<T>& gx, Parameter<T>& w, Parameter<T>& b) {
                    ThreadLimit limit(threads);
                    Tape<T> tape;
                    const Var<T> x = tape.input(x0);
                    Tensor<T> rm = mean, rv = var;
                    const BatchNorm2dOptions o{.training = training, .eps = 1e-3};
                    const Var<T> y = affine ? batch_norm2d(x, tape.param(w), tape.param(b), {&rm, &rv}, o) : batch_norm2d(x, {&rm, &rv}, o);
                    tape.backward(weighted_sum(y, gy));
                    gx = x.grad();
                    return y.value();
                };
                Parameter<T> w1("w", w0), b1("b", b0), w2("w", w0), b2("b", b0);
                Tensor<T> gx1, gx2;
                const Tensor<T> y1 = run(1, gx1, w1, b1), y2 = run(2, gx2, w2, b2);
                check_equal(y2, y1, "y, 2 threads vs 1");
                check_equal(gx2, gx1, "dx, 2 threads vs 1");
                check_equal(w2.grad, w1.grad, "dw, 2 threads vs 1");

                Tensor<T> pm = mean, pv = var, py, pgx(xs), pgw(Shape{7}), pgb(Shape{7});
                norm::plain_forward(x0, affine ? &w0 : nullptr, affine ? &b0 : nullptr, training, 1e-3, pm, pv, py);
                norm::plain_backward(x0, affine ? &w0 : nullptr, training, 1e-3, pm, pv, gy, pgx, &pgw, &pgb);
                const double tol = std::is_same_v<T, float> ? 2e-5 : 1e-12;
                check_close(y1, py, false, tol, "y vs plain loops");
                check_close(gx1, pgx, false, tol, "dx vs plain loops");
                if (affine) {
                    check_close(w1.grad, pgw, false, tol, "dw vs plain loops");
                    check_close(b1.grad, pgb, false, tol, "db vs plain loops");
                }
            }
        }
}

BOOST_AUTO_TEST_CASE(bad_input_is_refused_naming_what_is_wrong) {
    BOOST_TEST(contains(error_of([] { BatchNorm2d<float>(4, {.eps = 0}); }), "eps must be finite and > 0, got 0"));
    BOOST_TEST(contains(error_of([] { BatchNorm2d<float>(4, {.eps = -1e-5}); }), "eps must be finite and > 0, got -1e-05"));
    BOOST_TEST(contains(error_of([] { BatchNorm2d<float>(4, {.momentum = 1.5}); }), "momentum must be in [0, 1], got 1.5"));
    BOOST_TEST(contains(error_of([] { BatchNorm2d<float>(4, {.momentum = -0.1}); }), "momentum must be in [0, 1], got -0.1"));
    BOOST_TEST(contains(error_of([] { BatchNorm2d<float>(0); }), "channels must be >= 1, got 0"));

    BatchNorm2d<float> bn(4), plain(4, {.affine = false});
    Tape<float> tape;
    CHECK_MESSAGE_HAS(error_of([&] { bn(tape.input(Tensor<float>(Shape{2, 3, 5, 5}))); }),
                      "weight must have shape [3] (one per channel of input [2, 3, 5, 5]), got [4]");
    CHECK_MESSAGE_HAS(error_of([&] { plain(tape.input(Tensor<float>(Shape{2, 3, 5, 5}))); }),
                      "running mean must have shape [3] (one per channel of input [2, 3, 5, 5]), got [4]");
    CHECK_MESSAGE_HAS(error_of([&] { bn(tape.input(Tensor<float>(Shape{2, 4}))); }), "input must be B x C x H x W, got [2, 4]");
    CHECK_MESSAGE_HAS(error_of([&] { bn(tape.input(Tensor<float>(Shape{1, 4, 1, 1}))); }),
                      "train mode needs more than one value per channel, got input [1, 4, 1, 1]");
    bn.eval();  // one value per channel is fine with running statistics
    BOOST_TEST(bn(tape.input(Tensor<float>(Shape{1, 4, 1, 1}))).shape() == (Shape{1, 4, 1, 1}));

    const Var<float> x = tape.input(Tensor<float>(Shape{2, 4, 3, 3}));
    CHECK_MESSAGE_HAS(error_of([&] { batch_norm2d(x, BatchNormRunning<float>{}, {.training = false}); }),
                      "eval mode needs the running mean and var");
    CHECK_MESSAGE_HAS(error_of([&] { batch_norm2d(x, BatchNormRunning<float>{}, {.momentum = 2}); }), "momentum must be in [0, 1], got 2");
    CHECK_MESSAGE_HAS(error_of([&] { batch_norm2d(x, BatchNormRunning<float>{}, {.eps = std::nan("")}); }), "eps must be finite and > 0");
}

BOOST_AUTO_TEST_CASE(the_layer_registers_parameters_and_buffers_by_path) {
    Rng rng(3);
    BnNet net(rng);
    std::vector<std::string> params, buffers;
    for (const Parameter<float>* p : net.parameters()) params.push_back(p->name);
    for (const NamedBuffer<float>& b : net.buffers()) buffers.push_back(b.name);
    const std::vector<std::string> want_params{"conv.weight", "bn.weight", "bn.bias", "head.weight", "head.bias"};
    const std::vector<std::string> want_buffers{"bn.running_mean", "bn.running_var"};
    BOOST_TEST(params == want_params, boost::test_tools::per_element());
    BOOST_TEST(buffers == want_buffers, boost::test_tools::per_element());
    check_equal(net.bn.weight.value, values<float>({1, 1, 1, 1}), "weight starts at 1");
    check_equal(net.bn.bias.value, values<float>({0, 0, 0, 0}), "bias starts at 0");
    check_equal(net.bn.running_mean, values<float>({0, 0, 0, 0}), "running mean starts at 0");
    check_equal(net.bn.running_var, values<float>({1, 1, 1, 1}), "running var starts at 1");
    BOOST_TEST(net.bn.describe() == "4 channels, momentum 0.1, eps 1e-05");
    BOOST_TEST(BatchNorm2d<float>(3, {.affine = false}).parameters().empty());

    // the summary lists the buffers, and probing the model for it changes no running statistic
    const std::string text = summary(net, Shape{1, 3, 8, 8}, "bn");
    CHECK_MESSAGE_HAS(text, "Buffers (saved, not trained): 8 values in 2 tensors (bn.running_mean, ...)");
    check_equal(net.bn.running_var, values<float>({1, 1, 1, 1}), "running var after the summary");
    BOOST_TEST(net.is_training());

    struct Twice : Module<float> {
        Tensor<float> t;
        Twice() {
            register_buffer("a", t);
            register_buffer("b", t);
        }
        Var<float> forward(const Var<float>& x) override { return x; }
    } twice;
    CHECK_MESSAGE_HAS(error_of([&] { twice.buffers(); }), "buffer 'b' is registered twice in one model (as 'a' and 'b')");
    struct Clash : Module<float> {
        Tensor<float> t;
        Parameter<float> p;
        Clash() {
            register_parameter("x", p);
            register_buffer("x", t);
        }
        Var<float> forward(const Var<float>& x) override { return x; }
    };
    CHECK_MESSAGE_HAS(error_of([] { Clash c; }), "a parameter, buffer or submodule named 'x' is already registered");
}

BOOST_AUTO_TEST_CASE(buffers_round_trip_through_checkpoints_and_bad_ones_are_refused) {
    TempDir tmp;
    const fs::path path = tmp.path / "c.safetensors";
    Rng rng(4);
    BnNet saved(rng);
    saved.bn.running_mean = values<float>({0.25f, -1, 3, 0.5f});
    saved.bn.running_var = values<float>({2, 0.125f, 7, 1.5f});
    save_checkpoint(path, saved, nullptr, "bn", {});
    const TensorFile file = load_safetensors(path);
    BOOST_TEST_REQUIRE(file.contains("model/bn.running_mean"));
    check_equal(file.at("model/bn.running_var"), saved.bn.running_var, "running var as saved");

    Rng other(5);
    BnNet target(other);
    load_checkpoint(path, target, nullptr, "bn");
    check_equal(target.bn.running_mean, saved.bn.running_mean, "running mean restored");
    check_equal(target.bn.running_var, saved.bn.running_var, "running var restored");

    const auto refused = [&](TensorFile f) {
        save_safetensors(path, f);
        BnNet fresh(other);
        const std::string msg = error_of([&] { load_checkpoint(path, fresh, nullptr, "bn"); });
        check_equal(fresh.bn.running_var, values<float>({1, 1, 1, 1}), "running var untouched by a refused load");
        return msg;
    };
    TensorFile missing = file;
    std::erase_if(missing.tensors, [](const auto& t) { return t.first == "model/bn.running_var"; });
    CHECK_MESSAGE_HAS(refused(missing), "buffer 'bn.running_var' (tensor 'model/bn.running_var') is missing");
    TensorFile wrong = file;
    for (auto& [name, t] : wrong.tensors)
        if (name == "model/bn.running_mean") t = Tensor<float>(Shape{3});
    CHECK_MESSAGE_HAS(refused(wrong), "buffer 'bn.running_mean' has shape [3] in the checkpoint but [4] in the model");
    TensorFile bad = file;
    for (auto& [name, t] : bad.tensors)
        if (name == "model/bn.running_var") t[2] = std::nanf("");
    CHECK_MESSAGE_HAS(refused(bad), "model/bn.running_var holds nan at element 2");

    // a non-finite buffer is found by the divergence check and never saved
    saved.bn.running_mean[1] = INFINITY;
    const auto found = first_non_finite(saved, nullptr);
    BOOST_TEST_REQUIRE(found.has_value());
    BOOST_TEST(found->tensor == "model/bn.running_mean");
    CHECK_MESSAGE_HAS(error_of([&] { save_checkpoint(path, saved, nullptr, "bn", {}); }), "model/bn.running_mean holds inf at element 1");
}

// A model with batch norm trained 2 epochs, then resumed to 4, ends bit for bit as the unbroken
// 4-epoch run: parameters and running statistics; evaluation uses the running statistics.
BOOST_AUTO_TEST_CASE(fit_resumes_a_batch_norm_model_bit_exactly) {
    const TempDir tmp;
    const data::TensorDataset train_set = bright_quadrants(64, 1), test_set = bright_quadrants(24, 2);
    const auto run = [&](const fs::path& dir, int epochs, bool resume) {
        Rng rng(9);
        BnNet net(rng);
        Sgd<float> sgd(net.parameters(), {.lr = 0.05, .momentum = 0.9});
        FitOptions o;
        o.epochs = epochs;
        o.batch = 8;
        o.plots = false;
        o.run_dir = dir;
        o.resume = resume;
        o.model_name = "bn";
        o.out = nullptr;
        const TrainResult r = fit(net, sgd, train_set, test_set, o);
        return std::make_tuple(r, net.head.weight.value, net.bn.running_mean, net.bn.running_var);
    };
    const auto [straight, w_straight, mean_straight, var_straight] = run(tmp.path / "straight", 4, false);
    BOOST_TEST(straight.test.accuracy > 60.0, "test accuracy " << straight.test.accuracy);
    // the running mean has moved far from 0 toward the conv outputs' mean, which is not near 0
    BOOST_TEST(std::abs(mean_straight[0]) > 0.01f);
    run(tmp.path / "broken", 2, false);
    const auto [resumed, w_resumed, mean_resumed, var_resumed] = run(tmp.path / "broken", 4, true);
    check_equal(w_resumed, w_straight, "head weight, resumed vs straight");
    check_equal(mean_resumed, mean_straight, "running mean, resumed vs straight");
    check_equal(var_resumed, var_straight, "running var, resumed vs straight");
    BOOST_TEST(resumed.test.accuracy == straight.test.accuracy);
}

BOOST_AUTO_TEST_SUITE_END()
