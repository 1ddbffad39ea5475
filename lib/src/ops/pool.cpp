#include "mcnn/ops/pool.hpp"

namespace mcnn {

template <class T>
void pool::max_forward(const Tensor<T>& x, int kernel, int stride, Tensor<T>& y, std::vector<std::int32_t>& argmax) {
    require_rank("max_pool2d input (B x C x H x W)", x.shape(), 4);
    if (kernel < 1 || stride < 1) fail("max_pool2d: kernel and stride must be >= 1, got {} and {}", kernel, stride);
    const int B = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
    if (kernel > H || kernel > W) fail("max_pool2d: kernel {} is larger than the input {}", kernel, x.shape().str());
    const int Ho = (H - kernel) / stride + 1, Wo = (W - kernel) / stride + 1;
    y.resize(Shape{B, C, Ho, Wo});
    argmax.resize(y.numel());
    std::size_t k = 0;
    for (int p = 0; p < B * C; ++p) {
        const std::int32_t base = p * H * W;
        for (int r = 0; r < Ho; ++r)
            for (int c = 0; c < Wo; ++c, ++k) {
                std::int32_t best = base + r * stride * W + c * stride;
                for (int u = 0; u < kernel; ++u)
                    for (int v = 0; v < kernel; ++v) {
                        const std::int32_t at = base + (r * stride + u) * W + c * stride + v;
                        if (x[at] > x[best]) best = at;  // strict: the first maximum wins ties
                    }
                argmax[k] = best;
                y[k] = x[best];
            }
    }
}

template <class T>
Var<T> max_pool2d(const Var<T>& x, int kernel, int stride) {
    if (stride == 0) stride = kernel;
    Tensor<T> y;
    auto argmax = std::make_shared<std::vector<std::int32_t>>();
    pool::max_forward(x.value(), kernel, stride, y, *argmax);
    return record<T>("max_pool2d", std::move(y), {x}, [argmax](const Tensor<T>&, const Tensor<T>& gy, auto g) {
        if (!g[0]) return;
        T* gx = g[0]->data();
        for (std::size_t k = 0; k < argmax->size(); ++k) gx[(*argmax)[k]] += gy[k];
    });
}

template void pool::max_forward(const Tensor<float>&, int, int, Tensor<float>&, std::vector<std::int32_t>&);
template void pool::max_forward(const Tensor<double>&, int, int, Tensor<double>&, std::vector<std::int32_t>&);
template Var<float> max_pool2d(const Var<float>&, int, int);
template Var<double> max_pool2d(const Var<double>&, int, int);

}  // namespace mcnn
