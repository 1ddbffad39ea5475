// The linear node: Y = X W^T (+ b), dX += dY W, dW += dY^T X, db += the column sums of dY.
// float runs our SGEMM with the columns of each product split between the threads (every element
// summed by one thread, in one order: results independent of the thread count); double runs Eigen.
#include "mcnn/ops/linear.hpp"

#include <type_traits>

#include "../kernels/sgemm.hpp"
#include "../parallel.hpp"

namespace mcnn {
namespace {

// Below this many multiply-adds a product stays on one thread.
constexpr double linear_parallel_flops = 1 << 20;

// C (M x N, row stride N) = op(A) * op(B), or += with `accumulate`; float: our SGEMM, the columns
// of C in one piece per thread; double: Eigen (its product of the same maps).
void linear_product(int M, int N, int K, kernels::Operand a, kernels::Operand b, float* c, bool accumulate) {
    const double flops = static_cast<double>(M) * N * K;
    detail::parallel_ranges(N, flops >= linear_parallel_flops ? 32 : std::ptrdiff_t(N) + 1, [&](std::ptrdiff_t j0, std::ptrdiff_t j1) {
        const kernels::Operand bj{b.data + (b.transposed ? j0 * b.stride : j0), b.stride, b.transposed};
        kernels::sgemm(M, static_cast<int>(j1 - j0), K, a, bj, c + j0, N, accumulate);
    });
}

// Y (B x O) = X (B x I) W^T.
template <class T>
void linear_forward_product(const Tensor<T>& x, const Tensor<T>& w, Tensor<T>& y) {
    if constexpr (std::is_same_v<T, float>)
        linear_product(x.dim(0), w.dim(0), x.dim(1), {x.data(), x.dim(1)}, {w.data(), w.dim(1), true}, y.data(), false);
    else
        y.matrix().noalias() = x.matrix() * w.matrix().transpose();
}

// dX (B x I) += dY (B x O) W (O x I).
template <class T>
void linear_input_gradient(const Tensor<T>& gy, const Tensor<T>& w, Tensor<T>& gx) {
    if constexpr (std::is_same_v<T, float>)
        linear_product(gy.dim(0), w.dim(1), gy.dim(1), {gy.data(), gy.dim(1)}, {w.data(), w.dim(1)}, gx.data(), true);
    else
        gx.matrix().noalias() += gy.matrix() * w.matrix();
}

// dW (O x I) += dY^T (O x B) X (B x I).
template <class T>
void linear_weight_gradient(const Tensor<T>& gy, const Tensor<T>& x, Tensor<T>& gw) {
    if constexpr (std::is_same_v<T, float>)
        linear_product(gy.dim(1), x.dim(1), gy.dim(0), {gy.data(), gy.dim(1), true}, {x.data(), x.dim(1)}, gw.data(), true);
    else
        gw.matrix().noalias() += gy.matrix().transpose() * x.matrix();
}

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
    linear_forward_product(x.value(), weight.value(), y);
    y.matrix().rowwise() += bias.value().matrix(1, O).row(0);
    return record<T>("linear", std::move(y), {x, weight, bias},
                     [xv = x.value_ptr(), wv = weight.value_ptr(), O](const Tensor<T>&, const Tensor<T>& gy, auto g) {
                         if (g[0]) linear_input_gradient(gy, *wv, *g[0]);
                         if (g[1]) linear_weight_gradient(gy, *xv, *g[1]);
                         if (g[2]) g[2]->matrix(1, O).row(0) += gy.matrix().colwise().sum();
                     });
}

template <class T>
Var<T> linear(const Var<T>& x, const Var<T>& weight) {
    check_shapes<T>(x.shape(), weight.shape(), nullptr);
    Tensor<T> y(Shape{x.shape()[0], weight.shape()[0]});
    linear_forward_product(x.value(), weight.value(), y);
    return record<T>("linear", std::move(y), {x, weight},
                     [xv = x.value_ptr(), wv = weight.value_ptr()](const Tensor<T>&, const Tensor<T>& gy, auto g) {
                         if (g[0]) linear_input_gradient(gy, *wv, *g[0]);
                         if (g[1]) linear_weight_gradient(gy, *xv, *g[1]);
                     });
}

template Var<float> linear(const Var<float>&, const Var<float>&, const Var<float>&);
template Var<double> linear(const Var<double>&, const Var<double>&, const Var<double>&);
template Var<float> linear(const Var<float>&, const Var<float>&);
template Var<double> linear(const Var<double>&, const Var<double>&);

}  // namespace mcnn
