#pragma once
// Seeded random numbers and PyTorch's default initialisation.
#include <cstdint>
#include <random>

#include "mcnn/tensor.hpp"

namespace mcnn {

/// The one source of randomness: a seeded 64-bit Mersenne Twister. Same seed, same numbers, on
/// every platform (values are drawn in double and then converted, so float and double models
/// built from one seed hold the same weights up to rounding).
class Rng {
public:
    explicit Rng(std::uint64_t seed = 0) : engine_(seed) {}
    double uniform(double lo, double hi);   // [lo, hi)
    double normal(double mean, double std);
    std::uint64_t below(std::uint64_t n);   // uniform integer in [0, n)
    std::mt19937_64& engine() { return engine_; }

private:
    std::mt19937_64 engine_;
};

/// Fills `t` with values drawn uniformly from [-bound, bound).
template <class T>
void uniform_fill(Tensor<T>& t, double bound, Rng& rng);

/// PyTorch's default for Conv2d and Linear weights and biases: U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
/// with fan_in = inputs per output (N*F*F for a conv, I for a linear layer).
template <class T>
Tensor<T> default_init(const Shape& shape, int fan_in, Rng& rng);

}  // namespace mcnn
