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
// registered model is a class template over the scalar type, constructed from an Rng&. A model may
// declare options (widths, dropout: ModelOption), then it is constructed from (Rng&, ModelOptions).
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "mcnn/nn/module.hpp"
#include "mcnn/nn/init.hpp"

namespace mcnn {

/// A number a model is built from besides its Rng (a width, a dropout probability): what the
/// train and tune command lines set with --model-option NAME=VALUE and --space model.NAME=....
struct ModelOption {
    std::string name;        // "conv1"
    double value = 0;        // the default
    double min = 0, max = 0; // the values allowed, ends included
    bool integer = true;     // widths are; probabilities are not
    std::string help;        // "channels of conv1"
    /// "conv1=6 (1..512, channels of conv1)".
    std::string str() const;
};

/// Values of a model's options by name (those not given take their defaults).
using ModelOptions = std::map<std::string, double>;

struct ModelInfo {
    std::string name;         // the command-line name ("simple")
    std::string description;  // one line, for --help and summaries
    Shape input{3, 32, 32};   // one example (C x H x W); a batch is B x input
    int classes = 10;         // the model's output is B x classes
    std::function<std::unique_ptr<Module<float>>(Rng&)> make_float;    // the model with its default options
    std::function<std::unique_ptr<Module<double>>(Rng&)> make_double;
    /// The options the model declares (none: make_float / make_double alone), and the factories
    /// that take their values (every declared option present, checked by resolve).
    std::vector<ModelOption> options;
    std::function<std::unique_ptr<Module<float>>(Rng&, const ModelOptions&)> make_float_with;
    std::function<std::unique_ptr<Module<double>>(Rng&, const ModelOptions&)> make_double_with;

    /// Every declared option's value: `given`'s, else the default. Throws naming the model and the
    /// option when `given` holds a name it does not declare (listing those it does), a value
    /// outside the range or a fraction for an integer option.
    ModelOptions resolve(const ModelOptions& given) const;

    /// A new model of this kind, initialised from `rng`, with `given` options (resolve).
    template <class T>
    std::unique_ptr<Module<T>> make(Rng& rng, const ModelOptions& given = {}) const {
        if (options.empty() || given.empty()) {
            if (!given.empty()) (void)resolve(given);  // throws: the model has no options
            if constexpr (std::is_same_v<T, float>) return make_float(rng);
            else return make_double(rng);
        }
        const ModelOptions all = resolve(given);
        if constexpr (std::is_same_v<T, float>) return make_float_with(rng, all);
        else return make_double_with(rng, all);
    }
};

/// Adds `info` to the registry. Throws when the name is empty, has spaces or is taken, or a
/// factory is missing.
void register_model(ModelInfo info);

/// The ModelInfo of the class template M (M<float> and M<double>, each constructed from Rng&).
template <template <class> class M>
ModelInfo model_info_of(const std::string& name, const std::string& description, Shape input = Shape{3, 32, 32},
                        int classes = 10) {
    ModelInfo info;
    info.name = name;
    info.description = description;
    info.input = std::move(input);
    info.classes = classes;
    info.make_float = [](Rng& rng) -> std::unique_ptr<Module<float>> { return std::make_unique<M<float>>(rng); };
    info.make_double = [](Rng& rng) -> std::unique_ptr<Module<double>> { return std::make_unique<M<double>>(rng); };
    return info;
}

/// Registers the class template M (M<float> and M<double>, each constructed from Rng&).
template <template <class> class M>
void register_model(const std::string& name, const std::string& description, Shape input = Shape{3, 32, 32},
                    int classes = 10) {
    register_model(model_info_of<M>(name, description, input, classes));
}

/// The ModelInfo of the class template M with `options`: M<T> is constructed from (Rng&, const
/// ModelOptions&), where every declared option has its value (make_float / make_double: the defaults).
template <template <class> class M>
ModelInfo model_info_of(const std::string& name, const std::string& description, std::vector<ModelOption> options,
                        Shape input = Shape{3, 32, 32}, int classes = 10) {
    ModelOptions defaults;
    for (const ModelOption& o : options) defaults[o.name] = o.value;
    ModelInfo info;
    info.name = name;
    info.description = description;
    info.input = std::move(input);
    info.classes = classes;
    info.make_float = [defaults](Rng& rng) -> std::unique_ptr<Module<float>> { return std::make_unique<M<float>>(rng, defaults); };
    info.make_double = [defaults](Rng& rng) -> std::unique_ptr<Module<double>> { return std::make_unique<M<double>>(rng, defaults); };
    info.options = std::move(options);
    info.make_float_with = [](Rng& rng, const ModelOptions& o) -> std::unique_ptr<Module<float>> { return std::make_unique<M<float>>(rng, o); };
    info.make_double_with = [](Rng& rng, const ModelOptions& o) -> std::unique_ptr<Module<double>> { return std::make_unique<M<double>>(rng, o); };
    return info;
}

/// Registers the class template M with `options` (model_info_of above).
template <template <class> class M>
void register_model(const std::string& name, const std::string& description, std::vector<ModelOption> options,
                    Shape input = Shape{3, 32, 32}, int classes = 10) {
    register_model(model_info_of<M>(name, description, std::move(options), std::move(input), classes));
}

/// The model registered as `name`; throws listing the registered names when there is none.
const ModelInfo& model_info(const std::string& name);
/// Registered names, built-in ones first, then in registration order.
std::vector<std::string> model_names();

/// The model called `name`, initialised from `rng`, with `options` (model_info(name).make<T>(rng, options)).
template <class T>
std::unique_ptr<Module<T>> make_model(const std::string& name, Rng& rng, const ModelOptions& options = {}) {
    return model_info(name).make<T>(rng, options);
}

/// Throws unless `model` maps a batch of 2 examples of `info.input` to 2 x info.classes (a forward
/// pass on an inference tape); the message names the model and both shapes.
template <class T>
void check_model_shapes(Module<T>& model, const std::string& name, const Shape& input, int classes);

}  // namespace mcnn
