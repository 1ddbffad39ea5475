#pragma once
// Dropout (inverted, as nn.Dropout in training): each element is kept with probability 1 - p and
// scaled by 1 / (1 - p), else zeroed.
//   x: any shape -> y: the same shape;  y[i] = x[i] * m[i],  m[i] = keep(seed, i) ? 1 / (1 - p) : 0
//   dx[i] += dy[i] * m[i]
// The mask comes from a counter-based generator: keep(seed, i) is a hash of (seed, i) alone, so the
// same seed and shape give the same mask whatever the thread count or order, and backward
// recomputes it instead of saving it (nothing saved but the seed). A product, as in PyTorch: a NaN
// or inf input gives NaN even where it is dropped (inf * 0).
// The op always drops; the Dropout module calls it only in training mode.
#include <cstdint>

#include "mcnn/tape.hpp"

namespace mcnn {

/// y = x * mask(seed) / (1 - p), any shape; p in [0, 1) (else throws naming p). Element i of x
/// is kept by keep(seed, first_index + i): a part of a larger tensor (rows of a batch split between
/// processes, distributed.hpp) passes its first element's index in the whole and draws the whole's mask.
template <class T>
Var<T> dropout(const Var<T>& x, double p, std::uint64_t seed, std::uint64_t first_index = 0);

namespace dropout_mask {
/// Whether element `index` is kept under `seed` at drop probability p: a 53-bit uniform number
/// drawn from the hash of (seed, index) is >= p.
bool keep(std::uint64_t seed, std::uint64_t index, double p);
/// The seed of a module's call `call` (0, 1, ...) under its own `seed`: a hash of the pair, so
/// modules of nearby seeds (1 and 2) do not draw each other's masks a call apart, as seed + call would.
std::uint64_t call_seed(std::uint64_t seed, std::uint64_t call);
}  // namespace dropout_mask

}  // namespace mcnn
