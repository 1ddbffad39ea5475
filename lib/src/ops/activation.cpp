#include "mcnn/ops/activation.hpp"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <utility>

#include <unsupported/Eigen/SpecialFunctions>

#include "../parallel.hpp"

namespace mcnn {
namespace {

// Records y = f(x) element-wise with dx += vjp(dy, y): the gradient written through the output
// (dy * f'(x) for most; relu selects instead of multiplying, see relu).
// `y` is empty, or x's value taken from a temporary x (Var::take_value): then y = f(x) is written
// over it in place.
template <class T, class Forward, class VectorJacobianProduct>
Var<T> elementwise(const char* op, const Var<T>& x, Tensor<T> y, Forward f, VectorJacobianProduct vjp) {
    const bool in_place = !y.empty();
    if (!in_place) y.resize(x.shape());  // every element is written below
    const T* in = in_place ? y.data() : x.value().data();
    T* out = y.data();
    detail::parallel_ranges(static_cast<std::ptrdiff_t>(y.numel()), detail::min_parallel_elements, [=](std::ptrdiff_t begin, std::ptrdiff_t end) {
        for (std::ptrdiff_t i = begin; i < end; ++i) out[i] = f(in[i]);
    });
    return record<T>(op, std::move(y), {x}, [vjp](const Tensor<T>& y_, const Tensor<T>& gy, auto g) {
        if (!g[0]) return;
        T* gx = g[0]->data();
        const T *up = gy.data(), *yv = y_.data();
        detail::parallel_ranges(static_cast<std::ptrdiff_t>(y_.numel()), detail::min_parallel_elements, [=](std::ptrdiff_t begin, std::ptrdiff_t end) {
            for (std::ptrdiff_t i = begin; i < end; ++i) gx[i] += vjp(up[i], yv[i]);
        });
    });
}

// relu's two element functions (types, not function pointers: the loops inline them)
template <class T>
struct ReluForward {
    T operator()(T v) const { return v <= T(0) ? T(0) : v; }
};
template <class T>
struct ReluVjp {
    T operator()(T dy, T y) const { return y <= T(0) ? T(0) : dy; }
};

// The branch each element of x takes at the kink of relu and leaky_relu (x > 0 or not), for the
// tape's branch log (see tape.hpp).
template <class T>
void log_signs(const Var<T>& x, const char* op) {
    log_branches(x, op, x.value().numel(), [in = x.value().data()](std::size_t i) { return in[i] > T(0); });
}

}  // namespace

// Non-finite values, as PyTorch (2.11, CPU) treats them. Every comparison with NaN is false, so
// how a branch is written decides where a NaN goes; each is written as PyTorch's kernel is:
//   relu        y = (x <= 0 ? 0 : x): relu(NaN) = NaN, relu(inf) = inf, relu(-inf) = 0 (torch.relu is
//               clamp_min(x, 0), which keeps a NaN). dx += (y <= 0 ? 0 : dy), a select, not a product
//               (threshold_backward on the output): where y = NaN the gradient passes (NaN <= 0 is
//               false), and a NaN or inf upstream at a unit with y <= 0 gives 0, not 0 * NaN.
//   leaky_relu  y = (x > 0 ? x : slope * x): NaN -> NaN, -inf -> -inf (slope 0: 0 * -inf = NaN).
//               dx += dy * (x > 0 ? 1 : slope), a product (leaky_relu_backward): a NaN input takes
//               the slope; a NaN upstream stays NaN, also times a slope of 0. y > 0 exactly when
//               x > 0 (slope >= 0), so the output stands in for x.
//   tanh        tanh(NaN) = NaN, tanh(+-inf) = +-1; dx += dy * (1 - y^2): the derivative is 0 at
//               +-inf, so an inf upstream gives inf * 0 = NaN there.
//   sigmoid     NaN -> NaN, -inf -> 0, inf -> 1; dx += dy * y * (1 - y), likewise.
template <class T>
Var<T> relu(const Var<T>& x) {
    log_signs(x, "relu");
    return elementwise<T>("relu", x, Tensor<T>(), ReluForward<T>{}, ReluVjp<T>{});
}

template <class T>
Var<T> relu(Var<T>&& x) {
    log_signs(x, "relu");
    Tensor<T> y;
    x.take_value(y);
    return elementwise<T>("relu", x, std::move(y), ReluForward<T>{}, ReluVjp<T>{});
}

template <class T>
Var<T> leaky_relu(const Var<T>& x, T slope) {
    if (!(slope >= T(0))) fail("leaky_relu: slope must be >= 0, got {}", slope);
    log_signs(x, "leaky_relu");
    return elementwise<T>(
        "leaky_relu", x, Tensor<T>(), [slope](T v) { return v > T(0) ? v : slope * v; },
        [slope](T dy, T y) { return dy * (y > T(0) ? T(1) : slope); });
}

template <class T>
Var<T> tanh(const Var<T>& x) {
    return elementwise<T>("tanh", x, Tensor<T>(), [](T v) { return std::tanh(v); }, [](T dy, T y) { return dy * (T(1) - y * y); });
}

template <class T>
Var<T> sigmoid(const Var<T>& x) {
    return elementwise<T>(
        "sigmoid", x, Tensor<T>(), [](T v) { return T(1) / (T(1) + std::exp(-v)); }, [](T dy, T y) { return dy * (y * (T(1) - y)); });
}

namespace activation {

template <class T>
void gelu_plain(const T* x, T* y, std::ptrdiff_t n) {
    for (std::ptrdiff_t i = 0; i < n; ++i) y[i] = x[i] * (T(0.5) * (T(1) + std::erf(x[i] * T(M_SQRT1_2))));
}

template <class T>
void gelu_backward_plain(const T* x, const T* gy, T* gx, std::ptrdiff_t n) {
    for (std::ptrdiff_t i = 0; i < n; ++i) {
        const T cdf = T(0.5) * (T(1) + std::erf(x[i] * T(M_SQRT1_2)));
        const T pdf = T(0.5) * T(M_2_SQRTPI) * T(M_SQRT1_2) * std::exp(T(-0.5) * x[i] * x[i]);  // exp(-x^2/2) / sqrt(2 pi)
        gx[i] += gy[i] * (cdf + x[i] * pdf);
    }
}

namespace {

// Eigen's packet code and its scalar code for a tail round differently (fused multiply-adds or
// not), so that where a range of elements ends would change bits. The vectorised gelu therefore
// runs whole blocks of this many (a multiple of every packet width) and the tail as one padded
// block: every element gets the packet code, on any split between threads.
constexpr std::ptrdiff_t gelu_block = 16;

void gelu_fast_blocks(const float* x, float* y, std::ptrdiff_t n) {
    const auto X = Eigen::Map<const Eigen::ArrayXf>(x, n);
    Eigen::Map<Eigen::ArrayXf>(y, n) = X * (0.5f * (1.0f + (X * float(M_SQRT1_2)).erf()));
}

void gelu_backward_fast_blocks(const float* x, const float* gy, float* gx, std::ptrdiff_t n) {
    const auto X = Eigen::Map<const Eigen::ArrayXf>(x, n);
    const float pdf_scale = float(0.5 * M_2_SQRTPI * M_SQRT1_2);
    Eigen::Map<Eigen::ArrayXf>(gx, n) += Eigen::Map<const Eigen::ArrayXf>(gy, n) *
        (0.5f * (1.0f + (X * float(M_SQRT1_2)).erf()) + X * (pdf_scale * (-0.5f * X.square()).exp()));
}

}  // namespace

void gelu_fast(const float* x, float* y, std::ptrdiff_t n) {
    const std::ptrdiff_t body = n - n % gelu_block, tail = n - body;
    gelu_fast_blocks(x, y, body);
    if (tail == 0) return;
    float xt[gelu_block] = {}, yt[gelu_block];
    std::copy(x + body, x + n, xt);
    gelu_fast_blocks(xt, yt, gelu_block);
    std::copy(yt, yt + tail, y + body);
}

void gelu_backward_fast(const float* x, const float* gy, float* gx, std::ptrdiff_t n) {
    const std::ptrdiff_t body = n - n % gelu_block, tail = n - body;
    gelu_backward_fast_blocks(x, gy, gx, body);
    if (tail == 0) return;
    float xt[gelu_block] = {}, gyt[gelu_block] = {}, gxt[gelu_block] = {};
    std::copy(x + body, x + n, xt);
    std::copy(gy + body, gy + n, gyt);
    std::copy(gx + body, gx + n, gxt);
    gelu_backward_fast_blocks(xt, gyt, gxt, gelu_block);
    std::copy(gxt, gxt + tail, gx + body);
}

}  // namespace activation

namespace {

// gelu over [0, n) in chunks on the threads: float's vectorised path, double's plain loops.
template <class T>
void gelu_values(const T* x, T* y, std::ptrdiff_t n) {
    detail::parallel_ranges(n, detail::min_parallel_elements, [=](std::ptrdiff_t begin, std::ptrdiff_t end) {
        if constexpr (std::is_same_v<T, float>) activation::gelu_fast(x + begin, y + begin, end - begin);
        else activation::gelu_plain(x + begin, y + begin, end - begin);
    });
}

template <class T>
void gelu_gradient(const T* x, const T* gy, T* gx, std::ptrdiff_t n) {
    detail::parallel_ranges(n, detail::min_parallel_elements, [=](std::ptrdiff_t begin, std::ptrdiff_t end) {
        if constexpr (std::is_same_v<T, float>) activation::gelu_backward_fast(x + begin, gy + begin, gx + begin, end - begin);
        else activation::gelu_backward_plain(x + begin, gy + begin, gx + begin, end - begin);
    });
}

}  // namespace

// Not through elementwise(): its derivative needs x, not y (gelu is not one-to-one).
template <class T>
Var<T> gelu(const Var<T>& x) {
    Tensor<T> y(x.shape());
    const auto n = static_cast<std::ptrdiff_t>(y.numel());
    gelu_values(x.value().data(), y.data(), n);
    return record<T>("gelu", std::move(y), {x}, [xv = x.value_ptr(), n](const Tensor<T>&, const Tensor<T>& gy, auto g) {
        if (g[0]) gelu_gradient(xv->data(), gy.data(), g[0]->data(), n);
    });
}

#define MCNN_INSTANTIATE(T)                     \
    template Var<T> relu(const Var<T>&);        \
    template Var<T> relu(Var<T>&&);             \
    template Var<T> leaky_relu(const Var<T>&, T); \
    template Var<T> tanh(const Var<T>&);        \
    template Var<T> sigmoid(const Var<T>&);     \
    template Var<T> gelu(const Var<T>&);       \
    template void activation::gelu_plain(const T*, T*, std::ptrdiff_t); \
    template void activation::gelu_backward_plain(const T*, const T*, T*, std::ptrdiff_t);
MCNN_INSTANTIATE(float)
MCNN_INSTANTIATE(double)
#undef MCNN_INSTANTIATE  // the unity build puts several files in one translation unit

}  // namespace mcnn
