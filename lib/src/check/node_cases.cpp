// The per-node gradient-check cases. See mcnn/check/node_cases.hpp.
#include "mcnn/check/node_cases.hpp"
#include "mcnn/check/notebook_layer.hpp"

#include <algorithm>
#include <numeric>

#include <fmt/format.h>

#include "mcnn/nn/init.hpp"
#include "mcnn/ops/activation.hpp"
#include "mcnn/ops/bias.hpp"
#include "mcnn/ops/correlate2d.hpp"
#include "mcnn/ops/elementwise.hpp"
#include "mcnn/ops/linear.hpp"
#include "mcnn/ops/loss.hpp"
#include "mcnn/ops/pool.hpp"
#include "mcnn/ops/shape.hpp"

namespace mcnn {
namespace {

using Vars = std::vector<Var<double>>;
/// The node(s) under test: inputs (as Vars, in the order given) -> an output of any shape.
/// Parameters are captured by reference and put on the tape with tape.param().
using Forward = std::function<Var<double>(Tape<double>& tape, const Vars& inputs)>;

// ---- inputs ---------------------------------------------------------------------------------

/// Values drawn uniformly from [lo, hi).
Tensor<double> uniform(const Shape& shape, Rng& rng, double lo, double hi) {
    Tensor<double> t(shape);
    for (double& v : t) v = rng.uniform(lo, hi);
    return t;
}

/// Values with |v| in [min_abs, max_abs) and a random sign: no element near zero (relu's kink;
/// weights that would hide an output element from the check).
Tensor<double> away_from_zero(const Shape& shape, Rng& rng, double min_abs = 0.1, double max_abs = 1.5) {
    Tensor<double> t(shape);
    for (double& v : t) v = (rng.below(2) == 0 ? -1.0 : 1.0) * rng.uniform(min_abs, max_abs);
    return t;
}

/// A random permutation of distinct values spaced `spacing` apart, centred on zero: no two
/// elements of a max-pool window tie, and a perturbation of eps << spacing never changes a maximum.
Tensor<double> distinct(const Shape& shape, Rng& rng, double spacing = 0.01) {
    Tensor<double> t(shape);
    std::vector<std::size_t> order(t.numel());
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::shuffle(order.begin(), order.end(), rng.engine());
    const double centre = 0.5 * static_cast<double>(t.numel());
    for (std::size_t i = 0; i < t.numel(); ++i) t[i] = (static_cast<double>(order[i]) - centre) * spacing;
    return t;
}

// ---- the check ------------------------------------------------------------------------------

/// Runs gradcheck on L = weighted_sum(forward(inputs), w), w random and away from zero (so every
/// output element reaches the loss), checking every input and every parameter in `params`.
GradCheckReport check_node(Rng& rng, std::vector<NamedTensor> inputs, const std::vector<Parameter<double>*>& params,
                           const Forward& forward, const GradCheckOptions& options) {
    Shape out_shape;
    {
        Tape<double> probe(Tape<double>::Mode::inference);
        Vars vars;
        for (const auto& in : inputs) vars.push_back(probe.constant(in.value));
        out_shape = forward(probe, vars).shape();
    }
    const Tensor<double> weights = away_from_zero(out_shape, rng, 0.25, 1.0);
    const LossFunction loss = [&forward, &weights](Tape<double>& tape, const Vars& in) {
        return weighted_sum(forward(tape, in), weights);
    };
    return gradcheck(loss, std::move(inputs), params, options);
}

// ---- cases ----------------------------------------------------------------------------------

// x [2, 3, 7, 10] (batch 2, 3 input channels, odd and non-square), kernels [D, 3, F, F]: D = 4 on
// the reference path, 8 on the fast path (with fewer output channels it would run the reference
// loops, see ConvPath).
NodeCase conv_case(ConvPath path, int kernel, int padding, int stride) {
    const char* path_name = path == ConvPath::reference ? "reference" : "fast";
    std::string name = fmt::format("conv2d_{}", path_name);
    if (padding) name += fmt::format("_pad{}", padding);
    if (stride != 1) name += fmt::format("_stride{}", stride);
    const Shape xs{2, 3, 7, 10}, ks{path == ConvPath::fast ? conv::direct_max_out_channels : 4, 3, kernel, kernel};
    const Conv2dOptions options{padding, stride, path};
    const Shape ys = conv::output_shape(xs, ks, options);
    std::string description = fmt::format("conv2d, {} path: x {} * kernels {}, padding {}, stride {} -> {}", path_name, xs.str(),
                                          ks.str(), padding, stride, ys.str());
    if ((xs[2] + 2 * padding - kernel) % stride != 0 || (xs[3] + 2 * padding - kernel) % stride != 0)
        description += " (the stride leaves input elements unused: their gradient is zero)";
    return {name, description, [=](std::uint64_t seed, const GradCheckOptions& o) {
                Rng rng(seed);
                Parameter<double> k("kernels", uniform(ks, rng, -0.5, 0.5));
                std::vector<NamedTensor> inputs{{"x", uniform(xs, rng, -1, 1)}};
                return check_node(
                    rng, std::move(inputs), {&k},
                    [&](Tape<double>& tape, const Vars& in) { return conv2d(in[0], tape.param(k), options); }, o);
            }};
}

// An element-wise node on x [2, 3, 5, 7] (values chosen by `make_x`).
template <class MakeX, class Node>
NodeCase elementwise_case(std::string name, std::string description, MakeX make_x, Node node) {
    return {std::move(name), std::move(description), [=](std::uint64_t seed, const GradCheckOptions& o) {
                Rng rng(seed);
                std::vector<NamedTensor> inputs{{"x", make_x(Shape{2, 3, 5, 7}, rng)}};
                return check_node(
                    rng, std::move(inputs), {}, [&](Tape<double>&, const Vars& in) { return node(in[0]); }, o);
            }};
}

std::vector<NodeCase> make_cases() {
    std::vector<NodeCase> cases;
    for (ConvPath path : {ConvPath::reference, ConvPath::fast}) {
        cases.push_back(conv_case(path, 3, 0, 1));  // [2, D, 5, 8]
        cases.push_back(conv_case(path, 5, 2, 1));  // [2, D, 7, 10]: "same" size
        cases.push_back(conv_case(path, 2, 0, 2));  // [2, D, 3, 5]: even kernel, input row 6 unused
        cases.push_back(conv_case(path, 4, 1, 3));  // [2, D, 2, 3]: last input row and column unused
    }

    cases.push_back({"bias_channels", "bias_channels: x [2, 3, 5, 7] + b [3] (one bias per channel)",
                     [](std::uint64_t seed, const GradCheckOptions& o) {
                         Rng rng(seed);
                         Parameter<double> b("b", uniform(Shape{3}, rng, -1, 1));
                         std::vector<NamedTensor> inputs{{"x", uniform(Shape{2, 3, 5, 7}, rng, -1, 1)}};
                         return check_node(
                             rng, std::move(inputs), {&b},
                             [&](Tape<double>& tape, const Vars& in) { return bias_channels(in[0], tape.param(b)); }, o);
                     }});
    cases.push_back({"bias_channels_2d", "bias_channels: x [4, 5] (B x D, after a linear layer) + b [5]",
                     [](std::uint64_t seed, const GradCheckOptions& o) {
                         Rng rng(seed);
                         Parameter<double> b("b", uniform(Shape{5}, rng, -1, 1));
                         std::vector<NamedTensor> inputs{{"x", uniform(Shape{4, 5}, rng, -1, 1)}};
                         return check_node(
                             rng, std::move(inputs), {&b},
                             [&](Tape<double>& tape, const Vars& in) { return bias_channels(in[0], tape.param(b)); }, o);
                     }});
    cases.push_back({"bias_untied", "bias_untied: x [2, 3, 5, 7] + b [3, 5, 7] (one bias per channel and position)",
                     [](std::uint64_t seed, const GradCheckOptions& o) {
                         Rng rng(seed);
                         Parameter<double> b("b", uniform(Shape{3, 5, 7}, rng, -1, 1));
                         std::vector<NamedTensor> inputs{{"x", uniform(Shape{2, 3, 5, 7}, rng, -1, 1)}};
                         return check_node(
                             rng, std::move(inputs), {&b},
                             [&](Tape<double>& tape, const Vars& in) { return bias_untied(in[0], tape.param(b)); }, o);
                     }});

    const auto off_kink = [](const Shape& s, Rng& rng) { return away_from_zero(s, rng, 0.1, 1.5); };
    const auto wide = [](const Shape& s, Rng& rng) { return uniform(s, rng, -3, 3); };
    cases.push_back(elementwise_case("relu", "relu: x [2, 3, 5, 7], |x| >= 0.1 (off the kink)", off_kink,
                                     [](const Var<double>& x) { return relu(x); }));
    cases.push_back(elementwise_case("leaky_relu", "leaky_relu, slope 0.1: x [2, 3, 5, 7], |x| >= 0.1 (off the kink)", off_kink,
                                     [](const Var<double>& x) { return leaky_relu(x, 0.1); }));
    cases.push_back(
        elementwise_case("tanh", "tanh: x [2, 3, 5, 7] in [-3, 3)", wide, [](const Var<double>& x) { return tanh(x); }));
    cases.push_back(
        elementwise_case("sigmoid", "sigmoid: x [2, 3, 5, 7] in [-3, 3)", wide, [](const Var<double>& x) { return sigmoid(x); }));

    cases.push_back({"max_pool2d",
                     "max_pool2d, kernel 2 stride 2: x [2, 3, 7, 8] -> [2, 3, 3, 4], distinct values 0.01 apart (no ties); input "
                     "row 6 unused",
                     [](std::uint64_t seed, const GradCheckOptions& o) {
                         Rng rng(seed);
                         std::vector<NamedTensor> inputs{{"x", distinct(Shape{2, 3, 7, 8}, rng)}};
                         return check_node(
                             rng, std::move(inputs), {}, [](Tape<double>&, const Vars& in) { return max_pool2d(in[0], 2, 2); },
                             o);
                     }});
    cases.push_back(
        {"max_pool2d_overlap",
         "max_pool2d, kernel 3 stride 2 (overlapping windows): x [2, 3, 7, 9] -> [2, 3, 3, 4], distinct values 0.01 apart",
         [](std::uint64_t seed, const GradCheckOptions& o) {
             Rng rng(seed);
             std::vector<NamedTensor> inputs{{"x", distinct(Shape{2, 3, 7, 9}, rng)}};
             return check_node(
                 rng, std::move(inputs), {}, [](Tape<double>&, const Vars& in) { return max_pool2d(in[0], 3, 2); }, o);
         }});

    cases.push_back({"reshape", "reshape: x [2, 3, 4, 5] -> [5, 24]", [](std::uint64_t seed, const GradCheckOptions& o) {
                         Rng rng(seed);
                         std::vector<NamedTensor> inputs{{"x", uniform(Shape{2, 3, 4, 5}, rng, -1, 1)}};
                         return check_node(
                             rng, std::move(inputs), {},
                             [](Tape<double>&, const Vars& in) {
                                 return reshape(in[0], Shape{5, 24});
                             },
                             o);
                     }});
    cases.push_back({"flatten", "flatten: x [2, 3, 4, 5] -> [2, 60]", [](std::uint64_t seed, const GradCheckOptions& o) {
                         Rng rng(seed);
                         std::vector<NamedTensor> inputs{{"x", uniform(Shape{2, 3, 4, 5}, rng, -1, 1)}};
                         return check_node(
                             rng, std::move(inputs), {}, [](Tape<double>&, const Vars& in) { return flatten(in[0]); }, o);
                     }});

    cases.push_back(
        {"linear", "linear: x [3, 7] W^T, W [5, 7], + b [5] -> [3, 5]", [](std::uint64_t seed, const GradCheckOptions& o) {
             Rng rng(seed);
             Parameter<double> w("W", uniform(Shape{5, 7}, rng, -1, 1));
             Parameter<double> b("b", uniform(Shape{5}, rng, -1, 1));
             std::vector<NamedTensor> inputs{{"x", uniform(Shape{3, 7}, rng, -1, 1)}};
             return check_node(
                 rng, std::move(inputs), {&w, &b},
                 [&](Tape<double>& tape, const Vars& in) { return linear(in[0], tape.param(w), tape.param(b)); }, o);
         }});
    cases.push_back({"linear_no_bias", "linear without bias: x [3, 7] W^T, W [5, 7] -> [3, 5]",
                     [](std::uint64_t seed, const GradCheckOptions& o) {
                         Rng rng(seed);
                         Parameter<double> w("W", uniform(Shape{5, 7}, rng, -1, 1));
                         std::vector<NamedTensor> inputs{{"x", uniform(Shape{3, 7}, rng, -1, 1)}};
                         return check_node(
                             rng, std::move(inputs), {&w},
                             [&](Tape<double>& tape, const Vars& in) { return linear(in[0], tape.param(w)); }, o);
                     }});

    cases.push_back({"add", "add with fan-out: (x + y) + (x + x), x and y [2, 3, 5] (dL/dx sums three paths)",
                     [](std::uint64_t seed, const GradCheckOptions& o) {
                         Rng rng(seed);
                         std::vector<NamedTensor> inputs{{"x", uniform(Shape{2, 3, 5}, rng, -1, 1)},
                                                         {"y", uniform(Shape{2, 3, 5}, rng, -1, 1)}};
                         return check_node(
                             rng, std::move(inputs), {},
                             [](Tape<double>&, const Vars& in) { return add(add(in[0], in[1]), add(in[0], in[0])); }, o);
                     }});
    cases.push_back({"weighted_sum", "weighted_sum: x [2, 3, 5] . w [2, 3, 5] -> scalar (then scaled: upstream gradient != 1)",
                     [](std::uint64_t seed, const GradCheckOptions& o) {
                         Rng rng(seed);
                         std::vector<NamedTensor> inputs{{"x", uniform(Shape{2, 3, 5}, rng, -1, 1)}};
                         const Tensor<double> w = uniform(Shape{2, 3, 5}, rng, -1, 1);
                         return check_node(
                             rng, std::move(inputs), {}, [&w](Tape<double>&, const Vars& in) { return weighted_sum(in[0], w); },
                             o);
                     }});
    cases.push_back(
        {"softmax_cross_entropy",
         "softmax_cross_entropy: logits [4, 6] in [-3, 3), row 1 shifted by +1000 (needs the stable form), random labels",
         [](std::uint64_t seed, const GradCheckOptions& o) {
             Rng rng(seed);
             Tensor<double> z = uniform(Shape{4, 6}, rng, -3, 3);
             for (int c = 0; c < 6; ++c) z.at({1, c}) += 1000;
             std::vector<int> labels(4);
             for (int& t : labels) t = static_cast<int>(rng.below(6));
             std::vector<NamedTensor> inputs{{"logits", std::move(z)}};
             return check_node(
                 rng, std::move(inputs), {},
                 [labels](Tape<double>&, const Vars& in) { return softmax_cross_entropy(in[0], labels); }, o);
         }});
    cases.push_back(notebook_case(NotebookFault::none));
    return cases;
}

}  // namespace

const std::vector<NodeCase>& node_cases() {
    static const std::vector<NodeCase> cases = make_cases();
    return cases;
}

const NodeCase& node_case(const std::string& name) {
    for (const auto* list : {&node_cases(), &notebook_fault_cases()})
        for (const NodeCase& c : *list)
            if (c.name == name) return c;
    std::vector<std::string> names;
    for (const auto* list : {&node_cases(), &notebook_fault_cases()})
        for (const NodeCase& c : *list) names.push_back(c.name);
    fail("node_case: no gradient check named '{}'; valid names: {}", name, fmt::join(names, ", "));
}

}  // namespace mcnn
