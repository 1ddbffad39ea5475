#pragma once
// Fully connected layer, as nn.Linear:  x: B x I, W: O x I, b: O -> y: B x O
//   y = x W^T + b;   dx += dy W;   dW += dy^T x;   db += sum_n dy[n]
#include "mcnn/tape.hpp"

namespace mcnn {

template <class T>
Var<T> linear(const Var<T>& x, const Var<T>& weight, const Var<T>& bias);
/// Without bias: y = x W^T.
template <class T>
Var<T> linear(const Var<T>& x, const Var<T>& weight);

}  // namespace mcnn
