#pragma once
// Numerical gradient check, in the spirit of torch.autograd.gradcheck.
//
// For every element of every input and parameter: numeric = (L(v + eps) - L(v - eps)) / (2 eps),
// evaluated in double on an inference tape, compared with the analytic gradient from one backward
// pass. An element passes when |analytic - numeric| <= atol + rtol * |numeric|. The report lists
// each tensor checked with its worst absolute and relative error and where it occurred; it fails
// when an element fails, when the graph uses a parameter that was not handed in for checking, and
// when a tensor's analytic and numeric gradients are both all zero (a check that checked nothing).
//
// Kinks. relu is not differentiable at 0, max-pool not where two elements of a window tie. When
// x lies within eps of such a point, x + eps and x - eps sit on different sides of it and the
// difference quotient mixes two slopes: a correct backward would look wrong. The check sees this
// in the branch log (tape.hpp): every pass logs the branch decisions of its ops (relu signs,
// max-pool winners), and for each element the logs at x + eps and x - eps are compared with the
// log at x. When either differs, the step straddles a kink, and the element is re-checked with
// steps eps/10, eps/100, ... down to min_eps (1e-10): the first step whose both sides keep x's
// branches gives the numeric gradient, compared with the same tolerance as any other (a wrong
// backward still fails). When even min_eps crosses, the element sits on the kink itself, where
// there is no derivative to compare: it is counted as a kink, not as checked, and not in the
// errors. A tensor whose every sampled element is a kink fails (nothing was compared), like an
// all-zero one.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "mcnn/tape.hpp"

namespace mcnn {

struct GradCheckOptions {
    double eps = 1e-6;
    double atol = 1e-5;
    double rtol = 1e-3;
    /// The smallest step tried when eps crosses a kink (steps eps/10, eps/100, ... down to this).
    double min_eps = 1e-10;
    /// 0: every element. Otherwise at most this many elements per tensor, drawn with `seed`.
    std::size_t max_elements = 0;
    std::uint64_t seed = 0;
    /// Report all-zero gradients as a note instead of a failure.
    bool allow_zero_gradients = false;
    /// OpenMP threads for the numeric passes. Each pass is one small forward; with more threads
    /// their barriers cost more than the work (see threads.hpp).
    int numeric_threads = 1;
};

/// One checked tensor (an input or a parameter).
struct GradCheckEntry {
    std::string name;
    bool is_parameter = false;
    Shape shape;
    std::size_t checked = 0;         // elements compared
    std::size_t failed = 0;          // elements outside the tolerance
    std::size_t rechecked = 0;       // of the checked: compared with a step below eps, which crossed a kink
    std::size_t kinks = 0;           // elements on a kink even at min_eps: not compared (not in checked)
    double max_abs_error = 0;        // max |a - n|
    double max_rel_error = 0;        // max |a - n| / max(|a|, |n|), where max(|a|, |n|) > atol
    std::size_t worst_index = 0;     // flat index of the element with the largest error / tolerance
    double worst_analytic = 0, worst_numeric = 0;
    bool all_zero = false;           // analytic and numeric both zero everywhere checked
    bool all_kinks = false;          // every sampled element was a kink: nothing compared
    bool passed = false;
};

struct GradCheckReport {
    std::vector<GradCheckEntry> entries;
    std::vector<std::string> problems;  // reasons for failure, one sentence each
    double loss = 0;
    double min_eps = 0;  // the smallest step that re-checks tried (GradCheckOptions::min_eps)

    bool passed() const { return problems.empty(); }
    double max_rel_error() const;
    double max_abs_error() const;
    /// A fixed-width table, one row per tensor, a line explaining re-checks and kinks when there
    /// were any, then the problems.
    std::string table() const;
};

/// A named input tensor whose gradient is checked (the function receives it as a Var).
struct NamedTensor {
    std::string name;
    Tensor<double> value;
};

/// Builds the scalar loss on `tape` from the inputs (in the order given) and any parameters it
/// puts on the tape with tape.param(). Called once in train mode, once in inference mode at the
/// unperturbed values (the branch log at x), and twice per step tried for each element in
/// inference mode, so it must be deterministic.
using LossFunction = std::function<Var<double>(Tape<double>& tape, const std::vector<Var<double>>& inputs)>;

/// Checks dL/d(input) for every input and dL/d(p) for every parameter in `params`. Parameter
/// gradients are overwritten (they hold the analytic gradient afterwards); values are restored.
GradCheckReport gradcheck(const LossFunction& loss, std::vector<NamedTensor> inputs,
                          const std::vector<Parameter<double>*>& params, const GradCheckOptions& options = {});

}  // namespace mcnn
