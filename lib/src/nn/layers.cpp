#include "mcnn/nn/layers.hpp"

#include "mcnn/ops/bias.hpp"
#include "mcnn/ops/linear.hpp"

namespace mcnn {
namespace {

Shape bias_shape(const Conv2dSpec& s) {
    if (s.bias == BiasKind::tied) return Shape{s.out_channels};
    if (s.in_size < 1) fail("Conv2d: an untied bias needs the input size (in_size), got {}", s.in_size);
    const int out = (s.in_size + 2 * s.padding - s.kernel) / s.stride + 1;
    return Shape{s.out_channels, out, out};
}

}  // namespace

template <class T>
Conv2d<T>::Conv2d(const std::string& name, const Conv2dSpec& spec, Rng& rng) : spec_(spec) {
    const int fan_in = spec.in_channels * spec.kernel * spec.kernel;
    weight = Parameter<T>(name + ".weight", default_init<T>(Shape{spec.out_channels, spec.in_channels, spec.kernel, spec.kernel}, fan_in, rng));
    // A tied bias as nn.Conv2d's; an untied one starts at zero, as the notebook's hand-made layer.
    bias = Parameter<T>(name + ".bias", spec.bias == BiasKind::tied ? default_init<T>(bias_shape(spec), fan_in, rng)
                                                                  : Tensor<T>(bias_shape(spec)));
}

template <class T>
Var<T> Conv2d<T>::operator()(const Var<T>& x) {
    Tape<T>& tape = *x.tape();
    const Var<T> y = conv2d(x, tape.param(weight), Conv2dOptions{spec_.padding, spec_.stride, spec_.path});
    return spec_.bias == BiasKind::tied ? bias_channels(y, tape.param(bias)) : bias_untied(y, tape.param(bias));
}

template <class T>
Linear<T>::Linear(const std::string& name, int in_features, int out_features, Rng& rng)
    : weight(name + ".weight", default_init<T>(Shape{out_features, in_features}, in_features, rng)),
      bias(name + ".bias", default_init<T>(Shape{out_features}, in_features, rng)) {}

template <class T>
Var<T> Linear<T>::operator()(const Var<T>& x) {
    Tape<T>& tape = *x.tape();
    return linear(x, tape.param(weight), tape.param(bias));
}

template class Conv2d<float>;
template class Conv2d<double>;
template class Linear<float>;
template class Linear<double>;

}  // namespace mcnn
