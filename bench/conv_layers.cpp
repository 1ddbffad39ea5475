// Times a conv path (im2col or winograd) on the conv layers that matter (TunedCNN's three 5x5 layers at batch
// 64, the modern network's six 3x3 layers at batch 256, two 3x3 stride-2 layers), forward, backward data (dL/dX) and
// backward weights (dL/dK) apart, and prints each one's GFLOP/s and its fraction of the FMA peak.
//   bench_conv_layers [--set tuned|modern|strided|all] [--path im2col|winograd|winograd2|winograd3|winograd4] [--layer 0] [--reps 5]
//                     [--peak 209] [--cpu-time]
// winograd runs each layer on its default tile (conv::winograd_tile: F(4x4,3x3), F(2x2,5x5)), winogradM on
// tiles of M x M (F(2x2) and F(4x4) for 3x3 and 5x5 layers, F(3x3) for 5x5 only: layers without that tile
// are skipped); GFLOP/s count the direct convolution's FLOPs.
// Threads follow OMP_NUM_THREADS; 1 thread measures one core against one core's peak.
#include <algorithm>
#include <chrono>
#include <ctime>
#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include "mcnn/nn/init.hpp"
#include "mcnn/ops/correlate2d.hpp"

using namespace mcnn;

namespace {

struct Layer {
    std::string set;
    int batch, in, out, size, kernel, pad;
    int stride = 1;
};

// TunedCNN: 5x5 pad 3, 3->16 at 32x32, 16->64 at 17x17, 64->128 at 9x9 (after 2x2 pools).
// Modern network: 3x3 pad 1, batch 256.
const std::vector<Layer> layers = {
    {"tuned", 64, 3, 16, 32, 5, 3},     {"tuned", 64, 16, 64, 17, 5, 3},     {"tuned", 64, 64, 128, 9, 5, 3},
    {"modern", 256, 24, 64, 31, 3, 1},  {"modern", 256, 64, 64, 15, 3, 1},   {"modern", 256, 64, 256, 15, 3, 1},
    {"modern", 256, 256, 256, 7, 3, 1}, {"modern", 256, 256, 256, 3, 3, 1},
    // 3x3 pad 1 stride 2 (a ResNet-style downsampling conv; im2col: winograd runs stride 1 only)
    {"strided", 256, 64, 128, 32, 3, 1, 2}, {"strided", 256, 128, 256, 16, 3, 1, 2},
};

// Milliseconds on the wall clock, or with `cpu_time` of CPU time used by the whole process (all its
// threads): on a machine shared with other work, CPU time is not stretched by waiting for a core.
bool cpu_time = false;
double now_ms() {
    if (!cpu_time) return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
    timespec t{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) * 1e-6;
}

template <class F>
double best_ms(int reps, F&& f) {
    double best = 1e300;
    for (int r = 0; r < reps; ++r) {
        const double t0 = now_ms();
        f();
        best = std::min(best, now_ms() - t0);
    }
    return best;
}

// The path's three products: forward, backward data, backward weights.
struct Products {
    std::function<void(const Tensor<float>&, const Tensor<float>&, const Conv2dOptions&, Tensor<float>&)> forward;
    std::function<void(const Tensor<float>&, const Tensor<float>&, const Tensor<float>&, const Conv2dOptions&, Tensor<float>*,
                       Tensor<float>*)>
        backward;
};
// The tile winogradM asks for (0: each layer's default; -1: not a winograd path).
int tile_of(const std::string& path) {
    if (path == "im2col") return -1;
    return path == "winograd" ? 0 : path.back() - '0';
}
bool runs_layer(const std::string& path, const Layer& l) {
    const int tile = tile_of(path);
    return tile < 0 || (l.stride == 1 && (l.kernel == 3 || l.kernel == 5) && (tile != 3 || l.kernel == 5));
}

Products products_of(const std::string& path) {
    if (path == "im2col") return {conv::forward_im2col<float>, conv::backward_im2col<float>};
    if (path == "winograd") return {conv::forward_winograd<float>, conv::backward_winograd<float>};
    const int tile = tile_of(path);
    return {[tile](const auto& x, const auto& k, const auto& o, auto& y) { conv::forward_winograd_tile(x, k, o, y, tile); },
            [tile](const auto& x, const auto& k, const auto& gy, const auto& o, auto* gx, auto* gk) {
                conv::backward_winograd_tile(x, k, gy, o, gx, gk, tile);
            }};
}

// Times one layer's three products and prints a row.
void time_layer(const Layer& l, const Products& p, int reps, double peak) {
    Rng rng(0);
    Tensor<float> x(Shape{l.batch, l.in, l.size, l.size}), k(Shape{l.out, l.in, l.kernel, l.kernel});
    uniform_fill(x, 1.0, rng);
    uniform_fill(k, 0.2, rng);
    const Conv2dOptions opt{l.pad, l.stride, ConvPath::im2col};
    const Shape ys = conv::output_shape(x.shape(), k.shape(), opt);
    Tensor<float> y, gy(ys, 1.0f), gx(x.shape()), gk(k.shape());
    const double gflop = 2.0 * static_cast<double>(ys.numel()) * l.in * l.kernel * l.kernel / 1e9;
    const double ms[3] = {best_ms(reps, [&] { p.forward(x, k, opt, y); }),
                          best_ms(reps, [&] { p.backward(x, k, gy, opt, &gx, nullptr); }),
                          best_ms(reps, [&] { p.backward(x, k, gy, opt, nullptr, &gk); })};
    fmt::print("{:<7} {:>4} {:>4}->{:<4} {:>3}x{:<3} k{} p{} s{} {:>7.2f}", l.set, l.batch, l.in, l.out, l.size, l.size, l.kernel,
               l.pad, l.stride, gflop);
    for (double t : ms) fmt::print(" | {:>7.2f} ms {:>6.1f} {:>4.0f}%", t, gflop / t * 1e3, 100 * gflop / t * 1e3 / peak);
    fmt::print("\n");
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"Conv layers of TunedCNN and the modern network on a conv path: GFLOP/s and fraction of the FMA peak."};
    std::string set = "all", path = "im2col";
    int reps = 5, only = 0;
    double peak = 209;
    app.add_option("--set", set, "tuned, modern, strided or all")->check(CLI::IsMember({"tuned", "modern", "strided", "all"}));
    app.add_option("--path", path, "im2col, winograd (each layer's default tile) or winograd2/3/4 (tiles of 2x2, 3x3, 4x4)")
        ->check(CLI::IsMember({"im2col", "winograd", "winograd2", "winograd3", "winograd4"}));
    app.add_option("--layer", only, "time only the set's layer of this number (1 = the first), 0 = all");
    app.add_option("--reps", reps, "repetitions; the best is reported")->check(CLI::PositiveNumber);
    app.add_flag("--cpu-time", cpu_time, "time by the process's CPU time (all threads) instead of the wall clock");
    app.add_option("--peak", peak, "FMA peak of the cores used, GFLOP/s (fp32)")->check(CLI::PositiveNumber);
    CLI11_PARSE(app, argc, argv);
    fmt::print("{} conv path, float, best of {} ({}); GFLOP/s in direct-conv FLOPs, % of the {:.0f} GFLOP/s peak\n", path,
               reps, cpu_time ? "CPU time" : "wall clock", peak);
    fmt::print("{:<7} {:>4} {:>10} {:>7} {:<4} {:>7} | {:^22} | {:^22} | {:^22}\n", "set", "B", "N->D", "size", "", "GFLOP",
               "forward", "backward data", "backward weights");
    const Products p = products_of(path);
    int number = 0;
    for (const Layer& l : layers)
        if ((set == "all" || set == l.set) && ++number && (only == 0 || only == number) && runs_layer(path, l)) time_layer(l, p, reps, peak);
}
