#pragma once
// The built-in CIFAR-10 models, each a Module of the core layers: images B x 3 x 32 x 32 in,
// logits B x 10 out. They are registered by name ("simple", "tuned", "manual", "fast"; see
// registry.hpp).
#include <array>
#include <memory>

#include "mcnn/nn/layers.hpp"

namespace mcnn {

/// SimpleCNN's layer widths (its model options "conv1", "conv2", "fc1", "fc2"; the defaults are the notebook's).
struct SimpleWidths {
    int conv1 = 6, conv2 = 16, fc1 = 120, fc2 = 84;
};

/// The notebook's SimpleCNN (LeNet-style): conv 3->6 k5, relu, pool 2, conv 6->16 k5, relu, pool 2,
/// flatten, fc 400->120, relu, fc 120->84, relu, fc 84->10. 62,006 parameters. `bias` picks the
/// convs' bias (ManualCNN is this graph with untied biases); `widths` the channels and units.
template <class T>
class SimpleCNN : public Module<T> {
public:
    explicit SimpleCNN(Rng& rng, ConvPath path = ConvPath::automatic, BiasKind bias = BiasKind::tied, SimpleWidths widths = {});
    SimpleCNN(Rng& rng, SimpleWidths widths) : SimpleCNN(rng, ConvPath::automatic, BiasKind::tied, widths) {}
    Var<T> forward(const Var<T>& x) override;
    std::string type_name() const override { return "SimpleCNN"; }

    Conv2d<T> conv1, conv2;
    Linear<T> fc1, fc2, fc3;
};

/// TunedCNN's widths and dropout (its model options "conv1", "conv2", "conv3", "fc1", "fc2",
/// "dropout"; the defaults are the notebook's model, without dropout).
struct TunedSpec {
    int conv1 = 16, conv2 = 64, conv3 = 128, fc1 = 256, fc2 = 512;
    double dropout = 0;  // > 0: Dropout of this probability before fc1, fc2 and fc3
};

/// The notebook's tuned model ("ChangedSimpleCNN"): conv 3->16 k5 pad 3, relu, pool 2; conv 16->64
/// k5 pad 3, relu, pool 2; conv 64->128 k5 pad 3, relu, pool 2; flatten; fc 3200->256, relu,
/// fc 256->512, relu, fc 512->10. 1,187,978 parameters.
template <class T>
class TunedCNN : public Module<T> {
public:
    explicit TunedCNN(Rng& rng, TunedSpec spec = {});
    Var<T> forward(const Var<T>& x) override;
    std::string type_name() const override { return "TunedCNN"; }

    Conv2d<T> conv1, conv2, conv3;
    Linear<T> fc1, fc2, fc3;
    std::unique_ptr<Dropout<T>> drop1, drop2, drop3;  // with spec.dropout > 0
};

/// The notebook's hand-made model ("CustomSimpleCNN"): SimpleCNN whose two conv layers run the
/// correlate2d loops with an untied bias (6 x 28 x 28 and 16 x 10 x 10, starting at zero). 68,288
/// parameters (SimpleCNN's 62,006 less 22 tied biases plus 4,704 + 1,600 untied ones).
template <class T>
class ManualCNN : public SimpleCNN<T> {
public:
    explicit ManualCNN(Rng& rng) : SimpleCNN<T>(rng, ConvPath::correlate2d, BiasKind::untied) {}
    std::string type_name() const override { return "ManualCNN"; }
};

/// Settings of FastNet; the defaults are airbench94's.
struct FastNetSpec {
    std::array<int, 3> widths{64, 256, 256};  // channels of the three blocks
    /// Every batch norm: PyTorch momentum 0.4 (airbench's "0.6" is the running statistics' share),
    /// eps 1e-12, the weight fixed at 1 and only the bias learnt.
    BatchNormSpec norm{.momentum = 0.4, .eps = 1e-12, .affine = true, .learn_weight = false};
    double scale = 1.0 / 9;  // of the logits
    /// Each block conv's first min(in, out) filters start as the identity (a 1 at the centre of
    /// their own input channel, PyTorch's dirac_), the rest as PyTorch's default.
    bool dirac = true;
};

/// One block of FastNet: conv 3x3 pad 1 (no bias) -> max-pool 2 -> batch norm -> GELU -> conv 3x3
/// pad 1 (no bias) -> batch norm -> GELU. Halves the image side (rounding down).
template <class T>
class FastBlock : public Module<T> {
public:
    FastBlock(int in_channels, int out_channels, const FastNetSpec& spec, Rng& rng);
    Var<T> forward(const Var<T>& x) override;
    std::string type_name() const override { return "FastBlock"; }

    Conv2d<T> conv1, conv2;
    BatchNorm2d<T> norm1, norm2;
};

/// A fast modern CIFAR-10 network, airbench94's layout (Keller Jordan, 2024): a 2x2 conv 3 -> 24
/// with bias (no padding: 31 x 31) whose filters are a buffer, not trained: PyTorch's default until
/// init_from_data() sets them to whitening filters of the data's 2x2 patches; GELU; three FastBlocks
/// of widths 64, 256, 256 (31 -> 15 -> 7 -> 3); max-pool 3 (-> 1 x 1); flatten; linear 256 -> 10
/// without bias; logits x 1/9. 1,971,352 parameters (with the default spec); ~236 MFLOP forward per image.
template <class T>
class FastNet : public Module<T> {
public:
    explicit FastNet(Rng& rng, const FastNetSpec& spec = {});
    Var<T> forward(const Var<T>& x) override;
    std::string type_name() const override { return "FastNet"; }
    std::string describe() const override;
    /// Whitening of the first conv (airbench's): the uncentred covariance S of every 2x2 patch of
    /// `examples` (B x 3 x H x W, normalised as training sees them) has eigenpairs (l_i, v_i); the
    /// filters are v_i / sqrt(l_i + 5e-4) and their negatives (12 + 12), largest l_i first.
    void init_from_data(const Tensor<T>& examples) override;
    /// 5,000, as airbench.
    std::size_t data_init_examples() const override { return 5000; }

    Tensor<T> whiten_weight;  // 24 x 3 x 2 x 2, buffer "whiten_weight"
    Parameter<T> whiten_bias;  // [24]
    FastBlock<T> block1, block2, block3;
    Linear<T> head;

private:
    FastNetSpec spec_;
};

extern template class FastBlock<float>;
extern template class FastBlock<double>;
extern template class FastNet<float>;
extern template class FastNet<double>;
extern template class SimpleCNN<float>;
extern template class SimpleCNN<double>;
extern template class TunedCNN<float>;
extern template class TunedCNN<double>;
extern template class ManualCNN<float>;
extern template class ManualCNN<double>;

}  // namespace mcnn
