// Gradients of every node. Everything here that goes node by node iterates over the registry
// (mcnn/check/node_cases.hpp), so a new entry is covered with no list to edit: its numeric check,
// the backward contract of STYLE.md that a numeric check alone does not show (backward ADDS into
// gradient slots, zero upstream gives zero gradients, backward is deterministic, gradient shapes
// equal value shapes, every element of a parameter gradient buffer is written), and its row in the
// README's node table. Then properties of single nodes: max-pool ties go to the first maximum,
// conv is the adjoint of its backward on large shapes, threads do not change the bits.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <numeric>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "mcnn/check/node_cases.hpp"
#include "mcnn/nn/init.hpp"
#include "mcnn/ops/activation.hpp"
#include "mcnn/ops/bias.hpp"
#include "mcnn/ops/correlate2d.hpp"
#include "mcnn/ops/elementwise.hpp"
#include "mcnn/ops/linear.hpp"
#include "mcnn/ops/loss.hpp"
#include "mcnn/ops/pool.hpp"
#include "mcnn/ops/shape.hpp"
#include "mcnn/optim/sgd.hpp"
#include "mcnn/threads.hpp"
#include "support.hpp"

using namespace mcnn;
using namespace mcnn::test;

namespace {

bool bitwise_equal(const Tensor<double>& a, const Tensor<double>& b) {
    return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), a.numel() * sizeof(double)) == 0;
}

// Largest |a - b| / (1 + |b|) over the elements; +inf when the shapes differ or a value is NaN.
double max_diff(const Tensor<double>& a, const Tensor<double>& b) {
    if (a.shape() != b.shape()) return INFINITY;
    double m = 0;
    for (std::size_t i = 0; i < a.numel(); ++i) {
        const double d = std::abs(a[i] - b[i]) / (1 + std::abs(b[i]));
        m = std::isnan(d) ? INFINITY : std::max(m, d);
    }
    return m;
}

bool all_zero(const Tensor<double>& t) {
    return std::all_of(t.begin(), t.end(), [](double v) { return v == 0.0; });
}

bool all_finite(const Tensor<double>& t) {
    return std::all_of(t.begin(), t.end(), [](double v) { return std::isfinite(v); });
}

// ---- the backward contract, on any NodeCase ----------------------------------------------------

/// The case's leaves drawn from `seed`. Parameters start with zero gradients.
NodeValues draw(const NodeCase& n, std::uint64_t seed) {
    Rng rng(seed);
    return n.draw(rng);
}

struct Grads {
    std::vector<Tensor<double>> inputs, params;
};

/// Records the node once per weight tensor on the SAME leaves, L = sum_k weighted_sum(node_k, w_k),
/// runs backward and returns dL/d(inputs) and the parameters' gradients (which are not zeroed first).
Grads run_backward(const NodeCase& n, NodeValues& values, const std::vector<Tensor<double>>& weights) {
    Tape<double> tape;
    Vars xs, ps;
    for (const NamedTensor& x : values.inputs) xs.push_back(tape.input(x.value));
    for (Parameter<double>& p : values.params) ps.push_back(tape.param(p));
    Var<double> loss;
    for (const auto& w : weights) {
        const Var<double> term = weighted_sum(n.forward({xs, ps, values.constants}), w);
        loss = loss.value_ptr() ? add(loss, term) : term;
    }
    tape.backward(loss);
    Grads g;
    for (const auto& x : xs) g.inputs.push_back(x.grad());
    for (const auto& p : values.params) g.params.push_back(p.grad);
    return g;
}

void zero_params(NodeValues& values) {
    for (auto& p : values.params) p.zero_grad();
}

/// Max over inputs and parameters of max_diff(a, b).
double grads_diff(const Grads& a, const Grads& b) {
    double m = 0;
    for (std::size_t k = 0; k < a.inputs.size(); ++k) m = std::max(m, max_diff(a.inputs[k], b.inputs[k]));
    for (std::size_t k = 0; k < a.params.size(); ++k) m = std::max(m, max_diff(a.params[k], b.params[k]));
    return m;
}

/// The node applied twice to the same leaves, L = <node, w1> + <node, w2>: every gradient must be
/// the sum of those of <node, w1> and <node, w2> alone. Returns the largest relative difference.
double fan_out_error(const NodeCase& n) {
    NodeValues values = draw(n, 8);
    Rng rng(9);
    const Shape ys = n.output_shape(values);
    const Tensor<double> w1 = uniform(ys, rng), w2 = uniform(ys, rng);
    Grads sum = run_backward(n, values, {w1});
    zero_params(values);
    const Grads g2 = run_backward(n, values, {w2});
    zero_params(values);
    const Grads both = run_backward(n, values, {w1, w2});
    for (std::size_t k = 0; k < sum.inputs.size(); ++k) sum.inputs[k].array() += g2.inputs[k].array();
    for (std::size_t k = 0; k < sum.params.size(); ++k) sum.params[k].array() += g2.params[k].array();
    return grads_diff(both, sum);
}

/// Two backward passes (two tapes) without zero_grad: parameter gradients must double, input
/// gradients (fresh on each tape) must not change.
double accumulation_error(const NodeCase& n) {
    NodeValues values = draw(n, 10);
    Rng rng(11);
    const Tensor<double> w = uniform(n.output_shape(values), rng);
    Grads expected = run_backward(n, values, {w});
    const Grads twice = run_backward(n, values, {w});
    for (auto& g : expected.params) g.array() *= 2.0;
    return grads_diff(twice, expected);
}

/// Parameter gradients pre-filled with a sentinel must come back as sentinel + gradient.
double sentinel_error(const NodeCase& n) {
    const double sentinel = 1000.0;
    NodeValues values = draw(n, 12);
    Rng rng(13);
    const Tensor<double> w = uniform(n.output_shape(values), rng);
    Grads expected = run_backward(n, values, {w});
    for (auto& p : values.params) p.grad.fill(sentinel);
    const Grads dirty = run_backward(n, values, {w});
    for (auto& g : expected.params) g.array() += sentinel;
    return grads_diff(dirty, expected);
}

/// L = <node, 0>: every input and parameter gradient must be exactly zero.
bool zero_upstream_gives_zero(const NodeCase& n) {
    NodeValues values = draw(n, 5);
    const Grads g = run_backward(n, values, {Tensor<double>(n.output_shape(values), 0.0)});
    return std::all_of(g.inputs.begin(), g.inputs.end(), all_zero) && std::all_of(g.params.begin(), g.params.end(), all_zero);
}

/// Two backward passes on the same values give bitwise-equal gradients.
bool deterministic(const NodeCase& n) {
    NodeValues values = draw(n, 6);
    Rng rng(7);
    const Tensor<double> w = uniform(n.output_shape(values), rng);
    const Grads a = run_backward(n, values, {w});
    zero_params(values);
    const Grads b = run_backward(n, values, {w});
    for (std::size_t k = 0; k < a.inputs.size(); ++k)
        if (!bitwise_equal(a.inputs[k], b.inputs[k])) return false;
    for (std::size_t k = 0; k < a.params.size(); ++k)
        if (!bitwise_equal(a.params[k], b.params[k])) return false;
    return true;
}

// ---- nodes with deliberate mistakes, to show the contract checks can fail ----------------------

enum class Broken { none, assigns, offset, noisy, skips_last };

/// relu with its backward done right (none) or wrong: dx = ... (assigns), dx += ... + 1e-3
/// (offset), dx += ... * (1 + tiny noise from a counter) (noisy).
Var<double> broken_relu(const Var<double>& x, Broken how) {
    Tensor<double> y(x.shape());
    for (std::size_t i = 0; i < y.numel(); ++i) y[i] = std::max(x.value()[i], 0.0);
    return record<double>("broken_relu", std::move(y), {x}, [how](const Tensor<double>& out, const Tensor<double>& gy, auto g) {
        static int calls = 0;
        const double noise = how == Broken::noisy ? 1e-15 * ++calls : 0.0;
        if (!g[0]) return;
        Tensor<double>& gx = *g[0];
        for (std::size_t i = 0; i < gx.numel(); ++i) {
            const double d = gy[i] * (out[i] > 0 ? 1.0 : 0.0) * (1 + noise) + (how == Broken::offset ? 1e-3 : 0.0);
            if (how == Broken::assigns)
                gx[i] = d;
            else
                gx[i] += d;
        }
    });
}

/// x [B, D] + b [D] with its bias gradient right (none), assigned (assigns), or missing its last
/// element (skips_last).
Var<double> broken_bias(const Var<double>& x, const Var<double>& b, Broken how) {
    Tensor<double> y = x.value();
    const Eigen::Index D = b.value().numel(), B = static_cast<Eigen::Index>(x.value().numel()) / D;
    y.matrix(B, D).rowwise() += b.value().matrix(1, D).row(0);
    return record<double>("broken_bias", std::move(y), {x, b},
                          [how, B, D](const Tensor<double>&, const Tensor<double>& gy, auto g) {
                              if (g[0]) g[0]->array() += gy.array();
                              if (!g[1]) return;
                              const Matrix<double> db = gy.matrix(B, D).colwise().sum();
                              for (Eigen::Index d = 0; d < D; ++d) {
                                  if (how == Broken::skips_last && d == D - 1) continue;
                                  if (how == Broken::assigns)
                                      (*g[1])[static_cast<std::size_t>(d)] = db(0, d);
                                  else
                                      (*g[1])[static_cast<std::size_t>(d)] += db(0, d);
                              }
                          });
}

// The broken nodes as cases of the same shape as the registry's: relu on x [2, 3, 5, 7] off the
// kink, bias on x [4, 5] + b [5].
NodeCase broken_relu_case(Broken how) {
    return {.name = "broken_relu",
            .node = "broken_relu",
            .description = "relu with a deliberate backward mistake",
            .inputs = {{"x", {2, 3, 5, 7}, away_from_zero()}},
            .forward = [how](const NodeArgs& a) { return broken_relu(a.inputs[0], how); }};
}

NodeCase broken_bias_case(Broken how) {
    return {.name = "broken_bias",
            .node = "broken_bias",
            .description = "bias with a deliberate backward mistake",
            .inputs = {{"x", {4, 5}, uniform_values()}},
            .params = {{"b", {5}, uniform_values()}},
            .forward = [how](const NodeArgs& a) { return broken_bias(a.inputs[0], a.params[0], how); }};
}

// ---- the README's node table ------------------------------------------------------------------

/// The nodes that the table headed "| node | forward ..." in `markdown` names in its first column:
/// each backquoted span there, up to its first character that cannot be in a C++ name
/// ("`conv2d(x, k, ...)`" names conv2d). Empty when there is no such table.
std::set<std::string> node_table_names(const std::string& markdown) {
    std::set<std::string> names;
    std::istringstream lines(markdown);
    std::string line;
    bool in_table = false;
    while (std::getline(lines, line)) {
        if (!in_table) {
            in_table = line.rfind("| node | forward", 0) == 0;
            continue;
        }
        if (line.empty() || line[0] != '|') break;
        const std::string first = line.substr(1, line.find('|', 1) - 1);
        for (std::size_t open = first.find('`'); open != std::string::npos; open = first.find('`', open + 1)) {
            const std::size_t close = first.find('`', open + 1);
            if (close == std::string::npos) break;
            std::size_t end = open + 1;
            while (end < close && (std::isalnum(static_cast<unsigned char>(first[end])) || first[end] == '_')) ++end;
            if (end > open + 1) names.insert(first.substr(open + 1, end - open - 1));
            open = close;
        }
    }
    return names;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(node_gradients)

// ---- the registry -----------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(every_registered_case_passes_its_numeric_check) {
    std::string summary = fmt::format("{:<32} {:>8} {:>10} {:>10} {:>8}\n", "case", "elements", "max rel", "max abs", "ms");
    for (const NodeCase& c : node_cases()) {
        for (std::uint64_t seed : {1u, 2u}) {
            BOOST_TEST_CONTEXT("case " << c.name << ", seed " << seed) {
                const auto start = std::chrono::steady_clock::now();
                const GradCheckReport report = c.run(seed, GradCheckOptions{});
                const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
                BOOST_TEST(report.passed(), c.name << " (" << c.summary() << ")\n" << report.table());
                // every input and every parameter is checked, and nothing else
                BOOST_TEST(report.entries.size() == c.inputs.size() + c.params.size());
                std::size_t elements = 0;
                for (const GradCheckEntry& e : report.entries) {
                    // no sampling by default: every element of every input and parameter is compared
                    BOOST_TEST(e.checked == e.shape.numel(), e.name);
                    BOOST_TEST(!e.all_zero, e.name);
                    elements += e.checked;
                }
                if (seed == 1)
                    summary += fmt::format("{:<32} {:>8} {:>10.2e} {:>10.2e} {:>8.1f}\n", c.name, elements,
                                           report.max_rel_error(), report.max_abs_error(), ms);
            }
        }
    }
    BOOST_TEST_MESSAGE("node gradient checks (seed 1):\n" << summary);
}

BOOST_AUTO_TEST_CASE(registry_names_are_unique_and_entries_complete) {
    std::set<std::string> names;
    for (const NodeCase& c : node_cases()) {
        BOOST_TEST_CONTEXT(c.name) {
            BOOST_TEST(names.insert(c.name).second, "duplicate case " << c.name);
            BOOST_TEST(!c.node.empty());
            BOOST_TEST(!c.description.empty());
            BOOST_TEST(static_cast<bool>(c.forward));
            BOOST_TEST(!c.inputs.empty(), "a case needs an input whose gradient it checks");
            std::set<std::string> leaves;
            for (const auto* list : {&c.inputs, &c.params, &c.constants})
                for (const LeafSpec& l : *list) {
                    BOOST_TEST(leaves.insert(l.name).second, "duplicate leaf " << l.name);
                    BOOST_TEST(l.shape.numel() > 0u, l.name);
                    BOOST_TEST(static_cast<bool>(l.values.draw), l.name);
                }
        }
    }
    // the notebook's faulty layers stay out of the registry (they must fail) but are found by name
    for (const char* fault : {"notebook_fault_kernel_grad", "notebook_fault_bias_grad"}) {
        BOOST_TEST(names.count(fault) == 0u, fault);
        BOOST_TEST(node_case(fault).node == "notebook_conv");
    }
}

// The rule in node_cases.hpp: every registered node has a row in README.md's node table, and every
// node in that table has a case.
BOOST_AUTO_TEST_CASE(every_registered_node_has_a_row_in_the_readme_node_table_and_back) {
    const auto readme = std::filesystem::path(MCNN_TEST_FIXTURES).parent_path().parent_path() / "README.md";
    const std::set<std::string> rows = node_table_names(read_text(readme));
    BOOST_TEST_REQUIRE(!rows.empty(), readme.string() << " has no node table (a line starting '| node | forward')");
    std::set<std::string> registered;
    for (const NodeCase& c : node_cases()) registered.insert(c.node);
    for (const std::string& node : registered)
        BOOST_TEST(rows.count(node) == 1u, "node '" << node << "' is registered (node_cases.cpp) but has no row in "
                                                     << readme.string() << "'s node table");
    for (const std::string& node : rows)
        BOOST_TEST(registered.count(node) == 1u,
                   readme.string() << "'s node table lists '" << node << "', which no registered case checks");
}

// The table reader the README check relies on: first-column names only, one table, code spans.
BOOST_AUTO_TEST_CASE(node_table_names_reads_the_first_column_of_the_node_table_only) {
    const std::string md = "Text that mentions `sigmoid`.\n"
                           "| node | forward | saved | backward |\n"
                           "|---|---|---|---|\n"
                           "| `conv2d(x, k, {padding})` | `relu` here is not a node | X | dX |\n"
                           "| `relu`, `leaky_relu` | element-wise | y | dx |\n"
                           "| no code span | - | - | - |\n"
                           "\n"
                           "| `tanh` | a later table | | |\n";
    BOOST_TEST((node_table_names(md) == std::set<std::string>{"conv2d", "relu", "leaky_relu"}));
    BOOST_TEST(node_table_names("| name | forward |\n| `relu` | |\n").empty());
}

BOOST_AUTO_TEST_CASE(node_case_finds_by_name_and_lists_valid_names_when_unknown) {
    BOOST_TEST(node_case("relu").name == "relu");
    BOOST_TEST(node_case("conv2d_im2col_pad2").name == "conv2d_im2col_pad2");
    BOOST_CHECK_THROW(node_case("conv3d"), Error);
    try {
        node_case("conv3d");
    } catch (const Error& e) {
        const std::string what = e.what();
        BOOST_TEST(what.find("'conv3d'") != std::string::npos, what);
        for (const NodeCase& c : node_cases()) BOOST_TEST(what.find(c.name) != std::string::npos, what);
    }
}

BOOST_AUTO_TEST_CASE(cases_depend_on_the_seed_only_and_pass_options_through) {
    const NodeCase& c = node_case("conv2d_im2col_pad1_stride3");
    const GradCheckReport a = c.run(7, {}), b = c.run(7, {}), other = c.run(8, {});
    BOOST_TEST(a.loss == b.loss);  // the same seed builds the same case
    BOOST_TEST(a.entries.size() == b.entries.size());
    for (std::size_t k = 0; k < a.entries.size(); ++k) BOOST_TEST(a.entries[k].worst_analytic == b.entries[k].worst_analytic);
    BOOST_TEST(a.loss != other.loss);

    GradCheckOptions sampled;
    sampled.max_elements = 5;
    const GradCheckReport s = c.run(7, sampled);
    BOOST_TEST(s.passed(), s.table());
    for (const GradCheckEntry& e : s.entries) BOOST_TEST(e.checked == 5u, e.name);

    GradCheckOptions impossible;  // a tolerance nothing meets: the case must report failure, not pass regardless
    impossible.atol = 0;
    impossible.rtol = 1e-16;
    impossible.eps = 1e-2;
    BOOST_TEST(!node_case("tanh").run(1, impossible).passed());
}

// The leaves come from the declared shapes and generators; the summary says so.
BOOST_AUTO_TEST_CASE(cases_draw_their_declared_leaves_and_summarise_them) {
    const NodeCase& relu_case = node_case("relu");
    Rng rng(3);
    const NodeValues v = relu_case.draw(rng);
    BOOST_TEST_REQUIRE(v.inputs.size() == 1u);
    BOOST_TEST(v.inputs[0].name == "x");
    BOOST_TEST(v.inputs[0].value.shape() == relu_case.inputs[0].shape);
    BOOST_TEST(std::all_of(v.inputs[0].value.begin(), v.inputs[0].value.end(),
                           [](double x) { return std::abs(x) >= 0.1 && std::abs(x) < 1.5; }));
    const std::string s = node_case("linear").summary();
    CHECK_MESSAGE_HAS(s, "linear: input x [3, 7] (uniform in [-1, 1))");
    CHECK_MESSAGE_HAS(s, "param W [5, 7]");
    CHECK_MESSAGE_HAS(s, "-> [3, 5]");
    CHECK_MESSAGE_HAS(node_case("softmax_cross_entropy").summary(), "constant labels [4] (labels in [0, 6))");

    // the generators: distinct values never tie; labels are whole classes; a bad label is refused
    Tensor<double> d = distinct_values(0.01).draw(Shape{2, 3, 7, 9}, rng);
    std::vector<double> sorted(d.begin(), d.end());
    std::sort(sorted.begin(), sorted.end());
    const bool tie = std::adjacent_find(sorted.begin(), sorted.end(), [](double a, double b) { return b - a < 0.009; }) !=
                     sorted.end();
    BOOST_TEST(!tie);
    const std::vector<int> labels = labels_of(class_labels(6).draw(Shape{50}, rng));
    BOOST_TEST(std::all_of(labels.begin(), labels.end(), [](int t) { return t >= 0 && t < 6; }));
    CHECK_MESSAGE_HAS(error_of([] { labels_of(Tensor<double>(Shape{2}, {1.0, 2.5})); }), "2.5 is not a class label");
}

// ---- the backward contract, case by case --------------------------------------------------------

BOOST_AUTO_TEST_CASE(gradient_shapes_equal_value_shapes_and_are_finite) {
    for (const NodeCase& n : node_cases()) {
        BOOST_TEST_CONTEXT(n.name) {
            NodeValues values = draw(n, 3);
            Rng rng(4);
            const Grads g = run_backward(n, values, {uniform(n.output_shape(values), rng)});
            BOOST_TEST_REQUIRE(g.inputs.size() == n.inputs.size());
            for (std::size_t k = 0; k < n.inputs.size(); ++k) {
                BOOST_TEST(g.inputs[k].shape() == n.inputs[k].shape, "input " << k << ": " << g.inputs[k].shape());
                BOOST_TEST(all_finite(g.inputs[k]), "input " << k);
                BOOST_TEST(!all_zero(g.inputs[k]), "input " << k);
            }
            for (std::size_t k = 0; k < n.params.size(); ++k) {
                BOOST_TEST(g.params[k].shape() == n.params[k].shape, "param " << k << ": " << g.params[k].shape());
                BOOST_TEST(all_finite(g.params[k]), "param " << k);
                BOOST_TEST(!all_zero(g.params[k]), "param " << k);
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(zero_upstream_gradient_gives_zero_gradients) {
    for (const NodeCase& n : node_cases()) BOOST_TEST(zero_upstream_gives_zero(n), n.name);
}

BOOST_AUTO_TEST_CASE(backward_is_deterministic_bitwise) {
    for (const NodeCase& n : node_cases()) BOOST_TEST(deterministic(n), n.name);
}

// A value (input or parameter) that feeds the node twice must receive the sum of both
// contributions: a backward that assigns (=) instead of adding (+=) keeps only one of them.
BOOST_AUTO_TEST_CASE(backward_adds_when_a_value_feeds_two_nodes) {
    for (const NodeCase& n : node_cases()) BOOST_TEST(fan_out_error(n) < 1e-12, n.name);
}

BOOST_AUTO_TEST_CASE(parameter_gradients_accumulate_across_backward_passes_without_zero_grad) {
    for (const NodeCase& n : node_cases())
        if (!n.params.empty()) BOOST_TEST(accumulation_error(n) < 1e-12, n.name);
}

// dlib-style sentinel: a parameter gradient pre-filled with a sentinel must come back as sentinel +
// gradient in EVERY element (an element the backward skips, or overwrites, shows).
BOOST_AUTO_TEST_CASE(parameter_gradient_buffers_are_added_to_in_every_element) {
    for (const NodeCase& n : node_cases())
        if (!n.params.empty()) BOOST_TEST(sentinel_error(n) < 1e-12, n.name);
}

// The contract checks above can fail: nodes with the classic mistakes, recorded with mcnn::record
// and written as cases of the registry's kind.
BOOST_AUTO_TEST_CASE(contract_checks_catch_broken_backwards) {
    BOOST_TEST(fan_out_error(broken_relu_case(Broken::assigns)) > 1e-3);
    BOOST_TEST(!zero_upstream_gives_zero(broken_relu_case(Broken::offset)));
    BOOST_TEST(!deterministic(broken_relu_case(Broken::noisy)));

    const NodeCase assigning_bias = broken_bias_case(Broken::assigns);
    BOOST_TEST(fan_out_error(assigning_bias) > 1e-3);
    BOOST_TEST(accumulation_error(assigning_bias) > 1e-3);
    BOOST_TEST(sentinel_error(assigning_bias) > 1e-3);
    const NodeCase skipping_bias = broken_bias_case(Broken::skips_last);
    // With the += contract a skipped element reads as a zero gradient, which a sentinel cannot tell
    // from a true zero: it is the numeric check that catches it, naming the element.
    BOOST_TEST(fan_out_error(skipping_bias) < 1e-12);
    BOOST_TEST(sentinel_error(skipping_bias) < 1e-12);
    {
        const GradCheckReport report = skipping_bias.run(17, {});
        BOOST_TEST(!report.passed());
        BOOST_TEST_REQUIRE(report.entries.size() == 2u);
        BOOST_TEST(report.entries[0].passed);
        BOOST_TEST(report.entries[1].failed == 1u);
        BOOST_TEST(report.entries[1].worst_index == 4u);
        BOOST_TEST(report.entries[1].worst_analytic == 0.0);
    }
    // and the correct versions of both pass every check
    const NodeCase fine_bias = broken_bias_case(Broken::none);
    BOOST_TEST(fan_out_error(fine_bias) < 1e-12);
    BOOST_TEST(sentinel_error(fine_bias) < 1e-12);
    BOOST_TEST(accumulation_error(fine_bias) < 1e-12);
    BOOST_TEST(fine_bias.run(17, {}).passed());
    const NodeCase fine_relu = broken_relu_case(Broken::none);
    BOOST_TEST(fan_out_error(fine_relu) < 1e-12);
    BOOST_TEST(zero_upstream_gives_zero(fine_relu));
    BOOST_TEST(deterministic(fine_relu));
}

// ---- buffers handed to the plain functions are fully written ------------------------------------

BOOST_AUTO_TEST_CASE(conv_functions_write_every_output_element_and_add_into_gradients) {
    using Forward = void (*)(const Tensor<double>&, const Tensor<double>&, const Conv2dOptions&, Tensor<double>&);
    using Backward = void (*)(const Tensor<double>&, const Tensor<double>&, const Tensor<double>&, const Conv2dOptions&,
                              Tensor<double>*, Tensor<double>*);
    struct Functions {
        const char* name;
        Forward forward;
        Backward backward;
    };
    const Functions paths[] = {{"plain", conv::forward_plain<double>, conv::backward_plain<double>},
                               {"correlate2d", conv::forward_correlate2d<double>, conv::backward_correlate2d<double>},
                               {"im2col", conv::forward_im2col<double>, conv::backward_im2col<double>}};
    Rng rng(14);
    const Tensor<double> x = uniform(Shape{2, 3, 7, 10}, rng), k = uniform(Shape{4, 3, 3, 3}, rng);
    for (const Conv2dOptions o : {Conv2dOptions{0, 1}, Conv2dOptions{1, 2}, Conv2dOptions{2, 3}}) {
        const Shape ys = conv::output_shape(x.shape(), k.shape(), o);
        const Tensor<double> gy = uniform(ys, rng);
        Tensor<double> y_plain(ys);
        conv::forward_plain(x, k, o, y_plain);
        for (const Functions& f : paths) {
            BOOST_TEST_CONTEXT(f.name << ", padding " << o.padding << " stride " << o.stride) {
                // outputs pre-filled with NaN (resize keeps the storage): every element must be overwritten
                Tensor<double> y(ys, NAN), y_again(ys, NAN);
                f.forward(x, k, o, y);
                BOOST_TEST(max_diff(y, y_plain) < 1e-12);
                f.forward(x, k, o, y_again);  // the same call again: the same bits
                BOOST_TEST(bitwise_equal(y_again, y));

                const double sentinel = -7.5;
                Tensor<double> gx0(x.shape()), gk0(k.shape()), gx1(x.shape(), sentinel), gk1(k.shape(), sentinel);
                f.backward(x, k, gy, o, &gx0, &gk0);
                f.backward(x, k, gy, o, &gx1, &gk1);
                gx0.array() += sentinel;
                gk0.array() += sentinel;
                BOOST_TEST(max_diff(gx1, gx0) < 1e-12, "dX added to what the buffer held");
                BOOST_TEST(max_diff(gk1, gk0) < 1e-12, "dK added to what the buffer held");
            }
        }
    }
}

// The plain function behind the registry's overlapping-pool case (kernel 3, stride 2), on the
// case's own input: the node's output, with every element and its argmax written.
BOOST_AUTO_TEST_CASE(max_pool_forward_writes_every_output_and_argmax) {
    const NodeCase& overlap = node_case("max_pool2d_overlap");
    Rng rng(15);
    NodeValues values = overlap.draw(rng);
    const Tensor<double>& x = values.inputs[0].value;
    Tensor<double> node_y;
    {
        Tape<double> tape(Tape<double>::Mode::inference);
        node_y = overlap.forward({{tape.constant(x)}, {}, {}}).value();
    }
    Tensor<double> y(node_y.shape(), NAN);
    std::vector<std::int32_t> argmax(y.numel(), -1);
    pool::max_forward(x, 3, 2, y, argmax);
    BOOST_TEST(bitwise_equal(y, node_y));
    for (std::size_t k = 0; k < y.numel(); ++k) {
        BOOST_TEST_REQUIRE(argmax[k] >= 0);
        BOOST_TEST(y[k] == x[static_cast<std::size_t>(argmax[k])]);
    }
}

// ---- linear maps: <J v, u> = <v, J^T u> on shapes too large for an element-wise check ------------

BOOST_AUTO_TEST_CASE(conv_backward_is_the_adjoint_of_forward_on_large_shapes) {
    Rng rng(16);
    const Shape xs{3, 5, 13, 11}, ks{6, 5, 5, 5};
    for (ConvPath path : {ConvPath::plain, ConvPath::correlate2d, ConvPath::im2col, ConvPath::automatic}) {
        for (const Conv2dOptions base : {Conv2dOptions{0, 1}, Conv2dOptions{2, 2}, Conv2dOptions{1, 3}}) {
            Conv2dOptions o = base;
            o.path = path;
            BOOST_TEST_CONTEXT(conv_path_name(path)
                               << " padding " << o.padding << " stride " << o.stride) {
                const Tensor<double> x = uniform(xs, rng), k = uniform(ks, rng);
                const Tensor<double> u = uniform(conv::output_shape(xs, ks, o), rng);
                Tape<double> tape;
                const Var<double> xv = tape.input(x), kv = tape.input(k);
                const Var<double> y = conv2d(xv, kv, o);
                tape.backward(weighted_sum(y, u));
                // conv is linear in x and in K: <conv(x, K), u> = <x, dX> = <K, dK>
                const double yu = (y.value().array() * u.array()).sum();
                const double xgx = (x.array() * xv.grad().array()).sum(), kgk = (k.array() * kv.grad().array()).sum();
                BOOST_TEST(std::abs(yu - xgx) <= 1e-10 * (1 + std::abs(yu)), yu << " vs " << xgx);
                BOOST_TEST(std::abs(yu - kgk) <= 1e-10 * (1 + std::abs(yu)), yu << " vs " << kgk);
            }
        }
    }
}

// ---- max-pool ties ----------------------------------------------------------------------------

namespace {
// dL/dx for L = sum of max_pool2d(x) (upstream gradient 1 everywhere).
Tensor<double> pool_grad(const Tensor<double>& x, int kernel, int stride) {
    Tape<double> tape;
    const Var<double> xv = tape.input(x);
    const Var<double> y = max_pool2d(xv, kernel, stride);
    tape.backward(weighted_sum(y, Tensor<double>(y.shape(), 1.0)));
    return xv.grad();
}
}  // namespace

BOOST_AUTO_TEST_CASE(max_pool_ties_go_to_the_first_maximum_in_row_major_window_order) {
    // all equal (and negative: a "best so far" starting at 0 would pick nothing): the top-left wins
    const Tensor<double> flat(Shape{1, 1, 2, 2}, -1.0);
    BOOST_TEST(bitwise_equal(pool_grad(flat, 2, 2), Tensor<double>(Shape{1, 1, 2, 2}, {1, 0, 0, 0})));

    // [[2, 5], [5, 5]]: three-way tie, the one in the first row wins
    const Tensor<double> three(Shape{1, 1, 2, 2}, {2, 5, 5, 5});
    BOOST_TEST(bitwise_equal(pool_grad(three, 2, 2), Tensor<double>(Shape{1, 1, 2, 2}, {0, 1, 0, 0})));

    // [[5, 1], [5, 1]]: a tie down a column, the upper one wins
    const Tensor<double> column(Shape{1, 1, 2, 2}, {1, 5, 1, 5});
    BOOST_TEST(bitwise_equal(pool_grad(column, 2, 2), Tensor<double>(Shape{1, 1, 2, 2}, {0, 1, 0, 0})));

    // overlapping windows (kernel 2, stride 1) over
    //   1 3 3
    //   3 2 3
    //   0 3 1
    // window (0,0) {1,3 / 3,2} -> (0,1); (0,1) {3,3 / 2,3} -> (0,1); (1,0) {3,2 / 0,3} -> (1,0);
    // (1,1) {2,3 / 3,1} -> (1,2).
    const Tensor<double> x(Shape{1, 1, 3, 3}, {1, 3, 3, 3, 2, 3, 0, 3, 1});
    BOOST_TEST(bitwise_equal(pool_grad(x, 2, 1), Tensor<double>(Shape{1, 1, 3, 3}, {0, 2, 0, 1, 0, 1, 0, 0, 0})));
    Tensor<double> y;
    std::vector<std::int32_t> argmax;
    pool::max_forward(x, 2, 1, y, argmax);
    BOOST_TEST(argmax == (std::vector<std::int32_t>{1, 1, 3, 5}), boost::test_tools::per_element());

    // the same holds per plane in a batch with channels: flat indices include the plane offset
    Tensor<double> batch(Shape{2, 2, 2, 2}, 4.0);
    pool::max_forward(batch, 2, 2, y, argmax);
    BOOST_TEST(argmax == (std::vector<std::int32_t>{0, 4, 8, 12}), boost::test_tools::per_element());
}

// Bias, relu, max-pool and SGD split large tensors between threads. Each element (and each
// channel's bias gradient) is computed by one thread in the same order whatever the split, so
// 1 and 3 threads must agree bit for bit.
BOOST_AUTO_TEST_CASE(memory_bound_nodes_give_the_same_bits_on_any_thread_count) {
    Rng rng(23);
    const Tensor<double> x = uniform(Shape{4, 16, 64, 64}, rng), bias = uniform(Shape{16}, rng);  // 262,144 elements
    auto run = [&](int threads) {
        const ThreadLimit limit(threads);
        Tape<double> tape;
        const Var<double> xv = tape.input(x);
        Parameter<double> b("b", bias);
        const Var<double> y = max_pool2d(relu(bias_channels(xv, tape.param(b))), 2);
        tape.backward(weighted_sum(y, Tensor<double>(y.shape(), 0.25)));
        Sgd<double> sgd({&b}, SgdOptions{.lr = 0.1, .momentum = 0.9});
        sgd.step();
        return std::tuple{y.value(), xv.grad(), b.grad, b.value};
    };
    const auto [y1, gx1, gb1, b1] = run(1);
    const auto [y3, gx3, gb3, b3] = run(3);
    BOOST_TEST(bitwise_equal(y3, y1));
    BOOST_TEST(bitwise_equal(gx3, gx1));
    BOOST_TEST(bitwise_equal(gb3, gb1));
    BOOST_TEST(bitwise_equal(b3, b1));
    BOOST_TEST(std::abs(gb1[0]) > 0.0);  // the gradient reached the bias
}

// The 2 x 2, stride-2 windows the models use have their own loop; it must pick what a plain scan of
// every window picks (values from {0, 1, 2} make ties common; odd sizes leave a row and a column out).
BOOST_AUTO_TEST_CASE(max_pool_2x2_stride_2_matches_a_plain_window_scan) {
    std::mt19937 rng(19);
    std::uniform_int_distribution<int> value(0, 2);
    Tensor<double> x(Shape{3, 2, 7, 9});
    for (double& v : x) v = value(rng) - 1.0;
    Tensor<double> y;
    std::vector<std::int32_t> argmax;
    pool::max_forward(x, 2, 2, y, argmax);
    BOOST_TEST_REQUIRE(y.shape().str() == Shape({3, 2, 3, 4}).str());
    std::size_t k = 0, mismatches = 0;
    for (int p = 0; p < 3 * 2; ++p)
        for (int r = 0; r < 3; ++r)
            for (int c = 0; c < 4; ++c, ++k) {
                int best = p * 63 + 2 * r * 9 + 2 * c;
                for (int u = 0; u < 2; ++u)
                    for (int v = 0; v < 2; ++v) {
                        const int at = p * 63 + (2 * r + u) * 9 + 2 * c + v;
                        if (x[at] > x[best]) best = at;
                    }
                mismatches += argmax[k] != best || y[k] != x[best];
            }
    BOOST_TEST(mismatches == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
