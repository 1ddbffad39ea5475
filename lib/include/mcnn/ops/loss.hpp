#pragma once
// Softmax cross-entropy, the mean over the batch (nn.CrossEntropyLoss):
//   logits z: B x C, labels t[n] in [0, C)
//   p = softmax(z) computed stably (z - max z), L = -(1/B) sum_n log p[n, t[n]]
//   dz += dL * (p - onehot(t)) / B            (saves p)
#include <vector>

#include "mcnn/tape.hpp"

namespace mcnn {

template <class T>
Var<T> softmax_cross_entropy(const Var<T>& logits, const std::vector<int>& labels);

/// Row-wise softmax of B x C logits (stable), for predictions.
template <class T>
Tensor<T> softmax(const Tensor<T>& logits);

}  // namespace mcnn
