#pragma once
// The CIFAR-10 models, each a graph of the core nodes.
#include <memory>
#include <string>
#include <vector>

#include "mcnn/nn/layers.hpp"

namespace mcnn {

/// A classifier: images B x 3 x 32 x 32 in, logits B x 10 out.
template <class T>
class Model {
public:
    virtual ~Model() = default;
    virtual std::string name() const = 0;
    /// Records the forward graph on the tape of `x` and returns the logits.
    virtual Var<T> forward(const Var<T>& x) = 0;
    /// Every trainable parameter, in a fixed order, named by its path ("fc1.weight").
    virtual std::vector<Parameter<T>*> parameters() = 0;
    /// Picks the conv implementation of every conv layer.
    virtual void set_conv_path(ConvPath path) = 0;
    std::size_t parameter_count();
};

/// The notebook's SimpleCNN (LeNet-style): conv 3->6 k5, relu, pool 2, conv 6->16 k5, relu, pool 2,
/// flatten, fc 400->120, relu, fc 120->84, relu, fc 84->10. 62,006 parameters. `bias` picks the
/// convs' bias (ManualCNN is this graph with untied biases).
template <class T>
class SimpleCNN : public Model<T> {
public:
    explicit SimpleCNN(Rng& rng, ConvPath path = ConvPath::automatic, BiasKind bias = BiasKind::tied);
    std::string name() const override { return "simple"; }
    Var<T> forward(const Var<T>& x) override;
    std::vector<Parameter<T>*> parameters() override;
    void set_conv_path(ConvPath path) override;

    Conv2d<T> conv1, conv2;
    Linear<T> fc1, fc2, fc3;
};

/// The notebook's tuned model ("ChangedSimpleCNN"): conv 3->16 k5 pad 3, relu, pool 2; conv 16->64
/// k5 pad 3, relu, pool 2; conv 64->128 k5 pad 3, relu, pool 2; flatten; fc 3200->256, relu,
/// fc 256->512, relu, fc 512->10. 1,187,978 parameters.
template <class T>
class TunedCNN : public Model<T> {
public:
    explicit TunedCNN(Rng& rng, ConvPath path = ConvPath::automatic);
    std::string name() const override { return "tuned"; }
    Var<T> forward(const Var<T>& x) override;
    std::vector<Parameter<T>*> parameters() override;
    void set_conv_path(ConvPath path) override;

    Conv2d<T> conv1, conv2, conv3;
    Linear<T> fc1, fc2, fc3;
};

/// The notebook's hand-made model ("CustomSimpleCNN"): SimpleCNN whose two conv layers are the
/// reference correlate2d node with an untied bias (6 x 28 x 28 and 16 x 10 x 10, starting at
/// zero), kernels drawn from U(-sqrt(1/(N F F)), sqrt(1/(N F F))). 68,288 parameters (SimpleCNN's
/// 62,006 less 22 tied biases plus 4,704 + 1,600 untied ones).
template <class T>
class ManualCNN : public SimpleCNN<T> {
public:
    explicit ManualCNN(Rng& rng, ConvPath path = ConvPath::correlate2d) : SimpleCNN<T>(rng, path, BiasKind::untied) {}
    std::string name() const override { return "manual"; }
};

/// The conv path a model runs unless told otherwise: correlate2d for "manual", automatic for the others.
ConvPath default_conv_path(const std::string& model);

/// The model called `name` ("simple", "tuned", "manual"), initialised from `rng`; throws listing the known names.
template <class T>
std::unique_ptr<Model<T>> make_model(const std::string& name, Rng& rng, ConvPath path = ConvPath::automatic);
/// The names make_model knows.
std::vector<std::string> model_names();

extern template class Model<float>;
extern template class Model<double>;
extern template class SimpleCNN<float>;
extern template class SimpleCNN<double>;
extern template class TunedCNN<float>;
extern template class TunedCNN<double>;
extern template class ManualCNN<float>;
extern template class ManualCNN<double>;

}  // namespace mcnn
