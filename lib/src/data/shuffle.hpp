#pragma once
// Seeded shuffles that are the same with every standard library (used by BatchLoader and hold_out).
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

namespace mcnn::data::detail {

/// SplitMix64's finaliser: spreads nearby seeds (0, 1, 2, ...) over the whole 64-bit range.
inline std::uint64_t mix(std::uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/// Uniform integer in [0, n), n >= 1, without bias. std::uniform_int_distribution is not used
/// because its algorithm is left to the library: the same seed could give other orders elsewhere.
inline std::uint64_t below(std::mt19937_64& engine, std::uint64_t n) {
    const std::uint64_t threshold = (0 - n) % n;  // 2^64 mod n: reject the short last bucket
    for (;;) {
        const std::uint64_t r = engine();
        if (r >= threshold) return r % n;
    }
}

/// Fisher-Yates shuffle with `below`.
inline void shuffle(std::vector<std::size_t>& v, std::mt19937_64& engine) {
    for (std::size_t i = v.size(); i > 1; --i) {
        const auto j = static_cast<std::size_t>(below(engine, i));
        std::swap(v[i - 1], v[j]);
    }
}

inline std::vector<std::size_t> iota(std::size_t n) {
    std::vector<std::size_t> v(n);
    std::iota(v.begin(), v.end(), std::size_t{0});
    return v;
}

}  // namespace mcnn::data::detail
