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
#include "mcnn/optim/lookahead.hpp"

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
                    {"final_test", final_test},
                    {"conv", conv},
                    {"normalization", normalization},
                    {"max_batches", max_batches},
                    {"eval_batch", eval_batch},
                    {"plots", plots},
                    {"optimizer", optimizer},
                    {"decoupled_weight_decay", sgd.decoupled_weight_decay},
                    {"beta1", beta1},
                    {"beta2", beta2},
                    {"eps", eps},
                    {"lr_scale_1d", lr_scale_1d},
                    {"weight_decay_1d", weight_decay_1d},
                    {"schedule", schedule},
                    {"warmup", warmup},
                    {"schedule_epochs", schedule_epochs > 0 ? schedule_epochs : static_cast<double>(epochs)},
                    {"start_factor", start_factor},
                    {"final_factor", final_factor},
                    {"step_every", step_every},
                    {"step_gamma", step_gamma},
                    {"group_1d", group_1d},
                    {"label_smoothing", label_smoothing},
                    {"eval_every", eval_every},
                    {"lookahead_every", lookahead_every},
                    {"lookahead_start", lookahead_start},
                    {"lookahead_base", lookahead_base},
                    {"lookahead_power", lookahead_power}};
    json out = with_augmentation(j, *this);
    if (!model_options.empty()) out["model_options"] = model_options;  // absent: the model's defaults
    return out.dump(2);
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

/// The optimiser and schedule fields, added after the first config.json files: absent ones keep
/// their defaults. weight_decay_1d may be negative (-1: the optimiser's).
void get_optimizer_fields(const json& j, TrainConfig& c) {
    const auto has = [&](const char* key) { return j.contains(key); };
    if (has("optimizer")) get(j, "optimizer", c.optimizer);
    if (has("decoupled_weight_decay")) get(j, "decoupled_weight_decay", c.sgd.decoupled_weight_decay);
    if (has("beta1")) get_number(j, "beta1", c.beta1);
    if (has("beta2")) get_number(j, "beta2", c.beta2);
    if (has("eps")) get_number(j, "eps", c.eps, true);
    if (has("lr_scale_1d")) get_number(j, "lr_scale_1d", c.lr_scale_1d, true);
    if (has("weight_decay_1d"))
        c.weight_decay_1d = strict::json_number(j.at("weight_decay_1d"), -1, std::numeric_limits<double>::max(),
                                                "run config: field 'weight_decay_1d'");
    if (has("schedule")) get(j, "schedule", c.schedule);
    if (has("warmup")) get_number(j, "warmup", c.warmup);
    if (has("schedule_epochs")) get_number(j, "schedule_epochs", c.schedule_epochs);
    if (has("start_factor")) get_number(j, "start_factor", c.start_factor);
    if (has("final_factor")) get_number(j, "final_factor", c.final_factor);
    if (has("step_every")) get_number(j, "step_every", c.step_every, true);
    if (has("step_gamma")) get_number(j, "step_gamma", c.step_gamma, true);
    if (has("group_1d")) get(j, "group_1d", c.group_1d);
    if (has("label_smoothing")) get_number(j, "label_smoothing", c.label_smoothing);
    if (has("eval_every")) get_integer(j, "eval_every", c.eval_every, 0);
    if (has("final_test")) get(j, "final_test", c.final_test);
    if (has("lookahead_every")) get_integer(j, "lookahead_every", c.lookahead_every, 0);
    if (has("lookahead_start")) get_number(j, "lookahead_start", c.lookahead_start);
    if (has("lookahead_base")) get_number(j, "lookahead_base", c.lookahead_base, true);
    if (has("lookahead_power")) get_number(j, "lookahead_power", c.lookahead_power);
}

}  // namespace

const std::vector<std::string>& optimizer_names() {
    static const std::vector<std::string> names{"sgd", "adam", "adamw"};
    return names;
}

const std::vector<std::string>& schedule_names() {
    static const std::vector<std::string> names{"none", "warmup-cosine", "onecycle", "step"};
    return names;
}

Schedule schedule_of(const TrainConfig& c) {
    const double total = c.schedule_epochs > 0 ? c.schedule_epochs : static_cast<double>(c.epochs);
    try {
        if (c.schedule == "none") {
            if (c.warmup > 0) return Schedule::warmup(c.warmup);
            return Schedule::constant();
        }
        if (c.schedule == "warmup-cosine") return Schedule::warmup_cosine(c.warmup, total, c.final_factor);
        if (c.schedule == "onecycle") return Schedule::one_cycle(c.warmup, total, c.start_factor, c.final_factor);
        if (c.schedule == "step") return Schedule::step(c.step_every, c.step_gamma, c.warmup);
    } catch (const Error& e) {
        fail("schedule '{}' (warm-up {} epochs, over {} epochs): {}", c.schedule, c.warmup, total, e.what());
    }
    fail("unknown schedule '{}'; known: {}", c.schedule, fmt::join(schedule_names(), ", "));
}

std::unique_ptr<Optimizer<float>> optimizer_of(const TrainConfig& c, std::vector<Parameter<float>*> params) {
    std::vector<ParamGroup> groups;
    const bool has_1d = std::any_of(params.begin(), params.end(), [](const Parameter<float>* p) { return p->value.rank() == 1; });
    if ((c.group_1d.empty() ? has_1d : !params.empty()) && (c.lr_scale_1d != 1 || c.weight_decay_1d >= 0)) {
        ParamGroup g{.match = c.group_1d.empty() ? one_dimensional() : name_matches(c.group_1d),
                     .lr_scale = c.lr_scale_1d,
                     .label = c.group_1d.empty() ? "1-D parameters" : "'" + c.group_1d + "'"};
        if (c.weight_decay_1d >= 0) g.weight_decay = c.weight_decay_1d;
        groups.push_back(std::move(g));
    }
    if (c.optimizer == "sgd") return std::make_unique<Sgd<float>>(std::move(params), c.sgd, std::move(groups));
    if (c.optimizer == "adam" || c.optimizer == "adamw") {
        const AdamOptions o{.lr = c.sgd.lr, .beta1 = c.beta1, .beta2 = c.beta2, .eps = c.eps, .weight_decay = c.sgd.weight_decay,
                            .decoupled_weight_decay = c.optimizer == "adamw"};
        return std::make_unique<Adam<float>>(std::move(params), o, std::move(groups));
    }
    fail("unknown optimizer '{}'; known: {}", c.optimizer, fmt::join(optimizer_names(), ", "));
}

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
    if (j.contains("model_options")) {
        const json& o = j.at("model_options");
        if (!o.is_object()) fail("run config: field 'model_options' must be an object of numbers, got {}", o.dump());
        for (const auto& [key, value] : o.items())
            c.model_options[key] = strict::json_number(value, -std::numeric_limits<double>::max(), std::numeric_limits<double>::max(),
                                                       fmt::format("run config: field 'model_options' '{}'", key));
    }
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
    get_optimizer_fields(j, c);
    try {
        c.conv = normalized_conv_setting(c.conv);
    } catch (const Error& e) {
        fail("run config: field 'conv': {}", e.what());
    }
    return c;
}

void TrainConfig::validate() const {
    (void)model_info(model).resolve(model_options);  // throws listing the known models, or the model's options
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
    if (std::find(optimizer_names().begin(), optimizer_names().end(), optimizer) == optimizer_names().end())
        fail("unknown optimizer '{}'; known: {}", optimizer, fmt::join(optimizer_names(), ", "));
    if (optimizer != "sgd" && (sgd.nesterov || sgd.decoupled_weight_decay || sgd.dampening != 0))
        fail("{}: Nesterov momentum, dampening and decoupled weight decay are SGD settings (AdamW decouples its decay)", optimizer);
    if (!(lr_scale_1d > 0) || !std::isfinite(lr_scale_1d)) fail("the 1-D parameters' lr scale must be a finite number > 0, got {}", lr_scale_1d);
    if (lookahead_every < 0) fail("the lookahead interval must be an integer >= 0 (steps), got {}", lookahead_every);
    if (!(lookahead_base > 0 && lookahead_base <= 1)) fail("the lookahead base must be in (0, 1], got {}", lookahead_base);
    if (!(lookahead_start >= 0) || !std::isfinite(lookahead_start)) fail("the lookahead start must be >= 0 epochs, got {}", lookahead_start);
    if (!(lookahead_power >= 0) || !std::isfinite(lookahead_power)) fail("the lookahead power must be >= 0, got {}", lookahead_power);
    if (eval_every < 0) fail("the evaluation interval must be an integer >= 0 (epochs), got {}", eval_every);
    if (!(label_smoothing >= 0 && label_smoothing <= 1)) fail("label smoothing must be in [0, 1], got {}", label_smoothing);
    if (!std::isfinite(weight_decay_1d)) fail("the 1-D parameters' weight decay must be finite, got {}", weight_decay_1d);
    (void)optimizer_of(*this, {});  // checks the optimiser settings
    (void)schedule_of(*this);
}

TrainResult train(const TrainConfig& config, const data::Cifar10& data, bool resume, std::FILE* out, const DataParallel& parallel,
                  const std::function<bool(int epoch, const Evaluation&)>& after_evaluation) {
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
    auto model = info.make<float>(rng, config.model_options);
    if (config.conv != "auto") set_conv_path(*model, conv_path_from_name(normalized_conv_setting(config.conv)));
    std::unique_ptr<Optimizer<float>> optimizer = optimizer_of(config, model->parameters());
    if (config.lookahead_every > 0) {  // the pulls' schedule in steps, from the epochs' batch count
        const std::size_t loader_batches = data::BatchLoader(train_set, config.batch, true, config.seed).batches_per_epoch();
        const double batches = static_cast<double>(config.max_batches ? std::min(config.max_batches, loader_batches) : loader_batches);
        const double total_epochs = config.schedule_epochs > 0 ? config.schedule_epochs : static_cast<double>(config.epochs);
        std::vector<Tensor<float>*> buffers;
        for (const NamedBuffer<float>& b : model->buffers()) buffers.push_back(b.tensor);
        optimizer = std::make_unique<Lookahead<float>>(
            std::move(optimizer), std::move(buffers),
            LookaheadOptions{.every = config.lookahead_every,
                             .base = config.lookahead_base,
                             .power = config.lookahead_power,
                             .start_step = std::lround(config.lookahead_start * batches),
                             .total_steps = std::max(1L, std::lround(total_epochs * batches))});
    }

    FitOptions o;
    o.epochs = config.epochs;
    o.batch = config.batch;
    o.seed = config.seed;
    o.report_every = config.report_every;
    o.max_batches = config.max_batches;
    o.eval_batch = config.eval_batch;
    o.eval_name = config.validation ? "validation" : "test";
    o.test = config.validation && config.final_test ? &test_set : nullptr;
    o.run_dir = config.run_dir;
    o.resume = resume;
    o.reset_optimizer = config.reset_optimizer;
    o.plots = config.plots;
    o.model_name = config.model;
    o.config_json = config.to_json();
    o.schedule = schedule_of(config);
    o.title = config.optimizer == "sgd"
                  ? fmt::format("{} model, SGD lr {} momentum {}, batch {}", config.model, config.sgd.lr, config.sgd.momentum, config.batch)
                  : fmt::format("{} model, {}, batch {}", config.model, optimizer->describe(), config.batch);
    if (o.schedule.kind() != Schedule::Kind::constant) o.title += ", lr " + o.schedule.describe();
    o.out = out;
    o.detect_anomaly = config.detect_anomaly;
    o.augment = config.augment;
    o.label_smoothing = config.label_smoothing;
    o.eval_every = config.eval_every;
    o.tta = config.tta;
    o.parallel = parallel;
    o.after_evaluation = after_evaluation;
    return fit(*model, *optimizer, train_set, config.validation ? static_cast<const data::Dataset&>(validation_set) : test_set, o);
}

}  // namespace mcnn
