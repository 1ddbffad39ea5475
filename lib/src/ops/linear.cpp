// The linear node: Y = X W^T (+ b), dX += dY W, dW += dY^T X, db += the column sums of dY.
// float runs our SGEMM with the columns of each product split between the threads (every element
// summed by one thread, in one order: results independent of the thread count), or for batches of
// at most 8 rows loops over W in place (one thread); double runs Eigen.
#include "mcnn/ops/linear.hpp"

#include <cstring>
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

// Batches of at most this many rows (float) take the small-batch loops below: packing W for the
// GEMM, every call, would cost more than their arithmetic.
constexpr int small_batch = 8;

// Y (M x O) = X (M x I) W^T for small M: for each row o of W, M dot products with X's rows, each
// summed in 8 lanes (i mod 8) and then the lanes in order; W is read once, in place.
void small_batch_forward(int M, int O, int I, const float* x, const float* w, float* y) {
    using Lanes = float __attribute__((vector_size(32)));
    for (int o = 0; o < O; ++o) {
        const float* wo = w + static_cast<std::ptrdiff_t>(o) * I;
        for (int m = 0; m < M; ++m) {
            const float* xm = x + static_cast<std::ptrdiff_t>(m) * I;
            Lanes acc = {};
            int i = 0;
            for (; i + 8 <= I; i += 8) {
                Lanes a, b;
                std::memcpy(&a, xm + i, sizeof a);
                std::memcpy(&b, wo + i, sizeof b);
                acc += a * b;
            }
            float sum = 0;
            for (int l = 0; l < 8; ++l) sum += acc[l];
            for (; i < I; ++i) sum += xm[i] * wo[i];
            y[static_cast<std::ptrdiff_t>(m) * O + o] = sum;
        }
    }
}

// dX (M x I) += dY (M x O) W (O x I) for small M: dX's row m gains dY[m, o] W's row o, o = 0, 1, ...
void small_batch_input_gradient(int M, int O, int I, const float* gy, const float* w, float* gx) {
    for (int m = 0; m < M; ++m) {
        float* dx = gx + static_cast<std::ptrdiff_t>(m) * I;
        for (int o = 0; o < O; ++o) {
            const float g = gy[static_cast<std::ptrdiff_t>(m) * O + o];
            const float* wo = w + static_cast<std::ptrdiff_t>(o) * I;
            for (int i = 0; i < I; ++i) dx[i] += g * wo[i];
        }
    }
}

// dW (O x I) += dY^T (O x M) X (M x I) for small M: dW's row o gains dY[m, o] X's row m, m = 0, 1, ...
void small_batch_weight_gradient(int M, int O, int I, const float* gy, const float* x, float* gw) {
    for (int o = 0; o < O; ++o) {
        float* dw = gw + static_cast<std::ptrdiff_t>(o) * I;
        for (int m = 0; m < M; ++m) {
            const float g = gy[static_cast<std::ptrdiff_t>(m) * O + o];
            const float* xm = x + static_cast<std::ptrdiff_t>(m) * I;
            for (int i = 0; i < I; ++i) dw[i] += g * xm[i];
        }
    }
}

// Y (B x O) = X (B x I) W^T.
template <class T>
void linear_forward_product(const Tensor<T>& x, const Tensor<T>& w, Tensor<T>& y) {
    if constexpr (std::is_same_v<T, float>) {
        if (x.dim(0) <= small_batch)
            small_batch_forward(x.dim(0), w.dim(0), x.dim(1), x.data(), w.data(), y.data());
        else
            linear_product(x.dim(0), w.dim(0), x.dim(1), {x.data(), x.dim(1)}, {w.data(), w.dim(1), true}, y.data(), false);
    } else {
        y.matrix().noalias() = x.matrix() * w.matrix().transpose();
    }
}

// dX (B x I) += dY (B x O) W (O x I).
template <class T>
void linear_input_gradient(const Tensor<T>& gy, const Tensor<T>& w, Tensor<T>& gx) {
    if constexpr (std::is_same_v<T, float>) {
        if (gy.dim(0) <= small_batch)
            small_batch_input_gradient(gy.dim(0), gy.dim(1), w.dim(1), gy.data(), w.data(), gx.data());
        else
            linear_product(gy.dim(0), w.dim(1), gy.dim(1), {gy.data(), gy.dim(1)}, {w.data(), w.dim(1)}, gx.data(), true);
    } else {
        gx.matrix().noalias() += gy.matrix() * w.matrix();
    }
}

// dW (O x I) += dY^T (O x B) X (B x I).
template <class T>
void linear_weight_gradient(const Tensor<T>& gy, const Tensor<T>& x, Tensor<T>& gw) {
    if constexpr (std::is_same_v<T, float>) {
        if (gy.dim(0) <= small_batch)
            small_batch_weight_gradient(gy.dim(0), gy.dim(1), x.dim(1), gy.data(), x.data(), gw.data());
        else
            linear_product(gy.dim(1), x.dim(1), gy.dim(0), {gy.data(), gy.dim(1), true}, {x.data(), x.dim(1)}, gw.data(), true);
    } else {
        gw.matrix().noalias() += gy.matrix().transpose() * x.matrix();
    }
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
    Tensor<T> y;
    y.resize(Shape{static_cast<int>(B), static_cast<int>(O)});  // every element written by the product
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
    Tensor<T> y;
    y.resize(Shape{x.shape()[0], weight.shape()[0]});  // every element written by the product
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
