#include "bench_case.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>

#include <fmt/format.h>

#include "common.hpp"
#include "mcnn/data/cifar10.hpp"
#include "mcnn/ops/loss.hpp"
#include "mcnn/optim/sgd.hpp"
#include "mcnn/train/metrics.hpp"

namespace mcnn::cli::detail {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double peak_rss_mib() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

// The node kinds a step is split into, from the op names the tape records.
std::string kind_of(const std::string& op) {
    if (op == "conv2d") return "conv";
    if (op.starts_with("bias")) return "bias";
    if (op == "relu" || op == "leaky_relu" || op == "tanh" || op == "sigmoid" || op == "gelu") return "activation";
    if (op.ends_with("pool2d")) return "pool";
    if (op == "linear") return "linear";
    if (op == "softmax_cross_entropy") return "loss";
    return "other";
}

// FLOPs of the conv nodes of one forward graph (2 per multiply-add): forward, and backward (dK
// always, dX when the input needs a gradient).
void count_conv_flops(const Tape<float>& tape, BenchTiming& t) {
    for (int id = 0; id < static_cast<int>(tape.size()); ++id) {
        if (std::string(tape.op_name(id)) != "conv2d") continue;
        const std::vector<int>& in = tape.inputs_of(id);
        const Shape k = tape.value_at(in[1]).shape();
        const double per_product = 2.0 * static_cast<double>(tape.value_at(id).numel()) * k[1] * k[2] * k[3];
        t.conv_flops_fwd += per_product;
        t.conv_flops_bwd += per_product * (in[0] >= 0 ? 2 : 1);
    }
}

/// The state of a running case: model, optimiser, batches, the tape of a step and the timings.
class CaseRunner {
public:
    CaseRunner(const BenchCase& c, const data::Dataset& examples)
        : c_(c), rng_(0), model_(checked_model<float>(c.model, rng_, model_info(c.model).input)),
          loader_(examples, c.batch, c.training, 0, true), sgd_(model_->parameters(), SgdOptions{.lr = 0.001, .momentum = 0.9}),
          tape_(c.training ? Tape<float>::Mode::train : Tape<float>::Mode::inference) {
        if (loader_.batches_per_epoch() == 0)
            fail("bench {}: a batch of {} is more than the {} examples", c.name, c.batch, examples.size());
        model_->train(c.training);  // inference as evaluation runs it: batch norm on running statistics
        next_batch();  // conv FLOPs, from one recorded forward
        Tape<float> probe;
        model_->forward(probe.constant(images_));
        count_conv_flops(probe, timing_);
    }

    void next_batch() {
        if (loader_.next(images_, labels_)) return;
        loader_.start_epoch(++epoch_);
        loader_.next(images_, labels_);
    }

    void step(bool timed) {
        const auto start = Clock::now();
        next_batch();
        const double data_s = seconds_since(start);
        tape_.clear();
        tape_.mark();
        const Var<float> logits = model_->forward(tape_.constant(images_));
        if (c_.training) {
            train_step(logits, timed);
        } else {
            const std::vector<int> predicted = predictions(logits.value());
            if (predicted.size() != labels_.size())
                fail("bench {}: {} predictions for {} labels", c_.name, predicted.size(), labels_.size());
        }
        if (timed) {
            timing_.step_s += seconds_since(start);
            timing_.seconds["data"] += data_s;
            ++timing_.steps;
            timing_.images += static_cast<long>(labels_.size());
        }
    }

    Tape<float>& tape() { return tape_; }
    BenchTiming& timing() { return timing_; }

private:
    void train_step(const Var<float>& logits, bool timed) {
        const Var<float> loss = softmax_cross_entropy(logits, labels_);
        const auto before_zero = Clock::now();
        sgd_.zero_grad();
        double optimiser_s = seconds_since(before_zero);
        const auto before_backward = Clock::now();
        tape_.backward(loss);
        const double backward_s = seconds_since(before_backward);
        const auto before_step = Clock::now();
        sgd_.step();
        optimiser_s += seconds_since(before_step);
        if (!std::isfinite(loss.value()[0])) fail("bench {}: the loss is not finite", c_.name);
        if (timed) {
            timing_.seconds["optimiser"] += optimiser_s;
            timing_.seconds["tape"] += backward_s;  // the nodes' backward times are taken out later
        }
    }

    const BenchCase& c_;
    Rng rng_;
    std::unique_ptr<Module<float>> model_;
    data::BatchLoader loader_;
    Sgd<float> sgd_;
    Tape<float> tape_;
    Tensor<float> images_;
    std::vector<int> labels_;
    BenchTiming timing_;
    int epoch_ = 0;
};

/// Random examples of the model's input shape: two batches' worth.
std::unique_ptr<data::Dataset> random_examples(const BenchCase& c, const ModelInfo& info) {
    Rng rng(1);
    Tensor<float> examples(batch_of(2 * c.batch, info.input));
    for (float& v : examples) v = static_cast<float>(rng.uniform(-1, 1));
    std::vector<int> labels;
    for (int i = 0; i < 2 * c.batch; ++i) labels.push_back(static_cast<int>(rng.below(static_cast<std::uint64_t>(info.classes))));
    return std::make_unique<data::TensorDataset>(std::move(examples), std::move(labels), info.classes);
}

}  // namespace

std::unique_ptr<data::Dataset> bench_data(const BenchCase& c, const std::string& data_dir) {
    const ModelInfo& info = model_info(c.model);
    if (!takes_cifar(info)) {
        fmt::print("{}: random data in memory: model '{}' takes examples of shape {} with {} classes, not CIFAR-10's images\n",
                   c.name, c.model, info.input.str(), info.classes);
        return random_examples(c, info);
    }
    data::Cifar10 cifar = data::load_cifar10(data::find_cifar10(data_dir));
    return std::make_unique<data::CifarDataset>(c.training ? std::move(cifar.train) : std::move(cifar.test),
                                                data::Normalization::notebook());
}

BenchTiming run_case(const BenchCase& c, const data::Dataset& examples, const BenchSettings& settings) {
    CaseRunner runner(c, examples);
    const auto warm_start = Clock::now();
    for (int i = 0; i < settings.warmup || (!settings.fixed_steps && seconds_since(warm_start) < 0.2 * settings.min_seconds); ++i)
        runner.step(false);
    OpProfile profile;
    runner.tape().set_profile(&profile);
    BenchTiming& t = runner.timing();
    const auto timed_start = Clock::now();
    if (settings.fixed_steps)
        while (t.steps < settings.fixed_steps) runner.step(true);
    else
        while (t.steps < 3 || seconds_since(timed_start) < settings.min_seconds) runner.step(true);
    runner.tape().set_profile(nullptr);
    for (const OpProfile::Entry& e : profile.entries) {
        const std::string kind = kind_of(e.op);
        t.seconds[kind + " fwd"] += e.forward_s;
        if (e.backward_calls) {
            t.seconds[kind + " bwd"] += e.backward_s;
            t.seconds["tape"] -= e.backward_s;
        }
    }
    t.random_data = !takes_cifar(model_info(c.model));
    return t;
}

double sgemm_gflops(int n, int reps) {
    Matrix<float> a = Matrix<float>::Random(n, n), b = Matrix<float>::Random(n, n), c(n, n);
    double best = 1e300;
    for (int r = 0; r < reps; ++r) {
        const auto start = Clock::now();
        c.noalias() = a * b;
        best = std::min(best, seconds_since(start));
    }
    if (!std::isfinite(c(0, 0))) fail("sgemm: result is not finite");
    return 2.0 * n * n * static_cast<double>(n) / best / 1e9;
}

namespace {

/// "  data 0.012  conv fwd 0.301 ..." for the screen and " data_ms=0.0120 ..." for the RESULT line.
void split_of_step(const BenchTiming& t, double ms, std::string& split, std::string& kv) {
    static const std::array<const char*, 16> order = {"data",     "conv fwd",   "conv bwd",  "bias fwd",  "bias bwd",      "activation fwd",
                                                      "activation bwd", "pool fwd", "pool bwd", "linear fwd", "linear bwd", "loss fwd",
                                                      "loss bwd", "optimiser",  "tape",      "other fwd"};
    double listed = 0;
    for (const char* k : order) {
        auto it = t.seconds.find(k);
        if (it == t.seconds.end()) continue;
        listed += it->second;
        split += fmt::format("  {} {:.3f}", k, it->second * ms);
        std::string key = k;
        std::replace(key.begin(), key.end(), ' ', '_');
        kv += fmt::format(" {}_ms={:.4f}", key, it->second * ms);
    }
    split += fmt::format("  rest {:.3f}", (t.step_s - listed) * ms);
}

}  // namespace

void print_case(const BenchCase& c, int threads, const BenchTiming& t, double fma_peak_gflops) {
    const double ms = 1e3 / static_cast<double>(t.steps);
    const double img_s = static_cast<double>(t.images) / t.step_s;
    fmt::print("{} ({}, batch {}, {} thread{}{}): {:.0f} img/s, {:.3f} ms per {}, peak RSS {:.0f} MiB\n", c.name,
               c.training ? "training" : "inference", c.batch, threads, threads == 1 ? "" : "s", t.random_data ? ", random data" : "",
               img_s, t.step_s * ms, c.training ? "step" : "batch", peak_rss_mib());
    std::string split, kv;
    split_of_step(t, ms, split, kv);
    fmt::print("  ms per step:{}\n", split);
    const double fwd_s = t.seconds.count("conv fwd") ? t.seconds.at("conv fwd") : 0;
    const double bwd_s = t.seconds.count("conv bwd") ? t.seconds.at("conv bwd") : 0;
    const double gf_fwd = fwd_s > 0 ? t.conv_flops_fwd * static_cast<double>(t.steps) / fwd_s / 1e9 : 0;
    const double gf_bwd = bwd_s > 0 ? t.conv_flops_bwd * static_cast<double>(t.steps) / bwd_s / 1e9 : 0;
    const double pct_fwd = 100 * gf_fwd / fma_peak_gflops, pct_bwd = 100 * gf_bwd / fma_peak_gflops;
    fmt::print("  conv layers: {:.1f} GFLOP/s forward ({:.0f} % of the FMA peak){}; FMA peak {:.1f} GFLOP/s for {} core{}\n", gf_fwd,
               pct_fwd, c.training ? fmt::format(", {:.1f} GFLOP/s backward ({:.0f} %)", gf_bwd, pct_bwd) : "", fma_peak_gflops,
               threads, threads == 1 ? "" : "s");
    fmt::print("RESULT case={} threads={} batch={} img_per_s={:.1f} ms_per_step={:.4f} rss_mib={:.1f} conv_fwd_gflops={:.2f} "
               "conv_bwd_gflops={:.2f} fma_peak_gflops={:.2f} conv_fwd_peak_pct={:.1f} conv_bwd_peak_pct={:.1f}{} data={}\n",
               c.name, threads, c.batch, img_s, t.step_s * ms, peak_rss_mib(), gf_fwd, gf_bwd, fma_peak_gflops, pct_fwd, pct_bwd, kv,
               t.random_data ? "random" : "cifar10");
    std::fflush(stdout);
}

}  // namespace mcnn::cli::detail
