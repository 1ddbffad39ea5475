#include "mcnn/train/config.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "mcnn/nn/layers.hpp"
#include "mcnn/nn/registry.hpp"

namespace mcnn {
namespace {

using json = nlohmann::json;

}  // namespace

std::vector<std::string> conv_settings() {
    std::vector<std::string> names = conv_path_names();
    names.insert(names.begin(), "auto");
    return names;
}

std::string normalized_conv_setting(const std::string& setting) {
    if (setting == "fast") return "automatic";
    if (setting == "reference") return "correlate2d";
    const auto known = conv_settings();
    if (std::find(known.begin(), known.end(), setting) == known.end())
        fail("unknown conv setting '{}'; known: {}", setting, fmt::join(known, ", "));
    return setting;
}

std::string TrainConfig::to_json() const {
    const json j = {{"model", model},
                    {"epochs", epochs},
                    {"batch", batch},
                    {"lr", sgd.lr},
                    {"momentum", sgd.momentum},
                    {"dampening", sgd.dampening},
                    {"weight_decay", sgd.weight_decay},
                    {"nesterov", sgd.nesterov},
                    {"seed", seed},
                    {"report_every", report_every},
                    {"validation", validation},
                    {"conv", conv},
                    {"normalization", normalization},
                    {"max_batches", max_batches},
                    {"eval_batch", eval_batch},
                    {"plots", plots}};
    return j.dump(2);
}

TrainConfig TrainConfig::from_json(const std::string& text) {
    json j;
    try {
        j = json::parse(text);
    } catch (const json::exception& e) {
        fail("run config: not valid JSON ({})", e.what());
    }
    TrainConfig c;
    auto get = [&](const char* key, auto& field) {
        if (!j.contains(key)) fail("run config: field '{}' is missing", key);
        try {
            j.at(key).get_to(field);
        } catch (const json::exception&) {
            fail("run config: field '{}' has the wrong type ({})", key, j.at(key).dump());
        }
    };
    get("model", c.model);
    get("epochs", c.epochs);
    get("batch", c.batch);
    get("lr", c.sgd.lr);
    get("momentum", c.sgd.momentum);
    get("dampening", c.sgd.dampening);
    get("weight_decay", c.sgd.weight_decay);
    get("nesterov", c.sgd.nesterov);
    get("seed", c.seed);
    get("report_every", c.report_every);
    get("validation", c.validation);
    get("conv", c.conv);
    get("normalization", c.normalization);
    get("max_batches", c.max_batches);
    get("eval_batch", c.eval_batch);
    get("plots", c.plots);
    try {
        c.conv = normalized_conv_setting(c.conv);
    } catch (const Error& e) {
        fail("run config: field 'conv': {}", e.what());
    }
    return c;
}

void TrainConfig::validate() const {
    (void)model_info(model);  // throws listing the known models
    (void)normalized_conv_setting(conv);
    if (epochs < 1) fail("epochs must be >= 1, got {}", epochs);
    if (batch < 1) fail("batch must be >= 1, got {}", batch);
    if (report_every < 1) fail("report interval must be >= 1 batch, got {}", report_every);
    if (eval_batch < 1) fail("evaluation batch must be >= 1, got {}", eval_batch);
    if (normalization != "notebook" && normalization != "dataset")
        fail("normalization must be 'notebook' or 'dataset', got '{}'", normalization);
    if (run_dir.empty()) fail("a run folder is needed");
    Sgd<float>({}, sgd);  // checks the optimiser settings
}

TrainResult train(const TrainConfig& config, const data::Cifar10& data, bool resume, std::FILE* out) {
    config.validate();
    const ModelInfo& info = model_info(config.model);
    const Shape cifar_image{3, data::image_size, data::image_size};
    if (info.input != cifar_image)
        fail("model '{}' takes examples of shape {}, but CIFAR-10 images are {}", config.model, info.input.str(), cifar_image.str());
    if (info.classes != data::class_count)
        fail("model '{}' has {} classes, but CIFAR-10 has {}", config.model, info.classes, data::class_count);

    // Data: the training set (less a validation split), the set evaluated after each epoch.
    data::Records train_records = data.train, validation_records;
    if (config.validation) {
        data::Split split = data::hold_out(data.train, config.validation, config.seed);
        train_records = std::move(split.train);
        validation_records = std::move(split.validation);
    }
    const data::Normalization norm =
        config.normalization == "dataset" ? data::Normalization::of(train_records) : data::Normalization::notebook();
    const data::CifarDataset train_set(std::move(train_records), norm, data.class_names);
    const data::CifarDataset test_set(data.test, norm, data.class_names);
    const data::CifarDataset validation_set(std::move(validation_records), norm, data.class_names);

    Rng rng(config.seed);
    auto model = info.make<float>(rng);
    if (config.conv != "auto") set_conv_path(*model, conv_path_from_name(normalized_conv_setting(config.conv)));
    Sgd<float> sgd(model->parameters(), config.sgd);

    FitOptions o;
    o.epochs = config.epochs;
    o.batch = config.batch;
    o.seed = config.seed;
    o.report_every = config.report_every;
    o.max_batches = config.max_batches;
    o.eval_batch = config.eval_batch;
    o.eval_name = config.validation ? "validation" : "test";
    o.test = config.validation ? &test_set : nullptr;
    o.run_dir = config.run_dir;
    o.resume = resume;
    o.plots = config.plots;
    o.model_name = config.model;
    o.config_json = config.to_json();
    o.title = fmt::format("{} model, SGD lr {} momentum {}, batch {}", config.model, config.sgd.lr, config.sgd.momentum, config.batch);
    o.out = out;
    o.detect_anomaly = config.detect_anomaly;
    return fit(*model, sgd, train_set, config.validation ? static_cast<const data::Dataset&>(validation_set) : test_set, o);
}

}  // namespace mcnn
