// A first tour of ManualCNN: build SimpleCNN as a graph on a tape, run forward and backward, and
// check every gradient numerically.
//   example [--batch 2] [--seed 0] [--all]
#include <charconv>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include "mcnn/check/gradcheck.hpp"
#include "mcnn/cli.hpp"
#include "mcnn/nn/models.hpp"
#include "mcnn/nn/module.hpp"
#include "mcnn/ops/loss.hpp"

using namespace mcnn;

/// The whole of `text` as a whole number in [min, max] (no sign, no wrap-around); else a message
/// naming `flag` that stops the parse.
std::uint64_t whole_number(const std::string& text, const std::string& flag, std::uint64_t min, std::uint64_t max) {
    std::uint64_t v = 0;
    const char* end = text.data() + text.size();
    const auto [stop, ec] = std::from_chars(text.data(), end, v);
    if (text.empty() || ec != std::errc() || stop != end || v < min || v > max)
        throw CLI::ValidationError(fmt::format("{} must be an integer from {} to {}, got '{}'", flag, min, max, text));
    return v;
}

int tour(int argc, char** argv) {
    CLI::App app{"Build SimpleCNN as a graph, run forward and backward, and check its gradients numerically."};
    int batch = 2;
    std::uint64_t seed = 0;
    bool all = false;
    app.add_option_function<std::string>(
        "--batch", [&](const std::string& t) { batch = static_cast<int>(whole_number(t, "--batch", 1, 64)); },
        "images in the batch, 1 to 64 (default 2)");
    app.add_option_function<std::string>(
        "--seed", [&](const std::string& t) { seed = whole_number(t, "--seed", 0, UINT64_MAX); },
        "seed for weights, images and labels (default 0)");
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

// Any error (out of memory included) ends the program with a message, not an abort.
int main(int argc, char** argv) { return mcnn::cli::run_main(tour, argc, argv); }
