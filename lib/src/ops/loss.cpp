#include "mcnn/ops/loss.hpp"

#include <cmath>

namespace mcnn {

template <class T>
Tensor<T> softmax(const Tensor<T>& logits) {
    require_rank("softmax logits (B x C)", logits.shape(), 2);
    Tensor<T> p(logits.shape());
    auto z = logits.matrix();
    auto pm = p.matrix();
    for (Eigen::Index n = 0; n < z.rows(); ++n) {
        // shift by the max: no overflow. In a row holding NaN, whichever element maxCoeff returns,
        // exp(NaN - m) makes the sum, and so the whole row, NaN (as in PyTorch).
        pm.row(n) = (z.row(n).array() - z.row(n).maxCoeff()).exp();
        pm.row(n) /= pm.row(n).sum();
    }
    return p;
}

namespace {

// The smoothed loss: per row, L_n = lse_n - sum_c q_c (z_c - m) with lse_n = log sum exp(z - m),
// q_c = eps / C + (c == t ? 1 - eps : 0); dz += dL (p - q) / B.
template <class T>
Var<T> smoothed_cross_entropy(const Var<T>& logits, const std::vector<int>& labels, double eps) {
    const int B = logits.shape()[0], C = logits.shape()[1];
    auto p = std::make_shared<Tensor<T>>(softmax(logits.value()));
    auto z = logits.value().matrix();
    const T off = static_cast<T>(eps / C), on = static_cast<T>(1 - eps);
    T total = 0;
    for (int n = 0; n < B; ++n) {
        const T m = z.row(n).maxCoeff();
        const auto shifted = z.row(n).array() - m;
        total += std::log(shifted.exp().sum()) - on * shifted(labels[n]) - off * shifted.sum();
    }
    Tensor<T> loss(Shape{}, total / T(B));
    return record<T>("softmax_cross_entropy", std::move(loss), {logits}, [p, labels, B, off, on](const Tensor<T>&, const Tensor<T>& gy, auto g) {
        if (!g[0]) return;
        auto gz = g[0]->matrix();
        const T scale = gy[0] / T(B);
        gz += scale * (p->matrix().array() - off).matrix();
        for (int n = 0; n < B; ++n) gz(n, labels[n]) -= scale * on;
    });
}

}  // namespace

template <class T>
Var<T> softmax_cross_entropy(const Var<T>& logits, const std::vector<int>& labels, double label_smoothing) {
    require_rank("softmax_cross_entropy logits (B x C)", logits.shape(), 2);
    if (!(label_smoothing >= 0 && label_smoothing <= 1))
        fail("softmax_cross_entropy: label_smoothing must be in [0, 1], got {}", label_smoothing);
    const int B = logits.shape()[0], C = logits.shape()[1];
    if (static_cast<int>(labels.size()) != B)
        fail("softmax_cross_entropy: {} labels for {} rows of logits {}", labels.size(), B, logits.shape().str());
    if (B == 0) fail("softmax_cross_entropy: empty batch");
    for (int n = 0; n < B; ++n)
        if (labels[n] < 0 || labels[n] >= C) fail("softmax_cross_entropy: label {} at batch index {} is outside [0, {})", labels[n], n, C);
    if (label_smoothing > 0) return smoothed_cross_entropy(logits, labels, label_smoothing);
    auto p = std::make_shared<Tensor<T>>(softmax(logits.value()));
    // log p[t] = z[t] - max z - log sum exp(z - max z), computed without forming log(p) of tiny p
    auto z = logits.value().matrix();
    T total = 0;
    for (int n = 0; n < B; ++n) {
        const T m = z.row(n).maxCoeff();
        total += std::log((z.row(n).array() - m).exp().sum()) - (z(n, labels[n]) - m);
    }
    Tensor<T> loss(Shape{}, total / T(B));
    return record<T>("softmax_cross_entropy", std::move(loss), {logits},
                     [p, labels, B](const Tensor<T>&, const Tensor<T>& gy, auto g) {
                         if (!g[0]) return;
                         auto gz = g[0]->matrix();
                         const T scale = gy[0] / T(B);
                         gz += scale * p->matrix();
                         for (int n = 0; n < B; ++n) gz(n, labels[n]) -= scale;
                     });
}

template Tensor<float> softmax(const Tensor<float>&);
template Tensor<double> softmax(const Tensor<double>&);
template Var<float> softmax_cross_entropy(const Var<float>&, const std::vector<int>&, double);
template Var<double> softmax_cross_entropy(const Var<double>&, const std::vector<int>&, double);

}  // namespace mcnn
