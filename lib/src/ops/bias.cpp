#include "mcnn/ops/bias.hpp"

namespace mcnn {

template <class T>
Var<T> bias_channels(const Var<T>& x, const Var<T>& b) {
    const Shape& xs = x.shape();
    if ((xs.rank() != 2 && xs.rank() != 4) || b.shape().rank() != 1 || b.shape()[0] != xs[1])
        fail("bias_channels: input {} (B x D x H x W or B x D) needs a bias of shape [D], got {}", xs.str(), b.shape().str());
    const Eigen::Index batch = xs[0], channels = xs[1], plane = static_cast<Eigen::Index>(xs.numel() / (batch * channels));
    Tensor<T> y = x.value();
    // rows (n, d), columns positions: add b[d] to each row
    MatrixMap<T> ym(y.data(), batch * channels, plane);
    for (Eigen::Index n = 0; n < batch; ++n)
        ym.middleRows(n * channels, channels).colwise() += b.value().matrix(channels, 1).col(0);
    return record<T>("bias_channels", std::move(y), {x, b},
                     [batch, channels, plane](const Tensor<T>&, const Tensor<T>& gy, auto g) {
                         if (g[0]) g[0]->array() += gy.array();
                         if (g[1]) {
                             ConstMatrixMap<T> gym(gy.data(), batch * channels, plane);
                             auto gb = g[1]->matrix(channels, 1).col(0);
                             for (Eigen::Index n = 0; n < batch; ++n) gb += gym.middleRows(n * channels, channels).rowwise().sum();
                         }
                     });
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
        if (g[0]) g[0]->array() += gy.array();
        if (g[1]) g[1]->matrix(1, per_image).row(0) += gy.matrix(batch, per_image).colwise().sum();
    });
}

template Var<float> bias_channels(const Var<float>&, const Var<float>&);
template Var<double> bias_channels(const Var<double>&, const Var<double>&);
template Var<float> bias_untied(const Var<float>&, const Var<float>&);
template Var<double> bias_untied(const Var<double>&, const Var<double>&);

}  // namespace mcnn
