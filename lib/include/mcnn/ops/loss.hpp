#pragma once
// Softmax cross-entropy, the mean over the batch (nn.CrossEntropyLoss):
//   logits z: B x C, labels t[n] in [0, C)
//   p = softmax(z) computed stably (z - max z), L = -(1/B) sum_n log p[n, t[n]]
//   dz += dL * (p - onehot(t)) / B            (saves p)
// Non-finite logits give what PyTorch's cross_entropy gives: a row holding NaN or +inf makes the
// loss NaN and that row's p and gradient NaN (+inf - max = inf - inf); a -inf logit has p = 0, and
// at the label it makes the loss +inf with a finite gradient; a row of -inf only is NaN.
#include <vector>

#include "mcnn/tape.hpp"

namespace mcnn {

template <class T>
Var<T> softmax_cross_entropy(const Var<T>& logits, const std::vector<int>& labels);

/// Row-wise softmax of B x C logits (stable), for predictions.
template <class T>
Tensor<T> softmax(const Tensor<T>& logits);

}  // namespace mcnn
