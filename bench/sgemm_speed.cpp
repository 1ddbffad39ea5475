// Speed of our SGEMM (lib/src/kernels/sgemm.hpp) on one thread, against the FMA peak and OpenBLAS.
//   bench_sgemm [--case ukernel|shapes|all] [--kernel avx2|avx512|portable] [--reps 7] [--peak G] [--blocks KC MC NC] [--only NAME]
// ukernel: the micro-kernel alone, called over and over on packed panels that stay in L1 (kc x MR of A,
//   kc x NR of B, the C tile), so only its own instruction schedule limits it; printed as GFLOP/s and
//   as a fraction of the FMA peak measured in the same run (bench --case fma-peak's kernel), the two
//   timed alternately so that other work on a shared machine hits both alike.
// shapes: sgemm on the products of the conv layers (forward Y = K * cols, backward data K^T * dY,
//   backward weights dY * cols^T; TunedCNN's and the modern network's layers at their im2col group
//   widths) and on squares, beside OpenBLAS's cblas_sgemm (loaded at run time from libopenblas.so.0,
//   one thread) where it is installed; the two are timed alternately, best of --reps.
// Times are the thread's CPU time (CLOCK_THREAD_CPUTIME_ID): not stretched by waiting for a core.
#include <dlfcn.h>

#include <algorithm>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include "../lib/src/cli/fma_peak.hpp"
#include "../lib/src/kernels/sgemm_detail.hpp"

using namespace mcnn::kernels;

namespace {

double thread_seconds() {
    timespec t{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

template <class F>
double seconds_of(F&& f) {
    const double t0 = thread_seconds();
    f();
    return thread_seconds() - t0;
}

std::vector<float> random_floats(std::size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    std::vector<float> v(n);
    for (float& x : v) x = dist(rng);
    return v;
}

// ---- the micro-kernel alone -------------------------------------------------------------------

void bench_ukernel(CpuKernel kernel, int reps, double peak_given) {
    set_sgemm_kernel(kernel);
    const detail::KernelSpec s = detail::current_spec();
    const int kc = s.kc;
    const std::vector<float> a = random_floats(std::size_t(kc) * s.mr + 16, 1), b = random_floats(std::size_t(kc) * s.nr + 16, 2);
    alignas(64) float c[detail::max_tile];
    const long calls = std::max(1L, static_cast<long>(2e8 / (2.0 * s.mr * s.nr * kc)));  // ~0.1 s per timing at 2e9 FMA/s
    const double gflop = 2.0 * s.mr * s.nr * kc * static_cast<double>(calls) / 1e9;
    double best = 1e300, best_peak = peak_given;
    const auto isa = kernel == CpuKernel::avx512 ? mcnn::cli::detail::FmaIsa::avx512f
                     : kernel == CpuKernel::avx2 ? mcnn::cli::detail::FmaIsa::avx2_fma
                                                 : mcnn::cli::detail::FmaIsa::portable;
    for (int r = 0; r < reps; ++r) {
        best = std::min(best, seconds_of([&] {
                            for (long i = 0; i < calls; ++i) s.run(kc, a.data(), b.data(), c, s.nr, (i & 1) != 0);
                        }));
        if (peak_given <= 0)
            best_peak = std::max(best_peak, mcnn::cli::detail::measure_fma_peak(isa, 1, 0.1, 1).gflops);
    }
    if (c[0] != c[0]) fmt::print("(nan)\n");  // keeps c live
    const double gf = gflop / best;
    fmt::print("micro-kernel {} {}x{} kc {}: {:.1f} GFLOP/s = {:.1f} % of the FMA peak {:.1f} GFLOP/s ({})\n",
               cpu_kernel_name(kernel), s.mr, s.nr, kc, gf, 100 * gf / best_peak, best_peak,
               peak_given > 0 ? "given" : "measured alternately");
    fmt::print("RESULT case=ukernel kernel={} gflops={:.2f} peak={:.2f} fraction={:.3f}\n", cpu_kernel_name(kernel), gf, best_peak,
               gf / best_peak);
}

// ---- shapes ------------------------------------------------------------------------------------

struct Shape {
    std::string name;
    int M, N, K;
    bool ta, tb;
};

// A conv layer's three products at group width n columns (R = in*k*k rows of cols, D = out channels).
void add_conv(std::vector<Shape>& out, const std::string& name, int D, int R, int n) {
    out.push_back({name + " fwd", D, n, R, false, false});
    out.push_back({name + " dX", R, n, D, true, false});
    out.push_back({name + " dK", D, R, n, false, true});
}

std::vector<Shape> shapes() {
    std::vector<Shape> s;
    add_conv(s, "tuned 3->16 32x32", 16, 75, 1156);
    add_conv(s, "tuned 16->64 17x17", 64, 400, 722);
    add_conv(s, "tuned 64->128 9x9", 128, 1600, 484);
    add_conv(s, "modern 24->64 31x31", 64, 216, 961);
    add_conv(s, "modern 64->256 15x15", 256, 576, 675);
    add_conv(s, "modern 256->256 7x7", 256, 2304, 539);
    s.push_back({"wide 64 x 50000 x 576", 64, 50000, 576, false, false});
    for (int n : {256, 512, 1024, 2048}) s.push_back({fmt::format("square {}", n), n, n, n, false, false});
    return s;
}

// cblas_sgemm of OpenBLAS, found at run time (no header or link dependency).
using CblasSgemm = void (*)(int order, int ta, int tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
                            int ldb, float beta, float* C, int ldc);
struct OpenBlas {
    CblasSgemm sgemm = nullptr;
};
OpenBlas load_openblas() {
    void* lib = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!lib) return {};
    if (auto set_threads = reinterpret_cast<void (*)(int)>(dlsym(lib, "openblas_set_num_threads"))) set_threads(1);
    return {reinterpret_cast<CblasSgemm>(dlsym(lib, "cblas_sgemm"))};
}

// sgemm, or with `blocks` (kc, mc, nc > 0) the current kernel with those blocks instead of its own.
void run_sgemm(const Shape& t, const std::vector<int>& blocks, const float* a, const float* b, float* c) {
    const int lda = t.ta ? t.M : t.K, ldb = t.tb ? t.K : t.N;
    if (blocks.empty()) return sgemm(t.M, t.N, t.K, {a, lda, t.ta}, {b, ldb, t.tb}, c, t.N, false);
    detail::KernelSpec s = detail::current_spec();
    s.kc = blocks[0], s.mc = blocks[1], s.nc = blocks[2];
    detail::sgemm_with(s, t.M, t.N, t.K, {a, lda, t.ta}, {b, ldb, t.tb}, c, t.N, false);
}

void bench_shapes(int reps, double peak, const std::vector<int>& blocks, const std::string& only) {
    const OpenBlas ob = load_openblas();
    if (!ob.sgemm) fmt::print("(libopenblas.so.0 not found: OpenBLAS column left out)\n");
    fmt::print("sgemm on kernel {}, 1 thread, best of {} (CPU time); GFLOP/s and % of the {:.1f} GFLOP/s peak\n",
               cpu_kernel_name(sgemm_kernel()), reps, peak);
    fmt::print("{:<28} {:>5} {:>6} {:>5} {:>2} | {:>14} | {:>14} | {:>5}\n", "shape", "M", "N", "K", "t", "ours", "OpenBLAS", "ratio");
    for (const Shape& t : shapes()) {
        if (t.name.find(only) == std::string::npos) continue;
        const int lda = t.ta ? t.M : t.K, ldb = t.tb ? t.K : t.N;
        const std::vector<float> a = random_floats(std::size_t(t.M) * t.K, 3), b = random_floats(std::size_t(t.K) * t.N, 4);
        std::vector<float> c(std::size_t(t.M) * t.N);
        const double gflop = 2.0 * t.M * t.N * static_cast<double>(t.K) / 1e9;
        const int inner = std::max(1, static_cast<int>(0.05 / gflop));  // ~50 ms per timing at 1 GFLOP/s... enough calls
        double ours = 1e300, theirs = 1e300;
        for (int r = 0; r < reps; ++r) {
            ours = std::min(ours, seconds_of([&] {
                                for (int i = 0; i < inner; ++i) run_sgemm(t, blocks, a.data(), b.data(), c.data());
                            }));
            if (ob.sgemm)
                theirs = std::min(theirs, seconds_of([&] {
                                      for (int i = 0; i < inner; ++i)
                                          ob.sgemm(101, t.ta ? 112 : 111, t.tb ? 112 : 111, t.M, t.N, t.K, 1.0f, a.data(), lda,
                                                   b.data(), ldb, 0.0f, c.data(), t.N);
                                  }));
        }
        const double g_ours = gflop * inner / ours, g_theirs = ob.sgemm ? gflop * inner / theirs : 0;
        fmt::print("{:<28} {:>5} {:>6} {:>5} {}{} | {:>6.1f} {:>5.1f} % | {:>6.1f} {:>5.1f} % | {:>5.2f}\n", t.name, t.M, t.N, t.K,
                   t.ta ? 'T' : 'N', t.tb ? 'T' : 'N', g_ours, 100 * g_ours / peak, g_theirs, 100 * g_theirs / peak,
                   ob.sgemm ? g_ours / g_theirs : 0.0);
    }
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"SGEMM speed: the micro-kernel on L1-resident panels, and sgemm on conv shapes beside OpenBLAS (1 thread)."};
    std::string which = "all", kernel_name = cpu_kernel_name(sgemm_kernel());
    int reps = 7;
    double peak = 0;
    std::vector<int> blocks;
    std::string only;
    app.add_option("--case", which, "ukernel, shapes or all")->check(CLI::IsMember({"ukernel", "shapes", "all"}));
    app.add_option("--kernel", kernel_name, "avx512, avx2 or portable (default: the one sgemm picks)");
    app.add_option("--reps", reps, "repetitions; the best is reported")->check(CLI::PositiveNumber);
    app.add_option("--peak", peak, "FMA peak of one core, GFLOP/s (default: measured)");
    app.add_option("--blocks", blocks, "kc mc nc: run the kernel with these blocks instead of its own (for tuning)")
        ->expected(3)
        ->check(CLI::PositiveNumber);
    app.add_option("--only", only, "only the shapes whose name contains this");
    CLI11_PARSE(app, argc, argv);
    const CpuKernel kernel = cpu_kernel_from_name(kernel_name);
    if (which != "shapes") bench_ukernel(kernel, reps, peak);
    if (which != "ukernel") {
        set_sgemm_kernel(kernel);
        if (peak <= 0) peak = mcnn::cli::detail::measure_fma_peak(mcnn::cli::detail::best_fma_isa(), 1, 0.2, 5).gflops;
        bench_shapes(reps, peak, blocks, only);
    }
}
