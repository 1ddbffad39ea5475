#pragma once
// Lookahead of the weights, as airbench94 uses it (after hlb-CIFAR10): an optimiser wrapped so that
// a slow copy of the parameters and buffers (batch norm's running statistics) trails the fast ones.
// After inner step s (1-based), from step `start_step` on and every `every` steps:
//   the first time:  slow = net
//   afterwards:      rho = base^every * (s / total_steps)^power
//                    slow = rho * slow + (1 - rho) * net,   net = slow
// so the weights move freely early on and are averaged ever more strongly towards the end. The slow
// copies and the step count are state(): checkpoints keep them and a resumed run goes on bit for bit.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "mcnn/nn/module.hpp"
#include "mcnn/optim/optimizer.hpp"

namespace mcnn {

struct LookaheadOptions {
    int every = 5;          // steps between pulls, >= 1
    double base = 0.95;     // rho's base (per step), in (0, 1]
    double power = 3;       // rho's growth with the run's progress, >= 0
    long start_step = 0;    // no pulls before this step (airbench: 3 epochs)
    long total_steps = 1;   // the run's steps (rho reaches base^every at the end), >= 1
};

template <class T>
class Lookahead : public Optimizer<T> {
public:
    /// Wraps `inner` (its parameters and groups); `buffers` also trail (may be empty). Throws
    /// naming the option that is out of range.
    Lookahead(std::unique_ptr<Optimizer<T>> inner, std::vector<Tensor<T>*> buffers, const LookaheadOptions& options);
    void step() override;
    /// The inner optimiser's state, then "lookahead/step" [1], then "lookahead/p<i>" per parameter and
    /// "lookahead/b<i>" per buffer (empty until the first pull).
    std::vector<std::pair<std::string, Tensor<T>*>> state() override;
    std::vector<Shape> state_shapes() const override;
    std::string describe() const override;
    double base_lr() const override { return inner_->base_lr(); }
    /// rho after step s (s >= 1).
    double decay_at(long s) const;

private:
    std::vector<Tensor<T>*> tensors();  // the parameters' values, then the buffers
    std::unique_ptr<Optimizer<T>> inner_;
    std::vector<Tensor<T>*> buffers_;
    LookaheadOptions options_;
    Tensor<T> step_;               // [1]: steps taken (a float counts exactly up to 2^24)
    std::vector<Tensor<T>> slow_;  // one per tensors(), each empty before the first pull
};

extern template class Lookahead<float>;
extern template class Lookahead<double>;

}  // namespace mcnn
