// The fast path of the conv layer: im2col + GEMM (Eigen), the same sums as the reference loops.
//
// cols is (N*F*F) x (B*Ho*Wo): row (c, u, v), column (b, oy, ox) holds Xp[b, c, oy*S + u, ox*S + v].
// Then Y (as D x B*Ho*Wo) = K (as D x N*F*F) * cols, dK += dY * cols^T, dcols = K^T * dY and
// col2im scatters dcols back onto dX.
#include "mcnn/ops/correlate2d.hpp"

namespace mcnn::conv {
namespace {

// Below this many elements a parallel region costs more than it saves (and on a busy machine a
// barrier can wait a whole scheduler slice).
constexpr Eigen::Index parallel_threshold = 1 << 15;

struct Dims {
    int B, N, H, W, D, F, P, S, Ho, Wo;
    Eigen::Index rows() const { return static_cast<Eigen::Index>(N) * F * F; }
    Eigen::Index cols() const { return static_cast<Eigen::Index>(B) * Ho * Wo; }
    Eigen::Index plane() const { return static_cast<Eigen::Index>(Ho) * Wo; }
};

Dims dims_of(const Shape& x, const Shape& k, const Conv2dOptions& o) {
    const Shape y = output_shape(x, k, o);
    return {x[0], x[1], x[2], x[3], k[0], k[2], o.padding, o.stride, y[2], y[3]};
}

template <class T>
void im2col(const T* x, const Dims& d, T* cols) {
#pragma omp parallel for schedule(static) if (d.rows() * d.cols() >= parallel_threshold)
    for (int row = 0; row < d.N * d.F * d.F; ++row) {
        const int c = row / (d.F * d.F), u = (row / d.F) % d.F, v = row % d.F;
        T* dst = cols + row * d.cols();
        for (int b = 0; b < d.B; ++b) {
            const T* plane = x + (static_cast<std::ptrdiff_t>(b) * d.N + c) * d.H * d.W;
            for (int oy = 0; oy < d.Ho; ++oy, dst += d.Wo) {
                const int iy = oy * d.S + u - d.P;
                if (iy < 0 || iy >= d.H) {
                    std::fill(dst, dst + d.Wo, T(0));
                    continue;
                }
                const T* src = plane + static_cast<std::ptrdiff_t>(iy) * d.W;
                for (int ox = 0; ox < d.Wo; ++ox) {
                    const int ix = ox * d.S + v - d.P;
                    dst[ox] = (ix >= 0 && ix < d.W) ? src[ix] : T(0);
                }
            }
        }
    }
}

// dX[b, c] += the entries of dcols that im2col copied from it (one plane per thread).
template <class T>
void col2im_add(const T* dcols, const Dims& d, T* gx) {
#pragma omp parallel for schedule(static) if (d.rows() * d.cols() >= parallel_threshold)
    for (int bc = 0; bc < d.B * d.N; ++bc) {
        const int b = bc / d.N, c = bc % d.N;
        T* plane = gx + static_cast<std::ptrdiff_t>(bc) * d.H * d.W;
        for (int u = 0; u < d.F; ++u)
            for (int v = 0; v < d.F; ++v) {
                const T* src = dcols + ((c * d.F + u) * d.F + v) * d.cols() + static_cast<std::ptrdiff_t>(b) * d.plane();
                for (int oy = 0; oy < d.Ho; ++oy, src += d.Wo) {
                    const int iy = oy * d.S + u - d.P;
                    if (iy < 0 || iy >= d.H) continue;
                    T* dst = plane + static_cast<std::ptrdiff_t>(iy) * d.W;
                    for (int ox = 0; ox < d.Wo; ++ox) {
                        const int ix = ox * d.S + v - d.P;
                        if (ix >= 0 && ix < d.W) dst[ix] += src[ox];
                    }
                }
            }
    }
}

}  // namespace

template <class T>
void forward_fast(const Tensor<T>& x, const Tensor<T>& k, const Conv2dOptions& o, Tensor<T>& y, Tensor<T>& cols) {
    const Dims d = dims_of(x.shape(), k.shape(), o);
    cols.resize(Shape{static_cast<int>(d.rows()), static_cast<int>(d.cols())});
    im2col(x.data(), d, cols.data());
    const Matrix<T> yt = k.matrix(d.D, d.rows()) * cols.matrix(d.rows(), d.cols());  // D x (B*Ho*Wo)
    y.resize(Shape{d.B, d.D, d.Ho, d.Wo});
    MatrixMap<T> ym(y.data(), static_cast<Eigen::Index>(d.B) * d.D, d.plane());  // rows (b, i)
    for (int b = 0; b < d.B; ++b) ym.middleRows(static_cast<Eigen::Index>(b) * d.D, d.D) = yt.middleCols(b * d.plane(), d.plane());
}

template <class T>
void backward_fast(const Tensor<T>& cols, const Shape& x_shape, const Tensor<T>& k, const Tensor<T>& gy, const Conv2dOptions& o,
                   std::type_identity_t<Tensor<T>>* gx, std::type_identity_t<Tensor<T>>* gk) {
    const Dims d = dims_of(x_shape, k.shape(), o);
    require_same_shape("conv2d backward (dL/dY vs Y)", gy.shape(), Shape{d.B, d.D, d.Ho, d.Wo});
    if (cols.rank() != 2 || cols.dim(0) != d.rows() || cols.dim(1) != d.cols())
        fail("conv2d backward: saved columns {} do not belong to input {} and kernels {}", cols.shape().str(), x_shape.str(),
             k.shape().str());
    Matrix<T> gyt(d.D, d.cols());  // dY as D x (B*Ho*Wo)
    ConstMatrixMap<T> gym(gy.data(), static_cast<Eigen::Index>(d.B) * d.D, d.plane());
    for (int b = 0; b < d.B; ++b) gyt.middleCols(b * d.plane(), d.plane()) = gym.middleRows(static_cast<Eigen::Index>(b) * d.D, d.D);
    if (gk) {
        require_same_shape("conv2d backward (dL/dK vs K)", gk->shape(), k.shape());
        gk->matrix(d.D, d.rows()).noalias() += gyt * cols.matrix(d.rows(), d.cols()).transpose();
    }
    if (gx) {
        require_same_shape("conv2d backward (dL/dX vs X)", gx->shape(), x_shape);
        const Matrix<T> dcols = k.matrix(d.D, d.rows()).transpose() * gyt;  // (N*F*F) x (B*Ho*Wo)
        col2im_add(dcols.data(), d, gx->data());
    }
}

#define MCNN_INSTANTIATE(T)                                                                                           \
    template void forward_fast(const Tensor<T>&, const Tensor<T>&, const Conv2dOptions&, Tensor<T>&, Tensor<T>&);     \
    template void backward_fast(const Tensor<T>&, const Shape&, const Tensor<T>&, const Tensor<T>&, const Conv2dOptions&, Tensor<T>*, \
                                Tensor<T>*);
MCNN_INSTANTIATE(float)
MCNN_INSTANTIATE(double)

}  // namespace mcnn::conv
