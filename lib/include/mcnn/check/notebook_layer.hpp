#pragma once
// The notebook's hand-made conv layer, as one node (correlate2d forward, untied bias), with its
// backward written three ways: correct, and the two mistakes the notebook's own code made.
//
// Shapes: x B x N x H x W, kernels D x N x F x F, bias D x Ho x Wo (valid, stride 1).
//   forward   Y[b,i] = sum_j correlate2d(X[b,j], K[i,j], valid) + bias[i]
//   correct   dX[b,j] += sum_i convolve2d(dY[b,i], K[i,j], full)
//             dK[i,j] += sum_b correlate2d(X[b,j], dY[b,i], valid)
//             dbias[i] += sum_b dY[b,i]
//   kernel_convolve            dK[i,j] += sum_b convolve2d(X[b,j], dY[b,i], valid)   (the notebook's)
//   bias_inside_channel_loop   dbias[i] += dY[b,i] once per input channel j: N times too large
// The notebook's gradcheck could see neither: it rebuilt kernels and bias without requires_grad,
// so only dX was compared (with one input channel, in float32). Here the kernels and bias are
// parameters, and a check that leaves a parameter out fails by itself.
#include "mcnn/check/node_cases.hpp"

namespace mcnn {

enum class NotebookFault { none, kernel_convolve, bias_inside_channel_loop };

/// The notebook's layer as a tape node; `fault` picks which backward runs.
Var<double> notebook_conv(const Var<double>& x, const Var<double>& kernels, const Var<double>& bias,
                          NotebookFault fault = NotebookFault::none);

/// Checks of the two faulty backwards ("notebook_fault_kernel_grad", "notebook_fault_bias_grad"):
/// kept out of node_cases() because they must fail; node_case() finds them by name.
const std::vector<NodeCase>& notebook_fault_cases();

/// The check of the correct layer ("notebook_layer", one of node_cases()), or of a faulty one.
NodeCase notebook_case(NotebookFault fault);

}  // namespace mcnn
