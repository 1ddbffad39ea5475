#pragma once
// Element-wise arithmetic and reductions.
//   add           y = a + b (same shapes)        da += dy;  db += dy
//   weighted_sum  y = sum_k x[k] * w[k] (scalar)  dx += dy * w     (w is a fixed tensor)
// weighted_sum with random w turns any output into a scalar whose gradient tests every element.
#include "mcnn/tape.hpp"

namespace mcnn {

template <class T>
Var<T> add(const Var<T>& a, const Var<T>& b);
template <class T>
Var<T> weighted_sum(const Var<T>& x, const Tensor<T>& weights);

}  // namespace mcnn
