#pragma once
// Stochastic gradient descent with momentum and weight decay, PyTorch's update rule:
//   g = grad + weight_decay * p
//   buf = g                                   on the first step
//   buf = momentum * buf + (1 - dampening) g  afterwards
//   g = nesterov ? g + momentum * buf : buf   (when momentum != 0)
//   p = p - lr * g
// With decoupled_weight_decay (as AdamW and airbench): the first line is g = grad, and the decay is
// applied to the value on its own before the update: p = p - lr * weight_decay * p.
// lr here is options.lr x the schedule's factor x the parameter group's scale (optimizer.hpp).
#include <vector>

#include "mcnn/optim/optimizer.hpp"

namespace mcnn {

struct SgdOptions {
    double lr = 0.01;
    double momentum = 0.0;
    double dampening = 0.0;
    double weight_decay = 0.0;
    bool nesterov = false;
    bool decoupled_weight_decay = false;  // p -= lr wd p apart from the gradient (see above)
};

template <class T>
class Sgd : public Optimizer<T> {
public:
    /// Throws when an option is out of range (lr <= 0, a negative or NaN setting, Nesterov without
    /// momentum or with dampening) or a group is bad (see resolve_groups).
    Sgd(std::vector<Parameter<T>*> params, const SgdOptions& options, std::vector<ParamGroup> groups = {});
    void step() override;
    /// "sgd/momentum/<parameter name>" per parameter.
    std::vector<std::pair<std::string, Tensor<T>*>> state() override;
    std::string describe() const override;
    double base_lr() const override { return options_.lr; }

    const SgdOptions& options() const { return options_; }
    SgdOptions& options() { return options_; }
    /// Momentum buffers, one per parameter (empty until the first step); saved in checkpoints.
    std::vector<Tensor<T>>& momentum_buffers() { return buffers_; }

private:
    SgdOptions options_;
    std::vector<Tensor<T>> buffers_;
};

extern template class Sgd<float>;
extern template class Sgd<double>;

}  // namespace mcnn
