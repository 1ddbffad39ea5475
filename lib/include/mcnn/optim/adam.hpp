#pragma once
// Adam and AdamW, PyTorch's update rules (torch.optim.Adam / AdamW, amsgrad off). At step t (1, 2, ...):
//   AdamW (decoupled_weight_decay):  p = p - lr * weight_decay * p        (before the update)
//   Adam:                            g = grad + weight_decay * p
//   m = beta1 m + (1 - beta1) g              (m, v start at 0)
//   v = beta2 v + (1 - beta2) g^2
//   p = p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)   (eps outside the sqrt)
// lr here is options.lr x the schedule's factor x the parameter group's scale (optimizer.hpp).
#include <vector>

#include "mcnn/optim/optimizer.hpp"

namespace mcnn {

struct AdamOptions {
    double lr = 1e-3;
    double beta1 = 0.9;
    double beta2 = 0.999;
    double eps = 1e-8;
    double weight_decay = 0.0;
    bool decoupled_weight_decay = false;  // true: AdamW
};

/// AdamW's options with PyTorch's defaults (weight decay 0.01).
inline AdamOptions adamw_options(double lr = 1e-3, double weight_decay = 1e-2) {
    return {.lr = lr, .weight_decay = weight_decay, .decoupled_weight_decay = true};
}

template <class T>
class Adam : public Optimizer<T> {
public:
    /// Throws when lr <= 0, a beta is outside [0, 1), eps <= 0, the weight decay is negative (any
    /// NaN fails too), or a group is bad (see resolve_groups).
    Adam(std::vector<Parameter<T>*> params, const AdamOptions& options, std::vector<ParamGroup> groups = {});
    void step() override;
    /// "adam/step" (one element: the steps taken, empty before the first), then per parameter
    /// "adam/exp_avg/<name>" (m) and "adam/exp_avg_sq/<name>" (v), empty before the first step.
    std::vector<std::pair<std::string, Tensor<T>*>> state() override;
    /// [1], then each parameter's shape twice.
    std::vector<Shape> state_shapes() const override;
    /// "Adam lr 0.001 betas 0.9 0.999 eps 1e-08" or "AdamW ... weight decay 0.01".
    std::string describe() const override;
    double base_lr() const override { return options_.lr; }

    const AdamOptions& options() const { return options_; }
    /// Steps taken so far (t of the last update).
    long steps() const;

private:
    AdamOptions options_;
    Tensor<T> step_;  // [1]: the step count, stored as T so checkpoints hold it (exact to 2^24 in float)
    std::vector<Tensor<T>> exp_avg_, exp_avg_sq_;
};

extern template class Adam<float>;
extern template class Adam<double>;

}  // namespace mcnn
