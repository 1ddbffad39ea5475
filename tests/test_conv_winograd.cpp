// The Winograd path of the conv layer (conv2d_winograd.cpp), part of the conv_paths suite: on every
// tile (F(2x2,3x3), F(4x4,3x3), F(2x2,5x5), F(3x3,5x5), F(4x4,5x5)) and in float and double it
// equals the plain loops, forward and both gradients, over 3x3 and 5x5 stride-1 cases with odd
// sizes (1x1 images, sizes that are not multiples of the tile, padding 0 to 4, batch 1); its
// backward adds; it passes the numeric gradient check in double; Y and dX do not depend on the
// thread count on any SGEMM micro-kernel; it refuses the layers it cannot run, naming why.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "../lib/src/kernels/sgemm.hpp"
#include "mcnn/check/gradcheck.hpp"
#include "mcnn/ops/correlate2d.hpp"
#include "mcnn/ops/elementwise.hpp"
#include "mcnn/threads.hpp"
#include "support.hpp"

using namespace mcnn;
using namespace mcnn::test;

namespace {

struct WinoCase {
    int B, N, H, W, D, P, R = 3;  // R x R kernels
    Shape x() const { return Shape{B, N, H, W}; }
    Shape k() const { return Shape{D, N, R, R}; }
    Shape y() const { return Shape{B, D, H + 2 * P - R + 1, W + 2 * P - R + 1}; }
    Conv2dOptions options(ConvPath path = ConvPath::winograd) const { return {P, 1, path}; }
    std::string str() const { return fmt::format("B{} N{} {}x{} D{} P{} k{}", B, N, H, W, D, P, R); }
    std::vector<int> tiles() const { return R == 3 ? std::vector<int>{2, 4} : std::vector<int>{2, 3, 4}; }
};

// (dX runs as the forward's adjoint where D > N, as the turned correlation elsewhere: both among
// the cases.) 1x1 and 2x2 images (padding 1 and 2), sizes below, at and past the tile sizes 2 and 4 (3, 4, 5,
// 8, 9, 13), non-square, padding 0 to 3, batches of 1 to 5 (several images per GEMM group).
std::vector<WinoCase> wino_cases() {
    std::vector<WinoCase> out = {{1, 1, 1, 1, 1, 1}, {2, 3, 1, 1, 4, 2}, {1, 2, 2, 2, 3, 1}, {3, 2, 3, 3, 2, 0},
                                 {1, 1, 4, 4, 1, 0}, {5, 3, 5, 7, 4, 1}, {2, 4, 8, 8, 3, 1}, {1, 3, 9, 6, 5, 2},
                                 {3, 2, 13, 11, 3, 3}, {2, 5, 6, 9, 6, 0}, {4, 3, 7, 5, 2, 1}, {1, 17, 10, 12, 9, 1}};
    // 5x5: 1x1 images (padding 2 and 3), padding 4 (dX's correlation then starts inside dY), sizes
    // below, at and past the tiles 2, 3, 4 and TunedCNN's 9x9 / 17x17 at its padding 3.
    const std::vector<WinoCase> five = {{1, 1, 1, 1, 1, 2, 5}, {2, 3, 1, 1, 2, 3, 5}, {1, 2, 5, 5, 3, 0, 5},
                                        {3, 2, 6, 7, 4, 1, 5},  {2, 3, 4, 3, 2, 4, 5},  {1, 4, 9, 9, 5, 3, 5},
                                        {5, 2, 8, 11, 3, 2, 5}, {2, 3, 17, 13, 2, 3, 5}, {1, 19, 10, 7, 6, 3, 5}};
    out.insert(out.end(), five.begin(), five.end());
    return out;
}

template <class T>
struct Results {
    Tensor<T> y, gx, gk;
};

template <class T>
Results<T> plain(const Tensor<T>& x, const Tensor<T>& k, const Tensor<T>& gy, const Conv2dOptions& o) {
    Results<T> r{Tensor<T>(), Tensor<T>(x.shape()), Tensor<T>(k.shape())};
    conv::forward_plain(x, k, o, r.y);
    conv::backward_plain(x, k, gy, o, &r.gx, &r.gk);
    return r;
}

template <class T>
Results<T> winograd(const Tensor<T>& x, const Tensor<T>& k, const Tensor<T>& gy, const Conv2dOptions& o, int tile) {
    Results<T> r{Tensor<T>(Shape{1, 1, 2, 3}, std::numeric_limits<T>::quiet_NaN()), Tensor<T>(x.shape()), Tensor<T>(k.shape())};
    conv::forward_winograd_tile(x, k, o, r.y, tile);
    conv::backward_winograd_tile(x, k, gy, o, &r.gx, &r.gk, tile);
    return r;
}

// max |a - b| / max |b|
template <class T>
double relative_error(const Tensor<T>& a, const Tensor<T>& b) {
    double err = 0, scale = 0;
    for (std::size_t i = 0; i < b.numel(); ++i) {
        err = std::max(err, std::abs(static_cast<double>(a[i]) - static_cast<double>(b[i])));
        scale = std::max(scale, std::abs(static_cast<double>(b[i])));
    }
    return err / scale;
}

// The tolerance (relative to the result's scale) each tile is held to: F(2x2,3x3) rounds like
// im2col; larger tiles multiply by larger powers of the points and cancel more (measured: see
// winograd_error_is_bounded).
template <class T>
double wino_tol(int tile, int r = 3) {
    if (std::is_same_v<T, double>) return tile == 2 && r == 3 ? 1e-12 : 1e-10;
    return tile == 2 && r == 3 ? 1e-5 : 1e-4;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(conv_paths)

BOOST_AUTO_TEST_CASE_TEMPLATE(winograd_equals_the_plain_loops, T, scalar_types) {
    std::mt19937 rng(909);
    for (const WinoCase& c : wino_cases())
        for (int tile : c.tiles()) {
            BOOST_TEST_CONTEXT(c.str() << " tile " << tile) {
                const Tensor<T> x = uniform<T>(c.x(), rng), k = uniform<T>(c.k(), rng), gy = uniform<T>(c.y(), rng);
                const Results<T> want = plain(x, k, gy, c.options()), got = winograd(x, k, gy, c.options(), tile);
                BOOST_TEST_REQUIRE(got.y.shape().str() == c.y().str());
                check_close(got.y, want.y, false, wino_tol<T>(tile, c.R), "forward");
                check_close(got.gx, want.gx, false, wino_tol<T>(tile, c.R), "dX");
                check_close(got.gk, want.gk, false, wino_tol<T>(tile, c.R), "dK");
            }
        }
}

BOOST_AUTO_TEST_CASE_TEMPLATE(winograd_backward_adds_and_takes_nullptr, T, scalar_types) {
    std::mt19937 rng(910);
    for (const WinoCase& c : {WinoCase{3, 2, 6, 5, 3, 1}, WinoCase{2, 3, 7, 6, 2, 3, 5}}) {
        BOOST_TEST_CONTEXT(c.str()) {
            const Tensor<T> x = uniform<T>(c.x(), rng), k = uniform<T>(c.k(), rng), gy = uniform<T>(c.y(), rng);
            const Results<T> want = plain(x, k, gy, c.options());
            const double tol = wino_tol<T>(conv::winograd_tile(c.R), c.R);
            Tensor<T> gx(x.shape(), T(0.5)), gk(k.shape(), T(-0.25));
            conv::backward_winograd(x, k, gy, c.options(), &gx, nullptr);
            conv::backward_winograd(x, k, gy, c.options(), nullptr, &gk);
            conv::backward_winograd(x, k, gy, c.options(), &gx, nullptr);
            conv::backward_winograd(x, k, gy, c.options(), nullptr, nullptr);
            Tensor<T> gx_want = want.gx, gk_want = want.gk;
            gx_want.array() = T(2) * gx_want.array() + T(0.5);
            gk_want.array() += T(-0.25);
            check_close(gx, gx_want, false, tol, "dX added twice into 0.5");
            check_close(gk, gk_want, false, tol, "dK added into -0.25");
        }
    }
}

// F(4x4)'s error in float against the plain loops in double, on a layer of the modern network's
// kind (64 channels in, 15x15, padding 1): it stays below 1e-5 of the results' scale (measured
// 4.3e-6 for Y, 3.1e-6 for dX, 3.2e-6 for dK).
BOOST_AUTO_TEST_CASE(winograd_error_is_bounded) {
    std::mt19937 rng(911);
    const WinoCase c{4, 64, 15, 15, 16, 1};
    const Tensor<double> x = uniform<double>(c.x(), rng), k = uniform<double>(c.k(), rng), gy = uniform<double>(c.y(), rng);
    const Results<double> want = plain(x, k, gy, c.options());
    const Results<float> got = winograd(x.cast<float>(), k.cast<float>(), gy.cast<float>(), c.options(), 4);
    BOOST_TEST(relative_error(got.y, want.y.cast<float>()) < 1e-5);
    BOOST_TEST(relative_error(got.gx, want.gx.cast<float>()) < 1e-5);
    BOOST_TEST(relative_error(got.gk, want.gk.cast<float>()) < 1e-5);
    BOOST_TEST_MESSAGE(fmt::format("F(4x4,3x3) float relative error: Y {:.2g}, dX {:.2g}, dK {:.2g}", relative_error(got.y, want.y.cast<float>()),
                                   relative_error(got.gx, want.gx.cast<float>()), relative_error(got.gk, want.gk.cast<float>())));
}

// The 5x5 tiles' error in float against the plain loops in double, on a layer of TunedCNN's kind
// (64 channels in, 9x9, padding 3): below 2e-5 of the results' scale (measured: F(2x2) Y 3.6e-6,
// dX 2.7e-6, dK 1.1e-5; F(3x3) 4.6e-6, 2.4e-6, 5.3e-6; F(4x4) 4.5e-6, 3.8e-6, 4.4e-6; dK sums the
// most tiles on the smallest tile).
BOOST_AUTO_TEST_CASE(winograd_5x5_error_is_bounded) {
    std::mt19937 rng(916);
    const WinoCase c{4, 64, 9, 9, 16, 3, 5};
    const Tensor<double> x = uniform<double>(c.x(), rng), k = uniform<double>(c.k(), rng), gy = uniform<double>(c.y(), rng);
    const Results<double> want = plain(x, k, gy, c.options());
    for (int tile : c.tiles()) {
        const Results<float> got = winograd(x.cast<float>(), k.cast<float>(), gy.cast<float>(), c.options(), tile);
        const double ey = relative_error(got.y, want.y.cast<float>()), ex = relative_error(got.gx, want.gx.cast<float>()),
                     ek = relative_error(got.gk, want.gk.cast<float>());
        BOOST_TEST(ey < 1e-5, "tile " << tile);
        BOOST_TEST(ex < 1e-5, "tile " << tile);
        BOOST_TEST(ek < 2e-5, "tile " << tile);
        BOOST_TEST_MESSAGE(fmt::format("F({0}x{0},5x5) float relative error: Y {1:.2g}, dX {2:.2g}, dK {3:.2g}", tile, ey, ex, ek));
    }
}

BOOST_AUTO_TEST_CASE(winograd_passes_the_numeric_gradient_check) {
    Rng rng(912);
    for (const WinoCase& c : {WinoCase{2, 2, 5, 6, 3, 1}, WinoCase{1, 3, 4, 4, 2, 0}, WinoCase{1, 1, 1, 1, 2, 2},
                              WinoCase{2, 2, 6, 5, 2, 3, 5}, WinoCase{1, 2, 1, 1, 2, 3, 5}, WinoCase{1, 1, 3, 4, 2, 4, 5}}) {
        BOOST_TEST_CONTEXT(c.str()) {
            Parameter<double> k("kernels", uniform(c.k(), rng));
            const Tensor<double> w = uniform(c.y(), rng);
            const GradCheckReport report = gradcheck(
                [&](Tape<double>& tape, const std::vector<Var<double>>& in) {
                    return weighted_sum(conv2d(in[0], tape.param(k), c.options()), w);
                },
                {{"x", uniform(c.x(), rng)}}, {&k});
            BOOST_TEST(report.passed(), report.table());
            BOOST_TEST_REQUIRE(report.entries.size() == 2u);
            BOOST_TEST(report.entries[0].checked == c.x().numel());
            BOOST_TEST(report.entries[1].checked == c.k().numel());
        }
    }
}

BOOST_AUTO_TEST_CASE(winograd_on_every_sgemm_kernel_and_thread_count) {
    // Groups of 1 (32x32: 64 or 256 tiles an image), of several images (9x9) and of the whole batch
    // (3x3), for 3x3 and 5x5 kernels: Y and dX the same on 1 and 2 threads, dK up to rounding.
    const WinoCase cases[] = {{3, 3, 32, 32, 5, 1},    {9, 4, 9, 9, 7, 1},    {40, 6, 3, 3, 5, 1},
                              {3, 3, 32, 32, 4, 3, 5}, {9, 4, 9, 9, 5, 3, 5}, {40, 3, 1, 1, 3, 2, 5}};
    const kernels::CpuKernel saved = kernels::sgemm_kernel();
    std::mt19937 rng(913);
    for (const WinoCase& c : cases) {
        const Tensor<float> x = uniform<float>(c.x(), rng), k = uniform<float>(c.k(), rng), gy = uniform<float>(c.y(), rng);
        const Results<float> want = plain(x, k, gy, c.options());
        for (kernels::CpuKernel kernel : {kernels::CpuKernel::portable, kernels::CpuKernel::avx2, kernels::CpuKernel::avx512}) {
            if (!kernels::cpu_supports(kernel)) continue;
            kernels::set_sgemm_kernel(kernel);
            for (int tile : c.tiles()) {
                const std::string what = c.str() + " tile " + std::to_string(tile) + " on " + kernels::cpu_kernel_name(kernel);
                std::vector<Results<float>> got;
                for (int threads : {1, 2}) {
                    const ThreadLimit limit(threads);
                    got.push_back(winograd(x, k, gy, c.options(), tile));
                }
                check_close(got[0].y, want.y, false, wino_tol<float>(tile, c.R), what + ": Y");
                check_close(got[0].gx, want.gx, false, wino_tol<float>(tile, c.R), what + ": dX");
                check_close(got[0].gk, want.gk, false, wino_tol<float>(tile, c.R), what + ": dK");
                check_equal(got[1].y, got[0].y, what + ": Y, 2 threads vs 1");
                check_equal(got[1].gx, got[0].gx, what + ": dX, 2 threads vs 1");
                check_close(got[1].gk, got[0].gk, what + ": dK, 2 threads vs 1");
            }
        }
    }
    kernels::set_sgemm_kernel(saved);
}

// A NaN or an inf gives the plain loops' results (the call runs on im2col): no NaN spread over tiles.
BOOST_AUTO_TEST_CASE(winograd_gives_the_plain_results_on_non_finite_values) {
    std::mt19937 rng(914);
    const WinoCase c{2, 2, 6, 6, 2, 1};
    Tensor<float> x = uniform<float>(c.x(), rng);
    const Tensor<float> k = uniform<float>(c.k(), rng), gy = uniform<float>(c.y(), rng);
    x[7] = std::numeric_limits<float>::infinity();
    const Results<float> want = plain(x, k, gy, c.options()), got = winograd(x, k, gy, c.options(), 4);
    BOOST_TEST((got.y.array().isNaN() == want.y.array().isNaN()).all());
    BOOST_TEST((got.y.array().isInf() == want.y.array().isInf()).all());
    BOOST_TEST((got.gk.array().isNaN() == want.gk.array().isNaN()).all());
}

BOOST_AUTO_TEST_CASE(winograd_refuses_what_it_cannot_run) {
    const Tensor<double> x(Shape{1, 2, 8, 8}, 1.0), k7(Shape{3, 2, 7, 7}, 1.0), k5(Shape{3, 2, 5, 5}, 1.0),
        k3(Shape{3, 2, 3, 3}, 1.0);
    Tensor<double> y, gk(k3.shape());
    const std::string kernel = error_of([&] { conv::forward_winograd(x, k7, {1, 1}, y); });
    BOOST_TEST(kernel.find("winograd") != std::string::npos, kernel);
    BOOST_TEST(kernel.find("7x7") != std::string::npos, kernel);
    BOOST_TEST(kernel.find("3x3 and 5x5 kernels only") != std::string::npos, kernel);
    const std::string stride = error_of([&] { conv::forward_winograd(x, k3, {1, 2}, y); });
    BOOST_TEST(stride.find("stride 2") != std::string::npos, stride);
    const Tensor<double> gy2(Shape{1, 3, 4, 4}, 1.0);
    const std::string back = error_of([&] { conv::backward_winograd(x, k3, gy2, {1, 2}, nullptr, &gk); });
    BOOST_TEST(back.find("stride 2") != std::string::npos, back);
    const std::string tile = error_of([&] { conv::forward_winograd_tile(x, k3, {1, 1}, y, 3); });
    BOOST_TEST(tile.find("tile 3x3 for 3x3 kernels") != std::string::npos, tile);
    const std::string tile5 = error_of([&] {
        Tensor<double> gk5(k5.shape());
        conv::backward_winograd_tile(x, k5, Tensor<double>(Shape{1, 3, 6, 6}), {1, 1}, nullptr, &gk5, 5);
    });
    BOOST_TEST(tile5.find("tile 5x5 for 5x5 kernels") != std::string::npos, tile5);
    BOOST_TEST(tile5.find("2x2, 3x3 and 4x4 for 5x5") != std::string::npos, tile5);
    const std::string node = error_of([&] {
        Tape<double> tape;
        conv2d(tape.input(x), tape.constant(k7), {1, 1, ConvPath::winograd});
    });
    BOOST_TEST(node.find("3x3 and 5x5 kernels only") != std::string::npos, node);
    BOOST_TEST((conv_path_from_name("winograd") == ConvPath::winograd));
    BOOST_TEST(std::string(conv_path_name(ConvPath::winograd)) == "winograd");
}

// Automatic runs winograd for 3x3 stride-1 layers with winograd_min_channels channels in and out
// and 5x5 ones with winograd5_min_channels, im2col for the others, and gives the very bits of the
// path it names.
BOOST_AUTO_TEST_CASE(automatic_runs_winograd_on_wide_3x3_layers) {
    const int many = conv::winograd_min_channels, fewer = conv::winograd_min_channels - 1;
    BOOST_TEST((conv::path_to_run(Shape{many, many, 3, 3}, {1, 1}) == ConvPath::winograd));
    BOOST_TEST((conv::path_to_run(Shape{many, many, 3, 3}, {0, 2}) == ConvPath::im2col));   // strided
    BOOST_TEST((conv::path_to_run(Shape{many, fewer, 3, 3}, {1, 1}) == ConvPath::im2col));  // few inputs
    BOOST_TEST((conv::path_to_run(Shape{fewer, many, 3, 3}, {1, 1}) == ConvPath::im2col));  // few outputs
    BOOST_TEST((conv::path_to_run(Shape{many, many, 7, 7}, {1, 1}) == ConvPath::im2col));
    // the output side: 4 x 4 (one whole tile) and up on winograd, 3 x 3 on im2col
    BOOST_TEST((conv::path_to_run(Shape{256, 256, 3, 3}, {1, 1}, Shape{2, 256, 4, 4}) == ConvPath::winograd));
    BOOST_TEST((conv::path_to_run(Shape{256, 256, 3, 3}, {1, 1}, Shape{2, 256, 3, 3}) == ConvPath::im2col));
    BOOST_TEST((conv::path_to_run(Shape{256, 256, 3, 3}, {0, 1}, Shape{2, 256, 5, 5}) == ConvPath::im2col));
    BOOST_TEST((conv::path_to_run(Shape{64, 24, 3, 3}, {1, 1}, Shape{2, 24, 31, 31}) == ConvPath::winograd));  // FastNet's first block
    // 5x5: TunedCNN's 16->64 and 64->128 layers on winograd, its 3->16 layer on im2col
    const int many5 = conv::winograd5_min_channels, fewer5 = conv::winograd5_min_channels - 1;
    BOOST_TEST((conv::path_to_run(Shape{many5, many5, 5, 5}, {3, 1}) == ConvPath::winograd));
    BOOST_TEST((conv::path_to_run(Shape{64, 16, 5, 5}, {3, 1}) == ConvPath::winograd));
    BOOST_TEST((conv::path_to_run(Shape{128, 64, 5, 5}, {3, 1}) == ConvPath::winograd));
    BOOST_TEST((conv::path_to_run(Shape{16, 3, 5, 5}, {3, 1}) == ConvPath::im2col));
    BOOST_TEST((conv::path_to_run(Shape{many5, fewer5, 5, 5}, {3, 1}) == ConvPath::im2col));
    BOOST_TEST((conv::path_to_run(Shape{fewer5, many5, 5, 5}, {3, 1}) == ConvPath::im2col));
    BOOST_TEST((conv::path_to_run(Shape{many5, many5, 5, 5}, {3, 2}) == ConvPath::im2col));  // strided
    BOOST_TEST((conv::path_to_run(Shape{many, many, 3, 3}, {1, 1, ConvPath::im2col}) == ConvPath::im2col));
    std::mt19937 rng(915);
    for (const auto& [ks, pad] : {std::pair{Shape{many, many, 3, 3}, 1}, std::pair{Shape{many5, many5, 5, 5}, 3}}) {
        BOOST_TEST_CONTEXT("kernels " << ks.str()) {
            const Tensor<float> x = uniform<float>(Shape{2, ks[1], 5, 5}, rng), k = uniform<float>(ks, rng);
            auto run = [&](ConvPath path) {
                Tape<float> tape;
                const Var<float> xv = tape.input(x);
                Parameter<float> kp("k", k);
                const Var<float> y = conv2d(xv, tape.param(kp), {pad, 1, path});
                tape.backward(weighted_sum(y, Tensor<float>(y.shape(), 0.5f)));
                return std::tuple{y.value(), xv.grad(), kp.grad};
            };
            const auto [ya, gxa, gka] = run(ConvPath::automatic);
            const auto [yw, gxw, gkw] = run(ConvPath::winograd);
            const auto [yi, gxi, gki] = run(ConvPath::im2col);
            check_equal(ya, yw, "Y, automatic vs winograd");
            check_equal(gxa, gxw, "dX, automatic vs winograd");
            check_equal(gka, gkw, "dK, automatic vs winograd");
            check_close(ya, yi, false, wino_tol<float>(conv::winograd_tile(ks[2]), ks[2]), "Y, automatic vs im2col up to rounding");
            BOOST_TEST(!(ya.array() == yi.array()).all());  // truly not im2col
        }
    }
}

BOOST_AUTO_TEST_SUITE_END()
