// sgemm (sgemm.hpp): packing, the loops around the micro-kernel, the portable micro-kernel, the
// choice of micro-kernel at run time, and the plain triple loop it is all tested against.
//
// Loops, BLIS order (jc, pc, ic, jr, ir), for kernel tile MR x NR and blocks KC, MC, NC:
//   for jc in N by NC:  for pc in K by KC:  pack op(B)[pc.., jc..] (kc x nc) into NR-wide panels
//     for ic in M by MC:  pack op(A)[ic.., pc..] (mc x kc) into MR-tall panels
//       for jr in nc by NR:  for ir in mc by MR:  C tile (ic+ir, jc+jr) (+)= A panel * B panel
// Panels are zero-padded to MR / NR, so the micro-kernel always computes a whole tile; tiles that
// stick out of C are computed into a scratch tile and the part inside C copied (or added) out.
#include "sgemm.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "mcnn/error.hpp"
#include "microkernel.hpp"

namespace mcnn::kernels {
namespace detail {
namespace {

constexpr int portable_mr = 4, portable_nr = 16;

// The portable micro-kernel: the same sums as the SIMD ones, written as loops over a register
// tile that the compiler vectorises along j for whatever the build targets.
void kernel_portable(int kc, const float* __restrict a, const float* __restrict b, float* c, std::ptrdiff_t ldc,
                     bool accumulate) {
    float acc[portable_mr][portable_nr] = {};
    for (int p = 0; p < kc; ++p, a += portable_mr, b += portable_nr) {
#pragma GCC unroll 4
        for (int i = 0; i < portable_mr; ++i) {
            const float ai = a[i];
#pragma GCC unroll 16
            for (int j = 0; j < portable_nr; ++j) acc[i][j] += ai * b[j];
        }
    }
    for (int i = 0; i < portable_mr; ++i)
        for (int j = 0; j < portable_nr; ++j) c[i * ldc + j] = accumulate ? acc[i][j] + c[i * ldc + j] : acc[i][j];
}

}  // namespace

KernelSpec portable_spec() { return {portable_mr, portable_nr, 256, 128, 4096, kernel_portable}; }

}  // namespace detail

namespace {

using detail::KernelSpec;
using Buffer = std::vector<float, std::allocator<float>>;

// A per-thread buffer of at least n floats, 64-byte aligned, that only grows.
float* scratch(int which, std::size_t n) {
    thread_local Buffer buffers[2];
    Buffer& buffer = buffers[which];
    if (buffer.size() < n + 16) buffer.resize(n + 16);
    const auto address = reinterpret_cast<std::uintptr_t>(buffer.data());
    return buffer.data() + ((64 - address % 64) % 64) / sizeof(float);
}

// op(A)[i0 .. i0+mc, p0 .. p0+kc] into MR-tall panels: panel r holds rows i0 + r*MR .. as
// dst[r*MR*kc + p*MR + i], rows past mc zero.
void pack_a(Operand a, int i0, int p0, int mc, int kc, int mr, float* dst) {
    for (int ir = 0; ir < mc; ir += mr, dst += static_cast<std::ptrdiff_t>(mr) * kc) {
        const int m = std::min(mr, mc - ir);
        if (a.transposed) {  // op(A)(i, p) = data[p * stride + i]: rows of the panel are contiguous
            for (int p = 0; p < kc; ++p) {
                const float* src = a.data + static_cast<std::ptrdiff_t>(p0 + p) * a.stride + i0 + ir;
                std::copy(src, src + m, dst + p * mr);
                std::fill(dst + p * mr + m, dst + (p + 1) * mr, 0.0f);
            }
        } else {  // op(A)(i, p) = data[i * stride + p]
            for (int i = 0; i < m; ++i) {
                const float* src = a.data + static_cast<std::ptrdiff_t>(i0 + ir + i) * a.stride + p0;
                for (int p = 0; p < kc; ++p) dst[p * mr + i] = src[p];
            }
            for (int i = m; i < mr; ++i)
                for (int p = 0; p < kc; ++p) dst[p * mr + i] = 0.0f;
        }
    }
}

// op(B)[p0 .. p0+kc, j0 .. j0+nc] into NR-wide panels: panel r holds columns j0 + r*NR .. as
// dst[r*NR*kc + p*NR + j], columns past nc zero.
void pack_b(Operand b, int p0, int j0, int kc, int nc, int nr, float* dst) {
    for (int jr = 0; jr < nc; jr += nr, dst += static_cast<std::ptrdiff_t>(nr) * kc) {
        const int n = std::min(nr, nc - jr);
        if (b.transposed) {  // op(B)(p, j) = data[j * stride + p]
            for (int j = 0; j < n; ++j) {
                const float* src = b.data + static_cast<std::ptrdiff_t>(j0 + jr + j) * b.stride + p0;
                for (int p = 0; p < kc; ++p) dst[p * nr + j] = src[p];
            }
            for (int j = n; j < nr; ++j)
                for (int p = 0; p < kc; ++p) dst[p * nr + j] = 0.0f;
        } else {  // op(B)(p, j) = data[p * stride + j]: rows of the panel are contiguous
            for (int p = 0; p < kc; ++p) {
                const float* src = b.data + static_cast<std::ptrdiff_t>(p0 + p) * b.stride + j0 + jr;
                std::copy(src, src + n, dst + p * nr);
                std::fill(dst + p * nr + n, dst + (p + 1) * nr, 0.0f);
            }
        }
    }
}

// The C block (mc x nc at c) (+)= packed A block * packed B block, tile by tile.
void macro_kernel(const KernelSpec& s, int mc, int nc, int kc, const float* pa, const float* pb, float* c,
                  std::ptrdiff_t ldc, bool accumulate) {
    alignas(64) float tile[12 * 32];  // the largest kernel tile
    for (int jr = 0; jr < nc; jr += s.nr) {
        const int n = std::min(s.nr, nc - jr);
        const float* b = pb + static_cast<std::ptrdiff_t>(jr) * kc;
        for (int ir = 0; ir < mc; ir += s.mr) {
            const int m = std::min(s.mr, mc - ir);
            const float* a = pa + static_cast<std::ptrdiff_t>(ir) * kc;
            float* ct = c + ir * ldc + jr;
            if (m == s.mr && n == s.nr) {
                s.run(kc, a, b, ct, ldc, accumulate);
                continue;
            }
            s.run(kc, a, b, tile, s.nr, false);
            for (int i = 0; i < m; ++i)
                for (int j = 0; j < n; ++j) ct[i * ldc + j] = accumulate ? tile[i * s.nr + j] + ct[i * ldc + j] : tile[i * s.nr + j];
        }
    }
}

KernelSpec spec_of(CpuKernel kernel) {
    switch (kernel) {
        case CpuKernel::avx512: return detail::avx512_spec();
        case CpuKernel::avx2: return detail::avx2_spec();
        case CpuKernel::portable: break;
    }
    return detail::portable_spec();
}

float op_at(Operand x, int i, int j) {
    return x.transposed ? x.data[static_cast<std::ptrdiff_t>(j) * x.stride + i] : x.data[static_cast<std::ptrdiff_t>(i) * x.stride + j];
}

void check_sizes(int M, int N, int K) {
    if (M < 0 || N < 0 || K < 0) fail("sgemm: negative size M {} N {} K {}", M, N, K);
}

}  // namespace

void sgemm(int M, int N, int K, Operand a, Operand b, float* c, std::ptrdiff_t ldc, bool accumulate) {
    check_sizes(M, N, K);
    if (M == 0 || N == 0) return;
    if (K == 0) {
        if (!accumulate)
            for (int i = 0; i < M; ++i) std::fill(c + i * ldc, c + i * ldc + N, 0.0f);
        return;
    }
    const KernelSpec s = spec_of(sgemm_kernel());
    const int KC = std::min(s.kc, K), MC = std::min(s.mc, M), NC = std::min(s.nc, N);
    float* pb = scratch(0, static_cast<std::size_t>(KC) * ((NC + s.nr - 1) / s.nr * s.nr));
    float* pa = scratch(1, static_cast<std::size_t>(KC) * ((MC + s.mr - 1) / s.mr * s.mr));
    for (int jc = 0; jc < N; jc += s.nc) {
        const int nc = std::min(s.nc, N - jc);
        for (int pc = 0; pc < K; pc += s.kc) {
            const int kc = std::min(s.kc, K - pc);
            pack_b(b, pc, jc, kc, nc, s.nr, pb);
            for (int ic = 0; ic < M; ic += s.mc) {
                const int mc = std::min(s.mc, M - ic);
                pack_a(a, ic, pc, mc, kc, s.mr, pa);
                macro_kernel(s, mc, nc, kc, pa, pb, c + ic * ldc + jc, ldc, accumulate || pc > 0);
            }
        }
    }
}

void sgemm_reference(int M, int N, int K, Operand a, Operand b, float* c, std::ptrdiff_t ldc, bool accumulate) {
    check_sizes(M, N, K);
    for (int i = 0; i < M; ++i)
        for (int j = 0; j < N; ++j) {
            float sum = 0.0f;
            for (int p = 0; p < K; ++p) sum += op_at(a, i, p) * op_at(b, p, j);
            c[i * ldc + j] = accumulate ? c[i * ldc + j] + sum : sum;
        }
}

// ---- the choice of micro-kernel ---------------------------------------------------------------

const char* cpu_kernel_name(CpuKernel kernel) {
    switch (kernel) {
        case CpuKernel::avx512: return "avx512";
        case CpuKernel::avx2: return "avx2";
        case CpuKernel::portable: break;
    }
    return "portable";
}

bool cpu_supports(CpuKernel kernel) {
    __builtin_cpu_init();  // (libgcc's checks include the OS saving the AVX / AVX-512 registers)
    switch (kernel) {
        case CpuKernel::avx512: return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
        case CpuKernel::avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        case CpuKernel::portable: break;
    }
    return true;
}

CpuKernel cpu_kernel_from_name(const std::string& name) {
    for (CpuKernel k : {CpuKernel::avx512, CpuKernel::avx2, CpuKernel::portable})
        if (name == cpu_kernel_name(k)) return k;
    fail("unknown CPU kernel '{}'; known: avx512, avx2, portable", name);
}

namespace {

constexpr CpuKernel all_kernels[] = {CpuKernel::avx512, CpuKernel::avx2, CpuKernel::portable};

// MCNN_CPU's kernel, or the fastest this CPU supports.
CpuKernel kernel_from_environment() {
    const char* env = std::getenv("MCNN_CPU");
    if (env == nullptr || *env == '\0') {
        for (CpuKernel k : all_kernels)
            if (cpu_supports(k)) return k;
        return CpuKernel::portable;
    }
    for (CpuKernel k : all_kernels) {
        if (std::string(env) != cpu_kernel_name(k)) continue;
        if (!cpu_supports(k)) fail("MCNN_CPU={}: this CPU cannot run the {} kernel (portable runs everywhere)", env, env);
        return k;
    }
    fail("MCNN_CPU={}: unknown kernel; known: avx512, avx2, portable", env);
}

std::atomic<int> chosen{-1};  // a CpuKernel, or -1 before the first call

}  // namespace

CpuKernel sgemm_kernel() {
    int k = chosen.load(std::memory_order_relaxed);
    if (k < 0) {
        k = static_cast<int>(kernel_from_environment());
        chosen.store(k, std::memory_order_relaxed);
    }
    return static_cast<CpuKernel>(k);
}

void set_sgemm_kernel(CpuKernel kernel) {
    if (!cpu_supports(kernel)) fail("set_sgemm_kernel: this CPU cannot run the {} kernel", cpu_kernel_name(kernel));
    chosen.store(static_cast<int>(kernel), std::memory_order_relaxed);
}

}  // namespace mcnn::kernels
