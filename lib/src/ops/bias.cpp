#include "mcnn/ops/bias.hpp"

#include <utility>

#include "../parallel.hpp"

namespace mcnn {
namespace {

// into += from, element-wise (same shapes), split between threads when large.
template <class T>
void add_into(Tensor<T>& into, const Tensor<T>& from) {
    T* dst = into.data();
    const T* src = from.data();
    detail::parallel_ranges(static_cast<std::ptrdiff_t>(into.numel()), detail::min_parallel_elements, [=](std::ptrdiff_t begin, std::ptrdiff_t end) {
        for (std::ptrdiff_t i = begin; i < end; ++i) dst[i] += src[i];
    });
}

void check_bias_channels(const Shape& xs, const Shape& bs) {
    if ((xs.rank() != 2 && xs.rank() != 4) || bs.rank() != 1 || bs[0] != xs[1])
        fail("bias_channels: input {} (B x D x H x W or B x D) needs a bias of shape [D], got {}", xs.str(), bs.str());
}

// y = x + b[d]; `y` is empty, or x's value taken from a temporary x (Var::take_value): then the
// sum is written over it in place.
template <class T>
Var<T> bias_channels_into(const Var<T>& x, const Var<T>& b, const Shape& xs, Tensor<T> y) {
    const Eigen::Index batch = xs[0], channels = xs[1], plane = static_cast<Eigen::Index>(xs.numel() / (batch * channels));
    const bool in_place = !y.empty();
    if (!in_place) y.resize(xs);
    // rows (n, d) of `plane` positions: y = x + b[d], rows split between threads
    const T* in = in_place ? y.data() : x.value().data();
    const T* bias = b.value().data();
    T* out = y.data();
    detail::parallel_ranges(batch * channels, detail::min_parallel_elements / std::max<Eigen::Index>(plane, 1), [=](std::ptrdiff_t begin, std::ptrdiff_t end) {
        for (std::ptrdiff_t row = begin; row < end; ++row) {
            const T bd = bias[row % channels];
            for (Eigen::Index i = row * plane; i < (row + 1) * plane; ++i) out[i] = in[i] + bd;
        }
    });
    return record<T>("bias_channels", std::move(y), {x, b},
                     [batch, channels, plane](const Tensor<T>&, const Tensor<T>& gy, auto g) {
                         const std::ptrdiff_t min_rows = detail::min_parallel_elements / std::max<Eigen::Index>(plane * batch, 1);
                         if (g[0]) add_into(*g[0], gy);
                         if (!g[1]) return;
                         // db[d] = sum over images and positions; channels split between threads
                         ConstMatrixMap<T> gym(gy.data(), batch * channels, plane);
                         T* gb = g[1]->data();
                         detail::parallel_ranges(channels, min_rows, [&](std::ptrdiff_t begin, std::ptrdiff_t end) {
                             for (std::ptrdiff_t d = begin; d < end; ++d)
                                 for (Eigen::Index n = 0; n < batch; ++n) gb[d] += gym.row(n * channels + d).sum();
                         });
                     });
}

}  // namespace

template <class T>
Var<T> bias_channels(const Var<T>& x, const Var<T>& b) {
    check_bias_channels(x.shape(), b.shape());
    return bias_channels_into(x, b, x.shape(), Tensor<T>());
}

template <class T>
Var<T> bias_channels(Var<T>&& x, const Var<T>& b) {
    check_bias_channels(x.shape(), b.shape());
    const Shape xs = x.shape();
    Tensor<T> y;
    x.take_value(y);
    return bias_channels_into(x, b, xs, std::move(y));
}

template <class T>
Var<T> bias_untied(const Var<T>& x, const Var<T>& b) {
    const Shape& xs = x.shape();
    if (xs.rank() != 4 || b.shape() != Shape{xs[1], xs[2], xs[3]})
        fail("bias_untied: input {} (B x D x H x W) needs a bias of shape [D, H, W], got {}", xs.str(), b.shape().str());
    const Eigen::Index batch = xs[0], per_image = static_cast<Eigen::Index>(b.value().numel());
    Tensor<T> y = x.value();
    y.matrix(batch, per_image).rowwise() += b.value().matrix(1, per_image).row(0);
    return record<T>("bias_untied", std::move(y), {x, b}, [batch, per_image](const Tensor<T>&, const Tensor<T>& gy, auto g) {
        if (g[0]) add_into(*g[0], gy);
        if (g[1]) g[1]->matrix(1, per_image).row(0) += gy.matrix(batch, per_image).colwise().sum();
    });
}

template Var<float> bias_channels(const Var<float>&, const Var<float>&);
template Var<double> bias_channels(const Var<double>&, const Var<double>&);
template Var<float> bias_channels(Var<float>&&, const Var<float>&);
template Var<double> bias_channels(Var<double>&&, const Var<double>&);
template Var<float> bias_untied(const Var<float>&, const Var<float>&);
template Var<double> bias_untied(const Var<double>&, const Var<double>&);

}  // namespace mcnn
