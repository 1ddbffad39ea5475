#pragma once
// The physical limit of the arithmetic: how many single-precision FMA FLOPs per second the cores
// sustain when nothing but independent FMA chains runs (bench --case fma-peak). Private.

namespace mcnn::cli::detail {

/// The instruction sets the FMA peak can be measured with, widest first.
enum class FmaIsa { avx512f, avx2_fma, portable };

/// "avx512f", "avx2+fma" or "portable".
const char* isa_name(FmaIsa isa);

/// The widest FmaIsa this CPU runs (asked at run time, so a build without -march=native still
/// measures with AVX-512 where the CPU has it).
FmaIsa best_fma_isa();

/// One measurement of the peak.
struct FmaPeak {
    double gflops = 0;  // all threads together; 2 FLOPs per lane of each FMA
    FmaIsa isa = FmaIsa::portable;
    int threads = 1;
};

/// Runs many independent FMA chains (enough to hide the FMA latency, all in registers) with
/// `isa` on each of `threads` threads for about `seconds` per repetition, `reps` times; returns the
/// best repetition. Throws mcnn::Error when threads < 1, reps < 1 or seconds <= 0.
FmaPeak measure_fma_peak(FmaIsa isa, int threads, double seconds = 0.1, int reps = 3);

}  // namespace mcnn::cli::detail
