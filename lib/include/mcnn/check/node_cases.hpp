#pragma once
// The node registry: one entry per node check, read by everything that checks nodes.
//
// ADDING A NODE takes three things and nothing else:
//   1. its op file (lib/include/mcnn/ops/, lib/src/ops/): forward and backward side by side;
//   2. one NodeCase entry in make_cases() (lib/src/check/node_cases.cpp): its name, the node it
//      checks (`node`, the function's name, e.g. "conv2d"), a description, the shapes of its inputs
//      and parameters with how their values are drawn, and `forward`, the op applied to them;
//   3. one row in README.md's node table ("| node | forward | saved for backward | backward ...").
// From then on, with no other list to edit, the entry is
//   - checked numerically (gradcheck in double, every element) by the node_gradients tests and by
//     `gradcheck --node NAME|all`;
//   - put through the backward contract of STYLE.md by the node_gradients tests: backward adds
//     (fan-out and accumulation without zero_grad), zero upstream gives zero gradients, bitwise
//     deterministic, gradient shapes equal value shapes and are finite, every element of a
//     parameter gradient buffer is added to (sentinel pre-fill);
//   - given NaN and +-inf by the nonfinite tests: a NaN put into any element of an input or a
//     parameter must come out as NaN in exactly the outputs that element can change, and a NaN
//     upstream gradient likewise in the gradients (nothing dropped, nothing spread);
//   - required to have a README row: every distinct `node` among node_cases() must be named, in
//     backquotes, in the first column of the README's node table (`conv2d(x, k, ...)` names conv2d;
//     `relu`, `tanh` names both), and every node named there must have a case.
// A variant that needs its own shapes or options (conv padding and stride, a 2-D bias input,
// overlapping pooling, linear without bias) is one more entry with the same `node`.
//
// What makes a case strong: shapes that catch mistakes (batch > 1, several input and output
// channels, non-square and odd sizes) and values away from the points where the node is not
// differentiable (relu's kink: away_from_zero; ties in a max-pool window: distinct_values), so a
// failure means a wrong backward, not a bad check. A node that needs more than tensors (labels,
// fixed weights) draws them as `constants`, which the check does not differentiate.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "mcnn/check/gradcheck.hpp"
#include "mcnn/nn/init.hpp"

namespace mcnn {

/// How a tensor's values are drawn from the case's Rng.
struct ValueGenerator {
    std::string what;  // for the case's summary: "uniform in [-1, 1)", ...
    std::function<Tensor<double>(const Shape& shape, Rng& rng)> draw;
};

/// Values uniform in [lo, hi).
ValueGenerator uniform_values(double lo = -1, double hi = 1);

/// |v| in [min_abs, max_abs) with a random sign: no element near zero (relu's kink; weights that
/// would hide an output element from the check).
ValueGenerator away_from_zero(double min_abs = 0.1, double max_abs = 1.5);

/// A random permutation of distinct values `spacing` apart, centred on zero: no two elements of a
/// max-pool window tie, and a perturbation eps << spacing never changes a maximum.
ValueGenerator distinct_values(double spacing = 0.01);

/// Whole numbers in [0, classes), for class labels kept as a constant (see labels_of).
ValueGenerator class_labels(int classes);

/// A constant drawn with class_labels, as the labels softmax_cross_entropy takes.
std::vector<int> labels_of(const Tensor<double>& t);

/// One tensor a case draws: an input, a parameter or a constant.
struct LeafSpec {
    std::string name;  // "x", "W", "labels": the gradcheck report names it
    Shape shape;
    ValueGenerator values;
};

/// The values of one case, drawn from a seed.
struct NodeValues {
    std::vector<NamedTensor> inputs;         // gradient checked, handed to the node as Vars
    std::vector<Parameter<double>> params;   // gradient checked, on the tape with tape.param();
                                             // never resized: a tape points into them
    std::vector<Tensor<double>> constants;   // not differentiated (labels, fixed weights)
};

/// What `forward` receives: Vars of the inputs and parameters (in the order declared) and the
/// constants.
struct NodeArgs {
    const std::vector<Var<double>>& inputs;
    const std::vector<Var<double>>& params;
    const std::vector<Tensor<double>>& constants;
};

/// One registered check. Its leaves are drawn from Rng(seed) in a fixed order (parameters, inputs,
/// constants, then the weights of the check's loss), so a seed always builds the same case.
struct NodeCase {
    std::string name;         // unique: "conv2d_im2col_pad2", "relu", ...
    std::string node;         // the node checked, as the README's node table names it: "conv2d"
    std::string description;  // what the case exercises beyond its shapes, in one line
    std::vector<LeafSpec> inputs{};
    std::vector<LeafSpec> params{};     // none when left out
    std::vector<LeafSpec> constants{};  // none when left out
    /// The node (or a small graph around it) applied to the leaves: an output of any shape.
    std::function<Var<double>(const NodeArgs& args)> forward;

    /// Draws every leaf from `rng`: parameters, then inputs, then constants.
    NodeValues draw(Rng& rng) const;
    /// forward() on `values` (inference tape): the output's shape.
    Shape output_shape(NodeValues& values) const;
    /// The numeric check: L = weighted_sum(forward(...), w) with w random and |w| in [0.25, 1)
    /// (every output element reaches L); gradcheck of every input and every parameter.
    GradCheckReport run(std::uint64_t seed, const GradCheckOptions& options) const;
    /// One line: the node, each leaf with its shape and values, the output shape, the description.
    std::string summary() const;
};

/// Every registered case, in a fixed order (conv first, loss last). Names are unique.
const std::vector<NodeCase>& node_cases();

/// The case called `name` (among node_cases() and notebook_fault_cases()); throws mcnn::Error
/// listing the valid names when there is none.
const NodeCase& node_case(const std::string& name);

}  // namespace mcnn
