// bench: the speed benchmark: training steps and inference of any registered model, with the time
// of a step split by node kind, the conv layers' GFLOP/s and the peak memory (RSS).
//
//   bench                                   the default cases, 1 and 2 threads, each in its own process
//   bench --case simple-b4 --threads 2      one case, in this process
//   bench --case tiny-b64 --case tiny-infer-b500   a training and an inference case of model "tiny"
//   bench --case sgemm                      Eigen's single-precision GEMM on large square matrices
//   bench --case fma-peak                   the cores' single-precision FMA peak (fma_peak.hpp)
//
// A case is <model>-b<batch> (training) or <model>-infer-b<batch> (inference), read from the right
// so that model names may hold '-'. A training step is what train does per batch: fetch and
// normalise the batch, record the forward graph, softmax cross-entropy, backward, SGD step (lr
// 0.001, momentum 0.9). Inference is a forward pass on an inference tape plus the arg-max. A model
// that takes CIFAR-10's images runs on them; any other on random examples in memory. Each case
// warms up, then runs for at least --seconds; images/s counts the whole step, data included. The
// split of a step: "data" (fetch and normalise the batch), "<kind> fwd" / "<kind> bwd" (the nodes
// of each kind: conv, bias, activation, pool, linear, loss, other), "optimiser" (zero_grad + step),
// "tape" (the backward pass's own work outside the nodes: allocating and zeroing gradient buffers)
// and "rest" (what none of these covers). Every line starting "RESULT" is one case, as key=value
// pairs, for scripts (bench/compare.py). A model case also measures one core's FMA peak and gives
// its conv layers' GFLOP/s as a percentage of that peak times its thread count.
#include <omp.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>

#include <fmt/format.h>

#include "bench_case.hpp"
#include "common.hpp"
#include "fma_peak.hpp"
#include "mcnn/cli.hpp"

namespace mcnn::cli {
namespace {

const std::vector<std::string>& default_cases() {
    static const std::vector<std::string> names = {"fma-peak", "simple-b4", "simple-b64", "tuned-b4", "tuned-b64", "manual-b4",
                                                   "simple-infer-b500", "tuned-infer-b500", "sgemm"};
    return names;
}

bool is_registered(const std::string& name) {
    const std::vector<std::string> names = model_names();
    return std::find(names.begin(), names.end(), name) != names.end();
}

/// The case called `name`: "<model>-b<batch>" or "<model>-infer-b<batch>"; throws naming it.
detail::BenchCase parse_case(const std::string& name) {
    const std::size_t b = name.rfind("-b");
    int batch = 0;
    if (b != std::string::npos && b > 0 && b + 2 < name.size()) {
        const char* end = name.data() + name.size();
        const auto [p, ec] = std::from_chars(name.data() + b + 2, end, batch);
        if (ec != std::errc() || p != end) batch = 0;
    }
    if (batch < 1)
        fail("unknown case '{}'; known cases: {}, or <model>-b<batch> (training) and <model>-infer-b<batch> (inference) "
             "for a registered model: {}",
             name, fmt::join(default_cases(), ", "), detail::model_list());
    std::string model = name.substr(0, b);
    bool training = true;
    const std::string infer = "-infer";
    if (model.ends_with(infer) && is_registered(model.substr(0, model.size() - infer.size()))) {
        model.resize(model.size() - infer.size());
        training = false;
    }
    try {
        (void)model_info(model);
    } catch (const Error& e) {
        fail("case '{}': {}", name, e.what());
    }
    return {name, model, batch, training};
}

std::string quote(const std::string& s) {
    std::string q = "'";
    for (char ch : s) q += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
    return q + "'";
}

struct BenchFlags {
    std::vector<std::string> names;
    std::vector<int> thread_counts = {1, 2};
    detail::BenchSettings settings;
    int sgemm_size = 2048;
    std::string data_dir;
};

/// One process per (case, threads): each gets its own peak RSS and a cold start.
int run_in_processes(const BenchFlags& f, const std::vector<std::string>& command_words) {
    std::string self = quote(std::filesystem::read_symlink("/proc/self/exe").string());
    for (const std::string& w : command_words) self += " " + quote(w);
    int failures = 0;
    for (const std::string& n : f.names)
        for (int threads : f.thread_counts) {
            std::string cmd = fmt::format("{} --case {} --threads {} --seconds {} --steps {} --warmup {} --sgemm-size {}", self,
                                          quote(n), threads, f.settings.min_seconds, f.settings.fixed_steps, f.settings.warmup,
                                          f.sgemm_size);
            if (!f.data_dir.empty()) cmd += " --data " + quote(f.data_dir);
            std::fflush(stdout);
            if (std::system(cmd.c_str()) != 0) ++failures;
        }
    if (failures) fail("{} case(s) failed", failures);
    return 0;
}

/// The fma-peak case: prints the peak of `threads` threads and its RESULT line.
void print_fma_peak(int threads) {
    const detail::FmaPeak p = detail::measure_fma_peak(detail::best_fma_isa(), threads, 0.2, 5);
    fmt::print("fma peak ({}, independent chains, {} thread{}): {:.1f} GFLOP/s single precision\n", isa_name(p.isa), threads,
               threads == 1 ? "" : "s", p.gflops);
    fmt::print("RESULT case=fma-peak threads={} isa={} gflops={:.2f}\n", threads, isa_name(p.isa), p.gflops);
}

/// Non-case names: "sgemm" and "fma-peak".
bool is_special(const std::string& name) { return name == "sgemm" || name == "fma-peak"; }

int run_one(const BenchFlags& f) {
    const std::string& name = f.names[0];
    const int threads = detail::capped_threads(f.thread_counts[0], "bench");
    omp_set_num_threads(threads);
    if (name == "fma-peak") {
        print_fma_peak(threads);
        return 0;
    }
    if (name == "sgemm") {
        const double gflops = detail::sgemm_gflops(f.sgemm_size, 5);
        fmt::print("sgemm (Eigen, {0}x{0} float, {1} thread{2}): {3:.1f} GFLOP/s\n", f.sgemm_size, threads, threads == 1 ? "" : "s",
                   gflops);
        fmt::print("RESULT case=sgemm threads={} size={} gflops={:.2f}\n", threads, f.sgemm_size, gflops);
        return 0;
    }
    const detail::BenchCase c = parse_case(name);
    Rng probe_rng(0);  // a wrong model fails here, naming itself, before the data is read
    (void)detail::checked_model<float>(c.model, probe_rng, model_info(c.model).input);
    const std::unique_ptr<data::Dataset> examples = detail::bench_data(c, f.data_dir);
    const detail::BenchTiming timing = detail::run_case(c, *examples, f.settings);
    // The peak of `threads` cores: one core's, measured alone, times the threads (a peak measured
    // on all threads at once would drop whenever another process holds a core).
    const double peak = threads * detail::measure_fma_peak(detail::best_fma_isa(), 1, 0.05, 3).gflops;
    detail::print_case(c, threads, timing, peak);
    return 0;
}

void add_options(CLI::App& app, BenchFlags& f) {
    app.add_option("--case", f.names,
                   fmt::format("cases to run (default: {}); any <model>-b<batch> (training) or <model>-infer-b<batch> "
                               "(inference) of a registered model: {}",
                               fmt::join(default_cases(), ", "), detail::model_list()));
    detail::add_integer_list_flag(app, "--threads", f.thread_counts,
                                  "thread counts to run each case with (more than the cores are capped to them, with a notice)",
                                  1, std::numeric_limits<int>::max());
    detail::add_number_flag(app, "--seconds", f.settings.min_seconds, "timed seconds per case (at least)",
                            {.min = 0, .above_min = true});
    detail::add_integer_flag(app, "--steps", f.settings.fixed_steps,
                             "timed steps per case instead of --seconds (for whole-process timing; 0: use --seconds)", 0);
    detail::add_integer_flag(app, "--warmup", f.settings.warmup, "untimed steps first (at least)", 0);
    detail::add_integer_flag(app, "--sgemm-size", f.sgemm_size, "matrix size of the sgemm case", 1, 16384);
    app.add_option("--data", f.data_dir, "CIFAR-10 folder (else the train command's search path)");
    app.footer(detail::model_table());
}

}  // namespace

namespace detail {

int bench(int argc, char** argv, const std::vector<std::string>& command_words) {
    CLI::App app{"ManualCNN speed benchmark: training steps and inference per model, split by node kind.", argv[0]};
    BenchFlags f;
    add_options(app, f);
    CLI11_PARSE(app, argc, argv);
    keep_freed_memory();  // as train does
    return run_reporting_errors("bench", 1, [&] {
        if (f.names.empty()) f.names = default_cases();
        for (const std::string& n : f.names)
            if (!is_special(n)) (void)parse_case(n);
        if (f.names.size() * f.thread_counts.size() > 1) return run_in_processes(f, command_words);
        return run_one(f);
    });
}

}  // namespace detail

int bench(int argc, char** argv) {
    return detail::bench(argc, argv, {});
}

}  // namespace mcnn::cli
