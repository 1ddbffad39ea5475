// 2-D correlate2d / convolve2d and the reference (loop) path of the conv layer.
// See mcnn/ops/correlate2d.hpp for the maths and shapes.
#include "mcnn/ops/correlate2d.hpp"

#include <algorithm>

namespace mcnn {
namespace {

// out[r, c] += sum_{u,v} in[r*stride + u, c*stride + v] * k[u, v]   for r < out_h, c < out_w.
// `in` is in_h x in_w, `k` is k_h x k_w, all row-major; (out_h-1)*stride + k_h <= in_h.
// The inner loop runs along an output row, so for stride 1 it is a vectorisable axpy.
template <class T>
void correlate_add(const T* in, int in_w, const T* k, int k_h, int k_w, T* out, int out_h, int out_w, int stride) {
    for (int r = 0; r < out_h; ++r) {
        T* o = out + static_cast<std::ptrdiff_t>(r) * out_w;
        for (int u = 0; u < k_h; ++u) {
            const T* row = in + static_cast<std::ptrdiff_t>(r * stride + u) * in_w;
            for (int v = 0; v < k_w; ++v) {
                const T kv = k[u * k_w + v];
                const T* src = row + v;
                if (stride == 1) {
                    for (int c = 0; c < out_w; ++c) o[c] += kv * src[c];
                } else {
                    for (int c = 0; c < out_w; ++c) o[c] += kv * src[c * stride];
                }
            }
        }
    }
}

// A copy of the h x w plane `in` with zeros around it: `before` rows/cols before, `after` after.
template <class T>
std::vector<T> padded(const T* in, int h, int w, int before, int after) {
    const int pw = w + before + after;
    std::vector<T> out(static_cast<std::size_t>(h + before + after) * pw, T(0));
    for (int r = 0; r < h; ++r) std::copy(in + r * w, in + (r + 1) * w, out.begin() + (r + before) * pw + before);
    return out;
}

// The h x w plane with stride-1 zeros between elements: ((h-1)*s+1) x ((w-1)*s+1).
template <class T>
std::vector<T> dilated(const T* in, int h, int w, int s) {
    const int dw = (w - 1) * s + 1;
    std::vector<T> out(static_cast<std::size_t>((h - 1) * s + 1) * dw, T(0));
    for (int r = 0; r < h; ++r)
        for (int c = 0; c < w; ++c) out[static_cast<std::size_t>(r * s) * dw + c * s] = in[r * w + c];
    return out;
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
    if (mode == CorrelateMode::valid) {
        if (kh > h || kw > w)
            fail("{} (valid): kernel {} is larger than input {}", op, kernel.shape().str(), input.shape().str());
        Tensor<T> out(Shape{h - kh + 1, w - kw + 1});
        correlate_add(input.data(), w, kernel.data(), kh, kw, out.data(), out.dim(0), out.dim(1), 1);
        return out;
    }
    // full: the valid correlation of the input zero-padded by (kernel - 1) on every side.
    const int fh = h + kh - 1, fw = w + kw - 1;
    Tensor<T> full(Shape{fh, fw});
    {
        const int pad_r = kh - 1, pad_c = kw - 1;
        std::vector<T> p(static_cast<std::size_t>(h + 2 * pad_r) * (w + 2 * pad_c), T(0));
        for (int r = 0; r < h; ++r)
            std::copy(input.data() + r * w, input.data() + (r + 1) * w, p.begin() + (r + pad_r) * (w + 2 * pad_c) + pad_c);
        correlate_add(p.data(), w + 2 * pad_c, kernel.data(), kh, kw, full.data(), fh, fw, 1);
    }
    if (mode == CorrelateMode::full) return full;
    // same: the h x w window of full, centred as scipy centres it.
    Tensor<T> out(Shape{h, w});
    for (int r = 0; r < h; ++r)
        for (int c = 0; c < w; ++c) out[static_cast<std::size_t>(r) * w + c] = full[static_cast<std::size_t>(r + same_row_offset) * fw + c + same_col_offset];
    return out;
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

template <class T>
void forward_reference(const Tensor<T>& x, const Tensor<T>& k, const Conv2dOptions& o, Tensor<T>& y) {
    const Shape ys = output_shape(x.shape(), k.shape(), o);
    const int B = x.dim(0), N = x.dim(1), H = x.dim(2), W = x.dim(3), D = k.dim(0), F = k.dim(2), P = o.padding;
    const int Ho = ys[2], Wo = ys[3], Wp = W + 2 * P;
    y.resize(ys);
    y.set_zero();
    const std::size_t xplane = static_cast<std::size_t>(H) * W, yplane = static_cast<std::size_t>(Ho) * Wo, kplane = static_cast<std::size_t>(F) * F;
    for (int b = 0; b < B; ++b)
        for (int j = 0; j < N; ++j) {
            const std::vector<T> xp = padded(x.data() + (b * N + j) * xplane, H, W, P, P);
            for (int i = 0; i < D; ++i)  // Y[b,i] += (correlate2d(Xp[b,j], K[i,j], valid))_S
                correlate_add(xp.data(), Wp, k.data() + (i * N + j) * kplane, F, F, y.data() + (b * D + i) * yplane, Ho, Wo, o.stride);
        }
}

template <class T>
void backward_reference(const Tensor<T>& x, const Tensor<T>& k, const Tensor<T>& gy, const Conv2dOptions& o,
                        std::type_identity_t<Tensor<T>>* gx, std::type_identity_t<Tensor<T>>* gk) {
    const Shape ys = output_shape(x.shape(), k.shape(), o);
    require_same_shape("conv2d backward (dL/dY vs Y)", gy.shape(), ys);
    const int B = x.dim(0), N = x.dim(1), H = x.dim(2), W = x.dim(3), D = k.dim(0), F = k.dim(2), P = o.padding, S = o.stride;
    const int Ho = ys[2], Wo = ys[3], Wp = W + 2 * P;
    const int Hd = (Ho - 1) * S + 1, Wd = (Wo - 1) * S + 1;  // dilated dY
    const std::size_t xplane = static_cast<std::size_t>(H) * W, yplane = static_cast<std::size_t>(Ho) * Wo, kplane = static_cast<std::size_t>(F) * F;

    // dilate_S(dY[b,i]) for every plane (a plain copy when S = 1)
    std::vector<std::vector<T>> gyd(static_cast<std::size_t>(B) * D);
    for (int p = 0; p < B * D; ++p) gyd[p] = dilated(gy.data() + p * yplane, Ho, Wo, S);

    if (gx) {
        require_same_shape("conv2d backward (dL/dX vs X)", gx->shape(), x.shape());
        // dXp[b,j] = sum_i convolve2d(dilate(dY[b,i]), K[i,j], full): a (Hd+F-1) x (Wd+F-1) plane,
        // the top-left part of the Hp x Wp padded input (rows past it, left over by the stride, get
        // no gradient). Full convolution = valid correlation of the dilated gradient padded by F-1
        // with the kernel turned by 180 degrees.
        const int Hf = Hd + F - 1, Wf = Wd + F - 1;
        std::vector<T> gxp(static_cast<std::size_t>(Hf) * Wf);
        for (int b = 0; b < B; ++b)
            for (int j = 0; j < N; ++j) {
                std::fill(gxp.begin(), gxp.end(), T(0));
                for (int i = 0; i < D; ++i) {
                    const std::vector<T> g = padded(gyd[b * D + i].data(), Hd, Wd, F - 1, F - 1);
                    const std::vector<T> kr = rotated180(k.data() + (i * N + j) * kplane, F * F);
                    correlate_add(g.data(), Wd + 2 * (F - 1), kr.data(), F, F, gxp.data(), Hf, Wf, 1);
                }
                // dX[b,j] = dXp[b,j] without the padding
                T* dst = gx->data() + (b * N + j) * xplane;
                for (int r = 0; r < H && r + P < Hf; ++r)
                    for (int c = 0; c < W && c + P < Wf; ++c) dst[r * W + c] += gxp[static_cast<std::size_t>(r + P) * Wf + c + P];
            }
    }
    if (gk) {
        require_same_shape("conv2d backward (dL/dK vs K)", gk->shape(), k.shape());
        // dK[i,j] += sum_b correlate2d(Xp[b,j], dilate(dY[b,i]), valid), its top-left F x F
        for (int b = 0; b < B; ++b)
            for (int j = 0; j < N; ++j) {
                const std::vector<T> xp = padded(x.data() + (b * N + j) * xplane, H, W, P, P);
                for (int i = 0; i < D; ++i)
                    correlate_add(xp.data(), Wp, gyd[b * D + i].data(), Hd, Wd, gk->data() + (i * N + j) * kplane, F, F, 1);
            }
    }
}

}  // namespace conv

template <class T>
Var<T> conv2d(const Var<T>& x, const Var<T>& kernels, const Conv2dOptions& options) {
    Tensor<T> y;
    if (options.path == ConvPath::reference) {
        conv::forward_reference(x.value(), kernels.value(), options, y);
        return record<T>("conv2d", std::move(y), {x, kernels},
                         [xv = x.value_ptr(), kv = kernels.value_ptr(), options](const Tensor<T>&, const Tensor<T>& gy, auto g) {
                             conv::backward_reference(*xv, *kv, gy, options, g[0], g[1]);
                         });
    }
    conv::forward_fast(x.value(), kernels.value(), options, y);
    return record<T>("conv2d", std::move(y), {x, kernels},
                     [xv = x.value_ptr(), kv = kernels.value_ptr(), options](const Tensor<T>&, const Tensor<T>& gy, auto g) {
                         conv::backward_fast(*xv, *kv, gy, options, g[0], g[1]);
                     });
}

#define MCNN_INSTANTIATE(T)                                                                                           \
    template Tensor<T> correlate2d(const Tensor<T>&, const Tensor<T>&, CorrelateMode);                                \
    template Tensor<T> convolve2d(const Tensor<T>&, const Tensor<T>&, CorrelateMode);                                 \
    template void conv::forward_reference(const Tensor<T>&, const Tensor<T>&, const Conv2dOptions&, Tensor<T>&);      \
    template void conv::backward_reference(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, const Conv2dOptions&, \
                                           Tensor<T>*, Tensor<T>*);                                                   \
    template Var<T> conv2d(const Var<T>&, const Var<T>&, const Conv2dOptions&);
MCNN_INSTANTIATE(float)
MCNN_INSTANTIATE(double)

}  // namespace mcnn
