// The Winograd path of the conv layer: 3x3 kernels at stride 1, any padding, by Winograd's minimal
// filtering F(m x m, 3 x 3) (m = 2 or 4), the same sums as the plain loops (conv2d_plain.cpp).
//
// One output tile y (m x m) of a 3x3 correlation reads an input tile d (a x a, a = m + 2) and is
//   y = A^T [ (G g G^T) (.) (B^T d B) ] A              ((.) is the element-wise product)
// with g the 3x3 kernel. The matrices (Lavin & Gray's; rows of G at the points 0, 1, -1 (and 2, -2)
// and infinity):
//   F(2x2, 3x3), a = 4:
//     B^T = [1  0 -1  0]    G = [ 1    0    0 ]    A^T = [1 1  1  0]
//           [0  1  1  0]        [1/2  1/2  1/2]          [0 1 -1 -1]
//           [0 -1  1  0]        [1/2 -1/2  1/2]
//           [0  1  0 -1]        [ 0    0    1 ]
//   F(4x4, 3x3), a = 6:
//     B^T = [4  0 -5  0  1  0]    G = [ 1/4    0     0  ]    A^T = [1 1  1 1  1 0]
//           [0 -4 -4  1  1  0]        [-1/6  -1/6  -1/6 ]          [0 1 -1 2 -2 0]
//           [0  4 -4 -1  1  0]        [-1/6   1/6  -1/6 ]          [0 1  1 4  4 0]
//           [0 -2 -1  2  1  0]        [1/24  1/12  1/6  ]          [0 1 -1 8 -8 1]
//           [0  2 -1 -2  1  0]        [1/24 -1/12  1/6  ]
//           [0  4  0 -5  0  1]        [  0     0     1  ]
// A layer sums over channels inside the brackets, so for each of the a*a positions (xi, nu) one
// GEMM over channels does all the multiplies. Over a group of images with T tiles in all:
//   U[xi,nu] (O x C)  = (G K[o,c] G^T)[xi,nu]             filters, once per call
//   V[xi,nu] (C x T)  = (B^T d[c,t] B)[xi,nu]              input tiles (zeros outside the input)
//   M[xi,nu] (O x T)  = U[xi,nu] * V[xi,nu]                a*a GEMMs (kernels::sgemm)
//   Y[o, tile t]      = A^T M[., ., o, t] A                cropped at the right and bottom edges
// Forward: input X (C = N), filters K (O = D), the input tile of output tile (ty, tx) starting at
// row ty*m - P, column tx*m - P.
// Backward data: dX[b,j,r,c] = sum_{i,u,v} dY[b,i,r+P-u,c+P-v] K[i,j,u,v], a 3x3 correlation of dY
// with the filters K'[j,i] = rot180(K[i,j]) (transposed, turned) and padding 2 - P (negative for
// P > 2: tiles then start inside dY): the same machinery, input dY, output dX (added into).
// Backward weights: differentiate the forward. Y = A^T M A gives dM = A dY A^T per tile (dY's
// m x m tile, zeros past its edge); M = U V gives dU[xi,nu] = dM[xi,nu] (O x T) * V[xi,nu]^T
// (T x C), summed over all groups; U = G K G^T gives dK[o,c] = G^T dU[.,.,o,c] G.
//
// Work splits into groups of whole images with at least `group_tiles` tiles (fixed by the shapes,
// never by the thread count); threads take whole groups, each with its own scratch, and for dK its
// own partial dU, added up in thread order at the end. Y and dX do not depend on the thread count;
// dK only through the rounding of that final sum.
//
// Transforms: the windows of a group's tiles are gathered, channel by channel, into a*a rows
// (one per window element) with one entry per tile; each transform is then a pass over rows and a
// pass over columns, each a sum of a few of those rows, vectorised along all the group's tiles.
//
// Precision: F(2x2) multiplies by 1/2 only and rounds like im2col; F(4x4)'s larger coefficients
// lose more: in float, on a 64-channel 15x15 layer with uniform data, max abs error 4.3e-6 (Y),
// 3.1e-6 (dX), 3.2e-6 (dK) of the results' largest magnitude (tests: winograd_error_is_bounded).
// Non-finite values: a tile mixes all its inputs (inf - inf = NaN), unlike the plain loops, so
// a call whose X, K or dY holds a NaN or an inf is handed to the im2col path.
// float runs our own SGEMM; double (the gradient checks) runs Eigen's GEMM.
#include <omp.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "../kernels/sgemm.hpp"

#include "mcnn/error.hpp"
#include "mcnn/ops/correlate2d.hpp"

#include "conv_gemm.hpp"

namespace mcnn::conv {
namespace {
namespace wg {  // (a namespace of its own: the unity build shares the anonymous one with conv2d_im2col.cpp)

using detail::gemm;
using detail::scratch;

// The matrices above, in double (folded into T at compile time).
template <int m>
struct Winograd;
template <>
struct Winograd<2> {
    static constexpr int a = 4;
    static constexpr double BT[4][4] = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
    static constexpr double G[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
    static constexpr double AT[2][4] = {{1, 1, 1, 0}, {0, 1, -1, -1}};
    static constexpr double A[4][2] = {{1, 0}, {1, 1}, {1, -1}, {0, -1}};
};
template <>
struct Winograd<4> {
    static constexpr int a = 6;
    static constexpr double BT[6][6] = {{4, 0, -5, 0, 1, 0},  {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
                                        {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};
    static constexpr double G[6][3] = {{1.0 / 4, 0, 0},           {-1.0 / 6, -1.0 / 6, -1.0 / 6}, {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                       {1.0 / 24, 1.0 / 12, 1.0 / 6}, {1.0 / 24, -1.0 / 12, 1.0 / 6}, {0, 0, 1}};
    static constexpr double AT[4][6] = {{1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}};
    static constexpr double A[6][4] = {{1, 0, 0, 0}, {1, 1, 1, 1}, {1, -1, 1, -1}, {1, 2, 4, 8}, {1, -2, 4, -8}, {0, 0, 0, 1}};
};

// Below this many multiply-adds (direct-conv count) a parallel region costs more than it saves.
constexpr double parallel_min_flops = 2e5;
// A group of images holds at least this many tiles (the GEMMs' N), unless the batch has fewer.
constexpr int group_tiles = 256;

// One 3x3 correlation the path computes: Out (B x O x Ho x Wo) [b,o,y,x] = sum_{c,u,v}
// In[b, c, y+u-p, x+v-p] * F[o,c,u,v], In (B x C x Hi x Wi) zero outside, on tiles of m x m.
struct Geometry {
    int B, C, Hi, Wi, O, Ho, Wo, p, m;
    int th() const { return (Ho + m - 1) / m; }
    int tw() const { return (Wo + m - 1) / m; }
    int tiles() const { return th() * tw(); }
    std::ptrdiff_t in_image() const { return static_cast<std::ptrdiff_t>(C) * Hi * Wi; }
    std::ptrdiff_t out_image() const { return static_cast<std::ptrdiff_t>(O) * Ho * Wo; }
    double flops() const { return 9.0 * B * O * C * static_cast<double>(Ho) * Wo; }
};

// Groups of `size` images (the last one possibly smaller); from the shapes only.
struct Groups {
    int size, count;
    int first(int g) const { return g * size; }
    int images(int g, int B) const { return std::min(size, B - g * size); }
};
Groups groups_of(const Geometry& g) {
    const int size = std::clamp((group_tiles + g.tiles() - 1) / g.tiles(), 1, std::max(g.B, 1));
    return {size, (g.B + size - 1) / size};
}
int threads_for(const Geometry& g, const Groups& groups) {
    if (groups.count < 2 || g.flops() < parallel_min_flops || omp_in_parallel()) return 1;
    return std::min(omp_get_max_threads(), groups.count);
}

// out[i][.] = sum_j Mat[i][j] * in[j][.] over `len` contiguous elements; the rows of `in` are
// `in_step` apart, those of `out` `out_step`. Mat is R x S (constexpr): once the loops are unrolled
// its zeros are skipped and its entries folded in at compile time.
template <class T, int R, int S>
inline void combine_rows(const double (&mat)[R][S], const T* in, std::ptrdiff_t in_step, T* out, std::ptrdiff_t out_step,
                         std::ptrdiff_t len) {
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
        T* o = out + i * out_step;
        std::fill(o, o + len, T(0));
#pragma GCC unroll 8
        for (int j = 0; j < S; ++j) {
            if (mat[i][j] == 0) continue;
            const T c = static_cast<T>(mat[i][j]);
            const T* src = in + j * in_step;
            for (std::ptrdiff_t e = 0; e < len; ++e) o[e] += c * src[e];
        }
    }
}

// The tiles tx in [0, count) whose column tx*m + off falls inside [0, size).
struct Span {
    int lo, hi;
};
Span inside(int count, int m, int off, int size) {
    int lo = 0, hi = count;
    while (lo < hi && lo * m + off < 0) ++lo;
    while (hi > lo && (hi - 1) * m + off >= size) --hi;
    return {lo, hi};
}

// d[(r*S + s)*ld + t0 + ty*tw + tx] = plane[ty*m + off + r][tx*m + off + s] (zero outside the h x w
// plane) for the S x S windows of one image's th x tw tiles.
template <class T>
void gather_windows(const T* plane, int h, int w, const Geometry& g, int S, int off, T* d, std::ptrdiff_t ld, int t0) {
    const int tw = g.tw(), m = g.m;
    for (int r = 0; r < S; ++r)
        for (int ty = 0; ty < g.th(); ++ty) {
            const int y = ty * m + off + r;
            for (int s = 0; s < S; ++s) {
                T* o = d + (r * S + s) * ld + t0 + ty * tw;
                if (y < 0 || y >= h) {
                    std::fill(o, o + tw, T(0));
                    continue;
                }
                const Span xs = inside(tw, m, off + s, w);
                const T* src = plane + static_cast<std::ptrdiff_t>(y) * w + off + s;
                std::fill(o, o + xs.lo, T(0));
                for (int tx = xs.lo; tx < xs.hi; ++tx) o[tx] = src[tx * m];
                std::fill(o + xs.hi, o + tw, T(0));
            }
        }
}

// out[(i*R + j)*out_step + t] = (Mat d_t Mat^T)[i][j] for the S x S windows d_t in
// d[(r*S + s)*ld + t], t in [0, ld); tmp holds R*S*ld elements.
template <class T, int R, int S>
void transform_windows(const double (&mat)[R][S], const T* d, T* tmp, std::ptrdiff_t ld, T* out, std::ptrdiff_t out_step) {
    combine_rows<T, R, S>(mat, d, S * ld, tmp, S * ld, S * ld);  // rows: tmp[i][s][t] = (Mat d_t)[i][s]
    for (int i = 0; i < R; ++i)                                      // columns: (Mat d_t) Mat^T
        combine_rows<T, R, S>(mat, tmp + i * S * ld, ld, out + i * R * out_step, out_step, ld);
}

// V (a*a x C x ld) = B^T d B of the input tiles of the group's n images from `in` (n x C x Hi x Wi).
// work holds 2 * a*a * ld elements.
template <class T, int m>
void input_transform(const T* in, const Geometry& g, int n, T* v, std::ptrdiff_t ld, T* work) {
    constexpr int a = Winograd<m>::a;
    T* d = work;
    T* tmp = work + a * a * ld;
    for (int c = 0; c < g.C; ++c) {
        for (int j = 0; j < n; ++j)
            gather_windows(in + j * g.in_image() + static_cast<std::ptrdiff_t>(c) * g.Hi * g.Wi, g.Hi, g.Wi, g, a, -g.p, d, ld,
                           j * g.tiles());
        transform_windows<T, a, a>(Winograd<m>::BT, d, tmp, ld, v + c * ld, g.C * ld);
    }
}

// dM (a*a x O x ld) = A dy A^T of the m x m tiles dy of the group's n images' output gradient
// `gy` (n x O x Ho x Wo), zeros past its edges. work holds 2 * a*a * ld elements.
template <class T, int m>
void gradient_transform(const T* gy, const Geometry& g, int n, T* dm, std::ptrdiff_t ld, T* work) {
    constexpr int a = Winograd<m>::a;
    T* d = work;
    T* tmp = work + a * a * ld;
    for (int o = 0; o < g.O; ++o) {
        for (int j = 0; j < n; ++j)
            gather_windows(gy + j * g.out_image() + static_cast<std::ptrdiff_t>(o) * g.Ho * g.Wo, g.Ho, g.Wo, g, m, 0, d, ld,
                           j * g.tiles());
        transform_windows<T, a, m>(Winograd<m>::A, d, tmp, ld, dm + o * ld, g.O * ld);
    }
}

// Out (the group's n images, n x O x Ho x Wo) = or += A^T M A of the tiles of M (a*a x O x ld),
// cropped at the right and bottom edges. work holds 2 * a*a * ld elements.
template <class T, int m>
void output_transform(const T* mm, const Geometry& g, int n, std::ptrdiff_t ld, T* out, bool add, T* work) {
    constexpr int a = Winograd<m>::a;
    const int tw = g.tw();
    const std::ptrdiff_t pos_step = static_cast<std::ptrdiff_t>(g.O) * ld;
    T* cols = work;            // a x m x ld: M A
    T* rows = work + a * a * ld;  // m x m x ld: A^T (M A)
    for (int o = 0; o < g.O; ++o) {
        for (int i = 0; i < a; ++i)
            combine_rows<T, m, a>(Winograd<m>::AT, mm + i * a * pos_step + o * ld, pos_step, cols + i * m * ld, ld, ld);
        combine_rows<T, m, a>(Winograd<m>::AT, cols, m * ld, rows, m * ld, m * ld);
        for (int j = 0; j < n; ++j) {
            T* plane = out + j * g.out_image() + static_cast<std::ptrdiff_t>(o) * g.Ho * g.Wo;
            for (int ty = 0; ty < g.th(); ++ty)
                for (int i = 0; i < m && ty * m + i < g.Ho; ++i) {
                    T* y = plane + static_cast<std::ptrdiff_t>(ty * m + i) * g.Wo;
                    for (int jj = 0; jj < m; ++jj) {
                        const T* r = rows + (i * m + jj) * ld + j * g.tiles() + ty * tw;
                        for (int tx = 0; tx < tw && tx * m + jj < g.Wo; ++tx) y[tx * m + jj] = add ? y[tx * m + jj] + r[tx] : r[tx];
                    }
                }
        }
    }
}

// U (a*a x O x C) = G f G^T for the filters f[o,c] = K[o,c] (K: O x C x 3 x 3), or with `turned`
// f[o,c] = rot180(K[c,o]) (K: C x O x 3 x 3). Summed in double.
template <class T, int m>
void filter_transform(const T* k, int O, int C, bool turned, T* u) {
    constexpr int a = Winograd<m>::a;
    const auto& G = Winograd<m>::G;
    for (int o = 0; o < O; ++o)
        for (int c = 0; c < C; ++c) {
            const T* f = k + (turned ? static_cast<std::ptrdiff_t>(c) * O + o : static_cast<std::ptrdiff_t>(o) * C + c) * 9;
            double gf[a][3] = {};  // G f
            for (int i = 0; i < a; ++i)
                for (int r = 0; r < 3; ++r)
                    for (int v = 0; v < 3; ++v) gf[i][v] += G[i][r] * static_cast<double>(turned ? f[(2 - r) * 3 + 2 - v] : f[r * 3 + v]);
            for (int i = 0; i < a; ++i)
                for (int j = 0; j < a; ++j) {
                    double s = 0;
                    for (int v = 0; v < 3; ++v) s += gf[i][v] * G[j][v];
                    u[((static_cast<std::ptrdiff_t>(i) * a + j) * O + o) * C + c] = static_cast<T>(s);
                }
        }
}

// dK (O x C x 3 x 3) += G^T dU[., ., o, c] G for dU (a*a x O x C).
template <class T, int m>
void filter_gradient(const T* du, int O, int C, T* gk) {
    constexpr int a = Winograd<m>::a;
    const auto& G = Winograd<m>::G;
    const std::ptrdiff_t pos_step = static_cast<std::ptrdiff_t>(O) * C;
    for (std::ptrdiff_t oc = 0; oc < pos_step; ++oc) {
        double gd[3][a] = {};  // G^T dU
        for (int r = 0; r < 3; ++r)
            for (int i = 0; i < a; ++i)
                for (int j = 0; j < a; ++j) gd[r][j] += G[i][r] * static_cast<double>(du[(i * a + j) * pos_step + oc]);
        for (int r = 0; r < 3; ++r)
            for (int v = 0; v < 3; ++v) {
                double s = 0;
                for (int j = 0; j < a; ++j) s += gd[r][j] * G[j][v];
                gk[oc * 9 + r * 3 + v] += static_cast<T>(s);
            }
    }
}

// Out = (or += with `add`) the correlation `g` describes, of `in` with the filters U (a*a x O x C).
template <class T, int m>
void correlate(const Geometry& g, const T* in, const T* u, T* out, bool add) {
    constexpr int a2 = Winograd<m>::a * Winograd<m>::a;
    const Groups groups = groups_of(g);
    const int tiles = g.tiles();
#pragma omp parallel num_threads(threads_for(g, groups))
    {
        const std::ptrdiff_t cols = static_cast<std::ptrdiff_t>(groups.size) * tiles;
        T* v = scratch<T>(0, a2 * g.C * cols);
        T* mm = scratch<T>(1, a2 * g.O * cols);
        T* work = scratch<T>(2, 2 * a2 * cols);
#pragma omp for schedule(static)
        for (int gi = 0; gi < groups.count; ++gi) {
            const int b0 = groups.first(gi), n = groups.images(gi, g.B), ld = n * tiles;
            input_transform<T, m>(in + b0 * g.in_image(), g, n, v, ld, work);
            for (int pos = 0; pos < a2; ++pos)
                gemm(g.O, ld, g.C, u + static_cast<std::ptrdiff_t>(pos) * g.O * g.C, g.C, false, v + pos * g.C * ld, ld, false,
                     mm + pos * g.O * ld, ld, false);
            output_transform<T, m>(mm, g, n, ld, out + b0 * g.out_image(), add, work);
        }
    }
}

// dK (O x C x 3 x 3) += the weight gradient of the correlation `g` describes, given its input `in`
// and output gradient `gy`.
template <class T, int m>
void weight_gradient(const Geometry& g, const T* in, const T* gy, T* gk) {
    constexpr int a2 = Winograd<m>::a * Winograd<m>::a;
    const Groups groups = groups_of(g);
    const int tiles = g.tiles(), threads = threads_for(g, groups);
    const std::ptrdiff_t du_size = a2 * static_cast<std::ptrdiff_t>(g.O) * g.C;
    std::vector<T> du(static_cast<std::size_t>(du_size * threads), T(0));  // one dU per thread
#pragma omp parallel num_threads(threads)
    {
        const std::ptrdiff_t cols = static_cast<std::ptrdiff_t>(groups.size) * tiles;
        T* v = scratch<T>(0, a2 * g.C * cols);
        T* dm = scratch<T>(1, a2 * g.O * cols);
        T* work = scratch<T>(2, 2 * a2 * cols);
        T* mine = du.data() + omp_get_thread_num() * du_size;
#pragma omp for schedule(static)
        for (int gi = 0; gi < groups.count; ++gi) {
            const int b0 = groups.first(gi), n = groups.images(gi, g.B), ld = n * tiles;
            input_transform<T, m>(in + b0 * g.in_image(), g, n, v, ld, work);
            gradient_transform<T, m>(gy + b0 * g.out_image(), g, n, dm, ld, work);
            for (int pos = 0; pos < a2; ++pos)
                gemm(g.O, g.C, ld, dm + pos * g.O * ld, ld, false, v + pos * g.C * ld, ld, true,
                     mine + static_cast<std::ptrdiff_t>(pos) * g.O * g.C, g.C, true);
        }
    }
    for (int t = 1; t < threads; ++t)
        for (std::ptrdiff_t i = 0; i < du_size; ++i) du[static_cast<std::size_t>(i)] += du[static_cast<std::size_t>(t * du_size + i)];
    filter_gradient<T, m>(du.data(), g.O, g.C, gk);
}

// Refuses what the path cannot run (kernels not 3x3, stride not 1); returns Y's shape.
Shape checked_output_shape(const Shape& x, const Shape& k, const Conv2dOptions& o, int m) {
    const Shape y = output_shape(x, k, o);
    if (k[2] != 3)
        fail("conv2d winograd path: kernels {} are {}x{}; it runs 3x3 kernels only (use im2col or automatic)", k.str(), k[2], k[3]);
    if (o.stride != 1) fail("conv2d winograd path: stride {}; it runs stride 1 only (use im2col or automatic)", o.stride);
    if (m != 2 && m != 4) fail("conv2d winograd path: tile {}x{}; the tiles are 2x2 (F(2x2,3x3)) and 4x4 (F(4x4,3x3))", m, m);
    return y;
}

template <class T>
bool any_non_finite(const Tensor<T>& a, const Tensor<T>& b, const Tensor<T>* c = nullptr) {
    return first_non_finite(a) >= 0 || first_non_finite(b) >= 0 || (c && first_non_finite(*c) >= 0);
}

template <class T, int m>
void forward_tile(const Tensor<T>& x, const Tensor<T>& k, const Conv2dOptions& o, Tensor<T>& y) {
    const Shape ys = y.shape();
    const Geometry g{x.dim(0), x.dim(1), x.dim(2), x.dim(3), k.dim(0), ys[2], ys[3], o.padding, m};
    constexpr int a = Winograd<m>::a;
    std::vector<T> u(static_cast<std::size_t>(a * a) * static_cast<std::size_t>(g.O * g.C));
    filter_transform<T, m>(k.data(), g.O, g.C, false, u.data());
    correlate<T, m>(g, x.data(), u.data(), y.data(), false);
}

template <class T, int m>
void backward_tile(const Tensor<T>& x, const Tensor<T>& k, const Tensor<T>& gy, const Conv2dOptions& o, Tensor<T>* gx, Tensor<T>* gk) {
    const int B = x.dim(0), N = x.dim(1), H = x.dim(2), W = x.dim(3), D = k.dim(0), Ho = gy.dim(2), Wo = gy.dim(3);
    constexpr int a = Winograd<m>::a;
    if (gx) {  // dX = the correlation of dY with rot180(K[i,j]) over i, padding 2 - P
        const Geometry g{B, D, Ho, Wo, N, H, W, 2 - o.padding, m};
        std::vector<T> u(static_cast<std::size_t>(a * a) * static_cast<std::size_t>(N * D));
        filter_transform<T, m>(k.data(), N, D, true, u.data());
        correlate<T, m>(g, gy.data(), u.data(), gx->data(), true);
    }
    if (gk) weight_gradient<T, m>(Geometry{B, N, H, W, D, Ho, Wo, o.padding, m}, x.data(), gy.data(), gk->data());
}

}  // namespace wg
}  // namespace

template <class T>
void forward_winograd_tile(const Tensor<T>& x, const Tensor<T>& k, const Conv2dOptions& o, Tensor<T>& y, int tile) {
    const Shape ys = wg::checked_output_shape(x.shape(), k.shape(), o, tile);
    if (wg::any_non_finite(x, k)) return forward_im2col(x, k, o, y);
    y.resize(ys);
    if (tile == 2) wg::forward_tile<T, 2>(x, k, o, y);
    else wg::forward_tile<T, 4>(x, k, o, y);
}

template <class T>
void backward_winograd_tile(const Tensor<T>& x, const Tensor<T>& k, const Tensor<T>& gy, const Conv2dOptions& o,
                            std::type_identity_t<Tensor<T>>* gx, std::type_identity_t<Tensor<T>>* gk, int tile) {
    const Shape ys = wg::checked_output_shape(x.shape(), k.shape(), o, tile);
    require_same_shape("conv2d backward (dL/dY vs Y)", gy.shape(), ys);
    if (gk) require_same_shape("conv2d backward (dL/dK vs K)", gk->shape(), k.shape());
    if (gx) require_same_shape("conv2d backward (dL/dX vs X)", gx->shape(), x.shape());
    if (!gx && !gk) return;
    if (wg::any_non_finite(x, k, &gy)) return backward_im2col(x, k, gy, o, gx, gk);
    if (tile == 2) wg::backward_tile<T, 2>(x, k, gy, o, gx, gk);
    else wg::backward_tile<T, 4>(x, k, gy, o, gx, gk);
}

template <class T>
void forward_winograd(const Tensor<T>& x, const Tensor<T>& k, const Conv2dOptions& o, Tensor<T>& y) {
    forward_winograd_tile(x, k, o, y, winograd_tile);
}

template <class T>
void backward_winograd(const Tensor<T>& x, const Tensor<T>& k, const Tensor<T>& gy, const Conv2dOptions& o,
                       std::type_identity_t<Tensor<T>>* gx, std::type_identity_t<Tensor<T>>* gk) {
    backward_winograd_tile(x, k, gy, o, gx, gk, winograd_tile);
}

#define MCNN_INSTANTIATE(T)                                                                                                 \
    template void forward_winograd(const Tensor<T>&, const Tensor<T>&, const Conv2dOptions&, Tensor<T>&);                   \
    template void backward_winograd(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, const Conv2dOptions&, Tensor<T>*, \
                                    Tensor<T>*);                                                                            \
    template void forward_winograd_tile(const Tensor<T>&, const Tensor<T>&, const Conv2dOptions&, Tensor<T>&, int);         \
    template void backward_winograd_tile(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, const Conv2dOptions&,        \
                                         Tensor<T>*, Tensor<T>*, int);
MCNN_INSTANTIATE(float)
MCNN_INSTANTIATE(double)
#undef MCNN_INSTANTIATE  // the unity build puts several files in one translation unit

}  // namespace mcnn::conv
