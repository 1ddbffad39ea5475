// fit(): see mcnn/train/trainer.hpp. Read top-down: fit() checks the inputs, opens the run (new or
// resumed), runs the epochs (train_epoch, then evaluate and checkpoint), and finishes the run
// (final report, metrics.json). RunFolder holds everything written to disk.
#include "mcnn/train/trainer.hpp"

#include <omp.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <numeric>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "mcnn/nn/summary.hpp"
#include "mcnn/ops/loss.hpp"
#include "mcnn/plot/curves.hpp"
#include "mcnn/train/checkpoint.hpp"
#include "mcnn/train/progress.hpp"
#include "../util/files.hpp"
#include "../util/strict.hpp"
#include "run_files.hpp"
#include "run_lock.hpp"
#include "stop_signals.hpp"
#include "memory.hpp"

namespace mcnn {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using run_files::checkpoint_format;
using run_files::csv_header;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string csv_line(const LogRow& r) {
    return fmt::format("{},{},{},{},{:.6f},{:.4f},{:.1f},{:.3f},{:.6g}", r.kind, r.epoch, r.step, r.images, r.loss, r.accuracy,
                       r.images_per_second, r.elapsed, r.lr);
}

// ---- checks before training -----------------------------------------------------------------------

/// B x example_shape.
Shape batch_shape(const data::Dataset& d, int batch) {
    std::vector<int> dims{batch};
    for (int v : d.example_shape().dims()) dims.push_back(v);
    return Shape(dims);
}

/// Augmentation and test-time augmentation need C x H x W examples their settings fit.
void check_augmentation(const data::Dataset& train, const FitOptions& o) {
    if (!o.augment.enabled() && o.tta == Tta::none) return;
    const Shape e = train.example_shape();
    if (e.rank() != 3)
        fail("fit: augmentation ({}) and test-time augmentation ({}) need C x H x W examples, got {}", o.augment.describe(),
             tta_name(o.tta), e.str());
    o.augment.check(e[1], e[2]);
    if (o.tta == Tta::flip_translate && (e[1] < 2 || e[2] < 2))
        fail("fit: test-time augmentation flip-translate shifts by 1 pixel: it needs images of at least 2 x 2, got {}", e.str());
}

void check_inputs(Module<float>& model, const data::Dataset& train, const data::Dataset& eval, const FitOptions& o) {
    if (o.epochs < 1) fail("fit: epochs must be >= 1, got {}", o.epochs);
    if (o.batch < 1) fail("fit: batch must be >= 1, got {}", o.batch);
    if (o.report_every < 1) fail("fit: the report interval must be >= 1 batch, got {}", o.report_every);
    if (o.eval_batch < 1) fail("fit: the evaluation batch must be >= 1, got {}", o.eval_batch);
    if (o.eval_every < 0) fail("fit: the evaluation interval must be >= 0 epochs, got {}", o.eval_every);
    if (train.size() == 0) fail("fit: the training data is empty");
    if (o.resume && o.run_dir.empty()) fail("fit: resume needs a run folder");
    if (o.reset_optimizer && !o.resume) fail("fit: resetting the optimiser's state applies to a resumed run only");
    if (!(o.label_smoothing >= 0 && o.label_smoothing <= 1))
        fail("fit: label smoothing must be in [0, 1], got {}", o.label_smoothing);
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
    try {
        const EvalModeScope<float> eval_mode(model);
        output = model.forward(tape.constant(Tensor<float>(input))).shape();
    } catch (const Error& e) {
        fail("fit: model '{}' cannot take the training data's batches of shape {}: {}", o.model_name, input.str(), e.what());
    }
    if (output != Shape{n, train.classes()})
        fail("fit: model '{}' maps a batch of shape {} to {}; expected batch x classes = [{}, {}]", o.model_name, input.str(),
             output.str(), n, train.classes());
    for (Parameter<float>* p : model.parameters())
        for (Parameter<float>* q : model.parameters())
            if (p != q && p->name == q->name) fail("fit: two parameters of model '{}' are named '{}'", o.model_name, p->name);
    // Before the first step: a batch larger than the data, or than the memory can hold, fails now.
    if (static_cast<std::size_t>(o.batch) > train.size())
        fail("fit: batch {} is larger than the training set ({} examples): use a batch of at most {}", o.batch, train.size(),
             train.size());
    check_augmentation(train, o);
    const std::uint64_t floats = memory::recorded_floats_per_example(model, train.example_shape());
    memory::check_fits(memory::training_step_bytes(floats, static_cast<std::uint64_t>(o.batch)),
                       static_cast<std::uint64_t>(o.batch), memory::available());
}

// ---- the run folder ------------------------------------------------------------------------------

/// What fit writes: the log (kept in memory too), checkpoints, curves, metrics. Without a run
/// folder every write is skipped.
class RunFolder {
public:
    RunFolder(const FitOptions& o, Progress& progress) : o_(o), progress_(progress), dir_(o.run_dir) {}
    bool enabled() const { return !dir_.empty(); }
    fs::path checkpoint() const { return dir_ / "checkpoint.safetensors"; }

    /// A new run: refuses a folder that holds one or that another process trains in; writes
    /// config.json and summary.txt.
    void start(const std::string& summary_text) {
        if (!enabled()) return;
        fs::create_directories(dir_);
        lock();
        if (fs::exists(checkpoint()))
            fail("{} already holds a run (checkpoint.safetensors); resume it (train --resume) or choose another run folder", dir_.string());
        write_file_atomically(dir_ / "summary.txt", summary_text);
        write_config_and_log();
    }

    /// Takes the folder's lock (held until fit returns); refused, naming the PID, while another
    /// process trains here.
    void lock() {
        if (enabled() && !lock_.held()) lock_ = detail::RunLock(dir_);
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
        if (enabled()) append_to_file(dir_ / "log.csv", csv_line(r) + "\n");
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
        write_file_atomically(dir_ / "log.csv", format_log(log));
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
                c.lr_step.push_back(step);
                c.lr.push_back(r.lr);
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
    detail::RunLock lock_;
    bool plot_failed_ = false;
};

// ---- one run ------------------------------------------------------------------------------------

/// Running sums between two reports.
struct ReportWindow {
    double loss = 0;
    long correct = 0, images = 0, batches = 0;
    Clock::time_point start = Clock::now();
};

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
    std::size_t batches = 0;      // per epoch
    std::size_t first_batch = 0;  // where the first epoch starts: > 0 when resumed in the middle of one
    ReportWindow window;          // the report being summed
    const detail::StopSignals* signals = nullptr;  // while the epochs run
    std::string last_good;  // the last checkpoint written or resumed from: "<path> (after epoch E, step S)"

    Run(Module<float>& m, Optimizer<float>& opt, const data::Dataset& t, const data::Dataset& e, const FitOptions& options)
        : model(m), optimizer(opt), train(t), eval(e), o(options), progress(options.out), folder(o, progress) {
        if (o.title.empty()) o.title = fmt::format("{}, {}, batch {}", o.model_name, optimizer.describe(), o.batch);
    }

    /// Saves the run after `epochs_done` epochs and `batch_in_epoch` batches of the next (0 at an
    /// epoch's end; the report window is saved with it, so a resumed run logs the same rows).
    void checkpoint(int epochs_done, std::size_t batch_in_epoch) {
        if (!folder.enabled()) return;
        refuse_non_finite(batch_in_epoch ? fmt::format("in epoch {}", epochs_done + 1) : fmt::format("after epoch {}", epochs_done));
        std::map<std::string, std::string> meta{{"epochs_done", std::to_string(epochs_done)},
                                                {"batch_in_epoch", std::to_string(batch_in_epoch)},
                                                {"threads", std::to_string(omp_get_max_threads())},
                                                {"step", std::to_string(result.steps)},
                                                {"images", std::to_string(result.train_images)},
                                                {"train_seconds", fmt::format("{:.6f}", result.train_seconds)}};
        if (batch_in_epoch > 0) {
            meta["window_batches"] = std::to_string(window.batches);
            meta["window_images"] = std::to_string(window.images);
            meta["window_correct"] = std::to_string(window.correct);
            meta["window_loss"] = fmt::format("{}", window.loss);  // shortest text that reads back the same double
            meta["window_seconds"] = fmt::format("{:.6f}", seconds_since(window.start));
        }
        if (!o.config_json.empty()) meta["config"] = o.config_json;
        try {
            save_checkpoint(folder.checkpoint(), model, &optimizer, o.model_name, meta);
        } catch (const Error& e) {
            fail("{}\nThe checkpoint was not saved; {}", e.what(),
                 last_good.empty() ? "there is none from before" : fmt::format("the last one, {}, is left as it was", last_good));
        }
        last_good = fmt::format("{} ({})", folder.checkpoint().string(), point(epochs_done, batch_in_epoch, result.steps));
    }

    /// What a diverged run reports besides where it diverged: the first non-finite tensor, the last
    /// good checkpoint (left as it was) and a hint.
    std::string divergence_details() {
        const auto bad = first_non_finite(model, &optimizer);
        const std::string saved = !folder.enabled() ? "no run folder, so no checkpoint"
                                  : last_good.empty()
                                      ? "no checkpoint was written (none was good)"
                                      : fmt::format("the last good checkpoint, {}, is left as it was", last_good);
        return fmt::format("{}{}; try a smaller learning rate", bad ? bad->str() + "; " : "", saved);
    }

    /// Throws when a parameter or the optimiser's state holds NaN or infinity (a diverged run),
    /// before it is evaluated or saved: `when` says where in the run ("after epoch 2").
    void refuse_non_finite(const std::string& when) {
        if (first_non_finite(model, &optimizer))
            fail("training diverged {} (step {}): {}", when, result.steps, divergence_details());
    }

    /// "after epoch 2, step 60", or in the middle of an epoch "in epoch 3 after batch 15 of 30, step 75".
    std::string point(int epochs_done, std::size_t batch_in_epoch, long step) const {
        if (batch_in_epoch == 0) return fmt::format("after epoch {}, step {}", epochs_done, step);
        return fmt::format("in epoch {} after batch {} of {}, step {}", epochs_done + 1, batch_in_epoch, batches, step);
    }

    int stop_signal() const { return signals ? signals->received() : 0; }
};

/// Where in its epoch a checkpoint was saved (metadata "batch_in_epoch", absent in checkpoints
/// saved at an epoch's end by older versions) and the report window summed so far. Each value is
/// checked against the run: no batch past the epoch, no more images than batches hold.
void read_position_in_epoch(Run& run, const std::map<std::string, std::string>& meta, const fs::path& ckpt) {
    const auto what = [&](const char* key) { return fmt::format("{}: checkpoint metadata '{}'", ckpt.string(), key); };
    const auto text = [&](const char* key) {
        const auto it = meta.find(key);
        if (it == meta.end()) fail("{}: checkpoint metadata lacks '{}'", ckpt.string(), key);
        return it->second;
    };
    const auto integer = [&](const char* key, long long max) { return strict::integer(text(key), 0, max, what(key)); };
    if (!meta.count("batch_in_epoch")) return;
    run.first_batch = static_cast<std::size_t>(integer("batch_in_epoch", static_cast<long long>(run.batches)));
    if (run.first_batch == 0) return;
    if (run.first_epoch >= run.o.epochs)
        fail("{}: the run stopped in epoch {}, so it needs at least {} epochs, not {}", ckpt.string(), run.first_epoch + 1,
             run.first_epoch + 1, run.o.epochs);
    ReportWindow& w = run.window;
    w.batches = static_cast<long>(integer("window_batches", static_cast<long long>(run.first_batch)));
    w.images = static_cast<long>(integer("window_images", static_cast<long long>(w.batches) * run.o.batch));
    w.correct = static_cast<long>(integer("window_correct", w.images));
    w.loss = strict::number(text("window_loss"), 0, std::numeric_limits<double>::max(), what("window_loss"));
    const double secs = strict::number(text("window_seconds"), 0, 1e9, what("window_seconds"));
    w.start = Clock::now() - std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(secs));
}

/// Results depend on the thread count through float rounding (a conv layer sums per-thread partial
/// gradients): a resume with another count continues correctly but not bit for bit. Says so.
void note_thread_count(Run& run, const std::map<std::string, std::string>& meta, const fs::path& ckpt) {
    const auto it = meta.find("threads");
    if (it == meta.end()) return;  // checkpoints written before the count was recorded
    const long long saved = strict::integer(it->second, 1, 1 << 20, fmt::format("{}: checkpoint metadata 'threads'", ckpt.string()));
    if (saved != omp_get_max_threads())
        run.progress.line(fmt::format("note: the run so far used {} threads and goes on with {}: float sums then round "
                                      "differently, so it will not match an unbroken run bit for bit (resume with "
                                      "--threads {} for that)", saved, omp_get_max_threads(), saved));
}

/// The model's data-dependent initialisation from its first data_init_examples() training examples.
void init_from_data(Run& run) {
    const std::size_t count = std::min(run.model.data_init_examples(), run.train.size());
    if (count == 0) return;
    std::vector<std::size_t> indices(count);
    std::iota(indices.begin(), indices.end(), std::size_t{0});
    Tensor<float> examples;
    std::vector<int> labels;
    run.train.fill(indices.data(), count, examples, labels);
    run.model.init_from_data(examples);
}

void open_run(Run& run) {
    if (!run.o.resume) {
        init_from_data(run);
        run.folder.start(summary(run.model, batch_shape(run.train, 1), run.o.model_name));
        return;
    }
    const fs::path ckpt = run.folder.checkpoint();
    if (!fs::exists(fs::symlink_status(ckpt)))
        fail("cannot resume: {} has no checkpoint (checkpoint.safetensors)", run.o.run_dir.string());
    run.folder.lock();
    (void)files::regular_file_size(ckpt, "cannot resume: the checkpoint");  // a FIFO would block the reader
    // With reset_optimizer the state in the checkpoint is neither read nor checked.
    Optimizer<float>* optimizer = run.o.reset_optimizer ? nullptr : &run.optimizer;
    const TensorFile file = run_files::checked_checkpoint(ckpt, run.model, optimizer, run.o.model_name);
    const run_files::SavedProgress p = run_files::saved_progress(ckpt, file.metadata, run.o, run.batches);
    run.first_epoch = p.epochs_done;
    run.result.steps = p.step;
    run.result.train_images = p.images;
    run.result.train_seconds = p.train_seconds;
    read_position_in_epoch(run, file.metadata, ckpt);
    note_thread_count(run, file.metadata, ckpt);
    run_files::put_in_place(file, run.model, optimizer);
    run.last_good = fmt::format("{} ({})", ckpt.string(), run.point(run.first_epoch, run.first_batch, run.result.steps));
    run.folder.resume(run.result.steps);
    if (run.first_batch == 0)
        run.progress.line(fmt::format("Resuming {} after epoch {} (step {})", run.o.run_dir.string(), run.first_epoch, run.result.steps));
    else
        run.progress.line(fmt::format("Resuming {} in epoch {} after batch {} of {} (step {})", run.o.run_dir.string(),
                                      run.first_epoch + 1, run.first_batch, run.batches, run.result.steps));
    if (run.o.reset_optimizer) {
        for (const auto& [name, t] : run.optimizer.state()) *t = Tensor<float>();
        run.progress.line("The optimiser's state starts afresh (reset): the parameters are the checkpoint's, but the run "
                          "will differ from an unbroken one");
    }
}

void report(Run& run, int epoch, std::size_t batch_index, ReportWindow& w) {
    const double secs = seconds_since(w.start);
    const LogRow row{"train", epoch + 1, run.result.steps, run.result.train_images, w.loss / static_cast<double>(w.batches),
                     100.0 * static_cast<double>(w.correct) / static_cast<double>(w.images),
                     secs > 0 ? static_cast<double>(w.images) / secs : 0, run.result.train_seconds, run.optimizer.current_lr()};
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
    const Var<float> loss = softmax_cross_entropy(logits, labels, run.o.label_smoothing);
    run.optimizer.zero_grad();
    tape.backward(loss);
    run.optimizer.set_lr_factor(run.o.schedule.at_step(run.result.steps, static_cast<long>(run.batches)));  // steps done so far
    run.optimizer.step();
    run.result.train_seconds += seconds_since(start);
    const std::vector<int> predicted = predictions(logits.value());
    for (std::size_t n = 0; n < labels.size(); ++n) w.correct += predicted[n] == labels[n];
    return loss.value()[0];
}

/// Trains epoch `epoch` from batch run.first_batch (0 unless the run was resumed in the middle of
/// this epoch). Returns the batches of the epoch done: fewer than run.batches when a stop signal
/// came (the step in progress is finished first, and its report when one is due).
std::size_t train_epoch(Run& run, data::BatchLoader& loader, int epoch) {
    const std::size_t batches = run.batches, first = std::exchange(run.first_batch, 0);
    loader.start_epoch(epoch);
    run.progress.start(fmt::format("epoch {}/{}", epoch + 1, run.o.epochs), batches, run.o.batch);
    Tensor<float> images;
    std::vector<int> labels;
    for (std::size_t b = 0; b < first; ++b) loader.next(images, labels);  // done before the run was stopped
    Tape<float> tape;
    ReportWindow& w = run.window;
    if (first == 0) w = ReportWindow{};
    double bar_loss = 0;
    for (std::size_t b = first; b < batches && loader.next(images, labels); ++b) {
        if (run.o.augment.enabled()) {
            const auto start = Clock::now();
            data::augment_batch(run.o.augment, run.o.seed, epoch, loader.batch_indices(), images);
            run.result.train_seconds += seconds_since(start);
        }
        double l = 0;
        try {
            l = train_step(run, tape, images, labels, w);
        } catch (const AnomalyError& e) {
            throw AnomalyError(fmt::format("{}; at epoch {}, batch {} (step {})", e.what(), epoch + 1, b + 1, run.result.steps + 1));
        }
        if (!std::isfinite(l))
            fail("training diverged: loss is {} at epoch {}, batch {} (step {}); {}", l, epoch + 1, b + 1, run.result.steps + 1,
                 run.divergence_details());
        w.loss += l;
        w.images += static_cast<long>(labels.size());
        ++w.batches;
        ++run.result.steps;
        run.result.train_images += static_cast<long>(labels.size());
        bar_loss = 0.98 * bar_loss + 0.02 * l;
        run.progress.update(b + 1, run.result.steps < 50 ? l : bar_loss);
        if (w.batches == run.o.report_every || b + 1 == batches) report(run, epoch, b, w);
        if (run.stop_signal()) {
            run.progress.finish();
            return b + 1;
        }
    }
    run.progress.finish();
    return batches;
}

Evaluation evaluate_epoch(Run& run, int epoch) {
    Evaluation ev;
    {
        const EvalModeScope<float> eval_mode(run.model);
        ev = evaluate(run.model, run.eval, run.o.eval_batch);
    }
    run.folder.add_row({run.o.eval_name, epoch + 1, run.result.steps, run.result.train_images, ev.loss, ev.accuracy,
                        ev.images_per_second(), run.result.train_seconds, run.optimizer.current_lr()});
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
    m["augmentation"] = run.o.augment.describe();
    m["tta"] = tta_name(run.o.tta);
    if (!run.o.config_json.empty()) m["config"] = json::parse(run.o.config_json);
    return m;
}

/// The final report: on options.test when given (measured now), else the last evaluation.
void finish_run(Run& run, Evaluation last_eval, Clock::time_point wall_start) {
    run.model.eval();
    const data::Dataset& final_set = run.o.test ? *run.o.test : run.eval;
    if (run.o.test) {
        run.result.test = evaluate(run.model, *run.o.test, run.o.eval_batch, run.o.tta);
        run.folder.add_row({"test", run.o.epochs, run.result.steps, run.result.train_images, run.result.test.loss,
                            run.result.test.accuracy, run.result.test.images_per_second(), run.result.train_seconds,
                            run.optimizer.current_lr()});
    } else {
        const bool none_yet = !last_eval.count, again = none_yet || run.o.tta != Tta::none;
        run.result.test = again ? evaluate(run.model, run.eval, run.o.eval_batch, run.o.tta) : std::move(last_eval);
        if (none_yet)  // the run's only evaluation: logged for the curves
            run.folder.add_row({run.o.eval_name, run.o.epochs, run.result.steps, run.result.train_images, run.result.test.loss,
                                run.result.test.accuracy, run.result.test.images_per_second(), run.result.train_seconds,
                                run.optimizer.current_lr()});
    }
    run.model.train();
    run.folder.redraw();
    run.result.epochs_done = run.o.epochs;
    run.result.log = run.folder.log;
    run.result.wall_seconds = seconds_since(wall_start);
    const Evaluation& t = run.result.test;
    run.progress.line(fmt::format("Test accuracy of the network on the {} test images: {:.2f} %{}", t.count, t.accuracy,
                                  run.o.tta == Tta::none ? "" : fmt::format(" (test-time augmentation {})", tta_name(run.o.tta))));
    run.progress.line(format_class_report(t, final_set.class_names()));
    run.progress.line(fmt::format("Training: {} images in {:.1f} s of steps ({:.0f} img/s); this run took {:.1f} s in all",
                                  run.result.train_images, run.result.train_seconds, run.result.train_images_per_second(),
                                  run.result.wall_seconds));
    run.folder.write_metrics(metrics_of(run, final_set));
}

/// Stopped by a signal after `epochs_done` epochs and `batch_in_epoch` batches of the next: saves
/// that point (a checkpoint at an epoch's end is already saved) and says where the run stopped.
void stop_early(Run& run, int signal, int epochs_done, std::size_t batch_in_epoch) {
    if (batch_in_epoch > 0) run.checkpoint(epochs_done, batch_in_epoch);
    run.folder.redraw();
    run.result.stopped_by_signal = signal;
    run.result.epochs_done = epochs_done;
    run.result.batch_in_epoch = batch_in_epoch;
    run.result.log = run.folder.log;
    const std::string where = run.point(epochs_done, batch_in_epoch, run.result.steps);
    run.progress.line(run.folder.enabled()
                          ? fmt::format("Stopped by {} {}; saved to {}", detail::signal_name(signal), where, run.folder.checkpoint().string())
                          : fmt::format("Stopped by {} {}; nothing saved (no run folder)", detail::signal_name(signal), where));
}

/// The epochs, each trained, evaluated and saved, with SIGINT/SIGTERM handled (when asked) while
/// they run. Returns false when a signal stopped them (then saved by stop_early). A signal that
/// comes during the last epoch's evaluation lets the run finish (checkpoint, final report).
bool run_epochs(Run& run, data::BatchLoader& loader, Evaluation& last_eval) {
    const detail::StopSignals signals(run.o.handle_signals);
    run.signals = &signals;
    bool stopped = false;
    for (int epoch = run.first_epoch; epoch < run.o.epochs && !stopped; ++epoch) {
        const std::size_t done = train_epoch(run, loader, epoch);
        if (const int s = run.stop_signal()) {
            stop_early(run, s, epoch, done);
            stopped = true;
            break;
        }
        run.refuse_non_finite(fmt::format("in epoch {}", epoch + 1));  // before its evaluation is logged
        const int every = run.o.eval_every;
        if (every > 0 && ((epoch + 1) % every == 0 || epoch + 1 == run.o.epochs)) last_eval = evaluate_epoch(run, epoch);
        run.checkpoint(epoch + 1, 0);
        run.folder.redraw();
        // After the last epoch's checkpoint the run is as good as done: it finishes.
        if (const int s = run.stop_signal(); s != 0 && epoch + 1 < run.o.epochs) {
            stop_early(run, s, epoch + 1, 0);
            stopped = true;
        }
    }
    run.signals = nullptr;
    return !stopped;
}

}  // namespace

TrainResult fit(Module<float>& model, Optimizer<float>& optimizer, const data::Dataset& train_data, const data::Dataset& eval_data,
                const FitOptions& options) {
    const auto wall_start = Clock::now();
    check_inputs(model, train_data, eval_data, options);
    Run run(model, optimizer, train_data, eval_data, options);
    data::BatchLoader loader(train_data, options.batch, true, options.seed);
    run.batches = options.max_batches ? std::min(options.max_batches, loader.batches_per_epoch()) : loader.batches_per_epoch();
    open_run(run);
    run.progress.line(fmt::format("Training {} on {} examples ({} batches of {} per epoch), {} on {} examples, epochs {}..{}{}",
                                  options.model_name, train_data.size(), run.batches, options.batch, options.eval_name,
                                  eval_data.size(), run.first_epoch + 1, options.epochs,
                                  run.folder.enabled() ? ", run folder " + options.run_dir.string() : ""));
    model.train();
    Evaluation last_eval;
    if (!run_epochs(run, loader, last_eval)) {
        run.result.wall_seconds = seconds_since(wall_start);
        return run.result;
    }
    finish_run(run, std::move(last_eval), wall_start);
    return run.result;
}

// ---- checkpoints and logs -------------------------------------------------------------------------

void save_checkpoint(const fs::path& path, Module<float>& model, Optimizer<float>* optimizer, const std::string& model_name,
                     const std::map<std::string, std::string>& metadata) {
    if (const auto bad = first_non_finite(model, optimizer))
        fail("{}: not saved, a checkpoint must hold finite values only: {}", path.string(), bad->str());
    TensorFile file;
    for (Parameter<float>* p : model.parameters()) file.tensors.emplace_back("model/" + p->name, p->value);
    for (const NamedBuffer<float>& b : model.buffers()) file.tensors.emplace_back("model/" + b.name, *b.tensor);
    json empty_state = json::array();  // so that loading tells a state not started yet from a missing one
    if (optimizer)
        for (const auto& [name, t] : optimizer->state()) {
            if (t->empty())
                empty_state.push_back(name);
            else
                file.tensors.emplace_back(name, *t);
        }
    file.metadata = metadata;
    file.metadata["format"] = checkpoint_format;
    file.metadata["model"] = model_name;
    if (optimizer) file.metadata[run_files::empty_state_key] = empty_state.dump();
    save_safetensors(path, file);
}

std::map<std::string, std::string> load_checkpoint(const fs::path& path, Module<float>& model, Optimizer<float>* optimizer,
                                                   const std::string& model_name) {
    const TensorFile file = run_files::checked_checkpoint(path, model, optimizer, model_name);
    run_files::put_in_place(file, model, optimizer);
    return file.metadata;
}

std::vector<LogRow> read_log(const fs::path& csv) {
    return parse_log(files::read_regular_file(csv, "training log", run_files::max_log_bytes), csv.string());
}

std::vector<LogRow> parse_log(std::string_view text, const std::string& name) {
    if (text.empty()) fail("{}: empty, expected the header '{}'", name, csv_header);
    std::vector<LogRow> rows;
    bool with_lr = true;  // false: a log written before the lr column
    std::size_t begin = 0;
    for (int number = 1; begin < text.size(); ++number) {
        const std::size_t newline = text.find('\n', begin);
        const bool complete = newline != std::string::npos;
        std::string_view line = text.substr(begin, (complete ? newline : text.size()) - begin);
        begin = complete ? newline + 1 : text.size();
        if (line.ends_with('\r')) line.remove_suffix(1);  // CRLF line endings
        if (number == 1) {
            with_lr = line == csv_header;
            if (!with_lr && line != run_files::csv_header_without_lr)
                fail("{}: unexpected header '{}', expected '{}'", name, run_files::escaped(line), csv_header);
            continue;
        }
        if (line.empty()) continue;
        try {
            rows.push_back(run_files::log_row(line, fmt::format("{} line {}", name, number), with_lr));
        } catch (const Error&) {
            if (complete) throw;  // a last line without its newline was cut short by a crash: skipped
        }
    }
    return rows;
}

std::string format_log(const std::vector<LogRow>& rows) {
    std::string text = csv_header + "\n";
    for (const LogRow& r : rows) text += csv_line(r) + "\n";
    return text;
}

}  // namespace mcnn
