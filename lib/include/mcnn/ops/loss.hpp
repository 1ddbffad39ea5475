#pragma once
// Softmax cross-entropy, the mean over the batch (nn.CrossEntropyLoss):
//   logits z: B x C, labels t[n] in [0, C)
//   p = softmax(z) computed stably (z - max z), L = -(1/B) sum_n log p[n, t[n]]
//   dz += dL * (p - onehot(t)) / B            (saves p)
// With label smoothing eps (PyTorch's label_smoothing) the target is q = (1 - eps) onehot(t) + eps / C:
//   L = -(1/B) sum_n sum_c q[n,c] log p[n,c],   dz += dL * (p - q) / B
// eps = 0 (the default) runs the plain form above, bit for bit.
// Non-finite logits give what PyTorch's cross_entropy gives: a row holding NaN or +inf makes the
// loss NaN and that row's p and gradient NaN (+inf - max = inf - inf); a -inf logit has p = 0, and
// at the label it makes the loss +inf with a finite gradient; a row of -inf only is NaN.
#include <vector>

#include "mcnn/tape.hpp"

namespace mcnn {

/// Mean softmax cross-entropy of B x C logits against labels in [0, C) (a scalar); with
/// label_smoothing eps in [0, 1] the target is (1 - eps) onehot + eps / C (else throws naming eps).
template <class T>
Var<T> softmax_cross_entropy(const Var<T>& logits, const std::vector<int>& labels, double label_smoothing = 0);

/// Row-wise softmax of B x C logits (stable), for predictions.
template <class T>
Tensor<T> softmax(const Tensor<T>& logits);

}  // namespace mcnn
