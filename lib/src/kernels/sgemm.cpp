// sgemm (sgemm.hpp, sgemm_detail.hpp): packing, the loops around the micro-kernel, the portable
// micro-kernels, the choice of micro-kernel at run time, and the plain triple loop it is all tested
// against.
//
// Loops, BLIS order (jc, pc, ic, jr, ir), for kernel tile MR x NR and blocks KC, MC, NC:
//   for jc in N by NC:  for pc in K by KC:  pack op(B)[pc.., jc..] (kc x nc) into NR-wide panels
//     for ic in M by MC:  pack op(A)[ic.., pc..] (mc x kc) into MR-tall panels
//       for jr in nc by NR:  for ir in mc by MR:  C tile (ic+ir, jc+jr) (+)= A panel * B panel
// When all of M fits one MC block (a conv layer's out channels), op(B) is packed a panel at a time
// right before the tiles that use it (the panel stays in L1 instead of a KC x NC block going out
// to L3 and back), over C blocks of about small_m_c_floats (kept in L2 across the blocks of K):
//   for jc in N by NCs:  for pc in K by KC:  pack op(A)[.., pc..] (M x kc)
//     for jr in ncs by NR:  pack op(B)[pc.., jc+jr..] (kc x NR);  for ir in M by MR: C tile (+)= ...
// Each C element is summed over the same blocks of K in the same order either way.
// Panels are zero-padded to MR / NR, so the micro-kernel always computes a whole tile; tiles that
// stick out of C are computed into a scratch tile and the part inside C copied (or added) out.
// op(A) and op(B) may be packed by the caller's routines (PanelSource), C may lie in blocks of
// columns (ColumnBlocks: tiles that cross a block's edge go through the scratch tile), and C's tiles
// may be handed to the caller (TileSink) instead of stored; then every tile goes through the scratch
// tile.
#include "sgemm.hpp"

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "mcnn/error.hpp"
#include "sgemm_detail.hpp"

namespace mcnn::kernels {
namespace detail {

constexpr int portable_mr = 4, portable_nr = 16;

KernelSpec portable_spec() { return {portable_mr, portable_nr, 256, 128, 4096, kernel_loops<portable_mr, portable_nr>}; }

KernelSpec with_portable_kernel(KernelSpec spec) {
    if (spec.mr == 4 && spec.nr == 16) spec.run = kernel_loops<4, 16>;
    else if (spec.mr == 6 && spec.nr == 16) spec.run = kernel_loops<6, 16>;
    else if (spec.mr == 12 && spec.nr == 32) spec.run = kernel_loops<12, 32>;
    else fail("with_portable_kernel: no portable kernel for a {} x {} tile (4 x 16, 6 x 16, 12 x 32)", spec.mr, spec.nr);
    return spec;
}

}  // namespace detail

namespace {

using detail::KernelSpec;
using detail::OperandPanels;
using detail::OperandRows;
using detail::PanelSource;
using detail::TileSink;
using Buffer = std::vector<float, std::allocator<float>>;

// A per-thread buffer of at least n floats, 64-byte aligned, that only grows.
float* scratch(int which, std::size_t n) {
    thread_local Buffer buffers[2];
    Buffer& buffer = buffers[which];
    if (buffer.size() < n + 16) buffer.resize(n + 16);
    const auto address = reinterpret_cast<std::uintptr_t>(buffer.data());
    return buffer.data() + ((64 - address % 64) % 64) / sizeof(float);
}

// One W-wide panel of `count` rows from a matrix whose panel rows are contiguous: dst[p * W + j] =
// src[p * stride + j] for j < n, zero for n <= j < W. W is a template parameter where the tile
// allows (the copies are then a few vector moves, not a memmove call per row).
template <int W>
void panel_from_rows(const float* src, std::ptrdiff_t stride, int count, int n, float* dst) {
    if (n == W) {
        for (int p = 0; p < count; ++p, src += stride, dst += W)
#pragma GCC unroll 32
            for (int j = 0; j < W; ++j) dst[j] = src[j];
        return;
    }
    for (int p = 0; p < count; ++p, src += stride, dst += W)
#pragma GCC unroll 32
        for (int j = 0; j < W; ++j) dst[j] = j < n ? src[j] : 0.0f;
}

// The same for a panel whose rows are the source's columns: dst[p * W + j] = src[j * stride + p]
// for j < n, zero for n <= j < W. Reads n streams side by side, writes the panel in order.
template <int W>
void panel_from_columns(const float* src, std::ptrdiff_t stride, int count, int n, float* dst) {
    const float* col[W];
    for (int j = 0; j < W; ++j) col[j] = src + static_cast<std::ptrdiff_t>(std::min(j, n - 1)) * stride;
    for (int p = 0; p < count; ++p, dst += W)
#pragma GCC unroll 32
        for (int j = 0; j < W; ++j) dst[j] = j < n ? col[j][p] : 0.0f;
}

// A panel of width w (the tile's MR or NR): the templated copies for the widths of the kernels
// (4, 6, 12, 16, 32), plain loops for any other.
void pack_panel(bool rows, const float* src, std::ptrdiff_t stride, int count, int n, int w, float* dst) {
    switch (w) {
        case 4: return rows ? panel_from_rows<4>(src, stride, count, n, dst) : panel_from_columns<4>(src, stride, count, n, dst);
        case 6: return rows ? panel_from_rows<6>(src, stride, count, n, dst) : panel_from_columns<6>(src, stride, count, n, dst);
        case 12: return rows ? panel_from_rows<12>(src, stride, count, n, dst) : panel_from_columns<12>(src, stride, count, n, dst);
        case 16: return rows ? panel_from_rows<16>(src, stride, count, n, dst) : panel_from_columns<16>(src, stride, count, n, dst);
        case 32: return rows ? panel_from_rows<32>(src, stride, count, n, dst) : panel_from_columns<32>(src, stride, count, n, dst);
        default: break;
    }
    for (int p = 0; p < count; ++p)
        for (int j = 0; j < w; ++j)
            dst[p * w + j] = j >= n ? 0.0f : rows ? src[p * stride + j] : src[static_cast<std::ptrdiff_t>(j) * stride + p];
}

// op(A)[i0 .. i0+mc, p0 .. p0+kc] into MR-tall panels: panel r holds rows i0 + r*MR .. as
// dst[r*MR*kc + p*MR + i], rows past mc zero.
void pack_a(Operand a, int i0, int p0, int mc, int kc, int mr, float* dst) {
    for (int ir = 0; ir < mc; ir += mr, dst += static_cast<std::ptrdiff_t>(mr) * kc) {
        const int m = std::min(mr, mc - ir);
        if (a.transposed)  // op(A)(i, p) = data[p * stride + i]: rows of the panel are contiguous
            pack_panel(true, a.data + static_cast<std::ptrdiff_t>(p0) * a.stride + i0 + ir, a.stride, kc, m, mr, dst);
        else  // op(A)(i, p) = data[i * stride + p]
            pack_panel(false, a.data + static_cast<std::ptrdiff_t>(i0 + ir) * a.stride + p0, a.stride, kc, m, mr, dst);
    }
}

// op(B)[p0 .. p0+kc, j0 .. j0+nc] into NR-wide panels: panel r holds columns j0 + r*NR .. as
// dst[r*NR*kc + p*NR + j], columns past nc zero.
void pack_b(Operand b, int p0, int j0, int kc, int nc, int nr, float* dst) {
    for (int jr = 0; jr < nc; jr += nr, dst += static_cast<std::ptrdiff_t>(nr) * kc) {
        const int n = std::min(nr, nc - jr);
        if (b.transposed)  // op(B)(p, j) = data[j * stride + p]
            pack_panel(false, b.data + static_cast<std::ptrdiff_t>(j0 + jr) * b.stride + p0, b.stride, kc, n, nr, dst);
        else  // op(B)(p, j) = data[p * stride + j]: rows of the panel are contiguous
            pack_panel(true, b.data + static_cast<std::ptrdiff_t>(p0) * b.stride + j0 + jr, b.stride, kc, n, nr, dst);
    }
}

// Where C goes: the matrix c (row stride ldc, its columns in blocks as ColumnBlocks says), or, when
// `sink` is set, its tiles to the sink.
struct Target {
    float* c;
    std::ptrdiff_t ldc;
    const TileSink* sink;
    int block = INT_MAX;
    std::ptrdiff_t block_stride = 0;
    float* at(int i, int j) const { return c + (j / block) * block_stride + i * ldc + j % block; }
};

// C (+)= the m x n scratch tile (row stride ldt) at (i0, j0), a run of columns inside one block at a time.
void tile_out(const Target& t, int i0, int j0, int m, int n, const float* tile, std::ptrdiff_t ldt, bool accumulate) {
    for (int j = 0; j < n;) {
        const int run = std::min(n - j, t.block - (j0 + j) % t.block);
        float* ct = t.at(i0, j0 + j);
        for (int i = 0; i < m; ++i)
            for (int k = 0; k < run; ++k)
                ct[i * t.ldc + k] = accumulate ? tile[i * ldt + j + k] + ct[i * t.ldc + k] : tile[i * ldt + j + k];
        j += run;
    }
}

// The C block at (i0, j0), mc x nc, (+)= packed A block * packed B block, tile by tile.
void macro_kernel(const KernelSpec& s, int i0, int j0, int mc, int nc, int kc, const float* pa, const float* pb, Target t,
                  bool accumulate) {
    alignas(64) float tile[detail::max_tile];
    for (int jr = 0; jr < nc; jr += s.nr) {
        const int n = std::min(s.nr, nc - jr);
        const float* b = pb + static_cast<std::ptrdiff_t>(jr) * kc;
        const bool in_one_block = (j0 + jr) % t.block + n <= t.block;
        for (int ir = 0; ir < mc; ir += s.mr) {
            const int m = std::min(s.mr, mc - ir);
            const float* a = pa + static_cast<std::ptrdiff_t>(ir) * kc;
            if (t.sink) {
                s.run(kc, a, b, tile, s.nr, false);
                t.sink->add(i0 + ir, j0 + jr, m, n, tile, s.nr);
                continue;
            }
            if (m == s.mr && n == s.nr && in_one_block) {
                s.run(kc, a, b, t.at(i0 + ir, j0 + jr), t.ldc, accumulate);
                continue;
            }
            s.run(kc, a, b, tile, s.nr, false);
            tile_out(t, i0 + ir, j0 + jr, m, n, tile, s.nr, accumulate);
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

namespace {

// C floats that the small-M loops keep in L2 across the blocks of K (256 KiB, half of Zen 3's L2).
constexpr int small_m_c_floats = 1 << 16;

// The small-M loops of the top of this file (M <= s.mc), C as `t` says.
void run_small_m(const KernelSpec& s, int M, int N, int K, const PanelSource& a, const PanelSource& b, Target t, bool accumulate) {
    const int KC = std::min(s.kc, K), Mp = (M + s.mr - 1) / s.mr * s.mr;
    const int NCs = std::clamp(small_m_c_floats / Mp / s.nr * s.nr, s.nr, std::max(s.nc / s.nr * s.nr, s.nr));
    float* pb = scratch(0, static_cast<std::size_t>(KC) * s.nr);
    float* pa = scratch(1, static_cast<std::size_t>(KC) * Mp);
    for (int jc = 0; jc < N; jc += NCs) {
        const int nc = std::min(NCs, N - jc);
        for (int pc = 0; pc < K; pc += s.kc) {
            const int kc = std::min(s.kc, K - pc);
            const float* panels = a.packed(pc, 0, kc, M, s.mr);
            if (!panels) a.pack(pc, 0, kc, M, s.mr, pa);
            for (int jr = 0; jr < nc; jr += s.nr) {
                const int n = std::min(s.nr, nc - jr);
                b.pack(pc, jc + jr, kc, n, s.nr, pb);
                macro_kernel(s, 0, jc + jr, M, n, kc, panels ? panels : pa, pb, t, accumulate || pc > 0);
            }
        }
    }
}

// The loops of the top of this file, C as `t` says.
void run_blocks(const KernelSpec& s, int M, int N, int K, const PanelSource& a, const PanelSource& b, Target t, bool accumulate) {
    if (s.mr * s.nr > detail::max_tile || s.mr <= 0 || s.nr <= 0 || s.kc <= 0 || s.mc <= 0 || s.nc <= 0)
        fail("sgemm: bad kernel spec: tile {} x {} (at most {} elements), blocks kc {} mc {} nc {}", s.mr, s.nr, detail::max_tile,
             s.kc, s.mc, s.nc);
    check_sizes(M, N, K);
    if (M == 0 || N == 0) return;
    if (K == 0) {
        if (!accumulate && !t.sink)
            for (int i = 0; i < M; ++i)
                for (int j = 0; j < N; ++j) *t.at(i, j) = 0.0f;
        return;
    }
    if (M <= s.mc) return run_small_m(s, M, N, K, a, b, t, accumulate);
    const int KC = std::min(s.kc, K), MC = std::min(s.mc, M), NC = std::min(s.nc, N);
    float* pb = scratch(0, static_cast<std::size_t>(KC) * ((NC + s.nr - 1) / s.nr * s.nr));
    float* pa = scratch(1, static_cast<std::size_t>(KC) * ((MC + s.mr - 1) / s.mr * s.mr));
    for (int jc = 0; jc < N; jc += s.nc) {
        const int nc = std::min(s.nc, N - jc);
        for (int pc = 0; pc < K; pc += s.kc) {
            const int kc = std::min(s.kc, K - pc);
            b.pack(pc, jc, kc, nc, s.nr, pb);
            for (int ic = 0; ic < M; ic += s.mc) {
                const int mc = std::min(s.mc, M - ic);
                const float* panels = a.packed(pc, ic, kc, mc, s.mr);
                if (!panels) a.pack(pc, ic, kc, mc, s.mr, pa);
                macro_kernel(s, ic, jc, mc, nc, kc, panels ? panels : pa, pb, t, accumulate || pc > 0);
            }
        }
    }
}

}  // namespace

namespace detail {

void OperandPanels::pack(int p0, int j0, int kc, int nc, int nr, float* dst) const { pack_b(b_, p0, j0, kc, nc, nr, dst); }

void OperandRows::pack(int p0, int i0, int kc, int mc, int mr, float* dst) const { pack_a(a_, i0, p0, mc, kc, mr, dst); }

// Blocks of K one after the other, each holding every block of M's panels: the block at (p0, i0)
// starts p0 * (M rounded up to panels per MC block) + (i0 / MC) * (MC rounded up to MR) * kc in.
std::ptrdiff_t PackedRows::offset(int p0, int i0) const {
    const int KC = std::min(spec_.kc, K_), MC = std::min(spec_.mc, M_), mr = spec_.mr;
    const auto panel_rows = [mr](int m) { return static_cast<std::ptrdiff_t>((m + mr - 1) / mr * mr); };
    const std::ptrdiff_t all_rows = (M_ / MC) * panel_rows(MC) + panel_rows(M_ % MC), kc = std::min(KC, K_ - p0);
    return p0 * all_rows + (i0 / MC) * panel_rows(MC) * kc;
}

PackedRows::PackedRows(const KernelSpec& spec, int M, int K, Operand a) : spec_(spec), M_(M), K_(K), a_(a) {
    check_sizes(M, K, 1);
    if (M == 0 || K == 0) return;
    panels_.resize(static_cast<std::size_t>(offset(K, 0)));
    const int KC = std::min(spec.kc, K), MC = std::min(spec.mc, M);
    for (int pc = 0; pc < K; pc += KC)
        for (int ic = 0; ic < M; ic += MC)
            pack_a(a, ic, pc, std::min(MC, M - ic), std::min(KC, K - pc), spec.mr, panels_.data() + offset(pc, ic));
}

const float* PackedRows::packed(int p0, int i0, int kc, int mc, int mr) const {
    const int KC = std::min(spec_.kc, K_), MC = std::min(spec_.mc, M_);
    const bool blocks_of_spec = mr == spec_.mr && p0 % KC == 0 && i0 % MC == 0 && kc == std::min(KC, K_ - p0) &&
                                mc == std::min(MC, M_ - i0);
    return blocks_of_spec ? panels_.data() + offset(p0, i0) : nullptr;
}

void PackedRows::pack(int p0, int i0, int kc, int mc, int mr, float* dst) const { pack_a(a_, i0, p0, mc, kc, mr, dst); }

KernelSpec current_spec() { return spec_of(sgemm_kernel()); }

void sgemm_with(const KernelSpec& spec, int M, int N, int K, Operand a, Operand b, float* c, std::ptrdiff_t ldc,
                bool accumulate) {
    run_blocks(spec, M, N, K, OperandRows(a), OperandPanels(b), {c, ldc, nullptr}, accumulate);
}

void sgemm_with(const KernelSpec& spec, int M, int N, int K, Operand a, const PanelSource& b, float* c, std::ptrdiff_t ldc,
                bool accumulate) {
    run_blocks(spec, M, N, K, OperandRows(a), b, {c, ldc, nullptr}, accumulate);
}

void sgemm_with(const KernelSpec& spec, int M, int N, int K, const PanelSource& a, const PanelSource& b, ColumnBlocks c,
                bool accumulate) {
    if (c.block <= 0) fail("sgemm: C in blocks of {} columns (must be positive)", c.block);
    run_blocks(spec, M, N, K, a, b, {c.data, c.ld, nullptr, c.block, c.block_stride}, accumulate);
}

void sgemm_with(const KernelSpec& spec, int M, int N, int K, const PanelSource& a, const PanelSource& b, const TileSink& c) {
    run_blocks(spec, M, N, K, a, b, {nullptr, 0, &c}, true);
}

void sgemm_with(const KernelSpec& spec, int M, int N, int K, Operand a, const PanelSource& b, const TileSink& c) {
    run_blocks(spec, M, N, K, OperandRows(a), b, {nullptr, 0, &c}, true);
}

void sgemm_with(const KernelSpec& spec, int M, int N, int K, Operand a, Operand b, const TileSink& c) {
    run_blocks(spec, M, N, K, OperandRows(a), OperandPanels(b), {nullptr, 0, &c}, true);
}

}  // namespace detail

void sgemm(int M, int N, int K, Operand a, Operand b, float* c, std::ptrdiff_t ldc, bool accumulate) {
    detail::sgemm_with(spec_of(sgemm_kernel()), M, N, K, a, b, c, ldc, accumulate);
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
