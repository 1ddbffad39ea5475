#pragma once
// 2-D max-pool over windows of kernel x kernel, moved by stride (default: the kernel size).
//   x: B x C x H x W -> y: B x C x Ho x Wo, Ho = (H - kernel) / stride + 1
//   y[n,c,r,s] = max over the window;  dx[argmax] += dy   (argmax saved in the forward pass)
// Ties go to the first maximum in row-major order of the window, so results are deterministic.
// NaN as in PyTorch: a window holding a NaN yields NaN, and its argmax (where dy goes) is the last
// NaN of the window in row-major order; +-inf are compared as any value.
// The winners are the op's branch decisions: with a branch log on the tape it logs argmax (see
// tape.hpp).
// Average pools (no padding; every window is whole, so each divides by its full size):
//   avg_pool2d         x: B x C x H x W -> y: B x C x Ho x Wo (Ho, Wo as for max_pool2d)
//                      y[n,c,r,s] = (1 / kernel^2) sum over the window;  dx[window] += dy / kernel^2
//   global_avg_pool2d  x: B x C x H x W -> y: B x C (flat: ready for a linear layer)
//                      y[n,c] = (1 / (H W)) sum_{h,w} x[n,c,h,w];     dx[n,c,h,w] += dy[n,c] / (H W)
// Both save nothing. A NaN or inf in a window goes through the sum into its outputs.
#include <cstdint>

#include "mcnn/tape.hpp"

namespace mcnn {

template <class T>
Var<T> max_pool2d(const Var<T>& x, int kernel, int stride = 0);

/// Average pool of kernel x kernel windows moved by stride (0: the kernel size), no padding.
template <class T>
Var<T> avg_pool2d(const Var<T>& x, int kernel, int stride = 0);
/// The mean of each channel's plane: B x C x H x W -> B x C.
template <class T>
Var<T> global_avg_pool2d(const Var<T>& x);

namespace pool {
/// Forward pass; argmax[k] is the flat index into x of the maximum chosen for y[k].
template <class T>
void max_forward(const Tensor<T>& x, int kernel, int stride, Tensor<T>& y, std::vector<std::int32_t>& argmax);
}  // namespace pool

}  // namespace mcnn
