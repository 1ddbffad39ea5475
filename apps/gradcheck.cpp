// Numerical gradient checks from the command line.
//   gradcheck --node NAME|all [--seed 1] [--max-elements 0] [--verbose]
//   gradcheck --model simple|tuned|manual [--batch 2] [--seed 0] [--max-elements 0]
// Exit status 0 when every check passes, 1 when one fails, 2 on bad usage.
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include "mcnn/check/node_cases.hpp"
#include "mcnn/nn/models.hpp"
#include "mcnn/ops/loss.hpp"

using namespace mcnn;

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
        if (verbose || !r.passed()) fmt::print("  {}\n{}\n", c->description, r.table());
        all_passed = all_passed && r.passed();
    }
    return all_passed ? 0 : 1;
}

int check_model(const std::string& name, int batch, std::uint64_t seed, const GradCheckOptions& options) {
    Rng rng(seed);
    const std::unique_ptr<Model<double>> model = make_model<double>(name, rng, default_conv_path(name));
    Tensor<double> images(Shape{batch, 3, 32, 32});
    for (double& v : images) v = rng.uniform(-1, 1);
    std::vector<int> labels;
    for (int n = 0; n < batch; ++n) labels.push_back(static_cast<int>(rng.below(10)));
    const GradCheckReport r = gradcheck(
        [&](Tape<double>&, const std::vector<Var<double>>& in) { return softmax_cross_entropy(model->forward(in[0]), labels); },
        {{"images", images}}, model->parameters(), options);
    fmt::print("{} model, batch {}, {} parameters\n{}", name, batch, model->parameter_count(), r.table());
    return r.passed() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"Check analytic gradients against central differences in double precision."};
    std::string node, model;
    int batch = 2;
    std::uint64_t seed = 1;
    bool verbose = false;
    GradCheckOptions options;
    auto* node_opt = app.add_option("--node", node, "check one node case by name, or 'all'");
    auto* model_opt = app.add_option("--model", model, "check a whole model with its loss")->check(CLI::IsMember(model_names()));
    node_opt->excludes(model_opt);
    app.add_option("--batch", batch, "images per batch for --model")->check(CLI::Range(1, 64));
    app.add_option("--seed", seed, "seed for shapes' values, weights and labels");
    app.add_option("--max-elements", options.max_elements, "check at most this many elements per tensor (0: all)");
    app.add_option("--eps", options.eps, "finite-difference step")->check(CLI::PositiveNumber);
    app.add_option("--min-eps", options.min_eps, "smallest step tried when eps crosses a kink")->check(CLI::PositiveNumber);
    app.add_option("--atol", options.atol, "absolute tolerance")->check(CLI::NonNegativeNumber);
    app.add_option("--rtol", options.rtol, "relative tolerance")->check(CLI::NonNegativeNumber);
    app.add_flag("--verbose", verbose, "print every node's full table");
    app.footer("Node cases: " + [] {
        std::string names;
        for (const NodeCase& c : node_cases()) names += (names.empty() ? "" : ", ") + c.name;
        return names;
    }());
    CLI11_PARSE(app, argc, argv);
    options.seed = seed;
    try {
        if (!node.empty()) return check_nodes(node, seed, options, verbose);
        if (!model.empty()) return check_model(model, batch, seed, options);
        fmt::print(stderr, "gradcheck: give --node NAME|all or --model NAME (see --help)\n");
        return 2;
    } catch (const Error& e) {
        fmt::print(stderr, "gradcheck: {}\n", e.what());
        return 2;
    }
}
