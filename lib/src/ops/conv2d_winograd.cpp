// The Winograd path of the conv layer: r x r kernels (3x3 or 5x5) at stride 1, any padding, by
// Winograd's minimal filtering F(m x m, r x r), the same sums as the plain loops (conv2d_plain.cpp).
//
// One output tile y (m x m) of an r x r correlation reads an input tile d (a x a, a = m + r - 1) and is
//   y = A^T [ (G g G^T) (.) (B^T d B) ] A              ((.) is the element-wise product)
// with g the r x r kernel. The matrices come from Toom-Cook interpolation at the a - 1 finite points
// p_j = 0, 1, -1, 2, -2, 1/2, -1/2 (the first a - 1 of them) and infinity (the last row or column);
// with M(x) = prod_j (x - p_j) and f_j = prod_{l != j} (p_j - p_l):
//   A^T (m x a)  A^T[i][j] = p_j^i                      last column (0, ..., 0, 1)
//   G   (a x r)  G[j][k]   = p_j^k / f_j                last row    (0, ..., 0, 1)
//   B^T (a x a)  B^T[j]    = the coefficients (x^0 first) of M(x) / (x - p_j); last row: those of M(x)
// (1-D: y_i = sum_k d_{i+k} g_k is the transpose of the linear convolution that evaluates both
// factors at the points, multiplies and interpolates back.) For example F(4x4, 3x3), a = 6:
//     B^T = [4  0 -5  0  1  0]    G = [ 1/4    0     0  ]    A^T = [1 1  1 1  1 0]
//           [0 -4 -4  1  1  0]        [-1/6  -1/6  -1/6 ]          [0 1 -1 2 -2 0]
//           [0  4 -4 -1  1  0]        [-1/6   1/6  -1/6 ]          [0 1  1 4  4 0]
//           [0 -2 -1  2  1  0]        [1/24  1/12  1/6  ]          [0 1 -1 8 -8 1]
//           [0  2 -1 -2  1  0]        [1/24 -1/12  1/6  ]
//           [0  4  0 -5  0  1]        [  0     0     1  ]
// and F(2x2, 5x5) has the same B^T (the same six points), G with rows p_j^k / f_j over k < 5 and
// A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 1]. Tiles: m = 2 or 4 for 3x3 (a = 4, 6), m = 2, 3 or 4 for 5x5
// (a = 6, 7, 8): 9, 5.4 or 4 multiplies per output instead of 25.
// A layer sums over channels inside the brackets, so for each of the a*a positions (xi, nu) one
// GEMM over channels does all the multiplies. Over a group of images with T tiles in all:
//   U[xi,nu] (O x C)  = (G K[o,c] G^T)[xi,nu]             filters, once per call
//   V[xi,nu] (C x T)  = (B^T d[c,t] B)[xi,nu]              input tiles (zeros outside the input)
//   M[xi,nu] (O x T)  = U[xi,nu] * V[xi,nu]                a*a GEMMs (kernels::sgemm)
//   Y[o, tile t]      = A^T M[., ., o, t] A                cropped at the right and bottom edges
// Forward: input X (C = N), filters K (O = D), the input tile of output tile (ty, tx) starting at
// row ty*m - P, column tx*m - P.
// Backward data: dX[b,j,r,c] = sum_{i,u,v} dY[b,i,r+P-u,c+P-v] K[i,j,u,v], an r x r correlation of dY
// with the filters K'[j,i] = rot180(K[i,j]) (transposed, turned) and padding r - 1 - P (negative
// for P > r - 1: tiles then start inside dY): the same machinery, input dY, output dX (added into).
// Or, when the layer has more output channels than input channels (D > N), backward data as the
// adjoint of the forward: dM = A dY A^T per tile (D channels, m x m windows: the cheap transform),
// dV[xi,nu] (N x T) = U[xi,nu]^T dM[xi,nu], and the windows B dV B^T added into dX where they
// overlap (N channels: the costly transform). Measured on TunedCNN's 16->64 and 64->128 5x5 layers,
// 1 thread: 1.2-1.5x faster than the turned correlation, whose costly transform runs on dY's D
// channels; about even on 3x3 layers with D = N, which keep the turned correlation.
// Backward weights: differentiate the forward. Y = A^T M A gives dM = A dY A^T per tile (dY's
// m x m tile, zeros past its edge); M = U V gives dU[xi,nu] = dM[xi,nu] (O x T) * V[xi,nu]^T
// (T x C), summed over all groups; U = G K G^T gives dK[o,c] = G^T dU[.,.,o,c] G.
//
// Work splits into groups of whole images with about `group_tiles` tiles, an even number of them
// when more than one (fixed by the shapes, never by the thread count); threads take whole groups,
// each with its own scratch, and for dK its own partial dU, added up in thread order at the end. Y and dX do not depend on the thread count;
// dK only through the rounding of that final sum.
//
// Transforms: the windows of a group's tiles are gathered, channel by channel, into a*a rows
// (one per window element) with one entry per tile; each transform is then a pass over rows and a
// pass over columns, each a sum of a few of those rows, vectorised along all the group's tiles.
//
// Precision: B^T and A^T hold dyadic numbers (exact in float), G's 1/f_j is applied in double.
// F(2x2,3x3) multiplies by 1/2 only and rounds like im2col; larger tiles lose more to cancellation
// (tests: winograd_error_is_bounded states the measured errors against double).
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

// The matrices above for F(m x m, r x r), in double (folded into T at compile time).
template <int m, int r>
struct Winograd {
    static constexpr int a = m + r - 1;
    double BT[a][a] = {}, B[a][a] = {}, G[a][r] = {}, AT[m][a] = {}, A[a][m] = {};
};

// The finite interpolation points, in the order the rows use them.
constexpr double points[] = {0, 1, -1, 2, -2, 0.5, -0.5};

// `poly` (degree < a, x^0 first) times (x - p).
template <int a>
constexpr void times_root(double (&poly)[a], double p) {
    for (int e = a - 1; e > 0; --e) poly[e] = poly[e - 1] - p * poly[e];
    poly[0] = -p * poly[0];
}

template <int m, int r>
constexpr Winograd<m, r> toom_cook() {
    constexpr int a = m + r - 1;
    static_assert(a - 1 <= static_cast<int>(std::size(points)), "F(m, r): not enough interpolation points");
    Winograd<m, r> w;
    double whole[a] = {1};  // M(x)
    for (int j = 0; j < a - 1; ++j) {
        const double p = points[j];
        double row[a] = {1}, f = 1;  // M(x) / (x - p_j) and f_j
        for (int l = 0; l < a - 1; ++l)
            if (l != j) {
                times_root(row, points[l]);
                f *= p - points[l];
            }
        times_root(whole, p);
        double power = 1;  // p^k
        for (int k = 0; k < std::max(m, r); ++k, power *= p) {
            if (k < r) w.G[j][k] = power / f;
            if (k < m) w.AT[k][j] = power;
        }
        for (int e = 0; e < a; ++e) w.BT[j][e] = row[e];
    }
    for (int e = 0; e < a; ++e) w.BT[a - 1][e] = whole[e];
    w.G[a - 1][r - 1] = 1;
    w.AT[m - 1][a - 1] = 1;
    for (int i = 0; i < m; ++i)
        for (int j = 0; j < a; ++j) w.A[j][i] = w.AT[i][j];
    for (int i = 0; i < a; ++i)
        for (int j = 0; j < a; ++j) w.B[j][i] = w.BT[i][j];
    return w;
}

template <int m, int r>
constexpr Winograd<m, r> matrices = toom_cook<m, r>();

// The one hand-written case above comes out of toom_cook.
static_assert(matrices<4, 3>.BT[0][0] == 4 && matrices<4, 3>.BT[0][2] == -5 && matrices<4, 3>.BT[5][3] == -5 &&
              matrices<4, 3>.G[3][2] == 1.0 / 6 && matrices<4, 3>.AT[3][4] == -8 && matrices<4, 3>.AT[3][5] == 1);

// Below this many multiply-adds (direct-conv count) a parallel region costs more than it saves.
constexpr double parallel_min_flops = 2e5;
// A group of images holds at least this many tiles (the GEMMs' N), unless the batch has fewer.
constexpr int group_tiles = 256;

// One r x r correlation the path computes: Out (B x O x Ho x Wo) [b,o,y,x] = sum_{c,u,v}
// In[b, c, y+u-p, x+v-p] * F[o,c,u,v], In (B x C x Hi x Wi) zero outside, on tiles of m x m.
struct Geometry {
    int B, C, Hi, Wi, O, Ho, Wo, p, m, r;
    int th() const { return (Ho + m - 1) / m; }
    int tw() const { return (Wo + m - 1) / m; }
    int tiles() const { return th() * tw(); }
    std::ptrdiff_t in_image() const { return static_cast<std::ptrdiff_t>(C) * Hi * Wi; }
    std::ptrdiff_t out_image() const { return static_cast<std::ptrdiff_t>(O) * Ho * Wo; }
    double flops() const { return static_cast<double>(r) * r * B * O * C * static_cast<double>(Ho) * Wo; }
};

// Groups of `size` images (the last one possibly smaller); from the shapes only.
struct Groups {
    int size, count;
    int first(int g) const { return g * size; }
    int images(int g, int B) const { return std::min(size, B - g * size); }
};
Groups groups_of(const Geometry& g) {
    int size = std::clamp((group_tiles + g.tiles() - 1) / g.tiles(), 1, std::max(g.B, 1));
    int count = (g.B + size - 1) / size;
    // An odd count of groups leaves one of two threads idle for a whole group at the end (64
    // images of 9 tiles made groups of 29, 29 and 6: one thread did 58 images, the other 6), so
    // an odd count becomes the next even one, the images shared out evenly.
    if (count > 1 && count % 2 != 0) {
        size = (g.B + count) / (count + 1);
        count = (g.B + size - 1) / size;
    }
    return {size, count};
}
int threads_for(const Geometry& g, const Groups& groups) {
    if (groups.count < 2 || g.flops() < parallel_min_flops || omp_in_parallel()) return 1;
    return std::min(omp_get_max_threads(), groups.count);
}

// out[i][.] = sum_j Mat[i][j] * in[j][.] over `len` contiguous elements; the rows of `in` are
// `in_step` apart, those of `out` `out_step`. Mat is R x S (constexpr): once the loops are unrolled
// its zeros are skipped and its entries folded in at compile time, so each output row is one
// vectorised pass that reads its few input rows.
template <class T, int R, int S>
inline void combine_rows(const double (&mat)[R][S], const T* __restrict in, std::ptrdiff_t in_step, T* __restrict out,
                         std::ptrdiff_t out_step, std::ptrdiff_t len) {
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
        T* __restrict o = out + i * out_step;
        for (std::ptrdiff_t e = 0; e < len; ++e) {
            T sum = T(0);
            bool first = true;
#pragma GCC unroll 8
            for (int j = 0; j < S; ++j) {
                if (mat[i][j] == 0) continue;
                const T term = static_cast<T>(mat[i][j]) * in[j * in_step + e];
                sum = first ? term : sum + term;
                first = false;
            }
            o[e] = sum;
        }
    }
}

// P (hp x wp) = the h x w plane moved down and right by p: P[y][x] = plane[y - p][x - p], zero
// where that falls outside the plane (p < 0 drops its first rows and columns).
template <class T>
void pad_plane(const T* plane, int h, int w, int p, int hp, int wp, T* out) {
    const int x0 = std::clamp(p, 0, wp), x1 = std::clamp(p + w, x0, wp);  // the columns the plane fills
    for (int y = 0; y < hp; ++y) {
        T* o = out + static_cast<std::ptrdiff_t>(y) * wp;
        const int sy = y - p;
        if (sy < 0 || sy >= h || x1 == x0) {
            std::fill(o, o + wp, T(0));
            continue;
        }
        const T* row = plane + static_cast<std::ptrdiff_t>(sy) * w;
        std::fill(o, o + x0, T(0));
        std::copy(row + (x0 - p), row + (x1 - p), o + x0);
        std::fill(o + x1, o + wp, T(0));
    }
}

// d[(r*S + s)*ld + t0 + ty*tw + tx] = P[ty*m + r][tx*m + s]: the S x S windows of th x tw tiles of
// m x m in the padded plane P (rows of wp, at least (th - 1)*m + S of them).
template <class T, int m, int S>
void gather_windows(const T* __restrict P, int wp, int th, int tw, T* __restrict d, std::ptrdiff_t ld, int t0) {
    for (int r = 0; r < S; ++r)
        for (int s = 0; s < S; ++s) {
            T* o = d + (r * S + s) * ld + t0;
            for (int ty = 0; ty < th; ++ty) {
                const T* src = P + static_cast<std::ptrdiff_t>(ty * m + r) * wp + s;
                for (int tx = 0; tx < tw; ++tx) o[ty * tw + tx] = src[tx * m];
            }
        }
}

// out[(i*R + j)*out_step + t] = (Mat d_t Mat^T)[i][j] for the S x S windows d_t in
// d[(r*S + s)*in_step + t], t in [0, ld); tmp holds R*S*ld elements.
template <class T, int R, int S>
void transform_windows(const double (&mat)[R][S], const T* d, std::ptrdiff_t in_step, T* tmp, std::ptrdiff_t ld, T* out,
                       std::ptrdiff_t out_step) {
    if (in_step == ld) combine_rows<T, R, S>(mat, d, S * ld, tmp, S * ld, S * ld);  // rows: tmp[i][s][t] = (Mat d_t)[i][s]
    else
        for (int s = 0; s < S; ++s) combine_rows<T, R, S>(mat, d + s * in_step, S * in_step, tmp + s * ld, S * ld, ld);
    for (int i = 0; i < R; ++i)                                      // columns: (Mat d_t) Mat^T
        combine_rows<T, R, S>(mat, tmp + i * S * ld, ld, out + i * R * out_step, out_step, ld);
}

// V (a*a x C x ld) = B^T d B of the input tiles of the group's n images from `in` (n x C x Hi x Wi).
// work holds work_size(g, ld) elements.
template <class T, int m, int r>
void input_transform(const T* in, const Geometry& g, int n, T* v, std::ptrdiff_t ld, T* work) {
    constexpr int a = Winograd<m, r>::a;
    T* d = work;
    T* tmp = work + a * a * ld;
    T* padded = tmp + a * a * ld;
    const int hp = g.th() * m + a - m, wp = g.tw() * m + a - m;
    for (int c = 0; c < g.C; ++c) {
        for (int j = 0; j < n; ++j) {
            pad_plane(in + j * g.in_image() + static_cast<std::ptrdiff_t>(c) * g.Hi * g.Wi, g.Hi, g.Wi, g.p, hp, wp, padded);
            gather_windows<T, m, a>(padded, wp, g.th(), g.tw(), d, ld, j * g.tiles());
        }
        transform_windows<T, a, a>(matrices<m, r>.BT, d, ld, tmp, ld, v + c * ld, g.C * ld);
    }
}

// dM (a*a x O x ld) = A dy A^T of the m x m tiles dy of the group's n images' output gradient
// `gy` (n x O x Ho x Wo), zeros past its edges. work holds work_size(g, ld) elements.
template <class T, int m, int r>
void gradient_transform(const T* gy, const Geometry& g, int n, T* dm, std::ptrdiff_t ld, T* work) {
    constexpr int a = Winograd<m, r>::a;
    T* d = work;
    T* tmp = work + a * a * ld;
    T* padded = tmp + a * a * ld;
    const int hp = g.th() * m, wp = g.tw() * m;
    for (int o = 0; o < g.O; ++o) {
        for (int j = 0; j < n; ++j) {
            pad_plane(gy + j * g.out_image() + static_cast<std::ptrdiff_t>(o) * g.Ho * g.Wo, g.Ho, g.Wo, 0, hp, wp, padded);
            gather_windows<T, m, m>(padded, wp, g.th(), g.tw(), d, ld, j * g.tiles());
        }
        transform_windows<T, a, m>(matrices<m, r>.A, d, ld, tmp, ld, dm + o * ld, g.O * ld);
    }
}

// Out (the group's n images, n x O x Ho x Wo) = or += A^T M A of the tiles of M (a*a x O x ld),
// cropped at the right and bottom edges. work holds work_size(g, ld) elements.
template <class T, int m, int r>
void output_transform(const T* mm, const Geometry& g, int n, std::ptrdiff_t ld, T* out, bool add, T* work) {
    constexpr int a = Winograd<m, r>::a;
    const int tw = g.tw();
    const std::ptrdiff_t pos_step = static_cast<std::ptrdiff_t>(g.O) * ld;
    T* cols = work;            // a x m x ld: M A
    T* rows = work + a * a * ld;  // m x m x ld: A^T (M A)
    for (int o = 0; o < g.O; ++o) {
        for (int i = 0; i < a; ++i)
            combine_rows<T, m, a>(matrices<m, r>.AT, mm + i * a * pos_step + o * ld, pos_step, cols + i * m * ld, ld, ld);
        combine_rows<T, m, a>(matrices<m, r>.AT, cols, m * ld, rows, m * ld, m * ld);
        for (int j = 0; j < n; ++j) {
            T* plane = out + j * g.out_image() + static_cast<std::ptrdiff_t>(o) * g.Ho * g.Wo;
            for (int ty = 0; ty < g.th(); ++ty)
                for (int i = 0; i < m && ty * m + i < g.Ho; ++i) {
                    T* y = plane + static_cast<std::ptrdiff_t>(ty * m + i) * g.Wo;
                    for (int jj = 0; jj < m; ++jj) {
                        const T* t = rows + (i * m + jj) * ld + j * g.tiles() + ty * tw;
                        for (int tx = 0; tx < tw && tx * m + jj < g.Wo; ++tx) y[tx * m + jj] = add ? y[tx * m + jj] + t[tx] : t[tx];
                    }
                }
        }
    }
}

// U (a*a x O x C) = G f G^T for the filters f[o,c] = K[o,c] (K: O x C x r x r), or with `turned`
// f[o,c] = rot180(K[c,o]) (K: C x O x r x r). Summed in double.
template <class T, int m, int r>
void filter_transform(const T* k, int O, int C, bool turned, T* u) {
    constexpr int a = Winograd<m, r>::a;
    const auto& G = matrices<m, r>.G;
    for (int o = 0; o < O; ++o)
        for (int c = 0; c < C; ++c) {
            const T* f = k + (turned ? static_cast<std::ptrdiff_t>(c) * O + o : static_cast<std::ptrdiff_t>(o) * C + c) * r * r;
            double gf[a][r] = {};  // G f
            for (int i = 0; i < a; ++i)
                for (int s = 0; s < r; ++s)
                    for (int v = 0; v < r; ++v)
                        gf[i][v] += G[i][s] * static_cast<double>(turned ? f[(r - 1 - s) * r + r - 1 - v] : f[s * r + v]);
            for (int i = 0; i < a; ++i)
                for (int j = 0; j < a; ++j) {
                    double sum = 0;
                    for (int v = 0; v < r; ++v) sum += gf[i][v] * G[j][v];
                    u[((static_cast<std::ptrdiff_t>(i) * a + j) * O + o) * C + c] = static_cast<T>(sum);
                }
        }
}

// dK (O x C x r x r) += G^T dU[., ., o, c] G for dU (a*a x O x C).
template <class T, int m, int r>
void filter_gradient(const T* du, int O, int C, T* gk) {
    constexpr int a = Winograd<m, r>::a;
    const auto& G = matrices<m, r>.G;
    const std::ptrdiff_t pos_step = static_cast<std::ptrdiff_t>(O) * C;
    for (std::ptrdiff_t oc = 0; oc < pos_step; ++oc) {
        double gd[r][a] = {};  // G^T dU
        for (int s = 0; s < r; ++s)
            for (int i = 0; i < a; ++i)
                for (int j = 0; j < a; ++j) gd[s][j] += G[i][s] * static_cast<double>(du[(i * a + j) * pos_step + oc]);
        for (int s = 0; s < r; ++s)
            for (int v = 0; v < r; ++v) {
                double sum = 0;
                for (int j = 0; j < a; ++j) sum += gd[s][j] * G[j][v];
                gk[(oc * r + s) * r + v] += static_cast<T>(sum);
            }
    }
}

// dIn (the group's n images, n x C x Hi x Wi) += the adjoint of input_transform for dV (a*a x C x
// ld): the windows B dV_t B^T of the tiles, added up where they overlap and cropped to the plane.
// work holds work_size(g, ld) elements.
template <class T, int m, int r>
void input_adjoint(const T* dv, const Geometry& g, int n, std::ptrdiff_t ld, T* gin, T* work) {
    constexpr int a = Winograd<m, r>::a;
    T* d = work;
    T* tmp = work + a * a * ld;
    T* padded = tmp + a * a * ld;
    const int th = g.th(), tw = g.tw(), hp = th * m + a - m, wp = tw * m + a - m;
    for (int c = 0; c < g.C; ++c) {
        transform_windows<T, a, a>(matrices<m, r>.B, dv + c * ld, g.C * ld, tmp, ld, d, ld);
        for (int j = 0; j < n; ++j) {
            std::fill(padded, padded + static_cast<std::ptrdiff_t>(hp) * wp, T(0));
            for (int i = 0; i < a; ++i)
                for (int s = 0; s < a; ++s) {
                    const T* w = d + (i * a + s) * ld + j * g.tiles();
                    for (int ty = 0; ty < th; ++ty) {
                        T* row = padded + static_cast<std::ptrdiff_t>(ty * m + i) * wp + s;
                        for (int tx = 0; tx < tw; ++tx) row[tx * m] += w[ty * tw + tx];
                    }
                }
            T* plane = gin + j * g.in_image() + static_cast<std::ptrdiff_t>(c) * g.Hi * g.Wi;
            for (int y = 0; y < g.Hi; ++y)
                for (int x = 0; x < g.Wi; ++x) plane[y * g.Wi + x] += padded[static_cast<std::ptrdiff_t>(y + g.p) * wp + x + g.p];
        }
    }
}

// The elements the transforms' work area holds for groups of `cols` tiles: two sets of windows
// and a padded plane.
template <int m, int r>
std::ptrdiff_t work_size(const Geometry& g, std::ptrdiff_t cols) {
    constexpr int a = Winograd<m, r>::a;
    return 2 * a * a * cols + static_cast<std::ptrdiff_t>(g.th() * m + a - m) * (g.tw() * m + a - m);
}

// Out = (or += with `add`) the correlation `g` describes, of `in` with the filters U (a*a x O x C).
template <class T, int m, int r>
void correlate(const Geometry& g, const T* in, const T* u, T* out, bool add) {
    constexpr int a2 = Winograd<m, r>::a * Winograd<m, r>::a;
    const Groups groups = groups_of(g);
    const int tiles = g.tiles();
#pragma omp parallel num_threads(threads_for(g, groups))
    {
        const std::ptrdiff_t cols = static_cast<std::ptrdiff_t>(groups.size) * tiles;
        T* v = scratch<T>(0, a2 * g.C * cols);
        T* mm = scratch<T>(1, a2 * g.O * cols);
        T* work = scratch<T>(2, work_size<m, r>(g, cols));
#pragma omp for schedule(static)
        for (int gi = 0; gi < groups.count; ++gi) {
            const int b0 = groups.first(gi), n = groups.images(gi, g.B), ld = n * tiles;
            input_transform<T, m, r>(in + b0 * g.in_image(), g, n, v, ld, work);
            for (int pos = 0; pos < a2; ++pos)
                gemm(g.O, ld, g.C, u + static_cast<std::ptrdiff_t>(pos) * g.O * g.C, g.C, false, v + pos * g.C * ld, ld, false,
                     mm + pos * g.O * ld, ld, false);
            output_transform<T, m, r>(mm, g, n, ld, out + b0 * g.out_image(), add, work);
        }
    }
}

// dIn (B x C x Hi x Wi) += the input gradient of the correlation `g` describes (p >= 0), given its
// output gradient `gy` and its filters U (a*a x O x C): per group dM = A dy A^T, dV[xi,nu] (C x T)
// = U[xi,nu]^T dM[xi,nu], then the adjoint of the input transform.
template <class T, int m, int r>
void input_gradient(const Geometry& g, const T* gy, const T* u, T* gin) {
    constexpr int a2 = Winograd<m, r>::a * Winograd<m, r>::a;
    const Groups groups = groups_of(g);
    const int tiles = g.tiles();
#pragma omp parallel num_threads(threads_for(g, groups))
    {
        const std::ptrdiff_t cols = static_cast<std::ptrdiff_t>(groups.size) * tiles;
        T* dv = scratch<T>(0, a2 * g.C * cols);
        T* dm = scratch<T>(1, a2 * g.O * cols);
        T* work = scratch<T>(2, work_size<m, r>(g, cols));
#pragma omp for schedule(static)
        for (int gi = 0; gi < groups.count; ++gi) {
            const int b0 = groups.first(gi), n = groups.images(gi, g.B), ld = n * tiles;
            gradient_transform<T, m, r>(gy + b0 * g.out_image(), g, n, dm, ld, work);
            for (int pos = 0; pos < a2; ++pos)
                gemm(g.C, ld, g.O, u + static_cast<std::ptrdiff_t>(pos) * g.O * g.C, g.C, true, dm + pos * g.O * ld, ld, false,
                     dv + pos * g.C * ld, ld, false);
            input_adjoint<T, m, r>(dv, g, n, ld, gin + b0 * g.in_image(), work);
        }
    }
}

// dK (O x C x r x r) += the weight gradient of the correlation `g` describes, given its input `in`
// and output gradient `gy`.
template <class T, int m, int r>
void weight_gradient(const Geometry& g, const T* in, const T* gy, T* gk) {
    constexpr int a2 = Winograd<m, r>::a * Winograd<m, r>::a;
    const Groups groups = groups_of(g);
    const int tiles = g.tiles(), threads = threads_for(g, groups);
    const std::ptrdiff_t du_size = a2 * static_cast<std::ptrdiff_t>(g.O) * g.C;
    std::vector<T> du(static_cast<std::size_t>(du_size * threads), T(0));  // one dU per thread
#pragma omp parallel num_threads(threads)
    {
        const std::ptrdiff_t cols = static_cast<std::ptrdiff_t>(groups.size) * tiles;
        T* v = scratch<T>(0, a2 * g.C * cols);
        T* dm = scratch<T>(1, a2 * g.O * cols);
        T* work = scratch<T>(2, work_size<m, r>(g, cols));
        T* mine = du.data() + omp_get_thread_num() * du_size;
#pragma omp for schedule(static)
        for (int gi = 0; gi < groups.count; ++gi) {
            const int b0 = groups.first(gi), n = groups.images(gi, g.B), ld = n * tiles;
            input_transform<T, m, r>(in + b0 * g.in_image(), g, n, v, ld, work);
            gradient_transform<T, m, r>(gy + b0 * g.out_image(), g, n, dm, ld, work);
            for (int pos = 0; pos < a2; ++pos)
                gemm(g.O, g.C, ld, dm + pos * g.O * ld, ld, false, v + pos * g.C * ld, ld, true,
                     mine + static_cast<std::ptrdiff_t>(pos) * g.O * g.C, g.C, true);
        }
    }
    for (int t = 1; t < threads; ++t)
        for (std::ptrdiff_t i = 0; i < du_size; ++i) du[static_cast<std::size_t>(i)] += du[static_cast<std::size_t>(t * du_size + i)];
    filter_gradient<T, m, r>(du.data(), g.O, g.C, gk);
}

// Whether the path runs F(tile x tile, r x r): 3x3 kernels on tiles of 2 or 4, 5x5 on 2, 3 or 4.
bool runs(int r, int tile) {
    return (r == 3 && (tile == 2 || tile == 4)) || (r == 5 && tile >= 2 && tile <= 4);
}

// Refuses what the path cannot run (kernels not 3x3 or 5x5, stride not 1, a tile it lacks);
// returns Y's shape.
Shape checked_output_shape(const Shape& x, const Shape& k, const Conv2dOptions& o, int m) {
    const Shape y = output_shape(x, k, o);
    if (k[2] != 3 && k[2] != 5)
        fail("conv2d winograd path: kernels {} are {}x{}; it runs 3x3 and 5x5 kernels only (use im2col or automatic)", k.str(), k[2],
             k[3]);
    if (o.stride != 1) fail("conv2d winograd path: stride {}; it runs stride 1 only (use im2col or automatic)", o.stride);
    if (!runs(k[2], m))
        fail("conv2d winograd path: tile {}x{} for {}x{} kernels; the tiles are 2x2 and 4x4 for 3x3 kernels, 2x2, 3x3 and 4x4 for "
             "5x5",
             m, m, k[2], k[2]);
    return y;
}

template <class T>
bool any_non_finite(const Tensor<T>& a, const Tensor<T>& b, const Tensor<T>* c = nullptr) {
    return first_non_finite(a) >= 0 || first_non_finite(b) >= 0 || (c && first_non_finite(*c) >= 0);
}

// Calls f.template operator()<m, r>() for the tile m and kernel size r (checked by runs()).
template <class F>
void with_tile(int m, int r, F&& f) {
    if (r == 3) {
        if (m == 2) f.template operator()<2, 3>();
        else f.template operator()<4, 3>();
    } else if (m == 2) f.template operator()<2, 5>();
    else if (m == 3) f.template operator()<3, 5>();
    else f.template operator()<4, 5>();
}

template <class T, int m, int r>
void forward_tile(const Tensor<T>& x, const Tensor<T>& k, const Conv2dOptions& o, Tensor<T>& y) {
    const Shape ys = y.shape();
    const Geometry g{x.dim(0), x.dim(1), x.dim(2), x.dim(3), k.dim(0), ys[2], ys[3], o.padding, m, r};
    constexpr int a = Winograd<m, r>::a;
    std::vector<T> u(static_cast<std::size_t>(a * a) * static_cast<std::size_t>(g.O * g.C));
    filter_transform<T, m, r>(k.data(), g.O, g.C, false, u.data());
    correlate<T, m, r>(g, x.data(), u.data(), y.data(), false);
}

template <class T, int m, int r>
void backward_tile(const Tensor<T>& x, const Tensor<T>& k, const Tensor<T>& gy, const Conv2dOptions& o, Tensor<T>* gx, Tensor<T>* gk) {
    const int B = x.dim(0), N = x.dim(1), H = x.dim(2), W = x.dim(3), D = k.dim(0), Ho = gy.dim(2), Wo = gy.dim(3);
    constexpr int a = Winograd<m, r>::a;
    if (gx && D > N) {  // dX = the adjoint of the forward (transforms on D channels of dY are the cheap ones)
        const Geometry g{B, N, H, W, D, Ho, Wo, o.padding, m, r};
        std::vector<T> u(static_cast<std::size_t>(a * a) * static_cast<std::size_t>(N * D));
        filter_transform<T, m, r>(k.data(), D, N, false, u.data());
        input_gradient<T, m, r>(g, gy.data(), u.data(), gx->data());
    } else if (gx) {  // dX = the correlation of dY with rot180(K[i,j]) over i, padding r - 1 - P
        const Geometry g{B, D, Ho, Wo, N, H, W, r - 1 - o.padding, m, r};
        std::vector<T> u(static_cast<std::size_t>(a * a) * static_cast<std::size_t>(N * D));
        filter_transform<T, m, r>(k.data(), N, D, true, u.data());
        correlate<T, m, r>(g, gy.data(), u.data(), gx->data(), true);
    }
    if (gk) weight_gradient<T, m, r>(Geometry{B, N, H, W, D, Ho, Wo, o.padding, m, r}, x.data(), gy.data(), gk->data());
}

}  // namespace wg
}  // namespace

template <class T>
void forward_winograd_tile(const Tensor<T>& x, const Tensor<T>& k, const Conv2dOptions& o, Tensor<T>& y, int tile) {
    const Shape ys = wg::checked_output_shape(x.shape(), k.shape(), o, tile);
    if (wg::any_non_finite(x, k)) return forward_im2col(x, k, o, y);
    y.resize(ys);
    wg::with_tile(tile, k.dim(2), [&]<int m, int r>() { wg::forward_tile<T, m, r>(x, k, o, y); });
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
    wg::with_tile(tile, k.dim(2), [&]<int m, int r>() { wg::backward_tile<T, m, r>(x, k, gy, o, gx, gk); });
}

template <class T>
void forward_winograd(const Tensor<T>& x, const Tensor<T>& k, const Conv2dOptions& o, Tensor<T>& y) {
    forward_winograd_tile(x, k, o, y, winograd_tile(k.rank() == 4 ? k.dim(2) : 0));
}

template <class T>
void backward_winograd(const Tensor<T>& x, const Tensor<T>& k, const Tensor<T>& gy, const Conv2dOptions& o,
                       std::type_identity_t<Tensor<T>>* gx, std::type_identity_t<Tensor<T>>* gk) {
    backward_winograd_tile(x, k, gy, o, gx, gk, winograd_tile(k.rank() == 4 ? k.dim(2) : 0));
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
