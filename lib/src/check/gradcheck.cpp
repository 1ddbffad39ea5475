#include "mcnn/check/gradcheck.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <optional>
#include <random>

#include <fmt/format.h>

#include "mcnn/threads.hpp"

namespace mcnn {
namespace {

std::vector<std::size_t> chosen_elements(std::size_t numel, const GradCheckOptions& o, std::mt19937_64& rng) {
    std::vector<std::size_t> idx(numel);
    std::iota(idx.begin(), idx.end(), std::size_t{0});
    if (o.max_elements == 0 || numel <= o.max_elements) return idx;
    std::shuffle(idx.begin(), idx.end(), rng);
    idx.resize(o.max_elements);
    std::sort(idx.begin(), idx.end());
    return idx;
}

// One central difference (L(x + step) - L(x - step)) / (2 step) at element i of `value`, and
// whether either side took other branches than x did (the step crossed a kink).
struct Difference {
    double numeric = 0;
    bool crossed = false;
};

template <class Evaluate>
Difference central_difference(Tensor<double>& value, std::size_t i, double step, const Evaluate& evaluate,
                              const BranchLog& at_x) {
    const double saved = value[i];
    BranchLog up_branches, down_branches;
    value[i] = saved + step;
    const double up = evaluate(up_branches);
    value[i] = saved - step;
    const double down = evaluate(down_branches);
    value[i] = saved;
    return {(up - down) / (2 * step), !(up_branches == at_x && down_branches == at_x)};
}

// The numeric gradient at element i: the central difference with step eps when it keeps x's
// branches; else (it straddles a kink) with the first of eps/10, eps/100, ... down to min_eps that
// does. None when every step crosses: the element sits on a kink.
struct Numeric {
    std::optional<double> gradient;
    bool rechecked = false;  // a step smaller than eps was needed
};

template <class Evaluate>
Numeric numeric_gradient(Tensor<double>& value, std::size_t i, const Evaluate& evaluate, const BranchLog& at_x,
                         const GradCheckOptions& o) {
    const Difference first = central_difference(value, i, o.eps, evaluate, at_x);
    if (!first.crossed) return {first.numeric, false};
    // 0.99: tenfold divisions of eps need not land exactly on min_eps
    for (double step = o.eps / 10; step >= 0.99 * o.min_eps; step /= 10) {
        const Difference smaller = central_difference(value, i, step, evaluate, at_x);
        if (!smaller.crossed) return {smaller.numeric, true};
    }
    return {std::nullopt, true};
}

// Compares the analytic gradient of `value` with numeric gradients from `evaluate`, perturbing
// `value` in place (and restoring it). `at_x`: the branches taken at the unperturbed values.
template <class Evaluate>
GradCheckEntry compare(const std::string& name, bool is_parameter, Tensor<double>& value, const Tensor<double>& analytic,
                       const Evaluate& evaluate, const BranchLog& at_x, const GradCheckOptions& o, std::mt19937_64& rng) {
    GradCheckEntry e;
    e.name = name;
    e.is_parameter = is_parameter;
    e.shape = value.shape();
    double worst_ratio = -1;  // largest |a - n| / tolerance seen
    // "All zero" looks at the whole analytic gradient, so a sample that happens to hit only the
    // zeros of a sparse gradient (max-pool, relu) is not mistaken for a check of nothing.
    bool any_nonzero = (analytic.array() != 0.0).any();
    for (std::size_t i : chosen_elements(value.numel(), o, rng)) {
        const Numeric n = numeric_gradient(value, i, evaluate, at_x, o);
        if (!n.gradient) {  // on a kink: no derivative to compare with
            ++e.kinks;
            continue;
        }
        const double numeric = *n.gradient, a = analytic[i];
        const double abs_err = std::abs(a - numeric), scale = std::max(std::abs(a), std::abs(numeric));
        const double ratio = abs_err / (o.atol + o.rtol * std::abs(numeric));
        ++e.checked;
        if (n.rechecked) ++e.rechecked;
        if (!(ratio <= 1)) ++e.failed;  // also counts NaN
        any_nonzero = any_nonzero || a != 0 || numeric != 0;
        e.max_abs_error = std::max(e.max_abs_error, abs_err);
        if (scale > o.atol) e.max_rel_error = std::max(e.max_rel_error, abs_err / scale);
        if (ratio > worst_ratio || std::isnan(ratio)) {
            worst_ratio = std::isnan(ratio) ? INFINITY : ratio;
            e.worst_index = i;
            e.worst_analytic = a;
            e.worst_numeric = numeric;
        }
    }
    e.all_kinks = e.checked == 0 && e.kinks > 0;
    e.all_zero = e.checked > 0 && !any_nonzero;
    e.passed = e.failed == 0 && !e.all_kinks && (!e.all_zero || o.allow_zero_gradients);
    return e;
}

// "[1, 0, 3, 4]" for flat index 40 of shape [2, 3, 4, 5]
std::string index_str(std::size_t flat, const Shape& shape) {
    std::vector<int> idx(static_cast<std::size_t>(shape.rank()));
    for (int d = shape.rank() - 1; d >= 0; --d) {
        idx[static_cast<std::size_t>(d)] = static_cast<int>(flat % static_cast<std::size_t>(shape[d]));
        flat /= static_cast<std::size_t>(shape[d]);
    }
    return fmt::format("[{}]", fmt::join(idx, ", "));
}

}  // namespace

double GradCheckReport::max_rel_error() const {
    double m = 0;
    for (const auto& e : entries) m = std::max(m, e.max_rel_error);
    return m;
}

double GradCheckReport::max_abs_error() const {
    double m = 0;
    for (const auto& e : entries) m = std::max(m, e.max_abs_error);
    return m;
}

std::string GradCheckReport::table() const {
    const auto result = [](const GradCheckEntry& e) {
        if (e.all_kinks) return "FAIL (all kinks)";
        if (e.all_zero) return e.passed ? "ok (all zero)" : "FAIL (all zero)";
        return e.passed ? "ok" : "FAIL";
    };
    std::string out = fmt::format("{:<16} {:<6} {:<16} {:>8} {:>9} {:>6} {:>10} {:>10} {:>14} {:>13} {:>13}  {}\n", "tensor", "kind",
                                  "shape", "checked", "rechecked", "kinks", "max abs", "max rel", "worst at", "analytic", "numeric",
                                  "result");
    bool any_kink = false;
    for (const auto& e : entries) {
        out += fmt::format("{:<16} {:<6} {:<16} {:>8} {:>9} {:>6} {:>10.2e} {:>10.2e} {:>14} {:>13.6e} {:>13.6e}  {}\n", e.name,
                           e.is_parameter ? "param" : "input", e.shape.str(), e.checked, e.rechecked, e.kinks, e.max_abs_error,
                           e.max_rel_error, index_str(e.worst_index, e.shape), e.worst_analytic, e.worst_numeric, result(e));
        any_kink = any_kink || e.rechecked > 0 || e.kinks > 0;
    }
    if (any_kink)
        out += fmt::format("rechecked: +-eps crossed a kink (a branch such as a relu sign or a max-pool winner changed), "
                           "compared with a smaller step; kinks: crossed even at {:.0e}, not compared\n",
                           min_eps);
    for (const auto& p : problems) out += "problem: " + p + "\n";
    out += fmt::format("{}: loss {:.6f}, worst relative error {:.2e}\n", passed() ? "PASSED" : "FAILED", loss, max_rel_error());
    return out;
}

GradCheckReport gradcheck(const LossFunction& loss, std::vector<NamedTensor> inputs, const std::vector<Parameter<double>*>& params,
                          const GradCheckOptions& options) {
    if (!(options.eps > 0) || !(options.min_eps > 0))
        fail("gradcheck: eps and min_eps must be > 0, got {} and {}", options.eps, options.min_eps);
    GradCheckReport report;
    report.min_eps = options.min_eps;
    for (Parameter<double>* p : params) p->zero_grad();

    // Analytic gradients: one recorded pass and one backward.
    std::vector<Tensor<double>> analytic;
    {
        Tape<double> tape;
        std::vector<Var<double>> vars;
        for (const auto& in : inputs) vars.push_back(tape.input(in.value));
        const Var<double> l = loss(tape, vars);
        if (l.value().numel() != 1) fail("gradcheck: the loss function returned shape {}, not a scalar", l.shape().str());
        report.loss = l.value()[0];
        if (!std::isfinite(report.loss)) report.problems.push_back(fmt::format("the loss is not finite ({})", report.loss));
        tape.backward(l);
        for (const Var<double>& v : vars) analytic.push_back(tape.has_grad(v) ? v.grad() : Tensor<double>(v.shape()));
        for (Parameter<double>* used : tape.parameters())
            if (std::find(params.begin(), params.end(), used) == params.end())
                report.problems.push_back(fmt::format("parameter '{}' {} is used by the graph but was not given to the check",
                                                      used->name, used->value.shape().str()));
    }

    // Numeric passes: the loss on an inference tape that logs the branches its ops took.
    const auto evaluate = [&](BranchLog& branches) {
        branches.clear();
        Tape<double> tape(Tape<double>::Mode::inference);
        tape.set_branch_log(&branches);
        std::vector<Var<double>> vars;
        for (const auto& in : inputs) vars.push_back(tape.constant(in.value));
        return loss(tape, vars).value()[0];
    };
    std::mt19937_64 rng(options.seed);
    const ThreadLimit threads(options.numeric_threads);
    BranchLog at_x;  // the branches at the unperturbed values, which every step is compared with
    evaluate(at_x);
    for (std::size_t k = 0; k < inputs.size(); ++k)
        report.entries.push_back(compare(inputs[k].name, false, inputs[k].value, analytic[k], evaluate, at_x, options, rng));
    for (Parameter<double>* p : params) {
        const Tensor<double> grad = p->grad;  // the numeric passes leave p->grad alone, but copy to be plain
        report.entries.push_back(compare(p->name, true, p->value, grad, evaluate, at_x, options, rng));
    }

    for (const auto& e : report.entries) {
        if (e.failed > 0)
            report.problems.push_back(fmt::format("{} '{}': {} of {} elements outside tolerance; worst at {}: analytic {:.6e}, numeric {:.6e}",
                                                  e.is_parameter ? "parameter" : "input", e.name, e.failed, e.checked,
                                                  index_str(e.worst_index, e.shape), e.worst_analytic, e.worst_numeric));
        if (e.all_kinks)
            report.problems.push_back(fmt::format("{} '{}': all {} elements sampled sit on a kink (their branches change even at "
                                                  "step {:.0e}), so nothing was compared",
                                                  e.is_parameter ? "parameter" : "input", e.name, e.kinks, options.min_eps));
        if (e.all_zero && !options.allow_zero_gradients)
            report.problems.push_back(fmt::format("{} '{}': analytic and numeric gradients are both all zero, so nothing was checked",
                                                  e.is_parameter ? "parameter" : "input", e.name));
    }
    return report;
}

}  // namespace mcnn
