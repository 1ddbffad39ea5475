#pragma once
// The model registry: models by name, for the apps and for run_command_line (cli.hpp). The
// built-in models are there from the start ("simple", "tuned", "manual"); a program registers its
// own before handing its command line to the library:
//
//   template <class T> struct TinyNet : Module<T> { explicit TinyNet(Rng& rng); ... };
//   int main(int argc, char** argv) {
//       mcnn::register_model<TinyNet>("tiny", "a small CNN");
//       return mcnn::run_command_line(argc, argv);   // tiny train --epochs 1, tiny gradcheck, ...
//   }
//
// A model is built in float (training) and in double (gradient checks) from the same seed, so a
// registered model is a class template over the scalar type, constructed from an Rng&.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "mcnn/nn/module.hpp"
#include "mcnn/nn/init.hpp"

namespace mcnn {

struct ModelInfo {
    std::string name;         // the command-line name ("simple")
    std::string description;  // one line, for --help and summaries
    Shape input{3, 32, 32};   // one example (C x H x W); a batch is B x input
    int classes = 10;         // the model's output is B x classes
    std::function<std::unique_ptr<Module<float>>(Rng&)> make_float;
    std::function<std::unique_ptr<Module<double>>(Rng&)> make_double;

    /// A new model of this kind, initialised from `rng`.
    template <class T>
    std::unique_ptr<Module<T>> make(Rng& rng) const {
        if constexpr (std::is_same_v<T, float>) return make_float(rng);
        else return make_double(rng);
    }
};

/// Adds `info` to the registry. Throws when the name is empty, has spaces or is taken, or a
/// factory is missing.
void register_model(ModelInfo info);

/// Registers the class template M (M<float> and M<double>, each constructed from Rng&).
template <template <class> class M>
void register_model(const std::string& name, const std::string& description, Shape input = Shape{3, 32, 32},
                    int classes = 10) {
    register_model(ModelInfo{name, description, input, classes,
                             [](Rng& rng) -> std::unique_ptr<Module<float>> { return std::make_unique<M<float>>(rng); },
                             [](Rng& rng) -> std::unique_ptr<Module<double>> { return std::make_unique<M<double>>(rng); }});
}

/// The model registered as `name`; throws listing the registered names when there is none.
const ModelInfo& model_info(const std::string& name);
/// Registered names, built-in ones first, then in registration order.
std::vector<std::string> model_names();

/// The model called `name`, initialised from `rng` (model_info(name).make<T>(rng)).
template <class T>
std::unique_ptr<Module<T>> make_model(const std::string& name, Rng& rng) {
    return model_info(name).make<T>(rng);
}

/// Throws unless `model` maps a batch of 2 examples of `info.input` to 2 x info.classes (a forward
/// pass on an inference tape); the message names the model and both shapes.
template <class T>
void check_model_shapes(Module<T>& model, const std::string& name, const Shape& input, int classes);

}  // namespace mcnn
