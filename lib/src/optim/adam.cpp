#include "mcnn/optim/adam.hpp"

#include <cmath>

#include <fmt/format.h>

#include "../parallel.hpp"

namespace mcnn {
namespace {

// One Adam update of elements [begin, end) (the rule at the top of adam.hpp). The bias corrections
// are worked out once per step in double: step_size = lr / (1 - beta1^t), root_bc2 = sqrt(1 - beta2^t).
template <class T>
struct AdamStep {
    T b1, b2, eps, wd, step_size, root_bc2, lr_wd;  // lr_wd = lr * wd (decoupled decay)
    bool decoupled;
    void operator()(T* p, const T* grad, T* m, T* v, std::ptrdiff_t begin, std::ptrdiff_t end) const {
        const T b1_ = b1, b2_ = b2, eps_ = eps, wd_ = wd, step_size_ = step_size, root_bc2_ = root_bc2, lr_wd_ = lr_wd;
        for (std::ptrdiff_t j = begin; j < end; ++j) {
            T g = grad[j];
            if (wd_ != T(0)) {
                if (decoupled)
                    p[j] -= lr_wd_ * p[j];
                else
                    g += wd_ * p[j];
            }
            m[j] = b1_ * m[j] + (T(1) - b1_) * g;
            v[j] = b2_ * v[j] + (T(1) - b2_) * g * g;
            p[j] -= step_size_ * m[j] / (std::sqrt(v[j]) / root_bc2_ + eps_);
        }
    }
};

}  // namespace

template <class T>
Adam<T>::Adam(std::vector<Parameter<T>*> params, const AdamOptions& o, std::vector<ParamGroup> groups)
    : Optimizer<T>(std::move(params), std::move(groups), o.decoupled_weight_decay ? "AdamW" : "Adam"), options_(o) {
    const char* name = o.decoupled_weight_decay ? "AdamW" : "Adam";
    if (!(o.lr > 0) || !std::isfinite(o.lr)) fail("{}: learning rate must be > 0 and finite, got {}", name, o.lr);
    if (!(o.beta1 >= 0 && o.beta1 < 1) || !(o.beta2 >= 0 && o.beta2 < 1))
        fail("{}: betas must be in [0, 1), got {} and {}", name, o.beta1, o.beta2);
    if (!(o.eps > 0)) fail("{}: eps must be > 0, got {}", name, o.eps);
    if (!(o.weight_decay >= 0) || !std::isfinite(o.weight_decay)) fail("{}: weight decay must be >= 0 and finite, got {}", name, o.weight_decay);
    exp_avg_.resize(this->params_.size());
    exp_avg_sq_.resize(this->params_.size());
}

template <class T>
long Adam<T>::steps() const {
    return step_.empty() ? 0 : static_cast<long>(step_[0]);
}

template <class T>
std::vector<std::pair<std::string, Tensor<T>*>> Adam<T>::state() {
    std::vector<std::pair<std::string, Tensor<T>*>> out{{"adam/step", &step_}};
    for (std::size_t i = 0; i < this->params_.size(); ++i) {
        out.emplace_back("adam/exp_avg/" + this->params_[i]->name, &exp_avg_[i]);
        out.emplace_back("adam/exp_avg_sq/" + this->params_[i]->name, &exp_avg_sq_[i]);
    }
    return out;
}

template <class T>
std::vector<Shape> Adam<T>::state_shapes() const {
    std::vector<Shape> out{Shape{1}};
    for (const Parameter<T>* p : this->params_) {
        out.push_back(p->value.shape());
        out.push_back(p->value.shape());
    }
    return out;
}

template <class T>
std::string Adam<T>::describe() const {
    std::string s = fmt::format("{} lr {} betas {} {} eps {}", options_.decoupled_weight_decay ? "AdamW" : "Adam", options_.lr,
                                options_.beta1, options_.beta2, options_.eps);
    if (options_.weight_decay != 0) s += fmt::format(" weight decay {}", options_.weight_decay);
    return s + describe_groups(this->groups_);
}

template <class T>
void Adam<T>::step() {
    const long t = steps() + 1;
    if (step_.empty()) step_ = Tensor<T>(Shape{1});
    step_[0] = static_cast<T>(t);
    const double bc1 = 1 - std::pow(options_.beta1, static_cast<double>(t));
    const double bc2 = 1 - std::pow(options_.beta2, static_cast<double>(t));
    for (std::size_t i = 0; i < this->params_.size(); ++i) {
        Parameter<T>& p = *this->params_[i];
        const ParamSetting& setting = this->settings_[i];
        const double lr = options_.lr * this->lr_factor_ * setting.lr_scale;
        const double wd = setting.weight_decay.value_or(options_.weight_decay);
        if (exp_avg_[i].empty()) exp_avg_[i] = Tensor<T>(p.value.shape());  // zeros
        if (exp_avg_sq_[i].empty()) exp_avg_sq_[i] = Tensor<T>(p.value.shape());
        const AdamStep<T> update{static_cast<T>(options_.beta1), static_cast<T>(options_.beta2), static_cast<T>(options_.eps),
                                 static_cast<T>(wd), static_cast<T>(lr / bc1), static_cast<T>(std::sqrt(bc2)),
                                 static_cast<T>(lr * wd), options_.decoupled_weight_decay};
        T* v = p.value.data();
        const T* grad = p.grad.data();
        T* m = exp_avg_[i].data();
        T* s = exp_avg_sq_[i].data();
        detail::parallel_ranges(static_cast<std::ptrdiff_t>(p.value.numel()), detail::min_parallel_elements,
                                [=](std::ptrdiff_t begin, std::ptrdiff_t end) { update(v, grad, m, s, begin, end); });
    }
}

template class Adam<float>;
template class Adam<double>;

}  // namespace mcnn
