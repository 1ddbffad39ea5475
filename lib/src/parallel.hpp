#pragma once
// Splitting a loop between the OpenMP threads, for the nodes whose work is a pass over memory
// (bias, activations, pooling, the optimiser). Small loops stay on the calling thread: a parallel
// region costs a few microseconds, more than a pass over a batch-4 activation.
#include <omp.h>

#include <algorithm>
#include <cstddef>

namespace mcnn::detail {

/// Calls body(begin, end) on contiguous pieces of [0, n) that together cover it once: one piece
/// per thread when n >= min_parallel (and we are not already inside a parallel region), else one
/// call with the whole range. Pieces depend only on n and the thread count.
template <class Body>
void parallel_ranges(std::ptrdiff_t n, std::ptrdiff_t min_parallel, Body&& body) {
    const int threads = n >= min_parallel && !omp_in_parallel() ? std::min<std::ptrdiff_t>(omp_get_max_threads(), n) : 1;
    if (threads <= 1) {
        if (n > 0) body(std::ptrdiff_t(0), n);
        return;
    }
#pragma omp parallel num_threads(threads)
    {
        const std::ptrdiff_t t = omp_get_thread_num(), count = omp_get_num_threads();
        const std::ptrdiff_t begin = n * t / count, end = n * (t + 1) / count;
        if (begin < end) body(begin, end);
    }
}

/// Elements below which a pass over memory is not worth splitting.
constexpr std::ptrdiff_t min_parallel_elements = 1 << 16;

}  // namespace mcnn::detail
