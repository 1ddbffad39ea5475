#include "mcnn/ops/pool.hpp"

#include <array>
#include <cmath>

#include "../parallel.hpp"

namespace mcnn {
namespace {

// Whether candidate v replaces the window's best so far, m: v is larger, or v is NaN. So a window
// holding a NaN yields NaN and its argmax is the last NaN in row-major order (PyTorch's CPU
// max-pool: `(val > maxval) || isnan(val)`), and among equal maxima the first wins. A plain
// `v > m` would drop every NaN after the first candidate (any comparison with NaN is false).
template <class T>
bool replaces(T v, T m) {
    return v > m || std::isnan(v);
}

// One row of 2 x 2, stride-2 windows (the models' pooling): the window of output c has its top
// left at in[row + 2c]; its maximum goes to out[c] and the flat index of it to arg[c]. The four
// candidates are taken in row-major order, each when take(candidate, best so far) says so: selects,
// not branches (on activations the comparisons are coin flips). Returns whether a window of the
// row holds a NaN (isunordered: true when either value is NaN).
template <class T, class Take>
bool max_row_2x2(const T* in, std::int32_t row, int W, int Wo, T* out, std::int32_t* arg, Take take) {
    int nan = 0;  // an int: an OR over bools stops the loop from being vectorised
    for (int c = 0; c < Wo; ++c) {
        const std::int32_t top = row + 2 * c, bottom = top + W;
        std::int32_t best = top;
        T m = in[top];
        const T b = in[top + 1], d = in[bottom], e = in[bottom + 1];
        nan |= std::isunordered(m, b);
        nan |= std::isunordered(d, e);
        const bool take_b = take(b, m);
        best = take_b ? top + 1 : best;
        m = take_b ? b : m;
        const bool take_d = take(d, m);
        best = take_d ? bottom : best;
        m = take_d ? d : m;
        const bool take_e = take(e, m);
        best = take_e ? bottom + 1 : best;
        m = take_e ? e : m;
        arg[c] = best;
        out[c] = m;
    }
    return nan != 0;
}

}  // namespace

template <class T>
void pool::max_forward(const Tensor<T>& x, int kernel, int stride, Tensor<T>& y, std::vector<std::int32_t>& argmax) {
    require_rank("max_pool2d input (B x C x H x W)", x.shape(), 4);
    if (kernel < 1 || stride < 1) fail("max_pool2d: kernel and stride must be >= 1, got {} and {}", kernel, stride);
    const int B = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
    if (kernel > H || kernel > W) fail("max_pool2d: kernel {} is larger than the input {}", kernel, x.shape().str());
    const int Ho = (H - kernel) / stride + 1, Wo = (W - kernel) / stride + 1;
    y.resize(Shape{B, C, Ho, Wo});
    argmax.resize(y.numel());
    // planes split between threads; each writes only its own outputs
    const T* in = x.data();
    T* out = y.data();
    std::int32_t* arg = argmax.data();
    detail::parallel_ranges(static_cast<std::ptrdiff_t>(B) * C, detail::min_parallel_elements / (H * W), [in, out, arg, dims = std::array{H, W, Ho, Wo, kernel, stride}](std::ptrdiff_t first, std::ptrdiff_t last) {
        // locals, not the closure's members: the int32 stores to arg[] could otherwise alias them
        const auto [H, W, Ho, Wo, kernel, stride] = dims;
        for (std::ptrdiff_t p = first; p < last; ++p) {
            const std::int32_t base = static_cast<std::int32_t>(p) * H * W;
            std::size_t k = static_cast<std::size_t>(p) * Ho * Wo;
            if (kernel == 2 && stride == 2) {
                // A row is pooled with a plain `>` first, the fast case; only a row that holds a
                // NaN, which `>` never takes, is pooled again by replaces(). Checking each window
                // for NaN along the way costs less than replaces() in every window.
                for (int r = 0; r < Ho; ++r, k += static_cast<std::size_t>(Wo)) {
                    const std::int32_t row = base + 2 * r * W;
                    if (max_row_2x2(in, row, W, Wo, out + k, arg + k, [](T v, T m) { return v > m; }))
                        max_row_2x2(in, row, W, Wo, out + k, arg + k, [](T v, T m) { return replaces(v, m); });
                }
                continue;
            }
            for (int r = 0; r < Ho; ++r)
                for (int c = 0; c < Wo; ++c, ++k) {
                    std::int32_t best = base + r * stride * W + c * stride;
                    for (int u = 0; u < kernel; ++u)
                        for (int v = 0; v < kernel; ++v) {
                            const std::int32_t at = base + (r * stride + u) * W + c * stride + v;
                            if (replaces(in[at], in[best])) best = at;  // the first maximum, the last NaN
                        }
                    arg[k] = best;
                    out[k] = in[best];
                }
        }
    });
}

template <class T>
Var<T> max_pool2d(const Var<T>& x, int kernel, int stride) {
    if (stride == 0) stride = kernel;
    Tensor<T> y;
    auto argmax = std::make_shared<std::vector<std::int32_t>>();
    pool::max_forward(x.value(), kernel, stride, y, *argmax);
    // every implementation above leaves its winners in argmax: they are the branch decisions
    log_branches(x, "max_pool2d", argmax->size(), [arg = argmax->data()](std::size_t k) { return arg[k]; });
    const std::ptrdiff_t planes = static_cast<std::ptrdiff_t>(y.dim(0)) * y.dim(1), per_plane = static_cast<std::ptrdiff_t>(y.dim(2)) * y.dim(3);
    return record<T>("max_pool2d", std::move(y), {x}, [argmax, planes, per_plane](const Tensor<T>&, const Tensor<T>& gy, auto g) {
        if (!g[0]) return;
        T* gx = g[0]->data();
        const T* up = gy.data();
        const std::int32_t* arg = argmax->data();
        // a plane's outputs scatter into the same plane of x: planes split between threads
        detail::parallel_ranges(planes, detail::min_parallel_elements / std::max<std::ptrdiff_t>(per_plane, 1), [=](std::ptrdiff_t first, std::ptrdiff_t last) {
            for (std::ptrdiff_t k = first * per_plane; k < last * per_plane; ++k) gx[arg[k]] += up[k];
        });
    });
}

namespace {

// Window geometry of an average pool, checked: x is B x C x H x W.
struct AvgWindows {
    int B, C, H, W, Ho, Wo, kernel, stride;
};
AvgWindows avg_windows(const Shape& x, int kernel, int stride) {
    require_rank("avg_pool2d input (B x C x H x W)", x, 4);
    if (kernel < 1 || stride < 1) fail("avg_pool2d: kernel and stride must be >= 1, got {} and {}", kernel, stride);
    if (kernel > x[2] || kernel > x[3]) fail("avg_pool2d: kernel {} is larger than the input {}", kernel, x.str());
    return {x[0], x[1], x[2], x[3], (x[2] - kernel) / stride + 1, (x[3] - kernel) / stride + 1, kernel, stride};
}

}  // namespace

// Plain loops of the formula; threads share the (image, channel) planes, each writing only its own.
template <class T>
Var<T> avg_pool2d(const Var<T>& x, int kernel, int stride) {
    const AvgWindows a = avg_windows(x.shape(), kernel, stride ? stride : kernel);
    Tensor<T> y(Shape{a.B, a.C, a.Ho, a.Wo});
    const T inv = T(1) / static_cast<T>(a.kernel * a.kernel);
    const std::ptrdiff_t planes = static_cast<std::ptrdiff_t>(a.B) * a.C, min_planes = detail::min_parallel_elements / (a.H * a.W);
    const T* in = x.value().data();
    T* out = y.data();
    detail::parallel_ranges(planes, min_planes, [=](std::ptrdiff_t first, std::ptrdiff_t last) {
        for (std::ptrdiff_t p = first; p < last; ++p) {
            const T* plane = in + p * a.H * a.W;
            T* o = out + p * a.Ho * a.Wo;
            for (int r = 0; r < a.Ho; ++r)
                for (int c = 0; c < a.Wo; ++c) {
                    T sum = 0;
                    for (int u = 0; u < a.kernel; ++u)
                        for (int v = 0; v < a.kernel; ++v) sum += plane[(r * a.stride + u) * a.W + c * a.stride + v];
                    o[r * a.Wo + c] = sum * inv;
                }
        }
    });
    return record<T>("avg_pool2d", std::move(y), {x}, [a, inv, planes, min_planes](const Tensor<T>&, const Tensor<T>& gy, auto g) {
        if (!g[0]) return;
        T* gx = g[0]->data();
        const T* up = gy.data();
        detail::parallel_ranges(planes, min_planes, [=](std::ptrdiff_t first, std::ptrdiff_t last) {
            for (std::ptrdiff_t p = first; p < last; ++p) {
                T* plane = gx + p * a.H * a.W;
                const T* d = up + p * a.Ho * a.Wo;
                for (int r = 0; r < a.Ho; ++r)
                    for (int c = 0; c < a.Wo; ++c) {
                        const T share = d[r * a.Wo + c] * inv;
                        for (int u = 0; u < a.kernel; ++u)
                            for (int v = 0; v < a.kernel; ++v) plane[(r * a.stride + u) * a.W + c * a.stride + v] += share;
                    }
            }
        });
    });
}

template <class T>
Var<T> global_avg_pool2d(const Var<T>& x) {
    require_rank("global_avg_pool2d input (B x C x H x W)", x.shape(), 4);
    const int B = x.shape()[0], C = x.shape()[1];
    const std::ptrdiff_t area = static_cast<std::ptrdiff_t>(x.shape()[2]) * x.shape()[3], planes = static_cast<std::ptrdiff_t>(B) * C;
    if (area == 0) fail("global_avg_pool2d: empty planes in {}", x.shape().str());
    const T inv = T(1) / static_cast<T>(area);
    Tensor<T> y(Shape{B, C});
    const T* in = x.value().data();
    T* out = y.data();
    const std::ptrdiff_t min_planes = detail::min_parallel_elements / area;
    detail::parallel_ranges(planes, min_planes, [=](std::ptrdiff_t first, std::ptrdiff_t last) {
        for (std::ptrdiff_t p = first; p < last; ++p) {
            T sum = 0;
            for (std::ptrdiff_t i = 0; i < area; ++i) sum += in[p * area + i];
            out[p] = sum * inv;
        }
    });
    return record<T>("global_avg_pool2d", std::move(y), {x}, [inv, area, planes, min_planes](const Tensor<T>&, const Tensor<T>& gy, auto g) {
        if (!g[0]) return;
        T* gx = g[0]->data();
        const T* up = gy.data();
        detail::parallel_ranges(planes, min_planes, [=](std::ptrdiff_t first, std::ptrdiff_t last) {
            for (std::ptrdiff_t p = first; p < last; ++p) {
                const T share = up[p] * inv;
                for (std::ptrdiff_t i = 0; i < area; ++i) gx[p * area + i] += share;
            }
        });
    });
}

template void pool::max_forward(const Tensor<float>&, int, int, Tensor<float>&, std::vector<std::int32_t>&);
template void pool::max_forward(const Tensor<double>&, int, int, Tensor<double>&, std::vector<std::int32_t>&);
template Var<float> max_pool2d(const Var<float>&, int, int);
template Var<double> max_pool2d(const Var<double>&, int, int);
template Var<float> avg_pool2d(const Var<float>&, int, int);
template Var<double> avg_pool2d(const Var<double>&, int, int);
template Var<float> global_avg_pool2d(const Var<float>&);
template Var<double> global_avg_pool2d(const Var<double>&);

}  // namespace mcnn
