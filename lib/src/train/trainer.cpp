// fit(): see mcnn/train/trainer.hpp. Read top-down: fit() checks the inputs, opens the run (new or
// resumed), runs the epochs (train_epoch, then evaluate and checkpoint), and finishes the run
// (final report, metrics.json). RunFolder holds everything written to disk.
#include "mcnn/train/trainer.hpp"

#include <chrono>
#include <cmath>
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

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
constexpr const char* checkpoint_format = "manualcnn-checkpoint/1";

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

const std::string csv_header = "kind,epoch,step,images,loss,accuracy,images_per_s,elapsed_s";

std::string csv_line(const LogRow& r) {
    return fmt::format("{},{},{},{},{:.6f},{:.4f},{:.1f},{:.3f}", r.kind, r.epoch, r.step, r.images, r.loss, r.accuracy,
                       r.images_per_second, r.elapsed);
}

// ---- checks before training -----------------------------------------------------------------------

/// B x example_shape.
Shape batch_shape(const data::Dataset& d, int batch) {
    std::vector<int> dims{batch};
    for (int v : d.example_shape().dims()) dims.push_back(v);
    return Shape(dims);
}

void check_inputs(Module<float>& model, const data::Dataset& train, const data::Dataset& eval, const FitOptions& o) {
    if (o.epochs < 1) fail("fit: epochs must be >= 1, got {}", o.epochs);
    if (o.batch < 1) fail("fit: batch must be >= 1, got {}", o.batch);
    if (o.report_every < 1) fail("fit: the report interval must be >= 1 batch, got {}", o.report_every);
    if (o.eval_batch < 1) fail("fit: the evaluation batch must be >= 1, got {}", o.eval_batch);
    if (train.size() == 0) fail("fit: the training data is empty");
    if (o.resume && o.run_dir.empty()) fail("fit: resume needs a run folder");
    for (const data::Dataset* d : {&eval, o.test}) {
        if (!d) continue;
        if (d->example_shape() != train.example_shape() || d->classes() != train.classes())
            fail("fit: the training examples are {} in {} classes but the {} examples are {} in {} classes",
                 train.example_shape().str(), train.classes(), d == &eval ? o.eval_name : "test", d->example_shape().str(),
                 d->classes());
    }
    // A probe in eval mode, so that layers with running statistics (batch norm) learn nothing from it.
    Tape<float> tape(Tape<float>::Mode::inference);
    const int n = static_cast<int>(std::min<std::size_t>(2, train.size()));
    const Shape input = batch_shape(train, n);
    Shape output;
    const bool training = model.is_training();
    model.eval();
    try {
        output = model.forward(tape.constant(Tensor<float>(input))).shape();
    } catch (const Error& e) {
        model.train(training);
        fail("fit: model '{}' cannot take the training data's batches of shape {}: {}", o.model_name, input.str(), e.what());
    }
    model.train(training);
    if (output != Shape{n, train.classes()})
        fail("fit: model '{}' maps a batch of shape {} to {}; expected batch x classes = [{}, {}]", o.model_name, input.str(),
             output.str(), n, train.classes());
    for (Parameter<float>* p : model.parameters())
        for (Parameter<float>* q : model.parameters())
            if (p != q && p->name == q->name) fail("fit: two parameters of model '{}' are named '{}'", o.model_name, p->name);
}

// ---- the run folder ------------------------------------------------------------------------------

/// What fit writes: the log (kept in memory too), checkpoints, curves, metrics. Without a run
/// folder every write is skipped.
class RunFolder {
public:
    RunFolder(const FitOptions& o, Progress& progress) : o_(o), progress_(progress), dir_(o.run_dir) {}
    bool enabled() const { return !dir_.empty(); }
    fs::path checkpoint() const { return dir_ / "checkpoint.safetensors"; }

    /// A new run: refuses a folder that holds one; writes config.json and summary.txt.
    void start(const std::string& summary_text) {
        if (!enabled()) return;
        fs::create_directories(dir_);
        if (fs::exists(checkpoint()))
            fail("{} already holds a run (checkpoint.safetensors); resume it (train --resume) or choose another run folder", dir_.string());
        write_file_atomically(dir_ / "summary.txt", summary_text);
        write_config_and_log();
    }

    /// A resumed run: keeps the log rows up to `step` (what the lost epoch logged is dropped).
    void resume(long step) {
        const fs::path log_path = dir_ / "log.csv";
        if (fs::exists(log_path))
            for (const LogRow& r : read_log(log_path))
                if (r.step <= step) log.push_back(r);
        write_config_and_log();
    }

    void add_row(const LogRow& r) {
        log.push_back(r);
        if (!enabled()) return;
        log_file_ << csv_line(r) << '\n';
        log_file_.flush();
    }

    void redraw() {
        if (!enabled() || !o_.plots || plot_failed_) return;
        try {
            plot::draw_training_curves(dir_ / "curves.png", curves());
        } catch (const Error& e) {
            plot_failed_ = true;  // training goes on without pictures
            progress_.line(fmt::format("warning: no training curves: {}", e.what()));
        }
    }

    void write_metrics(const json& metrics) {
        if (enabled()) write_file_atomically(dir_ / "metrics.json", metrics.dump(2) + "\n");
    }

    std::vector<LogRow> log;

private:
    void write_config_and_log() {
        if (!o_.config_json.empty()) write_file_atomically(dir_ / "config.json", o_.config_json + "\n");
        std::string text = csv_header + "\n";
        for (const LogRow& r : log) text += csv_line(r) + "\n";
        write_file_atomically(dir_ / "log.csv", text);
        log_file_.open(dir_ / "log.csv", std::ios::app);
        if (!log_file_) fail("cannot append to {}", (dir_ / "log.csv").string());
    }

    plot::TrainingCurves curves() const {
        plot::TrainingCurves c;
        c.title = o_.title;
        c.eval_name = o_.eval_name;
        for (const LogRow& r : log) {
            const auto step = static_cast<double>(r.step);
            if (r.kind == "train") {
                c.train_step.push_back(step);
                c.train_loss.push_back(r.loss);
                c.train_accuracy.push_back(r.accuracy);
            } else if (r.kind == c.eval_name) {
                c.eval_step.push_back(step);
                c.eval_loss.push_back(r.loss);
                c.eval_accuracy.push_back(r.accuracy);
            }
        }
        return c;
    }

    const FitOptions& o_;
    Progress& progress_;
    fs::path dir_;
    std::ofstream log_file_;
    bool plot_failed_ = false;
};

// ---- one run ------------------------------------------------------------------------------------

/// The state of a fit() call: inputs, progress counters, the run folder.
struct Run {
    Module<float>& model;
    Optimizer<float>& optimizer;
    const data::Dataset& train;
    const data::Dataset& eval;
    FitOptions o;
    Progress progress;
    RunFolder folder;
    TrainResult result;
    int first_epoch = 0;

    Run(Module<float>& m, Optimizer<float>& opt, const data::Dataset& t, const data::Dataset& e, const FitOptions& options)
        : model(m), optimizer(opt), train(t), eval(e), o(options), progress(options.out), folder(o, progress) {
        if (o.title.empty()) o.title = fmt::format("{}, {}, batch {}", o.model_name, optimizer.describe(), o.batch);
    }

    void checkpoint(int epochs_done) {
        if (!folder.enabled()) return;
        std::map<std::string, std::string> meta{{"epochs_done", std::to_string(epochs_done)},
                                                {"step", std::to_string(result.steps)},
                                                {"images", std::to_string(result.train_images)},
                                                {"train_seconds", fmt::format("{:.6f}", result.train_seconds)}};
        if (!o.config_json.empty()) meta["config"] = o.config_json;
        save_checkpoint(folder.checkpoint(), model, &optimizer, o.model_name, meta);
    }
};

void open_run(Run& run) {
    if (!run.o.resume) {
        run.folder.start(summary(run.model, batch_shape(run.train, 1), run.o.model_name));
        return;
    }
    const fs::path ckpt = run.folder.checkpoint();
    if (!fs::exists(ckpt)) fail("cannot resume: {} has no checkpoint (checkpoint.safetensors)", run.o.run_dir.string());
    const auto meta = load_checkpoint(ckpt, run.model, &run.optimizer, run.o.model_name);
    try {
        run.first_epoch = std::stoi(meta.at("epochs_done"));
        run.result.steps = std::stol(meta.at("step"));
        run.result.train_images = std::stol(meta.at("images"));
        run.result.train_seconds = std::stod(meta.at("train_seconds"));
    } catch (const std::exception&) {
        fail("{}: checkpoint metadata lacks the training progress (epochs_done, step, images, train_seconds)", ckpt.string());
    }
    run.folder.resume(run.result.steps);
    run.progress.line(fmt::format("Resuming {} after epoch {} (step {})", run.o.run_dir.string(), run.first_epoch, run.result.steps));
}

/// Running sums between two reports.
struct ReportWindow {
    double loss = 0;
    long correct = 0, images = 0, batches = 0;
    Clock::time_point start = Clock::now();
};

void report(Run& run, int epoch, std::size_t batch_index, ReportWindow& w) {
    const double secs = seconds_since(w.start);
    const LogRow row{"train", epoch + 1, run.result.steps, run.result.train_images, w.loss / static_cast<double>(w.batches),
                     100.0 * static_cast<double>(w.correct) / static_cast<double>(w.images),
                     secs > 0 ? static_cast<double>(w.images) / secs : 0, run.result.train_seconds};
    run.folder.add_row(row);
    run.progress.line(fmt::format("[{}, {:5}] loss: {:.3f}  train accuracy {:.2f} %  {:.0f} img/s", epoch + 1, batch_index + 1,
                                  row.loss, row.accuracy, row.images_per_second));
    run.folder.redraw();
    w = ReportWindow{};
}

/// One optimiser step on a batch; returns the loss and adds the right predictions to `w`.
double train_step(Run& run, Tape<float>& tape, const Tensor<float>& images, const std::vector<int>& labels, ReportWindow& w) {
    const auto start = Clock::now();
    tape.clear();
    tape.set_detect_anomaly(run.o.detect_anomaly);
    const Var<float> logits = run.model.forward(tape.constant(images));
    const Var<float> loss = softmax_cross_entropy(logits, labels);
    run.optimizer.zero_grad();
    tape.backward(loss);
    run.optimizer.step();
    run.result.train_seconds += seconds_since(start);
    const std::vector<int> predicted = predictions(logits.value());
    for (std::size_t n = 0; n < labels.size(); ++n) w.correct += predicted[n] == labels[n];
    return loss.value()[0];
}

void train_epoch(Run& run, data::BatchLoader& loader, std::size_t batches, int epoch) {
    loader.start_epoch(epoch);
    run.progress.start(fmt::format("epoch {}/{}", epoch + 1, run.o.epochs), batches, run.o.batch);
    Tensor<float> images;
    std::vector<int> labels;
    Tape<float> tape;
    ReportWindow w;
    double bar_loss = 0;
    for (std::size_t b = 0; b < batches && loader.next(images, labels); ++b) {
        double l = 0;
        try {
            l = train_step(run, tape, images, labels, w);
        } catch (const AnomalyError& e) {
            throw AnomalyError(fmt::format("{}; at epoch {}, batch {} (step {})", e.what(), epoch + 1, b + 1, run.result.steps + 1));
        }
        if (!std::isfinite(l))
            fail("training diverged: loss is {} at epoch {}, batch {} (step {}); try a smaller learning rate", l, epoch + 1, b + 1,
                 run.result.steps + 1);
        w.loss += l;
        w.images += static_cast<long>(labels.size());
        ++w.batches;
        ++run.result.steps;
        run.result.train_images += static_cast<long>(labels.size());
        bar_loss = 0.98 * bar_loss + 0.02 * l;
        run.progress.update(b + 1, run.result.steps < 50 ? l : bar_loss);
        if (w.batches == run.o.report_every || b + 1 == batches) report(run, epoch, b, w);
    }
    run.progress.finish();
}

Evaluation evaluate_epoch(Run& run, int epoch) {
    run.model.eval();
    Evaluation ev = evaluate(run.model, run.eval, run.o.eval_batch);
    run.model.train();
    run.folder.add_row({run.o.eval_name, epoch + 1, run.result.steps, run.result.train_images, ev.loss, ev.accuracy,
                        ev.images_per_second(), run.result.train_seconds});
    run.progress.line(fmt::format("epoch {}: {} loss {:.3f}, {} accuracy {:.2f} % ({} images, {:.0f} img/s)", epoch + 1,
                                  run.o.eval_name, ev.loss, run.o.eval_name, ev.accuracy, ev.count, ev.images_per_second()));
    return ev;
}

json metrics_of(const Run& run, const data::Dataset& final_set) {
    const TrainResult& r = run.result;
    json m = {{"model", run.o.model_name},
              {"epochs", run.o.epochs},
              {"steps", r.steps},
              {"train_images", r.train_images},
              {"train_seconds", r.train_seconds},
              {"train_images_per_second", r.train_images_per_second()},
              {"wall_seconds", r.wall_seconds},
              {"test_loss", r.test.loss},
              {"test_accuracy", r.test.accuracy},
              {"test_images", r.test.count},
              {"class_names", final_set.class_names()},
              {"per_class_accuracy", r.test.per_class_accuracy()},
              {"confusion", r.test.confusion}};
    if (!run.o.config_json.empty()) m["config"] = json::parse(run.o.config_json);
    return m;
}

/// The final report: on options.test when given (measured now), else the last evaluation.
void finish_run(Run& run, Evaluation last_eval, Clock::time_point wall_start) {
    run.model.eval();
    const data::Dataset& final_set = run.o.test ? *run.o.test : run.eval;
    if (run.o.test) {
        run.result.test = evaluate(run.model, *run.o.test, run.o.eval_batch);
        run.folder.add_row({"test", run.o.epochs, run.result.steps, run.result.train_images, run.result.test.loss,
                            run.result.test.accuracy, run.result.test.images_per_second(), run.result.train_seconds});
    } else {
        run.result.test = last_eval.count ? std::move(last_eval) : evaluate(run.model, run.eval, run.o.eval_batch);
    }
    run.model.train();
    run.folder.redraw();
    run.result.epochs_done = run.o.epochs;
    run.result.log = run.folder.log;
    run.result.wall_seconds = seconds_since(wall_start);
    const Evaluation& t = run.result.test;
    run.progress.line(fmt::format("Test accuracy of the network on the {} test images: {:.2f} %", t.count, t.accuracy));
    run.progress.line(format_class_report(t, final_set.class_names()));
    run.progress.line(fmt::format("Training: {} images in {:.1f} s of steps ({:.0f} img/s); this run took {:.1f} s in all",
                                  run.result.train_images, run.result.train_seconds, run.result.train_images_per_second(),
                                  run.result.wall_seconds));
    run.folder.write_metrics(metrics_of(run, final_set));
}

}  // namespace

TrainResult fit(Module<float>& model, Optimizer<float>& optimizer, const data::Dataset& train_data, const data::Dataset& eval_data,
                const FitOptions& options) {
    const auto wall_start = Clock::now();
    check_inputs(model, train_data, eval_data, options);
    Run run(model, optimizer, train_data, eval_data, options);
    open_run(run);
    data::BatchLoader loader(train_data, options.batch, true, options.seed);
    const std::size_t batches =
        options.max_batches ? std::min(options.max_batches, loader.batches_per_epoch()) : loader.batches_per_epoch();
    run.progress.line(fmt::format("Training {} on {} examples ({} batches of {} per epoch), {} on {} examples, epochs {}..{}{}",
                                  options.model_name, train_data.size(), batches, options.batch, options.eval_name, eval_data.size(),
                                  run.first_epoch + 1, options.epochs,
                                  run.folder.enabled() ? ", run folder " + options.run_dir.string() : ""));
    model.train();
    Evaluation last_eval;
    for (int epoch = run.first_epoch; epoch < options.epochs; ++epoch) {
        train_epoch(run, loader, batches, epoch);
        last_eval = evaluate_epoch(run, epoch);
        run.checkpoint(epoch + 1);
        run.folder.redraw();
    }
    finish_run(run, std::move(last_eval), wall_start);
    return run.result;
}

// ---- checkpoints and logs -------------------------------------------------------------------------

void save_checkpoint(const fs::path& path, Module<float>& model, Optimizer<float>* optimizer, const std::string& model_name,
                     const std::map<std::string, std::string>& metadata) {
    TensorFile file;
    for (Parameter<float>* p : model.parameters()) file.tensors.emplace_back("model/" + p->name, p->value);
    if (optimizer)
        for (const auto& [name, t] : optimizer->state())
            if (!t->empty()) file.tensors.emplace_back(name, *t);
    file.metadata = metadata;
    file.metadata["format"] = checkpoint_format;
    file.metadata["model"] = model_name;
    save_safetensors(path, file);
}

std::map<std::string, std::string> load_checkpoint(const fs::path& path, Module<float>& model, Optimizer<float>* optimizer,
                                                   const std::string& model_name) {
    const TensorFile file = load_safetensors(path);
    const auto meta = [&](const std::string& key) {
        auto it = file.metadata.find(key);
        return it == file.metadata.end() ? std::string() : it->second;
    };
    if (meta("format") != checkpoint_format)
        fail("{}: not a ManualCNN checkpoint (format '{}', expected '{}')", path.string(), meta("format"), checkpoint_format);
    if (!model_name.empty() && meta("model") != model_name)
        fail("{}: checkpoint of model '{}', cannot load into model '{}'", path.string(), meta("model"), model_name);
    const auto params = model.parameters();
    // Check everything before changing anything: a failed load leaves the model as it was.
    for (Parameter<float>* p : params) {
        const std::string name = "model/" + p->name;
        if (!file.contains(name)) fail("{}: parameter '{}' is missing", path.string(), p->name);
        if (file.at(name).shape() != p->value.shape())
            fail("{}: parameter '{}' has shape {} in the checkpoint but {} in the model", path.string(), p->name,
                 file.at(name).shape().str(), p->value.shape().str());
    }
    const auto state = optimizer ? optimizer->state() : std::vector<std::pair<std::string, Tensor<float>*>>{};
    for (std::size_t i = 0; i < state.size(); ++i) {
        const std::string& name = state[i].first;
        const Shape expected = optimizer->parameters().size() == state.size() ? optimizer->parameters()[i]->value.shape() : Shape{};
        if (file.contains(name) && expected.rank() > 0 && file.at(name).shape() != expected)
            fail("{}: optimiser state '{}' has shape {}, expected {}", path.string(), name, file.at(name).shape().str(), expected.str());
    }
    for (Parameter<float>* p : params) {
        p->value = file.at("model/" + p->name);
        p->zero_grad();
    }
    for (const auto& [name, t] : state) *t = file.contains(name) ? file.at(name) : Tensor<float>();
    return file.metadata;
}

std::vector<LogRow> read_log(const fs::path& csv) {
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

}  // namespace mcnn
