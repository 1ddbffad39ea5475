#include "mcnn/nn/models.hpp"

#include <algorithm>

#include <Eigen/Eigenvalues>

#include "mcnn/ops/activation.hpp"
#include "mcnn/ops/bias.hpp"
#include "mcnn/ops/elementwise.hpp"
#include "mcnn/ops/pool.hpp"
#include "mcnn/ops/shape.hpp"

namespace mcnn {

template <class T>
SimpleCNN<T>::SimpleCNN(Rng& rng, ConvPath path, BiasKind bias, SimpleWidths w)
    : conv1({.in_channels = 3, .out_channels = w.conv1, .kernel = 5, .bias = bias, .in_size = 32, .path = path}, rng),
      conv2({.in_channels = w.conv1, .out_channels = w.conv2, .kernel = 5, .bias = bias, .in_size = 14, .path = path}, rng),
      fc1(w.conv2 * 5 * 5, w.fc1, rng),
      fc2(w.fc1, w.fc2, rng),
      fc3(w.fc2, 10, rng) {
    this->register_modules({{"conv1", conv1}, {"conv2", conv2}, {"fc1", fc1}, {"fc2", fc2}, {"fc3", fc3}});
}

template <class T>
Var<T> SimpleCNN<T>::forward(const Var<T>& x) {
    Var<T> h = max_pool2d(relu(conv1(x)), 2);  // B x 6 x 14 x 14
    h = max_pool2d(relu(conv2(h)), 2);         // B x 16 x 5 x 5
    h = relu(fc1(flatten(h)));                 // B x 120
    h = relu(fc2(h));                          // B x 84
    return fc3(h);                             // B x 10
}

template <class T>
TunedCNN<T>::TunedCNN(Rng& rng, TunedSpec s)
    : conv1({.in_channels = 3, .out_channels = s.conv1, .kernel = 5, .padding = 3}, rng),
      conv2({.in_channels = s.conv1, .out_channels = s.conv2, .kernel = 5, .padding = 3}, rng),
      conv3({.in_channels = s.conv2, .out_channels = s.conv3, .kernel = 5, .padding = 3}, rng),
      fc1(s.conv3 * 5 * 5, s.fc1, rng),
      fc2(s.fc1, s.fc2, rng),
      fc3(s.fc2, 10, rng) {
    this->register_modules({{"conv1", conv1}, {"conv2", conv2}, {"conv3", conv3}, {"fc1", fc1}, {"fc2", fc2}, {"fc3", fc3}});
    if (s.dropout > 0) {  // drawn after the weights: without dropout the model is the notebook's, draw for draw
        drop1 = std::make_unique<Dropout<T>>(s.dropout, rng);
        drop2 = std::make_unique<Dropout<T>>(s.dropout, rng);
        drop3 = std::make_unique<Dropout<T>>(s.dropout, rng);
        this->register_modules({{"drop1", *drop1}, {"drop2", *drop2}, {"drop3", *drop3}});
    }
}

template <class T>
Var<T> TunedCNN<T>::forward(const Var<T>& x) {
    auto drop = [](std::unique_ptr<Dropout<T>>& d, const Var<T>& h) { return d ? (*d)(h) : h; };
    Var<T> h = max_pool2d(relu(conv1(x)), 2);  // B x 16 x 17 x 17  (conv: 34 x 34)
    h = max_pool2d(relu(conv2(h)), 2);         // B x 64 x 9 x 9    (conv: 19 x 19)
    h = max_pool2d(relu(conv3(h)), 2);         // B x 128 x 5 x 5   (conv: 11 x 11)
    h = relu(fc1(drop(drop1, flatten(h))));    // B x 256
    h = relu(fc2(drop(drop2, h)));             // B x 512
    return fc3(drop(drop3, h));                // B x 10
}

namespace {

/// PyTorch's dirac_ on the first min(D, N) filters of a D x N x F x F conv (F odd): filter d is 1
/// at the centre of input channel d and 0 elsewhere.
template <class T>
void dirac_filters(Tensor<T>& w) {
    const Shape& s = w.shape();
    const int d_count = s[0], n_count = s[1], f = s[2];
    const std::size_t filter = static_cast<std::size_t>(n_count) * f * f, plane = static_cast<std::size_t>(f) * f;
    for (int d = 0; d < std::min(d_count, n_count); ++d) {
        T* p = w.data() + static_cast<std::size_t>(d) * filter;
        std::fill(p, p + filter, T(0));
        p[static_cast<std::size_t>(d) * plane + static_cast<std::size_t>(f / 2) * f + f / 2] = T(1);
    }
}

Conv2dSpec fast_conv(int in, int out) {
    return {.in_channels = in, .out_channels = out, .kernel = 3, .padding = 1, .bias = BiasKind::none};
}

constexpr int whiten_kernel = 2, whiten_in = 3;
constexpr int whiten_dims = whiten_in * whiten_kernel * whiten_kernel;  // 12 numbers per patch
constexpr double whiten_eps = 5e-4;

}  // namespace

template <class T>
FastBlock<T>::FastBlock(int in_channels, int out_channels, const FastNetSpec& spec, Rng& rng)
    : conv1(fast_conv(in_channels, out_channels), rng),
      conv2(fast_conv(out_channels, out_channels), rng),
      norm1(out_channels, spec.norm),
      norm2(out_channels, spec.norm) {
    if (spec.dirac) {
        dirac_filters(conv1.weight.value);
        dirac_filters(conv2.weight.value);
    }
    this->register_modules({{"conv1", conv1}, {"norm1", norm1}, {"conv2", conv2}, {"norm2", norm2}});
}

template <class T>
Var<T> FastBlock<T>::forward(const Var<T>& x) {
    Var<T> h = gelu(norm1(max_pool2d(conv1(x), 2)));
    return gelu(norm2(conv2(h)));
}

template <class T>
FastNet<T>::FastNet(Rng& rng, const FastNetSpec& spec)
    : whiten_weight(default_init<T>(Shape{2 * whiten_dims, whiten_in, whiten_kernel, whiten_kernel}, whiten_dims, rng)),
      block1(2 * whiten_dims, spec.widths[0], spec, rng),
      block2(spec.widths[0], spec.widths[1], spec, rng),
      block3(spec.widths[1], spec.widths[2], spec, rng),
      head(spec.widths[2], 10, rng, false),
      spec_(spec) {
    if (!(spec.scale > 0) || !std::isfinite(spec.scale)) fail("FastNet: the logits' scale must be finite and > 0, got {}", spec.scale);
    whiten_bias.value = default_init<T>(Shape{2 * whiten_dims}, whiten_dims, rng);
    this->register_buffer("whiten_weight", whiten_weight);
    this->register_parameter("whiten_bias", whiten_bias);
    this->register_modules({{"block1", block1}, {"block2", block2}, {"block3", block3}, {"head", head}});
}

template <class T>
Var<T> FastNet<T>::forward(const Var<T>& x) {
    Tape<T>& tape = *x.tape();
    Var<T> h = conv2d(x, tape.constant(whiten_weight), Conv2dOptions{});  // B x 24 x 31 x 31
    h = gelu(bias_channels(std::move(h), tape.param(whiten_bias)));
    h = block3(block2(block1(h)));                                       // B x 256 x 3 x 3
    h = flatten(max_pool2d(h, 3));                                       // B x 256
    return scale(head(h), spec_.scale);                                  // B x 10
}

template <class T>
std::string FastNet<T>::describe() const {
    return fmt::format("widths {}/{}/{}, logits x {:.4g}, batch norm momentum {:g} eps {:g}{}", spec_.widths[0], spec_.widths[1],
                       spec_.widths[2], spec_.scale, spec_.norm.momentum, spec_.norm.eps, spec_.dirac ? ", dirac init" : "");
}

template <class T>
void FastNet<T>::init_from_data(const Tensor<T>& examples) {
    const Shape& s = examples.shape();
    if (s.rank() != 4 || s[1] != whiten_in || s[2] < whiten_kernel || s[3] < whiten_kernel || s[0] < 1)
        fail("FastNet::init_from_data: needs images B x {} x H x W (H, W >= {}), got {}", whiten_in, whiten_kernel, s.str());
    const int batch = s[0], height = s[2], width = s[3];
    // S = sum over patches of p p^T / count, p the 12 values of a patch in the filters' order (c, i, j).
    Eigen::Matrix<double, whiten_dims, whiten_dims> cov = Eigen::Matrix<double, whiten_dims, whiten_dims>::Zero();
    Eigen::Matrix<double, whiten_dims, 1> p;
    for (int b = 0; b < batch; ++b)
        for (int y = 0; y + whiten_kernel <= height; ++y)
            for (int x = 0; x + whiten_kernel <= width; ++x) {
                for (int c = 0; c < whiten_in; ++c)
                    for (int i = 0; i < whiten_kernel; ++i)
                        for (int j = 0; j < whiten_kernel; ++j)
                            p((c * whiten_kernel + i) * whiten_kernel + j) =
                                static_cast<double>(examples.data()[((static_cast<std::size_t>(b) * whiten_in + c) * height + y + i) * width + x + j]);
                cov.noalias() += p * p.transpose();
            }
    cov /= static_cast<double>(batch) * (height - whiten_kernel + 1) * (width - whiten_kernel + 1);
    if (!cov.allFinite()) fail("FastNet::init_from_data: the examples hold NaN or infinite values");
    const Eigen::SelfAdjointEigenSolver<Eigen::Matrix<double, whiten_dims, whiten_dims>> eig(cov);  // ascending eigenvalues
    for (int k = 0; k < whiten_dims; ++k) {
        const int e = whiten_dims - 1 - k;  // largest first
        const double norm = 1 / std::sqrt(std::max(eig.eigenvalues()(e), 0.0) + whiten_eps);
        for (int d = 0; d < whiten_dims; ++d) {
            const T v = static_cast<T>(eig.eigenvectors()(d, e) * norm);
            whiten_weight.data()[static_cast<std::size_t>(k) * whiten_dims + d] = v;
            whiten_weight.data()[static_cast<std::size_t>(k + whiten_dims) * whiten_dims + d] = -v;
        }
    }
}

template class FastBlock<float>;
template class FastBlock<double>;
template class FastNet<float>;
template class FastNet<double>;
template class SimpleCNN<float>;
template class SimpleCNN<double>;
template class TunedCNN<float>;
template class TunedCNN<double>;
template class ManualCNN<float>;
template class ManualCNN<double>;

}  // namespace mcnn
