// Anomaly mode (Tape::set_detect_anomaly): the first NaN or inf made in a forward or a backward
// pass stops the pass with an AnomalyError that says which op made it, where it stands on the tape,
// the shapes, which input's gradient, and the first bad element with its value. The training loop's
// switch (FitOptions::detect_anomaly, train --detect-anomaly) is tested in test_train.cpp and
// apps.sh.
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <limits>

#include "mcnn/ops/activation.hpp"
#include "mcnn/ops/elementwise.hpp"
#include "mcnn/ops/linear.hpp"
#include "support.hpp"

using namespace mcnn;
using namespace mcnn::test;

namespace {

// y = log(x) as a user's own op (the library has no log): NaN for x < 0 in forward.
template <class T>
Var<T> log_node(const Var<T>& x) {
    Tensor<T> y = x.value();
    for (T& v : y) v = std::log(v);
    return record<T>("log", std::move(y), {x}, [xv = x.value_ptr()](const Tensor<T>&, const Tensor<T>& gy, auto g) {
        if (g[0]) g[0]->array() += gy.array() / xv->array();
    });
}

// The AnomalyError message that `f` throws ("" and a test failure when it throws none).
std::string anomaly_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const AnomalyError& e) {
        return e.what();
    }
    BOOST_TEST(false, "no AnomalyError");
    return "";
}

}  // namespace

BOOST_AUTO_TEST_SUITE(anomaly)

BOOST_AUTO_TEST_CASE(off_by_default_and_then_non_finite_values_flow_through) {
    Tape<double> tape;
    BOOST_TEST(!tape.detect_anomaly());
    const Var<double> x = tape.input(Tensor<double>(Shape{2, 3}, {1, 2, 3, 4, -1, 6}));
    const Var<double> y = relu(log_node(x));
    BOOST_TEST(std::isnan(y.value()[4]));  // relu(NaN) = NaN, as in PyTorch
    tape.backward(weighted_sum(y, Tensor<double>(Shape{2, 3}, 1.0)));
    BOOST_TEST(x.grad()[4] == -1.0);  // relu passes the gradient on at a NaN, and log's slope at -1 is -1
    BOOST_TEST(x.grad()[0] == 0.0);   // log(1) = 0: relu is off there
    BOOST_TEST(x.grad()[1] == 0.5);
}

// A NaN made in forward by an op from finite inputs: the op, its place on the tape, the shapes,
// the element and its value, and the inputs (finite).
BOOST_AUTO_TEST_CASE(a_nan_made_in_forward_names_the_op_and_the_element) {
    Tape<double> tape;
    tape.set_detect_anomaly(true);
    BOOST_TEST(tape.detect_anomaly());
    const Var<double> x = tape.input(Tensor<double>(Shape{2, 3}, {1, 2, 3, 4, -1, 6}));
    const Var<double> h = mcnn::tanh(x);  // entry 1, finite
    const std::string msg = anomaly_of([&] { log_node(h); });
    CHECK_MESSAGE_HAS(msg, "forward of 'log'");
    CHECK_MESSAGE_HAS(msg, "tape entry 2 of 3 so far");
    CHECK_MESSAGE_HAS(msg, "non-finite output [2, 3]");
    CHECK_MESSAGE_HAS(msg, "element 4 is nan");
    CHECK_MESSAGE_HAS(msg, "its inputs: [2, 3] (entry 1, tanh [2, 3], finite)");
    BOOST_TEST(tape.size() == 2u);  // the bad value was not recorded
}

// Overflow to inf in float is caught at the op that overflowed, not later.
BOOST_AUTO_TEST_CASE(an_inf_made_in_forward_by_a_library_node_is_caught_there) {
    Tape<float> tape;
    tape.set_detect_anomaly(true);
    Parameter<float> w("fc.weight", Tensor<float>(Shape{1, 2}, {1e30f, 1e30f}));
    const Var<float> x = tape.input(Tensor<float>(Shape{1, 2}, {1e10f, 1.0f}));
    const std::string msg = anomaly_of([&] { linear(x, tape.param(w)); });
    CHECK_MESSAGE_HAS(msg, "forward of 'linear' (tape entry 2 of 3 so far) gave a non-finite output [1, 1]: element 0 is inf");
    CHECK_MESSAGE_HAS(msg, "(entry 1, parameter 'fc.weight' [1, 2], finite)");
}

// A parameter that is already NaN is named when it is put on the tape; so are inputs and constants.
BOOST_AUTO_TEST_CASE(non_finite_leaves_are_named_when_they_are_put_on_the_tape) {
    Tape<double> tape;
    tape.set_detect_anomaly(true);
    Parameter<double> p("conv1.weight", Tensor<double>(Shape{2, 2}, {0.5, 0.25, std::numeric_limits<double>::quiet_NaN(), 1}));
    const Var<double> x = tape.input(Tensor<double>(Shape{2, 2}, 1.0));
    std::string msg = anomaly_of([&] { tape.param(p); });
    CHECK_MESSAGE_HAS(msg, "the parameter 'conv1.weight' [2, 2] (tape entry 1 of 2 so far) holds a non-finite value: element 2 is nan");
    msg = anomaly_of([&] { tape.input(Tensor<double>(Shape{3}, {0, -std::numeric_limits<double>::infinity(), 0})); });
    CHECK_MESSAGE_HAS(msg, "the input [3] (tape entry 1 of 2 so far) holds a non-finite value: element 1 is -inf");
    msg = anomaly_of([&] { tape.constant(Tensor<double>(Shape{1, 4}, {0, 0, 0, std::numeric_limits<double>::infinity()})); });
    CHECK_MESSAGE_HAS(msg, "the constant [1, 4] (not recorded on the tape) holds a non-finite value: element 3 is inf");
    (void)x;
}

// Finite forward, finite upstream gradient, and still inf in backward: dL/dx = dL/dy * W
// overflows float. The node named is the one whose backward made it, with the input it was for.
BOOST_AUTO_TEST_CASE(an_inf_made_only_in_backward_names_the_node_and_the_input) {
    Tape<float> tape;
    tape.set_detect_anomaly(true);
    Parameter<float> w("fc.weight", Tensor<float>(Shape{1, 1}, 1e30f));
    const Var<float> x = tape.input(Tensor<float>(Shape{1, 1}, 1e-20f));       // entry 0
    const Var<float> y = linear(x, tape.param(w));                               // entries 1 (W), 2: y = 1e10
    const Var<float> loss = weighted_sum(y, Tensor<float>(Shape{1, 1}, 1e20f));  // entry 3: 1e30
    BOOST_TEST(std::isfinite(loss.value()[0]));
    const std::string msg = anomaly_of([&] { tape.backward(loss); });
    CHECK_MESSAGE_HAS(msg, "backward of 'linear' (tape entry 2 of 4; output [1, 1])");
    CHECK_MESSAGE_HAS(msg, "non-finite gradient for its input 0 of 2 (entry 0, leaf [1, 1]): element 0 is inf");
    CHECK_MESSAGE_HAS(msg, "the gradient it received, [1, 1], is finite");
}

// A NaN made only in backward by a user's op: sqrt is finite at 0 but its slope is not, and an
// upstream gradient of 0 there gives 0 * inf = NaN.
BOOST_AUTO_TEST_CASE(a_nan_made_only_in_backward_by_a_users_op_is_caught) {
    Tape<double> tape;
    tape.set_detect_anomaly(true);
    const Var<double> x = tape.input(Tensor<double>(Shape{3}, {1.0, 0.0, 4.0}));
    Tensor<double> root = x.value();
    for (double& v : root) v = std::sqrt(v);
    const Var<double> y = record<double>("sqrt", std::move(root), {x}, [](const Tensor<double>& out, const Tensor<double>& gy, auto g) {
        if (g[0]) g[0]->array() += gy.array() * (0.5 / out.array());
    });
    const Var<double> loss = weighted_sum(y, Tensor<double>(Shape{3}, {1.0, 0.0, 1.0}));
    const std::string msg = anomaly_of([&] { tape.backward(loss); });
    CHECK_MESSAGE_HAS(msg, "detect_anomaly: backward of 'sqrt' (tape entry 1 of 3; output [3]) gave a non-finite gradient for its "
                           "input 0 of 1 (entry 0, leaf [3]): element 1 is nan; the gradient it received, [3], is finite");
}

// Gradients left in a parameter from an earlier step are checked before the pass, so a node
// adding to that slot is not blamed for them.
BOOST_AUTO_TEST_CASE(a_non_finite_parameter_gradient_before_backward_is_reported_as_such) {
    Tape<double> tape;
    tape.set_detect_anomaly(true);
    Parameter<double> w("w", Tensor<double>(Shape{1, 2}, {1.0, 2.0}));
    const Var<double> x = tape.input(Tensor<double>(Shape{1, 2}, {3.0, 4.0}));
    const Var<double> loss = weighted_sum(linear(x, tape.param(w)), Tensor<double>(Shape{1, 1}, 1.0));
    w.grad[1] = std::numeric_limits<double>::quiet_NaN();
    const std::string msg = anomaly_of([&] { tape.backward(loss); });
    CHECK_MESSAGE_HAS(msg, "the gradient of parameter 'w' [1, 2] (tape entry 1 of 4) already held a non-finite value before the "
                           "pass: element 1 is nan");
}

// With finite values anomaly mode changes nothing: the same values and gradients, bit for bit.
BOOST_AUTO_TEST_CASE(finite_runs_are_the_same_with_anomaly_mode_on) {
    Rng rng(3);
    const Tensor<double> x0 = uniform(Shape{4, 5}, rng), w0 = uniform(Shape{3, 5}, rng), u = uniform(Shape{4, 3}, rng);
    const auto run = [&](bool on) {
        Tape<double> tape;
        tape.set_detect_anomaly(on);
        Parameter<double> w("w", w0);
        const Var<double> x = tape.input(x0);
        const Var<double> y = leaky_relu(linear(x, tape.param(w)), 0.1);
        tape.backward(weighted_sum(y, u));
        return std::tuple{y.value(), x.grad(), w.grad};
    };
    const auto [y0, gx0, gw0] = run(false);
    const auto [y1, gx1, gw1] = run(true);
    check_equal(y1, y0, "y");
    check_equal(gx1, gx0, "dx");
    check_equal(gw1, gw0, "dW");
}

BOOST_AUTO_TEST_SUITE_END()
