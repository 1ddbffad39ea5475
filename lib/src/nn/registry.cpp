#include "mcnn/nn/registry.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "mcnn/nn/models.hpp"

namespace mcnn {
namespace {

/// FastNet with its default spec, as the registry's (Rng&) factories need.
template <class T>
struct FastNetDefault : FastNet<T> {
    explicit FastNetDefault(Rng& rng) : FastNet<T>(rng) {}
};

std::vector<ModelInfo>& registry() {
    static std::vector<ModelInfo> models = [] {
        std::vector<ModelInfo> built_in;
        const auto add = [&]<template <class> class M>(const char* name, const char* description) {
            built_in.push_back({name, description, Shape{3, 32, 32}, 10,
                                [](Rng& rng) -> std::unique_ptr<Module<float>> { return std::make_unique<M<float>>(rng); },
                                [](Rng& rng) -> std::unique_ptr<Module<double>> { return std::make_unique<M<double>>(rng); }});
        };
        add.template operator()<SimpleCNN>("simple", "the notebook's SimpleCNN (LeNet-style, 62,006 parameters)");
        add.template operator()<TunedCNN>("tuned", "the notebook's tuned CNN (3 convs k5 pad 3, 1,187,978 parameters)");
        add.template operator()<ManualCNN>("manual", "SimpleCNN with the notebook's hand-made conv layers (correlate2d loops, untied bias)");
        add.template operator()<FastNetDefault>("fast", "airbench94's layout: 2x2 whitening conv, three conv-pool-norm-GELU "
                                                         "blocks of widths 64/256/256, batch norm, 1/9 logits (1,971,352 parameters)");
        return built_in;
    }();
    return models;
}

}  // namespace

void register_model(ModelInfo info) {
    if (info.name.empty() || info.name.find_first_of(" \t\n/") != std::string::npos)
        fail("register_model: '{}' is not a valid model name (non-empty, no spaces or '/')", info.name);
    if (!info.make_float || !info.make_double) fail("register_model: model '{}' lacks a float or double factory", info.name);
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
