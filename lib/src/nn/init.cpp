#include "mcnn/nn/init.hpp"

#include <cmath>

namespace mcnn {

double Rng::uniform(double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(engine_); }
double Rng::normal(double mean, double std) { return std::normal_distribution<double>(mean, std)(engine_); }
std::uint64_t Rng::below(std::uint64_t n) { return std::uniform_int_distribution<std::uint64_t>(0, n - 1)(engine_); }

template <class T>
void uniform_fill(Tensor<T>& t, double bound, Rng& rng) {
    for (T& v : t) v = static_cast<T>(rng.uniform(-bound, bound));
}

template <class T>
Tensor<T> default_init(const Shape& shape, int fan_in, Rng& rng) {
    if (fan_in < 1) fail("default_init: fan_in must be >= 1, got {} (shape {})", fan_in, shape.str());
    Tensor<T> t(shape);
    uniform_fill(t, 1.0 / std::sqrt(static_cast<double>(fan_in)), rng);
    return t;
}

template void uniform_fill(Tensor<float>&, double, Rng&);
template void uniform_fill(Tensor<double>&, double, Rng&);
template Tensor<float> default_init(const Shape&, int, Rng&);
template Tensor<double> default_init(const Shape&, int, Rng&);

}  // namespace mcnn
