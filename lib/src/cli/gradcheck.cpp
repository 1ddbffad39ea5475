// gradcheck: numerical gradient checks from the command line.
//   gradcheck --node NAME|all [--seed 1] [--max-elements 0] [--verbose]
//   gradcheck --model NAME [--batch 2] [--seed 1] [--max-elements 0]   (any registered model)
// Exit status 0 when every check passes, 1 when one fails, 2 on bad usage.
#include <fmt/format.h>

#include "common.hpp"
#include "mcnn/check/node_cases.hpp"
#include "mcnn/cli.hpp"
#include "mcnn/ops/loss.hpp"

namespace mcnn::cli {
namespace {

int check_nodes(const std::string& which, std::uint64_t seed, const GradCheckOptions& options, bool verbose) {
    std::vector<const NodeCase*> cases;
    if (which == "all")
        for (const NodeCase& c : node_cases()) cases.push_back(&c);
    else
        cases.push_back(&node_case(which));
    fmt::print("{:<30} {:>8} {:>10} {:>10}  {}\n", "node", "checked", "max abs", "max rel", "result");
    bool all_passed = true;
    for (const NodeCase* c : cases) {
        const GradCheckReport r = c->run(seed, options);
        std::size_t checked = 0;
        for (const auto& e : r.entries) checked += e.checked;
        fmt::print("{:<30} {:>8} {:>10.2e} {:>10.2e}  {}\n", c->name, checked, r.max_abs_error(), r.max_rel_error(),
                   r.passed() ? "ok" : "FAIL");
        if (verbose || !r.passed()) fmt::print("  {}\n{}\n", c->summary(), r.table());
        all_passed = all_passed && r.passed();
    }
    return all_passed ? 0 : 1;
}

/// The registered model `name` in double with softmax cross-entropy, on `batch` random examples of
/// its input shape and random labels below its class count.
int check_model(const std::string& name, int batch, std::uint64_t seed, const GradCheckOptions& options) {
    Rng rng(seed);
    const ModelInfo& info = model_info(name);
    const std::unique_ptr<Module<double>> model = detail::checked_model<double>(name, rng, info.input);
    Tensor<double> images{detail::batch_of(batch, info.input)};
    for (double& v : images) v = rng.uniform(-1, 1);
    std::vector<int> labels;
    for (int n = 0; n < batch; ++n) labels.push_back(static_cast<int>(rng.below(static_cast<std::uint64_t>(info.classes))));
    const GradCheckReport r = gradcheck(
        [&](Tape<double>&, const std::vector<Var<double>>& in) { return softmax_cross_entropy(model->forward(in[0]), labels); },
        {{"images", images}}, model->parameters(), options);
    fmt::print("{} model, batch {}, {} parameters\n{}", name, batch, model->parameter_count(), r.table());
    return r.passed() ? 0 : 1;
}

std::string node_case_names() {
    std::string names;
    for (const NodeCase& c : node_cases()) names += (names.empty() ? "" : ", ") + c.name;
    return names;
}

}  // namespace

int gradcheck(int argc, char** argv) {
    CLI::App app{"Check analytic gradients against central differences in double precision.", argv[0]};
    std::string node, model;
    int batch = 2;
    std::uint64_t seed = 1;
    bool verbose = false;
    GradCheckOptions options;
    auto* node_opt = app.add_option("--node", node, "check one node case by name, or 'all'");
    auto* model_opt = detail::add_model_option(app, model, "check a whole model with its loss");
    node_opt->excludes(model_opt);
    const detail::NumberRange positive{.min = 0, .above_min = true}, non_negative{.min = 0};
    detail::add_integer_flag(app, "--batch", batch, "examples per batch for --model", 1, 64);
    detail::add_integer_flag(app, "--seed", seed, "seed for shapes' values, weights and labels", 0);
    detail::add_integer_flag(app, "--max-elements", options.max_elements, "check at most this many elements per tensor (0: all)", 0);
    detail::add_number_flag(app, "--eps", options.eps, "finite-difference step", positive);
    detail::add_number_flag(app, "--min-eps", options.min_eps, "smallest step tried when eps crosses a kink", positive);
    detail::add_number_flag(app, "--atol", options.atol, "absolute tolerance", non_negative);
    detail::add_number_flag(app, "--rtol", options.rtol, "relative tolerance", non_negative);
    app.add_flag("--verbose", verbose, "print every node's full table");
    app.footer("Node cases: " + node_case_names() + "\n\n" + detail::model_table());
    CLI11_PARSE(app, argc, argv);
    options.seed = seed;
    return detail::run_reporting_errors("gradcheck", 2, [&] {
        if (!node.empty()) return check_nodes(node, seed, options, verbose);
        if (!model.empty()) return check_model(model, batch, seed, options);
        fmt::print(stderr, "gradcheck: give --node NAME|all or --model NAME (see --help)\n");
        return 2;
    });
}

}  // namespace mcnn::cli
