#pragma once
// Thread count of the calling thread's OpenMP regions (im2col, col2im, Eigen's GEMM).
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

}  // namespace mcnn
