// The nodes of modern networks (issue 12), beyond what the node registry checks for every node
// (gradients in double, the backward contract, NaN propagation): their values, worked out by hand
// or with Python's math.erf, their errors for bad input, dropout's seeded masks and thread
// independence, label smoothing's loss against its closed form, and the modules around them.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "mcnn/nn/layers.hpp"
#include "mcnn/ops/activation.hpp"
#include "mcnn/ops/correlate2d.hpp"
#include "mcnn/ops/dropout.hpp"
#include "mcnn/ops/elementwise.hpp"
#include "mcnn/ops/loss.hpp"
#include "mcnn/ops/pool.hpp"
#include "mcnn/threads.hpp"
#include "support.hpp"

using namespace mcnn;
using namespace mcnn::test;

namespace {

// y = node(x) and dL/dx for L = <y, upstream>.
template <class T, class Node>
std::pair<Tensor<T>, Tensor<T>> value_and_gradient(Node node, const Tensor<T>& x, const Tensor<T>& upstream) {
    Tape<T> tape;
    const Var<T> xv = tape.input(x);
    const Var<T> y = node(xv);
    tape.backward(weighted_sum(y, upstream));
    return {y.value(), xv.grad()};
}

template <class T>
Tensor<T> values(const Shape& shape, const std::vector<double>& v) {
    Tensor<T> t(shape);
    BOOST_TEST_REQUIRE(t.numel() == v.size());
    for (std::size_t i = 0; i < v.size(); ++i) t[i] = static_cast<T>(v[i]);
    return t;
}

template <class T>
Tensor<T> ones(const Shape& shape) {
    return Tensor<T>(shape, T(1));
}

// 0, 1, 2, ... in a tensor of `shape`.
template <class T>
Tensor<T> counting(const Shape& shape) {
    Tensor<T> t(shape);
    for (std::size_t i = 0; i < t.numel(); ++i) t[i] = static_cast<T>(i);
    return t;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(modern_nodes)

// ---- gelu -----------------------------------------------------------------------------------

// x Phi(x) and Phi(x) + x phi(x) printed by Python's math.erf and math.exp.
BOOST_AUTO_TEST_CASE_TEMPLATE(gelu_gives_the_erf_forms_values_and_slopes, T, scalar_types) {
    const Tensor<T> x = values<T>(Shape{7}, {-3, -1, -0.5, 0, 0.5, 1, 3});
    const auto [y, dx] = value_and_gradient<T>([](const Var<T>& v) { return gelu(v); }, x, ones<T>(x.shape()));
    check_close(y,
                values<T>(Shape{7}, {-0.00404969409489031, -0.15865525393145707, -0.15426876936299344, 0.0, 0.34573123063700656,
                                     0.8413447460685429, 2.99595030590511}),
                "gelu(x)");
    check_close(dx,
                values<T>(Shape{7}, {-0.01194564720418392, -0.08331547058768629, 0.13250487534383712, 0.5, 0.8674951246561629,
                                     1.0833154705876864, 1.011945647204184}),
                "gelu'(x)");
    // the GELU module is the op
    GELU<T> module;
    Tape<T> tape(Tape<T>::Mode::inference);
    check_equal(module(tape.constant(x)).value(), y, "GELU module");
}

BOOST_AUTO_TEST_CASE_TEMPLATE(gelu_of_infinities_and_nan_follows_its_formula, T, scalar_types) {
    const T inf = std::numeric_limits<T>::infinity();
    Tape<T> tape(Tape<T>::Mode::inference);
    const Tensor<T> y = gelu(tape.constant(values<T>(Shape{3}, {inf, -inf, std::numeric_limits<T>::quiet_NaN()}))).value();
    BOOST_TEST(y[0] == inf);
    BOOST_TEST(std::isnan(y[1]));  // -inf * Phi(-inf) = -inf * 0
    BOOST_TEST(std::isnan(y[2]));
}

// float's vectorised gelu (Eigen's erf and exp) against the plain loops (std::erf, std::exp), in
// float and in double, on 40,001 points of [-10, 10] and a ragged length (a vector tail).
BOOST_AUTO_TEST_CASE(gelu_fast_path_matches_the_plain_loops) {
    const std::ptrdiff_t n = 40001;
    std::vector<float> x(n), gy(n), y_fast(n), y_plain(n), gx_fast(n, 0.5f), gx_plain(n, 0.5f);
    std::vector<double> xd(n), gyd(n), yd(n), gxd(n, 0.5);
    for (std::ptrdiff_t i = 0; i < n; ++i) {
        x[i] = static_cast<float>(-10 + 20.0 * static_cast<double>(i) / static_cast<double>(n - 1));
        gy[i] = static_cast<float>(1 + 0.25 * std::sin(static_cast<double>(i)));
        xd[i] = x[i];
        gyd[i] = gy[i];
    }
    activation::gelu_fast(x.data(), y_fast.data(), n);
    activation::gelu_plain(x.data(), y_plain.data(), n);
    activation::gelu_backward_fast(x.data(), gy.data(), gx_fast.data(), n);
    activation::gelu_backward_plain(x.data(), gy.data(), gx_plain.data(), n);
    activation::gelu_plain(xd.data(), yd.data(), n);
    activation::gelu_backward_plain(xd.data(), gyd.data(), gxd.data(), n);
    double worst_y = 0, worst_g = 0, worst_plain = 0;
    for (std::ptrdiff_t i = 0; i < n; ++i) {
        const double scale = std::max(1.0, std::abs(xd[i]));
        worst_y = std::max(worst_y, std::abs(y_fast[i] - yd[i]) / scale);
        worst_g = std::max(worst_g, std::abs(gx_fast[i] - gxd[i]));
        worst_plain = std::max(worst_plain, std::abs(y_plain[i] - yd[i]) / scale);
    }
    BOOST_TEST(worst_y < 3e-7, "gelu fast vs double: " << worst_y << " (float's plain loops: " << worst_plain << ")");
    BOOST_TEST(worst_g < 1e-6, "gelu' fast vs double: " << worst_g);
    // the op takes the fast path in float: the same bits as gelu_fast
    Tape<float> tape(Tape<float>::Mode::inference);
    Tensor<float> xt(Shape{static_cast<int>(n)});
    std::copy(x.begin(), x.end(), xt.data());
    const Tensor<float> op = gelu(tape.constant(xt)).value();
    BOOST_TEST(std::equal(y_fast.begin(), y_fast.end(), op.data()));
}

// ---- dropout --------------------------------------------------------------------------------

// Same seed, same mask: on 1 and 2 threads, and in backward; a kept element is x / (1 - p) and a
// dropped one 0, and the gradient is the same multiplier.
BOOST_AUTO_TEST_CASE_TEMPLATE(dropout_keeps_and_scales_by_its_seeded_mask_on_any_thread_count, T, scalar_types) {
    const Shape shape{4, 8, 64, 64};  // 131072 elements: split between threads when there are several
    const Tensor<T> x = counting<T>(shape), up = ones<T>(shape);
    const double p = 0.25;
    const auto drop = [p](const Var<T>& v) { return dropout(v, p, 1234); };
    std::pair<Tensor<T>, Tensor<T>> one, two;
    {
        const ThreadLimit limit(1);
        one = value_and_gradient<T>(drop, x, up);
    }
    {
        const ThreadLimit limit(2);
        two = value_and_gradient<T>(drop, x, up);
    }
    check_equal(two.first, one.first, "y, 2 threads vs 1");
    check_equal(two.second, one.second, "dx, 2 threads vs 1");
    const T kept = static_cast<T>(1 / (1 - p));
    std::size_t dropped = 0, wrong = 0;
    for (std::size_t i = 0; i < x.numel(); ++i) {
        const bool keep = dropout_mask::keep(1234, i, p);
        dropped += !keep;
        wrong += one.first[i] != (keep ? x[i] * kept : T(0)) || one.second[i] != (keep ? kept : T(0));
    }
    BOOST_TEST(wrong == 0u);
    // 131072 draws with p = 0.25: the standard deviation of the dropped count is ~157
    BOOST_TEST(std::abs(static_cast<double>(dropped) - 0.25 * static_cast<double>(x.numel())) < 5 * 157.0);
}

BOOST_AUTO_TEST_CASE(dropout_masks_differ_between_seeds_and_p_zero_keeps_everything) {
    const Tensor<double> x = ones<double>(Shape{1000});
    Tape<double> tape(Tape<double>::Mode::inference);
    const Tensor<double> a = dropout(tape.constant(x), 0.5, 1).value(), b = dropout(tape.constant(x), 0.5, 2).value();
    std::size_t differ = 0;
    for (std::size_t i = 0; i < x.numel(); ++i) differ += a[i] != b[i];
    BOOST_TEST(differ > 400u);  // about half of them
    BOOST_TEST(differ < 600u);
    check_equal(dropout(tape.constant(x), 0.0, 1).value(), x, "p = 0");
}

BOOST_AUTO_TEST_CASE(dropout_refuses_p_outside_zero_to_one) {
    Tape<double> tape(Tape<double>::Mode::inference);
    const Var<double> x = tape.constant(ones<double>(Shape{3}));
    for (double p : {1.0, -0.1, 1.5, std::nan("")}) {
        CHECK_MESSAGE_HAS(error_of([&] { dropout(x, p, 0); }), "dropout: p must be in [0, 1)");
        CHECK_MESSAGE_HAS(error_of([&] { Dropout<double> d(p, 0); }), "Dropout: p must be in [0, 1)");
    }
    CHECK_MESSAGE_HAS(error_of([&] { dropout(x, 1.0, 0); }), "got 1");
}

// The module: the identity in eval mode; in training a fresh mask per call, the same sequence of
// masks from the same seed.
BOOST_AUTO_TEST_CASE(dropout_module_drops_only_in_training_with_reproducible_masks) {
    const Tensor<float> x = ones<float>(Shape{2, 3, 16, 16});
    Dropout<float> a(0.5, 99), b(0.5, 99);
    Tape<float> tape(Tape<float>::Mode::inference);
    const Tensor<float> a1 = a(tape.constant(x)).value(), a2 = a(tape.constant(x)).value();
    const Tensor<float> b1 = b(tape.constant(x)).value(), b2 = b(tape.constant(x)).value();
    check_equal(b1, a1, "first call, same seed");
    check_equal(b2, a2, "second call, same seed");
    std::size_t differ = 0, zeros = 0;
    for (std::size_t i = 0; i < x.numel(); ++i) {
        differ += a1[i] != a2[i];
        zeros += a1[i] == 0.0f;
    }
    BOOST_TEST(differ > 0u, "two calls drew the same mask");
    BOOST_TEST(zeros > 0u);
    a.eval();
    check_equal(a(tape.constant(x)).value(), x, "eval mode");
    BOOST_TEST(a.describe() == "p 0.5");
    // the call count is a buffer: a module given a's count (as a resumed run is) draws a's next mask
    a.train();
    BOOST_TEST(a.buffers().size() == 1u);
    BOOST_TEST(a.calls[0] == 2.0f);  // two training calls so far; the eval-mode call does not count
    Dropout<float> c(0.5, 99);
    c.calls = a.calls;
    check_equal(c(tape.constant(x)).value(), a(tape.constant(x)).value(), "third call after a resume");
    c.calls[0] = 0.5f;
    CHECK_MESSAGE_HAS(error_of([&] { c(tape.constant(x)); }), "not two integers");
    // modules of adjacent seeds draw unrelated masks: seed 1's second call is not seed 2's first
    Dropout<float> one(0.5, 1), two(0.5, 2);
    one(tape.constant(x));
    const Tensor<float> one_second = one(tape.constant(x)).value(), two_first = two(tape.constant(x)).value();
    std::size_t same = 0;
    for (std::size_t i = 0; i < x.numel(); ++i) same += one_second[i] == two_first[i];
    BOOST_TEST(same < x.numel() * 3 / 4, same << " of " << x.numel() << " elements agree");
}

// ---- average pools --------------------------------------------------------------------------

// 4 x 4 plane of 0..15: 2 x 2 windows give their means; with kernel 3, stride 1 the windows
// overlap, so the centre elements receive four shares of dy / 9, the corners one.
BOOST_AUTO_TEST_CASE_TEMPLATE(avg_pool2d_gives_window_means_and_shares_the_gradient, T, scalar_types) {
    const Tensor<T> x = counting<T>(Shape{1, 1, 4, 4});
    const auto [y, dx] = value_and_gradient<T>([](const Var<T>& v) { return avg_pool2d(v, 2); }, x, ones<T>(Shape{1, 1, 2, 2}));
    check_close(y, values<T>(Shape{1, 1, 2, 2}, {2.5, 4.5, 10.5, 12.5}), "kernel 2");
    check_close(dx, Tensor<T>(x.shape(), T(0.25)), "kernel 2: dx");

    const Tensor<T> up = values<T>(Shape{1, 1, 2, 2}, {1, 2, 3, 4});
    const auto [y3, dx3] = value_and_gradient<T>([](const Var<T>& v) { return avg_pool2d(v, 3, 1); }, x, up);
    check_close(y3, values<T>(Shape{1, 1, 2, 2}, {5, 6, 9, 10}), "kernel 3, stride 1");
    // element (r, c) gets the dy of every window holding it, / 9
    check_close(dx3, values<T>(Shape{1, 1, 4, 4}, {1. / 9, 3. / 9, 3. / 9, 2. / 9, 4. / 9, 10. / 9, 10. / 9, 6. / 9, 4. / 9, 10. / 9,
                                                   10. / 9, 6. / 9, 3. / 9, 7. / 9, 7. / 9, 4. / 9}),
                "kernel 3, stride 1: dx");
    AvgPool2d<T> module(2);
    Tape<T> tape(Tape<T>::Mode::inference);
    check_equal(module(tape.constant(x)).value(), y, "AvgPool2d module");
    BOOST_TEST(module.describe() == "kernel 2, stride 2");
}

BOOST_AUTO_TEST_CASE_TEMPLATE(global_avg_pool2d_gives_plane_means_as_b_by_c, T, scalar_types) {
    const Tensor<T> x = counting<T>(Shape{2, 3, 2, 5});  // plane k holds 10k .. 10k + 9: mean 10k + 4.5
    const Tensor<T> up = values<T>(Shape{2, 3}, {1, 2, 3, 4, 5, 6});
    const auto [y, dx] = value_and_gradient<T>([](const Var<T>& v) { return global_avg_pool2d(v); }, x, up);
    check_close(y, values<T>(Shape{2, 3}, {4.5, 14.5, 24.5, 34.5, 44.5, 54.5}), "means");
    Tensor<T> want(x.shape());
    for (std::size_t i = 0; i < want.numel(); ++i) want[i] = up[i / 10] / T(10);
    check_close(dx, want, "dx");
    GlobalAvgPool2d<T> module;
    Tape<T> tape(Tape<T>::Mode::inference);
    check_equal(module(tape.constant(x)).value(), y, "GlobalAvgPool2d module");
}

// Planes (pools) or element ranges (gelu) split between threads: the same bits on 1 and 2 threads.
BOOST_AUTO_TEST_CASE(average_pools_and_gelu_do_not_depend_on_the_thread_count) {
    Rng rng(5);
    const Tensor<float> x = uniform(Shape{8, 16, 32, 32}, rng).cast<float>(), up2 = uniform(Shape{8, 16, 16, 16}, rng).cast<float>();
    const Tensor<float> upg = uniform(Shape{8, 16}, rng).cast<float>();
    std::vector<Tensor<float>> r;
    for (int threads : {1, 2}) {
        const ThreadLimit limit(threads);
        auto [y, dx] = value_and_gradient<float>([](const Var<float>& v) { return avg_pool2d(v, 2); }, x, up2);
        auto [yg, dxg] = value_and_gradient<float>([](const Var<float>& v) { return global_avg_pool2d(v); }, x, upg);
        auto [ye, dxe] = value_and_gradient<float>([](const Var<float>& v) { return gelu(v); }, x, x);
        r.insert(r.end(), {y, dx, yg, dxg, ye, dxe});
    }
    for (std::size_t k = 0; k < 6; ++k) check_equal(r[k + 6], r[k], "output " + std::to_string(k) + ", 2 threads vs 1");
}

BOOST_AUTO_TEST_CASE(average_pools_refuse_bad_input) {
    Tape<double> tape(Tape<double>::Mode::inference);
    const Var<double> x = tape.constant(ones<double>(Shape{1, 2, 3, 4})), flat = tape.constant(ones<double>(Shape{2, 3}));
    CHECK_MESSAGE_HAS(error_of([&] { avg_pool2d(x, 0); }), "avg_pool2d: kernel and stride must be >= 1, got 0");
    CHECK_MESSAGE_HAS(error_of([&] { avg_pool2d(x, 2, -1); }), "got 2 and -1");
    CHECK_MESSAGE_HAS(error_of([&] { avg_pool2d(x, 4); }), "avg_pool2d: kernel 4 is larger than the input [1, 2, 3, 4]");
    CHECK_MESSAGE_HAS(error_of([&] { avg_pool2d(flat, 2); }), "avg_pool2d input");
    CHECK_MESSAGE_HAS(error_of([&] { global_avg_pool2d(flat); }), "global_avg_pool2d input");
}

// ---- max-pool 3 -----------------------------------------------------------------------------

// nn.MaxPool2d(3): stride 3 by default; airbench's last pool takes a 3 x 3 plane to 1 x 1.
BOOST_AUTO_TEST_CASE(max_pool2d_kernel_3_takes_each_windows_maximum) {
    Tensor<double> x = counting<double>(Shape{1, 2, 6, 7});
    x.at({0, 1, 4, 1}) = 1000;
    const auto [y, dx] = value_and_gradient<double>([](const Var<double>& v) { return max_pool2d(v, 3); }, x, ones<double>(Shape{1, 2, 2, 2}));
    // plane 0: the bottom-right corner of each window (row 2 or 5, column 2 or 5); plane 1 the same
    // (+42), but its lower-left window holds the 1000
    check_close(y, values<double>(Shape{1, 2, 2, 2}, {16, 19, 37, 40, 58, 61, 1000, 82}), "values");
    BOOST_TEST(dx.at({0, 1, 4, 1}) == 1.0);
    BOOST_TEST(dx.at({0, 1, 5, 2}) == 0.0);
    const auto [y1, dx1] = value_and_gradient<double>([](const Var<double>& v) { return max_pool2d(v, 3); },
                                                      counting<double>(Shape{2, 3, 3, 3}), ones<double>(Shape{2, 3, 1, 1}));
    check_close(y1, values<double>(Shape{2, 3, 1, 1}, {8, 17, 26, 35, 44, 53}), "3 x 3 -> 1 x 1");
}

// ---- conv 3x3, padding 1, stride 2 ---------------------------------------------------------

// The automatic path runs it on im2col (winograd takes stride 1 only); on a plane large enough for
// im2col's one-image groups (32 x 32 -> 16 x 16) it equals the plain loops, with the same bits on
// 1 and 2 threads. (The conv_paths grid covers this layer on small planes.)
BOOST_AUTO_TEST_CASE(conv_3x3_padding_1_stride_2_runs_on_im2col_and_equals_the_plain_loops) {
    const Shape xs{3, 8, 32, 32}, ks{16, 8, 3, 3};
    const Conv2dOptions o{1, 2, ConvPath::automatic};
    BOOST_TEST(std::string(conv_path_name(conv::path_to_run(ks, o))) == "im2col");
    std::mt19937 rng(77);
    const Tensor<float> x = uniform<float>(xs, rng), k = uniform<float>(ks, rng), gy = uniform<float>(Shape{3, 16, 16, 16}, rng);
    Tensor<double> y0, gx0(xs), gk0(ks);
    conv::forward_plain(x.cast<double>(), k.cast<double>(), o, y0);
    conv::backward_plain(x.cast<double>(), k.cast<double>(), gy.cast<double>(), o, &gx0, &gk0);
    std::vector<Tensor<float>> y(2), gx(2, Tensor<float>(xs)), gk(2, Tensor<float>(ks));
    for (int threads : {1, 2}) {
        const ThreadLimit limit(threads);
        conv::forward_im2col(x, k, o, y[threads - 1]);
        conv::backward_im2col(x, k, gy, o, &gx[threads - 1], &gk[threads - 1]);
    }
    check_close(y[0], y0, false, 1e-5, "Y");
    check_close(gx[0], gx0, false, 1e-5, "dX");
    check_close(gk[0], gk0, false, 1e-5, "dK");
    check_equal(y[1], y[0], "Y, 2 threads vs 1");
    check_equal(gx[1], gx[0], "dX, 2 threads vs 1");
    check_equal(gk[1], gk[0], "dK, 2 threads vs 1");
}

// ---- scale ----------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE_TEMPLATE(scale_multiplies_values_and_gradients_by_its_factor, T, scalar_types) {
    const Tensor<T> x = values<T>(Shape{2, 2}, {9, -18, 4.5, 0});
    const Tensor<T> up = values<T>(Shape{2, 2}, {1, 2, -3, 9});
    const auto [y, dx] = value_and_gradient<T>([](const Var<T>& v) { return scale(v, 1.0 / 9); }, x, up);
    check_close(y, values<T>(Shape{2, 2}, {1, -2, 0.5, 0}), "y");
    check_close(dx, values<T>(Shape{2, 2}, {1. / 9, 2. / 9, -3. / 9, 1}), "dx");
    Scale<T> module(1.0 / 9);
    Tape<T> tape(Tape<T>::Mode::inference);
    check_equal(module(tape.constant(x)).value(), y, "Scale module");
    BOOST_TEST(module.describe() == "factor 0.111111");
}

BOOST_AUTO_TEST_CASE(scale_refuses_a_factor_that_is_not_finite) {
    Tape<double> tape(Tape<double>::Mode::inference);
    const Var<double> x = tape.constant(ones<double>(Shape{2}));
    CHECK_MESSAGE_HAS(error_of([&] { scale(x, std::nan("")); }), "scale: the factor must be finite, got nan");
    CHECK_MESSAGE_HAS(error_of([&] { Scale<double> s(std::numeric_limits<double>::infinity()); }), "Scale: the factor must be finite, got inf");
}

// ---- label smoothing ------------------------------------------------------------------------

// Two classes, logits [0, ln 3]: p = [1/4, 3/4]. Label 1, eps 0.2: q = [0.1, 0.9], so
// L = -(0.1 ln 1/4 + 0.9 ln 3/4) and dz = p - q = [0.15, -0.15]; a second row of equal logits
// (p = 1/2 whatever q) adds ln 2 and dz = [0.5 - 0.9, 0.5 - 0.1] for label 0; the batch mean halves.
BOOST_AUTO_TEST_CASE_TEMPLATE(label_smoothing_gives_the_closed_forms_loss_and_gradient, T, scalar_types) {
    Tape<T> tape;
    const Var<T> z = tape.input(values<T>(Shape{2, 2}, {0, std::log(3.0), 5, 5}));
    const Var<T> loss = softmax_cross_entropy(z, {1, 0}, 0.2);
    tape.backward(loss);
    const double first = 0.39754330131859184;  // 0.1 ln 4 + 0.9 ln 4/3, by Python
    check_close(loss.value(), values<T>(Shape{}, {(first + std::log(2.0)) / 2}), "loss");
    check_close(z.grad(), values<T>(Shape{2, 2}, {0.15 / 2, -0.15 / 2, -0.4 / 2, 0.4 / 2}), "dz");
}

// eps = 0 is the old node, bit for bit; eps = 1 is a uniform target whatever the labels.
BOOST_AUTO_TEST_CASE(label_smoothing_zero_is_the_plain_loss_bit_for_bit) {
    Rng rng(8);
    const Tensor<float> logits = uniform(Shape{5, 10}, rng, -4, 4).cast<float>();
    const std::vector<int> labels = {3, 0, 9, 9, 4};
    Tape<float> a, b;
    const Var<float> za = a.input(logits), zb = b.input(logits);
    const Var<float> la = softmax_cross_entropy(za, labels), lb = softmax_cross_entropy(zb, labels, 0.0);
    a.backward(la);
    b.backward(lb);
    check_equal(lb.value(), la.value(), "loss");
    check_equal(zb.grad(), za.grad(), "gradient");

    Tape<double> c(Tape<double>::Mode::inference);
    const Tensor<double> zd = logits.cast<double>();
    const double uniform_a = softmax_cross_entropy(c.constant(zd), labels, 1.0).value()[0];
    const double uniform_b = softmax_cross_entropy(c.constant(zd), {0, 1, 2, 3, 4}, 1.0).value()[0];
    BOOST_TEST(std::abs(uniform_a - uniform_b) < 1e-12);
}

BOOST_AUTO_TEST_CASE(label_smoothing_outside_zero_to_one_is_refused) {
    Tape<double> tape(Tape<double>::Mode::inference);
    const Var<double> z = tape.constant(ones<double>(Shape{1, 3}));
    for (double eps : {-0.1, 1.5, std::nan("")})
        CHECK_MESSAGE_HAS(error_of([&] { softmax_cross_entropy(z, {0}, eps); }), "softmax_cross_entropy: label_smoothing must be in [0, 1]");
}

BOOST_AUTO_TEST_SUITE_END()
