// The node registry: every node's gradient-check case. See mcnn/check/node_cases.hpp (and its rule
// for adding a node).
#include "mcnn/check/node_cases.hpp"
#include "mcnn/check/notebook_layer.hpp"

#include <algorithm>
#include <numeric>

#include <fmt/format.h>

#include "mcnn/ops/activation.hpp"
#include "mcnn/ops/bias.hpp"
#include "mcnn/ops/correlate2d.hpp"
#include "mcnn/ops/dropout.hpp"
#include "mcnn/ops/elementwise.hpp"
#include "mcnn/ops/linear.hpp"
#include "mcnn/ops/loss.hpp"
#include "mcnn/ops/norm.hpp"
#include "mcnn/ops/pool.hpp"
#include "mcnn/ops/shape.hpp"

namespace mcnn {

// ---- values ---------------------------------------------------------------------------------

ValueGenerator uniform_values(double lo, double hi) {
    return {fmt::format("uniform in [{:g}, {:g})", lo, hi), [lo, hi](const Shape& shape, Rng& rng) {
                Tensor<double> t(shape);
                for (double& v : t) v = rng.uniform(lo, hi);
                return t;
            }};
}

ValueGenerator away_from_zero(double min_abs, double max_abs) {
    return {fmt::format("|v| in [{:g}, {:g}), random sign", min_abs, max_abs), [min_abs, max_abs](const Shape& shape, Rng& rng) {
                Tensor<double> t(shape);
                for (double& v : t) v = (rng.below(2) == 0 ? -1.0 : 1.0) * rng.uniform(min_abs, max_abs);
                return t;
            }};
}

ValueGenerator distinct_values(double spacing) {
    return {fmt::format("distinct, {:g} apart", spacing), [spacing](const Shape& shape, Rng& rng) {
                Tensor<double> t(shape);
                std::vector<std::size_t> order(t.numel());
                std::iota(order.begin(), order.end(), std::size_t{0});
                std::shuffle(order.begin(), order.end(), rng.engine());
                const double centre = 0.5 * static_cast<double>(t.numel());
                for (std::size_t i = 0; i < t.numel(); ++i) t[i] = (static_cast<double>(order[i]) - centre) * spacing;
                return t;
            }};
}

ValueGenerator class_labels(int classes) {
    if (classes < 1) fail("class_labels: need at least one class, got {}", classes);
    return {fmt::format("labels in [0, {})", classes), [classes](const Shape& shape, Rng& rng) {
                Tensor<double> t(shape);
                for (double& v : t) v = static_cast<double>(rng.below(static_cast<std::uint64_t>(classes)));
                return t;
            }};
}

std::vector<int> labels_of(const Tensor<double>& t) {
    std::vector<int> labels;
    for (double v : t) {
        if (v < 0 || v != static_cast<double>(static_cast<int>(v))) fail("labels_of: {} is not a class label", v);
        labels.push_back(static_cast<int>(v));
    }
    return labels;
}

// ---- one case -------------------------------------------------------------------------------

NodeValues NodeCase::draw(Rng& rng) const {
    NodeValues v;
    v.params.reserve(params.size());
    for (const LeafSpec& p : params) v.params.emplace_back(p.name, p.values.draw(p.shape, rng));
    for (const LeafSpec& x : inputs) v.inputs.push_back({x.name, x.values.draw(x.shape, rng)});
    for (const LeafSpec& c : constants) v.constants.push_back(c.values.draw(c.shape, rng));
    return v;
}

Shape NodeCase::output_shape(NodeValues& values) const {
    Tape<double> probe(Tape<double>::Mode::inference);
    std::vector<Var<double>> xs, ps;
    for (const NamedTensor& x : values.inputs) xs.push_back(probe.constant(x.value));
    for (Parameter<double>& p : values.params) ps.push_back(probe.param(p));
    return forward({xs, ps, values.constants}).shape();
}

GradCheckReport NodeCase::run(std::uint64_t seed, const GradCheckOptions& options) const {
    Rng rng(seed);
    NodeValues values = draw(rng);
    const Tensor<double> weights = away_from_zero(0.25, 1.0).draw(output_shape(values), rng);
    std::vector<Parameter<double>*> checked;
    for (Parameter<double>& p : values.params) checked.push_back(&p);
    const LossFunction loss = [&](Tape<double>& tape, const std::vector<Var<double>>& xs) {
        std::vector<Var<double>> ps;
        for (Parameter<double>& p : values.params) ps.push_back(tape.param(p));
        return weighted_sum(forward({xs, ps, values.constants}), weights);
    };
    return gradcheck(loss, values.inputs, checked, options);
}

std::string NodeCase::summary() const {
    std::vector<std::string> leaves;
    for (const auto* list : {&inputs, &params, &constants})
        for (const LeafSpec& l : *list) {
            const char* kind = list == &inputs ? "input" : list == &params ? "param" : "constant";
            leaves.push_back(fmt::format("{} {} {} ({})", kind, l.name, l.shape.str(), l.values.what));
        }
    Rng rng(0);
    NodeValues values = draw(rng);
    return fmt::format("{}: {} -> {}; {}", node, fmt::join(leaves, ", "), output_shape(values).str(), description);
}

// ---- the registry ---------------------------------------------------------------------------

namespace {

// x [2, 3, 7, 10] (batch 2, 3 input channels, odd and non-square), kernels [4, 3, F, F], on one
// conv path (named explicitly, so `automatic` picking another cannot hide a path from the check).
NodeCase conv_case(ConvPath path, int kernel, int padding, int stride) {
    const char* path_name = conv_path_name(path);
    std::string name = fmt::format("conv2d_{}", path_name);
    if (padding) name += fmt::format("_pad{}", padding);
    if (stride != 1) name += fmt::format("_stride{}", stride);
    const Shape xs{2, 3, 7, 10}, ks{4, 3, kernel, kernel};
    const Conv2dOptions options{padding, stride, path};
    std::string description = fmt::format("{} path, padding {}, stride {}", path_name, padding, stride);
    if ((xs[2] + 2 * padding - kernel) % stride != 0 || (xs[3] + 2 * padding - kernel) % stride != 0)
        description += " (the stride leaves input elements unused: their gradient is zero)";
    return {.name = name,
            .node = "conv2d",
            .description = description,
            .inputs = {{"x", xs, uniform_values(-1, 1)}},
            .params = {{"kernels", ks, uniform_values(-0.5, 0.5)}},
            .forward = [options](const NodeArgs& a) { return conv2d(a.inputs[0], a.params[0], options); }};
}

// An element-wise node on x [2, 3, 5, 7].
NodeCase elementwise_case(std::string name, std::string description, ValueGenerator values,
                          std::function<Var<double>(const Var<double>&)> node) {
    std::string node_name = name;
    return {.name = std::move(name),
            .node = std::move(node_name),
            .description = std::move(description),
            .inputs = {{"x", Shape{2, 3, 5, 7}, std::move(values)}},
            .forward = [node = std::move(node)](const NodeArgs& a) { return node(a.inputs[0]); }};
}

// Logits in [-3, 3) with row 1 shifted by +1000: a plain exp overflows there.
ValueGenerator logits_with_a_large_row() {
    return {"uniform in [-3, 3), row 1 + 1000", [](const Shape& shape, Rng& rng) {
                Tensor<double> z = uniform_values(-3, 3).draw(shape, rng);
                for (int c = 0; c < shape[1]; ++c) z.at({1, c}) += 1000;
                return z;
            }};
}

void add_conv_cases(std::vector<NodeCase>& cases) {
    for (ConvPath path : {ConvPath::plain, ConvPath::correlate2d, ConvPath::im2col}) {
        cases.push_back(conv_case(path, 3, 0, 1));  // [2, D, 5, 8]
        cases.push_back(conv_case(path, 5, 2, 1));  // [2, D, 7, 10]: "same" size
        cases.push_back(conv_case(path, 2, 0, 2));  // [2, D, 3, 5]: even kernel, input row 6 unused
        cases.push_back(conv_case(path, 4, 1, 3));  // [2, D, 2, 3]: last input row and column unused
    }
}

void add_bias_and_activation_cases(std::vector<NodeCase>& cases) {
    const auto bias = [](const NodeArgs& a) { return bias_channels(a.inputs[0], a.params[0]); };
    cases.push_back({.name = "bias_channels",
                     .node = "bias_channels",
                     .description = "one bias per channel",
                     .inputs = {{"x", {2, 3, 5, 7}, uniform_values()}},
                     .params = {{"b", {3}, uniform_values()}},
                     .forward = bias});
    cases.push_back({.name = "bias_channels_2d",
                     .node = "bias_channels",
                     .description = "B x D input, as after a linear layer",
                     .inputs = {{"x", {4, 5}, uniform_values()}},
                     .params = {{"b", {5}, uniform_values()}},
                     .forward = bias});
    cases.push_back({.name = "bias_untied",
                     .node = "bias_untied",
                     .description = "one bias per channel and position",
                     .inputs = {{"x", {2, 3, 5, 7}, uniform_values()}},
                     .params = {{"b", {3, 5, 7}, uniform_values()}},
                     .forward = [](const NodeArgs& a) { return bias_untied(a.inputs[0], a.params[0]); }});

    cases.push_back(elementwise_case("relu", "off the kink", away_from_zero(), [](const Var<double>& x) { return relu(x); }));
    cases.push_back(elementwise_case("leaky_relu", "slope 0.1, off the kink", away_from_zero(),
                                     [](const Var<double>& x) { return leaky_relu(x, 0.1); }));
    cases.push_back(
        elementwise_case("tanh", "into both tails", uniform_values(-3, 3), [](const Var<double>& x) { return tanh(x); }));
    cases.push_back(
        elementwise_case("sigmoid", "into both tails", uniform_values(-3, 3), [](const Var<double>& x) { return sigmoid(x); }));
}

void add_pool_and_shape_cases(std::vector<NodeCase>& cases) {
    cases.push_back({.name = "max_pool2d",
                     .node = "max_pool2d",
                     .description = "kernel 2, stride 2, no ties; input row 6 unused",
                     .inputs = {{"x", {2, 3, 7, 8}, distinct_values()}},
                     .forward = [](const NodeArgs& a) { return max_pool2d(a.inputs[0], 2, 2); }});
    cases.push_back({.name = "max_pool2d_overlap",
                     .node = "max_pool2d",
                     .description = "kernel 3, stride 2: overlapping windows, no ties",
                     .inputs = {{"x", {2, 3, 7, 9}, distinct_values()}},
                     .forward = [](const NodeArgs& a) { return max_pool2d(a.inputs[0], 3, 2); }});
    cases.push_back({.name = "reshape",
                     .node = "reshape",
                     .description = "to [5, 24]",
                     .inputs = {{"x", {2, 3, 4, 5}, uniform_values()}},
                     .forward = [](const NodeArgs& a) { return reshape(a.inputs[0], Shape{5, 24}); }});
    cases.push_back({.name = "flatten",
                     .node = "flatten",
                     .description = "keeps the batch dimension",
                     .inputs = {{"x", {2, 3, 4, 5}, uniform_values()}},
                     .forward = [](const NodeArgs& a) { return flatten(a.inputs[0]); }});
}

void add_linear_and_loss_cases(std::vector<NodeCase>& cases) {
    cases.push_back({.name = "linear",
                     .node = "linear",
                     .description = "x W^T + b",
                     .inputs = {{"x", {3, 7}, uniform_values()}},
                     .params = {{"W", {5, 7}, uniform_values()}, {"b", {5}, uniform_values()}},
                     .forward = [](const NodeArgs& a) { return linear(a.inputs[0], a.params[0], a.params[1]); }});
    cases.push_back({.name = "linear_no_bias",
                     .node = "linear",
                     .description = "x W^T, no bias",
                     .inputs = {{"x", {3, 7}, uniform_values()}},
                     .params = {{"W", {5, 7}, uniform_values()}},
                     .forward = [](const NodeArgs& a) { return linear(a.inputs[0], a.params[0]); }});
    cases.push_back({.name = "add",
                     .node = "add",
                     .description = "with fan-out: (x + y) + (x + x), so dL/dx sums three paths",
                     .inputs = {{"x", {2, 3, 5}, uniform_values()}, {"y", {2, 3, 5}, uniform_values()}},
                     .forward = [](const NodeArgs& a) {
                         const Var<double>& x = a.inputs[0], &y = a.inputs[1];
                         return add(add(x, y), add(x, x));
                     }});
    cases.push_back({.name = "weighted_sum",
                     .node = "weighted_sum",
                     .description = "x . w, then scaled by the check's own weight: upstream gradient != 1",
                     .inputs = {{"x", {2, 3, 5}, uniform_values()}},
                     .constants = {{"w", {2, 3, 5}, uniform_values()}},
                     .forward = [](const NodeArgs& a) { return weighted_sum(a.inputs[0], a.constants[0]); }});
    cases.push_back({.name = "softmax_cross_entropy",
                     .node = "softmax_cross_entropy",
                     .description = "the large row needs the stable form; random labels",
                     .inputs = {{"logits", {4, 6}, logits_with_a_large_row()}},
                     .constants = {{"labels", {4}, class_labels(6)}},
                     .forward = [](const NodeArgs& a) {
                         return softmax_cross_entropy(a.inputs[0], labels_of(a.constants[0]));
                     }});
    cases.push_back({.name = "softmax_cross_entropy_smoothed",
                     .node = "softmax_cross_entropy",
                     .description = "label smoothing 0.2 (airbench's); the large row needs the stable form",
                     .inputs = {{"logits", {4, 6}, logits_with_a_large_row()}},
                     .constants = {{"labels", {4}, class_labels(6)}},
                     .forward = [](const NodeArgs& a) {
                         return softmax_cross_entropy(a.inputs[0], labels_of(a.constants[0]), 0.2);
                     }});
}

// The nodes of modern networks (airbench-like): gelu, dropout, scale, average pools, max-pool 3.
void add_modern_cases(std::vector<NodeCase>& cases) {
    cases.push_back(elementwise_case("gelu", "erf form, into both tails", uniform_values(-3, 3), [](const Var<double>& x) { return gelu(x); }));
    cases.push_back(elementwise_case("dropout", "p 0.3, seed 7: some elements dropped, the rest scaled by 1 / 0.7", uniform_values(),
                                     [](const Var<double>& x) { return dropout(x, 0.3, 7); }));
    cases.push_back(elementwise_case("scale", "by 1/9 (airbench's head)", uniform_values(), [](const Var<double>& x) { return scale(x, 1.0 / 9); }));
    cases.push_back({.name = "avg_pool2d",
                     .node = "avg_pool2d",
                     .description = "kernel 2, stride 2; input row 6 unused",
                     .inputs = {{"x", {2, 3, 7, 8}, uniform_values()}},
                     .forward = [](const NodeArgs& a) { return avg_pool2d(a.inputs[0], 2); }});
    cases.push_back({.name = "avg_pool2d_overlap",
                     .node = "avg_pool2d",
                     .description = "kernel 3, stride 2: overlapping windows",
                     .inputs = {{"x", {2, 3, 7, 9}, uniform_values()}},
                     .forward = [](const NodeArgs& a) { return avg_pool2d(a.inputs[0], 3, 2); }});
    cases.push_back({.name = "global_avg_pool2d",
                     .node = "global_avg_pool2d",
                     .description = "B x C x H x W -> B x C",
                     .inputs = {{"x", {2, 3, 5, 7}, uniform_values()}},
                     .forward = [](const NodeArgs& a) { return global_avg_pool2d(a.inputs[0]); }});
    cases.push_back({.name = "max_pool2d_k3",
                     .node = "max_pool2d",
                     .description = "kernel 3, stride 3 (nn.MaxPool2d(3)), no ties; input row 6 unused",
                     .inputs = {{"x", {2, 3, 7, 9}, distinct_values()}},
                     .forward = [](const NodeArgs& a) { return max_pool2d(a.inputs[0], 3); }});
}

// Batch norm on x [3, 4, 3, 5] (batch 3, 4 channels, odd and non-square): train mode with and
// without affine parameters (gradient through the batch mean and variance), eval mode with running
// statistics drawn as constants.
void add_norm_cases(std::vector<NodeCase>& cases) {
    const Shape xs{3, 4, 3, 5}, cs{4};
    cases.push_back({.name = "batch_norm2d_train",
                     .node = "batch_norm2d",
                     .description = "train mode: batch statistics, affine weight and bias",
                     .inputs = {{"x", xs, uniform_values(-2, 2)}},
                     .params = {{"weight", cs, uniform_values(0.5, 1.5)}, {"bias", cs, uniform_values()}},
                     .forward = [](const NodeArgs& a) {
                         return batch_norm2d(a.inputs[0], a.params[0], a.params[1], BatchNormRunning<double>{}, {.training = true});
                     }});
    cases.push_back({.name = "batch_norm2d_train_no_affine",
                     .node = "batch_norm2d",
                     .description = "train mode: batch statistics, no weight or bias, eps 0.1",
                     .inputs = {{"x", xs, uniform_values(-2, 2)}},
                     .forward = [](const NodeArgs& a) {
                         return batch_norm2d(a.inputs[0], BatchNormRunning<double>{}, {.training = true, .eps = 0.1});
                     }});
    cases.push_back({.name = "batch_norm2d_eval",
                     .node = "batch_norm2d",
                     .description = "eval mode: running mean and var (constants), affine weight and bias",
                     .inputs = {{"x", xs, uniform_values(-2, 2)}},
                     .params = {{"weight", cs, uniform_values(0.5, 1.5)}, {"bias", cs, uniform_values()}},
                     .constants = {{"running_mean", cs, uniform_values()}, {"running_var", cs, uniform_values(0.5, 2)}},
                     .forward = [](const NodeArgs& a) {
                         Tensor<double> mean = a.constants[0], var = a.constants[1];
                         return batch_norm2d(a.inputs[0], a.params[0], a.params[1], BatchNormRunning<double>{&mean, &var},
                                             {.training = false});
                     }});
}

std::vector<NodeCase> make_cases() {
    std::vector<NodeCase> cases;
    add_conv_cases(cases);
    add_bias_and_activation_cases(cases);
    add_pool_and_shape_cases(cases);
    add_modern_cases(cases);
    add_linear_and_loss_cases(cases);
    add_norm_cases(cases);
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
