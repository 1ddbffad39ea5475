#pragma once
// What the GEMM-based conv paths (conv2d_im2col.cpp, conv2d_winograd.cpp) share: a GEMM on row-major
// operands, float on the project's own SGEMM and double on Eigen (the readable form), and
// per-thread scratch buffers. (Only one conv call runs per thread at a time, so the two paths may
// share the buffers.)
#include <cstddef>
#include <vector>

#include <Eigen/Core>

#include "../kernels/sgemm.hpp"
#include "mcnn/tensor.hpp"

namespace mcnn::conv::detail {

// A per-thread scratch buffer of at least n elements whose storage only grows: no allocation in
// the steady state.
template <class T>
T* scratch(int which, std::ptrdiff_t n) {
    thread_local std::vector<T, Eigen::aligned_allocator<T>> buffers[4];
    auto& buffer = buffers[which];
    if (buffer.size() < static_cast<std::size_t>(n)) buffer.resize(static_cast<std::size_t>(n));
    return buffer.data();
}

// C (M x N, row stride ldc) = op(A) (M x K) * op(B) (K x N), or += with `accumulate`; op(X) is X or,
// with the flag, the transpose of the row-major X stored with row stride ldx. float: our SGEMM;
// double: Eigen.
inline void gemm(int M, int N, int K, const float* a, std::ptrdiff_t lda, bool ta, const float* b, std::ptrdiff_t ldb, bool tb,
                 float* c, std::ptrdiff_t ldc, bool accumulate) {
    kernels::sgemm(M, N, K, {a, lda, ta}, {b, ldb, tb}, c, ldc, accumulate);
}
inline void gemm(int M, int N, int K, const double* a, std::ptrdiff_t lda, bool ta, const double* b, std::ptrdiff_t ldb, bool tb,
                 double* c, std::ptrdiff_t ldc, bool accumulate) {
    using Strided = Eigen::Map<const Matrix<double>, Eigen::Unaligned, Eigen::OuterStride<>>;
    const Strided am(a, ta ? K : M, ta ? M : K, Eigen::OuterStride<>(lda)), bm(b, tb ? N : K, tb ? K : N, Eigen::OuterStride<>(ldb));
    Eigen::Map<Matrix<double>, Eigen::Unaligned, Eigen::OuterStride<>> cm(c, M, N, Eigen::OuterStride<>(ldc));
    if (!accumulate) cm.setZero();
    if (ta && tb) cm.noalias() += am.transpose() * bm.transpose();
    else if (ta) cm.noalias() += am.transpose() * bm;
    else if (tb) cm.noalias() += am * bm.transpose();
    else cm.noalias() += am * bm;
}

}  // namespace mcnn::conv::detail
