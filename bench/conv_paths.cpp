// Times the conv layer's reference path (loops of 2-D correlate2d) against its fast path
// (im2col + GEMM) on one shape: forward, and forward + backward (dX and dK).
//   bench_conv [--batch 64] [--in 3] [--out 6] [--size 32] [--kernel 5] [--pad 0] [--stride 1] [--reps 20]
// Threads follow OMP_NUM_THREADS.
#include <algorithm>
#include <chrono>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include "mcnn/nn/init.hpp"
#include "mcnn/ops/correlate2d.hpp"

using namespace mcnn;

namespace {

template <class F>
double best_ms(int reps, F&& f) {
    double best = 1e300;
    for (int r = 0; r < reps; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        f();
        best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    return best;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"Conv layer: reference path vs fast path."};
    int batch = 64, in = 3, out = 6, size = 32, kernel = 5, pad = 0, stride = 1, reps = 20;
    app.add_option("--batch", batch);
    app.add_option("--in", in, "input channels N");
    app.add_option("--out", out, "output channels D");
    app.add_option("--size", size, "input height = width");
    app.add_option("--kernel", kernel, "kernel size F");
    app.add_option("--pad", pad);
    app.add_option("--stride", stride);
    app.add_option("--reps", reps, "repetitions; the best is reported");
    CLI11_PARSE(app, argc, argv);

    Rng rng(0);
    Tensor<float> x(Shape{batch, in, size, size}), k(Shape{out, in, kernel, kernel});
    uniform_fill(x, 1.0, rng);
    uniform_fill(k, 0.2, rng);
    const Conv2dOptions opt{pad, stride, ConvPath::fast};
    const Shape ys = conv::output_shape(x.shape(), k.shape(), opt);
    Tensor<float> y, gy(ys, 1.0f), gx(x.shape()), gk(k.shape());
    const double flops = 2.0 * ys.numel() * in * kernel * kernel;  // one multiply-add per kernel tap

    const double ref_fwd = best_ms(reps, [&] { conv::forward_reference(x, k, opt, y); });
    const double ref_all = best_ms(reps, [&] {
        conv::forward_reference(x, k, opt, y);
        conv::backward_reference(x, k, gy, opt, &gx, &gk);
    });
    const double fast_fwd = best_ms(reps, [&] { conv::forward_fast(x, k, opt, y); });
    const double fast_all = best_ms(reps, [&] {
        conv::forward_fast(x, k, opt, y);
        conv::backward_fast(x, k, gy, opt, &gx, &gk);
    });
    fmt::print("conv {} * kernels {} (pad {}, stride {}) -> {}, float, best of {}\n", x.shape().str(), k.shape().str(), pad,
               stride, ys.str(), reps);
    fmt::print("{:<22} {:>12} {:>12} {:>8}\n", "", "reference", "fast", "ratio");
    fmt::print("{:<22} {:>9.3f} ms {:>9.3f} ms {:>7.1f}x\n", "forward", ref_fwd, fast_fwd, ref_fwd / fast_fwd);
    fmt::print("{:<22} {:>9.3f} ms {:>9.3f} ms {:>7.1f}x\n", "forward + backward", ref_all, fast_all, ref_all / fast_all);
    fmt::print("forward GFLOP/s: reference {:.1f}, fast {:.1f}\n", flops / ref_fwd / 1e6, flops / fast_fwd / 1e6);
}
