// summary: a registered model's layers, output shapes and parameters for its input shape (or
// --input), and with --graph a picture of the tape of one training step.
//   summary --model NAME [--input C,H,W] [--conv PATH] [--graph step.png|step.svg|step.dot]
#include <fmt/format.h>

#include "common.hpp"
#include "mcnn/cli.hpp"
#include "mcnn/nn/graph.hpp"
#include "mcnn/nn/layers.hpp"
#include "mcnn/ops/loss.hpp"
#include "mcnn/train/config.hpp"

namespace mcnn::cli {
namespace {

struct SummaryFlags {
    std::string model = "simple", input, conv = "auto", graph;
    std::uint64_t seed = 0;
};

/// Records one training step of `model` on one random example (forward, softmax cross-entropy,
/// backward) and returns its tape as dot text.
std::string training_step_dot(const SummaryFlags& f, const Shape& example) {
    Rng rng(f.seed);
    auto model = detail::checked_model<float>(f.model, rng, example);
    if (f.conv != "auto") set_conv_path(*model, conv_path_from_name(normalized_conv_setting(f.conv)));
    Tensor<float> image(detail::batch_of(1, example));
    for (float& v : image) v = static_cast<float>(rng.uniform(-1, 1));
    const int label = static_cast<int>(rng.below(static_cast<std::uint64_t>(model_info(f.model).classes)));
    Tape<float> tape;
    const Var<float> loss = softmax_cross_entropy(model->forward(tape.input(image)), {label});
    tape.backward(loss);
    std::string count = std::to_string(model->parameter_count());
    for (int at = static_cast<int>(count.size()) - 3; at > 0; at -= 3) count.insert(static_cast<std::size_t>(at), ",");
    const std::string title = fmt::format("{} ({}): one training step on a batch of 1 (label {}), {} parameters",
                                          f.model, model->type_name(), label, count);
    return graph_dot(tape, loss, title);
}

int run(const SummaryFlags& f) {
    const Shape example = f.input.empty() ? model_info(f.model).input : detail::parse_example_shape(f.input);
    fmt::print("{}", detail::model_summary(f.model, f.conv, f.seed, example));
    if (f.graph.empty()) return 0;
    const GraphFiles files = render_graph(training_step_dot(f, example), f.graph);
    if (!files.picture.empty()) {
        fmt::print("wrote {} and {}\n", files.picture.string(), files.dot.string());
    } else if (files.dot != f.graph) {
        fmt::print("wrote {}; Graphviz's dot is not installed (not on PATH), so there is no {}: install graphviz, "
                   "or draw it elsewhere with: dot -T{} {} -o {}\n",
                   files.dot.string(), f.graph, std::filesystem::path(f.graph).extension().string().substr(1),
                   files.dot.string(), f.graph);
    } else {
        fmt::print("wrote {}\n", files.dot.string());
    }
    return 0;
}

}  // namespace

int summary(int argc, char** argv) {
    CLI::App app{"Print a model's layers, output shapes and parameter counts; --graph draws one training step's tape.",
                 argv[0]};
    SummaryFlags f;
    detail::add_model_option(app, f.model, "model to describe")->capture_default_str();
    app.add_option("--input", f.input, "shape of one example, C,H,W (default: the model's registered input)");
    app.add_option("--conv", f.conv, "conv path of every conv layer (auto: the model's own)")
        ->capture_default_str()->check(CLI::IsMember(conv_settings()));
    detail::add_integer_flag(app, "--seed", f.seed, "seed for the weights and the example of --graph", 0);
    app.add_option("--graph", f.graph,
                   "also write the autodiff graph of one training step (forward, loss, backward; batch 1) to this "
                   "file: .png or .svg (drawn with Graphviz's dot; FILE's .dot is written beside it) or .dot");
    app.footer(detail::model_table());
    CLI11_PARSE(app, argc, argv);
    return detail::run_reporting_errors("summary", 1, [&] { return run(f); });
}

}  // namespace mcnn::cli
