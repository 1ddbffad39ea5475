// A model of your own, outside ManualCNN's tree: a small CNN written as a subclass of
// mcnn::Model<T>, its gradients checked numerically in double, then a few SGD steps in float on
// one random batch (the loss must fall: the model learns the batch by heart). Exits non-zero when
// the gradient check fails or the loss does not fall.
#include <mcnn/mcnn.hpp>

#include <cstdio>

using namespace mcnn;

/// conv 3->8 k3 pad 1, relu, pool 2; conv 8->8 k3 pad 1, relu, pool 4; flatten; fc 128->10.
/// Images B x 3 x 32 x 32 in, logits B x 10 out.
template <class T>
class TinyCNN : public Model<T> {
public:
    explicit TinyCNN(Rng& rng)
        : conv1("conv1", {.in_channels = 3, .out_channels = 8, .kernel = 3, .padding = 1}, rng),
          conv2("conv2", {.in_channels = 8, .out_channels = 8, .kernel = 3, .padding = 1}, rng),
          fc("fc", 8 * 4 * 4, 10, rng) {}

    std::string name() const override { return "tiny"; }
    Var<T> forward(const Var<T>& x) override {
        Var<T> h = max_pool2d(relu(conv1(x)), 2);  // B x 8 x 16 x 16
        h = max_pool2d(relu(conv2(h)), 4);         // B x 8 x 4 x 4
        return fc(flatten(h));                     // B x 10
    }
    std::vector<Parameter<T>*> parameters() override {
        return {&conv1.weight, &conv1.bias, &conv2.weight, &conv2.bias, &fc.weight, &fc.bias};
    }
    void set_conv_path(ConvPath path) override {
        conv1.set_path(path);
        conv2.set_path(path);
    }

    Conv2d<T> conv1, conv2;
    Linear<T> fc;
};

/// `batch` images with values in [-1, 1) and labels in 0..9.
template <class T>
Tensor<T> random_images(int batch, Rng& rng) {
    Tensor<T> images(Shape{batch, 3, 32, 32});
    for (T& v : images) v = static_cast<T>(rng.uniform(-1, 1));
    return images;
}

std::vector<int> random_labels(int batch, Rng& rng) {
    std::vector<int> labels;
    for (int n = 0; n < batch; ++n) labels.push_back(static_cast<int>(rng.below(10)));
    return labels;
}

/// Central differences on (a sample of) every parameter and the images, in double.
bool check_gradients(Rng& rng) {
    TinyCNN<double> model(rng);
    const std::vector<int> labels = random_labels(2, rng);
    GradCheckOptions options;
    options.max_elements = 100;
    const GradCheckReport report = gradcheck(
        [&](Tape<double>&, const std::vector<Var<double>>& in) { return softmax_cross_entropy(model.forward(in[0]), labels); },
        {{"images", random_images<double>(2, rng)}}, model.parameters(), options);
    std::printf("%s: %zu parameters, gradient check %s\n%s", model.name().c_str(), model.parameter_count(),
                report.passed() ? "passed" : "FAILED", report.table().c_str());
    return report.passed();
}

/// A few SGD steps on one batch, a fresh tape per step; returns the first and the last loss.
std::pair<float, float> train(Rng& rng, int steps) {
    TinyCNN<float> model(rng);
    Sgd<float> sgd(model.parameters(), {.lr = 0.1, .momentum = 0.9});
    const Tensor<float> images = random_images<float>(16, rng);
    const std::vector<int> labels = random_labels(16, rng);
    float first = 0, last = 0;
    for (int step = 0; step < steps; ++step) {
        Tape<float> tape;
        const Var<float> loss = softmax_cross_entropy(model.forward(tape.constant(images)), labels);
        sgd.zero_grad();
        tape.backward(loss);
        sgd.step();
        last = loss.value()[0];
        if (step == 0) first = last;
        std::printf("step %2d  loss %.4f\n", step, last);
    }
    return {first, last};
}

int main() {
    Rng rng(7);
    const bool gradients_ok = check_gradients(rng);
    const auto [first, last] = train(rng, 20);
    const bool learned = last < 0.5f * first;
    std::printf("loss %.4f -> %.4f: %s\n", first, last, learned ? "learning" : "NOT LEARNING");
    return gradients_ok && learned ? 0 : 1;
}
