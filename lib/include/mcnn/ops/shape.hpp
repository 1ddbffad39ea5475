#pragma once
// Shape-only nodes: the data is copied as is, the gradient is reshaped back.
#include "mcnn/tape.hpp"

namespace mcnn {

/// x viewed with another shape of the same element count.
template <class T>
Var<T> reshape(const Var<T>& x, const Shape& shape);
/// B x C x H x W (or any rank >= 2) -> B x (C*H*W).
template <class T>
Var<T> flatten(const Var<T>& x);

}  // namespace mcnn
