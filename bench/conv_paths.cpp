// Times the conv layer's paths on one shape: correlate2d (loops of the vectorised 2-D correlate2d)
// against im2col (im2col + GEMM), and with --plain the plain loops of the formulas too; forward,
// and forward + backward (dX and dK). Says which one ConvPath::automatic picks for the shape.
//   bench_conv [--batch 64] [--in 3] [--out 6] [--size 32] [--kernel 5] [--pad 0] [--stride 1] [--reps 20] [--plain]
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

// The best forward and forward + backward times (ms) of one path.
struct Times {
    double forward, both;
};

template <class Forward, class Backward>
Times time_path(int reps, Forward forward, Backward backward) {
    return {best_ms(reps, forward), best_ms(reps, [&] {
                forward();
                backward();
            })};
}

int main(int argc, char** argv) {
    CLI::App app{"Conv layer: correlate2d path vs im2col path (and the plain loops with --plain)."};
    int batch = 64, in = 3, out = 6, size = 32, kernel = 5, pad = 0, stride = 1, reps = 20;
    bool plain = false;
    app.add_option("--batch", batch);
    app.add_option("--in", in, "input channels N");
    app.add_option("--out", out, "output channels D");
    app.add_option("--size", size, "input height = width");
    app.add_option("--kernel", kernel, "kernel size F");
    app.add_option("--pad", pad);
    app.add_option("--stride", stride);
    app.add_option("--reps", reps, "repetitions; the best is reported");
    app.add_flag("--plain", plain, "also time the plain loops (slow: best of at most 3 repetitions)");
    CLI11_PARSE(app, argc, argv);

    Rng rng(0);
    Tensor<float> x(Shape{batch, in, size, size}), k(Shape{out, in, kernel, kernel});
    uniform_fill(x, 1.0, rng);
    uniform_fill(k, 0.2, rng);
    const Conv2dOptions opt{pad, stride, ConvPath::automatic};
    const Shape ys = conv::output_shape(x.shape(), k.shape(), opt);
    Tensor<float> y, gy(ys, 1.0f), gx(x.shape()), gk(k.shape());
    const double flops = 2.0 * ys.numel() * in * kernel * kernel;  // one multiply-add per kernel tap

    const Times c2d = time_path(
        reps, [&] { conv::forward_correlate2d(x, k, opt, y); }, [&] { conv::backward_correlate2d(x, k, gy, opt, &gx, &gk); });
    const Times gemm = time_path(
        reps, [&] { conv::forward_im2col(x, k, opt, y); }, [&] { conv::backward_im2col(x, k, gy, opt, &gx, &gk); });
    fmt::print("conv {} * kernels {} (pad {}, stride {}) -> {}, float, best of {}\n", x.shape().str(), k.shape().str(), pad,
               stride, ys.str(), reps);
    fmt::print("{:<22} {:>12} {:>12} {:>8}\n", "", "correlate2d", "im2col", "ratio");
    fmt::print("{:<22} {:>9.3f} ms {:>9.3f} ms {:>7.1f}x\n", "forward", c2d.forward, gemm.forward, c2d.forward / gemm.forward);
    fmt::print("{:<22} {:>9.3f} ms {:>9.3f} ms {:>7.1f}x\n", "forward + backward", c2d.both, gemm.both, c2d.both / gemm.both);
    fmt::print("forward GFLOP/s: correlate2d {:.1f}, im2col {:.1f}\n", flops / c2d.forward / 1e6, flops / gemm.forward / 1e6);
    if (plain) {
        const Times p = time_path(
            std::min(reps, 3), [&] { conv::forward_plain(x, k, opt, y); }, [&] { conv::backward_plain(x, k, gy, opt, &gx, &gk); });
        fmt::print("plain loops: forward {:.3f} ms ({:.2f} GFLOP/s), forward + backward {:.3f} ms\n", p.forward,
                   flops / p.forward / 1e6, p.both);
    }
    fmt::print("automatic runs: {}\n", conv_path_name(conv::path_to_run(k.shape(), opt)));
}
