#pragma once
// 2-D max-pool over windows of kernel x kernel, moved by stride (default: the kernel size).
//   x: B x C x H x W -> y: B x C x Ho x Wo, Ho = (H - kernel) / stride + 1
//   y[n,c,r,s] = max over the window;  dx[argmax] += dy   (argmax saved in the forward pass)
// Ties go to the first maximum in row-major order of the window, so results are deterministic.
// NaN as in PyTorch: a window holding a NaN yields NaN, and its argmax (where dy goes) is the last
// NaN of the window in row-major order; +-inf are compared as any value.
// The winners are the op's branch decisions: with a branch log on the tape it logs argmax (see
// tape.hpp).
#include <cstdint>

#include "mcnn/tape.hpp"

namespace mcnn {

template <class T>
Var<T> max_pool2d(const Var<T>& x, int kernel, int stride = 0);

namespace pool {
/// Forward pass; argmax[k] is the flat index into x of the maximum chosen for y[k].
template <class T>
void max_forward(const Tensor<T>& x, int kernel, int stride, Tensor<T>& y, std::vector<std::int32_t>& argmax);
}  // namespace pool

}  // namespace mcnn
