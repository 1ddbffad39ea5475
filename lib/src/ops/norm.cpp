#include "mcnn/ops/norm.hpp"

#include <cmath>
#include <memory>
#include <utility>
#include <vector>

#include "mcnn/distributed.hpp"
#include "../parallel.hpp"

namespace mcnn {
namespace {

// The layout of x: channel c's values are `batch` contiguous planes of `plane` values, the one of
// image n starting at (n * channels + c) * plane.
struct BnLayout {
    Eigen::Index batch, channels, plane;
    double count() const { return static_cast<double>(batch * plane); }  // N
    Eigen::Index start(Eigen::Index n, Eigen::Index c) const { return (n * channels + c) * plane; }
};

void bn_check(const Shape& xs, const Shape* ws, const Shape* bs, const Shape* ms, const Shape* vs,
                      const BatchNorm2dOptions& o) {
    if (xs.rank() != 4) fail("batch_norm2d: input must be B x C x H x W, got {}", xs.str());
    const Shape per_channel{xs[1]};
    const auto check = [&](const char* what, const Shape* s) {
        if (s && *s != per_channel)
            fail("batch_norm2d: {} must have shape {} (one per channel of input {}), got {}", what, per_channel.str(), xs.str(),
                 s->str());
    };
    check("weight", ws);
    check("bias", bs);
    check("running mean", ms);
    check("running var", vs);
    if (!(o.eps > 0) || !std::isfinite(o.eps)) fail("batch_norm2d: eps must be finite and > 0, got {}", o.eps);
    if (!(o.momentum >= 0 && o.momentum <= 1)) fail("batch_norm2d: momentum must be in [0, 1], got {}", o.momentum);
    if (!o.training && (!ms || !vs)) fail("batch_norm2d: eval mode needs the running mean and var, got none");
    if (o.training && static_cast<std::size_t>(xs[0]) * xs[2] * xs[3] < 2)
        fail("batch_norm2d: train mode needs more than one value per channel, got input {}", xs.str());
}

template <class T>
using BnConstPlane = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;
template <class T>
using BnPlane = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;

// Calls body(c) for every channel, channels split between threads when the input is large.
template <class Body>
void bn_for_channels(const BnLayout& l, Body&& body) {
    const auto per_channel = static_cast<std::ptrdiff_t>(std::max<Eigen::Index>(l.batch * l.plane, 1));
    detail::parallel_ranges(l.channels, detail::min_parallel_elements / per_channel, [&](std::ptrdiff_t begin, std::ptrdiff_t end) {
        for (std::ptrdiff_t c = begin; c < end; ++c) body(static_cast<Eigen::Index>(c));
    });
}

// The per-channel sums of a batch split between processes (distributed.hpp) are summed over them:
// every rank then normalises with the global batch's statistics (sync batch norm). Null: one process.
struct BnSync {
    Communicator* comm = nullptr;
    Reduction reduction = Reduction::fast;
    void sum(std::vector<double>& v) const {
        if (comm) comm->allreduce_sum(v.data(), v.size(), reduction);
    }
};

// The batch's mean and biased variance of each channel, summed in double (two passes); `count`
// becomes the values per channel (over every rank's part).
template <class T>
void bn_batch_statistics(const T* x, const BnLayout& l, const BnSync& sync, std::vector<double>& mean, std::vector<double>& var,
                         double& count) {
    const auto channels = static_cast<std::size_t>(l.channels);
    std::vector<double> sums(channels + 1, 0.0);  // the last: the count
    bn_for_channels(l, [&](Eigen::Index c) {
        double sum = 0;
        for (Eigen::Index n = 0; n < l.batch; ++n) sum += BnConstPlane<T>(x + l.start(n, c), l.plane).template cast<double>().sum();
        sums[static_cast<std::size_t>(c)] = sum;
    });
    sums[channels] = l.count();
    sync.sum(sums);
    count = sums[channels];
    mean.assign(channels, 0.0);
    var.assign(channels, 0.0);
    for (std::size_t c = 0; c < channels; ++c) mean[c] = sums[c] / count;
    bn_for_channels(l, [&](Eigen::Index c) {
        const double m = mean[static_cast<std::size_t>(c)];
        double squares = 0;
        for (Eigen::Index n = 0; n < l.batch; ++n)
            squares += (BnConstPlane<T>(x + l.start(n, c), l.plane).template cast<double>() - m).square().sum();
        var[static_cast<std::size_t>(c)] = squares;
    });
    sync.sum(var);
    for (double& v : var) v /= count;
}

// y = (x - mean[c]) * inv[c] * w[c] + b[c]; w, b null: 1 and 0.
template <class T>
void bn_normalise(const T* x, const BnLayout& l, const std::vector<double>& mean, const std::vector<double>& inv, const T* w,
               const T* b, T* y) {
    bn_for_channels(l, [&](Eigen::Index c) {
        const auto k = static_cast<std::size_t>(c);
        const T m = static_cast<T>(mean[k]), scale = static_cast<T>(inv[k] * (w ? static_cast<double>(w[c]) : 1.0));
        const T shift = b ? b[c] : T(0);
        for (Eigen::Index n = 0; n < l.batch; ++n)
            BnPlane<T>(y + l.start(n, c), l.plane) = (BnConstPlane<T>(x + l.start(n, c), l.plane) - m) * scale + shift;
    });
}

// Backward of both modes (see norm.hpp): per channel sum(dy) and sum(dy * xhat) in double, then gx.
// The weight and bias take this process's sums (their gradients are summed over the processes with
// every other parameter's); gx in training takes the sums over every rank's part (`count` values per
// channel), as the statistics did.
template <class T>
void bn_backward(const T* x, const T* gy, const BnLayout& l, bool training, const BnSync& sync, double count,
                 const std::vector<double>& mean, const std::vector<double>& inv, const T* w, T* gx, T* gw, T* gb) {
    const auto channels = static_cast<std::size_t>(l.channels);
    std::vector<double> sums(2 * channels);  // sum dy, then sum dy * xhat
    bn_for_channels(l, [&](Eigen::Index c) {
        const auto k = static_cast<std::size_t>(c);
        double sum_dy = 0, sum_dy_centred = 0;  // sum dy, sum dy * (x - mean)
        for (Eigen::Index n = 0; n < l.batch; ++n) {
            const auto dy = BnConstPlane<T>(gy + l.start(n, c), l.plane).template cast<double>();
            sum_dy += dy.sum();
            sum_dy_centred += (dy * (BnConstPlane<T>(x + l.start(n, c), l.plane).template cast<double>() - mean[k])).sum();
        }
        sums[k] = sum_dy;
        sums[channels + k] = sum_dy_centred * inv[k];
        if (gw) gw[c] += static_cast<T>(sums[channels + k]);
        if (gb) gb[c] += static_cast<T>(sum_dy);
    });
    if (!gx) return;
    if (training) sync.sum(sums);
    bn_for_channels(l, [&](Eigen::Index c) {
        const auto k = static_cast<std::size_t>(c);
        const double sum_dy = sums[k], sum_dy_xhat = sums[channels + k];
        const double scale = inv[k] * (w ? static_cast<double>(w[c]) : 1.0);
        // train: gx += scale * dy - scale * sum_dy / N - (x - mean) * scale * inv * sum_dy_xhat / N
        const T a = static_cast<T>(scale), m = static_cast<T>(mean[k]);
        const T shift = training ? static_cast<T>(scale * sum_dy / count) : T(0);
        const T slope = training ? static_cast<T>(scale * inv[k] * sum_dy_xhat / count) : T(0);
        for (Eigen::Index n = 0; n < l.batch; ++n) {
            const BnConstPlane<T> dy(gy + l.start(n, c), l.plane), xs(x + l.start(n, c), l.plane);
            BnPlane<T> out(gx + l.start(n, c), l.plane);
            if (training)
                out += a * dy - shift - (xs - m) * slope;
            else
                out += a * dy;
        }
    });
}

template <class T>
void bn_update_running(BatchNormRunning<T> running, const std::vector<double>& mean, const std::vector<double>& var, double count,
                    double momentum) {
    if (!running.mean || !running.var) return;
    for (std::size_t c = 0; c < mean.size(); ++c) {
        T& rm = (*running.mean)[c];
        T& rv = (*running.var)[c];
        rm = static_cast<T>((1 - momentum) * static_cast<double>(rm) + momentum * mean[c]);
        rv = static_cast<T>((1 - momentum) * static_cast<double>(rv) + momentum * var[c] * count / (count - 1));
    }
}

// The node, affine or not (w, b null); inputs are x then, when affine, weight and bias.
template <class T>
Var<T> batch_norm_node(const Var<T>& x, const Var<T>* w, const Var<T>* b, BatchNormRunning<T> running, const BatchNorm2dOptions& o) {
    const Shape& xs = x.shape();
    const BnLayout l{xs[0], xs[1], static_cast<Eigen::Index>(xs[2]) * xs[3]};
    std::vector<double> mean, var;
    double count = l.count();
    const StepPart& part = current_step_part();
    const BnSync sync{o.training ? part.comm : nullptr, part.reduction};
    if (o.training) {
        bn_batch_statistics(x.value().data(), l, sync, mean, var, count);
        bn_update_running(running, mean, var, count, o.momentum);
    } else {
        mean.assign(running.mean->begin(), running.mean->end());
        var.assign(running.var->begin(), running.var->end());
    }
    std::vector<double> inv(var.size());
    for (std::size_t c = 0; c < var.size(); ++c) inv[c] = 1 / std::sqrt(var[c] + o.eps);
    Tensor<T> y(xs);
    bn_normalise(x.value().data(), l, mean, inv, w ? w->value().data() : nullptr, b ? b->value().data() : nullptr, y.data());
    auto saved_x = x.value_ptr();
    auto saved_w = w ? w->value_ptr() : nullptr;
    const bool training = o.training;
    typename Tape<T>::BackwardFn back = [=](const Tensor<T>&, const Tensor<T>& gy, auto g) {
        T* gw = g.size() > 1 && g[1] ? g[1]->data() : nullptr;
        T* gb = g.size() > 2 && g[2] ? g[2]->data() : nullptr;
        bn_backward(saved_x->data(), gy.data(), l, training, sync, count, mean, inv, saved_w ? saved_w->data() : nullptr,
                    g[0] ? g[0]->data() : nullptr, gw, gb);
    };
    if (w) return record<T>("batch_norm2d", std::move(y), {x, *w, *b}, std::move(back));
    return record<T>("batch_norm2d", std::move(y), {x}, std::move(back));
}

}  // namespace

template <class T>
Var<T> batch_norm2d(const Var<T>& x, const Var<T>& weight, const Var<T>& bias, BatchNormRunning<T> running,
                    const BatchNorm2dOptions& options) {
    bn_check(x.shape(), &weight.shape(), &bias.shape(), running.mean ? &running.mean->shape() : nullptr,
                     running.var ? &running.var->shape() : nullptr, options);
    return batch_norm_node(x, &weight, &bias, running, options);
}

template <class T>
Var<T> batch_norm2d(const Var<T>& x, BatchNormRunning<T> running, const BatchNorm2dOptions& options) {
    bn_check(x.shape(), nullptr, nullptr, running.mean ? &running.mean->shape() : nullptr,
                     running.var ? &running.var->shape() : nullptr, options);
    return batch_norm_node<T>(x, nullptr, nullptr, running, options);
}

// ---- the maths as plain loops -------------------------------------------------------------------

namespace norm {

template <class T>
void plain_forward(const Tensor<T>& x, const Tensor<T>* weight, const Tensor<T>* bias, bool training, double eps,
                   Tensor<T>& mean, Tensor<T>& var, Tensor<T>& y) {
    const int B = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
    const double N = static_cast<double>(B) * H * W;
    y = Tensor<T>(x.shape());
    if (training) {
        mean = Tensor<T>(Shape{C});
        var = Tensor<T>(Shape{C});
    }
    for (int c = 0; c < C; ++c) {
        double m = static_cast<double>(mean[c]), v = static_cast<double>(var[c]);
        if (training) {
            double sum = 0, squares = 0;
            for (int n = 0; n < B; ++n)
                for (int i = 0; i < H; ++i)
                    for (int j = 0; j < W; ++j) sum += static_cast<double>(x.at({n, c, i, j}));
            m = sum / N;
            for (int n = 0; n < B; ++n)
                for (int i = 0; i < H; ++i)
                    for (int j = 0; j < W; ++j) {
                        const double d = static_cast<double>(x.at({n, c, i, j})) - m;
                        squares += d * d;
                    }
            v = squares / N;
            mean[c] = static_cast<T>(m);
            var[c] = static_cast<T>(v);
        }
        const double w = weight ? static_cast<double>((*weight)[c]) : 1, b = bias ? static_cast<double>((*bias)[c]) : 0;
        for (int n = 0; n < B; ++n)
            for (int i = 0; i < H; ++i)
                for (int j = 0; j < W; ++j)
                    y.at({n, c, i, j}) = static_cast<T>((static_cast<double>(x.at({n, c, i, j})) - m) / std::sqrt(v + eps) * w + b);
    }
}

template <class T>
void plain_backward(const Tensor<T>& x, const Tensor<T>* weight, bool training, double eps, const Tensor<T>& mean,
                    const Tensor<T>& var, const Tensor<T>& gy, Tensor<T>& gx, Tensor<T>* gw, Tensor<T>* gb) {
    const int B = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
    const double N = static_cast<double>(B) * H * W;
    for (int c = 0; c < C; ++c) {
        const double m = static_cast<double>(mean[c]), inv = 1 / std::sqrt(static_cast<double>(var[c]) + eps);
        const double w = weight ? static_cast<double>((*weight)[c]) : 1;
        double sum_dy = 0, sum_dy_xhat = 0;
        for (int n = 0; n < B; ++n)
            for (int i = 0; i < H; ++i)
                for (int j = 0; j < W; ++j) {
                    const double dy = static_cast<double>(gy.at({n, c, i, j}));
                    sum_dy += dy;
                    sum_dy_xhat += dy * (static_cast<double>(x.at({n, c, i, j})) - m) * inv;
                }
        if (gw) (*gw)[c] += static_cast<T>(sum_dy_xhat);
        if (gb) (*gb)[c] += static_cast<T>(sum_dy);
        for (int n = 0; n < B; ++n)
            for (int i = 0; i < H; ++i)
                for (int j = 0; j < W; ++j) {
                    const double dy = static_cast<double>(gy.at({n, c, i, j}));
                    const double xhat = (static_cast<double>(x.at({n, c, i, j})) - m) * inv;
                    const double d = training ? dy - sum_dy / N - xhat * sum_dy_xhat / N : dy;
                    gx.at({n, c, i, j}) += static_cast<T>(w * inv * d);
                }
    }
}

}  // namespace norm

#define MCNN_INSTANTIATE_NORM(T)                                                                                          \
    template Var<T> batch_norm2d(const Var<T>&, const Var<T>&, const Var<T>&, BatchNormRunning<T>, const BatchNorm2dOptions&); \
    template Var<T> batch_norm2d(const Var<T>&, BatchNormRunning<T>, const BatchNorm2dOptions&);                           \
    template void norm::plain_forward(const Tensor<T>&, const Tensor<T>*, const Tensor<T>*, bool, double, Tensor<T>&,       \
                                      Tensor<T>&, Tensor<T>&);                                                              \
    template void norm::plain_backward(const Tensor<T>&, const Tensor<T>*, bool, double, const Tensor<T>&, const Tensor<T>&, \
                                       const Tensor<T>&, Tensor<T>&, Tensor<T>*, Tensor<T>*);
MCNN_INSTANTIATE_NORM(float)
MCNN_INSTANTIATE_NORM(double)
#undef MCNN_INSTANTIATE_NORM

}  // namespace mcnn
