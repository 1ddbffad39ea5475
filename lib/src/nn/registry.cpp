#include "mcnn/nn/registry.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "mcnn/nn/models.hpp"

namespace mcnn {
namespace {

/// FastNet with its default spec, as the registry's (Rng&) factories need.
template <class T>
struct FastNetDefault : FastNet<T> {
    explicit FastNetDefault(Rng& rng) : FastNet<T>(rng) {}
};

int width(const ModelOptions& o, const char* name) { return static_cast<int>(o.at(name)); }

/// SimpleCNN and TunedCNN built from their model options.
template <class T>
struct SimpleWithOptions : SimpleCNN<T> {
    SimpleWithOptions(Rng& rng, const ModelOptions& o)
        : SimpleCNN<T>(rng, SimpleWidths{width(o, "conv1"), width(o, "conv2"), width(o, "fc1"), width(o, "fc2")}) {}
};

template <class T>
struct TunedWithOptions : TunedCNN<T> {
    TunedWithOptions(Rng& rng, const ModelOptions& o)
        : TunedCNN<T>(rng, TunedSpec{width(o, "conv1"), width(o, "conv2"), width(o, "conv3"), width(o, "fc1"), width(o, "fc2"),
                                     o.at("dropout")}) {}
};

ModelOption channels(const char* name, int value, const char* what) { return {name, static_cast<double>(value), 1, 1024, true, what}; }

std::vector<ModelOption> simple_options() {
    const SimpleWidths w;
    return {channels("conv1", w.conv1, "channels of conv1"), channels("conv2", w.conv2, "channels of conv2"),
            channels("fc1", w.fc1, "units of fc1"), channels("fc2", w.fc2, "units of fc2")};
}

std::vector<ModelOption> tuned_options() {
    const TunedSpec s;
    return {channels("conv1", s.conv1, "channels of conv1"), channels("conv2", s.conv2, "channels of conv2"),
            channels("conv3", s.conv3, "channels of conv3"),   channels("fc1", s.fc1, "units of fc1"),
            channels("fc2", s.fc2, "units of fc2"),
            {"dropout", s.dropout, 0, 0.95, false, "dropout probability before fc1, fc2 and fc3 (0: none)"}};
}

std::vector<ModelInfo>& registry() {
    static std::vector<ModelInfo> models = [] {
        std::vector<ModelInfo> built_in;
        built_in.push_back(model_info_of<SimpleWithOptions>("simple", "the notebook's SimpleCNN (LeNet-style, 62,006 parameters)",
                                                            simple_options()));
        built_in.push_back(model_info_of<TunedWithOptions>("tuned", "the notebook's tuned CNN (3 convs k5 pad 3, 1,187,978 parameters)",
                                                           tuned_options()));
        built_in.push_back(model_info_of<ManualCNN>("manual", "SimpleCNN with the notebook's hand-made conv layers (correlate2d loops, untied bias)"));
        built_in.push_back(model_info_of<FastNetDefault>("fast", "airbench94's layout: 2x2 whitening conv, three conv-pool-norm-GELU "
                                                                 "blocks of widths 64/256/256, batch norm, 1/9 logits (1,971,352 parameters)"));
        return built_in;
    }();
    return models;
}

}  // namespace

std::string ModelOption::str() const {
    return fmt::format("{}={} ({}..{}{}, {})", name, value, min, max, integer ? "" : ", a number", help);
}

ModelOptions ModelInfo::resolve(const ModelOptions& given) const {
    ModelOptions all;
    for (const ModelOption& o : options) all[o.name] = o.value;
    for (const auto& [key, value] : given) {
        const auto it = std::find_if(options.begin(), options.end(), [&](const ModelOption& o) { return o.name == key; });
        if (it == options.end()) {
            std::vector<std::string> names;
            for (const ModelOption& o : options) names.push_back(o.name);
            if (names.empty()) fail("model '{}' has no options, so '{}' cannot be set", name, key);
            fail("model '{}' has no option '{}'; its options: {}", name, key, fmt::join(names, ", "));
        }
        if (!(value >= it->min && value <= it->max))
            fail("model '{}': option {} must be from {} to {}, got {}", name, key, it->min, it->max, value);
        if (it->integer && value != std::floor(value)) fail("model '{}': option {} must be an integer, got {}", name, key, value);
        all[key] = value;
    }
    return all;
}

void register_model(ModelInfo info) {
    if (info.name.empty() || info.name.find_first_of(" \t\n/") != std::string::npos)
        fail("register_model: '{}' is not a valid model name (non-empty, no spaces or '/')", info.name);
    if (!info.make_float || !info.make_double) fail("register_model: model '{}' lacks a float or double factory", info.name);
    if (!info.options.empty() && (!info.make_float_with || !info.make_double_with))
        fail("register_model: model '{}' declares options but lacks the factories that take them", info.name);
    if (info.classes < 1) fail("register_model: model '{}' has {} classes", info.name, info.classes);
    if (info.input.rank() < 1) fail("register_model: model '{}' has no input shape", info.name);
    auto& models = registry();
    if (std::any_of(models.begin(), models.end(), [&](const ModelInfo& m) { return m.name == info.name; }))
        fail("register_model: a model named '{}' is already registered", info.name);
    models.push_back(std::move(info));
}

const ModelInfo& model_info(const std::string& name) {
    for (const ModelInfo& m : registry())
        if (m.name == name) return m;
    fail("unknown model '{}'; known models: {}", name, fmt::join(model_names(), ", "));
}

std::vector<std::string> model_names() {
    std::vector<std::string> names;
    for (const ModelInfo& m : registry()) names.push_back(m.name);
    return names;
}

template <class T>
void check_model_shapes(Module<T>& model, const std::string& name, const Shape& input, int classes) {
    std::vector<int> dims{2};
    for (int d : input.dims()) dims.push_back(d);
    const Shape batch(dims);
    Tape<T> tape(Tape<T>::Mode::inference);
    Shape out;
    try {
        const EvalModeScope<T> eval_mode(model);  // a probe: layers with running statistics must learn nothing from it
        out = model.forward(tape.constant(Tensor<T>(batch))).shape();
    } catch (const Error& e) {
        fail("model '{}' cannot take a batch of shape {}: {}", name, batch.str(), e.what());
    }
    if (out != Shape{2, classes})
        fail("model '{}' maps a batch of shape {} to {}; expected batch x classes = [2, {}]", name, batch.str(), out.str(), classes);
}

template void check_model_shapes(Module<float>&, const std::string&, const Shape&, int);
template void check_model_shapes(Module<double>&, const std::string&, const Shape&, int);

}  // namespace mcnn
