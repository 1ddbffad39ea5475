// The AVX2 + FMA micro-kernel of sgemm: a 6 x 16 tile of C in 12 ymm accumulators (6 rows x 2
// vectors of 8), 12 independent FMA chains per step of k: enough to cover the FMA latency (4
// cycles) times the two FMA pipes of a Zen or Intel core. Per step: 2 vector loads of B, 6
// broadcasts of A. Only this function is compiled for AVX2 + FMA (target attribute), so the file
// builds without -march=native and sgemm calls it only when the CPU has both (sgemm.cpp).
#include <immintrin.h>

#include "microkernel.hpp"

namespace mcnn::kernels::detail {
namespace {

constexpr int MR = 6, NR = 16;

__attribute__((target("avx2,fma"))) void kernel_6x16(int kc, const float* a, const float* b, float* c,
                                                      std::ptrdiff_t ldc, bool accumulate) {
    // C's rows are asked for now, to arrive while the k loop runs: accumulating into a C tile
    // that is out of cache otherwise stalls the end of every call (large K, large C).
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
        _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + NR - 1), _MM_HINT_T0);
    }
    __m256 acc[MR][2];
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
#pragma GCC unroll 4
    for (int p = 0; p < kc; ++p) {
        const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
#pragma GCC unroll 6
        for (int i = 0; i < MR; ++i) {
            const __m256 ai = _mm256_broadcast_ss(a + i);
            acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
        }
        a += MR;
        b += NR;
    }
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
        float* row = c + i * ldc;
        if (accumulate) {
            acc[i][0] = _mm256_add_ps(acc[i][0], _mm256_loadu_ps(row));
            acc[i][1] = _mm256_add_ps(acc[i][1], _mm256_loadu_ps(row + 8));
        }
        _mm256_storeu_ps(row, acc[i][0]);
        _mm256_storeu_ps(row + 8, acc[i][1]);
    }
}

}  // namespace

// Blocks: kc x 16 of B is 16 KiB at kc = 256 (half a 32 KiB L1d); 144 x 256 of A is 144 KiB (L2).
KernelSpec avx2_spec() { return {MR, NR, 256, 144, 4080, kernel_6x16}; }

}  // namespace mcnn::kernels::detail
