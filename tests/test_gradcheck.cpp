// The numerical gradient checker itself: it must pass correct nodes, fail broken ones naming the
// tensor and the element, catch parameters it was not told about and parameters that get no
// gradient, honour max_elements, and fail on a NaN loss. Near relu's kink and max-pool ties it
// must re-check with a smaller step or count a kink, yet still fail a wrong backward there; the
// branch log it relies on is tested here too.
#include <boost/test/unit_test.hpp>

#include <tuple>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "mcnn/check/gradcheck.hpp"
#include "mcnn/check/notebook_layer.hpp"
#include "mcnn/nn/init.hpp"
#include "mcnn/ops/activation.hpp"
#include "mcnn/ops/elementwise.hpp"
#include "mcnn/ops/linear.hpp"
#include "mcnn/ops/pool.hpp"
#include "support.hpp"

using namespace mcnn;
using namespace mcnn::test;

namespace {

bool any_problem_contains(const GradCheckReport& r, const std::string& part) {
    return std::any_of(r.problems.begin(), r.problems.end(), [&](const std::string& p) { return contains(p, part); });
}

const GradCheckEntry* entry(const GradCheckReport& r, const std::string& name) {
    for (const auto& e : r.entries)
        if (e.name == name) return &e;
    return nullptr;
}

// ---- relu-like nodes, right and wrong ------------------------------------------------------------

enum class ReluBackward { right, forgets_mask, doubles, scaled };

/// y = max(x, 0) with the backward chosen by `how`: dx += dy * [y > 0] (right), dx += dy
/// (forgets_mask), dx += 2 dy [y > 0] (doubles), dx += (1 + scale) dy [y > 0] (scaled). Like the
/// library's relu it logs the side of its kink each element takes (one call, see tape.hpp).
Var<double> relu_like(const Var<double>& x, ReluBackward how, double scale = 0) {
    log_branches(x, "relu_like", x.value().numel(), [&](std::size_t i) { return x.value()[i] > 0; });
    Tensor<double> y(x.shape());
    for (std::size_t i = 0; i < y.numel(); ++i) y[i] = std::max(x.value()[i], 0.0);
    return record<double>("relu_like", std::move(y), {x},
                          [how, scale](const Tensor<double>& out, const Tensor<double>& gy, auto g) {
                              if (!g[0]) return;
                              for (std::size_t i = 0; i < out.numel(); ++i) {
                                  const double mask = out[i] > 0 ? 1.0 : 0.0;
                                  switch (how) {
                                      case ReluBackward::right:
                                          (*g[0])[i] += gy[i] * mask;
                                          break;
                                      case ReluBackward::forgets_mask:
                                          (*g[0])[i] += gy[i];
                                          break;
                                      case ReluBackward::doubles:
                                          (*g[0])[i] += 2 * gy[i] * mask;
                                          break;
                                      case ReluBackward::scaled:
                                          (*g[0])[i] += (1 + scale) * gy[i] * mask;
                                          break;
                                  }
                              }
                          });
}

struct ReluSetup {
    Tensor<double> x, w;
    explicit ReluSetup(std::uint64_t seed) {
        Rng rng(seed);
        x = off_zero(Shape{3, 7}, rng);
        w = off_zero(Shape{3, 7}, rng);
    }
    GradCheckReport check(ReluBackward how, double scale = 0, const GradCheckOptions& o = {}) const {
        return mcnn::gradcheck([&](Tape<double>&, const Vars& in) { return weighted_sum(relu_like(in[0], how, scale), w); },
                               {{"x", x}}, {}, o);
    }
    std::size_t count(bool positive) const {
        return static_cast<std::size_t>(std::count_if(x.begin(), x.end(), [&](double v) { return (v > 0) == positive; }));
    }
};

// ---- linear-like nodes (no bias), right and wrong --------------------------------------------------

enum class LinearBackward { right, transposed_dw, first_row_only_dw };

/// y = x W^T (x: B x I, W: O x I) with dx right and dW right, transposed (for a square W), or
/// taken from the first batch row only.
Var<double> linear_like(const Var<double>& x, const Var<double>& w, LinearBackward how) {
    Tensor<double> y(Shape{x.shape()[0], w.shape()[0]});
    y.matrix() = x.value().matrix() * w.value().matrix().transpose();
    return record<double>("linear_like", std::move(y), {x, w},
                          [xv = x.value_ptr(), wv = w.value_ptr(), how](const Tensor<double>&, const Tensor<double>& gy, auto g) {
                              if (g[0]) g[0]->matrix() += gy.matrix() * wv->matrix();
                              if (!g[1]) return;
                              const Matrix<double> dw = gy.matrix().transpose() * xv->matrix();
                              switch (how) {
                                  case LinearBackward::right:
                                      g[1]->matrix() += dw;
                                      break;
                                  case LinearBackward::transposed_dw:
                                      g[1]->matrix() += dw.transpose();
                                      break;
                                  case LinearBackward::first_row_only_dw:
                                      g[1]->matrix() += gy.matrix().row(0).transpose() * xv->matrix().row(0);
                                      break;
                              }
                          });
}

// ---- kinks ------------------------------------------------------------------------------------

/// The signature BranchLog gives these decisions, in this order.
std::uint64_t signature_of(const std::vector<std::uint64_t>& decisions) {
    return BranchLog::signature(decisions.size(), [&](std::size_t i) { return decisions[i]; });
}

/// The branch log of one inference pass of `forward` on x.
BranchLog branches_of(const Tensor<double>& x, const std::function<Var<double>(const Var<double>&)>& forward) {
    BranchLog log;
    Tape<double> tape(Tape<double>::Mode::inference);
    tape.set_branch_log(&log);
    forward(tape.constant(x));
    return log;
}

/// x [1, 1, 4, 4] for relu then 2 x 2 max-pool, placed at and near the kinks. Its four windows
/// (flat indices of x in brackets):
///   [0 1 4 5]      3e-7 (the winner, 3e-7 from relu's kink), the rest negative
///   [2 3 6 7]      0.5 and 0.5 + 4e-7 (the winner): 4e-7 from a max-pool tie
///   [8 9 12 13]    0 exactly (on relu's kink), the rest negative
///   [10 11 14 15]  0.7 twice (an exact tie; the first wins), 0.3, 0.2
/// With eps 1e-6, elements 0, 2 and 3 cross a kink but a step of 1e-7 does not (re-checked);
/// elements 8, 10 and 14 cross at every step (kinks).
struct KinkSetup {
    Tensor<double> x{Shape{1, 1, 4, 4},
                     {3e-7, -0.5, 0.5, 0.5 + 4e-7, -0.3, -0.8, 0.1, -0.2, 0.0, -0.4, 0.7, 0.3, -0.2, -0.1, 0.7, 0.2}};
    Tensor<double> w{Shape{1, 1, 2, 2}, {0.9, -1.3, 0.6, 1.1}};
    static constexpr std::size_t rechecked = 3, kinks = 3;

    Var<double> forward(const Var<double>& x, ReluBackward how) const {
        return weighted_sum(max_pool2d(relu_like(x, how), 2), w);
    }
    GradCheckReport check(ReluBackward how) const {
        return mcnn::gradcheck([&](Tape<double>&, const Vars& in) { return forward(in[0], how); }, {{"x", x}}, {});
    }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(gradcheck)

BOOST_AUTO_TEST_CASE(a_correct_node_passes) {
    const ReluSetup s(1);
    const GradCheckReport r = s.check(ReluBackward::right);
    BOOST_TEST(r.passed(), r.table());
    BOOST_TEST_REQUIRE(r.entries.size() == 1u);
    BOOST_TEST(r.entries[0].name == "x");
    BOOST_TEST(!r.entries[0].is_parameter);
    BOOST_TEST(r.entries[0].checked == 21u);
    BOOST_TEST(r.entries[0].failed == 0u);
    BOOST_TEST(r.max_rel_error() < 1e-6);
    BOOST_TEST(r.problems.empty());
    BOOST_TEST(contains(r.table(), "PASSED"));
}

BOOST_AUTO_TEST_CASE(relu_that_forgets_the_mask_fails_at_a_negative_input) {
    const ReluSetup s(2);
    const GradCheckReport r = s.check(ReluBackward::forgets_mask);
    BOOST_TEST(!r.passed());
    BOOST_TEST_REQUIRE(r.entries.size() == 1u);
    const GradCheckEntry& e = r.entries[0];
    BOOST_TEST(!e.passed);
    BOOST_TEST(e.failed == s.count(false));  // exactly the negative inputs are wrong
    BOOST_TEST(e.failed > 0u);
    BOOST_TEST(s.x[e.worst_index] < 0);                  // the worst element is one of them ...
    BOOST_TEST(std::abs(e.worst_numeric) < 1e-8);        // ... where the true gradient is 0
    BOOST_TEST(e.worst_analytic == s.w[e.worst_index]);  // and the broken one says w
    // the worst is the negative input with the largest |w|
    double largest = 0;
    for (std::size_t i = 0; i < s.x.numel(); ++i)
        if (s.x[i] < 0) largest = std::max(largest, std::abs(s.w[i]));
    BOOST_TEST(std::abs(e.worst_analytic) == largest);
    BOOST_TEST(any_problem_contains(r, "input 'x'"), r.table());
    const std::string at = fmt::format("[{}, {}]", e.worst_index / 7, e.worst_index % 7);
    BOOST_TEST(any_problem_contains(r, at), r.table());
    BOOST_TEST(contains(r.table(), "FAIL"));
    BOOST_TEST(contains(r.table(), "FAILED"));
}

BOOST_AUTO_TEST_CASE(relu_that_doubles_the_gradient_fails_at_every_positive_input) {
    const ReluSetup s(3);
    const GradCheckReport r = s.check(ReluBackward::doubles);
    BOOST_TEST(!r.passed());
    const GradCheckEntry& e = r.entries.at(0);
    BOOST_TEST(e.failed == s.count(true));
    BOOST_TEST(s.x[e.worst_index] > 0);
    BOOST_TEST(e.worst_analytic == 2 * s.w[e.worst_index]);
    BOOST_TEST(std::abs(e.worst_numeric - s.w[e.worst_index]) < 1e-8);
    BOOST_TEST(e.max_rel_error > 0.49);  // |2w - w| / |2w| = 1/2
}

BOOST_AUTO_TEST_CASE(tolerance_is_atol_plus_rtol_times_numeric) {
    const ReluSetup s(4);
    // relative error 1e-4 is within rtol 1e-3; 1e-2 is not
    BOOST_TEST(s.check(ReluBackward::scaled, 1e-4).passed());
    BOOST_TEST(!s.check(ReluBackward::scaled, 1e-2).passed());
    GradCheckOptions loose;
    loose.rtol = 0.05;
    BOOST_TEST(s.check(ReluBackward::scaled, 1e-2, loose).passed());
    GradCheckOptions strict;
    strict.rtol = 1e-6;
    strict.atol = 0;
    BOOST_TEST(!s.check(ReluBackward::scaled, 1e-4, strict).passed());
}

BOOST_AUTO_TEST_CASE(linear_with_a_transposed_weight_gradient_fails_on_the_weight_only) {
    Rng rng(5);
    Parameter<double> w("fc.weight", uniform(Shape{4, 4}, rng));
    const Tensor<double> x = uniform(Shape{3, 4}, rng), gy = uniform(Shape{3, 4}, rng);
    const auto loss = [&](Tape<double>& tape, const Vars& in) {
        return weighted_sum(linear_like(in[0], tape.param(w), LinearBackward::transposed_dw), gy);
    };
    const GradCheckReport r = mcnn::gradcheck(loss, {{"x", x}}, {&w});
    BOOST_TEST(!r.passed());
    const GradCheckEntry* ex = entry(r, "x");
    const GradCheckEntry* ew = entry(r, "fc.weight");
    BOOST_TEST_REQUIRE(ex);
    BOOST_TEST_REQUIRE(ew);
    BOOST_TEST(ex->passed, r.table());
    BOOST_TEST(!ew->passed);
    BOOST_TEST(ew->is_parameter);
    BOOST_TEST(ew->failed > 0u);
    BOOST_TEST(any_problem_contains(r, "parameter 'fc.weight'"), r.table());
    BOOST_TEST(!any_problem_contains(r, "'x'"), r.table());
    // the true dW = gy^T x; the broken one reports its transpose at the worst element
    const Matrix<double> dw = gy.matrix().transpose() * x.matrix();
    const auto i = static_cast<Eigen::Index>(ew->worst_index / 4), j = static_cast<Eigen::Index>(ew->worst_index % 4);
    BOOST_TEST(i != j);  // the diagonal of a transpose is right
    BOOST_TEST(std::abs(ew->worst_analytic - dw(j, i)) < 1e-12);
    BOOST_TEST(std::abs(ew->worst_numeric - dw(i, j)) < 1e-8);
    // and the parameter's grad holds the (broken) analytic gradient afterwards
    BOOST_TEST(std::abs(w.grad[ew->worst_index] - ew->worst_analytic) < 1e-15);

    // the right version passes on the same data
    const GradCheckReport ok = mcnn::gradcheck(
        [&](Tape<double>& tape, const Vars& in) {
            return weighted_sum(linear_like(in[0], tape.param(w), LinearBackward::right), gy);
        },
        {{"x", x}}, {&w});
    BOOST_TEST(ok.passed(), ok.table());
}

BOOST_AUTO_TEST_CASE(linear_weight_gradient_missing_the_batch_sum_fails) {
    Rng rng(6);
    Parameter<double> w("W", uniform(Shape{5, 3}, rng));
    const Tensor<double> x = uniform(Shape{4, 3}, rng), gy = uniform(Shape{4, 5}, rng);
    const GradCheckReport r = mcnn::gradcheck(
        [&](Tape<double>& tape, const Vars& in) {
            return weighted_sum(linear_like(in[0], tape.param(w), LinearBackward::first_row_only_dw), gy);
        },
        {{"x", x}}, {&w});
    BOOST_TEST(!r.passed());
    BOOST_TEST(entry(r, "x")->passed);
    BOOST_TEST(entry(r, "W")->failed == 15u, r.table());  // every element misses rows 1..3
    BOOST_TEST(any_problem_contains(r, "parameter 'W'"));
}

BOOST_AUTO_TEST_CASE(a_parameter_used_but_not_given_fails_by_name) {
    Rng rng(7);
    Parameter<double> given("given", uniform(Shape{3, 4}, rng)), hidden("hidden.bias", uniform(Shape{3}, rng));
    const Tensor<double> gy = uniform(Shape{2, 3}, rng);
    const auto loss = [&](Tape<double>& tape, const Vars& in) {
        return weighted_sum(linear(in[0], tape.param(given), tape.param(hidden)), gy);
    };
    const GradCheckReport r = mcnn::gradcheck(loss, {{"x", uniform(Shape{2, 4}, rng)}}, {&given});
    BOOST_TEST(!r.passed());
    BOOST_TEST(any_problem_contains(r, "'hidden.bias'"), r.table());
    BOOST_TEST(any_problem_contains(r, "not given"), r.table());
    BOOST_TEST(!any_problem_contains(r, "'given'"), r.table());  // the checked tensors are fine
    BOOST_TEST(r.entries.size() == 2u);                          // x and given: the hidden one is not checked
    BOOST_TEST(!entry(r, "hidden.bias"));
    BOOST_TEST(contains(r.table(), "hidden.bias"));  // the table's problems name it

    const GradCheckReport full = mcnn::gradcheck(loss, {{"x", uniform(Shape{2, 4}, rng)}}, {&given, &hidden});
    BOOST_TEST(full.passed(), full.table());
}

BOOST_AUTO_TEST_CASE(a_parameter_given_but_unused_is_flagged_as_all_zero) {
    Rng rng(8);
    Parameter<double> used("used", uniform(Shape{3, 4}, rng)), unused("unused", uniform(Shape{2, 2}, rng));
    const Tensor<double> gy = uniform(Shape{2, 3}, rng);
    const auto loss = [&](Tape<double>& tape, const Vars& in) { return weighted_sum(linear(in[0], tape.param(used)), gy); };
    const GradCheckReport r = mcnn::gradcheck(loss, {{"x", uniform(Shape{2, 4}, rng)}}, {&used, &unused});
    BOOST_TEST(!r.passed());
    BOOST_TEST(entry(r, "unused")->all_zero);
    BOOST_TEST(!entry(r, "unused")->passed);
    BOOST_TEST(entry(r, "unused")->failed == 0u);  // no element is wrong: it is the check that checked nothing
    BOOST_TEST(!entry(r, "used")->all_zero);
    BOOST_TEST(any_problem_contains(r, "'unused'"), r.table());
    BOOST_TEST(contains(r.table(), "FAIL (all zero)"), r.table());

    GradCheckOptions allow;
    allow.allow_zero_gradients = true;
    const GradCheckReport noted = mcnn::gradcheck(loss, {{"x", uniform(Shape{2, 4}, rng)}}, {&used, &unused}, allow);
    BOOST_TEST(noted.passed(), noted.table());
    BOOST_TEST(contains(noted.table(), "ok (all zero)"));
}

BOOST_AUTO_TEST_CASE(an_input_that_does_not_reach_the_loss_is_flagged_as_all_zero) {
    Rng rng(9);
    const Tensor<double> w = uniform(Shape{2, 3}, rng);
    const GradCheckReport r = mcnn::gradcheck([&](Tape<double>&, const Vars& in) { return weighted_sum(tanh(in[0]), w); },
                                              {{"x", uniform(Shape{2, 3}, rng)}, {"ignored", uniform(Shape{4}, rng)}}, {});
    BOOST_TEST(!r.passed());
    BOOST_TEST(entry(r, "x")->passed);
    BOOST_TEST(entry(r, "ignored")->all_zero);
    BOOST_TEST(any_problem_contains(r, "input 'ignored'"), r.table());
}

BOOST_AUTO_TEST_CASE(max_elements_samples_exactly_that_many_per_tensor) {
    Rng rng(10);
    Parameter<double> w("W", uniform(Shape{6, 10}, rng)), b("b", uniform(Shape{6}, rng));
    const Tensor<double> gy = uniform(Shape{5, 6}, rng), x = uniform(Shape{5, 10}, rng);
    std::size_t calls = 0;
    const auto loss = [&](Tape<double>& tape, const Vars& in) {
        ++calls;
        return weighted_sum(linear(in[0], tape.param(w), tape.param(b)), gy);
    };
    for (std::size_t max : {0u, 7u, 1u}) {
        BOOST_TEST_CONTEXT("max_elements " << max) {
            GradCheckOptions o;
            o.max_elements = max;
            calls = 0;
            const GradCheckReport r = mcnn::gradcheck(loss, {{"x", x}}, {&w, &b}, o);
            BOOST_TEST(r.passed(), r.table());
            const std::size_t want_x = max ? max : 50, want_w = max ? max : 60, want_b = max ? std::min<std::size_t>(max, 6) : 6;
            BOOST_TEST(entry(r, "x")->checked == want_x);
            BOOST_TEST(entry(r, "W")->checked == want_w);
            BOOST_TEST(entry(r, "b")->checked == want_b);  // a tensor smaller than max_elements is checked whole
            // one recorded pass, one at x for its branches, then two evaluations per checked
            // element (linear has no kink to re-check): nothing more, nothing less
            BOOST_TEST(calls == 2 + 2 * (want_x + want_w + want_b));
        }
    }
    // the sample depends on the seed: different seeds find different worst elements in a broken node
    const ReluSetup s(11);
    std::vector<std::size_t> worst;
    for (std::uint64_t seed = 0; seed < 8; ++seed) {
        GradCheckOptions o;
        o.max_elements = 3;
        o.seed = seed;
        worst.push_back(s.check(ReluBackward::doubles, 0, o).entries.at(0).worst_index);
    }
    std::sort(worst.begin(), worst.end());
    const auto distinct_worst = std::unique(worst.begin(), worst.end()) - worst.begin();
    BOOST_TEST(distinct_worst > 1);
}

BOOST_AUTO_TEST_CASE(a_nan_loss_fails) {
    Rng rng(12);
    Tensor<double> w = uniform(Shape{2, 3}, rng);
    w[4] = NAN;
    const GradCheckReport r = mcnn::gradcheck([&](Tape<double>&, const Vars& in) { return weighted_sum(in[0], w); },
                                              {{"x", uniform(Shape{2, 3}, rng)}}, {});
    BOOST_TEST(!r.passed());
    BOOST_TEST(std::isnan(r.loss));
    BOOST_TEST(any_problem_contains(r, "not finite"), r.table());
}

BOOST_AUTO_TEST_CASE(a_nan_gradient_element_fails_at_that_element) {
    Rng rng(13);
    const Tensor<double> w = uniform(Shape{2, 3}, rng);
    const auto nan_at_2 = [](const Var<double>& x) {
        return record<double>("nan_grad", x.value(), {x}, [](const Tensor<double>&, const Tensor<double>& gy, auto g) {
            if (!g[0]) return;
            g[0]->array() += gy.array();
            (*g[0])[2] = NAN;
        });
    };
    const GradCheckReport r = mcnn::gradcheck([&](Tape<double>&, const Vars& in) { return weighted_sum(nan_at_2(in[0]), w); },
                                              {{"x", uniform(Shape{2, 3}, rng)}}, {});
    BOOST_TEST(!r.passed());
    BOOST_TEST(r.entries.at(0).failed == 1u);
    BOOST_TEST(r.entries.at(0).worst_index == 2u);
    BOOST_TEST(std::isnan(r.entries.at(0).worst_analytic));
}

BOOST_AUTO_TEST_CASE(the_table_lists_every_input_and_parameter) {
    Rng rng(14);
    Parameter<double> w("layer.weight", uniform(Shape{3, 4}, rng)), b("layer.bias", uniform(Shape{3}, rng));
    const Tensor<double> gy = uniform(Shape{2, 3}, rng);
    const GradCheckReport r = mcnn::gradcheck(
        [&](Tape<double>& tape, const Vars& in) {
            return weighted_sum(add(linear(in[0], tape.param(w), tape.param(b)), tanh(in[1])), gy);
        },
        {{"images", uniform(Shape{2, 4}, rng)}, {"offsets", uniform(Shape{2, 3}, rng)}}, {&w, &b});
    BOOST_TEST(r.passed(), r.table());
    BOOST_TEST_REQUIRE(r.entries.size() == 4u);
    // inputs first in the order given, then parameters in the order given
    BOOST_TEST(r.entries[0].name == "images");
    BOOST_TEST(r.entries[1].name == "offsets");
    BOOST_TEST(r.entries[2].name == "layer.weight");
    BOOST_TEST(r.entries[3].name == "layer.bias");
    BOOST_TEST(!r.entries[1].is_parameter);
    BOOST_TEST(r.entries[2].is_parameter);
    BOOST_TEST(r.entries[2].shape == (Shape{3, 4}));
    const std::string t = r.table();
    std::size_t lines = 0;
    for (const auto& e : r.entries) {
        BOOST_TEST(contains(t, e.name), t);
        // each entry has its own row: name, kind and shape
        BOOST_TEST(contains(t, fmt::format("{:<16} {:<6} {}", e.name, e.is_parameter ? "param" : "input", e.shape.str())), t);
        ++lines;
    }
    BOOST_TEST(std::count(t.begin(), t.end(), '\n') == static_cast<long>(lines + 2));  // header + rows + summary
}

BOOST_AUTO_TEST_CASE(values_are_restored_and_parameter_grads_hold_the_analytic_gradient) {
    Rng rng(15);
    Parameter<double> w("W", uniform(Shape{3, 4}, rng));
    const Tensor<double> before = w.value, gy = uniform(Shape{2, 3}, rng), x = uniform(Shape{2, 4}, rng);
    w.grad.fill(123.0);  // stale gradient: the check must start from zero
    const GradCheckReport r = mcnn::gradcheck(
        [&](Tape<double>& tape, const Vars& in) { return weighted_sum(linear(in[0], tape.param(w)), gy); }, {{"x", x}}, {&w});
    BOOST_TEST(r.passed(), r.table());
    BOOST_TEST(std::memcmp(before.data(), w.value.data(), before.numel() * sizeof(double)) == 0);
    const Matrix<double> dw = gy.matrix().transpose() * x.matrix();
    for (std::size_t i = 0; i < w.grad.numel(); ++i) BOOST_TEST(std::abs(w.grad[i] - dw.data()[i]) < 1e-12);
}

BOOST_AUTO_TEST_CASE(a_non_scalar_loss_is_an_error) {
    Rng rng(16);
    BOOST_CHECK_THROW(
        mcnn::gradcheck([](Tape<double>&, const Vars& in) { return tanh(in[0]); }, {{"x", uniform(Shape{2, 2}, rng)}}, {}),
        Error);
}

// The notebook's hand-made layer: its backward, done right, passes; each of the notebook's two
// mistakes fails, and the report names the parameter that is wrong while the input passes (the
// only gradient the notebook's own check compared).
BOOST_AUTO_TEST_CASE(notebook_layer_faults_are_caught) {
    const GradCheckReport good = notebook_case(NotebookFault::none).run(1, {});
    BOOST_TEST(good.passed(), good.table());
    for (auto [fault, wrong, right] : {std::tuple{NotebookFault::kernel_convolve, "kernels", "bias"},
                                       std::tuple{NotebookFault::bias_inside_channel_loop, "bias", "kernels"}}) {
        const GradCheckReport r = notebook_case(fault).run(1, {});
        BOOST_TEST(!r.passed());
        for (const GradCheckEntry& e : r.entries) {
            if (e.name == wrong) BOOST_TEST(!e.passed, e.name << " should fail");
            else BOOST_TEST(e.passed, e.name << " should pass");  // x and the other parameter
        }
        BOOST_REQUIRE(!r.problems.empty());
        BOOST_TEST(contains(r.problems.front(), std::string("parameter '") + wrong + "'"), r.problems.front());
    }
    // The bias fault is exactly N = 3 times too large.
    const GradCheckReport b = notebook_case(NotebookFault::bias_inside_channel_loop).run(2, {});
    for (const GradCheckEntry& e : b.entries)
        if (e.name == "bias") BOOST_TEST(e.worst_analytic == 3 * e.worst_numeric, boost::test_tools::tolerance(1e-6));
    // Both are reachable by name (gradcheck --node) but not part of "all".
    BOOST_TEST(node_case("notebook_fault_kernel_grad").name == "notebook_fault_kernel_grad");
    for (const NodeCase& c : node_cases()) BOOST_TEST(c.name.find("fault") == std::string::npos);
}

// ---- the branch log and kinks ------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(a_branch_signature_changes_with_any_single_decision_and_with_their_order) {
    // every length around the four hash chains' width, every single flip of a 0/1 pattern
    for (std::size_t n = 1; n <= 11; ++n) {
        std::vector<std::uint64_t> d(n);
        for (std::size_t i = 0; i < n; ++i) d[i] = (i * 7 + n) % 3 == 0;
        const std::uint64_t base = signature_of(d);
        for (std::size_t i = 0; i < n; ++i) {
            std::vector<std::uint64_t> flipped = d;
            flipped[i] ^= 1;
            BOOST_TEST(signature_of(flipped) != base, "n " << n << ", flip at " << i);
            if (i + 1 < n && d[i] != d[i + 1]) {  // the same decisions in another order
                std::vector<std::uint64_t> swapped = d;
                std::swap(swapped[i], swapped[i + 1]);
                BOOST_TEST(signature_of(swapped) != base, "n " << n << ", swap at " << i);
            }
        }
    }
    BOOST_TEST(signature_of({5, 2}) != signature_of({2, 5}));     // winners' indices, not just their set
    BOOST_TEST(signature_of({0, 0}) != signature_of({0, 0, 0}));  // the count matters
}

BOOST_AUTO_TEST_CASE(the_branch_log_holds_relu_signs_and_max_pool_winners_on_an_inference_tape) {
    // x [1, 1, 2, 4]: windows [0 1 4 5] and [2 3 6 7]; after relu the winners are 5 (0.4) and 2 (0.9)
    const Tensor<double> x(Shape{1, 1, 2, 4}, {0.3, -0.2, 0.9, -0.7, 0.1, 0.4, -0.5, 0.6});
    const auto net = [](const Var<double>& v) { return max_pool2d(relu(v), 2); };
    const BranchLog log = branches_of(x, net);
    BOOST_TEST_REQUIRE(log.entries.size() == 2u);
    BOOST_TEST(std::strcmp(log.entries[0].op, "relu") == 0);
    BOOST_TEST(std::strcmp(log.entries[1].op, "max_pool2d") == 0);
    BOOST_TEST(log.entries[0].signature == signature_of({1, 0, 1, 0, 1, 1, 0, 1}));  // x > 0, in element order
    BOOST_TEST(log.entries[1].signature == signature_of({5, 2}));                    // winners, flat indices of x
    BOOST_TEST((branches_of(x, net) == log));                                        // deterministic

    // a relu sign flips (x[1]: -0.2 -> 0.2) while the winners stay: only relu's signature changes
    Tensor<double> sign_flipped = x;
    sign_flipped[1] = 0.2;
    const BranchLog a = branches_of(sign_flipped, net);
    BOOST_TEST(!(a == log));
    BOOST_TEST(a.entries.at(0).signature != log.entries[0].signature);
    BOOST_TEST(a.entries.at(1).signature == log.entries[1].signature);
    // a winner changes (x[0]: 0.3 -> 0.45 beats 0.4) while the signs stay: only max-pool's changes
    Tensor<double> winner_changed = x;
    winner_changed[0] = 0.45;
    const BranchLog b = branches_of(winner_changed, net);
    BOOST_TEST(!(b == log));
    BOOST_TEST(b.entries.at(0).signature == log.entries[0].signature);
    BOOST_TEST(b.entries.at(1).signature == signature_of({0, 2}));

    // the general pooling loop (kernel 2, stride 1: windows at columns 0, 1, 2) and leaky_relu log too
    const BranchLog general = branches_of(x, [](const Var<double>& v) { return max_pool2d(leaky_relu(v, 0.1), 2, 1); });
    BOOST_TEST_REQUIRE(general.entries.size() == 2u);
    BOOST_TEST(std::strcmp(general.entries[0].op, "leaky_relu") == 0);
    BOOST_TEST(general.entries[0].signature == log.entries[0].signature);
    BOOST_TEST(general.entries[1].signature == signature_of({5, 2, 2}));
    // ops without a kink log nothing
    BOOST_TEST(branches_of(x, [](const Var<double>& v) { return tanh(v); }).entries.empty());
}

BOOST_AUTO_TEST_CASE(training_without_a_branch_log_is_unaffected) {
    const Tensor<double> x(Shape{1, 1, 2, 4}, {0.3, -0.2, 0.9, -0.7, 0.1, 0.4, -0.5, 0.6});
    const Tensor<double> w(Shape{1, 1, 1, 2}, {0.7, -1.1});
    // without a log, log_branches never asks for a decision; with one it asks once per element
    {
        Tape<double> tape;
        BOOST_TEST(!tape.branch_log());
        const Var<double> v = tape.input(x);
        std::size_t asked = 0;
        const auto decision = [&](std::size_t) { return ++asked; };
        log_branches(v, "probe", 8, decision);
        BOOST_TEST(asked == 0u);
        BranchLog log;
        tape.set_branch_log(&log);
        log_branches(v, "probe", 8, decision);
        BOOST_TEST(asked == 8u);
        BOOST_TEST(log.entries.size() == 1u);
    }
    // a training step with and without a log: the same loss and gradient, bit for bit; the log of
    // the training tape equals that of an inference pass
    const auto step = [&](BranchLog* log) {
        Tape<double> tape;
        tape.set_branch_log(log);
        const Var<double> v = tape.input(x);
        const Var<double> loss = weighted_sum(max_pool2d(relu(v), 2), w);
        tape.backward(loss);
        return std::pair{loss.value()[0], v.grad()};
    };
    BranchLog logged;
    const auto [plain_loss, plain_grad] = step(nullptr);
    const auto [logged_loss, logged_grad] = step(&logged);
    BOOST_TEST(plain_loss == logged_loss);
    check_equal(logged_grad, plain_grad, "dL/dx with and without a branch log");
    BOOST_TEST(plain_grad[5] == 0.7);  // the winners get w, the rest nothing: the step really ran
    BOOST_TEST(plain_grad[2] == -1.1);
    BOOST_TEST(logged.entries.size() == 2u);
    BOOST_TEST((logged == branches_of(x, [](const Var<double>& v) { return max_pool2d(relu(v), 2); })));
}

BOOST_AUTO_TEST_CASE(a_graph_near_its_kinks_passes_with_rechecks_and_kinks) {
    const KinkSetup s;
    // the plain central difference at element 0 straddles relu's kink: one side has slope 0, so it
    // reads about 0.65 w[0] where the true derivative is w[0]; the check must not trust it
    const auto loss_at = [&](double x0) {
        Tensor<double> moved = s.x;
        moved[0] = x0;
        Tape<double> tape(Tape<double>::Mode::inference);
        return s.forward(tape.constant(moved), ReluBackward::right).value()[0];
    };
    const double plain = (loss_at(s.x[0] + 1e-6) - loss_at(s.x[0] - 1e-6)) / 2e-6;
    BOOST_TEST(std::abs(plain - s.w[0]) > 0.3);

    for (bool library_relu : {false, true}) {
        BOOST_TEST_CONTEXT((library_relu ? "library relu" : "the test's relu")) {
            const auto library = [&](Tape<double>&, const Vars& in) { return weighted_sum(max_pool2d(relu(in[0]), 2), s.w); };
            const GradCheckReport r = library_relu ? mcnn::gradcheck(library, {{"x", s.x}}, {}) : s.check(ReluBackward::right);
            BOOST_TEST(r.passed(), r.table());
            const GradCheckEntry& e = r.entries.at(0);
            BOOST_TEST(e.rechecked == KinkSetup::rechecked);
            BOOST_TEST(e.kinks == KinkSetup::kinks);
            BOOST_TEST(e.checked == 16 - KinkSetup::kinks);  // kinks are not compared
            BOOST_TEST(!e.all_kinks);
            BOOST_TEST(e.max_abs_error < 1e-8, r.table());  // the smaller steps are exact here; kinks left out
            const std::string t = r.table();
            BOOST_TEST(contains(t, fmt::format("{:>8} {:>9} {:>6}", 13, 3, 3)), t);  // checked, rechecked, kinks
            BOOST_TEST(contains(t, "rechecked: +-eps crossed a kink"), t);
            BOOST_TEST(contains(t, "PASSED"), t);
        }
    }
}

BOOST_AUTO_TEST_CASE(a_wrong_backward_near_kinks_still_fails_naming_the_tensor) {
    const KinkSetup s;
    const GradCheckReport r = s.check(ReluBackward::doubles);
    BOOST_TEST(!r.passed());
    const GradCheckEntry& e = r.entries.at(0);
    BOOST_TEST(!e.passed);
    BOOST_TEST(e.rechecked == KinkSetup::rechecked);
    BOOST_TEST(e.kinks == KinkSetup::kinks);
    // the winners that the wrong backward doubles are elements 0 and 3, both re-checked with a
    // smaller step (window 3's winner is a kink, not compared): the re-check keeps the tolerance
    BOOST_TEST(e.failed == 2u, r.table());
    BOOST_TEST_REQUIRE((e.worst_index == 0u || e.worst_index == 3u), r.table());
    const double w_of_worst = e.worst_index == 0 ? s.w[0] : s.w[1];  // the weight of its window
    BOOST_TEST(e.worst_analytic == 2 * w_of_worst, r.table());
    BOOST_TEST(std::abs(e.worst_numeric - w_of_worst) < 1e-8, r.table());
    BOOST_TEST(any_problem_contains(r, "input 'x': 2 of 13 elements outside tolerance"), r.table());
    BOOST_TEST(contains(r.table(), "FAILED"));
}

BOOST_AUTO_TEST_CASE(steps_shrink_tenfold_down_to_min_eps) {
    // x = 3e-9 is crossed by steps 1e-6, 1e-7 and 1e-8 and kept by 1e-9
    const Tensor<double> x(Shape{1}, {3e-9}), w(Shape{1}, {1.7});
    std::size_t calls = 0;
    const auto loss = [&](Tape<double>&, const Vars& in) {
        ++calls;
        return weighted_sum(relu(in[0]), w);
    };
    const GradCheckReport r = mcnn::gradcheck(loss, {{"x", x}}, {});
    BOOST_TEST(r.passed(), r.table());
    BOOST_TEST(r.entries.at(0).rechecked == 1u);
    BOOST_TEST(std::abs(r.entries.at(0).worst_numeric - 1.7) < 1e-6);
    BOOST_TEST(calls == 2 + 2 * 4u);  // recorded pass, pass at x, two per step: 1e-6, 1e-7, 1e-8, 1e-9

    GradCheckOptions coarse;
    coarse.min_eps = 1e-8;  // 1e-9 is not tried: the element counts as a kink
    calls = 0;
    const GradCheckReport k = mcnn::gradcheck(loss, {{"x", x}}, {}, coarse);
    BOOST_TEST(calls == 2 + 2 * 3u);
    BOOST_TEST(k.entries.at(0).kinks == 1u);
    BOOST_TEST(k.entries.at(0).checked == 0u);

    GradCheckOptions bad;
    bad.min_eps = 0;
    CHECK_MESSAGE_HAS(error_of([&] { mcnn::gradcheck(loss, {{"x", x}}, {}, bad); }), "min_eps must be > 0");
}

// Chosen behaviour: a tensor whose every sampled element sits on a kink fails, like an all-zero
// one, because nothing was compared.
BOOST_AUTO_TEST_CASE(a_check_where_every_element_is_a_kink_does_not_pass) {
    const Tensor<double> w(Shape{3}, {0.5, -0.8, 1.2});
    const GradCheckReport r = mcnn::gradcheck([&](Tape<double>&, const Vars& in) { return weighted_sum(relu(in[0]), w); },
                                              {{"x", Tensor<double>(Shape{3})}}, {});  // all zero: on relu's kink
    BOOST_TEST(!r.passed());
    const GradCheckEntry& e = r.entries.at(0);
    BOOST_TEST(e.kinks == 3u);
    BOOST_TEST(e.checked == 0u);
    BOOST_TEST(e.failed == 0u);  // no element is wrong: nothing was compared
    BOOST_TEST(e.all_kinks);
    BOOST_TEST(!e.passed);
    BOOST_TEST(any_problem_contains(r, "input 'x': all 3 elements sampled sit on a kink"), r.table());
    BOOST_TEST(contains(r.table(), "FAIL (all kinks)"), r.table());
    // allowing all-zero gradients does not allow this
    GradCheckOptions allow;
    allow.allow_zero_gradients = true;
    BOOST_TEST(!mcnn::gradcheck([&](Tape<double>&, const Vars& in) { return weighted_sum(relu(in[0]), w); },
                                {{"x", Tensor<double>(Shape{3})}}, {}, allow)
                    .passed());
}

BOOST_AUTO_TEST_SUITE_END()
