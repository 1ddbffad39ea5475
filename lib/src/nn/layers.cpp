#include "mcnn/nn/layers.hpp"

#include <cmath>
#include <utility>

#include <fmt/format.h>

#include "mcnn/distributed.hpp"
#include "mcnn/ops/activation.hpp"
#include "mcnn/ops/bias.hpp"
#include "mcnn/ops/dropout.hpp"
#include "mcnn/ops/elementwise.hpp"
#include "mcnn/ops/linear.hpp"
#include "mcnn/ops/pool.hpp"
#include "mcnn/ops/shape.hpp"

namespace mcnn {
namespace {

Shape bias_shape(const Conv2dSpec& s) {
    if (s.bias == BiasKind::tied) return Shape{s.out_channels};
    if (s.in_size < 1) fail("Conv2d: an untied bias needs the input size (in_size), got {}", s.in_size);
    const int out = (s.in_size + 2 * s.padding - s.kernel) / s.stride + 1;
    if (out < 1) fail("Conv2d: kernel {} does not fit input size {} with padding {}", s.kernel, s.in_size, s.padding);
    return Shape{s.out_channels, out, out};
}

}  // namespace

template <class T>
Conv2d<T>::Conv2d(const Conv2dSpec& spec, Rng& rng) : spec_(spec) {
    if (spec.in_channels < 1 || spec.out_channels < 1 || spec.kernel < 1)
        fail("Conv2d: channels and kernel must be >= 1, got in {} out {} kernel {}", spec.in_channels, spec.out_channels,
             spec.kernel);
    const int fan_in = spec.in_channels * spec.kernel * spec.kernel;
    weight.value = default_init<T>(Shape{spec.out_channels, spec.in_channels, spec.kernel, spec.kernel}, fan_in, rng);
    this->register_parameter("weight", weight);
    if (spec.bias == BiasKind::none) return;
    bias.value = spec.bias == BiasKind::tied ? default_init<T>(bias_shape(spec), fan_in, rng) : Tensor<T>(bias_shape(spec));
    this->register_parameter("bias", bias);
}

template <class T>
Var<T> Conv2d<T>::forward(const Var<T>& x) {
    Tape<T>& tape = *x.tape();
    Var<T> y = conv2d(x, tape.param(weight), Conv2dOptions{spec_.padding, spec_.stride, spec_.path});
    switch (spec_.bias) {
        case BiasKind::tied: return bias_channels(std::move(y), tape.param(bias));  // in place in inference
        case BiasKind::untied: return bias_untied(y, tape.param(bias));
        case BiasKind::none: break;
    }
    return y;
}

template <class T>
std::string Conv2d<T>::describe() const {
    std::string s = fmt::format("{} -> {}, kernel {}", spec_.in_channels, spec_.out_channels, spec_.kernel);
    if (spec_.padding) s += fmt::format(", padding {}", spec_.padding);
    if (spec_.stride != 1) s += fmt::format(", stride {}", spec_.stride);
    if (spec_.bias == BiasKind::untied) s += ", untied bias";
    if (spec_.bias == BiasKind::none) s += ", no bias";
    return s;
}

template <class T>
Linear<T>::Linear(int in_features, int out_features, Rng& rng, bool with_bias) {
    if (in_features < 1 || out_features < 1) fail("Linear: features must be >= 1, got {} -> {}", in_features, out_features);
    weight.value = default_init<T>(Shape{out_features, in_features}, in_features, rng);
    this->register_parameter("weight", weight);
    if (!with_bias) return;
    bias.value = default_init<T>(Shape{out_features}, in_features, rng);
    this->register_parameter("bias", bias);
}

template <class T>
Var<T> Linear<T>::forward(const Var<T>& x) {
    Tape<T>& tape = *x.tape();
    return bias.value.empty() ? linear(x, tape.param(weight)) : linear(x, tape.param(weight), tape.param(bias));
}

template <class T>
std::string Linear<T>::describe() const {
    return fmt::format("{} -> {}{}", weight.value.dim(1), weight.value.dim(0), bias.value.empty() ? ", no bias" : "");
}

template <class T>
Var<T> ReLU<T>::forward(const Var<T>& x) {
    return relu(x);
}

template <class T>
Var<T> MaxPool2d<T>::forward(const Var<T>& x) {
    return max_pool2d(x, kernel_, stride_);
}

template <class T>
std::string MaxPool2d<T>::describe() const {
    return fmt::format("kernel {}, stride {}", kernel_, stride_ ? stride_ : kernel_);
}

template <class T>
Var<T> Flatten<T>::forward(const Var<T>& x) {
    return flatten(x);
}

template <class T>
Var<T> GELU<T>::forward(const Var<T>& x) {
    return gelu(x);
}

template <class T>
Dropout<T>::Dropout(double p, std::uint64_t seed) : calls(Shape{2}), p_(p), seed_(seed) {
    if (!(p >= 0 && p < 1)) fail("Dropout: p must be in [0, 1), got {}", p);
    this->register_buffer("calls", calls);
}

template <class T>
Dropout<T>::Dropout(double p, Rng& rng) : Dropout(p, rng.engine()()) {}

template <class T>
Var<T> Dropout<T>::forward(const Var<T>& x) {
    if (!this->is_training() || p_ == 0) return x;
    constexpr double low = 1 << 24;
    const double lo = static_cast<double>(calls[0]), hi = static_cast<double>(calls[1]);
    if (!(lo >= 0 && lo < low && hi >= 0 && hi < low) || lo != std::floor(lo) || hi != std::floor(hi))
        fail("Dropout: its call count holds ({}, {}), not two integers in [0, 2^24) (a damaged checkpoint?)", lo, hi);
    std::uint64_t k = static_cast<std::uint64_t>(hi) * (std::uint64_t{1} << 24) + static_cast<std::uint64_t>(lo);
    // A later shard of a step (distributed.hpp) draws from the step's call, the one its first shard counted.
    const StepPart& part = current_step_part();
    if (part.continues_step && k > 0) {
        --k;
    } else {
        const std::uint64_t next = k + 1;
        calls[0] = static_cast<T>(next % (std::uint64_t{1} << 24));
        calls[1] = static_cast<T>(next >> 24);
    }
    // Row r of this part is row first_row + r of the step's batch: its elements' indices in the whole batch.
    const int rows = x.shape().rank() > 0 ? x.shape()[0] : 0;
    const std::uint64_t per_row = rows > 0 ? x.value().numel() / static_cast<std::size_t>(rows) : 0;
    return dropout(x, p_, dropout_mask::call_seed(seed_, k), part.first_row * per_row);
}

template <class T>
std::string Dropout<T>::describe() const {
    return fmt::format("p {:g}", p_);
}

template <class T>
Var<T> AvgPool2d<T>::forward(const Var<T>& x) {
    return avg_pool2d(x, kernel_, stride_);
}

template <class T>
std::string AvgPool2d<T>::describe() const {
    return fmt::format("kernel {}, stride {}", kernel_, stride_ ? stride_ : kernel_);
}

template <class T>
Scale<T>::Scale(double factor) : factor_(factor) {
    if (!std::isfinite(factor)) fail("Scale: the factor must be finite, got {}", factor);
}

template <class T>
Var<T> Scale<T>::forward(const Var<T>& x) {
    return scale(x, factor_);
}

template <class T>
std::string Scale<T>::describe() const {
    return fmt::format("factor {:g}", factor_);
}

template <class T>
void set_conv_path(Module<T>& model, ConvPath path) {
    model.visit([path](const std::string&, Module<T>& m) {
        if (auto* conv = dynamic_cast<Conv2d<T>*>(&m)) conv->set_path(path);
    });
}

template <class T>
Conv2d<T>* first_conv(Module<T>& model) {
    Conv2d<T>* found = nullptr;
    model.visit([&found](const std::string&, Module<T>& m) {
        if (!found) found = dynamic_cast<Conv2d<T>*>(&m);
    });
    return found;
}

#define MCNN_INSTANTIATE(T)                                    \
    template class Conv2d<T>;                                  \
    template class Linear<T>;                                  \
    template class ReLU<T>;                                    \
    template class MaxPool2d<T>;                               \
    template class Flatten<T>;                                 \
    template class GELU<T>;                                    \
    template class Dropout<T>;                                 \
    template class AvgPool2d<T>;                               \
    template class GlobalAvgPool2d<T>;                         \
    template class Scale<T>;                                   \
    template void set_conv_path(Module<T>&, ConvPath);         \
    template Conv2d<T>* first_conv(Module<T>&);
MCNN_INSTANTIATE(float)
MCNN_INSTANTIATE(double)
#undef MCNN_INSTANTIATE  // the unity build puts several files in one translation unit

template <class T>
BatchNorm2d<T>::BatchNorm2d(int channels, const BatchNormSpec& spec) : spec_(spec) {
    if (channels < 1) fail("BatchNorm2d: channels must be >= 1, got {}", channels);
    if (!(spec.eps > 0) || !std::isfinite(spec.eps)) fail("BatchNorm2d: eps must be finite and > 0, got {}", spec.eps);
    if (!(spec.momentum >= 0 && spec.momentum <= 1)) fail("BatchNorm2d: momentum must be in [0, 1], got {}", spec.momentum);
    running_mean = Tensor<T>(Shape{channels});  // zeros
    running_var = Tensor<T>(Shape{channels});
    running_var.fill(T(1));
    this->register_buffer("running_mean", running_mean);
    this->register_buffer("running_var", running_var);
    if (!spec.affine) return;
    weight.value = Tensor<T>(Shape{channels});
    weight.value.fill(T(1));
    bias.value = Tensor<T>(Shape{channels});
    if (spec.learn_weight) this->register_parameter("weight", weight);
    this->register_parameter("bias", bias);
}

template <class T>
Var<T> BatchNorm2d<T>::forward(const Var<T>& x) {
    const BatchNorm2dOptions options{.training = this->is_training(), .momentum = spec_.momentum, .eps = spec_.eps};
    const BatchNormRunning<T> running{&running_mean, &running_var};
    if (!spec_.affine) return batch_norm2d(x, running, options);
    Tape<T>& tape = *x.tape();
    return batch_norm2d(x, spec_.learn_weight ? tape.param(weight) : tape.constant(weight.value), tape.param(bias), running, options);
}

template <class T>
std::string BatchNorm2d<T>::describe() const {
    return fmt::format("{} channels, momentum {:g}, eps {:g}{}", running_mean.numel(), spec_.momentum, spec_.eps,
                       !spec_.affine ? ", no affine" : spec_.learn_weight ? "" : ", weight fixed at 1");
}

template class BatchNorm2d<float>;
template class BatchNorm2d<double>;

}  // namespace mcnn
