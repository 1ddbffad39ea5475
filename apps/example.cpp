// A first tour of ManualCNN: build SimpleCNN as a graph on a tape, run forward and backward, and
// check every gradient numerically.
//   example [--batch 2] [--seed 0] [--all]
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include "mcnn/check/gradcheck.hpp"
#include "mcnn/nn/models.hpp"
#include "mcnn/nn/module.hpp"
#include "mcnn/ops/loss.hpp"

using namespace mcnn;

int main(int argc, char** argv) {
    CLI::App app{"Build SimpleCNN as a graph, run forward and backward, and check its gradients numerically."};
    int batch = 2;
    std::uint64_t seed = 0;
    bool all = false;
    app.add_option("--batch", batch, "images in the batch")->check(CLI::Range(1, 64));
    app.add_option("--seed", seed, "seed for weights, images and labels");
    app.add_flag("--all", all, "check every element (default: at most 300 per tensor)");
    CLI11_PARSE(app, argc, argv);

    // 1. The model: parameters live outside any tape. Double precision, for the numeric check.
    Rng rng(seed);
    SimpleCNN<double> model(rng);
    Tensor<double> images(Shape{batch, 3, 32, 32});
    for (double& v : images) v = rng.uniform(-1, 1);
    std::vector<int> labels;
    for (int n = 0; n < batch; ++n) labels.push_back(static_cast<int>(rng.below(10)));

    // 2. Forward: each op is recorded on the tape as it runs.
    Tape<double> tape;
    const Var<double> x = tape.input(images);
    const Var<double> logits = model.forward(x);
    const Var<double> loss = softmax_cross_entropy(logits, labels);
    fmt::print("SimpleCNN: {} parameters, input {}, logits {}, loss {:.6f}, {} tape entries\n", model.parameter_count(),
               x.shape().str(), logits.shape().str(), loss.value()[0], tape.size());

    // 3. Backward: one reverse walk fills dL/d(input) and every parameter's gradient.
    tape.backward(loss);
    fmt::print("dL/d(images) {} (max |g| {:.3e}); conv1.weight grad {} (max |g| {:.3e})\n\n", x.grad().shape().str(),
               x.grad().array().abs().maxCoeff(), model.conv1.weight.grad.shape().str(),
               model.conv1.weight.grad.array().abs().maxCoeff());

    // 4. The numerical check: central differences on (a sample of) every input and parameter.
    GradCheckOptions options;
    options.max_elements = all ? 0 : 300;
    options.seed = seed;
    const GradCheckReport report = gradcheck(
        [&](Tape<double>&, const std::vector<Var<double>>& in) { return softmax_cross_entropy(model.forward(in[0]), labels); },
        {{"images", images}}, model.parameters(), options);
    fmt::print("Gradient check (eps {}, pass when |a-n| <= {} + {}*|n|):\n{}", options.eps, options.atol, options.rtol, report.table());
    return report.passed() ? 0 : 1;
}
