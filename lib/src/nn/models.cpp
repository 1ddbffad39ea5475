#include "mcnn/nn/models.hpp"

#include "mcnn/ops/activation.hpp"
#include "mcnn/ops/pool.hpp"
#include "mcnn/ops/shape.hpp"

namespace mcnn {

template <class T>
SimpleCNN<T>::SimpleCNN(Rng& rng, ConvPath path, BiasKind bias)
    : conv1({.in_channels = 3, .out_channels = 6, .kernel = 5, .bias = bias, .in_size = 32, .path = path}, rng),
      conv2({.in_channels = 6, .out_channels = 16, .kernel = 5, .bias = bias, .in_size = 14, .path = path}, rng),
      fc1(16 * 5 * 5, 120, rng),
      fc2(120, 84, rng),
      fc3(84, 10, rng) {
    this->register_modules({{"conv1", conv1}, {"conv2", conv2}, {"fc1", fc1}, {"fc2", fc2}, {"fc3", fc3}});
}

template <class T>
Var<T> SimpleCNN<T>::forward(const Var<T>& x) {
    Var<T> h = max_pool2d(relu(conv1(x)), 2);  // B x 6 x 14 x 14
    h = max_pool2d(relu(conv2(h)), 2);         // B x 16 x 5 x 5
    h = relu(fc1(flatten(h)));                 // B x 120
    h = relu(fc2(h));                          // B x 84
    return fc3(h);                             // B x 10
}

template <class T>
TunedCNN<T>::TunedCNN(Rng& rng)
    : conv1({.in_channels = 3, .out_channels = 16, .kernel = 5, .padding = 3}, rng),
      conv2({.in_channels = 16, .out_channels = 64, .kernel = 5, .padding = 3}, rng),
      conv3({.in_channels = 64, .out_channels = 128, .kernel = 5, .padding = 3}, rng),
      fc1(128 * 5 * 5, 256, rng),
      fc2(256, 512, rng),
      fc3(512, 10, rng) {
    this->register_modules({{"conv1", conv1}, {"conv2", conv2}, {"conv3", conv3}, {"fc1", fc1}, {"fc2", fc2}, {"fc3", fc3}});
}

template <class T>
Var<T> TunedCNN<T>::forward(const Var<T>& x) {
    Var<T> h = max_pool2d(relu(conv1(x)), 2);  // B x 16 x 17 x 17  (conv: 34 x 34)
    h = max_pool2d(relu(conv2(h)), 2);         // B x 64 x 9 x 9    (conv: 19 x 19)
    h = max_pool2d(relu(conv3(h)), 2);         // B x 128 x 5 x 5   (conv: 11 x 11)
    h = relu(fc1(flatten(h)));                 // B x 256
    h = relu(fc2(h));                          // B x 512
    return fc3(h);                             // B x 10
}

template class SimpleCNN<float>;
template class SimpleCNN<double>;
template class TunedCNN<float>;
template class TunedCNN<double>;
template class ManualCNN<float>;
template class ManualCNN<double>;

}  // namespace mcnn
