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
SimpleCNN<T>::SimpleCNN(Rng& rng, ConvPath path)
    : conv1("conv1", {.in_channels = 3, .out_channels = 6, .kernel = 5, .path = path}, rng),
      conv2("conv2", {.in_channels = 6, .out_channels = 16, .kernel = 5, .path = path}, rng),
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

std::vector<std::string> model_names() { return {"simple"}; }

template <class T>
std::unique_ptr<Model<T>> make_model(const std::string& name, Rng& rng, ConvPath path) {
    if (name == "simple") return std::make_unique<SimpleCNN<T>>(rng, path);
    fail("unknown model '{}'; known models: {}", name, fmt::join(model_names(), ", "));
}

template std::unique_ptr<Model<float>> make_model(const std::string&, Rng&, ConvPath);
template std::unique_ptr<Model<double>> make_model(const std::string&, Rng&, ConvPath);
template class Model<float>;
template class Model<double>;
template class SimpleCNN<float>;
template class SimpleCNN<double>;

}  // namespace mcnn
