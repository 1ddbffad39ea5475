#pragma once
// Element-wise activations. Each saves nothing but its output y and differentiates through it:
//   relu        y = max(x, 0)                  dx += dy * [y > 0]
//   leaky_relu  y = x > 0 ? x : slope * x      dx += dy * (y > 0 ? 1 : slope)      (slope >= 0)
//   tanh        y = tanh(x)                    dx += dy * (1 - y^2)
//   sigmoid     y = 1 / (1 + exp(-x))          dx += dy * y * (1 - y)
// At x = 0 relu's derivative is taken as 0 (PyTorch's choice).
// relu and leaky_relu bend at x = 0: with a branch log on the tape they log each input's side,
// x > 0 or not (see tape.hpp).
#include "mcnn/tape.hpp"

namespace mcnn {

template <class T>
Var<T> relu(const Var<T>& x);
template <class T>
Var<T> leaky_relu(const Var<T>& x, T slope = T(0.01));
template <class T>
Var<T> tanh(const Var<T>& x);
template <class T>
Var<T> sigmoid(const Var<T>& x);

}  // namespace mcnn
