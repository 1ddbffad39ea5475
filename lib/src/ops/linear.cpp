#include "mcnn/ops/linear.hpp"

namespace mcnn {
namespace {

template <class T>
void check_shapes(const Shape& x, const Shape& w, const Shape* b) {
    if (x.rank() != 2 || w.rank() != 2 || x[1] != w[1])
        fail("linear: input {} (B x I) and weight {} (O x I) do not match", x.str(), w.str());
    if (b && (b->rank() != 1 || (*b)[0] != w[0])) fail("linear: bias {} should be [{}] for weight {}", b->str(), w[0], w.str());
}

}  // namespace

template <class T>
Var<T> linear(const Var<T>& x, const Var<T>& weight, const Var<T>& bias) {
    check_shapes<T>(x.shape(), weight.shape(), &bias.shape());
    const Eigen::Index B = x.shape()[0], O = weight.shape()[0];
    Tensor<T> y(Shape{static_cast<int>(B), static_cast<int>(O)});
    y.matrix().noalias() = x.value().matrix() * weight.value().matrix().transpose();
    y.matrix().rowwise() += bias.value().matrix(1, O).row(0);
    return record<T>("linear", std::move(y), {x, weight, bias},
                     [xv = x.value_ptr(), wv = weight.value_ptr(), O](const Tensor<T>&, const Tensor<T>& gy, auto g) {
                         if (g[0]) g[0]->matrix().noalias() += gy.matrix() * wv->matrix();
                         if (g[1]) g[1]->matrix().noalias() += gy.matrix().transpose() * xv->matrix();
                         if (g[2]) g[2]->matrix(1, O).row(0) += gy.matrix().colwise().sum();
                     });
}

template <class T>
Var<T> linear(const Var<T>& x, const Var<T>& weight) {
    check_shapes<T>(x.shape(), weight.shape(), nullptr);
    Tensor<T> y(Shape{x.shape()[0], weight.shape()[0]});
    y.matrix().noalias() = x.value().matrix() * weight.value().matrix().transpose();
    return record<T>("linear", std::move(y), {x, weight},
                     [xv = x.value_ptr(), wv = weight.value_ptr()](const Tensor<T>&, const Tensor<T>& gy, auto g) {
                         if (g[0]) g[0]->matrix().noalias() += gy.matrix() * wv->matrix();
                         if (g[1]) g[1]->matrix().noalias() += gy.matrix().transpose() * xv->matrix();
                     });
}

template Var<float> linear(const Var<float>&, const Var<float>&, const Var<float>&);
template Var<double> linear(const Var<double>&, const Var<double>&, const Var<double>&);
template Var<float> linear(const Var<float>&, const Var<float>&);
template Var<double> linear(const Var<double>&, const Var<double>&);

}  // namespace mcnn
