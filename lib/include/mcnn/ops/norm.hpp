#pragma once
// Batch normalisation over the channels of an image batch (PyTorch's batch_norm on 4-D input).
//   x: B x C x H x W, weight w and bias b: [C] (optional: without them w = 1, b = 0),
//   N = B * H * W values per channel.
// Train mode (batch statistics):
//   mean[c] = sum_{n,h,w} x / N,  var[c] = sum (x - mean)^2 / N  (biased),  inv = 1 / sqrt(var + eps)
//   xhat = (x - mean) * inv,  y = xhat * w[c] + b[c]
//   db[c] += sum dy,  dw[c] += sum dy * xhat
//   dx += w[c] * inv * (dy - sum(dy) / N - xhat * sum(dy * xhat) / N)   (through mean and variance)
//   running statistics, when given, as PyTorch updates them (unbiased variance, N >= 2):
//   running_mean = (1 - momentum) running_mean + momentum mean
//   running_var  = (1 - momentum) running_var  + momentum var * N / (N - 1)
// Eval mode (running statistics, a fixed per-channel affine map):
//   inv = 1 / sqrt(running_var + eps),  y = (x - running_mean) * inv * w + b
//   dx += dy * w * inv,  dw[c] += sum dy * (x - running_mean) * inv,  db[c] += sum dy
// Saved for backward: x (shared with the tape, not copied) and per channel mean and inv.
// Statistics are summed in double, two passes (mean, then squares about it), each channel by one
// thread (channels split between threads): results do not depend on the thread count.
// Data-parallel training (distributed.hpp): in train mode, when current_step_part() names a
// communicator, the batch is the rows of every rank: the per-channel sums (and N) of the statistics
// and the sums of dx's formula are summed over the ranks (sync batch norm); dw and db stay this
// rank's own sums (fit sums every parameter's gradient over the ranks).
#include "mcnn/tape.hpp"

namespace mcnn {

struct BatchNorm2dOptions {
    bool training = true;   // batch statistics (and update the running ones), else running statistics
    double momentum = 0.1;  // weight of the batch in the running statistics, in [0, 1]
    double eps = 1e-5;      // added to the variance, > 0
};

/// Running statistics of a batch norm: mean and var, each [C]. In train mode both may be null (not
/// tracked); in eval mode both are required and only read.
template <class T>
struct BatchNormRunning {
    Tensor<T>* mean = nullptr;
    Tensor<T>* var = nullptr;
};

/// Batch norm with affine weight and bias [C]. Throws naming the shapes and values on bad input
/// (x not 4-D, weight/bias/statistics not [C], eps <= 0, momentum outside [0, 1], train mode with
/// one value per channel).
template <class T>
Var<T> batch_norm2d(const Var<T>& x, const Var<T>& weight, const Var<T>& bias, BatchNormRunning<T> running,
                    const BatchNorm2dOptions& options);
/// Batch norm without affine parameters (w = 1, b = 0).
template <class T>
Var<T> batch_norm2d(const Var<T>& x, BatchNormRunning<T> running, const BatchNorm2dOptions& options);

namespace norm {
/// The maths of batch_norm2d as plain loops, one element at a time (the oracle for the fast path).
/// weight/bias null: 1 and 0. Train mode: writes y, and mean/var (biased) [C] of the batch; eval mode
/// reads them (the running statistics) instead.
template <class T>
void plain_forward(const Tensor<T>& x, const Tensor<T>* weight, const Tensor<T>* bias, bool training, double eps,
                   Tensor<T>& mean, Tensor<T>& var, Tensor<T>& y);
/// Backward as plain loops: adds into gx, and (when not null) gw, gb; mean/var as plain_forward gave.
template <class T>
void plain_backward(const Tensor<T>& x, const Tensor<T>* weight, bool training, double eps, const Tensor<T>& mean,
                    const Tensor<T>& var, const Tensor<T>& gy, Tensor<T>& gx, Tensor<T>* gw, Tensor<T>* gb);
}  // namespace norm

}  // namespace mcnn
