#pragma once
// The registry of per-node gradient checks: one named case per node (and per variant that needs
// its own shapes: conv padding and stride, 2-D bias input, overlapping pooling, linear without
// bias). Each case builds small inputs and parameters that catch shape mistakes (batch > 1,
// several input and output channels, non-square and odd sizes), draws them from Rng(seed), reduces
// the node's output to a scalar with weighted_sum and random weights, and runs gradcheck on every
// input and every parameter. Inputs keep away from the points where a node is not differentiable
// (relu's kink, ties in a max-pool window), so a failure means a wrong backward, not a bad check.
// Used by the node_gradients tests and by `gradcheck --node NAME`.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "mcnn/check/gradcheck.hpp"

namespace mcnn {

/// One registered check: `run(seed, options)` builds the case from `seed` and returns the report.
struct NodeCase {
    std::string name;         // "conv2d_fast_pad2", "relu", ...
    std::string description;  // the node, its shapes and options, in one line
    std::function<GradCheckReport(std::uint64_t seed, const GradCheckOptions& options)> run;
};

/// Every registered case, in a fixed order (conv first, loss last). Names are unique.
const std::vector<NodeCase>& node_cases();

/// The case called `name` (among node_cases() and notebook_fault_cases()); throws mcnn::Error
/// listing the valid names when there is none.
const NodeCase& node_case(const std::string& name);

}  // namespace mcnn
