// fit(): see mcnn/train/trainer.hpp. Read top-down: fit() checks the inputs, opens the run (new or
// resumed), runs the epochs (train_epoch, then evaluate and checkpoint), and finishes the run
// (final report, metrics.json). RunFolder holds everything written to disk.
#include "mcnn/train/trainer.hpp"

#include <omp.h>

#include <cctype>
#include <chrono>
#include <cmath>
#include <exception>
#include <fstream>
#include <numeric>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "mcnn/nn/summary.hpp"
#include "mcnn/ops/elementwise.hpp"
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

/// What a checkpoint holds (save_checkpoint, and rank 0's state sent to the other ranks): the
/// parameters, buffers and optimiser state, and `metadata` with the format and model name.
TensorFile checkpoint_file(Module<float>& model, Optimizer<float>* optimizer, const std::string& model_name,
                           const std::map<std::string, std::string>& metadata) {
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
    return file;
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

/// Data-parallel training cuts every batch into ranks x shards parts of at least one row each.
/// Returns the rows of the largest part (what one forward and backward holds).
std::uint64_t check_parts(const data::Dataset& train, const FitOptions& o) {
    const DataParallel& par = o.parallel;
    if (par.shards < 1) fail("fit: shards must be >= 1, got {}", par.shards);
    const auto parts = static_cast<std::size_t>(par.ranks()) * static_cast<std::size_t>(par.shards);
    const auto batch = static_cast<std::size_t>(o.batch);
    const std::string split = fmt::format("{} part{} ({} process{} x {} shard{})", parts, parts == 1 ? "" : "s", par.ranks(),
                                          par.ranks() == 1 ? "" : "es", par.shards, par.shards == 1 ? "" : "s");
    if (batch < parts) fail("fit: batch {} cannot be cut into {}: each part needs a row", batch, split);
    const std::size_t last = train.size() % batch, batches = (train.size() + batch - 1) / batch;
    const bool last_used = o.max_batches == 0 || o.max_batches >= batches;
    if (last != 0 && last < parts && last_used)
        fail("fit: the last batch of each epoch holds {} examples ({} % {}), too few to cut into {}: choose another batch "
             "size or number of processes", last, train.size(), batch, split);
    return (batch + parts - 1) / parts;
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
    const std::uint64_t part = check_parts(train, o);
    const std::uint64_t floats = memory::recorded_floats_per_example(model, train.example_shape());
    memory::check_fits(memory::training_step_bytes(floats, part), part, memory::available());
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

/// The options as rank `rank` of a data-parallel run applies them: rank 0 writes the run folder
/// and prints; the others do neither (they take rank 0's state, see share_state).
FitOptions for_rank(const FitOptions& o) {
    FitOptions mine = o;
    if (o.parallel.rank() != 0) {
        mine.run_dir.clear();
        mine.out = nullptr;
        mine.plots = false;
    }
    return mine;
}

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

    Tensor<float> images;          // this process's part of the batch, and its labels
    std::vector<int> labels;
    std::vector<float> gradients;  // the parameters' gradients, flattened: summed over parts and ranks

    Run(Module<float>& m, Optimizer<float>& opt, const data::Dataset& t, const data::Dataset& e, const FitOptions& options)
        : model(m), optimizer(opt), train(t), eval(e), o(for_rank(options)), progress(o.out), folder(o, progress) {
        if (o.title.empty()) o.title = fmt::format("{}, {}, batch {}", o.model_name, optimizer.describe(), o.batch);
    }

    /// Saves the run after `epochs_done` epochs and `batch_in_epoch` batches of the next (0 at an
    /// epoch's end; the report window is saved with it, so a resumed run logs the same rows).
    void checkpoint(int epochs_done, std::size_t batch_in_epoch) {
        if (!folder.enabled()) return;
        refuse_non_finite(batch_in_epoch ? fmt::format("in epoch {}", epochs_done + 1) : fmt::format("after epoch {}", epochs_done));
        try {
            save_checkpoint(folder.checkpoint(), model, &optimizer, o.model_name, progress_metadata(epochs_done, batch_in_epoch));
        } catch (const Error& e) {
            fail("{}\nThe checkpoint was not saved; {}", e.what(),
                 last_good.empty() ? "there is none from before" : fmt::format("the last one, {}, is left as it was", last_good));
        }
        last_good = fmt::format("{} ({})", folder.checkpoint().string(), point(epochs_done, batch_in_epoch, result.steps));
    }

    /// The checkpoint's metadata: the progress after `epochs_done` epochs and `batch_in_epoch`
    /// batches of the next, with the report window when within an epoch.
    std::map<std::string, std::string> progress_metadata(int epochs_done, std::size_t batch_in_epoch) const {
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
        return meta;
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

    bool leader() const { return o.parallel.rank() == 0; }
    bool distributed() const { return o.parallel.ranks() > 1; }

    /// The stop signal received (0: none); in a data-parallel run the ranks agree on it (each call
    /// is collective), so that they all stop after the same step.
    int stop_signal() {
        const int s = signals ? signals->received() : 0;
        if (!distributed()) return s;
        double agreed = s;
        o.parallel.comm->allreduce_max(&agreed, 1);
        return static_cast<int>(agreed);
    }

    /// Adds the parameters' gradients of the part just computed to `gradients` (the first part's
    /// replace them): b0, then b0 + b1, ... the order an ordered all-reduce sums the ranks' in.
    void add_part_gradients(bool first) {
        std::size_t n = 0;
        for (Parameter<float>* p : model.parameters()) n += p->grad.numel();
        gradients.resize(n);
        float* out = gradients.data();
        for (Parameter<float>* p : model.parameters()) {
            const float* g = p->grad.data();
            const std::size_t count = p->grad.numel();
            if (first)
                std::copy(g, g + count, out);
            else
                for (std::size_t i = 0; i < count; ++i) out[i] += g[i];
            out += count;
        }
    }

    /// Sums `gradients` over the ranks and puts them in the parameters' gradients.
    void sum_gradients() {
        if (distributed()) {
            const auto start = Clock::now();
            o.parallel.comm->allreduce_sum(gradients.data(), gradients.size(), o.parallel.reduction);
            result.allreduce_seconds += seconds_since(start);
            result.allreduce_bytes += static_cast<double>(gradients.size() * sizeof(float));
        }
        const float* in = gradients.data();
        for (Parameter<float>* p : model.parameters()) {
            std::copy(in, in + p->grad.numel(), p->grad.data());
            in += p->grad.numel();
        }
    }
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

/// The progress a checkpoint (`ckpt` in messages) records: epochs and steps done, images, time,
/// and the place in the epoch with its report window.
void take_progress(Run& run, const std::map<std::string, std::string>& meta, const fs::path& ckpt) {
    const run_files::SavedProgress p = run_files::saved_progress(ckpt, meta, run.o, run.batches);
    run.first_epoch = p.epochs_done;
    run.result.steps = p.step;
    run.result.train_images = p.images;
    run.result.train_seconds = p.train_seconds;
    read_position_in_epoch(run, meta, ckpt);
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

/// Opens the run on this process: a new one (data-dependent initialisation, the run folder's first
/// files) or a resumed one (the checkpoint read, checked and put in place).
void open_run_here(Run& run) {
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
    take_progress(run, file.metadata, ckpt);
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

/// A data-parallel run starts from rank 0's state: its parameters, buffers, optimiser state and
/// progress, sent to the others as the bytes of a checkpoint and taken in as a resume takes one.
/// So every rank starts from the same weights, whether the run is new or resumed, at any N.
void share_state(Run& run) {
    const fs::path name = "rank 0's state";
    std::string bytes;
    if (run.leader()) {
        const TensorFile file =
            checkpoint_file(run.model, &run.optimizer, run.o.model_name, run.progress_metadata(run.first_epoch, run.first_batch));
        bytes = serialize_safetensors(file, name.string());
    }
    run.o.parallel.comm->broadcast(bytes, 0);
    if (run.leader()) return;
    const TensorFile file =
        run_files::checked_checkpoint(parse_safetensors(bytes, name.string()), name, run.model, &run.optimizer, run.o.model_name);
    take_progress(run, file.metadata, name);
    run_files::put_in_place(file, run.model, &run.optimizer);
}

void open_run(Run& run) {
    if (run.leader()) open_run_here(run);
    if (run.distributed()) share_state(run);
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

/// Rows [begin, begin + count) of a batch of `rows`: part `part` of `parts` (distributed.hpp).
struct PartRows {
    std::size_t begin = 0, count = 0;
};

PartRows part_rows(std::size_t rows, std::size_t part, std::size_t parts) {
    const std::size_t begin = rows * part / parts, end = rows * (part + 1) / parts;
    return {begin, end - begin};
}

/// One optimiser step on the batch of dataset examples `batch` (epoch `epoch`); returns the batch's
/// mean loss and adds its right predictions to `w`. One process with one shard computes the batch
/// in one forward and backward; otherwise this process computes its parts one after another, each
/// loss scaled by its share of the batch, and the gradients are summed over parts and ranks.
double train_step(Run& run, Tape<float>& tape, std::span<const std::size_t> batch, int epoch, ReportWindow& w) {
    const auto start = Clock::now();
    const DataParallel& par = run.o.parallel;
    const auto shards = static_cast<std::size_t>(par.shards);
    const std::size_t parts = shards * static_cast<std::size_t>(par.ranks()), rows = batch.size();
    double loss = 0, correct = 0;
    for (std::size_t k = 0; k < shards; ++k) {
        const PartRows r = part_rows(rows, static_cast<std::size_t>(par.rank()) * shards + k, parts);
        const std::size_t* indices = batch.data() + r.begin;
        run.train.fill(indices, r.count, run.images, run.labels);
        if (run.o.augment.enabled()) data::augment_batch(run.o.augment, run.o.seed, epoch, indices, run.images);
        const StepPartScope part({run.distributed() ? par.comm : nullptr, par.reduction, r.begin, k > 0});
        tape.clear();
        tape.set_detect_anomaly(run.o.detect_anomaly);
        const Var<float> logits = run.model.forward(tape.constant(run.images));
        Var<float> part_loss = softmax_cross_entropy(logits, run.labels, run.o.label_smoothing);
        if (parts > 1) part_loss = scale(part_loss, static_cast<double>(r.count) / static_cast<double>(rows));
        run.optimizer.zero_grad();
        tape.backward(part_loss);
        if (parts > 1) run.add_part_gradients(k == 0);
        loss += part_loss.value()[0];
        const std::vector<int> predicted = predictions(logits.value());
        for (std::size_t n = 0; n < run.labels.size(); ++n) correct += predicted[n] == run.labels[n];
    }
    if (parts > 1) run.sum_gradients();
    run.optimizer.set_lr_factor(run.o.schedule.at_step(run.result.steps, static_cast<long>(run.batches)));  // steps done so far
    run.optimizer.step();
    if (run.distributed()) {  // the batch's loss and right predictions, for the reports
        double sums[2] = {loss, correct};
        par.comm->allreduce_sum(sums, 2, Reduction::ordered);
        loss = sums[0];
        correct = sums[1];
    }
    run.result.train_seconds += seconds_since(start);
    w.correct += static_cast<long>(correct);
    return loss;
}

/// Trains epoch `epoch` from batch run.first_batch (0 unless the run was resumed in the middle of
/// this epoch). Returns the batches of the epoch done: fewer than run.batches when a stop signal
/// came (the step in progress is finished first, and its report when one is due).
std::size_t train_epoch(Run& run, data::BatchLoader& loader, int epoch) {
    const std::size_t batches = run.batches, first = std::exchange(run.first_batch, 0);
    loader.start_epoch(epoch);
    run.progress.start(fmt::format("epoch {}/{}", epoch + 1, run.o.epochs), batches, run.o.batch);
    for (std::size_t b = 0; b < first; ++b) loader.advance();  // done before the run was stopped
    Tape<float> tape;
    ReportWindow& w = run.window;
    if (first == 0) w = ReportWindow{};
    double bar_loss = 0;
    for (std::size_t b = first; b < batches; ++b) {
        const std::span<const std::size_t> batch = loader.advance();
        if (batch.empty()) break;
        double l = 0;
        try {
            l = train_step(run, tape, batch, epoch, w);
        } catch (const AnomalyError& e) {
            throw AnomalyError(fmt::format("{}; at epoch {}, batch {} (step {})", e.what(), epoch + 1, b + 1, run.result.steps + 1));
        }
        if (!std::isfinite(l))
            fail("training diverged: loss is {} at epoch {}, batch {} (step {}); {}", l, epoch + 1, b + 1, run.result.steps + 1,
                 run.divergence_details());
        w.loss += l;
        w.images += static_cast<long>(batch.size());
        ++w.batches;
        ++run.result.steps;
        run.result.train_images += static_cast<long>(batch.size());
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

/// `data` evaluated (in the model's current mode); in a data-parallel run each rank evaluates its
/// share and the counts are summed, so every rank gets the whole set's figures.
Evaluation evaluate_shared(Run& run, const data::Dataset& data, Tta tta) {
    if (!run.distributed()) return evaluate(run.model, data, run.o.eval_batch, tta);
    const auto start = Clock::now();
    const auto n = data.size(), ranks = static_cast<std::size_t>(run.o.parallel.ranks()),
               rank = static_cast<std::size_t>(run.o.parallel.rank());
    Evaluation e = evaluate(run.model, data::Subset(data, n * rank / ranks, n * (rank + 1) / ranks), run.o.eval_batch, tta);
    std::vector<double> sums{static_cast<double>(e.count), e.loss * static_cast<double>(e.count)};
    for (const auto& row : e.confusion)
        for (std::size_t c : row) sums.push_back(static_cast<double>(c));
    run.o.parallel.comm->allreduce_sum(sums.data(), sums.size(), Reduction::ordered);
    e.count = static_cast<std::size_t>(sums[0]);
    std::size_t at = 2, correct = 0;
    for (std::size_t t = 0; t < e.confusion.size(); ++t)
        for (std::size_t p = 0; p < e.confusion[t].size(); ++p) {
            e.confusion[t][p] = static_cast<std::size_t>(sums[at++]);
            if (p == t) correct += e.confusion[t][p];
        }
    e.loss = e.count ? sums[1] / static_cast<double>(e.count) : 0;
    e.accuracy = e.count ? 100.0 * static_cast<double>(correct) / static_cast<double>(e.count) : 0;
    e.seconds = seconds_since(start);
    return e;
}

Evaluation evaluate_epoch(Run& run, int epoch) {
    Evaluation ev;
    {
        const EvalModeScope<float> eval_mode(run.model);
        ev = evaluate_shared(run, run.eval, Tta::none);
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
    m["processes"] = r.processes;
    m["shards"] = run.o.parallel.shards;
    if (run.distributed()) {
        m["reduction"] = reduction_name(run.o.parallel.reduction);
        m["allreduce_seconds_per_step"] = r.steps ? r.allreduce_seconds / static_cast<double>(r.steps) : 0.0;
        m["allreduce_bytes_per_step"] = r.steps ? r.allreduce_bytes / static_cast<double>(r.steps) : 0.0;
    }
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
        run.result.test = evaluate_shared(run, *run.o.test, run.o.tta);
        run.folder.add_row({"test", run.o.epochs, run.result.steps, run.result.train_images, run.result.test.loss,
                            run.result.test.accuracy, run.result.test.images_per_second(), run.result.train_seconds,
                            run.optimizer.current_lr()});
    } else {
        const bool none_yet = !last_eval.count, again = none_yet || run.o.tta != Tta::none;
        run.result.test = again ? evaluate_shared(run, run.eval, run.o.tta) : std::move(last_eval);
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
    const std::string set = run.o.test ? "test" : run.o.eval_name;
    std::string Set = set;
    if (!Set.empty()) Set[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(Set[0])));
    run.progress.line(fmt::format("{} accuracy of the network on the {} {} images: {:.2f} %{}", Set, t.count, set, t.accuracy,
                                  run.o.tta == Tta::none ? "" : fmt::format(" (test-time augmentation {})", tta_name(run.o.tta))));
    run.progress.line(format_class_report(t, final_set.class_names()));
    run.progress.line(fmt::format("Training: {} images in {:.1f} s of steps ({:.0f} img/s); this run took {:.1f} s in all",
                                  run.result.train_images, run.result.train_seconds, run.result.train_images_per_second(),
                                  run.result.wall_seconds));
    if (run.distributed() && run.result.steps > 0)
        run.progress.line(fmt::format("Data-parallel: {} processes; the gradients' all-reduce ({}) took {:.1f} ms and {:.2f} MB a step",
                                      run.result.processes, reduction_name(run.o.parallel.reduction),
                                      1e3 * run.result.allreduce_seconds / static_cast<double>(run.result.steps),
                                      run.result.allreduce_bytes / static_cast<double>(run.result.steps) / 1e6));
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
/// they run. Returns false when a signal stopped them (then saved by stop_early) or
/// FitOptions::after_evaluation did (after an epoch's checkpoint). A signal that
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
        const bool evaluated = every > 0 && ((epoch + 1) % every == 0 || epoch + 1 == run.o.epochs);
        if (evaluated) last_eval = evaluate_epoch(run, epoch);
        run.checkpoint(epoch + 1, 0);
        run.folder.redraw();
        if (evaluated && run.o.after_evaluation && !run.o.after_evaluation(epoch + 1, last_eval) && epoch + 1 < run.o.epochs) {
            run.result.stopped_by_caller = true;
            run.result.epochs_done = epoch + 1;
            run.result.log = run.folder.log;
            run.progress.line(fmt::format("Stopped by the caller {}", run.point(epoch + 1, 0, run.result.steps)));
            stopped = true;
            break;
        }
        // After the last epoch's checkpoint the run is as good as done: it finishes.
        if (const int s = run.stop_signal(); s != 0 && epoch + 1 < run.o.epochs) {
            stop_early(run, s, epoch + 1, 0);
            stopped = true;
        }
    }
    run.signals = nullptr;
    return !stopped;
}

TrainResult fit_here(Module<float>& model, Optimizer<float>& optimizer, const data::Dataset& train_data,
                     const data::Dataset& eval_data, const FitOptions& options) {
    const auto wall_start = Clock::now();
    check_inputs(model, train_data, eval_data, options);
    Run run(model, optimizer, train_data, eval_data, options);
    run.result.processes = options.parallel.ranks();
    data::BatchLoader loader(train_data, options.batch, true, options.seed);
    run.batches = options.max_batches ? std::min(options.max_batches, loader.batches_per_epoch()) : loader.batches_per_epoch();
    open_run(run);
    run.progress.line(fmt::format("Training {} on {} examples ({} batches of {} per epoch), {} on {} examples, epochs {}..{}{}",
                                  options.model_name, train_data.size(), run.batches, options.batch, options.eval_name,
                                  eval_data.size(), run.first_epoch + 1, options.epochs,
                                  run.folder.enabled() ? ", run folder " + options.run_dir.string() : ""));
    const DataParallel& par = options.parallel;
    if (par.ranks() > 1 || par.shards > 1)
        run.progress.line(fmt::format("Each batch in {} parts: {} process{} x {} shard{}{}", par.ranks() * par.shards, par.ranks(),
                                      par.ranks() == 1 ? "" : "es", par.shards, par.shards == 1 ? "" : "s",
                                      par.ranks() > 1 ? fmt::format(", {} all-reduce", reduction_name(par.reduction)) : ""));
    model.train();
    Evaluation last_eval;
    if (!run_epochs(run, loader, last_eval)) {
        run.result.wall_seconds = seconds_since(wall_start);
        return run.result;
    }
    finish_run(run, std::move(last_eval), wall_start);
    return run.result;
}

}  // namespace

TrainResult fit(Module<float>& model, Optimizer<float>& optimizer, const data::Dataset& train_data, const data::Dataset& eval_data,
                const FitOptions& options) {
    Communicator* comm = options.parallel.comm;
    if (!comm || comm->size() <= 1) return fit_here(model, optimizer, train_data, eval_data, options);
    // The other ranks would wait for this one in their next all-reduce for ever: end the job.
    try {
        return fit_here(model, optimizer, train_data, eval_data, options);
    } catch (const std::exception& e) {
        comm->abort(fmt::format("fit: error on rank {} of {}: {}", comm->rank(), comm->size(), e.what()));
    } catch (...) {
        comm->abort(fmt::format("fit: error on rank {} of {}: an exception that is not a std::exception", comm->rank(), comm->size()));
    }
    std::terminate();  // not reached: Communicator::abort does not return
}

// ---- checkpoints and logs -------------------------------------------------------------------------

void save_checkpoint(const fs::path& path, Module<float>& model, Optimizer<float>* optimizer, const std::string& model_name,
                     const std::map<std::string, std::string>& metadata) {
    if (const auto bad = first_non_finite(model, optimizer))
        fail("{}: not saved, a checkpoint must hold finite values only: {}", path.string(), bad->str());
    save_safetensors(path, checkpoint_file(model, optimizer, model_name, metadata));
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
