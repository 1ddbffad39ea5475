// A user's program: its own models registered, then the library's command line (mcnn/cli.hpp).
// tests/apps.sh runs it as `cli_user_model COMMAND ...` to check that every command takes a model
// the library has never seen:
//   user-tiny   3 x 32 x 32 -> 10 (CIFAR-10's shape: train works); its name has a '-' (bench cases)
//   user-gray   1 x 12 x 12 -> 3  (bench runs it on random data; train refuses it)
//   user-dense  1 x 4 x 4 -> 3, no conv layer (visualize refuses it)
//   user-wrong  registered as 10 classes but gives 7 (every command refuses it, naming it)
//   user-wide   user-tiny with a model option, "width" (its conv's channels; train --model-option, tune's model.width)
#include <mcnn/mcnn.hpp>

using namespace mcnn;

namespace {

template <class T>
struct TinyNet : Module<T> {
    Conv2d<T> conv;
    Linear<T> fc;
    explicit TinyNet(Rng& rng, int classes = 10)
        : conv({.in_channels = 3, .out_channels = 4, .kernel = 5}, rng), fc(4 * 7 * 7, classes, rng) {
        this->register_modules({{"conv", conv}, {"fc", fc}});
    }
    Var<T> forward(const Var<T>& x) override { return fc(flatten(max_pool2d(relu(conv(x)), 4))); }  // B x 4 x 7 x 7
    std::string type_name() const override { return "TinyNet"; }
};

template <class T>
struct GrayNet : Module<T> {
    Conv2d<T> conv;
    Linear<T> fc;
    explicit GrayNet(Rng& rng) : conv({.in_channels = 1, .out_channels = 2, .kernel = 3}, rng), fc(2 * 5 * 5, 3, rng) {
        this->register_modules({{"conv", conv}, {"fc", fc}});
    }
    Var<T> forward(const Var<T>& x) override { return fc(flatten(max_pool2d(relu(conv(x)), 2))); }  // B x 2 x 5 x 5
};

template <class T>
struct DenseNet : Module<T> {
    Linear<T> fc;
    explicit DenseNet(Rng& rng) : fc(16, 3, rng) { this->register_modules({{"fc", fc}}); }
    Var<T> forward(const Var<T>& x) override { return fc(flatten(x)); }
};

template <class T>
struct WrongNet : TinyNet<T> {
    explicit WrongNet(Rng& rng) : TinyNet<T>(rng, 7) {}
};

template <class T>
struct WideNet : Module<T> {
    Conv2d<T> conv;
    Linear<T> fc;
    WideNet(Rng& rng, const ModelOptions& o)
        : conv({.in_channels = 3, .out_channels = static_cast<int>(o.at("width")), .kernel = 5}, rng),
          fc(static_cast<int>(o.at("width")) * 7 * 7, 10, rng) {
        this->register_modules({{"conv", conv}, {"fc", fc}});
    }
    Var<T> forward(const Var<T>& x) override { return fc(flatten(max_pool2d(relu(conv(x)), 4))); }
};

}  // namespace

int main(int argc, char** argv) {
    register_model<TinyNet>("user-tiny", "the test's own CNN for CIFAR-10 (3 x 32 x 32, 10 classes)");
    register_model<GrayNet>("user-gray", "one-channel 12 x 12 examples, 3 classes", Shape{1, 12, 12}, 3);
    register_model<DenseNet>("user-dense", "a linear layer on 1 x 4 x 4, no conv", Shape{1, 4, 4}, 3);
    register_model<WrongNet>("user-wrong", "registered with 10 classes, gives 7");
    register_model<WideNet>("user-wide", "user-tiny of a chosen width", {{"width", 4, 1, 64, true, "channels of the conv"}});
    return run_command_line(argc, argv);
}
