// What the data-parallel tests share (the data_parallel suite of mcnn_tests, and the MPI programs
// tests/mpi/*.cpp): a small dataset, two small nets (with and without batch norm), a short fit
// and its weights as one vector.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "mcnn/mcnn.hpp"

namespace mcnn::test_dp {

inline constexpr int classes = 3, side = 6;

/// `count` images of 3 x 6 x 6 in 3 classes: a pattern per image plus a shift of the channel of
/// its class, so a net learns something in a few steps.
inline data::TensorDataset images(std::size_t count) {
    Tensor<float> x(Shape{static_cast<int>(count), 3, side, side});
    std::vector<int> labels(count);
    const std::size_t per_image = 3 * side * side;
    for (std::size_t n = 0; n < count; ++n) {
        labels[n] = static_cast<int>((n * 7) % classes);
        for (std::size_t i = 0; i < per_image; ++i) {
            const auto channel = static_cast<int>(i / (side * side));
            x[n * per_image + i] = static_cast<float>(0.5 * std::sin(0.37 * static_cast<double>((i + 1) * (n + 3))) +
                                                      (channel == labels[n] ? 0.4 : -0.2));
        }
    }
    return data::TensorDataset(std::move(x), std::move(labels), classes);
}

/// conv 3 -> 4 (3 x 3, padding 1) [-> batch norm] -> ReLU -> dropout 0.25 -> flatten -> linear -> 3.
inline std::unique_ptr<Sequential<float>> net(bool batch_norm, std::uint64_t seed = 5) {
    Rng rng(seed);
    auto n = std::make_unique<Sequential<float>>();
    n->emplace<Conv2d<float>>(Conv2dSpec{.in_channels = 3, .out_channels = 4, .kernel = 3, .padding = 1}, rng);
    if (batch_norm) n->emplace<BatchNorm2d<float>>(4);
    n->emplace<ReLU<float>>();
    n->emplace<Dropout<float>>(0.25, rng);
    n->emplace<Flatten<float>>();
    n->emplace<Linear<float>>(4 * side * side, classes, rng);
    return n;
}

/// The options of the short runs: 2 epochs of batches of 8 with crops and flips, silent.
inline FitOptions options() {
    FitOptions o;
    o.epochs = 2;
    o.batch = 8;
    o.seed = 11;
    o.report_every = 2;
    o.eval_batch = 16;
    o.out = nullptr;
    o.plots = false;
    o.handle_signals = false;
    o.augment.crop_pad = 1;
    o.augment.flip = data::FlipMode::random;
    o.model_name = "dp-net";
    return o;
}

/// The model's parameters, then its buffers, as one vector.
inline std::vector<float> weights(Module<float>& model) {
    std::vector<float> w;
    for (Parameter<float>* p : model.parameters()) w.insert(w.end(), p->value.data(), p->value.data() + p->value.numel());
    for (const NamedBuffer<float>& b : model.buffers()) w.insert(w.end(), b.tensor->data(), b.tensor->data() + b.tensor->numel());
    return w;
}

struct Trained {
    std::vector<float> weights;
    TrainResult result;
};

/// A fresh net trained on 40 images (5 batches an epoch) with Nesterov SGD under `o`.
inline Trained train(bool batch_norm, const FitOptions& o) {
    const data::TensorDataset train_set = images(40), eval_set = images(24);
    auto model = net(batch_norm);
    Sgd<float> sgd(model->parameters(), SgdOptions{.lr = 0.05, .momentum = 0.9, .nesterov = true});
    TrainResult r = fit(*model, sgd, train_set, eval_set, o);
    return {weights(*model), std::move(r)};
}

/// Whether a and b hold the same bits.
inline bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

/// max |a - b| over max(1, max |a|).
inline double relative_distance(const std::vector<float>& a, const std::vector<float>& b) {
    double diff = 0, scale = 1;
    for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
        diff = std::max(diff, std::abs(static_cast<double>(a[i]) - static_cast<double>(b[i])));
        scale = std::max(scale, std::abs(static_cast<double>(a[i])));
    }
    return a.size() == b.size() ? diff / scale : HUGE_VAL;
}

}  // namespace mcnn::test_dp
