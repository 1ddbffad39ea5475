#include "mcnn/nn/models.hpp"

#include <fmt/format.h>

#include "mcnn/ops/activation.hpp"
#include "mcnn/ops/pool.hpp"
#include "mcnn/ops/shape.hpp"

namespace mcnn {

template <class T>
std::size_t Model<T>::parameter_count() {
    std::size_t n = 0;
    for (const Parameter<T>* p : parameters()) n += p->value.numel();
    return n;
}

template <class T>
SimpleCNN<T>::SimpleCNN(Rng& rng, ConvPath path, BiasKind bias)
    : conv1("conv1", {.in_channels = 3, .out_channels = 6, .kernel = 5, .bias = bias, .in_size = 32, .path = path}, rng),
      conv2("conv2", {.in_channels = 6, .out_channels = 16, .kernel = 5, .bias = bias, .in_size = 14, .path = path}, rng),
      fc1("fc1", 16 * 5 * 5, 120, rng),
      fc2("fc2", 120, 84, rng),
      fc3("fc3", 84, 10, rng) {}

template <class T>
Var<T> SimpleCNN<T>::forward(const Var<T>& x) {
    Var<T> h = max_pool2d(relu(conv1(x)), 2);  // B x 6 x 14 x 14
    h = max_pool2d(relu(conv2(h)), 2);         // B x 16 x 5 x 5
    h = relu(fc1(flatten(h)));                 // B x 120
    h = relu(fc2(h));                          // B x 84
    return fc3(h);                             // B x 10
}

template <class T>
std::vector<Parameter<T>*> SimpleCNN<T>::parameters() {
    std::vector<Parameter<T>*> out;
    for (auto* layer_params : {&conv1.weight, &conv1.bias, &conv2.weight, &conv2.bias, &fc1.weight, &fc1.bias,
                               &fc2.weight, &fc2.bias, &fc3.weight, &fc3.bias})
        out.push_back(layer_params);
    return out;
}

template <class T>
void SimpleCNN<T>::set_conv_path(ConvPath path) {
    conv1.set_path(path);
    conv2.set_path(path);
}

template <class T>
TunedCNN<T>::TunedCNN(Rng& rng, ConvPath path)
    : conv1("conv1", {.in_channels = 3, .out_channels = 16, .kernel = 5, .padding = 3, .path = path}, rng),
      conv2("conv2", {.in_channels = 16, .out_channels = 64, .kernel = 5, .padding = 3, .path = path}, rng),
      conv3("conv3", {.in_channels = 64, .out_channels = 128, .kernel = 5, .padding = 3, .path = path}, rng),
      fc1("fc1", 128 * 5 * 5, 256, rng),
      fc2("fc2", 256, 512, rng),
      fc3("fc3", 512, 10, rng) {}

template <class T>
Var<T> TunedCNN<T>::forward(const Var<T>& x) {
    Var<T> h = max_pool2d(relu(conv1(x)), 2);  // B x 16 x 17 x 17  (conv: 34 x 34)
    h = max_pool2d(relu(conv2(h)), 2);         // B x 64 x 9 x 9    (conv: 19 x 19)
    h = max_pool2d(relu(conv3(h)), 2);         // B x 128 x 5 x 5   (conv: 11 x 11)
    h = relu(fc1(flatten(h)));                 // B x 256
    h = relu(fc2(h));                          // B x 512
    return fc3(h);                             // B x 10
}

template <class T>
std::vector<Parameter<T>*> TunedCNN<T>::parameters() {
    return {&conv1.weight, &conv1.bias, &conv2.weight, &conv2.bias, &conv3.weight, &conv3.bias,
            &fc1.weight,   &fc1.bias,   &fc2.weight,   &fc2.bias,   &fc3.weight,   &fc3.bias};
}

template <class T>
void TunedCNN<T>::set_conv_path(ConvPath path) {
    for (Conv2d<T>* c : {&conv1, &conv2, &conv3}) c->set_path(path);
}

std::vector<std::string> model_names() { return {"simple", "tuned", "manual"}; }

ConvPath default_conv_path(const std::string& model) { return model == "manual" ? ConvPath::correlate2d : ConvPath::automatic; }

template <class T>
std::unique_ptr<Model<T>> make_model(const std::string& name, Rng& rng, ConvPath path) {
    if (name == "simple") return std::make_unique<SimpleCNN<T>>(rng, path);
    if (name == "tuned") return std::make_unique<TunedCNN<T>>(rng, path);
    if (name == "manual") return std::make_unique<ManualCNN<T>>(rng, path);
    fail("unknown model '{}'; known models: {}", name, fmt::join(model_names(), ", "));
}

template std::unique_ptr<Model<float>> make_model(const std::string&, Rng&, ConvPath);
template std::unique_ptr<Model<double>> make_model(const std::string&, Rng&, ConvPath);
template class Model<float>;
template class Model<double>;
template class SimpleCNN<float>;
template class SimpleCNN<double>;
template class TunedCNN<float>;
template class TunedCNN<double>;
template class ManualCNN<float>;
template class ManualCNN<double>;

}  // namespace mcnn
