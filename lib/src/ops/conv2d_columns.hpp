#pragma once
// The column matrix of a group of images (conv2d_im2col.cpp) read and written in place, never
// built: sgemm packs its panels straight from the images (forward: op(B) = cols_G; backward
// weights: op(B) = cols_G^T), and the backward data adds each C tile of dcols_G = K^T * dY_G
// straight onto dL/dX (col2im folded into the GEMM's output). Included by conv2d_im2col.cpp only.
//
// cols_G is R x g*Ho*Wo, R = N*F*F: row r = (c, u, v) (r = (c*F + u)*F + v), column
// q = (j, oy, ox) (q = j*Ho*Wo + oy*Wo + ox) holds Xp[b0 + j, c, oy*S + u, ox*S + v], the input
// padded by P zeros: X[b0 + j, c, oy*S + u - P, ox*S + v - P], or 0 outside X.
#include <algorithm>
#include <cstddef>

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
ColumnRow column_row(const Dims& d, int r) {
    const int c = r / (d.F * d.F), u = r / d.F % d.F, v = r % d.F;
    return {(static_cast<std::ptrdiff_t>(c) * d.H + u - d.P) * d.W + v - d.P, u, inside(d.Wo, v - d.P, d.W, d.S)};
}

// Walks the columns q0, q0 + 1, ... of a row of cols_G output row by output row: calls
// f(at, ox0, ox1, src) for each run of columns in one output row oy of one image (columns ox0 ..
// ox1 of it, the run's first at index `at` of the walk), with src the input row that run reads
// (element ox*S of src is Xp's, for ox inside row.xs), or nullptr when the whole run lies in the
// top or bottom padding.
template <class X, class F>
void walk_row(const Dims& d, const ColumnRow& row, X* x, int q0, int count, F&& f) {
    const int plane = static_cast<int>(d.plane());
    int j = q0 / plane, oy = q0 % plane / d.Wo, ox = q0 % d.Wo;
    for (int at = 0; at < count;) {
        const int run = std::min(count - at, d.Wo - ox), iy = oy * d.S + row.u - d.P;
        X* src = iy < 0 || iy >= d.H ? nullptr : x + j * d.x_image() + row.offset + static_cast<std::ptrdiff_t>(oy) * d.S * d.W;
        f(at, ox, ox + run, src);
        at += run;
        ox = 0;
        if (++oy == d.Ho) oy = 0, ++j;
    }
}

// out[k * stride] = cols_G(r, q0 + k) for k < count.
inline void gather_row(const Dims& d, const float* x, int r, int q0, int count, float* out, std::ptrdiff_t stride) {
    const ColumnRow row = column_row(d, r);
    walk_row(d, row, x, q0, count, [&](int at, int ox0, int ox1, const float* src) {
        float* o = out + at * stride - ox0 * stride;  // o[ox * stride] is column ox of this run
        const int lo = src ? std::clamp(row.xs.lo, ox0, ox1) : ox1, hi = src ? std::clamp(row.xs.hi, lo, ox1) : ox1;
        for (int ox = ox0; ox < lo; ++ox) o[ox * stride] = 0.0f;
        if (stride == 1 && d.S == 1) std::copy(src + lo, src + hi, o + lo);
        else
            for (int ox = lo; ox < hi; ++ox) o[ox * stride] = src[ox * d.S];
        for (int ox = hi; ox < ox1; ++ox) o[ox * stride] = 0.0f;
    });
}

// op(B) = cols_G (R x g*Ho*Wo) of the images from x, packed for sgemm (forward: Y_G = K * cols_G).
class ColumnPanels final : public kernels::detail::PanelSource {
public:
    ColumnPanels(const Dims& d, const float* x) : d_(d), x_(x) {}
    void pack(int p0, int j0, int kc, int nc, int nr, float* dst) const override {
        for (int jr = 0; jr < nc; jr += nr, dst += static_cast<std::ptrdiff_t>(nr) * kc) {
            const int n = std::min(nr, nc - jr);
            for (int p = 0; p < kc; ++p) {
                gather_row(d_, x_, p0 + p, j0 + jr, n, dst + p * nr, 1);
                std::fill(dst + p * nr + n, dst + (p + 1) * nr, 0.0f);
            }
        }
    }

private:
    Dims d_;
    const float* x_;
};

// op(B) = cols_G^T (g*Ho*Wo x R) of the images from x, packed for sgemm (dK += dY_G * cols_G^T).
class TransposedColumnPanels final : public kernels::detail::PanelSource {
public:
    TransposedColumnPanels(const Dims& d, const float* x) : d_(d), x_(x) {}
    void pack(int p0, int j0, int kc, int nc, int nr, float* dst) const override {
        for (int jr = 0; jr < nc; jr += nr, dst += static_cast<std::ptrdiff_t>(nr) * kc) {
            const int n = std::min(nr, nc - jr);
            for (int j = 0; j < n; ++j) gather_row(d_, x_, j0 + jr + j, p0, kc, dst + j, nr);
            for (int p = 0; p < kc; ++p) std::fill(dst + p * nr + n, dst + (p + 1) * nr, 0.0f);
        }
    }

private:
    Dims d_;
    const float* x_;
};

// Adds tiles of dcols_G (R x g*Ho*Wo) onto dX of the images from gx: element (r, q) goes to the
// input element cols_G(r, q) was read from (nowhere when that is padding). The col2im of the
// backward data, a tile at a time while the tile is in L1.
class ColumnTilesToImage final : public kernels::detail::TileSink {
public:
    ColumnTilesToImage(const Dims& d, float* gx) : d_(d), gx_(gx) {}
    void add(int i0, int j0, int m, int n, const float* tile, std::ptrdiff_t ldt) const override {
        for (int i = 0; i < m; ++i) {
            const ColumnRow row = column_row(d_, i0 + i);
            const float* t = tile + i * ldt;
            walk_row(d_, row, gx_, j0, n, [&](int at, int ox0, int ox1, float* dst) {
                if (!dst) return;
                const float* in = t + at - ox0;  // in[ox] is column ox of this run
                const int lo = std::clamp(row.xs.lo, ox0, ox1), hi = std::clamp(row.xs.hi, lo, ox1);
                for (int ox = lo; ox < hi; ++ox) dst[ox * d_.S] += in[ox];
            });
        }
    }

private:
    Dims d_;
    float* gx_;
};

}  // namespace
}  // namespace mcnn::conv
