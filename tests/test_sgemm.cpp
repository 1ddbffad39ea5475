// The SGEMM of our own (lib/src/kernels/sgemm.hpp): the plain triple loop gives a known product
// exactly; every micro-kernel this CPU can run (set_sgemm_kernel, so the portable one always runs
// too) equals the plain loops on many odd shapes (tile and block edges, transposes, strides wider
// than the matrix, overwrite and accumulate) within a rounding bound, and writes nothing outside C;
// kernel names, unsupported kernels and bad sizes are refused with messages that name them. The
// loops around every SIMD kernel (its tile and blocks) also run with a portable kernel of the same
// tile, so the AVX-512 kernel's packing and blocking are tested on CPUs without it; and so do the
// hooks a conv layer uses (its own packing of op(A) and op(B), C in blocks of columns, C's tiles
// handed to it).
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "../lib/src/kernels/sgemm.hpp"
#include "../lib/src/kernels/sgemm_detail.hpp"
#include "support.hpp"

using namespace mcnn;
using namespace mcnn::kernels;

namespace {

// Sets the kernel sgemm runs while it lives, then restores the previous one.
class KernelChoice {
public:
    explicit KernelChoice(CpuKernel k) : saved_(sgemm_kernel()) { set_sgemm_kernel(k); }
    ~KernelChoice() { set_sgemm_kernel(saved_); }
    KernelChoice(const KernelChoice&) = delete;
    KernelChoice& operator=(const KernelChoice&) = delete;

private:
    CpuKernel saved_;
};

std::vector<CpuKernel> supported_kernels() {
    std::vector<CpuKernel> out;
    for (CpuKernel k : {CpuKernel::portable, CpuKernel::avx2, CpuKernel::avx512})
        if (cpu_supports(k)) out.push_back(k);
        else BOOST_TEST_MESSAGE("sgemm: this CPU cannot run the " << cpu_kernel_name(k) << " kernel; its test is skipped");
    return out;
}

struct Case {
    int M, N, K;
    bool ta, tb, accumulate;
    int pad;  // extra columns in every row of A, B and C (strides wider than the matrices)
};

std::vector<float> random_floats(std::size_t n, std::mt19937& rng) {
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    std::vector<float> v(n);
    for (float& x : v) x = dist(rng);
    return v;
}

// C (M x N, row stride ldc) (+)= op(A) * op(B): sgemm or one of the variants under test.
using Gemm = std::function<void(int M, int N, int K, Operand a, Operand b, float* c, std::ptrdiff_t ldc, bool accumulate)>;

// Runs one case on `gemm` (by default sgemm on the current kernel) and on the plain loops and compares them element by element.
// Both sum K products in float, each within K * u * sum_k |a_ik b_kj| (+ |C_ij| when accumulating)
// of the exact value (u = 2^-24; the standard bound for a recursive sum, FMA or not). So the two
// differ by at most twice that; elements of C outside M x N (the stride's padding) stay untouched.
void check_case(const Case& t, std::mt19937& rng, const Gemm& gemm = sgemm, const std::string& name = "") {
    const int a_rows = t.ta ? t.K : t.M, a_cols = t.ta ? t.M : t.K, b_rows = t.tb ? t.N : t.K, b_cols = t.tb ? t.K : t.N;
    const Operand a_shape{nullptr, a_cols + t.pad, t.ta}, b_shape{nullptr, b_cols + t.pad, t.tb};
    const std::vector<float> a = random_floats(std::size_t(a_rows) * a_shape.stride, rng),
                             b = random_floats(std::size_t(b_rows) * b_shape.stride, rng),
                             c0 = random_floats(std::size_t(t.M) * (t.N + t.pad), rng);
    const Operand A{a.data(), a_shape.stride, t.ta}, B{b.data(), b_shape.stride, t.tb};
    const std::ptrdiff_t ldc = t.N + t.pad;
    std::vector<float> fast = c0, plain = c0;
    gemm(t.M, t.N, t.K, A, B, fast.data(), ldc, t.accumulate);
    sgemm_reference(t.M, t.N, t.K, A, B, plain.data(), ldc, t.accumulate);
    const double u = std::numeric_limits<float>::epsilon() / 2;
    int bad = 0;
    for (int i = 0; i < t.M && bad == 0; ++i)
        for (int j = 0; j < t.N + t.pad && bad == 0; ++j) {
            const std::size_t at = std::size_t(i) * ldc + j;
            if (j >= t.N) {
                bad += fast[at] != c0[at];
                continue;
            }
            double magnitude = t.accumulate ? std::abs(c0[at]) : 0.0;
            for (int p = 0; p < t.K; ++p) {
                const float ai = t.ta ? a[std::size_t(p) * A.stride + i] : a[std::size_t(i) * A.stride + p];
                const float bj = t.tb ? b[std::size_t(j) * B.stride + p] : b[std::size_t(p) * B.stride + j];
                magnitude += std::abs(double(ai) * bj);
            }
            const double bound = 2 * (t.K + 1) * u * magnitude;
            if (!(std::abs(double(fast[at]) - plain[at]) <= bound)) {
                ++bad;
                BOOST_TEST_MESSAGE("C(" << i << "," << j << ") = " << fast[at] << ", plain loops " << plain[at] << ", bound " << bound);
            }
        }
    BOOST_TEST(bad == 0, (name.empty() ? cpu_kernel_name(sgemm_kernel()) : name) << " M" << t.M << " N" << t.N << " K" << t.K << " ta" << t.ta << " tb"
                                                          << t.tb << " acc" << t.accumulate << " pad" << t.pad);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(sgemm_kernels)

BOOST_AUTO_TEST_CASE(plain_loops_give_a_known_product) {
    // A = [1 2 3; 4 5 6], B = [1 0; 0 1; 2 -1]: A * B = [7 -1; 16 -1]; A^T stored as 3 x 2, B^T as 2 x 3.
    const float a[] = {1, 2, 3, 4, 5, 6}, at[] = {1, 4, 2, 5, 3, 6}, b[] = {1, 0, 0, 1, 2, -1}, bt[] = {1, 0, 2, 0, 1, -1};
    const std::vector<float> expected = {7, -1, 16, -1};
    for (bool ta : {false, true})
        for (bool tb : {false, true}) {
            std::vector<float> c(4, 100.0f);
            sgemm_reference(2, 2, 3, {ta ? at : a, ta ? 2 : 3, ta}, {tb ? bt : b, tb ? 3 : 2, tb}, c.data(), 2, false);
            BOOST_TEST(c == expected, boost::test_tools::per_element());
            sgemm_reference(2, 2, 3, {ta ? at : a, ta ? 2 : 3, ta}, {tb ? bt : b, tb ? 3 : 2, tb}, c.data(), 2, true);
            BOOST_TEST(c == std::vector<float>({14, -2, 32, -2}), boost::test_tools::per_element());
        }
}

BOOST_AUTO_TEST_CASE(every_kernel_equals_the_plain_loops_on_odd_shapes) {
    std::mt19937 rng(5);
    // Sizes around every kernel's tile (4/6/12 rows, 16/32 columns) and blocks (KC 192/256, MC
    // 128/144/240), and 1 x 1 x 1.
    const int Ms[] = {1, 5, 6, 7, 12, 13, 25, 145, 241}, Ns[] = {1, 15, 16, 17, 33, 65}, Ks[] = {1, 3, 17, 193, 257};
    for (CpuKernel k : supported_kernels()) {
        const KernelChoice choice(k);
        int n = 0;
        for (int M : Ms)
            for (int N : Ns)
                for (int K : Ks) {
                    // Transposes, accumulation and padding vary with the case number, so every
                    // combination of them meets many shapes without running all 8 x 2 per shape.
                    const Case t{M, N, K, (n & 1) != 0, (n & 2) != 0, (n & 4) != 0, (n % 3)};
                    check_case(t, rng);
                    ++n;
                }
    }
}

BOOST_AUTO_TEST_CASE(every_kernel_handles_wider_than_one_column_block) {
    std::mt19937 rng(6);
    for (CpuKernel k : supported_kernels()) {
        const KernelChoice choice(k);
        for (bool accumulate : {false, true}) check_case({13, 4200, 20, false, true, accumulate, 1}, rng);
        // M within one MC block takes the loops that pack op(B) a panel at a time, over C blocks
        // of a few thousand columns: here several of them, each over two blocks of K.
        for (bool accumulate : {false, true}) check_case({13, 9000, 300, true, false, accumulate, 2}, rng);
    }
}

// The specs of every SIMD kernel, whatever this CPU runs: their tiles and blocks.
std::vector<detail::KernelSpec> all_specs() { return {detail::portable_spec(), detail::avx2_spec(), detail::avx512_spec()}; }

std::string spec_name(const detail::KernelSpec& s) {
    return fmt::format("loops {}x{} kc{} mc{} nc{}", s.mr, s.nr, s.kc, s.mc, s.nc);
}

BOOST_AUTO_TEST_CASE(every_tile_shape_packs_and_blocks_right_on_any_cpu) {
    // The loops around each SIMD kernel (its tile and its blocks) run with a portable kernel of the
    // same tile, so the 12 x 32 kernel's packing and blocking are checked on a CPU without AVX-512.
    std::mt19937 rng(7);
    const int Ms[] = {1, 11, 12, 13, 145, 241}, Ns[] = {1, 31, 32, 33, 65}, Ks[] = {1, 17, 193, 257};
    for (const detail::KernelSpec& simd : all_specs()) {
        const detail::KernelSpec s = detail::with_portable_kernel(simd);
        BOOST_TEST((s.mr == simd.mr && s.nr == simd.nr && s.kc == simd.kc && s.mc == simd.mc && s.nc == simd.nc));
        const Gemm gemm = [&s](int M, int N, int K, Operand a, Operand b, float* c, std::ptrdiff_t ldc, bool acc) {
            detail::sgemm_with(s, M, N, K, a, b, c, ldc, acc);
        };
        int n = 0;
        for (int M : Ms)
            for (int N : Ns)
                for (int K : Ks) {
                    check_case({M, N, K, (n & 1) != 0, (n & 2) != 0, (n & 4) != 0, n % 3}, rng, gemm, spec_name(s));
                    ++n;
                }
        for (bool acc : {false, true}) check_case({13, s.nc + 40, 20, false, true, acc, 1}, rng, gemm, spec_name(s));
    }
}

BOOST_AUTO_TEST_CASE(small_blocks_cross_every_block_edge) {
    // Blocks far smaller than the matrices: many KC, MC and NC blocks, and blocks that are not
    // multiples of the tile, for every tile shape.
    std::mt19937 rng(8);
    for (detail::KernelSpec s : all_specs()) {
        s = detail::with_portable_kernel(s);
        s.kc = 5;
        s.mc = s.mr * 2 + 1;
        s.nc = s.nr * 3 - 1;
        const Gemm gemm = [&s](int M, int N, int K, Operand a, Operand b, float* c, std::ptrdiff_t ldc, bool acc) {
            detail::sgemm_with(s, M, N, K, a, b, c, ldc, acc);
        };
        int n = 0;
        for (int M : {1, 30, 61})
            for (int N : {7, 100, 129})
                for (int K : {4, 5, 23}) {
                    check_case({M, N, K, (n & 1) != 0, (n & 2) != 0, (n & 4) != 0, n % 3}, rng, gemm, spec_name(s));
                    ++n;
                }
    }
}

// op(B) packed from a plain matrix by a caller's routine, and C's tiles added into a matrix by a
// caller's sink, each counting its calls.
struct MatrixPanels final : detail::PanelSource {
    Operand b;
    mutable int calls = 0;
    void pack(int p0, int j0, int kc, int nc, int nr, float* dst) const override {
        ++calls;
        for (int jr = 0; jr < nc; jr += nr, dst += static_cast<std::ptrdiff_t>(nr) * kc)
            for (int p = 0; p < kc; ++p)
                for (int j = 0; j < nr; ++j) {
                    const int col = j0 + jr + j, row = p0 + p;
                    dst[p * nr + j] = jr + j < nc ? (b.transposed ? b.data[col * b.stride + row] : b.data[row * b.stride + col]) : 0.0f;
                }
    }
};
struct MatrixTiles final : detail::TileSink {
    float* c;
    std::ptrdiff_t ldc;
    mutable int calls = 0;
    void add(int i0, int j0, int m, int n, const float* tile, std::ptrdiff_t ldt) const override {
        ++calls;
        for (int i = 0; i < m; ++i)
            for (int j = 0; j < n; ++j) c[(i0 + i) * ldc + j0 + j] += tile[i * ldt + j];
    }
};

BOOST_AUTO_TEST_CASE(callers_packing_and_tile_sink_equal_the_plain_loops) {
    std::mt19937 rng(9);
    for (detail::KernelSpec s : all_specs()) {
        s = detail::with_portable_kernel(s);
        s.kc = 7;  // several blocks of K: the sink receives a tile once per block
        int n = 0, panel_calls = 0, tile_calls = 0;
        const Gemm through_stored_c = [&](int M, int N, int K, Operand a, Operand b, float* c, std::ptrdiff_t ldc, bool acc) {
            MatrixPanels panels;
            panels.b = b;
            detail::sgemm_with(s, M, N, K, a, panels, c, ldc, acc);
            panel_calls += panels.calls;
        };
        const Gemm through_sink = [&](int M, int N, int K, Operand a, Operand b, float* c, std::ptrdiff_t ldc, bool acc) {
            if (!acc)
                for (int i = 0; i < M; ++i) std::fill(c + i * ldc, c + i * ldc + N, 0.0f);
            MatrixPanels panels;
            panels.b = b;
            MatrixTiles tiles;
            tiles.c = c;
            tiles.ldc = ldc;
            detail::sgemm_with(s, M, N, K, a, panels, tiles);
            tile_calls += tiles.calls;
        };
        for (int M : {1, 13, 30})
            for (int N : {5, 33, 70})
                for (int K : {3, 20}) {
                    const Case t{M, N, K, (n & 1) != 0, (n & 2) != 0, (n & 4) != 0, n % 3};
                    check_case(t, rng, through_stored_c, spec_name(s) + " (caller's packing)");
                    check_case(t, rng, through_sink, spec_name(s) + " (caller's packing and tile sink)");
                    ++n;
                }
        BOOST_TEST(panel_calls > 0);
        BOOST_TEST(tile_calls > 0);
    }
}

// op(A) packed by a caller's routine: a source of op(A)^T (sgemm_detail.hpp), from a plain matrix.
struct MatrixRows final : detail::PanelSource {
    Operand a;
    mutable int calls = 0;
    void pack(int p0, int i0, int kc, int mc, int mr, float* dst) const override {
        ++calls;
        for (int ir = 0; ir < mc; ir += mr, dst += static_cast<std::ptrdiff_t>(mr) * kc)
            for (int p = 0; p < kc; ++p)
                for (int i = 0; i < mr; ++i) {
                    const int row = i0 + ir + i, col = p0 + p;
                    dst[p * mr + i] = ir + i < mc ? (a.transposed ? a.data[col * a.stride + row] : a.data[row * a.stride + col]) : 0.0f;
                }
    }
};

BOOST_AUTO_TEST_CASE(callers_packing_of_a_packed_a_and_c_in_column_blocks_equal_the_plain_loops) {
    // C in blocks of 1, 5, NR and NR + 3 columns (tiles inside a block, across one edge, across
    // several), each block at its own place with a gap after it that must stay untouched; and op(A)
    // packed by the caller, or packed once whole (PackedRows). Several blocks of K and of M (MC not
    // a multiple of MR), so a tile is stored once and then added to.
    std::mt19937 rng(10);
    for (detail::KernelSpec s : all_specs()) {
        s = detail::with_portable_kernel(s);
        s.kc = 7;
        s.mc = s.mr * 2 + 1;
        int n = 0, row_calls = 0, untouched = 0, gaps = 0;
        const Gemm through_rows = [&](int M, int N, int K, Operand a, Operand b, float* c, std::ptrdiff_t ldc, bool acc) {
            MatrixRows rows;
            rows.a = a;
            MatrixPanels panels;
            panels.b = b;
            detail::sgemm_with(s, M, N, K, rows, panels, detail::ColumnBlocks{c, ldc}, acc);
            row_calls += rows.calls;
        };
        const Gemm through_packed_rows = [&](int M, int N, int K, Operand a, Operand b, float* c, std::ptrdiff_t ldc, bool acc) {
            const detail::PackedRows rows(s, M, K, a);
            BOOST_TEST(rows.packed(0, 0, std::min(K, s.kc), std::min(M, s.mc), s.mr) != nullptr);
            BOOST_TEST(rows.packed(0, 1, std::min(K, s.kc), std::min(M, s.mc), s.mr) == nullptr);  // not a block of s
            detail::sgemm_with(s, M, N, K, rows, detail::OperandPanels(b), detail::ColumnBlocks{c, ldc}, acc);
        };
        for (int block : {1, 5, s.nr, s.nr + 3}) {
            const Gemm through_blocks = [&](int M, int N, int K, Operand a, Operand b, float* c, std::ptrdiff_t ldc, bool acc) {
                const std::ptrdiff_t stride = static_cast<std::ptrdiff_t>(M) * block + 3;  // 3 sentinels after each block
                const int blocks = (N + block - 1) / block;
                std::vector<float> blocked(static_cast<std::size_t>(stride) * blocks, -7.5f);
                auto at = [&](int i, int j) -> float& { return blocked[(j / block) * stride + i * block + j % block]; };
                for (int i = 0; i < M; ++i)
                    for (int j = 0; j < N; ++j) at(i, j) = c[i * ldc + j];
                detail::sgemm_with(s, M, N, K, detail::OperandRows(a), detail::OperandPanels(b), detail::ColumnBlocks{blocked.data(), block, block, stride}, acc);
                for (int i = 0; i < M; ++i)
                    for (int j = 0; j < N; ++j) c[i * ldc + j] = at(i, j);
                for (int b0 = 0; b0 < blocks; ++b0, ++gaps)
                    untouched += std::all_of(&blocked[b0 * stride + M * block], &blocked[b0 * stride + stride], [](float x) { return x == -7.5f; });
            };
            for (int M : {1, 13, 30})
                for (int N : {5, 33, 70})
                    for (int K : {3, 20}) {
                        const Case t{M, N, K, (n & 1) != 0, (n & 2) != 0, (n & 4) != 0, n % 3};
                        check_case(t, rng, through_blocks, spec_name(s) + fmt::format(" (C in blocks of {})", block));
                        if (block == 1) check_case(t, rng, through_rows, spec_name(s) + " (caller's packing of A)");
                        if (block == 5) check_case(t, rng, through_packed_rows, spec_name(s) + " (A packed once)");
                        ++n;
                    }
        }
        BOOST_TEST(row_calls > 0);
        BOOST_TEST(untouched == gaps, spec_name(s) << ": " << gaps - untouched << " gaps after blocks of C written");
    }
    const float x = 1;
    float c = 0;
    CHECK_MESSAGE_HAS(test::error_of([&] {
                          detail::sgemm_with(detail::portable_spec(), 1, 1, 1, detail::OperandRows({&x, 1}), detail::OperandPanels({&x, 1}), detail::ColumnBlocks{&c, 1, 0, 1}, false);
                      }),
                      "blocks of 0 columns");
}

BOOST_AUTO_TEST_CASE(bad_specs_are_refused) {
    detail::KernelSpec odd = detail::portable_spec();
    odd.mr = 5;
    CHECK_MESSAGE_HAS(test::error_of([&] { detail::with_portable_kernel(odd); }), "5 x 16 tile");
    detail::KernelSpec huge = detail::with_portable_kernel(detail::avx512_spec());
    huge.mr = 24;
    const float x = 1;
    float c = 0;
    CHECK_MESSAGE_HAS(test::error_of([&] { detail::sgemm_with(huge, 1, 1, 1, {&x, 1}, {&x, 1}, &c, 1, false); }), "tile 24 x 32");
}

BOOST_AUTO_TEST_CASE(zero_k_writes_zeros_or_leaves_c) {
    std::vector<float> c = {1, 2, 3, 4};
    const float dummy = 0;
    sgemm(2, 2, 0, {&dummy, 1}, {&dummy, 2}, c.data(), 2, true);
    BOOST_TEST(c == std::vector<float>({1, 2, 3, 4}), boost::test_tools::per_element());
    sgemm(2, 2, 0, {&dummy, 1}, {&dummy, 2}, c.data(), 2, false);
    BOOST_TEST(c == std::vector<float>(4, 0.0f), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(kernel_names_round_trip_and_bad_choices_are_refused) {
    for (CpuKernel k : {CpuKernel::portable, CpuKernel::avx2, CpuKernel::avx512})
        BOOST_TEST((cpu_kernel_from_name(cpu_kernel_name(k)) == k), cpu_kernel_name(k));
    const std::string unknown = test::error_of([] { cpu_kernel_from_name("sse9"); });
    CHECK_MESSAGE_HAS(unknown, "'sse9'");
    CHECK_MESSAGE_HAS(unknown, "avx512, avx2, portable");
    BOOST_TEST(cpu_supports(CpuKernel::portable));
    for (CpuKernel k : {CpuKernel::avx2, CpuKernel::avx512})
        if (!cpu_supports(k)) {
            const std::string refused = test::error_of([k] { set_sgemm_kernel(k); });
            CHECK_MESSAGE_HAS(refused, cpu_kernel_name(k));
            CHECK_MESSAGE_HAS(refused, "cannot run");
        }
    const float x = 1;
    float c = 0;
    CHECK_MESSAGE_HAS(test::error_of([&] { sgemm(-1, 1, 1, {&x, 1}, {&x, 1}, &c, 1, false); }), "sgemm: negative size M -1");
}

BOOST_AUTO_TEST_SUITE_END()
