#include <boost/test/unit_test.hpp>

#include "mcnn/ops/activation.hpp"
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

}  // namespace

BOOST_AUTO_TEST_SUITE(tape)

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
