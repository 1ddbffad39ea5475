#include "mcnn/ops/dropout.hpp"

#include <cmath>

#include "../parallel.hpp"

namespace mcnn {
namespace {

// SplitMix64's finaliser: a bijection of 64-bit words that mixes every input bit into every output
// bit, so consecutive counters give independent-looking words.
std::uint64_t mix64(std::uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

// The element multipliers m[i] for i in [begin, end), passed one by one to `use(i, m)`.
template <class T, class Use>
void for_each_multiplier(std::uint64_t seed, double p, std::uint64_t first, std::ptrdiff_t begin, std::ptrdiff_t end, Use use) {
    const T kept = static_cast<T>(1 / (1 - p));
    for (std::ptrdiff_t i = begin; i < end; ++i)
        use(i, dropout_mask::keep(seed, first + static_cast<std::uint64_t>(i), p) ? kept : T(0));
}

}  // namespace

bool dropout_mask::keep(std::uint64_t seed, std::uint64_t index, double p) {
    // the seed is mixed first, so seeds s and s + 1 do not give shifted copies of one sequence
    const std::uint64_t word = mix64(mix64(seed) + index * 0x9e3779b97f4a7c15ULL);
    return static_cast<double>(word >> 11) * 0x1.0p-53 >= p;
}

std::uint64_t dropout_mask::call_seed(std::uint64_t seed, std::uint64_t call) {
    return mix64(mix64(seed ^ 0x243f6a8885a308d3ULL) + call * 0x9e3779b97f4a7c15ULL);
}

template <class T>
Var<T> dropout(const Var<T>& x, double p, std::uint64_t seed, std::uint64_t first_index) {
    if (!(p >= 0 && p < 1)) fail("dropout: p must be in [0, 1), got {}", p);
    Tensor<T> y(x.shape());
    const T* in = x.value().data();
    T* out = y.data();
    const auto n = static_cast<std::ptrdiff_t>(y.numel());
    detail::parallel_ranges(n, detail::min_parallel_elements, [=](std::ptrdiff_t begin, std::ptrdiff_t end) {
        for_each_multiplier<T>(seed, p, first_index, begin, end, [=](std::ptrdiff_t i, T m) { out[i] = in[i] * m; });
    });
    return record<T>("dropout", std::move(y), {x}, [seed, p, first_index, n](const Tensor<T>&, const Tensor<T>& gy, auto g) {
        if (!g[0]) return;
        T* gx = g[0]->data();
        const T* up = gy.data();
        detail::parallel_ranges(n, detail::min_parallel_elements, [=](std::ptrdiff_t begin, std::ptrdiff_t end) {
            for_each_multiplier<T>(seed, p, first_index, begin, end, [=](std::ptrdiff_t i, T m) { gx[i] += up[i] * m; });
        });
    });
}

template Var<float> dropout(const Var<float>&, double, std::uint64_t, std::uint64_t);
template Var<double> dropout(const Var<double>&, double, std::uint64_t, std::uint64_t);

}  // namespace mcnn
