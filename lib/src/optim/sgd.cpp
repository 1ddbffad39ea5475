#include "mcnn/optim/sgd.hpp"

namespace mcnn {

template <class T>
Sgd<T>::Sgd(std::vector<Parameter<T>*> params, const SgdOptions& options) : params_(std::move(params)), options_(options) {
    if (!(options.lr > 0)) fail("Sgd: learning rate must be > 0, got {}", options.lr);
    if (!(options.momentum >= 0) || !(options.weight_decay >= 0) || !(options.dampening >= 0))  // NaN fails too
        fail("Sgd: momentum ({}), dampening ({}) and weight decay ({}) must be >= 0", options.momentum, options.dampening,
             options.weight_decay);
    if (options.nesterov && (options.momentum <= 0 || options.dampening != 0))
        fail("Sgd: Nesterov momentum needs momentum > 0 and dampening 0");
    buffers_.resize(params_.size());
}

template <class T>
void Sgd<T>::zero_grad() {
    for (Parameter<T>* p : params_) p->zero_grad();
}

template <class T>
void Sgd<T>::step() {
    const T lr = static_cast<T>(options_.lr), mom = static_cast<T>(options_.momentum),
            damp = static_cast<T>(options_.dampening), wd = static_cast<T>(options_.weight_decay);
    for (std::size_t i = 0; i < params_.size(); ++i) {
        Parameter<T>& p = *params_[i];
        auto v = p.value.array();
        Eigen::Array<T, Eigen::Dynamic, 1> g = p.grad.array();
        if (wd != T(0)) g += wd * v;
        if (mom != T(0)) {
            Tensor<T>& buf = buffers_[i];
            if (buf.empty()) {
                buf = Tensor<T>(p.value.shape());
                buf.array() = g;
            } else {
                buf.array() = mom * buf.array() + (T(1) - damp) * g;
            }
            if (options_.nesterov) g += mom * buf.array();
            else g = buf.array();
        }
        v -= lr * g;
    }
}

template class Sgd<float>;
template class Sgd<double>;

}  // namespace mcnn
