#pragma once
// The micro-kernels behind sgemm (sgemm.hpp) and the blocking that suits each.
#include <cstddef>

namespace mcnn::kernels::detail {

/// c (MR x NR, element (i, j) at c[i * ldc + j]) = T, or += T with `accumulate`, where
/// T(i, j) = sum over p < kc of a[p * MR + i] * b[p * NR + j], summed in order of p from zero:
/// a is a packed MR-tall panel of op(A), b a packed NR-wide panel of op(B). With accumulate, C is
/// added to the finished sum T (not used as its start), so a tile computed in scratch and added
/// to C afterwards rounds exactly the same.
using MicroKernel = void (*)(int kc, const float* a, const float* b, float* c, std::ptrdiff_t ldc, bool accumulate);

/// A micro-kernel, its tile (mr x nr) and its blocks: kc x nr of packed B is meant to stay in L1,
/// mc x kc of packed A in L2, kc x nc of packed B in L3.
struct KernelSpec {
    int mr, nr, kc, mc, nc;
    MicroKernel run;
};

/// The largest tile a micro-kernel may have (mr * nr), the AVX-512 kernel's 12 x 32.
constexpr int max_tile = 12 * 32;

/// The portable micro-kernel for any MR x NR tile: loops over a register tile that the compiler
/// vectorises along j for whatever the build targets; the same sums as the SIMD kernels.
template <int MR, int NR>
void kernel_loops(int kc, const float* __restrict a, const float* __restrict b, float* c, std::ptrdiff_t ldc, bool accumulate) {
    float acc[MR][NR] = {};
    for (int p = 0; p < kc; ++p, a += MR, b += NR) {
#pragma GCC unroll 4
        for (int i = 0; i < MR; ++i) {
            const float ai = a[i];
#pragma GCC unroll 16
            for (int j = 0; j < NR; ++j) acc[i][j] += ai * b[j];
        }
    }
    for (int i = 0; i < MR; ++i)
        for (int j = 0; j < NR; ++j) c[i * ldc + j] = accumulate ? acc[i][j] + c[i * ldc + j] : acc[i][j];
}

/// 4 x 16, plain C++ (sgemm.cpp).
KernelSpec portable_spec();
/// 6 x 16, AVX2 + FMA intrinsics, compiled for those instructions only (sgemm_avx2.cpp).
KernelSpec avx2_spec();
/// 12 x 32, AVX-512F intrinsics, compiled for those instructions only (sgemm_avx512.cpp).
KernelSpec avx512_spec();
/// `spec` (its tile and blocks) with its micro-kernel replaced by kernel_loops of the same tile,
/// so the packing and blocking around a SIMD kernel can be tested on any CPU. Tiles: 4 x 16,
/// 6 x 16, 12 x 32; another throws naming it.
KernelSpec with_portable_kernel(KernelSpec spec);

}  // namespace mcnn::kernels::detail
