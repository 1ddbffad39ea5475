#pragma once
// Bias nodes. Tied: one value per channel, shared by every position (nn.Conv2d's bias).
// Untied: one value per channel and position (the notebook's hand-made layer).
//   tied    x: B x D x H x W (or B x D), b: D          y[n,d,h,w] = x[n,d,h,w] + b[d]
//           dx += dy;  db[d] += sum_{n,h,w} dy[n,d,h,w]
//   untied  x: B x D x H x W, b: D x H x W            y[n] = x[n] + b
//           dx += dy;  db += sum_n dy[n]
#include "mcnn/tape.hpp"

namespace mcnn {

template <class T>
Var<T> bias_channels(const Var<T>& x, const Var<T>& b);
/// bias_channels of a temporary: writes y over x's storage when nothing else holds x (Var::take_value).
template <class T>
Var<T> bias_channels(Var<T>&& x, const Var<T>& b);
template <class T>
Var<T> bias_untied(const Var<T>& x, const Var<T>& b);

}  // namespace mcnn
