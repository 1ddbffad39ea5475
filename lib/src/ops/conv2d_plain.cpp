// The plain path of the conv layer: the formulas of mcnn/ops/correlate2d.hpp as nested loops, one
// output element at a time. No SIMD, no threads, no padded copies: the oracle the correlate2d and
// im2col paths are tested against, and the maths to read first.
//
// Shapes: X is B x N x H x W, K is D x N x F x F, Y and dY are B x D x Ho x Wo; padding P, stride S.
// Two helpers read the planes the formulas name, without building them:
//   Xp[b,j](m, n)          = X[b, j, m - P, n - P], or 0 in the padding
//   dilate_S(dY[b,i])(m, n) = dY[b, i, m / S, n / S] when S divides m and n, else 0 (and 0 outside)
//
// Zeros and non-finite values (as PyTorch's conv: the same results on its oneDNN and im2col paths,
// in float and double). The padding zeros of Xp are values: they multiply K in Y and dY in dK, so
// an infinite kernel element meeting the padding gives 0 * inf = NaN in Y, and an infinite dY there
// gives NaN in dK. The zeros of dilate_S(dY), between its elements and outside it, are not values
// but absent terms: dX[b,j,h,w] sums only over the outputs that read X[b,j,h,w], and dK only over
// actual outputs, so an infinite K or X meets no zero there. dilated() says which terms exist.
#include "mcnn/ops/correlate2d.hpp"

namespace mcnn::conv {
namespace {

// A 4-D tensor's elements by index: t(a, b, r, c) (row-major, NCHW; sizes read once).
template <class T>
struct View4 {
    T* data;
    int dim1, rows, cols;  // sizes of dimensions 1, 2, 3
    T& operator()(int a, int b, int r, int c) const {
        return data[((static_cast<std::size_t>(a) * dim1 + b) * rows + r) * cols + c];
    }
};
template <class T>
View4<const T> view(const Tensor<T>& t) {
    return {t.data(), t.dim(1), t.dim(2), t.dim(3)};
}
template <class T>
View4<T> view(Tensor<T>& t) {
    return {t.data(), t.dim(1), t.dim(2), t.dim(3)};
}

// Xp[b,j](m, n): plane (b, j) of x padded by P zeros on every side.
template <class T>
T padded(const View4<const T>& x, int b, int j, int m, int n, int P) {
    const int r = m - P, c = n - P;
    if (r < 0 || r >= x.rows || c < 0 || c >= x.cols) return T(0);
    return x(b, j, r, c);
}

// dilate_S(dY[b,i])(m, n): plane (b, i) of gy with S - 1 zeros between its elements. Returns the
// element of gy found there, or nullptr for one of the zeros (between elements or outside): a term
// with such a zero is left out of the sum, not multiplied (see the top of this file).
template <class T>
const T* dilated(const View4<const T>& gy, int b, int i, int m, int n, int S) {
    if (m < 0 || n < 0 || m % S != 0 || n % S != 0) return nullptr;
    const int r = m / S, c = n / S;
    if (r >= gy.rows || c >= gy.cols) return nullptr;
    return &gy(b, i, r, c);
}

}  // namespace

template <class T>
void forward_plain(const Tensor<T>& x, const Tensor<T>& k, const Conv2dOptions& o, Tensor<T>& y) {
    const Shape ys = output_shape(x.shape(), k.shape(), o);
    y.resize(ys);
    const int B = ys[0], D = ys[1], Ho = ys[2], Wo = ys[3], N = x.dim(1), F = k.dim(2), P = o.padding, S = o.stride;
    const View4<const T> X = view(x), K = view(k);
    const View4<T> Y = view(y);
    // Y[b,i] = sum_j (correlate2d(Xp[b,j], K[i,j], valid))_S, element by element:
    // Y[b,i,r,c] = sum_j sum_{u,v} Xp[b,j](r*S + u, c*S + v) * K[i,j,u,v]
    for (int b = 0; b < B; ++b)              // image
        for (int i = 0; i < D; ++i)          // output channel
            for (int r = 0; r < Ho; ++r)     // output row: the window's top row in Xp is r*S
                for (int c = 0; c < Wo; ++c) {  // output column: the window's left column is c*S
                    T sum = 0;
                    for (int j = 0; j < N; ++j)          // sum_j over input channels
                        for (int u = 0; u < F; ++u)      // sum_{u,v}: the valid correlation of
                            for (int v = 0; v < F; ++v)  // the F x F window with K[i,j]
                                sum += padded(X, b, j, r * S + u, c * S + v, P) * K(i, j, u, v);
                    Y(b, i, r, c) = sum;
                }
}

namespace {

// dX[b,j] += the window from (P, P) of dXp[b,j] = sum_i convolve2d(dilate_S(dY[b,i]), K[i,j], full),
// element by element (convolve2d(A, K, full)(p, q) = sum_{u,v} A(p - u, q - v) * K[u, v]):
// dX[b,j,h,w] += sum_i sum_{u,v} dilate_S(dY[b,i])(h + P - u, w + P - v) * K[i,j,u,v]
template <class T>
void add_input_gradient(const Tensor<T>& k, const Tensor<T>& gy, int P, int S, Tensor<T>& gx) {
    const int B = gx.dim(0), N = gx.dim(1), H = gx.dim(2), W = gx.dim(3), D = k.dim(0), F = k.dim(2);
    const View4<const T> K = view(k), dY = view(gy);
    const View4<T> dX = view(gx);
    for (int b = 0; b < B; ++b)              // image
        for (int j = 0; j < N; ++j)          // input channel
            for (int h = 0; h < H; ++h)      // input row; in dXp it is row h + P
                for (int w = 0; w < W; ++w) {  // input column; in dXp it is column w + P
                    T sum = 0;
                    for (int i = 0; i < D; ++i)          // sum_i over output channels
                        for (int u = 0; u < F; ++u)      // sum_{u,v}: the full convolution
                            for (int v = 0; v < F; ++v)  // at (h + P, w + P), its actual terms
                                if (const T* g = dilated(dY, b, i, h + P - u, w + P - v, S)) sum += *g * K(i, j, u, v);
                    dX(b, j, h, w) += sum;
                }
}

// dK[i,j] += sum_b correlate2d(Xp[b,j], dilate_S(dY[b,i]), valid), its top-left F x F, element by
// element (the dilated gradient is Hd x Wd, Hd = (Ho - 1)*S + 1):
// dK[i,j,u,v] += sum_b sum_{m < Hd, n < Wd} Xp[b,j](u + m, v + n) * dilate_S(dY[b,i])(m, n)
template <class T>
void add_kernel_gradient(const Tensor<T>& x, const Tensor<T>& gy, int P, int S, Tensor<T>& gk) {
    const int B = x.dim(0), D = gk.dim(0), N = gk.dim(1), F = gk.dim(2);
    const int Hd = (gy.dim(2) - 1) * S + 1, Wd = (gy.dim(3) - 1) * S + 1;
    const View4<const T> X = view(x), dY = view(gy);
    const View4<T> dK = view(gk);
    for (int i = 0; i < D; ++i)              // output channel
        for (int j = 0; j < N; ++j)          // input channel
            for (int u = 0; u < F; ++u)      // kernel row
                for (int v = 0; v < F; ++v) {  // kernel column
                    T sum = 0;
                    for (int b = 0; b < B; ++b)           // sum_b over images
                        for (int m = 0; m < Hd; ++m)      // sum_{m,n}: the valid correlation of Xp[b,j]
                            for (int n = 0; n < Wd; ++n)  // with the dilated gradient, at (u, v), its actual terms
                                if (const T* g = dilated(dY, b, i, m, n, S)) sum += padded(X, b, j, u + m, v + n, P) * *g;
                    dK(i, j, u, v) += sum;
                }
}

}  // namespace

template <class T>
void backward_plain(const Tensor<T>& x, const Tensor<T>& k, const Tensor<T>& gy, const Conv2dOptions& o,
                    std::type_identity_t<Tensor<T>>* gx, std::type_identity_t<Tensor<T>>* gk) {
    require_same_shape("conv2d backward (dL/dY vs Y)", gy.shape(), output_shape(x.shape(), k.shape(), o));
    if (gx) require_same_shape("conv2d backward (dL/dX vs X)", gx->shape(), x.shape());
    if (gk) require_same_shape("conv2d backward (dL/dK vs K)", gk->shape(), k.shape());
    if (gx) add_input_gradient(k, gy, o.padding, o.stride, *gx);
    if (gk) add_kernel_gradient(x, gy, o.padding, o.stride, *gk);
}

#define MCNN_INSTANTIATE(T)                                                                                               \
    template void forward_plain(const Tensor<T>&, const Tensor<T>&, const Conv2dOptions&, Tensor<T>&);                   \
    template void backward_plain(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, const Conv2dOptions&, Tensor<T>*, \
                                 Tensor<T>*);
MCNN_INSTANTIATE(float)
MCNN_INSTANTIATE(double)
#undef MCNN_INSTANTIATE  // the unity build puts several files in one translation unit

}  // namespace mcnn::conv
