#include "mcnn/optim/lookahead.hpp"

#include <cmath>

#include <fmt/format.h>

namespace mcnn {

template <class T>
Lookahead<T>::Lookahead(std::unique_ptr<Optimizer<T>> inner, std::vector<Tensor<T>*> buffers, const LookaheadOptions& options)
    : Optimizer<T>(inner ? inner->parameters() : std::vector<Parameter<T>*>{}, inner ? inner->groups() : std::vector<ParamGroup>{},
                   "Lookahead"),
      inner_(std::move(inner)), buffers_(std::move(buffers)), options_(options) {
    if (!inner_) fail("Lookahead: no optimiser to wrap");
    if (options.every < 1) fail("Lookahead: steps between pulls must be >= 1, got {}", options.every);
    if (!(options.base > 0 && options.base <= 1)) fail("Lookahead: base must be in (0, 1], got {}", options.base);
    if (!(options.power >= 0) || !std::isfinite(options.power)) fail("Lookahead: power must be finite and >= 0, got {}", options.power);
    if (options.start_step < 0) fail("Lookahead: the start step must be >= 0, got {}", options.start_step);
    if (options.total_steps < 1) fail("Lookahead: the run's steps must be >= 1, got {}", options.total_steps);
    slow_.resize(this->params_.size() + buffers_.size());  // empty until the first pull
}

template <class T>
std::vector<Tensor<T>*> Lookahead<T>::tensors() {
    std::vector<Tensor<T>*> out;
    for (Parameter<T>* p : this->params_) out.push_back(&p->value);
    out.insert(out.end(), buffers_.begin(), buffers_.end());
    return out;
}

template <class T>
double Lookahead<T>::decay_at(long s) const {
    return std::pow(options_.base, options_.every) * std::pow(static_cast<double>(s) / static_cast<double>(options_.total_steps), options_.power);
}

template <class T>
void Lookahead<T>::step() {
    inner_->set_lr_factor(this->lr_factor_);
    inner_->step();
    if (step_.empty()) step_ = Tensor<T>(Shape{1});
    const long s = static_cast<long>(step_[0]) + 1;
    step_[0] = static_cast<T>(s);
    if (s < options_.start_step || s % options_.every != 0) return;
    const std::vector<Tensor<T>*> net = tensors();
    if (!slow_.empty() && slow_[0].empty()) {  // the first pull: the slow weights start where the fast ones are
        for (std::size_t k = 0; k < net.size(); ++k) slow_[k] = *net[k];
        return;
    }
    const T rho = static_cast<T>(decay_at(s));
    for (std::size_t k = 0; k < net.size(); ++k) {
        T* w = net[k]->data();
        T* v = slow_[k].data();
        for (std::size_t i = 0; i < slow_[k].numel(); ++i) {
            v[i] = rho * v[i] + (T(1) - rho) * w[i];
            w[i] = v[i];
        }
    }
}

template <class T>
std::vector<std::pair<std::string, Tensor<T>*>> Lookahead<T>::state() {
    std::vector<std::pair<std::string, Tensor<T>*>> out = inner_->state();
    out.emplace_back("lookahead/step", &step_);
    for (std::size_t k = 0; k < slow_.size(); ++k)
        out.emplace_back(k < this->params_.size() ? fmt::format("lookahead/p{}", k) : fmt::format("lookahead/b{}", k - this->params_.size()),
                         &slow_[k]);
    return out;
}

template <class T>
std::vector<Shape> Lookahead<T>::state_shapes() const {
    std::vector<Shape> out = inner_->state_shapes();
    out.push_back(Shape{1});
    for (const Parameter<T>* p : this->params_) out.push_back(p->value.shape());
    for (const Tensor<T>* b : buffers_) out.push_back(b->shape());
    return out;
}

template <class T>
std::string Lookahead<T>::describe() const {
    return fmt::format("{}, lookahead every {} steps from step {} (rho {:g}^{} (s/{})^{:g})", inner_->describe(), options_.every,
                       options_.start_step, options_.base, options_.every, options_.total_steps, options_.power);
}

template class Lookahead<float>;
template class Lookahead<double>;

}  // namespace mcnn
