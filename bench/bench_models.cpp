// The speed benchmark: training steps and inference of the notebook's models on CIFAR-10, with the
// time of a step split by node kind, the conv layers' GFLOP/s and the peak memory (RSS).
//
//   bench                                   every case, 1 and 2 threads, each in its own process
//   bench --case simple-b4 --threads 2      one case, in this process
//   bench --case sgemm                      Eigen's single-precision GEMM on large square matrices
//
// A training step is what the train app does per batch: fetch and normalise the batch, record the
// forward graph, softmax cross-entropy, backward, SGD step (lr 0.001, momentum 0.9). Inference is
// a forward pass on an inference tape plus the arg-max. Each case warms up, then runs for at least
// --seconds; images/s counts the whole step, data included. The split of a step: "data" (fetch
// and normalise the batch), "<kind> fwd" / "<kind> bwd" (the nodes of each kind: conv, bias,
// activation, pool, linear, loss, other), "optimiser" (zero_grad + step), "tape" (the backward
// pass's own work outside the nodes: allocating and zeroing gradient buffers) and "rest" (what
// none of these covers). Every line starting "RESULT" is one case, as key=value pairs, for
// scripts (bench/compare.py).
#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <map>

#include <omp.h>
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "mcnn/data/cifar10.hpp"
#include "mcnn/nn/registry.hpp"
#include "mcnn/ops/loss.hpp"
#include "mcnn/optim/sgd.hpp"
#include "mcnn/train/metrics.hpp"

using namespace mcnn;

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct Case {
    std::string name, model;
    int batch;
    bool train;
};

const std::vector<Case>& all_cases() {
    static const std::vector<Case> cases = {
        {"simple-b4", "simple", 4, true},        {"simple-b64", "simple", 64, true},
        {"tuned-b4", "tuned", 4, true},          {"tuned-b64", "tuned", 64, true},
        {"manual-b4", "manual", 4, true},        {"simple-infer-b500", "simple", 500, false},
        {"tuned-infer-b500", "tuned", 500, false},
    };
    return cases;
}

double peak_rss_mib() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

// The node kinds a step is split into, from the op names the tape records.
std::string kind_of(const std::string& op) {
    if (op == "conv2d") return "conv";
    if (op.starts_with("bias")) return "bias";
    if (op == "relu" || op == "leaky_relu" || op == "tanh" || op == "sigmoid") return "activation";
    if (op.starts_with("max_pool")) return "pool";
    if (op == "linear") return "linear";
    if (op == "softmax_cross_entropy") return "loss";
    return "other";
}

struct Timing {
    std::map<std::string, double> seconds;  // "conv fwd", "conv bwd", ..., "data", "optimiser", "tape"
    double step_s = 0;                      // whole steps, everything included
    long steps = 0, images = 0;
    double conv_flops_fwd = 0, conv_flops_bwd = 0;  // per step
};

// FLOPs of the conv nodes of one forward graph (2 per multiply-add): forward, and backward (dK
// always, dX when the input needs a gradient).
void count_conv_flops(const Tape<float>& tape, Timing& t) {
    for (int id = 0; id < static_cast<int>(tape.size()); ++id) {
        if (std::string(tape.op_name(id)) != "conv2d") continue;
        const std::vector<int>& in = tape.inputs_of(id);
        const Shape k = tape.value_at(in[1]).shape();
        const double per_product = 2.0 * static_cast<double>(tape.value_at(id).numel()) * k[1] * k[2] * k[3];
        t.conv_flops_fwd += per_product;
        t.conv_flops_bwd += per_product * (in[0] >= 0 ? 2 : 1);
    }
}

Timing run_case(const Case& c, const data::Cifar10& cifar, double min_seconds, int warmup, long fixed_steps) {
    Rng rng(0);
    auto model = make_model<float>(c.model, rng);
    const data::CifarDataset set(c.train ? cifar.train : cifar.test, data::Normalization::notebook());
    data::BatchLoader loader(set, c.batch, c.train, 0, true);
    Sgd<float> sgd(model->parameters(), SgdOptions{.lr = 0.001, .momentum = 0.9});
    Tensor<float> images;
    std::vector<int> labels;
    Timing t;
    OpProfile profile;
    Tape<float> tape(c.train ? Tape<float>::Mode::train : Tape<float>::Mode::inference);
    int epoch = 0;
    auto next_batch = [&] {
        if (loader.next(images, labels)) return;
        loader.start_epoch(++epoch);
        loader.next(images, labels);
    };
    {  // conv FLOPs, from one recorded forward
        next_batch();
        Tape<float> probe;
        model->forward(probe.constant(images));
        count_conv_flops(probe, t);
    }
    auto step = [&](bool timed) {
        const auto start = Clock::now();
        next_batch();
        const double data_s = seconds_since(start);
        tape.clear();
        tape.mark();
        const Var<float> logits = model->forward(tape.constant(images));
        if (c.train) {
            const Var<float> loss = softmax_cross_entropy(logits, labels);
            const auto before_zero = Clock::now();
            sgd.zero_grad();
            double optimiser_s = seconds_since(before_zero);
            const auto before_backward = Clock::now();
            tape.backward(loss);
            const double backward_s = seconds_since(before_backward);
            const auto before_step = Clock::now();
            sgd.step();
            optimiser_s += seconds_since(before_step);
            if (!std::isfinite(loss.value()[0])) fail("bench {}: the loss is not finite", c.name);
            if (timed) {
                t.seconds["optimiser"] += optimiser_s;
                t.seconds["tape"] += backward_s;  // the nodes' backward times are taken out below
            }
        } else {
            const std::vector<int> predicted = predictions(logits.value());
            if (predicted.size() != labels.size()) fail("bench {}: {} predictions for {} labels", c.name, predicted.size(), labels.size());
        }
        if (timed) {
            t.step_s += seconds_since(start);
            t.seconds["data"] += data_s;
            ++t.steps;
            t.images += static_cast<long>(labels.size());
        }
    };
    const auto warm_start = Clock::now();
    for (int i = 0; i < warmup || (!fixed_steps && seconds_since(warm_start) < 0.2 * min_seconds); ++i) step(false);
    tape.set_profile(&profile);
    const auto timed_start = Clock::now();
    if (fixed_steps)
        while (t.steps < fixed_steps) step(true);
    else
        while (t.steps < 3 || seconds_since(timed_start) < min_seconds) step(true);
    tape.set_profile(nullptr);
    for (const OpProfile::Entry& e : profile.entries) {
        const std::string kind = kind_of(e.op);
        t.seconds[kind + " fwd"] += e.forward_s;
        if (e.backward_calls) {
            t.seconds[kind + " bwd"] += e.backward_s;
            t.seconds["tape"] -= e.backward_s;
        }
    }
    return t;
}

// Eigen's single-precision GEMM on n x n matrices: the best of `reps`, in GFLOP/s.
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

std::string quote(const std::string& s) {
    std::string q = "'";
    for (char ch : s) q += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
    return q + "'";
}

void print_case(const Case& c, int threads, const Timing& t) {
    const double ms = 1e3 / static_cast<double>(t.steps);
    const double img_s = static_cast<double>(t.images) / t.step_s;
    fmt::print("{} ({}, batch {}, {} thread{}): {:.0f} img/s, {:.3f} ms per {}, peak RSS {:.0f} MiB\n", c.name,
               c.train ? "training" : "inference", c.batch, threads, threads == 1 ? "" : "s", img_s, t.step_s * ms,
               c.train ? "step" : "batch", peak_rss_mib());
    static const std::array<const char*, 16> order = {"data",     "conv fwd",   "conv bwd",  "bias fwd",  "bias bwd",      "activation fwd",
                                                      "activation bwd", "pool fwd", "pool bwd", "linear fwd", "linear bwd", "loss fwd",
                                                      "loss bwd", "optimiser",  "tape",      "other fwd"};
    std::string split, kv;
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
    fmt::print("  ms per step:{}\n", split);
    const double fwd_s = t.seconds.count("conv fwd") ? t.seconds.at("conv fwd") : 0;
    const double bwd_s = t.seconds.count("conv bwd") ? t.seconds.at("conv bwd") : 0;
    const double gf_fwd = fwd_s > 0 ? t.conv_flops_fwd * static_cast<double>(t.steps) / fwd_s / 1e9 : 0;
    const double gf_bwd = bwd_s > 0 ? t.conv_flops_bwd * static_cast<double>(t.steps) / bwd_s / 1e9 : 0;
    fmt::print("  conv layers: {:.1f} GFLOP/s forward{}\n", gf_fwd, c.train ? fmt::format(", {:.1f} GFLOP/s backward", gf_bwd) : "");
    fmt::print("RESULT case={} threads={} batch={} img_per_s={:.1f} ms_per_step={:.4f} rss_mib={:.1f} conv_fwd_gflops={:.2f} "
               "conv_bwd_gflops={:.2f}{}\n",
               c.name, threads, c.batch, img_s, t.step_s * ms, peak_rss_mib(), gf_fwd, gf_bwd, kv);
    std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"ManualCNN speed benchmark: training steps and inference per model, split by node kind."};
    std::vector<std::string> names;
    std::vector<int> thread_counts = {1, 2};
    double seconds = 3;
    int warmup = 5, sgemm_size = 2048;
    long steps = 0;
    std::string data_dir;
    std::string known;
    for (const Case& c : all_cases()) known += c.name + ", ";
    app.add_option("--case", names, "cases to run (default: all): " + known + "sgemm");
    app.add_option("--threads", thread_counts, "thread counts to run each case with")->capture_default_str()->check(CLI::PositiveNumber);
    app.add_option("--seconds", seconds, "timed seconds per case (at least)")->capture_default_str()->check(CLI::PositiveNumber);
    app.add_option("--steps", steps, "timed steps per case instead of --seconds (for whole-process timing)")->check(CLI::NonNegativeNumber);
    app.add_option("--warmup", warmup, "untimed steps first (at least)")->capture_default_str()->check(CLI::NonNegativeNumber);
    app.add_option("--sgemm-size", sgemm_size, "matrix size of the sgemm case")->capture_default_str()->check(CLI::PositiveNumber);
    app.add_option("--data", data_dir, "CIFAR-10 folder (else the train app's search path)");
    CLI11_PARSE(app, argc, argv);

    // As the train app: keep freed blocks for the next step instead of returning them to the kernel.
    mallopt(M_MMAP_THRESHOLD, 512 << 20);
    mallopt(M_TRIM_THRESHOLD, 1024 << 20);
    try {
        if (names.empty()) {
            for (const Case& c : all_cases()) names.push_back(c.name);
            names.push_back("sgemm");
        }
        for (const std::string& n : names)
            if (n != "sgemm" && std::none_of(all_cases().begin(), all_cases().end(), [&](const Case& c) { return c.name == n; }))
                fail("unknown case '{}'; known cases: {}sgemm", n, known);

        if (names.size() * thread_counts.size() > 1) {
            // One process per (case, threads): each gets its own peak RSS and a cold start.
            const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
            int failures = 0;
            for (const std::string& n : names)
                for (int threads : thread_counts) {
                    std::string cmd = fmt::format("{} --case {} --threads {} --seconds {} --steps {} --warmup {} --sgemm-size {}", quote(self), n,
                                                  threads, seconds, steps, warmup, sgemm_size);
                    if (!data_dir.empty()) cmd += " --data " + quote(data_dir);
                    std::fflush(stdout);
                    if (std::system(cmd.c_str()) != 0) ++failures;
                }
            if (failures) fail("{} case(s) failed", failures);
            return 0;
        }

        const std::string& name = names[0];
        const int threads = thread_counts[0];
        omp_set_num_threads(threads);
        if (name == "sgemm") {
            const double gflops = sgemm_gflops(sgemm_size, 5);
            fmt::print("sgemm (Eigen, {0}x{0} float, {1} thread{2}): {3:.1f} GFLOP/s\n", sgemm_size, threads, threads == 1 ? "" : "s", gflops);
            fmt::print("RESULT case=sgemm threads={} size={} gflops={:.2f}\n", threads, sgemm_size, gflops);
            return 0;
        }
        const Case& c = *std::find_if(all_cases().begin(), all_cases().end(), [&](const Case& k) { return k.name == name; });
        const data::Cifar10 cifar = data::load_cifar10(data::find_cifar10(data_dir));
        print_case(c, threads, run_case(c, cifar, seconds, warmup, steps));
        return 0;
    } catch (const Error& e) {
        fmt::print(stderr, "bench: error: {}\n", e.what());
        return 1;
    }
}
