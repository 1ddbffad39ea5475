#pragma once
#include <algorithm>
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
// where dilate_S puts S-1 zeros between elements. Four paths compute these sums (see ConvPath): the
// plain loops of the formulas (the oracle), loops of the vectorised correlate2d over planes, and
// im2col + GEMM; tests prove them equal. With NaN or inf among X, K or dY they give PyTorch's
// results: the padding zeros of Xp multiply (0 * inf = NaN), the zeros of dilate_S and of the full
// convolution's border are absent terms (conv2d_plain.cpp says which).
#include <string>
#include <type_traits>
#include <vector>

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

/// Which implementation of the conv layer to run. All compute the same sums.
///   plain:       nested loops of the formulas above, one element at a time: the oracle the others
///                are tested against; slow, for reading and teaching (conv2d_plain.cpp).
///   correlate2d: loops of the vectorised 2-D correlate2d over (image, channel) planes: the
///                notebook's layer structure (correlate2d.cpp).
///   im2col:      im2col + GEMM, image by image (conv2d_im2col.cpp).
///   winograd:    Winograd's minimal filtering F(4x4, 3x3) and F(4x4, 5x5): transformed tiles, one
///                GEMM over channels per tile position (conv2d_winograd.cpp); 3x3 and 5x5 kernels
///                at stride 1 only, other layers are refused.
///   automatic:   im2col, except correlate2d for layers with fewer than direct_max_out_channels
///                output channels at stride 1 (SimpleCNN's conv1), whose GEMM has too few rows to
///                fill its register blocks, and winograd for 3x3 stride-1 layers with at least
///                winograd_min_channels input and output channels and 5x5 stride-1 layers with at
///                least winograd5_min_channels, whose output holds a whole 4 x 4 tile.
enum class ConvPath {
    plain,
    correlate2d,
    im2col,
    winograd,
    automatic,
};

/// The path's name, as run configs and the train app's --conv write it: "plain", "correlate2d",
/// "im2col", "winograd" or "automatic".
const char* conv_path_name(ConvPath path);
/// The path called `name` (one of conv_path_names()); throws naming `name` and the known names.
ConvPath conv_path_from_name(const std::string& name);
/// The five names, in the enum's order.
std::vector<std::string> conv_path_names();

struct Conv2dOptions {
    int padding = 0;  // zeros added on every side
    int stride = 1;
    ConvPath path = ConvPath::automatic;
};

namespace conv {

/// Below this many output channels (at stride 1) the automatic path runs correlate2d (see ConvPath).
constexpr int direct_max_out_channels = 8;
/// Whether ConvPath::automatic runs a conv of kernels `k` (D x N x F x F) with `options` on the
/// correlate2d loops (else on im2col).
inline bool automatic_uses_correlate2d(const Shape& k, const Conv2dOptions& options) {
    return k.rank() == 4 && k[0] < direct_max_out_channels && options.stride == 1;
}
/// From this many input and output channels up, ConvPath::automatic runs 3x3 stride-1 layers on
/// winograd (when their output holds a whole 4 x 4 tile, see automatic_uses_winograd). Measured with
/// bench_conv_layers --set modern, 1 thread, Zen 3 (AVX2), batch 256, F(4x4,3x3) against im2col
/// (forward / backward data / backward weights): 24->64 at 31x31 1.41/1.18/1.02x faster, 64->64 at
/// 15x15 1.39/1.34/1.24x, 64->256 at 15x15 1.63/1.27/0.99x, 256->256 at 7x7 1.15/1.18/1.26x; but
/// 256->256 at 3x3 (one 4 x 4 tile for 9 outputs) 0.66/0.74/0.91x: im2col.
constexpr int winograd_min_channels = 16;
/// From this many input and output channels up, ConvPath::automatic runs 5x5 stride-1 layers on
/// winograd (F(4x4,5x5)). Measured with bench_conv_layers --set tuned, 1 thread, Zen 3 (AVX2),
/// batch 64, against im2col: 64->128 at 9x9 1.7-2.3x faster forward, 1.5-1.7x backward;
/// 16->64 at 17x17 faster forward, about even backward; 3->16 at 32x32 1.2-2x slower (the
/// transforms of a tile outweigh a GEMM over only 3 channels).
constexpr int winograd5_min_channels = 16;
/// The smallest output side on which ConvPath::automatic runs winograd: a whole 4 x 4 output tile.
constexpr int winograd_min_output = 4;
/// Whether ConvPath::automatic runs a conv of kernels `k` (D x N x F x F) with `options` on the
/// winograd path: stride 1 and 3x3 kernels with D and N at least winograd_min_channels, or 5x5
/// kernels with D and N at least winograd5_min_channels; and, when the input shape `x` (B x N x H x
/// W) is given, an output of at least winograd_min_output on each side.
inline bool automatic_uses_winograd(const Shape& k, const Conv2dOptions& options, const Shape& x = {}) {
    if (k.rank() != 4 || k[2] != k[3] || options.stride != 1) return false;
    if (x.rank() == 4 && std::min(x[2], x[3]) + 2 * options.padding - k[2] + 1 < winograd_min_output) return false;
    const int least = k[2] == 3 ? winograd_min_channels : k[2] == 5 ? winograd5_min_channels : -1;
    return least > 0 && k[0] >= least && k[1] >= least;
}
/// The path that runs for kernels `k`, `options` and (when given) input shape `x`: options.path,
/// with automatic resolved to correlate2d, winograd or im2col.
inline ConvPath path_to_run(const Shape& k, const Conv2dOptions& options, const Shape& x = {}) {
    if (options.path != ConvPath::automatic) return options.path;
    if (automatic_uses_correlate2d(k, options)) return ConvPath::correlate2d;
    return automatic_uses_winograd(k, options, x) ? ConvPath::winograd : ConvPath::im2col;
}

/// Checks the shapes of X (B x N x H x W) and K (D x N x F x F) and returns Y's shape.
Shape output_shape(const Shape& x, const Shape& k, const Conv2dOptions& options);

// Every path has the same contract. forward_*: y is resized to B x D x Ho x Wo and overwritten.
// backward_*: adds dL/dX into *gx (B x N x H x W) and dL/dK into *gk (D x N x F x F), either of
// which may be nullptr, given gy = dL/dY (B x D x Ho x Wo); shapes are checked before anything is
// added. options.path is ignored: the function's name says what runs.

/// Y = conv(X, K) by plain nested loops of the formula, element by element (no SIMD, no threads).
template <class T>
void forward_plain(const Tensor<T>& x, const Tensor<T>& k, const Conv2dOptions& options, Tensor<T>& y);
/// dX and dK by plain nested loops of the formulas above, element by element.
template <class T>
void backward_plain(const Tensor<T>& x, const Tensor<T>& k, const Tensor<T>& gy, const Conv2dOptions& options,
                    std::type_identity_t<Tensor<T>>* gx, std::type_identity_t<Tensor<T>>* gk);

/// Y = conv(X, K) by loops of 2-D correlate2d over planes (vectorised; threads share the planes).
template <class T>
void forward_correlate2d(const Tensor<T>& x, const Tensor<T>& k, const Conv2dOptions& options, Tensor<T>& y);
/// dX and dK by loops of 2-D convolve2d and correlate2d over planes.
template <class T>
void backward_correlate2d(const Tensor<T>& x, const Tensor<T>& k, const Tensor<T>& gy, const Conv2dOptions& options,
                          std::type_identity_t<Tensor<T>>* gx, std::type_identity_t<Tensor<T>>* gk);

/// Y = conv(X, K) by im2col + GEMM over groups of images (threads share the groups).
template <class T>
void forward_im2col(const Tensor<T>& x, const Tensor<T>& k, const Conv2dOptions& options, Tensor<T>& y);
/// dX and dK by im2col + GEMM over groups of images (the columns are gathered from x again rather
/// than kept from the forward pass).
template <class T>
void backward_im2col(const Tensor<T>& x, const Tensor<T>& k, const Tensor<T>& gy, const Conv2dOptions& options,
                     std::type_identity_t<Tensor<T>>* gx, std::type_identity_t<Tensor<T>>* gk);

/// The Winograd path's tile m for F x F kernels: F(4x4, 3x3) and F(4x4, 5x5) (the 5x5 tiles 2 and
/// 3 measured slower on TunedCNN's layers; all hold the float error below 1e-5 of the results).
constexpr int winograd_tile(int /*kernel*/) { return 4; }

/// Y = conv(X, K) by Winograd's F(m x m, F x F), m = winograd_tile(F) (threads share groups of
/// images). K must be D x N x 3 x 3 or D x N x 5 x 5 and the stride 1 (else throws, naming the
/// shape or stride).
template <class T>
void forward_winograd(const Tensor<T>& x, const Tensor<T>& k, const Conv2dOptions& options, Tensor<T>& y);
/// dX (the same machinery on dY with the turned, transposed kernels, or, for layers with more
/// output than input channels, the adjoint of the forward's transforms) and dK (transformed input
/// times transformed dY per tile position, then G^T . G), m = winograd_tile(F).
template <class T>
void backward_winograd(const Tensor<T>& x, const Tensor<T>& k, const Tensor<T>& gy, const Conv2dOptions& options,
                       std::type_identity_t<Tensor<T>>* gx, std::type_identity_t<Tensor<T>>* gk);
/// forward_winograd on tiles of `tile` x `tile`: 2 or 4 for 3x3 kernels, 2, 3 or 4 for 5x5 (else
/// throws).
template <class T>
void forward_winograd_tile(const Tensor<T>& x, const Tensor<T>& k, const Conv2dOptions& options, Tensor<T>& y, int tile);
/// backward_winograd on tiles of `tile` x `tile` (as forward_winograd_tile).
template <class T>
void backward_winograd_tile(const Tensor<T>& x, const Tensor<T>& k, const Tensor<T>& gy, const Conv2dOptions& options,
                            std::type_identity_t<Tensor<T>>* gx, std::type_identity_t<Tensor<T>>* gk, int tile);

}  // namespace conv

/// The conv layer as a tape node (no bias: add one with bias_channels or bias_untied), on the path
/// conv::path_to_run picks. x: B x N x H x W, kernels: D x N x F x F -> B x D x Ho x Wo.
template <class T>
Var<T> conv2d(const Var<T>& x, const Var<T>& kernels, const Conv2dOptions& options = {});

}  // namespace mcnn
