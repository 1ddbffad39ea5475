#pragma once
// Layers: modules that own parameters (Conv2d, Linear) and modules around parameter-free ops
// (ReLU, MaxPool2d, Flatten, GELU, Dropout, AvgPool2d, GlobalAvgPool2d, Scale) for Sequential chains. Calling a layer records its nodes on the tape
// of its input; its parameters are named by where it is registered ("conv1.weight").
#include <cstdint>
#include <string>

#include "mcnn/nn/init.hpp"
#include "mcnn/nn/module.hpp"
#include "mcnn/ops/correlate2d.hpp"
#include "mcnn/ops/norm.hpp"
#include "mcnn/ops/pool.hpp"

namespace mcnn {

/// How a conv layer's bias is shaped: one per output channel (nn.Conv2d), one per channel and
/// output position (the notebook's hand-made layer), or none.
enum class BiasKind { tied, untied, none };

struct Conv2dSpec {
    int in_channels, out_channels, kernel;
    int padding = 0, stride = 1;
    BiasKind bias = BiasKind::tied;
    int in_size = 0;  // input height = width; needed for an untied bias
    ConvPath path = ConvPath::automatic;
};

/// conv (correlate2d node) + bias. Parameters "weight" D x N x F x F and, unless BiasKind::none,
/// "bias" [D] (tied) or [D, Ho, Wo] (untied).
template <class T>
class Conv2d : public Module<T> {
public:
    /// PyTorch's init (an untied bias starts at zero, as the notebook's hand-made layer).
    Conv2d(const Conv2dSpec& spec, Rng& rng);
    Var<T> forward(const Var<T>& x) override;
    std::string type_name() const override { return "Conv2d"; }
    std::string describe() const override;
    const Conv2dSpec& spec() const { return spec_; }
    void set_path(ConvPath path) { spec_.path = path; }
    bool has_bias() const { return spec_.bias != BiasKind::none; }

    Parameter<T> weight, bias;  // bias is empty without one

private:
    Conv2dSpec spec_;
};

/// y = x W^T + b. Parameters "weight" O x I and "bias" [O] (unless with_bias is false).
template <class T>
class Linear : public Module<T> {
public:
    Linear(int in_features, int out_features, Rng& rng, bool with_bias = true);
    Var<T> forward(const Var<T>& x) override;
    std::string type_name() const override { return "Linear"; }
    std::string describe() const override;

    Parameter<T> weight, bias;  // bias is empty without one
};

template <class T>
class ReLU : public Module<T> {
public:
    Var<T> forward(const Var<T>& x) override;
    std::string type_name() const override { return "ReLU"; }
};

template <class T>
class MaxPool2d : public Module<T> {
public:
    explicit MaxPool2d(int kernel, int stride = 0) : kernel_(kernel), stride_(stride) {}
    Var<T> forward(const Var<T>& x) override;
    std::string type_name() const override { return "MaxPool2d"; }
    std::string describe() const override;

private:
    int kernel_, stride_;
};

/// B x ... -> B x (product of the rest).
template <class T>
class Flatten : public Module<T> {
public:
    Var<T> forward(const Var<T>& x) override;
    std::string type_name() const override { return "Flatten"; }
};

/// GELU, erf form (nn.GELU()): any shape.
template <class T>
class GELU : public Module<T> {
public:
    Var<T> forward(const Var<T>& x) override;
    std::string type_name() const override { return "GELU"; }
};

/// Dropout of probability p in training mode (the identity in eval mode): any shape. Call k in
/// training (k = 0, 1, ...) drops with the mask of seed `dropout_mask::call_seed(seed, k)` (a hash of
/// the pair), so a run from the same seed drops the same elements; k is the buffer "calls" (two values, the low and
/// high 24 bits, exact in float), saved in checkpoints, so a resumed run draws the masks an unbroken
/// one would. In data-parallel training (distributed.hpp) a row's mask is that of its place in the
/// global batch, and a step's later shards count no new call: the masks do not depend on how the
/// batch is split. p in [0, 1), else throws.
template <class T>
class Dropout : public Module<T> {
public:
    Dropout(double p, std::uint64_t seed);
    /// Seeded from one draw of `rng` (as the layers that draw their weights from it).
    Dropout(double p, Rng& rng);
    Var<T> forward(const Var<T>& x) override;
    std::string type_name() const override { return "Dropout"; }
    std::string describe() const override;

    Tensor<T> calls;  // [2]: training calls so far, low 24 bits then the rest

private:
    double p_;
    std::uint64_t seed_;
};

/// Average pool (no padding): B x C x H x W -> B x C x Ho x Wo.
template <class T>
class AvgPool2d : public Module<T> {
public:
    explicit AvgPool2d(int kernel, int stride = 0) : kernel_(kernel), stride_(stride) {}
    Var<T> forward(const Var<T>& x) override;
    std::string type_name() const override { return "AvgPool2d"; }
    std::string describe() const override;

private:
    int kernel_, stride_;
};

/// The mean of each channel: B x C x H x W -> B x C.
template <class T>
class GlobalAvgPool2d : public Module<T> {
public:
    Var<T> forward(const Var<T>& x) override { return global_avg_pool2d(x); }
    std::string type_name() const override { return "GlobalAvgPool2d"; }
};

/// y = factor * x with a fixed factor (airbench's head: 1/9): any shape.
template <class T>
class Scale : public Module<T> {
public:
    explicit Scale(double factor);
    Var<T> forward(const Var<T>& x) override;
    std::string type_name() const override { return "Scale"; }
    std::string describe() const override;

private:
    double factor_;
};

/// Sets the conv implementation of every Conv2d in `model`.
template <class T>
void set_conv_path(Module<T>& model, ConvPath path);

/// The first Conv2d of `model` in registration order (depth first); nullptr when it has none.
template <class T>
Conv2d<T>* first_conv(Module<T>& model);

/// Settings of a BatchNorm2d layer (PyTorch's defaults).
struct BatchNormSpec {
    double momentum = 0.1;  // running = (1 - momentum) running + momentum batch, in [0, 1]
    double eps = 1e-5;      // > 0
    bool affine = true;     // learnt weight and bias per channel
    bool learn_weight = true;  // with affine: false keeps the weight at 1 and learns the bias only
                               // (airbench); the weight is then no parameter
};

/// Batch norm over the channels of B x C x H x W input (batch_norm2d node, mcnn/ops/norm.hpp):
/// batch statistics while training (is_training()), which also update the running ones; the
/// running statistics in eval mode. Parameters "weight" [C] (init 1; not with spec.learn_weight
/// false) and "bias" [C] (init 0) unless spec.affine is false; buffers "running_mean" [C] (init 0) and "running_var" [C] (init 1).
template <class T>
class BatchNorm2d : public Module<T> {
public:
    /// Throws naming the value when channels < 1, eps <= 0 or momentum is outside [0, 1].
    explicit BatchNorm2d(int channels, const BatchNormSpec& spec = {});
    Var<T> forward(const Var<T>& x) override;
    std::string type_name() const override { return "BatchNorm2d"; }
    std::string describe() const override;
    const BatchNormSpec& spec() const { return spec_; }

    Parameter<T> weight, bias;  // empty without affine
    Tensor<T> running_mean, running_var;

private:
    BatchNormSpec spec_;
};

extern template class BatchNorm2d<float>;
extern template class BatchNorm2d<double>;
extern template class Conv2d<float>;
extern template class Conv2d<double>;
extern template class Linear<float>;
extern template class Linear<double>;
extern template class ReLU<float>;
extern template class ReLU<double>;
extern template class MaxPool2d<float>;
extern template class MaxPool2d<double>;
extern template class Flatten<float>;
extern template class Flatten<double>;
extern template class GELU<float>;
extern template class GELU<double>;
extern template class Dropout<float>;
extern template class Dropout<double>;
extern template class AvgPool2d<float>;
extern template class AvgPool2d<double>;
extern template class GlobalAvgPool2d<float>;
extern template class GlobalAvgPool2d<double>;
extern template class Scale<float>;
extern template class Scale<double>;

}  // namespace mcnn
