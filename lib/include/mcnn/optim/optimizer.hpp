#pragma once
// The optimiser interface fit() trains with: it updates a fixed list of parameters from their
// gradients and names the state it keeps between steps, so checkpoints can save and restore it.
#include <string>
#include <utility>
#include <vector>

#include "mcnn/tape.hpp"

namespace mcnn {

template <class T>
class Optimizer {
public:
    explicit Optimizer(std::vector<Parameter<T>*> params) : params_(std::move(params)) {}
    virtual ~Optimizer() = default;

    /// Sets every parameter's gradient to zero.
    void zero_grad() {
        for (Parameter<T>* p : params_) p->zero_grad();
    }
    /// One update of every parameter from its gradient.
    virtual void step() = 0;
    /// The state kept between steps, one tensor per name (e.g. "sgd/momentum/fc1.weight"), for
    /// checkpoints: a tensor may be empty (not started yet); loading puts the saved values in place.
    virtual std::vector<std::pair<std::string, Tensor<T>*>> state() = 0;
    /// "SGD lr 0.001 momentum 0.9": for titles and logs.
    virtual std::string describe() const = 0;

    const std::vector<Parameter<T>*>& parameters() const { return params_; }

protected:
    std::vector<Parameter<T>*> params_;
};

}  // namespace mcnn
