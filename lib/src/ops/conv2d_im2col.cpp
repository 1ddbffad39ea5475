// The im2col path of the conv layer: im2col + GEMM, the same sums as the plain loops
// (conv2d_plain.cpp), a group of images at a time.
//
// For image b, cols_b is (N*F*F) x (Ho*Wo): row (c, u, v), column (oy, ox) holds
// Xp[b, c, oy*S + u, ox*S + v]. A group of g images puts their cols_b side by side, cols_G
// ((N*F*F) x g*Ho*Wo), and dY_G (D x g*Ho*Wo) likewise. Then
//   Y_G    (D x g*Ho*Wo)  = K (D x N*F*F) * cols_G
//   dK    += dY_G * cols_G^T
//   dcols  = K^T * dY_G, and col2im scatters dcols back onto dX's images.
// Groups are as small as keep the GEMM's N at least batched_columns wide (whole images when
// Ho*Wo is that large already): small planes (9x9, 7x7, 3x3) then still fill the GEMM's tiles and
// pay its packing once per group, while cols_G stays small enough for the cache. Working group by
// group lets the backward rebuild cols_G instead of keeping it, and gives threads whole groups:
// one parallel region per call, groups (forward) or chunks of groups (backward) handed to threads
// as they come free (a thread that the machine runs late takes fewer), each with its own scratch.
// Y and dX do not depend on the thread count at all (each element is summed by one thread, in one
// order). Nor does dK: the groups form a fixed number of chunks (dk_chunks, whatever the thread
// count), each chunk sums its groups in order into its own partial (chunk 0 straight into dK),
// and the partials are added to dK in chunk order at the end; threads take whole chunks.
//
// float runs our own SGEMM (kernels/sgemm.hpp, its micro-kernel chosen for the CPU at run time).
// For dK always, and for Y and dX on planes of at most implicit_max_plane outputs, it builds
// neither cols_G nor dcols_G: sgemm packs its panels of cols_G straight from the images and hands
// back dcols_G a tile at a time to be added onto dX (conv2d_columns.hpp). Larger planes, and double
// (the gradient checks, on Eigen's GEMM), build cols_G by im2col and scatter dcols_G by col2im: the
// plain form of the same sums. The tests run both forms in float (small and large planes).
// Y_G and dY_G are never copied: in NCHW image j's columns of them are a D x Ho*Wo block of the
// batch tensor, so sgemm writes Y_G's tiles straight there (C in blocks of columns) and packs
// dY_G's panels straight from there (conv2d_columns.hpp); only planes under blocked_min_tiles GEMM
// tiles wide compute Y_G into a scratch matrix and copy it out. K (forward) and K^T (backward data)
// are packed for the GEMM once per call and shared by the threads. double works an image at a time.
#include <omp.h>

#include <algorithm>
#include <type_traits>

#include "../kernels/sgemm.hpp"
#include "mcnn/ops/correlate2d.hpp"

#include "conv2d_columns.hpp"
#include "conv_gemm.hpp"

namespace mcnn::conv {
namespace {

using detail::gemm;
using detail::scratch;

// Below this many multiply-adds a parallel region costs more than it saves.
constexpr double parallel_min_flops = 2e5;

Dims dims_of(const Shape& x, const Shape& k, const Conv2dOptions& o) {
    const Shape y = output_shape(x, k, o);
    return {x[0], x[1], x[2], x[3], k[0], k[2], o.padding, o.stride, y[2], y[3]};
}

// A group of images is multiplied by one GEMM at least this many columns wide (see above).
constexpr int batched_columns = 512;

// Images per GEMM and the number of GEMMs for a call: groups of `size` images, the last one
// possibly smaller. Depends on the shapes only, never on the thread count.
struct Groups {
    int size, count;
    int first(int g) const { return g * size; }
    int images(int g, int B) const { return std::min(size, B - g * size); }
};
// The backward's chunks of groups: dk_chunks of them (see Chunks below).
constexpr int dk_chunks = 4;

// Groups of at least batched_columns columns; when that makes several groups, their count is
// rounded up to a multiple of dk_chunks (groups a little smaller), so that chunks, and the threads
// that take them, get equal numbers of images (TunedCNN's 9x9 layer at batch 64: 16 groups of 4
// images rather than 13 groups of 5).
Groups groups_of(const Dims& d) {
    const auto plane = static_cast<int>(d.plane());
    const int B = std::max(d.B, 1);
    int size = std::clamp((batched_columns + plane - 1) / std::max(plane, 1), 1, B), count = (B + size - 1) / size;
    if (count > 1 && size > 1) {
        count = std::min((count + dk_chunks - 1) / dk_chunks * dk_chunks, B);
        size = (B + count - 1) / count;
    }
    return {size, (d.B + size - 1) / size};
}

// The backward's chunks: groups [first(c), first(c + 1)) form chunk c, dk_chunks of them (fewer
// when there are fewer groups), whatever the thread count, so that dK is too (see the top).
struct Chunks {
    int count, groups;
    int first(int c) const { return static_cast<int>(static_cast<long>(c) * groups / count); }
};
Chunks chunks_of(const Groups& g) { return {std::clamp(g.count, 1, dk_chunks), g.count}; }

// Threads for a call: all allowed ones when there are several groups and enough work, else one.
int threads_for(const Dims& d, const Groups& g) {
    if (g.count < 2 || d.flops() < parallel_min_flops || omp_in_parallel()) return 1;
    return std::min(omp_get_max_threads(), g.count);
}

// cols_b from one image x (N x H x W), into the columns from `cols` of a matrix with row stride ld.
template <class T>
void im2col(const T* x, const Dims& d, T* cols, std::ptrdiff_t ld) {
    for (int c = 0; c < d.N; ++c) {
        const T* plane = x + static_cast<std::ptrdiff_t>(c) * d.H * d.W;
        for (int u = 0; u < d.F; ++u) {
            const Span ys = inside(d.Ho, u - d.P, d.H, d.S);
            for (int v = 0; v < d.F; ++v) {
                const Span xs = inside(d.Wo, v - d.P, d.W, d.S);
                T* dst = cols + ((c * d.F + u) * d.F + v) * ld;
                std::fill(dst, dst + static_cast<std::ptrdiff_t>(ys.lo) * d.Wo, T(0));
                for (int oy = ys.lo; oy < ys.hi; ++oy) {
                    T* row = dst + static_cast<std::ptrdiff_t>(oy) * d.Wo;
                    const T* src = plane + static_cast<std::ptrdiff_t>(oy * d.S + u - d.P) * d.W + (v - d.P);
                    std::fill(row, row + xs.lo, T(0));
                    if (d.S == 1)
                        std::copy(src + xs.lo, src + xs.hi, row + xs.lo);
                    else
                        for (int ox = xs.lo; ox < xs.hi; ++ox) row[ox] = src[ox * d.S];
                    std::fill(row + xs.hi, row + d.Wo, T(0));
                }
                std::fill(dst + static_cast<std::ptrdiff_t>(ys.hi) * d.Wo, dst + d.plane(), T(0));
            }
        }
    }
}

// dX[b] += the entries of dcols_b (the columns from `dcols` of a matrix with row stride ld) that
// im2col copied from it.
template <class T>
void col2im_add(const T* dcols, const Dims& d, std::ptrdiff_t ld, T* gx) {
    for (int c = 0; c < d.N; ++c) {
        T* plane = gx + static_cast<std::ptrdiff_t>(c) * d.H * d.W;
        for (int u = 0; u < d.F; ++u) {
            const Span ys = inside(d.Ho, u - d.P, d.H, d.S);
            for (int v = 0; v < d.F; ++v) {
                const Span xs = inside(d.Wo, v - d.P, d.W, d.S);
                const T* src = dcols + ((c * d.F + u) * d.F + v) * ld;
                for (int oy = ys.lo; oy < ys.hi; ++oy) {
                    const T* row = src + static_cast<std::ptrdiff_t>(oy) * d.Wo;
                    T* dst = plane + static_cast<std::ptrdiff_t>(oy * d.S + u - d.P) * d.W + (v - d.P);
                    if (d.S == 1)
                        for (int ox = xs.lo; ox < xs.hi; ++ox) dst[ox] += row[ox];
                    else
                        for (int ox = xs.lo; ox < xs.hi; ++ox) dst[ox * d.S] += row[ox];
                }
            }
        }
    }
}

// The three products of one group of n images: x, y, dy and gx point at the group's first image in
// the batch tensors; the group's columns of Y and dY (D x n*Ho*Wo) are read and written there.
//
// double (the gradient checks, on Eigen's GEMM) in the plain form, an image at a time: cols_b by
// im2col, then Y_b = K * cols_b, dK += dY_b * cols_b^T, dcols_b = K^T * dY_b and col2im.
void group_forward(const Dims& d, int n, const double* x, const double* k, double* y) {
    const auto R = static_cast<int>(d.rows()), P = static_cast<int>(d.plane());
    double* cols = scratch<double>(0, d.rows() * P);
    for (int j = 0; j < n; ++j) {
        im2col(x + j * d.x_image(), d, cols, P);
        gemm(d.D, P, R, k, R, false, cols, P, false, y + j * d.y_image(), P, false);
    }
}
// dK (D x R) = dY_G * cols_G^T, or += with `accumulate`.
void group_weights(const Dims& d, int n, const double* x, const double* dy, double* dk, bool accumulate) {
    const auto R = static_cast<int>(d.rows()), P = static_cast<int>(d.plane());
    double* cols = scratch<double>(0, d.rows() * P);
    for (int j = 0; j < n; ++j) {
        im2col(x + j * d.x_image(), d, cols, P);
        gemm(d.D, R, P, dy + j * d.y_image(), P, false, cols, P, true, dk, R, accumulate || j > 0);
    }
}
// dX of the group's images += col2im(K^T * dY_G).
void group_data(const Dims& d, int n, const double* k, const double* dy, double* gx) {
    const auto R = static_cast<int>(d.rows()), P = static_cast<int>(d.plane());
    double* dcols = scratch<double>(1, d.rows() * P);
    for (int j = 0; j < n; ++j) {
        gemm(R, P, d.D, k, R, true, dy + j * d.y_image(), P, false, dcols, P, false);
        col2im_add(dcols, d, P, gx + j * d.x_image());
    }
}

// float packs the column matrix straight from the images and adds dcols onto dX a tile at a time
// (conv2d_columns.hpp), for dK always, for Y and dX where the planes are at most this large.
// Measured (bench_conv_layers, Zen 3, 1 thread): on larger planes (17x17 and up, groups of one or
// two images) im2col's whole-row copies and the stored C tiles were faster there.
constexpr int implicit_max_plane = 256;

using kernels::detail::ColumnBlocks;
using kernels::detail::current_spec;
using kernels::detail::sgemm_with;

// The products' op(A) from K: double the tensor's data; float K (forward) or K^T (backward data)
// packed once per call, for the kernel the call runs, rather than once per group (not at all
// without `needed`: an empty PackedRows).
struct PackedKernels {
    kernels::detail::KernelSpec spec;
    kernels::detail::PackedRows rows;
};
template <class T>
auto kernels_as_a(const Dims& d, const T* k, bool transposed, bool needed = true) {
    if constexpr (std::is_same_v<T, float>) {
        const auto spec = current_spec();
        const int R = needed ? static_cast<int>(d.rows()) : 0;
        return PackedKernels{spec, kernels::detail::PackedRows(spec, transposed ? R : d.D, transposed ? d.D : R, {k, R, transposed})};
    } else {
        return k;
    }
}

// Planes narrower than this many tiles of the GEMM: Y_G is computed into a scratch matrix and copied
// out, since nearly every C tile would cross an image's edge and be added out of a scratch tile once
// per block of K (measured: 256->256 at 3x3, 9 blocks of K, forward ~10 % slower that way).
constexpr int blocked_min_tiles = 4;

// Y_G (D x n*Ho*Wo) = K * cols_G, written into Y's images (one block of columns per image).
void group_forward(const Dims& d, int n, const float* x, const PackedKernels& k, float* y) {
    const auto R = static_cast<int>(d.rows()), P = static_cast<int>(d.plane()), ld = n * P;
    const bool copied = n > 1 && P < blocked_min_tiles * k.spec.nr;
    float* yg = copied ? scratch<float>(2, d.D * static_cast<std::ptrdiff_t>(ld)) : nullptr;
    const ColumnBlocks c = copied ? ColumnBlocks{yg, ld} : ColumnBlocks{y, P, P, d.y_image()};
    if (d.plane() <= implicit_max_plane) {
        sgemm_with(k.spec, d.D, ld, R, k.rows, ColumnPanels(d, x), c, false);
    } else {
        float* cols = scratch<float>(0, d.rows() * ld);
        for (int j = 0; j < n; ++j) im2col(x + j * d.x_image(), d, cols + j * P, ld);
        sgemm_with(k.spec, d.D, ld, R, k.rows, kernels::detail::OperandPanels({cols, ld, false}), c, false);
    }
    for (int j = 0; copied && j < n; ++j)
        for (int i = 0; i < d.D; ++i) std::copy_n(yg + i * ld + j * P, P, y + j * d.y_image() + i * P);
}
// dK (D x R) = dY_G * cols_G^T, or += with `accumulate`.
void group_weights(const Dims& d, int n, const float* x, const float* dy, float* dk, bool accumulate) {
    const auto R = static_cast<int>(d.rows()), ld = n * static_cast<int>(d.plane());
    sgemm_with(current_spec(), d.D, R, ld, PlaneRows(d, dy), TransposedColumnPanels(d, x), ColumnBlocks{dk, R}, accumulate);
}
// dX of the group's images += col2im(K^T * dY_G).
void group_data(const Dims& d, int n, const PackedKernels& kt, const float* dy, float* gx) {
    const auto R = static_cast<int>(d.rows()), P = static_cast<int>(d.plane()), ld = n * P;
    if (d.plane() <= implicit_max_plane) return sgemm_with(kt.spec, R, ld, d.D, kt.rows, PlanePanels(d, dy), ColumnTilesToImage(d, gx));
    float* dcols = scratch<float>(1, d.rows() * ld);
    sgemm_with(kt.spec, R, ld, d.D, kt.rows, PlanePanels(d, dy), ColumnBlocks{dcols, ld}, false);
    for (int j = 0; j < n; ++j) col2im_add(dcols + j * P, d, ld, gx + j * d.x_image());
}

}  // namespace

template <class T>
void forward_im2col(const Tensor<T>& x, const Tensor<T>& k, const Conv2dOptions& o, Tensor<T>& y) {
    const Dims d = dims_of(x.shape(), k.shape(), o);
    y.resize(Shape{d.B, d.D, d.Ho, d.Wo});
    const Groups g = groups_of(d);
    const auto ka = kernels_as_a(d, k.data(), false);
#pragma omp parallel for schedule(dynamic) num_threads(threads_for(d, g))
    for (int gi = 0; gi < g.count; ++gi) {
        const std::ptrdiff_t b0 = g.first(gi);
        group_forward(d, g.images(gi, d.B), x.data() + b0 * d.x_image(), ka, y.data() + b0 * d.y_image());
    }
}

template <class T>
void backward_im2col(const Tensor<T>& x, const Tensor<T>& k, const Tensor<T>& gy, const Conv2dOptions& o,
                     std::type_identity_t<Tensor<T>>* gx, std::type_identity_t<Tensor<T>>* gk) {
    const Dims d = dims_of(x.shape(), k.shape(), o);
    require_same_shape("conv2d backward (dL/dY vs Y)", gy.shape(), Shape{d.B, d.D, d.Ho, d.Wo});
    if (gk) require_same_shape("conv2d backward (dL/dK vs K)", gk->shape(), k.shape());
    if (gx) require_same_shape("conv2d backward (dL/dX vs X)", gx->shape(), x.shape());
    if (!gx && !gk) return;
    const Groups g = groups_of(d);
    const Chunks ch = chunks_of(g);
    // dK: chunk 0 adds straight into gk; chunk c > 0 into partial c - 1, added at the end in order.
    const std::ptrdiff_t dk_size = static_cast<std::ptrdiff_t>(d.D) * d.rows();
    T* partials = gk ? scratch<T>(3, dk_size * (ch.count - 1)) : nullptr;
    const auto kt = kernels_as_a(d, k.data(), true, gx != nullptr);
#pragma omp parallel for schedule(dynamic) num_threads(std::min(threads_for(d, g), ch.count))
    for (int c = 0; c < ch.count; ++c) {
        T* dk = !gk ? nullptr : c == 0 ? gk->data() : partials + (c - 1) * dk_size;
        for (int gi = ch.first(c); gi < ch.first(c + 1); ++gi) {
            const std::ptrdiff_t b0 = g.first(gi);
            const int n = g.images(gi, d.B);
            const T* dy = gy.data() + b0 * d.y_image();
            if (gk) group_weights(d, n, x.data() + b0 * d.x_image(), dy, dk, c == 0 || gi > ch.first(c));
            if (gx) group_data(d, n, kt, dy, gx->data() + b0 * d.x_image());
        }
    }
    for (int c = 1; c < ch.count && gk; ++c) gk->array() += ConstVectorMap<T>(partials + (c - 1) * dk_size, dk_size);
}

#define MCNN_INSTANTIATE(T)                                                                                               \
    template void forward_im2col(const Tensor<T>&, const Tensor<T>&, const Conv2dOptions&, Tensor<T>&);                   \
    template void backward_im2col(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, const Conv2dOptions&, Tensor<T>*, \
                                  Tensor<T>*);
MCNN_INSTANTIATE(float)
MCNN_INSTANTIATE(double)
#undef MCNN_INSTANTIATE  // the unity build puts several files in one translation unit

}  // namespace mcnn::conv
