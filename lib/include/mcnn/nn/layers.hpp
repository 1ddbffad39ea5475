#pragma once
// Layers: parameters plus the graph they add. A layer owns its parameters; calling it records
// its nodes on the tape of its input.
#include <string>
#include <vector>

#include "mcnn/nn/init.hpp"
#include "mcnn/ops/correlate2d.hpp"

namespace mcnn {

/// How a conv layer's bias is shaped: one per output channel (nn.Conv2d), or one per channel and
/// output position (the notebook's hand-made layer).
enum class BiasKind { tied, untied };

struct Conv2dSpec {
    int in_channels, out_channels, kernel;
    int padding = 0, stride = 1;
    BiasKind bias = BiasKind::tied;
    int in_size = 0;  // input height = width; needed for an untied bias
    ConvPath path = ConvPath::automatic;
};

/// conv (correlate2d node) + bias. Weight D x N x F x F, bias [D] or [D, Ho, Wo].
template <class T>
class Conv2d {
public:
    /// PyTorch's init; `name` prefixes the parameter names ("conv1" -> "conv1.weight").
    Conv2d(const std::string& name, const Conv2dSpec& spec, Rng& rng);
    Var<T> operator()(const Var<T>& x);
    std::vector<Parameter<T>*> parameters() { return {&weight, &bias}; }
    const Conv2dSpec& spec() const { return spec_; }
    void set_path(ConvPath path) { spec_.path = path; }

    Parameter<T> weight, bias;

private:
    Conv2dSpec spec_;
};

/// y = x W^T + b. Weight O x I, bias [O].
template <class T>
class Linear {
public:
    Linear(const std::string& name, int in_features, int out_features, Rng& rng);
    Var<T> operator()(const Var<T>& x);
    std::vector<Parameter<T>*> parameters() { return {&weight, &bias}; }

    Parameter<T> weight, bias;
};

extern template class Conv2d<float>;
extern template class Conv2d<double>;
extern template class Linear<float>;
extern template class Linear<double>;

}  // namespace mcnn
