#pragma once
// The built-in CIFAR-10 models, each a Module of the core layers: images B x 3 x 32 x 32 in,
// logits B x 10 out. They are registered by name ("simple", "tuned", "manual"; see registry.hpp).
#include "mcnn/nn/layers.hpp"

namespace mcnn {

/// The notebook's SimpleCNN (LeNet-style): conv 3->6 k5, relu, pool 2, conv 6->16 k5, relu, pool 2,
/// flatten, fc 400->120, relu, fc 120->84, relu, fc 84->10. 62,006 parameters. `bias` picks the
/// convs' bias (ManualCNN is this graph with untied biases).
template <class T>
class SimpleCNN : public Module<T> {
public:
    explicit SimpleCNN(Rng& rng, ConvPath path = ConvPath::automatic, BiasKind bias = BiasKind::tied);
    Var<T> forward(const Var<T>& x) override;
    std::string type_name() const override { return "SimpleCNN"; }

    Conv2d<T> conv1, conv2;
    Linear<T> fc1, fc2, fc3;
};

/// The notebook's tuned model ("ChangedSimpleCNN"): conv 3->16 k5 pad 3, relu, pool 2; conv 16->64
/// k5 pad 3, relu, pool 2; conv 64->128 k5 pad 3, relu, pool 2; flatten; fc 3200->256, relu,
/// fc 256->512, relu, fc 512->10. 1,187,978 parameters.
template <class T>
class TunedCNN : public Module<T> {
public:
    explicit TunedCNN(Rng& rng);
    Var<T> forward(const Var<T>& x) override;
    std::string type_name() const override { return "TunedCNN"; }

    Conv2d<T> conv1, conv2, conv3;
    Linear<T> fc1, fc2, fc3;
};

/// The notebook's hand-made model ("CustomSimpleCNN"): SimpleCNN whose two conv layers run the
/// correlate2d loops with an untied bias (6 x 28 x 28 and 16 x 10 x 10, starting at zero). 68,288
/// parameters (SimpleCNN's 62,006 less 22 tied biases plus 4,704 + 1,600 untied ones).
template <class T>
class ManualCNN : public SimpleCNN<T> {
public:
    explicit ManualCNN(Rng& rng) : SimpleCNN<T>(rng, ConvPath::correlate2d, BiasKind::untied) {}
    std::string type_name() const override { return "ManualCNN"; }
};

extern template class SimpleCNN<float>;
extern template class SimpleCNN<double>;
extern template class TunedCNN<float>;
extern template class TunedCNN<double>;
extern template class ManualCNN<float>;
extern template class ManualCNN<double>;

}  // namespace mcnn
