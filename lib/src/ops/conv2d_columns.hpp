#pragma once
// The column matrix of a group of images (conv2d_im2col.cpp) read and written in place, never
// built: sgemm packs its panels straight from the images (forward: op(B) = cols_G; backward
// weights: op(B) = cols_G^T), and the backward data adds each C tile of dcols_G = K^T * dY_G
// straight onto dL/dX (col2im folded into the GEMM's output). dL/dY of the group is read where it
// lies in the batch (PlanePanels, PlaneRows), as Y is written there (sgemm's ColumnBlocks).
// Included by conv2d_im2col.cpp only.
//
// cols_G is R x g*Ho*Wo, R = N*F*F: row r = (c, u, v) (r = (c*F + u)*F + v), column
// q = (j, oy, ox) (q = j*Ho*Wo + oy*Wo + ox) holds Xp[b0 + j, c, oy*S + u, ox*S + v], the input
// padded by P zeros: X[b0 + j, c, oy*S + u - P, ox*S + v - P], or 0 outside X.
#include <algorithm>
#include <cstddef>
#include <vector>

#include "../kernels/sgemm_detail.hpp"
#include "mcnn/tensor.hpp"

namespace mcnn::conv {
namespace {

struct Dims {
    int B, N, H, W, D, F, P, S, Ho, Wo;
    Eigen::Index rows() const { return static_cast<Eigen::Index>(N) * F * F; }
    Eigen::Index plane() const { return static_cast<Eigen::Index>(Ho) * Wo; }
    std::ptrdiff_t x_image() const { return static_cast<std::ptrdiff_t>(N) * H * W; }
    std::ptrdiff_t y_image() const { return static_cast<std::ptrdiff_t>(D) * Ho * Wo; }
    double flops() const { return static_cast<double>(B) * D * static_cast<double>(rows()) * static_cast<double>(plane()); }
};

// The outputs o in [0, count) whose input position o*S + offset falls inside [0, size).
struct Span {
    int lo, hi;
};
Span inside(int count, int offset, int size, int S) {
    int lo = 0, hi = count;
    while (lo < hi && lo * S + offset < 0) ++lo;
    while (hi > lo && (hi - 1) * S + offset >= size) --hi;
    return {lo, hi};
}

// One row (c, u, v) of cols_G, as positions in the group's images.
struct ColumnRow {
    std::ptrdiff_t offset;  // of X[b0, c, u - P, v - P] from the group's first image (may point outside it)
    int u;                  // kernel row
    Span xs;                // the ox whose input column ox*S + v - P lies inside X
};
// Every row of cols_G (R of them), worked out once per product rather than once per use.
std::vector<ColumnRow> column_rows(const Dims& d) {
    std::vector<ColumnRow> rows;
    rows.reserve(static_cast<std::size_t>(d.rows()));
    for (int c = 0; c < d.N; ++c)
        for (int u = 0; u < d.F; ++u)
            for (int v = 0; v < d.F; ++v)
                rows.push_back({(static_cast<std::ptrdiff_t>(c) * d.H + u - d.P) * d.W + v - d.P, u, inside(d.Wo, v - d.P, d.W, d.S)});
    return rows;
}

// A run of consecutive columns of cols_G inside one output row oy of one image: columns ox0 .. ox1
// of that row, found at index `at` of a walk over columns; `base` is the offset of that image's
// input row oy*S from the group's first image.
struct Run {
    int at, ox0, ox1, oy;
    std::ptrdiff_t base;
};

// The runs of columns q0 .. q0 + count - 1, into `runs` (at most count + 1 entries).
inline std::size_t runs_of(const Dims& d, int q0, int count, Run* runs) {
    const int plane = static_cast<int>(d.plane());
    int j = q0 / plane, oy = q0 % plane / d.Wo, ox = q0 % d.Wo;
    std::size_t n = 0;
    for (int at = 0; at < count; ++n) {
        const int run = std::min(count - at, d.Wo - ox);
        runs[n] = {at, ox, ox + run, oy, j * d.x_image() + static_cast<std::ptrdiff_t>(oy) * d.S * d.W};
        at += run;
        ox = 0;
        if (++oy == d.Ho) oy = 0, ++j;
    }
    return n;
}

// Calls f(run, lo, n, src) for each run whose input row lies inside X (not in the top or bottom
// padding) and that reads X at all: columns lo .. lo + n of the run read X, src[k * S] being the
// input element of column lo + k. (Only pointers into X are formed: a run's first column may sit in
// the left padding, before its row.)
template <class X, class F>
void for_inside(const Dims& d, const ColumnRow& row, X* x, const Run* runs, std::size_t count, F&& f) {
    for (std::size_t i = 0; i < count; ++i) {
        const Run& run = runs[i];
        const int iy = run.oy * d.S + row.u - d.P;
        if (iy < 0 || iy >= d.H) continue;
        const int lo = std::clamp(row.xs.lo, run.ox0, run.ox1), hi = std::clamp(row.xs.hi, lo, run.ox1);
        if (hi > lo) f(run, lo, hi - lo, x + (run.base + row.offset + static_cast<std::ptrdiff_t>(lo) * d.S));
    }
}

// dst[0 .. n) = src[0 .. n) (not overlapping), and dst[0 .. n) = 0, for the short runs here (a few
// to a few dozen floats) without a library call: whole blocks of W, the last one overlapping the
// one before (the way memmove does short copies), so a run takes two or three vector moves.
template <int W>
void copy_block(const float* src, float* dst) {
    for (int i = 0; i < W; ++i) dst[i] = src[i];
}
inline void copy_run(const float* src, int n, float* dst) {
    if (n >= 8) {
        for (int k = 0; k + 8 < n; k += 8) copy_block<8>(src + k, dst + k);
        copy_block<8>(src + n - 8, dst + n - 8);
    } else if (n >= 4) {
        copy_block<4>(src, dst);
        copy_block<4>(src + n - 4, dst + n - 4);
    } else {
        for (int k = 0; k < n; ++k) dst[k] = src[k];
    }
}
inline void zero_run(float* dst, int n) {
    static constexpr float zeros[8] = {};
    if (n >= 8) {
        for (int k = 0; k + 8 < n; k += 8) copy_block<8>(zeros, dst + k);
        copy_block<8>(zeros, dst + n - 8);
    } else if (n >= 4) {
        copy_block<4>(zeros, dst);
        copy_block<4>(zeros, dst + n - 4);
    } else {
        for (int k = 0; k < 3; ++k)
            if (k < n) dst[k] = 0.0f;
    }
}

// out[k] = cols_G(r, q0 + k) for the columns of `runs` (zeros in the padding).
inline void gather_row(const Dims& d, const float* x, const ColumnRow& row, const Run* runs, std::size_t count, int width,
                       float* out) {
    std::fill(out, out + width, 0.0f);
    for_inside(d, row, x, runs, count, [&](const Run& run, int lo, int n, const float* src) {
        float* o = out + run.at + (lo - run.ox0);  // o[k] is column lo + k of this run
        if (d.S == 1) std::copy(src, src + n, o);
        else
            for (int k = 0; k < n; ++k) o[k] = src[k * d.S];
    });
}

// A per-thread buffer of at least n elements that only grows.
template <class T>
T* conv_scratch(int which, std::size_t n) {
    thread_local std::vector<T> buffers[2];
    if (buffers[which].size() < n) buffers[which].resize(n);
    return buffers[which].data();
}

// op(B) = cols_G (R x g*Ho*Wo) of the images from x, packed for sgemm (forward: Y_G = K * cols_G).
class ColumnPanels final : public kernels::detail::PanelSource {
public:
    ColumnPanels(const Dims& d, const float* x) : d_(d), x_(x), rows_(column_rows(d)) {}
    void pack(int p0, int j0, int kc, int nc, int nr, float* dst) const override {
        Run* runs = conv_scratch<Run>(0, static_cast<std::size_t>(nr) + 1);
        for (int jr = 0; jr < nc; jr += nr, dst += static_cast<std::ptrdiff_t>(nr) * kc) {
            const std::size_t count = runs_of(d_, j0 + jr, std::min(nr, nc - jr), runs);
            for (int p = 0; p < kc; ++p) gather_row(d_, x_, rows_[p0 + p], runs, count, nr, dst + p * nr);
        }
    }

private:
    Dims d_;
    const float* x_;
    std::vector<ColumnRow> rows_;
};

// op(B) = cols_G^T (g*Ho*Wo x R) of the images from x, packed for sgemm (dK += dY_G * cols_G^T):
// each panel's nr rows of cols_G gathered whole, then transposed into the panel.
class TransposedColumnPanels final : public kernels::detail::PanelSource {
public:
    TransposedColumnPanels(const Dims& d, const float* x) : d_(d), x_(x), rows_(column_rows(d)) {}
    void pack(int p0, int j0, int kc, int nc, int nr, float* dst) const override {
        Run* runs = conv_scratch<Run>(0, static_cast<std::size_t>(kc) + 1);
        float* rows = conv_scratch<float>(1, static_cast<std::size_t>(nr) * kc);
        const std::size_t count = runs_of(d_, p0, kc, runs);
        for (int jr = 0; jr < nc; jr += nr, dst += static_cast<std::ptrdiff_t>(nr) * kc) {
            const int n = std::min(nr, nc - jr);
            for (int j = 0; j < n; ++j) gather_row(d_, x_, rows_[j0 + jr + j], runs, count, kc, rows + j * kc);
            for (int p = 0; p < kc; ++p) {
                for (int j = 0; j < n; ++j) dst[p * nr + j] = rows[j * kc + p];
                std::fill(dst + p * nr + n, dst + (p + 1) * nr, 0.0f);
            }
        }
    }

private:
    Dims d_;
    const float* x_;
    std::vector<ColumnRow> rows_;
};

// Adds tiles of dcols_G (R x g*Ho*Wo) onto dX of the images from gx: element (r, q) goes to the
// input element cols_G(r, q) was read from (nowhere when that is padding). The col2im of the
// backward data, a tile at a time while the tile is in L1.
class ColumnTilesToImage final : public kernels::detail::TileSink {
public:
    ColumnTilesToImage(const Dims& d, float* gx) : d_(d), gx_(gx), rows_(column_rows(d)) {}
    void add(int i0, int j0, int m, int n, const float* tile, std::ptrdiff_t ldt) const override {
        Run runs[kernels::detail::max_tile + 1];
        const std::size_t count = runs_of(d_, j0, n, runs);
        for (int i = 0; i < m; ++i) {
            const float* t = tile + i * ldt;
            for_inside(d_, rows_[i0 + i], gx_, runs, count, [&](const Run& run, int lo, int n, float* dst) {
                const float* in = t + run.at + (lo - run.ox0);  // in[k] is column lo + k of this run
                if (d_.S == 1)
                    for (int k = 0; k < n; ++k) dst[k] += in[k];
                else
                    for (int k = 0; k < n; ++k) dst[k * d_.S] += in[k];
            });
        }
    }

private:
    Dims d_;
    float* gx_;
    std::vector<ColumnRow> rows_;
};

// The planes of a group's images as one matrix, M_G (D x g*Ho*Wo): element (i, q) of image
// j = q / (Ho*Wo) at m[j * D*Ho*Wo + i * Ho*Wo + q % (Ho*Wo)], i.e. where a batch tensor (Y, dL/dY)
// holds it. A run of columns inside one image: columns at .. at + n of a walk, from `offset`.
struct PlaneRun {
    int at, n;
    std::ptrdiff_t offset;  // of column `at` in row 0, from the group's first image
};
// The runs of columns q0 .. q0 + count - 1 into `runs` (count / (Ho*Wo) + 2 entries at most).
inline std::size_t plane_runs(const Dims& d, int q0, int count, PlaneRun* runs) {
    const int plane = static_cast<int>(d.plane());
    int j = q0 / plane, o = q0 % plane;
    std::size_t n = 0;
    for (int at = 0; at < count; ++n, ++j, o = 0) {
        const int run = std::min(count - at, plane - o);
        runs[n] = {at, run, j * d.y_image() + o};
        at += run;
    }
    return n;
}
inline PlaneRun* plane_run_scratch(const Dims& d, int count) {
    return conv_scratch<PlaneRun>(0, static_cast<std::size_t>(count / std::max<Eigen::Index>(d.plane(), 1)) + 2);
}

// op(B) = M_G (D x g*Ho*Wo) from a batch tensor, packed for sgemm (backward data: dcols_G = K^T * dY_G).
class PlanePanels final : public kernels::detail::PanelSource {
public:
    PlanePanels(const Dims& d, const float* m) : d_(d), m_(m) {}
    // Row by row, each row of M_G read from start to end (whole images' planes of it in turn), its
    // pieces written into the panels: the reads stream, the panels stay in cache.
    void pack(int p0, int j0, int kc, int nc, int nr, float* dst) const override {
        PlaneRun* runs = plane_run_scratch(d_, nc);
        const std::size_t count = plane_runs(d_, j0, nc, runs);
        const std::ptrdiff_t panel = static_cast<std::ptrdiff_t>(nr) * kc;
        for (int p = 0; p < kc; ++p) {
            const float* row = m_ + (p0 + p) * d_.plane();
            for (std::size_t r = 0; r < count; ++r)
                for (int at = runs[r].at, end = at + runs[r].n; at < end;) {  // the run's pieces, one per panel
                    const int n = std::min(end - at, nr - at % nr);
                    copy_run(row + runs[r].offset + (at - runs[r].at), n, dst + at / nr * panel + p * nr + at % nr);
                    at += n;
                }
            if (nc % nr) zero_run(dst + nc / nr * panel + p * nr + nc % nr, nr - nc % nr);
        }
    }

private:
    Dims d_;
    const float* m_;
};

// op(A) = M_G (D x g*Ho*Wo) from a batch tensor, packed for sgemm as sgemm_detail.hpp says a source
// of op(A) does (backward weights: dK += dY_G * cols_G^T).
class PlaneRows final : public kernels::detail::PanelSource {
public:
    PlaneRows(const Dims& d, const float* m) : d_(d), m_(m) {}
    void pack(int p0, int i0, int kc, int mc, int mr, float* dst) const override {
        PlaneRun* runs = plane_run_scratch(d_, kc);
        const std::size_t count = plane_runs(d_, p0, kc, runs);
        for (int ir = 0; ir < mc; ir += mr, dst += static_cast<std::ptrdiff_t>(mr) * kc) {
            const int m = std::min(mr, mc - ir);
            for (int i = 0; i < m; ++i) {
                const float* row = m_ + (i0 + ir + i) * d_.plane();
                for (std::size_t r = 0; r < count; ++r) {
                    const float* src = row + runs[r].offset;
                    float* out = dst + static_cast<std::ptrdiff_t>(runs[r].at) * mr + i;
                    for (int k = 0; k < runs[r].n; ++k) out[k * mr] = src[k];
                }
            }
            for (int i = m; i < mr; ++i)
                for (int p = 0; p < kc; ++p) dst[p * mr + i] = 0.0f;
        }
    }

private:
    Dims d_;
    const float* m_;
};

}  // namespace
}  // namespace mcnn::conv
