#include "fma_peak.hpp"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "mcnn/error.hpp"

namespace mcnn::cli::detail {
namespace {

// Each kernel keeps `chains` accumulators in registers and updates every one of them once per
// iteration: acc = acc * mul + add. The chains are independent, so the core can keep all its FMA
// pipes busy once there are more chains than (FMA latency x pipes). mul < 1 and add > 0 hold every
// accumulator near 1: no overflow, no denormals. The sum of the accumulators comes back so that
// the work cannot be optimised away; mul and add are read from volatile variables so that the
// compiler cannot fold the chains into constants.
volatile float mul_source = 0.9999999f, add_source = 1e-7f;

// AVX-512: 32 zmm registers; 24 chains of 16 floats leave room for mul and add.
constexpr int avx512_chains = 24;
__attribute__((target("avx512f"))) float chains_avx512(long iters) {
    __m512 acc[avx512_chains];
    const __m512 m = _mm512_set1_ps(mul_source), a = _mm512_set1_ps(add_source);
    for (int i = 0; i < avx512_chains; ++i) acc[i] = _mm512_set1_ps(1.0f + 0.01f * static_cast<float>(i));
    for (long k = 0; k < iters; ++k) {
#pragma GCC unroll 24
        for (int i = 0; i < avx512_chains; ++i) acc[i] = _mm512_fmadd_ps(acc[i], m, a);
    }
    for (int i = 1; i < avx512_chains; ++i) acc[0] = _mm512_add_ps(acc[0], acc[i]);
    alignas(64) float lanes[16];  // not _mm512_reduce_add_ps: GCC 12 warns inside it
    _mm512_store_ps(lanes, acc[0]);
    float sum = 0;
    for (float v : lanes) sum += v;
    return sum;
}

// AVX2 + FMA: 16 ymm registers; 12 chains of 8 floats, plus mul and add.
constexpr int avx2_chains = 12;
__attribute__((target("avx2,fma"))) float chains_avx2(long iters) {
    __m256 acc[avx2_chains];
    const __m256 m = _mm256_set1_ps(mul_source), a = _mm256_set1_ps(add_source);
    for (int i = 0; i < avx2_chains; ++i) acc[i] = _mm256_set1_ps(1.0f + 0.01f * static_cast<float>(i));
    for (long k = 0; k < iters; ++k) {
#pragma GCC unroll 12
        for (int i = 0; i < avx2_chains; ++i) acc[i] = _mm256_fmadd_ps(acc[i], m, a);
    }
    for (int i = 1; i < avx2_chains; ++i) acc[0] = _mm256_add_ps(acc[0], acc[i]);
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, acc[0]);
    float sum = 0;
    for (float v : lanes) sum += v;
    return sum;
}

// Anything else: plain multiply-adds (2 FLOPs each), which the compiler may put in SSE registers.
constexpr int portable_chains = 12;
float chains_portable(long iters) {
    const float mul = mul_source, add = add_source;
    float acc[portable_chains];
    for (int i = 0; i < portable_chains; ++i) acc[i] = 1.0f + 0.01f * static_cast<float>(i);
    for (long k = 0; k < iters; ++k) {
#pragma GCC unroll 12
        for (int i = 0; i < portable_chains; ++i) acc[i] = acc[i] * mul + add;
    }
    float sum = 0;
    for (float v : acc) sum += v;
    return sum;
}

struct Kernel {
    float (*run)(long iters);
    double flops_per_iter;  // chains x lanes x 2
};

Kernel kernel_of(FmaIsa isa) {
    switch (isa) {
        case FmaIsa::avx512f: return {chains_avx512, avx512_chains * 16.0 * 2};
        case FmaIsa::avx2_fma: return {chains_avx2, avx2_chains * 8.0 * 2};
        case FmaIsa::portable: break;
    }
    return {chains_portable, portable_chains * 2.0};
}

using Clock = std::chrono::steady_clock;

/// Wall seconds for `threads` threads each running `iters` iterations of `k`.
double timed_run(const Kernel& k, long iters, int threads) {
    float sink = 0;
    const auto start = Clock::now();
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    sink += k.run(iters);
    const double s = std::chrono::duration<double>(Clock::now() - start).count();
    if (!std::isfinite(sink)) fail("fma peak: the FMA chains gave a non-finite sum {}", sink);
    return s;
}

}  // namespace

const char* isa_name(FmaIsa isa) {
    switch (isa) {
        case FmaIsa::avx512f: return "avx512f";
        case FmaIsa::avx2_fma: return "avx2+fma";
        case FmaIsa::portable: break;
    }
    return "portable";
}

FmaIsa best_fma_isa() {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return FmaIsa::avx512f;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return FmaIsa::avx2_fma;
    return FmaIsa::portable;
}

FmaPeak measure_fma_peak(FmaIsa isa, int threads, double seconds, int reps) {
    if (threads < 1 || reps < 1 || !(seconds > 0))
        fail("fma peak: threads and reps must be >= 1 and seconds > 0, got threads {}, reps {}, seconds {}", threads, reps, seconds);
    if (isa == FmaIsa::avx512f && !__builtin_cpu_supports("avx512f")) fail("fma peak: this CPU has no AVX-512F");
    if (isa == FmaIsa::avx2_fma && !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")))
        fail("fma peak: this CPU has no AVX2 and FMA");
    const Kernel k = kernel_of(isa);
    long iters = 1 << 14;  // grow until a run takes a tenth of `seconds`, then scale to `seconds`
    double s = timed_run(k, iters, 1);
    while (s < 0.1 * seconds) {
        iters *= 4;
        s = timed_run(k, iters, 1);
    }
    iters = std::max(1L, static_cast<long>(static_cast<double>(iters) * seconds / s));
    double best = 1e300;
    for (int r = 0; r < reps; ++r) best = std::min(best, timed_run(k, iters, threads));
    return {threads * static_cast<double>(iters) * k.flops_per_iter / best / 1e9, isa, threads};
}

}  // namespace mcnn::cli::detail
