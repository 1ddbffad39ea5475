#include "mcnn/train/trainer.hpp"

#include <chrono>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "mcnn/nn/summary.hpp"
#include "mcnn/ops/loss.hpp"
#include "mcnn/plot/curves.hpp"
#include "mcnn/train/checkpoint.hpp"
#include "mcnn/train/progress.hpp"

namespace mcnn {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
constexpr const char* checkpoint_format = "manualcnn-checkpoint/1";

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

const std::string csv_header = "kind,epoch,step,images,loss,accuracy,images_per_s,elapsed_s";

std::string csv_line(const LogRow& r) {
    return fmt::format("{},{},{},{},{:.6f},{:.4f},{:.1f},{:.3f}", r.kind, r.epoch, r.step, r.images, r.loss, r.accuracy,
                       r.images_per_second, r.elapsed);
}

plot::TrainingCurves curves_of(const TrainConfig& c, const std::vector<LogRow>& log) {
    plot::TrainingCurves curves;
    curves.title = fmt::format("{} model, SGD lr {} momentum {}, batch {}", c.model, c.sgd.lr, c.sgd.momentum, c.batch);
    curves.eval_name = c.validation ? "validation" : "test";
    for (const LogRow& r : log) {
        const auto step = static_cast<double>(r.step);
        if (r.kind == "train") {
            curves.train_step.push_back(step);
            curves.train_loss.push_back(r.loss);
            curves.train_accuracy.push_back(r.accuracy);
        } else if (r.kind == curves.eval_name) {
            curves.eval_step.push_back(step);
            curves.eval_loss.push_back(r.loss);
            curves.eval_accuracy.push_back(r.accuracy);
        }
    }
    return curves;
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
                    {"conv", conv_path_name(conv)},
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
    std::string conv;
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
    get("conv", conv);
    get("normalization", c.normalization);
    get("max_batches", c.max_batches);
    get("eval_batch", c.eval_batch);
    get("plots", c.plots);
    // run folders written before the conv paths were renamed say "fast" and "reference"
    c.conv = conv == "fast" ? ConvPath::automatic : conv == "reference" ? ConvPath::correlate2d : conv_path_from_name(conv);
    return c;
}

void TrainConfig::validate() const {
    const auto names = model_names();
    if (std::find(names.begin(), names.end(), model) == names.end())
        fail("unknown model '{}'; known models: {}", model, fmt::join(names, ", "));
    if (epochs < 1) fail("epochs must be >= 1, got {}", epochs);
    if (batch < 1) fail("batch must be >= 1, got {}", batch);
    if (report_every < 1) fail("report interval must be >= 1 batch, got {}", report_every);
    if (eval_batch < 1) fail("evaluation batch must be >= 1, got {}", eval_batch);
    if (normalization != "notebook" && normalization != "dataset")
        fail("normalization must be 'notebook' or 'dataset', got '{}'", normalization);
    if (run_dir.empty()) fail("a run folder is needed");
    Sgd<float>({}, sgd);  // checks the optimiser settings
}

void save_checkpoint(const std::filesystem::path& path, Model<float>& model, Sgd<float>& sgd,
                     const std::map<std::string, std::string>& metadata) {
    TensorFile file;
    const auto params = model.parameters();
    for (Parameter<float>* p : params) file.tensors.emplace_back("model/" + p->name, p->value);
    for (std::size_t i = 0; i < params.size(); ++i)
        if (!sgd.momentum_buffers()[i].empty()) file.tensors.emplace_back("sgd/momentum/" + params[i]->name, sgd.momentum_buffers()[i]);
    file.metadata = metadata;
    file.metadata["format"] = checkpoint_format;
    file.metadata["model"] = model.name();
    save_safetensors(path, file);
}

std::map<std::string, std::string> load_checkpoint(const std::filesystem::path& path, Model<float>& model, Sgd<float>* sgd) {
    const TensorFile file = load_safetensors(path);
    const auto meta = [&](const std::string& key) {
        auto it = file.metadata.find(key);
        return it == file.metadata.end() ? std::string() : it->second;
    };
    if (meta("format") != checkpoint_format)
        fail("{}: not a ManualCNN checkpoint (format '{}', expected '{}')", path.string(), meta("format"), checkpoint_format);
    if (meta("model") != model.name())
        fail("{}: checkpoint of model '{}', cannot load into model '{}'", path.string(), meta("model"), model.name());
    const auto params = model.parameters();
    // Check everything before changing anything: a failed load leaves the model as it was.
    for (Parameter<float>* p : params) {
        const std::string name = "model/" + p->name;
        if (!file.contains(name)) fail("{}: parameter '{}' is missing", path.string(), p->name);
        if (file.at(name).shape() != p->value.shape())
            fail("{}: parameter '{}' has shape {} in the checkpoint but {} in the model", path.string(), p->name,
                 file.at(name).shape().str(), p->value.shape().str());
        const std::string mom = "sgd/momentum/" + p->name;
        if (file.contains(mom) && file.at(mom).shape() != p->value.shape())
            fail("{}: momentum of '{}' has shape {}, expected {}", path.string(), p->name, file.at(mom).shape().str(),
                 p->value.shape().str());
    }
    for (std::size_t i = 0; i < params.size(); ++i) {
        params[i]->value = file.at("model/" + params[i]->name);
        params[i]->zero_grad();
        if (sgd) {
            const std::string mom = "sgd/momentum/" + params[i]->name;
            sgd->momentum_buffers()[i] = file.contains(mom) ? file.at(mom) : Tensor<float>();
        }
    }
    return file.metadata;
}

std::vector<LogRow> read_log(const std::filesystem::path& csv) {
    std::ifstream f(csv);
    if (!f) fail("cannot read the training log {}", csv.string());
    std::vector<LogRow> rows;
    std::string line;
    std::getline(f, line);
    if (line != csv_header) fail("{}: unexpected header '{}'", csv.string(), line);
    for (int number = 2; std::getline(f, line); ++number) {
        if (line.empty()) continue;
        std::istringstream in(line);
        LogRow r;
        std::string cell;
        std::vector<std::string> cells;
        while (std::getline(in, cell, ',')) cells.push_back(cell);
        if (cells.size() != 8) fail("{}:{}: expected 8 columns, got {}", csv.string(), number, cells.size());
        try {
            r.kind = cells[0];
            r.epoch = std::stoi(cells[1]);
            r.step = std::stol(cells[2]);
            r.images = std::stol(cells[3]);
            r.loss = std::stod(cells[4]);
            r.accuracy = std::stod(cells[5]);
            r.images_per_second = std::stod(cells[6]);
            r.elapsed = std::stod(cells[7]);
        } catch (const std::exception&) {
            fail("{}:{}: not a log row: '{}'", csv.string(), number, line);
        }
        rows.push_back(r);
    }
    return rows;
}

TrainResult train(const TrainConfig& config, const data::Cifar10& data, bool resume, std::FILE* out) {
    config.validate();
    const auto wall_start = Clock::now();
    namespace fs = std::filesystem;
    const fs::path dir = config.run_dir, ckpt = dir / "checkpoint.safetensors", log_path = dir / "log.csv";
    fs::create_directories(dir);

    // Data: the training set (less a validation split), the set evaluated after each epoch.
    data::Dataset train_set = data.train, validation_set;
    if (config.validation) {
        data::Split split = data::hold_out(data.train, config.validation, config.seed);
        train_set = std::move(split.train);
        validation_set = std::move(split.validation);
    }
    const data::Dataset& eval_set = config.validation ? validation_set : data.test;
    const std::string eval_name = config.validation ? "validation" : "test";
    const data::Normalization norm =
        config.normalization == "dataset" ? data::Normalization::of(train_set) : data::Normalization::notebook();
    data::BatchLoader loader(train_set, config.batch, true, config.seed, norm);
    const std::size_t batches =
        config.max_batches ? std::min(config.max_batches, loader.batches_per_epoch()) : loader.batches_per_epoch();

    Rng rng(config.seed);
    auto model = make_model<float>(config.model, rng, config.conv);
    Sgd<float> sgd(model->parameters(), config.sgd);

    TrainResult result;
    int first_epoch = 0;
    Progress progress(out);
    if (resume) {
        if (!fs::exists(ckpt)) fail("cannot resume: {} has no checkpoint (checkpoint.safetensors)", dir.string());
        const auto meta = load_checkpoint(ckpt, *model, &sgd);
        try {
            first_epoch = std::stoi(meta.at("epochs_done"));
            result.steps = std::stol(meta.at("step"));
            result.train_images = std::stol(meta.at("images"));
            result.train_seconds = std::stod(meta.at("train_seconds"));
        } catch (const std::exception&) {
            fail("{}: checkpoint metadata lacks the training progress (epochs_done, step, images, train_seconds)", ckpt.string());
        }
        if (fs::exists(log_path))
            for (const LogRow& r : read_log(log_path))
                if (r.step <= result.steps) result.log.push_back(r);  // drop what the lost epoch logged
        progress.line(fmt::format("Resuming {} after epoch {} (step {})", dir.string(), first_epoch, result.steps));
    } else {
        if (fs::exists(ckpt))
            fail("{} already holds a run (checkpoint.safetensors); use --resume to continue it or choose another run folder",
                 dir.string());
        write_file_atomically(dir / "summary.txt", summary(*model));
    }
    write_file_atomically(dir / "config.json", config.to_json() + "\n");
    {
        std::string text = csv_header + "\n";
        for (const LogRow& r : result.log) text += csv_line(r) + "\n";
        write_file_atomically(log_path, text);
    }
    std::ofstream log_file(log_path, std::ios::app);
    auto add_row = [&](const LogRow& r) {
        result.log.push_back(r);
        log_file << csv_line(r) << '\n';
        log_file.flush();
    };
    bool plot_failed = false;
    auto redraw = [&] {
        if (!config.plots || plot_failed) return;
        try {
            plot::draw_training_curves(dir / "curves.png", curves_of(config, result.log));
        } catch (const Error& e) {
            plot_failed = true;  // training goes on without pictures
            progress.line(fmt::format("warning: no training curves: {}", e.what()));
        }
    };

    progress.line(fmt::format("Training {} on {} images ({} batches of {} per epoch), {} on {} images, epochs {}..{}, run folder {}",
                              config.model, train_set.size(), batches, config.batch, eval_name, eval_set.size(),
                              first_epoch + 1, config.epochs, dir.string()));
    Tensor<float> images;
    std::vector<int> labels;
    Tape<float> tape;
    for (int epoch = first_epoch; epoch < config.epochs; ++epoch) {
        loader.start_epoch(epoch);
        progress.start(fmt::format("epoch {}/{}", epoch + 1, config.epochs), batches, config.batch);
        double running_loss = 0, bar_loss = 0;
        long running_correct = 0, running_images = 0, running_batches = 0;
        auto report_start = Clock::now();
        for (std::size_t b = 0; b < batches && loader.next(images, labels); ++b) {
            const auto step_start = Clock::now();
            tape.clear();
            const Var<float> logits = model->forward(tape.constant(images));
            const Var<float> loss = softmax_cross_entropy(logits, labels);
            sgd.zero_grad();
            tape.backward(loss);
            sgd.step();
            result.train_seconds += seconds_since(step_start);
            const double l = loss.value()[0];
            if (!std::isfinite(l))
                fail("training diverged: loss is {} at epoch {}, batch {} (step {}); try a smaller learning rate", l, epoch + 1,
                     b + 1, result.steps + 1);
            const std::vector<int> predicted = predictions(logits.value());
            for (std::size_t n = 0; n < labels.size(); ++n) running_correct += predicted[n] == labels[n];
            running_loss += l;
            running_images += static_cast<long>(labels.size());
            ++running_batches;
            ++result.steps;
            result.train_images += static_cast<long>(labels.size());
            bar_loss = 0.98 * bar_loss + 0.02 * l;
            progress.update(b + 1, result.steps < 50 ? l : bar_loss);
            if (running_batches == config.report_every || b + 1 == batches) {
                const double secs = seconds_since(report_start);
                const LogRow row{"train", epoch + 1, result.steps, result.train_images, running_loss / static_cast<double>(running_batches),
                                 100.0 * static_cast<double>(running_correct) / static_cast<double>(running_images),
                                 secs > 0 ? static_cast<double>(running_images) / secs : 0, result.train_seconds};
                add_row(row);
                progress.line(fmt::format("[{}, {:5}] loss: {:.3f}  train accuracy {:.2f} %  {:.0f} img/s", epoch + 1, b + 1,
                                          row.loss, row.accuracy, row.images_per_second));
                redraw();
                running_loss = 0;
                running_correct = running_images = running_batches = 0;
                report_start = Clock::now();
            }
        }
        progress.finish();
        Evaluation ev = evaluate(*model, eval_set, norm, config.eval_batch);
        add_row({eval_name, epoch + 1, result.steps, result.train_images, ev.loss, ev.accuracy, ev.images_per_second(),
                 result.train_seconds});
        progress.line(fmt::format("epoch {}: {} loss {:.3f}, {} accuracy {:.2f} % ({} images, {:.0f} img/s)", epoch + 1, eval_name,
                                  ev.loss, eval_name, ev.accuracy, ev.count, ev.images_per_second()));
        save_checkpoint(ckpt, *model, sgd,
                        {{"epochs_done", std::to_string(epoch + 1)},
                         {"step", std::to_string(result.steps)},
                         {"images", std::to_string(result.train_images)},
                         {"train_seconds", fmt::format("{:.6f}", result.train_seconds)},
                         {"config", config.to_json()}});
        redraw();
        if (!config.validation) result.test = std::move(ev);  // the test set: this is the final report if last
    }
    result.epochs_done = config.epochs;

    // Final report on the test set (already measured when the last epoch was evaluated on it).
    if (config.validation || first_epoch >= config.epochs) result.test = evaluate(*model, data.test, norm, config.eval_batch);
    if (config.validation)
        add_row({"test", config.epochs, result.steps, result.train_images, result.test.loss, result.test.accuracy,
                 result.test.images_per_second(), result.train_seconds});
    redraw();
    result.wall_seconds = seconds_since(wall_start);
    progress.line(fmt::format("Test accuracy of the network on the {} test images: {:.2f} %", result.test.count, result.test.accuracy));
    progress.line(format_class_report(result.test, data.class_names));
    progress.line(fmt::format("Training: {} images in {:.1f} s of steps ({:.0f} img/s); this run took {:.1f} s in all", result.train_images,
                              result.train_seconds, result.train_images_per_second(), result.wall_seconds));

    json metrics = {{"model", config.model},
                    {"epochs", config.epochs},
                    {"steps", result.steps},
                    {"train_images", result.train_images},
                    {"train_seconds", result.train_seconds},
                    {"train_images_per_second", result.train_images_per_second()},
                    {"wall_seconds", result.wall_seconds},
                    {"test_loss", result.test.loss},
                    {"test_accuracy", result.test.accuracy},
                    {"test_images", result.test.count},
                    {"class_names", data.class_names},
                    {"per_class_accuracy", result.test.per_class_accuracy()},
                    {"confusion", result.test.confusion},
                    {"config", json::parse(config.to_json())}};
    write_file_atomically(dir / "metrics.json", metrics.dump(2) + "\n");
    return result;
}

}  // namespace mcnn
