#pragma once
// The correlate2d family: 2-D cross-correlation and convolution as scipy.signal defines them, and
// the batched multi-channel conv layer built from them.
//
//   correlate2d(X, K)[r, c] = sum_{u,v} X[r + u, c + v] * K[u, v]      (valid; X zero outside)
//   convolve2d(X, K)        = correlate2d(X, rot180(K))
//
// Conv layer, shapes: X is B x N x H x W, K is D x N x F x F (PyTorch's layout: output channel,
// input channel, rows, cols), padding P (zeros), stride S, Y is B x D x Ho x Wo with
// Ho = (H + 2P - F) / S + 1. Writing Xp for X padded by P and (.)_S for taking every S-th element:
//   forward      Y[b,i]  = sum_j ( correlate2d(Xp[b,j], K[i,j], valid) )_S
//   backward     dXp[b,j] = sum_i convolve2d(dilate_S(dY[b,i]), K[i,j], full)   (then drop the padding)
//                dK[i,j]  = sum_b correlate2d(Xp[b,j], dilate_S(dY[b,i]), valid) (its top-left F x F)
// where dilate_S puts S-1 zeros between elements. The reference path computes exactly these loops;
// the fast path lowers the same sums to matrix products (im2col + GEMM). Tests prove them equal.
#include <type_traits>

#include "mcnn/tape.hpp"

namespace mcnn {

/// Output size as in scipy: valid (H-F+1), full (H+F-1), same (H, centred on full).
enum class CorrelateMode { valid, full, same };

/// 2-D cross-correlation of a rank-2 `input` with a rank-2 `kernel`, like scipy.signal.correlate2d
/// (zero fill). Valid mode needs the kernel no larger than the input in both dimensions.
template <class T>
Tensor<T> correlate2d(const Tensor<T>& input, const Tensor<T>& kernel, CorrelateMode mode = CorrelateMode::valid);
/// 2-D convolution, like scipy.signal.convolve2d (zero fill).
template <class T>
Tensor<T> convolve2d(const Tensor<T>& input, const Tensor<T>& kernel, CorrelateMode mode = CorrelateMode::valid);

/// Which implementation of the conv layer to run. Both compute the same sums.
///   reference: loops of 2-D correlate2d over (image, channel) planes (vectorised, but the maths as written).
///   fast: im2col + GEMM, except where the reference loops are faster: layers with fewer than
///         direct_max_out_channels output channels at stride 1 (SimpleCNN's conv1), whose GEMM has
///         too few rows to fill its register blocks.
enum class ConvPath { reference, fast };

struct Conv2dOptions {
    int padding = 0;  // zeros added on every side
    int stride = 1;
    ConvPath path = ConvPath::fast;
};

namespace conv {

/// Below this many output channels (at stride 1) the fast path runs the reference loops (see ConvPath).
constexpr int direct_max_out_channels = 8;
/// Whether the fast path runs a conv of kernels `k` with `options` on the reference loops.
inline bool fast_path_uses_loops(const Shape& k, const Conv2dOptions& options) {
    return k.rank() == 4 && k[0] < direct_max_out_channels && options.stride == 1;
}

/// Checks the shapes of X (B x N x H x W) and K (D x N x F x F) and returns Y's shape.
Shape output_shape(const Shape& x, const Shape& k, const Conv2dOptions& options);

/// Y = conv(X, K) by loops of 2-D correlate2d (the maths as written above).
template <class T>
void forward_reference(const Tensor<T>& x, const Tensor<T>& k, const Conv2dOptions& options, Tensor<T>& y);
/// Adds dL/dX into *gx and dL/dK into *gk (either may be nullptr), by loops of 2-D convolve2d and
/// correlate2d.
template <class T>
void backward_reference(const Tensor<T>& x, const Tensor<T>& k, const Tensor<T>& gy, const Conv2dOptions& options,
                        std::type_identity_t<Tensor<T>>* gx, std::type_identity_t<Tensor<T>>* gk);

/// Y = conv(X, K) by im2col + GEMM, image by image (threads share the images).
template <class T>
void forward_fast(const Tensor<T>& x, const Tensor<T>& k, const Conv2dOptions& options, Tensor<T>& y);
/// Adds dL/dX into *gx and dL/dK into *gk (either may be nullptr), by im2col + GEMM image by image
/// (the column matrix is rebuilt from x rather than kept from the forward pass).
template <class T>
void backward_fast(const Tensor<T>& x, const Tensor<T>& k, const Tensor<T>& gy, const Conv2dOptions& options,
                   std::type_identity_t<Tensor<T>>* gx, std::type_identity_t<Tensor<T>>* gk);

}  // namespace conv

/// The conv layer as a tape node (no bias: add one with bias_channels or bias_untied).
/// x: B x N x H x W, kernels: D x N x F x F -> B x D x Ho x Wo.
template <class T>
Var<T> conv2d(const Var<T>& x, const Var<T>& kernels, const Conv2dOptions& options = {});

}  // namespace mcnn
