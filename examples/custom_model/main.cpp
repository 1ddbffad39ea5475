// Your own node and your own model, outside ManualCNN's tree: softplus written as a tape node, a
// small CNN as a plain struct of layers, both checked numerically in double, then the model trained
// a few batches in float through fit() on in-memory data. Exits non-zero when a gradient check
// fails or training does not learn. README.md quotes the marked parts of this file (a test checks).
#include <mcnn/mcnn.hpp>

#include <cmath>
#include <cstdio>

using namespace mcnn;

// ---- a node: softplus(x) = log(1 + e^x), x any shape; dx += dy * sigmoid(x) = dy * (1 - e^-y) ------
template <class T>
Var<T> softplus(const Var<T>& x) {
    Tensor<T> y(x.shape());
    for (std::size_t i = 0; i < y.numel(); ++i) y[i] = std::log1p(std::exp(x.value()[i]));
    return record<T>("softplus", std::move(y), {x}, [](const Tensor<T>& y, const Tensor<T>& dy, auto grad) {
        if (!grad[0]) return;  // x needs no gradient
        for (std::size_t i = 0; i < y.numel(); ++i) (*grad[0])[i] += dy[i] * (T(1) - std::exp(-y[i]));
    });
}

// ---- the model: images B x 3 x 16 x 16 in, logits B x 4 out ------------------------------------
template <class T>
struct TinyCNN : Module<T> {
    Conv2d<T> conv1, conv2;
    Linear<T> fc;

    explicit TinyCNN(Rng& rng)
        : conv1({.in_channels = 3, .out_channels = 8, .kernel = 3, .padding = 1}, rng),
          conv2({.in_channels = 8, .out_channels = 8, .kernel = 3, .padding = 1}, rng),
          fc(8 * 4 * 4, 4, rng) {
        this->register_modules({{"conv1", conv1}, {"conv2", conv2}, {"fc", fc}});
    }
    Var<T> forward(const Var<T>& x) override {
        Var<T> h = max_pool2d(relu(conv1(x)), 2);  // B x 8 x 8 x 8
        h = max_pool2d(softplus(conv2(h)), 2);     // B x 8 x 4 x 4
        return fc(flatten(h));                     // B x 4
    }
};
// -------------------------------------------------------------------------------------------------

/// n images whose class (of 4) is the quadrant that is brighter than the rest.
data::TensorDataset quadrants(int n, Rng& rng) {
    Tensor<float> images(Shape{n, 3, 16, 16});
    std::vector<int> labels;
    for (int i = 0; i < n; ++i) {
        labels.push_back(i % 4);
        for (int c = 0; c < 3; ++c)
            for (int r = 0; r < 16; ++r)
                for (int k = 0; k < 16; ++k)
                    images.at({i, c, r, k}) = static_cast<float>(rng.uniform(-0.5, 0.5) + ((r / 8) * 2 + k / 8 == i % 4));
    }
    return data::TensorDataset(std::move(images), std::move(labels), 4);
}

/// The node alone: central differences on every element of a 2 x 3 x 4 x 5 input.
bool check_softplus(Rng& rng) {
    Tensor<double> x(Shape{2, 3, 4, 5});
    for (double& v : x) v = rng.uniform(-3, 3);
    Tensor<double> w(x.shape());  // random weights make every output element count
    for (double& v : w) v = rng.uniform(-1, 1);
    const GradCheckReport report = gradcheck(
        [&](Tape<double>&, const std::vector<Var<double>>& in) { return weighted_sum(softplus(in[0]), w); }, {{"x", x}}, {});
    std::printf("softplus node:\n%s", report.table().c_str());
    return report.passed();
}

int main() {
    Rng rng(0);
    const bool node_ok = check_softplus(rng);
    // 1. Gradients: central differences in double on a sample of every parameter and the images.
    TinyCNN<double> checked(rng);
    Tensor<double> images(Shape{2, 3, 16, 16});
    for (double& v : images) v = rng.uniform(-1, 1);
    const std::vector<int> labels{1, 3};
    GradCheckOptions options;
    options.max_elements = 50;
    const GradCheckReport report = gradcheck(
        [&](Tape<double>&, const std::vector<Var<double>>& in) { return softmax_cross_entropy(checked(in[0]), labels); },
        {{"images", images}}, checked.parameters(), options);
    std::printf("TinyCNN: %zu parameters\n%s", checked.parameter_count(), report.table().c_str());

    // 2. Training: fit() runs the batches, the reports and the evaluation after each epoch.
    TinyCNN<float> model(rng);
    Sgd<float> sgd(model.parameters(), {.lr = 0.05, .momentum = 0.9});
    const data::TensorDataset train_set = quadrants(256, rng), test_set = quadrants(64, rng);
    FitOptions fit_options;
    fit_options.epochs = 2;
    fit_options.batch = 16;
    fit_options.report_every = 8;
    fit_options.model_name = "tiny";
    const TrainResult result = fit(model, sgd, train_set, test_set, fit_options);
    const bool learned = result.test.accuracy > 50;  // chance is 25 %
    std::printf("gradient checks %s; test accuracy %.1f %% after %ld steps%s\n",
                node_ok && report.passed() ? "passed" : "FAILED", result.test.accuracy, result.steps,
                learned ? "" : " (did not learn)");
    return node_ok && report.passed() && learned ? 0 : 1;
}
