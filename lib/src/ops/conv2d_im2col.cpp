// The im2col path of the conv layer: im2col + GEMM (Eigen), the same sums as the plain loops
// (conv2d_plain.cpp), one image at a time.
//
// For image b, cols_b is (N*F*F) x (Ho*Wo): row (c, u, v), column (oy, ox) holds
// Xp[b, c, oy*S + u, ox*S + v]. Then
//   Y[b]   (D x Ho*Wo)   = K (D x N*F*F) * cols_b          (written straight into Y: NCHW is D x Ho*Wo per image)
//   dK    += dY[b] * cols_b^T
//   dcols  = K^T * dY[b], and col2im scatters dcols back onto dX[b].
// Working image by image keeps cols_b in the cache (a whole batch's column matrix is megabytes),
// lets the backward rebuild cols_b instead of keeping it, and gives threads whole images to work
// on: one parallel region per call, images split between threads, each thread with its own
// column scratch and (for dK) its own partial sum, added up in thread order at the end.
#include <omp.h>

#include <algorithm>

#include "mcnn/ops/correlate2d.hpp"

namespace mcnn::conv {
namespace {

// Below this many multiply-adds a parallel region costs more than it saves.
constexpr double parallel_min_flops = 2e5;

struct Dims {
    int B, N, H, W, D, F, P, S, Ho, Wo;
    Eigen::Index rows() const { return static_cast<Eigen::Index>(N) * F * F; }
    Eigen::Index plane() const { return static_cast<Eigen::Index>(Ho) * Wo; }
    std::ptrdiff_t x_image() const { return static_cast<std::ptrdiff_t>(N) * H * W; }
    std::ptrdiff_t y_image() const { return static_cast<std::ptrdiff_t>(D) * Ho * Wo; }
    double flops() const { return static_cast<double>(B) * D * static_cast<double>(rows()) * static_cast<double>(plane()); }
};

Dims dims_of(const Shape& x, const Shape& k, const Conv2dOptions& o) {
    const Shape y = output_shape(x, k, o);
    return {x[0], x[1], x[2], x[3], k[0], k[2], o.padding, o.stride, y[2], y[3]};
}

// The outputs o in [0, count) whose input position o*S + offset falls inside [0, size).
struct Span {
    int lo, hi;
};
Span inside(int count, int offset, int size, int S) {
    int lo = 0, hi = count;
    while (lo < hi && lo * S + offset < 0) ++lo;
    while (hi > lo && (hi - 1) * S + offset >= size) --hi;
    return {lo, hi};
}

// Threads for a call: all allowed ones when there are several images and enough work, else one.
int threads_for(const Dims& d) {
    if (d.B < 2 || d.flops() < parallel_min_flops || omp_in_parallel()) return 1;
    return std::min(omp_get_max_threads(), d.B);
}

// A per-thread scratch matrix whose storage only grows: no allocation in the steady state.
template <class T>
MatrixMap<T> scratch(int which, Eigen::Index rows, Eigen::Index cols) {
    thread_local std::vector<T, Eigen::aligned_allocator<T>> buffers[2];
    auto& buffer = buffers[which];
    if (buffer.size() < static_cast<std::size_t>(rows * cols)) buffer.resize(static_cast<std::size_t>(rows * cols));
    return MatrixMap<T>(buffer.data(), rows, cols);
}

// cols_b from one image x (N x H x W).
template <class T>
void im2col(const T* x, const Dims& d, T* cols) {
    for (int c = 0; c < d.N; ++c) {
        const T* plane = x + static_cast<std::ptrdiff_t>(c) * d.H * d.W;
        for (int u = 0; u < d.F; ++u) {
            const Span ys = inside(d.Ho, u - d.P, d.H, d.S);
            for (int v = 0; v < d.F; ++v) {
                const Span xs = inside(d.Wo, v - d.P, d.W, d.S);
                T* dst = cols + ((c * d.F + u) * d.F + v) * d.plane();
                std::fill(dst, dst + static_cast<std::ptrdiff_t>(ys.lo) * d.Wo, T(0));
                for (int oy = ys.lo; oy < ys.hi; ++oy) {
                    T* row = dst + static_cast<std::ptrdiff_t>(oy) * d.Wo;
                    const T* src = plane + static_cast<std::ptrdiff_t>(oy * d.S + u - d.P) * d.W + (v - d.P);
                    std::fill(row, row + xs.lo, T(0));
                    if (d.S == 1)
                        std::copy(src + xs.lo, src + xs.hi, row + xs.lo);
                    else
                        for (int ox = xs.lo; ox < xs.hi; ++ox) row[ox] = src[ox * d.S];
                    std::fill(row + xs.hi, row + d.Wo, T(0));
                }
                std::fill(dst + static_cast<std::ptrdiff_t>(ys.hi) * d.Wo, dst + d.plane(), T(0));
            }
        }
    }
}

// dX[b] += the entries of dcols_b that im2col copied from it.
template <class T>
void col2im_add(const T* dcols, const Dims& d, T* gx) {
    for (int c = 0; c < d.N; ++c) {
        T* plane = gx + static_cast<std::ptrdiff_t>(c) * d.H * d.W;
        for (int u = 0; u < d.F; ++u) {
            const Span ys = inside(d.Ho, u - d.P, d.H, d.S);
            for (int v = 0; v < d.F; ++v) {
                const Span xs = inside(d.Wo, v - d.P, d.W, d.S);
                const T* src = dcols + ((c * d.F + u) * d.F + v) * d.plane();
                for (int oy = ys.lo; oy < ys.hi; ++oy) {
                    const T* row = src + static_cast<std::ptrdiff_t>(oy) * d.Wo;
                    T* dst = plane + static_cast<std::ptrdiff_t>(oy * d.S + u - d.P) * d.W + (v - d.P);
                    if (d.S == 1)
                        for (int ox = xs.lo; ox < xs.hi; ++ox) dst[ox] += row[ox];
                    else
                        for (int ox = xs.lo; ox < xs.hi; ++ox) dst[ox * d.S] += row[ox];
                }
            }
        }
    }
}

}  // namespace

template <class T>
void forward_im2col(const Tensor<T>& x, const Tensor<T>& k, const Conv2dOptions& o, Tensor<T>& y) {
    const Dims d = dims_of(x.shape(), k.shape(), o);
    y.resize(Shape{d.B, d.D, d.Ho, d.Wo});
    const ConstMatrixMap<T> km = k.matrix(d.D, d.rows());
#pragma omp parallel num_threads(threads_for(d))
    {
        MatrixMap<T> cols = scratch<T>(0, d.rows(), d.plane());
#pragma omp for schedule(static)
        for (int b = 0; b < d.B; ++b) {
            im2col(x.data() + b * d.x_image(), d, cols.data());
            MatrixMap<T>(y.data() + b * d.y_image(), d.D, d.plane()).noalias() = km * cols;
        }
    }
}

template <class T>
void backward_im2col(const Tensor<T>& x, const Tensor<T>& k, const Tensor<T>& gy, const Conv2dOptions& o,
                     std::type_identity_t<Tensor<T>>* gx, std::type_identity_t<Tensor<T>>* gk) {
    const Dims d = dims_of(x.shape(), k.shape(), o);
    require_same_shape("conv2d backward (dL/dY vs Y)", gy.shape(), Shape{d.B, d.D, d.Ho, d.Wo});
    if (gk) require_same_shape("conv2d backward (dL/dK vs K)", gk->shape(), k.shape());
    if (gx) require_same_shape("conv2d backward (dL/dX vs X)", gx->shape(), x.shape());
    if (!gx && !gk) return;
    const ConstMatrixMap<T> km = k.matrix(d.D, d.rows());
    const int threads = threads_for(d);
    // dK: thread 0 adds straight into gk; the others into partial sums added at the end, in order.
    std::vector<Matrix<T>> partial(gk ? static_cast<std::size_t>(threads - 1) : 0, Matrix<T>::Zero(d.D, d.rows()));
#pragma omp parallel num_threads(threads)
    {
        const int t = omp_get_thread_num();
        MatrixMap<T> cols = scratch<T>(0, d.rows(), d.plane());
        MatrixMap<T> dcols = scratch<T>(1, gx ? d.rows() : 0, gx ? d.plane() : 0);
#pragma omp for schedule(static)
        for (int b = 0; b < d.B; ++b) {
            const ConstMatrixMap<T> gyb(gy.data() + b * d.y_image(), d.D, d.plane());
            if (gk) {
                im2col(x.data() + b * d.x_image(), d, cols.data());
                if (t == 0) gk->matrix(d.D, d.rows()).noalias() += gyb * cols.transpose();
                else partial[static_cast<std::size_t>(t - 1)].noalias() += gyb * cols.transpose();
            }
            if (gx) {
                dcols.noalias() = km.transpose() * gyb;
                col2im_add(dcols.data(), d, gx->data() + b * d.x_image());
            }
        }
    }
    for (const Matrix<T>& p : partial) gk->matrix(d.D, d.rows()) += p;
}

#define MCNN_INSTANTIATE(T)                                                                                               \
    template void forward_im2col(const Tensor<T>&, const Tensor<T>&, const Conv2dOptions&, Tensor<T>&);                   \
    template void backward_im2col(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, const Conv2dOptions&, Tensor<T>*, \
                                  Tensor<T>*);
MCNN_INSTANTIATE(float)
MCNN_INSTANTIATE(double)
#undef MCNN_INSTANTIATE  // the unity build puts several files in one translation unit

}  // namespace mcnn::conv
