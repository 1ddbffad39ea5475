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
/// flatten, fc 400->120, relu, fc 120->84, relu, fc 84->10. 62,006 parameters.
template <class T>
class SimpleCNN : public Model<T> {
public:
    explicit SimpleCNN(Rng& rng, ConvPath path = ConvPath::fast);
    std::string name() const override { return "simple"; }
    Var<T> forward(const Var<T>& x) override;
    std::vector<Parameter<T>*> parameters() override;
    void set_conv_path(ConvPath path) override;

    Conv2d<T> conv1, conv2;
    Linear<T> fc1, fc2, fc3;
};

/// The model called `name` ("simple"), initialised from `rng`; throws listing the known names.
template <class T>
std::unique_ptr<Model<T>> make_model(const std::string& name, Rng& rng, ConvPath path = ConvPath::fast);
/// The names make_model knows.
std::vector<std::string> model_names();

extern template class Model<float>;
extern template class Model<double>;
extern template class SimpleCNN<float>;
extern template class SimpleCNN<double>;

}  // namespace mcnn
