#include "mcnn/train/config.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "../util/strict.hpp"
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

namespace {

/// `j` with the augmentation settings of `c` added.
json with_augmentation(json j, const TrainConfig& c) {
    j["crop_pad"] = c.augment.crop_pad;
    j["crop_padding"] = data::padding_name(c.augment.padding);
    j["flip"] = data::flip_mode_name(c.augment.flip);
    j["cutout"] = c.augment.cutout;
    j["tta"] = tta_name(c.tta);
    return j;
}

}  // namespace

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
    return with_augmentation(j, *this).dump(2);
}

namespace {

/// Field `key` of the run config `j`; throws naming it when it is missing.
const json& field(const json& j, const char* key) {
    if (!j.contains(key)) fail("run config: field '{}' is missing", key);
    return j.at(key);
}

/// A string or boolean field (the numbers are read strictly, see from_json).
template <class T>
void get(const json& j, const char* key, T& out) {
    const json& v = field(j, key);
    try {
        v.get_to(out);
    } catch (const json::exception&) {
        fail("run config: field '{}' has the wrong type ({})", key, v.dump());
    }
}

/// An integer field from `min` to the largest value of its type; a fraction, an exponent, a string
/// or a value out of range is refused naming the field and the value, never truncated or wrapped.
template <class Int>
void get_integer(const json& j, const char* key, Int& out, long long min) {
    out = strict::integer_as<Int>(field(j, key), fmt::format("run config: field '{}'", key), min);
}

/// A finite number field >= 0 (> 0 when `positive`).
void get_number(const json& j, const char* key, double& out, bool positive = false) {
    const std::string what = fmt::format("run config: field '{}'", key);
    out = strict::json_number(field(j, key), 0, std::numeric_limits<double>::max(), what);
    if (positive && out == 0) fail("{} must be a finite number > 0, got {}", what, field(j, key).dump());
}

/// The augmentation fields; each optional (run folders from before augmentation hold none of them).
void read_augmentation(const json& j, TrainConfig& c) {
    if (j.contains("crop_pad")) get_integer(j, "crop_pad", c.augment.crop_pad, 0);
    if (j.contains("cutout")) get_integer(j, "cutout", c.augment.cutout, 0);
    auto named = [&](const char* key, auto parse, auto& out) {
        if (!j.contains(key)) return;
        std::string name;
        get(j, key, name);
        try {
            out = parse(name);
        } catch (const Error& e) {
            fail("run config: field '{}': {}", key, e.what());
        }
    };
    named("crop_padding", data::padding_from_name, c.augment.padding);
    named("flip", data::flip_mode_from_name, c.augment.flip);
    named("tta", tta_from_name, c.tta);
}

}  // namespace

TrainConfig TrainConfig::from_json(const std::string& text) {
    json j;
    try {
        j = json::parse(text);
    } catch (const json::exception& e) {
        fail("run config: not valid JSON ({})", e.what());
    }
    if (!j.is_object()) fail("run config: not a JSON object ({})", j.type_name());
    TrainConfig c;
    get(j, "model", c.model);
    get_integer(j, "epochs", c.epochs, 1);
    get_integer(j, "batch", c.batch, 1);
    get_number(j, "lr", c.sgd.lr, true);
    get_number(j, "momentum", c.sgd.momentum);
    get_number(j, "dampening", c.sgd.dampening);
    get_number(j, "weight_decay", c.sgd.weight_decay);
    get(j, "nesterov", c.sgd.nesterov);
    get_integer(j, "seed", c.seed, 0);
    get_integer(j, "report_every", c.report_every, 1);
    get_integer(j, "validation", c.validation, 0);
    get(j, "conv", c.conv);
    get(j, "normalization", c.normalization);
    get_integer(j, "max_batches", c.max_batches, 0);
    get_integer(j, "eval_batch", c.eval_batch, 1);
    get(j, "plots", c.plots);
    read_augmentation(j, c);
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
    if (epochs < 1) fail("epochs must be an integer >= 1, got {}", epochs);
    if (batch < 1) fail("batch must be an integer >= 1, got {}", batch);
    if (report_every < 1) fail("the report interval must be an integer >= 1 (batches), got {}", report_every);
    if (eval_batch < 1) fail("the evaluation batch must be an integer >= 1, got {}", eval_batch);
    if (!std::isfinite(sgd.lr) || !(sgd.lr > 0)) fail("lr must be a finite number > 0, got {}", sgd.lr);
    for (const auto& [name, value] : {std::pair{"momentum", sgd.momentum}, std::pair{"dampening", sgd.dampening},
                                      std::pair{"weight decay", sgd.weight_decay}})
        if (!std::isfinite(value) || !(value >= 0)) fail("{} must be a finite number >= 0, got {}", name, value);
    if (normalization != "notebook" && normalization != "dataset")
        fail("normalization must be 'notebook' or 'dataset', got '{}'", normalization);
    augment.check(data::image_size, data::image_size);
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
    o.reset_optimizer = config.reset_optimizer;
    o.plots = config.plots;
    o.model_name = config.model;
    o.config_json = config.to_json();
    o.title = fmt::format("{} model, SGD lr {} momentum {}, batch {}", config.model, config.sgd.lr, config.sgd.momentum, config.batch);
    o.out = out;
    o.detect_anomaly = config.detect_anomaly;
    o.augment = config.augment;
    o.tta = config.tta;
    return fit(*model, sgd, train_set, config.validation ? static_cast<const data::Dataset&>(validation_set) : test_set, o);
}

}  // namespace mcnn
