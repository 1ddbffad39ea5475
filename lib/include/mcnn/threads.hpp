#pragma once
// Thread count of the calling thread's OpenMP regions (im2col, col2im, the GEMMs), and how idle
// OpenMP threads wait.
#include <omp.h>

namespace mcnn {

/// Limits the calling thread's OpenMP regions to `threads` while it lives, then restores the
/// previous count. Use it around many tiny forward passes (a numeric gradient check): there a
/// thread barrier costs more than the work, and on a busy machine a barrier can wait a whole
/// scheduler slice.
class ThreadLimit {
public:
    explicit ThreadLimit(int threads) : saved_(omp_get_max_threads()) { omp_set_num_threads(threads); }
    ~ThreadLimit() { omp_set_num_threads(saved_); }
    ThreadLimit(const ThreadLimit&) = delete;
    ThreadLimit& operator=(const ThreadLimit&) = delete;

private:
    int saved_;
};

/// The wait policy the apps run OpenMP with unless the environment chooses one ("passive").
inline constexpr const char* default_openmp_wait_policy = "passive";

/// Whether the environment already says how idle OpenMP threads wait (OMP_WAIT_POLICY or
/// GOMP_SPINCOUNT is set).
bool openmp_wait_policy_chosen();

/// Makes idle OpenMP threads sleep instead of spinning, unless the environment already chooses
/// (openmp_wait_policy_chosen()). By default GCC's OpenMP lets a thread that waits (for the next
/// parallel region, or at a barrier) spin for up to ~300,000 iterations, milliseconds, before it
/// sleeps. On an idle machine that saves a wake-up; when another process holds a core, the
/// spinning thread takes the time its partner needs, and every region then waits a scheduler
/// slice: two-thread training fell from thousands of images/s to ~100. OpenMP reads its settings
/// once, when the program loads, so this sets OMP_WAIT_POLICY=default_openmp_wait_policy and
/// executes the program again (/proc/self/exe, the same `argv`, null-terminated as main's).
/// Call it first in main, before any thread starts. Returns when nothing needed changing or the
/// new execution failed (then the program runs on with OpenMP's own settings).
void use_default_openmp_wait_policy(char** argv);

}  // namespace mcnn
