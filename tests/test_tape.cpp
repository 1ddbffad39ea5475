#include <boost/test/unit_test.hpp>

#include <cmath>
#include <random>
#include <tuple>

#include "mcnn/threads.hpp"

#include "mcnn/ops/activation.hpp"
#include "mcnn/ops/bias.hpp"
#include "mcnn/ops/elementwise.hpp"
#include "mcnn/ops/linear.hpp"

using namespace mcnn;

namespace {

Tensor<double> values(std::vector<double> v) {
    const int n = static_cast<int>(v.size());
    return Tensor<double>(Shape{n}, std::move(v));
}

// y = x * c as a recorded op, for building long chains with a known derivative.
Var<double> scale(const Var<double>& x, double c) {
    Tensor<double> y = x.value();
    y.array() *= c;
    return record<double>("scale", std::move(y), {x}, [c](const Tensor<double>&, const Tensor<double>& gy, auto g) {
        if (g[0]) g[0]->array() += c * gy.array();
    });
}

// A float tensor of the given shape, uniform in [-1, 1).
Tensor<float> random_floats(const Shape& shape, std::mt19937& rng) {
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    Tensor<float> t(shape);
    for (std::size_t i = 0; i < t.numel(); ++i) t[i] = dist(rng);
    return t;
}

// Checks a float result against a double sum of K terms of magnitude `magnitude`: within the
// float rounding bound of such a sum (2 K u |terms|, u = 2^-24).
void check_float_sum(float actual, double expected, double magnitude, int K, const char* what) {
    const double bound = 2.0 * (K + 1) * std::ldexp(1.0, -24) * magnitude + 1e-30;
    BOOST_TEST(std::abs(actual - expected) <= bound, what << ": " << actual << " vs " << expected << " (bound " << bound << ")");
}

}  // namespace

BOOST_AUTO_TEST_SUITE(tape)

namespace {

// Y = X W^T + b, dX = dY W, dW = dY^T X, db = column sums of dY, against double loops, and bit for
// bit the same on 1 and 2 threads.
void check_float_linear(int B, int I, int O) {
    std::mt19937 rng(21);
    const Tensor<float> x = random_floats(Shape{B, I}, rng), u = random_floats(Shape{B, O}, rng);
    Parameter<float> w("w", random_floats(Shape{O, I}, rng)), b("b", random_floats(Shape{O}, rng));
    auto run = [&](int threads) {
        const ThreadLimit limit(threads);
        w.grad.set_zero();
        b.grad.set_zero();
        Tape<float> tape;
        const Var<float> xv = tape.input(x);
        const Var<float> y = linear(xv, tape.param(w), tape.param(b));
        tape.backward(weighted_sum(y, u));  // dL/dY = u
        return std::tuple{y.value(), xv.grad(), w.grad, b.grad};
    };
    const auto [y1, gx1, gw1, gb1] = run(1);
    const auto [y2, gx2, gw2, gb2] = run(2);
    BOOST_TEST((y2.array() == y1.array()).all());
    BOOST_TEST((gx2.array() == gx1.array()).all());
    BOOST_TEST((gw2.array() == gw1.array()).all());
    BOOST_TEST((gb2.array() == gb1.array()).all());
    auto X = [&](int i, int j) { return double(x[std::size_t(i) * I + j]); };
    auto W = [&](int i, int j) { return double(w.value[std::size_t(i) * I + j]); };
    auto U = [&](int i, int j) { return double(u[std::size_t(i) * O + j]); };
    for (int i = 0; i < B; ++i)
        for (int o = 0; o < O; ++o) {
            double sum = b.value[o], mag = std::abs(sum);
            for (int p = 0; p < I; ++p) sum += X(i, p) * W(o, p), mag += std::abs(X(i, p) * W(o, p));
            check_float_sum(y1[std::size_t(i) * O + o], sum, mag, I, "Y");
        }
    for (int i = 0; i < B; ++i)
        for (int p = 0; p < I; ++p) {
            double sum = 0, mag = 0;
            for (int o = 0; o < O; ++o) sum += U(i, o) * W(o, p), mag += std::abs(U(i, o) * W(o, p));
            check_float_sum(gx1[std::size_t(i) * I + p], sum, mag, O, "dX");
        }
    for (int o = 0; o < O; ++o) {
        double bsum = 0, bmag = 0;
        for (int i = 0; i < B; ++i) bsum += U(i, o), bmag += std::abs(U(i, o));
        check_float_sum(gb1[o], bsum, bmag, B, "db");
        for (int p = 0; p < I; ++p) {
            double sum = 0, mag = 0;
            for (int i = 0; i < B; ++i) sum += U(i, o) * X(i, p), mag += std::abs(U(i, o) * X(i, p));
            check_float_sum(gw1[std::size_t(o) * I + p], sum, mag, B, "dW");
        }
    }
}

}  // namespace

BOOST_AUTO_TEST_CASE(float_linear_equals_the_plain_loops_on_any_thread_count) {
    // large enough that the float products split their columns between threads (SGEMM)
    check_float_linear(37, 600, 70);
    // batches of at most 8 rows: the loops over W in place; I not a multiple of the 8 lanes
    check_float_linear(8, 603, 70);
    check_float_linear(4, 400, 120);
    check_float_linear(1, 5, 3);
}

BOOST_AUTO_TEST_CASE(gradient_of_a_small_graph) {
    // L = sum(w * tanh(x)), dL/dx = w * (1 - tanh(x)^2)
    Tape<double> tape;
    const Var<double> x = tape.input(values({0.5, -1.0, 2.0}));
    const Tensor<double> w = values({1.0, 2.0, -3.0});
    const Var<double> loss = weighted_sum(mcnn::tanh(x), w);
    tape.backward(loss);
    for (int i = 0; i < 3; ++i) {
        const double t = std::tanh(x.value()[i]);
        BOOST_TEST(x.grad()[i] == w[i] * (1 - t * t), boost::test_tools::tolerance(1e-14));
    }
}

BOOST_AUTO_TEST_CASE(fan_out_accumulates) {
    // x feeds three ops: L = sum(2x) + sum(3x) + sum(x + x) -> dL/dx = 7
    Tape<double> tape;
    const Var<double> x = tape.input(values({1.0, -2.0}));
    const Tensor<double> ones(Shape{2}, 1.0);
    const Var<double> a = weighted_sum(scale(x, 2.0), ones);
    const Var<double> b = weighted_sum(scale(x, 3.0), ones);
    const Var<double> c = weighted_sum(add(x, x), ones);
    const Var<double> loss = add(add(a, b), c);
    tape.backward(loss);
    BOOST_TEST(x.grad()[0] == 7.0);
    BOOST_TEST(x.grad()[1] == 7.0);
}

BOOST_AUTO_TEST_CASE(deep_chain_does_not_overflow_the_stack) {
    // 10^5 nodes: backward is a loop over the tape, not a recursion.
    Tape<double> tape;
    const Var<double> x = tape.input(values({1.0}));
    Var<double> h = x;
    const int depth = 100000;
    for (int i = 0; i < depth; ++i) h = scale(h, i % 2 == 0 ? 2.0 : 0.5);
    tape.backward(h);
    BOOST_TEST(tape.size() == static_cast<std::size_t>(depth + 1));
    BOOST_TEST(x.grad()[0] == 1.0);  // (2 * 0.5)^(depth/2)
}

BOOST_AUTO_TEST_CASE(parameters_persist_and_accumulate_across_tapes) {
    Parameter<double> w("w", values({3.0}));
    for (int step = 1; step <= 2; ++step) {
        Tape<double> tape;
        const Var<double> x = tape.constant(values({2.0}));
        const Var<double> y = weighted_sum(scale(add(x, tape.param(w)), 1.0), values({5.0}));
        tape.backward(y);
        BOOST_TEST(w.grad[0] == 5.0 * step);  // gradients add until zero_grad()
        BOOST_TEST(tape.parameters().size() == 1u);
        BOOST_TEST(tape.parameters()[0] == &w);
    }
    w.zero_grad();
    BOOST_TEST(w.grad[0] == 0.0);
    BOOST_TEST(w.value[0] == 3.0);
}

BOOST_AUTO_TEST_CASE(parameter_value_is_used_in_place) {
    Parameter<double> w("w", values({1.0, 2.0}));
    Tape<double> tape;
    const Var<double> v = tape.param(w);
    BOOST_TEST(&v.value() == &w.value);
}

BOOST_AUTO_TEST_CASE(constants_get_no_gradient_and_skip_backward) {
    Tape<double> tape;
    const Var<double> data = tape.constant(values({1.0, 2.0}));
    const Var<double> x = tape.input(values({3.0, 4.0}));
    const Var<double> loss = weighted_sum(add(data, x), values({1.0, 1.0}));
    BOOST_TEST(!data.requires_grad());
    // an op on constants only is not recorded
    const std::size_t before = tape.size();
    const Var<double> c = mcnn::relu(data);
    BOOST_TEST(tape.size() == before);
    BOOST_TEST(!c.requires_grad());
    tape.backward(loss);
    BOOST_CHECK_THROW(data.grad(), Error);
    BOOST_TEST(x.grad()[1] == 1.0);
}

BOOST_AUTO_TEST_CASE(inference_mode_records_nothing) {
    Parameter<double> w("w", Tensor<double>(Shape{2, 3}, 0.5));
    Parameter<double> b("b", Tensor<double>(Shape{2}, 0.1));
    Tape<double> tape(Tape<double>::Mode::inference);
    const Var<double> x = tape.input(Tensor<double>(Shape{4, 3}, 1.0));
    const Var<double> y = mcnn::relu(linear(x, tape.param(w), tape.param(b)));
    BOOST_TEST(tape.size() == 0u);
    BOOST_TEST(!y.requires_grad());
    BOOST_TEST(y.value().at({3, 1}) == 1.6, boost::test_tools::tolerance(1e-12));
    BOOST_CHECK_THROW(tape.backward(weighted_sum(y, Tensor<double>(Shape{4, 2}, 1.0))), Error);
}

BOOST_AUTO_TEST_CASE(clear_starts_a_new_recording) {
    Tape<double> tape;
    const Var<double> x = tape.input(values({2.0}));
    const Var<double> loss = weighted_sum(scale(x, 3.0), values({1.0}));
    tape.backward(loss);
    BOOST_CHECK_THROW(tape.backward(loss), Error);          // once per recording
    BOOST_CHECK_THROW(tape.input(values({1.0})), Error);    // no recording after backward
    tape.clear();
    BOOST_TEST(tape.size() == 0u);
    const Var<double> x2 = tape.input(values({2.0}));
    tape.backward(weighted_sum(scale(x2, 4.0), values({1.0})));
    BOOST_TEST(x2.grad()[0] == 4.0);
}

BOOST_AUTO_TEST_CASE(gradient_buffers_are_reused_zeroed_across_recordings) {
    // A second recording of the same graph gets the first one's gradient buffers back (same
    // storage), zeroed: its gradients equal a fresh tape's, not the sum of both recordings.
    Tape<double> tape;
    const double* first_buffer = nullptr;
    for (int step = 0; step < 3; ++step) {
        tape.clear();
        const Var<double> x = tape.input(values({1.0 + step, -2.0, 0.5}));
        const Var<double> h = scale(x, 3.0);
        tape.backward(weighted_sum(scale(h, 2.0), values({1.0, 2.0, 3.0})));
        for (int i = 0; i < 3; ++i) {
            BOOST_TEST(h.grad()[i] == 2.0 * (i + 1));
            BOOST_TEST(x.grad()[i] == 6.0 * (i + 1));
        }
        if (step == 0) first_buffer = x.grad().data();
        else BOOST_TEST((x.grad().data() == first_buffer || h.grad().data() == first_buffer));
    }
    // a recording of other sizes allocates what it needs and still starts from zero
    tape.clear();
    const Var<double> y = tape.input(values({1.0, 1.0, 1.0, 1.0, 1.0}));
    tape.backward(weighted_sum(scale(y, 1.0), values({1.0, 1.0, 1.0, 1.0, 1.0})));
    for (int i = 0; i < 5; ++i) BOOST_TEST(y.grad()[i] == 1.0);
}

BOOST_AUTO_TEST_CASE(temporaries_are_overwritten_in_place_only_when_nothing_else_holds_them) {
    // relu and bias_channels of an rvalue write over its storage when no tape node, other handle
    // or parameter holds it (inference); results equal those of the copying path.
    Parameter<double> b("b", values({0.5, -1.0}));
    const Tensor<double> x4(Shape{1, 2, 1, 2}, std::vector<double>{1.0, -2.0, 0.25, 3.0});
    const std::vector<double> want = {1.5, 0.0, 0.0, 2.0};  // relu(x + b[channel])
    Tape<double> inference(Tape<double>::Mode::inference);
    {
        Var<double> x = inference.input(x4);
        const double* storage = x.value().data();
        const Var<double> y = mcnn::relu(bias_channels(std::move(x), inference.param(b)));
        BOOST_TEST(y.value().data() == storage);  // both nodes wrote over x's storage
        BOOST_TEST(x.value().empty());
        for (int i = 0; i < 4; ++i) BOOST_TEST(y.value()[i] == want[i]);
    }
    {
        const Var<double> x = inference.input(x4);  // a named handle: left as it is
        Var<double> copy = x;                       // and a second handle: not taken either
        const Var<double> y = mcnn::relu(std::move(copy));
        BOOST_TEST(x.value()[1] == -2.0);
        BOOST_TEST(y.value().data() != x.value().data());
    }
    {
        Var<double> p = inference.param(b);  // a parameter's value is never taken
        const Var<double> y = mcnn::relu(std::move(p));
        BOOST_TEST(b.value[1] == -1.0);
        BOOST_TEST(y.value()[1] == 0.0);
    }
    // training: the recorded input stays for backward; gradients as with the copying path
    Tape<double> tape;
    Var<double> x = tape.input(x4);
    Var<double> s = bias_channels(std::move(x), tape.param(b));
    BOOST_TEST(x.value()[1] == -2.0);
    const Var<double> y = mcnn::relu(std::move(s));
    BOOST_TEST(s.value()[0] == 1.5);
    b.zero_grad();
    tape.backward(weighted_sum(y, Tensor<double>(Shape{1, 2, 1, 2}, 1.0)));
    BOOST_TEST(b.grad[0] == 1.0);  // only (0, 0) passes relu in channel 0
    BOOST_TEST(b.grad[1] == 1.0);  // only (1, 1) in channel 1
    for (int i = 0; i < 4; ++i) BOOST_TEST(x.grad()[i] == (want[i] > 0 ? 1.0 : 0.0));
}

BOOST_AUTO_TEST_CASE(misuse_is_reported) {
    Tape<double> a, b;
    const Var<double> xa = a.input(values({1.0}));
    const Var<double> xb = b.input(values({1.0}));
    BOOST_CHECK_THROW(add(xa, xb), Error);                                 // mixing tapes
    BOOST_CHECK_THROW(a.backward(xb), Error);                               // loss of another tape
    const Var<double> two = add(a.input(values({1.0, 2.0})), a.input(values({1.0, 2.0})));
    try {
        a.backward(two);
        BOOST_FAIL("a non-scalar loss must be refused");
    } catch (const Error& e) {
        BOOST_TEST(std::string(e.what()).find("scalar") != std::string::npos);
    }
    BOOST_CHECK_THROW(Var<double>().value(), Error);
}

BOOST_AUTO_TEST_CASE(gradient_of_an_unreached_value_is_an_error) {
    Tape<double> tape;
    const Var<double> x = tape.input(values({1.0}));
    const Var<double> unused = tape.input(values({1.0}));
    tape.backward(weighted_sum(scale(x, 2.0), values({1.0})));
    BOOST_TEST(!tape.has_grad(unused));
    BOOST_CHECK_THROW(unused.grad(), Error);
}

BOOST_AUTO_TEST_SUITE_END()
