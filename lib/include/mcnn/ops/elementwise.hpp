#pragma once
// Element-wise arithmetic and reductions.
//   add           y = a + b (same shapes)        da += dy;  db += dy
//   weighted_sum  y = sum_k x[k] * w[k] (scalar)  dx += dy * w     (w is a fixed tensor)
//   scale         y = s x (s a finite constant)  dx += s dy        (airbench's head: s = 1/9)
// weighted_sum with random w turns any output into a scalar whose gradient tests every element.
#include "mcnn/tape.hpp"

namespace mcnn {

template <class T>
Var<T> add(const Var<T>& a, const Var<T>& b);
template <class T>
Var<T> weighted_sum(const Var<T>& x, const Tensor<T>& weights);
/// y = s x, any shape; s must be finite (else throws naming it). Saves nothing.
template <class T>
Var<T> scale(const Var<T>& x, double s);

}  // namespace mcnn
