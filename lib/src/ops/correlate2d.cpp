// 2-D correlate2d / convolve2d, the correlate2d path of the conv layer (loops of them over planes)
// and the conv2d tape node, which runs any of the paths.
// See mcnn/ops/correlate2d.hpp for the maths and shapes.
//
// Everything here runs on one 2-D kernel, correlate_add: out += a sum of valid correlations of
// planes with kernels, e.g. Y[b,i] += sum_j correlate2d(Xp[b,j], K[i,j]). The layer loops over the
// (image, output channel) or (output channel, input channel) planes it writes and hands the sum
// over the third index to correlate_add. That has two loop orders, chosen by shape: a wide output
// (the layer's forward and dX) is computed a few output rows at a time, vectorised along the rows;
// a small output under a large kernel (the layer's dK: 5 x 5 out of a 32 x 32 plane under a
// 28 x 28 kernel) is computed as dot products along the kernel's rows. Both keep their sums in
// vector registers and move whole vectors, so every plane they touch lives in a buffer with room
// for a vector past each row (see Planes).
#include "mcnn/ops/correlate2d.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include <fmt/format.h>

namespace mcnn {
namespace {

// --- Vectors ---
// N lanes of T as a GCC/Clang vector: + and * act lane by lane and compile to SIMD instructions.
template <class T, int N>
using Vec [[gnu::vector_size(N * sizeof(T))]] = T;
// Per-lane condition for `mask ? a : b` on Vec<T, N> (all bits set where true).
template <class T, int N>
using Mask = Vec<std::conditional_t<sizeof(T) == 4, std::int32_t, std::int64_t>, N>;

// The target's widest vector register, in bytes.
#if defined(__AVX512F__)
constexpr int vector_bytes = 64;
#elif defined(__AVX__)
constexpr int vector_bytes = 32;
#else
constexpr int vector_bytes = 16;
#endif
// Lanes of the two loop orders' vectors. correlate_rows: one widest register (16 floats with
// AVX-512). correlate_dots: at most 32 bytes (8 floats): its loads start at any column, and a
// narrower load crosses a cache line less often.
template <class T>
constexpr int row_lanes = vector_bytes / static_cast<int>(sizeof(T));
template <class T>
constexpr int dot_lanes = std::min(vector_bytes, 32) / static_cast<int>(sizeof(T));

template <int N, class T>
Vec<T, N> load(const T* p) {  // any alignment
    Vec<T, N> v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
template <int N, class T>
void store(T* p, const std::type_identity_t<Vec<T, N>>& v) {  // T from p alone
    std::memcpy(p, &v, sizeof v);
}
template <class T, int N>
Mask<T, N> lanes_below(int n) {
    Mask<T, N> m{};
    for (int c = 0; c < n && c < N; ++c) m[c] = -1;
    return m;
}
// The sum of v's N lanes: its two halves added, recursively.
template <class T, int N>
T sum_lanes(const Vec<T, N>& v) {
    if constexpr (N == 2) {
        return v[0] + v[1];
    } else {
        Vec<T, N / 2> lo, hi;
        std::memcpy(&lo, &v, sizeof lo);
        std::memcpy(&hi, reinterpret_cast<const char*>(&v) + sizeof lo, sizeof hi);
        return sum_lanes<T, N / 2>(lo + hi);
    }
}

template <class T>
constexpr int round_up(int n) {  // to whole vectors of correlate_rows
    return (n + row_lanes<T> - 1) / row_lanes<T> * row_lanes<T>;
}

// OpenMP splits the layer's planes among threads only above this many multiply-adds per call:
// below it a thread barrier costs more than the work.
constexpr std::size_t parallel_threshold = 1 << 16;

// A rows x cols window of a row-major plane whose rows start `stride` elements apart.
template <class T>
struct View {
    T* data;
    int rows, cols, stride;
    T* row(int r) const { return data + static_cast<std::ptrdiff_t>(r) * stride; }
    View<T> window(int r, int c, int rows_, int cols_) const { return {row(r) + c, rows_, cols_, stride}; }
    operator View<const T>() const
        requires(!std::is_const_v<T>)
    {
        return {data, rows, cols, stride};
    }
};

// --- The 2-D kernel ---
// correlate_add computes out[r, c] += sum_t sum_{u,v} in_t[r + u, c + v] * k_t[u, v] over the out
// window: a sum of 2-D valid correlations of planes of one shape (out.rows + k.rows - 1 <=
// in.rows, likewise for cols), like Y[b,i] = sum_j correlate2d(Xp[b,j], K[i,j]). Term t's plane
// and kernel lie t steps after the first ones. The sum over t is taken inside the loops below,
// so that it stays in registers.
template <class T>
struct Correlations {
    View<const T> in, k;  // term 0
    int terms = 1;
    std::ptrdiff_t in_step = 0, k_step = 0;  // elements from one term's plane (kernel) to the next
    const T* in_plane(int t) const { return in.data + t * in_step; }
    const T* kernel(int t) const { return k.data + t * k_step; }
};

// Both loop orders are compiled once per block size and kept out of line (noinline), so that the
// compiler allocates each one's registers on its own: inlined into one function, the sums spilled
// to the stack. Both read a whole vector from any column of a plane or kernel they use (up to
// row_lanes - 1 elements past a row's end; what they read there is never used), and
// correlate_rows adds a whole vector into out from each multiple of row_lanes (out.stride >=
// round_up(out.cols); the lanes past out.cols get sums nobody uses). So the last row of each
// must be followed by row_lanes - 1 spare elements: Planes provides them.

// Loop order for a wide output. R output rows from r0, a vector of columns at a time: the R sums
// stay in registers while each kernel element is broadcast once and multiplies R input rows (R
// independent sums, so consecutive multiply-adds need not wait on each other). Each step reads
// an input row from column c0 + v, contiguous.
template <class T, int R>
[[gnu::noinline]] void correlate_rows(const Correlations<T>& s, const View<T>& out, int r0) {
    constexpr int L = row_lanes<T>;
    for (int c0 = 0; c0 < out.cols; c0 += L) {
        Vec<T, L> acc[R];
        for (int r = 0; r < R; ++r) acc[r] = load<L>(out.row(r0 + r) + c0);
        for (int t = 0; t < s.terms; ++t) {
            const T* in = s.in_plane(t) + static_cast<std::ptrdiff_t>(r0) * s.in.stride + c0;  // in[r0, c0]
            for (int u = 0; u < s.k.rows; ++u) {
                const T* krow = s.kernel(t) + static_cast<std::ptrdiff_t>(u) * s.k.stride;
                for (int v = 0; v < s.k.cols; ++v) {
                    const Vec<T, L> kv = krow[v] - Vec<T, L>{};  // broadcast (x - 0 is x, even for x = -0)
                    for (int r = 0; r < R; ++r) acc[r] += kv * load<L>(in + static_cast<std::ptrdiff_t>(r + u) * s.in.stride + v);
                }
            }
        }
        for (int r = 0; r < R; ++r) store<L>(out.row(r0 + r) + c0, acc[r]);
    }
}

// Loop order for a small output under a large kernel. G outputs at once, output g reading each
// plane from offset corner[g] (its (r, c)) and adding into *dst[g]; each is the dot product of the
// kernel with the input under it, taken a kernel row at a time, a vector of columns at a time
// (contiguous in both). The G sums stay in registers and each kernel vector is read once for all
// G; at the end each sum's lanes are added up. In the last, partial vector of a kernel row the
// lanes past the row are zeroed in both factors (selected away, so an inf beyond the kernel's
// reach adds an exact 0, not a NaN).
template <class T, int G>
[[gnu::noinline]] void correlate_dots(const Correlations<T>& s, const std::ptrdiff_t* corner, T* const* dst) {
    constexpr int L = dot_lanes<T>;
    const int full = s.k.cols / L * L;  // columns covered by whole vectors
    const Mask<T, L> in_row = lanes_below<T, L>(s.k.cols - full);
    Vec<T, L> acc[G] = {};
    for (int t = 0; t < s.terms; ++t) {
        const T* in = s.in_plane(t);
        for (int u = 0; u < s.k.rows; ++u) {
            const T* krow = s.kernel(t) + static_cast<std::ptrdiff_t>(u) * s.k.stride;
            const T* in_u = in + static_cast<std::ptrdiff_t>(u) * s.in.stride;  // in[u, 0]
            for (int v0 = 0; v0 < full; v0 += L) {
                const Vec<T, L> kv = load<L>(krow + v0);
                for (int g = 0; g < G; ++g) acc[g] += load<L>(in_u + corner[g] + v0) * kv;
            }
            if (full < s.k.cols) {
                const Vec<T, L> kv = in_row ? load<L>(krow + full) : Vec<T, L>{};
                for (int g = 0; g < G; ++g) acc[g] += (in_row ? load<L>(in_u + corner[g] + full) : Vec<T, L>{}) * kv;
            }
        }
    }
    for (int g = 0; g < G; ++g) *dst[g] += sum_lanes<T, L>(acc[g]);
}

// The block sizes the two loop orders are compiled for: 1 .. max_block rows (or outputs).
constexpr int max_block = 8;

// Calls f(std::integral_constant<int, n>{}) for a block size n in 1 .. max_block.
template <class F>
void with_block_size(int n, F&& f) {
    switch (n) {
        case 1: f(std::integral_constant<int, 1>{}); break;
        case 2: f(std::integral_constant<int, 2>{}); break;
        case 3: f(std::integral_constant<int, 3>{}); break;
        case 4: f(std::integral_constant<int, 4>{}); break;
        case 5: f(std::integral_constant<int, 5>{}); break;
        case 6: f(std::integral_constant<int, 6>{}); break;
        case 7: f(std::integral_constant<int, 7>{}); break;
        case 8: f(std::integral_constant<int, 8>{}); break;
        default: break;
    }
}

// The 2-D kernel (stride 1): picks the loop order by comparing the output's width with the
// kernel's. Either way the work (rows, or outputs) is cut into blocks of at most max_block, all
// of nearly the same size (28 rows: 4 blocks of 7; 10 rows: 2 of 5; 25 outputs: 6, 6, 6, 7).
template <class T>
void correlate_add(const Correlations<T>& s, const View<T>& out) {
    if (out.rows <= 0 || out.cols <= 0 || s.terms <= 0) return;
    const bool wide = out.cols >= s.k.cols;
    const int n = wide ? out.rows : out.rows * out.cols, blocks = (n + max_block - 1) / max_block;
    int r = 0, c = 0;  // dK: the next output, in row-major order
    for (int b = 0; b < blocks; ++b) {
        const int first = n * b / blocks, size = n * (b + 1) / blocks - first;
        if (wide) {  // forward, dX: vectorise along output rows
            with_block_size(size, [&](auto R) { correlate_rows<T, R>(s, out, first); });
        } else {  // dK: vectorise along kernel rows
            std::ptrdiff_t corner[max_block];
            T* dst[max_block];
            for (int g = 0; g < size; ++g) {
                corner[g] = static_cast<std::ptrdiff_t>(r) * s.in.stride + c;
                dst[g] = out.row(r) + c;
                if (++c == out.cols) ++r, c = 0;
            }
            with_block_size(size, [&](auto G) { correlate_dots<T, G>(s, corner, dst); });
        }
    }
}

// The strided forward: out[r, c] += sum_{u,v} in[r*stride + u, c*stride + v] * k[u, v]. Plain
// loops, the inner one along an output row.
template <class T>
void correlate_add_strided(const View<const T>& in, const View<const T>& k, const View<T>& out, int stride) {
    for (int r = 0; r < out.rows; ++r) {
        T* o = out.row(r);
        for (int u = 0; u < k.rows; ++u) {
            const T* row = in.row(r * stride + u);
            for (int v = 0; v < k.cols; ++v) {
                const T kv = k.row(u)[v];
                for (int c = 0; c < out.cols; ++c) o[c] += kv * row[c * stride + v];
            }
        }
    }
}

// --- Buffers of planes ---

// `count` planes of rows x cols, zero-filled, one after another, then a vector of spare zeros:
// what correlate_add needs. Rows are packed (an input's rows, stride cols) or start at whole
// vectors (an output's rows, stride round_up(cols)).
enum class RowStart { packed, whole_vectors };

template <class T>
class Planes {
public:
    Planes(int count, int rows, int cols, RowStart start = RowStart::packed)
        : rows_(rows),
          cols_(cols),
          stride_(start == RowStart::packed ? cols : round_up<T>(cols)),
          data_(static_cast<std::size_t>(count) * rows * stride_ + row_lanes<T>, T(0)) {}
    View<T> operator[](int p) { return {data_.data() + offset(p), rows_, cols_, stride_}; }
    View<const T> operator[](int p) const { return {data_.data() + offset(p), rows_, cols_, stride_}; }
    std::ptrdiff_t step() const { return static_cast<std::ptrdiff_t>(rows_) * stride_; }  // from one plane to the next
    void set_zero() { std::fill(data_.begin(), data_.end(), T(0)); }

    // Copies `count` h x w planes from `src` into planes 0.., element (r, c) of each to
    // (pad + r*spread, pad + c*spread): zero padding, and with spread > 1 dilation.
    void place(const T* src, int count, int h, int w, int pad, int spread = 1) {
        for (int p = 0; p < count; ++p) {
            const T* s = src + static_cast<std::ptrdiff_t>(p) * h * w;
            const View<T> d = (*this)[p];
            for (int r = 0; r < h; ++r)
                for (int c = 0; c < w; ++c) d.row(pad + r * spread)[pad + c * spread] = s[r * w + c];
        }
    }

private:
    std::ptrdiff_t offset(int p) const { return static_cast<std::ptrdiff_t>(p) * rows_ * stride_; }
    int rows_, cols_, stride_;
    std::vector<T, Eigen::aligned_allocator<T>> data_;  // planes start at the same alignment as a Tensor's data
};

// dst += src, over src's rows x cols.
template <class T>
void add_into(const View<const T>& src, const View<T>& dst) {
    for (int r = 0; r < src.rows; ++r)
        for (int c = 0; c < src.cols; ++c) dst.row(r)[c] += src.row(r)[c];
}

// A copy of the window as a rank-2 tensor.
template <class T>
Tensor<T> to_tensor(const View<const T>& v) {
    Tensor<T> out(Shape{v.rows, v.cols});
    for (int r = 0; r < v.rows; ++r) std::copy(v.row(r), v.row(r) + v.cols, out.data() + static_cast<std::ptrdiff_t>(r) * v.cols);
    return out;
}

// Plane p of a tensor of rows x cols planes.
template <class T>
View<T> tensor_plane(T* data, int p, int rows, int cols) {
    return {data + static_cast<std::ptrdiff_t>(p) * rows * cols, rows, cols, cols};
}

template <class T>
std::vector<T> rotated180(const T* k, int n) {
    std::vector<T> out(k, k + n);
    std::reverse(out.begin(), out.end());
    return out;
}

const char* mode_name(CorrelateMode mode) {
    switch (mode) {
        case CorrelateMode::valid: return "valid";
        case CorrelateMode::full: return "full";
        case CorrelateMode::same: return "same";
    }
    return "?";
}

template <class T>
Tensor<T> correlate2d_impl(const char* op, const Tensor<T>& input, const Tensor<T>& kernel, CorrelateMode mode,
                           int same_row_offset, int same_col_offset) {
    require_rank(op, input.shape(), 2);
    require_rank(op, kernel.shape(), 2);
    const int h = input.dim(0), w = input.dim(1), kh = kernel.dim(0), kw = kernel.dim(1);
    if (input.empty() || kernel.empty())
        fail("{} ({}): empty input {} or kernel {}", op, mode_name(mode), input.shape().str(), kernel.shape().str());
    if (mode == CorrelateMode::valid && (kh > h || kw > w))
        fail("{} (valid): kernel {} is larger than input {}", op, kernel.shape().str(), input.shape().str());
    // valid: the correlation of the input as it is; full: of the input zero-padded by (kernel - 1)
    // on every side.
    const int pr = mode == CorrelateMode::valid ? 0 : kh - 1, pc = mode == CorrelateMode::valid ? 0 : kw - 1;
    Planes<T> in(1, h + 2 * pr, w + 2 * pc), k(1, kh, kw);
    Planes<T> out(1, h + 2 * pr - kh + 1, w + 2 * pc - kw + 1, RowStart::whole_vectors);
    for (int r = 0; r < h; ++r) std::copy(input.data() + r * w, input.data() + (r + 1) * w, in[0].row(pr + r) + pc);
    k.place(kernel.data(), 1, kh, kw, 0);
    correlate_add<T>({in[0], k[0]}, out[0]);
    const View<const T> result = out[0];  // valid or full
    if (mode == CorrelateMode::same)  // the h x w window of full, centred as scipy centres it
        return to_tensor(result.window(same_row_offset, same_col_offset, h, w));
    return to_tensor(result);
}

}  // namespace

template <class T>
Tensor<T> correlate2d(const Tensor<T>& input, const Tensor<T>& kernel, CorrelateMode mode) {
    if (kernel.rank() == 2)  // scipy centres 'same' at kernel_size / 2 for a correlation
        return correlate2d_impl("correlate2d", input, kernel, mode, kernel.dim(0) / 2, kernel.dim(1) / 2);
    return correlate2d_impl("correlate2d", input, kernel, mode, 0, 0);  // reports the rank error
}

template <class T>
Tensor<T> convolve2d(const Tensor<T>& input, const Tensor<T>& kernel, CorrelateMode mode) {
    require_rank("convolve2d", kernel.shape(), 2);
    // convolution = correlation with the kernel turned by 180 degrees; 'same' centres at (size-1)/2
    Tensor<T> flipped(kernel.shape(), rotated180(kernel.data(), static_cast<int>(kernel.numel())));
    return correlate2d_impl("convolve2d", input, flipped, mode, (kernel.dim(0) - 1) / 2, (kernel.dim(1) - 1) / 2);
}

const char* conv_path_name(ConvPath path) {
    switch (path) {
        case ConvPath::plain: return "plain";
        case ConvPath::correlate2d: return "correlate2d";
        case ConvPath::im2col: return "im2col";
        case ConvPath::winograd: return "winograd";
        case ConvPath::automatic: return "automatic";
    }
    return "?";
}

std::vector<std::string> conv_path_names() {
    std::vector<std::string> out;
    for (ConvPath p : {ConvPath::plain, ConvPath::correlate2d, ConvPath::im2col, ConvPath::winograd, ConvPath::automatic}) out.push_back(conv_path_name(p));
    return out;
}

ConvPath conv_path_from_name(const std::string& name) {
    for (ConvPath p : {ConvPath::plain, ConvPath::correlate2d, ConvPath::im2col, ConvPath::winograd, ConvPath::automatic})
        if (name == conv_path_name(p)) return p;
    fail("unknown conv path '{}'; known conv paths: {}", name, fmt::join(conv_path_names(), ", "));
}

namespace conv {

Shape output_shape(const Shape& x, const Shape& k, const Conv2dOptions& o) {
    require_rank("conv2d input (B x N x H x W)", x, 4);
    require_rank("conv2d kernels (D x N x F x F)", k, 4);
    if (o.padding < 0 || o.stride < 1) fail("conv2d: padding must be >= 0 and stride >= 1, got padding {} stride {}", o.padding, o.stride);
    if (x[1] != k[1])
        fail("conv2d: input {} has {} channels but kernels {} expect {}", x.str(), x[1], k.str(), k[1]);
    if (k[2] != k[3]) fail("conv2d: kernels {} are not square", k.str());
    const int hp = x[2] + 2 * o.padding, wp = x[3] + 2 * o.padding, f = k[2];
    if (f < 1 || f > hp || f > wp)
        fail("conv2d: kernel size {} does not fit the padded input {}x{} (input {}, padding {})", f, hp, wp, x.str(), o.padding);
    return Shape{x[0], k[0], (hp - f) / o.stride + 1, (wp - f) / o.stride + 1};
}

// Each loop below runs over the planes it writes, so every plane is summed by one thread in a
// fixed order: the results do not depend on the thread count. The planes read are padded (and dY
// dilated, K turned) once per call, before the loops; each thread sums into a scratch plane of
// its own, then adds that into the result.

template <class T>
void forward_correlate2d(const Tensor<T>& x, const Tensor<T>& k, const Conv2dOptions& o, Tensor<T>& y) {
    const Shape ys = output_shape(x.shape(), k.shape(), o);
    const int B = x.dim(0), N = x.dim(1), H = x.dim(2), W = x.dim(3), D = k.dim(0), F = k.dim(2), P = o.padding, S = o.stride;
    const int Ho = ys[2], Wo = ys[3];
    y.resize(ys);
    y.set_zero();
    Planes<T> xp(B * N, H + 2 * P, W + 2 * P), kp(D * N, F, F);  // Xp[b,j], K[i,j]
    xp.place(x.data(), B * N, H, W, P);
    kp.place(k.data(), D * N, F, F, 0);
    const std::size_t work = static_cast<std::size_t>(B) * D * N * Ho * Wo * F * F;
#pragma omp parallel if (work >= parallel_threshold)
    {
        Planes<T> sum(1, Ho, Wo, RowStart::whole_vectors);
        // Y[b,i] = sum_j (correlate2d(Xp[b,j], K[i,j], valid))_S: one (b, i) plane per iteration,
        // the sum over j inside correlate_add (terms j: Xp[b,j] and K[i,j] one plane apart)
#pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; ++b)
            for (int i = 0; i < D; ++i) {
                sum.set_zero();
                if (S == 1)
                    correlate_add<T>({xp[b * N], kp[i * N], N, xp.step(), kp.step()}, sum[0]);
                else
                    for (int j = 0; j < N; ++j) correlate_add_strided<T>(xp[b * N + j], kp[i * N + j], sum[0], S);
                add_into<T>(sum[0], tensor_plane(y.data(), b * D + i, Ho, Wo));
            }
    }
}

template <class T>
void backward_correlate2d(const Tensor<T>& x, const Tensor<T>& k, const Tensor<T>& gy, const Conv2dOptions& o,
                          std::type_identity_t<Tensor<T>>* gx, std::type_identity_t<Tensor<T>>* gk) {
    const Shape ys = output_shape(x.shape(), k.shape(), o);
    require_same_shape("conv2d backward (dL/dY vs Y)", gy.shape(), ys);
    if (gx) require_same_shape("conv2d backward (dL/dX vs X)", gx->shape(), x.shape());
    if (gk) require_same_shape("conv2d backward (dL/dK vs K)", gk->shape(), k.shape());
    // The loops below correlate with dY padded by zeros (and at stride > 1 dilated by them). Those
    // zeros are absent terms of the formulas, not values (conv2d_plain.cpp): times a finite factor
    // they add an exact 0, but times inf or NaN they would add a NaN that PyTorch's conv does not
    // have. So a kernel holding a non-finite value has its dX computed by the im2col path, which
    // forms only the actual terms; and so, at stride > 1, has an input holding one its dK.
    if (gx && first_non_finite(k) >= 0) {
        backward_im2col(x, k, gy, o, gx, nullptr);
        gx = nullptr;
    }
    if (gk && o.stride > 1 && first_non_finite(x) >= 0) {
        backward_im2col(x, k, gy, o, nullptr, gk);
        gk = nullptr;
    }
    if (!gx && !gk) return;
    const int B = x.dim(0), N = x.dim(1), H = x.dim(2), W = x.dim(3), D = k.dim(0), F = k.dim(2), P = o.padding, S = o.stride;
    const int Ho = ys[2], Wo = ys[3];
    const int Hd = (Ho - 1) * S + 1, Wd = (Wo - 1) * S + 1;  // dilated dY
    // dilate_S(dY[b,i]) padded by F - 1 on every side, once per plane: the input of dX's full
    // convolution, and (its Hd x Wd interior) the kernel of dK's correlation.
    Planes<T> gyd(B * D, Hd + 2 * (F - 1), Wd + 2 * (F - 1));
    gyd.place(gy.data(), B * D, Ho, Wo, F - 1, S);

    // dXp[b,j] = sum_i convolve2d(dilate(dY[b,i]), K[i,j], full): a (Hd+F-1) x (Wd+F-1) plane, the
    // top-left part of the padded input (rows past it, left over by the stride, get no gradient).
    // Full convolution = valid correlation of the padded dilated gradient with the kernel turned
    // by 180 degrees. dX[b,j] is the window of dXp[b,j] from (P, P): only that window is computed,
    // as the correlation of the gradient plane from its corner (P, P).
    const int rows = std::min(H, Hd + F - 1 - P), cols = std::min(W, Wd + F - 1 - P);  // of dX that get a gradient
    if (gx && rows > 0 && cols > 0) {
        Planes<T> kr(D * N, F, F);  // K[i,j] turned by 180 degrees
        for (int p = 0; p < D * N; ++p) {
            const T* kp = k.data() + static_cast<std::ptrdiff_t>(p) * F * F;
            std::reverse_copy(kp, kp + F * F, kr[p].data);
        }
        const std::size_t work = static_cast<std::size_t>(B) * N * D * rows * cols * F * F;
#pragma omp parallel if (work >= parallel_threshold)
        {
            Planes<T> sum(1, rows, cols, RowStart::whole_vectors);
            // one (b, j) plane per iteration, the sum over i inside correlate_add (terms i: the
            // gradient planes one apart, the turned kernels N apart)
#pragma omp for collapse(2) schedule(static)
            for (int b = 0; b < B; ++b)
                for (int j = 0; j < N; ++j) {
                    sum.set_zero();
                    const View<const T> g = gyd[b * D];
                    correlate_add<T>({g.window(P, P, g.rows - P, g.cols - P), kr[j], D, gyd.step(), N * kr.step()}, sum[0]);
                    add_into<T>(sum[0], tensor_plane(gx->data(), b * N + j, H, W));
                }
        }
    }
    if (gk) {
        // dK[i,j] += sum_b correlate2d(Xp[b,j], dilate(dY[b,i]), valid), its top-left F x F
        Planes<T> xp(B * N, H + 2 * P, W + 2 * P);
        xp.place(x.data(), B * N, H, W, P);
        const std::size_t work = static_cast<std::size_t>(D) * N * B * F * F * Hd * Wd;
#pragma omp parallel if (work >= parallel_threshold)
        {
            Planes<T> sum(1, F, F, RowStart::whole_vectors);
            // one (i, j) plane per iteration, the sum over b inside correlate_add (terms b: Xp[b,j]
            // N planes apart, dilate(dY[b,i]) D apart)
#pragma omp for collapse(2) schedule(static)
            for (int i = 0; i < D; ++i)
                for (int j = 0; j < N; ++j) {
                    sum.set_zero();
                    const View<const T> g = gyd[i];
                    correlate_add<T>({xp[j], g.window(F - 1, F - 1, Hd, Wd), B, N * xp.step(), D * gyd.step()}, sum[0]);
                    add_into<T>(sum[0], tensor_plane(gk->data(), i * N + j, F, F));
                }
        }
    }
}

}  // namespace conv

namespace {

// The forward and backward functions of a path that runs (not automatic: see conv::path_to_run).
template <class T>
struct PathFunctions {
    void (*forward)(const Tensor<T>&, const Tensor<T>&, const Conv2dOptions&, Tensor<T>&);
    void (*backward)(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, const Conv2dOptions&, Tensor<T>*, Tensor<T>*);
};

template <class T>
PathFunctions<T> functions_of(ConvPath path) {
    switch (path) {
        case ConvPath::plain: return {conv::forward_plain<T>, conv::backward_plain<T>};
        case ConvPath::correlate2d: return {conv::forward_correlate2d<T>, conv::backward_correlate2d<T>};
        case ConvPath::im2col: return {conv::forward_im2col<T>, conv::backward_im2col<T>};
        case ConvPath::winograd: return {conv::forward_winograd<T>, conv::backward_winograd<T>};
        case ConvPath::automatic: break;
    }
    fail("conv2d: no functions for conv path {}", static_cast<int>(path));
}

}  // namespace

template <class T>
Var<T> conv2d(const Var<T>& x, const Var<T>& kernels, const Conv2dOptions& options) {
    const PathFunctions<T> path = functions_of<T>(conv::path_to_run(kernels.shape(), options, x.value().shape()));
    Tensor<T> y;
    path.forward(x.value(), kernels.value(), options, y);
    return record<T>("conv2d", std::move(y), {x, kernels},
                     [xv = x.value_ptr(), kv = kernels.value_ptr(), options, backward = path.backward](
                         const Tensor<T>&, const Tensor<T>& gy, auto g) { backward(*xv, *kv, gy, options, g[0], g[1]); });
}

#define MCNN_INSTANTIATE(T)                                                                                              \
    template Tensor<T> correlate2d(const Tensor<T>&, const Tensor<T>&, CorrelateMode);                                   \
    template Tensor<T> convolve2d(const Tensor<T>&, const Tensor<T>&, CorrelateMode);                                    \
    template void conv::forward_correlate2d(const Tensor<T>&, const Tensor<T>&, const Conv2dOptions&, Tensor<T>&);       \
    template void conv::backward_correlate2d(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, const Conv2dOptions&, \
                                             Tensor<T>*, Tensor<T>*);                                                    \
    template Var<T> conv2d(const Var<T>&, const Var<T>&, const Conv2dOptions&);
MCNN_INSTANTIATE(float)
MCNN_INSTANTIATE(double)
#undef MCNN_INSTANTIATE  // the unity build puts several files in one translation unit

}  // namespace mcnn
