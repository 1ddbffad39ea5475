// NaN and Inf through every node, as PyTorch treats them. Two kinds of test:
//  - PyTorch's own numbers: each table below was printed by PyTorch 2.11 (CPU; float64, and for
//    conv also float32 with oneDNN on and off, which agreed) for the same inputs: relu, leaky_relu,
//    tanh, sigmoid, max_pool2d, conv2d on every path, softmax cross-entropy;
//  - every case of the node registry (mcnn/check/node_cases.hpp), so a new node is covered with no
//    list to edit: a NaN put into any leaf comes out as NaN in exactly the outputs that the leaf
//    can change, and nowhere else; a NaN upstream gradient likewise in the gradients (no silent
//    zeroing, no spreading). "Can change" is measured with +Inf and -Inf in the same place.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <limits>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "mcnn/check/node_cases.hpp"
#include "mcnn/ops/activation.hpp"
#include "mcnn/ops/correlate2d.hpp"
#include "mcnn/ops/elementwise.hpp"
#include "mcnn/ops/loss.hpp"
#include "mcnn/ops/pool.hpp"
#include "support.hpp"

using namespace mcnn;
using namespace mcnn::test;

namespace {

constexpr double NaN = std::numeric_limits<double>::quiet_NaN();
constexpr double Inf = std::numeric_limits<double>::infinity();

// Whether a is e in IEEE terms: NaN where e is NaN, the same infinity where e is infinite, within a
// relative `tol` where e is finite.
bool same_ieee(double a, double e, double tol) {
    return std::isnan(e) ? std::isnan(a) : std::isinf(e) ? a == e : std::abs(a - e) <= tol * (1 + std::abs(e));
}

// "" when every element of `actual` is same_ieee as `expected`'s; else the first difference.
template <class T>
std::string ieee_mismatch(const Tensor<T>& actual, const std::vector<double>& expected, double tol) {
    if (actual.numel() != expected.size()) return fmt::format("{} elements, expected {}", actual.numel(), expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i)
        if (!same_ieee(static_cast<double>(actual[i]), expected[i], tol))
            return fmt::format("element {} is {}, expected {}", i, static_cast<double>(actual[i]), expected[i]);
    return "";
}

template <class T>
std::vector<double> as_vector(const Tensor<T>& t) {
    return std::vector<double>(t.begin(), t.end());
}

template <class T>
double tolerance() {
    return std::is_same_v<T, double> ? 1e-12 : 1e-6;
}

// y = node(x) and dL/dx for L = <y, upstream> (every element of dL/dy is `upstream`).
template <class T>
std::pair<Tensor<T>, Tensor<T>> through(const std::function<Var<T>(const Var<T>&)>& node, const Tensor<T>& x, double upstream) {
    Tape<T> tape;
    const Var<T> xv = tape.input(x);
    const Var<T> y = node(xv);
    tape.backward(weighted_sum(y, Tensor<T>(y.shape(), static_cast<T>(upstream))));
    return {y.value(), xv.grad()};
}

template <class T>
Tensor<T> tensor(const Shape& shape, const std::vector<double>& v) {
    Tensor<T> t(shape);
    for (std::size_t i = 0; i < v.size(); ++i) t[i] = static_cast<T>(v[i]);
    return t;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(nonfinite)

// PyTorch: x = [NaN, Inf, -Inf, 1, -1, 0]; y, then dx for dL/dy = 1, NaN, Inf everywhere.
BOOST_AUTO_TEST_CASE_TEMPLATE(activations_give_pytorchs_values_and_gradients, T, scalar_types) {
    using Node = std::function<Var<T>(const Var<T>&)>;
    struct Case {
        const char* name;
        Node node;
        std::vector<double> y, dx_one, dx_nan, dx_inf;
    };
    const double t1 = 0.7615941559557649, dt1 = 0.41997434161402614;                     // tanh(1), 1 - tanh(1)^2
    const double s1 = 0.7310585786300049, s_1 = 0.2689414213699951, ds1 = 0.19661193324148185;  // sigmoid(+-1), its slope
    const std::vector<double> all_nan(6, NaN), all_inf(6, Inf);
    const std::vector<Case> cases = {
        {"relu", [](const Var<T>& x) { return relu(x); }, {NaN, Inf, 0, 1, 0, 0}, {1, 1, 0, 1, 0, 0}, {NaN, NaN, 0, NaN, 0, 0},
         {Inf, Inf, 0, Inf, 0, 0}},
        {"leaky_relu 0.1", [](const Var<T>& x) { return leaky_relu(x, T(0.1)); }, {NaN, Inf, -Inf, 1, -0.1, 0},
         {0.1, 1, 0.1, 1, 0.1, 0.1}, all_nan, all_inf},
        {"leaky_relu 0", [](const Var<T>& x) { return leaky_relu(x, T(0)); }, {NaN, Inf, NaN, 1, 0, 0}, {0, 1, 0, 1, 0, 0}, all_nan,
         {NaN, Inf, NaN, Inf, NaN, NaN}},
        {"tanh", [](const Var<T>& x) { return mcnn::tanh(x); }, {NaN, 1, -1, t1, -t1, 0}, {NaN, 0, 0, dt1, dt1, 1}, all_nan,
         {NaN, NaN, NaN, Inf, Inf, Inf}},
        {"sigmoid", [](const Var<T>& x) { return sigmoid(x); }, {NaN, 1, 0, s1, s_1, 0.5}, {NaN, 0, 0, ds1, ds1, 0.25}, all_nan,
         {NaN, NaN, NaN, Inf, Inf, Inf}},
    };
    const Tensor<T> x = tensor<T>(Shape{6}, {NaN, Inf, -Inf, 1, -1, 0});
    for (const Case& c : cases) {
        BOOST_TEST_CONTEXT(c.name) {
            const auto [y, dx_one] = through<T>(c.node, x, 1.0);
            BOOST_TEST(ieee_mismatch(y, c.y, tolerance<T>()) == "");
            BOOST_TEST(ieee_mismatch(dx_one, c.dx_one, tolerance<T>()) == "");
            BOOST_TEST(ieee_mismatch(through<T>(c.node, x, NaN).second, c.dx_nan, 0) == "", "dL/dy = NaN");
            BOOST_TEST(ieee_mismatch(through<T>(c.node, x, Inf).second, c.dx_inf, 0) == "", "dL/dy = inf");
        }
    }
}

// PyTorch: a window holding NaN yields NaN and sends the gradient to its last NaN; +-Inf compare
// as values. Seven 2 x 2 windows (the models' 2 x 2, stride-2 loop, one window per image), then a
// 3 x 3 input under kernel 2, stride 1 and kernel 3 (the general loop).
BOOST_AUTO_TEST_CASE_TEMPLATE(max_pool_gives_pytorchs_values_and_gradients, T, scalar_types) {
    const Tensor<T> windows = tensor<T>(Shape{7, 1, 2, 2}, {NaN, 1, 2, 3,     1, NaN, NaN, 0, -Inf, -Inf, -Inf, -Inf, Inf, NaN, 1, 2,
                                                            1, 2, 3, Inf, 2, NaN, 3, Inf, -Inf, NaN, -Inf, -Inf});
    const auto [y, dx] = through<T>([](const Var<T>& x) { return max_pool2d(x, 2, 2); }, windows, 1.0);
    BOOST_TEST(ieee_mismatch(y, {NaN, NaN, -Inf, NaN, Inf, NaN, NaN}, 0) == "");
    BOOST_TEST(ieee_mismatch(dx, {1, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0}, 0) == "");

    const Tensor<T> plane = tensor<T>(Shape{1, 1, 3, 3}, {1, NaN, 2, 3, 4, 5, NaN, 0, 1});
    const auto [y2, dx2] = through<T>([](const Var<T>& x) { return max_pool2d(x, 2, 1); }, plane, 1.0);
    BOOST_TEST(ieee_mismatch(y2, {NaN, NaN, NaN, 5}, 0) == "");
    BOOST_TEST(ieee_mismatch(dx2, {0, 2, 0, 0, 0, 1, 1, 0, 0}, 0) == "");
    const auto [y3, dx3] = through<T>([](const Var<T>& x) { return max_pool2d(x, 3, 1); }, plane, 1.0);
    BOOST_TEST(ieee_mismatch(y3, {NaN}, 0) == "");
    BOOST_TEST(ieee_mismatch(dx3, {0, 0, 0, 0, 0, 0, 1, 0, 0}, 0) == "");
}

// Both max-pool loops against a plain scan of PyTorch's rule (start at -Inf with the first
// element's index; take a value that is larger or NaN), on inputs full of NaN, +-Inf and ties.
BOOST_AUTO_TEST_CASE(max_pool_loops_follow_pytorchs_rule_on_any_mix_of_values) {
    std::mt19937 rng(31);
    const double pool[] = {NaN, Inf, -Inf, -1, 0, 1};
    std::uniform_int_distribution<int> pick(0, 5);
    Tensor<double> x(Shape{3, 2, 7, 9});
    for (double& v : x) v = pool[pick(rng)];
    for (const auto& [kernel, stride] : {std::pair{2, 2}, std::pair{3, 2}, std::pair{2, 1}}) {
        Tensor<double> y;
        std::vector<std::int32_t> argmax;
        pool::max_forward(x, kernel, stride, y, argmax);
        const int Ho = y.dim(2), Wo = y.dim(3);
        std::size_t k = 0, mismatches = 0;
        for (int p = 0; p < 6; ++p)
            for (int r = 0; r < Ho; ++r)
                for (int c = 0; c < Wo; ++c, ++k) {
                    int best = p * 63 + r * stride * 9 + c * stride;
                    double m = -Inf;
                    for (int u = 0; u < kernel; ++u)
                        for (int v = 0; v < kernel; ++v) {
                            const int at = p * 63 + (r * stride + u) * 9 + c * stride + v;
                            if (x[at] > m || std::isnan(x[at])) m = x[at], best = at;
                        }
                    mismatches += argmax[k] != best || !same_ieee(y[k], m, 0);
                }
        BOOST_TEST(mismatches == 0u, "kernel " << kernel << " stride " << stride);
    }
}

// PyTorch's conv2d (the same in float64 and float32, oneDNN on or off) on one 1-channel image with
// a 2 x 2 kernel, run on each path: padding zeros multiply (0 * Inf = NaN in Y and dK), while the
// zeros a stride or the full convolution would put in dY are no terms (dX, dK stay Inf or finite).
BOOST_AUTO_TEST_CASE_TEMPLATE(conv_gives_pytorchs_values_and_gradients_on_every_path, T, scalar_types) {
    struct Case {
        const char* name;
        int size, padding, stride;
        std::vector<double> x, k;
        double upstream;
        std::vector<double> y, dx, dk;
    };
    const std::vector<double> ones9(9, 1.0), ones25(25, 1.0), inf9(9, Inf), nan4(4, NaN);
    std::vector<double> x_inf = ones25;
    x_inf[6] = Inf;
    const std::vector<double> dx_s2 = {1, 1, 1, 1, 0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0};
    const std::vector<Case> cases = {
        {"inf in K, padding 1", 3, 1, 1, ones9, {1, 1, 1, Inf}, 1.0,
         {Inf, Inf, Inf, NaN, Inf, Inf, Inf, NaN, Inf, Inf, Inf, NaN, NaN, NaN, NaN, NaN}, inf9, {9, 9, 9, 9}},
        {"inf in K, stride 2", 5, 0, 2, ones25, {1, 1, 1, Inf}, 1.0, {Inf, Inf, Inf, Inf},
         {1, 1, 1, 1, 0, 1, Inf, 1, Inf, 0, 1, 1, 1, 1, 0, 1, Inf, 1, Inf, 0, 0, 0, 0, 0, 0}, {4, 4, 4, 4}},
        {"inf in X, stride 2", 5, 0, 2, x_inf, {1, 1, 1, 1}, 1.0, {Inf, 4, 4, 4}, dx_s2, {4, 4, 4, Inf}},
        {"inf upstream, padding 1", 3, 1, 1, ones9, {1, 1, 1, 1}, Inf, {1, 2, 2, 1, 2, 4, 4, 2, 2, 4, 4, 2, 1, 2, 2, 1}, inf9, nan4},
    };
    for (ConvPath path : {ConvPath::plain, ConvPath::correlate2d, ConvPath::im2col}) {
        for (const Case& c : cases) {
            BOOST_TEST_CONTEXT(conv_path_name(path) << ", " << c.name) {
                Tape<T> tape;
                const Var<T> x = tape.input(tensor<T>(Shape{1, 1, c.size, c.size}, c.x));
                const Var<T> k = tape.input(tensor<T>(Shape{1, 1, 2, 2}, c.k));
                const Var<T> y = conv2d(x, k, Conv2dOptions{c.padding, c.stride, path});
                tape.backward(weighted_sum(y, Tensor<T>(y.shape(), static_cast<T>(c.upstream))));
                BOOST_TEST(ieee_mismatch(y.value(), c.y, 0) == "");
                BOOST_TEST(ieee_mismatch(x.grad(), c.dx, 0) == "", "dX");
                BOOST_TEST(ieee_mismatch(k.grad(), c.dk, 0) == "", "dK");
            }
        }
    }
}

// The fast paths against the plain loops with NaN, +Inf and -Inf scattered through X, K or dY.
BOOST_AUTO_TEST_CASE(conv_paths_agree_with_the_plain_loops_on_non_finite_values) {
    Rng rng(32);
    const Shape xs{2, 3, 7, 10}, ks{4, 3, 3, 3};
    const auto scatter = [&rng](Tensor<double>& t) {
        const double bad[] = {NaN, Inf, -Inf};
        for (int n = 0; n < 3; ++n) t[rng.below(t.numel())] = bad[n];
    };
    for (const Conv2dOptions o : {Conv2dOptions{0, 1}, Conv2dOptions{2, 1}, Conv2dOptions{1, 2}, Conv2dOptions{0, 3}}) {
        for (const char* where : {"X", "K", "dY"}) {
            Tensor<double> x = uniform(xs, rng), k = uniform(ks, rng), gy = uniform(conv::output_shape(xs, ks, o), rng);
            scatter(where[0] == 'X' ? x : where[0] == 'K' ? k : gy);
            Tensor<double> y0, gx0(xs), gk0(ks);
            conv::forward_plain(x, k, o, y0);
            conv::backward_plain(x, k, gy, o, &gx0, &gk0);
            using Forward = void (*)(const Tensor<double>&, const Tensor<double>&, const Conv2dOptions&, Tensor<double>&);
            using Backward = void (*)(const Tensor<double>&, const Tensor<double>&, const Tensor<double>&, const Conv2dOptions&,
                                      Tensor<double>*, Tensor<double>*);
            const std::tuple<const char*, Forward, Backward> paths[] = {
                {"correlate2d", conv::forward_correlate2d<double>, conv::backward_correlate2d<double>},
                {"im2col", conv::forward_im2col<double>, conv::backward_im2col<double>}};
            for (const auto& [name, forward, backward] : paths) {
                BOOST_TEST_CONTEXT(name << ", non-finite values in " << where << ", padding " << o.padding << " stride " << o.stride) {
                    Tensor<double> y, gx(xs), gk(ks);
                    forward(x, k, o, y);
                    backward(x, k, gy, o, &gx, &gk);
                    BOOST_TEST(ieee_mismatch(y, as_vector(y0), 1e-12) == "", "Y");
                    BOOST_TEST(ieee_mismatch(gx, as_vector(gx0), 1e-12) == "", "dX");
                    BOOST_TEST(ieee_mismatch(gk, as_vector(gk0), 1e-12) == "", "dK");
                }
            }
        }
    }
}

// PyTorch's cross_entropy (mean over the batch) on two rows of three logits.
BOOST_AUTO_TEST_CASE(softmax_cross_entropy_gives_pytorchs_values_and_gradients) {
    struct Case {
        const char* name;
        std::vector<double> logits;
        std::vector<int> labels;
        double upstream, loss;
        std::vector<double> grad;
    };
    const std::vector<double> row1 = {0.04501528658519022, -0.37763576447260117, 0.3326204778874109};  // [0, 1, 2], label 1
    const auto with_row1 = [&](std::vector<double> row0) {
        row0.insert(row0.end(), row1.begin(), row1.end());
        return row0;
    };
    const std::vector<Case> cases = {
        {"NaN logit", {NaN, 0, 1, 0, 1, 2}, {0, 1}, 1, NaN, with_row1({NaN, NaN, NaN})},
        {"+Inf logit", {Inf, 0, 1, 0, 1, 2}, {1, 1}, 1, NaN, with_row1({NaN, NaN, NaN})},
        {"-Inf logit at the label", {-Inf, 0, 1, 0, 1, 2}, {0, 1}, 1, Inf, with_row1({-0.5, 0.13447071068499755, 0.36552928931500245})},
        {"-Inf logit elsewhere", {-Inf, 0, 1, 0, 1, 2}, {1, 1}, 1, 1.3604338259813016, with_row1({0, -0.36552928931500245, 0.36552928931500245})},
        {"a row of -inf", {-Inf, -Inf, -Inf, 0, 1, 2}, {1, 1}, 1, NaN, with_row1({NaN, NaN, NaN})},
        {"inf upstream", {-Inf, 0, 1, 0, 1, 2}, {1, 1}, Inf, 1.3604338259813016, {NaN, NaN, Inf, Inf, NaN, Inf}},
        {"NaN upstream", {0, 0, 1, 0, 1, 2}, {1, 1}, NaN, 1.4795253391882157, std::vector<double>(6, NaN)},
    };
    for (const Case& c : cases) {
        BOOST_TEST_CONTEXT(c.name) {
            Tape<double> tape;
            const Var<double> z = tape.input(Tensor<double>(Shape{2, 3}, c.logits));
            const Var<double> loss = softmax_cross_entropy(z, c.labels);
            tape.backward(weighted_sum(loss, Tensor<double>(Shape{}, c.upstream)));
            BOOST_TEST(ieee_mismatch(loss.value(), {c.loss}, 1e-12) == "");
            BOOST_TEST(ieee_mismatch(z.grad(), c.grad, 1e-12) == "");
        }
    }
}

// ---- every case of the node registry ------------------------------------------------------------

namespace {

// The case's output on `values` (an inference tape, as NodeCase::output_shape runs it).
Tensor<double> forward_value(const NodeCase& c, NodeValues& values) {
    Tape<double> probe(Tape<double>::Mode::inference);
    std::vector<Var<double>> xs, ps;
    for (const NamedTensor& x : values.inputs) xs.push_back(probe.constant(x.value));
    for (Parameter<double>& p : values.params) ps.push_back(probe.param(p));
    return c.forward({xs, ps, values.constants}).value();
}

// dL/d(inputs), then dL/d(parameters), for L = <case output, w>.
std::vector<Tensor<double>> gradients(const NodeCase& c, NodeValues& values, const Tensor<double>& w) {
    Tape<double> tape;
    std::vector<Var<double>> xs, ps;
    for (const NamedTensor& x : values.inputs) xs.push_back(tape.input(x.value));
    for (Parameter<double>& p : values.params) {
        p.zero_grad();
        ps.push_back(tape.param(p));
    }
    tape.backward(weighted_sum(c.forward({xs, ps, values.constants}), w));
    std::vector<Tensor<double>> g;
    for (const Var<double>& x : xs) g.push_back(x.grad());
    for (const Parameter<double>& p : values.params) g.push_back(p.grad);
    return g;
}

// Distinct flat positions among n: the first, the last, the middle and three drawn.
std::vector<std::size_t> positions(std::size_t n, Rng& rng) {
    std::vector<std::size_t> at = {0, n - 1, n / 2, rng.below(n), rng.below(n), rng.below(n)};
    std::sort(at.begin(), at.end());
    at.erase(std::unique(at.begin(), at.end()), at.end());
    return at;
}

// The rule, for one element v put in one place: result j "is reached" from there when the results
// with +Inf and with -Inf there differ or are not finite. Then with NaN there, a reached result
// must be NaN and every other one must be what it was before (as with +Inf and -Inf). "" when
// y_nan follows it, else the first element that does not.
std::string nan_rule_mismatch(const Tensor<double>& before, const Tensor<double>& y_inf, const Tensor<double>& y_minus_inf,
                              const Tensor<double>& y_nan) {
    for (std::size_t j = 0; j < before.numel(); ++j) {
        const double p = y_inf[j], m = y_minus_inf[j];
        const bool reached = !(p == m) || !std::isfinite(p) || !std::isfinite(m);
        if (reached ? !std::isnan(y_nan[j]) : !(y_nan[j] == before[j] && p == before[j]))
            return fmt::format("element {}: {} with NaN, {} with +Inf, {} with -Inf, {} before", j, y_nan[j], p, m, before[j]);
    }
    return "";
}

}  // namespace

// A NaN in any input or parameter of any registered node comes out as NaN in exactly the outputs
// that the element can change (no node drops it, none spreads it further); checked at six places
// of every leaf of every case. This is what relu and max-pool failed before they followed PyTorch.
BOOST_AUTO_TEST_CASE(every_registered_node_passes_a_nan_in_a_leaf_to_exactly_the_outputs_it_reaches) {
    for (const NodeCase& c : node_cases()) {
        Rng rng(40);
        NodeValues values = c.draw(rng);
        const Tensor<double> before = forward_value(c, values);
        std::vector<std::pair<std::string, Tensor<double>*>> leaves;
        for (NamedTensor& x : values.inputs) leaves.emplace_back(x.name, &x.value);
        for (Parameter<double>& p : values.params) leaves.emplace_back(p.name, &p.value);
        for (const auto& [name, leaf] : leaves) {
            for (const std::size_t i : positions(leaf->numel(), rng)) {
                const double kept = (*leaf)[i];
                const auto with = [&, leaf = leaf, i = i](double v) {
                    (*leaf)[i] = v;
                    return forward_value(c, values);
                };
                const Tensor<double> y_inf = with(Inf), y_minus_inf = with(-Inf), y_nan = with(NaN);
                (*leaf)[i] = kept;
                BOOST_TEST(nan_rule_mismatch(before, y_inf, y_minus_inf, y_nan) == "", c.name << ": " << name << "[" << i << "]");
            }
        }
    }
}

// A NaN upstream gradient at any output of any registered node reaches exactly the input and
// parameter gradients that the upstream element can change, by the same rule: no silent zeroing
// (relu's select gives 0 where it switched the unit off, as PyTorch's does, and so does +-Inf).
BOOST_AUTO_TEST_CASE(every_registered_node_passes_a_nan_upstream_gradient_to_exactly_the_gradients_it_reaches) {
    for (const NodeCase& c : node_cases()) {
        Rng rng(41);
        NodeValues values = c.draw(rng);
        Tensor<double> w = away_from_zero(0.25, 1.0).draw(c.output_shape(values), rng);
        const std::vector<Tensor<double>> before = gradients(c, values, w);
        for (const std::size_t j : positions(w.numel(), rng)) {
            const double kept = w[j];
            const auto with = [&, j = j](double v) {
                w[j] = v;
                return gradients(c, values, w);
            };
            const std::vector<Tensor<double>> g_inf = with(Inf), g_minus_inf = with(-Inf), g_nan = with(NaN);
            w[j] = kept;
            for (std::size_t k = 0; k < before.size(); ++k)
                BOOST_TEST(nan_rule_mismatch(before[k], g_inf[k], g_minus_inf[k], g_nan[k]) == "",
                           c.name << ": gradient " << k << " with dL/dy[" << j << "] non-finite");
        }
    }
}

BOOST_AUTO_TEST_SUITE_END()
