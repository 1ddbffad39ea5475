#include "mcnn/ops/activation.hpp"

#include <cmath>

#include "../parallel.hpp"

namespace mcnn {
namespace {

// Records y = f(x) element-wise with dx += dy * df(y), the derivative written through the output.
template <class T, class Forward, class DerivativeFromOutput>
Var<T> elementwise(const char* op, const Var<T>& x, Forward f, DerivativeFromOutput df) {
    Tensor<T> y;
    y.resize(x.shape());  // every element is written below
    const T* in = x.value().data();
    T* out = y.data();
    detail::parallel_ranges(static_cast<std::ptrdiff_t>(y.numel()), detail::min_parallel_elements, [=](std::ptrdiff_t begin, std::ptrdiff_t end) {
        for (std::ptrdiff_t i = begin; i < end; ++i) out[i] = f(in[i]);
    });
    return record<T>(op, std::move(y), {x}, [df](const Tensor<T>& y_, const Tensor<T>& gy, auto g) {
        if (!g[0]) return;
        T* gx = g[0]->data();
        const T *up = gy.data(), *yv = y_.data();
        detail::parallel_ranges(static_cast<std::ptrdiff_t>(y_.numel()), detail::min_parallel_elements, [=](std::ptrdiff_t begin, std::ptrdiff_t end) {
            for (std::ptrdiff_t i = begin; i < end; ++i) gx[i] += up[i] * df(yv[i]);
        });
    });
}

// The branch each element of x takes at the kink of relu and leaky_relu (x > 0 or not), for the
// tape's branch log (see tape.hpp).
template <class T>
void log_signs(const Var<T>& x, const char* op) {
    log_branches(x, op, x.value().numel(), [in = x.value().data()](std::size_t i) { return in[i] > T(0); });
}

}  // namespace

template <class T>
Var<T> relu(const Var<T>& x) {
    log_signs(x, "relu");
    return elementwise<T>("relu", x, [](T v) { return v > T(0) ? v : T(0); }, [](T y) { return y > T(0) ? T(1) : T(0); });
}

template <class T>
Var<T> leaky_relu(const Var<T>& x, T slope) {
    if (!(slope >= T(0))) fail("leaky_relu: slope must be >= 0, got {}", slope);
    log_signs(x, "leaky_relu");
    return elementwise<T>(
        "leaky_relu", x, [slope](T v) { return v > T(0) ? v : slope * v; }, [slope](T y) { return y > T(0) ? T(1) : slope; });
}

template <class T>
Var<T> tanh(const Var<T>& x) {
    return elementwise<T>("tanh", x, [](T v) { return std::tanh(v); }, [](T y) { return T(1) - y * y; });
}

template <class T>
Var<T> sigmoid(const Var<T>& x) {
    return elementwise<T>("sigmoid", x, [](T v) { return T(1) / (T(1) + std::exp(-v)); }, [](T y) { return y * (T(1) - y); });
}

#define MCNN_INSTANTIATE(T)                     \
    template Var<T> relu(const Var<T>&);        \
    template Var<T> leaky_relu(const Var<T>&, T); \
    template Var<T> tanh(const Var<T>&);        \
    template Var<T> sigmoid(const Var<T>&);
MCNN_INSTANTIATE(float)
MCNN_INSTANTIATE(double)

}  // namespace mcnn
