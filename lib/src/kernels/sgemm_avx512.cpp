// The AVX-512 micro-kernel of sgemm: a 12 x 32 tile of C in 24 zmm accumulators (12 rows x 2
// vectors of 16), 24 independent FMA chains per step of k: enough to cover the FMA latency (4
// cycles) times two FMA pipes. Per step: 2 vector loads of B, 12 broadcasts of A (which the
// compiler folds into the FMAs as embedded broadcasts). Only this function is compiled for
// AVX-512F (target attribute), so the file builds without -march=native and sgemm calls it only
// when the CPU (and the OS) support AVX-512F (sgemm.cpp).
#include <immintrin.h>

#include "microkernel.hpp"

namespace mcnn::kernels::detail {
namespace {

constexpr int MR = 12, NR = 32;

__attribute__((target("avx512f,fma"))) void kernel_12x32(int kc, const float* a, const float* b, float* c,
                                                          std::ptrdiff_t ldc, bool accumulate) {
    // C's rows are asked for now, to arrive while the k loop runs (as in the AVX2 kernel).
#pragma GCC unroll 12
    for (int i = 0; i < MR; ++i) {
        _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + NR - 1), _MM_HINT_T0);
    }
    __m512 acc[MR][2];
#pragma GCC unroll 12
    for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int p = 0; p < kc; ++p) {
        const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
#pragma GCC unroll 12
        for (int i = 0; i < MR; ++i) {
            const __m512 ai = _mm512_set1_ps(a[i]);
            acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
        }
        a += MR;
        b += NR;
    }
#pragma GCC unroll 12
    for (int i = 0; i < MR; ++i) {
        float* row = c + i * ldc;
        if (accumulate) {
            acc[i][0] = _mm512_add_ps(acc[i][0], _mm512_loadu_ps(row));
            acc[i][1] = _mm512_add_ps(acc[i][1], _mm512_loadu_ps(row + 16));
        }
        _mm512_storeu_ps(row, acc[i][0]);
        _mm512_storeu_ps(row + 16, acc[i][1]);
    }
}

}  // namespace

// Blocks: kc x 32 of B is 24 KiB at kc = 192 (of a 32-48 KiB L1d); 240 x 192 of A is 180 KiB (L2).
KernelSpec avx512_spec() { return {MR, NR, 192, 240, 4096, kernel_12x32}; }

}  // namespace mcnn::kernels::detail
