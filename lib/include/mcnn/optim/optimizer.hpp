#pragma once
// The optimiser interface fit() trains with: it updates a fixed list of parameters from their
// gradients and names the state it keeps between steps, so checkpoints can save and restore it.
//
// The learning rate a parameter gets is  options.lr x lr_factor() x its group's lr_scale:
//   lr_factor   set by fit() before every step from the schedule (1 without one)
//   groups      optional ParamGroups, given to the optimiser's constructor; the first group whose
//               `match` accepts a parameter sets its lr_scale and (when given) its weight decay:
//     Sgd<float> sgd(model.parameters(), {.lr = 0.2, .momentum = 0.9, .weight_decay = 5e-4},
//                    {{.match = one_dimensional(), .lr_scale = 64, .weight_decay = 0}});
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "mcnn/tape.hpp"

namespace mcnn {

/// Tells which parameters a group holds, from a parameter's name ("block1.bn.bias") and shape.
using ParamMatch = std::function<bool(const std::string& name, const Shape& shape)>;

/// Parameters with one dimension: biases, batch-norm weights and biases.
ParamMatch one_dimensional();
/// Parameters whose name matches `pattern`, where '*' stands for any run of characters
/// ("*.bias", "block1.*", "*bn*"); without '*' the whole name must be equal.
ParamMatch name_matches(std::string pattern);

/// Settings for the parameters `match` accepts (see the top of this file).
struct ParamGroup {
    ParamMatch match{};
    double lr_scale = 1.0;                // multiplies the optimiser's learning rate
    std::optional<double> weight_decay{}; // replaces the optimiser's weight decay; none: keep it
    std::string label{};                  // for describe() and messages; default "group <i>"
};

/// What a parameter gets from its group: the lr multiplier and the weight decay override.
struct ParamSetting {
    double lr_scale = 1.0;
    std::optional<double> weight_decay;
};

/// One setting per parameter (first matching group wins; unmatched: defaults). Throws when a group
/// has no `match`, an lr_scale that is not > 0, a negative or NaN weight decay, or matches no parameter.
std::vector<ParamSetting> resolve_groups(const std::vector<std::pair<std::string, Shape>>& params,
                                         const std::vector<ParamGroup>& groups, const std::string& optimizer);
/// " (groups: 1-D parameters x64 lr, weight decay 0)" or "" without groups.
std::string describe_groups(const std::vector<ParamGroup>& groups);

template <class T>
class Optimizer {
public:
    explicit Optimizer(std::vector<Parameter<T>*> params, std::vector<ParamGroup> groups = {}, const std::string& name = "Optimizer")
        : params_(std::move(params)), groups_(std::move(groups)) {
        std::vector<std::pair<std::string, Shape>> named;
        for (const Parameter<T>* p : params_) named.emplace_back(p->name, p->value.shape());
        settings_ = resolve_groups(named, groups_, name);
    }
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
    /// The shape of each state() tensor once started, in state() order (checkpoints are checked
    /// against it). By default one per parameter, of its shape (SGD's momentum buffers).
    virtual std::vector<Shape> state_shapes() const {
        std::vector<Shape> out;
        for (const Parameter<T>* p : params_) out.push_back(p->value.shape());
        return out;
    }
    /// "SGD lr 0.001 momentum 0.9": for titles and logs.
    virtual std::string describe() const = 0;
    /// The base learning rate (the options' lr), before the schedule's factor and the groups' scales.
    virtual double base_lr() const = 0;

    /// The schedule's multiplier of the base learning rate for the next steps (fit sets it before
    /// every step); must be >= 0 and finite.
    void set_lr_factor(double factor) {
        if (!(factor >= 0) || factor > 1e300) fail("{}: learning-rate factor must be finite and >= 0, got {}", describe(), factor);
        lr_factor_ = factor;
    }
    double lr_factor() const { return lr_factor_; }
    /// base_lr() x lr_factor(): the learning rate of parameters outside any group (logged by fit).
    double current_lr() const { return base_lr() * lr_factor_; }

    const std::vector<Parameter<T>*>& parameters() const { return params_; }
    const std::vector<ParamGroup>& groups() const { return groups_; }
    /// Per parameter, in parameters() order: its group's lr scale and weight decay.
    const std::vector<ParamSetting>& settings() const { return settings_; }

protected:
    std::vector<Parameter<T>*> params_;
    std::vector<ParamGroup> groups_;
    std::vector<ParamSetting> settings_;
    double lr_factor_ = 1.0;
};

}  // namespace mcnn
