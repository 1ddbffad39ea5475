#include "mcnn/optim/sgd.hpp"

#include <fmt/format.h>

#include "../parallel.hpp"

namespace mcnn {
namespace {

// One SGD update of elements [begin, end), in one pass: g = grad + wd v; buf = mom buf + (1 - damp) g
// (buf = g on the first step); v -= lr (g + mom buf) with Nesterov, else lr buf. The settings are
// copied into the call, so the compiler keeps them in registers across the stores. With decoupled
// decay, g = grad and v -= lr wd v comes first.
template <class T>
struct Step {
    T lr, mom, damp, wd;
    bool nesterov, decoupled;
    void operator()(T* v, const T* grad, T* buf, std::ptrdiff_t begin, std::ptrdiff_t end, bool first) const {
        const T lr_ = lr, mom_ = mom, damp_ = damp, wd_ = wd;
        const bool nesterov_ = nesterov, decoupled_ = decoupled;
        for (std::ptrdiff_t j = begin; j < end; ++j) {
            T g = grad[j];
            if (wd_ != T(0)) {
                if (decoupled_)
                    v[j] -= lr_ * wd_ * v[j];
                else
                    g += wd_ * v[j];
            }
            if (mom_ != T(0)) {
                buf[j] = first ? g : mom_ * buf[j] + (T(1) - damp_) * g;
                g = nesterov_ ? g + mom_ * buf[j] : buf[j];
            }
            v[j] -= lr_ * g;
        }
    }
};

}  // namespace

template <class T>
Sgd<T>::Sgd(std::vector<Parameter<T>*> params, const SgdOptions& options, std::vector<ParamGroup> groups)
    : Optimizer<T>(std::move(params), std::move(groups), "Sgd"), options_(options) {
    if (!(options.lr > 0)) fail("Sgd: learning rate must be > 0, got {}", options.lr);
    if (!(options.momentum >= 0) || !(options.weight_decay >= 0) || !(options.dampening >= 0))  // NaN fails too
        fail("Sgd: momentum ({}), dampening ({}) and weight decay ({}) must be >= 0", options.momentum, options.dampening,
             options.weight_decay);
    if (options.nesterov && (options.momentum <= 0 || options.dampening != 0))
        fail("Sgd: Nesterov momentum needs momentum > 0 and dampening 0");
    buffers_.resize(this->params_.size());
}

template <class T>
std::vector<std::pair<std::string, Tensor<T>*>> Sgd<T>::state() {
    std::vector<std::pair<std::string, Tensor<T>*>> out;
    for (std::size_t i = 0; i < this->params_.size(); ++i) out.emplace_back("sgd/momentum/" + this->params_[i]->name, &buffers_[i]);
    return out;
}

template <class T>
std::string Sgd<T>::describe() const {
    std::string s = fmt::format("SGD lr {} momentum {}", options_.lr, options_.momentum);
    if (options_.nesterov) s += " (Nesterov)";
    if (options_.weight_decay != 0)
        s += fmt::format(" {}weight decay {}", options_.decoupled_weight_decay ? "decoupled " : "", options_.weight_decay);
    if (options_.dampening != 0) s += fmt::format(" dampening {}", options_.dampening);
    return s + describe_groups(this->groups_);
}

template <class T>
void Sgd<T>::step() {
    const T mom = static_cast<T>(options_.momentum);
    for (std::size_t i = 0; i < this->params_.size(); ++i) {
        const ParamSetting& setting = this->settings_[i];
        const Step<T> update{static_cast<T>(options_.lr * this->lr_factor_ * setting.lr_scale), mom, static_cast<T>(options_.dampening),
                             static_cast<T>(setting.weight_decay.value_or(options_.weight_decay)), options_.nesterov,
                             options_.decoupled_weight_decay};
        Parameter<T>& p = *this->params_[i];
        Tensor<T>& buf = buffers_[i];
        const bool first = mom != T(0) && buf.empty();  // the buffer starts as the first gradient
        if (first) buf = Tensor<T>(p.value.shape());
        T* v = p.value.data();
        const T* grad = p.grad.data();
        T* m = buf.data();
        detail::parallel_ranges(static_cast<std::ptrdiff_t>(p.value.numel()), detail::min_parallel_elements,
                                [=](std::ptrdiff_t begin, std::ptrdiff_t end) { update(v, grad, m, begin, end, first); });
    }
}

template class Sgd<float>;
template class Sgd<double>;

}  // namespace mcnn
