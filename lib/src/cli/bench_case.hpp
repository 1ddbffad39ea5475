#pragma once
// One case of the bench command (bench.cpp): its data, its timed steps, its report. Private.
#include <map>
#include <memory>
#include <string>

#include "mcnn/data/dataset.hpp"

namespace mcnn::cli::detail {

struct BenchCase {
    std::string name, model;  // "tuned-infer-b500", "tuned"
    int batch = 0;
    bool training = true;     // a training step, or inference
};

struct BenchSettings {
    double min_seconds = 3;  // timed seconds (at least), unless fixed_steps
    int warmup = 5;          // untimed steps first (at least)
    long fixed_steps = 0;    // timed steps instead of min_seconds (0: use min_seconds)
};

/// Seconds of one case's timed steps, split by node kind, and the conv FLOPs of a step.
struct BenchTiming {
    std::map<std::string, double> seconds;  // "conv fwd", "conv bwd", ..., "data", "optimiser", "tape"
    double step_s = 0;                      // whole steps, everything included
    long steps = 0, images = 0;
    double conv_flops_fwd = 0, conv_flops_bwd = 0;  // per step
    bool random_data = false;
};

/// The examples of case `c`: CIFAR-10's training (or, for inference, test) set from `data_dir`
/// (else the usual search path) when the model takes CIFAR-10's images; else two batches of random
/// examples of the model's input shape with labels below its class count, saying so.
std::unique_ptr<data::Dataset> bench_data(const BenchCase& c, const std::string& data_dir);

/// Warms up, then times steps of case `c` on `examples` (a profile on the tape splits them by node).
BenchTiming run_case(const BenchCase& c, const data::Dataset& examples, const BenchSettings& settings);

/// Prints the case's speed, the split of a step, the conv GFLOP/s (and their percentage of
/// `fma_peak_gflops`, the FMA peak of the case's threads) and the RESULT line.
void print_case(const BenchCase& c, int threads, const BenchTiming& t, double fma_peak_gflops);

/// Eigen's single-precision GEMM on n x n matrices: the best of `reps`, in GFLOP/s.
double sgemm_gflops(int n, int reps);

}  // namespace mcnn::cli::detail
