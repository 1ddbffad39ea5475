#pragma once
// SGEMM of our own (internal to the library): C (M x N) = or += op(A) (M x K) * op(B) (K x N) on
// row-major float matrices, BLIS-style. The three products of a conv layer are all of this form:
//   Y  = K * cols,   dK += dY * cols^T,   dcols = K^T * dY.
//
// sgemm packs op(B) in KC x NC blocks into NR-wide panels and op(A) in MC x KC blocks into MR-tall
// panels (zero-padded at the edges), then runs an MR x NR register-blocked micro-kernel over them;
// edge tiles are computed into a small scratch tile and copied out. The micro-kernel is chosen at
// run time (see CpuKernel); sgemm_reference is the plain triple loop it is tested against.
#include <cstddef>
#include <string>

namespace mcnn::kernels {

/// A row-major float matrix: element (i, j) at data[i * stride + j]. With `transposed` the operand
/// is its transpose: op(X)(i, j) = data[j * stride + i].
struct Operand {
    const float* data;
    std::ptrdiff_t stride;
    bool transposed = false;
};

/// C (M x N, element (i, j) at c[i * ldc + j]) = op(A) * op(B) (K summed), or += with `accumulate`.
/// op(A) is M x K, op(B) is K x N. K == 0 gives zeros (or leaves C as it is when accumulating).
/// Single-threaded; the caller splits work between threads. Sums each C element over k in blocks of
/// the kernel's KC, so results equal sgemm_reference's up to float rounding (see the tests).
void sgemm(int M, int N, int K, Operand a, Operand b, float* c, std::ptrdiff_t ldc, bool accumulate);

/// The same product by the plain triple loop of its definition, summing k in order in float: the
/// oracle sgemm is tested against.
void sgemm_reference(int M, int N, int K, Operand a, Operand b, float* c, std::ptrdiff_t ldc, bool accumulate);

/// The micro-kernels sgemm can run.
///   avx512:   12 x 32 tile (24 zmm accumulators), compiled for AVX-512F (function target attribute),
///   avx2:     6 x 16 tile (12 ymm accumulators), compiled for AVX2 + FMA,
///   portable: 4 x 16 tile in plain C++ that the compiler vectorises for the build's own flags.
/// Each is compiled into every build, whatever -march says; which runs is decided at run time.
enum class CpuKernel { portable, avx2, avx512 };

/// "portable", "avx2" or "avx512".
const char* cpu_kernel_name(CpuKernel kernel);
/// The kernel called `name` (as cpu_kernel_name writes it); throws naming `name` and the known names.
CpuKernel cpu_kernel_from_name(const std::string& name);
/// Whether this CPU can run `kernel` (__builtin_cpu_supports; portable always).
bool cpu_supports(CpuKernel kernel);
/// The micro-kernel sgemm runs: the one set_sgemm_kernel chose, else the one the environment
/// variable MCNN_CPU names ("portable", "avx2", "avx512"), else the fastest this CPU supports
/// (avx512, then avx2, then portable). An unknown or unsupported MCNN_CPU is an error.
CpuKernel sgemm_kernel();
/// Makes sgemm run `kernel` from now on (all threads); throws when this CPU cannot run it.
void set_sgemm_kernel(CpuKernel kernel);

}  // namespace mcnn::kernels
